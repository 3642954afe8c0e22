import { fieldInvalid, type FieldError } from '../machinery/status.js';
import { age } from '../machinery/time.js';
import { normMicroTime, optInt, optObject, optString, type Errs } from './check.js';
import { AGE, column, NAME } from './columns.js';
import { META_FIELDS } from './objectmeta.js';
import type { KubeObject, ResourceDef } from './types.js';

function validate(obj: KubeObject): FieldError[] {
  const errs: Errs = [];
  const spec = optObject(obj, 'spec', 'spec', errs);
  if (!spec) return errs;
  optString(spec, 'holderIdentity', 'spec.holderIdentity', errs);
  const duration = optInt(spec, 'leaseDurationSeconds', 'spec.leaseDurationSeconds', errs);
  if (duration !== undefined && duration <= 0) errs.push(fieldInvalid('spec.leaseDurationSeconds', duration, 'must be greater than 0'));
  const transitions = optInt(spec, 'leaseTransitions', 'spec.leaseTransitions', errs);
  if (transitions !== undefined && transitions < 0) errs.push(fieldInvalid('spec.leaseTransitions', transitions, 'must be greater than or equal to 0'));
  normMicroTime(spec, 'acquireTime', 'spec.acquireTime', errs);
  normMicroTime(spec, 'renewTime', 'spec.renewTime', errs);
  optString(spec, 'strategy', 'spec.strategy', errs);
  optString(spec, 'preferredHolder', 'spec.preferredHolder', errs);
  return errs;
}

const spec = (o: KubeObject) => (o['spec'] ?? {}) as Record<string, unknown>;

export const leases: ResourceDef = {
  name: 'leases',
  group: 'coordination.k8s.io',
  version: 'v1',
  kind: 'Lease',
  singular: 'lease',
  shortNames: [],
  namespaced: true,
  statusSubresource: false,
  allowCreateOnUpdate: false,
  returnDeletedObject: false,
  fields: {
    apiVersion: true,
    kind: true,
    metadata: META_FIELDS,
    spec: { holderIdentity: true, leaseDurationSeconds: true, acquireTime: true, renewTime: true, leaseTransitions: true, strategy: true, preferredHolder: true },
  },
  fieldLabels: {},
  validate,
  table: {
    columns: [NAME, column('Holder', 'HolderIdentity contains the identity of the holder of a current lease.'), AGE],
    cells: (o, now) => [o.metadata.name, spec(o)['holderIdentity'] ?? '', age(o.metadata.creationTimestamp, now)],
  },
};
