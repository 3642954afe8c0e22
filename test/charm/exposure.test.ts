import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { parse } from 'yaml';
import { CoreV1Api, KubeConfig } from '#client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scramVerifier } from '../../agent/charm/postgresql/scram.js';
import { testModel, type TestModel } from '../helpers/model.js';
import { waitFor } from '../helpers/procs.js';

/**
 * Secrets and exposure on a real 3-unit deployment (PostgreSQL 15): a secret config option,
 * a sensitive action, two-phase set-password and its recovery, the rewind and monitoring
 * roles, and pg_hba (peers only for the system users).
 */
describe('PostgreSQL charm: secrets and exposure', () => {
  let m: TestModel;
  let core: CoreV1Api;
  let ns: string;
  const root = `Root-${randomBytes(9).toString('base64url')}`;
  /** Every password this test has seen: none may be in any ConfigMap, log or process list. */
  const seen = new Set<string>([root]);

  type Units = Record<string, { role: string; address: string; leader: boolean; workload: { status: string }; agent: { status: string }; 'applied-config': string }>;
  const units = async () => (JSON.parse((await m.cli(['status', '--format', 'json'])).stdout) as { units: Units }).units;
  const settled = async () =>
    waitFor('every unit active, idle and on the current config', async () => {
      const u = await units();
      return Object.values(u).every((x) => x.workload.status === 'active' && x.agent.status === 'idle' && x['applied-config'] === 'current' && ['primary', 'replica'].includes(x.role)) && u;
    }, 90_000, 250);
  const getPassword = async (username: string) => {
    const r = await m.cli(['run', 'leader', 'get-password', `username=${username}`, '--wait']);
    expect(r.code, r.stderr).toBe(0);
    const pw = (parse(r.stdout) as Record<string, { results: { password: string } }>)[Object.keys(parse(r.stdout) as object)[0]!]!.results.password;
    seen.add(pw);
    return pw;
  };
  /** A client of one unit's Postgres; `from` binds the client's end to another loopback address. */
  const client = (address: string, user: string, password: string, o: { from?: string; replication?: boolean; database?: string } = {}) => {
    const [host, port] = address.split(':') as [string, string];
    const c = new pg.Client({
      host,
      port: Number(port),
      user,
      password,
      database: o.database ?? 'postgres',
      connectionTimeoutMillis: 3000,
      ...(o.replication ? { replication: true } : {}),
      ...(o.from
        ? {
            stream: () => {
              const s = new Socket();
              const connect = s.connect.bind(s) as (opts: object) => Socket;
              // pg calls connect(port, host); the source address is what pg_hba sees.
              (s as unknown as { connect: (p: number, h: string) => Socket }).connect = (p: number, h: string) => connect({ port: p, host: h, localAddress: o.from });
              return s;
            },
          }
        : {}),
    });
    c.on('error', () => undefined);
    return c;
  };
  const query = async (address: string, user: string, password: string, sql: string, o: { from?: string; database?: string } = {}) => {
    const c = client(address, user, password, o);
    await c.connect();
    try {
      return (await c.query(sql)).rows as Record<string, unknown>[];
    } finally {
      await c.end();
    }
  };
  const canConnect = async (address: string, user: string, password: string, o: { from?: string; replication?: boolean } = {}) => {
    const c = client(address, user, password, o);
    try {
      await c.connect();
      await c.end();
      return 'ok';
    } catch (e) {
      return (e as Error).message;
    }
  };
  const passwordsSecret = async () => {
    const s = await core.readNamespacedSecret({ name: 'postgresql-passwords', namespace: ns });
    return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  };
  const allConfigMaps = async () => JSON.stringify((await core.listNamespacedConfigMap({ namespace: ns })).items);

  beforeAll(async () => {
    m = testModel();
    const file = join(m.dir, 'deploy-config.yaml');
    writeFileSync(file, `override-root-password: ${root}\n`, { mode: 0o600 });
    const r = await m.cli(['deploy', '--units', '3', '--config-file', file, '--timeout', '120'], 180_000);
    expect(r.code, r.stderr).toBe(0);
    const kc = new KubeConfig();
    kc.loadFromFile(join(m.dir, 'kubeconfig'));
    core = kc.makeApiClient(CoreV1Api);
    ns = kc.getContextObject(kc.getCurrentContext())!.namespace!;
  }, 200_000);
  afterAll(async () => {
    await m?.cleanup();
  }, 60_000);

  it('override-root-password: the operator gets it; the config ConfigMap and `pgcharm config` show only a reference / (secret)', async () => {
    expect(await getPassword('operator')).toBe(root);
    const cfg = await m.cli(['config']);
    expect(cfg.stdout).toMatch(/^override-root-password\s+\(secret\)\s+\(set by user\)$/m);
    expect(cfg.stdout).toMatch(/^allowed-client-cidrs\s+"auto"$/m);
    const diff = await m.cli(['config', '--diff', 'override-root-password=another-root-pw']);
    expect(diff.stdout).toContain('-override-root-password: (secret)\n+override-root-password: (secret)');
    expect(diff.stdout + cfg.stdout).not.toContain(root);
    const cm = await core.readNamespacedConfigMap({ name: 'postgresql-config', namespace: ns });
    expect(JSON.parse(cm.data!['config']!)['override-root-password']).toMatch(/^secret:[0-9a-f]{32}$/);
    const values = await core.readNamespacedSecret({ name: 'postgresql-config-secrets', namespace: ns });
    expect(Object.values(values.data!).map((v) => Buffer.from(v, 'base64').toString('utf8'))).toContain(root);
    expect(await allConfigMaps()).not.toContain(root);
  });

  it('get-password is sensitive: its result reaches the waiting caller once and stays nowhere', async () => {
    const refused = await m.cli(['run', 'leader', 'get-password']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('get-password is sensitive');
    const r = await m.cli(['run', 'leader', 'get-password', 'username=monitoring', '--wait']);
    const rec = (parse(r.stdout) as Record<string, { id: number; results: { password: string } }>)[Object.keys(parse(r.stdout) as object)[0]!]!;
    seen.add(rec.results.password);
    const action = await core.readNamespacedConfigMap({ name: `postgresql-action-${rec.id}`, namespace: ns });
    expect(action.data!['results']).toBe('{}');
    expect(action.data!['results-secret']).toBe(`postgresql-action-${rec.id}-results`);
    await expect(core.readNamespacedSecret({ name: `postgresql-action-${rec.id}-results`, namespace: ns })).rejects.toThrow();
  });

  it('creates rewind and monitoring with least privilege', async () => {
    const primary = Object.values(await settled()).find((u) => u.role === 'primary')!.address;
    const roles = await query(primary, 'operator', root, "SELECT rolname, rolsuper, rolreplication, rolcreaterole, rolcreatedb, rolcanlogin, rolbypassrls FROM pg_roles WHERE rolname IN ('rewind', 'monitoring') ORDER BY 1");
    expect(roles).toEqual([
      { rolname: 'monitoring', rolsuper: false, rolreplication: false, rolcreaterole: false, rolcreatedb: false, rolcanlogin: true, rolbypassrls: false },
      { rolname: 'rewind', rolsuper: false, rolreplication: false, rolcreaterole: false, rolcreatedb: false, rolcanlogin: true, rolbypassrls: false },
    ]);
    const grants = await query(primary, 'operator', root, `SELECT f, has_function_privilege('rewind', f, 'EXECUTE') AS ok FROM unnest(ARRAY['pg_catalog.pg_ls_dir(text, boolean, boolean)', 'pg_catalog.pg_stat_file(text, boolean)', 'pg_catalog.pg_read_binary_file(text)', 'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)']) AS f`);
    expect(grants.every((g) => g['ok'] === true)).toBe(true);
    const member = await query(primary, 'operator', root, "SELECT pg_has_role('monitoring', 'pg_monitor', 'USAGE') AS m, pg_has_role('rewind', 'pg_monitor', 'USAGE') AS r");
    expect(member).toEqual([{ m: true, r: false }]);
    // Verifiers only, never a password in the catalog.
    const stored = await query(primary, 'operator', root, "SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN ('operator', 'replication', 'rewind', 'monitoring')");
    expect(stored.every((r) => String(r['rolpassword']).startsWith('SCRAM-SHA-256$'))).toBe(true);
    // They work: monitoring reads the statistics views, rewind calls pg_rewind's functions, and nothing more.
    const mon = await getPassword('monitoring');
    expect(await query(primary, 'monitoring', mon, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'")).toEqual([{ n: 2 }]);
    await expect(query(primary, 'monitoring', mon, 'CREATE TABLE nope (x int)')).rejects.toThrow(/permission denied/);
    const rw = await getPassword('rewind');
    expect((await query(primary, 'rewind', rw, "SELECT count(*)::int AS n FROM pg_ls_dir('global', false, false)"))[0]!['n']).toBeGreaterThan(0);
    await expect(query(primary, 'rewind', rw, "SELECT pg_read_file('PG_VERSION')")).rejects.toThrow(/permission denied/);
    await expect(query(primary, 'rewind', rw, 'SELECT rolpassword FROM pg_authid')).rejects.toThrow(/permission denied/);
  });

  it('pg_hba: replication and the operator only from the units; other clients from allowed-client-cidrs', async () => {
    const u = await settled();
    const primary = Object.values(u).find((x) => x.role === 'primary')!.address;
    const repl = await getPassword('replication');
    const mon = await getPassword('monitoring');
    // Every unit runs on 127.0.0.1, so that is the peer address; 127.0.0.2 is another host as far as pg_hba goes.
    expect(await canConnect(primary, 'replication', repl, { replication: true })).toBe('ok');
    expect(await canConnect(primary, 'replication', repl, { replication: true, from: '127.0.0.2' })).toMatch(/pg_hba.conf rejects replication connection for host "127.0.0.2"/);
    expect(await canConnect(primary, 'operator', root, { from: '127.0.0.2' })).toMatch(/pg_hba.conf rejects connection for host "127.0.0.2", user "operator"/);
    // auto is loopback 127.0.0.1/32 locally: other clients from 127.0.0.2 find no entry.
    expect(await canConnect(primary, 'monitoring', mon, { from: '127.0.0.2' })).toMatch(/no pg_hba.conf entry for host "127.0.0.2"/);
    const bad = await m.cli(['config', 'allowed-client-cidrs=127.0.0.0/33']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('allowed-client-cidrs: must be "auto" or comma-separated address ranges: "127.0.0.0/33": an IPv4 prefix length is at most 32');
    expect((await m.cli(['config', 'allowed-client-cidrs=127.0.0.0/8'])).code).toBe(0);
    await settled();
    for (const x of Object.values(await units())) {
      await waitFor(`${x.address} admits clients from 127.0.0.0/8`, async () => (await canConnect(x.address, 'monitoring', mon, { from: '127.0.0.2' })) === 'ok', 20_000, 200);
      // The system users still come only from the units.
      expect(await canConnect(x.address, 'operator', root, { from: '127.0.0.2' })).toMatch(/rejects/);
      expect(await canConnect(x.address, 'replication', repl, { from: '127.0.0.2', replication: true })).toMatch(/rejects/);
    }
  }, 120_000);

  it('set-password for every system user; then no ConfigMap holds any password', async () => {
    const before = await passwordsSecret();
    for (const p of Object.values(before)) seen.add(p);
    const given = `Given-${randomBytes(9).toString('base64url')}`;
    seen.add(given);
    const params = join(m.dir, 'set-password.json');
    for (const username of ['rewind', 'monitoring', 'replication', 'operator']) {
      // The operator's from a params file (off the command line); the others generated.
      writeFileSync(params, JSON.stringify(username === 'operator' ? { username, password: given } : { username }), { mode: 0o600 });
      const args = ['run', 'leader', 'set-password', '--params', params, '--wait'];
      const r = await m.cli(args);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    }
    const after = await passwordsSecret();
    for (const p of Object.values(after)) seen.add(p);
    // Nothing left pending (api-token: the unit API's, failsafe; ca.*: the deployment's CA, backup servers).
    expect(Object.keys(after).sort()).toEqual(['api-token', 'ca.crt', 'ca.key', 'monitoring', 'operator', 'replication', 'rewind']);
    expect(after['operator']).toBe(given);
    for (const user of ['rewind', 'monitoring', 'replication']) expect(after[user]).not.toBe(before[user]);
    for (const user of ['operator', 'replication', 'rewind', 'monitoring']) expect(await getPassword(user)).toBe(after[user]);
    const u = await settled();
    const primary = Object.values(u).find((x) => x.role === 'primary')!.address;
    await waitFor('both replicas streaming with the new replication password', async () => (await query(primary, 'operator', given, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'"))[0]!['n'] === 2, 30_000);
    expect(await canConnect(primary, 'operator', root)).toMatch(/password authentication failed/);

    const cms = await allConfigMaps();
    for (const p of seen) expect(cms.includes(p), 'a password in a ConfigMap').toBe(false);
  }, 120_000);

  it('a set-password interrupted after ALTER ROLE (the operator locked out) is finished by the leader', async () => {
    await settled();
    const current = await passwordsSecret();
    const primary = Object.values(await units()).find((x) => x.role === 'primary')!.address;
    const next = `Pending-${randomBytes(9).toString('base64url')}`;
    seen.add(next);
    // What a leader that died between phase 2 and 3 leaves: the pending value, and the role already changed.
    const s = await core.readNamespacedSecret({ name: 'postgresql-passwords', namespace: ns });
    s.data = { ...s.data, 'operator-pending': Buffer.from(next).toString('base64') };
    await core.replaceNamespacedSecret({ name: 'postgresql-passwords', namespace: ns, body: s });
    await query(primary, 'operator', current['operator']!, `ALTER ROLE operator WITH PASSWORD '${scramVerifier(next)}'`);
    expect(await canConnect(primary, 'operator', current['operator']!)).toMatch(/password authentication failed/);
    // The leader's next event (update-status at the latest) commits it: the Secret and the role agree again.
    const done = await waitFor('the pending operator password committed', async () => {
      const p = await passwordsSecret();
      return !('operator-pending' in p) && p['operator'] === next && p;
    }, 60_000, 250);
    expect(done['operator']).toBe(next);
    expect(await canConnect(primary, 'operator', next)).toBe('ok');
    await settled();

    // And one interrupted before ALTER ROLE is rolled back: the role keeps its password.
    const stale = `Stale-${randomBytes(9).toString('base64url')}`;
    seen.add(stale);
    const s2 = await core.readNamespacedSecret({ name: 'postgresql-passwords', namespace: ns });
    s2.data = { ...s2.data, 'monitoring-pending': Buffer.from(stale).toString('base64') };
    await core.replaceNamespacedSecret({ name: 'postgresql-passwords', namespace: ns, body: s2 });
    const rolledBack = await waitFor('the pending monitoring password dropped', async () => {
      const p = await passwordsSecret();
      return !('monitoring-pending' in p) && p;
    }, 60_000, 250);
    expect(rolledBack['monitoring']).toBe(current['monitoring']);
    expect(await canConnect(primary, 'monitoring', current['monitoring']!)).toBe('ok');
  }, 150_000);

  it('an old primary rejoins with pg_rewind as the rewind role (no re-clone)', async () => {
    const u = await settled();
    const old = Object.entries(u).find(([, x]) => x.role === 'primary')![0];
    const pod = old.replace('/', '-');
    const pw = (await passwordsSecret())['operator']!;
    await query(u[old]!.address, 'operator', pw, 'CREATE TABLE IF NOT EXISTS before_kill (x int); INSERT INTO before_kill VALUES (1)');
    expect((await m.cli(['kill', old])).code).toBe(0);
    await waitFor('a new primary', async () => Object.entries(await units()).find(([n, x]) => n !== old && x.role === 'primary'), 30_000, 250);
    await waitFor('the old primary back as a replica', async () => (await units())[old]?.role === 'replica' && (await units())[old]?.workload.status === 'active', 90_000, 500);
    const log = readFileSync(join(m.dir, 'logs', `${pod}.agent.log`), 'utf8');
    expect(log).toContain('"decision":"rejoin"');
    expect(log).not.toContain('pg_rewind failed');
    const storage = join(m.dir, 'units', pod, 'storage', 'pgdata');
    if (existsSync(storage)) expect(readdirSync(storage).filter((f) => f.startsWith('pgdata.old-'))).toEqual([]);
  }, 180_000);

  it('no password anywhere: ConfigMaps (bags, actions, config), logs, processes', async () => {
    const cms = await allConfigMaps();
    const logs = readdirSync(join(m.dir, 'logs')).map((f) => readFileSync(join(m.dir, 'logs', f), 'utf8')).join('\n');
    for (const p of seen) {
      expect(cms.includes(p), 'a password in a ConfigMap').toBe(false);
      expect(logs.includes(p), 'a password in a log').toBe(false);
    }
    expect(seen.size).toBeGreaterThanOrEqual(10);
  });
});
