import pg from '#pg';
import type { Logger } from 'pino';
import type { ConfigValue } from '../../runtime/charm.js';
import { apiMessage, mergePatch, type Kube } from '../../runtime/kube.js';
import type { LeaseCache } from '../../runtime/leases.js';
import { parseUnit, podName } from '../../runtime/names.js';
import type { SyncSet } from './decide.js';
import { PrimaryLease } from './lease.js';
import { ROLE_LABEL } from './render.js';
import { readPasswords, type Passwords } from './secrets.js';

/**
 * What the event handlers and the HA cycle of this agent process share: the primary Lease's
 * observations (expiry is measured on this process's clock), a lock so a promotion never
 * interleaves with a reconcile, and what this process last did (to log decisions on change).
 */
export class CharmState {
  private primaryLease: PrimaryLease | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  /** The holder a step-down was already requested for. */
  steppingDownFor: string | undefined;
  /** The role label this agent last put on its pod. */
  labelled: string | undefined;
  /**
   * The synchronous set this primary runs, as last recorded by this process (the bag a
   * reconcile sees may be older than a change the HA cycle just made).
   */
  sync: SyncSet | undefined;
  /** The set Postgres runs (synchronous_standby_names), when this process set it. */
  applied: SyncSet | undefined;
  /** A change of the synchronous set is under way (in the background of the HA cycle). */
  syncBusy = false;
  /** A change of set applied in Postgres at WAL position `since`, not yet recorded alone. */
  syncChange: { to: SyncSet; since: string } | undefined;
  /** The HA cycle's last decision (`kind|why`) and the last reconcile's outcome, logged again only when they change. */
  private last: Record<'ha' | 'reconcile', string> = { ha: '', reconcile: '' };
  /**
   * Why the HA cycle keeps this replica from taking over a primary whose lease expired; a
   * reconcile shows it instead of "replica of X" (what an operator must read first).
   */
  failoverWait: string | undefined;
  /** When the leader's update-status last looked for a pending password change (charm.ts). */
  pendingCheckedAt = 0;
  /** The repository whose stanza the primary found this cluster's (backup-actions.ts); undefined: check it. */
  stanzaChecked: string | undefined;
  /** The repository the check last ran on (whatever it found), and when. */
  stanzaTried: string | undefined;
  stanzaCheckedAt = 0;
  scheduledBackupBusy = false;
  /** What this unit's backup server was last set up for (backup-actions.ts wantBackupServer); undefined: set it up. */
  backupServerReady: string | undefined;
  /** What the postgres exporter was set up for (exporter.ts). */
  exporterReady: string | undefined;
  /** The sidecar boot the helper services above were set up in: a new one has none of them. */
  sidecarBoot: string | undefined;
  /** The restore whose data directory this unit has restored (its recovery may still be under way). */
  restoredData: string | undefined;
  /** The timeline whose parent's WAL this primary found complete in the archive (backup-actions.ts archiveGapCheck). */
  gapCheckedTimeline: number | undefined;
  gapCheckFailedAt = 0;
  /** Since when (this unit's clock) the primary has seen WAL archiving fail; undefined: it works. */
  archiveFailingSince: number | undefined;
  /** The last HA cycle found a replica following a live lease: nothing to do until the watch says otherwise. */
  following = false;
  /** The inputs of the last reconcile that settled (charm.ts reconcileInputs); undefined: reconcile at the next update-status. */
  settledOn: string | undefined;
  private pw: { key: string; value: Passwords } | undefined;

  /** The primary Lease, read through the agent's Lease watch when the caller has it. */
  lease(ctx: { kube: Kube; app: string; leases?: LeaseCache }): PrimaryLease {
    return (this.primaryLease ??= new PrimaryLease(ctx.kube, ctx.app, ctx.leases));
  }

  /** When this process last renewed the primary Lease (0: it never did). */
  get lastRenewSentAt(): number {
    return this.primaryLease?.lastRenewSentAt ?? 0;
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Records `key` as the latest of `what`; says whether it differs from the one before. */
  changed(what: 'ha' | 'reconcile', key: string): boolean {
    const differs = this.last[what] !== key;
    this.last[what] = key;
    return differs;
  }

  /** The HA cycle's last decision as `kind|why`. */
  get lastDecision(): string {
    return this.last.ha;
  }

  /** What this process knows of the synchronous set after a promotion (`to`) or a demotion (undefined: the bag's). */
  resetSync(to: SyncSet | undefined): void {
    this.sync = this.applied = to;
    this.syncChange = undefined;
  }

  /** A login was refused: the Secret changed without a `passwords-rotated` (or before it arrived). */
  forgetPasswords(e: unknown): void {
    if ((e as { code?: string } | undefined)?.code === '28P01') this.pw = undefined;
  }

  /**
   * The passwords Secret, read again only when the leader says they changed (the app bag's
   * `passwords-rotated`): the HA cycle runs every 400 ms and must not read it every time.
   */

  async passwords(kube: Kube, app: string, rotated: string | undefined): Promise<Passwords | undefined> {
    const key = rotated ?? '';
    if (this.pw?.key === key) return this.pw.value;
    const value = await readPasswords(kube, app);
    if (value) this.pw = { key, value };
    return value;
  }
}

/**
 * One connection to this unit's own Postgres, kept open across HA cycles: a cycle runs every
 * 400 ms, and a SCRAM handshake each time would cost more than the query. Dropped on any
 * error (a restart, a fence) and opened again by the next query.
 */
export class LocalConnection {
  private client: pg.Client | undefined;
  private key = '';

  constructor(private readonly applicationName = 'pgcharm-ha') {}

  async query<T extends pg.QueryResultRow>(target: { host: string; port: number }, password: string, sql: string, params: unknown[] = []): Promise<T[]> {
    const key = `${target.host}:${target.port}:${password}`;
    if (this.client && this.key !== key) this.drop();
    if (!this.client) {
      const c = new pg.Client({ host: target.host, port: target.port, user: 'operator', password, database: 'postgres', connectionTimeoutMillis: 1000, statement_timeout: 2000, application_name: this.applicationName });
      c.on('error', () => {
        if (this.client === c) this.drop();
      });
      await c.connect();
      this.client = c;
      this.key = key;
    }
    try {
      return (await this.client.query<T>(sql, params)).rows;
    } catch (e) {
      this.drop();
      throw e;
    }
  }

  drop(): void {
    void this.client?.end().catch(() => undefined);
    this.client = undefined;
  }
}

export const state = new CharmState();
export const local = new LocalConnection();

export const ttlMs = (config: Readonly<Record<string, ConfigValue>>): number => Number(config['primary-lease-ttl']) * 1000;

/**
 * Labels this unit's pod with its role (only when it changed). A failure is logged, not
 * thrown: the label steers clients, the Lease decides who writes.
 */
export async function labelPod(ctx: { kube: Kube; unit: string; log: Logger }, role: 'primary' | 'replica'): Promise<void> {
  if (state.labelled === role) return;
  try {
    await ctx.kube.core.patchNamespacedPod({ name: podName(parseUnit(ctx.unit)), namespace: ctx.kube.namespace, body: { metadata: { labels: { [ROLE_LABEL]: role } } } }, mergePatch);
    state.labelled = role;
  } catch (e) {
    ctx.log.warn({ err: apiMessage(e), role }, 'could not label the pod with its role');
  }
}
