import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { stringify as toYaml } from '#yaml';
import { APIError, ChangeError, ProtocolError, TimeoutError } from './errors.js';
import { startExec, type ExecOptions, type ExecProcess } from './exec.js';
import * as files from './files.js';
import { readLogs, type LogsOptions } from './logs.js';
import { Transport, type Endpoint } from './transport.js';
import type {
  Change,
  ChangeSelect,
  CheckInfo,
  CheckLevel,
  FileInfo,
  HealthInfo,
  Identity,
  LogEntry,
  Notice,
  ServiceInfo,
  SystemInfo,
} from './types.js';

export type PebbleClientOptions = Endpoint;

export interface WaitChangeOptions {
  /** Give up (TimeoutError) after this long; absent waits until the change is ready. */
  timeoutMs?: number;
  /** Return a failed change instead of throwing ChangeError. */
  allowError?: boolean;
}

export interface ChecksOptions {
  level?: CheckLevel;
  names?: readonly string[];
}

export interface NoticesOptions {
  types?: readonly string[];
  keys?: readonly string[];
  /** Only notices repeated after this time. */
  after?: Date | string;
  userId?: number;
  /** "all" lists every user's notices (root only). */
  users?: 'all';
  /** Long-poll: wait up to this long for a matching notice. */
  timeoutMs?: number;
}

export interface NotifyOptions {
  /** For custom notices: "example.com/path" form. */
  key: string;
  data?: Record<string, string>;
  /** Do not record a repeat of this notice within this long. */
  repeatAfterMs?: number;
  type?: 'custom';
}

/** Go duration text for a millisecond count ("1.500s"); Go's ParseDuration and ours read it. */
export const goDuration = (ms: number): string => `${(ms / 1000).toFixed(3)}s`;

/** Longest single /wait request: long waits are split so no connection idles for hours. */
const WAIT_CHUNK_MS = 60_000;
const POLL_MS = 100;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The socket the CLI talks to: $PEBBLE_SOCKET, else $PEBBLE/.pebble.socket (as pebble does). */
export function socketPathFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  if (env['PEBBLE_SOCKET']) return env['PEBBLE_SOCKET'];
  if (env['PEBBLE']) return join(env['PEBBLE'], '.pebble.socket');
  throw new Error('cannot find the sidecar socket: set PEBBLE_SOCKET, or PEBBLE to the sidecar directory');
}

/**
 * Typed client for the sidecar's Pebble-compatible API (and for Pebble itself), modelled
 * on ops.pebble.Client and pebble's Go client. Results keep the wire shape (see types.ts).
 */
export class PebbleClient {
  readonly transport: Transport;

  constructor(opts: PebbleClientOptions) {
    this.transport = new Transport(opts);
  }

  static fromEnvironment(env: NodeJS.ProcessEnv = process.env): PebbleClient {
    return new PebbleClient({ socketPath: socketPathFromEnv(env) });
  }

  private async get<T>(path: string, query?: Record<string, string | number | readonly string[] | undefined>): Promise<T> {
    return (await this.transport.call({ method: 'GET', path, query })).result as T;
  }

  private async post<T>(path: string, json: unknown): Promise<T> {
    return (await this.transport.call({ method: 'POST', path, json })).result as T;
  }

  private async postAsync(path: string, json: unknown): Promise<string> {
    const env = await this.transport.call({ method: 'POST', path, json });
    if (typeof env.change !== 'string') throw new APIError(env['status-code'], undefined, `${path} did not return a change id`);
    return env.change;
  }

  // System

  getSystemInfo(): Promise<SystemInfo> {
    return this.get('/v1/system-info');
  }

  /** The sidecar's own log level (a pgcharm extension: a real Pebble answers 404). */
  async getLogLevel(): Promise<string> {
    return (await this.get<{ level: string }>('/v1/log-level')).level;
  }

  /** Sets the sidecar's own log level at once (a pgcharm extension: a real Pebble answers 404). */
  async setLogLevel(level: string): Promise<void> {
    await this.post<unknown>('/v1/log-level', { level });
  }

  /** Healthy when every selected check is up; "ready" includes "alive" checks. */
  getHealth(opts: ChecksOptions = {}): Promise<HealthInfo> {
    return this.get('/v1/health', { level: opts.level || undefined, names: opts.names?.length ? opts.names : undefined });
  }

  // Services

  getServices(names?: readonly string[]): Promise<ServiceInfo[]> {
    return this.get('/v1/services', { names: names?.length ? names : undefined });
  }

  /** Each of these returns the change id at once; waitChange() waits for it. */
  start(services: readonly string[]): Promise<string> {
    return this.servicesAction('start', services);
  }

  stop(services: readonly string[]): Promise<string> {
    return this.servicesAction('stop', services);
  }

  restart(services: readonly string[]): Promise<string> {
    return this.servicesAction('restart', services);
  }

  replan(): Promise<string> {
    return this.servicesAction('replan', []);
  }

  autostart(): Promise<string> {
    return this.servicesAction('autostart', []);
  }

  private servicesAction(action: string, services: readonly string[]): Promise<string> {
    if (!Array.isArray(services) || services.some((s) => typeof s !== 'string')) {
      throw new TypeError('services must be a list of service names');
    }
    return this.postAsync('/v1/services', { action, services });
  }

  sendSignal(signal: string, services: readonly string[]): Promise<void> {
    return this.post<unknown>('/v1/signals', { signal, services }).then(() => undefined);
  }

  // Changes

  getChanges(opts: { select?: ChangeSelect; service?: string } = {}): Promise<Change[]> {
    return this.get('/v1/changes', { select: opts.select ?? 'in-progress', for: opts.service || undefined });
  }

  getChange(id: string): Promise<Change> {
    return this.get(`/v1/changes/${encodeURIComponent(id)}`);
  }

  abortChange(id: string): Promise<Change> {
    return this.post(`/v1/changes/${encodeURIComponent(id)}`, { action: 'abort' });
  }

  /**
   * Waits until the change is ready (GET /v1/changes/{id}/wait; 504 means the server-side
   * timeout passed). Throws ChangeError when it failed unless allowError, TimeoutError when
   * timeoutMs passed first. Servers without the wait endpoint are polled.
   */
  async waitChange(id: string, opts: WaitChangeOptions = {}): Promise<Change> {
    const deadline = opts.timeoutMs !== undefined ? Date.now() + opts.timeoutMs : undefined;
    const timedOut = () =>
      new TimeoutError(`timed out waiting for change ${id} (${goDuration(opts.timeoutMs ?? 0)})`, id);
    let change: Change | undefined;
    for (;;) {
      const left = deadline === undefined ? WAIT_CHUNK_MS : Math.min(deadline - Date.now(), WAIT_CHUNK_MS);
      if (left <= 0) throw timedOut();
      try {
        change = await this.get<Change>(`/v1/changes/${encodeURIComponent(id)}/wait`, { timeout: goDuration(left) });
        break;
      } catch (e) {
        if (e instanceof APIError && e.status === 504) continue;
        if (e instanceof APIError && e.status === 404) {
          change = await this.pollChange(id, deadline, timedOut);
          break;
        }
        throw e;
      }
    }
    if (change.err && !opts.allowError) throw new ChangeError(change.err, change);
    return change;
  }

  /** For servers without /wait; getChange() reports an unknown change as APIError 404. */
  private async pollChange(id: string, deadline: number | undefined, timedOut: () => Error): Promise<Change> {
    for (;;) {
      const change = await this.getChange(id);
      if (change.ready) return change;
      if (deadline !== undefined && Date.now() >= deadline) throw timedOut();
      await sleep(POLL_MS);
    }
  }

  // Plan

  /** Adds a layer on top (or merges into the layer with that label when combine is set). */
  async addLayer(label: string, layer: string | Record<string, unknown>, opts: { combine?: boolean } = {}): Promise<void> {
    if (typeof label !== 'string' || label === '') throw new TypeError('label must be a non-empty string');
    const text = typeof layer === 'string' ? layer : toYaml(layer);
    await this.post('/v1/layers', { action: 'add', combine: opts.combine ?? false, label, format: 'yaml', layer: text });
  }

  /** The combined plan as YAML. */
  getPlan(): Promise<string> {
    return this.get('/v1/plan', { format: 'yaml' });
  }

  // Checks

  getChecks(opts: ChecksOptions = {}): Promise<CheckInfo[]> {
    return this.get('/v1/checks', { level: opts.level || undefined, names: opts.names?.length ? opts.names : undefined });
  }

  // Files

  listFiles(path: string, opts?: files.ListFilesOptions): Promise<FileInfo[]> {
    return files.listFiles(this.transport, path, opts);
  }

  pull(path: string): Promise<Buffer> {
    return files.pull(this.transport, path);
  }

  /** Streams a file's content; resolves once it starts arriving, rejects with PathError if it cannot be read. */
  pullStream(path: string, signal?: AbortSignal): Promise<Readable> {
    return files.pullStream(this.transport, path, signal);
  }

  push(path: string, data: Buffer | string | Readable, opts?: files.PushOptions): Promise<void> {
    return files.push(this.transport, path, data, opts);
  }

  makeDir(path: string, opts?: files.MakeDirOptions): Promise<void> {
    return files.makeDir(this.transport, path, opts);
  }

  removePath(path: string, opts?: { recursive?: boolean }): Promise<void> {
    return files.removePath(this.transport, path, opts);
  }

  // Logs

  /** Buffered log entries (the server's default is the last 30; n: -1 for all). */
  async getLogs(opts: Omit<LogsOptions, 'signal'> = {}): Promise<LogEntry[]> {
    const out: LogEntry[] = [];
    for await (const e of readLogs(this.transport, opts, false)) out.push(e);
    return out;
  }

  /** Entries as they are written, until opts.signal aborts or the loop breaks. */
  followLogs(opts: LogsOptions = {}): AsyncGenerator<LogEntry> {
    return readLogs(this.transport, opts, true);
  }

  // Notices

  getNotices(opts: NoticesOptions = {}): Promise<Notice[]> {
    const after = opts.after instanceof Date ? opts.after.toISOString() : opts.after;
    return this.get('/v1/notices', {
      types: opts.types?.length ? opts.types : undefined,
      keys: opts.keys?.length ? opts.keys : undefined,
      after,
      'user-id': opts.userId,
      users: opts.users,
      timeout: opts.timeoutMs !== undefined ? goDuration(opts.timeoutMs) : undefined,
    });
  }

  getNotice(id: string): Promise<Notice> {
    if (!/^[a-z0-9]+$/.test(id)) throw new TypeError(`invalid notice id ${JSON.stringify(id)}`);
    return this.get(`/v1/notices/${id}`);
  }

  /** Records a custom notice; returns its id. */
  async notify(opts: NotifyOptions): Promise<string> {
    const body: Record<string, unknown> = { action: 'add', type: opts.type ?? 'custom', key: opts.key };
    if (opts.data && Object.keys(opts.data).length) body['data'] = opts.data;
    if (opts.repeatAfterMs) body['repeat-after'] = goDuration(opts.repeatAfterMs);
    const result = await this.post<{ id?: unknown }>('/v1/notices', body);
    return String(result?.id);
  }

  // Identities (pebble's Go client: Identities, AddIdentities, ...; ops: get_identities, replace_identities, remove_identities)

  /** Every identity by name; basic passwords come back as "*****". */
  async getIdentities(): Promise<Record<string, Identity>> {
    const result = (await this.get<Record<string, Identity | null> | null>('/v1/identities')) ?? {};
    for (const [name, identity] of Object.entries(result)) {
      if (identity === null) throw new ProtocolError(`server returned null identity ${JSON.stringify(name)}`);
    }
    return result as Record<string, Identity>;
  }

  /** Adds new identities; none of the names may exist yet. */
  addIdentities(identities: Readonly<Record<string, Identity>>): Promise<void> {
    return this.postIdentities('add', identities);
  }

  /** Updates existing identities; every name must exist. */
  updateIdentities(identities: Readonly<Record<string, Identity>>): Promise<void> {
    return this.postIdentities('update', identities);
  }

  /** Adds or updates each named identity, and removes those given as null. */
  replaceIdentities(identities: Readonly<Record<string, Identity | null>>): Promise<void> {
    return this.postIdentities('replace', identities);
  }

  /** Removes the named identities; every name must exist. */
  removeIdentities(names: Iterable<string>): Promise<void> {
    return this.postIdentities('remove', Object.fromEntries([...names].map((name) => [name, null])));
  }

  private async postIdentities(action: string, identities: Readonly<Record<string, Identity | null>>): Promise<void> {
    await this.post<unknown>('/v1/identities', { action, identities });
  }

  // Exec

  /** Starts a command; see ExecOptions for I/O. `await (await client.exec(cmd)).waitOutput()` runs it to the end. */
  exec(command: readonly string[], opts?: ExecOptions): Promise<ExecProcess> {
    return startExec(this.transport, (id, o) => this.waitChange(id, o), command, opts);
  }
}
