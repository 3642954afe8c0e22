import type pg from '#pg';
import { lsnValue } from './decide.js';
import { readPosition } from './positions.js';
import { withConnection } from './workload.js';

/**
 * Replication slots bounded by max_slot_wal_keep_size (profile.ts slotWalKeepSize): a standby
 * that stays away too long loses its slot, and the primary removes the WAL it would need. It
 * can then never stream again from that copy; it must re-clone (or, once backups exist, fetch
 * the WAL from the archive). The decision is a pure function of what the primary and the
 * standby report; the observations are read by observeSlot and slotUsage.
 */

/** pg_replication_slots.wal_status (PostgreSQL 13+). */
export type WalStatus = 'reserved' | 'extended' | 'unreserved' | 'lost';

export interface SlotObservation {
  /** This standby's slot on the primary: undefined when there is none. */
  slot?: { walStatus: WalStatus | null; active: boolean };
  /** Start LSN of the oldest WAL segment still in the primary's pg_wal; undefined when unknown. */
  primaryOldestLsn?: string;
  /** The standby's WAL receiver is streaming. */
  streaming: boolean;
  /** The standby's last replayed LSN: it needs the WAL from there on. */
  standbyLsn?: string;
  /** How long the standby has been seen not streaming, in ms (0 at the first look). */
  notStreamingMs: number;
}

export interface RecloneDecision {
  reclone: boolean;
  /** Worth looking again shortly (the slot is lost, the receiver is given a moment). */
  recheck: boolean;
  why: string;
}

/** How long a standby whose slot is lost but whose WAL may still be there is given to start streaming. */
export const RECEIVER_GRACE_MS = 3000;

/**
 * Whether a standby must re-clone because the WAL it needs is gone from its primary:
 * - streaming: no, whatever the slot says;
 * - the WAL from its replay position on is no longer in the primary's pg_wal: yes, at once
 *   (it can never arrive: the walreceiver fails with "requested WAL segment ... has already
 *   been removed");
 * - its slot was invalidated (wal_status lost) and it has not streamed for RECEIVER_GRACE_MS:
 *   yes (the oldest segment may be unknown, or an older timeline's segments linger in pg_wal);
 * - otherwise no: not streaming for another reason (the primary is starting, down, ...) is the
 *   HA cycle's business, not a reason to copy the database again.
 */
export function decideReclone(o: SlotObservation, slotName: string): RecloneDecision {
  if (o.streaming) return { reclone: false, recheck: false, why: 'streaming' };
  if (o.standbyLsn && o.primaryOldestLsn && lsnValue(o.standbyLsn) < lsnValue(o.primaryOldestLsn)) {
    return {
      reclone: true,
      recheck: false,
      why: `needs WAL from ${o.standbyLsn}, but the primary's oldest WAL starts at ${o.primaryOldestLsn}${o.slot?.walStatus === 'lost' ? ` (slot ${slotName} was invalidated by max_slot_wal_keep_size)` : ''}`,
    };
  }
  if (o.slot?.walStatus === 'lost') {
    if (o.notStreamingMs < RECEIVER_GRACE_MS) return { reclone: false, recheck: true, why: `slot ${slotName} was invalidated; giving the WAL receiver a moment` };
    return { reclone: true, recheck: false, why: `slot ${slotName} was invalidated by max_slot_wal_keep_size and the standby has not streamed for ${Math.round(o.notStreamingMs / 1000)} s` };
  }
  return { reclone: false, recheck: false, why: 'not streaming, but the WAL it needs is still on the primary' };
}

/** A WAL file name (TTTTTTTTXXXXXXXXYYYYYYYY) -> the LSN its segment starts at; undefined if it is not one. */
export function segmentStartLsn(name: string, segmentSize: number): string | undefined {
  const m = /^[0-9A-F]{8}([0-9A-F]{8})([0-9A-F]{8})$/.exec(name);
  if (!m || !(segmentSize > 0)) return undefined;
  const pos = (BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`) * BigInt(segmentSize);
  return `${(pos >> 32n).toString(16).toUpperCase()}/${(pos & 0xffffffffn).toString(16).toUpperCase()}`;
}

/**
 * The primary's side of an observation: `slot` on it, and the oldest WAL segment in its
 * pg_wal, by position (an older timeline's files count by their position too).
 */
export async function primarySlotState(c: pg.Client, slot: string): Promise<Pick<SlotObservation, 'slot' | 'primaryOldestLsn'>> {
  const r = (
    await c.query<{ wal_status: WalStatus | null; active: boolean | null; oldest: string | null; seg: string }>(
      `SELECT s.wal_status, s.active,
              (SELECT '00000000' || min(substr(name, 9, 16)) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$') AS oldest,
              (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS seg
         FROM (SELECT 1) one LEFT JOIN pg_replication_slots s ON s.slot_name = $1`,
      [slot],
    )
  ).rows[0]!;
  const oldest = r.oldest ? segmentStartLsn(r.oldest, Number(r.seg)) : undefined;
  return { ...(r.active !== null ? { slot: { walStatus: r.wal_status, active: r.active } } : {}), ...(oldest ? { primaryOldestLsn: oldest } : {}) };
}

/**
 * Drops `slot` on the primary unless a walsender uses it, so the re-clone's slot is created
 * afresh (an invalidated slot never reserves WAL again).
 */
export async function dropSlot(c: pg.Client, slot: string): Promise<void> {
  await c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [slot]);
}

/** One slot as `pgcharm status` shows it. */
export interface SlotUsage {
  /** Bytes of WAL the slot holds back (current LSN − restart_lsn); null once it lost its WAL. */
  retained: number | null;
  /** max_slot_wal_keep_size in bytes; null when unbounded (-1). */
  bound: number | null;
  walStatus: WalStatus | null;
  /** Bytes that can still be written before the slot is invalidated; null when unbounded or lost. */
  safe: number | null;
  active: boolean;
}

/** Every physical slot on a primary by name, with max_slot_wal_keep_size. */
export async function slotUsage(target: { host: string; port: number }, password: string): Promise<Record<string, SlotUsage>> {
  return withConnection(
    target,
    password,
    async (c) => {
      const rows = (
        await c.query<{ slot_name: string; retained: string | null; bound: string; wal_status: WalStatus | null; safe: string | null; active: boolean }>(
          `SELECT slot_name, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text AS retained,
                  (SELECT setting FROM pg_settings WHERE name = 'max_slot_wal_keep_size') AS bound,
                  wal_status, safe_wal_size::text AS safe, active
             FROM pg_replication_slots WHERE slot_type = 'physical' AND NOT pg_is_in_recovery()`,
        )
      ).rows;
      const out: Record<string, SlotUsage> = {};
      for (const r of rows) {
        const bound = Number(r.bound);
        out[r.slot_name] = {
          retained: r.retained === null ? null : Number(r.retained),
          bound: bound >= 0 ? bound * 1024 * 1024 : null, // the setting is in MB
          walStatus: r.wal_status,
          safe: r.safe === null ? null : Number(r.safe),
          active: r.active,
        };
      }
      return out;
    },
    1000,
  );
}

/** Below this share of its bound still free, a slot is about to be invalidated: status warns. */
export const SLOT_WARN_FREE = 0.2;

/**
 * The status text for a unit's slot: empty while nothing is worth saying (streaming and holding
 * back little); "slot: 830 MB retained of 1.0 GB"; a warning once less than SLOT_WARN_FREE of the
 * bound is left; what happens once it is lost.
 */
export function describeSlot(u: SlotUsage, fmt: (n: number | null) => string): string {
  if (u.walStatus === 'lost') return 'slot lost (max_slot_wal_keep_size): the unit re-clones to catch up';
  if (u.retained === null) return '';
  const of = u.bound === null ? '' : ` of ${fmt(u.bound)}`;
  const text = `slot: ${fmt(u.retained)} retained${of}`;
  // Past the bound, PostgreSQL invalidates the slot at its next checkpoint (safe_wal_size <= 0 until then).
  if (u.bound !== null && u.safe !== null && u.safe <= 0) return `warning: slot: ${fmt(u.retained)} retained, past its ${fmt(u.bound)} bound: lost at the next checkpoint`;
  if (u.bound !== null && u.safe !== null && u.safe < u.bound * SLOT_WARN_FREE) return `warning: ${text}, ${fmt(u.safe)} left before it is invalidated`;
  if (u.active && (u.bound === null || u.retained < u.bound / 2)) return '';
  return text;
}

/**
 * Looks at this standby and its slot on the primary (readPosition on `me`, primarySlotState on
 * `primary`) until decideReclone is sure: at once in the usual cases (streaming; WAL gone; not
 * streaming for a reason that is not the slot), at most RECEIVER_GRACE_MS and a bit when the
 * slot is lost and the receiver might still start. A primary that does not answer: no re-clone.
 */
export async function checkLostWal(me: { host: string; port: number }, primary: { host: string; port: number }, password: string, slot: string): Promise<RecloneDecision> {
  const t0 = Date.now();
  for (;;) {
    const mine = await readPosition(me, password).catch(() => undefined);
    if (mine?.streaming) return { reclone: false, recheck: false, why: 'streaming' }; // the usual case: no call to the primary
    const theirs = mine && (await withConnection(primary, password, (c) => primarySlotState(c, slot), 2000).catch(() => undefined));
    if (!mine || !theirs) return { reclone: false, recheck: false, why: 'this standby or its primary does not answer' };
    const d = decideReclone({ ...theirs, streaming: mine.streaming, standbyLsn: mine.lsn, notStreamingMs: Date.now() - t0 }, slot);
    if (!d.recheck || Date.now() - t0 > RECEIVER_GRACE_MS + 2000) return d;
    await new Promise((r) => setTimeout(r, 500));
  }
}
