import type { V1ConfigMap } from '#client-node';
import type { Store } from '../runtime/store.js';

/**
 * What a local deployment wants, stored as ConfigMap `<app>-deployment` (the StatefulSet of
 * the local world): which unit numbers exist, which are held down (`kill --no-restart`), the
 * next unit number (Juju never reuses one), and where charm.yaml is.
 */
export interface Deployment {
  units: number[];
  held: number[];
  next: number;
  /** Absolute path of the charm.yaml this deployment was made from (the controller watches it). */
  charm: string;
  /** Absolute path of the charm's code module. */
  charmModule: string;
  keepData: boolean;
  /**
   * The workload container's name, from charm.yaml at deploy time (the pods need it; parsing
   * charm.yaml again would hold up the units' start). Absent in older deployments.
   */
  container?: string;
}

export const deploymentName = (app: string): string => `${app}-deployment`;

export function decodeDeployment(cm: V1ConfigMap): Deployment {
  const d = cm.data ?? {};
  const nums = (k: string): number[] => {
    try {
      const v: unknown = JSON.parse(d[k] ?? '[]');
      return Array.isArray(v) ? v.filter((x): x is number => Number.isInteger(x)).sort((a, b) => a - b) : [];
    } catch {
      return [];
    }
  };
  return {
    units: nums('units'),
    held: nums('held'),
    next: Number(d['next'] ?? '0'),
    charm: d['charm'] ?? '',
    charmModule: d['charm-module'] ?? '',
    keepData: d['keep-data'] === 'true',
    ...(d['container'] ? { container: d['container'] } : {}),
  };
}

export function encodeDeployment(dep: Deployment): Record<string, string> {
  return {
    units: JSON.stringify(dep.units),
    held: JSON.stringify(dep.held),
    next: String(dep.next),
    charm: dep.charm,
    'charm-module': dep.charmModule,
    'keep-data': String(dep.keepData),
    ...(dep.container ? { container: dep.container } : {}),
  };
}

export async function readDeployment(store: Store): Promise<Deployment | undefined> {
  const cm = await store.get(deploymentName(store.app));
  return cm ? decodeDeployment(cm) : undefined;
}

/** Compare-and-swap edit of the deployment record. */
export async function updateDeployment(store: Store, edit: (d: Deployment) => void): Promise<Deployment> {
  let out: Deployment | undefined;
  await store.update(deploymentName(store.app), (cm) => {
    const d = decodeDeployment(cm);
    edit(d);
    out = d;
    cm.data = encodeDeployment(d);
  });
  return out!;
}
