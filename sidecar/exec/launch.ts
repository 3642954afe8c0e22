import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants as fsConstants, existsSync, fchownSync, openSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { PassThrough, type Readable } from 'node:stream';
import tty from 'node:tty';
import type { Logger } from 'pino';
import { trackChild, untrackChild } from '../osutil/children.js';
import type { ExecSetup } from './setup.js';

/**
 * Starting an exec'd process in one of Pebble's three I/O shapes:
 *
 * | terminal | interactive | stdin            | stdout          | stderr (split / merged)  |
 * | -------- | ----------- | ---------------- | --------------- | ------------------------ |
 * | no       | -           | pipe             | pipe            | own pipe / stdout's pipe |
 * | yes      | no          | pipe             | pty             | own pipe / pty           |
 * | yes      | yes         | pty (^D for EOF) | pty             | pty (node-pty has one)   |
 *
 * Every process leads its own session (and so process group), so a timeout or a
 * forwarded signal can reach everything it started.
 */
export interface ExecChild {
  readonly pid: number;
  /** Standard output; standard error too unless split. */
  readonly stdout: Readable;
  /** Only when stderr is split. */
  readonly stderr?: Readable;
  /** False means wait for `onStdinDrain` before writing more. */
  writeStdin(data: Buffer): boolean;
  onStdinDrain(cb: () => void): void;
  endStdin(): void;
  /** Terminal size; ignored without a terminal. */
  resize(width: number, height: number): void;
  /** Resolves with the exit code; a signal death is 128+signal, as Pebble reports it. */
  readonly exit: Promise<number>;
  /** Stops reading output that a leftover background process keeps open. */
  closeOutput(): void;
}

const DEFAULT_COLS = 80;
const DEFAULT_ROWS = 25;
const VEOF = Buffer.from([4]);

export function exitCodeOf(code: number | null, signal: NodeJS.Signals | number | null | undefined): number {
  if (typeof signal === 'string') return 128 + (osConstants.signals[signal] ?? 0);
  if (typeof signal === 'number' && signal > 0) return 128 + signal;
  return code ?? -1;
}

export async function launch(setup: ExecSetup, log: Logger): Promise<ExecChild> {
  if (setup.terminal && setup.interactive) return launchInteractive(setup, log);
  if (setup.terminal) return launchTerminal(setup);
  return launchPipes(setup);
}

/** child_process.spawn fails asynchronously; wait until it either has a pid or an error. */
function started(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    if (child.pid !== undefined) {
      resolve(child.pid);
      return;
    }
    child.once('error', reject);
    child.once('spawn', () => resolve(child.pid!));
  });
}

/**
 * Registers the child with the orphan reaper's exclusion list at once (before any
 * exit could be reaped by someone else) and resolves with its exit code.
 */
function exitOf(child: ChildProcess): Promise<number> {
  const pid = child.pid;
  trackChild(pid);
  // Later 'error' events (a failed kill, say) must not go unhandled and crash the sidecar.
  child.on('error', () => {});
  return new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      untrackChild(pid);
      resolve(exitCodeOf(code, signal));
    }),
  );
}

function spawnOptions(setup: ExecSetup) {
  return {
    cwd: setup.workingDir,
    env: setup.environment,
    argv0: setup.command[0],
    // setsid(): own session and process group, no controlling terminal.
    detached: true,
    // libuv calls setgroups(0) when switching user, so supplementary groups are dropped.
    ...(setup.uid !== undefined ? { uid: setup.uid, gid: setup.gid } : {}),
  };
}

function pipeStdin(child: ChildProcess): Pick<ExecChild, 'writeStdin' | 'onStdinDrain' | 'endStdin'> {
  const stdin = child.stdin!;
  // EPIPE when the process exits without reading its input is not our error.
  stdin.on('error', () => {});
  return {
    writeStdin: (data) => (stdin.destroyed ? true : stdin.write(data)),
    onStdinDrain: (cb) => stdin.once('drain', cb),
    endStdin: () => {
      if (!stdin.destroyed) stdin.end();
    },
  };
}

function shellPath(): string | undefined {
  return existsSync('/bin/sh') ? '/bin/sh' : undefined;
}

async function launchPipes(setup: ExecSetup): Promise<ExecChild> {
  const [, ...args] = setup.command;
  let child: ChildProcess;
  let merged: PassThrough | undefined;
  const sh = shellPath();
  if (!setup.splitStderr && sh) {
    // Node cannot hand one pipe to both fd 1 and fd 2; `exec 2>&1` in the child does,
    // keeping stdout and stderr in the order they were written (Pebble shares the pipe).
    child = spawn(sh, ['-c', 'exec 2>&1; exec "$@"', setup.command[0]!, setup.executable, ...args], {
      ...spawnOptions(setup),
      argv0: 'sh',
      stdio: ['pipe', 'pipe', 'ignore'],
    });
  } else {
    child = spawn(setup.executable, args, { ...spawnOptions(setup), stdio: ['pipe', 'pipe', 'pipe'] });
    if (!setup.splitStderr) merged = mergeStreams(child.stdout!, child.stderr!);
  }
  const exit = exitOf(child);
  const pid = await started(child);
  const stdout = merged ?? child.stdout!;
  const stderr = setup.splitStderr ? child.stderr! : undefined;
  return {
    pid,
    stdout,
    stderr,
    ...pipeStdin(child),
    resize: () => {},
    exit,
    closeOutput: () => {
      child.stdout?.destroy();
      child.stderr?.destroy();
      merged?.end();
    },
  };
}

/** Fallback when there is no /bin/sh: interleaves at chunk granularity. */
function mergeStreams(a: Readable, b: Readable): PassThrough {
  const out = new PassThrough();
  let open = 2;
  for (const s of [a, b]) {
    s.on('data', (chunk: Buffer) => {
      if (!out.write(chunk)) {
        a.pause();
        b.pause();
        out.once('drain', () => {
          a.resume();
          b.resume();
        });
      }
    });
    const done = () => {
      if (--open === 0) out.end();
    };
    s.once('end', done);
    s.once('close', () => {
      if (!s.readableEnded) done();
    });
  }
  return out;
}

/** The parts of node-pty's native binding used here; it is exported but not typed. */
interface NativePty {
  open(cols: number, rows: number): { master: number; slave: number; pty: string };
  resize(fd: number, cols: number, rows: number): void;
}

/** node-pty (and its native addon) is loaded with the first command given a terminal, not with the sidecar. */
async function loadPty(): Promise<typeof import('node-pty')> {
  return (await import('node-pty')).default;
}

async function nativePty(): Promise<NativePty> {
  // node-pty exposes its native binding as `native` (untyped); openpty is only reachable there.
  const native = ((await loadPty()) as unknown as { native: NativePty | null }).native;
  if (!native) throw new Error('pseudo-terminals are not supported on this platform');
  return native;
}

/**
 * Non-interactive terminal: stdout (and stderr unless split) on a pty, stdin a pipe,
 * no controlling terminal, exactly Pebble's layout. openpty gives the slave in
 * non-blocking mode; the child gets a fresh blocking open of it instead, since many
 * programs fail on EAGAIN when writing to a non-blocking stdout.
 */
async function launchTerminal(setup: ExecSetup): Promise<ExecChild> {
  const native = await nativePty();
  const cols = setup.width > 0 ? setup.width : DEFAULT_COLS;
  const rows = setup.height > 0 ? setup.height : DEFAULT_ROWS;
  const term = native.open(cols, rows);
  let slave: number;
  try {
    slave = openSync(term.pty, fsConstants.O_RDWR | fsConstants.O_NOCTTY);
  } finally {
    closeSync(term.slave);
  }
  let child: ChildProcess;
  try {
    // Pebble hands the pty to the target user (ptyutil.OpenPty(uid, gid)).
    if (setup.uid !== undefined) fchownSync(slave, setup.uid, setup.gid ?? -1);
    const [, ...args] = setup.command;
    child = spawn(setup.executable, args, {
      ...spawnOptions(setup),
      stdio: ['pipe', slave, setup.splitStderr ? 'pipe' : slave],
    });
  } catch (e) {
    closeSync(slave);
    closeSync(term.master);
    throw e;
  }
  // Not ours to hold: once the child and its descendants close it, the master reads EIO.
  closeSync(slave);
  const master = new tty.ReadStream(term.master);
  // EIO is how a pty says the other side is gone; the stream then closes.
  master.on('error', () => {});
  const exit = exitOf(child);
  try {
    await started(child);
  } catch (e) {
    master.destroy();
    throw e;
  }
  const out = new PassThrough();
  master.pipe(out);
  master.once('close', () => {
    if (!out.writableEnded) out.end();
  });
  return {
    pid: child.pid!,
    stdout: out,
    stderr: setup.splitStderr ? child.stderr! : undefined,
    ...pipeStdin(child),
    resize: (width, height) => {
      if (!master.destroyed) native.resize(term.master, width, height);
    },
    exit,
    closeOutput: () => {
      master.destroy();
      child.stderr?.destroy();
    },
  };
}

let groupsChecked = false;

/**
 * forkpty + setuid in node-pty does not call setgroups, so the child would keep the
 * sidecar's supplementary groups. Root does not need them (it owns or overrides what
 * it touches), so they are dropped once, before the first terminal runs as someone else.
 */
function dropSupplementaryGroups(log: Logger): void {
  if (groupsChecked) return;
  groupsChecked = true;
  if (process.getuid?.() !== 0 || !process.setgroups) return;
  let groups = '';
  try {
    groups = /^Groups:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]?.trim() ?? '';
  } catch {
    return;
  }
  if (!groups) return;
  try {
    process.setgroups([]);
    log.info({ groups }, 'dropped the sidecar supplementary groups so terminal commands do not inherit them');
  } catch (e) {
    log.warn({ err: e }, 'cannot drop supplementary groups; terminal commands run as another user will inherit them');
  }
}

/**
 * Interactive terminal: the pty is stdin, stdout and stderr and the controlling
 * terminal (so ^C reaches the foreground job), which needs forkpty: node-pty.
 * node-pty has a single output, so a split stderr cannot be honoured here; the
 * stderr stream is then empty.
 */
async function launchInteractive(setup: ExecSetup, log: Logger): Promise<ExecChild> {
  if (setup.uid !== undefined) dropSupplementaryGroups(log);
  const [, ...args] = setup.command;
  const pty = await loadPty();
  const term = pty.spawn(setup.executable, args, {
    name: setup.environment.TERM ?? 'xterm',
    cols: setup.width > 0 ? setup.width : DEFAULT_COLS,
    rows: setup.height > 0 ? setup.height : DEFAULT_ROWS,
    cwd: setup.workingDir,
    env: setup.environment,
    encoding: null,
    ...(setup.uid !== undefined ? { uid: setup.uid, gid: setup.gid } : {}),
  });
  trackChild(term.pid);
  const out = new PassThrough();
  let exited = false;
  // With encoding null node-pty delivers Buffers although it is typed as string.
  term.onData((d: string | Buffer) => {
    if (out.writableEnded) return;
    if (!out.write(typeof d === 'string' ? Buffer.from(d) : d)) term.pause();
  });
  out.on('drain', () => term.resume());
  // node-pty reports exit only after the pty output was drained (or 200ms passed).
  const exit = new Promise<number>((resolve) =>
    term.onExit(({ exitCode, signal }) => {
      exited = true;
      untrackChild(term.pid);
      out.end();
      resolve(exitCodeOf(exitCode, signal));
    }),
  );
  const stderr = setup.splitStderr ? new PassThrough() : undefined;
  stderr?.end();
  let ended = false;
  return {
    pid: term.pid,
    stdout: out,
    stderr,
    writeStdin: (data) => {
      if (!ended && !exited) term.write(data);
      return true;
    },
    onStdinDrain: (cb) => cb(),
    endStdin: () => {
      // The pty stays open for output; ^D is end-of-input to the line discipline.
      if (!ended && !exited) term.write(VEOF);
      ended = true;
    },
    resize: (width, height) => {
      if (!exited) term.resize(width, height);
    },
    exit,
    closeOutput: () => {
      if (!out.writableEnded) out.end();
    },
  };
}

/** Signals the process group the command leads, falling back to the process itself. */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}
