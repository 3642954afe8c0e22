import type { FieldError } from '../machinery/status.js';

/**
 * Objects are kept and handed out in their wire form (what `kubectl get -o json` shows):
 * timestamps are strings, Secret data is base64. In-process callers get copies.
 */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: Record<string, unknown>[];
  [field: string]: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export interface KubeList {
  apiVersion: string;
  kind: string;
  metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number };
  items: KubeObject[];
}

/** The plural names of the resources served; they double as the store's resource keys. */
export type ResourceName = 'configmaps' | 'secrets' | 'events' | 'pods' | 'leases';

/** Known fields of an object: `true` keeps the whole subtree as given. Anything else is pruned. */
export interface KnownFields {
  [field: string]: true | KnownFields;
}

export interface ColumnDefinition {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  format: string;
  description: string;
  priority: number;
}

export interface TableDef {
  columns: ColumnDefinition[];
  cells(obj: KubeObject, now: number): unknown[];
}

/** What distinguishes one kind from another; the Registry does the rest the same way for all. */
export interface ResourceDef {
  name: ResourceName;
  group: string;
  version: string;
  kind: string;
  singular: string;
  shortNames: string[];
  categories?: string[];
  namespaced: true;
  /** Serves `<name>/status`, and the main resource leaves status alone (Pods). */
  statusSubresource: boolean;
  /** A PUT of a missing object creates it (Events), else 404. */
  allowCreateOnUpdate: boolean;
  /** DELETE answers with the deleted object instead of a Status (Pods). */
  returnDeletedObject: boolean;
  fields: KnownFields;
  /** Field selectors beyond metadata.name and metadata.namespace. */
  fieldLabels: Record<string, (o: KubeObject) => string | undefined>;
  /** Checks everything but metadata, normalizing in place (Secret stringData into data, times in UTC). */
  validate(obj: KubeObject, old: KubeObject | undefined): FieldError[];
  /** On create: fields the server owns (Pod status starts as Pending). */
  prepareForCreate?(obj: KubeObject): void;
  /** On update of the main resource: fields it may not change (Pod status). */
  prepareForUpdate?(obj: KubeObject, old: KubeObject): void;
  table: TableDef;
}

export const apiVersionOf = (d: { group: string; version: string }): string => (d.group ? `${d.group}/${d.version}` : d.version);
