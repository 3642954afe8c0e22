import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A counting HTTP proxy in front of etcd's client port, for the footprint bench: Patroni's
 * etcd3 client speaks HTTP/JSON to etcd's gRPC gateway (/v3/kv/range, /v3/lease/keepalive,
 * /v3/watch, ...), and etcd's /metrics count the gRPC calls behind it (a watch or a keepalive
 * is one long stream there), not the requests Patroni makes. Each request is counted once, by
 * method and path, when it arrives; a watch is one request however long it streams, as a watch
 * is in pgcharm's audit trail.
 */
export class CountingProxy {
  private readonly counts = new Map<string, number>();
  private readonly agent = new http.Agent({ keepAlive: true });

  private constructor(
    private readonly server: http.Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<CountingProxy> {
    let self: CountingProxy | undefined;
    const server = http.createServer((req, res) => self!.forward(targetPort, req, res));
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
    self = new CountingProxy(server, (server.address() as AddressInfo).port);
    return self;
  }

  private forward(targetPort: number, req: http.IncomingMessage, res: http.ServerResponse): void {
    const key = `${req.method} ${(req.url ?? '').split('?')[0]}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    const up = http.request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers, agent: this.agent }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    // Patroni ends a watch by closing its connection: end ours to etcd with it.
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  }

  /** Requests so far, by "METHOD /path". */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.agent.destroy();
  }
}
