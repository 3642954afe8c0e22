import type { V1Secret } from '#client-node';
import { isConflict, isNotFound, type Kube } from '../../runtime/kube.js';
import { LABELS, objects } from '../../runtime/names.js';
import { API_TOKEN_KEY, generateApiToken } from './api-token.js';
import { generatePassword } from './scram.js';

/** System users whose passwords live in Secret `<app>-passwords`. */
export const SYSTEM_USERS = ['operator', 'replication', 'rewind', 'monitoring'] as const;
export type SystemUser = (typeof SYSTEM_USERS)[number];
export type Passwords = Record<SystemUser, string>;

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

export async function setPassword(kube: Kube, app: string, user: SystemUser, password: string): Promise<void> {
  const name = objects.passwords(app);
  for (let attempt = 0; ; attempt++) {
    const s = await kube.core.readNamespacedSecret({ name, namespace: kube.namespace });
    s.data = { ...(s.data ?? {}), [user]: Buffer.from(password).toString('base64') };
    try {
      await kube.core.replaceNamespacedSecret({ name, namespace: kube.namespace, body: s });
      return;
    } catch (e) {
      if (!isConflict(e) || attempt > 20) throw e;
    }
  }
}
