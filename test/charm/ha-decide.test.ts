import { describe, expect, it } from 'vitest';
import {
  decideHa,
  decideManualPromote,
  desiredSyncSet,
  followStep,
  isDiverged,
  restartDecision,
  NO_SYNC,
  parseSyncSet,
  syncSetBag,
  syncSetNames,
  transitionSyncSet,
  type HaSnapshot,
  type Member,
  type SyncSet,
} from '../../agent/charm/postgresql/decide.js';

/** A 3-unit cluster as pg/1 sees it; each row overrides what it is about. */
const base = (o: Partial<HaSnapshot> = {}): HaSnapshot => ({
  unit: 'pg/1',
  mode: 'quorum',
  syncCount: 1,
  maxLagBytes: 1048576,
  role: 'replica',
  lease: { holder: 'pg/0', expired: false },
  holderSync: NO_SYNC,
  peers: [
    { unit: 'pg/0', role: 'primary' },
    { unit: 'pg/2', role: 'replica' },
  ],
  recordedSync: NO_SYNC,
  now: 1_000_000,
  ...o,
});
const pos = (lsn: string, settled = true) => ({ lsn, settled });
const self = (lsn: string, writable = false) => ({ lsn, settled: true, timeline: 1, writable });
const peers = (...ms: Member[]) => ms;
const ab: SyncSet = { members: ['pg/1', 'pg/2'], k: 1 };
const expired = { holder: 'pg/0', expired: true };

describe('decideHa: one action per cycle', () => {
  it.each<[string, Partial<HaSnapshot>, string, RegExp?]>([
    // --- primary side
    ['the primary with the lease renews', { unit: 'pg/0', role: 'primary', lease: { holder: 'pg/0', expired: false }, self: self('0/5', true), streaming: [] }, 'renew', /I am the primary with the lease/],
    ['a primary whose lease another unit holds steps down', { unit: 'pg/0', role: 'primary', lease: { holder: 'pg/1', expired: false } }, 'step down', /another unit \(pg\/1\)/],
    ['a primary with no lease at all steps down', { unit: 'pg/0', role: 'primary', lease: { expired: true } }, 'step down'],
    ['a primary asked to hand over does so', { unit: 'pg/0', role: 'primary', lease: { holder: 'pg/0', expired: false, handoverTo: 'pg/2' } }, 'hand over', /switchover to pg\/2/],
    [
      'a primary whose streaming standbys differ from its set changes the set',
      { unit: 'pg/0', role: 'primary', lease: { holder: 'pg/0', expired: false }, self: self('0/5', true), streaming: ['pg/1', 'pg/2'], recordedSync: { members: ['pg/1'], k: 1 } },
      'set synchronous',
    ],
    [
      'a primary whose set matches renews',
      { unit: 'pg/0', role: 'primary', lease: { holder: 'pg/0', expired: false }, self: self('0/5', true), streaming: ['pg/2', 'pg/1'], recordedSync: ab },
      'renew',
    ],
    [
      'a fenced (read-only) primary does not touch its set',
      { unit: 'pg/0', role: 'primary', lease: { holder: 'pg/0', expired: false }, self: self('0/5', false), streaming: [], recordedSync: ab },
      'renew',
    ],
    ['a unit holding the lease before its bag says primary (bootstrap) renews', { unit: 'pg/0', role: undefined, lease: { holder: 'pg/0', expired: false } }, 'renew', /becomes primary/],
    // --- switchover target
    ['a switchover target that has the final LSN promotes', { lease: { holder: 'pg/1', expired: false, handoverLsn: '0/3000000' }, self: self('0/3000000') }, 'promote', /switchover/],
    ['a switchover target not caught up waits', { lease: { holder: 'pg/1', expired: false, handoverLsn: '0/3000100' }, self: self('0/3000000') }, 'wait', /catching up/],
    ['a switchover target whose Postgres does not answer waits', { lease: { holder: 'pg/1', expired: false, handoverLsn: '0/3000100' } }, 'wait'],
    // --- replicas
    ['a replica with a live lease does nothing', {}, 'nothing', /following pg\/0/],
    ['a unit without a role does nothing', { role: undefined, lease: expired }, 'nothing'],
    [
      'expired lease, ANY 1 (pg/1, pg/2), both answer, pg/1 ahead: pg/1 promotes',
      { lease: expired, holderSync: ab, self: self('0/3000100'), peers: peers({ unit: 'pg/0', role: 'primary' }, { unit: 'pg/2', role: 'replica', pos: pos('0/3000000') }) },
      'promote',
      /expired/,
    ],
    [
      'expired lease, both answer, pg/2 ahead: pg/1 waits for pg/2 to take over',
      { lease: expired, holderSync: ab, self: self('0/3000000'), peers: peers({ unit: 'pg/0', role: 'primary' }, { unit: 'pg/2', role: 'replica', pos: pos('0/3000100') }) },
      'wait',
      /pg\/2 is the candidate/,
    ],
    [
      'the double fault: ANY 1 (pg/1, pg/2), primary and pg/2 gone, pg/1 lagging: pg/1 does not promote alone',
      { lease: expired, holderSync: ab, self: self('0/1000000'), peers: peers({ unit: 'pg/0', role: 'primary' }, { unit: 'pg/2', role: 'replica' }) },
      'wait',
      /waiting for 1 more member of the synchronous set \[pg\/1, pg\/2\]/,
    ],
    [
      'n - k + 1 reachable: ANY 2 (pg/1, pg/2), pg/2 gone: pg/1 has every acknowledged commit and promotes',
      { lease: expired, holderSync: { members: ['pg/1', 'pg/2'], k: 2 }, self: self('0/1000000'), peers: peers({ unit: 'pg/0', role: 'primary' }, { unit: 'pg/2', role: 'replica' }) },
      'promote',
    ],
    [
      'a member of the set still replaying its WAL after a restart is waited for',
      { lease: expired, holderSync: ab, self: self('0/1000000'), peers: peers({ unit: 'pg/0', role: 'primary' }, { unit: 'pg/2', role: 'replica', pos: pos('0/0900000', false) }) },
      'wait',
      /waiting for 1 more member/,
    ],
    [
      'expired lease with an empty set (the primary acknowledged alone): nobody promotes',
      { lease: expired, holderSync: NO_SYNC, self: self('0/3000000'), peers: peers({ unit: 'pg/0', role: 'primary' }, { unit: 'pg/2', role: 'replica', pos: pos('0/3000000') }) },
      'wait',
      /without a synchronous standby/,
    ],
    [
      'the old primary answering (fenced, read-only) is not a candidate nor compared',
      { lease: expired, holderSync: ab, self: self('0/3000000'), peers: peers({ unit: 'pg/0', role: 'primary', pos: pos('0/9000000') }, { unit: 'pg/2', role: 'replica', pos: pos('0/2000000') }) },
      'promote',
    ],
    [
      'async: a standby within maximum-lag-on-failover promotes',
      { mode: 'off', lease: { ...expired, primaryLsn: '0/3080000' }, self: self('0/3000000'), peers: peers({ unit: 'pg/0', role: 'primary' }, { unit: 'pg/2', role: 'replica' }) },
      'promote',
    ],
    [
      'async: a lagging standby (more than maximum-lag-on-failover behind the published position) does not',
      { mode: 'off', maxLagBytes: 65536, lease: { ...expired, primaryLsn: '0/3080000' }, self: self('0/3000000'), peers: peers({ unit: 'pg/0', role: 'primary' }, { unit: 'pg/2', role: 'replica' }) },
      'wait',
      /maximum-lag-on-failover is 65536/,
    ],
    [
      'a unit that promised the primary not to promote (failsafe) waits while the promise holds',
      { lease: expired, holderSync: ab, self: self('0/3000100'), peers: peers({ unit: 'pg/2', role: 'replica', pos: pos('0/3000000') }), noPromoteUntil: 1_000_500 },
      'wait',
      /promised pg\/0 not to promote/,
    ],
    [
      'a failsafe promise that ran out no longer holds',
      { lease: expired, holderSync: ab, self: self('0/3000100'), peers: peers({ unit: 'pg/2', role: 'replica', pos: pos('0/3000000') }), noPromoteUntil: 999_999 },
      'promote',
    ],
  ])('%s', (_name, snap, kind, why) => {
    const d = decideHa(base(snap));
    expect(d.kind).toBe(kind);
    if (why) expect(d.why).toMatch(why);
  });

  it('keeps figures out of the reason, so a decision is logged again only when it changes', () => {
    const a = decideHa(base({ lease: expired, holderSync: ab, self: self('0/3000100'), peers: peers({ unit: 'pg/2', role: 'replica', pos: pos('0/3000000') }) }));
    const b = decideHa(base({ lease: expired, holderSync: ab, self: self('0/3000200'), peers: peers({ unit: 'pg/2', role: 'replica', pos: pos('0/3000000') }) }));
    expect(a.why).toBe(b.why);
    expect(a.detail).not.toEqual(b.detail);
  });

  it('a switchover target compares its position with the handover LSN as numbers', () => {
    expect(decideHa(base({ lease: { holder: 'pg/1', expired: false, handoverLsn: '9/0' }, self: self('10/0') })).kind).toBe('promote');
  });
});

describe('rejoining: what to do with the data directory', () => {
  it.each([
    ['no cluster yet: clone', { hasCluster: false, wasPrimary: false }, 'clone'],
    ['no cluster, even for a former primary: clone', { hasCluster: false, wasPrimary: true }, 'clone'],
    ['an old primary returning: rewind (a no-op when nothing diverged)', { hasCluster: true, wasPrimary: true }, 'rewind'],
    ['a standby on a diverged timeline: rewind', { hasCluster: true, wasPrimary: false, diverged: true }, 'rewind'],
    ['a standby in step: follow', { hasCluster: true, wasPrimary: false, diverged: false }, 'follow'],
  ] as const)('%s', (_n, o, want) => expect(followStep(o)).toBe(want));

  it.each([
    ['not streaming and behind the writable primary\'s timeline', { streaming: false, timeline: 1 }, { writable: true, timeline: 2 }, true],
    ['streaming', { streaming: true, timeline: 1 }, { writable: true, timeline: 2 }, false],
    ['on the same timeline (merely waiting)', { streaming: false, timeline: 2 }, { writable: true, timeline: 2 }, false],
    ['the primary is not writable (it is down or fenced)', { streaming: false, timeline: 1 }, { writable: false, timeline: 2 }, false],
    ['the primary does not answer', { streaming: false, timeline: 1 }, undefined, false],
  ] as const)('diverged when %s: %s', (_n, mine, primary, want) => expect(isDiverged(mine, primary)).toBe(want));
});

describe('synchronous set records', () => {
  it('the record while changing sets is a superset with the smaller k', () => {
    expect(transitionSyncSet({ members: ['pg/1'], k: 1 }, { members: ['pg/1', 'pg/2'], k: 2 })).toEqual({ members: ['pg/1', 'pg/2'], k: 1 });
    expect(transitionSyncSet(ab, NO_SYNC)).toEqual({ members: ['pg/1', 'pg/2'], k: 0 });
    expect(transitionSyncSet(NO_SYNC, ab)).toEqual({ members: ['pg/1', 'pg/2'], k: 0 });
  });
  it('is safe whichever of the two sets Postgres ran: n - k + 1 members of the record always include a holder of each commit', () => {
    const sets: SyncSet[] = [NO_SYNC, { members: ['a'], k: 1 }, { members: ['a', 'b'], k: 1 }, { members: ['a', 'b'], k: 2 }, { members: ['b', 'c'], k: 1 }, { members: ['a', 'b', 'c'], k: 2 }];
    for (const from of sets)
      for (const to of sets) {
        const rec = transitionSyncSet(from, to);
        for (const ran of [from, to]) {
          if (rec.k === 0) continue; // nobody promotes automatically
          // Any k-subset of `ran` may hold a commit; any (n - k + 1)-subset of `rec` must meet it.
          const misses = rec.members.length - (rec.members.length - rec.k + 1);
          expect(ran.k).toBeGreaterThan(misses);
          expect(ran.members.every((m) => rec.members.includes(m))).toBe(true);
        }
      }
  });
  it('renders, records and reads back', () => {
    expect(syncSetNames(ab)).toBe('ANY 1 ("pg/1", "pg/2")');
    expect(syncSetNames({ members: ['pg/1'], k: 0 })).toBe('');
    expect(parseSyncSet(syncSetBag(ab) as Record<string, string>)).toEqual(ab);
    expect(parseSyncSet({})).toEqual(NO_SYNC);
    expect(parseSyncSet({ 'synchronous-standbys': 'pg/1,pg/2' })).toEqual(ab); // recorded before the count was
    expect(parseSyncSet({ 'synchronous-standbys': 'pg/1', 'synchronous-count': 'x' }).k).toBe(0);
    expect(desiredSyncSet('quorum', 2, ['pg/2', 'pg/1'])).toEqual({ members: ['pg/1', 'pg/2'], k: 2 });
    expect(desiredSyncSet('off', 2, ['pg/2'])).toEqual(NO_SYNC);
  });
});

describe('promote-to-primary', () => {
  const doubleFault = base({ lease: { ...expired, primaryLsn: '0/3000000' }, holderSync: ab, self: self('0/1000000'), peers: peers({ unit: 'pg/0', role: 'primary' }, { unit: 'pg/2', role: 'replica' }) });
  it('is refused without force when the rule forbids it, with the rule\'s reason', () => {
    const r = decideManualPromote(doubleFault, false);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.why).toMatch(/waiting for 1 more member.*force=true/);
  });
  it('with force promotes and reports the gap to the last known positions', () => {
    const r = decideManualPromote(doubleFault, true);
    expect(r).toMatchObject({ ok: true, forced: true, gapBytes: 0x2000000, known: { 'pg/0': '0/3000000', 'pg/1': '0/1000000', 'pg/2': null } });
  });
  it('is not forced when the rule allows it', () => {
    const r = decideManualPromote(base({ lease: expired, holderSync: { ...ab, k: 2 }, self: self('0/1000000') }), false);
    expect(r).toMatchObject({ ok: true, forced: false, gapBytes: 0 });
  });
  it.each([
    ['a live lease (that is a switchover)', base({ self: self('0/1') }), /holds a live primary lease.*switchover to=pg\/1/],
    ['the primary itself', base({ unit: 'pg/0', role: 'primary', lease: { holder: 'pg/0', expired: false }, self: self('0/1', true) }), /already the primary/],
    ['a unit whose Postgres does not answer', base({ lease: expired }), /does not answer/],
    ['a unit that is not a replica', base({ role: undefined, lease: expired, self: self('0/1') }), /not a replica/],
  ])('is refused for %s, even with force', (_n, snap, why) => {
    const r = decideManualPromote(snap, true);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.why).toMatch(why);
  });
});

describe('restart order for restart-class changes (restartDecision)', () => {
  const run = (unit: string, role = 'replica') => ({ unit, role, configHash: 'h2' });
  const old = (unit: string, role = 'replica') => ({ unit, role, configHash: 'h1' });
  const pendingRestart = (unit: string, role = 'replica') => ({ unit, role, configHash: 'h2', restartPending: 'max_connections' });
  const base = { pending: ['max_connections'], lowered: [] as string[], hash: 'h2', primary: 'pg/0' };
  it.each([
    ['nothing pending: nothing', { ...base, role: 'primary' as const, pending: [], peers: [old('pg/1')] }, 'nothing', []],
    ['raised, on a replica: at once', { ...base, role: 'replica' as const, peers: [old('pg/0', 'primary'), old('pg/2')] }, 'restart', []],
    ['raised, on the primary, a replica on the old config: later', { ...base, role: 'primary' as const, peers: [run('pg/1'), old('pg/2')] }, 'restart later', ['pg/2']],
    ['raised, on the primary, a replica still to restart: later', { ...base, role: 'primary' as const, peers: [run('pg/1'), pendingRestart('pg/2')] }, 'restart later', ['pg/2']],
    ['raised, on the primary, every replica runs it: now', { ...base, role: 'primary' as const, peers: [run('pg/1'), run('pg/2')] }, 'restart', []],
    ['raised, on the primary, a unit without a role does not hold it up', { ...base, role: 'primary' as const, peers: [run('pg/1'), { unit: 'pg/2' }] }, 'restart', []],
    ['lowered, on the primary: at once', { ...base, lowered: ['max_connections'], role: 'primary' as const, peers: [old('pg/1'), old('pg/2')] }, 'restart', []],
    ['lowered, on a replica, the primary not yet: later', { ...base, lowered: ['max_connections'], role: 'replica' as const, peers: [old('pg/0', 'primary')] }, 'restart later', ['pg/0']],
    ['lowered, on a replica, the primary restarting: later', { ...base, lowered: ['max_connections'], role: 'replica' as const, peers: [pendingRestart('pg/0', 'primary')] }, 'restart later', ['pg/0']],
    ['lowered, on a replica, the primary runs it: now', { ...base, lowered: ['max_connections'], role: 'replica' as const, peers: [run('pg/0', 'primary')] }, 'restart', []],
    ['lowered, on a replica that has not replayed the primary\'s new value yet: later', { ...base, lowered: ['max_connections'], notReplayed: ['max_connections'], role: 'replica' as const, peers: [run('pg/0', 'primary')] }, 'restart later', ['pg/0']],
    ['lowered, the not-replayed check does not hold up the primary', { ...base, lowered: ['max_connections'], notReplayed: ['max_connections'], role: 'primary' as const, peers: [old('pg/1')] }, 'restart', []],
    ['lowered, on a replica whose primary is not a peer: later', { ...base, lowered: ['max_connections'], role: 'replica' as const, peers: [] }, 'restart later', ['pg/0']],
  ])('%s', (_n, o, kind, waitingFor) => {
    const d = restartDecision(o);
    expect(d.kind).toBe(kind);
    if (d.kind === 'restart later') expect(d.waitingFor).toEqual(waitingFor);
  });
});
