import { execFile } from 'node:child_process';
import { closeSync, constants, lstatSync, openSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { PebbleClient } from '../../../sidecar/client/index.js';

/**
 * The agent's end of the fence (render.ts fenceScript has the other): a named pipe in the
 * directory the agent and the workload share for the sidecar's socket (an emptyDir both
 * containers mount at the same path in a pod; the unit's pebble directory locally). Each lease
 * renewal writes the new deadline as one line; the watchdog blocks in `read -t` until the
 * next line or the deadline, whichever comes first.
 *
 * A pipe rather than a file: a renewal every TTL/5 was a file written (and a line in the
 * sidecar's log) twice a second, for ever, and the watchdog polled the file 20 times a second.
 * The agent creates the pipe 0660 for itself and the watchdog's group (workload.ts addLayer):
 * no other process can push a deadline out. The watchdog opens it read-write (render.ts).
 */

const FIFO_NAME = '.pgcharm-fence';
const run = promisify(execFile);

/** The pipe's path, beside the sidecar's socket. */
export function fencePipe(pebble: PebbleClient): string {
  const at = pebble.transport.endpoint;
  if (!('socketPath' in at)) throw new Error('the fence needs the sidecar over its unix socket (the pipe lives beside it)');
  return join(dirname(at.socketPath), FIFO_NAME);
}

/** One writer per pipe in this process: the deadline in force is what it last wrote. */
class FenceWriter {
  private fd: number | undefined;
  /** The deadline last written (epoch ms; 0 = disarmed), undefined before the first write. */
  last: number | undefined;

  constructor(readonly path: string) {}

  /** Creates the pipe unless it exists (a regular file left in its place is replaced). */
  async ensure(): Promise<void> {
    try {
      if (lstatSync(this.path).isFIFO()) return;
      rmSync(this.path, { force: true });
    } catch {
      /* missing: created below */
    }
    try {
      // Node has no mkfifo(3); coreutils' mkfifo is in every image the agent runs in.
      await run('mkfifo', ['-m', '0660', this.path]);
    } catch (e) {
      if (!lstatSync(this.path, { throwIfNoEntry: false })?.isFIFO()) throw new Error(`cannot create the fence pipe ${this.path}: ${(e as Error).message}`);
    }
  }

  /**
   * Writes the deadline. Waits up to `waitMs` for the watchdog to open its end (it starts with
   * the layer); throws when it cannot be told (the caller must then not serve writes on it).
   */
  async write(epochMs: number, waitMs: number): Promise<void> {
    const line = Buffer.from(`${Math.floor(epochMs)}\n`);
    for (const until = Date.now() + waitMs; ; ) {
      try {
        this.fd ??= openSync(this.path, constants.O_WRONLY | constants.O_NONBLOCK);
        // One short line into an empty pipe is written whole or not at all (PIPE_BUF).
        writeSync(this.fd, line);
        this.last = Math.floor(epochMs);
        return;
      } catch (e) {
        this.close();
        const code = (e as NodeJS.ErrnoException).code;
        // ENXIO: no reader yet (the watchdog is starting); EPIPE: it went away; ENOENT: no pipe yet.
        if (!['ENXIO', 'EPIPE', 'ENOENT', 'EAGAIN'].includes(code ?? '') || Date.now() >= until) {
          throw new Error(`the fence watchdog did not take the deadline (${code ?? (e as Error).message}) at ${this.path}`);
        }
        if (code === 'ENOENT') await this.ensure();
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      /* already gone */
    }
    this.fd = undefined;
  }
}

const writers = new Map<string, FenceWriter>();

export function fenceWriter(path: string): FenceWriter {
  let w = writers.get(path);
  if (!w) writers.set(path, (w = new FenceWriter(path)));
  return w;
}

/** Agent shutdown: the watchdog keeps the last deadline (it fences by it unless a new agent writes sooner). */
export function closeFences(): void {
  for (const w of writers.values()) w.close();
}
