import { createHash } from 'node:crypto';
import { RelationDataAccessError, type EventContext, type Handler, type Relation } from '../runtime/charm.js';

/**
 * The requirer side of the `postgresql_client` interface (v0), in the spirit of ops'
 * `data_interfaces.DatabaseRequires`: an application charm asks PostgreSQL for a database and
 * learns, through typed events, when its credentials and endpoints arrive or change.
 *
 *   requirer (leader) app bag   database, extra-user-roles, requested-secrets
 *   provider app bag            database, endpoints, read-only-endpoints, version, tls,
 *                               secret-user (a secret id: username, password, uris, tls-ca)
 *   requirer unit bag           `data`: what THIS unit last saw (the diff base), as JSON of
 *                               database, endpoints, read-only-endpoints, secret-user and a
 *                               sha256 of the credentials (never the password itself)
 *
 * Events: `database-created` the first time the credentials (secret readable) and endpoints are
 * both there; afterwards `endpoints-changed`, `read-only-endpoints-changed`, and
 * `authentication-updated` (a new secret id, or new credentials seen in secret-changed or in a
 * later relation-changed); `database-broken` on relation-broken. A relation whose provider has
 * not answered yet, or whose secret is not granted yet, waits: no event, no error. While the
 * data is incomplete after creation nothing is emitted either: the application keeps what it had.
 *
 * The diff base is written in the same hook as the events it caused, so a listener that throws
 * fails the hook and the runtime, which then stores nothing, runs the event again later.
 */

export type DatabaseEvent = 'database-created' | 'endpoints-changed' | 'read-only-endpoints-changed' | 'authentication-updated' | 'database-broken';

export const DATABASE_EVENTS: readonly DatabaseEvent[] = ['database-created', 'endpoints-changed', 'read-only-endpoints-changed', 'authentication-updated', 'database-broken'];

export interface DatabaseInfo {
  relationId: number;
  /** The database the provider made (its `database` field, else the one requested). */
  database: string;
  /** `host:port`, comma-separated when several. */
  endpoints: string;
  /** Standbys' `host:port` list; '' when the provider gives none. */
  readOnlyEndpoints: string;
  username: string;
  password: string;
  uris?: string;
  version?: string;
  /** The provider's `tls` field ("True"/"False" in data_interfaces). */
  tls?: string;
  tlsCa?: string;
}

/** `info` is undefined only for `database-broken`. */
export type DatabaseListener = (ctx: EventContext, info: DatabaseInfo | undefined) => Promise<void> | void;

export interface DatabaseRequiresOptions {
  /** The `requires` endpoint in charm.yaml (interface postgresql_client). */
  endpoint: string;
  /** The database to ask for; a function reads it from the event (e.g. a config option). */
  database: string | ((ctx: EventContext) => string);
  /** Comma-separated extra roles or attributes (e.g. `CREATEDB,pg_monitor`). */
  extraUserRoles?: string | ((ctx: EventContext) => string);
}

/** The unit bag key holding the diff base. */
export const DIFF_KEY = 'data';
export const REQUESTED_SECRETS: readonly string[] = ['username', 'password', 'tls-ca', 'uris'];

/** What one unit last saw of a relation (stored as JSON in its own bag). */
export interface DiffBase {
  database: string;
  endpoints: string;
  'read-only-endpoints': string;
  'secret-user': string;
  /** sha256 of secret id, username and password: tells a rotation without keeping the password. */
  credentials: string;
}

export function credentialsHash(secretId: string, username: string, password: string): string {
  return createHash('sha256').update(`${secretId}\0${username}\0${password}`).digest('hex');
}

function parseBase(text: string | undefined): DiffBase | undefined {
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as Partial<DiffBase> | null;
    if (!v || typeof v !== 'object' || typeof v.endpoints !== 'string' || typeof v.credentials !== 'string') return undefined;
    return {
      database: String(v.database ?? ''),
      endpoints: v.endpoints,
      'read-only-endpoints': String(v['read-only-endpoints'] ?? ''),
      'secret-user': String(v['secret-user'] ?? ''),
      credentials: v.credentials,
    };
  } catch {
    return undefined;
  }
}

/** The events a change from `prev` (undefined: nothing seen yet) to `cur` calls for, in order. */
export function diffEvents(prev: DiffBase | undefined, cur: DiffBase): DatabaseEvent[] {
  if (!prev) return ['database-created'];
  const out: DatabaseEvent[] = [];
  if (prev.endpoints !== cur.endpoints) out.push('endpoints-changed');
  if (prev['read-only-endpoints'] !== cur['read-only-endpoints']) out.push('read-only-endpoints-changed');
  if (prev['secret-user'] !== cur['secret-user'] || prev.credentials !== cur.credentials) out.push('authentication-updated');
  return out;
}

export class DatabaseRequires {
  readonly endpoint: string;
  private readonly database: string | ((ctx: EventContext) => string);
  private readonly extraUserRoles: string | ((ctx: EventContext) => string) | undefined;
  private readonly listeners = new Map<DatabaseEvent, DatabaseListener[]>();

  constructor(opts: DatabaseRequiresOptions) {
    this.endpoint = opts.endpoint;
    this.database = opts.database;
    this.extraUserRoles = opts.extraUserRoles;
  }

  on(event: DatabaseEvent, fn: DatabaseListener): this {
    const list = this.listeners.get(event) ?? [];
    list.push(fn);
    this.listeners.set(event, list);
    return this;
  }

  /**
   * Handlers to spread into Charm.handlers: `<endpoint>-relation-created`, `-changed`, `-broken`
   * and `secret-changed` (a charm with its own secret-changed handler calls `secretChanged`).
   */
  handlers(): Record<string, Handler> {
    return {
      [`${this.endpoint}-relation-created`]: (ctx) => this.relationCreated(ctx),
      [`${this.endpoint}-relation-changed`]: (ctx) => this.relationChanged(ctx),
      [`${this.endpoint}-relation-broken`]: (ctx) => this.relationBroken(ctx),
      'secret-changed': (ctx) => this.secretChanged(ctx),
    };
  }

  async relationCreated(ctx: EventContext): Promise<void> {
    if (ctx.relation) this.writeRequest(ctx, ctx.relation);
  }

  async relationChanged(ctx: EventContext): Promise<void> {
    const r = ctx.relation;
    if (!r) return;
    // Also here: a leader elected after relation-created, or a changed database option, still asks.
    this.writeRequest(ctx, r);
    await this.update(ctx, r);
  }

  async relationBroken(ctx: EventContext): Promise<void> {
    await this.emit('database-broken', ctx, undefined);
  }

  /** For the secret-user secret of one of this endpoint's relations: a rotation is authentication-updated. */
  async secretChanged(ctx: EventContext): Promise<void> {
    const id = ctx.secret?.id;
    if (!id) return;
    for (const r of ctx.relations(this.endpoint)) {
      if (r.remoteApp.get('secret-user') === id) await this.update(ctx, r);
    }
  }

  /**
   * The leader (re)writes the request in every relation of the endpoint, where it differs (e.g.
   * from config-changed when the database name comes from config), and every unit catches up
   * with data it did not act on yet (e.g. from update-status). Emits like relation-changed.
   */
  async check(ctx: EventContext): Promise<void> {
    for (const r of ctx.relations(this.endpoint)) {
      this.writeRequest(ctx, r);
      await this.update(ctx, r);
    }
  }

  /** Current info for the first (or given) relation of the endpoint, reading the secret; undefined while incomplete. */
  async fetch(ctx: EventContext, relationId?: number): Promise<DatabaseInfo | undefined> {
    const rs = ctx.relations(this.endpoint);
    const r = relationId === undefined ? rs[0] : rs.find((x) => x.id === relationId);
    if (!r) return undefined;
    return (await this.read(ctx, r))?.info;
  }

  private requested(ctx: EventContext): string {
    return typeof this.database === 'function' ? this.database(ctx) : this.database;
  }

  private writeRequest(ctx: EventContext, r: Relation): void {
    if (!ctx.isLeader() || r.dying) return;
    const want: Record<string, string | null> = {
      database: this.requested(ctx),
      'extra-user-roles': (typeof this.extraUserRoles === 'function' ? this.extraUserRoles(ctx) : this.extraUserRoles) || null,
      'requested-secrets': JSON.stringify(REQUESTED_SECRETS),
    };
    for (const [k, v] of Object.entries(want)) {
      if ((r.localApp.get(k) ?? null) !== v) r.localApp.set(k, v);
    }
  }

  /** The provider's answer, complete (endpoints and readable credentials), or undefined. */
  private async read(ctx: EventContext, r: Relation): Promise<{ info: DatabaseInfo; base: DiffBase } | undefined> {
    const bag = r.remoteApp;
    const secretId = bag.get('secret-user');
    const endpoints = bag.get('endpoints');
    if (!secretId || !endpoints) return undefined;
    let content: Record<string, string>;
    try {
      content = await ctx.secrets.get(secretId);
    } catch (e) {
      // Not granted (yet) or gone: wait for the provider. Anything else (the store) fails the hook, to be run again.
      if (e instanceof RelationDataAccessError) return undefined;
      throw e;
    }
    const username = content['username'];
    const password = content['password'];
    if (!username || !password) return undefined;
    const database = bag.get('database') || this.requested(ctx);
    const readOnlyEndpoints = bag.get('read-only-endpoints') ?? '';
    const info: DatabaseInfo = { relationId: r.id, database, endpoints, readOnlyEndpoints, username, password };
    const optional = { uris: content['uris'], version: bag.get('version'), tls: bag.get('tls'), tlsCa: content['tls-ca'] };
    for (const [k, v] of Object.entries(optional)) if (v !== undefined && v !== '') (info as unknown as Record<string, string>)[k] = v;
    const base: DiffBase = { database, endpoints, 'read-only-endpoints': readOnlyEndpoints, 'secret-user': secretId, credentials: credentialsHash(secretId, username, password) };
    return { info, base };
  }

  private async update(ctx: EventContext, r: Relation): Promise<void> {
    if (r.dying) return;
    const cur = await this.read(ctx, r);
    if (!cur) return;
    const before = r.local.get(DIFF_KEY);
    const events = diffEvents(parseBase(before), cur.base);
    const text = JSON.stringify(cur.base);
    if (text !== before) r.local.set(DIFF_KEY, text);
    for (const ev of events) await this.emit(ev, ctx, cur.info);
  }

  private async emit(event: DatabaseEvent, ctx: EventContext, info: DatabaseInfo | undefined): Promise<void> {
    for (const fn of this.listeners.get(event) ?? []) await fn(ctx, info);
  }
}
