import { lsnValue } from './decide.js';
import { withConnection } from './workload.js';

/**
 * Live WAL positions, read from each member's Postgres when asked (as `patronictl list` does):
 * the bags' figures are only as fresh as the last update-status.
 */

/** A unit bag's `address` (host:port of its Postgres), parsed; undefined when absent or malformed. */
export function parseAddress(s: string | undefined): { host: string; port: number } | undefined {
  const m = s ? /^(.*):(\d+)$/.exec(s) : null;
  return m ? { host: m[1]!, port: Number(m[2]) } : undefined;
}

export interface Position {
  /** pg_is_in_recovery() is false: this server accepts writes. */
  writable: boolean;
  /** The timeline the server writes (primary) or receives (standby) WAL on. */
  timeline: number;
  /** Primary: current WAL insert position. Standby: last WAL position replayed. */
  lsn: string;
  /** Standby: the WAL receiver is streaming. */
  streaming: boolean;
  /**
   * How far this server has WAL: primary, the insert position; standby, the larger of the
   * last WAL received and flushed and the last replayed (after a restart only the latter).
   */
  have: string;
  /**
   * `have` is final: a primary, a standby whose receiver streams, or one whose startup
   * process replayed all the WAL it holds and waits for more. A standby still replaying its
   * pg_wal after a restart is not settled (its replay position is below WAL it holds).
   */
  settled: boolean;
}

/** One row describing a server's position (see Position); `standbys` lists peers streaming from it. */
export const POSITION_SQL = `SELECT NOT pg_is_in_recovery() AS writable,
  CASE WHEN pg_is_in_recovery() THEN greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
       ELSE pg_current_wal_lsn() END::text AS have,
  EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'startup'
            AND wait_event IN ('RecoveryWalStream', 'RecoveryRetrieveRetryInterval')) AS waiting,
  CASE WHEN pg_is_in_recovery()
       THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))
       ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END::text AS tli,
  CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text AS lsn,
  coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false) AS streaming,
  ARRAY(SELECT application_name::text FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1) AS standbys`;

export interface PositionRow {
  writable: boolean;
  tli: string;
  lsn: string | null;
  streaming: boolean;
  have: string | null;
  waiting: boolean;
  standbys: string[];
}

export function toPosition(r: PositionRow): Position & { standbys: string[] } {
  return { writable: r.writable, timeline: Number(r.tli), lsn: r.lsn ?? '0/0', streaming: r.streaming, have: r.have ?? '0/0', settled: r.writable || r.streaming || r.waiting, standbys: r.standbys };
}

export async function readPosition(target: { host: string; port: number }, password: string, timeoutMs = 1000): Promise<Position & { standbys: string[] }> {
  return withConnection(target, password, async (c) => toPosition((await c.query<PositionRow>(POSITION_SQL)).rows[0]!), timeoutMs);
}

export interface MemberPosition {
  /** What the server says it is: primary (writable), replica, or unreachable. */
  state: 'primary' | 'replica' | 'unreachable';
  timeline: number | null;
  lsn: string | null;
  /** Bytes of WAL the member has not replayed yet, behind the writable member; null when unknown. */
  lagBytes: number | null;
  streaming: boolean;
}

/** Where each unit's Postgres is, by the `address` in its bag (units without one are left out). */
export function memberTargets(bags: Readonly<Record<string, Readonly<Record<string, string | undefined>>>>): Record<string, { host: string; port: number }> {
  const out: Record<string, { host: string; port: number }> = {};
  for (const [u, bag] of Object.entries(bags)) {
    const t = parseAddress(bag['address']);
    if (t) out[u] = t;
  }
  return out;
}

/**
 * Reads every member at once; lag is measured against the (single) writable one. `read` asks
 * one member (default: a connection of its own, opened and closed).
 */
export async function memberPositions(
  members: Record<string, { host: string; port: number }>,
  password: string,
  read: (t: { host: string; port: number }, password: string) => Promise<Position> = (t, pw) => readPosition(t, pw),
): Promise<Record<string, MemberPosition>> {
  const names = Object.keys(members);
  const got = await Promise.all(names.map((u) => read(members[u]!, password).catch(() => undefined)));
  const primaries = got.filter((p) => p?.writable);
  // Two writable members would make "lag" meaningless; it is left unknown then (and status shows both as primary).
  const head = primaries.length === 1 ? lsnValue(primaries[0]!.lsn) : undefined;
  const out: Record<string, MemberPosition> = {};
  names.forEach((u, i) => {
    const p = got[i];
    if (!p) {
      out[u] = { state: 'unreachable', timeline: null, lsn: null, lagBytes: null, streaming: false };
      return;
    }
    const behind = head === undefined ? null : p.writable ? 0 : Number(head - lsnValue(p.lsn) > 0n ? head - lsnValue(p.lsn) : 0n);
    out[u] = { state: p.writable ? 'primary' : 'replica', timeline: p.timeline, lsn: p.lsn, lagBytes: behind, streaming: p.streaming };
  });
  return out;
}

/** 0, 512 B, 16 kB, 3.2 MB: for tables. */
export function formatBytes(n: number | null): string {
  if (n === null) return '';
  if (n < 1024) return `${n} B`.replace(/^0 B$/, '0');
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}
