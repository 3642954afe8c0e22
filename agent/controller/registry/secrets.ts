import { fieldInvalid, fieldRequired, fieldTooLong, type FieldError } from '../machinery/status.js';
import { age } from '../machinery/time.js';
import { optBool, optString, optStringMap, type Errs } from './check.js';
import { AGE, column, NAME } from './columns.js';
import { base64Size, checkImmutable, countKeys, MAX_DATA_SIZE, validateKeys } from './configmaps.js';
import { META_FIELDS } from './objectmeta.js';
import type { KubeObject, ResourceDef } from './types.js';

/** Keys some well-known secret types must carry (a subset of Kubernetes' list). */
const REQUIRED_KEYS: Record<string, string[][]> = {
  'kubernetes.io/tls': [['tls.crt'], ['tls.key']],
  'kubernetes.io/basic-auth': [['username', 'password']],
  'kubernetes.io/ssh-auth': [['ssh-privatekey']],
  'kubernetes.io/dockerconfigjson': [['.dockerconfigjson']],
};

function validate(obj: KubeObject, old: KubeObject | undefined): FieldError[] {
  const errs: Errs = [];
  const stringData = optStringMap(obj, 'stringData', 'stringData', errs);
  const data = optStringMap(obj, 'data', 'data', errs);
  optBool(obj, 'immutable', 'immutable', errs);
  const type = optString(obj, 'type', 'type', errs);
  if (errs.length) return errs;

  // stringData is write-only: Kubernetes merges it into data (it wins) and never stores it.
  const merged: Record<string, string> = { ...(data ?? {}) };
  for (const [k, v] of Object.entries(stringData ?? {})) merged[k] = Buffer.from(v, 'utf8').toString('base64');
  delete obj['stringData'];
  if (data || stringData) obj['data'] = merged;
  if (!type) obj['type'] = 'Opaque';

  validateKeys(merged, 'data', errs);
  let size = 0;
  for (const [k, v] of Object.entries(merged)) {
    const n = base64Size(v);
    if (n === undefined) errs.push(fieldInvalid(`data[${k}]`, '<value omitted>', 'must be base64-encoded'));
    else size += n;
  }
  if (size > MAX_DATA_SIZE) errs.push(fieldTooLong('data', MAX_DATA_SIZE));
  for (const alternatives of REQUIRED_KEYS[obj['type'] as string] ?? []) {
    if (!alternatives.some((k) => Object.hasOwn(merged, k))) errs.push(fieldRequired(`data[${alternatives[0]}]`));
  }
  if (old && old['type'] !== obj['type']) errs.push(fieldInvalid('type', obj['type'], 'field is immutable'));
  checkImmutable(obj, old, ['data'], errs);
  return errs;
}

export const secrets: ResourceDef = {
  name: 'secrets',
  group: '',
  version: 'v1',
  kind: 'Secret',
  singular: 'secret',
  shortNames: [],
  namespaced: true,
  statusSubresource: false,
  allowCreateOnUpdate: false,
  returnDeletedObject: false,
  fields: { apiVersion: true, kind: true, metadata: META_FIELDS, data: true, stringData: true, type: true, immutable: true },
  fieldLabels: { type: (o) => o['type'] as string | undefined },
  validate,
  table: {
    columns: [NAME, column('Type', 'Used to facilitate programmatic handling of secret data.'), column('Data', 'Data contains the secret data.', { type: 'integer' }), AGE],
    cells: (o, now) => [o.metadata.name, o['type'] ?? '', countKeys(o, 'data'), age(o.metadata.creationTimestamp, now)],
  },
};
