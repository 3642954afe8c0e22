import { describe, expect, it } from 'vitest';
import { ARCHIVE_BLOCK_AFTER_MS, archiveParams, archiveState, archiving, decideStanza, parseInfo, renderBackrestConf, repoPath, type StanzaInfo } from '../../agent/charm/postgresql/backup.js';
import { layout } from '../../agent/charm/postgresql/render.js';

const l = layout("/data/it's here/pgdata", 15);
const config = { 'backup-repo-path': '', 'archive-timeout': 60, 'backup-retention-full': 2 };

describe('backup repository and archiving settings', () => {
  it.each([
    ['backup-repo-path wins over the local default', { 'backup-repo-path': '/repo/x/' }, { PGCHARM_BACKUP_DIR: '/m/backups' }, '/repo/x'],
    ['locally, one repository per application under the model', {}, { PGCHARM_BACKUP_DIR: '/m/backups/' }, '/m/backups/postgresql'],
    ['on Kubernetes without a path: none', {}, {}, undefined],
  ])('%s', (_why, set, env, want) => {
    expect(repoPath({ ...config, ...set }, 'postgresql', env)).toBe(want);
    expect(archiving({ ...config, ...set }, env)).toBe(want !== undefined);
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
