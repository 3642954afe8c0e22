import { closeSync, existsSync, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { modelPaths } from '../controller/model.js';

/**
 * `pgcharm debug-log`: the controller's, agents' and sidecars' logs of a model merged by time,
 * one line each: `HH:MM:SS.mmm source LEVEL [event] message key=value...`, rotated files
 * (x.log.1 …) included. Service output the sidecar passes through (Postgres's) has the time
 * the sidecar stamped on it; other lines that are not JSON keep the time of the line before them.
 */

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'unit', 'event', 'v']);

export interface LogLine {
  time: number;
  source: string;
  text: string;
  level: number;
}

/** The time a sidecar stamps on a service's output line (`2024-05-01T10:00:00.000Z [postgresql] ...`). */
const SERVICE_LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) \[/;

export function formatLine(source: string, raw: string, lastTime: number): LogLine {
  let o: Record<string, unknown> | undefined;
  if (raw.startsWith('{')) {
    try {
      o = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      o = undefined;
    }
  }
  if (!o || typeof o['time'] !== 'number') {
    const stamped = SERVICE_LINE.exec(raw);
    return { time: stamped ? Date.parse(stamped[1]!) : lastTime, source, text: raw, level: 30 };
  }
  const time = o['time'] as number;
  const level = Number(o['level'] ?? 30);
  const extras = Object.entries(o)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const event = typeof o['event'] === 'string' && o['event'] !== 'idle' ? ` [${o['event']}]` : '';
  const text = `${LEVELS[level] ?? level}${event} ${String(o['msg'] ?? '')}${extras ? ` ${extras}` : ''}`;
  return { time, source, text, level };
}

export function renderLine(l: LogLine): string {
  const t = new Date(l.time).toISOString().slice(11, 23);
  return `${t} ${l.source} ${l.text}`;
}

/**
 * One log and its rotated files (x.log, x.log.1 … newest first), followed across rotations:
 * the file being read is known by its inode, so when x.log was renamed to x.log.1 its rest is
 * read there before the new x.log.
 */
interface Tail {
  base: string;
  source: string;
  /** The file read last (undefined: not read yet), and how far. */
  ino: number | undefined;
  offset: number;
  lastTime: number;
}

function sourceOf(file: string): string {
  // postgresql-0.agent.log -> postgresql/0 agent; controller.log -> controller
  const m = /^(.+)-(\d+)\.(agent|sidecar)\.log$/.exec(file);
  return m ? `${m[1]}/${m[2]}:${m[3]}` : file.replace(/\.log$/, '');
}

/**
 * The complete lines of `path` from `offset` (from 0 if it shrank), with the file's inode and
 * where they end; `all` also takes an unfinished last line (a file rotated away, that will not grow).
 */
function readFrom(path: string, offset: number, all = false): { ino: number; end: number; text: string } | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const { ino, size } = fstatSync(fd);
    const from = size < offset ? 0 : offset; // truncated
    const buf = Buffer.alloc(size - from);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, from + got);
      if (n === 0) break;
      got += n;
    }
    // Whole lines only: a line being written (or a character cut in two) is read next time.
    const used = all ? got : buf.subarray(0, got).lastIndexOf(0x0a) + 1;
    return { ino, end: from + used, text: buf.subarray(0, used).toString('utf8') };
  } finally {
    closeSync(fd);
  }
}

/** The rotated files of `base` that exist, newest first, with their inodes. */
function rotatedFiles(base: string): { path: string; ino: number }[] {
  const out: { path: string; ino: number }[] = [];
  for (let n = 1; ; n++) {
    try {
      out.push({ path: `${base}.${n}`, ino: statSync(`${base}.${n}`).ino });
    } catch {
      return out;
    }
  }
}

/** Formats complete lines; lines without a time of their own take the one before, or (at the start) the next one's. */
function formatLines(t: Pick<Tail, 'source' | 'lastTime'>, text: string, minLevel: number): LogLine[] {
  const lines = text.split('\n');
  const out: LogLine[] = [];
  let untimed = 0;
  for (const raw of lines) {
    if (!raw) continue;
    const l = formatLine(t.source, raw, t.lastTime);
    if (l.time === 0) untimed++;
    else if (untimed) {
      for (const u of out) if (u.time === 0) u.time = l.time;
      untimed = 0;
    }
    t.lastTime = l.time;
    if (l.level >= minLevel) out.push(l);
  }
  return out;
}

/**
 * The last `lines` lines (at least) of a log and its rotated files: the newest files are read
 * first and older ones only while more lines are wanted. Leaves the tail at the end of x.log.
 */
function history(t: Tail, lines: number, minLevel: number): LogLine[] {
  const cur = readFrom(t.base, 0);
  if (!cur) return [];
  const files = lines > 0 ? rotatedFiles(t.base) : [];
  const parts: LogLine[][] = [];
  let count = 0;
  const take = (text: string) => {
    const ls = formatLines({ source: t.source, lastTime: 0 }, text, minLevel);
    parts.unshift(ls);
    count += ls.length;
  };
  if (lines > 0) take(cur.text);
  for (const f of files) {
    if (count >= lines) break;
    const r = readFrom(f.path, 0, true);
    if (r) take(r.text);
  }
  Object.assign(t, { ino: cur.ino, offset: cur.end });
  const last = parts.at(-1)?.at(-1);
  if (last) t.lastTime = last.time;
  return parts.flat();
}

/** What was written since the last read, including the rest of a file rotated away meanwhile. */
function readNew(t: Tail, minLevel: number): LogLine[] {
  const cur = statIno(t.base);
  if (cur === undefined) return [];
  const out: LogLine[] = [];
  if (cur !== t.ino) {
    const rotated = rotatedFiles(t.base);
    const k = rotated.findIndex((f) => f.ino === t.ino);
    if (k >= 0) {
      out.push(...formatLines(t, readFrom(rotated[k]!.path, t.offset, true)?.text ?? '', minLevel));
      for (let i = k - 1; i >= 0; i--) out.push(...formatLines(t, readFrom(rotated[i]!.path, 0, true)?.text ?? '', minLevel));
    }
    Object.assign(t, { ino: cur, offset: 0 });
  }
  const r = readFrom(t.base, t.offset);
  if (!r) return out;
  if (r.ino !== t.ino) return out; // rotated between the two looks: the next scan reads it
  t.offset = r.end;
  out.push(...formatLines(t, r.text, minLevel));
  return out;
}

function statIno(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

export interface DebugLogOptions {
  lines: number;
  follow: boolean;
  /** Only these sources (unit names like postgresql/0, or "controller"). */
  include: string[];
  minLevel: number;
  write: (s: string) => void;
  signal?: AbortSignal;
}

export async function debugLog(model: string, o: DebugLogOptions): Promise<void> {
  const dir = modelPaths(model).logs;
  const tails = new Map<string, Tail>();
  const wanted = (source: string) => o.include.length === 0 || o.include.some((i) => source === i || source.startsWith(`${i}:`));
  // Sources are the current files (x.log); their rotated files are read through them.
  const scan = (first: boolean): LogLine[] => {
    if (!existsSync(dir)) return [];
    const out: LogLine[] = [];
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.log')).sort()) {
      const source = sourceOf(f);
      if (!wanted(source)) continue;
      let t = tails.get(f);
      if (!t) tails.set(f, (t = { base: join(dir, f), source, ino: undefined, offset: 0, lastTime: 0 }));
      // A log that appears while following is read from its start.
      out.push(...(t.ino === undefined && first ? history(t, o.lines, o.minLevel) : readNew(t, o.minLevel)));
    }
    // A stable sort keeps each file's own order for lines with the same time.
    return out.sort((a, b) => a.time - b.time);
  };
  const first = scan(true);
  for (const l of o.lines > 0 ? first.slice(-o.lines) : []) o.write(renderLine(l) + '\n');
  while (o.follow && !o.signal?.aborted) {
    await new Promise((r) => setTimeout(r, 250));
    for (const l of scan(false)) o.write(renderLine(l) + '\n');
  }
}
