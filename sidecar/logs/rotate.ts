import { closeSync, copyFileSync, existsSync, fstatSync, ftruncateSync, openSync, readlinkSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import type { Logger } from 'pino';

/**
 * Size-capped log files with numbered rotation, logrotate's default scheme: `x.log` is
 * written, and when the next line would take it past the cap it becomes `x.log.1` (the older
 * ones shift to `.2` … `.N`, the oldest is dropped) and a new `x.log` starts.
 *
 * What a local unit's agent and sidecar and the local controller write when given a log file
 * (`--log-file`); on Kubernetes they log to stdout and the node rotates. Writes are
 * synchronous, as pino.destination's are: the line before a process.exit or a crash is on
 * disk, and no worker thread is needed.
 */

export interface Rotation {
  /** The cap of each file, in bytes. */
  maxBytes: number;
  /** How many rotated files are kept (`x.log.1` … `x.log.<files>`). */
  files: number;
}

export const DEFAULT_ROTATION: Rotation = { maxBytes: 10 * 1024 * 1024, files: 3 };
/** Environment defaults of the caps, inherited by everything a local controller starts. */
export const ROTATION_ENV = { maxSize: 'PGCHARM_LOG_MAX_SIZE', maxFiles: 'PGCHARM_LOG_MAX_FILES' } as const;
const MIN_BYTES = 1024;
const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** `4096`, `512K`, `10M`, `1G` (binary units; a trailing B or iB is allowed). */
export function parseSize(field: string, v: string): number {
  const m = /^(\d+)\s*([kmg]?)(?:i?b)?$/i.exec(v.trim());
  const n = m ? Number(m[1]) * UNITS[m[2]!.toLowerCase()]! : NaN;
  if (!Number.isSafeInteger(n) || n < MIN_BYTES) throw new Error(`${field}: must be a size of at least 1K, like 512K or 10M, got ${JSON.stringify(v)}`);
  return n;
}

function parseCount(field: string, v: string): number {
  if (!/^\d+$/.test(v.trim()) || Number(v) < 1 || Number(v) > 100) throw new Error(`${field}: must be a number of files from 1 to 100, got ${JSON.stringify(v)}`);
  return Number(v);
}

/** The caps from flags, else the environment, else the defaults; a bad value is an error naming where it came from. */
export function rotationFrom(flags: { maxSize?: string | undefined; maxFiles?: string | undefined }, env: NodeJS.ProcessEnv = process.env): Rotation {
  const pick = (flag: string, value: string | undefined, name: string): [string, string] | undefined =>
    value !== undefined ? [flag, value] : env[name] ? [name, env[name]] : undefined;
  const size = pick('--log-max-size', flags.maxSize, ROTATION_ENV.maxSize);
  const files = pick('--log-max-files', flags.maxFiles, ROTATION_ENV.maxFiles);
  return {
    maxBytes: size ? parseSize(size[0], size[1]) : DEFAULT_ROTATION.maxBytes,
    files: files ? parseCount(files[0], files[1]) : DEFAULT_ROTATION.files,
  };
}

/** `x.log`, `x.log.1` … `x.log.<files>`: the names a log and its rotated files take. */
export const rotatedName = (path: string, n: number): string => (n === 0 ? path : `${path}.${n}`);

/** Makes room for a new `path.1`: `.1` … `.<files-1>` move up one, and what falls past `files` (or was left by a larger setting) goes. */
function shiftRotated(path: string, files: number): void {
  for (let n = files + 1; existsSync(rotatedName(path, n)); n++) rmSync(rotatedName(path, n), { force: true });
  for (let n = files - 1; n >= 1; n--) {
    try {
      renameSync(rotatedName(path, n), rotatedName(path, n + 1));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}

/** Rotates `path` to `path.1`, shifting the older ones. */
export function shiftFiles(path: string, files: number): void {
  shiftRotated(path, files);
  try {
    renameSync(path, rotatedName(path, 1));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Rotates `path` if it is past the cap (a file someone else writes, between its writers' runs). */
export function rotateIfOver(path: string, limits: Rotation): void {
  try {
    if (statSync(path).size > limits.maxBytes) shiftFiles(path, limits.files);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** A log file that rotates itself; a pino destination (`write`), and where a sidecar echoes service output. */
export class RotatingFile {
  private fd: number | undefined;
  private size = 0;

  constructor(
    readonly path: string,
    readonly limits: Rotation,
  ) {
    this.open();
  }

  private open(): void {
    this.fd = openSync(this.path, 'a', 0o644);
    this.size = fstatSync(this.fd).size;
  }

  write(chunk: string | Buffer): boolean {
    let buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    // One line longer than the cap is cut, so that no file ever passes it.
    if (buf.length > this.limits.maxBytes) buf = Buffer.concat([buf.subarray(0, this.limits.maxBytes - 1), Buffer.from('\n')]);
    try {
      if (this.fd === undefined) this.open();
      if (this.size > 0 && this.size + buf.length > this.limits.maxBytes) this.rotate();
      for (let off = 0; off < buf.length; ) off += writeSync(this.fd!, buf, off);
      this.size += buf.length;
    } catch {
      // A log that cannot be written (disk full, directory gone) must not take the process down:
      // the line is dropped and the file opened again on the next one.
      this.close();
    }
    return true;
  }

  private rotate(): void {
    this.close();
    shiftFiles(this.path, this.limits.files);
    this.open();
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
    this.fd = undefined;
  }
}

/**
 * Bounds the file this process's stderr (and stdout) was pointed at by whoever started it:
 * where crash traces, V8's fatal errors and Node's warnings land, written by Node itself and
 * not through the log. Past the cap it is copied to `<file>.1` (older ones shift) and emptied;
 * checked now and every minute. Stdio that is not a regular file (a pipe, a terminal) is left alone.
 */
export function boundStderr(limits: Rotation, everyMs = 60_000): { stop(): void } {
  let path: string;
  try {
    if (!fstatSync(2).isFile()) return { stop: () => undefined };
    path = readlinkSync('/proc/self/fd/2');
  } catch {
    return { stop: () => undefined };
  }
  const check = () => {
    try {
      if (fstatSync(2).size <= limits.maxBytes) return;
      shiftRotated(path, limits.files);
      copyFileSync(path, rotatedName(path, 1));
      ftruncateSync(2, 0); // opened for appending, so writers carry on at the new end
    } catch {
      /* best effort: the next check tries again */
    }
  };
  check();
  const timer = setInterval(check, everyMs).unref();
  return { stop: () => clearInterval(timer) };
}

/**
 * A process's own log file (`--log-file`): the rotating file, its stderr file bounded too, and
 * an uncaught exception written to the log before Node prints it to stderr and exits, so that
 * `pgcharm debug-log` shows the crash where it happened.
 */
export function openProcessLog(path: string, limits: Rotation): { file: RotatingFile; logCrashes(log: Logger): void } {
  const file = new RotatingFile(path, limits);
  boundStderr(limits);
  return {
    file,
    logCrashes: (log) => process.on('uncaughtExceptionMonitor', (err, origin) => log.fatal({ err, origin }, 'uncaught exception; exiting')),
  };
}
