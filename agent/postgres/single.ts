import { stringify } from 'yaml';
import type { PebbleClient } from '../../sidecar/client/index.js';
import { POSTGRES_SUPERVISION, readyCheck, SERVICE } from '../charm/postgresql/render.js';

export { BACKOFF_LIMIT_MS, SERVICE } from '../charm/postgresql/render.js';

/**
 * One PostgreSQL under a sidecar, driven only through the Pebble API (files, exec,
 * layers, services): what `npm start` runs until the charm exists, and what the sidecar's
 * Postgres tests and benchmarks use. The charm will grow the real version of this.
 */
export interface SinglePostgres {
  binDir: string;
  /** Data directory (created 0700, owned by postgres). */
  pgdata: string;
  /** Directory for the unix socket and lock file, owned by postgres. */
  socketDir: string;
  port: number;
  /** Superuser created by initdb. */
  user: string;
  password: string;
  /** Extra sidecar settings for the service (e.g. a shorter backoff). */
  service?: Record<string, unknown>;
}

/** The charm owns this include file; postgresql.conf only points at it. */
export const INCLUDE = 'pgcharm.conf';

async function run(client: PebbleClient, cmd: string[], opts: { user?: string; environment?: Record<string, string> } = {}) {
  const p = await client.exec(cmd, { user: opts.user ?? 'postgres', ...(opts.environment ? { environment: opts.environment } : {}) });
  const r = await p.waitOutput();
  if (r.exitCode !== 0) {
    throw new Error(`${cmd[0]} exited with ${r.exitCode}: ${(r.stderr || r.stdout).toString().trim().slice(-2000)}`);
  }
  return r.stdout.toString();
}

/** initdb through exec, as the postgres user; the password goes through a 0600 file, never argv. Idempotent. */
export async function initdb(client: PebbleClient, pg: SinglePostgres): Promise<boolean> {
  const existing = await client.listFiles(pg.pgdata, { pattern: 'PG_VERSION' }).catch(() => []);
  if (existing.length) return false;
  await client.makeDir(pg.pgdata, { makeParents: true, permissions: '700', user: 'postgres', group: 'postgres' });
  await client.makeDir(pg.socketDir, { makeParents: true, permissions: '700', user: 'postgres', group: 'postgres' });
  const pwfile = `${pg.socketDir}/.initdb-pw`;
  await client.push(pwfile, pg.password + '\n', { permissions: '600', user: 'postgres', group: 'postgres' });
  try {
    await run(client, [
      `${pg.binDir}/initdb`,
      '-D', pg.pgdata,
      '-U', pg.user,
      `--pwfile=${pwfile}`,
      '--auth-host=scram-sha-256',
      '--auth-local=peer',
      '--encoding=UTF8',
      '--locale=C',
    ]);
  } finally {
    await client.removePath(pwfile).catch(() => undefined);
  }
  const conf = (await client.pull(`${pg.pgdata}/postgresql.conf`)).toString();
  await client.push(`${pg.pgdata}/postgresql.conf`, `${conf}\ninclude_if_exists = '${INCLUDE}'\n`, {
    permissions: '600',
    user: 'postgres',
    group: 'postgres',
  });
  return true;
}

/** Writes the charm-owned include file (settings as key = value). */
export async function writeSettings(client: PebbleClient, pg: SinglePostgres, settings: Record<string, string | number>): Promise<void> {
  const body = Object.entries(settings)
    .map(([k, v]) => `${k} = '${String(v).replace(/'/g, "''")}'`)
    .join('\n');
  await client.push(`${pg.pgdata}/${INCLUDE}`, `# managed by pgcharm\n${body}\n`, {
    permissions: '600',
    user: 'postgres',
    group: 'postgres',
  });
}

export function postgresLayer(pg: SinglePostgres): string {
  return stringify({
    summary: 'PostgreSQL',
    services: {
      [SERVICE]: {
        override: 'replace',
        summary: 'PostgreSQL server',
        command: `${pg.binDir}/postgres -D ${pg.pgdata} -c port=${pg.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${pg.socketDir}`,
        startup: 'enabled',
        ...POSTGRES_SUPERVISION,
        ...pg.service,
      },
    },
    checks: { 'postgresql-ready': readyCheck(pg.port) },
  });
}

/** Adds the layer and replans; resolves once the service counts as started. */
export async function startPostgres(client: PebbleClient, pg: SinglePostgres): Promise<void> {
  await client.addLayer('postgresql', postgresLayer(pg), { combine: true });
  await client.waitChange(await client.replan());
}

export function connectionString(pg: SinglePostgres, database = 'postgres'): string {
  return `postgresql://${encodeURIComponent(pg.user)}:${encodeURIComponent(pg.password)}@127.0.0.1:${pg.port}/${database}`;
}
