import type { Charm, CharmLoop, ConfigValue, EventContext, Handler, LoopContext } from '../../runtime/charm.js';
import { apiMessage, isUnreachable, mergePatch, withStoreTimeout, type Kube } from '../../runtime/kube.js';
import { parseUnit, podName } from '../../runtime/names.js';
import { configHash } from '../../charm-meta/index.js';
import { HANDOVER_LSN, HANDOVER_TO, PrimaryLease } from './lease.js';
import { chooseBootstrapPrimary, chooseFailoverCandidate, lsnValue, synchronousStandbyNames } from './decide.js';
import { layout, pgParams, ROLE_LABEL, slotName, type Layout } from './render.js';
import { generatePassword, scramVerifier } from './scram.js';
import { ensurePasswords, readPasswords, setPassword, type Passwords } from './secrets.js';
import { formatBytes, memberPositions, parseAddress, readPosition } from './positions.js';
import { PostgresWorkload, waitAccepting, withConnection } from './workload.js';
import { ensureApiToken, readApiToken } from './api-token.js';
import { Failsafe, storeTimeoutMs, type RoundContext } from './failsafe.js';

/**
 * The PostgreSQL charm. Every event ends in one reconcile (Patroni's HA loop, event-driven):
 * read the model, decide this unit's role, make Postgres match, and log the decision and why.
 */

interface Target {
  host: string;
  port: number;
}

class Waiting extends Error {}

/**
 * What the event handlers and the HA loop of this agent process share: the primary Lease's
 * observations (expiry is measured on this process's clock) and a lock so a promotion never
 * interleaves with a reconcile.
 */
class CharmState {
  private primaryLease: PrimaryLease | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  /** The holder a step-down was already requested for. */
  steppingDownFor: string | undefined;
  /** The role label this agent last put on its pod. */
  labelled: string | undefined;

  lease(ctx: { kube: Kube; app: string }): PrimaryLease {
    return (this.primaryLease ??= new PrimaryLease(ctx.kube, ctx.app));
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}

const state = new CharmState();
/** failsafe: this unit's promise, the primary it last saw, and the unit API token (failsafe.ts). */
const failsafe = new Failsafe();


/**
 * Labels this unit's pod with its role (only when it changed). A failure is logged, not
 * thrown: the label steers clients, the Lease decides who writes.
 */
async function labelPod(ctx: { kube: Kube; unit: string; log: import('pino').Logger }, role: 'primary' | 'replica'): Promise<void> {
  if (state.labelled === role) return;
  try {
    await ctx.kube.core.patchNamespacedPod({ name: podName(parseUnit(ctx.unit)), namespace: ctx.kube.namespace, body: { metadata: { labels: { [ROLE_LABEL]: role } } } }, mergePatch);
    state.labelled = role;
  } catch (e) {
    ctx.log.warn({ err: apiMessage(e), role }, 'could not label the pod with its role');
  }
}

const ttlMs = (config: Readonly<Record<string, ConfigValue>>): number => Number(config['primary-lease-ttl']) * 1000;

async function inRecovery(target: Target, pw: Passwords): Promise<boolean> {
  return withConnection(target, pw.operator, async (c) => (await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r);
}

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
    await state.exclusive(() => reconcileOrWait(ctx));
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
  // failsafe: the unit API's token (the leader adds one to an older Secret) and where peers call this unit.
  failsafe.token ??= ctx.isLeader() ? await ensureApiToken(ctx.kube, ctx.app) : await readApiToken(ctx.kube, ctx.app);
  const api = ctx.workload.api();
  ctx.peers.local.set('api', api ? `${api.host}:${api.port}` : null);

  // The primary Lease is the truth about who serves writes; the app bag records the leader's view.
  const holder = await state.lease(ctx).holder();
  let primary = holder ?? ctx.peers.app.get('primary');
  if (holder && ctx.isLeader() && ctx.peers.app.get('primary') !== holder) ctx.peers.app.set('primary', holder);
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
  await recordTimeline(ctx, me, pw);
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
  const lease = state.lease(ctx);
  const ttl = ttlMs(ctx.config);
  // Writes only with the lease: taken here at bootstrap (or when it expired), renewed by the HA loop.
  if (!(await lease.acquire(ctx.unit, ttl, (cur) => lease.expired(cur, ttl)))) {
    throw new Waiting(`the primary lease is held by ${(await lease.holder()) ?? 'another unit'}`);
  }
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
  await w.pushPassfile(pw);
  await w.addLayer(me.port);
  // The fence is armed before Postgres may accept a write.
  await w.setFenceDeadline(lease.lastRenewSentAt + ttl / 2);
  if (running && (await inRecovery(me, pw))) {
    // Fenced (restarted read-only) while still holding the lease, and nobody took over: serve again.
    await w.promote(me, pw.operator);
  } else if (running) {
    await w.reload();
  } else {
    await w.setStandbySignal(false);
    await w.start(() => waitAccepting(me, pw.operator));
  }
  await waitAccepting(me, pw.operator);
  await applyRestartClass(ctx, w, me, pw, 'primary', ctx.unit);
  await withConnection(me, pw.operator, async (c) => {
    // Passwords go in as SCRAM verifiers: neither SQL text nor a server log line holds one.
    // The charm's own statements must not wait for a synchronous standby that may be the one being built.
    await c.query('SET synchronous_commit = local');
    if (!(await c.query("SELECT 1 FROM pg_roles WHERE rolname = 'replication'")).rowCount) {
      await c.query(`CREATE ROLE replication WITH REPLICATION LOGIN PASSWORD '${scramVerifier(pw.replication)}'`);
    }
    for (const u of ctx.peers.units) await ensureSlot(c, slotName(u));
    // A removed unit's slot would keep WAL forever: drop inactive slots of units no longer peers.
    const keep = ctx.peers.units.map(slotName);
    await c.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active AND slot_type = 'physical' AND slot_name ~ $1 AND NOT (slot_name = ANY($2))", [
      `^${slotName(ctx.app)}_[0-9]+$`,
      keep,
    ]);
  });
  ctx.peers.local.set('role', 'primary');
  ctx.peers.local.set('synchronous-standbys', sync.join(','));
  await labelPod(ctx, 'primary');
  ctx.log.info({ decision: fresh ? 'bootstrapped' : 'primary', why: 'the application bag names this unit primary', synchronous: names }, 'reconcile');
  const later = ctx.peers.local.get('restart-pending');
  await ctx.setUnitStatus({ name: 'active', message: later ? `primary; restart for ${later} waits for the replicas` : 'primary' });
}

/** Creates a physical slot reserving WAL now, unless it exists (the standby and the primary may race to it). */
async function ensureSlot(c: import('pg').Client, slot: string): Promise<void> {
  try {
    await c.query('SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)', [slot]);
  } catch (e) {
    if ((e as { code?: string }).code !== '42710') throw e; // duplicate_object: the other side made it
  }
}

/**
 * What a unit records the moment it promotes itself. Its synchronous_standby_names is empty
 * until its next reconcile (it was a standby's config), so it acknowledges commits alone: no
 * other unit may count as a failover candidate for those, not even one named by a set this
 * unit recorded in an earlier term as primary.
 */
const PROMOTED = { role: 'primary', 'synchronous-standbys': null } as const;

/**
 * Right after a promotion, before the standbys hear of it: a standby that follows the new
 * primary before its first reconcile would otherwise fail on a missing slot and retry.
 */
async function slotsForPeers(me: Target, pw: Passwords, units: string[]): Promise<void> {
  await withConnection(me, pw.operator, async (c) => {
    await c.query('SET synchronous_commit = local');
    for (const u of units) await ensureSlot(c, slotName(u));
  });
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
  await w.clearFence();
  await w.pushPassfile(pw);
  const clone = async () => {
    await ctx.setUnitStatus({ name: 'maintenance', message: `cloning ${primary} with pg_basebackup` });
    await withConnection(target, pw.operator, async (c) => {
      await c.query('SET synchronous_commit = local');
      await ensureSlot(c, slot);
    });
    await w.basebackup(target, slot, false);
  };
  if (!(await w.hasCluster())) {
    await clone();
  } else if (ctx.peers.local.get('role') === 'primary' || ctx.peers.local.get('role') === 'fenced') {
    // A former primary: its timeline may have diverged from the new primary's. Rewind (a
    // no-op when nothing diverged); when that cannot work, re-clone with the old data kept aside.
    await ctx.setUnitStatus({ name: 'maintenance', message: `rejoining ${primary} with pg_rewind` });
    await w.stop();
    await withConnection(target, pw.operator, async (c) => {
      await c.query('SET synchronous_commit = local');
      await ensureSlot(c, slot);
    });
    if (!(await w.rewind(target, pw.operator))) {
      await w.setAside();
      await clone();
    }
    ctx.log.info({ decision: 'rejoin', primary, why: 'this unit was primary before; another unit holds the primary lease' }, 'reconcile');
  }
  const conninfo = `host=${target.host} port=${target.port} user=replication passfile=${l.pgpass} application_name=${ctx.unit} sslmode=prefer`;
  await w.writeConfig(pgParams(ctx.config, { host: me.host, port: me.port, l, standby: { primaryConninfo: conninfo, slot } }), String(ctx.config['password-encryption']));
  await w.setStandbySignal(true);
  await w.addLayer(me.port);
  if (await w.running()) await w.reload();
  else await w.start(() => waitAccepting(me, pw.operator));
  await waitAccepting(me, pw.operator);
  if (await diverged(me, target, pw)) {
    // This standby holds WAL the new primary never had (it was ahead of the promoted standby,
    // or a primary that crashed): it cannot follow the new timeline until rewound.
    ctx.log.warn({ decision: 'rewind', primary, why: 'not streaming, and behind the primary\'s timeline' }, 'reconcile');
    await ctx.setUnitStatus({ name: 'maintenance', message: `rewinding to follow ${primary}` });
    await w.stop();
    if (!(await w.rewind(target, pw.operator))) {
      await w.setAside();
      await clone();
      await w.writeConfig(pgParams(ctx.config, { host: me.host, port: me.port, l, standby: { primaryConninfo: conninfo, slot } }), String(ctx.config['password-encryption']));
      await w.setStandbySignal(true);
    }
    await w.start(() => waitAccepting(me, pw.operator));
    await waitAccepting(me, pw.operator);
  }
  await applyRestartClass(ctx, w, me, pw, 'replica', primary);
  ctx.peers.local.set('role', 'replica');
  await labelPod(ctx, 'replica');
  ctx.peers.local.set('synchronous-standbys', null); // a set from a past term as primary names no candidates now
  ctx.log.info({ decision: 'replica', primary, why: 'the application bag names another unit primary' }, 'reconcile');
  const later = ctx.peers.local.get('restart-pending');
  await ctx.setUnitStatus({ name: 'active', message: later ? `replica of ${primary}; restart for ${later} waits for the primary` : `replica of ${primary}` });
}

/**
 * A standby that cannot follow its primary: its WAL receiver is not streaming (given 3 s to
 * start) and its timeline is behind the primary's. A standby merely waiting for a primary
 * that is down is not diverged: the primary has to answer as writable.
 */
async function diverged(me: Target, primary: Target, pw: Passwords): Promise<boolean> {
  for (const deadline = Date.now() + 3000; ; ) {
    const [mine, theirs] = await Promise.all([readPosition(me, pw.operator).catch(() => undefined), readPosition(primary, pw.operator).catch(() => undefined)]);
    if (!mine || !theirs?.writable || mine.streaming || mine.timeline >= theirs.timeline) return false;
    if (Date.now() > deadline) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Parameters in the config file that the running server could not take on a reload: their
 * pg_settings.context is postmaster. Read from pg_file_settings, which parses the file at query
 * time, so the answer does not depend on when the reload signal was handled.
 */
async function restartPending(me: Target, pw: Passwords): Promise<string[]> {
  return withConnection(me, pw.operator, async (c) =>
    (
      await c.query<{ name: string }>(
        "SELECT DISTINCT f.name FROM pg_file_settings f JOIN pg_settings s USING (name) WHERE NOT f.applied AND f.error IS NOT NULL AND s.context = 'postmaster' ORDER BY 1",
      )
    ).rows.map((r) => r.name),
  );
}

/**
 * Settings a hot standby needs at least as high as its primary's: lowering one must restart the
 * primary first (a standby with less refuses to replay), raising one the standbys first.
 */
const STANDBY_MINIMUMS = ['max_connections', 'max_prepared_transactions', 'max_locks_per_transaction', 'max_wal_senders', 'max_worker_processes'];

/** Which of STANDBY_MINIMUMS the config file lowers below what the server runs with. */
async function loweredMinimums(me: Target, pw: Passwords): Promise<string[]> {
  return withConnection(me, pw.operator, async (c) =>
    (
      await c.query<{ name: string }>(
        `SELECT f.name FROM (SELECT DISTINCT ON (name) name, setting FROM pg_file_settings WHERE name = ANY($1) ORDER BY name, seqno DESC) f
           JOIN pg_settings s USING (name) WHERE f.setting ~ '^[0-9]+$' AND f.setting::bigint < s.setting::bigint ORDER BY 1`,
        [STANDBY_MINIMUMS],
      )
    ).rows.map((r) => r.name),
  );
}

/**
 * Restart-class changes, rolling: a replica restarts Postgres at once; the primary waits until
 * every replica runs this config (their bags say so) and then restarts last. When the change
 * lowers a setting standbys need at least as high as the primary's, the order flips: the
 * primary first, the replicas once its bag says it runs the new config. Only the postgres
 * service restarts: the sidecar, the agent and the unit stay (invariant 3).
 */
async function applyRestartClass(ctx: EventContext, w: PostgresWorkload, me: Target, pw: Passwords, role: 'primary' | 'replica', primary: string): Promise<void> {
  const hash = configHash(ctx.config as Record<string, ConfigValue>);
  const pending = await restartPending(me, pw);
  const lowered = pending.length ? (await loweredMinimums(me, pw)).filter((n) => pending.includes(n)) : [];
  if (pending.length && role === 'primary' && !lowered.length) {
    const behind = ctx.peers.units.filter((u) => ctx.peers.unit(u).get('role') === 'replica' && (ctx.peers.unit(u).get('config-hash') !== hash || ctx.peers.unit(u).get('restart-pending')));
    if (behind.length) {
      ctx.peers.local.set('restart-pending', pending.join(','));
      ctx.log.info({ decision: 'restart later', parameters: pending, waitingFor: behind, why: 'replicas restart first' }, 'reconcile');
      return;
    }
  }
  if (pending.length && role === 'replica' && lowered.length) {
    const p = ctx.peers.units.includes(primary) ? ctx.peers.unit(primary) : undefined;
    if (!p || p.get('config-hash') !== hash || p.get('restart-pending')) {
      ctx.peers.local.set('restart-pending', pending.join(','));
      ctx.log.info({ decision: 'restart later', parameters: pending, lowered, waitingFor: [primary], why: 'lowered settings a standby needs at least as high as its primary: the primary restarts first' }, 'reconcile');
      return;
    }
  }
  if (pending.length) {
    await ctx.setUnitStatus({ name: 'maintenance', message: `restarting PostgreSQL for ${pending.join(', ')}` });
    ctx.log.info({ decision: 'restart', parameters: pending, ...(lowered.length ? { lowered } : {}), why: 'pg_settings.context is postmaster for these' }, 'reconcile');
    await w.stop();
    await w.start(() => waitAccepting(me, pw.operator));
    await waitAccepting(me, pw.operator);
  }
  ctx.peers.local.set('restart-pending', null);
  ctx.peers.local.set('config-hash', hash);
}

/**
 * The timeline in the unit bag, at the end of every reconcile that set the role: it changes
 * only with a promotion, so other units see no churn. LSNs and lag are read live where shown
 * (status, list-members).
 */
async function recordTimeline(ctx: EventContext, me: Target, pw: Passwords): Promise<void> {
  try {
    ctx.peers.local.set('timeline', String((await readPosition(me, pw.operator)).timeline));
  } catch (e) {
    ctx.log.warn({ err: (e as Error).message }, 'could not read the timeline from postgres');
  }
}

/** pg_last_wal_receive_lsn() of a standby: how far it has WAL (null before it received any). */
async function receivedLsn(target: Target, pw: Passwords, timeoutMs?: number): Promise<string | null> {
  return withConnection(target, pw.operator, async (c) => (await c.query<{ l: string | null }>('SELECT pg_last_wal_receive_lsn()::text AS l')).rows[0]!.l, timeoutMs);
}

/**
 * The HA loop, beside the event queue (a long hook must not delay it), every fifth of the
 * lease TTL: the primary renews its Lease and moves the fence deadline; a standby that sees
 * the Lease expired on its own clock promotes itself if it is the best candidate; the leader
 * records the current primary in the application bag.
 */
const haLoop: CharmLoop & { tick(ctx: LoopContext, storeUntil?: number): Promise<void> } = {
  name: 'ha',
  // failsafe: twice the pace while writes go on by failsafe extensions (each lasts TTL/2).
  everyMs: (config) => Math.max(100, ttlMs(config) / (failsafe.engaged() ? 10 : 5)),
  async run(ctx: LoopContext): Promise<void> {
    // failsafe: a store that does not answer is not a loop failure: the primary asks its peers to
    // confirm instead, and moves its fence deadline when every one of them does.
    for (let until: number | undefined; ; ) {
      try {
        return await haLoop.tick(ctx, until);
      } catch (e) {
        if (!isUnreachable(e)) throw e;
        ({ retryUntil: until } = await failsafe.onStoreUnreachable(failsafeRound(ctx), e));
        if (until === undefined) return;
      }
    }
  },
  async tick(ctx: LoopContext, storeUntil?: number): Promise<void> {
    const config = ctx.config();
    const me = ctx.workload.address();
    if (!me || !config['primary-lease-ttl']) return;
    // failsafe: observe and renew get an answer or a timeout well inside the fence margin (a
    // retry after a refused failsafe round waits for the store until just before the deadline).
    const timeout = () => (storeUntil === undefined ? storeTimeoutMs(ttlMs(config)) : Math.max(20, storeUntil - Date.now()));
    const bounded = <T>(fn: () => Promise<T>): Promise<T> => failsafe.track(() => withStoreTimeout(timeout(), fn));
    failsafe.configure({ unit: ctx.unit, app: ctx.app, kube: ctx.kube, config, log: ctx.log });
    const pw = await bounded(() => readPasswords(ctx.kube, ctx.app));
    if (!pw) return;
    const ttl = ttlMs(config);
    const lease = state.lease(ctx);
    const current = await bounded(() => lease.read());
    const holder = current?.spec?.holderIdentity || undefined;
    failsafe.observe(holder);
    const { local, app, peers } = ctx.bags();
    const role = local['role'];
    const l = layout(ctx.workload.storage('pgdata'), Number(config['postgresql-major']));
    const w = new PostgresWorkload(ctx.pebble, l, ctx.log);

    if (ctx.isLeader() && holder && app['primary'] !== holder) await ctx.setApp({ primary: holder });

    if (role === 'primary' && holder !== ctx.unit) {
      // Someone else serves writes now: demote (the fence already stopped us if we were late).
      // Said once per new holder: the reconcile that demotes may take a while (pg_rewind).
      if (state.steppingDownFor !== holder) {
        state.steppingDownFor = holder;
        ctx.log.warn({ decision: 'step down', holder: holder ?? null, why: 'another unit holds the primary lease' }, 'ha');
        await labelPod(ctx, 'replica');
        ctx.emit('pgcharm-reconcile');
      }
      return;
    }
    state.steppingDownFor = undefined;
    if (holder === ctx.unit) {
      const ann = current?.metadata?.annotations ?? {};
      const handTo = ann[HANDOVER_TO];
      if (role === 'primary' && handTo && handTo !== ctx.unit) {
        // Planned switchover: stop (a fast shutdown sends every WAL record to the connected
        // standbys), note the final LSN, give the lease to the target with it.
        await state.exclusive(async () => {
          await w.stop();
          const lsn = await w.finalLsn();
          const ok = await lease.handTo(ctx.unit, handTo, lsn);
          if (ok) await labelPod(ctx, 'replica');
          ctx.log.warn({ decision: ok ? 'handed over' : 'handover failed', to: handTo, lsn, why: 'switchover requested' }, 'ha');
          ctx.emit('pgcharm-reconcile');
        });
        return;
      }
      // Renewed from the moment a reconcile took it, before the bag says primary.
      if (await bounded(() => lease.acquire(ctx.unit, ttl, () => false))) {
        await w.setFenceDeadline(lease.lastRenewSentAt + ttl / 2);
        failsafe.watch(lease.lastRenewSentAt + ttl / 2, failsafeRound(ctx)); // failsafe: a round before this deadline if the store goes silent
      }
      const handLsn = ann[HANDOVER_LSN];
      if (role === 'replica' && handLsn) {
        // Switchover target: promote once everything the old primary wrote has arrived.
        const received = await receivedLsn(me, pw);
        if (!received || lsnValue(received) < lsnValue(handLsn)) {
          ctx.log.info({ decision: 'wait', received, need: handLsn, why: 'switchover target catching up' }, 'ha');
          return;
        }
        await state.exclusive(async () => {
          await w.setFenceDeadline(lease.lastRenewSentAt + ttl / 2);
          await w.promote(me, pw.operator);
          await slotsForPeers(me, pw, [...peers.keys()]);
          await ctx.setLocal(PROMOTED);
      await labelPod(ctx, 'primary');
          await labelPod(ctx, 'primary');
          ctx.log.warn({ decision: 'promoted', why: `switchover: received ${received} >= ${handLsn}` }, 'ha');
          ctx.emit('pgcharm-reconcile');
        });
        return;
      }
      if (role !== 'primary') return;
      // Keep the synchronous set current: a standby that starts streaming joins it at once.
      const streaming = (await streamingStandbys(me, pw)).filter((u) => peers.has(u)).join(',');
      if (streaming !== (local['synchronous-standbys'] ?? '')) ctx.emit('pgcharm-reconcile');
      return;
    }

    if (role !== 'replica' || !lease.expired(current, ttl)) return;
    // failsafe: a unit that promised a primary not to take the lease keeps its word.
    if (failsafe.blocksTakeover(ctx.log)) return;
    const syncSet = (holder ? (peers.get(holder)?.['synchronous-standbys'] ?? '') : '').split(',').filter(Boolean);
    const units = [ctx.unit, ...[...peers.entries()].filter(([, b]) => b['role'] === 'replica').map(([u]) => u)];
    const candidates = await Promise.all(
      units.map(async (unit) => {
        const addr = parseAddress(unit === ctx.unit ? `${me.host}:${me.port}` : peers.get(unit)?.['address']);
        if (!addr) return { unit };
        try {
          const lsn = await receivedLsn(addr, pw, 500);
          return lsn ? { unit, lsn } : { unit };
        } catch {
          return { unit };
        }
      }),
    );
    const choice = chooseFailoverCandidate(String(config['synchronous-mode']), syncSet, candidates);
    if (choice.unit !== ctx.unit) {
      ctx.log.info({ decision: 'no action', expiredHolder: holder ?? null, candidate: choice.unit ?? null, why: choice.why }, 'ha');
      return;
    }
    await state.exclusive(async () => {
      // failsafe: checked again at the compare-and-swap; no promise is given while it is under way.
      if (!(await failsafe.takeover(() => lease.acquire(ctx.unit, ttl, (cur) => lease.expired(cur, ttl))))) return;
      await w.setFenceDeadline(lease.lastRenewSentAt + ttl / 2);
      await w.promote(me, pw.operator);
      await slotsForPeers(me, pw, [...peers.keys()]);
      await ctx.setLocal(PROMOTED);
      await labelPod(ctx, 'primary');
      ctx.log.warn({ decision: 'promoted', previous: holder ?? null, why: `the primary lease expired; ${choice.why}` }, 'ha');
      await ctx.setUnitStatus({ name: 'active', message: 'primary (promoted)' });
      ctx.emit('pgcharm-reconcile');
    });
  },
};

/** failsafe: what a round needs, read when it starts: role and peers from the bags, the fence through the sidecar. */
function failsafeRound(ctx: LoopContext): () => RoundContext {
  return () => {
    const { local, peers } = ctx.bags();
    const w = new PostgresWorkload(ctx.pebble, layout(ctx.workload.storage('pgdata'), Number(ctx.config()['postgresql-major'])), ctx.log);
    return { unit: ctx.unit, role: local['role'], config: ctx.config(), peers, fence: { read: () => w.fenceDeadline(), set: (t) => w.setFenceDeadline(t) }, log: ctx.log };
  };
}

/**
 * Planned switchover from the current primary to `to` (default: the best candidate), used by
 * the switchover action and by a primary being removed: mark the Lease for hand-over and wait
 * until the target serves as primary.
 */
async function switchOver(ctx: EventContext, wanted: string | undefined, say: (m: string) => void): Promise<{ from: string; to: string; 'took-ms': number } | { error: string }> {
  const pw = await readPasswords(ctx.kube, ctx.app);
  const lease = state.lease(ctx);
  const old = await lease.holder();
  if (!pw || !old) return { error: 'no primary is serving; nothing to switch over' };
  const bag = (u: string) => (u === ctx.unit ? ctx.peers.local : ctx.peers.unit(u));
  const replicas = [ctx.unit, ...ctx.peers.units].filter((u) => u !== old && bag(u).get('role') === 'replica');
  const syncSet = (bag(old).get('synchronous-standbys') ?? '').split(',').filter(Boolean);
  let to = wanted;
  if (to) {
    if (to === old) return { error: `${to} is already the primary` };
    if (!replicas.includes(to)) return { error: `${to} is not a replica (replicas: ${replicas.join(', ') || 'none'})` };
    if (String(ctx.config['synchronous-mode']) === 'quorum' && !syncSet.includes(to)) return { error: `${to} is not in the synchronous set [${syncSet.join(', ')}]; it may miss acknowledged writes` };
  } else {
    const cands = await Promise.all(
      replicas.map(async (unit) => {
        const addr = parseAddress(bag(unit).get('address'));
        const lsn = addr ? await receivedLsn(addr, pw).catch(() => null) : null;
        return lsn ? { unit, lsn } : { unit };
      }),
    );
    const choice = chooseFailoverCandidate(String(ctx.config['synchronous-mode']), syncSet, cands);
    if (!choice.unit) return { error: `no switchover target: ${choice.why}` };
    to = choice.unit;
  }
  say(`asking ${old} to hand over to ${to}`);
  const t0 = Date.now();
  await lease.requestHandover(to);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const h = await lease.holder();
    const toBag = await ctx.kube.core.readNamespacedConfigMap({ name: `${ctx.app}-unit-${to.split('/')[1]}`, namespace: ctx.kube.namespace }).catch(() => undefined);
    if (h === to && toBag?.data?.['role'] === 'primary') break;
    if (Date.now() > deadline) return { error: `${to} did not become primary within 60 s (lease holder ${h ?? 'none'}); see pgcharm debug-log` };
    await new Promise((r) => setTimeout(r, 50));
  }
  say(`${to} is primary; ${old} rejoins as a standby`);
  return { from: old, to, 'took-ms': Date.now() - t0 };
}

export default function postgresqlCharm(): Charm {
  const onEvent: Handler = async (ctx) => {
    await reconcile(ctx);
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
    'pgcharm-reconcile',
  ];
  return {
    loops: [haLoop],
    api: { routes: failsafe.routes(), token: () => failsafe.token },
    shutdown: async () => failsafe.stop(),
    handlers: {
      ...Object.fromEntries(events.map((e) => [e, onEvent])),
      'get-primary-action': (ctx) => {
        ctx.action!.setResults({ primary: ctx.peers.app.get('primary') ?? '' });
      },
      'list-members-action': async (ctx) => {
        // Roles as the agents recorded them, positions as each Postgres reports them now.
        const units = [ctx.unit, ...ctx.peers.units].sort();
        const pw = await readPasswords(ctx.kube, ctx.app);
        const targets: Record<string, Target> = {};
        for (const u of units) {
          const t = parseAddress(ctx.peers.unit(u).get('address'));
          if (t) targets[u] = t;
        }
        const live = pw ? await memberPositions(targets, pw.operator) : {};
        const members: Record<string, unknown> = {};
        for (const u of units) {
          const b = ctx.peers.unit(u);
          const p = live[u];
          members[u] = {
            role: b.get('role') ?? 'starting',
            address: b.get('address') ?? '',
            state: p ? (p.state === 'replica' ? (p.streaming ? 'streaming' : 'not streaming') : p.state === 'primary' ? 'running' : 'unreachable') : 'no address',
            timeline: p?.timeline ?? (b.get('timeline') ? Number(b.get('timeline')) : null),
            lsn: p?.lsn ?? null,
            'lag-bytes': p?.lagBytes ?? null,
            lag: formatBytes(p?.lagBytes ?? null),
          };
        }
        ctx.action!.setResults({ members });
      },
      'get-password-action': async (ctx) => {
        const pw = await readPasswords(ctx.kube, ctx.app);
        if (!pw) return ctx.action!.fail('no passwords yet: the leader creates them at deploy');
        const user = String(ctx.action!.params['username'] ?? 'operator') as keyof Passwords;
        ctx.action!.setResults({ username: user, password: pw[user] });
      },
      'switchover-action': async (ctx) => {
        const a = ctx.action!;
        if (!ctx.isLeader()) return a.fail('switchover runs on the leader: pgcharm run leader switchover [to=UNIT]');
        const r = await switchOver(ctx, typeof a.params['to'] === 'string' ? a.params['to'] : undefined, (m) => a.log(m));
        if ('error' in r) return a.fail(r.error);
        a.setResults(r);
      },
      remove: async (ctx) => {
        // A primary being removed hands over first, so its writes go on elsewhere.
        if ((await state.lease(ctx).holder()) !== ctx.unit) return;
        const r = await switchOver(ctx, undefined, (m) => ctx.log.info({ decision: 'switchover before removal' }, m));
        if ('error' in r) ctx.log.error({ decision: 'remove without switchover', why: r.error }, 'reconcile');
      },
      'restart-action': async (ctx) => {
        // This unit's postgres service only (the sidecar and agent stay); a primary's clients reconnect, no failover.
        const me = ctx.workload.address();
        const pw = await readPasswords(ctx.kube, ctx.app);
        if (!me || !pw) return ctx.action!.fail('this unit has no running PostgreSQL yet');
        const { w } = workload(ctx);
        const t0 = Date.now();
        await state.exclusive(async () => {
          await w.stop();
          await w.start(() => waitAccepting(me, pw.operator));
          await waitAccepting(me, pw.operator);
        });
        ctx.action!.setResults({ restarted: true, 'took-ms': Date.now() - t0 });
      },
      'set-password-action': async (ctx) => {
        const a = ctx.action!;
        if (!ctx.isLeader()) return a.fail('set-password runs on the leader: pgcharm run leader set-password ...');
        const user = String(a.params['username'] ?? 'operator');
        if (user !== 'operator' && user !== 'replication') return a.fail(`user ${user} has no role in this charm yet; only operator and replication passwords can be set`);
        const pw = await readPasswords(ctx.kube, ctx.app);
        const holder = await state.lease(ctx).holder();
        const target = holder ? parseAddress(ctx.peers.unit(holder).get('address')) : undefined;
        if (!pw || !holder || !target) return a.fail('no primary is serving; try again once `pgcharm status` shows one');
        const password = typeof a.params['password'] === 'string' ? a.params['password'] : generatePassword();
        // The role first (old connections stay up), then the Secret; every unit then re-reads it
        // (passfiles for streaming and rewind) on the leader-settings-changed this bag write causes.
        await withConnection(target, pw.operator, async (c) => {
          await c.query('SET synchronous_commit = local');
          await c.query(`ALTER ROLE ${user} WITH PASSWORD '${scramVerifier(password)}'`);
        });
        await setPassword(ctx.kube, ctx.app, user, password);
        ctx.peers.app.set('passwords-rotated', new Date().toISOString());
        a.log(`password of ${user} changed on ${holder} and stored in the ${ctx.app}-passwords Secret`);
        a.setResults({ username: user, generated: typeof a.params['password'] !== 'string' });
      },
    },
  };
}
