import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { fsyncDir } from './files.js';
import { Journal, replayJournal } from './journal.js';
import type { StoreRecord } from './records.js';
import { readSnapshot, writeSnapshot, type Snapshot, type SnapshotEntry } from './snapshot.js';

/**
 * The store on disk: `snapshot.jsonl` (all objects at one rv) plus journal segments with
 * every change after it. Start = snapshot + replay of the journal + a fresh snapshot, so
 * a torn tail is dealt with once; a running store rotates the segment every
 * `compactBytes` and writes a snapshot of the state at the end of the closed segments,
 * after which those segments are deleted. Each step leaves a loadable directory:
 *
 *   rotate: new segment created + dir fsynced  -> old segments still hold everything
 *   snapshot: temp file, fsync, rename, dir fsync -> old or new snapshot, never half of one
 *   delete old segments, dir fsync               -> their records are in the snapshot
 */

export interface Loaded {
  snapshot: Snapshot | undefined;
  records: StoreRecord[];
  segments: string[];
  lastSeq: number;
}

export interface PersistenceHooks {
  onDurable(records: StoreRecord[]): void;
  onFatal(err: Error): void;
  /** The committed state right now, as a snapshot. */
  capture(): Snapshot;
}

export async function loadFromDisk(dir: string, log: Logger): Promise<Loaded> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await fs.chmod(dir, 0o700); // objects include Secrets
  for (const f of await fs.readdir(dir)) {
    if (f.includes('.tmp-')) await fs.rm(path.join(dir, f), { force: true }); // an interrupted snapshot
  }
  const snapshot = await readSnapshot(dir);
  const { records, segments, lastSeq } = await replayJournal(dir, snapshot?.rv ?? 0, log);
  return { snapshot, records, segments, lastSeq };
}

export class Persistence {
  private snapshotting: Promise<void> | undefined;

  private constructor(
    private readonly dir: string,
    private readonly journal: Journal,
    private readonly hooks: PersistenceHooks,
    private readonly log: Logger,
  ) {}

  static async start(dir: string, loaded: Loaded, compactBytes: number, hooks: PersistenceHooks, log: Logger): Promise<Persistence> {
    if (loaded.records.length > 0 || !loaded.snapshot) {
      await writeSnapshot(dir, hooks.capture());
    }
    for (const seg of loaded.segments) await fs.rm(path.join(dir, seg), { force: true });
    if (loaded.segments.length) await fsyncDir(dir);
    let self: Persistence | undefined;
    const journal = await Journal.start(
      dir,
      loaded.lastSeq + 1,
      {
        onDurable: (r) => hooks.onDurable(r),
        onFatal: (e) => hooks.onFatal(e),
        shouldRotate: (bytes) => bytes >= compactBytes && self?.snapshotting === undefined,
        onRotated: (closed) => self?.compact(closed),
      },
      log,
    );
    self = new Persistence(dir, journal, hooks, log);
    return self;
  }

  append(rec: StoreRecord, o: { sync: boolean } = { sync: true }): Promise<void> {
    return this.journal.append(rec, o.sync);
  }

  async close(): Promise<void> {
    await this.journal.close();
    await this.snapshotting;
  }

  /** Runs right after a rotation, before any later record is committed: capture() is the state at the end of `closed`. */
  private compact(closed: string[]): void {
    const snap = this.hooks.capture();
    const started = Date.now();
    this.snapshotting = (async () => {
      await writeSnapshot(this.dir, snap);
      for (const seg of closed) await fs.rm(path.join(this.dir, seg), { force: true });
      await fsyncDir(this.dir);
      this.journal.forget(closed);
      this.log.info({ rv: snap.rv, objects: snap.entries.length, ms: Date.now() - started }, 'store compacted');
    })()
      .catch((e: Error) => this.log.error({ err: e.message }, 'store compaction failed; the journal keeps everything, retrying at the next rotation'))
      .finally(() => (this.snapshotting = undefined));
  }
}

export type { SnapshotEntry };
