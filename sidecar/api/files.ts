import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type busboy from 'busboy';
import { FileError, RequestError, toResult, type PathResult } from '../files/errors.js';
import { FilesManager, drain, type WriteSession } from '../files/manager.js';
import { parseAction, parseMakeDirsRequest, parseRemoveRequest, parseWriteRequest } from '../files/request.js';
import { ApiError, badRequest, envelope, raw, sync, type ApiResponse } from './response.js';
import type { RequestContext, Route } from './router.js';

/**
 * Pebble's /v1/files (internals/daemon/api_files.go), as ops.pebble.Client and Pebble's
 * Go client speak it:
 *   GET  ?action=list&path=P[&pattern=G][&itself=true]   sync list of file infos
 *   GET  ?action=read&path=P[&path=Q...]                  multipart: "files" parts, then "response"
 *   POST multipart/form-data: "request" {"action":"write","files":[...]}, then "files" parts
 *   POST application/json {"action":"make-dirs","dirs":[...]} | {"action":"remove","paths":[...]}
 * Unlike Pebble, a malformed request (wrong types, missing fields, parts without metadata)
 * is refused whole (400) before the disk is touched. As in Pebble, a relative path, an
 * unknown user or group and bad permissions fail only their path, like filesystem errors,
 * so ops raises PathError for them.
 */

/** Pebble refuses shorter multipart boundaries. */
const MIN_BOUNDARY = 32;
/** The "request" part holds metadata only. */
const MAX_METADATA = 1024 * 1024;

const q = JSON.stringify;

function toApiError(e: unknown): unknown {
  if (e instanceof RequestError) return badRequest(e.message);
  if (e instanceof FileError) {
    const status = e.kind === 'not-found' ? 404 : e.kind === 'permission-denied' ? 403 : 400;
    return new ApiError(status, e.message, e.kind);
  }
  return e;
}

/** Go's mime.ParseMediaType, enough for Content-Type: lower-cased type and its parameters. */
function parseMediaType(text: string): { type: string; params: Record<string, string> } | undefined {
  const m = /^\s*([!#$%&'*+.^_`|~0-9a-z-]+\/[!#$%&'*+.^_`|~0-9a-z-]+)\s*(.*)$/is.exec(text);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /;\s*([!#$%&'*+.^_`|~0-9a-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)\s*/giy;
  let rest = m[2]!;
  while (rest) {
    re.lastIndex = 0;
    const p = re.exec(rest);
    if (!p) return undefined;
    const v = p[2]!;
    params[p[1]!.toLowerCase()] = v.startsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v;
    rest = rest.slice(re.lastIndex);
  }
  return { type: m[1]!.toLowerCase(), params };
}

function acceptsMultipart(accept: string | undefined): boolean {
  return (accept ?? '').split(',').some((a) => a.split(';')[0]!.trim().toLowerCase() === 'multipart/form-data');
}

/** Go's multipart quoteEscaper for header parameters. */
const quoteParam = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');

class ClientGone extends Error {}

/** Resolves when `res` can take more data; throws when the client went away. */
function writeChunk(res: ServerResponse, chunk: Buffer | string): Promise<void> | void {
  if (res.destroyed) throw new ClientGone();
  if (res.write(chunk)) return;
  return new Promise((resolve, reject) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      if (res.destroyed) reject(new ClientGone());
      else resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * The multipart answer to a read, laid out like Go's multipart.Writer: the status is
 * 200 whatever happens (the per-path results come last, in the "response" part), and
 * file content is streamed with backpressure, never held whole.
 */
async function writeReadResponse(files: FilesManager, paths: string[], res: ServerResponse): Promise<void> {
  const boundary = randomBytes(30).toString('hex');
  res.writeHead(200, { 'Content-Type': `multipart/form-data; boundary=${boundary}` });
  let first = true;
  const partHeader = (lines: string[]) => {
    const h = `${first ? '' : '\r\n'}--${boundary}\r\n${lines.join('\r\n')}\r\n\r\n`;
    first = false;
    return h;
  };
  const results: PathResult[] = [];
  try {
    for (const path of paths) {
      let err: FileError | undefined;
      try {
        const { stream } = await files.openRead(path);
        try {
          await writeChunk(
            res,
            partHeader([
              `Content-Disposition: form-data; name="files"; filename="${quoteParam(path)}"`,
              'Content-Type: application/octet-stream',
            ]),
          );
          try {
            for await (const chunk of stream) await writeChunk(res, chunk as Buffer);
          } catch (e) {
            if (e instanceof ClientGone) throw e;
            err = new FileError(`read ${path}: ${(e as Error).message}`);
          }
        } finally {
          stream.destroy();
        }
      } catch (e) {
        if (!(e instanceof FileError)) throw e;
        err = e;
      }
      results.push(toResult(path, err));
    }
    await writeChunk(
      res,
      partHeader(['Content-Disposition: form-data; name="response"', 'Content-Type: application/json']),
    );
    // Go's json.Encoder ends the document with a newline; ops' parser copes either way.
    await writeChunk(res, JSON.stringify(envelope(sync(results)).body) + '\n');
    res.end(`\r\n--${boundary}--\r\n`);
  } catch (e) {
    if (!(e instanceof ClientGone)) throw e;
  }
}

/**
 * Reads a multipart write request. File parts are staged as they stream in; a request
 * found invalid at any point (even after some parts were staged) is rolled back whole.
 */
async function writeFiles(ctx: RequestContext, files: FilesManager): Promise<ApiResponse> {
  const req = ctx.req;
  // Loaded with the first push rather than with the sidecar (it is not needed before one).
  const { default: parseMultipart } = await import('busboy');
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = parseMultipart({
        headers: req.headers,
        // Pebble's API names files by their full path; busboy would strip it to the base name.
        preservePath: true,
        defParamCharset: 'utf8',
        limits: { fieldSize: MAX_METADATA },
      });
    } catch (e) {
      reject(badRequest(`invalid multipart request: ${(e as Error).message}`));
      return;
    }
    let session: WriteSession | undefined;
    let failure: unknown;
    let chain: Promise<void> = Promise.resolve();
    let finished = false;
    let partIndex = 0;
    const fail = (e: unknown) => {
      failure ??= toApiError(e);
    };

    bb.on('field', (name, value, info) => {
      partIndex++;
      if (failure !== undefined) return;
      if (session) {
        fail(badRequest(`part ${partIndex}: field name must be "files", got ${q(name)}`));
      } else if (name !== 'request') {
        fail(badRequest(`metadata field name must be "request", got ${q(name)}`));
      } else if (info.valueTruncated) {
        fail(badRequest(`request metadata is larger than ${MAX_METADATA} bytes`));
      } else {
        let meta: unknown;
        try {
          meta = JSON.parse(value);
        } catch (e) {
          fail(badRequest(`cannot decode request metadata: ${(e as Error).message}`));
          return;
        }
        try {
          session = files.beginWrite(parseWriteRequest(meta));
        } catch (e) {
          fail(e);
        }
      }
    });

    bb.on('file', (name, stream, info) => {
      partIndex++;
      // A part queued behind another can be destroyed before it is read; its error is seen then.
      stream.on('error', () => {});
      // Once the request is being finished (or rolled back) nothing more may be written.
      if (finished) {
        stream.resume();
        return;
      }
      const s = session;
      if (failure === undefined) {
        if (!s) fail(badRequest(`metadata field name must be "request", got ${q(name)}`));
        else if (name !== 'files') fail(badRequest(`part ${partIndex}: field name must be "files", got ${q(name)}`));
        else if (info.filename === undefined) fail(badRequest(`part ${partIndex}: "files" part has no filename`));
        else if (!s.expects(info.filename)) fail(badRequest(`no metadata for path ${q(info.filename)}`));
      }
      // Parts are handled one after another; a part seen after the request failed is only drained.
      chain = chain.then(async () => {
        try {
          if (failure !== undefined || !s || info.filename === undefined) await drain(stream);
          else await s.stage(info.filename, stream);
        } catch (e) {
          // Anything but our own errors comes from the part stream: the body broke off or is malformed.
          const known = e instanceof RequestError || e instanceof FileError;
          fail(known ? e : badRequest(`cannot read multipart body: ${(e as Error).message}`));
          if (!stream.readableEnded && !stream.destroyed) stream.resume();
        }
      });
    });

    const finish = async (parseError?: Error) => {
      if (finished) return;
      finished = true;
      if (parseError) fail(badRequest(`cannot read multipart body: ${parseError.message}`));
      // Parts seen while waiting extend the chain; wait until it stops growing.
      for (let c = chain; ; c = chain) {
        await c;
        if (c === chain) break;
      }
      if (failure === undefined && !session) fail(badRequest('cannot read request metadata: no "request" part'));
      const missing = session?.missing() ?? [];
      if (failure === undefined && missing.length) fail(badRequest(`no file content for path ${q(missing[0])}`));
      if (failure !== undefined) {
        await session?.rollback();
        req.unpipe(bb);
        req.resume();
        reject(failure);
        return;
      }
      try {
        resolve(sync(await session!.commit()));
      } catch (e) {
        reject(e);
      }
    };

    bb.on('error', (e: Error) => void finish(e));
    bb.on('close', () => void finish());
    // A client that hangs up mid-upload leaves the parser waiting; end it so the request is rolled back.
    req.on('error', () => {});
    req.on('close', () => {
      if (!req.complete) bb.destroy(new Error('request body ended early'));
    });
    req.pipe(bb);
  });
}

async function postJson(ctx: RequestContext, files: FilesManager): Promise<ApiResponse> {
  const body = await ctx.json();
  try {
    const action = parseAction(body);
    switch (action) {
      case 'make-dirs':
        return sync(await files.makeDirs(parseMakeDirsRequest(body)));
      case 'remove':
        return sync(await files.remove(parseRemoveRequest(body)));
      case 'write':
        throw new RequestError('must use multipart with "write" action');
      default:
        throw new RequestError(`invalid action ${q(action)}`);
    }
  } catch (e) {
    throw toApiError(e);
  }
}

export function filesRoutes(files: FilesManager = new FilesManager()): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/files',
      handler: async (ctx) => {
        const action = ctx.query('action') ?? '';
        if (action === 'read') {
          const paths = ctx.url.searchParams.getAll('path');
          if (paths.length === 0) throw badRequest('must specify one or more paths');
          if (!acceptsMultipart(ctx.req.headers.accept)) throw badRequest('must accept multipart/form-data');
          // A relative path is that path's error in the response (PathError in ops), as in Pebble.
          const unnameable = paths.find((p) => /[\r\n]/.test(p));
          if (unnameable !== undefined) throw badRequest(`path ${q(unnameable)} cannot be named in a multipart header`);
          return raw((res) => writeReadResponse(files, paths, res));
        }
        if (action === 'list') {
          const path = ctx.query('path') ?? '';
          if (path === '') throw badRequest('must specify path');
          const itself = ctx.query('itself') ?? '';
          if (!['true', 'false', ''].includes(itself)) throw badRequest('itself parameter must be "true" or "false"');
          try {
            return sync(await files.list(path, ctx.query('pattern') || undefined, itself === 'true'));
          } catch (e) {
            throw toApiError(e);
          }
        }
        throw badRequest(`invalid action ${q(action)}`);
      },
    },
    {
      method: 'POST',
      path: '/v1/files',
      handler: (ctx) => {
        const contentType = ctx.req.headers['content-type'] ?? '';
        const media = parseMediaType(contentType);
        if (!media) throw badRequest(`invalid Content-Type ${q(contentType)}`);
        if (media.type === 'multipart/form-data') {
          const boundary = media.params['boundary'] ?? '';
          if (boundary.length < MIN_BOUNDARY) {
            throw badRequest(`invalid boundary ${q(boundary)}: must be at least ${MIN_BOUNDARY} characters`);
          }
          return writeFiles(ctx, files);
        }
        if (media.type === 'application/json') return postJson(ctx, files);
        throw badRequest(`invalid media type ${q(media.type)}`);
      },
    },
  ];
}
