import type { ConfigValue, ConfigValues } from './values.js';

/** One key whose value differs; `before`/`after` is undefined when the key was added/removed. */
export interface ConfigChange {
  key: string;
  before: ConfigValue | undefined;
  after: ConfigValue | undefined;
}

/** Keys whose values differ, in `after`'s order, then keys only `before` has. */
export function diffConfig(before: ConfigValues, after: ConfigValues): ConfigChange[] {
  const out: ConfigChange[] = [];
  for (const key of Object.keys(after)) {
    const b = Object.hasOwn(before, key) ? before[key] : undefined;
    if (b !== after[key]) out.push({ key, before: b, after: after[key] });
  }
  for (const key of Object.keys(before)) {
    if (!Object.hasOwn(after, key)) out.push({ key, before: before[key], after: undefined });
  }
  return out;
}

export interface DiffRenderOptions {
  /** Header labels, as in `--- a` / `+++ b`. */
  from?: string;
  to?: string;
  /** ANSI red/green, for a terminal that supports it. */
  color?: boolean;
  /** Options whose values are secret: shown as (secret) unless empty. */
  secret?: readonly string[];
}

/** Strings JSON-quoted so `"on"`, `""` and `"15"` read unambiguously; each line is valid YAML. */
const show = (v: ConfigValue): string => (typeof v === 'string' ? JSON.stringify(v) : String(v));

/**
 * A unified-diff-like rendering for `pgcharm config --diff`: `-key: old` / `+key: new` lines
 * under `--- from` / `+++ to` headers, or "no changes".
 */
export function renderConfigDiff(changes: readonly ConfigChange[], opts: DiffRenderOptions = {}): string {
  if (changes.length === 0) return 'no changes';
  const paint = (code: string, s: string) => (opts.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const lines = [paint('1', `--- ${opts.from ?? 'before'}`), paint('1', `+++ ${opts.to ?? 'after'}`)];
  const value = (key: string, v: ConfigValue) => (opts.secret?.includes(key) && v !== '' ? '(secret)' : show(v));
  for (const c of changes) {
    if (c.before !== undefined) lines.push(paint('31', `-${c.key}: ${value(c.key, c.before)}`));
    if (c.after !== undefined) lines.push(paint('32', `+${c.key}: ${value(c.key, c.after)}`));
  }
  return lines.join('\n');
}
