import type { V1Secret } from '#client-node';
import { isConflict, isNotFound, type Kube } from '../../runtime/kube.js';
import { LABELS, objects } from '../../runtime/names.js';
import { API_TOKEN_KEY, generateApiToken } from './api-token.js';
import { generatePassword } from './scram.js';

/** System users whose passwords live in Secret `<app>-passwords`. */
export const SYSTEM_USERS = ['operator', 'replication', 'rewind', 'monitoring'] as const;
export type SystemUser = (typeof SYSTEM_USERS)[number];
export type Passwords = Record<SystemUser, string>;

export const isSystemUser = (u: string): u is SystemUser => (SYSTEM_USERS as readonly string[]).includes(u);

function decode(s: V1Secret): Passwords | undefined {
  const out: Partial<Passwords> = {};
  for (const u of SYSTEM_USERS) {
    const v = s.data?.[u];
    if (!v) return undefined;
    out[u] = Buffer.from(v, 'base64').toString('utf8');
  }
  return out as Passwords;
}

export async function readPasswords(kube: Kube, app: string): Promise<Passwords | undefined> {
  try {
    return decode(await kube.core.readNamespacedSecret({ name: objects.passwords(app), namespace: kube.namespace }));
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** Leader only: creates the Secret with generated passwords (operator from override-root-password when set). */
export async function ensurePasswords(kube: Kube, app: string, operatorOverride: string): Promise<Passwords> {
  const existing = await readPasswords(kube, app);
  if (existing) return existing;
  const pw: Passwords = { operator: operatorOverride || generatePassword(), replication: generatePassword(), rewind: generatePassword(), monitoring: generatePassword() };
  try {
    await kube.core.createNamespacedSecret({
      namespace: kube.namespace,
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'Opaque',
        metadata: { name: objects.passwords(app), labels: { [LABELS.app]: app, [LABELS.managedBy]: 'pgcharm' } },
        // The unit API token (api-token.ts) is born with the Secret.
        data: Object.fromEntries([...Object.entries(pw), [API_TOKEN_KEY, generateApiToken()]].map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      },
    });
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
