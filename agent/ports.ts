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

/** The sidecar's, which listens the same way (its --http listener). */
export { listenOn } from '../sidecar/osutil/listen.js';
