import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testModel, type TestModel } from '../helpers/model.js';
import { q, runAction } from '../helpers/pg.js';
import { waitFor } from '../helpers/procs.js';
import { startS3, type S3Server } from '../helpers/s3.js';

/**
 * The pgBackRest repository in S3 (a real S3 server on loopback over TLS, test/helpers/s3.ts):
 * the keys arrive by set-s3-credentials only, archiving and backups go to the bucket, a restore
 * to a time comes back from it, and another cluster pointed at the same prefix is kept out.
 */
describe('PostgreSQL charm: pgBackRest repository in S3 over TLS', () => {
  let m: TestModel;
  let rebuilt: TestModel | undefined;
  let s3: S3Server;
  let uri: string;
  const run = async (unit: string, action: string, ...params: string[]) => {
    const out = await runAction(m, unit, action, params, ['--app', 'postgresql']);
    return out;
  };
  type S = { application: { status: string }; units: Record<string, { workload: { status: string; message: string } }> };
  const status = async (app: string) => parse((await m.cli(['status', '--app', app, '--format', 'yaml'])).stdout) as S;
  const objects = (): string[] => (readdirSync(s3.dir, { recursive: true }) as string[]).filter((f) => !f.endsWith('._S3rver_metadata.json') && !f.endsWith('._S3rver_object.md5') && statSync(join(s3.dir, f)).isFile()).sort();
  const keysFile = (app: string, key: string, secret: string) => {
    const f = join(m.dir, `${app}-keys.json`);
    writeFileSync(f, JSON.stringify({ 'access-key': key, 'secret-key': secret }), { mode: 0o600 });
    return f;
  };
  const configFile = (app: string, path: string) => {
    const f = join(m.dir, `${app}-s3.yaml`);
    writeFileSync(f, stringify({ 's3-bucket': s3.bucket, 's3-endpoint': `localhost:${s3.port}`, 's3-path': path, 's3-uri-style': 'path', 's3-tls-ca-chain': s3.ca }));
    return f;
  };

  beforeAll(async () => {
    s3 = await startS3();
    m = testModel();
    const r = await m.cli(['deploy', '--units', '2', '--config-file', configFile('postgresql', '/shop'), '--timeout', '120'], 180_000);
    expect(r.code, r.stderr).toBe(0);
    uri = (await m.cli(['uri'])).stdout.trim();
  }, 200_000);
  afterAll(async () => {
    await rebuilt?.cleanup();
    await m?.cleanup();
    await s3?.close();
  }, 60_000);

  it('without keys the repository cannot be read: blocked, saying so; set-s3-credentials (from a file) unblocks it, and the keys are only in their Secret and a 0600 file', async () => {
    const blocked = await waitFor('blocked without keys', async () => {
      const s = await status('postgresql');
      return Object.values(s.units).find((u) => u.workload.status === 'blocked')?.workload.message;
    }, 60_000);
    expect(blocked).toMatch(/backup repository s3:\/\/pgcharm\/shop at localhost:\d+ cannot be read/);
    const r = await m.cli(['run', 'leader', 'set-s3-credentials', '--params', keysFile('postgresql', s3.accessKey, s3.secretKey), '--wait']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    await waitFor('active with the keys', async () => (await status('postgresql')).application.status === 'active', 90_000, 500);
    // The keys: in the Secret and each unit's 0600 file, nowhere else (argv, logs, ConfigMaps, the action record).
    for (const unit of ['postgresql-0', 'postgresql-1']) {
      const f = join(m.dir, 'units', unit, 'storage', 'pgdata', 'pgbackrest', 'conf.d', 's3-credentials.conf');
      expect(statSync(f).mode & 0o777).toBe(0o600);
      expect(readFileSync(f, 'utf8')).toContain(`repo1-s3-key-secret=${s3.secretKey}`);
    }
    // grep: status 1 when it finds nothing. The store holds ConfigMaps as plain text (Secrets base64, as etcd does).
    const leaks = spawnSync('grep', ['-rl', s3.secretKey, join(m.dir, 'logs'), join(m.dir, 'store')], { encoding: 'utf8' });
    expect([leaks.status, leaks.stdout]).toEqual([1, '']);
  }, 180_000);

  it('archives into the bucket, backs up into it, and restores to a time from it', async () => {
    await q(uri, 'CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 100)');
    const p = ((await m.cli(['run', 'leader', 'get-primary', '--wait'])).stdout.match(/primary: (\S+)/) ?? [])[1]!;
    const b = await run(p, 'create-backup');
    expect(b.status, JSON.stringify(b)).toBe('completed');
    // Into S3 from the primary, the files from a standby's pgBackRest server.
    expect(b.results).toMatchObject({ 'source-role': 'standby' });
    expect(Number(b.results!['files-from-standby'])).toBeGreaterThan(900);
    expect(objects().some((o) => o.startsWith(`${s3.bucket}/shop/backup/pgcharm/${String(b.results!['backup-id'])}/`))).toBe(true);
    // pgBackRest keeps a backup's stop to the second: a target in that second is refused (backup.test.ts).
    await new Promise((r) => setTimeout(r, 1100));
    await q(uri, 'INSERT INTO t SELECT generate_series(101, 200)');
    const T = String((await q(uri, 'SELECT clock_timestamp()::text AS t'))[0]!['t']);
    await q(uri, 'INSERT INTO t SELECT generate_series(201, 300); DROP TABLE t');
    const r = await run('leader', 'restore', `restore-to-time=${T}`);
    expect(r.status, JSON.stringify(r)).toBe('completed');
    await waitFor('restored', async () => {
      const s = await status('postgresql');
      return s.application.status === 'active' && Object.values(s.units).every((u) => u.workload.status === 'active') && !(await m.cli(['status'])).stdout.includes('restoring');
    }, 120_000);
    uri = (await m.cli(['uri'])).stdout.trim();
    expect((await q(uri, 'SELECT count(*)::int AS n, max(v) AS hi FROM t'))[0]).toEqual({ n: 200, hi: 200 });
    const list = await run('leader', 'list-backups');
    expect(list.results!['repository']).toMatch(/^s3:\/\/pgcharm\/shop at localhost:\d+$/);
  }, 240_000);

  it('dump-database streams pg_dump into the bucket as a timestamped and a latest object; restore-dump streams it back into a new database', async () => {
    await q(uri, 'CREATE TABLE IF NOT EXISTS dumped (v int); INSERT INTO dumped SELECT generate_series(1, 5000)');
    const d = await run('leader', 'dump-database', 'database=postgres');
    expect(d.status, JSON.stringify(d)).toBe('completed');
    expect(d.results!['file']).toMatch(new RegExp(`^s3://${s3.bucket}/shop/dumps/postgres/postgres-\\d{8}T\\d{6}Z\\.dump$`));
    expect(d.results!['latest']).toBe(`s3://${s3.bucket}/shop/dumps/postgres/postgres-latest.dump`);
    expect(Number(d.results!['bytes'])).toBeGreaterThan(1000);
    const stored = objects().filter((o) => o.startsWith(`${s3.bucket}/shop/dumps/postgres/`));
    expect(stored.some((o) => o.includes('postgres-latest.dump')) && stored.some((o) => String(d.results!['file']).endsWith(o.slice(0, o.indexOf('.dump') + 5).replace(`${s3.bucket}/`, '')))).toBe(true);
    const p = ((await m.cli(['run', 'leader', 'get-primary', '--wait'])).stdout.match(/primary: (\S+)/) ?? [])[1]!;
    const r = await run(p, 'restore-dump', 'database=postgres', 'into=fromdump');
    expect(r.status, JSON.stringify(r)).toBe('completed');
    const copy = new URL(uri);
    copy.pathname = '/fromdump';
    expect((await q(copy.toString(), 'SELECT count(*)::int AS n FROM dumped'))[0]!['n']).toBe(5000);
    const missing = await run(p, 'restore-dump', 'database=postgres', 'from=postgres-20200101T000000Z.dump', 'into=never');
    expect([missing.status, missing.message]).toEqual(['failed', `params.from: no dump s3://${s3.bucket}/shop/dumps/postgres/postgres-20200101T000000Z.dump`]);
  }, 120_000);

  it('another cluster pointed at the same bucket and prefix is blocked, naming both, and writes nothing into the bucket', async () => {
    const before = objects();
    const d = await m.cli(['deploy', '--app', 'other', '--units', '1', '--config-file', configFile('other', '/shop'), '--timeout', '90'], 150_000);
    expect(d.code, d.stderr).toBe(0);
    expect((await m.cli(['run', 'leader', 'set-s3-credentials', '--app', 'other', '--params', keysFile('other', s3.accessKey, s3.secretKey), '--wait'])).code).toBe(0);
    const msg = await waitFor('other blocked as foreign', async () => {
      const u = (await status('other')).units['other/0'];
      return u?.workload.status === 'blocked' && /belongs to/.test(u.workload.message) && u.workload.message;
    }, 90_000, 500);
    const sysid = async (u: string) => String((await q(u, 'SELECT system_identifier::text AS id FROM pg_control_system()'))[0]!['id']);
    expect(msg).toContain(`(system identifier ${await sysid(uri)})`);
    expect(msg).toContain(`not to other in `);
    expect(msg).toContain(`(system identifier ${await sysid((await m.cli(['uri', '--app', 'other'])).stdout.trim())})`);
    await q((await m.cli(['uri', '--app', 'other'])).stdout.trim(), 'CREATE TABLE x (v int); INSERT INTO x VALUES (1); SELECT pg_switch_wal()');
    await new Promise((r) => setTimeout(r, 3000));
    // The first cluster archives on (its WAL goes into the bucket); the other adds nothing of its own.
    const added = objects().filter((o) => !before.includes(o));
    const otherId = await sysid((await m.cli(['uri', '--app', 'other'])).stdout.trim());
    expect(added.filter((o) => o.includes(otherId))).toEqual([]);
    expect(added.every((o) => o.startsWith(`${s3.bucket}/shop/archive/pgcharm/`))).toBe(true);
  }, 200_000);

  it('a wrong access key: list-backups fails saying why, and the cluster keeps taking writes', async () => {
    const set = await m.cli(['run', '--app', 'postgresql', 'leader', 'set-s3-credentials', '--params', keysFile('postgresql', 'nosuchkey', 'whatever'), '--wait']);
    expect(set.code, set.stdout + set.stderr).toBe(0);
    await waitFor('the units have the new keys', async () => readFileSync(join(m.dir, 'units', 'postgresql-0', 'storage', 'pgdata', 'pgbackrest', 'conf.d', 's3-credentials.conf'), 'utf8').includes('nosuchkey'), 30_000);
    // On the unit whose file was just seen to hold the new keys.
    const l = await run('postgresql/0', 'list-backups');
    expect(l.status).toBe('failed');
    expect(l.message).toMatch(/cannot be read: .*(403|InvalidAccessKeyId|Forbidden)/);
    await q(uri, 'INSERT INTO t VALUES (1000)');
    expect((await m.cli(['status', '--app', 'postgresql'])).code).toBe(0);
  }, 120_000);

  it('disaster recovery: the deployment destroyed entirely, `deploy --restore-from` rebuilds 3 units from the bucket with every row acknowledged before the last archived segment', async () => {
    // The keys again (the test before set wrong ones), so the source archives.
    expect((await m.cli(['run', '--app', 'postgresql', 'leader', 'set-s3-credentials', '--params', keysFile('postgresql', s3.accessKey, s3.secretKey), '--wait'])).code).toBe(0);
    await q(uri, 'CREATE TABLE acked (id int PRIMARY KEY)');
    const p = ((await m.cli(['run', '--app', 'postgresql', 'leader', 'get-primary', '--wait'])).stdout.match(/primary: (\S+)/) ?? [])[1]!;
    const b = await run(p, 'create-backup', 'type=full');
    expect(b.status, JSON.stringify(b)).toBe('completed');
    // One commit per row: each acknowledged row is one the rebuilt cluster must have.
    const acked: number[] = [];
    for (let i = 1; i <= 200; i++) {
      await q(uri, `INSERT INTO acked VALUES (${i})`);
      acked.push(i);
    }
    const seg = String((await q(uri, 'SELECT pg_walfile_name(pg_switch_wal()) AS w'))[0]!['w']);
    await waitFor('the last segment archived', async () => String((await q(uri, 'SELECT last_archived_wal AS w FROM pg_stat_archiver'))[0]!['w'] ?? '') >= seg, 60_000, 200);
    const tl = Number((await q(uri, 'SELECT timeline_id FROM pg_control_checkpoint()'))[0]!['timeline_id']);
    expect((await m.cli(['destroy'], 120_000)).code).toBe(0);

    rebuilt = testModel();
    const endpoint = join(rebuilt.dir, '..', `${rebuilt.dir.split('/').pop()}-endpoint.yaml`);
    writeFileSync(endpoint, stringify({ 's3-endpoint': `localhost:${s3.port}`, 's3-uri-style': 'path', 's3-tls-ca-chain': s3.ca }));
    const keys = join(rebuilt.dir, '..', `${rebuilt.dir.split('/').pop()}-keys.json`);
    writeFileSync(keys, JSON.stringify({ 'access-key': s3.accessKey, 'secret-key': s3.secretKey }), { mode: 0o600 });
    try {
      const d = await rebuilt.cli(['deploy', '--units', '3', '--restore-from', `s3://${s3.bucket}/shop`, '--config-file', endpoint, '--s3-credentials', keys, '--timeout', '180'], 240_000);
      expect(d.code, d.stderr + d.stdout).toBe(0);
      // deploy returns once every unit settled; the leader's summary follows the replicas' last hooks.
      await waitFor('a primary and 2 replicas', async () => /primary postgresql\/\d, 2\/2 replicas/.test((await rebuilt!.cli(['status'])).stdout), 30_000, 500);
    } finally {
      rmSync(endpoint, { force: true });
      rmSync(keys, { force: true });
    }
    const u2 = (await rebuilt.cli(['uri'])).stdout.trim();
    const ids = (await q(u2, 'SELECT id FROM acked ORDER BY id')).map((r) => Number(r['id']));
    expect(acked.filter((i) => !ids.includes(i))).toEqual([]);
    expect((await q(u2, 'SELECT count(*)::int AS n FROM t WHERE v <= 200'))[0]!['n']).toBe(200);
    // A new timeline, archived into the same stanza; both standbys stream it; writes work.
    expect(Number((await q(u2, 'SELECT timeline_id FROM pg_control_checkpoint()'))[0]!['timeline_id'])).toBeGreaterThan(tl);
    expect((await q(u2, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'"))[0]!['n']).toBe(2);
    await q(u2, 'INSERT INTO acked VALUES (1000)');
    const after = await runAction(rebuilt, 'leader', 'list-backups', [], []);
    expect(after.status, JSON.stringify(after)).toBe('completed');
    expect((after.results!['backups'] as { id: string }[]).map((x) => x.id)).toContain(String(b.results!['backup-id']));
  }, 420_000);
});
