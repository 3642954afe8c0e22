import type { CharmLoop, LoopContext } from '../../runtime/charm.js';
import { objects } from '../../runtime/names.js';
import { state } from './state.js';

/**
 * The leader (Juju leadership: who coordinates, and who alone writes the application's bags)
 * should not be the primary. A unit lost with both roles costs a failover *and* a leader
 * election: what only the leader does waits the leader lease out (8 s), among it moving the
 * `database` relation's endpoints to the new primary. CloudNativePG keeps its operator apart
 * from the instances for the same reason. So once the cluster has settled, a leader that holds
 * the primary Lease gives leadership to a replica (the runtime releases the leader Lease; a
 * replica's agent takes it at once, and it comes back here only if nobody does).
 */

/** How long the primary must have held the Lease, and how long since the last resignation. */
export const PLACEMENT = { primaryStableMs: 10_000, resignEveryMs: 60_000 } as const;

export interface PlacementFacts {
  leader: boolean;
  /** This unit holds the primary Lease. */
  holdsPrimary: boolean;
  /** Since when (this process's clock) this unit has held it; undefined when it does not. */
  primarySinceMs: number | undefined;
  /** Other units whose bag says replica. */
  replicas: number;
  /** The last reconcile left nothing pending (no restart, no wait for a failover). */
  settled: boolean;
  /** Since this process last resigned (Infinity when it never did). */
  sinceResignMs: number;
}

export function decideLeaderPlacement(f: PlacementFacts): { resign: boolean; why: string } {
  if (!f.leader) return { resign: false, why: 'not the leader' };
  if (!f.holdsPrimary) return { resign: false, why: 'the leader is not the primary' };
  if (f.replicas < 1) return { resign: false, why: 'no replica to lead instead' };
  if (!f.settled) return { resign: false, why: 'the cluster has not settled' };
  if ((f.primarySinceMs ?? 0) < PLACEMENT.primaryStableMs) return { resign: false, why: 'the primary is new' };
  if (f.sinceResignMs < PLACEMENT.resignEveryMs) return { resign: false, why: 'resigned a moment ago' };
  return { resign: true, why: 'the leader holds the primary lease: a replica leads instead, so losing the primary does not also cost a leader election' };
}

let primarySince: number | undefined;
let resignedAt = -Infinity;

export const leaderPlacementLoop: CharmLoop = {
  name: 'leader-placement',
  everyMs: () => 5000,
  async run(ctx: LoopContext): Promise<void> {
    const holder = ctx.leases.get(objects.primaryLease(ctx.app))?.lease.spec?.holderIdentity;
    const holds = holder === ctx.unit;
    if (!holds) primarySince = undefined;
    else primarySince ??= Date.now();
    const bags = ctx.bags();
    const d = decideLeaderPlacement({
      leader: ctx.isLeader(),
      holdsPrimary: holds,
      primarySinceMs: primarySince === undefined ? undefined : Date.now() - primarySince,
      replicas: [...bags.peers.values()].filter((b) => b['role'] === 'replica').length,
      settled: state.settledOn !== undefined,
      sinceResignMs: Date.now() - resignedAt,
    });
    if (!d.resign || !(await ctx.resignLeadership(d.why))) return;
    resignedAt = Date.now();
    ctx.log.info({ decision: 'resign leadership', why: d.why }, 'leader placement');
  },
};
