import { Counter, Gauge, Histogram } from '#prom-client';
import { registry } from '../../runtime/metrics.js';
import { health } from './health.js';

/**
 * The PostgreSQL charm's metrics on the agent's /metrics (prom-client, the runtime's registry).
 * The gauges are read when Prometheus scrapes, from what the health routes know (this unit's
 * Postgres asked at most every 250 ms, the lease and bags as the HA loop last saw them): a scrape
 * costs one small query, and nothing is computed between scrapes. The counters and histograms
 * are counted where things happen (ha.ts).
 */

const registers = [registry];

export const failovers = new Counter({ name: 'pgcharm_failovers_total', help: 'Promotions of this unit after the primary lease expired.', registers });
export const switchovers = new Counter({ name: 'pgcharm_switchovers_total', help: 'Promotions of this unit by a planned handover.', registers });
export const stepDowns = new Counter({ name: 'pgcharm_step_downs_total', help: 'Times this unit, a primary, stepped down because another unit held the lease.', registers });
export const leaseRenewSeconds = new Histogram({
  name: 'pgcharm_lease_renew_seconds',
  help: "The primary's lease renewals: from the request to the store's answer.",
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
  registers,
});
export const haCycleSeconds = new Histogram({
  name: 'pgcharm_ha_cycle_seconds',
  help: 'HA decision cycles (observe, decide, act): how long each took.',
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers,
});

/** What the scrape-time gauges need beyond the health view. */
export const metricState = {
  /** The config hash the runtime last handed an event (what should be applied). */
  desiredConfigHash: undefined as string | undefined,
  /** The primary lease's TTL the HA loop runs with (ms). */
  leaseTtlMs: undefined as number | undefined,
};

const bool = (b: boolean) => (b ? 1 : 0);


function gauge(name: string, help: string, read: (g: Gauge) => Promise<void> | void, labelNames: string[] = []): Gauge {
  return new Gauge({
    name,
    help,
    labelNames,
    registers,
    async collect() {
      // Absent unless read() sets it (prom-client's reset leaves an unlabelled gauge at 0: a primary
      // would report a standby that does not stream, a cluster never backed up a backup at 1970).
      this.reset();
      if (!labelNames.length) this.remove();
      await read(this);
    },
  });
}

gauge('pgcharm_primary', 'Whether this unit is the primary: it holds the primary lease and its Postgres accepts writes (what GET /primary answers 200 to).', async (g) => {
  const f = await health.facts();
  g.set(bool(f.holdsLease && f.pg?.writable === true));
});
gauge('pgcharm_lease_holder', 'Whether this unit holds the primary lease (as its Lease watch sees it, valid until its fence deadline).', async (g) => g.set(bool((await health.facts()).holdsLease)));
gauge('pgcharm_postgres_up', "Whether this unit's Postgres answers a query; absent until the HA loop has run with the passwords (it cannot ask before).", async (g) => {
  if (!health.viewed()?.password) return;
  g.set(bool((await health.facts()).pg !== undefined));
});
gauge('pgcharm_postgres_writable', "Whether this unit's Postgres accepts writes (a primary; two at once is a split brain being fenced).", async (g) => g.set(bool((await health.facts()).pg?.writable === true)));
gauge('pgcharm_replica_streaming', 'Whether this unit is a standby that streams from the primary (1), or a standby that does not (0); absent on a primary.', async (g) => {
  const v = health.viewed();
  if (!v?.password) return;
  const pg = (await health.facts()).pg;
  if (pg && !pg.writable) g.set(bool(pg.streaming));
  else if (!pg && v.bags[v.unit]?.['role'] === 'replica') g.set(0);
});
gauge('pgcharm_replication_lag_bytes', "How far this standby's WAL is behind the primary's (bytes); absent when unknown or on the primary.", async (g) => {
  const f = await health.facts();
  if (f.lagBytes !== undefined) g.set(f.lagBytes);
});
gauge('pgcharm_timeline', "The timeline this unit's Postgres is on.", async (g) => {
  const pg = (await health.facts()).pg;
  if (pg) g.set(pg.timeline);
});
gauge('pgcharm_fence_margin_seconds', "On the primary: how long before its fence stops Postgres unless the lease is renewed again (small: the store or this agent is slow).", (g) => {
  const v = health.viewed();
  if (!v || v.leaseHolder() !== v.unit) return;
  const until = v.leaseValidUntil();
  if (Number.isFinite(until)) g.set((until - Date.now()) / 1000);
});
gauge('pgcharm_lease_ttl_seconds', 'The primary lease TTL (config primary-lease-ttl): the fence margin is measured against it.', (g) => {
  if (metricState.leaseTtlMs !== undefined) g.set(metricState.leaseTtlMs / 1000);
});
gauge('pgcharm_ha_loop_age_seconds', "Since this unit's HA loop last completed a cycle.", (g) => {
  const age = health.cycleAge();
  if (age !== undefined) g.set(age / 1000);
});
gauge(
  'pgcharm_unit_role',
  'This unit\'s role as its agent recorded it (primary, replica, starting...): 1 for the current one.',
  (g) => {
    const v = health.viewed();
    g.set({ role: v?.bags[v.unit]?.['role'] ?? 'starting' }, 1);
  },
  ['role'],
);
gauge('pgcharm_config_applied', 'Whether this unit runs the config as it is now (1), or a change waits for a restart or a reconcile (0).', (g) => {
  const v = health.viewed();
  const bag = v?.bags[v.unit];
  if (!bag || metricState.desiredConfigHash === undefined) return;
  g.set(bool(bag['config-hash'] === metricState.desiredConfigHash && !bag['restart-pending']));
});
gauge('pgcharm_archive_failing', 'On the primary with WAL archiving on: whether archiving fails (pg_stat_archiver, as the backup status reports it).', (g) => {
  const v = health.viewed();
  const bag = v?.bags[v.unit];
  if (bag?.['role'] === 'primary') g.set(bool(Boolean(bag['archive-problem'])));
});
gauge('pgcharm_backup_last_success_timestamp_seconds', 'When the last backup of the cluster completed (Unix time), as the units recorded it; absent before the first.', (g) => {
  const v = health.viewed();
  const times = Object.values(v?.bags ?? {})
    .map((b) => Date.parse(b['last-backup'] ?? ''))
    .filter((t) => Number.isFinite(t));
  if (times.length) g.set(Math.max(...times) / 1000);
});
