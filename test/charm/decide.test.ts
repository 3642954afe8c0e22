import { describe, expect, it } from 'vitest';
import { chooseBootstrapPrimary, chooseFailoverCandidate, desiredSyncSet, syncSetNames } from '../../agent/charm/postgresql/decide.js';
import { layout, pgParams, renderConf, renderHba, slotName } from '../../agent/charm/postgresql/render.js';
import { scramVerifier } from '../../agent/charm/postgresql/scram.js';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';

describe('synchronous_standby_names', () => {
  it.each([
    ['quorum', 1, ['postgresql/1', 'postgresql/2'], 'ANY 1 ("postgresql/1", "postgresql/2")'],
    ['quorum', 2, ['postgresql/2', 'postgresql/1'], 'ANY 2 ("postgresql/1", "postgresql/2")'],
    ['quorum', 3, ['postgresql/1'], 'ANY 1 ("postgresql/1")'],
    ['quorum', 1, [], ''],
    ['off', 1, ['postgresql/1'], ''],
  ] as const)('%s n=%i over %j -> %s', (mode, n, streaming, want) => {
    expect(syncSetNames(desiredSyncSet(mode, n, streaming))).toBe(want);
  });
});

describe('bootstrap primary', () => {
  it('is the leader', () => expect(chooseBootstrapPrimary('pg/2', ['pg/0', 'pg/1'])).toBe('pg/2'));
});

describe('rendering', () => {
  const l = layout('/data', 15);
  const config = {
    'max-connections': 100, 'shared-buffers': '128MB', 'work-mem': '4MB', 'maintenance-work-mem': '64MB', 'password-encryption': 'scram-sha-256',
    'log-connections': false, 'log-min-duration-statement': -1, timezone: 'UTC', 'synchronous-commit': 'on',
  };
  it('lays out PGDATA, the private directory and the sockets under the storage mount', () => {
    expect(l).toMatchObject({ binDir: '/usr/lib/postgresql/15/bin', pgdata: '/data/pgdata', private: '/data/pgcharm', confFile: '/data/pgdata/pgcharm.conf', pgpass: '/data/pgcharm/pgpass' });
  });
  it('renders a standby with its conninfo and slot, and quotes values', () => {
    const p = pgParams(config, { host: '127.0.0.1', port: 5433, l, standby: { primaryConninfo: "host=a port=1 application_name=pg/1", slot: slotName('pg/1') } });
    expect(p).toMatchObject({ listen_addresses: '127.0.0.1', port: '5433', primary_slot_name: 'pg_1', wal_log_hints: 'on', hot_standby: 'on' });
    expect(renderConf({ a: "it's" })).toMatch(/^a = 'it''s'$/m);
    expect(pgParams(config, { host: '10.0.0.5', port: 5432, l })['listen_addresses']).toBe('*');
    expect(pgParams(config, { host: '10.0.0.5', port: 5432, l })).not.toHaveProperty('primary_conninfo');
  });
  it('never trusts: every host line asks for a password or refuses', () => {
    const hba = renderHba({ method: 'scram-sha-256', peers: ['10.1.0.5', '10.1.0.6'], clients: ['10.1.0.0/16'] });
    expect(hba).not.toMatch(/trust/);
    expect(hba.split('\n').filter((x) => x.startsWith('host')).every((x) => x.endsWith('scram-sha-256') || x.endsWith('reject'))).toBe(true);
  });
});

describe('SCRAM verifier', () => {
  it('matches RFC 7677 derivation and never contains the password', () => {
    const salt = Buffer.from('0123456789abcdef');
    const v = scramVerifier('pencil', 4096, salt);
    const salted = pbkdf2Sync('pencil', salt, 4096, 32, 'sha256');
    const stored = createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest('base64');
    const server = createHmac('sha256', salted).update('Server Key').digest('base64');
    expect(v).toBe(`SCRAM-SHA-256$4096:${salt.toString('base64')}$${stored}:${server}`);
    expect(v).not.toContain('pencil');
  });
});

describe('failover candidate (the quorum rule)', () => {
  const m = (unit: string, lsn?: string, settled = true, role = 'replica') => ({ unit, role, ...(lsn ? { pos: { lsn, settled } } : {}) });
  const set = (k: number, ...members: string[]) => ({ members, k });
  it.each([
    ['ANY 1 of 2: both compared, the most advanced', 'quorum', set(1, 'pg/1', 'pg/2'), [m('pg/1', '0/3000000'), m('pg/2', '0/3000100')], 'pg/2'],
    ['ANY 1 of 2: only one answers -> nobody (the double fault)', 'quorum', set(1, 'pg/1', 'pg/2'), [m('pg/1', '0/3000000'), m('pg/2')], undefined],
    ['ANY 2 of 2: one answer suffices (every commit is on both)', 'quorum', set(2, 'pg/1', 'pg/2'), [m('pg/1', '0/3000000'), m('pg/2')], 'pg/1'],
    ['ANY 1 of 3: 3 needed, 2 answer -> nobody', 'quorum', set(1, 'pg/1', 'pg/2', 'pg/3'), [m('pg/1', '0/5'), m('pg/2', '0/6'), m('pg/3')], undefined],
    ['ANY 2 of 3: 2 needed, 2 answer -> the better one', 'quorum', set(2, 'pg/1', 'pg/2', 'pg/3'), [m('pg/1', '0/5'), m('pg/2', '0/6'), m('pg/3')], 'pg/2'],
    ['a unit outside the set is not compared nor chosen', 'quorum', set(1, 'pg/1'), [m('pg/1', '0/3000000'), m('pg/2', '0/9000000')], 'pg/1'],
    ['empty set: the primary acknowledged alone -> nobody', 'quorum', set(0), [m('pg/1', '0/3000000')], undefined],
    ['k = 0 with members (a transition to no standby) -> nobody', 'quorum', set(0, 'pg/1'), [m('pg/1', '0/3000000')], undefined],
    ['a member still replaying its WAL is not compared', 'quorum', set(1, 'pg/1', 'pg/2'), [m('pg/1', '0/3000000'), m('pg/2', '0/1000000', false)], undefined],
    ['the most advanced compared member must be a replica', 'quorum', set(1, 'pg/1', 'pg/2'), [m('pg/1', '0/3000000'), m('pg/2', '0/4000000', true, 'fenced')], undefined],
    ['ties go to the lowest name', 'off', set(0), [m('pg/2', '0/5'), m('pg/1', '0/5')], 'pg/1'],
    ['high halves compare as numbers', 'off', set(0), [m('pg/1', '9/0'), m('pg/2', '10/0')], 'pg/2'],
    ['off: anyone reachable', 'off', set(0), [m('pg/3', '0/1')], 'pg/3'],
    ['off: nobody reachable', 'off', set(0), [m('pg/3')], undefined],
  ] as const)('%s', (_n, mode, sync, members, want) => {
    expect(chooseFailoverCandidate({ mode, sync, members }).unit).toBe(want);
  });
  it('says how many more members it waits for, and which', () => {
    const c = chooseFailoverCandidate({ mode: 'quorum', sync: set(1, 'pg/1', 'pg/2'), members: [m('pg/1', '0/1'), m('pg/2')] });
    expect(c.why).toMatch(/^waiting for 1 more member of the synchronous set \[pg\/1, pg\/2\] to compare positions/);
    expect(c.why).toMatch(/no position from pg\/2/);
  });
  it('async: a standby lagging more than maximum-lag-on-failover behind the published position is not promoted', () => {
    const o = { mode: 'off', sync: set(0), members: [m('pg/1', '0/1000000')], primaryLsn: '0/1300000' };
    expect(chooseFailoverCandidate({ ...o, maxLagBytes: 4194304 }).unit).toBe('pg/1');
    const lagging = chooseFailoverCandidate({ ...o, maxLagBytes: 1024 });
    expect(lagging.unit).toBeUndefined();
    expect(lagging.why).toMatch(/pg\/1 is 3145728 bytes behind .*maximum-lag-on-failover is 1024/);
    expect(chooseFailoverCandidate({ mode: 'off', sync: set(0), members: [m('pg/1', '0/1000000')], maxLagBytes: 0 }).unit).toBe('pg/1');
  });
});
