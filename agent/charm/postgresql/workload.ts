import pg from '#pg';
import type { Logger } from 'pino';
import { parse } from '#yaml';
import { APIError, ChangeError, PathError, type PebbleClient } from '../../../sidecar/client/index.js';
import { parseResources, resourcesScript, syncfsReportsErrors, type UnitResources } from './profile.js';
import { readFileSync } from 'node:fs';
import { chown } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { fencePipe, fenceWriter } from './fence.js';
import { FENCE_SERVICE, fenceLayer, fenceScript, layout, postgresLayer, renderConf, renderHba, renderIdent, SERVICE, type HbaSpec, type Layout } from './render.js';

/**
 * Effects on this unit's Postgres, all through the sidecar's API (files, exec, services,
 * signals) or a libpq connection: the decisions live elsewhere.
 */

const OWNER = { user: 'postgres', group: 'postgres' };

/**
 * What each storage's workload reported, and when: re-read every few minutes (a volume can
 * grow), not at every reconcile. A read under way is shared by those who ask meanwhile.
 */
const resourcesSeen = new Map<string, { at: number; r: Promise<UnitResources | undefined> }>();
const RESOURCES_TTL_MS = 5 * 60_000;

/** Storages whose directories this process made (prepareStorage). */
const storagePrepared = new Set<string>();

/**
 * Config written since Postgres last loaded it (one Postgres per agent process). True at
 * start-up: a write just before the agent stopped may never have been reloaded.
 */
let configUnapplied = true;

/** Layers this process added, by sidecar boot id and label: one is added again only when it changed (or the sidecar restarted). */
const layersAdded = new Map<string, string>();

/** How long a deadline write may wait for a watchdog that is (re)starting. */
const FENCE_WRITE_WAIT_MS = 2000;

/** A command's failure: its name, exit code and the last lines of its stderr. */
const execFailed = (argv: string[], r: { exitCode: number; stderr: Buffer }) =>
  new ExecFailed(`${argv[0]!.split('/').pop()} exited with ${r.exitCode}: ${r.stderr.toString().trim().split('\n').slice(-5).join(' | ')}`);

export class ExecFailed extends Error {
  override name = 'ExecFailed';
}

export class PostgresWorkload {
  constructor(
    readonly pebble: PebbleClient,
    readonly l: Layout,
    readonly log: Logger,
  ) {}

  /** Runs a command as postgres in the workload; throws with its stderr when it fails. */
  async run(argv: string[], o: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<string> {
    const p = await this.pebble.exec(argv, { ...OWNER, ...(o.env ? { environment: o.env } : {}), timeoutMs: o.timeoutMs ?? 120_000, workingDir: this.l.storage });
    const r = await p.waitOutput();
    if (r.exitCode !== 0) throw execFailed(argv, r);
    return r.stdout.toString();
  }

  /** As run, with the command's input from `stdin` or its output into `stdout` (streamed, with backpressure); stderr for the error. */
  async runStreaming(argv: string[], o: { env?: Record<string, string>; timeoutMs: number; stdin?: Readable; stdout?: Writable }): Promise<void> {
    const p = await this.pebble.exec(argv, { ...OWNER, ...(o.env ? { environment: o.env } : {}), timeoutMs: o.timeoutMs, workingDir: this.l.storage, ...(o.stdin ? { stdin: o.stdin } : {}), ...(o.stdout ? { stdout: o.stdout } : {}) });
    const r = await p.waitOutput();
    if (r.exitCode !== 0) throw execFailed(argv, r);
  }

  /** A file's text, or undefined when it is not there (other errors are thrown). */
  async readIfExists(path: string): Promise<string | undefined> {
    try {
      return (await this.pebble.pull(path)).toString();
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      await this.pebble.listFiles(path, { itself: true });
      return true;
    } catch (e) {
      if (isMissing(e)) return false;
      throw e;
    }
  }

  /**
   * Memory limit, machine memory and data volume size, read inside the workload container
   * (its cgroup, /proc/meminfo, statfs of the storage): what the profile and the slot WAL bound
   * are sized from. Undefined (and a warning) when they cannot be read: the defaults apply.
   */
  resources(): Promise<UnitResources | undefined> {
    const seen = resourcesSeen.get(this.l.storage);
    if (seen && Date.now() - seen.at < RESOURCES_TTL_MS) return seen.r;
    const r = this.readResources(seen?.r);
    resourcesSeen.set(this.l.storage, { at: Date.now(), r });
    return r;
  }

  private async readResources(before: Promise<UnitResources | undefined> | undefined): Promise<UnitResources | undefined> {
    let r: UnitResources | undefined;
    try {
      const out = await this.run(['/bin/sh', '-c', resourcesScript(this.l.storage)], { timeoutMs: 10_000 });
      r = parseResources(out);
      if (!r) this.log.warn({ output: out.slice(0, 500) }, 'could not read the memory of the workload; PostgreSQL memory defaults apply');
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'could not read the resources of the workload; PostgreSQL memory defaults apply');
    }
    const prev = await before;
    if (r && (!prev || JSON.stringify(prev) !== JSON.stringify(r))) this.log.info({ resources: r }, 'workload resources');
    return r;
  }

  /** Whether PGDATA holds a cluster (PG_VERSION is the marker initdb and pg_basebackup both leave). */
  hasCluster(): Promise<boolean> {
    return this.exists(`${this.l.pgdata}/PG_VERSION`);
  }

  /**
   * The storage layout: PGDATA's parent, the charm's private directory and the socket
   * directory. Made once per agent process and storage: every event runs a reconcile, and
   * nothing the charm does removes them.
   */
  async prepareStorage(): Promise<void> {
    if (storagePrepared.has(this.l.storage)) return;
    await this.pebble.makeDir(this.l.storage, { makeParents: true, ...OWNER, permissions: '755' }).catch(ignoreExists);
    await Promise.all([
      this.pebble.makeDir(this.l.private, { makeParents: true, ...OWNER, permissions: '700' }).catch(ignoreExists),
      this.pebble.makeDir(this.l.socketDir, { makeParents: true, ...OWNER, permissions: '755' }).catch(ignoreExists),
    ]);
    storagePrepared.add(this.l.storage);
  }

  /** A directory owned by postgres (its parents too, when missing); one that exists is left as it is. */
  async ensureDir(path: string, permissions: string): Promise<void> {
    await this.pebble.makeDir(path, { makeParents: true, ...OWNER, permissions }).catch(ignoreExists);
  }

  /** A file only postgres can read, for a secret (initdb --pwfile, PGPASSFILE). */
  async pushSecret(path: string, content: string): Promise<void> {
    await this.pebble.push(path, content, { ...OWNER, permissions: '600', makeDirs: true });
  }

  /**
   * Whether one syncfs of the storage's filesystem (`sync -f`) may replace fsyncing each file
   * a tool writes (initdb, pg_basebackup): the kernel must report the errors of the writes it
   * waited for (syncfsReportsErrors). Otherwise the tools sync each file as they always did.
   */
  private async syncfs(): Promise<boolean> {
    return syncfsReportsErrors((await this.resources())?.kernel);
  }

  /**
   * A new cluster, built beside PGDATA and renamed into place once it is on disk, so that a
   * PGDATA with PG_VERSION is always complete and durable (an initdb cut short, which leaves
   * PG_VERSION behind, never looks like a cluster; what it left is deleted, as for a clone).
   * Where syncfs can be trusted, initdb --no-sync and one syncfs instead of initdb's fsync of
   * each of its ~1000 files: the same guarantee before Postgres starts, in a fraction of the
   * time. An fsync of the storage directory makes the rename durable.
   */
  async initdb(operatorPassword: string, checksums: boolean): Promise<void> {
    this.log.info({ pgdata: this.l.pgdata }, 'initialising a new cluster');
    const syncfs = await this.syncfs();
    const fresh = `${this.l.pgdata}.initdb`;
    if (await this.exists(fresh)) {
      this.log.warn({ path: fresh }, 'removing what an interrupted initdb left behind');
      await this.run(['rm', '-rf', '--one-file-system', fresh]);
    }
    const pwfile = `${this.l.private}/initdb-password`;
    await this.pushSecret(pwfile, operatorPassword);
    try {
      await this.run([
        `${this.l.binDir}/initdb`,
        '-D', fresh,
        '-U', 'operator',
        `--pwfile=${pwfile}`,
        '--auth-local=peer',
        '--auth-host=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C.UTF-8',
        '--no-instructions',
        ...(syncfs ? ['--no-sync'] : []),
        ...(checksums ? ['--data-checksums'] : []),
      ]);
    } finally {
      await this.pebble.removePath(pwfile).catch(() => undefined);
    }
    await this.moveIntoPlace(fresh, syncfs);
    this.log.info({ pgdata: this.l.pgdata }, 'initialised a new cluster');
  }

  /**
   * Clones PGDATA from the primary over the replication protocol (physical slot `slot`), into
   * a directory beside PGDATA renamed into place when complete and on disk, so a clone cut
   * short (the unit killed mid-copy) never looks like a data directory. What such a clone left
   * behind is deleted: this charm made it, and it never held a usable cluster. As for initdb,
   * --no-sync and one syncfs replace the fsync of every file where syncfs can be trusted.
   */
  async basebackup(primary: { host: string; port: number }, slot: string, createSlot: boolean): Promise<void> {
    this.log.info({ from: `${primary.host}:${primary.port}`, slot }, 'cloning the primary with pg_basebackup');
    const syncfs = await this.syncfs();
    const partial = `${this.l.pgdata}.cloning`;
    if (await this.exists(partial)) {
      this.log.warn({ path: partial }, 'removing what an interrupted clone left behind');
      await this.run(['rm', '-rf', '--one-file-system', partial]);
    }
    await this.run(
      [
        `${this.l.binDir}/pg_basebackup`,
        '-h', primary.host,
        '-p', String(primary.port),
        '-U', 'replication',
        '-D', partial,
        '-X', 'stream',
        '-c', 'fast',
        '-S', slot,
        ...(createSlot ? ['-C'] : []),
        '-w',
        ...(syncfs ? ['--no-sync'] : []),
      ],
      { env: { PGPASSFILE: this.l.pgpass }, timeoutMs: 3_600_000 },
    );
    await this.moveIntoPlace(partial, syncfs);
    this.log.info({ from: `${primary.host}:${primary.port}`, slot }, 'cloned the primary with pg_basebackup');
  }

  /**
   * Renames a data directory made beside PGDATA into place, durably: its files synced first
   * (one syncfs, when the tool that made it did not sync them), the rename made durable by an
   * fsync of the storage directory, so that a crash never leaves a PGDATA whose content is not
   * on disk, nor loses a PGDATA a server has already written to. mv -T fails rather than
   * moving it inside an existing non-empty PGDATA.
   */
  /**
   * A data directory filled by `fill` (a pgBackRest restore) beside PGDATA and renamed into
   * place once complete, as initdb's: a restore cut short never looks like a cluster.
   */
  async buildBeside(fill: (dir: string) => Promise<void>): Promise<void> {
    const dir = `${this.l.pgdata}.restore`;
    if (await this.exists(dir)) {
      this.log.warn({ path: dir }, 'removing what an interrupted restore left behind');
      await this.run(['rm', '-rf', '--one-file-system', dir]);
    }
    await this.ensureDir(dir, '700');
    await fill(dir);
    // pgBackRest synced every file it wrote.
    await this.moveIntoPlace(dir, false);
  }

  /**
   * SQL as the operator over the local socket with peer authentication (the OS user postgres,
   * pg_ident map): what works before the charm's passwords do. The statements go in a 0600
   * file, never in argv. Returns psql's unaligned output.
   */
  async sqlAsOwner(sql: string, port: number): Promise<string> {
    const file = `${this.l.private}/owner.sql`;
    await this.pushSecret(file, sql);
    try {
      return await this.run([`${this.l.binDir}/psql`, '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', this.l.socketDir, '-p', String(port), '-U', 'operator', '-d', 'postgres', '-f', file]);
    } finally {
      await this.pebble.removePath(file).catch(() => undefined);
    }
  }

  private async moveIntoPlace(dir: string, syncfs: boolean): Promise<void> {
    await this.run(['/bin/sh', '-c', `${syncfs ? 'sync -f "$1" && ' : ''}mv -T "$1" "$2" && sync "$3"`, 'sh', dir, this.l.pgdata, this.l.storage]);
  }

  /**
   * The config file and pg_hba.conf; Postgres takes both on the next reload (or start). A file
   * that already holds the content is not written again (it is read back through the sidecar,
   * so a clone or rewind that replaced it is noticed). Returns whether Postgres has anything
   * to reload: a file changed, or one written earlier was not reloaded yet.
   */
  async writeConfig(params: Record<string, string>, hba: HbaSpec): Promise<boolean> {
    const [conf, rules, ident] = await Promise.all([this.pushIfChanged(this.l.confFile, renderConf(params)), this.pushIfChanged(this.l.hbaFile, renderHba(hba)), this.pushIfChanged(this.l.identFile, renderIdent())]);
    if (conf || rules || ident) configUnapplied = true;
    return configUnapplied;
  }

  /** Writes a postgres-only file unless it holds `content` already; says whether it wrote. */
  async pushIfChanged(path: string, content: string, permissions = '600'): Promise<boolean> {
    const now = await this.pebble.pull(path).catch(() => undefined);
    if (now?.toString() === content) return false;
    await this.pebble.push(path, content, { ...OWNER, permissions, makeDirs: true });
    return true;
  }

  async setStandbySignal(on: boolean): Promise<void> {
    const f = `${this.l.pgdata}/standby.signal`;
    if (on) await this.pushIfChanged(f, '');
    else await this.pebble.removePath(f).catch(() => undefined);
  }

  /** Adds a layer unless this sidecar (same boot) already has it as it is. */
  private async addLayerOnce(label: string, yaml: string): Promise<void> {
    const boot = (await this.pebble.getSystemInfo())['boot-id'];
    const key = `${this.pebble.transport.address}|${label}`;
    if (layersAdded.get(key) === `${boot}|${yaml}`) return;
    await this.pebble.addLayer(label, yaml, { combine: true });
    layersAdded.set(key, `${boot}|${yaml}`);
  }

  /**
   * A helper service from a layer of its own, running with `digest` (in its environment): the
   * layer is replaced and the service restarted when the digest differs from the plan's, and
   * started when it is not running (it reads its config only at start).
   */
  async ensureService(label: string, yaml: string, service: string, digest: string): Promise<void> {
    const plan = parse(await this.pebble.getPlan()) as { services?: Record<string, { environment?: Record<string, string> }> } | null;
    const planned = plan?.services?.[service]?.environment?.['PGCHARM_CONFIG_DIGEST'];
    if (planned !== digest) await this.pebble.addLayer(label, yaml, { combine: true });
    const [s] = await this.pebble.getServices([service]);
    if (s?.current === 'active' && planned === digest) return;
    // Not waited for: the start's change takes the service's okay delay (1 s), and nothing needs it at once.
    const change = await (s?.current === 'active' ? this.pebble.restart([service]) : this.pebble.start([service]));
    this.pebble.waitChange(change).catch((e: unknown) => this.log.error({ service, err: e instanceof Error ? e.message : String(e) }, 'service did not start'));
  }

  /**
   * The Postgres layer and the fence watchdog beside it (started at once; idle without a
   * deadline). `fenceMarginMs` (TTL/2) is what a restarted watchdog arms while Postgres serves writes.
   */
  async addLayer(port: number, fenceMarginMs: number): Promise<void> {
    const pipe = fencePipe(this.pebble);
    await fenceWriter(pipe).ensure();
    // Root hands the pipe to the postgres group; an unprivileged agent (a pod) shares its own group.
    const root = process.getuid?.() === 0;
    if (root) await chown(pipe, 0, postgresGid());
    await this.pushIfChanged(`${this.l.private}/fence.sh`, fenceScript(this.l, pipe, fenceMarginMs), '700');
    await this.addLayerOnce('postgresql', postgresLayer(this.l, port));
    await this.addLayerOnce('pgcharm-fence', fenceLayer(this.l, pipe, fenceMarginMs, root ? undefined : process.getgid?.()));
    const [f] = await this.pebble.getServices([FENCE_SERVICE]);
    if (f?.current === 'active') return;
    // The watchdog only has to be running: waiting out its okay delay (1 s) would delay every start
    // of Postgres. A watchdog that dies later is restarted by the sidecar; its change records why.
    const change = await this.pebble.start([FENCE_SERVICE]);
    let failed: unknown;
    this.pebble.waitChange(change).catch((e: unknown) => {
      failed = e;
      this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'the fence watchdog did not start');
    });
    for (const until = Date.now() + 10_000; ; ) {
      if (failed) throw failed;
      const [s] = await this.pebble.getServices([FENCE_SERVICE]);
      if (s?.current === 'active') return;
      if (Date.now() > until) throw new ExecFailed(`${FENCE_SERVICE} is ${s?.current ?? 'missing'} 10 s after its start`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Arms (or moves) the fence: past `epochMs` without a newer deadline, Postgres is stopped. */
  setFenceDeadline(epochMs: number): Promise<void> {
    // Waiting for the watchdog past the deadline is no use: the line would only stop Postgres.
    return fenceWriter(fencePipe(this.pebble)).write(epochMs, Math.min(FENCE_WRITE_WAIT_MS, Math.max(0, epochMs - Date.now())));
  }

  /** This agent set a deadline (not disarmed since): renewals must move it. */
  fenceArmed(): boolean {
    return (fenceWriter(fencePipe(this.pebble)).last ?? 0) > 0;
  }

  /** The fence deadline in force (epoch ms) as this agent last set it, or undefined when not armed. */
  fenceDeadline(): Promise<number | undefined> {
    return Promise.resolve(this.fenceDeadlineNow());
  }

  fenceDeadlineNow(): number | undefined {
    return fenceWriter(fencePipe(this.pebble)).last || undefined;
  }

  /** Disarms the fence (this unit is not, or no longer, a primary); a watchdog not running has nothing armed by us. */
  async clearFence(): Promise<void> {
    const f = fenceWriter(fencePipe(this.pebble));
    if (f.last === 0) return;
    await f.write(0, 0).catch(() => undefined);
  }

  /** Promotes this standby (pg_promote waits until it accepts writes). */
  async promote(target: { host: string; port: number }, operatorPassword: string): Promise<void> {
    await withConnection(target, operatorPassword, async (c) => {
      const r = await c.query<{ ok: boolean }>('SELECT pg_promote(true, 30) AS ok');
      if (!r.rows[0]?.ok) throw new ExecFailed('pg_promote did not finish within 30 s');
    });
    await this.setStandbySignal(false);
  }

  /**
   * Turns a former primary into something that can follow `source`: pg_rewind as the `rewind`
   * role (EXECUTE on the file functions pg_rewind needs, nothing else: system-roles.ts), its
   * password from the private passfile (it runs crash recovery first if needed). The CHECKPOINT
   * before it is the operator's. Returns false when rewind is impossible (the caller re-clones,
   * keeping the old data aside).
   */
  async rewind(source: { host: string; port: number }, operatorPassword: string): Promise<boolean> {
    try {
      // pg_rewind (15) reads the source's timeline from its control file, which a promotion
      // updates only at the next checkpoint (spread over minutes): without one now it may find
      // "the same timeline", rewind nothing, and leave this standby stuck on the old timeline.
      await withConnection(source, operatorPassword, (c) => c.query('CHECKPOINT'), 5000);
      await this.run(
        [`${this.l.binDir}/pg_rewind`, '-D', this.l.pgdata, `--source-server=host=${source.host} port=${source.port} user=rewind dbname=postgres passfile=${this.l.pgpass}`, '--progress'],
        { timeoutMs: 3_600_000 },
      );
      return true;
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'pg_rewind failed');
      return false;
    }
  }

  /** pg_controldata's report on this cluster (C locale: its labels are parsed). */
  private controldata(): Promise<string> {
    return this.run([`${this.l.binDir}/pg_controldata`, '-D', this.l.pgdata], { env: { LC_ALL: 'C' } });
  }

  /**
   * The primary's settings a hot standby needs at least as high, as this cluster's control file
   * holds them (pg_controldata; a standby updates them when it replays the primary's change).
   */
  async controlSettings(): Promise<Record<string, number>> {
    const out = await this.controldata();
    const names: Record<string, string> = {
      max_connections: 'max_connections',
      max_worker_processes: 'max_worker_processes',
      max_wal_senders: 'max_wal_senders',
      max_prepared_xacts: 'max_prepared_transactions',
      max_locks_per_xact: 'max_locks_per_transaction',
    };
    const got: Record<string, number> = {};
    for (const m of out.matchAll(/^(\w+) setting:\s+(\d+)$/gm)) {
      const name = names[m[1]!];
      if (name) got[name] = Number(m[2]);
    }
    return got;
  }

  /** The stopped cluster's last checkpoint LSN (pg_controldata): what a switchover target must have. */
  async finalLsn(): Promise<string> {
    const out = await this.controldata();
    const m = /^Latest checkpoint location:\s+(\S+)$/m.exec(out);
    if (!m) throw new ExecFailed('pg_controldata printed no latest checkpoint location');
    return m[1]!;
  }

  /** Moves PGDATA aside (never deleted: data the charm cannot prove replaced stays). */
  async setAside(): Promise<string> {
    const to = `${this.l.storage}/pgdata.old-${new Date().toISOString().replace(/[:.]/g, '')}`;
    await this.run(['mv', this.l.pgdata, to]);
    this.log.warn({ kept: to }, 'moved the old data directory aside before re-cloning');
    return to;
  }

  /** The private passfile: replication (streaming, basebackup) and rewind (pg_rewind); not the superuser's. */
  async pushPassfile(pw: { replication: string; rewind: string }): Promise<void> {
    const esc = (s: string) => s.replace(/[\\:]/g, (c) => `\\${c}`);
    await this.pushIfChanged(this.l.pgpass, `*:*:*:replication:${esc(pw.replication)}\n*:*:*:rewind:${esc(pw.rewind)}\n`);
  }

  async running(): Promise<boolean> {
    const [s] = await this.pebble.getServices([SERVICE]).catch(() => []);
    return s?.current === 'active';
  }

  /**
   * Starts the service and returns once `ready` says Postgres serves, without sitting out the
   * sidecar's 1 s okay delay; a start the sidecar reports failed still fails here.
   */
  async start(ready: () => Promise<void>): Promise<void> {
    configUnapplied = false; // a starting postmaster reads the files as they are now
    const change = this.pebble.waitChange(await this.pebble.start([SERVICE])).then(
      () => ready(),
      (e: unknown) => {
        throw e instanceof ChangeError ? new ExecFailed(`postgresql did not start: ${e.err}`) : e;
      },
    );
    await Promise.race([ready(), change]);
  }

  /** Fast shutdown (SIGINT: Postgres' SIGTERM is "smart" and waits for every client), then stop the service. */
  async stop(): Promise<void> {
    if (!(await this.running())) return;
    await this.pebble.sendSignal('SIGINT', [SERVICE]).catch(() => undefined);
    await this.pebble.waitChange(await this.pebble.stop([SERVICE]));
  }

  async reload(): Promise<void> {
    await this.pebble.sendSignal('SIGHUP', [SERVICE]);
    configUnapplied = false;
  }
}

/** The sidecar's answer for a path that is not there. */
export const isMissing = (e: unknown): boolean => (e instanceof PathError && e.kind === 'not-found') || (e instanceof APIError && e.status === 404);

function ignoreExists(e: unknown): void {
  if (e instanceof PathError && e.kind === 'generic-file-error' && /exists/.test(e.message)) return;
  throw e;
}

/**
 * A connected client to a unit's Postgres as the operator; the caller ends it. `statementTimeoutMs`
 * undefined: none (a REASSIGN OWNED on a large database takes what it takes).
 */
export async function operatorClient(target: { host: string; port: number }, password: string, o: { database?: string; timeoutMs?: number; statementTimeoutMs?: number } = {}): Promise<pg.Client> {
  const c = new pg.Client({
    host: target.host,
    port: target.port,
    user: 'operator',
    password,
    database: o.database ?? 'postgres',
    connectionTimeoutMillis: o.timeoutMs ?? 3000,
    ...(o.statementTimeoutMs !== undefined ? { statement_timeout: o.statementTimeoutMs } : {}),
  });
  // A server going away between queries would otherwise be an unhandled 'error' event that ends the agent; queries still reject.
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** A short-lived libpq connection to a unit's Postgres as the operator. */
export async function withConnection<T>(target: { host: string; port: number }, password: string, fn: (c: pg.Client) => Promise<T>, timeoutMs = 3000): Promise<T> {
  const c = await operatorClient(target, password, { timeoutMs, statementTimeoutMs: 10_000 });
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Waits until the server accepts connections (and, for a primary, writes). */
export async function waitAccepting(target: { host: string; port: number }, password: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      await withConnection(target, password, (c) => c.query('SELECT 1'), 1000);
      return;
    } catch (e) {
      last = e;
      // Short: a start is on the path of a bootstrap, a clone and a restart; a refused attempt costs little.
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`postgres at ${target.host}:${target.port} did not accept connections in ${timeoutMs / 1000} s: ${(last as Error)?.message}`);
}

/** The postgres group's id on this machine (a local deployment: the agent and the workload share /etc/group). */
function postgresGid(): number {
  const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  const gid = Number(line?.split(':')[2]);
  if (!line || !Number.isInteger(gid)) throw new Error('no postgres group in /etc/group: install the PostgreSQL server packages (scripts/install-postgres.sh)');
  return gid;
}

/** A unit's workload as an event sees it: its pgdata storage and the configured major version. */
export function unitWorkload(ctx: { pebble: PebbleClient; workload: { storage(name: string): string }; config: Readonly<Record<string, unknown>>; log: Logger }): PostgresWorkload {
  return new PostgresWorkload(ctx.pebble, layout(ctx.workload.storage('pgdata'), Number(ctx.config['postgresql-major'])), ctx.log);
}
