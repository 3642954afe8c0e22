import { formatTime } from '../machinery/time.js';
import { asBool, asBytes, asInt, asMessage, asString, mapEntry, ProtobufError, readFields, type Field } from './protobuf.js';

/**
 * Request bodies in Kubernetes' protobuf encoding, for the kinds kubectl sends that way:
 * `kubectl create configmap|secret` (≥ 1.32) posts ConfigMaps and Secrets as protobuf. The
 * envelope is "k8s\0" + runtime.Unknown{typeMeta, raw}; the field numbers are those of
 * k8s.io/api/core/v1 and k8s.io/apimachinery/pkg/apis/meta/v1 generated.proto.
 */

export const PROTOBUF = 'application/vnd.kubernetes.protobuf';
const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

type Obj = Record<string, unknown>;

function stringMap(fields: Field[], no: number): Record<string, string> | undefined {
  const entries = fields.filter((f) => f.no === no).map((f) => mapEntry(f, asString, ''));
  return entries.length ? Object.fromEntries(entries) : undefined;
}

function bytesMap(fields: Field[], no: number): Record<string, string> | undefined {
  const entries = fields.filter((f) => f.no === no).map((f) => mapEntry(f, (v) => asBytes(v).toString('base64'), ''));
  return entries.length ? Object.fromEntries(entries) : undefined;
}

function time(f: Field): string {
  let seconds = 0;
  for (const t of asMessage(f)) if (t.no === 1) seconds = asInt(t);
  return formatTime(new Date(seconds * 1000));
}

function ownerReference(f: Field): Obj {
  const o: Obj = {};
  const names: Record<number, string> = { 1: 'kind', 3: 'name', 4: 'uid', 5: 'apiVersion' };
  for (const x of asMessage(f)) {
    if (names[x.no]) o[names[x.no]!] = asString(x);
    else if (x.no === 6) o['controller'] = asBool(x);
    else if (x.no === 7) o['blockOwnerDeletion'] = asBool(x);
  }
  return o;
}

function objectMeta(f: Field): Obj {
  const fields = asMessage(f);
  const m: Obj = {};
  const strings: Record<number, string> = { 1: 'name', 2: 'generateName', 3: 'namespace', 5: 'uid', 6: 'resourceVersion' };
  for (const x of fields) {
    if (strings[x.no]) m[strings[x.no]!] = asString(x);
    else if (x.no === 7) m['generation'] = asInt(x);
    else if (x.no === 8) m['creationTimestamp'] = time(x);
    else if (x.no === 9) m['deletionTimestamp'] = time(x);
    else if (x.no === 10) m['deletionGracePeriodSeconds'] = asInt(x);
  }
  const labels = stringMap(fields, 11);
  const annotations = stringMap(fields, 12);
  if (labels) m['labels'] = labels;
  if (annotations) m['annotations'] = annotations;
  const owners = fields.filter((x) => x.no === 13).map(ownerReference);
  if (owners.length) m['ownerReferences'] = owners;
  const finalizers = fields.filter((x) => x.no === 14).map(asString);
  if (finalizers.length) m['finalizers'] = finalizers;
  return m;
}

function configMap(fields: Field[]): Obj {
  const o: Obj = { apiVersion: 'v1', kind: 'ConfigMap' };
  for (const f of fields) {
    if (f.no === 1) o['metadata'] = objectMeta(f);
    else if (f.no === 4) o['immutable'] = asBool(f);
  }
  const data = stringMap(fields, 2);
  const binaryData = bytesMap(fields, 3);
  if (data) o['data'] = data;
  if (binaryData) o['binaryData'] = binaryData;
  return o;
}

function secret(fields: Field[]): Obj {
  const o: Obj = { apiVersion: 'v1', kind: 'Secret' };
  for (const f of fields) {
    if (f.no === 1) o['metadata'] = objectMeta(f);
    else if (f.no === 3) o['type'] = asString(f);
    else if (f.no === 5) o['immutable'] = asBool(f);
  }
  const data = bytesMap(fields, 2);
  const stringData = stringMap(fields, 4);
  if (data) o['data'] = data;
  if (stringData) o['stringData'] = stringData;
  return o;
}

const KINDS: Record<string, (fields: Field[]) => Obj> = { 'v1/ConfigMap': configMap, 'v1/Secret': secret };

/** The JSON form of a protobuf-encoded object; throws ProtobufError for what it cannot read. */
export function decodeProtobufObject(buf: Buffer): Obj {
  if (buf.length < 4 || !buf.subarray(0, 4).equals(MAGIC)) throw new ProtobufError('missing the k8s protobuf envelope');
  let apiVersion = '';
  let kind = '';
  let raw: Buffer = Buffer.alloc(0);
  for (const f of readFields(buf.subarray(4))) {
    if (f.no === 1) {
      for (const t of asMessage(f)) {
        if (t.no === 1) apiVersion = asString(t);
        else if (t.no === 2) kind = asString(t);
      }
    } else if (f.no === 2) raw = asBytes(f);
  }
  const decode = KINDS[`${apiVersion}/${kind}`];
  if (!decode) throw new ProtobufError(`${kind || 'this kind'} (${apiVersion || 'no apiVersion'}) cannot be sent as protobuf here; send JSON`);
  return decode(readFields(raw));
}
