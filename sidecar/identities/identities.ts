/**
 * Pebble's named identities (internals/overlord/identities): who may use the API, with which
 * access level, recognised by the caller's UID on the unix socket (`local`) or by HTTP basic
 * authentication against a sha512-crypt hash (`basic`). Pure values and functions: decoding and
 * validating what a client sent, with Pebble's wording, and the four ways of changing the set
 * (add, update, replace, remove), each returning a new set or throwing without side effects.
 * The store (store.ts) persists the result; the API (api/identities.ts) speaks HTTP.
 */

export const ACCESS_LEVELS = ['admin', 'read', 'metrics', 'untrusted'] as const;
export type IdentityAccess = (typeof ACCESS_LEVELS)[number];

/** One identity as Pebble stores it (and as the API takes it): at least one of local and basic. */
export interface Identity {
  access: IdentityAccess;
  local?: { 'user-id': number };
  /** `password` is a sha512-crypt hash ("$6$..."), never the password itself. */
  basic?: { password: string };
}

/** Named identities; a Map, so a name such as "constructor" is only ever an identity. */
export type IdentitySet = ReadonlyMap<string, Identity>;

/** A request that is the caller's mistake (Pebble answers 400 with this message). */
export class IdentityError extends Error {}

export const IDENTITY_ACTIONS = ['add', 'update', 'replace', 'remove'] as const;
export type IdentityAction = (typeof IDENTITY_ACTIONS)[number];

const NAME = /^[a-zA-Z][a-zA-Z0-9_-]*$/;
const MAX_UID = 0xffffffff;
const quote = (s: string) => JSON.stringify(s);
const accessList = (sep: string) => ACCESS_LEVELS.map(quote).join(', ').replace(/, ([^,]*)$/, `${sep}$1`);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** An identity as decoded from JSON, before validation: Go's apiIdentity (a null field is an absent one). */
interface Decoded {
  access: string;
  local?: { 'user-id'?: number };
  basic?: { password: string };
  cert?: { pem: string };
}

/**
 * Decodes one identity of a request body the way Go's encoding/json fills Pebble's apiIdentity:
 * null is "not given", unknown fields are ignored, a value of the wrong JSON type is an error.
 */
function decode(name: string, v: unknown): Decoded | null {
  if (v === null) return null;
  const where = (field?: string) => `identities.${name}${field ? `.${field}` : ''}`;
  const wrong = (field: string | undefined, want: string) => new IdentityError(`cannot decode request body: ${where(field)}: expected ${want}`);
  if (!isObject(v)) throw wrong(undefined, 'an object or null');
  const str = (x: unknown, field: string): string => {
    if (x === undefined || x === null) return '';
    if (typeof x !== 'string') throw wrong(field, 'a string');
    return x;
  };
  const obj = (x: unknown, field: string): Record<string, unknown> | undefined => {
    if (x === undefined || x === null) return undefined;
    if (!isObject(x)) throw wrong(field, 'an object or null');
    return x;
  };
  const out: Decoded = { access: str(v['access'], 'access') };
  const local = obj(v['local'], 'local');
  if (local) {
    const uid = local['user-id'];
    if (uid !== undefined && uid !== null && !(typeof uid === 'number' && Number.isInteger(uid) && uid >= 0 && uid <= MAX_UID)) {
      throw wrong('local.user-id', 'an integer from 0 to 4294967295');
    }
    out.local = typeof uid === 'number' ? { 'user-id': uid } : {};
  }
  const basic = obj(v['basic'], 'basic');
  if (basic) out.basic = { password: str(basic['password'], 'basic.password') };
  const cert = obj(v['cert'], 'cert');
  if (cert) out.cert = { pem: str(cert['pem'], 'cert.pem') };
  return out;
}

/** Pebble's Identity.Validate: the name, the access level, and at least one usable type. */
export function validateIdentity(name: string, d: { access: string; local?: unknown; basic?: { password: string } }): void {
  if (!NAME.test(name)) {
    throw new IdentityError(`identity name ${quote(name)} invalid: must start with an alphabetic character and only contain alphanumeric characters, underscore, and hyphen`);
  }
  if (d.access === '') throw new IdentityError(`access value must be specified (${accessList(', or ')})`);
  if (!(ACCESS_LEVELS as readonly string[]).includes(d.access)) {
    throw new IdentityError(`invalid access value ${quote(d.access)}, must be ${accessList(', or ')}`);
  }
  if (d.basic && d.basic.password === '') throw new IdentityError('basic identity must specify password (hashed)');
  if (!d.local && !d.basic) throw new IdentityError('identity must have at least one type ("local", "basic", or "cert")');
}

/** Pebble's identityFromAPI: a decoded identity made whole and valid, or null (for replace and remove). */
function fromApi(name: string, d: Decoded | null): Identity | null {
  if (d === null) return null;
  if (d.local && d.local['user-id'] === undefined) throw new IdentityError('local identity must specify user-id');
  // The sidecar has no HTTPS listener, so a client certificate could never be presented.
  if (d.cert) throw new IdentityError('cert identities are not supported: the sidecar has no HTTPS listener');
  validateIdentity(name, d);
  const out: Identity = { access: d.access as IdentityAccess };
  if (d.local) out.local = { 'user-id': d.local['user-id']! };
  if (d.basic) out.basic = { password: d.basic.password };
  return out;
}

/**
 * The body of POST /v1/identities, decoded and validated as Pebble's v1PostIdentities does it,
 * in its order: the body's shape, then each identity, then the action and its null rules.
 */
export function parseIdentitiesRequest(body: Record<string, unknown>): { action: IdentityAction; identities: Map<string, Identity | null> } {
  const action = body['action'] ?? '';
  if (typeof action !== 'string') throw new IdentityError('cannot decode request body: action: expected a string');
  const raw = body['identities'] ?? {};
  if (!isObject(raw)) throw new IdentityError('cannot decode request body: identities: expected an object');
  const decoded = new Map(Object.entries(raw).map(([name, v]) => [name, decode(name, v)] as const));
  const identities = new Map<string, Identity | null>();
  for (const [name, d] of decoded) {
    try {
      identities.set(name, fromApi(name, d));
    } catch (e) {
      throw new IdentityError(`invalid identity for ${quote(name)}: ${(e as Error).message}`);
    }
  }
  if (!(IDENTITY_ACTIONS as readonly string[]).includes(action)) {
    throw new IdentityError(`invalid action ${quote(action)}, must be "add", "update", "replace", or "remove"`);
  }
  for (const [name, identity] of identities) {
    if ((action === 'add' || action === 'update') && identity === null) {
      throw new IdentityError(`identity value for ${quote(name)} must not be null for ${action} operation`);
    }
    if (action === 'remove' && identity !== null) {
      throw new IdentityError(`identity value for ${quote(name)} must be null for remove operation`);
    }
  }
  return { action: action as IdentityAction, identities };
}

function uniqueUserIds(set: IdentitySet): void {
  const byUid = new Map<number, string[]>();
  for (const [name, identity] of set) {
    if (identity.local) byUid.set(identity.local['user-id'], [...(byUid.get(identity.local['user-id']) ?? []), name]);
  }
  for (const [uid, names] of byUid) {
    if (names.length > 1) throw new IdentityError(`cannot have multiple identities with user ID ${uid} (${names.sort().join(', ')})`);
  }
}

/**
 * Pebble's identities manager operations on a set: add (none may exist yet), update (all must
 * exist), replace (add or update; null removes), remove (all must exist). Returns the new set;
 * the one given is never changed.
 */
export function applyIdentities(current: IdentitySet, action: IdentityAction, changes: ReadonlyMap<string, Identity | null>): Map<string, Identity> {
  const next = new Map(current);
  const names = [...changes.keys()];
  if (action === 'add') {
    const existing = names.filter((n) => current.has(n)).sort();
    if (existing.length) throw new IdentityError(`identities already exist: ${existing.join(', ')}`);
  }
  if (action === 'update' || action === 'remove') {
    const missing = names.filter((n) => !current.has(n)).sort();
    if (missing.length) throw new IdentityError(`identities do not exist: ${missing.join(', ')}`);
  }
  for (const [name, identity] of changes) {
    if (action === 'remove' || identity === null) next.delete(name);
    else next.set(name, identity);
  }
  uniqueUserIds(next);
  return next;
}

/** Pebble's identityToAPI: the set as GET /v1/identities shows it, names sorted, secrets masked. */
export function identitiesToApi(set: IdentitySet): Record<string, Identity> {
  const out: Record<string, Identity> = {};
  for (const name of [...set.keys()].sort()) {
    const identity = set.get(name)!;
    out[name] = {
      access: identity.access,
      ...(identity.local ? { local: { 'user-id': identity.local['user-id'] } } : {}),
      ...(identity.basic ? { basic: { password: '*****' } } : {}),
    };
  }
  return out;
}

/**
 * A set as persisted (the stored JSON: `{identities: {name: identity}}`), checked like a request
 * so that a hand-edited file cannot hold what the API would refuse.
 */
export function identitiesFromStored(stored: unknown): Map<string, Identity> {
  if (!isObject(stored)) throw new IdentityError('expected an object with "identities"');
  const { identities } = parseIdentitiesRequest({ action: 'add', identities: stored['identities'] ?? {} });
  const set = new Map<string, Identity>();
  for (const [name, identity] of identities) set.set(name, identity!);
  uniqueUserIds(set);
  return set;
}

export function identitiesToStored(set: IdentitySet): { identities: Record<string, Identity> } {
  const identities: Record<string, Identity> = {};
  for (const name of [...set.keys()].sort()) identities[name] = set.get(name)!;
  return { identities };
}

/** What a request presented: the caller's UID (unix socket) and basic-auth credentials, if any. */
export interface Credentials {
  uid?: number;
  username?: string;
  password?: string;
}

/**
 * Pebble's IdentityFromInputs: basic-auth credentials, when given, decide alone (the identity of
 * that name whose hash the password matches, else none); otherwise the local identity of the
 * caller's UID. `verify` checks a password against a stored hash.
 */
export async function identityFromCredentials(
  set: IdentitySet,
  c: Credentials,
  verify: (name: string, password: string, hash: string) => Promise<boolean>,
): Promise<{ name: string; identity: Identity } | undefined> {
  if (c.username || c.password) {
    const identity = c.username ? set.get(c.username) : undefined;
    if (!identity?.basic) return undefined;
    return (await verify(c.username!, c.password ?? '', identity.basic.password)) ? { name: c.username!, identity } : undefined;
  }
  if (c.uid === undefined) return undefined;
  for (const [name, identity] of set) {
    if (identity.local?.['user-id'] === c.uid) return { name, identity };
  }
  return undefined;
}
