import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import type { PebbleClient } from '../sidecar/client/index.js';
import { defaults, loadCharmYaml } from './charm-meta/index.js';
import { hbaSpec } from './charm/postgresql/access.js';
import { layout, pgParams, postgresLayer, SERVICE, type Layout } from './charm/postgresql/render.js';
import { PostgresWorkload, waitAccepting } from './charm/postgresql/workload.js';
import type { ConfigValue } from './runtime/charm.js';
import { installedMajors, pgBinDir } from './postgres/binaries.js';
import { freePort } from './ports.js';
import { spawnSidecar } from './sidecar-process.js';

export interface SingleOptions {
  /** The storage directory: PGDATA, the socket and the charm's private files go in it (layout()). */
  storage: string;
  major: number;
  port: number;
  /** The operator (superuser) password, set at initdb. */
  password: string;
  /** The charm config (charm.yaml's defaults, possibly changed). */
  config: Readonly<Record<string, ConfigValue>>;
  log: Logger;
}

export interface Single {
  w: PostgresWorkload;
  l: Layout;
  /** initdb ran (false: the storage already held a cluster). */
  created: boolean;
  url: string;
}

/**
 * One PostgreSQL under a sidecar, no HA, set up by the charm's own workload code (storage,
 * initdb, the rendered config file and pg_hba.conf, the Postgres layer) and started. What
 * `pgcharm single` runs, and what the sidecar's Postgres test and benchmark use.
 */
export async function startSingle(pebble: PebbleClient, o: SingleOptions): Promise<Single> {
  const l = layout(o.storage, o.major);
  const w = new PostgresWorkload(pebble, l, o.log);
  await w.prepareStorage();
  const created = !(await w.hasCluster());
  if (created) {
    // The demo's storage is a root-owned home (it holds the root-only password file): PGDATA is
    // made for postgres first, and initdb fills it (a unit's storage belongs to postgres instead).
    await pebble.makeDir(l.pgdata, { makeParents: true, user: 'postgres', group: 'postgres', permissions: '700' }).catch(async (e: unknown) => {
      if (!(await w.exists(l.pgdata))) throw e;
    });
    await w.initdb(o.password, Boolean(o.config['data-checksums']));
  }
  await writeSingleConfig(w, o.config, o.port);
  // The charm's layer alone: the fence watchdog guards a primary lease this demo does not have.
  await pebble.addLayer('postgresql', postgresLayer(l, o.port), { combine: true });
  const target = { host: '127.0.0.1', port: o.port };
  if (!(await w.running())) await w.start(() => waitAccepting(target, o.password));
  await waitAccepting(target, o.password);
  return { w, l, created, url: `postgresql://operator:${encodeURIComponent(o.password)}@127.0.0.1:${o.port}/postgres` };
}

/** The config file and pg_hba.conf for `config`, as the charm renders them for a primary. */
export async function writeSingleConfig(w: PostgresWorkload, config: Readonly<Record<string, ConfigValue>>, port: number): Promise<void> {
  await w.writeConfig(pgParams(config, { host: '127.0.0.1', port, l: w.l, resources: await w.resources() }), hbaSpec(config, '127.0.0.1', []));
}

/**
 * `pgcharm single`: one PostgreSQL supervised by the sidecar (startSingle), in the foreground.
 * It prints the connection string and keeps running until Ctrl-C.
 */
export async function runSingle(opts: { home: string; port?: number; major: number; charm: string }): Promise<void> {
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
  const config = defaults(await loadCharmYaml(opts.charm));

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

  const port = opts.port ?? (await freePort());
  let s: Single;
  try {
    s = await startSingle(sc.client, { storage: opts.home, major: opts.major, port, password, config, log });
  } catch (e) {
    stopping = true;
    await sc.stop(40_000); // with what it started: nothing of the demo outlives a failed start
    throw e;
  }
  log.info({ pgdata: s.l.pgdata, created: s.created }, s.created ? 'initialised a new database through the sidecar' : 'reusing the existing database');
  const services = await sc.client.getServices();
  const out = process.stdout;
  out.write('\nNOTE: ONE PostgreSQL under the pgcharm sidecar, no replicas: `pgcharm deploy` runs the HA deployment.\n\n');
  out.write(`Service     Startup   Current\n`);
  for (const x of services) out.write(`${x.name.padEnd(11)} ${x.startup.padEnd(9)} ${x.current}\n`);
  out.write(`\nSidecar socket:    ${sc.socket}   (PEBBLE_SOCKET=${sc.socket} npx pgcharm-sidecar services)\n`);
  out.write(`Data directory:    ${s.l.pgdata}\n`);
  out.write(`Connection string: ${s.url}\n`);
  out.write(`psql:              psql '${s.url}'\n\nCtrl-C stops PostgreSQL and the sidecar.\n`);
  log.info({ service: SERVICE, port }, 'PostgreSQL is up under the sidecar');
  sc.proc.on('exit', (code, signal) => {
    if (stopping) return;
    log.error({ code, signal }, 'the sidecar exited unexpectedly');
    process.exit(1);
  });
  await new Promise<never>(() => undefined);
}
