import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { listenOn } from '../ports.js';
import type { Kube } from '../runtime/kube.js';
import { ClusterSource, type Snapshot } from './source.js';

/**
 * `pgcharm dashboard`: a read-only page for a model, served on loopback. The page (built from
 * agent/dashboard/web by esbuild into dist/dashboard; no asset from the internet) listens to
 * GET /api/stream (server-sent events): one snapshot a second while at least one page is open,
 * nothing at all otherwise. GET /api/state gives one snapshot as JSON.
 */

const here = dirname(fileURLToPath(import.meta.url));
/** dist/dashboard, seen from dist/agent/dashboard (the CLI) or agent/dashboard (tests). */
export const ASSETS = [resolve(here, '..', '..', 'dashboard'), resolve(here, '..', '..', 'dist', 'dashboard')].find((d) => existsSync(join(d, 'app.js'))) ?? resolve(here, '..', '..', 'dashboard');

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.png': 'image/png' };
const FILES: Record<string, string> = { '/': 'index.html', '/index.html': 'index.html', '/app.js': 'app.js', '/app.css': 'app.css' };

export interface DashboardOptions {
  kube: Kube;
  model: string;
  log: Logger;
  /** A Prometheus to show firing alerts from (its /api/v1/alerts). */
  prometheus?: string | undefined;
  /** Time between snapshots while a page listens (ms). */
  everyMs?: number;
}

export class Dashboard {
  private readonly source: ClusterSource;
  private server: Server | undefined;
  private readonly listeners = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | undefined;
  private last: Snapshot | undefined;
  url = '';

  constructor(private readonly o: DashboardOptions) {
    this.source = new ClusterSource({ kube: o.kube, model: o.model, log: o.log, prometheus: o.prometheus });
  }

  private started = false;
  private inFlight: Promise<Snapshot> | undefined;
  private idleTimer: NodeJS.Timeout | undefined;

  /** Follows the store (watches) from the first API request until a minute after the last page closed. */
  private start(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.started) return;
    this.started = true;
    this.source.start();
  }

  /** Nobody looks: the kept Postgres connections close now, the watches a minute later. */
  private unwatched(): void {
    if (this.listeners.size) return;
    this.source.idle();
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.listeners.size || this.inFlight || !this.started) return;
      this.started = false;
      void this.source.stop();
    }, 60_000);
    this.idleTimer.unref();
  }

  /** One snapshot at a time, shared by whoever asks meanwhile (a page's tick, /api/state). */
  private snapshot(): Promise<Snapshot> {
    this.inFlight ??= this.source.snapshot().finally(() => {
      this.inFlight = undefined;
      if (!this.listeners.size) this.unwatched();
    });
    return this.inFlight;
  }

  /** Serves one request (the controller hands its dashboard port's requests here). */
  handle(req: IncomingMessage, res: ServerResponse): void {
    void this.serve(req, res).catch((e: unknown) => this.fail(res, e));
  }

  /** Listens on its own (`pgcharm dashboard --port`); returns the page's URL. */
  async listen(host: string, port: number): Promise<string> {
    const server = createServer((req, res) => this.handle(req, res));
    const bound = await listenOn(server, port, host);
    this.server = server;
    this.url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}/`;
    this.o.log.info({ url: this.url }, 'dashboard listening');
    return this.url;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    clearTimeout(this.idleTimer);
    for (const r of this.listeners) r.end();
    this.listeners.clear();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    // A snapshot under way would open a connection after stop() closed them: it ends first.
    await this.inFlight?.catch(() => undefined);
    this.started = false;
    await this.source.stop();
  }

  private fail(res: ServerResponse, e: unknown): void {
    this.o.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'dashboard request failed');
    if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
    res.end('internal error\n');
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Loopback names only: a page on another site that resolves its name to 127.0.0.1 (DNS
    // rebinding) must not read the cluster's state through a victim's browser.
    const host = (req.headers.host ?? '').replace(/:\d+$/, '');
    if (!['127.0.0.1', 'localhost', '[::1]'].includes(host)) {
      res.writeHead(403, { 'Content-Type': 'text/plain' });
      return void res.end(`host ${JSON.stringify(req.headers.host ?? '')} refused: open the dashboard at http://127.0.0.1:<its port>/\n`);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' });
      return void res.end('the dashboard is read-only\n');
    }
    const path = new URL(req.url ?? '/', 'http://dashboard').pathname;
    if (path.startsWith('/api/')) this.start();
    if (path === '/api/state') {
      const body = JSON.stringify(await this.snapshot());
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      return void res.end(req.method === 'HEAD' ? undefined : body);
    }
    if (path === '/api/stream') return this.stream(req, res);
    const file = FILES[path];
    if (!file || !existsSync(join(ASSETS, file))) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      return void res.end(file ? `the dashboard is not built (${join(ASSETS, file)} is missing): npm run build\n` : `no page ${path}\n`);
    }
    const body = readFileSync(join(ASSETS, file));
    res.writeHead(200, { 'Content-Type': TYPES[file.slice(file.lastIndexOf('.'))] ?? 'application/octet-stream', 'Content-Length': body.length, 'Cache-Control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private stream(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    if (req.method === 'HEAD') return void res.end();
    this.listeners.add(res);
    if (this.last) res.write(`data: ${JSON.stringify(this.last)}\n\n`);
    res.on('close', () => {
      this.listeners.delete(res);
      if (this.listeners.size) return;
      clearInterval(this.timer);
      this.timer = undefined;
      this.unwatched();
    });
    if (!this.timer) {
      void this.tick();
      this.timer = setInterval(() => void this.tick(), this.o.everyMs ?? 1000);
    }
  }

  private busy = false;
  private async tick(): Promise<void> {
    if (this.busy) return; // a slow round (a unit's API timing out) is not stacked
    this.busy = true;
    try {
      this.last = await this.snapshot();
      const line = `data: ${JSON.stringify(this.last)}\n\n`;
      for (const r of this.listeners) r.write(line);
    } catch (e) {
      this.o.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'dashboard snapshot failed');
    } finally {
      this.busy = false;
    }
  }
}
