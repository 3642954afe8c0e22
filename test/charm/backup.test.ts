import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testModel, type TestModel } from '../helpers/model.js';
import { q, runAction } from '../helpers/pg.js';
import { waitFor } from '../helpers/procs.js';
import { PebbleClient } from '../../sidecar/client/index.js';

/**
 * Backups with a real pgBackRest into the local repository (<model>/backups/<app>): WAL
 * archiving from the primary, create-backup and list-backups, and the guard that keeps a
 * deployment out of another cluster's repository.
 */
describe('PostgreSQL charm: pgBackRest repository, archiving and backups', () => {
  let m: TestModel;
  let uri: string;
  /** Every file under a directory, with its size and mtime: "nothing written there" is this unchanged. */
  const files = (dir: string): string[] =>
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => {
        const p = join(e.parentPath, e.name);
        const st = statSync(p);
        return `${p} ${st.size} ${st.mtimeMs}`;
      })
      .sort();
  const run = async (unit: string, action: string, ...params: string[]) => {
    const out = await runAction(m, unit, action, params, []);
    return { out };
  };

  beforeAll(async () => {
    m = testModel();
    const r = await m.cli(['deploy', '--units', '3', '--timeout', '120'], 180_000);
    expect(r.code, r.stderr).toBe(0);
    uri = (await m.cli(['uri'])).stdout.trim();
  }, 200_000);
  afterAll(async () => {
    await m?.cleanup();
  }, 60_000);

  const repo = () => join(m.dir, 'backups', 'postgresql');
  const primary = async () => ((await m.cli(['run', 'leader', 'get-primary', '--wait'])).stdout.match(/primary: (\S+)/) ?? [])[1]!;

  it('archives WAL from the primary into the local repository, whose stanza records this cluster', async () => {
    await q(uri, 'CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 1000)');
    const [seg] = await q(uri, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS w, pg_switch_wal()');
    await waitFor('the segment archived', async () => {
      const [a] = await q(uri, 'SELECT last_archived_wal FROM pg_stat_archiver');
      return typeof a?.['last_archived_wal'] === 'string' && a['last_archived_wal'] >= String(seg!['w']);
    }, 30_000);
    const sysid = String((await q(uri, 'SELECT system_identifier::text AS id FROM pg_control_system()'))[0]!['id']);
    const owner = JSON.parse(readFileSync(join(repo(), 'pgcharm-owner.json'), 'utf8')) as Record<string, string>;
    expect(owner).toMatchObject({ application: 'postgresql', 'system-identifier': sysid });
    // Only the primary archives: the standbys run with archive_mode=on, which archives nothing in recovery.
    const standbys = (await m.cli(['uri', 'replicas'])).stdout.trim().split('\n');
    for (const s of standbys) expect((await q(s, 'SELECT archived_count FROM pg_stat_archiver'))[0]!['archived_count']).toBe('0');
  });

  it('create-backup runs on the primary (full, then incremental), copying from a streaming standby; list-backups shows both with their LSN range and timeline', async () => {
    const p = await primary();
    const full = await run(p, 'create-backup');
    expect(full.out.status, JSON.stringify(full.out)).toBe('completed');
    expect(full.out.results).toMatchObject({ type: 'full', timeline: 1, 'source-role': 'standby' });
    // The data files came from the standby's server (pgBackRest names them host:path); the
    // primary gave only what a backup must read there (its config files, the backup label).
    const r = full.out.results!;
    expect(['postgresql/0', 'postgresql/1', 'postgresql/2'].filter((u) => u !== p)).toContain(r['source']);
    expect(Number(r['files-from-standby'])).toBeGreaterThan(900);
    expect(Number(r['files-from-primary'])).toBeLessThan(20);
    expect(full.out.log?.some((l) => /replay on the standby reached/.test(l))).toBe(true);
    expect(String(full.out.results!['backup-id'])).toMatch(/^\d{8}-\d{6}F$/);
    await q(uri, 'INSERT INTO t SELECT generate_series(1001, 2000)');
    const incr = await run(p, 'create-backup', 'type=incr');
    expect(incr.out.status, JSON.stringify(incr.out)).toBe('completed');
    expect(String(incr.out.results!['backup-id'])).toMatch(new RegExp(`^${String(full.out.results!['backup-id'])}_\\d{8}-\\d{6}I$`));

    const list = await run('leader', 'list-backups');
    expect(list.out.status).toBe('completed');
    const backups = list.out.results!['backups'] as Record<string, unknown>[];
    expect(backups.map((b) => b['type'])).toEqual(['full', 'incr']);
    for (const b of backups) {
      expect(b['timeline']).toBe(1);
      expect(String(b['lsn-start'])).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      expect(Number(b['size'])).toBeGreaterThan(1_000_000);
      expect(Date.parse(String(b['stop']))).toBeGreaterThanOrEqual(Date.parse(String(b['start'])));
    }
    expect(backups[1]!['prior']).toBe(full.out.results!['backup-id']);
    expect(list.out.results!['repository']).toBe(repo());
    // pgBackRest's own view agrees (run as postgres against the same repository).
    const info = JSON.parse(execFileSync('pgbackrest', ['--repo1-path', repo(), '--stanza=pgcharm', 'info', '--output=json'], { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), encoding: 'utf8' })) as { backup: unknown[] }[];
    expect(info[0]!.backup).toHaveLength(2);
  });

  it('refuses create-backup on a standby, naming the primary, and a bad type', async () => {
    const p = await primary();
    const standby = ['postgresql/0', 'postgresql/1', 'postgresql/2'].find((u) => u !== p)!;
    const r = await run(standby, 'create-backup');
    expect(r.out.status).toBe('failed');
    expect(r.out.message).toBe(`create-backup runs on the primary: pgcharm run ${p} create-backup`);
    const bad = await m.cli(['run', p, 'create-backup', 'type=weekly', '--wait']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/type/);
  });

  it("with every standby's pgBackRest server down the backup falls back to the primary and says why; from=primary asks for the primary", async () => {
    const p = await primary();
    const standbys = ['postgresql/0', 'postgresql/1', 'postgresql/2'].filter((u) => u !== p);
    const pebble = (u: string) => new PebbleClient({ socketPath: join(m.dir, 'units', u.replace('/', '-'), 'pebble', '.pebble.socket') });
    for (const u of standbys) await pebble(u).waitChange(await pebble(u).stop(['pgbackrest-server']));
    try {
      const b = await run(p, 'create-backup', 'type=diff');
      expect(b.out.status, JSON.stringify(b.out)).toBe('completed');
      expect(b.out.results).toMatchObject({ type: 'diff', source: p, 'source-role': 'primary', 'files-from-standby': 0 });
      expect(b.out.results!['source-reason']).toBe(standbys.map((u) => `${u} has a backup server that does not answer`).join(', '));
      expect(b.out.log?.some((l) => l.includes('taking it from the primary'))).toBe(true);
    } finally {
      for (const u of standbys) await pebble(u).waitChange(await pebble(u).start(['pgbackrest-server']));
    }
    const prim = await run(p, 'create-backup', 'type=incr', 'from=primary');
    expect(prim.out.status, JSON.stringify(prim.out)).toBe('completed');
    expect(prim.out.results).toMatchObject({ source: p, 'source-role': 'primary', 'source-reason': 'params.from=primary' });
    expect(prim.out.results!['standby-error']).toBeUndefined();
    const bad = await m.cli(['run', p, 'create-backup', 'from=replica', '--wait']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/from/);
  });

  it('refuses a restore it cannot carry out, before anything stops, and writes go on', async () => {
    const nonLeader = async () => {
      const s = parse((await m.cli(['status', '--format', 'yaml'])).stdout) as { units: Record<string, { leader: boolean }> };
      return Object.entries(s.units).find(([, u]) => !u.leader)![0];
    };
    const cases: [string[], RegExp][] = [
      [['restore-to-time=2000-01-01T00:00:00Z'], /restore-to-time: 2000-01-01 00:00:00\+00:00 is before the end of the first backup \(\d{8}-\d{6}F, /],
      [['backup-id=20000101-000000F'], /backup-id: no backup 20000101-000000F in the repository \(list-backups shows \d{8}-\d{6}F, /],
      [['restore-to-time=yesterday'], /restore-to-time: "yesterday" is not a timestamp/],
      [['restore-to-time=2999-01-01 00:00:00+00'], /is in the future/],
      [['restore-to-lsn=FFFF/0'], /restore-to-lsn: FFFF\/0 is past the end of the archived WAL/],
      [['backup-id=20000101-000000F', 'latest=true'], /give exactly one of backup-id, restore-to-time, restore-to-lsn, latest=true \(got backup-id, latest\)/],
    ];
    for (const [params, why] of cases) {
      const r = await run('leader', 'restore', ...params);
      expect(r.out.status, params.join(' ')).toBe('failed');
      expect(r.out.message).toMatch(why);
    }
    const elsewhere = await run(await nonLeader(), 'restore', 'latest=true');
    expect(elsewhere.out.message).toBe('restore runs on the leader: pgcharm run leader restore ...');
    // Nothing stopped: every unit still serves, and the primary takes writes.
    const s = parse((await m.cli(['status', '--format', 'yaml'])).stdout) as { units: Record<string, { workload: { status: string }; postgres: string }> };
    expect(Object.values(s.units).map((u) => [u.workload.status, u.postgres]).sort()).toEqual([['active', 'primary'], ['active', 'replica'], ['active', 'replica']]);
    await q(uri, 'INSERT INTO t VALUES (-1)');
  });

  it('restore restore-to-time=T gives back exactly the rows committed before T; then all 3 units stream on a new timeline and writes work', async () => {
    await q(uri, 'CREATE TABLE pitr (v int); INSERT INTO pitr SELECT generate_series(1, 100)');
    const p = await primary();
    expect((await run(p, 'create-backup')).out.status).toBe('completed');
    // pgBackRest keeps a backup's stop to the second: a target in that second is refused (tested below).
    await new Promise((r) => setTimeout(r, 1100));
    await q(uri, 'INSERT INTO pitr SELECT generate_series(101, 200)');
    const T = String((await q(uri, 'SELECT clock_timestamp()::text AS t'))[0]!['t']);
    await q(uri, 'INSERT INTO pitr SELECT generate_series(201, 300)');
    await q(uri, 'DROP TABLE pitr');
    const before = Number((await q(uri, 'SELECT timeline_id FROM pg_control_checkpoint()'))[0]!['timeline_id']);
    const r = await run('leader', 'restore', `restore-to-time=${T}`);
    expect(r.out.status, JSON.stringify(r.out)).toBe('completed');
    expect(r.out.results).toMatchObject({ primary: p });
    type S = { application: { status: string; message: string }; units: Record<string, { role: string; postgres: string; timeline: number | null; workload: { status: string } }> };
    await waitFor('restored: one primary and two streaming replicas on a new timeline', async () => {
      const s = parse((await m.cli(['status', '--format', 'yaml'])).stdout) as S;
      const units = Object.values(s.units);
      return s.application.status === 'active' && units.every((u) => u.workload.status === 'active' && (u.timeline ?? 0) > before) && units.filter((u) => u.postgres === 'replica').length === 2;
    }, 120_000);
    const now = (await m.cli(['uri'])).stdout.trim();
    expect((await q(now, 'SELECT count(*)::int AS n, min(v) AS lo, max(v) AS hi FROM pitr'))[0]).toEqual({ n: 200, lo: 1, hi: 200 });
    const repl = await q(now, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'");
    expect(repl[0]!['n']).toBe(2);
    await q(now, 'INSERT INTO pitr VALUES (1000)');
    for (const u of (await m.cli(['uri', 'replicas'])).stdout.trim().split('\n')) {
      await waitFor('the write replicated', async () => Number((await q(u, 'SELECT count(*) AS n FROM pitr'))[0]!['n']) === 201, 20_000);
    }
    // The recovery target does not linger in postgresql.auto.conf (a later rewind would stop at it).
    expect(await q(now, "SELECT name FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf' AND name LIKE 'recovery_target%'")).toEqual([]);
    uri = now;
  });

  it('archiving goes on across a failover: a restore to a time after it has the rows written on both timelines', async () => {
    await q(uri, 'CREATE TABLE fo (v int); INSERT INTO fo SELECT generate_series(1, 100)');
    const old = await primary();
    expect((await run(old, 'create-backup')).out.status).toBe('completed');
    await q(uri, 'INSERT INTO fo SELECT generate_series(101, 200)');
    expect((await m.cli(['kill', old])).code).toBe(0);
    const promoted = await waitFor('another unit serves writes', async () => {
      const p = await primary().catch(() => undefined);
      if (!p || p === old) return undefined;
      const u = (await m.cli(['uri'])).stdout.trim();
      return (await q(u, 'SELECT NOT pg_is_in_recovery() AS w').catch(() => [{ w: false }]))[0]!['w'] === true && u;
    }, 60_000);
    await q(promoted, 'INSERT INTO fo SELECT generate_series(201, 300)');
    const T = String((await q(promoted, 'SELECT clock_timestamp()::text AS t'))[0]!['t']);
    await q(promoted, 'INSERT INTO fo SELECT generate_series(301, 400)');
    // The killed unit comes back and rejoins before the restore (the restore stops every unit).
    type S = { application: { status: string }; units: Record<string, { postgres: string; workload: { status: string } }> };
    const healthy = async () => {
      const s = parse((await m.cli(['status', '--format', 'yaml'])).stdout) as S;
      return s.application.status === 'active' && Object.values(s.units).every((u) => u.workload.status === 'active') && Object.values(s.units).filter((u) => u.postgres === 'replica').length === 2;
    };
    await waitFor('the killed unit back as a replica', healthy, 90_000);
    const r = await run('leader', 'restore', `restore-to-time=${T}`);
    expect(r.out.status, JSON.stringify(r.out)).toBe('completed');
    await waitFor('restored and healthy', async () => (await m.cli(['status'])).stdout.includes('restoring') === false && (await healthy()), 120_000);
    const now = (await m.cli(['uri'])).stdout.trim();
    expect((await q(now, 'SELECT count(*)::int AS n, max(v) AS hi FROM fo'))[0]).toEqual({ n: 300, hi: 300 });
    uri = now;
  });

  it('backup-schedule and dump-schedule: a bad schedule is refused; a scheduled full backup and dump fire, and retention expires the oldest full backups', async () => {
    for (const [v, why] of [
      ['61 * * * *', /backup-schedule: not a cron schedule: .*minute/i],
      ['0 3 * *', /backup-schedule: expected a cron schedule of 5 fields .* got 4/],
    ] as const) {
      const r = await m.cli(['config', `backup-schedule=${v}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(why);
    }
    const listed = async () => ((await run('leader', 'list-backups')).out.results!['backups'] as { id: string; type: string }[]);
    const before = await listed();
    const fulls = before.filter((b) => b.type === 'full').map((b) => b.id);
    expect(fulls.length).toBeGreaterThanOrEqual(2);
    expect((await m.cli(['config', 'backup-schedule=* * * * *', 'dump-schedule=* * * * *', 'backup-retention-full=2'])).code).toBe(0);
    // Every minute, at the minute: the first one fires within ~60 s of the change.
    const after = await waitFor('a scheduled backup', async () => {
      const l = await listed();
      return l.some((b) => !before.some((o) => o.id === b.id)) && l;
    }, 150_000, 2000);
    // The dump schedule fired in the same minute: every database that takes connections.
    await waitFor('a scheduled dump of postgres', () => existsSync(join(repo(), 'dumps', 'postgres', 'postgres-latest.dump')), 60_000, 500);
    expect(readdirSync(join(repo(), 'dumps', 'postgres')).some((f) => /^postgres-\d{8}T\d{6}Z\.dump$/.test(f))).toBe(true);
    expect((await m.cli(['config', 'backup-schedule=', 'dump-schedule='])).code).toBe(0);
    const kept = after.filter((b) => b.type === 'full').map((b) => b.id);
    expect(kept).toHaveLength(2);
    expect(kept).toEqual([...fulls.slice(-1), kept.at(-1)!]);
    // The incremental backup built on an expired full backup went with it.
    expect(after.every((b) => b.type === 'full' || kept.some((k) => b.id.startsWith(`${k}_`)))).toBe(true);
  }, 200_000);

  it('dump-database (on a replica) writes a timestamped and a latest dump; restore-dump into a new database gives the same rows', async () => {
    await q(uri, 'CREATE DATABASE shop');
    const shop = (u: string) => u.replace(/\/postgres(\?|$)/, '/shop$1');
    await q(shop(uri), "CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 5000) g; CREATE TABLE items (id int); INSERT INTO items SELECT generate_series(1, 123)");
    const p = await primary();
    const replica = ['postgresql/0', 'postgresql/1', 'postgresql/2'].find((u) => u !== p)!;
    const replicaUri = (await m.cli(['uri', replica])).stdout.trim();
    await waitFor('shop on the replica', async () => Number((await q(shop(replicaUri), 'SELECT count(*) AS n FROM items').catch(() => [{ n: 0 }]))[0]!['n']) === 123, 20_000);
    const d = await run(replica, 'dump-database', 'database=shop');
    expect(d.out.status, JSON.stringify(d.out)).toBe('completed');
    const file = String(d.out.results!['file']);
    const latest = String(d.out.results!['latest']);
    expect(file).toMatch(new RegExp(`^${repo()}/dumps/shop/shop-\\d{8}T\\d{6}Z\\.dump$`));
    expect(latest).toBe(`${repo()}/dumps/shop/shop-latest.dump`);
    expect(readFileSync(file).subarray(0, 5).toString()).toBe('PGDMP'); // pg_dump's custom format
    expect(readFileSync(latest).equals(readFileSync(file))).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o640);

    const r = await run(p, 'restore-dump', 'database=shop', 'into=shop_copy');
    expect(r.out.status, JSON.stringify(r.out)).toBe('completed');
    const copy = uri.replace(/\/postgres(\?|$)/, '/shop_copy$1');
    for (const t of ['orders', 'items']) {
      expect((await q(copy, `SELECT count(*)::int AS n, md5(string_agg(t::text, ',' ORDER BY t::text)) AS h FROM ${t} t`))[0]).toEqual((await q(shop(uri), `SELECT count(*)::int AS n, md5(string_agg(t::text, ',' ORDER BY t::text)) AS h FROM ${t} t`))[0]);
    }
    // Refused, with the param and the reason: an existing database, a missing dump, a database that does not exist.
    expect((await run(p, 'restore-dump', 'database=shop')).out.message).toBe('params.into: database shop exists; restore into a new one (into=NEWNAME) or drop it first');
    expect((await run(p, 'restore-dump', 'database=shop', 'from=shop-20000101T000000Z.dump', 'into=x')).out.message).toBe(`params.from: no dump ${repo()}/dumps/shop/shop-20000101T000000Z.dump`);
    expect((await run(p, 'restore-dump', 'database=shop', 'from=../../x.dump', 'into=x')).out.message).toMatch(/params.from: "..\/..\/x.dump" is not a dump file name/);
    expect((await run(replica, 'dump-database', 'database=nope')).out.message).toBe(`params.database: no database nope on ${replica}`);
  });

  it("a deployment pointed at another cluster's repository is blocked, names both, and writes nothing there; pointed at its own, it archives", async () => {
    const before = files(repo());
    const d = await m.cli(['deploy', '--app', 'other', '--units', '1', '--config', `backup-repo-path=${repo()}`, '--timeout', '90'], 150_000);
    expect(d.code, d.stderr).toBe(0);
    const status = async () => parse((await m.cli(['status', '--app', 'other', '--format', 'yaml'])).stdout) as { model: { namespace: string }; application: { status: string; message: string }; units: Record<string, { workload: { status: string; message: string } }> };
    const s = await waitFor('other blocked', async () => {
      const st = await status();
      return st.units['other/0']?.workload.status === 'blocked' && st;
    }, 30_000);
    const sysid = (u: string) => q(u, 'SELECT system_identifier::text AS id FROM pg_control_system()').then((r) => String(r[0]!['id']));
    const otherUri = (await m.cli(['uri', '--app', 'other'])).stdout.trim();
    const [ours, theirs] = await Promise.all([sysid(uri), sysid(otherUri)]);
    const ns = s.model.namespace;
    expect(s.units['other/0']!.workload.message).toContain(`belongs to application postgresql in ${ns} (system identifier ${ours})`);
    expect(s.units['other/0']!.workload.message).toContain(`not to other in ${ns} (system identifier ${theirs})`);
    expect(s.application.status).toBe('blocked');
    // Its WAL goes nowhere near the repository, even when a segment is full.
    await q(otherUri, 'CREATE TABLE x (v int); INSERT INTO x VALUES (1); SELECT pg_switch_wal()');
    await waitFor('archive-push refused', async () => Number((await q(otherUri, 'SELECT failed_count FROM pg_stat_archiver'))[0]!['failed_count']) > 0, 30_000);
    expect(files(repo())).toEqual(before);

    // Pointed at a repository of its own: unblocked, and it archives there.
    const own = join(m.dir, 'backups', 'other-own');
    expect((await m.cli(['config', '--app', 'other', `backup-repo-path=${own}`])).code).toBe(0);
    await waitFor('other active', async () => (await status()).units['other/0']?.workload.status === 'active', 60_000);
    await q(otherUri, 'INSERT INTO x VALUES (2); SELECT pg_switch_wal()');
    await waitFor('archived into its own repository', () => existsSync(join(own, 'archive', 'pgcharm')) && files(join(own, 'archive')).some((f) => /\/0000000100000000000000[0-9A-F]{2}-/.test(f)), 30_000);
    expect(files(repo())).toEqual(before);
  });
  it('a failing archive is never silent: the primary says so with the reason, and says so no more once it works again', async () => {
    const archive = join(repo(), 'archive', 'pgcharm');
    const primaryLine = async () => {
      const st = parse((await m.cli(['status', '--app', 'postgresql', '--format', 'yaml'])).stdout) as { units: Record<string, { role: string; workload: { message: string } }> };
      return Object.values(st.units).find((u) => u.role === 'primary')!.workload.message;
    };
    const mode = statSync(archive).mode & 0o777;
    execFileSync('chmod', ['000', archive]);
    try {
      await q(uri, 'CREATE TABLE IF NOT EXISTS arch (v int); INSERT INTO arch VALUES (1); SELECT pg_switch_wal()');
      const msg = await waitFor('the primary says archiving fails', async () => {
        const line = await primaryLine();
        return /WAL archiving failing/.test(line) && line;
      }, 60_000, 500);
      expect(msg).toMatch(/^primary; WAL archiving failing \(segment [0-9A-F]{24}\): \[\d+\] /);
    } finally {
      execFileSync('chmod', [mode.toString(8), archive]);
    }
    await q(uri, 'INSERT INTO arch VALUES (2); SELECT pg_switch_wal()');
    await waitFor('archiving works again, and the status says nothing of it', async () => (await primaryLine()) === 'primary', 60_000, 500);
  });

  it('deploy --restore-from: a bad target is refused before anything starts; a repository without backups leaves the bootstrap blocked; a copy of the repository rebuilds a cluster with the archived rows and is taken over', async () => {
    const bad = await m.cli(['deploy', '--app', 'bad', '--units', '1', '--restore-from', repo(), '--restore-to', 'yesterday']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/bootstrap-from-backup: must be latest, a backup id .* got "yesterday"/);
    expect((await m.cli(['status', '--app', 'bad'])).code).not.toBe(0);

    const empty = join(m.dir, 'backups', 'empty');
    execFileSync('mkdir', ['-p', empty]);
    const e = await m.cli(['deploy', '--app', 'fromempty', '--units', '1', '--restore-from', empty, '--timeout', '90'], 150_000);
    expect(e.code, e.stderr).toBe(0);
    const st = parse((await m.cli(['status', '--app', 'fromempty', '--format', 'yaml'])).stdout) as { application: { status: string }; units: Record<string, { workload: { status: string; message: string } }> };
    expect(st.units['fromempty/0']!.workload).toMatchObject({ status: 'blocked', message: expect.stringMatching(new RegExp(`^bootstrap-from-backup: cannot restore from ${empty}: `)) });
    expect(st.application.status).toBe('blocked');
    expect(readdirSync(empty)).toEqual([]);

    await q(uri, 'CREATE TABLE dr (v int); INSERT INTO dr SELECT generate_series(1, 50)');
    const seg = String((await q(uri, 'SELECT pg_walfile_name(pg_switch_wal()) AS w'))[0]!['w']);
    await waitFor('archived', async () => String((await q(uri, 'SELECT last_archived_wal AS w FROM pg_stat_archiver'))[0]!['w'] ?? '') >= seg, 30_000);
    const copy = join(m.dir, 'backups', 'copy');
    execFileSync('cp', ['-a', repo(), copy]);
    const c = await m.cli(['deploy', '--app', 'copy', '--units', '2', '--restore-from', copy, '--timeout', '120'], 180_000);
    expect(c.code, c.stderr).toBe(0);
    // deploy returns once every unit settled; the leader's summary follows the replica's last hook.
    await waitFor('copy: a primary and its replica', async () => /primary copy\/\d, 1\/1 replicas/.test((await m.cli(['status', '--app', 'copy'])).stdout), 30_000, 500);
    const copyUri = (await m.cli(['uri', '--app', 'copy'])).stdout.trim();
    expect((await q(copyUri, 'SELECT count(*)::int AS n FROM dr'))[0]!['n']).toBe(50);
    // The same cluster (system identifier), a new timeline, its own passwords; the repository is now its.
    const sysid = (u: string) => q(u, 'SELECT system_identifier::text AS id FROM pg_control_system()').then((r) => String(r[0]!['id']));
    expect(await sysid(copyUri)).toBe(await sysid(uri));
    expect(new URL(copyUri).password).not.toBe(new URL(uri).password);
    await waitFor('the copy owns the repository', () => (JSON.parse(readFileSync(join(copy, 'pgcharm-owner.json'), 'utf8')) as { application: string }).application === 'copy', 30_000);
    await q(copyUri, 'INSERT INTO dr VALUES (51)');
    const b = await runAction(m, 'leader', 'create-backup', [], ['--app', 'copy']);
    expect(b.status === 'completed' || /runs on the primary/.test(String(b.message)), JSON.stringify(b)).toBe(true);
  }, 300_000);

  it('a primary killed before it archived: the promoted standby archives the completed segments it had streamed, and a restore across the failover has every acknowledged row', async () => {
    const archive = join(repo(), 'archive', 'pgcharm');
    const app = ['--app', 'postgresql'];
    const old = ((await m.cli(['run', ...app, 'leader', 'get-primary', '--wait'])).stdout.match(/primary: (\S+)/) ?? [])[1]!;
    uri = (await m.cli(['uri', ...app])).stdout.trim();
    expect(uri).toMatch(/^postgresql:/);
    await q(uri, 'CREATE TABLE gap (v int)');
    const mode = statSync(archive).mode & 0o777;
    const segs: string[] = [];
    execFileSync('chmod', ['000', archive]);
    try {
      for (let i = 0; i < 3; i++) {
        await q(uri, `INSERT INTO gap SELECT generate_series(${i * 100 + 1}, ${i * 100 + 100})`);
        segs.push(String((await q(uri, 'SELECT pg_walfile_name(pg_switch_wal()) AS w'))[0]!['w']));
      }
      await waitFor('archiving fails', async () => Number((await q(uri, 'SELECT failed_count FROM pg_stat_archiver'))[0]!['failed_count']) > 0, 30_000);
      expect((await m.cli(['kill', ...app, old, '--no-restart'])).code).toBe(0);
    } finally {
      execFileSync('chmod', [mode.toString(8), archive]);
    }
    const promoted = await waitFor('a new primary', async () => {
      const u = (await m.cli(['uri', ...app])).stdout.trim();
      return u && u !== uri && (await q(u, 'SELECT NOT pg_is_in_recovery() AS w').then((r) => r[0]!['w'] === true, () => false)) && u;
    }, 60_000, 500);
    // The old primary never archived them (it is still down); the new one pushed them from its pg_wal.
    await waitFor('the unarchived segments in the repository', () => segs.every((seg) => files(archive).some((f) => f.includes(`/${seg}-`))), 60_000, 500);
    expect((await m.cli(['kill', ...app, old, '--revive'])).code).toBe(0);
    await waitFor('all 3 units active again', async () => {
      const st = parse((await m.cli(['status', ...app, '--format', 'yaml'])).stdout) as { units: Record<string, { workload: { status: string } }> };
      return Object.values(st.units).every((u) => u.workload.status === 'active');
    }, 120_000, 500);
    await q(promoted, 'INSERT INTO gap VALUES (1000)');
    await new Promise((r) => setTimeout(r, 1100));
    const T = String((await q(promoted, 'SELECT clock_timestamp()::text AS t'))[0]!['t']);
    await q(promoted, 'INSERT INTO gap VALUES (2000)');
    const r = await runAction(m, 'leader', 'restore', [`restore-to-time=${T}`], app);
    expect(r.status, JSON.stringify(r)).toBe('completed');
    await waitFor('restored', async () => {
      const st = parse((await m.cli(['status', ...app, '--format', 'yaml'])).stdout) as { application: { status: string }; units: Record<string, { workload: { status: string } }> };
      return st.application.status === 'active' && Object.values(st.units).every((u) => u.workload.status === 'active') && !(await m.cli(['status', ...app])).stdout.includes('restoring');
    }, 120_000, 500);
    // The restored primary's address, once it serves (uri prints nothing while none does).
    uri = await waitFor('the restored primary serving', async () => {
      const u = (await m.cli(['uri', ...app])).stdout.trim();
      return u && (await q(u, 'SELECT NOT pg_is_in_recovery() AS w').then((r) => r[0]!['w'] === true, () => false)) && u;
    }, 60_000, 500);
    expect((await q(uri, 'SELECT count(*)::int AS n, max(v) AS hi FROM gap'))[0]).toEqual({ n: 301, hi: 1000 });
  }, 300_000);
});
