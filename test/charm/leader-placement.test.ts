import { describe, expect, it } from 'vitest';
import { decideLeaderPlacement, PLACEMENT, type PlacementFacts } from '../../agent/charm/postgresql/leader-placement.js';

const base: PlacementFacts = { leader: true, holdsPrimary: true, primarySinceMs: PLACEMENT.primaryStableMs, replicas: 2, settled: true, sinceResignMs: Infinity };

describe('decideLeaderPlacement: a leader holding the primary Lease hands leadership to a replica once settled', () => {
  it.each<[string, Partial<PlacementFacts>, boolean, RegExp]>([
    ['settled leader-primary with replicas', {}, true, /a replica leads instead/],
    ['not the leader', { leader: false }, false, /not the leader/],
    ['leader is a replica already', { holdsPrimary: false, primarySinceMs: undefined }, false, /not the primary/],
    ['single unit: nobody to lead instead', { replicas: 0 }, false, /no replica/],
    ['a reconcile is still pending', { settled: false }, false, /not settled/],
    ['primary since a moment (a failover just happened)', { primarySinceMs: PLACEMENT.primaryStableMs - 1 }, false, /primary is new/],
    ['primary since unknown', { primarySinceMs: undefined }, false, /primary is new/],
    ['resigned within the minute (nobody took it, it came back)', { sinceResignMs: PLACEMENT.resignEveryMs - 1 }, false, /a moment ago/],
    ['resigned over a minute ago', { sinceResignMs: PLACEMENT.resignEveryMs }, true, /replica leads/],
  ])('%s', (_, f, resign, why) => {
    const d = decideLeaderPlacement({ ...base, ...f });
    expect(d.resign).toBe(resign);
    expect(d.why).toMatch(why);
  });
});
