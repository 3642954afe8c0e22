import https from 'node:https';
import type { Logger } from 'pino';
import type { AuditEntry } from './auth.js';
import { listenOn } from '../../ports.js';
import { DEFAULT_EVENT_TTL_MS, startEventExpiry } from '../registry/event-expiry.js';
import { Registry } from '../registry/registry.js';
import { ObjectStore } from '../store/object-store.js';
import { createHandler } from './handler.js';
import { rememberCa } from './ca-registry.js';
import { loadOrCreateTls } from './tls.js';

/**
 * The local controller's Kubernetes API server ("the embedded default relation store"):
 * serves the API subset the agents use on loopback, over https (a self-signed certificate,
 * see tls.ts) with a bearer token, persisted in `dir`. kubectl and @kubernetes/client-node
 * talk to it as to a cluster.
 */

export interface ApiServerOptions {
  /** The store directory, e.g. <model>/store (created, mode 0700). */
  dir: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port chosen by the kernel. */
  port?: number;
  /** The bearer token every request but health probes and /version must carry. */
  token: string;
  /** Service accounts' tokens (token -> user, e.g. system:serviceaccount:ns:name), accepted too. */
  serviceAccounts?: ReadonlyMap<string, string>;
  /** Every resource request a service account makes, for checking RBAC rules against real use. */
  audit?: (e: AuditEntry) => void;
  log: Logger;
  /** Watch history kept for resuming (events), default 10000. */
  historyLimit?: number;
  /** Journal size that triggers a snapshot, default 8 MiB. */
  compactBytes?: number;
  /** How often watches that allow bookmarks get one, default 10 s. */
  bookmarkIntervalMs?: number;
  /** Events older than this (since their last occurrence) are deleted, default 1 hour. */
  eventTtlMs?: number;
  /** The disk failed: the store refuses writes from now on. Default: log it. */
  onFatal?: (err: Error) => void;
}

export interface ApiServer {
  /** https://host:port, for a kubeconfig. */
  url: string;
  /** The server's self-signed certificate (PEM), the CA clients must trust. */
  ca: string;
  host: string;
  port: number;
  /** The same operations in-process (objects are frozen; clone to edit). */
  store: Registry;
  /** Stops listening, ends watches, lets running requests finish (2 s at most), then closes the store. */
  close(): Promise<void>;
}

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  if (!opts.token) throw new Error('the API server needs a non-empty token');
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log;
  const objects = await ObjectStore.open({
    dir: opts.dir,
    log,
    ...(opts.historyLimit !== undefined ? { historyLimit: opts.historyLimit } : {}),
    ...(opts.compactBytes !== undefined ? { compactBytes: opts.compactBytes } : {}),
    onFatal: opts.onFatal ?? ((e) => log.fatal({ err: e.message }, 'store failed')),
  });
  let tls;
  try {
    tls = await loadOrCreateTls(opts.dir, host, log);
  } catch (e) {
    await objects.close();
    throw e;
  }
  const registry = new Registry(objects);
  const active = new Set<() => void>();
  let port = opts.port ?? 0;
  const hostPort = () => `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const server = https.createServer(
    { cert: tls.cert, key: tls.key, noDelay: true, keepAlive: true },
    createHandler({ registry, token: opts.token, serviceAccounts: opts.serviceAccounts ?? new Map(), ...(opts.audit ? { audit: opts.audit } : {}), log, bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 10_000, active, address: hostPort }),
  );
  server.requestTimeout = 0; // watches stream for up to an hour
  // Clients keep their connection between requests (runtime/kube.ts) and close it after 4 s idle;
  // the server waits longer (as kube-apiserver does), so it never closes a connection while a
  // request is already on its way in it (a reset the client would take for the store gone).
  server.keepAliveTimeout = 75_000;
  try {
    port = await listenOn(server, port, host);
  } catch (e) {
    await objects.close();
    throw e;
  }
  const stopExpiry = startEventExpiry(registry, opts.eventTtlMs ?? DEFAULT_EVENT_TTL_MS, log);
  const url = `https://${hostPort()}`;
  rememberCa(url, tls.cert);
  log.info({ url, dir: opts.dir }, 'API server listening');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      stopExpiry();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const end of [...active]) end();
      server.closeIdleConnections();
      await Promise.race([closed, new Promise((r) => setTimeout(r, 2000).unref())]);
      server.closeAllConnections();
      await closed;
      await objects.close();
      log.info({ url }, 'API server stopped');
    })());
  return { url, ca: tls.cert, host, port, store: registry, close };
}
