import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { CorruptStoreError } from './snapshot.js';
import { fsyncDir, writeAll } from './files.js';
import { parseRecord, type StoreRecord } from './records.js';

/**
 * The append-only journal: one JSON record per line in segment files `journal-<seq>.jsonl`.
 * Writers queue records; one flush at a time writes everything queued with a single write
 * and one fdatasync (group commit), then hands the batch to `onDurable` and only then
 * resolves the writers' promises, so nothing is acknowledged before it is on disk. A failed
 * write or fsync is fatal: the journal refuses everything afterwards rather than guess what
 * reached the disk. A record appended with `sync: false` (a lease renewal: object-store.ts
 * isRenewal) is acknowledged once written; a batch of only such records skips the fdatasync,
 * and the next synced batch makes them durable too.
 */

const SEGMENT = /^journal-(\d{10})\.jsonl$/;
export const segmentName = (seq: number) => `journal-${String(seq).padStart(10, '0')}.jsonl`;

interface Pending {
  line: string;
  sync: boolean;
  rec: StoreRecord;
  resolve: () => void;
  reject: (e: Error) => void;
}

export interface JournalHooks {
  /** Called in rv order once a batch is durable, before any writer is told. */
  onDurable(records: StoreRecord[]): void;
  onFatal(err: Error): void;
  /** Asked after each flush whether to start a new segment now. */
  shouldRotate(segmentBytes: number): boolean;
  /** A new segment was started; `closed` holds only records already passed to onDurable. */
  onRotated(closed: string[]): void;
}

export class Journal {
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private failed: Error | undefined;
  private bytes = 0;
  /** Segments before the current one that still exist on disk. */
  private closedSegments: string[] = [];

  private constructor(
    private readonly dir: string,
    private seq: number,
    private fh: fs.FileHandle,
    private readonly hooks: JournalHooks,
    private readonly log: Logger,
  ) {}

  /** Starts a new, empty segment `seq`. */
  static async start(dir: string, seq: number, hooks: JournalHooks, log: Logger): Promise<Journal> {
    const fh = await fs.open(path.join(dir, segmentName(seq)), 'a', 0o600);
    await fsyncDir(dir);
    return new Journal(dir, seq, fh, hooks, log);
  }

  append(rec: StoreRecord, sync = true): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.queue.push({ line: `${JSON.stringify(rec)}\n`, sync, rec, resolve, reject });
      this.flushing ??= this.flushLoop();
    });
  }

  /** Waits for everything queued so far to be durable (or failed). */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  async close(): Promise<void> {
    await this.drain();
    await this.fh.close().catch(() => {});
  }

  /** Segments (file names) that only hold records up to an rv already captured in a snapshot. */
  closed(): string[] {
    return [...this.closedSegments];
  }

  forget(segments: string[]): void {
    this.closedSegments = this.closedSegments.filter((s) => !segments.includes(s));
  }

  /**
   * Clears `flushing` in the same synchronous run that finds the queue empty: a writer told of
   * its record's durability may append again before a `.finally` on this promise would run, and
   * must then start a new loop, not find this one still marked as running and wait for ever.
   */
  private async flushLoop(): Promise<void> {
    for (;;) {
      if (!this.queue.length || this.failed) {
        this.flushing = undefined;
        return;
      }
      const batch = this.queue.splice(0);
      const buf = Buffer.from(batch.map((p) => p.line).join(''), 'utf8');
      try {
        await writeAll(this.fh, buf);
        if (batch.some((p) => p.sync)) await this.fh.datasync();
      } catch (e) {
        this.fail(e as Error, batch);
        this.flushing = undefined;
        return;
      }
      this.bytes += buf.length;
      try {
        this.hooks.onDurable(batch.map((p) => p.rec));
      } finally {
        for (const p of batch) p.resolve();
      }
      if (this.hooks.shouldRotate(this.bytes)) {
        try {
          await this.rotate();
        } catch (e) {
          this.fail(e as Error, []);
          this.flushing = undefined;
          return;
        }
      }
    }
  }

  private async rotate(): Promise<void> {
    const next = await fs.open(path.join(this.dir, segmentName(this.seq + 1)), 'a', 0o600);
    await fsyncDir(this.dir);
    const old = this.fh;
    this.closedSegments.push(segmentName(this.seq));
    this.fh = next;
    this.seq++;
    this.bytes = 0;
    await old.close();
    this.hooks.onRotated(this.closed());
  }

  private fail(err: Error, batch: Pending[]): void {
    this.failed = new Error(`the store journal cannot be written: ${err.message}`);
    this.log.fatal({ err: err.message, segment: segmentName(this.seq) }, 'journal write failed; the store refuses further writes');
    for (const p of [...batch, ...this.queue.splice(0)]) p.reject(this.failed);
    this.hooks.onFatal(this.failed);
  }
}

export interface Replayed {
  records: StoreRecord[];
  segments: string[];
  lastSeq: number;
}

/**
 * Reads every segment in order. Only the end of the last segment can be torn (nothing after
 * the last fsync was acknowledged), so from its first unreadable line on everything is cut
 * off, and the file truncated so the damage is not read again. Anything unreadable in an
 * older segment, or records out of order, mean the disk lost data: that is an error.
 */
export async function replayJournal(dir: string, afterRv: number, log: Logger): Promise<Replayed> {
  const segments = (await fs.readdir(dir))
    .filter((f) => SEGMENT.test(f))
    .sort();
  const records: StoreRecord[] = [];
  let lastRv = afterRv;
  for (const [i, seg] of segments.entries()) {
    const file = path.join(dir, seg);
    const buf = await fs.readFile(file);
    const last = i === segments.length - 1;
    let off = 0;
    while (off < buf.length) {
      const nl = buf.indexOf(0x0a, off);
      const rec = nl < 0 ? undefined : parseRecord(buf.subarray(off, nl).toString('utf8'));
      if (!rec) {
        if (!last) throw new CorruptStoreError(`${file} is damaged at byte ${off}, and it is not the newest journal segment`);
        log.warn({ segment: seg, offset: off, dropped: buf.length - off }, 'journal ends in a torn write (unacknowledged); cutting it off');
        const fh = await fs.open(file, 'r+');
        try {
          await fh.truncate(off);
          await fh.sync();
        } finally {
          await fh.close();
        }
        break;
      }
      if (rec.rv > afterRv) {
        if (rec.rv <= lastRv) throw new CorruptStoreError(`${file}: resourceVersion ${rec.rv} follows ${lastRv}; records are out of order`);
        records.push(rec);
        lastRv = rec.rv;
      }
      off = nl + 1;
    }
  }
  const lastSeq = segments.length ? Number(SEGMENT.exec(segments.at(-1)!)![1]) : 0;
  return { records, segments, lastSeq };
}
