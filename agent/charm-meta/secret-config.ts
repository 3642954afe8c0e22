import { createHmac } from 'node:crypto';
import type { CharmMeta } from './schema.js';
import type { ConfigValue, ConfigValues } from './values.js';

/**
 * Values of options marked `secret: true` never go into the config ConfigMap. There each one is
 * a reference, `secret:<hmac>`, where hmac is HMAC-SHA256 under a per-deployment random key
 * (kept in the Secret, never in a ConfigMap) of the option name and value: equal values give
 * equal references, so a change of the value changes the config hash (config-changed fires)
 * and an unchanged one does not, while the reference reveals nothing a dictionary attack could
 * use without the key. The value itself is in the Secret under `<option>.<hmac>`.
 *
 * The empty string (a secret option's default, see metadata.ts) is not secret and stays as is.
 */

export const SECRET_REF_PREFIX = 'secret:';
const REF_RE = /^secret:([0-9a-f]{32})$/;

/** Shown instead of a secret value (`pgcharm config`, diffs, error messages). */
export const SECRET_SHOWN = '(secret)';

export function secretOptions(meta: CharmMeta): string[] {
  return Object.values(meta.options)
    .filter((o) => o.secret)
    .map((o) => o.name);
}

export function secretRef(key: Uint8Array, option: string, value: string): string {
  return SECRET_REF_PREFIX + createHmac('sha256', key).update(`${option}\0${value}`).digest('hex').slice(0, 32);
}

/** The Secret's data key holding the value a reference stands for. */
export function secretEntryKey(option: string, ref: string): string {
  const m = REF_RE.exec(ref);
  if (!m) throw new Error(`not a secret reference: option ${option}`);
  return `${option}.${m[1]}`;
}

export function isSecretRef(v: unknown): v is string {
  return typeof v === 'string' && REF_RE.test(v);
}

export interface Sealed {
  /** The values as the ConfigMap holds them: secret ones replaced by references. */
  values: Record<string, ConfigValue>;
  /** Secret data entries (`<option>.<hmac>` -> value) the references need. */
  entries: Record<string, string>;
  /** Options whose value here is a reference. */
  refs: string[];
}

/**
 * Replaces the values of `secretNames` with references. A value that already is the reference
 * the stored config has for that option (`previous`) passes through: it was read back
 * unresolved (its entry lost) and is being kept, not set.
 */
export function sealValues(values: ConfigValues, secretNames: readonly string[], key: Uint8Array, previous: ConfigValues = {}): Sealed {
  const out: Sealed = { values: { ...values }, entries: {}, refs: [] };
  for (const name of secretNames) {
    const v = values[name];
    if (typeof v !== 'string' || v === '') continue;
    out.refs.push(name);
    if (isSecretRef(v) && previous[name] === v) continue;
    const ref = secretRef(key, name, v);
    out.values[name] = ref;
    out.entries[secretEntryKey(name, ref)] = v;
  }
  return out;
}

/**
 * The real values back: each reference of `refs` looked up in the Secret's `entries`. One that
 * is missing stays a reference and is listed in `missing`.
 */
export function unsealValues(values: ConfigValues, refs: readonly string[], entries: Readonly<Record<string, string>>): { values: Record<string, ConfigValue>; missing: string[] } {
  const out = { values: { ...values } as Record<string, ConfigValue>, missing: [] as string[] };
  for (const name of refs) {
    const v = values[name];
    if (!isSecretRef(v)) continue;
    const real = entries[secretEntryKey(name, v)];
    if (real === undefined) out.missing.push(name);
    else out.values[name] = real;
  }
  return out;
}

/** The Secret data keys that `values` reference. */
export function referencedEntries(values: ConfigValues, refs: readonly string[]): string[] {
  return refs.flatMap((name) => (isSecretRef(values[name]) ? [secretEntryKey(name, values[name])] : []));
}

/** A value as the user may see it: secret ones (other than "") as SECRET_SHOWN. */
export function shownValue(meta: CharmMeta, key: string, v: ConfigValue): ConfigValue {
  const opt = Object.hasOwn(meta.options, key) ? meta.options[key] : undefined;
  return opt?.secret && v !== '' ? SECRET_SHOWN : v;
}
