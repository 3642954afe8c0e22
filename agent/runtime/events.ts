/**
 * The unit's event queue. Events run one at a time in arrival order; an event already waiting
 * is not queued twice (two config edits before the handler runs make one config-changed, as
 * in Juju). A deferred event is re-run before each following event, as ops does.
 */

export interface QueuedEvent {
  /** Juju's event name. */
  name: string;
  /** Identity for coalescing; defaults to the name. */
  key?: string;
  remoteUnit?: string;
  appChanged?: boolean;
  actionId?: number;
  /** Events of a relation with another application: its id. */
  relationId?: number;
  /** secret-changed: the secret and its new revision. */
  secret?: { id: string; revision: number };
}

export const keyOf = (e: QueuedEvent): string => e.key ?? e.name;

export class EventQueue {
  private pending: QueuedEvent[] = [];
  private deferred: QueuedEvent[] = [];
  private wake: (() => void) | undefined;

  push(e: QueuedEvent): void {
    const k = keyOf(e);
    if (this.pending.some((p) => keyOf(p) === k)) return;
    this.pending.push(e);
    this.wake?.();
  }

  defer(e: QueuedEvent): void {
    const k = keyOf(e);
    if (!this.deferred.some((d) => keyOf(d) === k)) this.deferred.push(e);
  }

  /** Drops a deferred copy once the same event ran to completion. */
  settled(e: QueuedEvent): void {
    const k = keyOf(e);
    this.deferred = this.deferred.filter((d) => keyOf(d) !== k);
  }

  /**
   * The next batch to run: the deferred events first, then the next new one. Waits while
   * there is nothing new; deferred events alone do not spin.
   */
  async next(signal: { stopped: boolean }): Promise<QueuedEvent[]> {
    while (this.pending.length === 0 && !signal.stopped) {
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
    if (signal.stopped) return [];
    const e = this.pending.shift()!;
    const k = keyOf(e);
    // A deferred copy of the same event runs in its place.
    return [...this.deferred.filter((d) => keyOf(d) !== k), e];
  }

  /** Unblocks next() so a stopping agent can leave its loop. */
  interrupt(): void {
    this.wake?.();
  }

  get size(): number {
    return this.pending.length;
  }

  deferredNames(): string[] {
    return this.deferred.map(keyOf);
  }
}
