/**
 * meta/v1 Time and MicroTime as they are on the wire. Time is RFC 3339 in whole seconds
 * (fractions are accepted and dropped); MicroTime must carry exactly six fractional digits,
 * as Go's time.Parse with RFC3339Micro demands (so `Date.toISOString()`'s milliseconds are
 * refused, as a real API server refuses them). Both are written back in UTC.
 */

const TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$/;
const MICRO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})(Z|[+-]\d{2}:\d{2})$/;

/** Milliseconds since the epoch of the whole-second part, or undefined when not a valid date. */
function wholeSeconds(m: RegExpExecArray): number | undefined {
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return undefined;
  const utc = Date.UTC(y, mo - 1, d, h, mi, s);
  if (new Date(utc).getUTCDate() !== d) return undefined; // 31 February and friends
  const tz = m[8]!;
  if (tz === 'Z' || tz === 'z') return utc;
  const sign = tz[0] === '-' ? -1 : 1;
  const oh = Number(tz.slice(1, 3));
  const om = Number(tz.slice(4, 6));
  if (oh > 23 || om > 59) return undefined;
  return utc - sign * (oh * 60 + om) * 60_000;
}

const seconds = (ms: number) => new Date(ms).toISOString().slice(0, 19);

/** Normalized meta/v1 Time, or undefined when `s` is not RFC 3339. */
export function normalizeTime(s: string): string | undefined {
  const m = TIME.exec(s);
  const ms = m ? wholeSeconds(m) : undefined;
  return ms === undefined ? undefined : `${seconds(ms)}Z`;
}

/** Normalized meta/v1 MicroTime, or undefined when `s` is not RFC 3339 with microseconds. */
export function normalizeMicroTime(s: string): string | undefined {
  const m = MICRO.exec(s);
  const ms = m ? wholeSeconds(m) : undefined;
  return ms === undefined ? undefined : `${seconds(ms)}.${m![7]}Z`;
}

export function formatTime(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

export function formatMicroTime(d: Date): string {
  return `${d.toISOString().slice(0, 23)}000Z`;
}

/** Parses a normalized Time or MicroTime; NaN when absent or invalid. */
export function parseTime(s: unknown): number {
  return typeof s === 'string' ? Date.parse(s) : NaN;
}

/** apimachinery's duration.HumanDuration: the AGE column ("5s", "3m2s", "10d"). */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.trunc(hours / 24)}d` : `${Math.trunc(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.trunc(hours / 24) % 365;
    const y = Math.trunc(hours / 24 / 365);
    return dy === 0 ? `${y}y` : `${y}y${dy}d`;
  }
  return `${Math.trunc(hours / 24 / 365)}y`;
}

/** The AGE of a timestamp as kubectl shows it; `<unknown>` when there is none. */
export function age(timestamp: unknown, now: number): string {
  const t = parseTime(timestamp);
  return Number.isNaN(t) ? '<unknown>' : humanDuration(now - t);
}
