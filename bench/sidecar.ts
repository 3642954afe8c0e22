import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { defaults, loadCharmYaml } from '../agent/charm-meta/index.js';
import { DEFAULT_CHARM } from '../agent/charm-location.js';
import { BACKOFF_LIMIT_MS } from '../agent/charm/postgresql/render.js';
import { startSingle } from '../agent/single.js';
import { spawnSidecar } from '../agent/sidecar-process.js';
import { summary } from './stats.js';
import { freePort } from '../agent/ports.js';

/**
 * Sidecar benchmarks with a real PostgreSQL: postmaster kill -9 -> accepting connections,
 * sidecar RSS while supervising Postgres, and the exec round trip.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function canQuery(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

function postmasterPid(pgdata: string): number {
  return Number(readFileSync(join(pgdata, 'postmaster.pid'), 'utf8').split('\n')[0]);
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : NaN;
}

export async function benchSidecar(opts: { killRuns: number; execRuns: number }) {
  const home = mkdtempSync(join(tmpdir(), 'pgcharm-bench-'));
  chmodSync(home, 0o755); // postgres must reach its data dir inside
  const sc = await spawnSidecar({ dir: join(home, 'pebble') });
  try {
    const config = { ...defaults(await loadCharmYaml(DEFAULT_CHARM)), profile: 'testing' };
    const single = await startSingle(sc.client, { storage: home, major: 15, port: await freePort(), password: randomBytes(12).toString('hex'), config, log: pino({ level: 'warn' }) });
    const pgc = { pgdata: single.l.pgdata };
    const url = single.url;
    while (!(await canQuery(url))) await sleep(50);

    // Postmaster crash: the sidecar sees the exit, kills what is left of the group and restarts after backoff.
    const recovery: number[] = [];
    for (let i = 0; i < opts.killRuns; i++) {
      const pid = postmasterPid(pgc.pgdata);
      const t0 = performance.now();
      process.kill(pid, 'SIGKILL');
      // Poll with fresh connections, as a client would; 10 ms apart.
      while (!(await canQuery(url))) await sleep(10);
      recovery.push(performance.now() - t0);
      // Each kill starts from a healthy service: the backoff resets after backoff-limit of running.
      await sleep(BACKOFF_LIMIT_MS + 500);
    }

    const rss = rssMb(sc.proc.pid!);

    const exec: number[] = [];
    for (let i = 0; i < opts.execRuns + 2; i++) {
      const t0 = performance.now();
      const p = await sc.client.exec(['true']);
      const code = await p.wait();
      if (code !== 0) throw new Error(`exec true exited ${code}`);
      if (i >= 2) exec.push(performance.now() - t0); // first two warm up the connection pool and JIT
    }

    return {
      postmaster_kill9_to_accepting_ms: { ...summary(recovery), goal_median_max: 1500 },
      sidecar_rss_mb_with_postgres: { value: rss, goal_max: 60 },
      sidecar_rss_mb_after_exec_runs: { value: rssMb(sc.proc.pid!) },
      exec_true_round_trip_ms: { ...summary(exec), goal_median_max: 50 },
    };
  } finally {
    await sc.stop();
    rmSync(home, { recursive: true, force: true });
  }
}
