import { EventEmitter } from 'node:events';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import busboy from 'busboy';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execManager, execRoutes, execUpgrade, type ExecDeps } from '../../sidecar/api/exec.js';
import { changesRoutes } from '../../sidecar/api/changes.js';
import { ApiError, asyncResponse, badRequest, raw, sync } from '../../sidecar/api/response.js';
import { Router, type Route } from '../../sidecar/api/router.js';
import { createApiServer, listenTcp, listenUnix } from '../../sidecar/api/server.js';
import { ChangeStore } from '../../sidecar/changes/state.js';
import { runCli } from '../../sidecar/cli.js';
import { PebbleClient } from '../../sidecar/client/client.js';
import { APIError, ChangeError, ConnectionError, PathError, TimeoutError } from '../../sidecar/client/errors.js';
import { formatSize, parseGlob, table } from '../../sidecar/client/format.js';
import { SIDECAR_NODE_FLAGS } from '../../sidecar/node-flags.js';

/**
 * The client and CLI against a real in-process API server: the real router, server,
 * change store and exec API (real processes), plus small routes defined here for the
 * parts whose managers do not exist yet (services, files, logs, notices). Those routes
 * follow Pebble's wire format; tests against the full sidecar replace them later.
 */

const log = pino({ level: 'silent' });
let dir: string;
let socketPath: string;
let server: http.Server;
let tcpServer: http.Server;
let baseUrl: string;
let client: PebbleClient;
let execDeps: ExecDeps;
const changes = new ChangeStore();
const logFeed = new EventEmitter();
const seen: { layers: unknown[]; notices: unknown[]; signals: unknown[] } = { layers: [], notices: [], signals: [] };

const SERVICES = [
  { name: 'web', startup: 'enabled', current: 'active', 'current-since': '2024-01-01T10:00:00.000Z' },
  { name: 'broken', startup: 'disabled', current: 'inactive' },
  { name: 'hang', startup: 'disabled', current: 'inactive' },
];
const LOGS = [
  { time: '2024-01-01T00:00:00.000Z', service: 'web', message: 'listening\n' },
  { time: '2024-01-01T00:00:01.500Z', service: 'broken', message: 'oops' },
];

function servicesRoutes(): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/services',
      handler: (ctx) => {
        const names = ctx.queryList('names');
        return sync(SERVICES.filter((s) => !names.length || names.includes(s.name)));
      },
    },
    {
      method: 'POST',
      path: '/v1/services',
      handler: async (ctx) => {
        const body = await ctx.json();
        const names = body['services'] as string[];
        for (const n of names) if (!SERVICES.some((s) => s.name === n)) throw badRequest(`service "${n}" does not exist`);
        const change = changes.newChange(String(body['action']), `${String(body['action'])} ${names.join(', ')}`);
        change.data['services'] = names;
        for (const n of names) {
          const task = change.addTask(String(body['action']), `Start service "${n}"`);
          task.start();
          if (n === 'hang') continue; // stays Doing: exercises wait timeouts
          setTimeout(() => {
            if (n === 'broken') {
              task.logf('Most recent service output:\n    oops');
              task.fail(`service "${n}" exited quickly with code 1`);
            } else task.done();
          }, 20);
        }
        return asyncResponse(change.id);
      },
    },
    {
      method: 'POST',
      path: '/v1/signals',
      handler: async (ctx) => {
        seen.signals.push(await ctx.json());
        return sync(true);
      },
    },
  ];
}

function miscRoutes(): Route[] {
  const checks = [
    { name: 'up', level: 'alive', status: 'up', failures: 0, threshold: 3 },
    { name: 'down', level: 'ready', status: 'down', failures: 3, threshold: 3, 'change-id': '7' },
  ];
  return [
    { method: 'GET', path: '/v1/system-info', handler: () => sync({ version: 'v-test', 'boot-id': 'b00t' }) },
    {
      method: 'GET',
      path: '/v1/forbidden',
      handler: () => {
        throw new ApiError(403, 'access denied', 'permission-denied');
      },
    },
    { method: 'GET', path: '/v1/not-json', handler: () => raw((res) => void res.end('plain text')) },
    {
      method: 'GET',
      path: '/v1/checks',
      handler: (ctx) => {
        const names = ctx.queryList('names');
        const level = ctx.query('level');
        return sync(checks.filter((c) => (!names.length || names.includes(c.name)) && (!level || c.level === level)));
      },
    },
    {
      method: 'GET',
      path: '/v1/health',
      handler: (ctx) => {
        const names = ctx.queryList('names');
        const healthy = checks.every((c) => (names.length && !names.includes(c.name)) || c.status === 'up');
        return sync({ healthy }, healthy ? 200 : 502);
      },
    },
    {
      method: 'POST',
      path: '/v1/layers',
      handler: async (ctx) => {
        seen.layers.push(await ctx.json());
        return sync(true);
      },
    },
    { method: 'GET', path: '/v1/plan', handler: () => sync('services:\n    web:\n        command: web\n') },
    {
      method: 'POST',
      path: '/v1/notices',
      handler: async (ctx) => {
        seen.notices.push(await ctx.json());
        return sync({ id: String(seen.notices.length) });
      },
    },
    {
      method: 'GET',
      path: '/v1/notices',
      handler: (ctx) =>
        sync(
          ctx.queryList('keys').map((key, i) => ({
            id: String(i + 1),
            type: 'custom',
            key,
            'first-occurred': '2024-01-01T00:00:00Z',
            'last-occurred': '2024-01-01T00:00:00Z',
            'last-repeated': '2024-01-01T00:00:00Z',
            occurrences: 2,
          })),
        ),
    },
    {
      method: 'GET',
      path: '/v1/logs',
      handler: (ctx) => {
        const services = ctx.queryList('services');
        const n = Number(ctx.query('n') ?? '30');
        const pick = LOGS.filter((e) => !services.length || services.includes(e.service));
        const backlog = n < 0 ? pick : pick.slice(Math.max(0, pick.length - n));
        return raw((res) => {
          res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
          for (const e of backlog) res.write(JSON.stringify(e) + '\n');
          if (ctx.query('follow') !== 'true') {
            res.end();
            return;
          }
          res.flushHeaders();
          const onEntry = (e: object) => res.write(JSON.stringify(e) + '\n');
          logFeed.on('entry', onEntry);
          res.on('close', () => logFeed.off('entry', onEntry));
        });
      },
    },
  ];
}

const pathError = (path: string, e: NodeJS.ErrnoException) => ({
  path,
  error: { kind: e.code === 'ENOENT' ? 'not-found' : 'generic-file-error', message: e.message },
});

/** Minimal /v1/files in Pebble's wire format: enough to drive the client's multipart code. */
function filesRoutes(): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/files',
      handler: (ctx) => {
        const path = ctx.query('path') ?? '';
        if (ctx.query('action') === 'list') {
          if (!existsSync(path)) throw new ApiError(404, `stat ${path}: no such file or directory`, 'not-found');
          return sync([
            {
              path,
              name: path.split('/').pop(),
              type: statSync(path).isDirectory() ? 'directory' : 'file',
              size: statSync(path).size,
              permissions: (statSync(path).mode & 0o777).toString(8),
              'last-modified': statSync(path).mtime.toISOString(),
              user: 'root',
              group: 'root',
            },
          ]);
        }
        const boundary = 'b0und4ry';
        return raw((res) => {
          res.writeHead(200, { 'Content-Type': `multipart/form-data; boundary=${boundary}` });
          const result: unknown[] = [];
          try {
            const data = readFileSync(path);
            res.write(
              `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="${path}"\r\n` +
                'Content-Type: application/octet-stream\r\n\r\n',
            );
            res.write(data);
            res.write('\r\n');
            result.push({ path });
          } catch (e) {
            result.push(pathError(path, e as NodeJS.ErrnoException));
          }
          res.end(
            `--${boundary}\r\nContent-Type: application/json\r\nContent-Disposition: form-data; name="response"\r\n\r\n` +
              JSON.stringify({ type: 'sync', 'status-code': 200, status: 'OK', result }) +
              `\n\r\n--${boundary}--\r\n`,
          );
        });
      },
    },
    {
      method: 'POST',
      path: '/v1/files',
      handler: async (ctx) => {
        const ct = ctx.req.headers['content-type'] ?? '';
        if (ct.startsWith('application/json')) {
          const body = await ctx.json();
          const results: unknown[] = [];
          for (const d of (body['dirs'] ?? body['paths']) as { path: string; recursive?: boolean; 'make-parents'?: boolean }[]) {
            try {
              if (body['action'] === 'make-dirs') mkdirSync(d.path, { recursive: !!d['make-parents'] });
              else rmSync(d.path, { recursive: !!d.recursive });
              results.push({ path: d.path });
            } catch (e) {
              results.push(pathError(d.path, e as NodeJS.ErrnoException));
            }
          }
          return sync(results);
        }
        const results = await new Promise<unknown[]>((resolve, reject) => {
          let files: { path: string; permissions?: string; 'make-dirs'?: boolean }[] = [];
          const out: unknown[] = [];
          const bb = busboy({ headers: ctx.req.headers, preservePath: true });
          bb.on('field', (name, value) => {
            if (name === 'request') files = (JSON.parse(value) as { files: typeof files }).files;
          });
          bb.on('file', (_name, stream, info) => {
            const path = info.filename ?? '';
            const spec = files.find((f) => f.path === path);
            const chunks: Buffer[] = [];
            stream.on('data', (c: Buffer) => chunks.push(c));
            stream.on('end', () => {
              try {
                if (!spec || !isAbsolute(path)) throw Object.assign(new Error(`paths must be absolute, got "${path}"`), { code: 'EINVAL' });
                if (spec['make-dirs']) mkdirSync(dirname(path), { recursive: true });
                writeFileSync(path, Buffer.concat(chunks));
                chmodSync(path, parseInt(spec.permissions ?? '644', 8));
                out.push({ path });
              } catch (e) {
                out.push(pathError(path, e as NodeJS.ErrnoException));
              }
            });
          });
          bb.on('close', () => resolve(out));
          bb.on('error', reject);
          ctx.req.pipe(bb);
        });
        return sync(results);
      },
    },
  ];
}

function collector() {
  const s = new PassThrough();
  let text = '';
  s.on('data', (c: Buffer) => (text += c.toString()));
  return { stream: s, text: () => text };
}

async function cli(args: string[], opts: { stdin?: string; env?: NodeJS.ProcessEnv } = {}) {
  const out = collector();
  const err = collector();
  const code = await runCli(args, {
    stdout: out.stream,
    stderr: err.stream,
    stdin: Readable.from(opts.stdin ? [Buffer.from(opts.stdin)] : []),
    env: opts.env ?? { PEBBLE_SOCKET: socketPath },
  });
  return { code, stdout: out.text(), stderr: err.text() };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pgcharm-cli-'));
  socketPath = join(dir, '.pebble.socket');
  execDeps = {
    changes,
    log,
    serviceContext: (name) => {
      throw new Error(`service ${JSON.stringify(name)} not found`);
    },
  };
  const router = new Router();
  router.add([
    ...miscRoutes(),
    ...servicesRoutes(),
    ...filesRoutes(),
    ...changesRoutes(changes),
    ...execRoutes(execDeps),
  ]);
  server = createApiServer(router, [execUpgrade(execDeps)], log);
  await listenUnix(server, socketPath);
  tcpServer = createApiServer(router, [execUpgrade(execDeps)], log);
  const { port } = await listenTcp(tcpServer, '127.0.0.1:0');
  baseUrl = `http://127.0.0.1:${port}`;
  client = new PebbleClient({ socketPath });
});

afterAll(async () => {
  await execManager(execDeps).shutdown();
  for (const s of [server, tcpServer]) {
    s?.closeAllConnections();
    await new Promise((r) => s?.close(r));
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('PebbleClient', () => {
  it('decodes sync envelopes over the unix socket and over HTTP', async () => {
    expect(await client.getSystemInfo()).toEqual({ version: 'v-test', 'boot-id': 'b00t' });
    expect((await new PebbleClient({ baseUrl }).getSystemInfo()).version).toBe('v-test');
  });

  it('turns error envelopes into APIError with status, kind and message', async () => {
    const e = await client.transport.call({ method: 'GET', path: '/v1/forbidden' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(APIError);
    expect(e).toMatchObject({ status: 403, kind: 'permission-denied', message: 'access denied' });
    const missing = await client.getChange('999').catch((x: unknown) => x);
    expect(missing).toMatchObject({ status: 404, message: 'cannot find change with id "999"' });
    await expect(client.transport.call({ method: 'GET', path: '/v1/not-json' })).rejects.toThrow(/expected a JSON response/);
  });

  it('names the socket and suggests `pgcharm-sidecar run` when nothing listens', async () => {
    const gone = join(dir, 'missing.socket');
    const e = await new PebbleClient({ socketPath: gone }).getSystemInfo().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConnectionError);
    expect((e as Error).message).toContain(gone);
    expect((e as Error).message).toContain('pgcharm-sidecar run');
  });

  it('starts services, waits for the change, and raises ChangeError with task logs when it fails', async () => {
    const ok = await client.waitChange(await client.start(['web']), { timeoutMs: 5000 });
    expect(ok).toMatchObject({ status: 'Done', ready: true });
    expect(ok.tasks[0]!.status).toBe('Done');

    const id = await client.start(['broken']);
    const e = await client.waitChange(id, { timeoutMs: 5000 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ChangeError);
    expect((e as ChangeError).err).toBe('cannot perform the following tasks:\n- Start service "broken" (service "broken" exited quickly with code 1)');
    expect((e as ChangeError).message).toContain('----- Logs from task 0 -----');
    expect((e as ChangeError).change.status).toBe('Error');
    expect((await client.waitChange(id, { allowError: true })).status).toBe('Error');
    expect((await client.getChanges({ select: 'all', service: 'broken' })).map((c) => c.id)).toContain(id);
  });

  it('reports a wait that outlasts its timeout as TimeoutError (server answers 504)', async () => {
    const id = await client.start(['hang']);
    const e = await client.waitChange(id, { timeoutMs: 150 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TimeoutError);
    expect((e as TimeoutError).changeId).toBe(id);
    const raw504 = await client.transport
      .call({ method: 'GET', path: `/v1/changes/${id}/wait`, query: { timeout: '10ms' } })
      .catch((x: unknown) => x);
    expect(raw504).toMatchObject({ status: 504 });
  });

  it('rejects bad service names with the server message and creates no change', async () => {
    const before = (await client.getChanges({ select: 'all' })).length;
    await expect(client.start(['nope'])).rejects.toMatchObject({ status: 400, message: 'service "nope" does not exist' });
    expect((await client.getChanges({ select: 'all' })).length).toBe(before);
  });

  it('pulls files as a Buffer and as a stream, and reports unreadable paths as PathError', async () => {
    const p = join(dir, 'blob.bin');
    const content = randomBytes(3 * 1024 * 1024 + 17);
    writeFileSync(p, content);
    expect((await client.pull(p)).equals(content)).toBe(true);
    const chunks: Buffer[] = [];
    for await (const c of await client.pullStream(p)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(content)).toBe(true);

    const e = await client.pull(join(dir, 'nope')).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PathError);
    expect(e).toMatchObject({ kind: 'not-found', path: join(dir, 'nope') });
  });

  it('pushes Buffers, strings and streams with make-dirs and permissions', async () => {
    const a = join(dir, 'push', 'deep', 'a.txt');
    await client.push(a, 'hello "quoted" world', { makeDirs: true, permissions: 0o600 });
    expect(readFileSync(a, 'utf8')).toBe('hello "quoted" world');
    expect(statSync(a).mode & 0o777).toBe(0o600);

    const big = randomBytes(2 * 1024 * 1024 + 3);
    const b = join(dir, 'push', 'b.bin');
    await client.push(b, Readable.from([big.subarray(0, 1000), big.subarray(1000)]), { permissions: '640' });
    expect(readFileSync(b).equals(big)).toBe(true);
    expect(statSync(b).mode & 0o777).toBe(0o640);

    await expect(client.push(join(dir, 'no', 'such', 'dir', 'c'), Buffer.from('x'))).rejects.toBeInstanceOf(PathError);
    await expect(client.push('/x', 'x', { permissions: '99' })).rejects.toThrow(/permissions must be 3 or 4 octal digits/);
    const failing = new Readable({ read() { this.destroy(new Error('disk on fire')); } });
    await expect(client.push(join(dir, 'push', 'd'), failing)).rejects.toThrow('disk on fire');
  });

  it('makes and removes directories, lists files', async () => {
    const d = join(dir, 'mk', 'a', 'b');
    await expect(client.makeDir(d)).rejects.toBeInstanceOf(PathError);
    await client.makeDir(d, { makeParents: true });
    expect(statSync(d).isDirectory()).toBe(true);
    expect((await client.listFiles(d, { itself: true }))[0]).toMatchObject({ name: 'b', type: 'directory' });
    await expect(client.removePath(join(dir, 'mk'))).rejects.toBeInstanceOf(PathError);
    await client.removePath(join(dir, 'mk'), { recursive: true });
    expect(existsSync(join(dir, 'mk'))).toBe(false);
    await expect(client.listFiles(join(dir, 'mk'))).rejects.toMatchObject({ status: 404, kind: 'not-found' });
  });

  it('reads buffered logs and follows new ones until aborted', async () => {
    expect(await client.getLogs({ services: ['web'] })).toEqual([LOGS[0]]);
    expect(await client.getLogs({ n: 1 })).toEqual([LOGS[1]]);
    const ac = new AbortController();
    const got: string[] = [];
    const following = (async () => {
      for await (const e of client.followLogs({ n: 0, signal: ac.signal })) {
        got.push(e.message);
        if (got.length === 2) ac.abort();
      }
    })();
    // Entries are emitted until the follower is attached and has seen them.
    const timer = setInterval(() => logFeed.emit('entry', { time: new Date().toISOString(), service: 'web', message: 'tick' }), 10);
    try {
      await following;
    } finally {
      clearInterval(timer);
    }
    expect(got).toEqual(['tick', 'tick']);
  });

  it('checks health (502 with a result is not an error) and lists checks', async () => {
    expect(await client.getHealth()).toEqual({ healthy: false });
    expect(await client.getHealth({ names: ['up'] })).toEqual({ healthy: true });
    expect((await client.getChecks({ level: 'ready' })).map((c) => c.name)).toEqual(['down']);
  });

  it('sends layers as YAML, notices and signals in Pebble request shapes', async () => {
    await client.addLayer('base', { services: { web: { command: 'web --port 1', override: 'replace' } } }, { combine: true });
    expect(seen.layers.at(-1)).toEqual({
      action: 'add',
      combine: true,
      label: 'base',
      format: 'yaml',
      layer: 'services:\n  web:\n    command: web --port 1\n    override: replace\n',
    });
    expect(await client.getPlan()).toContain('command: web');
    const id = await client.notify({ key: 'example.com/x', data: { a: '1' }, repeatAfterMs: 1500 });
    expect(seen.notices.at(-1)).toEqual({ action: 'add', type: 'custom', key: 'example.com/x', data: { a: '1' }, 'repeat-after': '1.500s' });
    expect(id).toBe(String(seen.notices.length));
    expect((await client.getNotices({ keys: ['k1', 'k2'] })).map((n) => n.key)).toEqual(['k1', 'k2']);
    await client.sendSignal('SIGHUP', ['web']);
    expect(seen.signals.at(-1)).toEqual({ signal: 'SIGHUP', services: ['web'] });
  });

  it('execs a command: stdin in, stdout and stderr apart, exit code from the change', async () => {
    const p = await client.exec(['sh', '-c', 'cat; echo err >&2; exit 3'], { stdin: 'hello\n' });
    expect(await p.waitOutput()).toEqual({ exitCode: 3, stdout: Buffer.from('hello\n'), stderr: Buffer.from('err\n') });

    const merged = await client.exec(['sh', '-c', 'echo out; echo err >&2'], { splitStderr: false });
    const r = await merged.waitOutput();
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString().split('\n').sort()).toEqual(['', 'err', 'out']);
    expect(r.stderr.length).toBe(0);
  });

  it('execs through a relative socket path (websockets need it made absolute)', async () => {
    const rel = new PebbleClient({ socketPath: relative(process.cwd(), socketPath) });
    expect((await (await rel.exec(['echo', 'rel'])).waitOutput()).stdout.toString()).toBe('rel\n');
  });

  it('execs over HTTP too, streaming stdin from a writable and output to a writable', async () => {
    const http = new PebbleClient({ baseUrl });
    const out = collector();
    const p = await http.exec(['sh', '-c', 'tr a-z A-Z'], { stdin: 'pipe', stdout: out.stream, environment: { X: '1' } });
    p.stdin!.write('abc ');
    p.stdin!.end('def');
    expect(await p.wait()).toBe(0);
    expect(out.text()).toBe('ABC DEF');
  });

  it('forwards signals over the control websocket and reports exec timeouts as ChangeError', async () => {
    const out = new PassThrough();
    const p = await client.exec(['sh', '-c', 'trap "exit 42" TERM; echo ready; while :; do sleep 0.05; done'], { stdout: out });
    // Signal once the trap is installed (the script says so on stdout).
    await new Promise((r) => out.once('data', r));
    expect(p.sendSignal('SIGTERM')).toBe(true);
    expect(await p.wait()).toBe(42);

    const slow = await client.exec(['sleep', '10'], { timeoutMs: 200 });
    const e = await slow.wait().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ChangeError);
    expect((e as ChangeError).err).toMatch(/timed out/);
  });

  it('refuses an exec the server rejects, with its message', async () => {
    await expect(client.exec(['sh'], { workingDir: 'relative' })).rejects.toBeInstanceOf(APIError);
    await expect(client.exec([])).rejects.toThrow(/non-empty list/);
  });
});

describe('pgcharm-sidecar CLI', () => {
  it('prints services as pebble does', async () => {
    const r = await cli(['services', '--abs-time']);
    expect(r).toEqual({
      code: 0,
      stderr: '',
      stdout:
        'Service  Startup   Current   Since\n' +
        'web      enabled   active    2024-01-01T10:00:00.000Z\n' +
        'broken   disabled  inactive  -\n' +
        'hang     disabled  inactive  -\n',
    });
    expect((await cli(['services', 'zzz'])).stderr).toBe('No matching services.\n');
  });

  it('starts services and prints a failed change as pebble does', async () => {
    expect(await cli(['start', 'web'])).toEqual({ code: 0, stdout: '', stderr: '' });
    const r = await cli(['start', 'broken']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'error: cannot perform the following tasks:\n- Start service "broken" (service "broken" exited quickly with code 1)\n',
    );
    const noWait = await cli(['restart', '--no-wait', 'web']);
    expect(noWait.stdout).toMatch(/^\d+\n$/);
    const tasks = await cli(['tasks', noWait.stdout.trim(), '--abs-time']);
    expect(tasks.stdout).toMatch(/^Status\s+Spawn\s+Ready\s+Summary\n/);
    expect(tasks.stdout).toContain('Start service "web"');
  });

  it('validates arguments before talking to the sidecar', async () => {
    expect(await cli(['start'])).toMatchObject({ code: 1, stderr: "error: missing required argument 'service'\n" });
    expect((await cli(['logs', '-n', 'abc'])).stderr).toBe('error: expected n to be a non-negative integer or "all", not "abc"\n');
    expect((await cli(['exec', '-t', '-T', 'true'])).stderr).toBe('error: cannot use -t and -T at the same time\n');
    const t = await cli(['exec', '--timeout', 'soon', '--', 'true']);
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/--timeout <duration>' argument 'soon' is invalid/);
    expect((await cli(['mkdir', '-m', '999', '/x'])).stderr).toMatch(/permissions must be 3 or 4 octal digits/);
    expect((await cli(['checks', '--level', 'dead'])).stderr).toMatch(/Allowed choices are alive, ready/);
    expect((await cli(['notify', 'example.com/k', 'novalue'])).stderr).toBe(
      'error: data args must be in key=value format, not "novalue"\n',
    );
    expect((await cli(['changes', '5'])).stderr).toBe(
      "error: 'pgcharm-sidecar changes' command expects a service name, try 'pgcharm-sidecar tasks 5'\n",
    );
    expect((await cli(['bogus'])).code).toBe(1);
    expect(await cli(['run'], { env: {} })).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: --dir: no sidecar directory given and $PEBBLE is not set\n',
    });
  });

  it('finds the socket from $PEBBLE_SOCKET or $PEBBLE and says how to start the sidecar', async () => {
    expect((await cli(['services'], { env: {} })).stderr).toBe(
      'error: cannot find the sidecar socket: set PEBBLE_SOCKET, or PEBBLE to the sidecar directory\n',
    );
    expect((await cli(['services'], { env: { PEBBLE: dir } })).code).toBe(0);
    const gone = await cli(['services'], { env: { PEBBLE: join(dir, 'nowhere') } });
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(join(dir, 'nowhere', '.pebble.socket'));
    expect(gone.stderr).toContain('`pgcharm-sidecar run`');
  });

  it('exits with the health, and with the exec exit code', async () => {
    expect(await cli(['health'])).toEqual({ code: 1, stdout: 'unhealthy\n', stderr: '' });
    expect(await cli(['health', 'up', '--format', 'json'])).toEqual({ code: 0, stdout: '{"healthy":true}\n', stderr: '' });
    const r = await cli(['exec', '--env', 'FOO=bar', 'sh', '-c', 'echo $FOO; cat; echo e >&2; exit 7'], { stdin: 'in\n' });
    expect(r).toEqual({ code: 7, stdout: 'bar\nin\n', stderr: 'e\n' });
    const failed = await cli(['exec', '--timeout', '200ms', '--', 'sleep', '10']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^error: cannot perform the following tasks:\n.*timed out/);
  });

  it('prints logs in pebble format', async () => {
    expect(await cli(['logs'])).toEqual({
      code: 0,
      stderr: '',
      stdout: '2024-01-01T00:00:00.000Z [web] listening\n2024-01-01T00:00:01.500Z [broken] oops\n',
    });
  });

  it('pushes, pulls, lists and removes files', async () => {
    const local = join(dir, 'local.txt');
    writeFileSync(local, 'payload');
    const remote = join(dir, 'remote', 'r.txt');
    expect(await cli(['push', '-p', '-m', '600', local, remote])).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(statSync(remote).mode & 0o777).toBe(0o600);
    const back = join(dir, 'back.txt');
    expect((await cli(['pull', remote, back])).code).toBe(0);
    expect(readFileSync(back, 'utf8')).toBe('payload');
    const missing = await cli(['pull', join(dir, 'nope'), join(dir, 'never')]);
    expect(missing.code).toBe(1);
    expect(existsSync(join(dir, 'never'))).toBe(false);
    expect((await cli(['ls', '-l', '--abs-time', remote])).stdout).toMatch(/^-rw-------  root  root      7B  \d{4}-.*Z  r\.txt\n$/);
    expect((await cli(['rm', join(dir, 'remote')])).code).toBe(1);
    expect((await cli(['rm', '-r', join(dir, 'remote')])).code).toBe(0);
    expect(existsSync(remote)).toBe(false);
  });

  it('normalises signal names and records notices', async () => {
    expect((await cli(['signal', 'hup', 'web'])).code).toBe(0);
    expect(seen.signals.at(-1)).toEqual({ signal: 'SIGHUP', services: ['web'] });
    expect(await cli(['notify', 'example.com/k', 'a=b=c'])).toEqual({ code: 0, stdout: `Recorded notice ${seen.notices.length}\n`, stderr: '' });
    expect(seen.notices.at(-1)).toMatchObject({ key: 'example.com/k', data: { a: 'b=c' } });
  });
});

describe('CLI formatting', () => {
  it('aligns columns like Go tabwriter (min width 5, padding 2)', () => {
    expect(table([['ID', 'Status'], ['1234', 'Done']])).toBe('ID    Status\n1234  Done\n');
  });
  it('formats sizes and globs like pebble ls', () => {
    expect([formatSize(7), formatSize(1500), formatSize(100_000), formatSize(24_000_000)]).toEqual(['7B', '1.5kB', '100kB', '24MB']);
    expect(parseGlob('/etc/*.conf')).toEqual({ path: '/etc/', pattern: '*.conf' });
    expect(parseGlob('/etc/')).toEqual({ path: '/etc/' });
    expect(() => parseGlob('/e*/x')).toThrow(/last path element/);
  });
});

describe('sidecar node flags', () => {
  it('runs the CLI (shebang) with the same V8 flags as spawned sidecars', () => {
    const shebang = readFileSync(join(dirname(new URL(import.meta.url).pathname), '../../sidecar/cli.ts'), 'utf8').split('\n')[0];
    expect(shebang).toBe(`#!/usr/bin/env -S node ${SIDECAR_NODE_FLAGS.join(' ')}`);
  });
});
