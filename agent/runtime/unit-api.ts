import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { listenOn } from '../ports.js';

/**
 * The unit's own HTTP API, served by its agent on the pod's port named `api` (Patroni's REST
 * API: unit-to-unit calls such as the failsafe confirmation, and the health routes).
 * A tiny router: routes are registered by whoever needs them; this module knows nothing about
 * what they do. Every answer is JSON; a bad request gets `{"error": ..., "field"?: ...}` naming
 * what is wrong.
 */

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface ApiRequest {
  method: Method;
  path: string;
  /** The query string's parameters. */
  query: URLSearchParams;
  /** The parsed JSON body (undefined when there was none). */
  body: unknown;
  remote: string;
}

export interface ApiResponse {
  status: number;
  /** JSON, unless contentType is given: then a string sent as it is (GET /metrics). */
  body: unknown;
  contentType?: string;
}

export interface Route {
  method: Method;
  /** An exact path, e.g. `/v1/failsafe`. */
  path: string;
  /** Unit-to-unit routes need the shared token (`Authorization: Bearer <token>`). */
  auth: boolean;
  handle(req: ApiRequest): Promise<ApiResponse> | ApiResponse;
}

/** Thrown by a handler for a bad request: becomes `{status, {error, field}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const MAX_BODY = 64 * 1024;

/**
 * Whether `given` equals `expected`, in time that does not depend on where they differ or on
 * their lengths: both are hashed to 32 bytes first (timingSafeEqual needs equal lengths, and an
 * early length check would tell a caller how long the token is).
 */
export function tokensEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b) && expected.length > 0;
}

/** Why a request is not authorised, or undefined when it is. */
export function authProblem(header: string | undefined, expected: string | undefined): string | undefined {
  if (!expected) return 'this unit has no API token yet';
  if (!header) return 'missing Authorization header: expected "Bearer <token>"';
  const m = /^Bearer (\S+)$/.exec(header);
  if (!m) return 'Authorization header: expected "Bearer <token>"';
  return tokensEqual(m[1]!, expected) ? undefined : 'Authorization header: wrong token';
}

export interface UnitApiOptions {
  routes: readonly Route[];
  /** The token unit-to-unit calls must carry (undefined until known: such calls are refused). */
  token: () => string | undefined;
  log: Logger;
}

export class UnitApi {
  private server: Server | undefined;
  /** `host:port` it listens on. */
  listening: string | undefined;

  constructor(private readonly opts: UnitApiOptions) {}

  async listen(host: string, port: number): Promise<void> {
    if (this.listening === `${host}:${port}`) return;
    await this.close();
    const server = createServer((req, res) => void this.serve(req, res));
    // Unit-to-unit calls are short; a client that stalls does not hold a socket for long.
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    const bound = await listenOn(server, port, host);
    this.server = server;
    this.listening = `${host}:${bound}`;
    this.opts.log.info({ api: this.listening }, 'unit API listening');
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    this.listening = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // HEAD and OPTIONS answer as GET does, without a body (as Patroni's API: HAProxy checks
    // with `option httpchk OPTIONS /primary`).
    const bare = req.method === 'HEAD' || req.method === 'OPTIONS';
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}, contentType?: string) => {
      const text = bare ? '' : contentType !== undefined ? String(body) : JSON.stringify(body) + '\n';
      res.writeHead(status, { 'Content-Type': contentType ?? 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
      res.end(text);
    };
    try {
      const url = new URL(req.url ?? '/', 'http://unit');
      const path = url.pathname;
      const routes = this.opts.routes.filter((r) => r.path === path);
      if (!routes.length) return reply(404, { error: `no route ${path}` });
      const route = routes.find((r) => r.method === (bare ? 'GET' : req.method));
      if (!route) {
        const allowed = routes.map((r) => r.method).join(', ');
        return reply(405, { error: `${req.method} not allowed on ${path}; use ${allowed}` }, { Allow: allowed });
      }
      if (route.auth) {
        const problem = authProblem(req.headers.authorization, this.opts.token());
        if (problem) {
          // Neither the header nor the token goes to the log.
          this.opts.log.warn({ path, remote: req.socket.remoteAddress, why: problem }, 'unit API request refused');
          return reply(401, { error: problem }, { 'WWW-Authenticate': 'Bearer' });
        }
      }
      const body = await readJson(req);
      const out = await route.handle({ method: route.method, path, query: url.searchParams, body, remote: req.socket.remoteAddress ?? '' });
      reply(out.status, out.body, {}, out.contentType);
    } catch (e) {
      if (e instanceof ApiError) return reply(e.status, { error: e.message, ...(e.field ? { field: e.field } : {}) });
      this.opts.log.error({ err: e instanceof Error ? e.message : String(e), path: req.url }, 'unit API handler failed');
      if (!res.headersSent) reply(500, { error: `internal error: ${e instanceof Error ? e.message : String(e)}` });
    }
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ApiError(413, `body: larger than ${MAX_BODY} bytes`, 'body');
    chunks.push(c);
  }
  if (!size) return undefined;
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/.test(type)) throw new ApiError(415, `Content-Type: expected application/json, got ${JSON.stringify(type)}`, 'Content-Type');
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (e) {
    throw new ApiError(400, `body: not valid JSON (${(e as Error).message})`, 'body');
  }
}

/**
 * A call to another unit's API: JSON in, status and JSON out. Rejects on a connection error or
 * when no answer came within `timeoutMs` (a frozen unit accepts the connection and says nothing).
 */
export function callUnit(o: { host: string; port: number; method: Method; path: string; token?: string; body?: unknown; timeoutMs: number }): Promise<ApiResponse> {
  const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: o.host,
        port: o.port,
        method: o.method,
        path: o.path,
        signal: AbortSignal.timeout(Math.max(1, o.timeoutMs)),
        // A fresh connection per call: a socket kept alive to a unit that since froze would hide it.
        agent: false,
        headers: {
          Accept: 'application/json',
          ...(o.token ? { Authorization: `Bearer ${o.token}` } : {}),
          ...(payload !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : undefined });
          } catch {
            reject(new Error(`HTTP ${res.statusCode}: not JSON: ${text.slice(0, 200)}`));
          }
        });
      },
    );
    req.on('error', (e) => reject(e.name === 'AbortError' ? new Error(`no answer within ${o.timeoutMs} ms`) : e));
    req.end(payload);
  });
}
