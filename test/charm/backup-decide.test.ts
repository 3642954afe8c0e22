import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRecoveryTarget } from '../../agent/charm-meta/values.js';
import { restoreSettings } from '../../agent/commands/deploy.js';
import { ARCHIVE_BLOCK_AFTER_MS, archiveGap, archiveParams, parseHistory, segmentName, archiveState, archiving, checkRestoreTarget, decideStanza, parseInfo, parseRestoreParams, renderBackrestConf, renderS3Credentials, repoPath, restoreArgs, s3Repo, type RestoreTarget, type StanzaInfo } from '../../agent/charm/postgresql/backup.js';
import { layout, pgParams } from '../../agent/charm/postgresql/render.js';

const l = layout("/data/it's here/pgdata", 15);
const config = { 'backup-repo-path': '', 'archive-timeout': 60, 'backup-retention-full': 2 };

describe('backup repository and archiving settings', () => {
  it.each([
    ['backup-repo-path wins over the local default', { 'backup-repo-path': '/repo/x/' }, { PGCHARM_BACKUP_DIR: '/m/backups' }, '/repo/x'],
    ['locally, one repository per application under the model', {}, { PGCHARM_BACKUP_DIR: '/m/backups/' }, '/m/backups/postgresql'],
    ['on Kubernetes without a path: none', {}, {}, undefined],
    ['none: no repository, even locally', { 'backup-repo-path': 'none' }, { PGCHARM_BACKUP_DIR: '/m/backups' }, undefined],
  ])('%s', (_why, set, env, want) => {
    expect(repoPath({ ...config, ...set }, 'postgresql', env)).toBe(want);
    expect(archiving({ ...config, ...set }, env)).toBe(want !== undefined);
  });

  it('without a repository archive_mode is off, said in the file: taken out of it, Postgres would keep "on" until a restart nobody asked for', () => {
    const p = pgParams({ ...config, 'backup-repo-path': 'none', 'max-connections': 100, 'password-encryption': 'scram-sha-256', 'log-min-duration-statement': -1, timezone: 'UTC', 'synchronous-commit': 'on' }, { host: '10.1.2.3', port: 5432, l });
    expect([p['archive_mode'], p['archive_command'], p['restore_command']]).toEqual(['off', undefined, undefined]);
  });

  it('archives with pgBackRest (async), fetches with it, and switches segments every archive-timeout; paths are shell-quoted', () => {
    const p = archiveParams({ ...config, 'archive-timeout': 30 }, l);
    expect(p).toEqual({
      archive_mode: 'on',
      archive_command: `pgbackrest --config-path='/data/it'\\''s here/pgdata/pgbackrest' --stanza=pgcharm archive-push %p`,
      restore_command: `pgbackrest --config-path='/data/it'\\''s here/pgdata/pgbackrest' --stanza=pgcharm archive-get %f "%p"`,
      archive_timeout: '30s',
    });
  });

  it('renders a per-unit pgbackrest.conf (own lock, log and spool paths) and refuses a path with a line break', () => {
    const conf = renderBackrestConf({ config, repo: '/m/backups/postgresql', l, port: 5433 });
    for (const line of ['repo1-path=/m/backups/postgresql', 'repo1-retention-full=2', `lock-path=${l.storage}/pgbackrest/lock`, `spool-path=${l.storage}/pgbackrest/spool`, 'archive-async=y', '[pgcharm]', `pg1-path=${l.pgdata}`, 'pg1-port=5433', `pg1-socket-path=${l.socketDir}`, 'pg1-user=operator']) {
      expect(conf.split('\n')).toContain(line);
    }
    expect(() => renderBackrestConf({ config, repo: '/m/x\n[global]\nrepo1-path=/etc', l, port: 5433 })).toThrow(/repo path contains a line break/);
  });
});

describe('pgbackrest info --output=json', () => {
  const raw = `[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000020000000000000009","min":"000000010000000000000001"}],
    "backup":[{"archive":{"start":"000000010000000000000004","stop":"000000010000000000000004"},"database":{"id":1,"repo-key":1},"error":false,
      "info":{"delta":23079966,"repository":{"delta":4544444,"size":4544444},"size":23079966},"label":"20261127-204517F","lsn":{"start":"0/4000028","stop":"0/4000100"},
      "prior":null,"reference":null,"timestamp":{"start":1795811117,"stop":1795811119},"type":"full"},
      {"archive":{"start":"000000020000000000000008","stop":"000000020000000000000008"},"database":{"id":1,"repo-key":1},"error":false,
      "info":{"delta":8192,"repository":{"delta":1234,"size":4545000},"size":23080000},"label":"20261127-204517F_20261127-204600I","lsn":{"start":"0/8000028","stop":"0/8000100"},
      "prior":"20261127-204517F","reference":["20261127-204517F"],"timestamp":{"start":1795811160,"stop":1795811162},"type":"incr"}],
    "cipher":"none","db":[{"id":1,"repo-key":1,"system-id":7712955119486195671,"version":"15"}],"name":"pgcharm",
    "repo":[{"cipher":"none","key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}]`;

  it('reads the 64-bit system identifier exactly, the backups with timeline and sizes, and the archived range', () => {
    const i = parseInfo(raw);
    expect(i.systemId).toBe('7712955119486195671'); // JSON.parse alone gives ...195600
    expect(i.code).toBe(0);
    expect(i.archive).toEqual({ min: '000000010000000000000001', max: '000000020000000000000009' });
    expect(i.backups).toEqual([
      { id: '20261127-204517F', type: 'full', start: '2026-11-27T20:25:17.000Z', stop: '2026-11-27T20:25:19.000Z', 'lsn-start': '0/4000028', 'lsn-stop': '0/4000100', timeline: 1, size: 23079966, 'repository-size': 4544444, prior: '' },
      { id: '20261127-204517F_20261127-204600I', type: 'incr', start: '2026-11-27T20:26:00.000Z', stop: '2026-11-27T20:26:02.000Z', 'lsn-start': '0/8000028', 'lsn-stop': '0/8000100', timeline: 2, size: 23080000, 'repository-size': 1234, prior: '20261127-204517F' },
    ]);
  });

  it('a missing stanza, an unreachable repository, and output that is not JSON', () => {
    expect(parseInfo('[{"name":"pgcharm","status":{"code":1,"message":"missing stanza path"},"db":[],"backup":[],"archive":[]}]')).toEqual({ code: 1, message: 'missing stanza path', backups: [] });
    expect(parseInfo('[]')).toMatchObject({ code: 1, backups: [] });
    expect(parseInfo('[{"name":"pgcharm","status":{"code":99,"message":"other"},"db":[],"backup":[],"archive":[]}]')).toMatchObject({ code: 99, message: 'other' });
    expect(() => parseInfo('ERROR: [031]: no')).toThrow(/printed no JSON/);
  });
});

describe('decideStanza: may this cluster write to the repository?', () => {
  const base = { systemId: '111', repo: '/r', app: 'pg', namespace: 'm1' };
  const info = (o: Partial<StanzaInfo>): StanzaInfo => ({ code: 0, message: 'ok', backups: [], ...o });
  it.each([
    ['no stanza: create it', info({ code: 1, message: 'missing stanza path' }), undefined, 'create', /no stanza in \/r yet/],
    ['a stanza directory without its info files: create it', info({ code: 3 }), undefined, 'create', /no stanza/],
    ['our system identifier: ours', info({ systemId: '111' }), undefined, 'ours', /this cluster's/],
    ['another identifier, owner known: foreign, naming both', info({ systemId: '222' }), { application: 'db1', namespace: 'm0', 'system-identifier': '222' }, 'foreign', /belongs to application db1 in m0 \(system identifier 222\), not to pg in m1 \(system identifier 111\)/],
    ['another identifier, no marker: foreign', info({ systemId: '222' }), undefined, 'foreign', /belongs to another cluster \(system identifier 222\)/],
    ['a marker that does not match the stanza is not trusted', info({ systemId: '222' }), { application: 'db1', namespace: 'm0', 'system-identifier': '333' }, 'foreign', /belongs to another cluster/],
    ['unreadable: neither created nor written', info({ code: 99, message: 'HostConnectError' }), undefined, 'unreachable', /cannot be read: HostConnectError/],
  ])('%s', (_why, i, owner, kind, why) => {
    const d = decideStanza({ ...base, info: i, owner });
    expect(d.kind).toBe(kind);
    expect(d.why).toMatch(why);
  });
});

describe('archiveState: a failing archive is never silent', () => {
  const now = 1_000_000_000_000;
  it.each([
    ['never failed', {}, undefined, undefined, false],
    ['failed before the last success', { failedAt: now - 5000, archivedAt: now - 1000 }, undefined, undefined, false],
    ['failing now: said at once', { failedAt: now - 1000, archivedAt: now - 9000, lastFailedWal: '0000000100000000000000AB' }, undefined, 'WAL archiving failing (segment 0000000100000000000000AB): [103] mismatch', false],
    ['never archived, failing for 3 min', { failedAt: now - 1000 }, now - 3 * 60_000, 'WAL archiving failing for 3 min (segment ?): [103] mismatch', false],
    ['failing for the block period: blocked', { failedAt: now - 1000 }, now - ARCHIVE_BLOCK_AFTER_MS, 'WAL archiving failing for 10 min (segment ?): [103] mismatch', true],
  ])('%s', (_why, stats, since, message, blocked) => {
    const a = archiveState(stats, since, now, '[103] mismatch');
    expect(a.message).toBe(message);
    expect(a.blocked).toBe(blocked);
    expect(a.since).toBe(message ? (since ?? now) : undefined);
  });
});

describe('restore: params, target check, pgBackRest arguments', () => {
  it.each([
    ['RFC 3339 with Z', { 'restore-to-time': '2026-11-27T20:25:17Z' }, { kind: 'time', time: '2026-11-27 20:25:17+00:00', at: Date.parse('2026-11-27T20:25:17Z') }],
    ['PostgreSQL text with microseconds and +00', { 'restore-to-time': '2026-11-27 20:25:17.123456+00' }, { kind: 'time', time: '2026-11-27 20:25:17.123456+00:00', at: Date.parse('2026-11-27T20:25:17.123Z') }],
    ['an offset, no fraction', { 'restore-to-time': '2026-11-27 21:25:17+0100' }, { kind: 'time', time: '2026-11-27 21:25:17+01:00', at: Date.parse('2026-11-27T20:25:17Z') }],
    ['no offset: UTC', { 'restore-to-time': '2026-11-27 20:25:17' }, { kind: 'time', time: '2026-11-27 20:25:17+00:00', at: Date.parse('2026-11-27T20:25:17Z') }],
    ['an LSN, upper-cased', { 'restore-to-lsn': '0/3a000060' }, { kind: 'lsn', lsn: '0/3A000060' }],
    ['a backup id', { 'backup-id': '20261127-204517F_20261127-204600I' }, { kind: 'backup', id: '20261127-204517F_20261127-204600I' }],
    ['latest', { latest: true }, { kind: 'latest' }],
    ['latest=false and a time: the time', { latest: false, 'restore-to-time': '2026-11-27 20:25:17' }, { kind: 'time', time: '2026-11-27 20:25:17+00:00', at: Date.parse('2026-11-27T20:25:17Z') }],
  ])('%s', (_why, params, want) => {
    expect(parseRestoreParams(params)).toEqual(want);
  });

  it.each([
    ['nothing', {}, /exactly one of .* \(got none\)/],
    ['two', { latest: true, 'restore-to-lsn': '0/1' }, /exactly one of .* \(got restore-to-lsn, latest\)/],
    ['a word', { 'restore-to-time': 'yesterday' }, /restore-to-time: "yesterday" is not a timestamp/],
    ['an impossible date', { 'restore-to-time': '2026-13-45 25:00:00' }, /is not a timestamp/],
    ['not an LSN', { 'restore-to-lsn': '12345' }, /restore-to-lsn: "12345" is not an LSN/],
    ['not a backup id', { 'backup-id': 'last' }, /backup-id: "last" is not a pgBackRest backup id/],
  ])('refuses %s', (_why, params, why) => {
    const r = parseRestoreParams(params);
    expect('error' in r && r.error).toMatch(why);
  });

  const info: StanzaInfo = {
    code: 0,
    message: 'ok',
    systemId: '1',
    archive: { min: '000000010000000000000001', max: '00000001000000000000000A' },
    backups: [{ id: '20261127-200000F', type: 'full', start: '2026-11-27T20:00:00.000Z', stop: '2026-11-27T20:00:05.000Z', 'lsn-start': '0/2000028', 'lsn-stop': '0/2000100', timeline: 1, size: 1, 'repository-size': 1, prior: '' }],
  };
  const now = Date.parse('2026-11-27T21:00:00Z');
  it.each([
    ['a known backup', { kind: 'backup', id: '20261127-200000F' }, undefined],
    ['an unknown backup', { kind: 'backup', id: '20261127-210000F' }, /no backup 20261127-210000F in the repository \(list-backups shows 20261127-200000F\)/],
    ['a time after the first backup', { kind: 'time', time: 't', at: Date.parse('2026-11-27T20:30:00Z') }, undefined],
    ['a time before the first backup ended', { kind: 'time', time: 't', at: Date.parse('2026-11-27T20:00:03Z') }, /before the end of the first backup \(20261127-200000F, 2026-11-27T20:00:05.000Z\)/],
    ['a time in the second the first backup ended (pgBackRest keeps seconds)', { kind: 'time', time: 't', at: Date.parse('2026-11-27T20:00:05.736Z') }, /before the end of the first backup/],
    ['the next second', { kind: 'time', time: 't', at: Date.parse('2026-11-27T20:00:06Z') }, undefined],
    ['a time in the future', { kind: 'time', time: 't', at: now + 1000 }, /is in the future/],
    ['an LSN inside the archive', { kind: 'lsn', lsn: '0/A000000' }, undefined],
    ['the last byte of the last archived segment', { kind: 'lsn', lsn: '0/B000000' }, undefined],
    ['an LSN past the archived WAL', { kind: 'lsn', lsn: '0/B000001' }, /past the end of the archived WAL \(00000001000000000000000A\)/],
    ['an LSN before the first backup ended', { kind: 'lsn', lsn: '0/2000000' }, /before the end of the first backup/],
    ['latest', { kind: 'latest' }, undefined],
  ] as [string, RestoreTarget, RegExp | undefined][])('%s', (_why, t, why) => {
    const r = checkRestoreTarget(t, info, now);
    if (why) expect('error' in r && r.error).toMatch(why);
    else expect(r).toEqual({ ok: true });
    expect(checkRestoreTarget(t, { ...info, backups: [] }, now)).toEqual({ error: 'the repository has no backup to restore from: create-backup first' });
  });

  it('asks pgBackRest to restore into the data directory (--delta) and promote at the target', () => {
    expect(restoreArgs({ kind: 'backup', id: 'X' })).toEqual(['restore', '--delta', '--set=X', '--type=immediate', '--target-action=promote']);
    expect(restoreArgs({ kind: 'time', time: '2026-11-27 20:25:17+00:00', at: 0 })).toEqual(['restore', '--delta', '--type=time', '--target=2026-11-27 20:25:17+00:00', '--target-action=promote']);
    expect(restoreArgs({ kind: 'lsn', lsn: '0/1' })).toEqual(['restore', '--delta', '--type=lsn', '--target=0/1', '--target-action=promote']);
    expect(restoreArgs({ kind: 'latest' })).toEqual(['restore', '--delta', '--type=default']);
  });
});

describe('S3 repository settings', () => {
  const s3 = { ...config, 's3-bucket': 'b', 's3-endpoint': 'https://s3.example.com', 's3-path': '', 's3-region': 'eu-west-1', 's3-uri-style': 'host', 's3-tls-ca-chain': '' };
  it('reads endpoint, port, prefix (default /<app>) and style; S3 replaces the posix repository', () => {
    expect(s3Repo(s3, 'pg')).toEqual({ host: 's3.example.com', port: 443, bucket: 'b', path: '/pg', region: 'eu-west-1', uriStyle: 'host', ca: '' });
    expect(s3Repo({ ...s3, 's3-endpoint': 'localhost:9000', 's3-path': 'team/db/', 's3-uri-style': 'path' }, 'pg')).toMatchObject({ host: 'localhost', port: 9000, path: '/team/db', uriStyle: 'path' });
    expect(repoPath({ ...s3, 'backup-repo-path': '/x' }, 'pg', { PGCHARM_BACKUP_DIR: '/m' })).toBeUndefined();
    expect(archiving(s3, {})).toBe(true);
    expect(s3Repo(config, 'pg')).toBeUndefined();
  });
  it.each([
    [{ 's3-endpoint': '' }, /s3-endpoint: required with s3-bucket/],
    [{ 's3-endpoint': 'http://minio:9000' }, /s3-endpoint: http:\/\/minio:9000: pgBackRest speaks only HTTPS to S3/],
    [{ 's3-endpoint': 'minio:9000/x y' }, /s3-endpoint: "minio:9000\/x y" is not host\[:port\]/],
  ])('refuses %j', (set, why) => {
    expect(() => s3Repo({ ...s3, ...set }, 'pg')).toThrow(why);
  });
  it('renders the S3 repository, the CA file when there is one, and the keys only in their own file', () => {
    const conf = renderBackrestConf({ config: s3, repo: { ...s3Repo(s3, 'pg')!, ca: 'PEM' }, l, port: 5433 });
    for (const line of ['repo1-type=s3', 'repo1-path=/pg', 'repo1-s3-endpoint=s3.example.com', 'repo1-storage-port=443', 'repo1-s3-bucket=b', 'repo1-s3-region=eu-west-1', 'repo1-s3-uri-style=host', 'repo1-storage-verify-tls=y', `repo1-storage-ca-file=${l.storage}/pgbackrest/s3-ca.pem`]) {
      expect(conf.split('\n')).toContain(line);
    }
    expect(conf).not.toMatch(/s3-key/);
    expect(renderS3Credentials('AK', 'SK')).toBe('[global]\nrepo1-s3-key=AK\nrepo1-s3-key-secret=SK\n');
    expect(() => renderS3Credentials('AK', 'S K')).toThrow(/secret-key: must be non-empty, without spaces/);
  });
});

describe('bootstrap-from-backup and deploy --restore-from', () => {
  it.each([
    ['', undefined],
    ['latest', { kind: 'latest' }],
    ['20261127-224230F', { kind: 'backup', id: '20261127-224230F' }],
    ['20261127-224230F_20261127-224320I', { kind: 'backup', id: '20261127-224230F_20261127-224320I' }],
    ['0/5003b40', { kind: 'lsn', lsn: '0/5003B40' }],
    ['2026-11-27T22:43:00Z', { kind: 'time', time: '2026-11-27 22:43:00+00:00', at: Date.parse('2026-11-27T22:43:00Z') }],
    ['2026-11-27 23:43:00.5+01', { kind: 'time', time: '2026-11-27 23:43:00.5+01:00', at: Date.parse('2026-11-27T22:43:00.5Z') }],
  ])('%j is %j', (text, want) => {
    expect(parseRecoveryTarget(text)).toEqual(want);
  });
  it.each(['yesterday', 'LATEST', '2026-11-27', '0/', '20261127F'])('%j is refused, saying what a target is', (text) => {
    expect(parseRecoveryTarget(text)).toEqual({ error: expect.stringMatching(/^must be latest, a backup id .* got /) });
  });

  const dir = mkdtempSync(join(tmpdir(), 'pgcharm-repo-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  it.each([
    ['a path: the repository and latest', dir, undefined, [], [`backup-repo-path=${dir}`, 'bootstrap-from-backup=latest']],
    ['a path with a trailing slash and a time', `${dir}/`, '2026-11-27T22:43:00Z', [], [`backup-repo-path=${dir}`, 'bootstrap-from-backup=2026-11-27T22:43:00Z']],
    ['S3: bucket and prefix', 's3://shop/prod/pg/', 'latest', ['s3-endpoint=minio:9000'], ['s3-bucket=shop', 's3-path=/prod/pg', 'bootstrap-from-backup=latest']],
    ['S3: the bucket root', 's3://shop', undefined, ['s3-endpoint=minio:9000'], ['s3-bucket=shop', 's3-path=/', 'bootstrap-from-backup=latest']],
  ])('%s', (_why, from, to, config, want) => {
    expect(restoreSettings(from, to, config)).toEqual(want);
  });
  it.each([
    ['S3 without an endpoint', 's3://shop/pg', [], /--restore-from s3:\/\/shop\/pg: give the S3 endpoint too \(--config s3-endpoint=host\[:port\]/],
    ['S3 without a bucket', 's3:///pg', ['s3-endpoint=x'], /an S3 repository is s3:\/\/bucket\/prefix/],
    ['a relative path', 'backups/pg', [], /"backups\/pg": an absolute path or s3:\/\/bucket\/prefix/],
    ['a path that is not there', '/nonexistent/repo', [], /--restore-from \/nonexistent\/repo: no such directory/],
    ['the repository given twice', '/tmp', ['backup-repo-path=/srv'], /--restore-from sets backup-repo-path: do not give it in --config too/],
    ['the target given twice', '/tmp', ['bootstrap-from-backup=latest'], /--restore-from sets bootstrap-from-backup: do not give it in --config too/],
  ])('refuses %s', (_why, from, config, why) => {
    expect(() => restoreSettings(from, undefined, config)).toThrow(why);
  });
});

describe('WAL a failed primary never archived', () => {
  const history = parseHistory('1\t0/5000000\tno recovery target specified\n\n2\t0/9A000060\tno recovery target specified\n');
  const arch = (tl: number, ...segs: number[]) => segs.map((n) => `${segmentName(tl, BigInt(n))}-0123456789abcdef0123456789abcdef01234567.lz4`);
  it('reads a timeline history file', () => {
    expect(history).toEqual([
      { tli: 1, switchLsn: '0/5000000' },
      { tli: 2, switchLsn: '0/9A000060' },
    ]);
    expect(segmentName(2, 0x9an)).toBe('00000002000000000000009A');
    expect(segmentName(3, 0x1_05n)).toBe('000000030000000100000005');
  });
  it.each([
    ['all of the parent timeline archived up to the switch segment (which the promotion copies)', arch(2, ...Array.from({ length: 0x9a - 5 }, (_, i) => 5 + i)), '0/3000028', []],
    ['the last three completed segments missing', arch(2, ...Array.from({ length: 0x97 - 5 }, (_, i) => 5 + i)), '0/3000028', ['000000020000000000000097', '000000020000000000000098', '000000020000000000000099']],
    ['a hole in the middle', arch(2, 5, 6, ...Array.from({ length: 0x9a - 8 }, (_, i) => 8 + i)), '0/3000028', ['000000020000000000000007']],
    ['the partial of the switch segment does not count, nor other timelines', [...arch(1, 0x97, 0x98, 0x99), '000000020000000000000099.partial-0123456789abcdef0123456789abcdef01234567.lz4', ...arch(2, ...Array.from({ length: 0x99 - 5 }, (_, i) => 5 + i))], '0/3000028', ['000000020000000000000099']],
    ['only from the oldest backup on, when it is later than the timeline start', arch(2, 0x98, 0x99), '0/98000028', []],
    ['no backup: nothing to restore from, nothing needed', [], undefined, []],
  ])('%s', (_why, archived, oldest, want) => {
    expect(archiveGap({ history, archived, oldestBackupLsn: oldest })).toEqual(want);
  });
  it('timeline 1 (no history) needs nothing', () => {
    expect(archiveGap({ history: [], archived: [], oldestBackupLsn: '0/3000028' })).toEqual([]);
  });
});
