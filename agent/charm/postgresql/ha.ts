import type { V1Lease } from '#client-node';
import type { Logger } from 'pino';
import type { PebbleClient } from '../../../sidecar/client/index.js';
import type { CharmLoop, ConfigValue, EventContext, LoopContext } from '../../runtime/charm.js';
import { isUnreachable, withStoreTimeout, type Kube } from '../../runtime/kube.js';
import type { LeaseCache } from '../../runtime/leases.js';
import { objects, parseUnit } from '../../runtime/names.js';
import {
  decideHa,
  NO_SYNC,
  parseSyncSet,
  sameSyncSet,
  syncSetBag,
  syncSetNames,
  transitionSyncSet,
  type HaDecision,
  type HaSnapshot,
  type Member,
  type SyncSet,
} from './decide.js';
import { hbaSpec } from './access.js';
import { Failsafe, roundBudgetMs, storeTimeoutMs, type RoundContext } from './failsafe.js';
import { health } from './health.js';
import { recordEvent } from '../../runtime/cluster-events.js';
import { failovers, haCycleSeconds, leaseRenewSeconds, metricState, stepDowns, switchovers } from './metrics.js';
import { HANDOVER_LSN, HANDOVER_TO, PRIMARY_LSN } from './lease.js';
import { parseAddress, POSITION_SQL, readPosition, toPosition, type Position, type PositionRow } from './positions.js';
import { layout, pgParams, slotName } from './render.js';
import type { Passwords } from './secrets.js';
import { labelPod, local, state, ttlMs } from './state.js';
import { PostgresWorkload, withConnection } from './workload.js';

/**
 * The HA cycle (Patroni's ha.py): every fifth of the lease TTL, beside the event queue (a long
 * hook must not delay a lease renewal), one cycle runs **observe** (one snapshot: the Lease,
 * the bags, this Postgres, the peers' positions when a failover is being considered) →
 * **decide** (decideHa, a pure function: one action and why) → **act** (that action's
 * effects). The decision is logged when it or its reason changes, per tick only at debug.
 * Long work (bootstrap, clone, rewind, restart for config) is the reconcile's, which the cycle
 * asks for by emitting `pgcharm-reconcile`; both run under the same lock.
 */

type Target = { host: string; port: number };

/** This unit's failsafe: its promise, the primary it last saw, and the unit API token (failsafe.ts). */
export const failsafe = new Failsafe();

/** What observe needs; built from a loop's live view or from an event's (for actions). */
export interface HaSource {
  unit: string;
  app: string;
  kube: Kube;
  leases: LeaseCache;
  log: Logger;
  pebble: PebbleClient;
  config: Readonly<Record<string, ConfigValue>>;
  local: Record<string, string>;
  appBag: Record<string, string>;
  peers: ReadonlyMap<string, Record<string, string>>;
  address: Target | undefined;
  storage: string;
  /**
   * failsafe: how long a store request may take. The HA cycle's get an answer or a timeout
   * well inside the fence margin (a frozen API server accepts connections and never answers);
   * a retry after a refused failsafe round waits until just before the deadline.
   */
  storeTimeoutMs?: () => number;
}

export interface Observed {
  snap: HaSnapshot;
  pw: Passwords;
  me: Target;
  w: PostgresWorkload;
  ttl: number;
  lease: V1Lease | undefined;
}

function fromLoop(ctx: LoopContext): HaSource {
  const { local, app, peers } = ctx.bags();
  return { unit: ctx.unit, app: ctx.app, kube: ctx.kube, leases: ctx.leases, log: ctx.log, pebble: ctx.pebble, config: ctx.config(), local, appBag: app, peers, address: ctx.workload.address(), storage: ctx.workload.storage('pgdata') };
}

export function fromEvent(ctx: EventContext): HaSource {
  const peers = new Map(ctx.peers.units.map((u) => [u, ctx.peers.unit(u).entries()]));
  return { unit: ctx.unit, app: ctx.app, kube: ctx.kube, leases: ctx.leases, log: ctx.log, pebble: ctx.pebble, config: ctx.config, local: ctx.peers.local.entries(), appBag: ctx.peers.app.entries(), peers, address: ctx.workload.address(), storage: ctx.workload.storage('pgdata') };
}

/** A store request of the HA cycle, with its failsafe timeout (tracked: failsafe.ts knows the store's last answer). */
function bounded<T>(src: HaSource, fn: () => Promise<T>): Promise<T> {
  const ms = src.storeTimeoutMs?.();
  return ms === undefined ? fn() : failsafe.track(() => withStoreTimeout(ms, fn));
}

/**
 * One snapshot. Postgres is asked only what the decision can use: a primary its position
 * and streaming standbys; a replica nothing while the lease is live; every unit's position
 * once the lease expired (or when `probeAll`, for promote-to-primary).
 */
export async function observe(src: HaSource, probeAll = false): Promise<Observed | undefined> {
  const me = src.address;
  if (!me || !src.config['primary-lease-ttl']) return undefined;
  const pw = await bounded(src, () => state.passwords(src.kube, src.app, src.appBag['passwords-rotated']));
  if (!pw) return undefined;
  const ttl = ttlMs(src.config);
  const pl = state.lease(src);
  let lease = await bounded(src, () => pl.read());
  let expired = lease?.spec?.holderIdentity === src.unit ? false : pl.expired(lease, ttl);
  // The watch says the lease expired: the store has the last word (a stalled watch misses renewals).
  if (expired && pl.watched) {
    lease = await bounded(src, () => pl.fresh());
    expired = lease?.spec?.holderIdentity === src.unit ? false : pl.expired(lease, ttl);
  }
  const holder = lease?.spec?.holderIdentity || undefined;
  failsafe.observe(holder);
  const ann = lease?.metadata?.annotations ?? {};
  const role = src.local['role'];
  const w = new PostgresWorkload(src.pebble, layout(src.storage, Number(src.config['postgresql-major'])), src.log);

  const failover = probeAll || (role === 'replica' && holder !== src.unit && expired);
  const probeSelf = failover || role === 'primary' || (holder === src.unit && Boolean(ann[HANDOVER_LSN]));
  const mine = probeSelf
    ? await local
        .query<PositionRow>(me, pw.operator, POSITION_SQL)
        .then((r) => toPosition(r[0]!))
        .catch((e: unknown) => void state.forgetPasswords(e))
    : undefined;
  const self = mine ? asSelf(mine) : undefined;
  // Only peers count: pg_basebackup's WAL stream shows up in pg_stat_replication too.
  const streaming = role === 'primary' && holder === src.unit && mine?.writable ? mine.standbys.filter((u) => src.peers.has(u)) : undefined;
  const peers: Member[] = await Promise.all(
    [...src.peers.entries()].map(async ([unit, bag]) => {
      const m: Member = { unit, ...(bag['role'] ? { role: bag['role'] } : {}) };
      const addr = parseAddress(bag['address']);
      if (!failover || !addr) return m;
      const pos = await probe(addr, pw, 500);
      return pos ? { ...m, pos } : m;
    }),
  );
  // The set recorded by the failed primary, read from the store now: a cached bag could miss
  // a change it recorded just before it died.
  const holderSync = failover && holder ? await readSyncSet(src, holder) : NO_SYNC;
  const snap: HaSnapshot = {
    unit: src.unit,
    mode: String(src.config['synchronous-mode']),
    syncCount: Number(src.config['synchronous-node-count']),
    maxLagBytes: Number(src.config['maximum-lag-on-failover']),
    ...(role ? { role } : {}),
    lease: {
      ...(holder ? { holder } : {}),
      expired,
      ...(ann[HANDOVER_TO] ? { handoverTo: ann[HANDOVER_TO] } : {}),
      ...(ann[HANDOVER_LSN] ? { handoverLsn: ann[HANDOVER_LSN] } : {}),
      ...(ann[PRIMARY_LSN] ? { primaryLsn: ann[PRIMARY_LSN] } : {}),
    },
    holderSync,
    ...(self ? { self } : {}),
    peers,
    ...(streaming ? { streaming } : {}),
    recordedSync: state.sync ?? parseSyncSet(src.local),
    noPromoteUntil: failsafe.promisedUntilMs(),
    now: Date.now(),
  };
  return { snap, pw, me, w, ttl, lease };
}

/** A server's position as the decision compares it: how far it has WAL, and whether that is final. */
function asSelf(p: Position): NonNullable<HaSnapshot['self']> {
  return { lsn: p.have, settled: p.settled, timeline: p.timeline, writable: p.writable };
}

async function probe(t: Target, pw: Passwords, timeoutMs = 1000): Promise<HaSnapshot['self']> {
  try {
    return asSelf(await readPosition(t, pw.operator, timeoutMs));
  } catch (e) {
    state.forgetPasswords(e);
    return undefined;
  }
}

async function readSyncSet(src: HaSource, unit: string): Promise<SyncSet> {
  if (unit === src.unit) return parseSyncSet(src.local);
  try {
    const cm = await src.kube.core.readNamespacedConfigMap({ name: objects.unitBag(parseUnit(unit)), namespace: src.kube.namespace });
    return parseSyncSet(cm.data);
  } catch {
    // Unreadable now: the cached copy, else nothing (an empty set promotes nobody).
    return parseSyncSet(src.peers.get(unit));
  }
}

/** Creates a physical slot reserving WAL now, unless it exists (the standby and the primary may race to it). */
export async function ensureSlot(c: import('pg').Client, slot: string): Promise<void> {
  try {
    await c.query('SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)', [slot]);
  } catch (e) {
    if ((e as { code?: string }).code !== '42710') throw e; // duplicate_object: the other side made it
  }
}

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

/**
 * What a unit records the moment it promotes itself. Its synchronous_standby_names is empty
 * until the HA cycle sets one (it was a standby's config), so it acknowledges commits alone:
 * its recorded set is empty, which lets nobody be promoted automatically in its place until
 * a synchronous standby streams.
 */
const PROMOTED = { role: 'primary', ...syncSetBag(NO_SYNC) } as const;

/**
 * Promotes this unit: takes the Lease by compare-and-swap (only if it is still expired on our
 * clock, or was handed to us), arms the fence, pg_promote. Returns false when another unit
 * took the Lease first.
 */
export async function promoteSelf(
  ctx: { unit: string; kube: Kube; app: string; leases: LeaseCache; log: Logger; setLocal(d: Record<string, string | null>): Promise<void> },
  o: Observed,
  peers: string[],
  handedOver: boolean,
): Promise<boolean> {
  const pl = state.lease(ctx);
  return state.exclusive(async () => {
    const mayTake = (cur: V1Lease) => pl.expired(cur, o.ttl);
    // failsafe: checked again at the compare-and-swap; no promise is given while it is under way.
    if (!(await failsafe.takeover(() => pl.acquire(ctx.unit, o.ttl, handedOver ? () => false : mayTake)))) return false;
    await o.w.setFenceDeadline(pl.lastRenewSentAt + o.ttl / 2);
    await o.w.promote(o.me, o.pw.operator);
    await slotsForPeers(o.me, o.pw, peers);
    await ctx.setLocal(PROMOTED);
    state.resetSync(NO_SYNC);
    state.failoverWait = undefined;
    await labelPod(ctx, 'primary');
    return true;
  });
}

/** Renews the Lease we hold, publishing our WAL position with it, and moves the fence. */
async function renew(src: HaSource, o: Observed, round?: () => RoundContext): Promise<boolean> {
  const pl = state.lease(src);
  const lsn = o.snap.self?.writable ? o.snap.self.lsn : undefined;
  // The Lease read this cycle is the compare-and-swap's base: one store round trip fewer.
  const took = leaseRenewSeconds.startTimer();
  const renewed = await bounded(src, () => pl.acquire(src.unit, o.ttl, () => false, lsn ? { lsn } : undefined, o.lease));
  took();
  if (!renewed) return false;
  const deadline = pl.lastRenewSentAt + o.ttl / 2;
  // A renewal moves an armed fence; arming it is for whoever lets Postgres take writes (the
  // reconcile before it starts a primary, a promotion). Holding the lease while initdb runs,
  // there is no watchdog yet to tell, and waiting for one would hold up the next renewals.
  if (o.snap.role === 'primary' || o.w.fenceArmed()) await o.w.setFenceDeadline(deadline);
  if (round) failsafe.watch(deadline, round); // failsafe: a round before this deadline if the store goes silent
  return true;
}

/**
 * Moves the primary to another synchronous set without ever recording less than what every
 * acknowledged commit is on. The union of both sets (with the smaller k) is recorded first;
 * then Postgres reloads the new set, and from the WAL position L at which it runs it, new
 * commits wait for the new set. Commits before L were acknowledged under the old set (by
 * members that may have left, e.g. a standby that died), so the new set is recorded alone
 * only once k of its members have flushed WAL up to L: until then a failover keeps comparing
 * against the union, and a member that lags behind (a stalled standby) cannot be promoted
 * over one that held the only copy of those commits.
 */
async function setSynchronous(ctx: LoopContext, src: HaSource, o: Observed, to: SyncSet): Promise<void> {
  await state.exclusive(async () => {
    // A reconcile that held the lock may have demoted this unit meanwhile.
    if (ctx.bags().local['role'] !== 'primary') return;
    const pending = state.syncChange && sameSyncSet(state.syncChange.to, to) ? state.syncChange : undefined;
    if (!pending) {
      const from = state.sync ?? parseSyncSet(ctx.bags().local);
      const mid = transitionSyncSet(from, to);
      if (!sameSyncSet(mid, from)) await ctx.setLocal(syncSetBag(mid));
      state.sync = mid;
      const names = syncSetNames(to);
      await o.w.writeConfig(pgParams(src.config, { host: o.me.host, port: o.me.port, l: o.w.l, synchronousStandbyNames: names, resources: await o.w.resources() }), hbaSpec(src.config, o.me.host, [...src.peers.values()]));
      await o.w.reload();
      await waitSetting(o.me, o.pw, 'synchronous_standby_names', names);
      state.applied = to;
      const since = (await local.query<{ l: string }>(o.me, o.pw.operator, 'SELECT pg_current_wal_lsn()::text AS l'))[0]!.l;
      state.syncChange = { to, since };
    }
    const change = state.syncChange!;
    const caughtUp = await flushedAtLeast(o.me, o.pw, to.members, change.since);
    if (caughtUp.length < to.k) {
      ctx.log.debug({ to: syncSetNames(to), since: change.since, caughtUp }, 'synchronous set applied; waiting for its members to flush what the old set acknowledged');
      return;
    }
    await ctx.setLocal(syncSetBag(to));
    state.sync = to;
    state.syncChange = undefined;
  });
}

/** Members of `units` whose standby has flushed WAL at least up to `lsn` (pg_stat_replication). */
async function flushedAtLeast(me: Target, pw: Passwords, units: readonly string[], lsn: string): Promise<string[]> {
  if (!units.length) return [];
  return (await local.query<{ a: string }>(me, pw.operator, 'SELECT application_name AS a FROM pg_stat_replication WHERE application_name = ANY($1) AND flush_lsn >= $2::pg_lsn', [units, lsn])).map((r) => r.a);
}

async function waitSetting(me: Target, pw: Passwords, name: string, want: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const got = (await local.query<{ v: string }>(me, pw.operator, 'SELECT current_setting($1) AS v', [name]))[0]!.v;
    if (got === want) return;
    if (Date.now() > deadline) throw new Error(`${name} is still ${JSON.stringify(got)} 5 s after a reload to ${JSON.stringify(want)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function logDecision(log: Logger, d: HaDecision): void {
  const fields = { decision: d.kind, why: d.why, ...(d.detail ?? {}) };
  if (!state.changed('ha', `${d.kind}|${d.why}`)) {
    log.debug(fields, 'ha');
    return;
  }
  if (d.kind === 'promote' || d.kind === 'step down' || d.kind === 'hand over') log.warn(fields, 'ha');
  else log.info(fields, 'ha');
}

/** The unit this one last handed the primary over to (a planned switchover): its step-down that follows is not news. */
let handedTo: string | undefined;

async function act(ctx: LoopContext, src: HaSource, o: Observed, d: HaDecision, prev: string): Promise<void> {
  const holder = o.snap.lease.holder;
  if (d.kind !== 'step down') state.steppingDownFor = undefined;
  switch (d.kind) {
    case 'step down':
      // Someone else serves writes now: demote (the fence already stopped us if we were late).
      // Asked once per new holder: the reconcile that demotes may take a while (pg_rewind).
      if (state.steppingDownFor !== (holder ?? '')) {
        // Not after a handover: that unit gave the lease away on purpose (HandedOver says so).
        if (o.snap.role === 'primary' && handedTo !== holder) {
          stepDowns.inc();
          recordEvent(ctx.kube, ctx.app, { unit: ctx.unit, reason: 'SteppedDown', type: 'Warning', message: `${ctx.unit} stepped down: ${holder ?? 'another unit'} holds the primary lease` }, ctx.log);
        }
        state.steppingDownFor = holder ?? '';
        await labelPod(ctx, 'replica');
        ctx.emit('pgcharm-reconcile');
      }
      return;
    case 'hand over':
      // Planned switchover: stop (a fast shutdown sends every WAL record to the connected
      // standbys), note the final LSN, give the lease to the target with it.
      await state.exclusive(async () => {
        await o.w.stop();
        const lsn = await o.w.finalLsn();
        const ok = await state.lease(ctx).handTo(ctx.unit, d.to, lsn);
        if (ok) await labelPod(ctx, 'replica');
        if (ok) handedTo = d.to;
        if (ok) recordEvent(ctx.kube, ctx.app, { unit: ctx.unit, reason: 'HandedOver', message: `${ctx.unit} handed the primary over to ${d.to} at ${lsn}` }, ctx.log);
        ctx.log.warn({ decision: ok ? 'handed over' : 'handover failed', to: d.to, lsn }, 'ha');
        ctx.emit('pgcharm-reconcile');
      });
      return;
    case 'promote': {
      handedTo = undefined;
      if (d.cause === 'switchover' && !(await renew(src, o, failsafeRound(ctx)))) return;
      const ok = await promoteSelf(ctx, o, [...src.peers.keys()], d.cause === 'switchover');
      if (!ok) {
        ctx.log.info({ decision: 'no action', why: 'another unit took the primary lease first' }, 'ha');
        return;
      }
      (d.cause === 'switchover' ? switchovers : failovers).inc();
      recordEvent(
        ctx.kube,
        ctx.app,
        d.cause === 'switchover'
          ? { unit: ctx.unit, reason: 'Switchover', message: `${ctx.unit} is the primary (planned switchover${d.previous ? ` from ${d.previous}` : ''})` }
          : { unit: ctx.unit, reason: 'Failover', type: 'Warning', message: `${ctx.unit} is the primary: ${d.why}` },
        ctx.log,
      );
      ctx.log.warn({ decision: 'promoted', cause: d.cause, ...(d.previous ? { previous: d.previous } : {}) }, 'ha');
      await ctx.setUnitStatus({ name: 'active', message: 'primary (promoted)' });
      ctx.emit('pgcharm-reconcile');
      return;
    }
    case 'set synchronous':
      // In the background: the change waits for the reconcile's lock and for a reload, and
      // the renewals of the next ticks must not wait behind it (a late one fences the primary).
      if ((await renew(src, o, failsafeRound(ctx))) && !state.syncBusy) {
        state.syncBusy = true;
        void setSynchronous(ctx, src, o, d.to)
          .catch((e: unknown) => ctx.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'could not change the synchronous set'))
          .finally(() => (state.syncBusy = false));
      }
      return;
    case 'renew':
      await renew(src, o, failsafeRound(ctx));
      return;
    case 'wait':
      if (holder === ctx.unit) await renew(src, o, failsafeRound(ctx));
      // A replica that may not take over says why in its status (what an operator reads first).
      if (o.snap.role === 'replica' && o.snap.lease.expired) {
        state.failoverWait = d.why;
        if (`${d.kind}|${d.why}` !== prev) await ctx.setUnitStatus({ name: 'waiting', message: d.why });
      }
      return;
    case 'nothing':
      // Back from waiting (the primary returned, or another unit took over): let the reconcile say so.
      if (state.failoverWait) {
        state.failoverWait = undefined;
        ctx.emit('pgcharm-reconcile');
      }
      return;
  }
}

/** failsafe: what a round needs, read when it starts: role and peers from the bags, the fence through the sidecar. */
function failsafeRound(ctx: LoopContext): () => RoundContext {
  return () => {
    const { local, peers } = ctx.bags();
    const w = new PostgresWorkload(ctx.pebble, layout(ctx.workload.storage('pgdata'), Number(ctx.config()['postgresql-major'])), ctx.log);
    return { unit: ctx.unit, role: local['role'], config: ctx.config(), peers, fence: { read: () => w.fenceDeadline(), set: (t) => w.setFenceDeadline(t) }, log: ctx.log };
  };
}

export const haLoop: CharmLoop = {
  name: 'ha',
  // A renewal every TTL/5: the fence is TTL/2 after the last one, and the next tick, a store
  // request and a failsafe round must fit before it (failsafe.ts). A standby following a live
  // lease ticks once a TTL only, as a safety net: the Lease watch wakes it when the lease is
  // taken, handed over or expires. failsafe: twice the pace while writes go on by failsafe
  // extensions (each lasts TTL/2).
  everyMs: (config) => Math.max(100, ttlMs(config) / (failsafe.engaged() ? 10 : state.following ? 1 : 5)),
  async run(ctx: LoopContext): Promise<void> {
    // failsafe: a store that does not answer is not a cycle failure: the primary asks its peers
    // to confirm instead, and moves its fence deadline when every one of them does.
    const took = haCycleSeconds.startTimer();
    for (let until: number | undefined; ; ) {
      try {
        await cycle(ctx, until);
        took();
        return;
      } catch (e) {
        if (!isUnreachable(e)) throw e;
        ({ retryUntil: until } = await failsafe.onStoreUnreachable(failsafeRound(ctx), e));
        if (until === undefined) return;
      }
    }
  },
};

/**
 * A store request's first timeout: the failsafe's (150 ms at 2 s), or for the holder all the
 * time left before its fence deadline but what a failsafe round needs. A store slowed by a
 * saturated machine then answers a renewal instead of being taken for gone.
 */
function firstAttemptMs(ttl: number): number {
  const left = state.lastRenewSentAt + ttl / 2 - Date.now() - roundBudgetMs(ttl);
  return Math.max(storeTimeoutMs(ttl), Math.round(left));
}

/** One HA cycle: observe, decide, act. */
async function cycle(ctx: LoopContext, storeUntil: number | undefined): Promise<void> {
  const config = ctx.config();
  failsafe.configure({ unit: ctx.unit, app: ctx.app, kube: ctx.kube, config, log: ctx.log });
  const src: HaSource = { ...fromLoop(ctx), storeTimeoutMs: () => (storeUntil === undefined ? firstAttemptMs(ttlMs(config)) : Math.max(20, storeUntil - Date.now())) };
  const o = await observe(src);
  if (!o) return;
  const holder = o.snap.lease.holder;
  metricState.leaseTtlMs = o.ttl;
  // The primary Lease as the watch (and this process's own writes) hold it when a probe asks.
  const seenLease = () => ctx.leases.get(objects.primaryLease(ctx.app))?.lease;
  health.observe({
    unit: ctx.unit,
    app: ctx.app,
    holder,
    bags: { ...Object.fromEntries(src.peers), [ctx.unit]: src.local },
    leaseHolder: () => seenLease()?.spec?.holderIdentity || undefined,
    // The fence deadline in force (moved by renewals and failsafe confirmations): past it, the
    // lease counts as lost even if this loop is stuck behind a frozen store and cannot say so.
    leaseValidUntil: () => o.w.fenceDeadlineNow() ?? Infinity,
    me: o.me,
    primaryLsn: () => seenLease()?.metadata?.annotations?.[PRIMARY_LSN],
    primary: holder === ctx.unit ? o.me : holder ? parseAddress(src.peers.get(holder)?.['address']) : undefined,
    password: o.pw.operator,
    periodMs: haLoop.everyMs(config),
  });
  if (ctx.isLeader() && holder && src.appBag['primary'] !== holder) await ctx.setApp({ primary: holder });
  const d = decideHa(o.snap);
  state.following = d.kind === 'nothing' && o.snap.role === 'replica' && Boolean(holder) && holder !== ctx.unit && !o.snap.lease.expired;
  const prev = state.lastDecision;
  logDecision(ctx.log, d);
  await act(ctx, src, o, d, prev);
}
