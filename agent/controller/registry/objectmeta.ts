import { isObject } from '../machinery/json.js';
import { isDns1123Label, isDns1123Subdomain, isQualifiedName, isLabelValue, maskTrailingDash } from '../machinery/names.js';
import { fieldForbidden, fieldInvalid, fieldRequired, fieldTooLong, type FieldError } from '../machinery/status.js';
import { optArray, optInt, optString, optStringMap, utf8Length, type Errs } from './check.js';
import type { KnownFields, ObjectMeta } from './types.js';

/** ObjectMeta's fields; managedFields and selfLink are accepted and dropped by the registry. */
export const META_FIELDS: KnownFields = {
  name: true,
  generateName: true,
  namespace: true,
  selfLink: true,
  uid: true,
  resourceVersion: true,
  generation: true,
  creationTimestamp: true,
  deletionTimestamp: true,
  deletionGracePeriodSeconds: true,
  labels: true,
  annotations: true,
  ownerReferences: true,
  finalizers: true,
  managedFields: true,
};

const TOTAL_ANNOTATION_SIZE = 256 * 1024;

/** ValidateObjectMeta for namespaced objects whose names are DNS-1123 subdomains. */
export function validateObjectMeta(meta: ObjectMeta, old: ObjectMeta | undefined): FieldError[] {
  const errs: Errs = [];
  const m = meta as Record<string, unknown>;
  const name = optString(m, 'name', 'metadata.name', errs);
  const generateName = optString(m, 'generateName', 'metadata.generateName', errs);
  if (generateName) {
    for (const e of isDns1123Subdomain(maskTrailingDash(generateName))) errs.push(fieldInvalid('metadata.generateName', generateName, e));
  }
  if (!name) {
    if (m['name'] === undefined || m['name'] === '') errs.push(fieldRequired('metadata.name', 'name or generateName is required'));
  } else {
    for (const e of isDns1123Subdomain(name)) errs.push(fieldInvalid('metadata.name', name, e));
  }
  const ns = optString(m, 'namespace', 'metadata.namespace', errs);
  if (ns !== undefined) for (const e of isDns1123Label(ns)) errs.push(fieldInvalid('metadata.namespace', ns, e));

  const labels = optStringMap(m, 'labels', 'metadata.labels', errs);
  for (const [k, v] of Object.entries(labels ?? {})) {
    for (const e of isQualifiedName(k)) errs.push(fieldInvalid('metadata.labels', k, e));
    for (const e of isLabelValue(v)) errs.push(fieldInvalid('metadata.labels', v, e));
  }

  const annotations = optStringMap(m, 'annotations', 'metadata.annotations', errs);
  let size = 0;
  for (const [k, v] of Object.entries(annotations ?? {})) {
    for (const e of isQualifiedName(k.toLowerCase())) errs.push(fieldInvalid('metadata.annotations', k, e));
    size += utf8Length(k) + utf8Length(v);
  }
  if (size > TOTAL_ANNOTATION_SIZE) errs.push(fieldTooLong('metadata.annotations', TOTAL_ANNOTATION_SIZE));

  const finalizers = optArray(m, 'finalizers', 'metadata.finalizers', errs);
  finalizers?.forEach((f, i) => {
    const path = `metadata.finalizers[${i}]`;
    if (typeof f !== 'string') errs.push(fieldInvalid(path, f, 'must be a string'));
    else for (const e of isQualifiedName(f)) errs.push(fieldInvalid(path, f, e));
  });
  if (old?.deletionTimestamp && finalizers) {
    const before = new Set(old.finalizers ?? []);
    for (const f of finalizers) {
      if (typeof f === 'string' && !before.has(f)) errs.push(fieldForbidden('metadata.finalizers', `no new finalizers can be added if the object is being deleted, found new finalizer ${JSON.stringify(f)}`));
    }
  }

  const owners = optArray(m, 'ownerReferences', 'metadata.ownerReferences', errs);
  let controllers = 0;
  owners?.forEach((o, i) => {
    const path = `metadata.ownerReferences[${i}]`;
    if (!isObject(o)) {
      errs.push(fieldInvalid(path, o, 'must be an object'));
      return;
    }
    for (const f of ['apiVersion', 'kind', 'name', 'uid']) {
      const v = optString(o, f, `${path}.${f}`, errs);
      if (!v) errs.push(fieldRequired(`${path}.${f}`));
    }
    if (o['controller'] === true) controllers++;
  });
  if (controllers > 1) errs.push(fieldInvalid('metadata.ownerReferences', '', 'Only one reference can have Controller set to true'));

  optInt(m, 'deletionGracePeriodSeconds', 'metadata.deletionGracePeriodSeconds', errs, 64);
  optInt(m, 'generation', 'metadata.generation', errs, 64);
  optString(m, 'resourceVersion', 'metadata.resourceVersion', errs);
  optString(m, 'uid', 'metadata.uid', errs);
  return errs;
}
