import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { errorKind, parseEndpoints, parseLimit, parseTodo, rebuildAfterError, shouldRetry } from '../../examples/todo/server.js';
import { freePort, waitFor } from '../helpers/procs.js';

const PG_BIN = '/usr/lib/postgresql/15/bin';
const SERVER = fileURLToPath(new URL('../../dist/examples/todo/server.js', import.meta.url));

describe('todo server: pure parts', () => {
  it('parses endpoint lists', () => {
    expect(parseEndpoints('10.0.0.1:5432')).toEqual([{ host: '10.0.0.1', port: 5432 }]);
    expect(parseEndpoints('a:1, b:2\n')).toEqual([{ host: 'a', port: 1 }, { host: 'b', port: 2 }]);
    expect(parseEndpoints('[::1]:6000,db')).toEqual([{ host: '::1', port: 6000 }, { host: 'db', port: 5432 }]);
    expect(() => parseEndpoints('a:99999')).toThrow(/bad endpoint/);
  });

  it.each([
    // code, phase, statement, retried
    ['ECONNREFUSED', 'connect', 'write', true],
    ['57P01', 'connect', 'write', true],
    ['57P01', 'statement', 'write', false],
    ['57P01', 'statement', 'read', true],
    ['terminated', 'statement', 'write', false],
    ['25006', 'statement', 'write', true],
    ['28P01', 'connect', 'write', true],
    ['pool-timeout', 'connect', 'read', false],
    ['23505', 'statement', 'write', false],
  ] as const)('%s during %s of a %s: retried %s', (code, phase, statement, retried) => {
    expect(shouldRetry(errorKind(code), phase, statement)).toBe(retried);
  });

  it.each([
    // kind, phase, same endpoint, rebuilt
    ['connection', 'connect', true, false], // refused by the same server: the same pool again
    ['connection', 'connect', false, true],
    ['connection', 'statement', true, true], // its other connections are likely dead too
    ['read-only', 'statement', true, true],
    ['auth', 'connect', true, false],
  ] as const)('after a %s error during %s (same endpoint %s): pool rebuilt %s', (kind, phase, same, rebuilt) => {
    expect(rebuildAfterError(kind, phase, same)).toBe(rebuilt);
  });

  it('validates bodies and limits', () => {
    expect(parseTodo('{"title":"x"}')).toEqual({ title: 'x' });
    expect(parseTodo('{')).toMatchObject({ error: expect.stringMatching(/JSON/) });
    expect(parseTodo('{}')).toMatchObject({ error: expect.stringMatching(/"title"/) });
    expect(parseTodo('{"title":3}')).toMatchObject({ error: expect.stringMatching(/"title"/) });
    expect(parseLimit(null)).toBe(50);
    expect(parseLimit('7')).toBe(7);
    expect(parseLimit('0')).toMatchObject({ error: expect.stringMatching(/"limit"/) });
  });
});

/** A PostgreSQL 15 in a temp dir on a loopback port: trust on its socket, scram on TCP. */
class Postgres {
  readonly dir = mkdtempSync(join(tmpdir(), 'pgcharm-todo-pg-'));
  private proc: ChildProcess | undefined;
  private readonly as: { uid?: number; gid?: number } = {};
  constructor(readonly port: number) {
    if (process.getuid?.() === 0) {
      this.as = {
        uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })),
        gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })),
      };
      chownSync(this.dir, this.as.uid!, this.as.gid!);
    }
  }

  init(): void {
    execFileSync(join(PG_BIN, 'initdb'), ['-D', join(this.dir, 'data'), '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync'], { ...this.as, cwd: this.dir, stdio: 'ignore' });
  }

  async start(): Promise<void> {
    const args = ['-D', join(this.dir, 'data'), '-p', String(this.port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${this.dir}`, '-c', 'fsync=off'];
    this.proc = spawn(join(PG_BIN, 'postgres'), args, { ...this.as, cwd: this.dir, stdio: 'ignore' });
    await waitFor('postgres accepting connections', async () => {
      await this.sql('SELECT 1');
      return true;
    }, 30_000, 100);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGINT'); // fast shutdown
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGKILL');
      await exited;
    }
  }

  async sql(text: string): Promise<Record<string, unknown>[]> {
    const c = new pg.Client({ host: this.dir, port: this.port, user: 'postgres', database: 'postgres' });
    await c.connect();
    try {
      return (await c.query(text)).rows as Record<string, unknown>[];
    } finally {
      await c.end();
    }
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

describe.skipIf(!existsSync(join(PG_BIN, 'postgres')))('todo server against PostgreSQL 15', () => {
  const credsDir = mkdtempSync(join(tmpdir(), 'pgcharm-todo-creds-'));
  const files = { user: join(credsDir, 'username'), password: join(credsDir, 'password'), endpoints: join(credsDir, 'endpoints') };
  const passwords = [randomBytes(12).toString('hex'), randomBytes(12).toString('hex')];
  let db: Postgres | undefined;
  let db2: Postgres | undefined;
  let server: ChildProcess | undefined;
  let base = '';
  let logs = '';

  /** Written the way a charm writes them: a 0600 temp file renamed into place. */
  const put = (path: string, text: string) => {
    writeFileSync(`${path}.tmp`, text, { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  };
  const call = async (method: string, path: string, body?: string) => {
    const r = await fetch(base + path, { method, body, headers: body === undefined ? {} : { 'content-type': 'application/json' } });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  const post = (title: string) => call('POST', '/todos', JSON.stringify({ title }));

  beforeAll(async () => {
    db = new Postgres(await freePort());
    db.init();
    await db.start();
    await db.sql(`CREATE ROLE todo LOGIN PASSWORD '${passwords[0]}'`);
    await db.sql('CREATE DATABASE todo OWNER todo');

    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = spawn(process.execPath, [SERVER], {
      env: { PATH: process.env.PATH, DB_USERNAME_FILE: files.user, DB_PASSWORD_FILE: files.password, DB_ENDPOINTS_FILE: files.endpoints, DB_NAME: 'todo', PORT: String(port), DB_SSLMODE: 'disable' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stdout!.on('data', (d: Buffer) => (logs += d.toString()));
    server.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
    await waitFor('the todo server listening', () => call('GET', '/health').then(() => true), 15_000, 50);
  });

  afterAll(async () => {
    try {
      if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    } finally {
      try {
        await Promise.allSettled([db?.stop(), db2?.stop()]);
      } finally {
        db?.remove();
        db2?.remove();
        rmSync(credsDir, { recursive: true, force: true });
      }
    }
  });

  it('answers 503 until the credential files exist', async () => {
    const h = await call('GET', '/health');
    expect(h.status).toBe(503);
    expect(h.body).toMatchObject({ ready: false, reason: expect.stringMatching(/DB_USERNAME_FILE/) });
    expect((await post('early')).status).toBe(503);
    expect((await call('GET', '/todos')).status).toBe(503);

    put(files.user, 'todo\n');
    put(files.password, `${passwords[0]}\n`);
    expect((await call('GET', '/health')).body.reason).toMatch(/DB_ENDPOINTS_FILE/);
    // A dead endpoint first: the server uses the first that answers as a primary.
    put(files.endpoints, `127.0.0.1:${await freePort()},127.0.0.1:${db!.port}\n`);
    expect(await call('GET', '/health')).toEqual({ status: 200, body: { ready: true } });
  });

  it('stores, lists and finds todos, and rejects bad input', async () => {
    const ids: number[] = [];
    for (const t of ['one', 'two', 'three']) {
      const r = await post(t);
      expect(r.status).toBe(201);
      ids.push(r.body.id as number);
    }
    const list = await call('GET', '/todos?limit=2');
    expect(list.status).toBe(200);
    expect(list.body.count).toBe(3);
    expect((list.body.items as { title: string }[]).map((i) => i.title)).toEqual(['three', 'two']);
    expect(await call('GET', `/todos/${ids[0]}`)).toMatchObject({ status: 200, body: { id: ids[0], title: 'one' } });
    expect((await call('GET', '/todos/987654')).status).toBe(404);
    expect((await call('GET', '/todos/abc')).status).toBe(404);

    const badJson = await call('POST', '/todos', '{"title":');
    expect(badJson.status).toBe(400);
    expect(badJson.body.error).toMatch(/JSON/);
    for (const body of ['{}', '{"title":7}', '{"title":"  "}', '[]']) {
      const r = await call('POST', '/todos', body);
      expect(r.status).toBe(400);
      expect(r.body.error).toMatch(/"title"/);
    }
    expect((await call('GET', '/todos?limit=0')).status).toBe(400);
    expect((await call('GET', '/nope')).status).toBe(404);
    expect((await call('DELETE', '/todos')).status).toBe(404);
  });

  it('survives a password rotation under load with at most one failure', async () => {
    const statuses: number[] = [];
    let running = true;
    const worker = async (w: number) => {
      for (let i = 0; running; i++) statuses.push((await post(`load ${w}.${i}`)).status);
    };
    const workers = [0, 1, 2, 3].map(worker);
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
    try {
      await pause(300);
      await db!.sql(`ALTER ROLE todo PASSWORD '${passwords[1]}'`);
      await pause(300); // pooled connections keep working on the old password
      put(files.password, `${passwords[1]}\n`);
      await pause(300);
    } finally {
      running = false;
      await Promise.all(workers);
    }
    expect(statuses.length).toBeGreaterThan(20);
    expect(statuses.filter((s) => s !== 201).length).toBeLessThanOrEqual(1);

    // New connections use the new password: drop every pooled one, then ask again.
    await db!.sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'todo'`);
    const after = [await call('GET', '/todos?limit=1'), await post('after rotation'), await call('GET', '/health')];
    expect(after.filter((r) => r.status >= 500).length).toBeLessThanOrEqual(1);
    expect((await post('settled')).status).toBe(201);
    const count = (await call('GET', '/todos?limit=1')).body.count as number;
    const inserted = statuses.filter((s) => s === 201).length;
    expect(count).toBeGreaterThanOrEqual(3 + inserted + 1);
  });

  it('answers 503 while the database is down and recovers without a restart', async () => {
    await db!.stop();
    const t0 = Date.now();
    expect((await post('while down')).status).toBe(503);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect((await call('GET', '/health')).body.ready).toBe(false);
    await db!.start();
    await waitFor('health back to 200', async () => (await call('GET', '/health')).status === 200, 20_000, 100);
    expect((await post('back')).status).toBe(201);
  });

  it('moves to the endpoint that answers as primary when the old one is fenced (25006)', async () => {
    db2 = new Postgres(await freePort());
    db2.init();
    await db2.start();
    // Stands in for the promoted standby: same role, database and table (no replication here).
    await db2.sql(`CREATE ROLE todo LOGIN PASSWORD '${passwords[1]}'`);
    await db2.sql('CREATE DATABASE todo OWNER todo');
    const c = new pg.Client({ host: db2.dir, port: db2.port, user: 'todo', database: 'todo' });
    await c.connect();
    await c.query('CREATE TABLE todos (id bigserial PRIMARY KEY, title text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())');
    await c.end();

    put(files.endpoints, `127.0.0.1:${db!.port},127.0.0.1:${db2.port}\n`);
    expect((await post('still on the first')).status).toBe(201);
    await db!.sql('ALTER SYSTEM SET default_transaction_read_only = on');
    await db!.sql('SELECT pg_reload_conf()');
    await waitFor('the first server read-only', async () => (await db!.sql('SHOW default_transaction_read_only'))[0]!.default_transaction_read_only === 'on');

    // The pooled connections now answer 25006: the write is retried once on the new primary.
    const r = await post('on the new primary');
    expect(r.status).toBe(201);
    const onNew = new pg.Client({ host: db2.dir, port: db2.port, user: 'todo', database: 'todo' });
    await onNew.connect();
    try {
      expect((await onNew.query(`SELECT title FROM todos WHERE id = $1`, [r.body.id])).rows).toEqual([{ title: 'on the new primary' }]);
    } finally {
      await onNew.end();
    }
    expect(logs).toMatch(new RegExp(`"reason":"after 25006","endpoint":"127.0.0.1:${db2.port}"`));
  });

  it('logs JSON lines, one per pool rebuild with its reason, and never the password', async () => {
    const lines = logs.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const pools = lines.filter((l) => l.msg === 'pool built' || l.msg === 'pool rebuilt');
    expect(pools[0]).toMatchObject({ reason: 'credentials present', endpoint: `127.0.0.1:${db!.port}` });
    expect(pools.some((l) => String(l.reason).includes('credentials changed'))).toBe(true);
    for (const p of passwords) expect(logs).not.toContain(p);
  });

  it('stops on SIGTERM with status 0', async () => {
    const exited = new Promise<number | null>((r) => server!.once('exit', (code) => r(code)));
    server!.kill('SIGTERM');
    expect(await exited).toBe(0);
    for (const p of passwords) expect(logs).not.toContain(p);
  });
});
