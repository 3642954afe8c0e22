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

export interface EventContext {
  /** Juju's event name, e.g. `config-changed`, `database-peers-relation-joined`, `get-primary-action`. */
  name: string;
  unit: string;
  app: string;
  isLeader(): boolean;
  /** The effective charm config this event sees. */
  config: Readonly<Record<string, ConfigValue>>;
  peers: PeerRelation;
  /** For relation events: the remote unit concerned (undefined for application bag changes). */
  remoteUnit?: string;
  /** For relation-changed: true when the application bag changed. */
  appChanged?: boolean;
  action?: ActionContext;
  pebble: PebbleClient;
  setUnitStatus(status: Status): Promise<void>;
  /** Leader only. */
  setAppStatus(status: Status): Promise<void>;
  /** Runs the event again before the next one (or at the next update-status), like ops' defer(). */
  defer(): void;
  log: Logger;
}

export type Handler = (ctx: EventContext) => Promise<void> | void;

export interface Charm {
  handlers: Partial<Record<string, Handler>>;
}

/** A charm module's default export. */
export type CharmFactory = () => Charm;

export class RelationDataAccessError extends Error {
  override name = 'RelationDataAccessError';
}

export const statusNames: readonly StatusName[] = ['maintenance', 'waiting', 'active', 'blocked', 'error', 'unknown'];
