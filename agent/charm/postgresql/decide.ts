/**
 * Pure decisions of the PostgreSQL charm, table-tested in test/charm/decide.test.ts and
 * test/charm/ha-decide.test.ts. Nothing here does I/O: the HA cycle observes a snapshot,
 * calls decideHa, and acts on the one action it returns (agent/charm/postgresql/ha.ts).
 */

/**
 * The first primary: the leader starts the cluster on itself. It is the one unit that knows
 * nobody else bootstrapped (it alone writes the application bag), and it is up right now.
 */
export function chooseBootstrapPrimary(leader: string, _peers: readonly string[]): string {
  return leader;
}

/**
 * A synchronous set as a primary records it: commits are acknowledged once `k` of `members`
 * have them. k = 0 means the primary acknowledges alone (no synchronous standby).
 */
export interface SyncSet {
  members: readonly string[];
  k: number;
}

export const NO_SYNC: SyncSet = { members: [], k: 0 };

/**
 * The set a primary should run with. quorum: `ANY k (...)` over the standbys streaming now,
 * k = min(synchronous-node-count, how many stream); with none streaming the set is empty, so
 * a primary alone keeps accepting writes (Patroni's synchronous_mode without strict).
 */
export function desiredSyncSet(mode: string, count: number, streaming: readonly string[]): SyncSet {
  if (mode !== 'quorum' || streaming.length === 0) return NO_SYNC;
  return { members: [...streaming].sort(), k: Math.max(1, Math.min(count, streaming.length)) };
}

/** synchronous_standby_names for a set. */
export function syncSetNames(s: SyncSet): string {
  if (s.k === 0 || s.members.length === 0) return '';
  return `ANY ${s.k} (${[...s.members].sort().map((m) => `"${m.replace(/"/g, '""')}"`).join(', ')})`;
}

export function sameSyncSet(a: SyncSet, b: SyncSet): boolean {
  return a.k === b.k && [...a.members].sort().join(',') === [...b.members].sort().join(',');
}

/**
 * What to record while moving from the set in force to the next one, before Postgres is
 * told: the union of members with the smaller k. Every commit acknowledged under either set
 * is on at least k of the union, so a failover that honours the record loses nothing
 * whichever of the two Postgres was running when the primary died.
 */
export function transitionSyncSet(from: SyncSet, to: SyncSet): SyncSet {
  return { members: [...new Set([...from.members, ...to.members])].sort(), k: Math.min(from.k, to.k) };
}

/** A unit bag's record of its synchronous set (`synchronous-standbys`, `synchronous-count`). */
export function parseSyncSet(bag: Readonly<Record<string, string | undefined>> | undefined): SyncSet {
  const members = (bag?.['synchronous-standbys'] ?? '').split(',').filter(Boolean);
  if (!members.length) return NO_SYNC;
  // Bags written before the count was recorded: `ANY 1` was the only count used then.
  const k = bag?.['synchronous-count'] === undefined ? 1 : Number(bag['synchronous-count']);
  return { members, k: Number.isInteger(k) && k >= 0 ? k : 0 };
}

export function syncSetBag(s: SyncSet): Record<string, string | null> {
  return s.members.length ? { 'synchronous-standbys': [...s.members].sort().join(','), 'synchronous-count': String(s.k) } : { 'synchronous-standbys': null, 'synchronous-count': null };
}

/** LSN text to a comparable number (hi/lo 32-bit halves). */
export function lsnValue(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

/** Bytes from `b` up to `a` (0 when a is not ahead). */
export function lsnDiff(a: string, b: string): number {
  const d = lsnValue(a) - lsnValue(b);
  return d > 0n ? Number(d) : 0;
}

/**
 * A standby's position as read from its Postgres this tick. `lsn` is how far it has WAL on
 * disk: the larger of the last WAL received and flushed and the last replayed. `settled` says
 * the figure is final: the WAL receiver streams, or the startup process has replayed all the
 * WAL it has and waits for more. A standby still replaying its pg_wal after a restart is not
 * settled: its replay position is below WAL it already holds, and comparing it would wrongly
 * rank it behind.
 */
export interface Position {
  lsn: string;
  settled: boolean;
  timeline?: number;
}

export interface Member {
  unit: string;
  /** The `role` its bag records. */
  role?: string;
  /** Read live this tick; undefined when its Postgres did not answer. */
  pos?: Position;
}

export type Choice = { unit: string; why: string } | { unit?: undefined; why: string };

/**
 * Which standby may be promoted now that the primary's lease expired.
 *
 * quorum, set `ANY k (n members)` recorded by the failed primary: every acknowledged commit
 * is on at least k of the n, so among any n − k + 1 of them at least one has it. A standby
 * may be promoted only after positions were compared with at least n − k + 1 members of the
 * set (settled positions, itself included) and it is the most advanced of them. Fewer
 * answers: nobody is promoted, and the reason says how many more are needed. An empty set
 * (k = 0) means the primary acknowledged commits alone: nobody is promoted automatically.
 *
 * off: any reachable replica, the most advanced, unless it lags more than maxLagBytes behind
 * the last position the primary published (Patroni's maximum_lag_on_failover).
 *
 * Ties go to the lowest unit name, so every unit computes the same answer; the Lease's
 * compare-and-swap settles any remaining race.
 */
export function chooseFailoverCandidate(o: { mode: string; sync: SyncSet; members: readonly Member[]; primaryLsn?: string; maxLagBytes?: number }): Choice {
  const best = (ms: readonly Member[]) =>
    [...ms].sort((a, b) => {
      const d = lsnValue(b.pos!.lsn) - lsnValue(a.pos!.lsn);
      // Code-unit order (unit names are ASCII): localeCompare loads ICU's collation data, ~3 MB of RSS.
      return d > 0n ? 1 : d < 0n ? -1 : a.unit < b.unit ? -1 : a.unit > b.unit ? 1 : 0;
    })[0]!;
  const settled = (m: Member) => m.pos !== undefined && m.pos.settled;
  if (o.mode === 'quorum') {
    const set = o.sync.members;
    if (o.sync.k === 0 || set.length === 0) {
      return { why: 'the failed primary acknowledged commits without a synchronous standby (empty set): promoting any standby could lose them' };
    }
    const needed = set.length - o.sync.k + 1;
    const compared = o.members.filter((m) => set.includes(m.unit) && settled(m));
    if (compared.length < needed) {
      const missing = needed - compared.length;
      const silent = set.filter((u) => !compared.some((m) => m.unit === u));
      return { why: `waiting for ${missing} more member${missing > 1 ? 's' : ''} of the synchronous set [${set.join(', ')}] to compare positions (ANY ${o.sync.k}: ${needed} needed; no position from ${silent.join(', ')})` };
    }
    const top = best(compared);
    if (top.role !== 'replica') return { why: `the most advanced member of the synchronous set, ${top.unit}, is not a replica (${top.role ?? 'no role'})` };
    return { unit: top.unit, why: `most advanced (${top.pos!.lsn}) of ${compared.map((m) => m.unit).join(', ')}, ${needed} of the synchronous set [${set.join(', ')}] needed` };
  }
  const eligible = o.members.filter((m) => m.role === 'replica' && settled(m));
  if (eligible.length === 0) return { why: 'no reachable standby' };
  const top = best(eligible);
  if (o.primaryLsn !== undefined && o.maxLagBytes !== undefined) {
    const lag = lsnDiff(o.primaryLsn, top.pos!.lsn);
    if (lag > o.maxLagBytes) {
      return { why: `the most advanced standby ${top.unit} is ${lag} bytes behind the last position the primary published (${o.primaryLsn}); maximum-lag-on-failover is ${o.maxLagBytes}` };
    }
  }
  return { unit: top.unit, why: `most advanced (${top.pos!.lsn}) of ${eligible.map((m) => m.unit).join(', ')}` };
}

/** One HA cycle's view of the world (observed by ha.ts; every field a plain value). */
export interface HaSnapshot {
  unit: string;
  mode: string;
  syncCount: number;
  maxLagBytes: number;
  /** This unit's bag `role`. */
  role?: string;
  lease: {
    holder?: string;
    /** Unchanged for a TTL on this unit's clock (or nobody holds it). */
    expired: boolean;
    handoverTo?: string;
    handoverLsn?: string;
    /** The WAL position the holder published with its last renewal. */
    primaryLsn?: string;
  };
  /** The holder's recorded synchronous set (read fresh when a failover is considered). */
  holderSync: SyncSet;
  /** This unit's own Postgres, undefined when it did not answer. */
  self?: Position & { writable: boolean };
  /** Every other unit, with its position when read this tick. */
  peers: readonly Member[];
  /** Primary only: peer standbys streaming from this Postgres now. */
  streaming?: readonly string[];
  /** Primary only: the set this unit recorded (and runs). */
  recordedSync: SyncSet;
  /** A failsafe promise not to promote, until this epoch ms (0: none). */
  noPromoteUntil?: number;
  now: number;
}

export type HaAction =
  | { kind: 'step down'; holder?: string }
  | { kind: 'hand over'; to: string }
  | { kind: 'promote'; cause: 'switchover' | 'failover'; previous?: string }
  | { kind: 'set synchronous'; to: SyncSet }
  | { kind: 'renew' }
  | { kind: 'wait' }
  | { kind: 'nothing' };

/**
 * The decision of one cycle. `why` never carries figures that change from tick to tick, so
 * a changed (kind, why) is worth a log line; `detail` carries the figures.
 */
export type HaDecision = HaAction & { why: string; detail?: Record<string, unknown> };

export function decideHa(s: HaSnapshot): HaDecision {
  const { lease } = s;
  if (s.role === 'primary' && lease.holder !== s.unit) {
    return { kind: 'step down', ...(lease.holder ? { holder: lease.holder } : {}), why: `another unit (${lease.holder ?? 'none'}) holds the primary lease` };
  }
  if (lease.holder === s.unit) {
    if (s.role === 'primary' && lease.handoverTo && lease.handoverTo !== s.unit) {
      return { kind: 'hand over', to: lease.handoverTo, why: `switchover to ${lease.handoverTo} requested` };
    }
    if (s.role === 'replica' && lease.handoverLsn) {
      if (s.self && lsnValue(s.self.lsn) >= lsnValue(lease.handoverLsn)) {
        return { kind: 'promote', cause: 'switchover', why: 'switchover: received everything the old primary wrote', detail: { received: s.self.lsn, need: lease.handoverLsn } };
      }
      return { kind: 'wait', why: 'switchover target catching up to the old primary\'s final LSN', detail: { received: s.self?.lsn ?? null, need: lease.handoverLsn } };
    }
    if (s.role === 'primary' && s.streaming && s.self?.writable) {
      const want = desiredSyncSet(s.mode, s.syncCount, s.streaming);
      if (!sameSyncSet(want, s.recordedSync)) {
        return { kind: 'set synchronous', to: want, why: 'the streaming standbys differ from the synchronous set', detail: { from: syncSetNames(s.recordedSync), to: syncSetNames(want) } };
      }
    }
    return { kind: 'renew', why: s.role === 'primary' ? 'I am the primary with the lease' : 'holding the lease while this unit becomes primary' };
  }
  if (s.role !== 'replica') return { kind: 'nothing', why: `not a replica (${s.role ?? 'no role yet'}) and not the lease holder` };
  if (!lease.expired) return { kind: 'nothing', why: lease.holder ? `following ${lease.holder}, whose lease is live` : 'no primary lease yet' };
  if (s.noPromoteUntil && s.now < s.noPromoteUntil) {
    return { kind: 'wait', why: `promised ${lease.holder ?? 'the primary'} not to promote during a store outage (failsafe)`, detail: { until: new Date(s.noPromoteUntil).toISOString() } };
  }
  const members: Member[] = [{ unit: s.unit, role: s.role, ...(s.self ? { pos: s.self } : {}) }, ...s.peers.filter((p) => p.unit !== lease.holder)];
  const choice = chooseFailoverCandidate({ mode: s.mode, sync: s.holderSync, members, ...(lease.primaryLsn ? { primaryLsn: lease.primaryLsn } : {}), maxLagBytes: s.maxLagBytes });
  const detail = { positions: Object.fromEntries(members.map((m) => [m.unit, m.pos ? `${m.pos.lsn}${m.pos.settled ? '' : ' (replaying)'}` : null])), ...(lease.primaryLsn ? { primaryLsn: lease.primaryLsn } : {}) };
  if (choice.unit === s.unit) return { kind: 'promote', cause: 'failover', ...(lease.holder ? { previous: lease.holder } : {}), why: `the primary lease of ${lease.holder ?? 'nobody'} expired; ${stable(choice.why)}`, detail };
  if (choice.unit) return { kind: 'wait', why: `the primary lease expired; ${choice.unit} is the candidate`, detail };
  return { kind: 'wait', why: `the primary lease of ${lease.holder ?? 'nobody'} expired; ${stable(choice.why)}`, detail };
}

/** A reason without its LSNs and byte counts, for "did the decision change" comparisons. */
function stable(why: string): string {
  return why.replace(/\b[0-9A-F]+\/[0-9A-F]+\b/g, 'LSN').replace(/\b\d+ bytes\b/g, 'N bytes');
}

/**
 * What a unit that is told to follow `primary` must do with its data directory (reconcile).
 * A former primary may have diverged from the new one: rewind (a no-op when nothing
 * diverged), and re-clone when rewind cannot work. A standby that is not streaming and is
 * behind the writable primary's timeline cannot follow it until rewound.
 */
export type FollowStep = 'clone' | 'rewind' | 'follow';

export function followStep(o: { hasCluster: boolean; wasPrimary: boolean; diverged?: boolean }): FollowStep {
  if (!o.hasCluster) return 'clone';
  if (o.wasPrimary || o.diverged) return 'rewind';
  return 'follow';
}

/** A standby that cannot follow: not streaming, and behind the writable primary's timeline. */
export function isDiverged(mine: { streaming: boolean; timeline: number } | undefined, primary: { writable: boolean; timeline: number } | undefined): boolean {
  return Boolean(mine && primary?.writable && !mine.streaming && mine.timeline < primary.timeline);
}

/**
 * promote-to-primary: whether this unit may be promoted now, and at what risk. Refused while
 * a primary holds a live lease (that is a switchover). With the lease expired, the rule of
 * chooseFailoverCandidate applies unless `force`; a forced promotion reports how far behind
 * the most advanced known position this unit is (what may be lost).
 */
export function decideManualPromote(s: HaSnapshot, force: boolean): { ok: true; forced: boolean; gapBytes: number; why: string; known: Record<string, string | null> } | { ok: false; why: string } {
  if (s.lease.holder === s.unit && s.role === 'primary') return { ok: false, why: `${s.unit} is already the primary` };
  if (s.role !== 'replica') return { ok: false, why: `${s.unit} is not a replica (${s.role ?? 'no role yet'})` };
  if (!s.self) return { ok: false, why: `${s.unit}'s PostgreSQL does not answer` };
  if (s.lease.holder && !s.lease.expired) {
    return { ok: false, why: `${s.lease.holder} holds a live primary lease: use \`pgcharm run leader switchover to=${s.unit}\` for a planned switchover` };
  }
  const known: Record<string, string | null> = { [s.unit]: s.self.lsn };
  for (const p of s.peers) known[p.unit] = p.pos?.lsn ?? null;
  if (s.lease.holder && s.lease.primaryLsn) known[s.lease.holder] = maxLsn(s.lease.primaryLsn, known[s.lease.holder] ?? undefined);
  const top = Object.values(known).reduce<string>((a, b) => (b ? maxLsn(a, b) : a), s.self.lsn);
  const gapBytes = lsnDiff(top, s.self.lsn);
  const d = decideHa(s);
  if (d.kind === 'promote') return { ok: true, forced: false, gapBytes, why: d.why, known };
  if (!force) return { ok: false, why: `the failover rule does not allow promoting ${s.unit}: ${d.why}. Add force=true to promote it anyway and accept losing what only the others have` };
  return { ok: true, forced: true, gapBytes, why: `forced by the operator; the rule said: ${d.why}`, known };
}

function maxLsn(a: string, b: string | undefined): string {
  return b && lsnValue(b) > lsnValue(a) ? b : a;
}

/** A peer as the restart order sees it: its bag's role, applied config hash and pending restart. */
export interface ConfigPeer {
  unit: string;
  role?: string;
  configHash?: string;
  restartPending?: string;
}

export type RestartDecision =
  | { kind: 'nothing'; why: string }
  | { kind: 'restart'; why: string }
  | { kind: 'restart later'; waitingFor: string[]; why: string };

/**
 * Restart-class config changes (pg_settings.context = postmaster), rolling: a replica restarts
 * at once and the primary last, once every replica runs the config (`hash`). Lowering a
 * setting a hot standby needs at least as high as its primary's flips the order: the primary
 * first, a replica once the primary's bag says it runs the config and it has replayed the
 * primary's new values (its control file holds them: a standby compares them at start-up).
 */
export function restartDecision(o: {
  role: 'primary' | 'replica';
  pending: readonly string[];
  lowered: readonly string[];
  /** Lowered settings this standby's control file still holds higher (the primary's change not replayed yet). */
  notReplayed?: readonly string[];
  hash: string;
  peers: readonly ConfigPeer[];
  primary: string;
}): RestartDecision {
  if (!o.pending.length) return { kind: 'nothing', why: 'no parameter waits for a restart' };
  const runs = (p: ConfigPeer) => p.configHash === o.hash && !p.restartPending;
  if (o.role === 'primary' && !o.lowered.length) {
    const behind = o.peers.filter((p) => p.role === 'replica' && !runs(p)).map((p) => p.unit);
    if (behind.length) return { kind: 'restart later', waitingFor: behind, why: 'replicas restart first' };
  }
  if (o.role === 'replica' && o.lowered.length) {
    const p = o.peers.find((x) => x.unit === o.primary);
    if (!p || !runs(p)) return { kind: 'restart later', waitingFor: [o.primary], why: 'lowered settings a standby needs at least as high as its primary: the primary restarts first' };
    if (o.notReplayed?.length) {
      return { kind: 'restart later', waitingFor: [o.primary], why: `the primary's lowered ${o.notReplayed.join(', ')} not replayed here yet: a standby restarted before that refuses to start` };
    }
  }
  return { kind: 'restart', why: 'pg_settings.context is postmaster for these' };
}
