import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ApiError, badRequest, type ApiResponse } from './response.js';

/** Request bodies above this are refused; file pushes stream through busboy and are not bound by it. */
const MAX_JSON_BODY = 16 * 1024 * 1024;

export class RequestContext {
  private bodyCache?: Promise<Buffer>;
  /** Who is calling, as the listener's access guard found out (none without a guard, or on open routes). */
  user?: { access: string; name?: string; uid?: number };
  constructor(
    readonly req: IncomingMessage,
    readonly url: URL,
    readonly params: Record<string, string>,
  ) {}

  query(name: string): string | undefined {
    const v = this.url.searchParams.get(name);
    return v === null ? undefined : v;
  }

  /** Comma-separated list query parameter, repeated parameters concatenated (Pebble's strutil.MultiCommaSeparatedList). */
  queryList(name: string): string[] {
    return this.url.searchParams
      .getAll(name)
      .flatMap((v) => v.split(','))
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }

  body(): Promise<Buffer> {
    this.bodyCache ??= new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      this.req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_JSON_BODY) {
          reject(badRequest(`request body larger than ${MAX_JSON_BODY} bytes`));
          this.req.destroy();
          return;
        }
        chunks.push(c);
      });
      this.req.on('end', () => resolve(Buffer.concat(chunks)));
      this.req.on('error', reject);
    });
    return this.bodyCache;
  }

  /** Parses the body as a JSON object; the reason names what was wrong with it. */
  async json(): Promise<Record<string, unknown>> {
    const buf = await this.body();
    let parsed: unknown;
    try {
      parsed = JSON.parse(buf.toString('utf8'));
    } catch (e) {
      throw badRequest(`cannot decode request body: ${(e as Error).message}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw badRequest('cannot decode request body: expected a JSON object');
    }
    return parsed as Record<string, unknown>;
  }
}

export type Handler = (ctx: RequestContext) => Promise<ApiResponse> | ApiResponse;

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path pattern with `{name}` segments, e.g. `/v1/changes/{id}/wait`. */
  path: string;
  handler: Handler;
}

/** Handles a websocket upgrade; returns false when the path is not its own. */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer, url: URL) => boolean;

interface Compiled {
  route: Route;
  re: RegExp;
  names: string[];
}

export class Router {
  private compiled: Compiled[] = [];

  add(routes: Route[]): void {
    for (const route of routes) {
      const names: string[] = [];
      const pattern = route.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{([a-z-]+)\}/g, (_m, n: string) => {
        names.push(n);
        return '([^/]+)';
      });
      this.compiled.push({ route, re: new RegExp(`^${pattern}$`), names });
    }
  }

  /** Finds the handler (and the route's declared path); 404 for unknown paths, 405 for a known path with the wrong method. */
  match(method: string, pathname: string): { handler: Handler; params: Record<string, string>; path: string } {
    let pathMatched = false;
    for (const c of this.compiled) {
      const m = c.re.exec(pathname);
      if (!m) continue;
      pathMatched = true;
      if (c.route.method !== method) continue;
      const params: Record<string, string> = {};
      c.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1]!)));
      return { handler: c.route.handler, params, path: c.route.path };
    }
    if (pathMatched) throw new ApiError(405, `method ${method} not allowed on ${pathname}`);
    throw new ApiError(404, `cannot find ${pathname}`, 'not-found');
  }
}
