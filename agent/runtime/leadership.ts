import { EventEmitter } from 'node:events';
import { V1MicroTime, type V1Lease } from '#client-node';
import type { Logger } from 'pino';
import { apiMessage, isConflict, isNotFound, type Kube } from './kube.js';

export interface LeaseTiming {
  /** How long a holder's claim lasts without a renewal (client-go LeaseDuration). */
  leaseMs: number;
  /** A holder that cannot renew for this long steps down first (client-go RenewDeadline); < leaseMs. */
  renewDeadlineMs: number;
  /** How often the holder renews and the others try (client-go RetryPeriod). */
  retryMs: number;
}

/** Failover in ~leaseMs + retryMs; renewDeadline leaves the old leader 2 s to step down first. */
export const DEFAULT_LEASE_TIMING: LeaseTiming = { leaseMs: 5000, renewDeadlineMs: 3000, retryMs: 1000 };

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
  ) {
    super();
    validateTiming(timing);
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

  /** Stops trying; a leader releases the lease so that another unit takes over at once. */
  async stop(release = true): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.busy;
    if (this.leading && release) {
      try {
        const lease = await this.read();
        if (lease?.spec?.holderIdentity === this.identity) {
          lease.spec.holderIdentity = '';
          lease.spec.leaseDurationSeconds = 1;
          lease.spec.renewTime = new V1MicroTime();
          if (lease.spec.acquireTime) lease.spec.acquireTime = new V1MicroTime(lease.spec.acquireTime);
          await this.kube.coordination.replaceNamespacedLease({ name: this.leaseName, namespace: this.kube.namespace, body: lease });
        }
      } catch (e) {
        this.log.warn({ err: apiMessage(e) }, 'could not release the leader lease; it expires on its own');
      }
    }
    this.setLeading(false, 'stopped');
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.busy = this.tick().finally(() => this.schedule(this.timing.retryMs));
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
    try {
      return await this.kube.coordination.readNamespacedLease({ name: this.leaseName, namespace: this.kube.namespace });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** One round of client-go's tryAcquireOrRenew; true when we hold the lease afterwards. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    // Lease times are MicroTime: client-node writes 6 fractional digits only for V1MicroTime.
    const now = new V1MicroTime();
    const leaseSeconds = Math.ceil(this.timing.leaseMs / 1000);
    const lease = await this.read();
    if (!lease) {
      try {
        await this.kube.coordination.createNamespacedLease({
          namespace: this.kube.namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.leaseName },
            spec: { holderIdentity: this.identity, leaseDurationSeconds: leaseSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          },
        });
      } catch (e) {
        if (isConflict(e)) return false; // someone else created it first
        throw e;
      }
      this.observe(this.identity);
      this.setLeading(true, 'created the lease');
      return true;
    }

    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const record = JSON.stringify([holder, spec.renewTime, spec.acquireTime, spec.leaseTransitions, spec.leaseDurationSeconds]);
    if (record !== this.observedRecord) {
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
    lease.spec = {
      holderIdentity: this.identity,
      leaseDurationSeconds: leaseSeconds,
      acquireTime: mine && spec.acquireTime ? new V1MicroTime(spec.acquireTime) : now,
      renewTime: now,
      leaseTransitions: mine ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
    };
    try {
      await this.kube.coordination.replaceNamespacedLease({ name: this.leaseName, namespace: this.kube.namespace, body: lease });
    } catch (e) {
      if (isConflict(e)) return false; // changed under us: read again next round
      throw e;
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
