import { normalizeUidGid } from '../osutil/users.js';
import { FileError, RequestError } from './errors.js';

/**
 * Validation of files requests. Everything a request can get wrong by itself is found
 * here, before the manager touches the disk. Malformed requests (wrong types, missing
 * fields) are refused naming the field; what Pebble reports for one path only (a
 * relative path, an unknown user or group, bad permissions) becomes that item's `error`,
 * so ops raises PathError for it, as with Pebble.
 */

export interface Owner {
  uid: number;
  gid: number;
}

export interface WriteSpec {
  path: string;
  makeDirs: boolean;
  mode: number;
  /** Unset: leave ownership to the sidecar's own user. */
  owner?: Owner;
  /** The item is invalid; reported as its result, nothing is done for it. */
  error?: FileError;
}

export interface MakeDirSpec {
  path: string;
  makeParents: boolean;
  mode: number;
  owner?: Owner;
  error?: FileError;
}

export interface RemoveSpec {
  path: string;
  recursive: boolean;
  error?: FileError;
}

type Obj = Record<string, unknown>;

const q = JSON.stringify;

function asObject(v: unknown, field: string): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new RequestError(`${field} must be an object`);
  return v as Obj;
}

// Go's decoder treats a JSON null like an absent field; so do we.
const present = (o: Obj, key: string) => o[key] !== undefined && o[key] !== null;

function optString(o: Obj, key: string, field: string): string | undefined {
  if (!present(o, key)) return undefined;
  if (typeof o[key] !== 'string') throw new RequestError(`${field}.${key} must be a string`);
  return o[key] as string;
}

function optBool(o: Obj, key: string, field: string): boolean {
  if (!present(o, key)) return false;
  if (typeof o[key] !== 'boolean') throw new RequestError(`${field}.${key} must be true or false`);
  return o[key] as boolean;
}

function optId(o: Obj, key: string, field: string): number | undefined {
  if (!present(o, key)) return undefined;
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RequestError(`${field}.${key} must be a non-negative integer, got ${q(v)}`);
  }
  return v;
}

function pathField(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '') throw new RequestError(`${field} must be a non-empty string`);
  if (v.includes('\0')) throw new RequestError(`${field} must not contain NUL bytes`);
  return v;
}

/** Paths are absolute, as in Pebble; NUL bytes cannot reach a system call. */
export function checkPath(v: unknown, field: string): string {
  const p = pathField(v, field);
  if (!p.startsWith('/')) throw new RequestError(`${field} must be absolute, got ${q(p)}`);
  return p;
}

/** Pebble's per-path error for a relative path in read, write, make-dirs and remove. */
export function relativePathError(path: string): FileError | undefined {
  return path.startsWith('/') ? undefined : new FileError(`paths must be absolute, got ${q(path)}`);
}

/** "644" or "0644" style octal text (Pebble's osutil.ParsePermissions); absent means the default. */
export function parsePermissions(text: string | undefined, field: string, defaultMode: number): number {
  if (text === undefined || text === '') return defaultMode;
  if (!/^[0-7]{3,4}$/.test(text)) {
    throw new RequestError(`${field} must be a 3- or 4-digit octal string like "644", got ${q(text)}`);
  }
  return parseInt(text, 8);
}

interface ItemAttrs {
  path: string;
  mode: number;
  owner?: Owner;
  error?: FileError;
}

/**
 * Path, permissions and owner of a write or make-dirs item. Wrong types are a bad
 * request; the rest fails that item only, in Pebble's order and wording.
 */
function itemAttrs(o: Obj, field: string, defaultMode: number): ItemAttrs {
  const path = pathField(o['path'], `${field}.path`);
  const permissions = optString(o, 'permissions', field);
  const ids = {
    userId: optId(o, 'user-id', field),
    user: optString(o, 'user', field),
    groupId: optId(o, 'group-id', field),
    group: optString(o, 'group', field),
  };
  const invalid = (error: FileError): ItemAttrs => ({ path, mode: defaultMode, error });
  const relative = relativePathError(path);
  if (relative) return invalid(relative);
  let id;
  try {
    id = normalizeUidGid(ids);
  } catch (e) {
    return invalid(new FileError(`cannot look up user and group: ${(e as Error).message}`));
  }
  let mode;
  try {
    mode = parsePermissions(permissions, 'permissions', defaultMode);
  } catch (e) {
    return invalid(new FileError((e as Error).message));
  }
  const owner = id.uid !== undefined && id.gid !== undefined ? { owner: { uid: id.uid, gid: id.gid } } : {};
  return { path, mode, ...owner };
}

function list(body: Obj, key: string, what: string): unknown[] {
  const v = body[key];
  if (!Array.isArray(v) || v.length === 0) throw new RequestError(`${key} must list one or more ${what}`);
  return v;
}

function noDuplicates(paths: string[], key: string): void {
  const seen = new Map<string, number>();
  paths.forEach((p, i) => {
    const j = seen.get(p);
    if (j !== undefined) throw new RequestError(`${key}[${i}].path ${q(p)} is already given in ${key}[${j}]`);
    seen.set(p, i);
  });
}

export function parseAction(body: Obj): string {
  const a = body['action'] ?? '';
  if (typeof a !== 'string') throw new RequestError('action must be a string');
  return a;
}

/** The "request" part of a multipart write: {"action":"write","files":[...]}. */
export function parseWriteRequest(body: unknown): WriteSpec[] {
  const b = asObject(body, 'request');
  const action = parseAction(b);
  if (action !== 'write') throw new RequestError(`multipart action must be "write", got ${q(action)}`);
  const specs = list(b, 'files', 'files').map((item, i): WriteSpec => {
    const field = `files[${i}]`;
    const o = asObject(item, field);
    return { makeDirs: optBool(o, 'make-dirs', field), ...itemAttrs(o, field, 0o644) };
  });
  noDuplicates(
    specs.map((s) => s.path),
    'files',
  );
  return specs;
}

/** {"action":"make-dirs","dirs":[...]}. */
export function parseMakeDirsRequest(body: Obj): MakeDirSpec[] {
  return list(body, 'dirs', 'directories').map((item, i): MakeDirSpec => {
    const field = `dirs[${i}]`;
    const o = asObject(item, field);
    return { makeParents: optBool(o, 'make-parents', field), ...itemAttrs(o, field, 0o755) };
  });
}

/** {"action":"remove","paths":[...]}. */
export function parseRemoveRequest(body: Obj): RemoveSpec[] {
  return list(body, 'paths', 'paths').map((item, i): RemoveSpec => {
    const field = `paths[${i}]`;
    const o = asObject(item, field);
    const path = pathField(o['path'], `${field}.path`);
    const error = relativePathError(path);
    return { path, recursive: optBool(o, 'recursive', field), ...(error ? { error } : {}) };
  });
}
