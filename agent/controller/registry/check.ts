import { isObject, typeName } from '../machinery/json.js';
import { fieldInvalid, fieldTypeInvalid, type FieldError } from '../machinery/status.js';
import { normalizeMicroTime, normalizeTime } from '../machinery/time.js';
import type { KnownFields } from './types.js';

/**
 * Small typed readers for validation: each checks one field's JSON type, records a
 * FieldError naming the field when it is wrong, and tells the caller whether to go on.
 * A real API server refuses wrong types while decoding (400); here they are reported like
 * every other field problem (422 with a cause per field), which names the field.
 */

export type Errs = FieldError[];

const typeErr = (errs: Errs, path: string, v: unknown, want: string) => errs.push(fieldTypeInvalid(path, v, `must be ${want}, got ${typeName(v)}`));

export function optString(o: Record<string, unknown>, key: string, path: string, errs: Errs): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') {
    typeErr(errs, path, v, 'a string');
    return undefined;
  }
  return v;
}

export function optBool(o: Record<string, unknown>, key: string, path: string, errs: Errs): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') {
    typeErr(errs, path, v, 'a boolean');
    return undefined;
  }
  return v;
}

/** int32 / int64 as Kubernetes' JSON decoder accepts them: integral numbers in range. */
export function optInt(o: Record<string, unknown>, key: string, path: string, errs: Errs, bits: 32 | 64 = 32): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  const max = bits === 32 ? 2 ** 31 - 1 : Number.MAX_SAFE_INTEGER;
  if (typeof v !== 'number' || !Number.isInteger(v) || v > max || v < -max - 1) {
    typeErr(errs, path, v, `an integer (int${bits})`);
    return undefined;
  }
  return v;
}

export function optObject(o: Record<string, unknown>, key: string, path: string, errs: Errs): Record<string, unknown> | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) {
    typeErr(errs, path, v, 'an object');
    return undefined;
  }
  return v;
}

export function optArray(o: Record<string, unknown>, key: string, path: string, errs: Errs): unknown[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    typeErr(errs, path, v, 'an array');
    return undefined;
  }
  return v;
}

/** map[string]string: every value must be a string. */
export function optStringMap(o: Record<string, unknown>, key: string, path: string, errs: Errs): Record<string, string> | undefined {
  const m = optObject(o, key, path, errs);
  if (!m) return undefined;
  let ok = true;
  for (const [k, v] of Object.entries(m)) {
    if (typeof v !== 'string') {
      typeErr(errs, `${path}[${k}]`, v, 'a string');
      ok = false;
    }
  }
  return ok ? (m as Record<string, string>) : undefined;
}

/** A meta/v1 Time field: validated, then rewritten in its canonical form. */
export function normTime(o: Record<string, unknown>, key: string, path: string, errs: Errs): void {
  const v = optString(o, key, path, errs);
  if (v === undefined) return;
  const n = normalizeTime(v);
  if (n === undefined) errs.push(fieldInvalid(path, v, 'must be an RFC 3339 time, e.g. "2006-01-02T15:04:05Z"'));
  else o[key] = n;
}

/** A meta/v1 MicroTime field: exactly six fractional digits, like Kubernetes' RFC3339Micro. */
export function normMicroTime(o: Record<string, unknown>, key: string, path: string, errs: Errs): void {
  const v = optString(o, key, path, errs);
  if (v === undefined) return;
  const n = normalizeMicroTime(v);
  if (n === undefined) errs.push(fieldInvalid(path, v, 'must be an RFC 3339 time with microseconds, e.g. "2006-01-02T15:04:05.000000Z"'));
  else o[key] = n;
}

/** Drops fields the kind does not have, as a typed decoder would; returns their paths. */
export function pruneUnknown(o: Record<string, unknown>, known: KnownFields, path = ''): string[] {
  const dropped: string[] = [];
  for (const k of Object.keys(o)) {
    const p = path ? `${path}.${k}` : k;
    const spec = known[k];
    if (spec === undefined) {
      delete o[k];
      dropped.push(p);
    } else if (spec !== true && isObject(o[k])) {
      dropped.push(...pruneUnknown(o[k] as Record<string, unknown>, spec, p));
    }
  }
  return dropped;
}

export const utf8Length = (s: string) => Buffer.byteLength(s, 'utf8');
