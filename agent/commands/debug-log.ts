import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { modelPaths } from '../controller/model.js';

/**
 * `pgcharm debug-log`: the controller's, agents' and sidecars' logs of a model merged by time,
 * one line each: `HH:MM:SS.mmm source LEVEL [event] message key=value...`. Lines that are not
 * JSON (service output the sidecar passes through) keep the time of the line before them.
 */

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'unit', 'event', 'v']);

export interface LogLine {
  time: number;
  source: string;
  text: string;
  level: number;
}

export function formatLine(source: string, raw: string, lastTime: number): LogLine {
  let o: Record<string, unknown> | undefined;
  if (raw.startsWith('{')) {
    try {
      o = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      o = undefined;
    }
  }
  if (!o || typeof o['time'] !== 'number') return { time: lastTime, source, text: raw, level: 30 };
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

interface Tail {
  path: string;
  source: string;
  offset: number;
  partial: string;
  lastTime: number;
}

function sourceOf(file: string): string {
  // postgresql-0.agent.log -> postgresql/0 agent; controller.log -> controller
  const m = /^(.+)-(\d+)\.(agent|sidecar)\.log$/.exec(file);
  return m ? `${m[1]}/${m[2]}:${m[3]}` : file.replace(/\.log$/, '');
}

function readNew(t: Tail): string[] {
  const size = statSync(t.path).size;
  if (size < t.offset) t.offset = 0; // truncated
  if (size === t.offset) return [];
  const buf = Buffer.alloc(size - t.offset);
  const fd = openSync(t.path, 'r');
  try {
    readSync(fd, buf, 0, buf.length, t.offset);
  } finally {
    closeSync(fd);
  }
  t.offset = size;
  const text = t.partial + buf.toString('utf8');
  const lines = text.split('\n');
  t.partial = lines.pop() ?? '';
  return lines.filter((l) => l.length > 0);
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
  const scan = (): LogLine[] => {
    if (!existsSync(dir)) return [];
    const out: LogLine[] = [];
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.log')).sort()) {
      const source = sourceOf(f);
      if (!wanted(source)) continue;
      let t = tails.get(f);
      if (!t) tails.set(f, (t = { path: join(dir, f), source, offset: 0, partial: '', lastTime: 0 }));
      for (const raw of readNew(t)) {
        const l = formatLine(t.source, raw, t.lastTime);
        t.lastTime = l.time;
        if (l.level >= o.minLevel) out.push(l);
      }
    }
    // A stable sort keeps each file's own order for lines with the same time.
    return out.sort((a, b) => a.time - b.time);
  };
  const first = scan();
  for (const l of first.slice(-o.lines)) o.write(renderLine(l) + '\n');
  while (o.follow && !o.signal?.aborted) {
    await new Promise((r) => setTimeout(r, 250));
    for (const l of scan()) o.write(renderLine(l) + '\n');
  }
}
