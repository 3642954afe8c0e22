import { EventEmitter } from 'node:events';
import type { V1Lease } from '#client-node';
import type { Logger } from 'pino';
import { isNotFound, type Kube } from './kube.js';
import { LABELS } from './names.js';
import { watchPath, type Watcher } from './store.js';

/**
 * The labels every Lease of `app` carries: written with each create and renewal, so a Lease
 * made before they existed gains them at its holder's next renewal. Until then the watch
 * misses it, and a reader falls back to reading it from the store (takeovers always do).
 */
export const leaseLabels = (app: string): Record<string, string> => ({ [LABELS.app]: app, [LABELS.managedBy]: 'pgcharm' });

/** A Lease as this process last saw it, and when its record last changed on this process's clock. */
export interface SeenLease {
  lease: V1Lease;
  /** Local clock (ms) when the holder, renew time or transitions were first seen as they are now. */
  changedAt: number;
}

/** What identifies a renewal: the same record for a whole lease duration means the holder stopped. */
export function leaseRecord(l: V1Lease | undefined): string {
  const s = l?.spec;
  return JSON.stringify([s?.holderIdentity ?? '', s?.renewTime ? new Date(s.renewTime).getTime() : 0, s?.acquireTime ? new Date(s.acquireTime).getTime() : 0, s?.leaseTransitions ?? 0, s?.leaseDurationSeconds ?? 0]);
}

/**
 * An informer over this application's Leases (leader and primary): the agent's only view of
 * them, so a unit that does not hold a lease makes no request at all to follow it. Renewals
 * arrive by watch; expiry is measured from when a record was first seen here, on this
 * process's clock (client-go's rule), and a timer says so the moment a lease expires.
 *
 * A cache can be stale (a watch that broke and has not re-listed yet): whoever acts on an
 * expiry reads the Lease fresh first (`fresh`), and every write is a compare-and-swap, so a
 * stale view costs a retry, never a second holder.
 *
 * Emits 'change' (name) when someone else changed a lease's holder or annotations (not for a
 * mere renewal, nor for this process's own writes), 'expired' (name) when a held lease went a
 * whole duration without a renewal, 'own-holder' (name) when this process's own write changed
 * a holder (it took a lease, or gave one up).
 */
export class LeaseCache extends EventEmitter {
  private readonly seen = new Map<string, SeenLease>();
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();
  private watcher: Watcher | undefined;
  private listed = false;

  constructor(
    private readonly kube: Kube,
    /** The application whose Leases to follow: they carry its label (leaseLabels), so the watch
     * brings only them, not every renewal of every other application in the namespace. */
    private readonly app: string,
    private readonly log: Logger,
  ) {
    super();
  }

  private follows(name: string): boolean {
    return name.startsWith(`${this.app}-`);
  }

  start(): void {
    if (this.watcher) return;
    const ns = this.kube.namespace;
    const selector = `${LABELS.app}=${this.app}`;
    this.watcher = watchPath<V1Lease>(
      this.kube,
      `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
      () => this.kube.coordination.listNamespacedLease({ namespace: ns, labelSelector: selector }),
      selector,
      {
        upsert: (l) => this.put(l),
        remove: (l) => this.drop(l.metadata?.name ?? ''),
        synced: (all) => {
          const present = new Set(all.map((l) => l.metadata?.name ?? ''));
          for (const name of [...this.seen.keys()]) if (!present.has(name)) this.drop(name);
          this.listed = true;
        },
      },
      this.log,
    );
  }

  async stop(): Promise<void> {
    for (const t of this.expiryTimers.values()) clearTimeout(t);
    this.expiryTimers.clear();
    await this.watcher?.stop();
    this.watcher = undefined;
  }

  /** True once the first list arrived: until then `get` knows nothing and callers read the store. */
  get ready(): boolean {
    return this.listed;
  }

  get(name: string): SeenLease | undefined {
    return this.seen.get(name);
  }

  /**
   * Records a Lease: from the watch, or one this process just wrote (`own`) or read (a write's
   * response is newer than the watch event that will follow it; an older resourceVersion is
   * ignored).
   */
  put(l: V1Lease, own = false): void {
    const name = l.metadata?.name ?? '';
    if (!this.follows(name)) return;
    const before = this.seen.get(name);
    if (before && olderThan(l, before.lease)) return;
    const record = leaseRecord(l);
    const recordChanged = !before || leaseRecord(before.lease) !== record;
    const changedAt = recordChanged ? Date.now() : before.changedAt;
    this.seen.set(name, { lease: l, changedAt });
    if (recordChanged) this.armExpiry(name, l, changedAt);
    const holderChanged = before?.lease.spec?.holderIdentity !== l.spec?.holderIdentity;
    const annotationsChanged = JSON.stringify(before?.lease.metadata?.annotations ?? {}) !== JSON.stringify(l.metadata?.annotations ?? {});
    if (!own && (holderChanged || annotationsChanged)) this.emit('change', name);
    // This process took or gave a lease: the loops that follow its holder look at once.
    if (own && holderChanged && before) this.emit('own-holder', name);
  }

  /**
   * The Lease read from the store now (noted in the cache), or undefined when there is none. A
   * copy: a caller that edits it for a compare-and-swap must not change what the cache holds
   * (it did: a takeover's edit made the cache show the new holder before the write, so no
   * change was seen when the write landed, and a refused takeover would have left it so).
   */
  async fresh(name: string): Promise<V1Lease | undefined> {
    try {
      const l = await this.kube.coordination.readNamespacedLease({ name, namespace: this.kube.namespace });
      this.put(l);
      return structuredClone(l);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      this.drop(name);
      return undefined;
    }
  }

  private drop(name: string): void {
    if (!this.seen.delete(name)) return;
    clearTimeout(this.expiryTimers.get(name));
    this.expiryTimers.delete(name);
    this.emit('change', name);
  }

  private armExpiry(name: string, l: V1Lease, changedAt: number): void {
    clearTimeout(this.expiryTimers.get(name));
    this.expiryTimers.delete(name);
    const seconds = l.spec?.leaseDurationSeconds;
    if (!l.spec?.holderIdentity || !seconds) return;
    const t = setTimeout(() => {
      this.expiryTimers.delete(name);
      this.emit('expired', name);
    }, Math.max(0, changedAt + seconds * 1000 - Date.now()) + 1);
    t.unref();
    this.expiryTimers.set(name, t);
  }
}

/** resourceVersions are opaque, but both servers we speak to issue increasing integers. */
function olderThan(a: V1Lease, b: V1Lease): boolean {
  const ra = Number(a.metadata?.resourceVersion);
  const rb = Number(b.metadata?.resourceVersion);
  return Number.isFinite(ra) && Number.isFinite(rb) && ra < rb;
}
