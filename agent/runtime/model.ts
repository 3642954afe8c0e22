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
