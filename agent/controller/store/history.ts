import type { KubeObject } from '../registry/types.js';

/** A committed change as watchers see it. */
export interface StoreEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  res: string;
  ns: string;
  name: string;
  /** The new state; for DELETED the last state, carrying the deletion's resourceVersion. */
  object: KubeObject;
  /** The state before (absent for ADDED): lets a watch with a selector turn a change into ADDED or DELETED. */
  prev?: KubeObject;
}

/**
 * The last `limit` committed events in rv order, like etcd's history before compaction:
 * watches resume from any rv at or after `start`; older ones get 410 Expired.
 */
export class History {
  private events: StoreEvent[] = [];

  constructor(
    private readonly limit: number,
    /** Every event with rv > start is kept. */
    public start: number,
  ) {}

  push(e: StoreEvent): void {
    this.events.push(e);
    // Trim in chunks so pushes stay O(1) amortized.
    if (this.events.length > this.limit + Math.max(16, this.limit >> 2)) {
      const drop = this.events.length - this.limit;
      this.start = this.events[drop - 1]!.rv;
      this.events.splice(0, drop);
    }
  }

  /** Whether every event after `rv` is still known. */
  covers(rv: number): boolean {
    return rv >= this.start;
  }

  /** Events with rv > `rv`, oldest first. */
  after(rv: number): StoreEvent[] {
    let lo = 0;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.events[mid]!.rv <= rv) lo = mid + 1;
      else hi = mid;
    }
    return this.events.slice(lo);
  }
}
