import type { IncomingMessage } from 'node:http';
import { parse as parseYaml } from '#yaml';
import { badRequest, tooLarge, unsupportedMediaType } from '../machinery/status.js';
import type { PatchType } from '../registry/registry.js';
import { decodeProtobufObject, PROTOBUF } from './proto-objects.js';
import { ProtobufError } from './protobuf.js';

/** Kubernetes refuses request bodies over 3 MB. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (c: Buffer) => {
      if (refused) return;
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        refused = true; // keep draining so the 413 can still be written
        reject(tooLarge(MAX_BODY_BYTES));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const mediaType = (req: IncomingMessage) => (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();

/**
 * Parses a create/update body: JSON, YAML (as Kubernetes also accepts), or protobuf for the
 * ConfigMaps and Secrets kubectl's generators send that way. `what` names the expected kind.
 */
export function decodeBody(req: IncomingMessage, buf: Buffer, what: string): unknown {
  const type = mediaType(req);
  if (type === PROTOBUF) {
    try {
      return decodeProtobufObject(buf);
    } catch (e) {
      if (e instanceof ProtobufError) throw unsupportedMediaType(`${type}: ${e.message}`, ['application/json', 'application/yaml']);
      throw e;
    }
  }
  const text = buf.toString('utf8');
  if (type === 'application/yaml') {
    try {
      return parseYaml(text);
    } catch (e) {
      throw badRequest(`the object provided is unrecognized (must be of type ${what}): yaml parse error: ${(e as Error).message}`);
    }
  }
  if (type !== '' && type !== 'application/json' && !type.endsWith('+json')) {
    throw unsupportedMediaType(type, ['application/json', 'application/yaml']);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`the object provided is unrecognized (must be of type ${what}): couldn't get version/kind; json parse error: ${(e as Error).message}`);
  }
}

const PATCH_TYPES: Record<string, PatchType> = {
  'application/merge-patch+json': 'merge',
  'application/json-patch+json': 'json',
  'application/strategic-merge-patch+json': 'strategic',
};

/**
 * The patch type from Content-Type. Server-side apply (application/apply-patch+yaml) is
 * not supported: 415 like any other unknown patch type.
 */
export function patchType(req: IncomingMessage): PatchType {
  const t = PATCH_TYPES[mediaType(req)];
  if (!t) throw unsupportedMediaType(mediaType(req), Object.keys(PATCH_TYPES));
  return t;
}

export function decodePatch(buf: Buffer): unknown {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw badRequest(`error decoding patch: ${(e as Error).message}`);
  }
}
