import { isIP } from 'node:net';
import { Cron } from 'croner';
import { describeValue } from './problems.js';
import { suggestion } from './suggest.js';

/** Config option types, as in Juju's config.yaml. */
export const OPTION_TYPES = ['string', 'int', 'float', 'boolean'] as const;
export type OptionType = (typeof OPTION_TYPES)[number];

/**
 * String formats an option may declare. `memory` is a PostgreSQL size with a unit ("128MB");
 * a bare number is refused because its unit would depend on the parameter (8kB pages for
 * shared_buffers, kB for work_mem). The empty string is "not set": the charm picks the value
 * (as a Juju option without a default), so it can tell a user's setting from its own default.
 * `cidrs` is `auto` (the charm chooses) or a comma-separated list of address ranges
 * ("10.1.0.0/16, fd00::/8"), possibly empty. `cron` is a 5-field cron schedule (minute hour
 * day-of-month month day-of-week, as crontab(5)), or empty for none. `recovery-target` is
 * what a point-in-time recovery stops at: `latest`, a pgBackRest backup id, an LSN or a
 * timestamp (parseRecoveryTarget), or empty for none.
 */
export const STRING_FORMATS = ['memory', 'cidrs', 'cron', 'recovery-target'] as const;
export type StringFormat = (typeof STRING_FORMATS)[number];

export type ConfigValue = string | number | boolean;
export type ConfigValues = Readonly<Record<string, ConfigValue>>;

/** The parts of an option that decide which values it accepts. */
export interface ValueRules {
  type: OptionType;
  min?: number;
  max?: number;
  allowed?: readonly ConfigValue[];
  format?: StringFormat;
}

const MEMORY_UNITS = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 } as const;
const MEMORY_RE = /^(\d+)(B|kB|MB|GB|TB)$/;

/** Bytes in a `memory`-format value ("128MB" -> 134217728); undefined if it is not one. */
export function memoryBytes(text: string): number | undefined {
  const m = MEMORY_RE.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * MEMORY_UNITS[m[2] as keyof typeof MEMORY_UNITS];
}

function memoryProblem(v: string): string | undefined {
  if (v === '' || memoryBytes(v) !== undefined) return undefined;
  // PostgreSQL's units are case-sensitive; point out the common "128mb" / "1gb" slip.
  const m = /^(\d+)\s*([a-zA-Z]+)$/.exec(v);
  const fixed = m && Object.keys(MEMORY_UNITS).find((u) => u.toLowerCase() === m[2]!.toLowerCase());
  const hint = fixed ? `; did you mean ${JSON.stringify(m![1] + fixed)}?` : '';
  return `must be a size with a unit like "128MB" (units: B, kB, MB, GB, TB), got ${describeValue(v)}${hint}`;
}

/** One CIDR, canonical prefix length checked: "10.0.0.0/8", "fd00::/8". Undefined when fine. */
function cidrProblem(item: string): string | undefined {
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(item);
  const family = m ? isIP(m[1]!) : 0;
  if (!m || !family) return `${describeValue(item)} is not an address range like "10.1.0.0/16" or "fd00::/8"`;
  const max = family === 4 ? 32 : 128;
  if (Number(m[2]) > max) return `${describeValue(item)}: an IPv${family} prefix length is at most ${max}`;
  return undefined;
}

/** The ranges of a `cidrs` value ("auto" is returned as is, for the charm to resolve). */
export function cidrList(text: string): string[] {
  return text.split(',').map((s) => s.trim()).filter(Boolean);
}

function cidrsProblem(v: string): string | undefined {
  if (v.trim() === 'auto') return undefined;
  const bad = cidrList(v).map(cidrProblem).filter((p): p is string => p !== undefined);
  return bad.length ? `must be "auto" or comma-separated address ranges: ${bad.join('; ')}` : undefined;
}

export function hasType(type: OptionType, v: unknown): v is ConfigValue {
  switch (type) {
    case 'string':
      return typeof v === 'string';
    case 'int':
      return typeof v === 'number' && Number.isSafeInteger(v);
    case 'float':
      return typeof v === 'number' && Number.isFinite(v);
    case 'boolean':
      return typeof v === 'boolean';
  }
}

/** Every reason `v` is not acceptable under `rules`; empty when it is. */
export function valueProblems(rules: ValueRules, v: unknown): string[] {
  if (!hasType(rules.type, v)) return [`expected ${rules.type}, got ${describeValue(v)}`];
  const out: string[] = [];
  if (typeof v === 'number') {
    if (rules.min !== undefined && v < rules.min) out.push(`must be at least ${rules.min}, got ${v}`);
    if (rules.max !== undefined && v > rules.max) out.push(`must be at most ${rules.max}, got ${v}`);
  }
  if (typeof v === 'string' && rules.format) {
    const p = rules.format === 'memory' ? memoryProblem(v) : rules.format === 'cron' ? cronProblem(v) : rules.format === 'recovery-target' ? recoveryTargetProblem(v) : cidrsProblem(v);
    if (p) out.push(p);
  }
  if (rules.allowed && !rules.allowed.includes(v)) {
    const hint = typeof v === 'string' ? suggestion(v, rules.allowed.map(String)) : '';
    out.push(`must be one of ${rules.allowed.join(', ')}, got ${describeValue(v)}${hint}`);
  }
  return out;
}

const INT_RE = /^[+-]?\d+$/;
const FLOAT_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** A decimal integer ("1.5", "1e3", "0x10" and unsafe integers are not), or undefined. */
export function parseIntText(text: string): number | undefined {
  const n = Number(text);
  return INT_RE.test(text) && Number.isSafeInteger(n) ? n : undefined;
}

/** A decimal number ("NaN", "Infinity" and "" are not), or undefined. */
export function parseFloatText(text: string): number | undefined {
  return FLOAT_RE.test(text) && Number.isFinite(Number(text)) ? Number(text) : undefined;
}

/**
 * Turns command-line text into a value of `type`: "true"/"false" for booleans, decimal
 * integers for int (so "1.5" and "1e3" are refused), decimal numbers for float, anything for
 * string. Checks only the type; ranges and allowed values are valueProblems' job.
 */
export function parseValueText(type: OptionType, text: string): { value: ConfigValue } | { error: string } {
  const bad = { error: `expected ${type}, got ${describeValue(text)}` };
  switch (type) {
    case 'string':
      return { value: text };
    case 'int': {
      const n = parseIntText(text);
      return n === undefined ? bad : { value: n };
    }
    case 'float': {
      const n = parseFloatText(text);
      return n === undefined ? bad : { value: n };
    }
    case 'boolean':
      if (text === 'true') return { value: true };
      if (text === 'false') return { value: false };
      return { error: `expected boolean (true or false), got ${describeValue(text)}` };
  }
}

/** A 5-field cron schedule, parsed by croner (a well-kept, dependency-free parser); empty is "none". */
function cronProblem(v: string): string | undefined {
  const fields = v.trim().split(/\s+/).filter(Boolean);
  if (!fields.length) return undefined;
  if (fields.length !== 5) return `expected a cron schedule of 5 fields (minute hour day-of-month month day-of-week), got ${fields.length} in ${JSON.stringify(v)}`;
  try {
    new Cron(fields.join(' '), { paused: true, timezone: 'UTC' });
    return undefined;
  } catch (e) {
    return `not a cron schedule: ${(e as Error).message.replace(/^CronPattern: /, '')}`;
  }
}

/** The next time a cron schedule fires after `from` (UTC), undefined when it has none. */
export function nextCronRun(schedule: string, from: Date): Date | undefined {
  const s = schedule.trim();
  if (!s) return undefined;
  return new Cron(s, { paused: true, timezone: 'UTC' }).nextRun(from) ?? undefined;
}

/** What a recovery stops at: a backup's end, a time, an LSN, or the end of the archived WAL. */
export type RecoveryTarget = { kind: 'backup'; id: string } | { kind: 'time'; time: string; at: number } | { kind: 'lsn'; lsn: string } | { kind: 'latest' };

const TIME = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d{1,6})?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;
const LSN = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i;
const BACKUP_ID = /^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$/;

export const TIME_EXAMPLE = 'RFC 3339 like 2026-11-27T20:25:17Z, or 2026-11-27 20:25:17.123456+00';

/** A timestamp (RFC 3339 or PostgreSQL's form; UTC when it has no offset) as pgBackRest wants it, or undefined. */
export function parseRecoveryTime(v: string): { time: string; at: number } | undefined {
  const m = TIME.exec(v.trim());
  if (!m) return undefined;
  const tz = m[4] ? (m[4].toUpperCase() === 'Z' ? '+00:00' : m[4].length === 3 ? `${m[4]}:00` : m[4].includes(':') ? m[4] : `${m[4].slice(0, 3)}:${m[4].slice(3)}`) : '+00:00';
  const at = Date.parse(`${m[1]}T${m[2]}${m[3] ? m[3].slice(0, 4) : ''}${tz}`);
  // pgBackRest's format: a space, not T; the fraction kept to the microsecond.
  return Number.isNaN(at) ? undefined : { time: `${m[1]} ${m[2]}${m[3] ?? ''}${tz}`, at };
}

export const isLsn = (v: string): boolean => LSN.test(v);
export const isBackupId = (v: string): boolean => BACKUP_ID.test(v);

/** A `recovery-target` value: latest, a backup id, an LSN or a timestamp; undefined for empty. */
export function parseRecoveryTarget(text: string): RecoveryTarget | { error: string } | undefined {
  const v = text.trim();
  if (!v) return undefined;
  if (v === 'latest') return { kind: 'latest' };
  if (isBackupId(v)) return { kind: 'backup', id: v };
  if (isLsn(v)) return { kind: 'lsn', lsn: v.toUpperCase() };
  const t = parseRecoveryTime(v);
  return t ? { kind: 'time', ...t } : { error: `must be latest, a backup id (like 20261127-204517F), an LSN (like 0/3000060) or a timestamp (${TIME_EXAMPLE}), got ${describeValue(v)}` };
}

function recoveryTargetProblem(v: string): string | undefined {
  const t = parseRecoveryTarget(v);
  return t && 'error' in t ? t.error : undefined;
}
