import type { V1ConfigMap } from '#client-node';
import { parseList } from './model.js';
import { ANNOTATIONS, LABELS } from './names.js';

/**
 * Relations between applications (Juju `integrate`) in the store, beside the peer relation's
 * bags. Every object of a relation carries a label per application in it
 * (`relation.pgcharm.io/<app>: <endpoint>`), so each agent watches exactly the relations of its
 * own application with one selector.
 *
 *   ConfigMap relation-<id>               the relation: both endpoints and the interface
 *   ConfigMap relation-<id>-<app>         <app>'s application bag (its leader writes it)
 *   ConfigMap relation-<id>-<app>-<n>     unit <app>/<n>'s bag; it exists while the unit is in
 *                                         the relation's scope (from relation-created to broken)
 *
 * Relation ids are model-wide and never reused (ConfigMap pgcharm-relations keeps the next).
 * `remove-relation` marks the relation dying; each unit then runs -departed for every remote
 * unit and -broken, and deletes its bag; the leaders delete their application bags; the CLI
 * deletes the relation once no bag is left.
 */

export const RELATION_LABEL_PREFIX = 'relation.pgcharm.io/';
export const relationLabel = (app: string): string => `${RELATION_LABEL_PREFIX}${app}`;
export const RELATION_ID_LABEL = 'pgcharm.io/relation-id';
/** On the relation: remove-relation asked for it to go. */
export const DYING_ANNOTATION = 'pgcharm.io/dying';
/** On a unit's relation bag: the remote units whose -joined ran (a restarted agent neither re-joins nor misses a departure). */
export const JOINED_ANNOTATION = ANNOTATIONS.peers;
export const RELATION_COUNTER = 'pgcharm-relations';

export const relationObjects = {
  relation: (id: number) => `relation-${id}`,
  appBag: (id: number, app: string) => `relation-${id}-${app}`,
  unitBag: (id: number, app: string, index: number) => `relation-${id}-${app}-${index}`,
};

export type EndpointRole = 'provider' | 'requirer';

export interface RelationEnd {
  app: string;
  endpoint: string;
}

export interface RelationRecord {
  id: number;
  interface: string;
  provider: RelationEnd;
  requirer: RelationEnd;
  dying: boolean;
}

export function encodeRelation(r: Omit<RelationRecord, 'dying'>): { labels: Record<string, string>; data: Record<string, string> } {
  return {
    labels: {
      [LABELS.managedBy]: 'pgcharm',
      [LABELS.kind]: 'relation',
      [RELATION_ID_LABEL]: String(r.id),
      [relationLabel(r.provider.app)]: r.provider.endpoint,
      [relationLabel(r.requirer.app)]: r.requirer.endpoint,
    },
    data: {
      id: String(r.id),
      interface: r.interface,
      'provider-app': r.provider.app,
      'provider-endpoint': r.provider.endpoint,
      'requirer-app': r.requirer.app,
      'requirer-endpoint': r.requirer.endpoint,
    },
  };
}

export function decodeRelation(cm: V1ConfigMap): RelationRecord | undefined {
  const d = cm.data ?? {};
  const id = Number(d['id']);
  if (!Number.isInteger(id) || !d['provider-app'] || !d['requirer-app']) return undefined;
  return {
    id,
    interface: d['interface'] ?? '',
    provider: { app: d['provider-app'], endpoint: d['provider-endpoint'] ?? '' },
    requirer: { app: d['requirer-app'], endpoint: d['requirer-endpoint'] ?? '' },
    dying: cm.metadata?.annotations?.[DYING_ANNOTATION] === 'true',
  };
}

/** This application's end of a relation and the other one (undefined when the app is not in it). */
export function sidesOf(r: RelationRecord, app: string): { local: RelationEnd; remote: RelationEnd; role: EndpointRole } | undefined {
  if (r.provider.app === app) return { local: r.provider, remote: r.requirer, role: 'provider' };
  if (r.requirer.app === app) return { local: r.requirer, remote: r.provider, role: 'requirer' };
  return undefined;
}

/** The labels of a bag of relation `r` owned by `app` (and unit `pod`, for a unit bag). */
export function bagLabels(r: RelationRecord, app: string, pod?: string): Record<string, string> {
  return {
    [LABELS.app]: app,
    [LABELS.managedBy]: 'pgcharm',
    [LABELS.kind]: pod ? 'relation-unit-bag' : 'relation-app-bag',
    [RELATION_ID_LABEL]: String(r.id),
    [relationLabel(r.provider.app)]: r.provider.endpoint,
    [relationLabel(r.requirer.app)]: r.requirer.endpoint,
    ...(pod ? { [LABELS.unit]: pod } : {}),
  };
}

/** What a relation ConfigMap seen by a watch is: the relation, an app bag or a unit bag. */
export type RelationObject =
  | { kind: 'relation'; record: RelationRecord }
  | { kind: 'app-bag'; id: number; app: string; data: Record<string, string> }
  | { kind: 'unit-bag'; id: number; app: string; unit: string; data: Record<string, string>; joined: string[] };

export function classify(cm: V1ConfigMap): RelationObject | undefined {
  const labels = cm.metadata?.labels ?? {};
  const kind = labels[LABELS.kind];
  if (kind === 'relation') {
    const record = decodeRelation(cm);
    return record ? { kind: 'relation', record } : undefined;
  }
  const id = Number(labels[RELATION_ID_LABEL]);
  const app = labels[LABELS.app];
  if (!Number.isInteger(id) || !app) return undefined;
  if (kind === 'relation-app-bag') return { kind: 'app-bag', id, app, data: { ...(cm.data ?? {}) } };
  if (kind === 'relation-unit-bag') {
    const pod = labels[LABELS.unit] ?? '';
    const m = /-(\d+)$/.exec(pod);
    if (!m) return undefined;
    // An unreadable list is an empty one: the agent re-joins, which Juju's hooks tolerate.
    return { kind: 'unit-bag', id, app, unit: `${app}/${m[1]}`, data: { ...(cm.data ?? {}) }, joined: parseList(cm.metadata?.annotations?.[JOINED_ANNOTATION]) };
  }
  return undefined;
}
