import { matchesFields, parseFieldSelector } from '../machinery/fields.js';
import { isObject } from '../machinery/json.js';
import { matchesLabels, parseLabelSelector, SelectorError } from '../machinery/labels.js';
import { badRequest } from '../machinery/status.js';
import type { KubeObject, ResourceDef } from './types.js';

/** A compiled label + field selector for one resource; bad syntax or unknown fields are 400s. */
export function selector(def: ResourceDef, labelSelector: string | undefined, fieldSelector: string | undefined): (o: KubeObject) => boolean {
  let labels;
  let fields;
  try {
    labels = parseLabelSelector(labelSelector ?? '');
  } catch (e) {
    if (e instanceof SelectorError) throw badRequest(`unable to parse requirement: ${e.message}`);
    throw e;
  }
  try {
    fields = parseFieldSelector(fieldSelector ?? '');
  } catch (e) {
    if (e instanceof SelectorError) throw badRequest(e.message);
    throw e;
  }
  for (const f of fields) {
    if (f.field !== 'metadata.name' && f.field !== 'metadata.namespace' && !Object.hasOwn(def.fieldLabels, f.field)) {
      throw badRequest(`field label not supported: ${f.field}`);
    }
  }
  if (labels.length === 0 && fields.length === 0) return () => true;
  return (o) =>
    matchesLabels(labels, o.metadata.labels) &&
    matchesFields(fields, (f) => (f === 'metadata.name' ? o.metadata.name : f === 'metadata.namespace' ? o.metadata.namespace : def.fieldLabels[f]!(o)));
}

/** The position of an object in list order. */
export const listKey = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;

/** Paging state: the list's resourceVersion and the last key handed out. */
export interface ContinueToken {
  rv: number;
  start: string;
}

export function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: t.rv, start: t.start })).toString('base64url');
}

export function decodeContinue(s: string): ContinueToken {
  try {
    const t: unknown = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
    if (isObject(t) && t['v'] === 'meta.k8s.io/v1' && typeof t['rv'] === 'number' && typeof t['start'] === 'string') return { rv: t['rv'], start: t['start'] };
  } catch {
    /* fall through */
  }
  throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
}

/** A resourceVersion query parameter: a non-negative integer. */
export function parseResourceVersion(s: string): number {
  if (!/^\d+$/.test(s)) throw badRequest(`invalid resource version "${s}": it must be a non-negative integer`);
  return Number(s);
}
