import { configMaps } from './configmaps.js';
import { events } from './events.js';
import { leases } from './leases.js';
import { pods } from './pods.js';
import { secrets } from './secrets.js';
import type { ResourceDef, ResourceName } from './types.js';

/** Every resource the local controller serves; all are namespaced. */
export const RESOURCES: readonly ResourceDef[] = [configMaps, secrets, events, pods, leases];

const byName = new Map<string, ResourceDef>(RESOURCES.map((d) => [d.name, d]));

export function resourceDef(name: ResourceName): ResourceDef {
  return byName.get(name)!;
}

/** The resource served at `/api/v1/<plural>` (group '') or `/apis/<group>/<version>/<plural>`. */
export function findResource(group: string, version: string, plural: string): ResourceDef | undefined {
  const d = byName.get(plural);
  return d && d.group === group && d.version === version ? d : undefined;
}

/** The API groups served besides the core group, with their versions. */
export function apiGroups(): { name: string; versions: string[] }[] {
  const groups = new Map<string, Set<string>>();
  for (const d of RESOURCES) {
    if (!d.group) continue;
    if (!groups.has(d.group)) groups.set(d.group, new Set());
    groups.get(d.group)!.add(d.version);
  }
  return [...groups].map(([name, versions]) => ({ name, versions: [...versions] }));
}

export const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
