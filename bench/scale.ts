import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveLogs } from './cluster.js';
import { bootstrap, failover } from './compare.js';
import { measure, type Footprint } from './footprint-measure.js';
import { pgcharmFootprint, pgcharmSubject, type Measured } from './footprint.js';
import { pgcharmCli, PgcharmCluster, settleApp } from './pgcharm.js';
import { summary } from './stats.js';

/**
 * Issue 13, "Scale": bootstrap and unplanned failover of 5- and 7-unit deployments (as
 * compare.ts measures 3 units), and ten 3-unit applications on one local controller at idle
 * beside one.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ScaleOptions {
  runs: number;
  sizes: number[];
  clusters: number;
  seconds: number;
  quietSeconds: number;
  log: (s: string) => void;
}

type Summary = ReturnType<typeof summary>;

export interface SizeFigures {
  units: number;
  bootstrap_to_standbys_streaming_ms: Summary;
  failover_kill9_primary_unit_to_first_acked_write_ms: Summary;
  failover_acknowledged_writes_lost: { runs: number[]; total: number };
  failover_killed_unit_streaming_again_ms: Summary;
}

async function size(units: number, runs: number, log: (s: string) => void): Promise<SizeFigures> {
  const b = await bootstrap(`pgcharm-${units}`, runs, log, () => new PgcharmCluster(units));
  const cluster = b.last;
  try {
    const fo = [];
    for (let i = 1; i <= runs; i++) fo.push(await failover(cluster, i, log));
    return {
      units,
      bootstrap_to_standbys_streaming_ms: summary(b.ms),
      failover_kill9_primary_unit_to_first_acked_write_ms: summary(fo.map((f) => f.toFirstWrite)),
      failover_acknowledged_writes_lost: { runs: fo.map((f) => f.lost), total: fo.reduce((a, f) => a + f.lost, 0) },
      failover_killed_unit_streaming_again_ms: summary(fo.map((f) => f.rejoinMs)),
    };
  } catch (e) {
    log(`pgcharm-${units}: logs kept in ${saveLogs(cluster, `scale-${units}`)}`);
    throw e;
  } finally {
    await cluster.destroy();
  }
}

/** `clusters` 3-unit applications (pg0, pg1, ...) deployed one after the other into one model, measured at idle. */
async function manyApps(clusters: number, seconds: number, quietSeconds: number, log: (s: string) => void): Promise<Measured> {
  const model = mkdtempSync(join(tmpdir(), 'pgcharm-bench-apps-'));
  chmodSync(model, 0o755); // Postgres runs as the postgres user inside it
  const logs = () => (existsSync(join(model, 'logs')) ? Object.fromEntries(readdirSync(join(model, 'logs')).map((f) => [f, join(model, 'logs', f)])) : {});
  try {
    const t0 = Date.now();
    const errors: string[] = [];
    for (let i = 0; i < clusters; i++) {
      const app = `pg${i}`;
      const deploy = pgcharmCli(model, ['deploy', '--app', app, '--units', '3', '--timeout', '600'], 700_000, { PGCHARM_AUDIT: '1' });
      for (const e of await settleApp(deploy, model, app, 600_000)) {
        log(`${clusters} apps: ${app} while settling: ${e}`);
        errors.push(e);
      }
      log(`${clusters} apps: ${app} settled (${Math.round((Date.now() - t0) / 1000)} s since the first deploy)`);
    }
    log(`${clusters} apps: all settled; ${quietSeconds} s quiet, then ${seconds} s measured`);
    await sleep(quietSeconds * 1000);
    return { ...(await measure({ ...pgcharmSubject(model), name: `pgcharm x${clusters}` }, seconds)), ...(errors.length ? { bootstrap_hook_errors: errors } : {}) };
  } catch (e) {
    log(`${clusters} apps: logs kept in ${saveLogs({ name: `pgcharm-x${clusters}`, logs }, 'scale')}`);
    throw e;
  } finally {
    await pgcharmCli(model, ['destroy']).catch((e: unknown) => log(`${clusters} apps: destroy failed: ${(e as Error).message}`));
    rmSync(model, { recursive: true, force: true });
  }
}

/** Ten clusters' figure over one's. */
function ratios(one: Footprint, many: Footprint): Record<string, number> {
  const ha = (f: Footprint) => ['controller', 'agent', 'sidecar', 'watchdog'].reduce((a, k) => a + (f.kinds[k]?.rss_total_mb ?? 0), 0);
  const r = (a: number, b: number) => (b ? Math.round((a / b) * 100) / 100 : NaN);
  return {
    store_requests_per_second: r(many.store_requests_per_second, one.store_requests_per_second),
    ha_cpu_pct: r(many.ha_cpu_pct, one.ha_cpu_pct),
    controller_cpu_pct: r(many.kinds['controller']?.cpu_pct ?? 0, one.kinds['controller']?.cpu_pct ?? 0),
    postgres_cpu_pct: r(many.kinds['postgres']?.cpu_pct ?? 0, one.kinds['postgres']?.cpu_pct ?? 0),
    ha_rss_total_mb: r(ha(many), ha(one)),
    controller_rss_mb: r(many.kinds['controller']?.rss_max_mb ?? 0, one.kinds['controller']?.rss_max_mb ?? 0),
    log_bytes_per_minute: r(many.log_bytes_per_minute_total, one.log_bytes_per_minute_total),
  };
}

export async function benchScale(o: ScaleOptions) {
  const sizes: Record<string, SizeFigures> = {};
  const failed: Record<string, string> = {};
  for (const units of o.sizes) {
    try {
      sizes[`${units}_units`] = await size(units, o.runs, o.log);
    } catch (e) {
      failed[`${units}_units`] = (e as Error).message;
      o.log(`${units} units: FAILED: ${(e as Error).message}`);
    }
  }
  let apps: { clusters: number; one: Measured; many: Measured; ratios: Record<string, number>; goal: string } | undefined;
  try {
    const one = await pgcharmFootprint(o.seconds, o.quietSeconds, o.log);
    const many = await manyApps(o.clusters, o.seconds, o.quietSeconds, o.log);
    apps = { clusters: o.clusters, one, many, ratios: ratios(one, many), goal: `every ratio <= ${o.clusters}` };
  } catch (e) {
    failed[`${o.clusters}_apps`] = (e as Error).message;
    o.log(`${o.clusters} apps: FAILED: ${(e as Error).message}`);
  }
  return {
    what: {
      bootstrap: '`pgcharm deploy --units N` -> one primary with every other unit streaming (a fresh model per run)',
      failover: 'kill -9 of the primary unit (held down) under a writer inserting a row every 10 ms -> first write acknowledged by another unit; then it is revived and must stream again',
      apps: `one 3-unit application alone, then ${o.clusters} 3-unit applications (deploy --app) on one local controller, each idle ${o.quietSeconds} s after the last settled, measured ${o.seconds} s as the footprint group does`,
    },
    sizes,
    ...(apps ? { apps } : {}),
    ...(Object.keys(failed).length ? { failed } : {}),
  };
}
