import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readdir, rename, rm, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { lookupGroup, lookupUser } from '../osutil/users.js';
import { FileError, RequestError, fileError, toResult, type PathResult } from './errors.js';
import { compileGlob } from './glob.js';
import { checkPath, type MakeDirSpec, type Owner, type RemoveSpec, type WriteSpec } from './request.js';

/**
 * The files manager behind Pebble's /v1/files: list, read, write, make-dirs, remove.
 * It knows nothing about HTTP; requests arrive already validated (request.ts) and
 * per-path failures come back as FileError / PathResult, the way Pebble reports them.
 */

export type FileType = 'file' | 'directory' | 'symlink' | 'socket' | 'named-pipe' | 'device' | 'unknown';

/** Pebble's fileInfoResult; keys and order as Pebble writes them. */
export interface FileInfo {
  path: string;
  name: string;
  type: FileType;
  /** Regular files only. */
  size?: number;
  /** Octal, e.g. "644". */
  permissions: string;
  /** RFC 3339 in the sidecar's local time, seconds precision (Go's time.RFC3339). */
  'last-modified': string;
  'user-id': number;
  user: string;
  'group-id': number;
  group: string;
}

function fileType(st: Stats): FileType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isSocket()) return 'socket';
  if (st.isFIFO()) return 'named-pipe';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'device';
  return 'unknown';
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Go's time.Format(time.RFC3339) of a local time: "2024-05-01T10:00:00Z" or "...+02:00". */
export function formatRfc3339(d: Date): string {
  const offset = -d.getTimezoneOffset();
  const zone = offset === 0 ? 'Z' : `${offset > 0 ? '+' : '-'}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
  return (
    `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
    `T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${zone}`
  );
}

/** "/a/b/" -> "/a/b": a trailing slash must not change which name is reported. */
function clean(path: string): string {
  return posix.normalize(path).replace(/(.)\/+$/, '$1');
}

/** Flushes a directory so a rename or mkdir in it survives a crash, like Pebble does; best effort. */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the data is still written.
  } finally {
    await fh?.close().catch(() => {});
  }
}

/** Writes a whole buffer; fs writes to regular files may in principle be short. */
async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
    off += bytesWritten;
  }
}

/**
 * Reads `source` to its end, passing each chunk to `sink` one at a time. A sink failure
 * does not stop the reading: multipart part streams must be consumed or the parser
 * stalls, so the rest is discarded and the sink's error is thrown at the end. Errors of
 * the source itself (the request broke off) are thrown as they are.
 */
function consume(source: Readable, sink?: (chunk: Buffer) => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    if (source.readableEnded) return resolve();
    // A part stream can be destroyed (client gone) before anyone read it.
    const broken = () => source.errored ?? new Error('part stream closed before its end');
    if (source.destroyed) return reject(broken());
    let sinkErr: unknown;
    let failed = false;
    source.on('data', (chunk: Buffer) => {
      if (!sink || failed) return;
      source.pause();
      sink(chunk).then(
        () => source.resume(),
        (e: unknown) => {
          failed = true;
          sinkErr = e;
          source.resume();
        },
      );
    });
    source.once('end', () => (failed ? reject(sinkErr) : resolve()));
    source.once('error', reject);
    source.once('close', () => {
      if (!source.readableEnded) reject(broken());
    });
    source.resume();
  });
}

/** Discards the rest of a part stream. */
export const drain = (source: Readable): Promise<void> => consume(source);

interface MkdirOptions {
  mode: number;
  owner?: Owner;
  makeParents: boolean;
  existOk: boolean;
  /** Receives every directory created, outermost first, so a failed request can remove them. */
  created?: string[];
}

/**
 * Pebble's osutil.Mkdir: each new directory is made under a side name, chowned and
 * chmodded (umask does not apply), then renamed into place, so nobody sees it with the
 * wrong owner or mode. Missing parents get the same mode and owner as the leaf.
 */
async function makeDir(path: string, o: MkdirOptions): Promise<void> {
  path = clean(path);
  const st = await stat(path).catch(() => undefined);
  if (st) {
    if (!st.isDirectory()) throw new FileError(`mkdir ${path}: not a directory`);
    if (o.existOk) return;
    throw new FileError(`mkdir ${path}: file exists`);
  }
  await makeDirAll(path, o);
}

async function makeDirAll(path: string, o: MkdirOptions): Promise<void> {
  const st = await stat(path).catch(() => undefined);
  if (st) {
    if (st.isDirectory()) return;
    throw new FileError(`mkdir ${path}: not a directory`);
  }
  const parent = posix.dirname(path);
  if (o.makeParents && parent !== '/' && parent !== path) await makeDirAll(parent, o);
  // A side name of its own: two requests making the same directory at once (two pushes with
  // make-dirs into one new directory) each build theirs; whoever renames second finds the
  // directory there and is done, as if it had existed.
  const cand = `${path}.mkdir-new-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(cand, o.mode & 0o777);
    if (o.owner) await chown(cand, o.owner.uid, o.owner.gid);
    await chmod(cand, o.mode);
    if ((await stat(path).catch(() => undefined))?.isDirectory()) {
      await rmdir(cand);
      return;
    }
    await rename(cand, path);
  } catch (e) {
    await rmdir(cand).catch(() => {});
    if ((await stat(path).catch(() => undefined))?.isDirectory()) return;
    throw fileError('mkdir', path, e);
  }
  o.created?.push(path);
  await syncDir(parent);
}

export interface ReadSource {
  stream: Readable;
  size: number;
}

/**
 * One multipart write request: file parts are streamed to temp files beside their
 * targets as they arrive, and only renamed into place by commit(), once the whole
 * request was read and found valid. rollback() removes every trace of it.
 */
export class WriteSession {
  private readonly specs = new Map<string, WriteSpec>();
  private readonly staged = new Map<string, string>();
  private readonly errors = new Map<string, FileError>();
  private readonly temps = new Set<string>();
  private readonly created: string[] = [];
  private done = false;

  constructor(
    specs: WriteSpec[],
    private readonly log?: Logger,
  ) {
    for (const s of specs) this.specs.set(s.path, s);
  }

  /** True when the request's metadata names this path. */
  expects(path: string): boolean {
    return this.specs.has(path);
  }

  /** Paths named in the metadata whose content never came (an invalid item needs none). */
  missing(): string[] {
    return [...this.specs.values()]
      .filter((s) => !s.error && !this.staged.has(s.path) && !this.errors.has(s.path))
      .map((s) => s.path);
  }

  /**
   * Streams one file part to a temp file next to its target. Filesystem failures are
   * recorded for that path (and the part is drained); a broken source or a repeated
   * path throws, which makes the whole request invalid.
   */
  async stage(path: string, source: Readable): Promise<void> {
    if (this.done) throw new RequestError('the request already finished');
    const spec = this.specs.get(path);
    if (!spec) throw new RequestError(`no metadata for path ${JSON.stringify(path)}`);
    if (this.staged.has(path) || this.errors.has(path)) {
      throw new RequestError(`file content for path ${JSON.stringify(path)} given more than once`);
    }
    if (spec.error) {
      this.errors.set(path, spec.error);
      return drain(source);
    }
    this.log?.debug({ path }, 'push file');
    let tmp: string | undefined;
    let fh: FileHandle | undefined;
    try {
      if (spec.makeDirs) {
        await makeDir(posix.dirname(path), {
          mode: 0o755,
          owner: spec.owner,
          makeParents: true,
          existOk: true,
          created: this.created,
        }).catch((e: unknown) => {
          const fe = fileError('mkdir', posix.dirname(path), e);
          throw new FileError(`cannot create directory: ${fe.message}`, fe.kind);
        });
      }
      tmp = `${path}.${randomBytes(6).toString('hex')}~`;
      const name = tmp;
      fh = await open(name, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600).catch((e: unknown) => {
        throw fileError('open', path, e);
      });
      this.temps.add(name);
      const h = fh;
      await h.chmod(spec.mode).catch((e: unknown) => {
        throw fileError('chmod', path, e);
      });
      if (spec.owner) {
        const { uid, gid } = spec.owner;
        await h.chown(uid, gid).catch((e: unknown) => {
          throw fileError('chown', path, e);
        });
      }
      await consume(source, (chunk) =>
        writeAll(h, chunk).catch((e: unknown) => {
          throw fileError('write', path, e);
        }),
      );
      await h.sync().catch((e: unknown) => {
        throw fileError('sync', path, e);
      });
      await h.close();
      fh = undefined;
      this.staged.set(path, name);
    } catch (e) {
      await fh?.close().catch(() => {});
      if (tmp) {
        await unlink(tmp).catch(() => {});
        this.temps.delete(tmp);
      }
      if (!(e instanceof FileError)) throw e;
      this.errors.set(path, e);
      // The part may be unread or partly read; the rest must still be consumed.
      if (!source.readableEnded) await drain(source);
    }
  }

  /** Renames every staged file into place; results follow the metadata's order. */
  async commit(): Promise<PathResult[]> {
    if (this.done) throw new Error('write session already finished');
    this.done = true;
    const results: PathResult[] = [];
    const dirs = new Set<string>();
    for (const [path, spec] of this.specs) {
      let err = this.errors.get(path) ?? spec.error;
      const tmp = this.staged.get(path);
      if (!err && tmp) {
        try {
          await rename(tmp, path);
          this.temps.delete(tmp);
          dirs.add(posix.dirname(path));
        } catch (e) {
          err = fileError('rename', path, e);
        }
      } else if (!err) {
        err = new FileError(`no file content for path ${JSON.stringify(path)}`);
      }
      results.push(toResult(path, err));
    }
    for (const d of dirs) await syncDir(d);
    await this.cleanTemps();
    return results;
  }

  /** Undoes the request: temp files and the directories it created go away. */
  async rollback(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.cleanTemps();
    for (const d of [...this.created].reverse()) await rmdir(d).catch(() => {});
  }

  private async cleanTemps(): Promise<void> {
    for (const t of this.temps) await unlink(t).catch(() => {});
    this.temps.clear();
  }
}

export class FilesManager {
  constructor(private readonly log?: Logger) {}

  /**
   * Lists a directory's entries, or describes one file (or the directory itself with
   * `itself`). Entries are not followed through symlinks; the given path is.
   */
  async list(path: string, pattern?: string, itself = false): Promise<FileInfo[]> {
    checkPath(path, 'path');
    const match = pattern ? compileGlob(pattern) : undefined;
    const p = clean(path);
    let st: Stats;
    try {
      st = await stat(p);
    } catch (e) {
      throw fileError('stat', path, e);
    }
    const entries: { name: string; dir: string; st: Stats }[] = [];
    if (!st.isDirectory() || itself) {
      entries.push({ name: posix.basename(p) || '/', dir: posix.dirname(p), st });
    } else {
      let names: string[];
      try {
        names = await readdir(p);
      } catch (e) {
        throw fileError('open', path, e);
      }
      names.sort();
      for (const name of names) {
        if (match && !match.test(name)) continue;
        // An entry removed while we list is simply not there any more.
        const est = await lstat(posix.join(p, name)).catch(() => undefined);
        if (est) entries.push({ name, dir: p, st: est });
      }
    }
    const users = new Map<number, string>();
    const groups = new Map<number, string>();
    const out: FileInfo[] = [];
    for (const { name, dir, st: s } of entries) {
      if (match && !match.test(name)) continue;
      if (!users.has(s.uid)) users.set(s.uid, lookupUser(s.uid)?.name ?? '');
      if (!groups.has(s.gid)) groups.set(s.gid, lookupGroup(s.gid)?.name ?? '');
      // Key order as Pebble writes it; size only for regular files.
      out.push({
        path: name === '/' ? '/' : posix.join(dir, name),
        name,
        type: fileType(s),
        ...(s.isFile() ? { size: s.size } : {}),
        permissions: (s.mode & 0o777).toString(8).padStart(3, '0'),
        'last-modified': formatRfc3339(s.mtime),
        'user-id': s.uid,
        user: users.get(s.uid)!,
        'group-id': s.gid,
        group: groups.get(s.gid)!,
      });
    }
    return out;
  }

  /**
   * Opens a regular file for streaming. The type is checked before opening (a FIFO
   * would block the open) and again on the open descriptor.
   */
  async openRead(path: string): Promise<ReadSource> {
    if (!path.startsWith('/')) throw new FileError(`paths must be absolute, got ${JSON.stringify(path)}`);
    this.log?.debug({ path }, 'pull file');
    let st: Stats;
    try {
      st = await stat(path);
    } catch (e) {
      throw fileError('stat', path, e);
    }
    const notRegular = () => new FileError(`can only read a regular file: ${JSON.stringify(path)}`);
    if (!st.isFile()) throw notRegular();
    let fh: FileHandle;
    try {
      fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      throw fileError('open', path, e);
    }
    let fst: Stats;
    try {
      fst = await fh.stat();
    } catch (e) {
      await fh.close();
      throw fileError('stat', path, e);
    }
    if (!fst.isFile()) {
      await fh.close();
      throw notRegular();
    }
    return { stream: fh.createReadStream({ highWaterMark: 64 * 1024, autoClose: true }), size: fst.size };
  }

  /** Pebble's make-dirs: without make-parents an existing directory is an error. */
  async makeDirs(specs: MakeDirSpec[]): Promise<PathResult[]> {
    const results: PathResult[] = [];
    for (const s of specs) {
      if (s.error) {
        results.push(toResult(s.path, s.error));
        continue;
      }
      let err: FileError | undefined;
      try {
        await makeDir(s.path, { mode: s.mode, owner: s.owner, makeParents: s.makeParents, existOk: s.makeParents });
      } catch (e) {
        err = fileError('mkdir', s.path, e);
      }
      results.push(toResult(s.path, err));
    }
    return results;
  }

  /**
   * Pebble's remove: a file or an empty directory, or with `recursive` everything under
   * the path (a missing path is then not an error, like Go's os.RemoveAll).
   */
  async remove(specs: RemoveSpec[]): Promise<PathResult[]> {
    const results: PathResult[] = [];
    for (const s of specs) {
      if (s.error) {
        results.push(toResult(s.path, s.error));
        continue;
      }
      let err: FileError | undefined;
      try {
        if (s.recursive) {
          await rm(s.path, { recursive: true, force: true });
        } else {
          const st = await lstat(s.path);
          await (st.isDirectory() ? rmdir(s.path) : unlink(s.path));
        }
      } catch (e) {
        err = fileError('remove', s.path, e);
      }
      results.push(toResult(s.path, err));
    }
    return results;
  }

  beginWrite(specs: WriteSpec[]): WriteSession {
    return new WriteSession(specs, this.log);
  }
}
