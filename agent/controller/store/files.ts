import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

/** Durable-file helpers: what a crash at any instant may and may not leave behind. */

/** fsync a directory so that creations, renames and deletions in it survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes all of `buf` (the kernel may accept less than asked in one call). */
export async function writeAll(fh: fs.FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}

/**
 * Replaces `file` atomically: the content goes to a temp file that is fsynced, renamed over
 * the target, and the directory fsynced. A crash leaves either the old or the new file whole.
 */
export async function replaceFileDurably(file: string, chunks: Iterable<string>, mode = 0o600): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const fh = await fs.open(tmp, 'w', mode);
  try {
    let batch: string[] = [];
    let size = 0;
    for (const c of chunks) {
      batch.push(c);
      size += c.length;
      if (size > 1 << 20) {
        await writeAll(fh, Buffer.from(batch.join(''), 'utf8'));
        batch = [];
        size = 0;
      }
    }
    if (batch.length) await writeAll(fh, Buffer.from(batch.join(''), 'utf8'));
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  await fs.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}
