import fs from 'node:fs/promises';
import path from 'node:path';
import { isObject } from '../machinery/json.js';
import type { KubeObject } from '../registry/types.js';
import { replaceFileDurably } from './files.js';

/**
 * The snapshot: every object at one resourceVersion, one JSON line each, between a header
 * and a trailer that both carry the count (so a damaged file is noticed, never half-read).
 * It is only ever replaced atomically (see replaceFileDurably).
 */

export const SNAPSHOT_FILE = 'snapshot.jsonl';
const FORMAT = 'pgcharm-store-snapshot/1';

export interface SnapshotEntry {
  res: string;
  ns: string;
  name: string;
  obj: KubeObject;
}

export interface Snapshot {
  rv: number;
  /** When the store was first created (the age of the implicit namespaces). */
  created: string;
  entries: SnapshotEntry[];
}

export async function writeSnapshot(dir: string, snap: Snapshot): Promise<void> {
  function* lines(): Generator<string> {
    yield `${JSON.stringify({ format: FORMAT, rv: snap.rv, created: snap.created, count: snap.entries.length })}\n`;
    for (const e of snap.entries) yield `${JSON.stringify(e)}\n`;
    yield `${JSON.stringify({ end: snap.entries.length })}\n`;
  }
  await replaceFileDurably(path.join(dir, SNAPSHOT_FILE), lines());
}

export class CorruptStoreError extends Error {}

export async function readSnapshot(dir: string): Promise<Snapshot | undefined> {
  const file = path.join(dir, SNAPSHOT_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const bad = (why: string) => new CorruptStoreError(`${file} is damaged (${why}); it is only ever replaced atomically, so the disk lost data`);
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  let header: unknown;
  let trailer: unknown;
  try {
    header = JSON.parse(lines[0] ?? '');
    trailer = JSON.parse(lines.at(-1) ?? '');
  } catch {
    throw bad('unreadable header or trailer');
  }
  if (!isObject(header) || header['format'] !== FORMAT) throw bad('unknown format');
  const { rv, created, count } = header;
  if (typeof rv !== 'number' || typeof created !== 'string' || typeof count !== 'number') throw bad('bad header');
  if (!isObject(trailer) || trailer['end'] !== count || lines.length !== count + 2) throw bad('truncated');
  const entries: SnapshotEntry[] = [];
  for (const line of lines.slice(1, -1)) {
    try {
      entries.push(JSON.parse(line) as SnapshotEntry);
    } catch {
      throw bad('unreadable entry');
    }
  }
  return { rv, created, entries };
}
