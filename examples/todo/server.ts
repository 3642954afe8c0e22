/**
 * The sample "todo" charm's workload: a small HTTP service over PostgreSQL, run by the
 * sidecar like any other service.
 *
 * It reads its database settings from files the charm writes (never from env values):
 *
 *   DB_USERNAME_FILE   the login role
 *   DB_PASSWORD_FILE   its password (a trailing newline is not part of it)
 *   DB_ENDPOINTS_FILE  `host:port`, or a comma-separated list: the first that answers as a
 *                      writable primary is used
 *   DB_NAME            the database (a plain env value)
 *   PORT, HOST         where to listen (HOST defaults to 127.0.0.1)
 *   DB_SSLMODE         accepted and ignored: no TLS yet
 *
 * It listens at once. Each request stats the three files (no timers at idle): while one is
 * missing or empty every route but 404 answers 503; when their stat signature changes they
 * are read again, and a pool is (re)built only if what they say changed. Old pooled
 * connections keep working until then, so a password rotation (ALTER ROLE, then the file)
 * costs no failed request.
 *
 * A statement that fails because of the connection, a read-only (fenced) server or
 * authentication is retried once, after re-reading the files (and rebuilding the pool when
 * they changed or the connections are suspect); see shouldRetry for which writes are retried.
 *
 *   GET  /health        200 {"ready":true} | 503 {"ready":false,"reason":...}
 *   POST /todos         {"title":...} -> 201 {"id":N} (acknowledged by Postgres) | 400 | 503
 *   GET  /todos?limit=N 200 {"count":total,"items":[...]} (newest first)
 *   GET  /todos/:id     200 {...} | 404
 */
import http from 'node:http';
import { realpathSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { pino, type Logger } from 'pino';

const POOL_MAX = 4;
const CONNECT_TIMEOUT_MS = 2000;
/** A query with no answer for this long (a partitioned primary) fails, and its connection is dropped. */
const QUERY_TIMEOUT_MS = 10_000;
const MAX_BODY_BYTES = 16 * 1024;
const MAX_TITLE = 500;
const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 1000;

// ---------------------------------------------------------------------------------------------
// Pure parts: settings, endpoints, error classification, request validation.

export interface Sources {
  usernameFile?: string;
  passwordFile?: string;
  endpointsFile?: string;
  database?: string;
}

export interface Endpoint {
  host: string;
  port: number;
}

export interface Credentials {
  user: string;
  password: string;
  endpoints: Endpoint[];
  database: string;
}

export function sourcesFromEnv(env: NodeJS.ProcessEnv): Sources {
  return {
    usernameFile: env.DB_USERNAME_FILE || undefined,
    passwordFile: env.DB_PASSWORD_FILE || undefined,
    endpointsFile: env.DB_ENDPOINTS_FILE || undefined,
    database: env.DB_NAME || undefined,
  };
}

/** `host:port[,host:port...]` (also `[v6]:port`; the port defaults to 5432). Throws on a bad entry. */
export function parseEndpoints(text: string): Endpoint[] {
  return text
    .split(/[,\s]+/)
    .filter(Boolean)
    .map((s) => {
      const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(s);
      const port = m?.[2] === undefined ? 5432 : Number(m[2]);
      if (!m || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad endpoint "${s}": want host:port`);
      return { host: m[1]!, port };
    });
}

export const endpointText = (e: Endpoint): string => (e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`);

/** What differs between two readings of the files, in words for the rebuild log line. */
export function changes(a: Credentials, b: Credentials): string[] {
  const out: string[] = [];
  if (a.endpoints.map(endpointText).join(',') !== b.endpoints.map(endpointText).join(',')) out.push('endpoint changed');
  if (a.user !== b.user || a.password !== b.password) out.push('credentials changed');
  if (a.database !== b.database) out.push('database changed');
  return out;
}

/**
 * A failed statement's code: its SQLSTATE, the socket's errno code, or one of
 * pool-timeout (every pooled connection busy), connect-timeout, query-timeout, terminated.
 */
export function errorCode(e: unknown): string {
  if (e instanceof pg.DatabaseError) return e.code ?? 'database-error';
  const err = e as { code?: unknown; message?: unknown; errors?: unknown[] } | undefined;
  if (typeof err?.code === 'string') return err.code;
  // Node 20 may report a refused connection to a name with several addresses as an AggregateError.
  if (Array.isArray(err?.errors) && err.errors.length > 0) return errorCode(err.errors[0]);
  const m = typeof err?.message === 'string' ? err.message : String(e);
  if (/timeout exceeded when trying to connect/i.test(m)) return 'pool-timeout';
  if (/connection timeout/i.test(m)) return 'connect-timeout';
  if (/query read timeout/i.test(m)) return 'query-timeout';
  if (/connection terminated|not queryable|connection (ended|closed)/i.test(m)) return 'terminated';
  return 'unknown';
}

export type ErrorKind = 'connection' | 'read-only' | 'auth' | 'busy' | 'other';

const CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'terminated', 'connect-timeout', 'query-timeout',
  '57P01', // admin_shutdown: fast shutdown, or pg_terminate_backend
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up, shutting down, in recovery without hot standby
]);

export function errorKind(code: string): ErrorKind {
  if (CONNECTION_CODES.has(code) || code.startsWith('08')) return 'connection';
  if (code === '25006') return 'read-only'; // read_only_sql_transaction: a standby, or a fenced old primary
  if (code === '28P01' || code === '28000') return 'auth';
  if (code === 'pool-timeout') return 'busy';
  return 'other';
}

/**
 * Whether a failed statement may run again (once). A retried write must not risk being
 * applied twice, so a write is retried only when Postgres cannot have executed it:
 *
 *   kind        failed at connect   failed during the statement
 *   connection  retry               read: retry; write: no (it may have committed: 503)
 *   read-only   retry               retry (25006 rejects the statement before it runs)
 *   auth        retry               (only happens at connect)
 *   busy/other  no                  no
 */
export function shouldRetry(kind: ErrorKind, phase: 'connect' | 'statement', statement: 'read' | 'write'): boolean {
  switch (kind) {
    case 'connection':
      return phase === 'connect' || statement === 'read';
    case 'read-only':
    case 'auth':
      return true;
    case 'busy':
    case 'other':
      return false;
  }
}

/**
 * Whether an error makes the server suspect, so that the endpoints are probed again for the
 * primary (at most once a second) even though the files did not change. An authentication
 * failure with unchanged files would fail the same everywhere.
 */
export const suspect = (kind: ErrorKind): boolean => kind === 'connection' || kind === 'read-only';

/**
 * After a suspect error, with unchanged files: whether to replace the pool. Yes when the
 * probe chose another endpoint, or when the pool's other connections are likely useless (a
 * read-only server's, or ones a dead server dropped under a statement). Not when only a new
 * connection was refused by the same endpoint: the new pool would be the same, and would
 * only add a rebuild per request while the server is down.
 */
export function rebuildAfterError(kind: ErrorKind, phase: 'connect' | 'statement', sameEndpoint: boolean): boolean {
  return !sameEndpoint || kind === 'read-only' || (kind === 'connection' && phase === 'statement');
}

/** Error-triggered probes with unchanged files: at most one per this long. */
const REPROBE_MS = 1000;

export function parseTodo(body: string): { title: string } | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch (e) {
    return { error: `invalid JSON body: ${(e as Error).message}` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { error: 'the body must be a JSON object with a "title" string' };
  const title = (v as Record<string, unknown>).title;
  if (title === undefined || title === null) return { error: '"title" is required' };
  if (typeof title !== 'string') return { error: '"title" must be a string' };
  if (title.trim() === '') return { error: '"title" must not be empty' };
  if (title.length > MAX_TITLE) return { error: `"title" must be at most ${MAX_TITLE} characters` };
  return { title };
}

export function parseLimit(raw: string | null): number | { error: string } {
  if (raw === null) return DEFAULT_LIMIT;
  const n = /^\d{1,7}$/.test(raw) ? Number(raw) : NaN;
  return n >= 1 && n <= MAX_LIMIT ? n : { error: `"limit" must be an integer from 1 to ${MAX_LIMIT}` };
}

// ---------------------------------------------------------------------------------------------
// Effects: the files, the pool.

/** The settings are not there (yet): the reason, for a 503. */
export class NotReady extends Error {}

/** The database did not answer (after the one retry allowed). */
export class Unavailable extends Error {
  constructor(readonly code: string, cause: unknown) {
    super(`database unavailable (${code}): ${(cause as Error)?.message ?? String(cause)}`);
  }
}

/** A statement's failure, and whether it happened before the statement was sent. */
class Failed extends Error {
  constructor(readonly error: unknown, readonly phase: 'connect' | 'statement') {
    super((error as Error)?.message ?? String(error));
  }
}

const FILES = [
  ['DB_USERNAME_FILE', 'usernameFile'],
  ['DB_PASSWORD_FILE', 'passwordFile'],
  ['DB_ENDPOINTS_FILE', 'endpointsFile'],
] as const;

/** The three files' stat signature (inode, size, mtime, ctime), or why they are not usable. */
async function signature(src: Sources): Promise<{ sig: string } | { reason: string }> {
  if (!src.database) return { reason: 'DB_NAME is not set' };
  const parts: string[] = [];
  for (const [name, key] of FILES) {
    const path = src[key];
    if (!path) return { reason: `${name} is not set` };
    try {
      const s = await stat(path, { bigint: true });
      if (!s.isFile()) return { reason: `${name} (${path}) is not a file` };
      if (s.size === 0n) return { reason: `${name} (${path}) is empty` };
      parts.push(`${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return { reason: code === 'ENOENT' ? `${name} (${path}) does not exist yet` : `${name} (${path}): ${code ?? (e as Error).message}` };
    }
  }
  return { sig: parts.join('|') };
}

async function readCredentials(src: Sources): Promise<Credentials> {
  const read = async (name: string, path: string | undefined) => {
    try {
      return await readFile(path!, 'utf8');
    } catch (e) {
      throw new NotReady(`${name} (${path}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const user = (await read('DB_USERNAME_FILE', src.usernameFile)).trim();
  const password = (await read('DB_PASSWORD_FILE', src.passwordFile)).replace(/\r?\n$/, '');
  const endpointsText = await read('DB_ENDPOINTS_FILE', src.endpointsFile);
  let endpoints: Endpoint[];
  try {
    endpoints = parseEndpoints(endpointsText);
  } catch (e) {
    throw new NotReady(`DB_ENDPOINTS_FILE (${src.endpointsFile}): ${(e as Error).message}`);
  }
  if (!user) throw new NotReady(`DB_USERNAME_FILE (${src.usernameFile}) is empty`);
  if (!password) throw new NotReady(`DB_PASSWORD_FILE (${src.passwordFile}) is empty`);
  if (endpoints.length === 0) throw new NotReady(`DB_ENDPOINTS_FILE (${src.endpointsFile}) lists no endpoint`);
  return { user, password, endpoints, database: src.database! };
}

const connection = (c: Credentials, e: Endpoint) => ({
  host: e.host,
  port: e.port,
  user: c.user,
  password: c.password,
  database: c.database,
  ssl: false as const, // no TLS yet; also keeps a stray PGSSLMODE from turning it on
  connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  query_timeout: QUERY_TIMEOUT_MS,
  keepAlive: true,
  application_name: 'todo',
});

type Role = 'primary' | 'read-only' | 'down';

async function probe(c: Credentials, e: Endpoint): Promise<Role> {
  const client = new pg.Client(connection(c, e));
  client.on('error', () => {});
  try {
    await client.connect();
    const r = await client.query<{ ro: boolean }>(`SELECT pg_is_in_recovery() OR current_setting('transaction_read_only')::bool AS ro`);
    return r.rows[0]?.ro ? 'read-only' : 'primary';
  } catch {
    return 'down';
  } finally {
    client.end().catch(() => {});
  }
}

/**
 * The first endpoint that answers as a writable primary; else the first that answers; else
 * `current` if still listed (nothing says it moved); else the first.
 */
async function choose(c: Credentials, current?: Endpoint): Promise<{ endpoint: Endpoint; probes?: Record<string, Role> }> {
  if (c.endpoints.length === 1) return { endpoint: c.endpoints[0]! };
  const roles = await Promise.all(c.endpoints.map((e) => probe(c, e)));
  const kept = current ? c.endpoints.findIndex((e) => endpointText(e) === endpointText(current)) : -1;
  const at = [roles.indexOf('primary'), roles.indexOf('read-only'), kept, 0].find((i) => i >= 0)!;
  return { endpoint: c.endpoints[at]!, probes: Object.fromEntries(c.endpoints.map((e, i) => [endpointText(e), roles[i]!])) };
}

interface AfterError {
  code: string;
  kind: ErrorKind;
  phase: 'connect' | 'statement';
}

interface Generation {
  n: number;
  pool: pg.Pool;
  creds: Credentials;
  endpoint: Endpoint;
  /** The files' signature when last read. */
  sig: string;
}

/** The pool, kept in step with the files, and statements run on it with the one retry. */
export class Database {
  private cur: Generation | undefined;
  private built = 0;
  private lock: Promise<unknown> = Promise.resolve();
  private schemaReady = false;
  private schemaPending: Promise<void> | undefined;
  private waitingReason: string | undefined;
  private closed = false;
  /** When the endpoints were last probed after an error, with unchanged files. */
  private probedAt = 0;

  constructor(
    private readonly src: Sources,
    private readonly log: Logger,
  ) {}

  /**
   * Runs `fn` on a pooled connection (the table made first, once per process). Throws
   * NotReady without the files, Unavailable when the database failed twice or in a way that
   * must not be retried.
   */
  async run<T>(statement: 'read' | 'write', fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let g = await this.current();
    try {
      return await this.once(g, fn);
    } catch (e) {
      if (!(e instanceof Failed)) throw e;
      const code = errorCode(e.error);
      const kind = errorKind(code);
      if (!shouldRetry(kind, e.phase, statement)) {
        if (suspect(kind)) await this.recover(g, { code, kind, phase: e.phase }).catch(() => undefined);
        throw new Unavailable(code, e.error);
      }
      this.log.debug({ code, phase: e.phase, statement }, 'retrying once');
      g = await this.recover(g, { code, kind, phase: e.phase });
      try {
        return await this.once(g, fn);
      } catch (e2) {
        if (!(e2 instanceof Failed)) throw e2;
        const code2 = errorCode(e2.error);
        const kind2 = errorKind(code2);
        if (suspect(kind2)) await this.recover(g, { code: code2, kind: kind2, phase: e2.phase }).catch(() => undefined);
        throw new Unavailable(code2, e2.error);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.lock;
    await this.cur?.pool.end().catch(() => undefined);
  }

  /** The pool to use: rebuilt first when the files changed since they were last read. */
  private async current(): Promise<Generation> {
    const s = await signature(this.src);
    if ('reason' in s) throw this.notReady(s.reason);
    if (this.cur && this.cur.sig === s.sig) return this.cur;
    return this.serial(() => this.refresh());
  }

  /** After an error on generation `g`: the files read again, and the pool rebuilt if need be. */
  private recover(g: Generation, after: AfterError): Promise<Generation> {
    return this.serial(async () => (this.cur && this.cur.n !== g.n ? this.cur : this.refresh(after)));
  }

  private async refresh(after?: AfterError): Promise<Generation> {
    if (this.closed) throw new NotReady('shutting down');
    const s = await signature(this.src);
    if ('reason' in s) throw this.notReady(s.reason);
    if (!after && this.cur?.sig === s.sig) return this.cur; // rebuilt while this one waited
    let creds: Credentials;
    try {
      creds = await readCredentials(this.src);
    } catch (e) {
      throw e instanceof NotReady ? this.notReady(e.message) : e;
    }
    const old = this.cur;
    const changed = old ? changes(old.creds, creds) : [];
    let same = false; // the files did not change: only an error brings us here
    if (old && changed.length === 0) {
      old.sig = s.sig;
      if (!after || !suspect(after.kind) || Date.now() - this.probedAt < REPROBE_MS) return old;
      this.probedAt = Date.now();
      same = true;
    }
    const { endpoint, probes } = await choose(creds, old?.endpoint);
    if (old && same && !rebuildAfterError(after!.kind, after!.phase, endpointText(endpoint) === endpointText(old.endpoint))) return old;
    const reason = old ? [...changed, ...(after ? [`after ${after.code}`] : [])].join(', ') : 'credentials present';
    const g: Generation = { n: ++this.built, pool: this.makePool(creds, endpoint), creds, endpoint, sig: s.sig };
    this.cur = g;
    this.waitingReason = undefined;
    this.log.info({ generation: g.n, reason, endpoint: endpointText(endpoint), user: creds.user, database: creds.database, ...(probes ? { probes } : {}) }, old ? 'pool rebuilt' : 'pool built');
    // Connections checked out of the old pool finish their statement first.
    old?.pool.end().catch((e: unknown) => this.log.debug({ code: errorCode(e) }, 'old pool ended with an error'));
    return g;
  }

  private makePool(c: Credentials, e: Endpoint): pg.Pool {
    const pool = new pg.Pool({ ...connection(c, e), max: POOL_MAX });
    // An idle connection that dies is dropped by the pool, which then emits this.
    pool.on('error', (err) => this.log.debug({ code: errorCode(err) }, 'idle connection dropped'));
    // A checked-out connection that dies between statements emits 'error' too: without a
    // listener that would end the process.
    pool.on('connect', (client) => client.on('error', () => {}));
    return pool;
  }

  private async once<T>(g: Generation, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await g.pool.connect();
    } catch (e) {
      throw new Failed(e, 'connect');
    }
    let broken: Error | undefined;
    let sent = false;
    try {
      if (!this.schemaReady) await (this.schemaPending ??= this.schema(client).finally(() => (this.schemaPending = undefined)));
      sent = true;
      return await fn(client);
    } catch (e) {
      // A connection that failed (or whose errors we do not know) is not given back.
      if (!(e instanceof pg.DatabaseError) || errorKind(errorCode(e)) === 'connection') broken = e as Error;
      // Before `fn` ran, only the table check was sent: the caller's statement may run again.
      throw new Failed(e, sent ? 'statement' : 'connect');
    } finally {
      client.release(broken);
    }
  }

  /** The table, made unless it exists (so that reads work on a read-only server too). */
  private async schema(c: pg.PoolClient): Promise<void> {
    const r = await c.query<{ t: string | null }>(`SELECT to_regclass('todos')::text AS t`);
    if (!r.rows[0]?.t) {
      try {
        await c.query('CREATE TABLE IF NOT EXISTS todos (id bigserial PRIMARY KEY, title text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())');
        this.log.info('table todos created');
      } catch (e) {
        // Another unit's CREATE won the race (unique_violation on pg_type, duplicate_table).
        if (!(e instanceof pg.DatabaseError && (e.code === '23505' || e.code === '42P07'))) throw e;
      }
    }
    this.schemaReady = true;
  }

  private notReady(reason: string): NotReady {
    if (reason !== this.waitingReason) {
      this.waitingReason = reason;
      this.log.info({ reason }, 'not ready');
    }
    return new NotReady(reason);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const r = this.lock.then(fn, fn);
    this.lock = r.catch(() => undefined);
    return r;
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP: parse, call the Database, answer.

interface TodoRow {
  id: string;
  title: string;
  created_at: Date;
  total?: string;
}

const todo = (r: TodoRow) => ({ id: Number(r.id), title: r.title, created_at: r.created_at.toISOString() });

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

class TooLarge extends Error {}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new TooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function createHandler(db: Database, log: Logger): http.RequestListener {
  // A 503 is logged when its code changes, else at most every few seconds with a count, so
  // that a database outage under load does not write a line per request.
  let last = { code: '', at: 0, suppressed: 0 };
  const logUnavailable = (code: string, statement: string) => {
    const now = Date.now();
    if (code === last.code && now - last.at < 5000) return void last.suppressed++;
    log.warn({ code, statement, ...(last.suppressed ? { suppressed: last.suppressed } : {}) }, 'answered 503');
    last = { code, at: now, suppressed: 0 };
  };

  /** `fn`'s value, or undefined once a 503 was sent. */
  const data = async <T>(res: http.ServerResponse, statement: 'read' | 'write', fn: (c: pg.PoolClient) => Promise<T>): Promise<T | undefined> => {
    try {
      return await db.run(statement, fn);
    } catch (e) {
      if (e instanceof NotReady) return void send(res, 503, { error: `not ready: ${e.message}` });
      if (e instanceof Unavailable) {
        logUnavailable(e.code, statement);
        return void send(res, 503, { error: e.message });
      }
      throw e;
    }
  };

  const route = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';

    if (path === '/health' && method === 'GET') {
      try {
        await db.run('read', (c) => c.query('SELECT 1'));
        return send(res, 200, { ready: true });
      } catch (e) {
        if (e instanceof NotReady || e instanceof Unavailable) return send(res, 503, { ready: false, reason: e.message });
        throw e;
      }
    }

    if (path === '/todos' && method === 'POST') {
      let body: string;
      try {
        body = await readBody(req);
      } catch (e) {
        if (e instanceof TooLarge) return send(res, 413, { error: `the body must be at most ${MAX_BODY_BYTES} bytes` });
        throw e;
      }
      const t = parseTodo(body);
      if ('error' in t) return send(res, 400, t);
      const id = await data(res, 'write', async (c) => (await c.query<{ id: string }>('INSERT INTO todos (title) VALUES ($1) RETURNING id', [t.title])).rows[0]!.id);
      if (id !== undefined) send(res, 201, { id: Number(id) }, { location: `/todos/${id}` });
      return;
    }

    if (path === '/todos' && method === 'GET') {
      const limit = parseLimit(url.searchParams.get('limit'));
      if (typeof limit !== 'number') return send(res, 400, limit);
      // count(*) OVER () is computed before LIMIT: the table's total, in the same snapshot.
      const rows = await data(res, 'read', async (c) => (await c.query<TodoRow>('SELECT id, title, created_at, count(*) OVER () AS total FROM todos ORDER BY id DESC LIMIT $1', [limit])).rows);
      if (rows) send(res, 200, { count: Number(rows[0]?.total ?? 0), items: rows.map(todo) });
      return;
    }

    const m = /^\/todos\/(\d{1,18})$/.exec(path);
    if (m && method === 'GET') {
      const rows = await data(res, 'read', async (c) => (await c.query<TodoRow>('SELECT id, title, created_at FROM todos WHERE id = $1', [m[1]])).rows);
      if (rows) send(res, rows.length ? 200 : 404, rows.length ? todo(rows[0]!) : { error: `no todo ${m[1]}` });
      return;
    }

    send(res, 404, { error: 'not found' });
  };

  return (req, res) => {
    route(req, res).catch((e: unknown) => {
      log.error({ err: e }, 'request failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const log = pino({ base: { service: 'todo' }, redact: { paths: ['password', '*.password'], censor: '[redacted]' } });
  const env = process.env;
  const port = Number(env.PORT ?? '8080');
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    log.fatal({ PORT: env.PORT }, 'PORT must be a port number');
    process.exit(2);
  }
  const host = env.HOST || '127.0.0.1';
  if (env.DB_SSLMODE) log.info({ sslmode: env.DB_SSLMODE }, 'DB_SSLMODE ignored: no TLS yet');

  const db = new Database(sourcesFromEnv(env), log);
  const server = http.createServer(createHandler(db, log));
  server.on('error', (e) => {
    log.fatal({ err: e }, 'cannot listen');
    process.exit(1);
  });
  server.listen(port, host, () => log.info({ host, port }, 'listening'));

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 5000).unref();
    void closed
      .then(() => db.close())
      .finally(() => {
        log.info('stopped');
        process.exit(0);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

const entry = process.argv[1];
if (entry && import.meta.url === pathToFileURL(realpathSync(entry)).href) void main();
