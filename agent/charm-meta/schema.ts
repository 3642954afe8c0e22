import type { ConfigValue, ValueRules } from './values.js';

/**
 * The validated, typed form of charm.yaml. Field names follow the YAML (kebab-case keys become
 * camelCase here only where TypeScript would need quotes: `image-option` -> `imageOption`,
 * `minimum-size` -> `minimumSize`). Maps keep the file's order.
 */

/** Names of the charm, options, actions, params, containers, storage and endpoints. */
export const NAME_RE = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
export const NAME_RULE = 'invalid name: must be lowercase letters, digits and single dashes, starting with a letter';

/** Relation interface names (Juju's use underscores: `postgresql_client`). */
export const INTERFACE_RE = /^[a-z][a-z0-9]*([_-][a-z0-9]+)*$/;

export interface ConfigOption extends ValueRules {
  name: string;
  default: ConfigValue;
  description: string;
  /** Create-only: may not change once deployed (see validateSettings). */
  immutable: boolean;
  /**
   * The value is a secret: stored in Secret `<app>-config-secrets`, while the config ConfigMap,
   * the unit bags and printed diffs hold only a keyed hash of it (see secret-config.ts).
   */
  secret: boolean;
}

/** JSON schema types an action param may have; `type` is required on every param. */
export const PARAM_TYPES = ['string', 'integer', 'number', 'boolean', 'array', 'object'] as const;
export type ParamType = (typeof PARAM_TYPES)[number];

/** One param's JSON schema (already compiled once by ajv, so it is a valid schema). */
export type ParamSchema = Readonly<Record<string, unknown>> & { readonly type: ParamType };

export interface ActionSpec {
  name: string;
  description: string;
  params: Readonly<Record<string, ParamSchema>>;
  required: readonly string[];
  /** Juju's default is false: unknown params are refused. */
  additionalProperties: boolean;
  /**
   * The results are delivered once, to the caller waiting for them, and not kept: the unit
   * puts them in a short-lived Secret instead of the action's ConfigMap (agent/runtime/actions.ts).
   */
  sensitive: boolean;
}

export interface Mount {
  storage: string;
  location: string;
}

export interface Container {
  name: string;
  /** One image for every deployment... */
  image?: string;
  /** ...or one per value of the config option named by `imageOption` (e.g. per Postgres major). */
  images?: Readonly<Record<string, string>>;
  imageOption?: string;
  mounts: readonly Mount[];
}

export interface Storage {
  name: string;
  type: 'filesystem' | 'block';
  description?: string;
  /** Like charmcraft: a number with an optional M, G, T or P suffix ("1G"). */
  minimumSize?: string;
}

export interface RelationEndpoint {
  name: string;
  interface: string;
  description?: string;
  limit?: number;
  optional: boolean;
}

export interface CharmMeta {
  name: string;
  summary: string;
  description: string;
  containers: Readonly<Record<string, Container>>;
  storage: Readonly<Record<string, Storage>>;
  peers: Readonly<Record<string, RelationEndpoint>>;
  provides: Readonly<Record<string, RelationEndpoint>>;
  requires: Readonly<Record<string, RelationEndpoint>>;
  /** `config.options` in the file. */
  options: Readonly<Record<string, ConfigOption>>;
  actions: Readonly<Record<string, ActionSpec>>;
}
