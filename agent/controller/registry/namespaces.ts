import { createHash } from 'node:crypto';
import { isDns1123Label } from '../machinery/names.js';
import { age } from '../machinery/time.js';
import { AGE, column, NAME } from './columns.js';
import type { KubeObject, TableDef } from './types.js';

/**
 * Namespaces are implicit here: objects may live in any namespace whose name is a DNS
 * label, so every such namespace exists (is Active) for a GET, and a list shows the
 * well-known ones plus every namespace that holds an object. They cannot be created or
 * deleted; their uid is derived from the name so it stays the same across restarts.
 */

export const WELL_KNOWN_NAMESPACES = ['default', 'kube-node-lease', 'kube-public', 'kube-system'];

export const validNamespace = (ns: string) => isDns1123Label(ns).length === 0;

function uidOf(ns: string): string {
  const h = createHash('sha256').update(`pgcharm-namespace/${ns}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A Namespace object; `created` is when the store was first created. */
export function namespaceObject(ns: string, created: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: ns, uid: uidOf(ns), resourceVersion: '1', creationTimestamp: created, labels: { 'kubernetes.io/metadata.name': ns } },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  };
}

export const namespaceTable: TableDef = {
  columns: [NAME, column('Status', 'The status of the namespace'), AGE],
  cells: (o, now) => [o.metadata.name, 'Active', age(o.metadata.creationTimestamp, now)],
};
