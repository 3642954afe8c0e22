import { RelationDataAccessError, type RelationBag } from './charm.js';

/**
 * A bag as one handler sees it: the stored data plus that handler's own writes, which are
 * stored only if the handler succeeds. `writable` carries Juju's rules: a unit writes only its
 * own bag, and only the leader writes the application bag.
 */
export class BufferedBag implements RelationBag {
  readonly writes = new Map<string, string | null>();

  constructor(
    private readonly stored: Readonly<Record<string, string>>,
    private readonly writable: () => true | string,
  ) {}

  get(key: string): string | undefined {
    if (this.writes.has(key)) return this.writes.get(key) ?? undefined;
    return this.stored[key];
  }

  entries(): Record<string, string> {
    const out: Record<string, string> = { ...this.stored };
    for (const [k, v] of this.writes) {
      if (v === null) delete out[k];
      else out[k] = v;
    }
    return out;
  }

  set(key: string, value: string | null): void {
    const ok = this.writable();
    if (ok !== true) throw new RelationDataAccessError(ok);
    if (!/^[-._a-zA-Z0-9]+$/.test(key)) throw new RelationDataAccessError(`invalid bag key ${JSON.stringify(key)}: use letters, digits, '-', '_' and '.'`);
    if (value !== null && typeof value !== 'string') throw new RelationDataAccessError(`bag values are strings; ${JSON.stringify(key)} got ${typeof value}`);
    this.writes.set(key, value);
  }

  /** The merge patch for the store, or undefined when nothing changed. */
  patch(): Record<string, string | null> | undefined {
    const p: Record<string, string | null> = {};
    for (const [k, v] of this.writes) if ((this.stored[k] ?? null) !== v) p[k] = v;
    return Object.keys(p).length ? p : undefined;
  }
}

/** Two bags' data are the same (keys and values). */
export function sameData(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/** A JSON list of strings as stored in an annotation (unit names); anything unreadable is empty. */
export function parseList(s: string | undefined): string[] {
  if (!s) return [];
  try {
    const v: unknown = JSON.parse(s);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}
