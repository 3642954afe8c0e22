import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provision, retire, rotatePassword, type Provisioned } from '../../agent/charm/postgresql/client-db.js';
import { freePort, waitFor } from '../helpers/procs.js';

const PG_BIN = '/usr/lib/postgresql/15/bin';

/**
 * The database endpoint's SQL against a real PostgreSQL 15 (initdb's scram-sha-256 pg_hba, so
 * every role logs in with its password), run as the postgres OS user when the test runs as root.
 */
describe('relation roles and databases on a real PostgreSQL', () => {
  let dir: string | undefined;
  let server: ChildProcess | undefined;
  let serverLog = '';
  let port: number;
  const operatorPassword = randomBytes(12).toString('hex');
  const clients: pg.Client[] = [];
  let op: pg.Client;

  const client = async (user: string, password: string, database: string): Promise<pg.Client> => {
    const c = new pg.Client({ host: '127.0.0.1', port, user, password, database, connectionTimeoutMillis: 5000 });
    c.on('error', () => undefined); // a terminated session; its queries still reject
    clients.push(c);
    await c.connect();
    return c;
  };
  const asOperator = (database: string) => client('operator', operatorPassword, database);
  /** One statement as `user`; its rows, or the error's code and message. */
  const tryAs = async (user: string, password: string, database: string, sql: string): Promise<{ rows?: Record<string, unknown>[]; code?: string; message?: string }> => {
    let c: pg.Client | undefined;
    try {
      c = await client(user, password, database);
      const r = (await c.query(sql)) as pg.QueryResult | pg.QueryResult[]; // several statements: one result each
      return { rows: (Array.isArray(r) ? r[r.length - 1]! : r).rows };
    } catch (e) {
      return { code: (e as { code?: string }).code, message: (e as Error).message };
    } finally {
      await c?.end().catch(() => undefined);
    }
  };
  const inDb = async (database: string, sql: string, params: unknown[] = []) => {
    const c = await asOperator(database);
    try {
      return (await c.query(sql, params)).rows as Record<string, unknown>[];
    } finally {
      await c.end();
    }
  };
  const pw = (n: number) => `pw-${n}-${randomBytes(6).toString('hex')}`;
  const passwords = new Map<number, string>();
  const prov = (relationId: number, database: string, extraRoles: string[] = []): Promise<Provisioned> => {
    if (!passwords.has(relationId)) passwords.set(relationId, pw(relationId));
    return provision(op, { relationId, database, extraRoles, password: passwords.get(relationId)!, connect: asOperator });
  };
  const catalogRows = async () =>
    (await op.query("SELECT 'role ' || rolname AS what, xmin::text FROM pg_authid WHERE rolname LIKE 'relation_%' UNION ALL SELECT 'db ' || datname, xmin::text FROM pg_database UNION ALL SELECT 'member ' || roleid || ' ' || member, xmin::text FROM pg_auth_members ORDER BY 1")).rows;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pgcharm-client-db-'));
    const root = process.getuid?.() === 0;
    const ids = root ? { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) } : {};
    if (root) chownSync(dir, ids.uid!, ids.gid!);
    const pwfile = join(dir, 'pwfile');
    writeFileSync(pwfile, operatorPassword + '\n', { mode: 0o600 });
    if (root) chownSync(pwfile, ids.uid!, ids.gid!);
    const data = join(dir, 'data');
    execFileSync(join(PG_BIN, 'initdb'), ['-D', data, '-U', 'operator', '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C', '--no-sync'], { ...ids, cwd: dir, stdio: 'ignore' });
    rmSync(pwfile);
    port = await freePort();
    server = spawn(
      join(PG_BIN, 'postgres'),
      ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`, '-c', 'fsync=off', '-c', 'log_statement=all'],
      { ...ids, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    server.stderr!.on('data', (b: Buffer) => (serverLog += b.toString()));
    op = await waitFor('PostgreSQL accepting connections', async () => {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'operator', password: operatorPassword, database: 'postgres', connectionTimeoutMillis: 1000 });
      c.on('error', () => undefined);
      try {
        await c.connect();
      } catch (e) {
        await c.end().catch(() => undefined);
        throw e;
      }
      clients.push(c);
      return c;
    }, 30_000, 100);
    await op.query('SET synchronous_commit = local'); // as the charm does on its connections
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    if (server?.pid && server.exitCode === null) {
      server.kill('SIGINT'); // fast shutdown
      for (let i = 0; i < 100 && server.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
      if (server.exitCode === null) server.kill('SIGKILL');
    }
    if (dir && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  });

  it('creates the role and its database; the role logs in and makes a table', async () => {
    const r = await prov(1, 'app1');
    expect(r).toMatchObject({ username: 'relation_1', created: true });
    expect(r.reclaimedFrom).toBeUndefined();
    expect(r.changes).toContain('created role relation_1');
    const role = (await op.query("SELECT rolcanlogin, rolsuper, rolreplication, rolbypassrls, rolcreatedb, rolcreaterole, rolconnlimit, rolpassword LIKE 'SCRAM-SHA-256$%' AS scram FROM pg_authid WHERE rolname = 'relation_1'")).rows[0];
    expect(role).toEqual({ rolcanlogin: true, rolsuper: false, rolreplication: false, rolbypassrls: false, rolcreatedb: false, rolcreaterole: false, rolconnlimit: -1, scram: true });
    expect((await op.query("SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'app1'")).rows[0]).toEqual({ owner: 'relation_1' });
    const made = await tryAs('relation_1', passwords.get(1)!, 'app1', "CREATE TABLE t (x text); INSERT INTO t VALUES ('kept'); SELECT count(*)::int AS n FROM t");
    expect(made).toEqual({ rows: [{ n: 1 }] });
    // No plain password in the server's log (every statement is logged).
    expect(serverLog).toContain('CREATE ROLE "relation_1"');
    expect(serverLog).not.toContain(passwords.get(1)!);
  });

  it("another relation's role can neither connect to that database nor use its table", async () => {
    expect(await prov(2, 'app2')).toMatchObject({ username: 'relation_2', created: true });
    const tried = await tryAs('relation_2', passwords.get(2)!, 'app1', 'SELECT * FROM t');
    expect(tried.code).toBe('42501');
    expect(tried.message).toMatch(/permission denied for database "app1"/);
    const priv = await inDb('app1', "SELECT has_database_privilege('relation_2', 'app1', 'CONNECT') AS connect, has_database_privilege('relation_2', 'app1', 'TEMP') AS temp, has_table_privilege('relation_2', 'public.t', 'SELECT') AS sel, has_schema_privilege('relation_2', 'public', 'CREATE') AS create");
    expect(priv).toEqual([{ connect: false, temp: false, sel: false, create: false }]);
    // Its own database works.
    expect(await tryAs('relation_2', passwords.get(2)!, 'app2', "CREATE TABLE u (y int); INSERT INTO u VALUES (2); SELECT y FROM u")).toEqual({ rows: [{ y: 2 }] });
  });

  it('changes nothing when run again (no catalog row rewritten)', async () => {
    const before = await catalogRows();
    const again = await prov(1, 'app1');
    expect(again).toEqual({ username: 'relation_1', created: false, changes: [] });
    expect(await prov(2, 'app2')).toEqual({ username: 'relation_2', created: false, changes: [] });
    expect(await catalogRows()).toEqual(before);
  });

  it('rotates the password: new logins need the new one, a running session keeps going', async () => {
    const session = await client('relation_1', passwords.get(1)!, 'app1');
    const next = pw(1);
    expect(await rotatePassword(op, 1, next)).toBe(true);
    expect(await rotatePassword(op, 1, next)).toBe(false);
    expect((await session.query('SELECT count(*)::int AS n FROM t')).rows).toEqual([{ n: 1 }]);
    expect((await tryAs('relation_1', passwords.get(1)!, 'app1', 'SELECT 1')).code).toBe('28P01');
    passwords.set(1, next);
    expect(await tryAs('relation_1', next, 'app1', 'SELECT 1 AS one')).toEqual({ rows: [{ one: 1 }] });
    await session.end();
    expect(serverLog).not.toContain(next);
  });

  it('retires: login refused, live sessions ended, the data stays', async () => {
    const session = await client('relation_1', passwords.get(1)!, 'app1');
    expect((await session.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect(await retire(op, 1)).toBe(1);
    await expect(session.query('SELECT 1')).rejects.toThrow();
    const refused = await tryAs('relation_1', passwords.get(1)!, 'app1', 'SELECT 1');
    expect(refused.message).toMatch(/not permitted to log in/);
    expect(await inDb('app1', 'SELECT x FROM t')).toEqual([{ x: 'kept' }]);
    expect((await op.query("SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'relation_1'")).rows).toEqual([{ n: 1 }]);
    // Again, and for a relation that never had a role: nothing to do.
    expect(await retire(op, 1)).toBe(0);
    expect(await retire(op, 999)).toBe(0);
  });

  it('a new relation asking for the same database gets it back, with the old tables', async () => {
    const r = await prov(3, 'app1');
    expect(r).toMatchObject({ username: 'relation_3', created: false, reclaimedFrom: 'relation_1' });
    expect(await tryAs('relation_3', passwords.get(3)!, 'app1', "INSERT INTO t VALUES ('new'); SELECT x FROM t ORDER BY x")).toEqual({ rows: [{ x: 'kept' }, { x: 'new' }] });
    expect(await inDb('app1', "SELECT pg_get_userbyid(d.datdba) AS db, (SELECT tableowner FROM pg_tables WHERE tablename = 't') AS t FROM pg_database d WHERE datname = 'app1'")).toEqual([{ db: 'relation_3', t: 'relation_3' }]);
    // Still closed to the others.
    expect((await tryAs('relation_2', passwords.get(2)!, 'app1', 'SELECT 1')).code).toBe('42501');
    const again = await prov(3, 'app1');
    expect(again).toEqual({ username: 'relation_3', created: false, changes: [] });
  });

  it('a second live relation asking for the same database shares it (membership), without taking it', async () => {
    const r = await prov(5, 'app2');
    expect(r).toMatchObject({ username: 'relation_5', created: false, sharedWith: 'relation_2' });
    expect(await tryAs('relation_5', passwords.get(5)!, 'app2', 'SELECT y FROM u')).toEqual({ rows: [{ y: 2 }] });
    expect((await op.query("SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'app2'")).rows).toEqual([{ owner: 'relation_2' }]);
    expect((await prov(5, 'app2')).changes).toEqual([]);
  });

  it('grants the allowed extra roles, and takes them back when no longer asked for', async () => {
    const r = await prov(4, 'app4', ['CREATEDB', 'pg_monitor']);
    expect(r.created).toBe(true);
    expect(await tryAs('relation_4', passwords.get(4)!, 'app4', "SELECT pg_has_role('pg_monitor', 'MEMBER') AS monitor")).toEqual({ rows: [{ monitor: true }] });
    const c = await client('relation_4', passwords.get(4)!, 'app4');
    await c.query('CREATE DATABASE app4_extra');
    await c.end();
    expect((await op.query("SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'app4_extra'")).rows).toEqual([{ owner: 'relation_4' }]);
    const less = await prov(4, 'app4');
    expect(less.changes).toEqual(['set the attributes of relation_4', 'revoked pg_monitor from relation_4']);
    expect((await tryAs('relation_4', passwords.get(4)!, 'app4', 'CREATE DATABASE app4_more')).code).toBe('42501');
  });

  it('refuses a database it did not create, naming it and its owner', async () => {
    await op.query('CREATE DATABASE handmade');
    await expect(prov(6, 'handmade')).rejects.toThrow('database "handmade" already exists and is owned by "operator"');
    expect((await op.query("SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'handmade'")).rows).toEqual([{ owner: 'operator' }]);
    // Refused before anything changed: no role either.
    expect((await op.query("SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'relation_6'")).rows).toEqual([{ n: 0 }]);
  });

  it('refuses a request checkRequest would refuse', async () => {
    await expect(prov(7, 'postgres')).rejects.toThrow('database "postgres": reserved for the system');
    await expect(prov(7, 'ok', ['SUPERUSER'])).rejects.toThrow('extra-user-roles: "SUPERUSER" is not allowed');
  });
});
