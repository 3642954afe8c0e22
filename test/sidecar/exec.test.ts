import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { execManager, execRoutes, execUpgrade, type ExecDeps } from '../../sidecar/api/exec.js';
import { Router } from '../../sidecar/api/router.js';
import { createApiServer, listenUnix } from '../../sidecar/api/server.js';
import { ChangeStore, type Change } from '../../sidecar/changes/state.js';
import { lookupUser } from '../../sidecar/osutil/users.js';

/**
 * The exec API over its real wire protocol, driven the way ops.pebble.Client.exec and
 * Pebble's Go client drive it: POST /v1/exec, then control, stdio (and stderr)
 * websockets on a unix socket, binary frames for data and {"command":"end"} text
 * frames for end-of-file.
 */

const log = pino({ level: 'silent' });

interface Sidecar {
  socketPath: string;
  changes: ChangeStore;
  deps: ExecDeps;
  server: http.Server;
}

const dirs: string[] = [];
const sidecars: Sidecar[] = [];
const sockets = new Set<WebSocket>();

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'pgcharm-exec-'));
  dirs.push(d);
  return d;
}

async function startSidecar(extra: Partial<ExecDeps> = {}): Promise<Sidecar> {
  const changes = new ChangeStore();
  const svcDir = tempDir();
  const deps: ExecDeps = {
    changes,
    log,
    serviceContext(name) {
      if (name !== 'db') throw new Error(`context service ${JSON.stringify(name)} not found`);
      return { environment: { SVC: 'from-service', FOO: 'from-service' }, workingDir: svcDir };
    },
    ...extra,
  };
  const router = new Router();
  router.add(execRoutes(deps));
  const server = createApiServer(router, [execUpgrade(deps)], log);
  const socketPath = path.join(tempDir(), 'pebble.socket');
  await listenUnix(server, socketPath);
  const s = { socketPath, changes, deps, server };
  sidecars.push(s);
  return s;
}

async function stopSidecar(s: Sidecar): Promise<void> {
  await execManager(s.deps).shutdown();
  s.server.closeAllConnections();
  await new Promise<void>((resolve) => s.server.close(() => resolve()));
}

function request(
  s: Sidecar,
  method: string,
  urlPath: string,
  body?: unknown,
  // Response bodies are arbitrary JSON that each test picks apart; typing them would add nothing.
): Promise<{ status: number; json: Record<string, any> }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = http.request(
      { socketPath: s.socketPath, method, path: urlPath, headers: { 'Content-Type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
          } catch (e) {
            reject(e);
          }
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

function connect(s: Sidecar, taskId: string, id: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws+unix://${s.socketPath}:/v1/tasks/${taskId}/websocket/${id}`);
    sockets.add(ws);
    ws.on('close', () => sockets.delete(ws));
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const err = new Error(`websocket ${id}: HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString('utf8')}`);
        Object.assign(err, { status: res.statusCode });
        reject(err);
      });
    });
    ws.once('error', reject);
  });
}

/** What ops' _WebsocketReader does: binary frames are data, a text {"command":"end"} is EOF. */
class Reader {
  private chunks: Buffer[] = [];
  private waiters: (() => void)[] = [];
  ended = false;
  readonly done: Promise<Buffer>;

  constructor(ws: WebSocket) {
    this.done = new Promise((resolve) => {
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (this.ended) return;
        if (isBinary) {
          this.chunks.push(data);
        } else if (JSON.parse(data.toString()).command === 'end') {
          this.ended = true;
          resolve(this.data);
        }
        this.waiters.splice(0).forEach((w) => w());
      });
    });
  }

  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  get text(): string {
    return this.data.toString('utf8');
  }

  /** Waits until the output so far matches; gives up when the stream ended without it. */
  async waitFor(re: RegExp): Promise<string> {
    while (!re.test(this.text)) {
      if (this.ended) throw new Error(`output ended without ${re}: ${JSON.stringify(this.text)}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
    return this.text;
  }
}

interface Exec {
  changeId: string;
  taskId: string;
  control: WebSocket;
  stdio: WebSocket;
  stderr?: WebSocket;
  stdout: Reader;
  errout?: Reader;
  write(data: string | Buffer): void;
  endInput(): void;
  signal(name: string): void;
  wait(): Promise<Change>;
}

/** Starts a command the way ops does: POST, then control, stdio, stderr websockets. */
async function exec(s: Sidecar, body: Record<string, unknown>): Promise<Exec> {
  const res = await request(s, 'POST', '/v1/exec', body);
  expect(res.status, JSON.stringify(res.json)).toBe(202);
  expect(res.json.type).toBe('async');
  const changeId = res.json.change as string;
  const taskId = res.json.result['task-id'] as string;
  const control = await connect(s, taskId, 'control');
  const stdio = await connect(s, taskId, 'stdio');
  const stdout = new Reader(stdio);
  let stderr: WebSocket | undefined;
  let errout: Reader | undefined;
  if (body['split-stderr']) {
    stderr = await connect(s, taskId, 'stderr');
    errout = new Reader(stderr);
  }
  return {
    changeId,
    taskId,
    control,
    stdio,
    stderr,
    stdout,
    errout,
    write: (data) => stdio.send(Buffer.from(data), { binary: true }),
    endInput: () => stdio.send('{"command":"end"}'),
    signal: (name) => control.send(JSON.stringify({ command: 'signal', signal: { name } })),
    wait: async () => {
      const change = s.changes.get(changeId)!;
      await s.changes.wait(change);
      return change;
    },
  };
}

/** Runs a command to completion with the given stdin; returns outputs and the change as the API shows it. */
async function run(s: Sidecar, body: Record<string, unknown>, stdin = '') {
  const e = await exec(s, body);
  if (stdin) e.write(stdin);
  e.endInput();
  const change = await e.wait();
  const [stdout, stderr] = await Promise.all([e.stdout.done, e.errout?.done]);
  // The change as the API serialises it; `any` because tests index into it freely.
  const json = change.toJSON() as Record<string, any>;
  return { stdout: stdout.toString('utf8'), stderr: stderr?.toString('utf8'), change: json, task: json.tasks[0] };
}

function processGone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // A zombie has exited; only its parent's wait is missing.
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

let s: Sidecar;

beforeAll(async () => {
  s = await startSidecar();
});

afterEach(() => {
  for (const ws of sockets) ws.terminate();
  sockets.clear();
});

afterAll(async () => {
  for (const sc of sidecars) await stopSidecar(sc);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('exec over websockets', () => {
  it('sends stdin to the process and its stdout back (cat)', async () => {
    const r = await run(s, { command: ['cat'], 'split-stderr': true }, 'hello\nworld\n');
    expect(r.stdout).toBe('hello\nworld\n');
    expect(r.stderr).toBe('');
    expect(r.change.kind).toBe('exec');
    expect(r.change.summary).toBe('Execute command "cat"');
    expect(r.change.status).toBe('Done');
    expect(r.change.ready).toBe(true);
    expect(r.task.kind).toBe('exec');
    expect(r.task.data).toEqual({ 'exit-code': 0 });
  });

  it('returns the task id, environment and working directory like Pebble', async () => {
    const res = await request(s, 'POST', '/v1/exec', { command: ['true'], environment: { FOO: 'bar' } });
    expect(res.status).toBe(202);
    expect(res.json.result['task-id']).toMatch(/^\d+$/);
    expect(res.json.result.environment.FOO).toBe('bar');
    expect(res.json.result.environment.PATH).toBeTruthy();
    expect(typeof res.json.result['working-dir']).toBe('string');
    // Finish it so nothing is left waiting.
    const stdio = await connect(s, res.json.result['task-id'], 'stdio');
    stdio.send('{"command":"end"}');
    await s.changes.wait(s.changes.get(res.json.change)!);
  });

  it('keeps stdout and stderr apart with split-stderr', async () => {
    const r = await run(s, { command: ['sh', '-c', 'echo out; echo err >&2; echo out2'], 'split-stderr': true });
    expect(r.stdout).toBe('out\nout2\n');
    expect(r.stderr).toBe('err\n');
  });

  it('merges stderr into stdout in write order without split-stderr', async () => {
    const r = await run(s, {
      command: ['sh', '-c', 'echo 1; echo 2 >&2; echo 3; echo 4 >&2; echo 5'],
      'split-stderr': false,
    });
    expect(r.stdout).toBe('1\n2\n3\n4\n5\n');
    expect(r.stderr).toBeUndefined();
  });

  it('reports a non-zero exit code in task data and still completes the change', async () => {
    const r = await run(s, { command: ['sh', '-c', 'echo partial; exit 3'], 'split-stderr': true });
    expect(r.stdout).toBe('partial\n');
    expect(r.change.status).toBe('Done');
    expect(r.change.err).toBeUndefined();
    expect(r.task.data['exit-code']).toBe(3);
  });

  it('passes environment and working-dir', async () => {
    const dir = fs.realpathSync(tempDir());
    const r = await run(s, {
      command: ['sh', '-c', 'echo "$FOO|$(pwd -P)|$LANG"'],
      environment: { FOO: 'bar baz' },
      'working-dir': dir,
      'split-stderr': true,
    });
    expect(r.stdout).toBe(`bar baz|${dir}|C.UTF-8\n`);
  });

  it('layers the request over the service context', async () => {
    const r = await run(s, {
      command: ['sh', '-c', 'echo "$SVC|$FOO|$(basename "$(pwd)")"'],
      'service-context': 'db',
      environment: { FOO: 'from-request' },
      'split-stderr': true,
    });
    const svcDir = s.deps.serviceContext('db').workingDir!;
    expect(r.stdout).toBe(`from-service|from-request|${path.basename(svcDir)}\n`);
  });

  it('moves large input and output through intact', async () => {
    const input = Buffer.alloc(3 * 1024 * 1024, 'abcdefghij');
    const e = await exec(s, { command: ['cat'], 'split-stderr': true });
    for (let i = 0; i < input.length; i += 64 * 1024) e.write(input.subarray(i, i + 64 * 1024));
    e.endInput();
    const [out, change] = await Promise.all([e.stdout.done, e.wait()]);
    expect(out.length).toBe(input.length);
    expect(out.equals(input)).toBe(true);
    expect(change.tasks[0]!.data['exit-code']).toBe(0);
  });

  it.skipIf(!lookupUser('postgres'))('runs as the postgres user with its home and without root groups', async () => {
    const pg = lookupUser('postgres')!;
    const r = await run(s, {
      command: ['sh', '-c', 'id -un; id -G; echo "$HOME|$USER"'],
      user: 'postgres',
      'working-dir': '/',
      'split-stderr': true,
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`postgres\n${pg.gid}\n${pg.home}|postgres\n`);
    const byId = await run(s, { command: ['id', '-u'], 'user-id': pg.uid, 'working-dir': '/', 'split-stderr': true });
    expect(byId.stdout).toBe(`${pg.uid}\n`);
    // Both terminal paths switch user too (node-pty for interactive, spawn for the other).
    for (const interactive of [true, false]) {
      const t = await run(s, {
        command: ['sh', '-c', 'id -un; id -G'],
        user: 'postgres',
        'working-dir': '/',
        terminal: true,
        interactive,
      });
      expect(t.stdout).toBe(`postgres\r\n${pg.gid}\r\n`);
    }
  });

  it('forwards a signal from the control websocket', async () => {
    const e = await exec(s, {
      command: ['sh', '-c', 'trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.05; done'],
      'split-stderr': true,
    });
    await e.stdout.waitFor(/ready\n/);
    e.signal('SIGTERM');
    const change = await e.wait();
    expect(await e.stdout.done.then(String)).toBe('ready\ngot-term\n');
    expect(change.status).toBe('Done');
    expect(change.tasks[0]!.data['exit-code']).toBe(7);
  });

  it('reports death by signal as 128+signal', async () => {
    const e = await exec(s, { command: ['sh', '-c', 'echo ready; exec sleep 1000'], 'split-stderr': true });
    await e.stdout.waitFor(/ready/);
    e.signal('SIGKILL');
    const change = await e.wait();
    expect(change.tasks[0]!.data['exit-code']).toBe(128 + os.constants.signals.SIGKILL);
  });

  it('kills the whole process group on timeout and fails the task', async () => {
    const e = await exec(s, {
      command: ['sh', '-c', 'sleep 1000 & echo $!; wait'],
      timeout: '300ms',
      'split-stderr': true,
    });
    const pid = Number((await e.stdout.waitFor(/^\d+\n/)).trim());
    const change = await e.wait();
    expect(change.status).toBe('Error');
    expect(change.err).toContain('timed out after 300ms');
    expect(change.tasks[0]!.data['exit-code']).toBe(-1);
    await e.stdout.done;
    // The background sleep was in the group: it must die too (poll; no timing assertion).
    while (!processGone(pid)) await new Promise((r) => setTimeout(r, 20));
    expect(processGone(pid)).toBe(true);
  });

  it('runs in a terminal when asked (interactive)', async () => {
    const e = await exec(s, {
      command: ['sh', '-c', 'tty; stty size; read line; echo "got $line"'],
      terminal: true,
      interactive: true,
      width: 100,
      height: 30,
    });
    await e.stdout.waitFor(/30 100/);
    e.write('hi\n');
    const change = await e.wait();
    const out = (await e.stdout.done).toString();
    expect(out).toMatch(/^\/dev\/pts\/\d+\r\n30 100\r\n/);
    expect(out).toContain('got hi\r\n');
    expect(change.tasks[0]!.data['exit-code']).toBe(0);
  });

  it('resizes the terminal from the control websocket', async () => {
    const e = await exec(s, {
      command: ['sh', '-c', 'while read x; do stty size; done'],
      terminal: true,
      interactive: true,
      width: 80,
      height: 24,
    });
    e.control.send(JSON.stringify({ command: 'resize', resize: { width: 132, height: 43 } }));
    // Control and stdio are separate sockets, so keep asking until the resize has landed.
    while (!/43 132/.test(e.stdout.text)) {
      e.write('\n');
      await new Promise((r) => setTimeout(r, 20));
    }
    e.endInput();
    const change = await e.wait();
    expect(change.tasks[0]!.data['exit-code']).toBe(0);
  });

  it('gives a non-interactive terminal a pty for output and a pipe for input', async () => {
    const r = await run(
      s,
      {
        command: ['sh', '-c', 'test -t 1 && echo out-tty; test -t 0 || echo in-pipe; cat; echo err >&2'],
        terminal: true,
        'split-stderr': true,
      },
      'typed\n',
    );
    // No echo of the input: it went through a pipe, not the terminal.
    expect(r.stdout).toBe('out-tty\r\nin-pipe\r\ntyped\r\n');
    expect(r.stderr).toBe('err\n');
  });

  it('fails the task when the websockets are not connected in time', async () => {
    const quick = await startSidecar({ connectTimeoutMs: 200 });
    const res = await request(quick, 'POST', '/v1/exec', { command: ['touch', path.join(tempDir(), 'ran')] });
    expect(res.status).toBe(202);
    const change = quick.changes.get(res.json.change)!;
    await quick.changes.wait(change);
    expect(change.status).toBe('Error');
    expect(change.err).toContain('timeout waiting for websocket connections');
    // Once failed, connecting is refused rather than hanging.
    await expect(connect(quick, res.json.result['task-id'], 'stdio')).rejects.toMatchObject({ status: 404 });
  });

  it('refuses unknown tasks, unknown or duplicate websockets', async () => {
    await expect(connect(s, '999999', 'stdio')).rejects.toMatchObject({ status: 404 });
    const e = await exec(s, { command: ['cat'], 'split-stderr': false });
    await expect(connect(s, e.taskId, 'stderr')).rejects.toMatchObject({ status: 404 });
    await expect(connect(s, e.taskId, 'bogus')).rejects.toMatchObject({ status: 404 });
    await expect(connect(s, e.taskId, 'stdio')).rejects.toMatchObject({ status: 400 });
    e.endInput();
    await e.wait();
  });
});

describe('bad exec requests', () => {
  const cases: [string, unknown, RegExp][] = [
    ['missing command', { environment: {} }, /must specify command/],
    ['empty command', { command: [] }, /must specify command/],
    ['command not a list', { command: 'ls -l' }, /"command" must be an array of strings/],
    ['unknown executable', { command: ['no-such-binary-xyz'] }, /command.*cannot find executable "no-such-binary-xyz"/],
    ['bad timeout', { command: ['true'], timeout: 'soon' }, /invalid timeout/],
    ['timeout of wrong type', { command: ['true'], timeout: 5 }, /"timeout" must be a string/],
    ['unknown user', { command: ['true'], user: 'no-such-user-xyz' }, /user "no-such-user-xyz" not found/],
    ['group without user', { command: ['true'], group: 'root' }, /must specify user, not just group/],
    ['user-id not an integer', { command: ['true'], 'user-id': 'root' }, /"user-id" must be an integer/],
    ['unknown service-context', { command: ['true'], 'service-context': 'nope' }, /service-context "nope"/],
    ['missing working-dir', { command: ['true'], 'working-dir': '/no/such/dir' }, /working-dir.*"\/no\/such\/dir"/],
    ['interactive without terminal', { command: ['true'], interactive: true }, /interactive mode without a terminal/],
    ['environment with non-string', { command: ['true'], environment: { A: 1 } }, /"environment" value of "A"/],
    ['negative width', { command: ['true'], terminal: true, width: -1 }, /width/],
    ['not JSON', '{nope', /cannot decode request body/],
  ];

  it.each(cases)('%s -> 400 naming the problem, no change created', async (_name, body, message) => {
    const before = s.changes.list('all').length;
    const res = await request(s, 'POST', '/v1/exec', body);
    expect(res.status).toBe(400);
    expect(res.json.type).toBe('error');
    expect(res.json.result.message).toMatch(message);
    expect(s.changes.list('all').length).toBe(before);
  });
});
