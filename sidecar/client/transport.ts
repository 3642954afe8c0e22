import http from 'node:http';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { APIError, ConnectionError, ProtocolError } from './errors.js';

/**
 * Where the API lives: the unix socket (normal) or http://host:port (`run --http`), where only
 * open routes and, for a `metrics` identity's basic-auth credentials, /v1/metrics answer.
 */
export type Endpoint = { socketPath: string } | { baseUrl: string; basicUsername?: string; basicPassword?: string };

export type Query = Record<string, string | number | boolean | readonly string[] | undefined>;

export interface RawRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  query?: Query;
  headers?: Record<string, string>;
  body?: Buffer | string | Readable;
  signal?: AbortSignal;
}

/** Pebble's response envelope. */
export interface Envelope {
  type: 'sync' | 'async' | 'error';
  'status-code': number;
  status: string;
  result: unknown;
  change?: string;
}

export function encodeQuery(query: Query | undefined): string {
  if (!query) return '';
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const item of v as readonly string[]) q.append(k, item);
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * HTTP over the unix socket (or TCP) with node:http, one connection per request: the
 * sidecar is local and requests are few, so pooling would only add state to get wrong.
 */
export class Transport {
  private readonly base?: URL;
  private readonly authorization?: string;

  readonly endpoint: Endpoint;

  constructor(endpoint: Endpoint) {
    // Absolute, because the websocket URL form (ws+unix://<path>:<request path>) needs it.
    this.endpoint = 'socketPath' in endpoint ? { socketPath: resolve(endpoint.socketPath) } : endpoint;
    if ('baseUrl' in endpoint) {
      this.base = new URL(endpoint.baseUrl);
      if (this.base.protocol !== 'http:') throw new Error(`baseUrl must be http://host:port, got ${endpoint.baseUrl}`);
      // As pebble's Go client: both or neither (RFC 7617 allows an empty password; Pebble refuses it).
      const { basicUsername: user, basicPassword: password } = endpoint;
      if (!!user !== !!password) throw new Error('cannot use incomplete basic auth credentials');
      if (user && password) this.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    }
  }

  /** What to name in error messages. */
  get address(): string {
    return 'socketPath' in this.endpoint ? this.endpoint.socketPath : this.endpoint.baseUrl;
  }

  websocketUrl(path: string): string {
    if ('socketPath' in this.endpoint) return `ws+unix://${this.endpoint.socketPath}:${path}`;
    return `ws://${this.base!.host}${path}`;
  }

  /** Sends the request and resolves with the response headers; the body is left to the caller. */
  request(r: RawRequest): Promise<http.IncomingMessage> {
    const path = r.path + encodeQuery(r.query);
    const headers: Record<string, string> = { ...r.headers };
    if (this.authorization) headers['Authorization'] = this.authorization;
    if (typeof r.body === 'string' || Buffer.isBuffer(r.body)) {
      headers['Content-Length'] = String(Buffer.byteLength(r.body));
    }
    const target: http.RequestOptions =
      'socketPath' in this.endpoint
        ? { socketPath: this.endpoint.socketPath, host: 'localhost' }
        : { host: this.base!.hostname, port: this.base!.port || 80 };
    return new Promise((done, reject) => {
      let sourceError: Error | undefined;
      const req = http.request({ ...target, method: r.method, path, headers, signal: r.signal }, done);
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (sourceError) reject(sourceError);
        else if (e.name === 'AbortError') reject(e);
        else reject(this.connectionError(e));
      });
      const body = r.body;
      if (body instanceof Readable) {
        // A failing source (unreadable local file) is the caller's problem, not the sidecar's.
        body.on('error', (e) => {
          sourceError = e;
          req.destroy(e);
        });
        body.pipe(req);
      } else {
        req.end(body);
      }
    });
  }

  /** A JSON request; returns the decoded envelope, throwing APIError for error envelopes. */
  async call(r: Omit<RawRequest, 'body'> & { json?: unknown }): Promise<Envelope> {
    const headers: Record<string, string> = { Accept: 'application/json', ...r.headers };
    let body: string | undefined;
    if (r.json !== undefined) {
      body = JSON.stringify(r.json);
      headers['Content-Type'] = 'application/json';
    }
    const res = await this.request({ ...r, headers, body });
    return decodeEnvelope(res, await readAll(res));
  }

  private connectionError(e: NodeJS.ErrnoException): ConnectionError {
    const where = this.address;
    const unix = 'socketPath' in this.endpoint;
    const hint = unix ? ' (is the sidecar running? start it with `pgcharm-sidecar run`)' : '';
    let msg: string;
    if (unix && e.code === 'ENOENT') msg = `cannot connect to the sidecar: socket ${where} does not exist${hint}`;
    else if (e.code === 'ECONNREFUSED') msg = `cannot connect to the sidecar at ${where}: connection refused${hint}`;
    else if (e.code === 'EACCES') msg = `cannot connect to the sidecar at ${where}: permission denied`;
    else msg = `cannot talk to the sidecar at ${where}: ${e.message}`;
    return new ConnectionError(msg, where, e);
  }
}

export function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

function isJson(res: http.IncomingMessage): boolean {
  const ct = (res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  return ct === 'application/json';
}

export function decodeEnvelope(res: http.IncomingMessage, body: Buffer): Envelope {
  const status = res.statusCode ?? 0;
  if (!isJson(res)) {
    const snippet = body.toString('utf8', 0, Math.min(body.length, 200)).trim();
    throw new ProtocolError(
      `expected a JSON response, got ${res.headers['content-type'] ?? 'no content type'} (HTTP ${status})${snippet ? `: ${snippet}` : ''}`,
    );
  }
  let env: Envelope;
  try {
    env = JSON.parse(body.toString('utf8')) as Envelope;
  } catch (e) {
    throw new ProtocolError(`cannot decode response (HTTP ${status}): ${(e as Error).message}`);
  }
  if (env === null || typeof env !== 'object' || typeof env.type !== 'string') {
    throw new ProtocolError(`response (HTTP ${status}) is not a Pebble envelope`);
  }
  if (env.type === 'error') {
    const result = (env.result ?? {}) as { message?: unknown; kind?: unknown; value?: unknown };
    const message = typeof result.message === 'string' ? result.message : `HTTP ${status} ${env.status ?? ''}`.trim();
    throw new APIError(status, typeof result.kind === 'string' ? result.kind : undefined, message, result.value);
  }
  // A sync envelope may carry a non-2xx status on purpose (GET /v1/health answers 502 with a result).
  return env;
}

/** For raw (non-envelope) endpoints: turns an error status into APIError, from the envelope if there is one. */
export async function ensureOk(res: http.IncomingMessage): Promise<void> {
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) return;
  const body = await readAll(res);
  if (isJson(res)) decodeEnvelope(res, body); // throws APIError for error envelopes
  throw new APIError(status, undefined, `HTTP ${status}: ${body.toString('utf8', 0, 200).trim()}`);
}
