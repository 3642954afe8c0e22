import http from 'node:http';
import { chmodSync, chownSync, existsSync, unlinkSync } from 'node:fs';
import type { Logger } from 'pino';
import { listenOn } from '../osutil/listen.js';
import { routeAccess, WEBSOCKET_PATH, type AccessGuard } from './access.js';
import { ApiError, envelope, errorEnvelope, writeJson } from './response.js';
import { RequestContext, type Router, type UpgradeHandler } from './router.js';

/**
 * The HTTP layer is thin: it parses the request, checks the caller may use the route (the
 * listener's `guard`: access levels and identities, api/access.ts), calls the route's handler
 * and writes Pebble's envelope. Managers behind the handlers know nothing about HTTP.
 * Without a guard every request is served: only in-process tests build such a server.
 */
export function createApiServer(router: Router, upgrades: UpgradeHandler[], log: Logger, guard?: AccessGuard): http.Server {
  const server = http.createServer((req, res) => {
    void handle(req, res);
  });
  // Pushes of large files and follow-mode log streams outlive Node's 5-minute default.
  server.requestTimeout = 0;

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      const method = req.method ?? 'GET';
      const { handler, params, path } = router.match(method, url.pathname);
      const ctx = new RequestContext(req, url, params);
      if (guard) {
        const user = await guard.authorize(req, routeAccess(method, path), url.pathname);
        if (user) ctx.user = user;
      }
      const r = await handler(ctx);
      if (r.type === 'raw') {
        await r.write(res);
        return;
      }
      const { status, body } = envelope(r);
      writeJson(res, status, body);
    } catch (e) {
      const err =
        e instanceof ApiError ? e : new ApiError(500, `internal error: ${(e as Error).message ?? String(e)}`);
      if (err.status >= 500) log.error({ err: e, path: url.pathname }, 'api request failed');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const { status, body } = errorEnvelope(err);
      writeJson(res, status, body);
    }
  }

  // The only upgrades are exec's websockets, which need admin access as in Pebble.
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    void (async () => {
      if (guard) {
        try {
          await guard.authorize(req, routeAccess('GET', WEBSOCKET_PATH), url.pathname);
        } catch (e) {
          const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${(e as Error).message ?? String(e)}`);
          const { status, body } = errorEnvelope(err);
          const data = JSON.stringify(body);
          socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(data)}\r\nConnection: close\r\n\r\n${data}`);
          return;
        }
      }
      for (const h of upgrades) {
        if (h(req, socket, head, url)) return;
      }
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    })();
  });
  return server;
}

/**
 * Listens on a unix socket with mode 0600: only root (or the owner) may drive the sidecar;
 * with `group`, 0660 and that group too (a non-root charm container sharing the socket).
 */
export async function listenUnix(server: http.Server, path: string, group?: number): Promise<void> {
  if (existsSync(path)) unlinkSync(path);
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(oldMask);
  }
  if (group === undefined) {
    chmodSync(path, 0o600);
    return;
  }
  chownSync(path, process.getuid?.() ?? 0, group);
  chmodSync(path, 0o660);
}

export async function listenTcp(server: http.Server, addr: string): Promise<{ host: string; port: number }> {
  const i = addr.lastIndexOf(':');
  if (i < 0) throw new Error(`--http address ${JSON.stringify(addr)} must be host:port`);
  const host = addr.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--http address ${JSON.stringify(addr)} has an invalid port`);
  }
  return { host, port: await listenOn(server, port, host) };
}
