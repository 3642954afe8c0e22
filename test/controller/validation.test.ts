import { describe, expect, it } from 'vitest';
import { negotiate } from '../../agent/controller/apiserver/negotiate.js';
import { parsePath } from '../../agent/controller/apiserver/paths.js';
import { isConfigKey, isDns1123Label, isDns1123Subdomain, isLabelValue, isQualifiedName } from '../../agent/controller/machinery/names.js';
import { invalid } from '../../agent/controller/machinery/status.js';
import { humanDuration, normalizeMicroTime, normalizeTime } from '../../agent/controller/machinery/time.js';
import { base64Size } from '../../agent/controller/registry/configmaps.js';
import { validateObjectMeta } from '../../agent/controller/registry/objectmeta.js';
import { resourceDef } from '../../agent/controller/registry/resources.js';
import type { KubeObject, ResourceName } from '../../agent/controller/registry/types.js';

describe('names', () => {
  it.each([
    ['a', true],
    ['my-name', true],
    ['123', true],
    ['a'.repeat(63), true],
    ['a'.repeat(64), false],
    ['My', false],
    ['-a', false],
    ['a-', false],
    ['a.b', false],
    ['', false],
  ])('DNS-1123 label %j: %s', (v, ok) => expect(isDns1123Label(v).length === 0).toBe(ok));

  it.each([
    ['a.b.c', true],
    ['app-leader', true],
    ['a..b', false],
    ['.a', false],
    ['A.b', false],
    [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`, true],
    [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`, false],
  ])('DNS-1123 subdomain %j: %s', (v, ok) => expect(isDns1123Subdomain(v).length === 0).toBe(ok));

  it.each([
    ['app', true],
    ['app.kubernetes.io/name', true],
    ['My_Name.x', true],
    ['a/b/c', false],
    ['/name', false],
    ['Example.com/name', false],
    ['prefix/', false],
    ['_x', false],
    ['x'.repeat(64), false],
  ])('qualified name %j: %s', (v, ok) => expect(isQualifiedName(v).length === 0).toBe(ok));

  it.each([
    ['', true],
    ['v1.2_3-x', true],
    ['-x', false],
    ['a b', false],
    ['x'.repeat(64), false],
  ])('label value %j: %s', (v, ok) => expect(isLabelValue(v).length === 0).toBe(ok));

  it.each([
    ['postgresql.conf', true],
    ['KEY_NAME', true],
    ['.hidden', true],
    ['.', false],
    ['..', false],
    ['..x', false],
    ['a/b', false],
    ['a b', false],
  ])('config key %j: %s', (v, ok) => expect(isConfigKey(v).length === 0).toBe(ok));
});

describe('object metadata', () => {
  const fields = (meta: Record<string, unknown>, old?: Record<string, unknown>) => validateObjectMeta(meta, old).map((e) => `${e.field} ${e.type}`);

  it.each<[string, Record<string, unknown>, string[]]>([
    ['a valid one', { name: 'a', namespace: 'ns', labels: { 'app.kubernetes.io/name': 'pg' }, annotations: { 'Some/Key': 'x' } }, []],
    ['no name', {}, ['metadata.name FieldValueRequired']],
    ['a bad name', { name: 'A' }, ['metadata.name FieldValueInvalid']],
    ['a bad generateName', { name: 'a', generateName: 'Bad-' }, ['metadata.generateName FieldValueInvalid']],
    ['a name that is not a string', { name: 5 }, ['metadata.name FieldValueTypeInvalid']],
    ['a bad namespace', { name: 'a', namespace: 'a.b' }, ['metadata.namespace FieldValueInvalid']],
    ['bad label key and value', { name: 'a', labels: { 'a b': 'c d' } }, ['metadata.labels FieldValueInvalid', 'metadata.labels FieldValueInvalid']],
    ['a label value that is not a string', { name: 'a', labels: { a: true } }, ['metadata.labels[a] FieldValueTypeInvalid']],
    ['labels that are not a map', { name: 'a', labels: ['x'] }, ['metadata.labels FieldValueTypeInvalid']],
    ['huge annotations', { name: 'a', annotations: { a: 'x'.repeat(262_144) } }, ['metadata.annotations FieldValueTooLong']],
    ['a bad finalizer', { name: 'a', finalizers: ['a b'] }, ['metadata.finalizers[0] FieldValueInvalid']],
    ['an owner reference without uid', { name: 'a', ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: 'p' }] }, ['metadata.ownerReferences[0].uid FieldValueRequired']],
  ])('%s', (_n, meta, want) => expect(fields(meta)).toEqual(want));

  it('forbids new finalizers on an object being deleted', () => {
    expect(fields({ name: 'a', finalizers: ['x.io/a', 'x.io/b'] }, { name: 'a', deletionTimestamp: '2024-01-01T00:00:00Z', finalizers: ['x.io/a'] })).toEqual(['metadata.finalizers FieldValueForbidden']);
  });
});

describe('kinds', () => {
  const obj = (fields: Record<string, unknown>, name = 'x'): KubeObject => ({ metadata: { name, namespace: 'ns' }, ...fields });
  const check = (res: ResourceName, o: KubeObject, old?: KubeObject) => resourceDef(res).validate(o, old).map((e) => `${e.field} ${e.type}`);

  it.each<[ResourceName, Record<string, unknown>, string[]]>([
    ['configmaps', { data: { a: '1' }, binaryData: { b: 'AAE=' } }, []],
    ['configmaps', { data: { 'a/b': '1' } }, ['data[a/b] FieldValueInvalid']],
    ['configmaps', { data: { a: 1 } }, ['data[a] FieldValueTypeInvalid']],
    ['configmaps', { data: 'x' }, ['data FieldValueTypeInvalid']],
    ['configmaps', { data: { a: '1' }, binaryData: { a: 'AA==' } }, ['binaryData[a] FieldValueInvalid']],
    ['configmaps', { binaryData: { a: 'not base64' } }, ['binaryData[a] FieldValueInvalid']],
    ['configmaps', { data: { a: 'x'.repeat(1024 * 1024 + 1) } }, [' FieldValueTooLong']],
    ['configmaps', { immutable: 'yes' }, ['immutable FieldValueTypeInvalid']],
    ['secrets', { data: { a: 'QQ==' }, stringData: { b: 'B' }, type: 'Opaque' }, []],
    ['secrets', { data: { a: 'Q' } }, ['data[a] FieldValueInvalid']],
    ['secrets', { stringData: { a: 1 } }, ['stringData[a] FieldValueTypeInvalid']],
    ['secrets', { type: 'kubernetes.io/tls', data: { 'tls.crt': 'QQ==' } }, ['data[tls.key] FieldValueRequired']],
    ['leases', { spec: { holderIdentity: 'u', leaseDurationSeconds: 15, leaseTransitions: 0, acquireTime: '2024-01-01T00:00:00.000001Z' } }, []],
    ['leases', { spec: { holderIdentity: 1 } }, ['spec.holderIdentity FieldValueTypeInvalid']],
    ['leases', { spec: { leaseDurationSeconds: 2 ** 31 } }, ['spec.leaseDurationSeconds FieldValueTypeInvalid']],
    ['leases', { spec: { leaseDurationSeconds: -1, leaseTransitions: -1 } }, ['spec.leaseDurationSeconds FieldValueInvalid', 'spec.leaseTransitions FieldValueInvalid']],
    ['leases', { spec: { renewTime: '2024-01-01T00:00:00Z' } }, ['spec.renewTime FieldValueInvalid']],
    ['leases', { spec: 'x' }, ['spec FieldValueTypeInvalid']],
    ['pods', { spec: { containers: [{ name: 'pg', image: 'postgres' }] } }, []],
    ['pods', {}, ['spec.containers FieldValueRequired']],
    ['pods', { spec: { containers: [] } }, ['spec.containers FieldValueRequired']],
    ['pods', { spec: { containers: [{ name: 'Bad', image: 'i' }, { name: 'Bad', image: 'i' }] } }, ['spec.containers[0].name FieldValueInvalid', 'spec.containers[1].name FieldValueInvalid', 'spec.containers[1].name FieldValueDuplicate']],
    ['pods', { spec: { containers: [{ name: 'a', image: 'i' }], restartPolicy: 'Sometimes' } }, ['spec.restartPolicy FieldValueNotSupported']],
    ['pods', { spec: { containers: [{ name: 'a', image: 'i' }] }, status: { phase: 'Dancing' } }, ['status.phase FieldValueNotSupported']],
    ['events', { involvedObject: { kind: 'Pod', name: 'p', namespace: 'ns' }, count: 1, lastTimestamp: '2024-01-01T00:00:00.5+02:00' }, []],
    ['events', { involvedObject: { kind: 'Pod', name: 'p', namespace: 'other' } }, ['involvedObject.namespace FieldValueInvalid']],
    ['events', { involvedObject: { namespace: 'ns' }, firstTimestamp: 'yesterday' }, ['firstTimestamp FieldValueInvalid']],
  ])('%s %j', (res, fields, want) => expect(check(res, obj(fields))).toEqual(want));

  it('normalizes while validating: Secret stringData into data, times in UTC', () => {
    const s = obj({ stringData: { a: 'é' } });
    expect(check('secrets', s)).toEqual([]);
    expect(s).toMatchObject({ data: { a: Buffer.from('é').toString('base64') }, type: 'Opaque' });
    expect(s['stringData']).toBeUndefined();
    const e = obj({ involvedObject: { namespace: 'ns' }, lastTimestamp: '2024-01-01T02:00:00.5+02:00' });
    check('events', e);
    expect(e['lastTimestamp']).toBe('2024-01-01T00:00:00Z');
  });

  it('keeps the immutable fields of updates', () => {
    const old = obj({ immutable: true, data: { a: '1' } });
    expect(check('configmaps', obj({ immutable: true, data: { a: '2' } }), old)).toEqual(['data FieldValueForbidden']);
    expect(check('configmaps', obj({ data: { a: '1' } }), old)).toEqual(['immutable FieldValueForbidden']);
    const pod = obj({ spec: { containers: [{ name: 'a', image: 'i' }], nodeName: 'n' } });
    check('pods', pod);
    expect(check('pods', obj({ spec: { containers: [{ name: 'a', image: 'j' }], nodeName: 'n' } }), pod)).toEqual([]);
    expect(check('pods', obj({ spec: { containers: [{ name: 'a', image: 'i' }], nodeName: 'm' } }), pod)).toEqual(['spec FieldValueForbidden']);
  });

  it('words a 422 like Kubernetes', () => {
    const one = invalid('ConfigMap', '', 'x', [{ type: 'FieldValueRequired', field: 'metadata.name', message: 'Required value' }]);
    expect(one.message).toBe('ConfigMap "x" is invalid: metadata.name: Required value');
    const two = invalid('Lease', 'coordination.k8s.io', 'l', [
      { type: 'FieldValueRequired', field: 'a', message: 'Required value' },
      { type: 'FieldValueInvalid', field: 'b', message: 'Invalid value: 1: no' },
    ]);
    expect(two.toStatus()).toMatchObject({
      code: 422,
      reason: 'Invalid',
      message: 'Lease "l" is invalid: [a: Required value, b: Invalid value: 1: no]',
      details: { name: 'l', group: 'coordination.k8s.io', kind: 'Lease', causes: [{ reason: 'FieldValueRequired', field: 'a' }, { reason: 'FieldValueInvalid', field: 'b' }] },
    });
  });
});

describe('times', () => {
  it.each([
    ['2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z'],
    ['2024-01-01T00:00:00.999Z', '2024-01-01T00:00:00Z'],
    ['2024-01-01T01:30:00+01:30', '2024-01-01T00:00:00Z'],
    ['2024-02-30T00:00:00Z', undefined],
    ['2024-01-01 00:00:00Z', undefined],
    ['2024-01-01T00:00:00', undefined],
  ])('Time %j -> %j', (v, want) => expect(normalizeTime(v)).toBe(want));

  it.each([
    ['2024-01-01T00:00:00.123456Z', '2024-01-01T00:00:00.123456Z'],
    ['2024-01-01T02:00:00.000001+02:00', '2024-01-01T00:00:00.000001Z'],
    ['2024-01-01T00:00:00.123Z', undefined],
    ['2024-01-01T00:00:00Z', undefined],
    ['2024-01-01T00:00:00.1234567Z', undefined],
  ])('MicroTime %j -> %j', (v, want) => expect(normalizeMicroTime(v)).toBe(want));

  it.each([
    [-5000, '<invalid>'],
    [-1000, '0s'],
    [0, '0s'],
    [119_000, '119s'],
    [120_000, '2m'],
    [185_000, '3m5s'],
    [600_000, '10m'],
    [3 * 3600_000, '3h'],
    [3 * 3600_000 + 60_000, '3h1m'],
    [10 * 3600_000, '10h'],
    [50 * 3600_000, '2d2h'],
    [10 * 86_400_000, '10d'],
    [800 * 86_400_000, '2y70d'],
    [3000 * 86_400_000, '8y'],
  ])('AGE of %d ms is %s', (ms, want) => expect(humanDuration(ms)).toBe(want));

  it.each([
    ['', 0],
    ['QQ==', 1],
    ['QUI=', 2],
    ['QUJD', 3],
    ['QUJD\nREVG', 6],
    ['QQ', undefined],
    ['Q===', undefined],
    ['not base64', undefined],
  ])('base64 %j holds %j bytes', (v, n) => expect(base64Size(v)).toBe(n));
});

describe('requests', () => {
  it.each([
    [undefined, { as: 'object' }],
    ['application/json', { as: 'object' }],
    ['*/*', { as: 'object' }],
    ['application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json', { as: 'Table', apiVersion: 'meta.k8s.io/v1' }],
    ['application/json;as=Table;v=v1beta1;g=meta.k8s.io', { as: 'Table', apiVersion: 'meta.k8s.io/v1beta1' }],
    ['application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json', { as: 'object' }],
    ['application/vnd.kubernetes.protobuf, application/json', { as: 'object' }],
    ['application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io', { as: 'PartialObjectMetadata' }],
  ])('Accept %j', (accept, want) => expect(negotiate(accept)).toEqual(want));

  it('refuses an Accept it cannot satisfy', () => expect(() => negotiate('application/vnd.kubernetes.protobuf')).toThrow(/only the following media types/));

  it.each([
    ['/healthz', 'health'],
    ['/livez/ping', 'health'],
    ['/version', 'version'],
    ['/api', 'api'],
    ['/api/v1', 'resources'],
    ['/apis', 'apis'],
    ['/apis/coordination.k8s.io', 'group'],
    ['/apis/coordination.k8s.io/v1', 'resources'],
    ['/api/v1/namespaces', 'namespaces'],
    ['/api/v1/namespaces/ns', 'namespaces'],
    ['/api/v1/configmaps', 'collection'],
    ['/api/v1/namespaces/ns/configmaps', 'collection'],
    ['/api/v1/watch/namespaces/ns/configmaps', 'collection'],
    ['/api/v1/namespaces/ns/configmaps/a', 'object'],
    ['/api/v1/namespaces/ns/pods/a/status', 'object'],
    ['/apis/coordination.k8s.io/v1/namespaces/ns/leases/l', 'object'],
    ['/api/v1/namespaces/ns/leases', 'unknown'],
    ['/apis/coordination.k8s.io/v1/namespaces/ns/configmaps', 'unknown'],
    ['/api/v2/configmaps', 'unknown'],
    ['/openapi/v2', 'openapi'],
    ['/openapi/v3/apis/coordination.k8s.io/v1', 'openapi'],
    ['/openapi/v4', 'unknown'],
    ['/api/v1/namespaces/ns/configmaps/a/b/c', 'unknown'],
  ])('path %s is %s', (p, kind) => expect(parsePath(p).kind).toBe(kind));
});
