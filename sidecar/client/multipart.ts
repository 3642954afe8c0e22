import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import busboy from 'busboy';
import { PathError, ProtocolError } from './errors.js';
import type { Envelope } from './transport.js';

const CHUNK = 64 * 1024;

/** Per-path result of a files request: `error` is set when that path failed. */
export interface PathResult {
  path: string;
  error?: { kind?: string; message?: string };
}

/** Throws PathError when the result for `path` carries an error, ProtocolError when it is missing. */
export function raiseOnPathError(result: unknown, path: string): void {
  const items = (Array.isArray(result) ? result : []) as PathResult[];
  const item = items.find((r) => r && r.path === path);
  if (!item) throw new ProtocolError(`path ${JSON.stringify(path)} not found in response: ${JSON.stringify(result)}`);
  if (item.error) throw new PathError(item.error.kind ?? 'generic-file-error', path, item.error.message ?? 'failed');
}

const quote = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');

/**
 * The body of POST /v1/files (action "write"): a "request" JSON part, then one "files"
 * part named by the target path. Built as a stream so large files never sit in memory.
 */
export function encodeWriteBody(
  metadata: unknown,
  path: string,
  source: Buffer | string | Readable,
): { body: Readable; contentType: string } {
  const boundary = randomBytes(16).toString('hex');
  const head = Buffer.from(
    `--${boundary}\r\n` +
      'Content-Type: application/json\r\n' +
      'Content-Disposition: form-data; name="request"\r\n\r\n' +
      `${JSON.stringify(metadata)}\r\n` +
      `--${boundary}\r\n` +
      'Content-Type: application/octet-stream\r\n' +
      `Content-Disposition: form-data; name="files"; filename="${quote(path)}"\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  async function* parts(): AsyncGenerator<Buffer> {
    yield head;
    if (source instanceof Readable) {
      for await (const chunk of source) yield typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    } else {
      const buf = typeof source === 'string' ? Buffer.from(source) : source;
      for (let i = 0; i < buf.length; i += CHUNK) yield buf.subarray(i, i + CHUNK);
    }
    yield tail;
  }
  return { body: Readable.from(parts(), { objectMode: false }), contentType: `multipart/form-data; boundary=${boundary}` };
}

/**
 * Parses the multipart answer to GET /v1/files?action=read: "files" parts come first and
 * the "response" envelope (with per-path errors) last. Resolves as soon as the file's
 * content starts so it can be streamed; an error reported after the content destroys
 * the stream with it.
 */
export function decodeReadResponse(res: IncomingMessage, path: string): Promise<Readable> {
  const ct = res.headers['content-type'] ?? '';
  if (!/^multipart\/form-data/i.test(ct)) {
    res.resume();
    return Promise.reject(new ProtocolError(`expected multipart/form-data, got ${ct || 'no content type'}`));
  }
  return new Promise((resolve, reject) => {
    let out: PassThrough | undefined;
    let fileDone = false;
    let response: Envelope | undefined;
    let settled = false;
    const fail = (e: Error) => {
      if (!settled) {
        settled = true;
        reject(e);
      } else if (out && !out.destroyed) {
        out.destroy(e);
      }
      res.destroy();
    };
    const finishFile = () => {
      if (!out || !fileDone || !response) return;
      try {
        raiseOnPathError(response.result, path);
        out.end();
      } catch (e) {
        out.destroy(e as Error);
      }
    };

    const bb = busboy({ headers: res.headers, preservePath: true, limits: { fieldSize: 16 * 1024 * 1024 } });
    bb.on('file', (name, stream, info) => {
      if (name !== 'files') {
        stream.resume();
        return;
      }
      if (out) {
        stream.resume();
        fail(new ProtocolError('multiple files in a single-file read response'));
        return;
      }
      if (info.filename !== path) {
        stream.resume();
        fail(new ProtocolError(`response holds ${JSON.stringify(info.filename)}, not ${JSON.stringify(path)}`));
        return;
      }
      out = new PassThrough();
      // Closing the consumer's end early must free the connection.
      out.on('close', () => {
        if (!fileDone || !response) res.destroy();
      });
      stream.on('end', () => {
        fileDone = true;
        finishFile();
      });
      stream.pipe(out, { end: false });
      settled = true;
      resolve(out);
    });
    bb.on('field', (name, value) => {
      if (name !== 'response') return;
      try {
        response = JSON.parse(value) as Envelope;
      } catch (e) {
        fail(new ProtocolError(`cannot decode "response" part: ${(e as Error).message}`));
        return;
      }
      if (!out) {
        try {
          raiseOnPathError(response.result, path);
          fail(new ProtocolError('no file content in multipart response'));
        } catch (e) {
          fail(e as Error);
        }
        return;
      }
      finishFile();
    });
    bb.on('error', (e: Error) => fail(new ProtocolError(`cannot parse multipart response: ${e.message}`)));
    bb.on('close', () => {
      if (!response) fail(new ProtocolError('no "response" part in multipart response'));
    });
    res.on('error', (e) => fail(e));
    res.on('aborted', () => fail(new ProtocolError('connection closed in the middle of the response')));
    res.pipe(bb);
  });
}
