import { deepEqual, isObject } from '../machinery/json.js';
import { isDns1123Label, isDns1123Subdomain } from '../machinery/names.js';
import { fieldDuplicate, fieldForbidden, fieldInvalid, fieldNotSupported, fieldRequired, type FieldError } from '../machinery/status.js';
import { age, humanDuration, parseTime } from '../machinery/time.js';
import { optArray, optBool, optInt, optObject, optString, type Errs } from './check.js';
import { AGE, column, NAME } from './columns.js';
import { META_FIELDS } from './objectmeta.js';
import type { KubeObject, ResourceDef } from './types.js';

/**
 * Pods as the local controller uses them: it creates one per unit, plays kubelet by writing
 * their status through `pods/status`, and deletes them (gracefully when they are on a node).
 * The spec is checked for what the controller relies on, not Kubernetes' whole PodSpec.
 */

const PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'];
const RESTART_POLICIES = ['Always', 'OnFailure', 'Never'];
const CONDITION_STATUS = ['True', 'False', 'Unknown'];
export const DEFAULT_GRACE_SECONDS = 30;

type Obj = Record<string, unknown>;

function validateContainers(list: unknown[] | undefined, path: string, errs: Errs, required: boolean): void {
  if (!list || list.length === 0) {
    if (required) errs.push(fieldRequired(path));
    return;
  }
  const seen = new Set<string>();
  list.forEach((c, i) => {
    const p = `${path}[${i}]`;
    if (!isObject(c)) {
      errs.push(fieldInvalid(p, c, 'must be an object'));
      return;
    }
    const name = optString(c, 'name', `${p}.name`, errs);
    if (!name) errs.push(fieldRequired(`${p}.name`));
    else {
      for (const e of isDns1123Label(name)) errs.push(fieldInvalid(`${p}.name`, name, e));
      if (seen.has(name)) errs.push(fieldDuplicate(`${p}.name`, name));
      seen.add(name);
    }
    if (!optString(c, 'image', `${p}.image`, errs)) errs.push(fieldRequired(`${p}.image`));
    optArray(c, 'command', `${p}.command`, errs);
    optArray(c, 'args', `${p}.args`, errs);
    optArray(c, 'env', `${p}.env`, errs);
  });
}

function validateStatus(status: Obj, errs: Errs): void {
  const phase = optString(status, 'phase', 'status.phase', errs);
  if (phase !== undefined && !PHASES.includes(phase)) errs.push(fieldNotSupported('status.phase', phase, PHASES));
  optString(status, 'podIP', 'status.podIP', errs);
  optString(status, 'reason', 'status.reason', errs);
  optString(status, 'message', 'status.message', errs);
  optArray(status, 'conditions', 'status.conditions', errs)?.forEach((c, i) => {
    const p = `status.conditions[${i}]`;
    if (!isObject(c)) return void errs.push(fieldInvalid(p, c, 'must be an object'));
    if (!optString(c, 'type', `${p}.type`, errs)) errs.push(fieldRequired(`${p}.type`));
    const s = optString(c, 'status', `${p}.status`, errs);
    if (s === undefined || !CONDITION_STATUS.includes(s)) errs.push(fieldNotSupported(`${p}.status`, s ?? '', CONDITION_STATUS));
  });
  optArray(status, 'containerStatuses', 'status.containerStatuses', errs)?.forEach((c, i) => {
    const p = `status.containerStatuses[${i}]`;
    if (!isObject(c)) return void errs.push(fieldInvalid(p, c, 'must be an object'));
    if (!optString(c, 'name', `${p}.name`, errs)) errs.push(fieldRequired(`${p}.name`));
    optBool(c, 'ready', `${p}.ready`, errs);
    const n = optInt(c, 'restartCount', `${p}.restartCount`, errs);
    if (n !== undefined && n < 0) errs.push(fieldInvalid(`${p}.restartCount`, n, 'must be greater than or equal to 0'));
  });
}

/** The spec without the fields an update may change (Kubernetes' ValidatePodUpdate). */
function frozenSpec(spec: Obj): Obj {
  const strip = (l: unknown) => (Array.isArray(l) ? l.map((c) => (isObject(c) ? { ...c, image: undefined } : c)) : l);
  return { ...spec, containers: strip(spec['containers']), initContainers: strip(spec['initContainers']), activeDeadlineSeconds: undefined, tolerations: undefined };
}

function validate(obj: KubeObject, old: KubeObject | undefined): FieldError[] {
  const errs: Errs = [];
  const spec = optObject(obj, 'spec', 'spec', errs);
  if (!spec) {
    if (obj['spec'] === undefined || obj['spec'] === null) errs.push(fieldRequired('spec.containers'));
    return errs;
  }
  validateContainers(optArray(spec, 'containers', 'spec.containers', errs), 'spec.containers', errs, true);
  validateContainers(optArray(spec, 'initContainers', 'spec.initContainers', errs), 'spec.initContainers', errs, false);
  const policy = optString(spec, 'restartPolicy', 'spec.restartPolicy', errs);
  if (policy === undefined) spec['restartPolicy'] = 'Always';
  else if (!RESTART_POLICIES.includes(policy)) errs.push(fieldNotSupported('spec.restartPolicy', policy, RESTART_POLICIES));
  const node = optString(spec, 'nodeName', 'spec.nodeName', errs);
  if (node) for (const e of isDns1123Subdomain(node)) errs.push(fieldInvalid('spec.nodeName', node, e));
  const grace = optInt(spec, 'terminationGracePeriodSeconds', 'spec.terminationGracePeriodSeconds', errs, 64);
  if (grace === undefined) spec['terminationGracePeriodSeconds'] = DEFAULT_GRACE_SECONDS;
  else if (grace < 0) errs.push(fieldInvalid('spec.terminationGracePeriodSeconds', grace, 'must be greater than or equal to 0'));
  const status = optObject(obj, 'status', 'status', errs);
  if (status) validateStatus(status, errs);
  if (old && errs.length === 0 && !deepEqual(frozenSpec(spec), frozenSpec((old['spec'] ?? {}) as Obj))) {
    errs.push(
      fieldForbidden(
        'spec',
        'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations)',
      ),
    );
  }
  return errs;
}

/** kubectl's READY, STATUS and RESTARTS, after printPod in Kubernetes' printers. */
function podCells(o: KubeObject, now: number): [string, string, number | string] {
  const spec = (o['spec'] ?? {}) as Obj;
  const status = (o['status'] ?? {}) as Obj;
  const total = Array.isArray(spec['containers']) ? spec['containers'].length : 0;
  let reason = String(status['reason'] ?? status['phase'] ?? '');
  let ready = 0;
  let restarts = 0;
  let lastRestart = NaN;
  const statuses = Array.isArray(status['containerStatuses']) ? (status['containerStatuses'] as Obj[]) : [];
  for (const cs of [...statuses].reverse()) {
    restarts += typeof cs['restartCount'] === 'number' ? cs['restartCount'] : 0;
    const term = ((cs['lastState'] ?? {}) as Obj)['terminated'] as Obj | undefined;
    const finished = parseTime(term?.['finishedAt']);
    if (!Number.isNaN(finished) && !(finished <= lastRestart)) lastRestart = finished;
    const state = (cs['state'] ?? {}) as Obj;
    const waiting = state['waiting'] as Obj | undefined;
    const terminated = state['terminated'] as Obj | undefined;
    if (waiting?.['reason']) reason = String(waiting['reason']);
    else if (terminated?.['reason']) reason = String(terminated['reason']);
    else if (terminated) reason = terminated['signal'] ? `Signal:${terminated['signal']}` : `ExitCode:${terminated['exitCode'] ?? 0}`;
    else if (cs['ready'] === true && state['running']) ready++;
  }
  if (o.metadata.deletionTimestamp) reason = status['reason'] === 'NodeLost' ? 'Unknown' : 'Terminating';
  const restartCell = Number.isNaN(lastRestart) ? restarts : `${restarts} (${humanDuration(now - lastRestart)} ago)`;
  return [`${ready}/${total}`, reason, restartCell];
}

export const pods: ResourceDef = {
  name: 'pods',
  group: '',
  version: 'v1',
  kind: 'Pod',
  singular: 'pod',
  shortNames: ['po'],
  categories: ['all'],
  namespaced: true,
  statusSubresource: true,
  allowCreateOnUpdate: false,
  returnDeletedObject: true,
  fields: { apiVersion: true, kind: true, metadata: META_FIELDS, spec: true, status: true },
  fieldLabels: {
    'spec.nodeName': (o) => (o['spec'] as Obj | undefined)?.['nodeName'] as string | undefined,
    'spec.restartPolicy': (o) => (o['spec'] as Obj | undefined)?.['restartPolicy'] as string | undefined,
    'status.phase': (o) => (o['status'] as Obj | undefined)?.['phase'] as string | undefined,
    'status.podIP': (o) => (o['status'] as Obj | undefined)?.['podIP'] as string | undefined,
  },
  validate,
  prepareForCreate(obj) {
    obj['status'] = { phase: 'Pending' };
  },
  prepareForUpdate(obj, old) {
    if (old['status'] === undefined) delete obj['status'];
    else obj['status'] = old['status'];
  },
  table: {
    columns: [
      NAME,
      column('Ready', 'The aggregate readiness state of this pod for accepting traffic.'),
      column('Status', 'The aggregate status of the containers in this pod.'),
      column('Restarts', 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.'),
      AGE,
      column('IP', 'podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.', { priority: 1 }),
      column('Node', 'NodeName indicates in which node this pod is scheduled.', { priority: 1 }),
      column('Nominated Node', 'nominatedNodeName is set only when this pod preempts other pods on the node.', { priority: 1 }),
      column('Readiness Gates', 'If specified, all readiness gates will be evaluated for pod readiness.', { priority: 1 }),
    ],
    cells: (o, now) => {
      const [ready, reason, restarts] = podCells(o, now);
      const spec = (o['spec'] ?? {}) as Obj;
      const status = (o['status'] ?? {}) as Obj;
      return [o.metadata.name, ready, reason, restarts, age(o.metadata.creationTimestamp, now), status['podIP'] || '<none>', spec['nodeName'] || '<none>', '<none>', '<none>'];
    },
  },
};
