import { formatTime } from '../machinery/time.js';
import { DEFAULT_GRACE_SECONDS } from './pods.js';
import type { KubeObject } from './types.js';

/**
 * When DELETE does not remove an object at once. With finalizers it is marked
 * (deletionTimestamp) and goes when an update empties them. A Pod bound to a node is
 * deleted gracefully: marked with its grace period, so the node's agent (the local
 * controller here, playing kubelet) stops it and then deletes it with gracePeriodSeconds=0.
 *
 * | state       | event                                       | next        | answer        |
 * |-------------|---------------------------------------------|-------------|---------------|
 * | live        | DELETE, no finalizers, not a Pod on a node  | gone        | 200           |
 * | live        | DELETE, finalizers or a Pod on a node       | terminating | 202 + object  |
 * | terminating | DELETE with a shorter grace period          | terminating | 202, deadline moved |
 * | terminating | DELETE with grace 0, no finalizers          | gone        | 200           |
 * | terminating | update that empties finalizers, grace 0     | gone        | 200 + object  |
 * | terminating | update adding a finalizer                   | terminating | 422           |
 */

export interface DeleteOptions {
  preconditions?: { uid?: string; resourceVersion?: string };
  gracePeriodSeconds?: number;
  propagationPolicy?: string;
  dryRun?: boolean;
}

type Obj = Record<string, unknown>;

/** The grace period this delete asks for a Pod, or 0 when it can go at once. */
export function podGraceSeconds(pod: KubeObject, opts: DeleteOptions): number {
  const spec = (pod['spec'] ?? {}) as Obj;
  const phase = ((pod['status'] ?? {}) as Obj)['phase'];
  if (!spec['nodeName'] || phase === 'Succeeded' || phase === 'Failed') return 0;
  const grace = opts.gracePeriodSeconds ?? (spec['terminationGracePeriodSeconds'] as number | undefined) ?? DEFAULT_GRACE_SECONDS;
  return Math.max(0, grace);
}

/** The object marked for deletion: deletionTimestamp = now + grace. */
export function markDeleted(old: KubeObject, graceSeconds: number, now = Date.now()): KubeObject {
  return {
    ...old,
    metadata: { ...old.metadata, deletionTimestamp: formatTime(new Date(now + graceSeconds * 1000)), deletionGracePeriodSeconds: graceSeconds },
  };
}

/** A terminating object whose finalizers are done and whose grace period was cut to 0 goes now. */
export function readyToRemove(o: KubeObject): boolean {
  return !!o.metadata.deletionTimestamp && !(o.metadata.finalizers?.length) && (o.metadata.deletionGracePeriodSeconds ?? 0) === 0;
}
