import type { Charm, EventContext, Handler } from '../../runtime/charm.js';
import { chooseBootstrapPrimary, synchronousStandbyNames } from './decide.js';
import { layout, pgParams, slotName, type Layout } from './render.js';
import { scramVerifier } from './scram.js';
import { ensurePasswords, readPasswords, type Passwords } from './secrets.js';
import { PostgresWorkload, waitAccepting, withConnection } from './workload.js';

/**
 * The PostgreSQL charm. Every event ends in one reconcile (Patroni's HA loop, event-driven):
 * read the model, decide this unit's role, make Postgres match, and log the decision and why.
 */

interface Target {
  host: string;
  port: number;
}

const parseAddress = (s: string | undefined): Target | undefined => {
  const m = s ? /^(.*):(\d+)$/.exec(s) : null;
  return m ? { host: m[1]!, port: Number(m[2]) } : undefined;
};

class Waiting extends Error {}

async function passwords(ctx: EventContext): Promise<Passwords> {
  if (ctx.isLeader()) return ensurePasswords(ctx.kube, ctx.app, String(ctx.config['override-root-password'] ?? ''));
  const pw = await readPasswords(ctx.kube, ctx.app);
  if (!pw) throw new Waiting('waiting for the leader to create the passwords');
  return pw;
}

function workload(ctx: EventContext): { w: PostgresWorkload; l: Layout } {
  const l = layout(ctx.workload.storage('pgdata'), Number(ctx.config['postgresql-major']));
  return { w: new PostgresWorkload(ctx.pebble, l, ctx.log), l };
}

async function reconcile(ctx: EventContext): Promise<void> {
  try {
    await reconcileOrWait(ctx);
  } catch (e) {
    if (!(e instanceof Waiting)) throw e;
    ctx.log.info({ decision: 'wait', why: e.message }, 'reconcile');
    await ctx.setUnitStatus({ name: 'waiting', message: e.message });
  }
}

async function reconcileOrWait(ctx: EventContext): Promise<void> {
  const me = ctx.workload.address();
  if (!me) throw new Waiting('waiting for the unit address');
  try {
    await ctx.pebble.getSystemInfo();
  } catch {
    throw new Waiting('waiting for the workload container');
  }
  const pw = await passwords(ctx);
  ctx.peers.local.set('address', `${me.host}:${me.port}`);

  let primary = ctx.peers.app.get('primary');
  if (!primary) {
    if (!ctx.isLeader()) throw new Waiting('waiting for the leader to choose a primary');
    primary = chooseBootstrapPrimary(ctx.unit, ctx.peers.units);
    ctx.peers.app.set('primary', primary);
    ctx.log.info({ decision: 'bootstrap', primary, why: 'no primary recorded; the leader starts the cluster on itself' }, 'reconcile');
  }
  const { w, l } = workload(ctx);
  await w.prepareStorage();
  if (primary === ctx.unit) await asPrimary(ctx, w, l, me, pw);
  else await asReplica(ctx, w, l, me, pw, primary);
  if (ctx.isLeader()) await appStatus(ctx, primary);
}

/** The leader's summary for `pgcharm status`: who is primary and how many standbys replicate. */
async function appStatus(ctx: EventContext, primary: string): Promise<void> {
  const units = [ctx.unit, ...ctx.peers.units];
  const replicas = units.filter((u) => ctx.peers.unit(u).get('role') === 'replica').length;
  const primaryUp = (primary === ctx.unit || ctx.peers.units.includes(primary)) && ctx.peers.unit(primary).get('role') === 'primary';
  const message = `primary ${primary}, ${replicas}/${units.length - 1} replicas`;
  await ctx.setAppStatus(primaryUp ? { name: 'active', message } : { name: 'waiting', message: `waiting for the primary ${primary}` });
}

async function asPrimary(ctx: EventContext, w: PostgresWorkload, l: Layout, me: Target, pw: Passwords): Promise<void> {
  const fresh = !(await w.hasCluster());
  if (fresh) {
    await ctx.setUnitStatus({ name: 'maintenance', message: 'initialising the database' });
    await w.initdb(pw.operator, Boolean(ctx.config['data-checksums']));
  }
  const running = await w.running();
  // Only peers count: pg_basebackup's WAL stream shows up in pg_stat_replication too.
  const sync = running ? (await streamingStandbys(me, pw)).filter((u) => ctx.peers.units.includes(u)) : [];
  const names = synchronousStandbyNames(String(ctx.config['synchronous-mode']), Number(ctx.config['synchronous-node-count']), sync);
  await w.writeConfig(pgParams(ctx.config, { host: me.host, port: me.port, l, synchronousStandbyNames: names }), String(ctx.config['password-encryption']));
  await w.setStandbySignal(false);
  await w.addLayer(me.port);
  if (running) await w.reload();
  else await w.start();
  await waitAccepting(me, pw.operator);
  await withConnection(me, pw.operator, async (c) => {
    // Passwords go in as SCRAM verifiers: neither SQL text nor a server log line holds one.
    // The charm's own statements must not wait for a synchronous standby that may be the one being built.
    await c.query('SET synchronous_commit = local');
    if (!(await c.query("SELECT 1 FROM pg_roles WHERE rolname = 'replication'")).rowCount) {
      await c.query(`CREATE ROLE replication WITH REPLICATION LOGIN PASSWORD '${scramVerifier(pw.replication)}'`);
    }
    for (const u of ctx.peers.units) await ensureSlot(c, slotName(u));
  });
  ctx.peers.local.set('role', 'primary');
  ctx.peers.local.set('synchronous-standbys', sync.join(','));
  ctx.log.info({ decision: fresh ? 'bootstrapped' : 'primary', why: 'the application bag names this unit primary', synchronous: names }, 'reconcile');
  await ctx.setUnitStatus({ name: 'active', message: 'primary' });
}

/** Creates a physical slot reserving WAL now, unless it exists (the standby and the primary may race to it). */
async function ensureSlot(c: import('pg').Client, slot: string): Promise<void> {
  try {
    await c.query('SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)', [slot]);
  } catch (e) {
    if ((e as { code?: string }).code !== '42710') throw e; // duplicate_object: the other side made it
  }
}

/** Standbys streaming from this primary, by application_name (= unit name). */
async function streamingStandbys(me: Target, pw: Passwords): Promise<string[]> {
  try {
    return await withConnection(me, pw.operator, async (c) =>
      (await c.query<{ application_name: string }>("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY application_name")).rows.map((r) => r.application_name),
    );
  } catch {
    return [];
  }
}

async function asReplica(ctx: EventContext, w: PostgresWorkload, l: Layout, me: Target, pw: Passwords, primary: string): Promise<void> {
  const bag = ctx.peers.units.includes(primary) ? ctx.peers.unit(primary) : undefined;
  const target = parseAddress(bag?.get('address'));
  if (!bag || !target || bag.get('role') !== 'primary') throw new Waiting(`waiting for the primary ${primary}`);
  const slot = slotName(ctx.unit);
  if (!(await w.hasCluster())) {
    await ctx.setUnitStatus({ name: 'maintenance', message: `cloning ${primary} with pg_basebackup` });
    await withConnection(target, pw.operator, async (c) => {
      await c.query('SET synchronous_commit = local');
      await ensureSlot(c, slot);
    });
    await w.basebackup(target, slot, false, pw.replication);
  } else {
    // A standby re-reads its primary's password file on reconnect; keep it current.
    await w.pushSecret(l.pgpass, `*:*:*:replication:${pw.replication.replace(/[\\:]/g, (c) => `\\${c}`)}\n`);
  }
  const conninfo = `host=${target.host} port=${target.port} user=replication passfile=${l.pgpass} application_name=${ctx.unit} sslmode=prefer`;
  await w.writeConfig(pgParams(ctx.config, { host: me.host, port: me.port, l, standby: { primaryConninfo: conninfo, slot } }), String(ctx.config['password-encryption']));
  await w.setStandbySignal(true);
  await w.addLayer(me.port);
  if (await w.running()) await w.reload();
  else await w.start();
  ctx.peers.local.set('role', 'replica');
  ctx.log.info({ decision: 'replica', primary, why: 'the application bag names another unit primary' }, 'reconcile');
  await ctx.setUnitStatus({ name: 'active', message: `replica of ${primary}` });
}

/** Positions reported in the unit bag on update-status: role, timeline, LSNs, lag. */
async function report(ctx: EventContext): Promise<void> {
  const me = ctx.workload.address();
  const pw = await readPasswords(ctx.kube, ctx.app).catch(() => undefined);
  if (!me || !pw) return;
  try {
    const r = await withConnection(me, pw.operator, async (c) =>
      (
        await c.query<{ recovery: boolean; tli: string; lsn: string | null; replay: string | null; lag: string | null }>(
          `SELECT pg_is_in_recovery() AS recovery,
                  (SELECT timeline_id FROM pg_control_checkpoint())::text AS tli,
                  CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END::text AS lsn,
                  pg_last_wal_replay_lsn()::text AS replay,
                  CASE WHEN pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text END AS lag`,
        )
      ).rows[0]!,
    );
    ctx.peers.local.set('timeline', r.tli);
    if (r.lsn) ctx.peers.local.set('lsn', r.lsn);
    ctx.peers.local.set('lag', r.lag ?? '0');
  } catch (e) {
    ctx.log.warn({ err: (e as Error).message }, 'could not read positions from postgres');
  }
}

export default function postgresqlCharm(): Charm {
  const onEvent: Handler = async (ctx) => {
    await reconcile(ctx);
    if (ctx.name === 'update-status') await report(ctx);
  };
  const events = [
    'install',
    'leader-elected',
    'leader-settings-changed',
    'config-changed',
    'start',
    'postgresql-pebble-ready',
    'database-peers-relation-joined',
    'database-peers-relation-changed',
    'database-peers-relation-departed',
    'update-status',
  ];
  return {
    handlers: {
      ...Object.fromEntries(events.map((e) => [e, onEvent])),
      'get-primary-action': (ctx) => {
        ctx.action!.setResults({ primary: ctx.peers.app.get('primary') ?? '' });
      },
      'list-members-action': (ctx) => {
        const members: Record<string, unknown> = {};
        for (const u of [ctx.unit, ...ctx.peers.units].sort()) {
          const b = ctx.peers.unit(u);
          members[u] = { role: b.get('role') ?? 'starting', address: b.get('address') ?? '', timeline: b.get('timeline') ?? '', lsn: b.get('lsn') ?? '', lag: b.get('lag') ?? '' };
        }
        ctx.action!.setResults({ members });
      },
      'get-password-action': async (ctx) => {
        const pw = await readPasswords(ctx.kube, ctx.app);
        if (!pw) return ctx.action!.fail('no passwords yet: the leader creates them at deploy');
        const user = String(ctx.action!.params['username'] ?? 'operator') as keyof Passwords;
        ctx.action!.setResults({ username: user, password: pw[user] });
      },
    },
  };
}
