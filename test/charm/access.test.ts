import { describe, expect, it } from 'vitest';
import { hbaSpec, peerHost } from '../../agent/charm/postgresql/access.js';
import { hostEntry, renderHba, renderIdent, resolveClientCidrs } from '../../agent/charm/postgresql/render.js';

/** The host lines of a pg_hba.conf as [type, database, user, address, method]. */
const rules = (hba: string) =>
  hba
    .split('\n')
    .filter((l) => l.startsWith('host') || l.startsWith('local'))
    .map((l) => l.split(/\s+/));

/**
 * Which rule pg_hba.conf applies to a TCP connection (first match wins), for the subset of
 * the syntax renderHba writes: exact /32 and /128 entries, `all`, and the ranges given.
 */
function decide(hba: string, conn: { replication: boolean; db: string; user: string; from: string }): string {
  const inRange = (addr: string, range: string) => {
    if (range === 'all') return true;
    const [net, bits] = range.split('/') as [string, string];
    if (!net.includes('.') || !addr.includes('.')) return addr === net;
    const n = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
    const block = 2 ** (32 - Number(bits));
    return Math.floor(n(addr) / block) === Math.floor(n(net) / block);
  };
  for (const [type, db, users, addr, method] of rules(hba)) {
    if (type !== 'host') continue;
    const dbOk = conn.replication ? db === 'replication' : db === 'all' || db.split(',').includes(conn.db);
    const userOk = users === 'all' || users!.split(',').includes(conn.user);
    if (dbOk && userOk && inRange(conn.from, addr!)) return method!;
  }
  return 'no entry';
}

describe('pg_hba.conf', () => {
  const spec = { method: 'scram-sha-256', peers: ['10.1.0.5', '10.1.0.6', '10.1.0.7'], clients: ['10.1.0.0/16'] };
  const hba = renderHba(spec);

  it.each([
    // who, replication?, db, user, from, outcome
    ['a peer streams', true, 'replication', 'replication', '10.1.0.6', 'scram-sha-256'],
    ['a non-peer in the pod network cannot stream', true, 'replication', 'replication', '10.1.3.9', 'reject'],
    ['nor can any other user', true, 'replication', 'operator', '10.1.3.9', 'reject'],
    ['replication is no login to databases', false, 'postgres', 'replication', '10.1.0.6', 'reject'],
    ['pg_rewind from a peer, to postgres', false, 'postgres', 'rewind', '10.1.0.5', 'scram-sha-256'],
    ['rewind into another database: refused', false, 'app', 'rewind', '10.1.0.5', 'reject'],
    ['rewind from a non-peer: refused', false, 'postgres', 'rewind', '10.1.3.9', 'reject'],
    ['the operator from a peer (the agents)', false, 'app', 'operator', '10.1.0.7', 'scram-sha-256'],
    ['the operator from a client address: refused', false, 'postgres', 'operator', '10.1.3.9', 'reject'],
    ['the operator from outside: refused', false, 'postgres', 'operator', '192.168.1.1', 'reject'],
    ['monitoring from a peer', false, 'postgres', 'monitoring', '10.1.0.5', 'scram-sha-256'],
    ['monitoring from a client address (an exporter)', false, 'postgres', 'monitoring', '10.1.3.9', 'scram-sha-256'],
    ['an application user from the pod network', false, 'app', 'app', '10.1.3.9', 'scram-sha-256'],
    ['an application user from outside the ranges', false, 'app', 'app', '192.168.1.1', 'no entry'],
  ] as const)('%s', (_name, replication, db, user, from, want) => {
    expect(decide(hba, { replication, db, user, from })).toBe(want);
  });

  it('the socket: peer auth for the OS user postgres (as itself and, by the ident map, as the operator), passwords for everyone else; never trust', () => {
    expect(rules(hba).filter((r) => r[0] === 'local')).toEqual([
      ['local', 'all', 'postgres', 'peer'],
      ['local', 'all', 'operator', 'peer', 'map=pgcharm'],
      ['local', 'all', 'all', 'scram-sha-256'],
    ]);
    expect(hba).not.toMatch(/trust|0\.0\.0\.0\/0|::\/0/);
    // Only the OS user postgres maps to the operator.
    expect(renderIdent().split('\n').filter((l) => l && !l.startsWith('#'))).toEqual(['pgcharm  postgres  operator']);
  });

  it('a local deployment: every unit on 127.0.0.1 gives one peer entry; clients from loopback only', () => {
    const local = renderHba(hbaSpec({ 'password-encryption': 'md5', 'allowed-client-cidrs': 'auto' }, '127.0.0.1', [{ address: '127.0.0.1:5433' }, { address: '127.0.0.1:5434' }]));
    expect(rules(local).filter((r) => r[1] === 'replication' && r[4] !== 'reject')).toEqual([['host', 'replication', 'replication', '127.0.0.1/32', 'md5']]);
    expect(decide(local, { replication: true, db: 'replication', user: 'replication', from: '127.0.0.2' })).toBe('reject');
    expect(decide(local, { replication: false, db: 'postgres', user: 'operator', from: '127.0.0.2' })).toBe('reject');
    expect(decide(local, { replication: false, db: 'postgres', user: 'app', from: '127.0.0.2' })).toBe('no entry');
    expect(decide(local, { replication: false, db: 'postgres', user: 'app', from: '127.0.0.1' })).toBe('md5');
  });

  it('peers change, the file changes: a departed unit is no longer admitted', () => {
    const before = renderHba({ ...spec, peers: ['10.1.0.5', '10.1.0.6'] });
    const after = renderHba({ ...spec, peers: ['10.1.0.5'] });
    expect(decide(before, { replication: true, db: 'replication', user: 'replication', from: '10.1.0.6' })).toBe('scram-sha-256');
    expect(decide(after, { replication: true, db: 'replication', user: 'replication', from: '10.1.0.6' })).toBe('reject');
  });

  it('no client ranges: system users from peers only, nobody else over TCP', () => {
    const none = renderHba({ ...spec, clients: [] });
    expect(decide(none, { replication: false, db: 'app', user: 'app', from: '10.1.0.5' })).toBe('no entry');
    expect(decide(none, { replication: false, db: 'app', user: 'operator', from: '10.1.0.5' })).toBe('scram-sha-256');
  });
});

describe('addresses', () => {
  it.each([
    ['10.1.2.3', '10.1.2.3/32'],
    ['fd00::5', 'fd00::5/128'],
    ['db-0.example', 'db-0.example'],
  ])('%s as a pg_hba address: %s', (host, want) => expect(hostEntry(host)).toBe(want));

  it.each([
    ['auto', '127.0.0.1', ['127.0.0.1/32']],
    ['auto', '::1', ['::1/128']],
    ['auto', '10.1.77.12', ['10.1.0.0/16']],
    ['auto', 'fd00:10:244:1::1a', ['fd00:10:244:1::/64']],
    ['auto', '2001:db8::7', ['2001:db8:0:0::/64']],
    ['auto', 'db-0.example', []],
    ['10.0.0.0/8, 192.168.0.0/24', '10.1.2.3', ['10.0.0.0/8', '192.168.0.0/24']],
    ['', '10.1.2.3', []],
  ] as const)('allowed-client-cidrs %j at %s -> %j', (setting, host, want) => {
    expect(resolveClientCidrs(setting, host)).toEqual(want);
  });

  it('a peer is known by its ingress-address (published before its first hook ends), else its recorded address', () => {
    expect(peerHost({ 'ingress-address': '10.1.0.9', address: '10.1.0.4:5432' })).toBe('10.1.0.9');
    expect(peerHost({ address: '10.1.0.4:5432' })).toBe('10.1.0.4');
    expect(peerHost({})).toBeUndefined();
    expect(hbaSpec({ 'password-encryption': 'scram-sha-256', 'allowed-client-cidrs': 'auto' }, '10.1.0.3', [{ address: '10.1.0.4:5432' }, {}]).peers).toEqual(['10.1.0.3', '10.1.0.4']);
  });
});
