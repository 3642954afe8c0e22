import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { basename } from 'node:path';

/**
 * Bytes written to log files over a window, followed by inode so that rotation (x.log renamed
 * to x.log.1, a fresh x.log) neither loses nor double-counts anything: a file is counted under
 * its group (x.log) from the size it had when first seen. A file that first shows up under a
 * rotated name (a copy, a .gz) was not written by anyone logging, and is left out.
 */

export interface LogFile {
  path: string;
  /** What the figures are reported under (the live file's name). */
  group: string;
  /** The file a process writes to now (not a rotated x.log.1). */
  live: boolean;
}

interface Tracked {
  group: string;
  path: string;
  /** Offset where the window starts in this file (0 for a file created during it). */
  from: number;
  last: number;
  written: number;
}

/** A model's logs/ directory as LogFiles: x.log, x.log.1, x.log.2.gz all in group x.log. */
export function rotatedGroup(name: string): { group: string; live: boolean } {
  const m = /^(.*?)(\.\d+)(\.gz)?$/.exec(name);
  return m ? { group: m[1]!, live: false } : { group: name, live: true };
}

export class LogWatch {
  private readonly files = new Map<number, Tracked>();
  private readonly ignored = new Set<number>();
  private started = false;

  constructor(private readonly list: () => LogFile[]) {}

  sample(): void {
    for (const f of this.list()) {
      let ino: number, size: number;
      try {
        ({ ino, size } = statSync(f.path));
      } catch {
        continue; // rotated away between the listing and now
      }
      const t = this.files.get(ino);
      if (t) {
        t.path = f.path;
        if (size >= t.last) t.written += size - t.last;
        else {
          // Truncated (copytruncate): what it holds now was written since.
          t.written += size;
          t.from = 0;
        }
        t.last = size;
      } else if (this.ignored.has(ino)) {
        continue;
      } else if (!this.started) {
        this.files.set(ino, { group: f.group, path: f.path, from: size, last: size, written: 0 });
      } else if (f.live) {
        this.files.set(ino, { group: f.group, path: f.path, from: 0, last: size, written: size });
      } else {
        this.ignored.add(ino);
      }
    }
    this.started = true;
  }

  /** Bytes written per group since the first sample. */
  bytes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const t of this.files.values()) out[t.group] = (out[t.group] ?? 0) + t.written;
    return out;
  }

  /** What was written per group since the first sample, as far as it is still on disk. */
  text(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const t of this.files.values()) {
      if (t.last <= t.from) continue;
      const buf = Buffer.alloc(t.last - t.from);
      let fd: number;
      try {
        fd = openSync(t.path, 'r');
      } catch {
        continue; // deleted by rotation
      }
      try {
        readSync(fd, buf, 0, buf.length, t.from);
      } finally {
        closeSync(fd);
      }
      out[t.group] = (out[t.group] ?? '') + buf.toString('utf8');
    }
    return out;
  }
}

/**
 * What a log line says, without its times, pids and numbers, so that lines repeating the same
 * thing count together: a JSON line's msg (with a pushed file's name), else the text.
 */
export function lineKey(line: string): string {
  if (line.startsWith('{')) {
    try {
      const o = JSON.parse(line) as { msg?: unknown; path?: unknown; event?: unknown };
      const extra = o.msg === 'push file' && typeof o.path === 'string' ? ` ${basename(o.path)}` : typeof o.event === 'string' ? ` [${o.event}]` : '';
      return `${String(o.msg ?? '?')}${extra}`;
    } catch {
      /* not JSON after all */
    }
  }
  return line
    .replace(/\d{4}-\d\d-\d\d[T ][\d:.,]+(Z| [A-Z]{3,4})?/g, '')
    .replace(/\d+/g, '#')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 90);
}

/** The `n` most frequent line keys in `text`, with their counts. */
export function topLines(text: string, n: number): [string, number][] {
  const counts = new Map<string, number>();
  for (const l of text.split('\n')) {
    if (!l.trim()) continue;
    const k = lineKey(l);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
}
