import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { readPasswords } from '../agent/charm/postgresql/secrets.js';
import { openModel } from '../agent/commands/context.js';
import { healthyPrimary, saveLogs, until } from './cluster.js';
import { pgcharmCli, PgcharmCluster } from './pgcharm.js';

/**
 * Issue 14, "Backups": a 3-unit deployment with a database of about 1 GB (pgbench scale 70),
 * its local pgBackRest repository, and what a database engineer asks of a backup tool:
 * - a full backup's time and rate (from a streaming standby, the default, and from the primary),
 *   beside pg_basebackup of the same data on the same machine;
 * - the restore of the whole cluster (RTO: the action to one writable primary with both
 *   standbys streaming on the new timeline);
 * - pgbench TPS with WAL archiving on and off (backup-repo-path=none);
 * - the data lost on total loss (every unit killed) with the default archive-timeout: a writer
 *   commits a row every 200 ms, every unit is killed, a new deployment is built from the
 *   repository (`deploy --restore-from`), and the acknowledged rows it lacks are counted.
 */

const PG_BIN = '/usr/lib/postgresql/15/bin';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface BackupBenchOptions {
  /** pgbench scale: 70 is about 1 GB. */
  scale: number;
  /** Seconds of each pgbench run (archiving on, then off). */
  seconds: number;
  /** Seconds the data-loss writer runs before every unit is killed. */
  writerSeconds: number;
  log: (s: string) => void;
}

function run(cmd: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<string> {
  return new Promise((res, rej) =>
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => (err ? rej(new Error(`${cmd.split('/').pop()} failed: ${stderr || err.message}`)) : res(stdout + stderr))),
  );
}

async function query<T extends Record<string, unknown>>(port: number, password: string, sql: string): Promise<T[]> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'operator', password, database: 'postgres' });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

/** `pgcharm run ... --wait` as YAML-free JSON: the outcome's results. */
async function action(model: string, unit: string, name: string, params: string[] = [], timeoutMs = 3_600_000): Promise<Record<string, unknown>> {
  const out = await pgcharmCli(model, ['run', unit, name, ...params, '--wait', '--timeout', String(Math.round(timeoutMs / 1000))], timeoutMs + 60_000);
  const { parse } = await import('yaml');
  const doc = Object.values(parse(out) as Record<string, { status: string; message?: string; results?: Record<string, unknown> }>)[0]!;
  if (doc.status !== 'completed') throw new Error(`${name} on ${unit}: ${doc.status}: ${doc.message ?? ''}`);
  return doc.results ?? {};
}

function pgbenchTps(out: string): number {
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(out);
  if (!m) throw new Error(`pgbench printed no TPS: ${out.slice(-400)}`);
  return Math.round(Number(m[1]));
}

const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;
const rate = (bytes: number, ms: number) => Math.round((bytes / 2 ** 20 / (ms / 1000)) * 10) / 10;

/** pg_basebackup of the primary into a temp directory (plain format, WAL streamed, fast checkpoint), as pgcharm's clones run it. */
async function basebackup(port: number, password: string): Promise<{ ms: number; bytes: number }> {
  // As the replication user, whom pg_hba admits for replication from the units' address.
  const dir = mkdtempSync(join(tmpdir(), 'pgcharm-bench-basebackup-'));
  try {
    const t0 = Date.now();
    await run(join(PG_BIN, 'pg_basebackup'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'replication', '-D', join(dir, 'data'), '-X', 'stream', '-c', 'fast'], { PGPASSWORD: password }, 3_600_000);
    const ms = Date.now() - t0;
    const bytes = Number(execFileSync('du', ['-sb', join(dir, 'data')], { encoding: 'utf8' }).split('\t')[0]);
    return { ms, bytes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Until one primary is writable and both standbys stream from it on a timeline after `after`. */
async function healthyAfter(cluster: PgcharmCluster, password: string, after: number, timeoutMs: number): Promise<{ primary: string; timeline: number }> {
  const c = { user: 'operator', password };
  return until(
    'a healthy cluster on a new timeline',
    async () => {
      const p = await healthyPrimary(cluster, c).catch(() => undefined);
      if (!p) return undefined;
      const [r] = await query<{ tl: number }>(cluster.portOf(p), password, 'SELECT timeline_id AS tl FROM pg_control_checkpoint()').catch(() => []);
      return r && r.tl > after ? { primary: p, timeline: r.tl } : undefined;
    },
    timeoutMs,
    200,
  );
}

export async function benchBackup(o: BackupBenchOptions) {
  const cluster = new PgcharmCluster(3);
  let rebuilt: string | undefined;
  const copy = mkdtempSync(join(tmpdir(), 'pgcharm-bench-repo-'));
  chmodSync(copy, 0o755);
  try {
    await cluster.start();
    await cluster.deployed();
    const { password } = await cluster.credentials();
    const c = { user: 'operator', password };
    let primary = await until('one primary, 2 standbys streaming', () => healthyPrimary(cluster, c), 240_000, 200);
    const port = () => cluster.portOf(primary);
    const settings = Object.fromEntries(
      (await query<{ name: string; setting: string }>(port(), password, "SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name IN ('archive_mode', 'archive_timeout', 'synchronous_commit', 'synchronous_standby_names', 'shared_buffers', 'max_wal_size')")).map((r) => [r.name, r.setting]),
    );

    o.log(`pgbench -i -s ${o.scale} on ${primary}`);
    let t0 = Date.now();
    await run(join(PG_BIN, 'pgbench'), ['-i', '-q', '-s', String(o.scale), '-h', '127.0.0.1', '-p', String(port()), '-U', 'operator', 'postgres'], { PGPASSWORD: password }, 3_600_000);
    const initMs = Date.now() - t0;
    const [size] = await query<{ b: string }>(port(), password, 'SELECT pg_database_size(current_database())::text AS b');
    const dbBytes = Number(size!.b);
    o.log(`database ${mb(dbBytes)} MB in ${initMs} ms; full backup with pgBackRest`);

    const full = await action(cluster.model, primary, 'create-backup', ['type=full']);
    const backupMs = Number(full['took-ms']);
    const backupBytes = Number(full['size']);
    o.log(`full backup ${full['backup-id']} from ${String(full['source-role'])} ${String(full['source'])}: ${backupMs} ms; again from the primary`);
    const fromPrimary = await action(cluster.model, primary, 'create-backup', ['type=full', 'from=primary']);
    const primaryMs = Number(fromPrimary['took-ms']);
    o.log(`full backup from the primary: ${primaryMs} ms; pg_basebackup of the same primary`);
    const ctx = await openModel(cluster.model);
    const replication = (await readPasswords(ctx.kube, ctx.app))!.replication;
    const bb = await basebackup(port(), replication);
    o.log(`pg_basebackup: ${bb.ms} ms`);

    o.log('restore of the whole cluster to the latest archived WAL');
    const [tlBefore] = await query<{ tl: number }>(port(), password, 'SELECT timeline_id AS tl FROM pg_control_checkpoint()');
    t0 = Date.now();
    await action(cluster.model, 'leader', 'restore', ['latest=true']);
    const restored = await healthyAfter(cluster, password, tlBefore!.tl, 1_800_000);
    const rtoMs = Date.now() - t0;
    primary = restored.primary;
    const [count] = await query<{ n: string }>(port(), password, 'SELECT count(*)::text AS n FROM pgbench_accounts');
    if (Number(count!.n) !== o.scale * 100_000) throw new Error(`the restored pgbench_accounts has ${count!.n} rows, not ${o.scale * 100_000}`);
    o.log(`restored in ${rtoMs} ms (timeline ${restored.timeline}, ${count!.n} accounts)`);

    const pgbench = async () => pgbenchTps(await run(join(PG_BIN, 'pgbench'), ['-c', '4', '-j', '2', '-T', String(o.seconds), '-h', '127.0.0.1', '-p', String(port()), '-U', 'operator', 'postgres'], { PGPASSWORD: password }, o.seconds * 1000 + 600_000));
    o.log(`pgbench -c 4 -j 2 -T ${o.seconds} with archiving on`);
    const tpsOn = await pgbench();
    await pgcharmCli(cluster.model, ['config', 'backup-repo-path=none']);
    // archive_mode is restart-class: wait for the rolling restart to end with it off everywhere.
    await until(
      'archive_mode off on every unit, the cluster healthy',
      async () => {
        const p = await healthyPrimary(cluster, c).catch(() => undefined);
        if (!p) return undefined;
        const modes = await Promise.all(cluster.ports().map((x) => query<{ m: string }>(x, password, "SELECT current_setting('archive_mode') AS m").then((r) => r[0]!.m).catch(() => '?')));
        return modes.every((m) => m === 'off') ? p : undefined;
      },
      600_000,
      500,
    ).then((p) => (primary = p));
    o.log(`pgbench -c 4 -j 2 -T ${o.seconds} with archiving off`);
    const tpsOff = await pgbench();
    await pgcharmCli(cluster.model, ['config', '--reset', 'backup-repo-path']);
    await until(
      'archiving on again',
      async () => {
        const p = await healthyPrimary(cluster, c).catch(() => undefined);
        const m = p ? await query<{ m: string }>(cluster.portOf(p), password, "SELECT current_setting('archive_mode') AS m").then((r) => r[0]!.m).catch(() => '?') : '?';
        return m === 'on' && p ? p : undefined;
      },
      600_000,
      500,
    ).then((p) => (primary = p));
    // The writer's table, then a backup on the timeline it will write on (the restore starts from it).
    await query(port(), password, 'CREATE TABLE IF NOT EXISTS loss (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())');
    await action(cluster.model, primary, 'create-backup', ['type=incr']);

    o.log(`data-loss window: a commit every 200 ms for ${o.writerSeconds} s, then every unit killed`);
    const acked: { id: number; at: number }[] = [];
    const writer = new pg.Client({ host: '127.0.0.1', port: port(), user: 'operator', password, database: 'postgres' });
    writer.on('error', () => undefined);
    await writer.connect();
    const end = Date.now() + o.writerSeconds * 1000;
    for (let id = 1; Date.now() < end; id++) {
      await writer.query('INSERT INTO loss (id) VALUES ($1)', [id]);
      acked.push({ id, at: Date.now() });
      await sleep(200);
    }
    const killedAt = Date.now();
    await Promise.all(cluster.nodeNames().map((n) => pgcharmCli(cluster.model, ['kill', n, '--no-restart'])));
    await writer.end().catch(() => undefined);
    // cp -a: the repository's files stay the postgres user's.
    execFileSync('cp', ['-a', `${join(cluster.model, 'backups', 'postgresql')}/.`, copy]);
    const saved = saveLogs(cluster, 'backup');
    await cluster.destroy();

    rebuilt = mkdtempSync(join(tmpdir(), 'pgcharm-bench-rebuilt-'));
    chmodSync(rebuilt, 0o755);
    o.log(`total loss; deploy --restore-from the repository (a copy), 3 units`);
    t0 = Date.now();
    await pgcharmCli(rebuilt, ['deploy', '--units', '3', '--restore-from', copy, '--timeout', '1800'], 1_900_000);
    const rebuildMs = Date.now() - t0;
    const uri = (await pgcharmCli(rebuilt, ['uri'])).trim();
    const rc = new pg.Client({ connectionString: uri });
    rc.on('error', () => undefined);
    await rc.connect();
    const have = new Set((await rc.query<{ id: number }>('SELECT id FROM loss')).rows.map((r) => r.id));
    await rc.end();
    const lost = acked.filter((a) => !have.has(a.id));
    const lastKept = acked.filter((a) => have.has(a.id)).at(-1);
    const windowMs = lastKept ? killedAt - lastKept.at : killedAt - (acked[0]?.at ?? killedAt);
    o.log(`rebuilt in ${rebuildMs} ms; ${lost.length} of ${acked.length} acknowledged rows lost (the last ${windowMs} ms before the kill)`);

    return {
      method:
        'a 3-unit local deployment (PostgreSQL 15, pgBackRest 2.45, local repository, lz4, process-max 2); pgbench -i at the scale given; create-backup type=full on the primary; pg_basebackup -X stream -c fast (plain) of the same primary; restore latest=true timed from the action to one writable primary with both standbys streaming on a new timeline; pgbench -c 4 -j 2 with archive_mode on, then off (backup-repo-path=none, a rolling restart); then a writer committing a row every 200 ms, every unit killed (kill --no-restart), and `deploy --restore-from` a copy of the repository: the acknowledged rows the rebuilt cluster lacks',
      machine_note: 'one machine: the three units, pgbench, pgBackRest and pg_basebackup share its cores and disk',
      settings,
      database_bytes: dbBytes,
      database_mb: mb(dbBytes),
      pgbench_init_ms: initMs,
      // The default: pgBackRest on the primary, the files copied from a streaming standby.
      full_backup: { ms: backupMs, mb_per_s: rate(backupBytes, backupMs), database_mb: mb(backupBytes), repository_mb: mb(Number(full['repository-size'])), id: full['backup-id'], source_role: full['source-role'], files_from_standby: full['files-from-standby'], files_from_primary: full['files-from-primary'] },
      full_backup_from_primary: { ms: primaryMs, mb_per_s: rate(Number(fromPrimary['size']), primaryMs) },
      pg_basebackup: { ms: bb.ms, mb_per_s: rate(bb.bytes, bb.ms), copied_mb: mb(bb.bytes) },
      backup_time_ratio_pgbackrest_over_basebackup: Math.round((backupMs / bb.ms) * 100) / 100,
      restore_cluster_rto_ms: rtoMs,
      tps_archiving_on: tpsOn,
      tps_archiving_off: tpsOff,
      tps_ratio_on_over_off: Math.round((tpsOn / tpsOff) * 100) / 100,
      total_loss: {
        archive_timeout: settings['archive_timeout'],
        writer_commits: acked.length,
        acknowledged_rows_lost: lost.length,
        data_loss_window_ms: windowMs,
        rebuild_3_units_from_repository_ms: rebuildMs,
        bound: `at most archive_timeout (${settings['archive_timeout']}) plus the archive push of the last segment; a busy primary fills 16 MB segments sooner`,
      },
      logs: saved,
    };
  } catch (e) {
    o.log(`pgcharm: logs kept in ${saveLogs(cluster, 'backup')}`);
    throw e;
  } finally {
    await cluster.destroy().catch(() => undefined);
    if (rebuilt) {
      await pgcharmCli(rebuilt, ['destroy']).catch(() => undefined);
      rmSync(rebuilt, { recursive: true, force: true });
    }
    rmSync(copy, { recursive: true, force: true });
  }
}
