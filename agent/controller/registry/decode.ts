import { dropNulls, isObject, jsonClone, type Json } from '../machinery/json.js';
import { badRequest } from '../machinery/status.js';
import { pruneUnknown } from './check.js';
import { apiVersionOf, type KubeObject, type ResourceDef } from './types.js';

/** What to do with fields a kind does not have (the fieldValidation query parameter). */
export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

/**
 * Turns a request body into a private copy of an object of `def`'s kind, as the API
 * server's decoder does: apiVersion/kind must match the endpoint (and are filled in when
 * absent), the namespace must match the URL's, nulls are dropped, unknown fields are
 * dropped with a warning (or refused with fieldValidation=Strict).
 */
export function decodeObject(def: ResourceDef, body: unknown, ns: string, validation: FieldValidation, warnings: string[]): KubeObject {
  const gv = apiVersionOf(def);
  if (!isObject(body)) throw badRequest(`${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: the body must be a JSON object`);
  if (body['apiVersion'] !== undefined && body['apiVersion'] !== gv) {
    throw badRequest(`the API version in the data (${String(body['apiVersion'])}) does not match the expected API version (${gv})`);
  }
  if (body['kind'] !== undefined && body['kind'] !== def.kind) {
    throw badRequest(`the kind in the data (${String(body['kind'])}) does not match the expected kind (${def.kind})`);
  }
  // kind and apiVersion first, as Kubernetes writes them.
  const { kind: _k, apiVersion: _a, ...rest } = body;
  const obj = { kind: def.kind, apiVersion: gv, ...jsonClone(rest) } as Record<string, Json>;
  if (obj['metadata'] === undefined || obj['metadata'] === null) obj['metadata'] = {};
  if (!isObject(obj['metadata'])) throw badRequest(`${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: metadata must be an object`);
  dropNulls(obj);
  const meta = obj['metadata'];
  if (meta['namespace'] !== undefined && meta['namespace'] !== '' && meta['namespace'] !== ns) {
    throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
  }
  const unknown = pruneUnknown(obj, def.fields);
  if (unknown.length && validation === 'Strict') throw badRequest(`strict decoding error: ${unknown.map((f) => `unknown field "${f}"`).join(', ')}`);
  if (validation === 'Warn') for (const f of unknown) warnings.push(`unknown field "${f}"`);
  delete meta['managedFields'];
  delete meta['selfLink'];
  return obj as unknown as KubeObject;
}
