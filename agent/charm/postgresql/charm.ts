import { leaderPlacementLoop } from './leader-placement.js';
import { databaseEndpointsLoop, ENDPOINT as DB_ENDPOINT, onDatabaseBroken, onDatabaseRefresh, onDatabaseRelation, relationProblem, rotateClientPassword } from './database-provider.js';
import type pg from '#pg';
import type { Charm, EventContext, Handler } from '../../runtime/charm.js';
import { chooseBootstrapPrimary, chooseFailoverCandidate, decideManualPromote, followStep, isDiverged, NO_SYNC, parseSyncSet, restartDecision, syncSetBag, syncSetNames } from './decide.js';
import { ensureSlot, failsafe, fromEvent, haLoop, observe, promoteSelf } from './ha.js';
import { health } from './health.js';
import { metricState } from './metrics.js';
import { recordEvent } from '../../runtime/cluster-events.js';
import { setUpExporter, wantExporter } from './exporter.js';
import { pgParams, slotName, type Layout } from './render.js';
import { labelPod, local, state, ttlMs } from './state.js';
import { generatePassword } from './scram.js';
import { ensureApiToken, ensurePasswords, isSystemUser, readApiToken, readPasswords, readPending, SYSTEM_USERS, type Passwords } from './secrets.js';
import { hbaFor } from './access.js';
import { changePassword, primaryTarget, settlePasswordChanges } from './password-change.js';
import { ensureSystemRoles } from './system-roles.js';
import { formatBytes, memberPositions, memberTargets, parseAddress, readPosition } from './positions.js';
import { checkLostWal, dropSlot } from './slots.js';
import type { UnitResources } from './profile.js';
import { unitWorkload, waitAccepting, withConnection, type PostgresWorkload } from './workload.js';
import { archiveWarning, backupHandlers, backupProblem, backupScheduleLoop, checkArchiving, dumpScheduleLoop, configureBackrest, wantArchiveGapCheck, wantScheduledBackup, wantStanzaCheck } from './backup-actions.js';
import { parseRestoreRequest, RECOVERY_SETTINGS, type RestoreRequest } from './backup.js';
import { Backrest } from './backup-run.js';
import { closeFences } from './fence.js';
import { objects } from '../../runtime/names.js';
import { Blocked, Waiting } from './outcome.js';
import { bootstrapTarget, finishBootstrapRestore, restoreForBootstrap, restoringBootstrap } from './bootstrap-restore.js';

/**
 * The PostgreSQL charm. Every event ends in one reconcile (Patroni's HA loop, event-driven):
 * read the model, decide this unit's role, make Postgres match, and log the decision and why.
 */

interface Target {
  host: string;
  port: number;
}


/**
 * A reconcile's outcome, logged at info only when it differs from the last one (every event
 * ends in a reconcile, update-status every 10 s: the same "replica of X" each time is debug).
 */
function said(ctx: EventContext, fields: Record<string, unknown>): void {
  if (state.changed('reconcile', JSON.stringify(fields))) ctx.log.info(fields, 'reconcile');
  else ctx.log.debug(fields, 'reconcile');
}

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
  const w = unitWorkload(ctx);
  return { w, l: w.l };
}

async function reconcile(ctx: EventContext): Promise<void> {
  metricState.desiredConfigHash = ctx.configHash;
  state.settledOn = undefined;
  try {
    await state.exclusive(() => reconcileOrWait(ctx));
    // Settled: nothing waits, no restart is pending. Until its inputs change, a reconcile would do nothing.
    if (!ctx.peers.local.get('restart-pending') && !state.failoverWait) state.settledOn = reconcileInputs(ctx);
  } catch (e) {
    if (!(e instanceof Waiting) && !(e instanceof Blocked)) throw e;
    const status = { name: e instanceof Blocked ? 'blocked' : 'waiting', message: e.message } as const;
    said(ctx, { decision: status.name === 'blocked' ? 'blocked' : 'wait', why: e.message });
    await Promise.all([ctx.setUnitStatus(status), e instanceof Blocked && ctx.isLeader() ? ctx.setAppStatus(status) : undefined]);
  }
}

/** How often an idle leader looks for a password change left pending in the Secret. */
const PENDING_CHECK_MS = 30_000;

/**
 * What a reconcile decides on: the config, leadership, the bags and the primary lease's holder.
 * Postgres's own state is checked apart (postgresAsLeft).
 */
function reconcileInputs(ctx: EventContext): string {
  const sorted = (o: Record<string, string>) => Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const peers = ctx.peers.units.map((u) => [u, sorted(ctx.peers.unit(u).entries())]);
  const holder = ctx.leases.get(objects.primaryLease(ctx.app))?.lease.spec?.holderIdentity ?? '';
  return JSON.stringify([ctx.configHash, ctx.isLeader(), sorted(ctx.peers.local.entries()), sorted(ctx.peers.app.entries()), peers, holder]);
}

/**
 * Postgres as the last reconcile left it, asked over the kept-open connection (no new login):
 * a primary accepts writes, a replica streams. Anything else, or no answer, and update-status
 * reconciles in full.
 */
async function postgresAsLeft(ctx: EventContext): Promise<boolean> {
  const me = ctx.workload.address();
  const role = ctx.peers.local.get('role');
  if (!me || (role !== 'primary' && role !== 'replica')) return false;
  try {
    const pw = await state.passwords(ctx.kube, ctx.app, ctx.peers.app.get('passwords-rotated'));
    if (!pw) return false;
    const [r] = await local.query<{ recovery: boolean; receiver: string | null }>(me, pw.operator, 'SELECT pg_is_in_recovery() AS recovery, (SELECT status FROM pg_stat_wal_receiver) AS receiver');
    return role === 'primary' ? r?.recovery === false : r?.recovery === true && r.receiver === 'streaming';
  } catch (e) {
    state.forgetPasswords(e);
    return false;
  }
}

/**
 * update-status does only what it must: when nothing a reconcile decides on changed since one
 * settled, and Postgres is as it left it, it asks Postgres one question and writes nothing.
 */
async function updateStatus(ctx: EventContext): Promise<void> {
  metricState.desiredConfigHash = ctx.configHash;
  // A password change a leader left half done (it died between ALTER ROLE and the commit) is in
  // the Secret only: the leader looks for one every half minute (a read, no write).
  if (ctx.isLeader() && Date.now() - state.pendingCheckedAt >= PENDING_CHECK_MS) {
    state.pendingCheckedAt = Date.now();
    if (Object.keys(await readPending(ctx.kube, ctx.app).catch(() => ({}))).length) state.settledOn = undefined;
  }
  if (ctx.peers.local.get('role') === 'primary') {
    // A foreign or unreadable backup repository is looked at again (once a minute); a failing
    // archive changes the statuses (a reconcile writes them).
    if (backupProblem(ctx.peers.local)) wantStanzaCheck(ctx);
    // A gap check that failed (the repository briefly unreadable) is tried again.
    wantArchiveGapCheck(ctx);
    const me = ctx.workload.address();
    const pw = me ? await state.passwords(ctx.kube, ctx.app, ctx.peers.app.get('passwords-rotated')).catch(() => undefined) : undefined;
    if (me && pw && (await checkArchiving(ctx, me, pw).catch((e: unknown) => void ctx.log.debug({ err: String(e) }, 'archiving check failed')))) state.settledOn = undefined;
  }
  if (state.settledOn !== undefined && state.settledOn === reconcileInputs(ctx) && (await postgresAsLeft(ctx))) {
    // An exporter set-up that failed is tried again (a look at this unit's state, no request).
    wantExporter(ctx);
    ctx.log.debug({ decision: 'nothing', why: 'nothing changed since the last reconcile settled' }, 'update-status');
    return;
  }
  await reconcile(ctx);
}

async function reconcileOrWait(ctx: EventContext): Promise<void> {
  const me = ctx.workload.address();
  if (!me) throw new Waiting('waiting for the unit address');
  // Three independent reads at once (every event runs this). The primary Lease is the truth
  // about who serves writes; the app bag records the leader's view.
  const [sidecar, secret, lease] = await Promise.allSettled([ctx.pebble.getSystemInfo(), passwords(ctx), state.lease(ctx).holder()]);
  if (sidecar.status === 'rejected') throw new Waiting('waiting for the workload container');
  // A restarted sidecar has only what it started with: the helper services are set up again.
  if (state.sidecarBoot !== sidecar.value['boot-id']) {
    state.sidecarBoot = sidecar.value['boot-id'];
    state.backupServerReady = undefined;
    state.exporterReady = undefined;
  }
  if (secret.status === 'rejected') throw secret.reason;
  if (lease.status === 'rejected') throw lease.reason;
  let pw = secret.value;
  const holder = lease.value;
  ctx.peers.local.set('address', `${me.host}:${me.port}`);
  // failsafe: the unit API's token (the leader adds one to an older Secret) and where peers call this unit.
  failsafe.token ??= ctx.isLeader() ? await ensureApiToken(ctx.kube, ctx.app) : await readApiToken(ctx.kube, ctx.app);
  const api = ctx.workload.api();
  ctx.peers.local.set('api', api ? `${api.host}:${api.port}` : null);

  // A set-password the leader did not finish (it stopped halfway) is finished or rolled back first.
  if (ctx.isLeader()) {
    const before = pw;
    pw = await settlePasswordChanges(ctx.kube, ctx.app, primaryTarget(ctx, holder), pw, ctx.log);
    // Every unit re-reads the Secret on this (the HA cycle keeps a copy).
    if (SYSTEM_USERS.some((u) => pw[u] !== before[u])) ctx.peers.app.set('passwords-rotated', new Date().toISOString());
  }
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
  // A restore the leader asked for (backup-actions.ts restore) comes before anything else.
  const restore = parseRestoreRequest(ctx.peers.app.get('restore'));
  const bag = restore && (restore.primary === ctx.unit ? ctx.peers.local : ctx.peers.units.includes(restore.primary) ? ctx.peers.unit(restore.primary) : undefined);
  const restored = restore && bag?.get('restore-done') === restore.token;
  const failed = restore && bag ? parseFailure(bag.get('restore-failed'), restore.token) : undefined;
  if (restore && (restored || failed !== undefined) && ctx.isLeader()) {
    // Done (or refused by pgBackRest, nothing changed): the others rejoin the primary.
    ctx.peers.app.set('restore', null);
    ctx.peers.app.set('restored', JSON.stringify({ token: restore.token, target: restore.what, primary: restore.primary, at: new Date().toISOString(), ...(failed !== undefined ? { failed } : {}) }));
    if (failed === undefined) recordEvent(ctx.kube, ctx.app, { unit: restore.primary, reason: 'Restored', type: 'Warning', message: `cluster restored to ${restore.what}; ${restore.primary} is the primary` }, ctx.log);
    ctx.log[failed !== undefined ? 'error' : 'warn']({ decision: failed !== undefined ? 'restore failed' : 'restored', primary: restore.primary, target: restore.what, ...(failed !== undefined ? { why: failed } : {}) }, 'backup');
  } else if (restore && failed !== undefined && restore.primary === ctx.unit) {
    // Refused on this unit: serve again while the leader closes the request.
    await asPrimary(ctx, w, l, me, pw);
    return;
  } else if (restore) {
    await followRestore(ctx, w, l, me, pw, restore);
    if (ctx.isLeader()) await appStatus(ctx, restore.primary, `restoring ${restore.primary} to ${restore.what}`);
    return;
  }
  if (primary === ctx.unit) await asPrimary(ctx, w, l, me, pw);
  else await asReplica(ctx, w, l, me, pw, primary);
  // Rejoined after a restore (asReplica rewinds while this is set).
  if (ctx.peers.local.get('restore-ack')) ctx.peers.local.set('restore-ack', null);
  await Promise.all([recordTimeline(ctx, me, pw), ctx.isLeader() ? appStatus(ctx, primary) : undefined]);
  wantExporter(ctx);
  // After the timeline is recorded: a promotion's first reconcile sees the new one.
  if (primary === ctx.unit) wantArchiveGapCheck(ctx);
}

/** The reason a restore failed, when the bag's `restore-failed` is about this one. */
function parseFailure(s: string | undefined, token: string): string | undefined {
  try {
    const f = s ? (JSON.parse(s) as { token?: string; why?: string }) : undefined;
    return f?.token === token ? (f.why ?? 'failed') : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A restore under way on this unit: the restored unit waits for every other to stop, restores
 * its data directory with pgBackRest, starts as primary (its fence armed from a fresh lease
 * renewal) and waits while Postgres recovers to the target and promotes on a new timeline.
 * The others stop Postgres and stay stopped until the leader closes the request.
 */
async function followRestore(ctx: EventContext, w: PostgresWorkload, l: Layout, me: Target, pw: Passwords, r: RestoreRequest): Promise<void> {
  if (r.primary !== ctx.unit) {
    if (ctx.peers.local.get('restore-ack') !== r.token) {
      await w.stop();
      await w.clearFence();
      ctx.peers.local.set('restore-ack', r.token);
      said(ctx, { decision: 'stopped for a restore', why: `${r.primary} is restored to ${r.what}` });
    }
    await ctx.setUnitStatus({ name: 'maintenance', message: `stopped while ${r.primary} is restored to ${r.what}` });
    return;
  }
  if (ctx.peers.local.get('restore-done') === r.token) return;
  // A hook that failed after the data directory was restored (a slow recovery) goes on from
  // there: restoring again would stop a recovery under way and start it over.
  if (state.restoredData !== r.token) {
    const running = ctx.peers.units.filter((u) => ctx.peers.unit(u).get('restore-ack') !== r.token);
    if (running.length) throw new Waiting(`restore to ${r.what}: waiting for ${running.join(', ')} to stop`);
    await ctx.setUnitStatus({ name: 'maintenance', message: `restoring to ${r.what} with pgBackRest` });
    said(ctx, { decision: 'restoring', why: `the leader asked for a restore to ${r.what}` });
    await w.stop();
    try {
      await new Backrest(w).restore(r.target);
    } catch (e) {
      // pgBackRest refused (it chooses the backup before it writes anything): the cluster goes
      // on as it was, and the leader closes the request as failed.
      const why = e instanceof Error ? e.message : String(e);
      ctx.log.error({ decision: 'restore failed', target: r.what, why }, 'backup');
      ctx.peers.local.set('restore-failed', JSON.stringify({ token: r.token, why }));
      ctx.emit('pgcharm-reconcile');
      return;
    }
    state.restoredData = r.token;
  }
  // As a primary again: the charm's config (pgBackRest restored the backup's copy), no standby.signal.
  await prepareAsPrimary(ctx, w, l, me, pw, '', true, await w.resources());
  await w.setStandbySignal(false);
  if (!(await w.running())) await w.start(() => waitAccepting(me, pw.operator));
  await waitAccepting(me, pw.operator, 600_000);
  for (const until = Date.now() + 3_600_000; await inRecovery(me, pw); ) {
    if (Date.now() > until) throw new Error(`restore to ${r.what}: Postgres was still recovering after an hour (pgcharm debug-log)`);
    await new Promise((res) => setTimeout(res, 200));
  }
  // pgBackRest wrote the recovery target into postgresql.auto.conf: it must not apply to a
  // later recovery of this data directory (a rewind into a standby would stop at it).
  await withConnection(me, pw.operator, async (c) => {
    for (const g of RECOVERY_SETTINGS) {
      await c.query(`ALTER SYSTEM RESET ${g}`);
    }
    await c.query('SELECT pg_reload_conf()');
  });
  // Nobody streams from it yet: its synchronous set is empty until the HA cycle sets one.
  state.resetSync(NO_SYNC);
  for (const [k, v] of Object.entries({ role: 'primary', ...syncSetBag(NO_SYNC), 'restore-done': r.token })) ctx.peers.local.set(k, v);
  said(ctx, { decision: 'restored', why: `recovered to ${r.what} and promoted` });
  await ctx.setUnitStatus({ name: 'maintenance', message: `restored to ${r.what}; the other units rejoin` });
  // The leader closes the request on its next reconcile: this one, when it is the leader.
  ctx.emit('pgcharm-reconcile');
}

/**
 * What a primary needs before Postgres may take writes: its config (`names` its synchronous
 * set), the passfiles, pgBackRest, the layer, and the fence armed. With `fresh` (it is about to
 * start or be promoted) the fence comes from a renewal made now: initdb, a restore or the
 * config may have outlasted the last one's margin (TTL/2), and a deadline already passed would
 * stop Postgres as soon as it took writes. Returns whether the config changed (to reload).
 */
async function prepareAsPrimary(ctx: EventContext, w: PostgresWorkload, l: Layout, me: Target, pw: Passwords, names: string, fresh: boolean, resources: UnitResources | undefined): Promise<boolean> {
  const lease = state.lease(ctx);
  const ttl = ttlMs(ctx.config);
  const toReload = await w.writeConfig(pgParams(ctx.config, { host: me.host, port: me.port, l, synchronousStandbyNames: names, resources }), hbaFor(ctx, me));
  await Promise.all([w.pushPassfile(pw), configureBackrest(ctx, w, me.port, pw)]);
  await w.addLayer(me.port, ttl / 2);
  if (fresh && !(await lease.acquire(ctx.unit, ttl, () => false))) throw new Waiting(`the primary lease is held by ${(await lease.holder()) ?? 'another unit'}`);
  await w.setFenceDeadline(lease.lastRenewSentAt + ttl / 2);
  return toReload;
}

/** The leader's summary for `pgcharm status`: who is primary and how many standbys replicate. */
async function appStatus(ctx: EventContext, primary: string, restoring?: string): Promise<void> {
  if (restoring) return ctx.setAppStatus({ name: 'maintenance', message: restoring });
  const units = [ctx.unit, ...ctx.peers.units];
  const replicas = units.filter((u) => ctx.peers.unit(u).get('role') === 'replica').length;
  const primaryUp = (primary === ctx.unit || ctx.peers.units.includes(primary)) && ctx.peers.unit(primary).get('role') === 'primary';
  const message = `primary ${primary}, ${replicas}/${units.length - 1} replicas`;
  const problem = [backupProblem(ctx.peers.unit(primary)), relationProblem()].filter(Boolean).join('; ');
  await ctx.setAppStatus(!primaryUp ? { name: 'waiting', message: `waiting for the primary ${primary}` } : problem ? { name: 'blocked', message: `${message}; ${problem}` } : { name: 'active', message });
}

async function asPrimary(ctx: EventContext, w: PostgresWorkload, l: Layout, me: Target, pw: Passwords): Promise<void> {
  const lease = state.lease(ctx);
  const ttl = ttlMs(ctx.config);
  // Read in the workload meanwhile (cached; initdb and the config need it).
  const resources = w.resources();
  // Writes only with the lease: taken here at bootstrap (or when it expired), renewed by the HA loop.
  if (!(await lease.acquire(ctx.unit, ttl, (cur) => lease.expired(cur, ttl)))) {
    throw new Waiting(`the primary lease is held by ${(await lease.holder()) ?? 'another unit'}`);
  }
  const fresh = !(await w.hasCluster());
  const fromBackup = fresh ? bootstrapTarget(ctx.config) : undefined;
  if (fromBackup) {
    await restoreForBootstrap(ctx, w, me.port, pw, fromBackup);
  } else if (fresh) {
    await ctx.setUnitStatus({ name: 'maintenance', message: 'initialising the database' });
    await w.initdb(pw.operator, Boolean(ctx.config['data-checksums']));
  }
  // A restored cluster has the old deployment's passwords until this sets the charm's.
  if (fromBackup || (await restoringBootstrap(w))) await finishBootstrapRestore(ctx, w, me.port, pw, async () => prepareAsPrimary(ctx, w, l, me, pw, '', true, await resources));
  const running = await w.running();
  // The set Postgres runs, else the one recorded (a superset of it): only the HA cycle changes
  // it, recording before applying, so a failover never works from a set older than the one in force.
  const names = syncSetNames(state.applied ?? state.sync ?? parseSyncSet(ctx.peers.local.entries()));
  const readOnly = running && (await inRecovery(me, pw));
  const toReload = await prepareAsPrimary(ctx, w, l, me, pw, names, !running || readOnly, await resources);
  if (readOnly) {
    // Fenced (restarted read-only) while still holding the lease, and nobody took over: serve again.
    await w.promote(me, pw.operator);
  } else if (running) {
    // Nothing changed, nothing to do: an idle unit sends no SIGHUP (update-status runs every 10 s).
    if (toReload) await w.reload();
    await waitAccepting(me, pw.operator);
  } else {
    await w.setStandbySignal(false);
    await w.start(() => waitAccepting(me, pw.operator)); // returns once it accepts connections
  }
  await applyRestartClass(ctx, w, me, pw, 'primary', ctx.unit);
  await withConnection(me, pw.operator, async (c) => {
    // Passwords go in as SCRAM verifiers: neither SQL text nor a server log line holds one.
    // The charm's own statements must not wait for a synchronous standby that may be the one being built.
    await c.query('SET synchronous_commit = local');
    await ensureSystemRoles(c, pw);
    for (const u of ctx.peers.units) await ensureSlot(c, slotName(u));
    // A removed unit's slot would keep WAL forever: drop inactive slots of units no longer peers.
    const keep = ctx.peers.units.map(slotName);
    await c.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active AND slot_type = 'physical' AND slot_name ~ $1 AND NOT (slot_name = ANY($2))", [
      `^${slotName(ctx.app)}_[0-9]+$`,
      keep,
    ]);
  });
  ctx.peers.local.set('role', 'primary');
  said(ctx, { decision: fresh ? 'bootstrapped' : 'primary', why: 'the application bag names this unit primary', synchronous: names });
  const later = ctx.peers.local.get('restart-pending');
  const backup = backupProblem(ctx.peers.local);
  // Both at once: the standbys wait for this hook's end (the bag's role) to clone.
  await Promise.all([
    labelPod(ctx, 'primary'),
    ctx.setUnitStatus(backup ? { name: 'blocked', message: backup } : { name: 'active', message: ['primary', later ? `restart for ${later} waits for the replicas` : '', archiveWarning(ctx.peers.local) ?? ''].filter(Boolean).join('; ') }),
  ]);
  wantStanzaCheck(ctx);
  wantScheduledBackup(ctx);
}

async function asReplica(ctx: EventContext, w: PostgresWorkload, l: Layout, me: Target, pw: Passwords, primary: string): Promise<void> {
  const bag = ctx.peers.units.includes(primary) ? ctx.peers.unit(primary) : undefined;
  const target = parseAddress(bag?.get('address'));
  if (!bag || !target || bag.get('role') !== 'primary') throw new Waiting(`waiting for the primary ${primary}`);
  const slot = slotName(ctx.unit);
  // Read in the workload meanwhile (cached; the clone and the config need it).
  const resources = w.resources();
  const [, , hasCluster] = await Promise.all([w.clearFence(), w.pushPassfile(pw), w.hasCluster(), configureBackrest(ctx, w, me.port, pw)]);
  const makeSlot = async (c: pg.Client) => {
    await c.query('SET synchronous_commit = local');
    await ensureSlot(c, slot);
  };
  let cloned = false;
  const clone = async (slotMade = false) => {
    await ctx.setUnitStatus({ name: 'maintenance', message: `cloning ${primary} with pg_basebackup` });
    if (!slotMade) await withConnection(target, pw.operator, makeSlot);
    await w.basebackup(target, slot, false);
    cloned = true;
  };
  // A unit stopped for a restore is on the timeline the restored primary left: rewind it, as a former primary.
  const rejoin = Boolean(ctx.peers.local.get('restore-ack'));
  const step = followStep({ hasCluster, wasPrimary: rejoin || ['primary', 'fenced'].includes(ctx.peers.local.get('role') ?? '') });
  // A clone or a rewind needs the primary up. Briefly down (restarting, fenced), that is a wait,
  // not a hook error; and a rewind that failed only because it was down would re-clone for nothing.
  // Following needs no answer: a standby starts and streams once the primary is back. For a
  // clone, making its slot is the check (one connection fewer on the way to the clone).
  if (step !== 'follow' && !(await answers(target, pw, step === 'clone' ? makeSlot : (c) => c.query('SELECT 1')))) {
    throw new Waiting(`waiting for the primary ${primary} to accept connections (to ${step === 'clone' ? 'clone' : 'rewind'} from it)`);
  }
  if (step === 'clone') {
    await clone(true);
  } else if (step === 'rewind') {
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
  // A standby's config and signal: written now, and again over a fresh clone. Not running (a
  // rejoin, a clone, a restart), it starts with STANDBY_MINIMUMS at least as high as its control
  // file says the primary ran with: a config lowered while the primary still runs the higher
  // value would make it refuse to start. It runs the lowered value once the primary does (the
  // floored names stay restart-pending, and the rolling restart takes them from there).
  // A fresh clone starts without restore_command, which it does not need: pg_wal holds the WAL up
  // to its consistent point (-X stream), and its slot keeps the rest for streaming. With it,
  // Postgres asks the archive first for each segment, and each failed pgBackRest archive-get
  // (~120 ms; nothing is archived yet in a bootstrap) delayed the clone's start by ~350 ms.
  // It gets restore_command by a reload once it accepts connections (`started`: with the floor
  // it started with, which its control file no longer tells once it runs).
  let floored: string[] = [];
  let floor: Record<string, number> = {};
  const standbyConfig = async (o: { archive: boolean; started?: boolean }) => {
    const params = pgParams(ctx.config, { host: me.host, port: me.port, l, standby: { primaryConninfo: conninfo, slot }, resources: await resources });
    if (!o.archive) delete params['restore_command'];
    if (!o.started) floor = (await w.running()) ? {} : await w.controlSettings().catch(() => ({}) as Record<string, number>);
    floored = standbyFloor(params, floor);
    const toReload = await w.writeConfig(params, hbaFor(ctx, me));
    await w.setStandbySignal(true);
    return toReload;
  };
  // start() returns once Postgres accepts connections.
  const startStandby = () => w.start(() => waitAccepting(me, pw.operator));
  const toReload = await standbyConfig({ archive: !cloned });
  await w.addLayer(me.port, ttlMs(ctx.config) / 2);
  if (!(await w.running())) await startStandby();
  else {
    if (toReload) await w.reload();
    await waitAccepting(me, pw.operator);
  }
  if (cloned && (await standbyConfig({ archive: true, started: true }))) await w.reload();
  if (await diverged(me, target, pw)) {
    // This standby holds WAL the new primary never had (it was ahead of the promoted standby,
    // or a primary that crashed): it cannot follow the new timeline until rewound.
    ctx.log.warn({ decision: 'rewind', primary, why: 'not streaming, and behind the primary\'s timeline' }, 'reconcile');
    await ctx.setUnitStatus({ name: 'maintenance', message: `rewinding to follow ${primary}` });
    await w.stop();
    if (!(await w.rewind(target, pw.operator))) {
      await w.setAside();
      await clone();
      await standbyConfig({ archive: true });
    }
    await startStandby();
  }
  const lost = await checkLostWal(me, target, pw.operator, slot);
  if (lost.reclone) {
    // The primary removed WAL this standby needs (its slot was bounded by max_slot_wal_keep_size):
    // it can never stream again from this copy. Re-clone with a new slot; the old data stays aside.
    ctx.log.warn({ decision: 're-clone', primary, why: lost.why }, 'reconcile');
    await ctx.setUnitStatus({ name: 'maintenance', message: `re-cloning ${primary}: ${lost.why}` });
    await w.stop();
    await withConnection(target, pw.operator, (c) => dropSlot(c, slot));
    await w.setAside();
    await clone();
    await standbyConfig({ archive: true });
    await startStandby();
  }
  if (floored.length) {
    ctx.peers.local.set('restart-pending', floored.join(','));
    said(ctx, { decision: 'restart later', parameters: floored, why: "started with the primary's values for these: it still runs them, higher than the config's" });
  } else await applyRestartClass(ctx, w, me, pw, 'replica', primary);
  ctx.peers.local.set('role', 'replica');
  await labelPod(ctx, 'replica');
  // A set from a past term as primary names no candidates now.
  for (const [k, v] of Object.entries(syncSetBag(NO_SYNC))) ctx.peers.local.set(k, v);
  state.resetSync(undefined);
  said(ctx, { decision: 'replica', primary, why: 'the application bag names another unit primary' });
  const later = ctx.peers.local.get('restart-pending');
  if (state.failoverWait) await ctx.setUnitStatus({ name: 'waiting', message: state.failoverWait });
  else await ctx.setUnitStatus({ name: 'active', message: later ? `replica of ${primary}; restart for ${later} waits for the primary` : `replica of ${primary}` });
}

/**
 * Runs `fn` on a connection to `target`: false when no connection could be made (the server
 * is down or not accepting yet), `fn`'s own errors thrown as they are.
 */
async function answers(target: Target, pw: Passwords, fn: (c: pg.Client) => Promise<unknown>): Promise<boolean> {
  let connected = false;
  try {
    await withConnection(
      target,
      pw.operator,
      (c) => {
        connected = true;
        return fn(c);
      },
      1000,
    );
    return true;
  } catch (e) {
    if (connected) throw e;
    return false;
  }
}

/**
 * A standby that cannot follow its primary: its WAL receiver is not streaming (given 3 s to
 * start) and its timeline is behind the primary's. A standby merely waiting for a primary
 * that is down is not diverged: the primary has to answer as writable.
 */
async function diverged(me: Target, primary: Target, pw: Passwords): Promise<boolean> {
  for (const deadline = Date.now() + 3000; ; ) {
    const [mine, theirs] = await Promise.all([readPosition(me, pw.operator).catch(() => undefined), readPosition(primary, pw.operator).catch(() => undefined)]);
    if (!isDiverged(mine, theirs)) return false;
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
        // A value changed in the file, or (pending_restart) a setting taken out of it: Postgres
        // keeps the old value of either until it restarts.
        "SELECT f.name FROM pg_file_settings f JOIN pg_settings s USING (name) WHERE NOT f.applied AND f.error IS NOT NULL AND s.context = 'postmaster' UNION SELECT name FROM pg_settings WHERE pending_restart AND context = 'postmaster' ORDER BY 1",
      )
    ).rows.map((r) => r.name),
  );
}

/**
 * Settings a hot standby needs at least as high as its primary's: lowering one must restart the
 * primary first (a standby with less refuses to replay), raising one the standbys first.
 */
const STANDBY_MINIMUMS = ['max_connections', 'max_prepared_transactions', 'max_locks_per_transaction', 'max_wal_senders', 'max_worker_processes'];

/**
 * Raises, in `params`, each of STANDBY_MINIMUMS set below what the control file says the
 * primary ran with (`floor`); returns the names raised.
 */
export function standbyFloor(params: Record<string, string>, floor: Record<string, number>): string[] {
  const raised: string[] = [];
  for (const n of STANDBY_MINIMUMS) {
    const want = floor[n];
    if (want === undefined || params[n] === undefined || !/^\d+$/.test(params[n]) || Number(params[n]) >= want) continue;
    params[n] = String(want);
    raised.push(n);
  }
  return raised;
}

/** Which of STANDBY_MINIMUMS the config file lowers below what the server runs with, and to what. */
async function loweredMinimums(me: Target, pw: Passwords): Promise<Record<string, number>> {
  return withConnection(me, pw.operator, async (c) =>
    Object.fromEntries(
      (
        await c.query<{ name: string; setting: string }>(
          `SELECT f.name, f.setting FROM (SELECT DISTINCT ON (name) name, setting FROM pg_file_settings WHERE name = ANY($1) ORDER BY name, seqno DESC) f
             JOIN pg_settings s USING (name) WHERE f.setting ~ '^[0-9]+$' AND f.setting::bigint < s.setting::bigint ORDER BY 1`,
          [STANDBY_MINIMUMS],
        )
      ).rows.map((r) => [r.name, Number(r.setting)]),
    ),
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
  const hash = ctx.configHash;
  const pending = await restartPending(me, pw);
  const to = pending.length ? await loweredMinimums(me, pw) : {};
  const lowered = Object.keys(to).filter((n) => pending.includes(n));
  const peers = ctx.peers.units.map((u) => {
    const b = ctx.peers.unit(u);
    return { unit: u, role: b.get('role'), configHash: b.get('config-hash'), restartPending: b.get('restart-pending') };
  });
  // A standby checks these against its control file at start-up, which holds the primary's
  // values as last replayed: restarted before the primary's lowered values arrived, it refuses to start.
  const control = role === 'replica' && lowered.length ? await w.controlSettings() : {};
  const notReplayed = lowered.filter((n) => (control[n] ?? 0) > to[n]!);
  const d = restartDecision({ role, pending, lowered, notReplayed, hash, peers, primary });
  if (d.kind === 'restart later') {
    ctx.peers.local.set('restart-pending', pending.join(','));
    said(ctx, { decision: d.kind, parameters: pending, ...(lowered.length ? { lowered } : {}), waitingFor: d.waitingFor, why: d.why });
    return;
  }
  if (d.kind === 'restart') {
    await ctx.setUnitStatus({ name: 'maintenance', message: `restarting PostgreSQL for ${pending.join(', ')}` });
    ctx.log.info({ decision: d.kind, parameters: pending, ...(lowered.length ? { lowered } : {}), why: d.why }, 'reconcile');
    await w.stop();
    await w.start(() => waitAccepting(me, pw.operator));
    await waitAccepting(me, pw.operator);
    recordEvent(ctx.kube, ctx.app, { unit: ctx.unit, reason: 'Restarted', message: `PostgreSQL restarted for ${pending.join(', ')}` }, ctx.log);
  }
  ctx.peers.local.set('restart-pending', null);
  const before = ctx.peers.local.get('config-hash');
  if (before && before !== hash) recordEvent(ctx.kube, ctx.app, { unit: ctx.unit, reason: 'ConfigApplied', message: `config ${hash} applied${d.kind === 'restart' ? ' (restarted)' : ''}` }, ctx.log);
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
  const syncSet = parseSyncSet(bag(old).entries()).members;
  const quorum = String(ctx.config['synchronous-mode']) === 'quorum';
  let to = wanted;
  if (to) {
    if (to === old) return { error: `${to} is already the primary` };
    if (!replicas.includes(to)) return { error: `${to} is not a replica (replicas: ${replicas.join(', ') || 'none'})` };
    if (quorum && !syncSet.includes(to)) return { error: `${to} is not in the synchronous set [${syncSet.join(', ')}]; it may miss acknowledged writes` };
  } else {
    // The old primary is alive and hands over its final LSN: any streaming standby can take
    // it; the most advanced one has the least to catch up. In quorum mode, one from the set.
    const members = await Promise.all(
      replicas
        .filter((u) => !quorum || syncSet.includes(u))
        .map(async (unit) => {
          const addr = parseAddress(bag(unit).get('address'));
          const p = addr ? await readPosition(addr, pw.operator).catch(() => undefined) : undefined;
          return { unit, role: 'replica', ...(p ? { pos: { lsn: p.have, settled: p.settled } } : {}) };
        }),
    );
    const choice = chooseFailoverCandidate({ mode: 'off', sync: NO_SYNC, members });
    if (!choice.unit) return { error: `no switchover target: ${choice.why}${quorum ? ` in the synchronous set [${syncSet.join(', ')}]` : ''}` };
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
    'pgcharm-reconcile',
  ];
  return {
    loops: [haLoop, backupScheduleLoop, dumpScheduleLoop, databaseEndpointsLoop, leaderPlacementLoop],
    api: { routes: [...failsafe.routes(), ...health.routes()], token: () => failsafe.token },
    shutdown: async () => {
      failsafe.stop();
      local.drop();
      closeFences();
    },
    handlers: {
      ...Object.fromEntries(events.map((e) => [e, onEvent])),
      // A new leader answers every database relation: the one before may have lost leadership
      // in the middle of answering one (its hook then fails, and its retry no longer leads).
      'leader-elected': async (ctx) => {
        await onEvent(ctx);
        ctx.emit('pgcharm-database-refresh');
      },
      'update-status': updateStatus,
      ...backupHandlers,
      'pgcharm-exporter': setUpExporter,
      [`${DB_ENDPOINT}-relation-created`]: onDatabaseRelation,
      [`${DB_ENDPOINT}-relation-joined`]: onDatabaseRelation,
      [`${DB_ENDPOINT}-relation-changed`]: onDatabaseRelation,
      [`${DB_ENDPOINT}-relation-broken`]: onDatabaseBroken,
      'pgcharm-database-refresh': onDatabaseRefresh,
      'rotate-client-password-action': rotateClientPassword,
      'get-primary-action': (ctx) => {
        ctx.action!.setResults({ primary: ctx.peers.app.get('primary') ?? '' });
      },
      'list-members-action': async (ctx) => {
        // Roles as the agents recorded them, positions as each Postgres reports them now.
        const units = [ctx.unit, ...ctx.peers.units].sort();
        const pw = await readPasswords(ctx.kube, ctx.app);
        const live = pw ? await memberPositions(memberTargets(Object.fromEntries(units.map((u) => [u, ctx.peers.unit(u).entries()]))), pw.operator) : {};
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
      'promote-to-primary-action': async (ctx) => {
        // Charmed PostgreSQL's promote-to-primary: the operator's way out when the failover
        // rule keeps every unit waiting (e.g. the synchronous set's other members are gone).
        const a = ctx.action!;
        const force = a.params['force'] === true;
        const o = await observe(fromEvent(ctx), true);
        if (!o) return a.fail('this unit has no Postgres address or passwords yet');
        const r = decideManualPromote(o.snap, force);
        if (!r.ok) return a.fail(r.why);
        const facts = { 'lsn-gap-bytes': r.gapBytes, 'may-lose': formatBytes(r.gapBytes) || '0', 'known-positions': r.known };
        if (r.forced) ctx.log.warn({ decision: 'forced promotion', ...facts, why: r.why }, 'promote-to-primary');
        else ctx.log.info({ decision: 'promotion', ...facts, why: r.why }, 'promote-to-primary');
        const local = (d: Record<string, string | null>) => {
          for (const [k, v] of Object.entries(d)) ctx.peers.local.set(k, v);
          return Promise.resolve();
        };
        if (!(await promoteSelf({ ...ctx, setLocal: local }, o, ctx.peers.units, false))) return a.fail('another unit took the primary lease first');
        a.log(r.forced ? `promoted ${ctx.unit} by force; up to ${facts['may-lose']} of WAL that only other units had may be lost` : `promoted ${ctx.unit}`);
        a.setResults({ promoted: ctx.unit, forced: r.forced, ...facts, reason: r.why });
        ctx.emit('pgcharm-reconcile');
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
        recordEvent(ctx.kube, ctx.app, { unit: ctx.unit, reason: 'Restarted', message: 'PostgreSQL restarted by the restart action' }, ctx.log);
        ctx.action!.setResults({ restarted: true, 'took-ms': Date.now() - t0 });
      },
      'set-password-action': async (ctx) => {
        const a = ctx.action!;
        if (!ctx.isLeader()) return a.fail('set-password runs on the leader: pgcharm run leader set-password ...');
        const user = String(a.params['username'] ?? 'operator');
        // The unit checks it too: it goes into SQL, and a caller may have skipped the CLI's checks.
        if (!isSystemUser(user)) return a.fail(`params.username: must be one of ${SYSTEM_USERS.join(', ')}`);
        const pw = await readPasswords(ctx.kube, ctx.app);
        const holder = await state.lease(ctx).holder();
        const target = primaryTarget(ctx, holder);
        if (!pw || !holder || !target) return a.fail('no primary is serving; try again once `pgcharm status` shows one');
        const password = typeof a.params['password'] === 'string' ? a.params['password'] : generatePassword();
        // Two-phase (pending in the Secret, the role, commit): see password-change.ts. Every unit
        // then re-reads the Secret (passfiles for streaming and rewind) on the
        // leader-settings-changed this bag write causes.
        await changePassword(ctx.kube, ctx.app, target, pw, user, password, ctx.log);
        ctx.peers.app.set('passwords-rotated', new Date().toISOString());
        a.log(`password of ${user} changed on ${holder} and stored in the ${ctx.app}-passwords Secret`);
        a.setResults({ username: user, generated: typeof a.params['password'] !== 'string' });
      },
    },
  };
}
