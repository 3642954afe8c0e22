import { Readable, Writable } from 'node:stream';
import WebSocket from 'ws';
import { ChangeError, ConnectionError, ProtocolError } from './errors.js';
import type { Transport } from './transport.js';
import type { Change } from './types.js';

/**
 * Client side of Pebble's exec protocol, as ops' ExecProcess and pebble's client do it:
 * POST /v1/exec starts a change with one task; the client connects the task's "control",
 * "stdio" and (with split stderr) "stderr" websockets; the server starts the command once
 * the I/O sockets are connected. Data travels as binary frames; a text frame
 * {"command":"end"} marks end of input or output. The exit code is the task's data
 * "exit-code" once the change is ready.
 */
export interface ExecOptions {
  environment?: Record<string, string>;
  workingDir?: string;
  /** The server kills the command after this long and the change fails. */
  timeoutMs?: number;
  user?: string;
  userId?: number;
  group?: string;
  groupId?: number;
  /** Allocate a pseudo-terminal for output (allows resize). */
  terminal?: boolean;
  /** Use the terminal for input too (requires terminal). */
  interactive?: boolean;
  /** Separate stderr (default true); false merges stderr into stdout on the server. */
  splitStderr?: boolean;
  width?: number;
  height?: number;
  /** Inherit environment, identity and working dir from this service's plan entry. */
  serviceContext?: string;
  /**
   * Input: a Buffer/string is sent then closed; a Readable is forwarded until it ends;
   * 'pipe' exposes `process.stdin` as a Writable; absent means no input (immediate EOF).
   */
  stdin?: Buffer | string | Readable | 'pipe';
  /** Output streams receive data as it arrives (they are not ended). Absent: collected for waitOutput(). */
  stdout?: Writable;
  stderr?: Writable;
}

export interface ExecResult {
  exitCode: number;
  /** Collected output; empty when a stdout/stderr stream was given. */
  stdout: Buffer;
  stderr: Buffer;
}

type WaitChange = (id: string, opts: { timeoutMs?: number; allowError?: boolean }) => Promise<Change>;

const END = JSON.stringify({ command: 'end' });
const CHUNK = 64 * 1024;

function execBody(command: readonly string[], o: ExecOptions): Record<string, unknown> {
  const body: Record<string, unknown> = {
    command,
    environment: o.environment,
    'working-dir': o.workingDir,
    // Milliseconds as seconds, the format ops sends (Go's ParseDuration reads it).
    timeout: o.timeoutMs !== undefined ? `${(o.timeoutMs / 1000).toFixed(3)}s` : undefined,
    'user-id': o.userId,
    user: o.user,
    'group-id': o.groupId,
    group: o.group,
    terminal: o.terminal || undefined,
    interactive: o.interactive || undefined,
    'split-stderr': o.splitStderr ?? true,
    width: o.width,
    height: o.height,
    'service-context': o.serviceContext,
  };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  return body;
}

function connect(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 10_000 });
    const onError = (e: Error) => {
      ws.off('open', onOpen);
      reject(e);
    };
    const onOpen = () => {
      ws.off('error', onError);
      // Later socket errors surface as a close; an unhandled 'error' event would crash the process.
      ws.on('error', () => {});
      // Nothing is read until every socket is open and has its listeners: the server starts the
      // command once all are connected, and a fast one's output and "end" frame, arriving on a
      // socket with no 'message' listener yet, would be dropped (the client then waited for the
      // server to give up lingering, 10 s, and returned no output).
      ws.pause();
      resolve(ws);
    };
    ws.once('error', onError);
    ws.once('open', onOpen);
  });
}

/** Receives one output stream until the end frame (or the socket closes). */
function receive(ws: WebSocket, sink: Writable | Buffer[]): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      ws.off('message', onMessage);
      resolve();
    };
    const onMessage = (data: WebSocket.RawData, isBinary: boolean) => {
      if (!isBinary) {
        try {
          if ((JSON.parse(data.toString()) as { command?: unknown }).command === 'end') finish();
        } catch {
          /* not a command we know; Pebble and ops ignore these too */
        }
        return;
      }
      const chunk = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
      if (Array.isArray(sink)) {
        sink.push(chunk);
      } else if (!sink.write(chunk)) {
        // Slow consumer: stop reading the socket so the server (and the command) slow down too.
        ws.pause();
        sink.once('drain', () => ws.resume());
      }
    };
    ws.on('message', onMessage);
    ws.once('close', finish);
    if (ws.readyState === WebSocket.CLOSED) finish();
  });
}

function sendAsync(ws: WebSocket, data: Buffer | string, binary: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    if (ws.readyState !== WebSocket.OPEN) {
      reject(new Error('websocket is closed'));
      return;
    }
    ws.send(data, { binary }, (err) => (err ? reject(err) : resolve()));
  });
}

/** Forwards input; returns a canceller that stops reading the source. */
function forwardStdin(ws: WebSocket, source: Buffer | string | Readable | undefined): () => void {
  if (source === undefined) {
    ws.send(END);
    return () => {};
  }
  if (!(source instanceof Readable)) {
    const buf = typeof source === 'string' ? Buffer.from(source) : source;
    void (async () => {
      try {
        for (let i = 0; i < buf.length; i += CHUNK) await sendAsync(ws, buf.subarray(i, i + CHUNK), true);
        await sendAsync(ws, END, false);
      } catch {
        /* the command finished before reading all its input */
      }
    })();
    return () => {};
  }
  let stopped = false;
  const cleanup = () => {
    source.off('data', onData);
    source.off('end', onEnd);
    source.off('error', onEnd);
  };
  const onData = (chunk: Buffer | string) => {
    source.pause();
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    sendAsync(ws, buf, true).then(
      () => {
        if (!stopped) source.resume();
      },
      () => stop(),
    );
  };
  const onEnd = () => {
    cleanup();
    if (!stopped) sendAsync(ws, END, false).catch(() => {});
    stopped = true;
  };
  const stop = () => {
    stopped = true;
    cleanup();
    source.pause();
  };
  source.on('data', onData);
  source.once('end', onEnd);
  source.once('error', onEnd);
  source.resume();
  return stop;
}

export class ExecProcess {
  /** Set only with `stdin: 'pipe'`; end() it to send EOF. */
  readonly stdin: Writable | null = null;
  private readonly stopStdin: () => void;
  private readonly outputDone: Promise<void>;
  private readonly out: Buffer[] = [];
  private readonly err: Buffer[] = [];
  private result?: Promise<ExecResult>;

  /** @internal Use PebbleClient.exec. */
  constructor(
    readonly command: readonly string[],
    readonly changeId: string,
    readonly taskId: string,
    private readonly control: WebSocket,
    private readonly stdio: WebSocket,
    private readonly stderrWs: WebSocket | undefined,
    private readonly opts: ExecOptions,
    private readonly waitChange: WaitChange,
  ) {
    const done = [receive(stdio, opts.stdout ?? this.out)];
    if (stderrWs) done.push(receive(stderrWs, opts.stderr ?? this.err));
    this.outputDone = Promise.all(done).then(() => undefined);
    if (opts.stdin === 'pipe') {
      this.stdin = new Writable({
        write: (chunk: Buffer, _enc, cb) => sendAsync(stdio, chunk, true).then(() => cb(), cb),
        final: (cb) => sendAsync(stdio, END, false).then(() => cb(), cb),
      });
      this.stopStdin = () => {};
    } else {
      this.stopStdin = forwardStdin(stdio, opts.stdin);
    }
  }

  /** Sends a signal ("SIGTERM", "SIGINT", ...) to the command; false if it already finished. */
  sendSignal(name: string): boolean {
    return this.sendControl({ command: 'signal', signal: { name } });
  }

  /** Resizes the command's terminal (terminal mode only). */
  resize(width: number, height: number): boolean {
    return this.sendControl({ command: 'resize', resize: { width, height } });
  }

  private sendControl(msg: unknown): boolean {
    if (this.control.readyState !== WebSocket.OPEN) return false;
    this.control.send(JSON.stringify(msg));
    return true;
  }

  /** Waits for the command; resolves with its exit code. A failed change (timeout, bad user...) throws ChangeError. */
  async wait(): Promise<number> {
    return (await this.waitOutput()).exitCode;
  }

  /** Like wait(), with the collected output. */
  waitOutput(): Promise<ExecResult> {
    this.result ??= this.finish();
    return this.result;
  }

  private async finish(): Promise<ExecResult> {
    // A little longer than the command's own timeout, so the server's timeout wins (as ops does).
    const timeoutMs = this.opts.timeoutMs !== undefined ? this.opts.timeoutMs + 1000 : undefined;
    let change: Change;
    try {
      change = await this.waitChange(this.changeId, { timeoutMs, allowError: true });
    } catch (e) {
      this.close();
      throw e;
    }
    this.stopStdin();
    if (change.err) {
      this.close();
      throw new ChangeError(change.err, change);
    }
    await this.outputDone;
    this.close();
    const code = change.tasks[0]?.data?.['exit-code'];
    if (typeof code !== 'number') throw new ProtocolError(`exec change ${change.id} finished without an exit code`);
    return { exitCode: code, stdout: Buffer.concat(this.out), stderr: Buffer.concat(this.err) };
  }

  private close(): void {
    this.stopStdin();
    for (const ws of [this.control, this.stdio, this.stderrWs]) {
      if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) ws.close(1000);
    }
  }
}

export async function startExec(
  t: Transport,
  waitChange: WaitChange,
  command: readonly string[],
  opts: ExecOptions = {},
): Promise<ExecProcess> {
  if (!Array.isArray(command) || command.length === 0 || command.some((c) => typeof c !== 'string')) {
    throw new TypeError('command must be a non-empty list of strings');
  }
  const env = await t.call({ method: 'POST', path: '/v1/exec', json: execBody(command, opts) });
  const changeId = env.change;
  const taskId = (env.result as { 'task-id'?: unknown } | null)?.['task-id'];
  if (typeof changeId !== 'string' || typeof taskId !== 'string') {
    throw new ProtocolError(`exec response lacks change or task-id: ${JSON.stringify(env)}`);
  }
  const url = (id: string) => t.websocketUrl(`/v1/tasks/${encodeURIComponent(taskId)}/websocket/${id}`);
  const ids = ['control', 'stdio', ...(opts.splitStderr ?? true ? ['stderr'] : [])];
  const settled = await Promise.allSettled(ids.map((id) => connect(url(id))));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    for (const s of settled) if (s.status === 'fulfilled') s.value.terminate();
    // Usually the command failed to start and the change says why.
    const change = await waitChange(changeId, { timeoutMs: 10_000, allowError: true }).catch(() => undefined);
    if (change?.err) throw new ChangeError(change.err, change);
    throw new ConnectionError(
      `cannot connect to exec websockets of task ${taskId}: ${(failed.reason as Error).message}`,
      t.address,
      failed.reason,
    );
  }
  const [control, stdio, stderr] = settled.map((s) => (s as PromiseFulfilledResult<WebSocket>).value);
  const p = new ExecProcess(command, changeId, taskId, control!, stdio!, stderr, opts, waitChange);
  for (const ws of [control, stdio, stderr]) ws?.resume();
  return p;
}
