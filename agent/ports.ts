/** Ports: a free one on loopback (tests, benchmarks, local units), and listening on one. */
import net from 'node:net';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether `port` on loopback can be bound now. */
export async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** `preferred` while it is free (a restarted controller keeps its addresses), else any free port. */
export async function reusePort(preferred: number | undefined): Promise<number> {
  return preferred && (await portFree(preferred)) ? preferred : freePort();
}

/** `server.listen(port, host)` as a promise: the bound port (port 0: the kernel's choice), or the listen error. */
export async function listenOn(server: net.Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address();
  return typeof a === 'object' && a ? a.port : port;
}
