import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { checksRoutes } from '../../sidecar/api/checks.js';
import { Router } from '../../sidecar/api/router.js';
import { createApiServer, listenUnix } from '../../sidecar/api/server.js';
import { CheckManager, ChecksNotFoundError } from '../../sidecar/checks/manager.js';
import type { ServiceContext } from '../../sidecar/plan/types.js';
import { shlexSplit } from '../../sidecar/plan/shlex.js';
import { isOwnedChild } from '../../sidecar/osutil/children.js';
import { lookupUser } from '../../sidecar/osutil/users.js';
import type { Check } from '../../sidecar/plan/types.js';

const log = pino({ level: 'silent' });
const HOUR = 3_600_000;

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmpdir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'checks-test-'));
  cleanups.push(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function manager(contexts: Record<string, ServiceContext> = {}): CheckManager {
  const m = new CheckManager({
    log,
    serviceContext: (name) => {
      const c = contexts[name];
      if (!c) throw new Error(`no service ${name}`);
      return c;
    },
  });
  cleanups.push(() => m.stop());
  return m;
}

/** A check as the plan combiner hands it over: defaults filled in. */
function check(name: string, c: Partial<Check>): Check {
  return { name, override: 'replace', period: HOUR, timeout: 3000, threshold: 3, ...c };
}
const exec = (command: string, more: Partial<NonNullable<Check['exec']>> = {}) => ({
  exec: { command, environment: {}, ...more },
});

async function waitFor<T>(what: string, fn: () => T | undefined | false, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const info = (m: CheckManager, name: string) => m.list({ names: [name] })[0]!;

function events(m: CheckManager): { failure: string[]; recovered: string[] } {
  const ev = { failure: [] as string[], recovered: [] as string[] };
  m.on('failure', (n) => ev.failure.push(n));
  m.on('recovered', (n) => ev.recovered.push(n));
  return ev;
}

/** Alive and not a zombie (a killed orphan may linger as a zombie until init reaps it). */
function processAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function listen(server: http.Server | net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as net.AddressInfo).port;
}

describe('shlexSplit', () => {
  it.each([
    ['true', ['true']],
    ["  sh -c 'exit 1'  ", ['sh', '-c', 'exit 1']],
    ['echo "a b" c\\ d', ['echo', 'a b', 'c d']],
    ['echo "say \\"hi\\"" \'it\'\'s\'', ['echo', 'say "hi"', 'its']],
    ["echo '' x", ['echo', '', 'x']],
    ['a#b # comment\nc', ['a#b', 'c']],
    ['', []],
  ])('splits %j', (input, want) => {
    expect(shlexSplit(input)).toEqual(want);
  });

  it('rejects unbalanced quotes and a trailing escape', () => {
    expect(() => shlexSplit("sh -c 'exit 1")).toThrow('EOF found when expecting closing quote');
    expect(() => shlexSplit('echo \\')).toThrow('EOF found after escape character');
  });
});

describe('http check', () => {
  it('goes down after threshold non-2xx answers and recovers on 2xx', async () => {
    let status = 200;
    const seen: (string | string[] | undefined)[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.headers['x-probe']);
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status === 200 ? 'fine' : 'database is on fire\nline 2\n');
    });
    const port = await listen(server);
    const m = manager();
    const ev = events(m);
    m.setPlan({
      web: check('web', {
        level: 'alive',
        period: 100,
        threshold: 2,
        http: { url: `http://127.0.0.1:${port}/health`, headers: { 'X-Probe': 'yes' } },
      }),
    });
    expect(info(m, 'web')).toEqual({
      name: 'web',
      level: 'alive',
      startup: 'enabled',
      status: 'up',
      successes: 0,
      failures: 0,
      threshold: 2,
    });
    await waitFor('a success', () => info(m, 'web').successes >= 1);
    expect(seen[0]).toBe('yes');

    status = 500;
    await waitFor('failure event', () => ev.failure.length === 1);
    expect(ev.failure).toEqual(['web']);
    const down = info(m, 'web');
    expect(down.status).toBe('down');
    expect(down.failures).toBeGreaterThanOrEqual(2);
    expect(m.lastError('web')).toBe('non-2xx status code 500; database is on fire\nline 2');
    expect(m.health()).toBe(false);

    status = 200;
    await waitFor('recovered event', () => ev.recovered.length === 1);
    expect(ev.recovered).toEqual(['web']);
    expect(info(m, 'web')).toMatchObject({ status: 'up', failures: 0 });
    expect(m.lastError('web')).toBeUndefined();
    expect(m.health()).toBe(true);
    expect(ev.failure).toEqual(['web']);
  });

  it('counts a connection failure and a slow answer (timeout) as failures', async () => {
    const server = http.createServer(() => {
      /* never answers */
    });
    const port = await listen(server);
    const m = manager();
    m.setPlan({
      slow: check('slow', { timeout: 150, http: { url: `http://127.0.0.1:${port}/`, headers: {} } }),
      refused: check('refused', { http: { url: 'http://127.0.0.1:1/', headers: {} } }),
    });
    expect((await m.runNow('slow')).error).toBe('check timed out after 150ms');
    const r = await m.runNow('refused');
    expect(r.error).toMatch(/^Get "http:\/\/127\.0\.0\.1:1\/": .*ECONNREFUSED/);
    expect(r.info).toMatchObject({ status: 'up', failures: 1 });
  });
});

describe('tcp check', () => {
  it('is up against a listening port and goes down against a closed one', async () => {
    const server = net.createServer((s) => s.destroy());
    const open = await listen(server);
    const closedServer = net.createServer();
    await new Promise<void>((r) => closedServer.listen(0, '127.0.0.1', r));
    const closed = (closedServer.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closedServer.close(() => r()));

    const m = manager();
    const ev = events(m);
    m.setPlan({
      open: check('open', { period: 100, threshold: 1, tcp: { host: '127.0.0.1', port: open } }),
      closed: check('closed', { period: 100, threshold: 1, tcp: { host: '127.0.0.1', port: closed } }),
    });
    await waitFor('closed goes down', () => ev.failure.includes('closed'));
    await waitFor('open succeeds', () => info(m, 'open').successes >= 2);
    expect(info(m, 'open')).toMatchObject({ status: 'up', failures: 0 });
    expect(info(m, 'closed').status).toBe('down');
    expect(m.lastError('closed')).toMatch(new RegExp(`^dial tcp 127\\.0\\.0\\.1:${closed}: .*ECONNREFUSED`));
    expect(ev.failure).toEqual(['closed']);
  });

  it('defaults the host to localhost', async () => {
    const port = await listen(net.createServer((s) => s.destroy()));
    const m = manager();
    m.setPlan({ local: check('local', { tcp: { port } }) });
    expect(await m.runNow('local')).toMatchObject({ error: '', info: { status: 'up', successes: 1 } });
  });
});

describe('exec check', () => {
  it('succeeds on exit 0 and fails with the exit status and the last output lines', async () => {
    const m = manager();
    m.setPlan({
      ok: check('ok', exec('true')),
      bad: check('bad', exec(`sh -c 'exit 1'`)),
      noisy: check('noisy', exec(`sh -c 'for i in 1 2 3 4 5 6 7; do echo line$i; done; echo oops >&2; exit 3'`)),
      missing: check('missing', exec('/nonexistent/binary')),
      unparsable: check('unparsable', exec(`sh -c 'exit 1`)),
    });
    expect(await m.runNow('ok')).toMatchObject({ error: '', info: { successes: 1, failures: 0 } });
    expect(await m.runNow('bad')).toMatchObject({ error: 'exit status 1', info: { failures: 1 } });
    expect((await m.runNow('noisy')).error).toBe('exit status 3; line4\nline5\nline6\nline7\noops');
    expect((await m.runNow('missing')).error).toMatch(/ENOENT/);
    expect((await m.runNow('unparsable')).error).toBe('cannot parse command: EOF found when expecting closing quote');
  });

  it('runs as another user, with the service context under the check settings', async () => {
    const pg = lookupUser('postgres');
    expect(pg, 'this test needs a postgres user').toBeDefined();
    const dir = tmpdir();
    fs.chmodSync(dir, 0o755);
    const m = manager({
      db: { environment: { A: 'from-service', B: 'from-service' }, user: 'postgres', workingDir: dir },
    });
    m.setPlan({
      whoami: check('whoami', exec(`sh -c 'echo "$(id -un) $(id -u) $(id -g)"; exit 1'`, { user: 'postgres' })),
      ctx: check(
        'ctx',
        exec(`sh -c 'echo "$A $B $(id -un) $(pwd)"; exit 1'`, { 'service-context': 'db', environment: { B: 'from-check' } }),
      ),
      nobody: check('nobody', exec('true', { user: 'no-such-user-here' })),
    });
    expect((await m.runNow('whoami')).error).toBe(`exit status 1; postgres ${pg!.uid} ${pg!.gid}`);
    expect((await m.runNow('ctx')).error).toBe(`exit status 1; from-service from-check postgres ${dir}`);
    expect((await m.runNow('nobody')).error).toBe('user "no-such-user-here" not found');
  });

  it('kills the whole process group on timeout and tracks the pid only while it runs', async () => {
    const dir = tmpdir();
    const pidFile = path.join(dir, 'pids');
    const m = manager();
    m.setPlan({
      hang: check('hang', { timeout: 300, ...exec(`sh -c 'sleep 30 & echo $$ $! > ${pidFile}; wait'`) }),
    });
    const run = m.runNow('hang');
    const [shPid, sleepPid] = await waitFor('pid file', () => {
      const t = fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8').trim().split(' ').map(Number) : [];
      return t.length === 2 ? t : undefined;
    });
    cleanups.push(() => {
      for (const p of [shPid!, sleepPid!]) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone, as it should be
        }
      }
    });
    expect(isOwnedChild(shPid!)).toBe(true);
    expect((await run).error).toBe('check timed out after 300ms');
    await waitFor('sh killed', () => !processAlive(shPid!));
    await waitFor('grandchild killed', () => !processAlive(sleepPid!));
    await waitFor('pid untracked', () => !isOwnedChild(shPid!));
  });

  it('stop() kills a check command in flight', async () => {
    const dir = tmpdir();
    const pidFile = path.join(dir, 'pid');
    const m = manager();
    m.setPlan({ hang: check('hang', { period: 50, ...exec(`sh -c 'echo $$ > ${pidFile}; exec sleep 30'`) }) });
    const pid = await waitFor('pid file', () => {
      const t = fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8').trim() : '';
      return t ? Number(t) : undefined;
    });
    cleanups.push(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    });
    m.stop();
    await waitFor('command killed', () => !processAlive(pid));
    expect(info(m, 'hang')).toMatchObject({ status: 'inactive', failures: 0 });
  });
});

describe('threshold and events', () => {
  it('fires failure once at the threshold, keeps counting, and recovers on one success', async () => {
    const dir = tmpdir();
    const okFile = path.join(dir, 'ok');
    const m = manager();
    const ev = events(m);
    m.setPlan({ flaky: check('flaky', { threshold: 3, ...exec(`test -e ${okFile}`) }) });

    expect((await m.runNow('flaky')).info).toMatchObject({ status: 'up', failures: 1 });
    expect((await m.runNow('flaky')).info).toMatchObject({ status: 'up', failures: 2 });
    expect(ev.failure).toEqual([]);
    expect(m.health()).toBe(true);
    expect((await m.runNow('flaky')).info).toMatchObject({ status: 'down', failures: 3 });
    expect(ev.failure).toEqual(['flaky']);
    expect((await m.runNow('flaky')).info).toMatchObject({ status: 'down', failures: 4 });
    expect(ev.failure).toEqual(['flaky']);

    fs.writeFileSync(okFile, '');
    expect((await m.runNow('flaky')).info).toMatchObject({ status: 'up', failures: 0, successes: 1 });
    expect(ev.recovered).toEqual(['flaky']);
    expect((await m.runNow('flaky')).info).toMatchObject({ status: 'up', successes: 2 });

    // A success before the threshold resets the count without any event.
    fs.rmSync(okFile);
    await m.runNow('flaky');
    await m.runNow('flaky');
    fs.writeFileSync(okFile, '');
    expect((await m.runNow('flaky')).info).toMatchObject({ status: 'up', failures: 0 });
    expect(ev).toEqual({ failure: ['flaky'], recovered: ['flaky'] });
  });

  it('runs on its own every period', async () => {
    const m = manager();
    const ev = events(m);
    m.setPlan({ periodic: check('periodic', { period: 100, threshold: 2, ...exec('false') }) });
    await waitFor('failure event', () => ev.failure.length > 0);
    await waitFor('more failures', () => info(m, 'periodic').failures >= 4);
    expect(ev.failure).toEqual(['periodic']);
  });

  it('a listener that throws does not break the check', async () => {
    const m = manager();
    m.on('failure', () => {
      throw new Error('listener bug');
    });
    m.setPlan({ f: check('f', { threshold: 1, ...exec('false') }) });
    expect((await m.runNow('f')).info.status).toBe('down');
  });
});

describe('level filtering', () => {
  async function setup() {
    const dir = tmpdir();
    const m = manager();
    const okA = path.join(dir, 'a');
    const okR = path.join(dir, 'r');
    fs.writeFileSync(okA, '');
    fs.writeFileSync(okR, '');
    m.setPlan({
      a: check('a', { level: 'alive', threshold: 1, ...exec(`test -e ${okA}`) }),
      r: check('r', { level: 'ready', threshold: 1, ...exec(`test -e ${okR}`) }),
      n: check('n', { threshold: 1, ...exec('true') }),
      off: check('off', { level: 'alive', startup: 'disabled', threshold: 1, ...exec('false') }),
    });
    return { m, okA, okR };
  }

  it('lists by exact level and by names, sorted by name', async () => {
    const { m } = await setup();
    expect(m.list().map((c) => c.name)).toEqual(['a', 'n', 'off', 'r']);
    expect(m.list({ level: 'alive' }).map((c) => c.name)).toEqual(['a', 'off']);
    expect(m.list({ level: 'ready' }).map((c) => c.name)).toEqual(['r']);
    expect(m.list({ names: ['r', 'n', 'zzz'] }).map((c) => c.name)).toEqual(['n', 'r']);
    expect(m.list({ level: 'ready', names: ['a'] })).toEqual([]);
    expect(info(m, 'off')).toMatchObject({ startup: 'disabled', status: 'inactive' });
    expect(info(m, 'n').level).toBeUndefined();
  });

  it('health: ready implies alive, not the other way; inactive and unknown checks do not count', async () => {
    const { m, okA, okR } = await setup();
    expect([m.health(), m.health({ level: 'alive' }), m.health({ level: 'ready' })]).toEqual([true, true, true]);

    fs.rmSync(okA);
    await m.runNow('a');
    expect(m.health({ level: 'alive' })).toBe(false);
    expect(m.health({ level: 'ready' })).toBe(false);
    expect(m.health()).toBe(false);
    expect(m.health({ names: ['r', 'n'] })).toBe(true);
    expect(m.health({ names: ['nope'] })).toBe(true);

    fs.writeFileSync(okA, '');
    fs.rmSync(okR);
    await m.runNow('a');
    await m.runNow('r');
    expect(m.health({ level: 'alive' })).toBe(true);
    expect(m.health({ level: 'ready' })).toBe(false);

    // A stopped check keeps its failures but no longer counts.
    expect(m.stopChecks(['r'])).toEqual(['r']);
    expect(info(m, 'r')).toMatchObject({ status: 'inactive', failures: 1 });
    expect(m.health({ level: 'ready' })).toBe(true);
  });

  it('no checks means healthy', () => {
    const m = manager();
    m.setPlan({});
    expect(m.health()).toBe(true);
    expect(m.health({ level: 'ready' })).toBe(true);
    expect(m.list()).toEqual([]);
  });
});

describe('setPlan', () => {
  it('keeps unchanged checks, restarts changed ones with fresh counters, adds and removes', async () => {
    const ctx: Record<string, ServiceContext> = { svc: { environment: { X: '1' } } };
    const m = manager(ctx);
    const plan: Record<string, Check> = {
      same: check('same', exec('false')),
      changed: check('changed', exec('false')),
      viaContext: check('viaContext', exec('false', { 'service-context': 'svc' })),
      gone: check('gone', exec('false')),
    };
    m.setPlan(plan);
    for (const n of ['same', 'changed', 'viaContext', 'gone']) await m.runNow(n);
    expect(m.list().map((c) => c.failures)).toEqual([1, 1, 1, 1]);

    // Deep copies compare equal; a changed threshold or a changed service environment does not.
    const next = structuredClone(plan);
    delete next.gone;
    next.changed!.threshold = 5;
    next.added = check('added', exec('true'));
    ctx.svc = { environment: { X: '2' } };
    m.setPlan(next);

    expect(m.list().map((c) => [c.name, c.failures, c.threshold])).toEqual([
      ['added', 0, 3],
      ['changed', 0, 5],
      ['same', 1, 3],
      ['viaContext', 0, 3],
    ]);
    expect(m.list({ names: ['gone'] })).toEqual([]);
    expect(info(m, 'added').status).toBe('up');

    m.setPlan({});
    expect(m.list()).toEqual([]);
  });

  it('a check removed while its probe is in flight does not count that probe', async () => {
    const dir = tmpdir();
    const pidFile = path.join(dir, 'pid');
    const m = manager();
    const ev = events(m);
    m.setPlan({ slow: check('slow', { threshold: 1, ...exec(`sh -c 'echo $$ > ${pidFile}; exec sleep 30'`) }) });
    const run = m.runNow('slow');
    const pid = await waitFor('pid file', () => {
      const t = fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8').trim() : '';
      return t ? Number(t) : undefined;
    });
    m.setPlan({});
    expect((await run).error).toBe('check stopped');
    await waitFor('command killed', () => !processAlive(pid));
    expect(ev.failure).toEqual([]);
  });
});

describe('start, stop and replan', () => {
  it('starts and stops checks by name, replan starts only enabled ones', async () => {
    const m = manager();
    m.setPlan({
      on: check('on', exec('true')),
      off: check('off', { startup: 'disabled', ...exec('true') }),
    });
    expect(m.list().map((c) => [c.name, c.status])).toEqual([
      ['off', 'inactive'],
      ['on', 'up'],
    ]);
    expect(() => m.startChecks(['off', 'nope', 'also-nope'])).toThrow(ChecksNotFoundError);
    expect(() => m.startChecks(['nope', 'also-nope'])).toThrow('cannot find checks in plan: also-nope, nope');
    expect(info(m, 'off').status).toBe('inactive');

    expect(m.startChecks(['off', 'on'])).toEqual(['off']);
    expect(m.stopChecks(['off', 'on'])).toEqual(['off', 'on']);
    expect(m.stopChecks(['on'])).toEqual([]);
    m.replan();
    expect(m.list().map((c) => [c.name, c.status])).toEqual([
      ['off', 'inactive'],
      ['on', 'up'],
    ]);

    // Refreshing an inactive check probes once and changes nothing.
    const r = await m.runNow('off');
    expect(r).toMatchObject({ error: '', info: { status: 'inactive', successes: 0 } });
  });
});

describe('routes', () => {
  interface Reply {
    status: number;
    body: { type: string; 'status-code': number; status: string; result: unknown };
  }

  async function api() {
    const dir = tmpdir();
    const sock = path.join(dir, 'pebble.socket');
    const m = manager();
    const router = new Router();
    router.add(checksRoutes(m));
    const server = createApiServer(router, [], log);
    await listenUnix(server, sock);
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const call = (method: string, p: string, body?: unknown) =>
      new Promise<Reply>((resolve, reject) => {
        const req = http.request({ socketPath: sock, method, path: p }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }),
          );
        });
        req.on('error', reject);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });
    return { m, call, dir };
  }

  it('GET /v1/checks lists in Pebble form and rejects a bad level', async () => {
    const { m, call } = await api();
    m.setPlan({
      a: check('a', { level: 'alive', threshold: 2, ...exec('false') }),
      b: check('b', { startup: 'disabled', ...exec('true') }),
    });
    await m.runNow('a');
    const r = await call('GET', '/v1/checks');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ type: 'sync', 'status-code': 200, status: 'OK' });
    expect(r.body.result).toEqual([
      { name: 'a', level: 'alive', startup: 'enabled', status: 'up', successes: 0, failures: 1, threshold: 2 },
      { name: 'b', startup: 'disabled', status: 'inactive', successes: 0, threshold: 3 },
    ]);
    expect((await call('GET', '/v1/checks?level=alive')).body.result).toHaveLength(1);
    expect((await call('GET', '/v1/checks?names=b&names=zz')).body.result).toEqual([
      expect.objectContaining({ name: 'b' }),
    ]);
    expect((await call('GET', '/v1/checks?names=a,b')).body.result).toHaveLength(2);

    const bad = await call('GET', '/v1/checks?level=dead');
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual({
      type: 'error',
      'status-code': 400,
      status: 'Bad Request',
      result: { message: 'level must be "alive" or "ready"' },
    });
  });

  it('GET /v1/health answers 200 when healthy, a sync 502 when not, 400 for a bad level', async () => {
    const { m, call } = await api();
    expect(await call('GET', '/v1/health')).toEqual({
      status: 200,
      body: { type: 'sync', 'status-code': 200, status: 'OK', result: { healthy: true } },
    });
    m.setPlan({
      a: check('a', { level: 'alive', threshold: 1, ...exec('false') }),
      r: check('r', { level: 'ready', threshold: 1, ...exec('true') }),
    });
    await m.runNow('a');
    expect(await call('GET', '/v1/health?level=ready')).toEqual({
      status: 502,
      body: { type: 'sync', 'status-code': 502, status: 'Bad Gateway', result: { healthy: false } },
    });
    expect((await call('GET', '/v1/health?names=r')).status).toBe(200);
    const bad = await call('GET', '/v1/health?level=sleepy');
    expect(bad.status).toBe(400);
    expect(bad.body.result).toEqual({ message: 'level must be "alive" or "ready"' });
  });

  it('POST /v1/checks starts and stops; bad requests change nothing', async () => {
    const { m, call } = await api();
    m.setPlan({ a: check('a', exec('true')), b: check('b', { startup: 'disabled', ...exec('true') }) });

    expect((await call('POST', '/v1/checks', { action: 'start', checks: ['b', 'a'] })).body.result).toEqual({
      changed: ['b'],
    });
    expect((await call('POST', '/v1/checks', { action: 'stop', checks: ['a', 'b'] })).body.result).toEqual({
      changed: ['a', 'b'],
    });

    const bads: [unknown, number, string][] = [
      [{ action: 'start', checks: ['a', 'ghost'] }, 400, 'cannot start checks: cannot find checks in plan: ghost'],
      [{ action: 'restart', checks: ['a'] }, 400, 'invalid action "restart"'],
      [{ action: 'start', checks: [] }, 400, 'must specify checks for start action'],
      [
        { action: 'start', checks: 'a' },
        400,
        'cannot decode data from request body: "checks" must be a list of strings',
      ],
    ];
    for (const [body, status, message] of bads) {
      const r = await call('POST', '/v1/checks', body);
      expect(r.status).toBe(status);
      expect(r.body.result).toEqual({ message });
    }
    expect(m.list().map((c) => c.status)).toEqual(['inactive', 'inactive']);
  });

  it('POST /v1/checks/refresh runs a check now', async () => {
    const { m, call } = await api();
    m.setPlan({ a: check('a', exec(`sh -c 'echo boom; exit 2'`)) });
    const r = await call('POST', '/v1/checks/refresh', { name: 'a' });
    expect(r.status).toBe(200);
    expect(r.body.result).toEqual({
      info: { name: 'a', startup: 'enabled', status: 'up', successes: 0, failures: 1, threshold: 3 },
      error: 'exit status 2; boom',
    });
    const missing = await call('POST', '/v1/checks/refresh', { name: 'ghost' });
    expect(missing.status).toBe(404);
    expect(missing.body.result).toEqual({ message: 'cannot find check with name "ghost"' });
    expect((await call('POST', '/v1/checks/refresh', {})).status).toBe(400);
  });
});
