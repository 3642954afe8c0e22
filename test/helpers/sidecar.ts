import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSidecar, type SidecarProcess } from '../../agent/sidecar-process.js';
import { killMarked } from './procs.js';

const MARK = 'PGCHARM_TEST_RUN';

export interface TestSidecar extends SidecarProcess {
  /** A scratch directory the postgres user can reach (mode 0755). */
  tmp: string;
  /** Stops the sidecar, then kills anything it started that is still alive, and removes the dirs. */
  cleanup(): Promise<void>;
  /** Stops the sidecar (SIGTERM) and starts a new one on the same directory and flags; cleanup() of either cleans up. */
  restart(): Promise<TestSidecar>;
}

/**
 * A real `pgcharm-sidecar run` in a temp dir. Every process it starts inherits a marker in
 * its environment, so cleanup can find and kill leftovers even when a test failed midway.
 */
export async function startTestSidecar(opts: { hold?: boolean; layers?: Record<string, string>; http?: string; env?: Record<string, string>; args?: (tmp: string) => string[] } = {}): Promise<TestSidecar> {
  const tmp = mkdtempSync(join(tmpdir(), 'pgcharm-test-'));
  chmodSync(tmp, 0o755);
  const dir = join(tmp, 'pebble');
  mkdirSync(join(dir, 'layers'), { recursive: true });
  for (const [file, text] of Object.entries(opts.layers ?? {})) writeFileSync(join(dir, 'layers', file), text);
  const marker = randomUUID();
  const launch = async (): Promise<TestSidecar> => {
    let sc: SidecarProcess;
    try {
      sc = await spawnSidecar({ dir, env: { ...opts.env, [MARK]: marker }, ...(opts.hold ? { hold: true } : {}), ...(opts.http ? { http: opts.http } : {}), ...(opts.args ? { args: opts.args(tmp) } : {}) });
    } catch (e) {
      // A sidecar that refused to start (tests of bad input do that on purpose) leaves nothing behind.
      killMarked(MARK, marker);
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    return {
      ...sc,
      tmp,
      async cleanup() {
        try {
          await sc.stop(10_000);
        } finally {
          killMarked(MARK, marker);
          rmSync(tmp, { recursive: true, force: true });
        }
      },
      async restart() {
        await sc.stop(10_000);
        return launch();
      },
    };
  };
  return launch();
}
