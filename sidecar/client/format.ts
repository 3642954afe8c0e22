import type { FileInfo } from './types.js';

/**
 * Presentation of API results the way the `pebble` CLI prints them, kept apart from the
 * command wiring so it can be tested as plain functions.
 */

/** Go's tabwriter as pebble configures it (minwidth 5, padding 2); the last column is not padded. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.slice(0, -1).forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, Math.max(cell.length + 2, 5));
    });
  }
  return rows.map((row) => row.map((cell, i) => (i < row.length - 1 ? cell.padEnd(widths[i]!) : cell)).join('') + '\n').join('');
}

function zoneName(d: Date): string {
  const part = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(d).find((p) => p.type === 'timeZoneName');
  return part?.value ?? 'UTC';
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** Pebble's timeMixin: "today at 15:04 UTC" style by default, RFC 3339 with --abs-time. */
export function formatTime(text: string | undefined, abs: boolean, now = new Date()): string {
  if (!text) return '-';
  const d = new Date(text);
  if (Number.isNaN(d.getTime()) || d.getTime() <= 0) return '-';
  if (abs) return d.toISOString();
  const startOfDay = (x: Date) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const days = Math.round((startOfDay(d) - startOfDay(now)) / 86_400_000);
  const clock = `${pad2(d.getHours())}:${pad2(d.getMinutes())} ${zoneName(d)}`;
  if (days === 0) return `today at ${clock}`;
  if (days === -1) return `yesterday at ${clock}`;
  if (days === 1) return `tomorrow at ${clock}`;
  if (days < -1 && days > -7) return `${-days} days ago, at ${clock}`;
  if (days > 1 && days < 7) return `in ${days} days, at ${clock}`;
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
}

/** `pebble logs` line format (times in UTC, millisecond precision). */
export function formatLogLine(e: { time: string; service: string; message: string }): string {
  const d = new Date(e.time);
  const time = Number.isNaN(d.getTime()) ? e.time : d.toISOString();
  return `${time} [${e.service}] ${e.message.replace(/\n$/, '')}\n`;
}

const TYPE_CHAR: Record<string, string> = {
  directory: 'd',
  symlink: 'L',
  socket: 'S',
  'named-pipe': 'p',
  device: 'D',
  unknown: '?',
};

/** Like Go's os.FileMode.String(): "-rw-r--r--", "drwxr-xr-x". */
export function formatMode(fi: Pick<FileInfo, 'type' | 'permissions'>): string {
  const perm = parseInt(fi.permissions, 8) & 0o777;
  const rwx = 'rwxrwxrwx';
  let bits = '';
  for (let i = 0; i < 9; i++) bits += perm & (1 << (8 - i)) ? rwx[i] : '-';
  return (fi.type === 'file' ? '-' : (TYPE_CHAR[fi.type] ?? '?')) + bits;
}

/** Sizes as pebble's `ls -l` shows them: "512B", "1.5kB", "24MB". */
export function formatSize(n: number): string {
  if (n < 1000) return `${n}B`;
  const units = ['k', 'M', 'G', 'T', 'P'];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  const text = v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${text.includes('.') ? text.replace(/\.?0+$/, '') : text}${units[u]}B`;
}

/** Splits "dir/*.conf" into a directory and a glob on the last element, as `pebble ls` does. */
export function parseGlob(path: string): { path: string; pattern?: string } {
  const trimmed = path.replace(/\/+$/, '');
  const i = trimmed.lastIndexOf('/');
  const dir = trimmed.slice(0, i + 1);
  const file = trimmed.slice(i + 1);
  if (/[*?[]/.test(dir)) throw new Error('can only use globs on the last path element');
  if (/[*?[]/.test(file)) return { path: dir, pattern: file };
  return { path };
}
