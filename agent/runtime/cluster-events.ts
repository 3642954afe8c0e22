import { randomBytes } from 'node:crypto';
import type { CoreV1Event } from '#client-node';
import type { Logger } from 'pino';
import type { Kube } from './kube.js';
import { LABELS, parseUnit, podName } from './names.js';

/**
 * Kubernetes Events for what an operator wants in a timeline: failovers, switchovers, step-downs,
 * Postgres restarts, config changes, backups. Core v1 Events on the unit's Pod, as a kubelet or a
 * controller records them, so `kubectl get events` (and `kubectl describe pod`) show them, on
 * the local controller as on a cluster; `pgcharm dashboard` reads them. They expire like every
 * Event (an hour by default). Recording never fails or delays what it records: a store that does
 * not take the Event costs a debug line.
 */

export type EventReason = 'Failover' | 'Switchover' | 'SteppedDown' | 'HandedOver' | 'Restarted' | 'ConfigApplied' | 'BackupCompleted' | 'BackupFailed' | 'Restored';

export interface ClusterEvent {
  unit: string;
  reason: EventReason;
  message: string;
  /** Kubernetes' two types: Warning for what an operator should look at. */
  type?: 'Normal' | 'Warning';
}

/** The Event object (pure). */
export function eventObject(namespace: string, app: string, e: ClusterEvent, now: Date, suffix: string): CoreV1Event {
  const pod = podName(parseUnit(e.unit));
  return {
    apiVersion: 'v1',
    kind: 'Event',
    // Kubernetes' own naming: the object's name and a unique suffix.
    metadata: { name: `${pod}.${suffix}`, namespace, labels: { [LABELS.app]: app, [LABELS.unit]: pod } },
    involvedObject: { apiVersion: 'v1', kind: 'Pod', name: pod, namespace },
    reason: e.reason,
    message: e.message,
    type: e.type ?? 'Normal',
    source: { component: 'pgcharm' },
    reportingComponent: 'pgcharm.io/agent',
    reportingInstance: e.unit,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
}

export function recordEvent(kube: Kube, app: string, e: ClusterEvent, log: Logger): void {
  const body = eventObject(kube.namespace, app, e, new Date(), `${Date.now().toString(16)}${randomBytes(2).toString('hex')}`);
  kube.core.createNamespacedEvent({ namespace: kube.namespace, body }).catch((err: unknown) => log.debug({ err: err instanceof Error ? err.message : String(err), reason: e.reason }, 'could not record an event'));
}
