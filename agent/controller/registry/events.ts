import { fieldInvalid, type FieldError } from '../machinery/status.js';
import { age, parseTime } from '../machinery/time.js';
import { normMicroTime, normTime, optInt, optObject, optString, type Errs } from './check.js';
import { column } from './columns.js';
import { META_FIELDS } from './objectmeta.js';
import type { KubeObject, ResourceDef } from './types.js';

const OBJECT_REFERENCE = { kind: true, namespace: true, name: true, uid: true, apiVersion: true, resourceVersion: true, fieldPath: true } as const;

function validate(obj: KubeObject): FieldError[] {
  const errs: Errs = [];
  const ref = optObject(obj, 'involvedObject', 'involvedObject', errs) ?? {};
  for (const f of Object.keys(OBJECT_REFERENCE)) optString(ref, f, `involvedObject.${f}`, errs);
  // Kubernetes' rule: the event lives in its object's namespace ("default" for cluster-scoped objects).
  const refNs = typeof ref['namespace'] === 'string' ? ref['namespace'] : '';
  const ns = obj.metadata.namespace ?? '';
  if (refNs === '' ? ns !== '' && ns !== 'default' : refNs !== ns) errs.push(fieldInvalid('involvedObject.namespace', refNs, 'does not match event.namespace'));
  for (const f of ['reason', 'message', 'type', 'action', 'reportingComponent', 'reportingInstance']) optString(obj, f, f, errs);
  const source = optObject(obj, 'source', 'source', errs);
  if (source) for (const f of ['component', 'host']) optString(source, f, `source.${f}`, errs);
  const count = optInt(obj, 'count', 'count', errs);
  if (count !== undefined && count < 0) errs.push(fieldInvalid('count', count, 'must be greater than or equal to 0'));
  normTime(obj, 'firstTimestamp', 'firstTimestamp', errs);
  normTime(obj, 'lastTimestamp', 'lastTimestamp', errs);
  normMicroTime(obj, 'eventTime', 'eventTime', errs);
  const series = optObject(obj, 'series', 'series', errs);
  if (series) {
    optInt(series, 'count', 'series.count', errs);
    normMicroTime(series, 'lastObservedTime', 'series.lastObservedTime', errs);
  }
  return errs;
}

const ref = (o: KubeObject) => (o['involvedObject'] ?? {}) as Record<string, string | undefined>;
const source = (o: KubeObject) => (o['source'] ?? {}) as Record<string, string | undefined>;

/** kubectl's LAST SEEN: the latest of lastTimestamp, series.lastObservedTime and eventTime. */
function lastSeen(o: KubeObject, now: number): string {
  const series = (o['series'] ?? {}) as Record<string, unknown>;
  for (const t of [series['lastObservedTime'], o['lastTimestamp'], o['eventTime'], o['firstTimestamp']]) {
    if (!Number.isNaN(parseTime(t))) return age(t, now);
  }
  return '<unknown>';
}

export const events: ResourceDef = {
  name: 'events',
  group: '',
  version: 'v1',
  kind: 'Event',
  singular: 'event',
  shortNames: ['ev'],
  namespaced: true,
  statusSubresource: false,
  allowCreateOnUpdate: true,
  returnDeletedObject: false,
  fields: {
    apiVersion: true,
    kind: true,
    metadata: META_FIELDS,
    involvedObject: OBJECT_REFERENCE,
    reason: true,
    message: true,
    source: { component: true, host: true },
    firstTimestamp: true,
    lastTimestamp: true,
    count: true,
    type: true,
    eventTime: true,
    series: { count: true, lastObservedTime: true },
    action: true,
    related: true,
    reportingComponent: true,
    reportingInstance: true,
  },
  fieldLabels: {
    'involvedObject.kind': (o) => ref(o)['kind'],
    'involvedObject.namespace': (o) => ref(o)['namespace'],
    'involvedObject.name': (o) => ref(o)['name'],
    'involvedObject.uid': (o) => ref(o)['uid'],
    'involvedObject.apiVersion': (o) => ref(o)['apiVersion'],
    'involvedObject.resourceVersion': (o) => ref(o)['resourceVersion'],
    'involvedObject.fieldPath': (o) => ref(o)['fieldPath'],
    reason: (o) => o['reason'] as string | undefined,
    reportingComponent: (o) => o['reportingComponent'] as string | undefined,
    source: (o) => source(o)['component'],
    type: (o) => o['type'] as string | undefined,
  },
  validate,
  table: {
    columns: [
      column('Last Seen', 'The time at which the most recent occurrence of this event was recorded.'),
      column('Type', 'Type of this event (Normal, Warning), new types could be added in the future'),
      column('Reason', 'This should be a short, machine understandable string that gives the reason for the transition into the object\'s current status.'),
      column('Object', 'The object that this event is about.'),
      column('Subobject', 'If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.', { priority: 1 }),
      column('Source', 'The component reporting this event. Should be a short machine understandable string.', { priority: 1 }),
      column('Message', 'A human-readable description of the status of this operation.'),
      column('First Seen', 'The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)', { priority: 1 }),
      column('Count', 'The number of times this event has occurred.', { priority: 1 }),
      column('Name', 'Name must be unique within a namespace.', { priority: 1, format: 'name' }),
    ],
    cells: (o, now) => {
      const r = ref(o);
      const s = source(o);
      const src = [s['component'] ?? o['reportingComponent'], s['host'] ?? o['reportingInstance']].filter((x) => x).join(', ');
      return [
        lastSeen(o, now),
        o['type'] ?? '',
        o['reason'] ?? '',
        `${(r['kind'] ?? '').toLowerCase()}/${r['name'] ?? ''}`,
        r['fieldPath'] ?? '',
        src,
        o['message'] ?? '',
        age(o['firstTimestamp'] ?? o['eventTime'], now),
        o['count'] ?? 1,
        o.metadata.name,
      ];
    },
  },
};
