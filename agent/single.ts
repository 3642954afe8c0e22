import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { installedMajors, pgBinDir } from './postgres/binaries.js';
import { connectionString, initdb, SERVICE, startPostgres, type SinglePostgres } from './postgres/single.js';
import { freePort } from './ports.js';
import { spawnSidecar } from './sidecar-process.js';

/**
 * `npm start` until the local deployment exists: one PostgreSQL supervised by the sidecar,
 * set up entirely through the sidecar's API. It says so, prints the connection string and
 * keeps running until Ctrl-C.
 */
export async function runSingle(opts: { home: string; port?: number; major: number }): Promise<void> {
  const log = pino({ name: 'pgcharm' }, pino.destination(2));
  if (process.getuid?.() !== 0) {
    throw new Error(
      'run this as root (e.g. `sudo npm start`): the sidecar runs PostgreSQL as the `postgres` OS user, which needs root to switch to',
    );
  }
  if (!installedMajors().includes(opts.major)) pgBinDir(opts.major); // throws with the exact apt-get line
  mkdirSync(opts.home, { recursive: true, mode: 0o755 });
  chmodSync(opts.home, 0o755); // the postgres user must reach its data directory inside

  // The superuser password is generated once and kept root-only; it never goes on a command line.
  const pwPath = join(opts.home, 'operator-password');
  if (!existsSync(pwPath)) writeFileSync(pwPath, randomBytes(18).toString('base64url'), { mode: 0o600 });
  const password = readFileSync(pwPath, 'utf8').trim();

  const sc = await spawnSidecar({ dir: join(opts.home, 'pebble'), echo: false });
  let stopping = false;
  const stop = async (why: string) => {
    stopping = true;
    log.info({ why }, 'stopping PostgreSQL and the sidecar');
    await sc.stop(40_000);
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  const pg: SinglePostgres = {
    binDir: pgBinDir(opts.major),
    pgdata: join(opts.home, 'pgdata'),
    socketDir: join(opts.home, 'run'),
    port: opts.port ?? (await freePort()),
    user: 'operator',
    password,
  };
  const created = await initdb(sc.client, pg);
  log.info({ pgdata: pg.pgdata, created }, created ? 'initialised a new database through the sidecar' : 'reusing the existing database');
  await startPostgres(sc.client, pg);
  const services = await sc.client.getServices();
  const out = process.stdout;
  out.write('\nNOTE: this milestone runs ONE PostgreSQL under the pgcharm sidecar (no replicas yet);\n');
  out.write('      the 3-unit local deployment replaces it in a later milestone.\n\n');
  out.write(`Service     Startup   Current\n`);
  for (const s of services) out.write(`${s.name.padEnd(11)} ${s.startup.padEnd(9)} ${s.current}\n`);
  out.write(`\nSidecar socket:    ${sc.socket}   (PEBBLE_SOCKET=${sc.socket} npx pgcharm-sidecar services)\n`);
  out.write(`Data directory:    ${pg.pgdata}\n`);
  out.write(`Connection string: ${connectionString(pg)}\n`);
  out.write(`psql:              psql '${connectionString(pg)}'\n\nCtrl-C stops PostgreSQL and the sidecar.\n`);
  log.info({ service: SERVICE, port: pg.port }, 'PostgreSQL is up under the sidecar');
  sc.proc.on('exit', (code, signal) => {
    if (stopping) return;
    log.error({ code, signal }, 'the sidecar exited unexpectedly');
    process.exit(1);
  });
  await new Promise<never>(() => undefined);
}
