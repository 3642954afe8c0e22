import type { Readable } from 'node:stream';
import { constants as osConstants } from 'node:os';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from '#ws';
import type { Change, ChangeStore, Task } from '../changes/state.js';
import { formatDuration } from '../plan/duration.js';
import { launch, signalGroup, type ExecChild } from './launch.js';
import type { ExecSetup } from './setup.js';

/** WebSocket.OPEN and .CLOSED (RFC 6455 ready states): the ws module loads with the first websocket (api/exec.ts), not with this one. */
const OPEN = 1;
const CLOSED = 3;

/**
 * Runs exec commands as changes, like Pebble's cmdstate manager. Each command is a
 * one-task "exec" change whose I/O travels over websockets that the client connects
 * after the POST:
 *
 *   control  JSON text: {"command":"signal","signal":{"name":"SIGTERM"}},
 *            {"command":"resize","resize":{"width":80,"height":25}}
 *   stdio    binary frames both ways; a text frame {"command":"end"} is end-of-file
 *   stderr   only with split-stderr: binary frames from the process, then "end"
 *
 * Lifecycle of one execution:
 *
 *   waiting for stdio (+stderr) --timeout--> task Error "timeout waiting for websocket connections"
 *        | connected
 *   running (control may connect any time) --timeout--> process group SIGKILL
 *        | process exited
 *   draining output (at most waitDelay once the process is gone)
 *        | "end" sent on every output websocket, control closed
 *   task Done with data {"exit-code": n}  (or Error after a timeout / failed start, exit-code -1)
 *
 * The manager knows websockets (the transport) but nothing of HTTP requests.
 */
export type WebsocketId = 'control' | 'stdio' | 'stderr';

export interface ExecManagerOptions {
  changes: ChangeStore;
  log: Logger;
  /** How long the client has to connect the I/O websockets; Pebble's connectTimeout. */
  connectTimeoutMs?: number;
  /** How long output may stay open after the process exited (a leftover background job); Pebble's waitDelay. */
  waitDelayMs?: number;
  /** How long finished I/O websockets wait for the client to close them before we do. */
  lingerMs?: number;
}

/** Why a websocket cannot be connected; `status` is the HTTP status to answer with. */
export class ConnectError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const END = JSON.stringify({ command: 'end' });
/** Output backpressure: stop reading the process when this much is queued on a websocket. */
const HIGH_WATER = 1 << 20;
const LOW_WATER = 1 << 18;

class Execution {
  readonly sockets = new Map<WebsocketId, WebSocket | null>();
  readonly ioConnected: Promise<void>;
  private markConnected!: () => void;
  child?: ExecChild;
  exited = false;
  stopping = false;
  /** Resolves the wait for websockets early (shutdown). */
  abort!: () => void;
  readonly aborted: Promise<void>;
  done?: Promise<void>;

  constructor(
    readonly change: Change,
    readonly task: Task,
    readonly setup: ExecSetup,
    readonly log: Logger,
  ) {
    this.sockets.set('control', null);
    this.sockets.set('stdio', null);
    if (setup.splitStderr) this.sockets.set('stderr', null);
    this.ioConnected = new Promise((resolve) => (this.markConnected = resolve));
    this.aborted = new Promise((resolve) => (this.abort = resolve));
  }

  connect(id: WebsocketId, ws: WebSocket): void {
    this.sockets.set(id, ws);
    const io = this.sockets.get('stdio') && (!this.setup.splitStderr || this.sockets.get('stderr'));
    if (id !== 'control' && io) this.markConnected();
  }

  socket(id: WebsocketId): WebSocket | null {
    return this.sockets.get(id) ?? null;
  }
}

export class ExecManager {
  private readonly executions = new Map<string, Execution>();
  private readonly lingering = new Set<WebSocket>();
  private readonly changes: ChangeStore;
  private readonly log: Logger;
  private readonly connectTimeoutMs: number;
  private readonly waitDelayMs: number;
  private readonly lingerMs: number;

  constructor(opts: ExecManagerOptions) {
    this.changes = opts.changes;
    this.log = opts.log;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    this.waitDelayMs = opts.waitDelayMs ?? 1000;
    this.lingerMs = opts.lingerMs ?? 10_000;
  }

  /**
   * Creates the "exec" change and waits (in the background) for the client's
   * websockets; the process starts once they are connected.
   */
  exec(setup: ExecSetup): { change: Change; task: Task } {
    const name = JSON.stringify(setup.command[0]);
    const change = this.changes.newChange('exec', `Execute command ${name}`);
    const task = change.addTask('exec', `exec command ${name}`);
    const e = new Execution(change, task, setup, this.log.child({ change: change.id, task: task.id }));
    this.executions.set(task.id, e);
    task.start();
    e.done = this.run(e)
      .catch((err: unknown) => {
        e.log.error({ err }, 'exec failed unexpectedly');
        if (!task.ready) {
          task.data['exit-code'] = -1;
          task.fail(`internal error: ${(err as Error).message ?? String(err)}`);
        }
      })
      .finally(() => this.executions.delete(task.id));
    return { change, task };
  }

  /** Throws ConnectError when websocket `id` of the task cannot be connected now. */
  checkConnect(taskId: string, id: string): void {
    const e = this.executions.get(taskId);
    if (!e || e.task.ready) {
      throw new ConnectError(404, `cannot find ${id} websocket for task ${JSON.stringify(taskId)}: command is not running`);
    }
    if (!e.sockets.has(id as WebsocketId)) {
      throw new ConnectError(404, `cannot find ${id} websocket for task ${JSON.stringify(taskId)}`);
    }
    if (e.sockets.get(id as WebsocketId)) {
      throw new ConnectError(400, `websocket ${JSON.stringify(id)} already connected`);
    }
  }

  /** Hands an upgraded websocket to the execution; call after checkConnect succeeded. */
  attach(taskId: string, id: WebsocketId, ws: WebSocket): void {
    ws.on('error', (err) => this.log.debug({ err, task: taskId, websocket: id }, 'exec websocket error'));
    try {
      this.checkConnect(taskId, id);
    } catch (err) {
      ws.close(1011);
      return;
    }
    const e = this.executions.get(taskId)!;
    // Nothing is read until the process exists to receive it; the socket buffers meanwhile.
    ws.pause();
    e.connect(id, ws);
    e.log.debug({ websocket: id }, 'exec websocket connected');
    if (e.child && !e.exited) {
      if (id === 'control') this.wireControl(e, ws);
    }
  }

  /** Number of executions not finished yet. */
  get active(): number {
    return this.executions.size;
  }

  /** Kills every running command and waits for their changes to finish. */
  async shutdown(): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const e of this.executions.values()) {
      e.stopping = true;
      e.abort();
      if (e.child && !e.exited) signalGroup(e.child.pid, 'SIGKILL');
      if (e.done) pending.push(e.done);
    }
    await Promise.all(pending);
    for (const ws of this.lingering) ws.terminate();
    this.lingering.clear();
  }

  private async run(e: Execution): Promise<void> {
    const { task, setup } = e;
    const connected = await waitFor(e.ioConnected, this.connectTimeoutMs, e.aborted);
    if (!connected) {
      this.closeAll(e);
      if (e.stopping) {
        task.fail('sidecar is shutting down');
        return;
      }
      e.log.info('exec websockets were not connected in time');
      task.fail(`exec ${task.id}: timeout waiting for websocket connections: context deadline exceeded`);
      return;
    }

    let child: ExecChild;
    try {
      child = await launch(setup, e.log);
    } catch (err) {
      e.log.info({ err, command: setup.command[0] }, 'exec cannot start command');
      await Promise.all([sendEnd(e.socket('stdio')), sendEnd(e.socket('stderr'))]);
      this.closeAll(e);
      task.data['exit-code'] = -1;
      task.fail(`cannot start ${JSON.stringify(setup.command[0])}: ${(err as Error).message}`);
      return;
    }
    e.child = child;
    e.log.info({ command: setup.command[0], pid: child.pid }, 'exec started');

    let timedOut = false;
    const timer =
      setup.timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            e.log.info({ pid: child.pid, timeout: formatDuration(setup.timeoutMs) }, 'exec timed out, killing');
            signalGroup(child.pid, 'SIGKILL');
          }, setup.timeoutMs)
        : undefined;

    const stdio = e.socket('stdio')!;
    this.wireStdin(e, stdio);
    const control = e.socket('control');
    if (control) this.wireControl(e, control);
    const pumps = [new OutputPump(child.stdout, stdio)];
    if (child.stderr) pumps.push(new OutputPump(child.stderr, e.socket('stderr')));
    else if (e.socket('stderr')) await sendEnd(e.socket('stderr'));

    const exitCode = await child.exit;
    e.exited = true;
    if (timer) clearTimeout(timer);
    // Input nobody will read any more: let the socket flow so closes are noticed.
    if (stdio.isPaused) stdio.resume();

    const settled = await Promise.all(pumps.map((p) => p.settle(this.waitDelayMs)));
    if (settled.includes(false)) {
      e.log.debug('exec output still open after exit; closing it');
      child.closeOutput();
    }
    await Promise.all(pumps.map((p) => p.done));

    closeSocket(e.socket('control'));
    this.linger(e.socket('stdio'));
    this.linger(e.socket('stderr'));
    e.log.info({ exitCode: timedOut ? -1 : exitCode }, 'exec finished');
    if (timedOut) {
      task.data['exit-code'] = -1;
      task.fail(`timed out after ${formatDuration(setup.timeoutMs)}: context deadline exceeded`);
      return;
    }
    task.data['exit-code'] = exitCode;
    task.done();
  }

  private wireStdin(e: Execution, ws: WebSocket): void {
    const child = e.child!;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      child.endStdin();
    };
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (ended) return;
      if (!isBinary) {
        const command = parseCommand(data);
        if (command?.command === 'end') end();
        else e.log.info({ command: command?.command }, 'exec: invalid I/O command');
        return;
      }
      if (!child.writeStdin(toBuffer(data)) && !e.exited) {
        ws.pause();
        child.onStdinDrain(() => ws.resume());
      }
    });
    ws.on('close', end);
    ws.resume();
  }

  private wireControl(e: Execution, ws: WebSocket): void {
    const child = e.child!;
    ws.on('message', (data: RawData) => {
      if (e.exited) return;
      const command = parseCommand(data);
      if (command?.command === 'signal') {
        const name = (command.signal as { name?: unknown } | undefined)?.name;
        if (typeof name !== 'string' || !(name in osConstants.signals) || !name.startsWith('SIG')) {
          e.log.info({ signal: name }, 'exec: invalid signal name');
          return;
        }
        signalGroup(child.pid, name as NodeJS.Signals);
        e.log.info({ signal: name, pid: child.pid }, 'exec: forwarded signal');
      } else if (command?.command === 'resize' && e.setup.terminal) {
        const r = command.resize as { width?: unknown; height?: unknown } | undefined;
        const w = r?.width;
        const h = r?.height;
        if (!Number.isInteger(w) || !Number.isInteger(h) || (w as number) <= 0 || (h as number) <= 0) {
          e.log.info('exec: control command "resize" requires terminal width and height');
          return;
        }
        try {
          child.resize(w as number, h as number);
        } catch (err) {
          // The terminal can vanish between the exit check and the ioctl.
          e.log.info({ err }, 'exec: cannot resize terminal');
        }
      } else {
        e.log.info({ command: command?.command }, 'exec: invalid control websocket command');
      }
    });
    // Pebble kills the command when the control connection drops without a close.
    ws.on('close', (code: number) => {
      if (code === 1006 && !e.exited) {
        e.log.info({ pid: child.pid }, 'exec control websocket lost; killing command');
        signalGroup(child.pid, 'SIGKILL');
      }
    });
    ws.resume();
  }

  private closeAll(e: Execution): void {
    for (const ws of e.sockets.values()) closeSocket(ws);
  }

  /** Clients close their I/O websockets after "end"; close those that do not. */
  private linger(ws: WebSocket | null): void {
    if (!ws || ws.readyState === CLOSED) return;
    this.lingering.add(ws);
    const timer = setTimeout(() => closeSocket(ws), this.lingerMs);
    timer.unref();
    ws.once('close', () => {
      clearTimeout(timer);
      this.lingering.delete(ws);
    });
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function parseCommand(data: RawData): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(toBuffer(data).toString('utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves true when `p` settles first, false on timeout or abort. */
async function waitFor(p: Promise<unknown>, ms: number, abort?: Promise<void>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true), timeout, ...(abort ? [abort.then(() => false)] : [])]);
  } finally {
    clearTimeout(timer);
  }
}

/** A paused socket would never read the peer's close frame, so resume first. */
function closeSocket(ws: WebSocket | null): void {
  if (!ws) return;
  if (ws.isPaused) ws.resume();
  ws.close(1000);
}

function sendEnd(ws: WebSocket | null): Promise<void> {
  return new Promise((resolve) => {
    if (!ws || ws.readyState !== OPEN) {
      resolve();
      return;
    }
    ws.send(END, () => resolve());
  });
}

/**
 * Forwards a process output to a websocket as binary frames, then "end". Reading
 * pauses while the websocket has too much queued, so a slow client slows the process
 * instead of filling our memory.
 */
class OutputPump {
  readonly done: Promise<void>;
  private eof = false;
  private lastData = Date.now();

  constructor(
    private readonly src: Readable,
    ws: WebSocket | null,
  ) {
    this.done = new Promise((resolve) => {
      const finish = () => {
        if (this.eof) return;
        this.eof = true;
        void sendEnd(ws).then(resolve);
      };
      src.on('data', (chunk: Buffer) => {
        this.lastData = Date.now();
        if (!ws || ws.readyState !== OPEN) return;
        ws.send(chunk, { binary: true }, () => {
          if (src.isPaused() && ws.bufferedAmount < LOW_WATER) src.resume();
        });
        if (ws.bufferedAmount > HIGH_WATER) src.pause();
      });
      // Nobody left to read for: keep draining so the process is never blocked on us.
      ws?.once('close', () => src.resume());
      src.once('end', finish);
      src.once('close', finish);
      src.once('error', finish);
    });
  }

  /**
   * After the process exited: resolves true at end-of-file, false once the output has
   * been silent for `idleMs` without us holding it back (a leftover background process
   * keeps it open). Go's cmd.WaitDelay, which Pebble sets, is the same idea.
   */
  settle(idleMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const check = () => {
        const quiet = Date.now() - this.lastData;
        if (!this.src.isPaused() && quiet >= idleMs) {
          resolve(false);
          return;
        }
        timer = setTimeout(check, Math.max(10, idleMs - quiet));
      };
      void this.done.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
      if (!this.eof) timer = setTimeout(check, idleMs);
    });
  }
}
