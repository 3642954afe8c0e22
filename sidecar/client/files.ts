import type { Readable } from 'node:stream';
import { decodeReadResponse, encodeWriteBody, raiseOnPathError } from './multipart.js';
import { decodeEnvelope, ensureOk, readAll, type Transport } from './transport.js';
import type { FileInfo, Ownership } from './types.js';

export interface ListFilesOptions {
  /** Glob on names, e.g. "*.conf". */
  pattern?: string;
  /** For a directory: describe it rather than list its contents. */
  itself?: boolean;
}

export interface PushOptions extends Ownership {
  /** Create missing parent directories. */
  makeDirs?: boolean;
}

export interface MakeDirOptions extends Ownership {
  makeParents?: boolean;
}

/** Pebble takes permissions as a 3- or 4-digit octal string. */
export function formatPermissions(p: number | string): string {
  if (typeof p === 'number') {
    if (!Number.isInteger(p) || p < 0 || p > 0o7777) throw new Error(`permissions must be between 0 and 0o7777, got ${p}`);
    return p.toString(8).padStart(3, '0');
  }
  if (!/^[0-7]{3,4}$/.test(p)) throw new Error(`permissions must be 3 or 4 octal digits like "644", got ${JSON.stringify(p)}`);
  return p;
}

function ownership(o: Ownership): Record<string, unknown> {
  const d: Record<string, unknown> = {};
  if (o.permissions !== undefined) d['permissions'] = formatPermissions(o.permissions);
  if (o.userId !== undefined) d['user-id'] = o.userId;
  if (o.user !== undefined) d['user'] = o.user;
  if (o.groupId !== undefined) d['group-id'] = o.groupId;
  if (o.group !== undefined) d['group'] = o.group;
  return d;
}

export async function listFiles(t: Transport, path: string, opts: ListFilesOptions = {}): Promise<FileInfo[]> {
  const env = await t.call({
    method: 'GET',
    path: '/v1/files',
    query: { action: 'list', path, pattern: opts.pattern || undefined, itself: opts.itself ? 'true' : undefined },
  });
  return (env.result ?? []) as FileInfo[];
}

export async function pullStream(t: Transport, path: string, signal?: AbortSignal): Promise<Readable> {
  const res = await t.request({
    method: 'GET',
    path: '/v1/files',
    query: { action: 'read', path },
    headers: { Accept: 'multipart/form-data' },
    signal,
  });
  await ensureOk(res);
  return decodeReadResponse(res, path);
}

export async function pull(t: Transport, path: string): Promise<Buffer> {
  return readAll(await pullStream(t, path));
}

export async function push(
  t: Transport,
  path: string,
  data: Buffer | string | Readable,
  opts: PushOptions = {},
): Promise<void> {
  const info: Record<string, unknown> = { path, ...ownership(opts) };
  if (opts.makeDirs) info['make-dirs'] = true;
  const { body, contentType } = encodeWriteBody({ action: 'write', files: [info] }, path, data);
  const res = await t.request({
    method: 'POST',
    path: '/v1/files',
    headers: { Accept: 'application/json', 'Content-Type': contentType },
    body,
  });
  const env = decodeEnvelope(res, await readAll(res));
  raiseOnPathError(env.result, path);
}

export async function makeDir(t: Transport, path: string, opts: MakeDirOptions = {}): Promise<void> {
  const info: Record<string, unknown> = { path, ...ownership(opts) };
  if (opts.makeParents) info['make-parents'] = true;
  const env = await t.call({ method: 'POST', path: '/v1/files', json: { action: 'make-dirs', dirs: [info] } });
  raiseOnPathError(env.result, path);
}

export async function removePath(t: Transport, path: string, opts: { recursive?: boolean } = {}): Promise<void> {
  const info: Record<string, unknown> = { path };
  if (opts.recursive) info['recursive'] = true;
  const env = await t.call({ method: 'POST', path: '/v1/files', json: { action: 'remove', paths: [info] } });
  raiseOnPathError(env.result, path);
}
