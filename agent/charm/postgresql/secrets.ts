import type { V1Secret } from '#client-node';
import { isConflict, isNotFound, type Kube } from '../../runtime/kube.js';
import { LABELS, objects } from '../../runtime/names.js';
import { API_TOKEN_KEY, generateApiToken } from './api-token.js';
import { generatePassword } from './scram.js';
import type { KeyPair } from '../../tls/x509.js';

/** System users whose passwords live in Secret `<app>-passwords`. */
export const SYSTEM_USERS = ['operator', 'replication', 'rewind', 'monitoring'] as const;
export type SystemUser = (typeof SYSTEM_USERS)[number];
export type Passwords = Record<SystemUser, string>;

export const isSystemUser = (u: string): u is SystemUser => (SYSTEM_USERS as readonly string[]).includes(u);

/** The passwords Secret's data as plain text; undefined when there is no Secret yet. */
async function readSecretData(kube: Kube, app: string): Promise<Record<string, string> | undefined> {
  let s: V1Secret;
  try {
    s = await kube.core.readNamespacedSecret({ name: objects.passwords(app), namespace: kube.namespace });
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
  return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}

export async function readPasswords(kube: Kube, app: string): Promise<Passwords | undefined> {
  const data = await readSecretData(kube, app);
  if (!data || !SYSTEM_USERS.every((u) => data[u])) return undefined;
  return Object.fromEntries(SYSTEM_USERS.map((u) => [u, data[u]!])) as Passwords;
}

/** The token units present to each other's API (api-token.ts); undefined without one. */
export async function readApiToken(kube: Kube, app: string): Promise<string | undefined> {
  return (await readSecretData(kube, app))?.[API_TOKEN_KEY] || undefined;
}

/** Leader only: the token, added to the passwords Secret first if it has none (undefined without a Secret). */
export async function ensureApiToken(kube: Kube, app: string): Promise<string | undefined> {
  const have = await readApiToken(kube, app);
  if (have) return have;
  if (!(await readSecretData(kube, app))) return undefined;
  let token: string | undefined;
  try {
    await editPasswords(kube, app, (d) => {
      token = d[API_TOKEN_KEY] || undefined;
      if (token) return undefined;
      token = generateApiToken();
      return { ...d, [API_TOKEN_KEY]: token };
    });
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
  return token;
}

/** The deployment's CA in the passwords Secret (PEM): it signs the units' backup-server and client certificates. */
const CA_CERT_KEY = 'ca.crt';
const CA_KEY_KEY = 'ca.key';

/**
 * The deployment's CA, made by `make` for the first unit that needs one (a compare-and-swap on
 * the Secret: two units at once end up with the same CA); undefined without a Secret yet.
 */
export async function ensureCa(kube: Kube, app: string, make: () => Promise<KeyPair>): Promise<KeyPair | undefined> {
  const have = await readSecretData(kube, app);
  if (!have) return undefined;
  if (have[CA_CERT_KEY] && have[CA_KEY_KEY]) return { cert: have[CA_CERT_KEY], key: have[CA_KEY_KEY] };
  const made = await make();
  let ca: KeyPair = made;
  await editPasswords(kube, app, (d) => {
    if (d[CA_CERT_KEY] && d[CA_KEY_KEY]) {
      ca = { cert: d[CA_CERT_KEY], key: d[CA_KEY_KEY] };
      return undefined;
    }
    return { ...d, [CA_CERT_KEY]: made.cert, [CA_KEY_KEY]: made.key };
  });
  return ca;
}

/** Creates an application's Opaque Secret from plain-text values (a 409 if it exists: the caller decides). */
async function createSecret(kube: Kube, app: string, name: string, data: Record<string, string>): Promise<void> {
  await kube.core.createNamespacedSecret({
    namespace: kube.namespace,
    body: {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: { name, labels: { [LABELS.app]: app, [LABELS.managedBy]: 'pgcharm' } },
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    },
  });
}

/** Leader only: creates the Secret with generated passwords (operator from override-root-password when set). */
export async function ensurePasswords(kube: Kube, app: string, operatorOverride: string): Promise<Passwords> {
  const existing = await readPasswords(kube, app);
  if (existing) return existing;
  const pw: Passwords = { operator: operatorOverride || generatePassword(), replication: generatePassword(), rewind: generatePassword(), monitoring: generatePassword() };
  try {
    // The unit API token (api-token.ts) is born with the Secret.
    await createSecret(kube, app, objects.passwords(app), { ...pw, [API_TOKEN_KEY]: generateApiToken() });
  } catch (e) {
    if (!isConflict(e)) throw e;
    return (await readPasswords(kube, app))!;
  }
  return pw;
}

/**
 * A password change in flight (set-password, two-phase): `<user>-pending` holds the new value
 * from before the role is altered until the change is committed (`<user>` takes it) or rolled
 * back (it is dropped). Readers of Passwords see only the committed ones.
 */
export const pendingKey = (user: SystemUser): string => `${user}-pending`;

export async function readPending(kube: Kube, app: string): Promise<Partial<Passwords>> {
  const s = await kube.core.readNamespacedSecret({ name: objects.passwords(app), namespace: kube.namespace });
  const out: Partial<Passwords> = {};
  for (const u of SYSTEM_USERS) {
    const v = s.data?.[pendingKey(u)];
    if (v) out[u] = Buffer.from(v, 'base64').toString('utf8');
  }
  return out;
}

/** Compare-and-swap edit of the Secret's data (plain text in and out); undefined leaves it. */
async function editPasswords(kube: Kube, app: string, edit: (data: Record<string, string>) => Record<string, string> | undefined): Promise<void> {
  const name = objects.passwords(app);
  for (let attempt = 0; ; attempt++) {
    const s = await kube.core.readNamespacedSecret({ name, namespace: kube.namespace });
    const data = Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
    const next = edit(data);
    if (!next) return;
    s.data = Object.fromEntries(Object.entries(next).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
    try {
      await kube.core.replaceNamespacedSecret({ name, namespace: kube.namespace, body: s });
      return;
    } catch (e) {
      if (!isConflict(e) || attempt > 20) throw e;
    }
  }
}

/** Phase 1: the new password is recorded as pending before the role changes. */
export function stagePassword(kube: Kube, app: string, user: SystemUser, password: string): Promise<void> {
  return editPasswords(kube, app, (d) => ({ ...d, [pendingKey(user)]: password }));
}

/** Phase 3 (commit): the pending password becomes the user's, if it is still the one pending. */
export function commitPassword(kube: Kube, app: string, user: SystemUser, password: string): Promise<void> {
  return editPasswords(kube, app, (d) => {
    if (d[pendingKey(user)] !== password) return undefined;
    const next = { ...d, [user]: password };
    delete next[pendingKey(user)];
    return next;
  });
}

/** Rollback: the pending password is dropped; the user keeps the one it had. */
export function dropPending(kube: Kube, app: string, user: SystemUser, password: string): Promise<void> {
  return editPasswords(kube, app, (d) => {
    if (d[pendingKey(user)] !== password) return undefined;
    const next = { ...d };
    delete next[pendingKey(user)];
    return next;
  });
}

export interface S3Credentials {
  'access-key': string;
  'secret-key': string;
}

/** The S3 keys set-s3-credentials stored, undefined before it ran. */
export async function readS3Credentials(kube: Kube, app: string): Promise<S3Credentials | undefined> {
  try {
    const s = await kube.core.readNamespacedSecret({ name: objects.s3Credentials(app), namespace: kube.namespace });
    const d = Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
    return d['access-key'] && d['secret-key'] ? { 'access-key': d['access-key'], 'secret-key': d['secret-key'] } : undefined;
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** Leader only: stores the S3 keys in their Secret (created, or replaced). */
export async function writeS3Credentials(kube: Kube, app: string, c: S3Credentials): Promise<void> {
  const name = objects.s3Credentials(app);
  const data = Object.fromEntries(Object.entries(c).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  try {
    const s = await kube.core.readNamespacedSecret({ name, namespace: kube.namespace });
    s.data = data;
    await kube.core.replaceNamespacedSecret({ name, namespace: kube.namespace, body: s });
  } catch (e) {
    if (!isNotFound(e)) throw e;
    await createSecret(kube, app, name, { ...c });
  }
}

/** The credentials Prometheus scrapes the sidecars' GET /v1/metrics with (Pebble: a `metrics` identity, basic auth). */
export interface MetricsAuth {
  username: string;
  password: string;
}

export async function readMetricsAuth(kube: Kube, app: string): Promise<MetricsAuth | undefined> {
  try {
    const s = await kube.core.readNamespacedSecret({ name: objects.metricsAuth(app), namespace: kube.namespace });
    const d = Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
    return d['username'] && d['password'] ? { username: d['username'], password: d['password'] } : undefined;
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/**
 * The metrics credentials, created by the first unit that needs them (a Secret of their own, so
 * that a Prometheus given them reads nothing else: a ServiceMonitor's basicAuth names it).
 */
export async function ensureMetricsAuth(kube: Kube, app: string): Promise<MetricsAuth> {
  const have = await readMetricsAuth(kube, app);
  if (have) return have;
  const made: MetricsAuth = { username: 'metrics', password: generatePassword() };
  try {
    await createSecret(kube, app, objects.metricsAuth(app), { ...made });
    return made;
  } catch (e) {
    // Another unit made them first: theirs.
    if (!isConflict(e)) throw e;
    return (await readMetricsAuth(kube, app))!;
  }
}
