import { describe, expect, test } from 'vitest';
import { formatBytes } from '../../agent/charm/postgresql/positions.js';
import { decideReclone, describeSlot, RECEIVER_GRACE_MS, segmentStartLsn, type SlotObservation, type SlotUsage } from '../../agent/charm/postgresql/slots.js';

const MB = 1024 ** 2;

describe('re-clone when the WAL a standby needs is gone', () => {
  const base: SlotObservation = { streaming: false, notStreamingMs: 0 };
  test.each<[string, SlotObservation, { reclone: boolean; recheck: boolean; why: RegExp }]>([
    ['streaming: never, even with a lost slot', { ...base, streaming: true, slot: { walStatus: 'lost', active: true }, standbyLsn: '0/1000000', primaryOldestLsn: '0/9000000' }, { reclone: false, recheck: false, why: /^streaming$/ }],
    ['needs WAL older than the primary has, slot lost (the measured case)', { ...base, slot: { walStatus: 'lost', active: false }, standbyLsn: '0/4000078', primaryOldestLsn: '0/7C000000' }, { reclone: true, recheck: false, why: /needs WAL from 0\/4000078, but the primary's oldest WAL starts at 0\/7C000000 \(slot postgresql_0 was invalidated/ }],
    ['needs WAL older than the primary has, slot gone altogether', { ...base, standbyLsn: '0/4000078', primaryOldestLsn: '0/7C000000' }, { reclone: true, recheck: false, why: /needs WAL from 0\/4000078/ }],
    ['compares across the 32-bit boundary', { ...base, slot: { walStatus: 'reserved', active: false }, standbyLsn: 'FF/FF000000', primaryOldestLsn: '100/0' }, { reclone: true, recheck: false, why: /needs WAL/ }],
    ['slot lost but its WAL still there: the receiver gets a moment first', { ...base, slot: { walStatus: 'lost', active: false }, standbyLsn: '0/7D000078', primaryOldestLsn: '0/7C000000' }, { reclone: false, recheck: true, why: /giving the WAL receiver a moment/ }],
    ['slot lost, oldest segment unknown, not streaming past the grace', { ...base, slot: { walStatus: 'lost', active: false }, standbyLsn: '0/8000000', notStreamingMs: RECEIVER_GRACE_MS }, { reclone: true, recheck: false, why: /invalidated by max_slot_wal_keep_size and the standby has not streamed for 3 s/ }],
    ['slot unreserved (about to go) and WAL still there: not yet', { ...base, slot: { walStatus: 'unreserved', active: false }, standbyLsn: '0/7D000078', primaryOldestLsn: '0/7C000000', notStreamingMs: 60_000 }, { reclone: false, recheck: false, why: /still on the primary/ }],
    ['just restarted, slot reserved, WAL there: no', { ...base, slot: { walStatus: 'reserved', active: false }, standbyLsn: '0/7D000000', primaryOldestLsn: '0/7C000000' }, { reclone: false, recheck: false, why: /still on the primary/ }],
    ['exactly at the oldest segment: still there', { ...base, slot: { walStatus: 'extended', active: false }, standbyLsn: '0/7C000000', primaryOldestLsn: '0/7C000000' }, { reclone: false, recheck: false, why: /still on the primary/ }],
    ['nothing known about the primary (down): no', { ...base, standbyLsn: '0/4000078', notStreamingMs: 60_000 }, { reclone: false, recheck: false, why: /still on the primary/ }],
  ])('%s', (_, o, want) => {
    const d = decideReclone(o, 'postgresql_0');
    expect({ reclone: d.reclone, recheck: d.recheck }).toEqual({ reclone: want.reclone, recheck: want.recheck });
    expect(d.why).toMatch(want.why);
  });

  test.each<[string, number, string | undefined]>([
    ['000000010000000000000004', 16 * MB, '0/4000000'],
    ['00000002000000000000007C', 16 * MB, '0/7C000000'],
    ['0000000100000001000000FF', 16 * MB, '1/FF000000'],
    ['000000010000000A00000003', 64 * MB, 'A/C000000'],
    ['00000001.history', 16 * MB, undefined],
    ['000000010000000000000004.partial', 16 * MB, undefined],
  ])('segment %s (%i-byte segments) starts at %s', (name, size, want) => {
    expect(segmentStartLsn(name, size)).toBe(want);
  });
});

describe('slot in status', () => {
  const GB = 1024 ** 3;
  test.each<[string, SlotUsage, string]>([
    ['streaming, little held back: nothing to say', { retained: 2 * MB, bound: GB, walStatus: 'reserved', safe: GB - 2 * MB, active: true }, ''],
    ['inactive (unit down): how much it holds', { retained: 830 * MB, bound: GB, walStatus: 'reserved', safe: 300 * MB, active: false }, 'slot: 830 MB retained of 1.0 GB'],
    ['under a fifth left: a warning', { retained: 900 * MB, bound: GB, walStatus: 'unreserved', safe: 150 * MB, active: false }, 'warning: slot: 900 MB retained of 1.0 GB, 150 MB left before it is invalidated'],
    ['past the bound, not yet invalidated', { retained: 656 * MB, bound: 256 * MB, walStatus: 'unreserved', safe: -400 * MB, active: false }, 'warning: slot: 656 MB retained, past its 256 MB bound: lost at the next checkpoint'],
    ['lost', { retained: null, bound: GB, walStatus: 'lost', safe: null, active: false }, 'slot lost (max_slot_wal_keep_size): the unit re-clones to catch up'],
    ['unbounded and inactive', { retained: 5 * GB, bound: null, walStatus: 'extended', safe: null, active: false }, 'slot: 5.0 GB retained'],
    ['active but lagging past half the bound', { retained: 600 * MB, bound: GB, walStatus: 'reserved', safe: 424 * MB, active: true }, 'slot: 600 MB retained of 1.0 GB'],
  ])('%s', (_, u, want) => {
    expect(describeSlot(u, formatBytes)).toBe(want);
  });
});
