import { V1MicroTime, type V1Lease } from '#client-node';
import { isConflict, isNotFound, type Kube } from '../../runtime/kube.js';
import { leaseLabels, leaseRecord, type LeaseCache } from '../../runtime/leases.js';
import { objects } from '../../runtime/names.js';

/**
 * Lease `<app>-primary`: held by the unit whose Postgres accepts writes. The holder renews
 * it; another unit may take it only once the record stayed unchanged for a whole lease
 * duration on the taker's own clock (client-go rules, no clock comparison across units). Every
 * write is compare-and-swap on resourceVersion.
 *
 * Read through the agent's Lease watch (runtime/leases.ts): following the lease costs a
 * standby no request. What decides a takeover is read fresh from the store: a stale watch
 * must not make a live primary look expired.
 */
export class PrimaryLease {
  private observedRecord = '';
  private observedAt = 0;
  /** When our last successful renewal was sent (local clock), for the fence deadline. */
  lastRenewSentAt = 0;

  constructor(
    private readonly kube: Kube,
    private readonly app: string,
    private readonly cache?: LeaseCache,
  ) {}

  private get name(): string {
    return objects.primaryLease(this.app);
  }

  /** The Lease as the watch has it (a copy), else read from the store. */
  async read(): Promise<V1Lease | undefined> {
    if (this.cache?.ready) {
      const seen = this.cache.get(this.name);
      return seen ? structuredClone(seen.lease) : undefined;
    }
    return this.fresh();
  }

  /** The Lease read from the store now. */
  async fresh(): Promise<V1Lease | undefined> {
    if (this.cache) return this.cache.fresh(this.name);
    try {
      return await this.kube.coordination.readNamespacedLease({ name: this.name, namespace: this.kube.namespace });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** Whether reads come from the watch (a caller about to act on an expiry then confirms with `fresh`). */
  get watched(): boolean {
    return Boolean(this.cache?.ready);
  }

  /** The unit recorded as primary (whether or not its lease is still fresh), or undefined. */
  async holder(): Promise<string | undefined> {
    return (await this.read())?.spec?.holderIdentity || undefined;
  }

  /**
   * Notes the record as seen now and says whether it has been unchanged for a lease duration
   * on our clock (or nobody holds it): only then may another unit take it.
   */
  expired(lease: V1Lease | undefined, ttlMs: number): boolean {
    if (!lease?.spec?.holderIdentity) return true;
    const record = leaseRecord(lease);
    // The watch noted when this record first arrived (usually before this caller looks).
    const seen = this.cache?.get(this.name);
    if (seen && leaseRecord(seen.lease) === record) {
      if (record !== this.observedRecord || seen.changedAt < this.observedAt) {
        this.observedRecord = record;
        this.observedAt = seen.changedAt;
      }
    } else if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = Date.now();
      return false;
    }
    return Date.now() - this.observedAt >= ttlMs;
  }

  /**
   * Takes or renews the lease for `unit`. `mayTake` says whether taking it from someone else
   * is allowed (their lease expired on our clock). Returns true when we hold it afterwards.
   */
  async acquire(unit: string, ttlMs: number, mayTake: (current: V1Lease) => boolean, publish?: { lsn?: string }, base?: V1Lease, retried = false): Promise<boolean> {
    const sent = Date.now();
    const now = new V1MicroTime(sent);
    const seconds = Math.max(1, Math.ceil(ttlMs / 1000));
    // `base`, a copy just read, saves a round trip; the compare-and-swap still catches any change
    // since. Without one: our own lease as the watch has it (our writes keep it current), else
    // fresh from the store (taking a lease is decided on what the store says now).
    const cached = base ?? (this.cache?.ready ? this.cache.get(this.name)?.lease : undefined);
    const lease = cached && cached.spec?.holderIdentity === unit ? micro(structuredClone(cached)) : base ? micro(structuredClone(base)) : await this.fresh();
    if (!lease) {
      try {
        await this.kube.coordination.createNamespacedLease({
          namespace: this.kube.namespace,
          body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.name, labels: leaseLabels(this.app), ...(publish?.lsn ? { annotations: { [PRIMARY_LSN]: publish.lsn } } : {}) }, spec: { holderIdentity: unit, leaseDurationSeconds: seconds, acquireTime: now, renewTime: now, leaseTransitions: 0 } },
        });
      } catch (e) {
        if (isConflict(e)) return false;
        throw e;
      }
      if (this.cache) await this.cache.fresh(this.name).catch(() => undefined);
      this.lastRenewSentAt = sent;
      return true;
    }
    const spec = lease.spec ?? {};
    const mine = spec.holderIdentity === unit;
    if (!mine && spec.holderIdentity && !mayTake(lease)) return false;
    const ann = { ...(lease.metadata?.annotations ?? {}) };
    if (!mine) {
      // A takeover ends any switchover that was under way, and the old primary's position.
      delete ann[HANDOVER_TO];
      delete ann[HANDOVER_LSN];
      delete ann[PRIMARY_LSN];
    }
    // Riding on the renewal (no extra write): what a lagging async standby is measured against.
    if (publish?.lsn) ann[PRIMARY_LSN] = publish.lsn;
    lease.metadata = { ...lease.metadata, labels: { ...(lease.metadata?.labels ?? {}), ...leaseLabels(this.app) }, annotations: ann };
    lease.spec = {
      holderIdentity: unit,
      leaseDurationSeconds: seconds,
      acquireTime: mine && spec.acquireTime ? new V1MicroTime(spec.acquireTime) : now,
      renewTime: now,
      leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
    };
    try {
      this.cache?.put(await this.kube.coordination.replaceNamespacedLease({ name: this.name, namespace: this.kube.namespace, body: lease }), true);
    } catch (e) {
      if (!isConflict(e)) throw e;
      // Someone wrote since our copy (a switchover request, a takeover): read it and decide once
      // more now, not at the next tick (a renewal late by a tick is close to the fence).
      if (!retried && mine) return this.acquire(unit, ttlMs, mayTake, publish, (await this.fresh()) ?? undefined, true);
      return false;
    }
    this.lastRenewSentAt = sent;
    return true;
  }

  /** Asks the holder to hand the lease to `to` (planned switchover); the holder does the rest. */
  async requestHandover(to: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const lease = await this.fresh();
      if (!lease) throw new Error('no primary lease to hand over');
      lease.metadata = { ...lease.metadata, annotations: { ...(lease.metadata?.annotations ?? {}), [HANDOVER_TO]: to } };
      try {
        await this.kube.coordination.replaceNamespacedLease({ name: this.name, namespace: this.kube.namespace, body: micro(lease) });
        return;
      } catch (e) {
        if (!isConflict(e) || attempt > 20) throw e;
      }
    }
  }

  /**
   * The holder, once its Postgres stopped at `lsn`, gives the lease to `to` in one
   * compare-and-swap, recording the LSN the new primary must have received before promoting.
   */
  async handTo(from: string, to: string, lsn: string): Promise<boolean> {
    const lease = await this.fresh();
    if (lease?.spec?.holderIdentity !== from) return false;
    const ann: Record<string, string> = { ...(lease.metadata?.annotations ?? {}), [HANDOVER_LSN]: lsn, [PRIMARY_LSN]: lsn };
    delete ann[HANDOVER_TO];
    lease.metadata = { ...lease.metadata, annotations: ann };
    const now = new V1MicroTime();
    lease.spec = { ...lease.spec, holderIdentity: to, acquireTime: now, renewTime: now, leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1 };
    try {
      this.cache?.put(await this.kube.coordination.replaceNamespacedLease({ name: this.name, namespace: this.kube.namespace, body: micro(lease) }), true);
      return true;
    } catch (e) {
      if (isConflict(e)) return false;
      throw e;
    }
  }
}

export const HANDOVER_TO = 'pgcharm.io/handover-to';
export const HANDOVER_LSN = 'pgcharm.io/handover-lsn';
/** The holder's WAL position at its last renewal (maximum-lag-on-failover, promote-to-primary's report). */
export const PRIMARY_LSN = 'pgcharm.io/primary-lsn';

/** Read-back times are plain Dates; the API wants MicroTime (6 fractional digits). */
function micro(lease: V1Lease): V1Lease {
  if (lease.spec?.acquireTime) lease.spec.acquireTime = new V1MicroTime(lease.spec.acquireTime);
  if (lease.spec?.renewTime) lease.spec.renewTime = new V1MicroTime(lease.spec.renewTime);
  return lease;
}
