import type { Logger } from 'pino';
import type { PebbleClient } from '../../sidecar/client/index.js';

/** The charm API: what charm code sees. Modelled on ops: typed events against a model. */

export type ConfigValue = string | number | boolean;
export type StatusName = 'maintenance' | 'waiting' | 'active' | 'blocked' | 'error' | 'unknown';

export interface Status {
  name: StatusName;
  message: string;
}

/** A relation data bag. Writes are buffered and stored when the handler returns (Juju commits at hook end). */
export interface RelationBag {
  get(key: string): string | undefined;
  /** Every key and value, including this handler's uncommitted writes. */
  entries(): Record<string, string>;
  /** Throws RelationDataAccessError when this unit may not write the bag; null removes the key. */
  set(key: string, value: string | null): void;
}

export interface PeerRelation {
  name: string;
  /** The other units in the relation, sorted. */
  units: string[];
  app: RelationBag;
  /** This unit's bag. */
  local: RelationBag;
  /** Another unit's bag (read-only). */
  unit(name: string): RelationBag;
}

/**
 * A relation with another application (Juju `integrate`), as one handler sees it. Bags follow
 * Juju's rules: this unit writes its own bag, only the leader writes this application's bag,
 * nobody writes the remote side's. Writes are stored when the handler returns.
 */
export interface Relation extends RelationIdentity {
  /** This application's bag (written by its leader). */
  localApp: RelationBag;
  /** The remote application's bag (read-only). */
  remoteApp: RelationBag;
  /** This unit's bag. */
  local: RelationBag;
  /** A remote unit's bag (read-only), or this unit's own. */
  unit(name: string): RelationBag;
  /**
   * The relation itself is being removed (`remove-relation`): true in its -departed and
   * -broken events. False when only this unit leaves it (remove-unit: see ctx.leaving).
   */
  dying: boolean;
}

/**
 * Juju-style secrets: owned by an application, content in a Kubernetes Secret, granted to a
 * relation so the remote application can read it by its id (`secret:<id>`). Every call is a
 * store request, made at once (not at the end of the handler).
 */
export interface Secrets {
  /** Leader only: a new secret owned by this application; returns its id. A label finds it again (find). */
  add(content: Record<string, string>, opts?: { label?: string; description?: string }): Promise<string>;
  /** The content (latest revision): this application's secret, or one granted to a relation it is in. */
  get(id: string): Promise<Record<string, string>>;
  /** The owner's secret with this label, if any. */
  find(label: string): Promise<string | undefined>;
  /** Leader of the owner: new content, a new revision (consumers get secret-changed); returns the revision. */
  set(id: string, content: Record<string, string>): Promise<number>;
  /** Leader of the owner: the remote application of this relation may read the secret. */
  grant(id: string, relation: Relation | number): Promise<void>;
  revoke(id: string, relation: Relation | number): Promise<void>;
  /** Leader of the owner: deletes the secret. */
  remove(id: string): Promise<void>;
}

export interface ActionContext {
  id: number;
  name: string;
  params: Record<string, unknown>;
  /** A line in the action's log, shown by `pgcharm run` as it arrives. */
  log(message: string): void;
  /** Progress for long actions; fraction in [0, 1] when known. */
  progress(message: string, fraction?: number): void;
  setResults(results: Record<string, unknown>): void;
  /** Marks the action failed with this message (the handler may still return normally). */
  fail(message: string): void;
}

/** Where this unit's workload is reachable and where its storage lives. */
export interface Workload {
  /** The pod's IP and the workload container's first port (undefined until the pod reports it). */
  address(): { host: string; port: number } | undefined;
  /** Where this unit's agent serves its API: the pod IP and the pod's port named `api` (undefined without one). */
  api(): { host: string; port: number } | undefined;
  /** The pod's container port with this name (any container), undefined without one. */
  port(name: string): number | undefined;
  /** The local path of a storage mount from charm.yaml (e.g. `pgdata`). */
  storage(name: string): string;
}

export interface EventContext {
  /** Juju's event name, e.g. `config-changed`, `database-peers-relation-joined`, `get-primary-action`. */
  name: string;
  unit: string;
  app: string;
  isLeader(): boolean;
  /** The effective charm config this event sees (secret options with their real values). */
  config: Readonly<Record<string, ConfigValue>>;
  /**
   * The hash of that config as stored, where secret values are keyed hashes: what to record in
   * a bag to say "I run this config" (a hash of `config` itself would expose secret values to
   * a dictionary attack).
   */
  configHash: string;
  peers: PeerRelation;
  /** For relation events: the remote unit concerned (undefined for application bag changes). */
  remoteUnit?: string;
  /**
   * The relations with other applications (not the peer relation), of one endpoint or all;
   * a relation being removed is not among them.
   */
  relations(endpoint?: string): Relation[];
  /** For the events of a relation with another application: that relation (also while it is being removed). */
  relation?: Relation;
  /** For relation events: the remote application. */
  remoteApp?: string;
  /** This unit is being removed (remove-unit): its relation events say it leaves, not that the relations end. */
  leaving: boolean;
  /** For secret-changed: the secret and its new revision. */
  secret?: { id: string; revision: number };
  secrets: Secrets;
  /** For relation-changed: true when the application bag changed. */
  appChanged?: boolean;
  action?: ActionContext;
  pebble: PebbleClient;
  workload: Workload;
  /** The store (Kubernetes API) for objects the runtime does not model, e.g. the charm's Secrets. */
  kube: import('./kube.js').Kube;
  /** The application's Leases as the watch keeps them (`<app>-*`): read without a request. */
  leases: import('./leases.js').LeaseCache;
  setUnitStatus(status: Status): Promise<void>;
  /** Leader only. */
  setAppStatus(status: Status): Promise<void>;
  /** Runs the event again before the next one (or at the next update-status), like ops' defer(). */
  defer(): void;
  /** Queues a charm event to run after this one (e.g. a reconcile after an action changed the role). */
  emit(name: string): void;
  log: Logger;
}

export type Handler = (ctx: EventContext) => Promise<void> | void;

/**
 * What a background loop sees: a live view (not a per-event snapshot) of the same model, and
 * immediate writes (no hook transaction: a loop has no end to commit at).
 */
export interface LoopContext {
  unit: string;
  app: string;
  isLeader(): boolean;
  config(): Readonly<Record<string, ConfigValue>>;
  /** Current bag contents: this unit's, the application's, and each peer's by unit name. */
  bags(): { local: Record<string, string>; app: Record<string, string>; peers: ReadonlyMap<string, Record<string, string>> };
  setLocal(data: Record<string, string | null>): Promise<void>;
  /** Leader only; throws RelationDataAccessError otherwise. */
  setApp(data: Record<string, string | null>): Promise<void>;
  /** The relations with other applications as last seen: id, endpoint, remote app, and both applications' bags. */
  relations(endpoint?: string): RelationView[];
  /** Leader only: merges into this application's bag of relation `id`, at once. */
  setRelationApp(id: number, data: Record<string, string | null>): Promise<void>;
  secrets: Secrets;
  setUnitStatus(status: Status): Promise<void>;
  pebble: PebbleClient;
  workload: Workload;
  /** The store (Kubernetes API) for objects the runtime does not model, e.g. a charm's own Lease. */
  kube: import('./kube.js').Kube;
  /** The application's Leases as the watch keeps them (`<app>-*`): read without a request. */
  leases: import('./leases.js').LeaseCache;
  /** Queues a charm event (e.g. to re-run config-changed after a role change). */
  emit(name: string): void;
  /**
   * Leader only: gives leadership to another unit (the lease is released; this unit takes it
   * back only if nobody else does within two retry periods). Only between hooks: false when it
   * was not leading or a hook is running or waiting (ask again later).
   */
  resignLeadership(why: string): Promise<boolean>;
  log: Logger;
}

/** What names a relation and who is in it, for handlers (Relation) and loops (RelationView) alike. */
export interface RelationIdentity {
  /** Model-wide relation id (never reused). */
  id: number;
  /** This charm's endpoint, as named in its charm.yaml. */
  name: string;
  interface: string;
  /** The remote application and its endpoint. */
  app: string;
  remoteEndpoint: string;
  /** The remote units in the relation (joined), sorted. */
  units: string[];
}

/** A relation as a loop sees it: plain data, live. */
export interface RelationView extends RelationIdentity {
  localApp: Record<string, string>;
  remoteApp: Record<string, string>;
}

/**
 * A loop the runtime runs beside the event queue, every `everyMs` (runs never overlap), and
 * at once when one of the application's Leases changes or expires. For work that must not
 * wait behind a long hook, such as renewing a lease (Patroni's HA loop).
 */
export interface CharmLoop {
  name: string;
  /** Also run at once when a bag of the peer relation changes (this unit's own included). */
  wakeOnBagChange?: boolean;
  everyMs(config: Readonly<Record<string, ConfigValue>>): number;
  run(ctx: LoopContext): Promise<void>;
}

export interface Charm {
  handlers: Partial<Record<string, Handler>>;
  loops?: CharmLoop[];
  /**
   * Routes of the unit's HTTP API (agent/runtime/unit-api.ts), served on the pod's `api` port,
   * and the token unit-to-unit routes require (undefined until the charm knows it).
   */
  api?: { routes: readonly import('./unit-api.js').Route[]; token(): string | undefined };
  /** Called once when the agent stops (after the stop hook), e.g. to stop the loops' side effects. */
  shutdown?(): Promise<void>;
}

/** A charm module's default export. */
export type CharmFactory = () => Charm;

export class RelationDataAccessError extends Error {
  override name = 'RelationDataAccessError';
}

export const statusNames: readonly StatusName[] = ['maintenance', 'waiting', 'active', 'blocked', 'error', 'unknown'];
