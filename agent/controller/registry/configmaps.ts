import { deepEqual } from '../machinery/json.js';
import { isConfigKey } from '../machinery/names.js';
import { fieldForbidden, fieldInvalid, fieldTooLong, type FieldError } from '../machinery/status.js';
import { age } from '../machinery/time.js';
import { optBool, optStringMap, type Errs } from './check.js';
import { AGE, column, NAME } from './columns.js';
import { META_FIELDS } from './objectmeta.js';
import type { KubeObject, ResourceDef } from './types.js';

/** ConfigMap and Secret payloads may hold at most 1 MiB together, as in Kubernetes. */
export const MAX_DATA_SIZE = 1024 * 1024;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Bytes of a base64 value, or undefined when it is not standard padded base64. */
export function base64Size(v: string): number | undefined {
  const s = v.replace(/[\r\n]/g, ''); // Go's decoder skips line breaks
  if (!BASE64.test(s)) return undefined;
  return (s.length / 4) * 3 - (s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0);
}

export function validateKeys(map: Record<string, string> | undefined, field: string, errs: Errs): void {
  for (const k of Object.keys(map ?? {})) {
    for (const e of isConfigKey(k)) errs.push(fieldInvalid(`${field}[${k}]`, k, e));
  }
}

/** `immutable: true` freezes the payload and itself, for ConfigMaps and Secrets alike. */
export function checkImmutable(obj: KubeObject, old: KubeObject | undefined, payload: string[], errs: Errs): void {
  if (old?.['immutable'] !== true) return;
  if (obj['immutable'] !== true) errs.push(fieldForbidden('immutable', 'field is immutable when `immutable` is set'));
  for (const f of payload) {
    if (!deepEqual(obj[f] ?? {}, old[f] ?? {})) errs.push(fieldForbidden(f, 'field is immutable when `immutable` is set'));
  }
}

function validate(obj: KubeObject, old: KubeObject | undefined): FieldError[] {
  const errs: Errs = [];
  const data = optStringMap(obj, 'data', 'data', errs);
  const binary = optStringMap(obj, 'binaryData', 'binaryData', errs);
  optBool(obj, 'immutable', 'immutable', errs);
  validateKeys(data, 'data', errs);
  validateKeys(binary, 'binaryData', errs);
  let size = 0;
  for (const v of Object.values(data ?? {})) size += Buffer.byteLength(v, 'utf8');
  for (const [k, v] of Object.entries(binary ?? {})) {
    if (data && Object.hasOwn(data, k)) errs.push(fieldInvalid(`binaryData[${k}]`, k, 'duplicate of key present in data'));
    const n = base64Size(v);
    if (n === undefined) errs.push(fieldInvalid(`binaryData[${k}]`, '<value omitted>', 'must be base64-encoded'));
    else size += n;
  }
  if (size > MAX_DATA_SIZE) errs.push(fieldTooLong('', MAX_DATA_SIZE));
  checkImmutable(obj, old, ['data', 'binaryData'], errs);
  return errs;
}

const count = (o: KubeObject, ...fields: string[]) => fields.reduce((n, f) => n + Object.keys((o[f] as object | undefined) ?? {}).length, 0);

export const configMaps: ResourceDef = {
  name: 'configmaps',
  group: '',
  version: 'v1',
  kind: 'ConfigMap',
  singular: 'configmap',
  shortNames: ['cm'],
  namespaced: true,
  statusSubresource: false,
  allowCreateOnUpdate: false,
  returnDeletedObject: false,
  fields: { apiVersion: true, kind: true, metadata: META_FIELDS, data: true, binaryData: true, immutable: true },
  fieldLabels: {},
  validate,
  table: {
    columns: [NAME, column('Data', 'Data contains the configuration data.', { type: 'integer' }), AGE],
    cells: (o, now) => [o.metadata.name, count(o, 'data', 'binaryData'), age(o.metadata.creationTimestamp, now)],
  },
};

export { count as countKeys };
