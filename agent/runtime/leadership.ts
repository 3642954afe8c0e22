import { EventEmitter } from 'node:events';
import { V1MicroTime, type V1Lease } from '#client-node';
import type { Logger } from 'pino';
import { apiMessage, isConflict, isNotFound, type Kube } from './kube.js';
import { leaseRecord, type LeaseCache } from './leases.js';

export interface LeaseTiming {
  /** How long a holder's claim lasts without a renewal (client-go LeaseDuration). */
  leaseMs: number;
  /** A holder that cannot renew for this long steps down first (client-go RenewDeadline); < leaseMs. */
  renewDeadlineMs: number;
  /** How often the holder renews and the others try (client-go RetryPeriod). */
  retryMs: number;
}

/**
 * Leadership moves in ~leaseMs (the others are woken at expiry by the lease watch); the leader
 * renews every 3 s, a third of a write per second at idle (the primary Lease, not this one,
 * decides how fast the database fails over); renewDeadline leaves the old leader 2 s to step
 * down first. Shorter than the local kubelet's 10 s reschedule: a killed leader is replaced.
 */
export const DEFAULT_LEASE_TIMING: LeaseTiming = { leaseMs: 8000, renewDeadlineMs: 6000, retryMs: 3000 };

export function validateTiming(t: LeaseTiming): void {
  if (!(t.retryMs > 0 && t.retryMs < t.renewDeadlineMs && t.renewDeadlineMs < t.leaseMs)) {
    throw new Error(`lease timing must satisfy 0 < retry (${t.retryMs} ms) < renew deadline (${t.renewDeadlineMs} ms) < lease (${t.leaseMs} ms)`);
  }
}

/**
 * Leadership through a coordination.k8s.io Lease with client-go's leader-election rules: the
 * holder renews every retry period; anyone else may take the lease only once its record has
 * stayed unchanged for a whole lease duration as measured on the taker's own clock (never by
 * comparing the holder's timestamps with ours, so clock skew cannot elect two leaders); every
 * write is a compare-and-swap on resourceVersion. Emits 'elected' once per acquisition and
 * 'deposed' when leadership is lost or given up, and 'holder' when the holder changes.
 */
export class LeaderElector extends EventEmitter {
  private leading = false;
  private holder = '';
  private observedRecord = '';
  private observedAt = 0;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private busy: Promise<void> = Promise.resolve();

  constructor(
    private readonly kube: Kube,
    private readonly leaseName: string,
    readonly identity: string,
    private readonly timing: LeaseTiming,
    private readonly log: Logger,
    /** The lease watch: without it every round reads the Lease from the store. */
    private readonly cache?: LeaseCache,
    /** Labels the Lease carries (what the watch selects on). */
    private readonly labels: Record<string, string> = {},
  ) {
    super();
    validateTiming(timing);
    // A non-leader tries the moment the lease expires on its clock, or is given up (a leader
    // stopping releases it), not at its next round.
    cache?.on('expired', (name: string) => {
      if (name === this.leaseName && this.running && !this.leading) this.schedule(0);
    });
    cache?.on('change', (name: string) => {
      if (name === this.leaseName && this.running && !this.leading && !cache.get(name)?.lease.spec?.holderIdentity) this.schedule(0);
    });
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The holder as last observed ('' when nobody holds the lease). */
  currentHolder(): string {
    return this.holder;
  }

  /** Runs the first round now (so the caller knows whether it leads), then keeps going. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.busy = this.tick();
    await this.busy;
    this.schedule(this.timing.retryMs);
  }

  /**
   * Gives leadership away: releases the lease (another unit takes it at once, as after a stop)
   * and does not take it back for `holdOffMs`, unless nobody else took it by then. False when
   * this unit was not leading.
   */
  async resign(holdOffMs: number, why: string, mayResign: () => boolean = () => true): Promise<boolean> {
    if (!this.leading) return false;
    const done = this.busy.then(async () => {
      // Decided here, after any round in flight: the caller's condition (no hook running) holds now.
      if (!this.leading || !mayResign()) return false;
      this.holdOffUntil = Date.now() + holdOffMs;
      // No longer acting as leader before anyone else can be: the lease is released after.
      this.setLeading(false, `resigned: ${why}`);
      await this.release();
      return true;
    });
    this.busy = done.then(() => undefined, () => undefined);
    const ok = await done;
    if (ok) this.schedule(holdOffMs);
    return ok;
  }

  private holdOffUntil = 0;

  private async release(): Promise<void> {
    try {
      const lease = await this.read();
      if (lease?.spec?.holderIdentity === this.identity) {
        lease.spec.holderIdentity = '';
        lease.spec.leaseDurationSeconds = 1;
        lease.spec.renewTime = new V1MicroTime();
        if (lease.spec.acquireTime) lease.spec.acquireTime = new V1MicroTime(lease.spec.acquireTime);
        this.cache?.put(await this.kube.coordination.replaceNamespacedLease({ name: this.leaseName, namespace: this.kube.namespace, body: lease }), true);
      }
    } catch (e) {
      this.log.warn({ err: apiMessage(e) }, 'could not release the leader lease; it expires on its own');
    }
  }

  /** Stops trying; a leader releases the lease so that another unit takes over at once. */
  async stop(release = true): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.busy;
    if (this.leading && release) await this.release();
    this.setLeading(false, 'stopped');
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      // After any round still running (an expiry wake-up may come during one).
      this.busy = this.busy.then(() => this.tick()).finally(() => this.schedule(this.timing.retryMs));
    }, ms);
  }

  private async tick(): Promise<void> {
    try {
      const ok = await this.tryAcquireOrRenew();
      if (ok) this.lastRenew = Date.now();
    } catch (e) {
      this.log.warn({ err: apiMessage(e), lease: this.leaseName }, 'leader lease request failed');
    }
    // A leader that could not renew within the deadline stops acting as one before the lease runs out.
    if (this.leading && Date.now() - this.lastRenew > this.timing.renewDeadlineMs) {
      this.setLeading(false, 'renew deadline passed');
    }
  }

  private async read(): Promise<V1Lease | undefined> {
    if (this.cache) return this.cache.fresh(this.leaseName);
    try {
      return await this.kube.coordination.readNamespacedLease({ name: this.leaseName, namespace: this.kube.namespace });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /**
   * The Lease to decide on, and when its record was first seen as it is: from the watch when it
   * has listed (no request), else read now. A non-holder about to take over an expired lease
   * reads it fresh first: a stale watch must not make a live leader look expired (the
   * compare-and-swap would refuse the takeover anyway; this saves the failed write).
   */
  private async current(): Promise<{ lease: V1Lease | undefined; changedAt: number | undefined }> {
    if (!this.cache?.ready) return { lease: await this.read(), changedAt: undefined };
    const seen = this.cache.get(this.leaseName);
    const holder = seen?.lease.spec?.holderIdentity ?? '';
    const expiresAt = seen ? seen.changedAt + (seen.lease.spec?.leaseDurationSeconds ?? 0) * 1000 : 0;
    if (seen && (holder === this.identity || (holder !== '' && expiresAt > Date.now()))) return { lease: structuredClone(seen.lease), changedAt: seen.changedAt };
    const lease = await this.cache.fresh(this.leaseName);
    return { lease, changedAt: this.cache.get(this.leaseName)?.changedAt };
  }

  /** One round of client-go's tryAcquireOrRenew; true when we hold the lease afterwards. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    // Lease times are MicroTime: client-node writes 6 fractional digits only for V1MicroTime.
    const now = new V1MicroTime();
    const leaseSeconds = Math.ceil(this.timing.leaseMs / 1000);
    const { lease, changedAt } = await this.current();
    if (!lease) {
      try {
        await this.kube.coordination.createNamespacedLease({
          namespace: this.kube.namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.leaseName, labels: this.labels },
            spec: { holderIdentity: this.identity, leaseDurationSeconds: leaseSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          },
        });
      } catch (e) {
        if (isConflict(e)) return false; // someone else created it first
        throw e;
      }
      if (this.cache) void this.cache.fresh(this.leaseName).catch(() => undefined);
      this.observe(this.identity);
      this.setLeading(true, 'created the lease');
      return true;
    }

    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    // Resigned a moment ago: the others take the lease; take it back only if nobody did.
    if (holder === '' && Date.now() < this.holdOffUntil) return false;
    const record = leaseRecord(lease);
    if (changedAt !== undefined) {
      this.observedRecord = record;
      this.observedAt = changedAt;
    } else if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = Date.now();
    }
    this.observe(holder);
    const durationMs = (spec.leaseDurationSeconds ?? leaseSeconds) * 1000;
    if (holder !== '' && holder !== this.identity && this.observedAt + durationMs > Date.now()) {
      if (this.leading) this.setLeading(false, `lease held by ${holder}`);
      return false;
    }

    const mine = holder === this.identity;
    lease.metadata = { ...lease.metadata, labels: { ...(lease.metadata?.labels ?? {}), ...this.labels } };
    lease.spec = {
      holderIdentity: this.identity,
      leaseDurationSeconds: leaseSeconds,
      acquireTime: mine && spec.acquireTime ? new V1MicroTime(spec.acquireTime) : now,
      renewTime: now,
      leaseTransitions: mine ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
    };
    try {
      this.cache?.put(await this.kube.coordination.replaceNamespacedLease({ name: this.leaseName, namespace: this.kube.namespace, body: lease }), true);
    } catch (e) {
      if (!isConflict(e)) throw e;
      // Changed under us (or our copy was stale): read again, decide again next round.
      if (this.cache) await this.cache.fresh(this.leaseName).catch(() => undefined);
      return false;
    }
    if (!mine) this.log.info({ lease: this.leaseName, previous: holder || null }, 'acquired the leader lease');
    this.observe(this.identity);
    this.setLeading(true, mine ? 'renewed' : `took over from ${holder || 'nobody'}`);
    return true;
  }

  private observe(holder: string): void {
    if (holder === this.holder) return;
    this.holder = holder;
    this.emit('holder', holder);
  }

  private setLeading(leading: boolean, why: string): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.log.info({ lease: this.leaseName, leading, why }, leading ? 'became leader' : 'no longer leader');
    this.emit(leading ? 'elected' : 'deposed', why);
  }
}
