import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { renderBackrestConf } from '../../agent/charm/postgresql/backup.js';
import { backupServerLayer, chooseBackupSource, parseBackupFileLine, parseBackupServer, serverBind, serverConfLines, serverNames, standbyArgs, type BackupServer, type SourceCandidate } from '../../agent/charm/postgresql/backup-standby.js';
import { layout } from '../../agent/charm/postgresql/render.js';
import { CA_SCRIPT, LEAF_SCRIPT, needsRenewal, pemBlocks } from '../../agent/tls/x509.js';

const l = layout('/data', 15);
const server = (host: string): BackupServer => ({ host, port: 8432, pgdata: `/d/${host}/pgdata`, socket: `/d/${host}/run`, 'pg-port': 5432 });
const replica = (unit: string, o: Partial<SourceCandidate> & { lag?: number | null; tl?: number; streaming?: boolean } = {}): SourceCandidate => ({
  unit,
  role: 'replica',
  server: server(unit.replace('/', '-')),
  serverUp: true,
  pos: { streaming: o.streaming ?? true, timeline: o.tl ?? 3, lagBytes: o.lag === undefined ? 0 : o.lag },
  ...o,
});

describe('backups from a standby: where the files come from', () => {
  it.each<[string, SourceCandidate[], string]>([
    ['the least lagging streaming standby', [replica('pg/1', { lag: 4096 }), replica('pg/2', { lag: 0 })], 'pg/2'],
    ['equal lag: the first by name (stable)', [replica('pg/2'), replica('pg/1')], 'pg/1'],
    ['unknown lag goes last', [replica('pg/1', { lag: null }), replica('pg/2', { lag: 1 << 20 })], 'pg/2'],
    ['not streaming is skipped', [replica('pg/1', { streaming: false }), replica('pg/2', { lag: 99 })], 'pg/2'],
    ['another timeline is skipped (a standby not yet following a promotion)', [replica('pg/1', { tl: 2 }), replica('pg/2', { lag: 99 })], 'pg/2'],
    ['a standby without a server is skipped', [replica('pg/1', { server: undefined }), replica('pg/2', { lag: 99 })], 'pg/2'],
    ['a standby whose server does not answer is skipped', [replica('pg/1', { serverUp: false }), replica('pg/2', { lag: 99 })], 'pg/2'],
  ])('%s', (_why, candidates, want) => {
    const got = chooseBackupSource(3, candidates);
    expect('unit' in got && got.unit).toBe(want);
  });

  it.each<[string, SourceCandidate[], string]>([
    ['no standby at all', [], 'no standby'],
    [
      'each reason is named',
      [replica('pg/1', { pos: undefined }), replica('pg/2', { streaming: false }), replica('pg/3', { tl: 2 }), replica('pg/4', { server: undefined }), replica('pg/5', { serverUp: false })],
      'pg/1 did not answer, pg/2 is not streaming, pg/3 is on timeline 2, pg/4 has no backup server, pg/5 has a backup server that does not answer',
    ],
    ['a unit that is not a replica is never a source', [{ ...replica('pg/1'), role: 'fenced' }], 'no standby'],
  ])('the primary itself when %s', (_why, candidates, why) => {
    expect(chooseBackupSource(3, candidates)).toEqual({ why });
  });

  it('server names: localhost on the local controller, else the pod DNS name under the headless Service; bound to the name locally, the pod IP in a pod', () => {
    expect(serverNames({ podIp: '127.0.0.1', pod: 'pg-0', app: 'pg', namespace: 'ns' })).toEqual(['localhost']);
    const k8s = serverNames({ podIp: '10.1.2.3', pod: 'pg-0', app: 'pg', namespace: 'ns' });
    expect(k8s).toEqual(['pg-0.pg-endpoints.ns.svc', 'pg-0.pg-endpoints.ns.svc.cluster.local']);
    expect(serverBind(['localhost'], '127.0.0.1')).toBe('localhost');
    expect(serverBind(k8s, '10.1.2.3')).toBe('10.1.2.3');
  });

  it('the server in pgbackrest.conf (global: other commands ignore it) accepts only our client certificate, for our stanza', () => {
    const conf = renderBackrestConf({ config: { 'backup-retention-full': 2 }, repo: '/repo', l, port: 5432, server: serverConfLines(l, { bind: 'localhost', port: 8432 }) });
    const global = conf.slice(0, conf.indexOf('[pgcharm]'));
    expect(global).toContain('tls-server-address=localhost\ntls-server-port=8432\n');
    expect(global).toContain('tls-server-auth=pgcharm-backup=pgcharm\n');
    expect(global).toContain('tls-server-ca-file=/data/pgbackrest/tls/ca.crt\n');
    expect(renderBackrestConf({ config: { 'backup-retention-full': 2 }, repo: '/repo', l, port: 5432 })).not.toContain('tls-server');
  });

  it('the service runs as postgres with the passfile; its digest is in the layer, so a new one is a changed layer', () => {
    const y = parse(backupServerLayer(l, 'abc')) as { services: Record<string, Record<string, unknown>> };
    expect(y.services['pgbackrest-server']).toMatchObject({ override: 'replace', startup: 'enabled', user: 'postgres', command: 'pgbackrest --config-path=/data/pgbackrest server', environment: { PGPASSFILE: '/data/pgcharm/pgpass-backup', PGCHARM_CONFIG_DIGEST: 'abc' } });
    expect(backupServerLayer(l, 'abd')).not.toBe(backupServerLayer(l, 'abc'));
  });

  it("pgBackRest's options reach the standby as pg2 over TLS with this unit's client certificate", () => {
    expect(standbyArgs(l, server('pg-1'))).toEqual([
      '--backup-standby',
      '--pg2-host=pg-1',
      '--pg2-host-type=tls',
      '--pg2-host-port=8432',
      '--pg2-host-cert-file=/data/pgbackrest/tls/client.crt',
      '--pg2-host-key-file=/data/pgbackrest/tls/client.key',
      '--pg2-host-ca-file=/data/pgbackrest/tls/ca.crt',
      '--pg2-path=/d/pg-1/pgdata',
      '--pg2-port=5432',
      '--pg2-socket-path=/d/pg-1/run',
      '--pg2-user=operator',
    ]);
  });

  it.each([
    ['2026-11-28 01:45:31.440 P02 DETAIL: backup file localhost:/d/pgdata/base/5/2835 (8KB, 89.66%) checksum ff01', { remote: true, fraction: 0.8966 }],
    ['2026-11-28 01:45:31.229 P01 DETAIL: backup file /d/pgdata/postgresql.conf (28.9KB, 0.12%) checksum d760', { remote: false, fraction: 0.0012 }],
    ['2026-11-28 01:45:31.229 P01 DETAIL: match file from prior backup pg-1.pg-endpoints.ns.svc:/d/pgdata/base/1/1 (8KB, 100.00%) checksum 1', { remote: true, fraction: 1 }],
    ['2026-11-28 01:45:17.193 P00   INFO: backup stop archive = 000000010000000000000004, lsn = 0/4000050', undefined],
  ])('progress from a log line: %s', (line, want) => {
    expect(parseBackupFileLine(line)).toEqual(want);
  });

  it('a bag entry is read back, and anything else is no server', () => {
    expect(parseBackupServer(JSON.stringify(server('x')))).toEqual(server('x'));
    for (const bad of [undefined, '', '{', '{"host":"x"}', JSON.stringify({ ...server('x'), port: '8432' })]) expect(parseBackupServer(bad)).toBeUndefined();
  });
});

describe('the deployment CA (openssl in the workload, ECDSA P-256)', () => {
  it('signs server and client certificates that verify against it, with the names and usages asked for; nothing of the CA key is left; renewal says why', () => {
    const d = mkdtempSync(join(tmpdir(), 'pgcharm-x509-'));
    try {
      const sh = (script: string, ...args: string[]) => execFileSync('sh', ['-c', script, 'sh', d, ...args], { encoding: 'utf8' });
      const [key, cert] = pemBlocks(sh(CA_SCRIPT, 'pgcharm test CA'));
      expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
      const ca = new X509Certificate(cert!);
      expect(ca.ca).toBe(true);
      expect(ca.subject).toBe('CN=pgcharm test CA');
      expect(readdirSync(d)).toEqual([]);
      writeFileSync(join(d, 'ca.crt'), cert!);
      const leaf = (kind: string, cn: string, dns: string, serial: string) => {
        writeFileSync(join(d, '.ca.key'), key!, { mode: 0o600 });
        sh(LEAF_SCRIPT, kind, kind, cn, dns, serial);
        return readFileSync(join(d, `${kind}.crt`), 'utf8');
      };
      const server = leaf('server', 'pg-0.pg-endpoints.ns.svc', 'pg-0.pg-endpoints.ns.svc,localhost', '0abc');
      const client = leaf('client', 'pgcharm-backup', '', '7f01');
      const s = new X509Certificate(server);
      expect(s.verify(ca.publicKey)).toBe(true);
      expect(s.ca).toBe(false);
      expect(s.subjectAltName).toBe('DNS:pg-0.pg-endpoints.ns.svc, DNS:localhost');
      expect(s.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
      expect(s.serialNumber).toBe('0ABC');
      expect(s.checkPrivateKey(createPrivateKey(readFileSync(join(d, 'server.key'))))).toBe(true);
      const c = new X509Certificate(client);
      expect(c.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
      expect(c.subjectAltName).toBeUndefined();
      // The CA key, the requests and the configs are gone; the keys are the owner's only.
      expect(readdirSync(d).sort()).toEqual(['ca.crt', 'client.crt', 'client.key', 'server.crt', 'server.key']);
      expect(statSync(join(d, 'server.key')).mode & 0o777).toBe(0o600);
      expect(needsRenewal(server, cert!, { dns: ['localhost'] })).toBeUndefined();
      expect(needsRenewal(client, cert!, { cn: 'pgcharm-backup' })).toBeUndefined();
      expect(needsRenewal(server, cert!, { dns: ['other'] })).toBe('no name other');
      expect(needsRenewal(client, cert!, { cn: 'someone' })).toBe('subject is not CN=someone');
      expect(needsRenewal(server, cert!, {}, 400)).toMatch(/^expires /);
      expect(needsRenewal('garbage', cert!, {})).toBe('unreadable');
      const [, other] = pemBlocks(sh(CA_SCRIPT, 'another CA'));
      expect(needsRenewal(server, other!, {})).toBe('not signed by the current CA');
      // A failing openssl fails the script, saying why, and still removes the CA key.
      writeFileSync(join(d, '.ca.key'), 'not a key', { mode: 0o600 });
      expect(() => sh(LEAF_SCRIPT, 'server', 'server', 'x', 'x', '01')).toThrow(/unable to load|Could not read|CA key/i);
      expect(readdirSync(d)).not.toContain('.ca.key');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
