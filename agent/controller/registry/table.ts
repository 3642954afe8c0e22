import type { KubeObject, TableDef } from './types.js';

/**
 * meta.k8s.io/v1 Table, the server-side printing kubectl asks for with
 * `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`. Each row carries the object's
 * metadata (PartialObjectMetadata) unless the client asked for the whole object or none.
 */

export type IncludeObject = 'None' | 'Object' | 'PartialObjectMetadata';

export interface TableOptions {
  includeObject: IncludeObject;
  /** Watch events after the first leave the columns out, as Kubernetes does. */
  noHeaders?: boolean;
  now?: number;
}

function rowObject(o: KubeObject, include: IncludeObject): KubeObject | undefined {
  if (include === 'None') return undefined;
  if (include === 'Object') return o;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

export function toTable(def: TableDef, objects: KubeObject[], listMeta: Record<string, unknown>, opts: TableOptions): Record<string, unknown> {
  const now = opts.now ?? Date.now();
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    ...(opts.noHeaders ? {} : { columnDefinitions: def.columns }),
    rows: objects.map((o) => {
      const object = rowObject(o, opts.includeObject);
      return { cells: def.cells(o, now), ...(object ? { object } : {}) };
    }),
  };
}

/** PartialObjectMetadata(List), for clients that only want metadata. */
export function partialMetadata(o: KubeObject): KubeObject {
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}
