import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { summary } from './stats.js';

/**
 * PostgreSQL charm benchmarks on real 3-unit local deployments: `pgcharm deploy` until both
 * standbys stream from the primary (pg_stat_replication), each run in a fresh model.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(root, 'dist', 'agent', 'cli.js');

function cli(model: string, args: string[]): Promise<string> {
  return new Promise((res, rej) =>
    execFile(process.execPath, [CLI, args[0]!, '--model', model, ...args.slice(1)], { env: { ...process.env, PGCHARM_MODEL: '' } }, (err, stdout, stderr) =>
      err ? rej(new Error(`pgcharm ${args.join(' ')} failed: ${stderr}`)) : res(stdout),
    ),
  );
}

async function streaming(uri: string): Promise<number> {
  const c = new pg.Client({ connectionString: uri, connectionTimeoutMillis: 1000 });
  try {
    await c.connect();
    return (await c.query("SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming' AND application_name LIKE 'postgresql/%'")).rows[0].n as number;
  } catch {
    return 0;
  } finally {
    await c.end().catch(() => undefined);
  }
}

export async function benchPostgres(opts: { bootstrapRuns: number }) {
  const bootstrap: number[] = [];
  for (let i = 0; i < opts.bootstrapRuns; i++) {
    const model = mkdtempSync(join(tmpdir(), 'pgcharm-bench-pg-'));
    chmodSync(model, 0o755);
    try {
      const t0 = Date.now();
      const deploy = cli(model, ['deploy', '--units', '3', '--timeout', '180']);
      let uri = '';
      for (;;) {
        if (!uri) uri = (await cli(model, ['uri', 'primary']).catch(() => '')).trim();
        if (uri && (await streaming(uri)) === 2) break;
        if (Date.now() - t0 > 180_000) throw new Error('standbys did not stream within 180 s');
        await new Promise((r) => setTimeout(r, 20));
      }
      bootstrap.push(Date.now() - t0);
      await deploy;
    } finally {
      await cli(model, ['destroy']).catch(() => undefined);
      rmSync(model, { recursive: true, force: true });
    }
  }
  return {
    bootstrap_3_units_to_standbys_streaming_ms: { ...summary(bootstrap), goal_median_max: 4000, what: '`pgcharm deploy --units 3` started -> both standbys streaming (includes starting the controller)' },
  };
}
