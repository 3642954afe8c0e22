import { z } from '#zod';
import { describeValue, type Path, type ProblemList } from './problems.js';
import { suggestion } from './suggest.js';

/**
 * Reads raw YAML nodes field by field: each field is checked with its own zod schema so one bad
 * field does not hide the problems of its siblings, and unknown fields are reported one by one
 * with a did-you-mean (a typo such as `imutable: true` must not silently become a default).
 */

export type RawMap = Record<string, unknown>;

export function isMap(v: unknown): v is RawMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** A section that holds named entries; an empty YAML section (`peers:`) reads as empty. */
export const sectionSchema = z.record(z.string(), z.unknown()).nullable();

type Fields = Record<string, z.ZodType>;
type Read<S extends Fields> = { [K in keyof S]?: z.output<S[K]> };

export function readFields<S extends Fields>(
  raw: unknown,
  spec: S,
  path: Path,
  sink: ProblemList,
  required: readonly (keyof S & string)[] = [],
): Read<S> | undefined {
  if (!isMap(raw)) {
    sink.add(path, `expected a map, got ${describeValue(raw)}`);
    return undefined;
  }
  const known = Object.keys(spec);
  for (const key of Object.keys(raw)) {
    if (!Object.hasOwn(spec, key)) sink.add([...path, key], `unknown field${suggestion(key, known)}`);
  }
  const out: Read<S> = {};
  for (const key of known as (keyof S & string)[]) {
    if (!Object.hasOwn(raw, key)) {
      if (required.includes(key)) sink.add([...path, key], 'required');
      continue;
    }
    const r = spec[key]!.safeParse(raw[key]);
    if (r.success) out[key] = r.data as z.output<S[typeof key]>;
    else addZodIssues(r.error.issues, raw[key], [...path, key], sink);
  }
  return out;
}

/** Named entries of a section, in file order (null sections read as none). */
export function entries(section: RawMap | null | undefined): [string, unknown][] {
  return section ? Object.entries(section) : [];
}

const EXPECTED: Record<string, string> = {
  array: 'a list',
  object: 'a map',
  record: 'a map',
  map: 'a map',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
};

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const seg of path) v = isMap(v) || Array.isArray(v) ? (v as Record<PropertyKey, unknown>)[seg] : undefined;
  return v;
}

function addZodIssues(issues: readonly z.core.$ZodIssue[], root: unknown, base: Path, sink: ProblemList): void {
  for (const issue of issues) {
    const rel = issue.path.filter((s): s is string | number => typeof s !== 'symbol');
    const path = [...base, ...rel];
    const got = valueAt(root, issue.path);
    switch (issue.code) {
      case 'invalid_type':
        sink.add(path, `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${describeValue(got)}`);
        break;
      case 'invalid_value':
        sink.add(path, `must be one of ${issue.values.map(String).join(', ')}, got ${describeValue(got)}${typeof got === 'string' ? suggestion(got, issue.values.map(String)) : ''}`);
        break;
      default:
        sink.add(path, issue.message);
    }
  }
}
