/**
 * Errors of the files manager. Two families, as in Pebble's files API:
 * - RequestError: the request itself is invalid (bad field, relative path, unknown user);
 *   it is found before anything touches the disk and the API answers 400.
 * - FileError: one path failed on the filesystem; it becomes that path's entry in the
 *   per-path results ({path, error: {message, kind}}) and the others go on.
 */

export type FileErrorKind = 'not-found' | 'permission-denied' | 'generic-file-error';

export class RequestError extends Error {}

export class FileError extends Error {
  constructor(
    message: string,
    readonly kind: FileErrorKind = 'generic-file-error',
  ) {
    super(message);
  }
}

/** Per-path result entry, the shape Pebble's clients (ops, pebble's Go client) read. */
export interface PathResult {
  path: string;
  error?: { message: string; kind: FileErrorKind };
}

// Go's strerror texts, so messages read like Pebble's ("stat /x: no such file or directory").
const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EEXIST: 'file exists',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  ENOTEMPTY: 'directory not empty',
  ELOOP: 'too many levels of symbolic links',
  ENOSPC: 'no space left on device',
  EROFS: 'read-only file system',
  EBUSY: 'device or resource busy',
  ENAMETOOLONG: 'file name too long',
  EINVAL: 'invalid argument',
  EXDEV: 'invalid cross-device link',
  EIO: 'input/output error',
  EMFILE: 'too many open files',
  EDQUOT: 'disk quota exceeded',
};

/** Like Go's errors.Is(err, fs.ErrNotExist / fs.ErrPermission). */
export function kindOfCode(code: string | undefined): FileErrorKind {
  if (code === 'ENOENT') return 'not-found';
  if (code === 'EACCES' || code === 'EPERM') return 'permission-denied';
  return 'generic-file-error';
}

/** Turns a Node fs error into Go's os.PathError wording: "<op> <path>: <reason>". */
export function fileError(op: string, path: string, err: unknown): FileError {
  if (err instanceof FileError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const reason =
    (code && ERRNO_TEXT[code]) ??
    String(e?.message ?? err)
      .replace(/^[A-Z]+: /, '')
      .replace(/, \w+ '.*'$/, '');
  return new FileError(`${op} ${path}: ${reason}`, kindOfCode(code));
}

export function toResult(path: string, err: FileError | undefined): PathResult {
  return err ? { path, error: { message: err.message, kind: err.kind } } : { path };
}
