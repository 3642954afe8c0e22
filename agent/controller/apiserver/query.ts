import { isObject } from '../machinery/json.js';
import { badRequest } from '../machinery/status.js';
import type { DeleteOptions, FieldValidation, ListOptions, WriteOptions } from '../registry/registry.js';
import type { IncludeObject } from '../registry/table.js';

/** Query parameters of the Kubernetes API, parsed and checked (a bad one is a 400). */

const TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

/** Go's strconv.ParseBool, which is how the API server reads boolean parameters. */
export function boolParam(q: URLSearchParams, name: string): boolean | undefined {
  const v = q.get(name);
  if (v === null) return undefined;
  if (v === '' || TRUE.has(v)) return true; // `?watch` alone means true
  if (FALSE.has(v)) return false;
  throw badRequest(`invalid value for ${name}: ${JSON.stringify(v)}: must be a boolean`);
}

export function intParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  if (!/^-?\d+$/.test(v)) throw badRequest(`invalid value for ${name}: ${JSON.stringify(v)}: must be an integer`);
  return Number(v);
}

const str = (q: URLSearchParams, name: string) => q.get(name) ?? undefined;

export function listOptions(q: URLSearchParams, namespace: string | undefined): ListOptions {
  const limit = intParam(q, 'limit');
  if (limit !== undefined && limit < 0) throw badRequest('limit must not be negative');
  const rvMatch = str(q, 'resourceVersionMatch');
  if (rvMatch !== undefined && rvMatch !== '' && rvMatch !== 'Exact' && rvMatch !== 'NotOlderThan') {
    throw badRequest(`resourceVersionMatch: Unsupported value: ${JSON.stringify(rvMatch)}: supported values: "Exact", "NotOlderThan"`);
  }
  const o: ListOptions = {};
  if (namespace !== undefined) o.namespace = namespace;
  for (const k of ['labelSelector', 'fieldSelector', 'continue', 'resourceVersion'] as const) {
    const v = str(q, k);
    if (v !== undefined) o[k] = v;
  }
  if (limit !== undefined) o.limit = limit;
  if (rvMatch) o.resourceVersionMatch = rvMatch;
  return o;
}

export function includeObject(q: URLSearchParams): IncludeObject {
  const v = q.get('includeObject');
  if (v === null || v === '' || v === 'PartialObjectMetadata') return 'PartialObjectMetadata';
  if (v === 'None' || v === 'Object') return v;
  throw badRequest(`includeObject: Unsupported value: ${JSON.stringify(v)}: supported values: "None", "Object", "PartialObjectMetadata"`);
}

function dryRun(values: unknown[]): boolean {
  for (const v of values) if (v !== 'All') throw badRequest(`Invalid dry run value: ${JSON.stringify(v)}: supported values: "All"`);
  return values.length > 0;
}

export function writeOptions(q: URLSearchParams): WriteOptions {
  const fv = q.get('fieldValidation') ?? 'Warn';
  if (fv !== 'Strict' && fv !== 'Warn' && fv !== 'Ignore') {
    throw badRequest(`fieldValidation: Unsupported value: ${JSON.stringify(fv)}: supported values: "Ignore", "Warn", "Strict"`);
  }
  return { dryRun: dryRun(q.getAll('dryRun')), fieldValidation: fv as FieldValidation, report: { warnings: [], created: false } };
}

/** DeleteOptions from the body (kubectl, client-node) and the query, the body winning. */
export function deleteOptions(q: URLSearchParams, body: unknown): DeleteOptions {
  const o: DeleteOptions = {};
  const grace = intParam(q, 'gracePeriodSeconds');
  if (grace !== undefined) o.gracePeriodSeconds = grace;
  const policy = q.get('propagationPolicy');
  if (policy) o.propagationPolicy = policy;
  let dry = q.getAll('dryRun') as unknown[];
  if (body !== undefined) {
    if (!isObject(body)) throw badRequest('DeleteOptions must be a JSON object');
    if (body['gracePeriodSeconds'] !== undefined && body['gracePeriodSeconds'] !== null) {
      if (typeof body['gracePeriodSeconds'] !== 'number' || !Number.isInteger(body['gracePeriodSeconds'])) throw badRequest('gracePeriodSeconds must be an integer');
      o.gracePeriodSeconds = body['gracePeriodSeconds'];
    }
    if (typeof body['propagationPolicy'] === 'string') o.propagationPolicy = body['propagationPolicy'];
    if (Array.isArray(body['dryRun'])) dry = body['dryRun'];
    const pre = body['preconditions'];
    if (isObject(pre)) {
      o.preconditions = {};
      if (typeof pre['uid'] === 'string') o.preconditions.uid = pre['uid'];
      if (typeof pre['resourceVersion'] === 'string') o.preconditions.resourceVersion = pre['resourceVersion'];
    }
  }
  if (o.propagationPolicy && !['Orphan', 'Background', 'Foreground'].includes(o.propagationPolicy)) {
    throw badRequest(`propagationPolicy: Unsupported value: ${JSON.stringify(o.propagationPolicy)}: supported values: "Foreground", "Background", "Orphan"`);
  }
  o.dryRun = dryRun(dry);
  return o;
}
