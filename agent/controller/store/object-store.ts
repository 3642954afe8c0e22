import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { deepFreeze } from '../machinery/json.js';
import { expired, unavailable } from '../machinery/status.js';
import { formatTime } from '../machinery/time.js';
import type { KubeObject } from '../registry/types.js';
import { History, type StoreEvent } from './history.js';
import { lockStore } from './lock.js';
import { loadFromDisk, Persistence } from './persistence.js';
import type { StoreRecord } from './records.js';
import type { Snapshot, SnapshotEntry } from './snapshot.js';

/**
 * Objects keyed by (resource, namespace, name) under one global, monotonically increasing
 * resourceVersion, like etcd's revision. Knows nothing about kinds or validation.
 *
 * Writes are applied at once to a `pending` overlay, so the next compare-and-swap sees
 * them, and journaled; they become `committed` (readable, listed, sent to watchers) only
 * once durable, in rv order. So no reader or watcher ever sees a write that a crash could
 * still take back, and a write's caller hears of success only after that point.
 */

export interface StoreOptions {
  /** The store directory (created with mode 0700). */
  dir: string;
  log: Logger;
  /** How many events watches can resume from (default 10000). */
  historyLimit?: number;
  /** Journal bytes after which the store writes a new snapshot (default 8 MiB). */
  compactBytes?: number;
  /** Called when the disk failed; the store refuses writes from then on. */
  onFatal?: (err: Error) => void;
}

export type WatchListener = (e: StoreEvent) => void;

interface Watcher {
  res: string;
  ns: string | undefined;
  fn: WatchListener;
}

const nsName = (ns: string, name: string) => `${ns}/${name}`;

export class ObjectStore {
  private committed = new Map<string, Map<string, KubeObject>>();
  private pending = new Map<string, { rv: number; obj: KubeObject | null }>();
  private lastRv = 0;
  private committedRv = 0;
  private history: History;
  private watchers = new Set<Watcher>();
  private persistence!: Persistence;
  private failed: Error | undefined;
  private closing = false;
  private unlock: () => void = () => {};
  /** When the store was first created. */
  created = formatTime(new Date());

  private constructor(
    private readonly opts: StoreOptions,
    historyStart: number,
  ) {
    this.history = new History(opts.historyLimit ?? 10_000, historyStart);
  }

  static async open(opts: StoreOptions): Promise<ObjectStore> {
    const dir = path.resolve(opts.dir);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Lock before reading: recovery truncates a torn journal tail, which must not be another server's live write.
    const unlock = lockStore(dir);
    try {
      const loaded = await loadFromDisk(dir, opts.log);
      const store = new ObjectStore(opts, loaded.snapshot?.rv ?? 0);
      store.unlock = unlock;
      if (loaded.snapshot) {
        store.created = loaded.snapshot.created;
        for (const e of loaded.snapshot.entries) store.table(e.res).set(nsName(e.ns, e.name), deepFreeze(e.obj));
        store.lastRv = store.committedRv = loaded.snapshot.rv;
      }
      store.commit(loaded.records); // rebuilds the watch history too
      store.lastRv = store.committedRv;
      store.persistence = await Persistence.start(
        dir,
        loaded,
        opts.compactBytes ?? 8 << 20,
        {
          onDurable: (r) => store.commit(r),
          onFatal: (e) => {
            store.failed = e;
            opts.onFatal?.(e);
          },
          capture: () => store.capture(),
        },
        opts.log,
      );
      opts.log.info({ dir, rv: store.committedRv, objects: store.count(), replayed: loaded.records.length }, 'store opened');
      return store;
    } catch (e) {
      unlock();
      throw e;
    }
  }

  /** The newest resourceVersion readers can see. */
  get rv(): number {
    return this.committedRv;
  }

  /** Open watches (for diagnostics, and tests that check none leak). */
  get watchCount(): number {
    return this.watchers.size;
  }

  /** Every event after `oldestResumableRv` can be watched from history. */
  get oldestResumableRv(): number {
    return this.history.start;
  }

  /** The committed object, or undefined. Treat it as read-only: it is shared. */
  get(res: string, ns: string, name: string): KubeObject | undefined {
    return this.committed.get(res)?.get(nsName(ns, name));
  }

  /** The newest state including writes not yet durable: what a compare-and-swap must check against. */
  latest(res: string, ns: string, name: string): KubeObject | undefined {
    const p = this.pending.get(`${res}/${nsName(ns, name)}`);
    return p ? (p.obj ?? undefined) : this.get(res, ns, name);
  }

  /** Committed objects of a resource, in one namespace or all, sorted by namespace then name. */
  list(res: string, ns?: string): KubeObject[] {
    const t = this.committed.get(res);
    if (!t) return [];
    const prefix = ns === undefined ? '' : `${ns}/`;
    return [...t.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o);
  }

  /** The list as it was at `rv` (for paging and exact-rv lists); 410 when history no longer reaches back. */
  listAt(res: string, ns: string | undefined, rv: number): KubeObject[] {
    if (rv >= this.committedRv) return this.list(res, ns);
    if (!this.history.covers(rv)) throw expired(`too old resource version: ${rv} (${this.history.start})`);
    const t = new Map((this.committed.get(res) ?? new Map<string, KubeObject>()).entries());
    const later = this.history.after(rv).filter((e) => e.res === res && e.rv <= this.committedRv);
    // Undo newest first, so each key ends at the state before its first change after rv.
    for (const e of later.reverse()) {
      if (e.prev) t.set(nsName(e.ns, e.name), e.prev);
      else t.delete(nsName(e.ns, e.name));
    }
    const prefix = ns === undefined ? '' : `${ns}/`;
    return [...t.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o);
  }

  /** Namespaces that hold at least one committed object. */
  namespaces(): Set<string> {
    const out = new Set<string>();
    for (const t of this.committed.values()) for (const k of t.keys()) out.add(k.slice(0, k.indexOf('/')));
    return out;
  }

  /**
   * Stores `obj` (its metadata.resourceVersion is set here) on top of the latest state, at
   * once; `durable` settles when it is on disk and visible to readers and watchers.
   */
  put(res: string, ns: string, name: string, obj: KubeObject): { object: KubeObject; durable: Promise<void> } {
    const renewal = res === 'leases' && isRenewal(this.latest(res, ns, name), obj);
    const rv = this.nextRv();
    const object = deepFreeze({ ...obj, metadata: { ...obj.metadata, resourceVersion: String(rv) } });
    this.pending.set(`${res}/${nsName(ns, name)}`, { rv, obj: object });
    return { object, durable: this.persistence.append({ rv, op: 'put', res, ns, name, obj: object }, { sync: !renewal }) };
  }

  remove(res: string, ns: string, name: string): { rv: number; durable: Promise<void> } {
    const rv = this.nextRv();
    this.pending.set(`${res}/${nsName(ns, name)}`, { rv, obj: null });
    return { rv, durable: this.persistence.append({ rv, op: 'del', res, ns, name }) };
  }

  /**
   * Calls `fn` for each committed event of `res` (in `ns`, or all namespaces) after `fromRv`:
   * first those still in history, then new ones as they commit, in rv order. Throws 410
   * Expired when history no longer reaches back to `fromRv`. Returns the unsubscribe function.
   */
  watch(res: string, ns: string | undefined, fromRv: number, fn: WatchListener): () => void {
    if (!this.history.covers(fromRv)) throw expired(`too old resource version: ${fromRv} (${this.history.start})`);
    for (const e of this.history.after(fromRv)) {
      if (e.res === res && (ns === undefined || e.ns === ns)) fn(e);
    }
    const w: Watcher = { res, ns, fn };
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  async close(): Promise<void> {
    this.closing = true;
    try {
      await this.persistence.close();
    } finally {
      this.watchers.clear();
      this.unlock();
    }
  }

  private nextRv(): number {
    if (this.closing) throw unavailable('the store is shutting down');
    if (this.failed) throw unavailable(`the store cannot write: ${this.failed.message}`);
    return ++this.lastRv;
  }

  private table(res: string): Map<string, KubeObject> {
    let t = this.committed.get(res);
    if (!t) this.committed.set(res, (t = new Map()));
    return t;
  }

  private count(): number {
    let n = 0;
    for (const t of this.committed.values()) n += t.size;
    return n;
  }

  /** Makes durable records visible, in rv order, and tells the watchers. */
  private commit(records: StoreRecord[]): void {
    for (const r of records) {
      const t = this.table(r.res);
      const key = nsName(r.ns, r.name);
      const prev = t.get(key);
      let e: StoreEvent;
      if (r.op === 'put') {
        t.set(key, deepFreeze(r.obj));
        e = { rv: r.rv, type: prev ? 'MODIFIED' : 'ADDED', res: r.res, ns: r.ns, name: r.name, object: r.obj, ...(prev ? { prev } : {}) };
      } else {
        t.delete(key);
        const last = prev ?? { metadata: { name: r.name, namespace: r.ns } };
        e = { rv: r.rv, type: 'DELETED', res: r.res, ns: r.ns, name: r.name, object: { ...last, metadata: { ...last.metadata, resourceVersion: String(r.rv) } }, ...(prev ? { prev } : {}) };
      }
      this.committedRv = r.rv;
      const pkey = `${r.res}/${key}`;
      if (this.pending.get(pkey)?.rv === r.rv) this.pending.delete(pkey);
      this.history.push(e);
      for (const w of this.watchers) {
        if (w.res !== r.res || (w.ns !== undefined && w.ns !== r.ns)) continue;
        try {
          w.fn(e);
        } catch (err) {
          this.opts.log.error({ err: (err as Error).message, res: r.res }, 'watch listener failed');
        }
      }
    }
  }

  private capture(): Snapshot {
    const entries: SnapshotEntry[] = [];
    for (const [res, t] of this.committed) {
      for (const [key, obj] of t) {
        const i = key.indexOf('/');
        entries.push({ res, ns: key.slice(0, i), name: key.slice(i + 1), obj });
      }
    }
    return { rv: this.committedRv, created: this.created, entries };
  }
}

export type { StoreEvent };

/**
 * A Lease update that only moves renewTime forward for the same holder. The journal writes it
 * without waiting for fdatasync: under a bulk load the disk's writeback made one take seconds,
 * longer than a 2 s lease lets a primary wait, and its agent fenced a healthy primary. Losing
 * one costs nothing: only a crash of the machine loses what the page cache holds, and that
 * takes every unit down with the controller; the lease then looks older than it was, which no
 * unit can mistake for a lease it holds. A change of holder (a takeover) is still synced
 * before anyone is told.
 */
export function isRenewal(prev: KubeObject | undefined, next: KubeObject): boolean {
  type L = { spec?: { holderIdentity?: string; leaseTransitions?: number; acquireTime?: string; leaseDurationSeconds?: number } };
  const a = (prev as L | undefined)?.spec;
  const b = (next as L).spec;
  return a !== undefined && b !== undefined && Boolean(a.holderIdentity) && a.holderIdentity === b.holderIdentity && a.leaseTransitions === b.leaseTransitions && a.acquireTime === b.acquireTime && a.leaseDurationSeconds === b.leaseDurationSeconds;
}
