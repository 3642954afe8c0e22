import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { homedir } from 'node:os';
import type { Logger } from 'pino';
import { commandArgv } from '../plan/command.js';
import { serviceSettings } from '../plan/combine.js';
import type { Service } from '../plan/types.js';
import { LineSplitter, type LogStore } from '../logs/buffer.js';
import { normalizeUidGid, userEnvironment } from '../osutil/users.js';
import { trackChild, untrackChild } from '../osutil/children.js';
import { checkDir, DEFAULT_PATH, lookPath } from '../osutil/lookpath.js';
import { signalGroup } from '../osutil/signal.js';
import { nextBackoff } from './backoff.js';
import { canTransition, currentOf, type State } from './states.js';

/** A service counts as started once it stays up this long (Pebble's okay delay). */
export const OKAY_DELAY_MS = 1000;
/** After SIGKILL, how long to wait for the exit before reporting the process as stuck. */
const FAIL_DELAY_MS = 5000;
/** Output lines a failed start reports, like Pebble's "Most recent service output". */
const LAST_OUTPUT_LINES = 20;
/** How long a failed start waits for the pipes to hand over the last output. */
const OUTPUT_DRAIN_MS = 200;

/** A start that failed because the process exited during the okay delay; `output` is its last lines. */
export class StartError extends Error {
  constructor(
    message: string,
    readonly output: string[],
  ) {
    super(message);
  }
}

export interface RunnerDeps {
  log: Logger;
  logs: LogStore;
  /** Where service output is mirrored, prefixed with the service name (the sidecar's stdout). */
  echo: (line: string) => void;
}

/**
 * One service's process and state machine. Emits 'shutdown' (exitCode) when an action asks
 * the whole sidecar to stop, and 'state' on every transition.
 */
export class ServiceRunner extends EventEmitter {
  state: State = 'initial';
  currentSince = new Date();
  /** The configuration this service was last started with (replan compares against it). */
  config: Service;
  private proc?: ChildProcess;
  private backoffNum = 0;
  private backoffTime = 0;
  private timers = new Set<NodeJS.Timeout>();
  private restartAfterStop = false;
  private startWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private stopWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  /** The current process's last output lines, and when its pipes are closed. */
  private output: { lines: string[]; closed: Promise<unknown> } = { lines: [], closed: Promise.resolve() };
  lastExit?: { code: number | null; signal: NodeJS.Signals | null; at: Date };

  constructor(
    readonly name: string,
    config: Service,
    private readonly deps: RunnerDeps,
  ) {
    super();
    this.config = config;
  }

  get current() {
    return currentOf(this.state);
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get active(): boolean {
    return this.current === 'active';
  }

  private transition(to: State): void {
    if (!canTransition(this.state, to)) {
      throw new Error(`internal error: service ${this.name} cannot go from ${this.state} to ${to}`);
    }
    this.deps.log.debug({ service: this.name, from: this.state, to }, 'service state');
    this.state = to;
    this.currentSince = new Date();
    this.emit('state', to);
  }

  private after(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** Starts the service; resolves once it has stayed up past the okay delay. */
  start(config: Service): Promise<void> {
    if (this.state === 'starting' || this.state === 'running') return Promise.resolve();
    if (this.state === 'terminating' || this.state === 'killing') {
      return Promise.reject(new Error(`cannot start service while it is stopping`));
    }
    this.clearTimers();
    this.config = config;
    this.backoffNum = 0;
    this.backoffTime = 0;
    this.restartAfterStop = false;
    const p = new Promise<void>((resolve, reject) => this.startWaiters.push({ resolve, reject }));
    this.transition('starting');
    try {
      this.spawnProcess();
    } catch (e) {
      this.transition('stopped');
      this.settleStart(new Error(`cannot start service: ${(e as Error).message}`));
      return p;
    }
    this.after(OKAY_DELAY_MS, () => {
      if (this.state !== 'starting') return;
      this.transition('running');
      this.armBackoffReset();
      this.settleStart();
    });
    return p;
  }

  /** Stops the service: SIGTERM to its process group, SIGKILL after kill-delay. */
  stop(): Promise<void> {
    if (this.state === 'backoff') {
      this.clearTimers();
      this.transition('stopped');
      return Promise.resolve();
    }
    if (!this.active) return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.stopWaiters.push({ resolve, reject }));
    if (this.state === 'starting' || this.state === 'running') {
      this.restartAfterStop = false;
      this.terminate();
    }
    return p;
  }

  /** Restart because a check failed (on-check-failure: restart): goes through backoff like an exit. */
  restartForCheck(): void {
    if (this.state !== 'running') return;
    this.restartAfterStop = true;
    this.terminate();
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.proc?.pid || !this.active) throw new Error('service is not running');
    process.kill(this.proc.pid, sig);
  }

  private terminate(): void {
    this.clearTimers();
    this.transition('terminating');
    this.killGroup('SIGTERM');
    const killDelay = serviceSettings(this.config).killDelay;
    this.after(killDelay, () => {
      if (this.state !== 'terminating') return;
      this.deps.log.warn({ service: this.name, killDelayMs: killDelay }, 'service did not stop after SIGTERM; sending SIGKILL');
      this.transition('killing');
      this.killGroup('SIGKILL');
      this.after(FAIL_DELAY_MS, () => {
        if (this.state !== 'killing') return;
        // The process is stuck (e.g. uninterruptible sleep). Forget it rather than block forever.
        this.deps.log.error({ service: this.name, pid: this.proc?.pid }, 'service process still running after SIGKILL');
        this.proc = undefined;
        this.transition('stopped');
        this.settleStop(new Error('process still running after SIGKILL'));
      });
    });
  }

  private killGroup(sig: NodeJS.Signals): void {
    const pid = this.proc?.pid;
    if (pid) signalGroup(pid, sig);
  }

  private spawnProcess(): void {
    const cfg = this.config;
    const argv = commandArgv(cfg.command ?? '');
    const identity = normalizeUidGid({
      ...(cfg['user-id'] !== undefined ? { userId: cfg['user-id'] } : {}),
      ...(cfg.user !== undefined ? { user: cfg.user } : {}),
      ...(cfg['group-id'] !== undefined ? { groupId: cfg['group-id'] } : {}),
      ...(cfg.group !== undefined ? { group: cfg.group } : {}),
    });
    const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([, v]) => v !== undefined)) as Record<string, string>;
    const env = userEnvironment(identity, { ...baseEnv, ...cfg.environment });
    if (identity.user && !cfg.environment.HOME) env.HOME = identity.user.home;
    if (identity.user && !cfg.environment.USER) env.USER = identity.user.name;
    const cwd = cfg['working-dir'] ?? identity.user?.home ?? homedir();
    checkDir(cwd);
    const exe = lookPath(argv[0]!, env.PATH ?? DEFAULT_PATH, cwd);
    if (!exe) throw new Error(`cannot find executable ${JSON.stringify(argv[0])}${argv[0]!.includes('/') ? '' : ' in $PATH'}`);
    const child = spawn(exe, argv.slice(1), {
      argv0: argv[0]!,
      cwd,
      env,
      detached: true, // own process group, so stop reaches everything the service started
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(identity.uid !== undefined ? { uid: identity.uid } : {}),
      ...(identity.gid !== undefined ? { gid: identity.gid } : {}),
    });
    if (child.pid === undefined) {
      // Spawn errors (ENOENT, EACCES) arrive asynchronously; wait for them synchronously is impossible,
      // so report through the error event below and treat this as a failed start.
      child.once('error', () => undefined);
      throw new Error(`cannot spawn ${JSON.stringify(argv[0])}`);
    }
    trackChild(child.pid);
    this.proc = child;
    this.startCount++;
    this.deps.log.info({ service: this.name, pid: child.pid }, 'service started');
    const lines: string[] = [];
    const streams = [child.stdout!, child.stderr!];
    this.output = { lines, closed: Promise.all(streams.map((s) => new Promise((r) => s.once('close', r)))) };
    for (const stream of streams) {
      const splitter = new LineSplitter((line) => {
        lines.push(line.replace(/\n$/, ''));
        if (lines.length > LAST_OUTPUT_LINES) lines.shift();
        this.deps.logs.append(this.name, line);
        this.deps.echo(`${new Date().toISOString()} [${this.name}] ${line}`);
      });
      stream.on('data', (c: Buffer) => splitter.write(c));
      stream.on('end', () => splitter.end());
    }
    child.on('error', (e) => this.deps.log.warn({ service: this.name, err: e.message }, 'service process error'));
    child.on('exit', (code, signal) => {
      untrackChild(child.pid);
      if (this.proc !== child) return;
      this.onExit(code, signal);
    });
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    const pid = this.proc?.pid;
    this.lastExit = { code, signal, at: new Date() };
    // Orphans of the service (e.g. backends of a killed postmaster) would block a restart.
    if (pid) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* group already empty */
      }
    }
    this.proc = undefined;
    const how = signal ? `signal ${signal}` : `code ${code}`;
    this.clearTimers();
    switch (this.state) {
      case 'starting': {
        this.deps.log.warn({ service: this.name, code, signal }, 'service exited during start');
        this.transition('exited');
        // Report once the pipes are drained, so the start task can show the last output.
        const waiters = this.startWaiters.splice(0);
        const { lines, closed } = this.output;
        const err = new StartError(`cannot start service: exited quickly with ${how}`, lines);
        const drained = new Promise((r) => setTimeout(r, OUTPUT_DRAIN_MS).unref());
        void Promise.race([closed, drained]).then(() => waiters.forEach((w) => w.reject(err)));
        return;
      }
      case 'terminating':
      case 'killing': {
        if (this.restartAfterStop) {
          this.restartAfterStop = false;
          this.doBackoff();
        } else {
          this.transition('stopped');
        }
        this.deps.log.info({ service: this.name, code, signal }, 'service stopped');
        this.settleStop();
        return;
      }
      case 'running': {
        const s = serviceSettings(this.config);
        const success = code === 0;
        const action = success ? s.onSuccess : s.onFailure;
        this.deps.log.info({ service: this.name, code, signal, action }, `service exited with ${how}`);
        if (action === 'restart') {
          this.doBackoff();
        } else {
          this.transition('exited');
          if (action === 'shutdown' || action === 'success-shutdown' || action === 'failure-shutdown') {
            const exitCode = action === 'success-shutdown' ? 0 : action === 'failure-shutdown' ? 10 : success ? 0 : 10;
            this.emit('shutdown', exitCode);
          }
        }
        return;
      }
      default:
        this.deps.log.warn({ service: this.name, state: this.state }, 'unexpected exit');
    }
  }

  private doBackoff(): void {
    const s = serviceSettings(this.config);
    this.backoffNum++;
    this.backoffTime = nextBackoff(s, this.backoffTime);
    this.transition('backoff');
    this.deps.log.info({ service: this.name, attempt: this.backoffNum, waitMs: this.backoffTime }, 'service restarting after backoff');
    this.after(this.backoffTime, () => {
      if (this.state !== 'backoff') return;
      try {
        this.spawnProcess();
      } catch (e) {
        this.deps.log.error({ service: this.name, err: (e as Error).message }, 'cannot restart service');
        this.doBackoff();
        return;
      }
      this.transition('running');
      this.armBackoffReset();
    });
  }

  private armBackoffReset(): void {
    const limit = serviceSettings(this.config).backoffLimit;
    this.after(limit, () => {
      if (this.state === 'running') {
        this.backoffNum = 0;
        this.backoffTime = 0;
      }
    });
  }

  /** Times the service's process was started, restarts included (Pebble's pebble_service_start_count). */
  startCount = 0;

  /** Restarts done so far in the current backoff sequence (reported for tests and status). */
  get restarts(): number {
    return this.backoffNum;
  }

  private settleStart(err?: Error): void {
    const ws = this.startWaiters.splice(0);
    for (const w of ws) (err ? w.reject(err) : w.resolve());
  }

  private settleStop(err?: Error): void {
    const ws = this.stopWaiters.splice(0);
    for (const w of ws) (err ? w.reject(err) : w.resolve());
  }

  /** Used on sidecar exit: no more restarts, nothing pending. */
  dispose(): void {
    this.clearTimers();
  }
}
