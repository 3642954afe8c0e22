import { randomBytes } from 'node:crypto';
import type { V1Secret } from '#client-node';
import { isConflict, isNotFound, type Kube } from '../../runtime/kube.js';
import { objects } from '../../runtime/names.js';

/**
 * The token units present to each other's API (agent/runtime/unit-api.ts): key `api-token` of
 * Secret `<app>-passwords`, generated with the Secret (secrets.ts); a Secret from before it
 * existed gets one from the leader.
 */
export const API_TOKEN_KEY = 'api-token';

/** 256 random bits, URL-safe. */
export function generateApiToken(): string {
  return randomBytes(32).toString('base64url');
}

function decode(s: V1Secret): string | undefined {
  const v = s.data?.[API_TOKEN_KEY];
  return v ? Buffer.from(v, 'base64').toString('utf8') : undefined;
}

export async function readApiToken(kube: Kube, app: string): Promise<string | undefined> {
  try {
    return decode(await kube.core.readNamespacedSecret({ name: objects.passwords(app), namespace: kube.namespace }));
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** Leader only: the token, added to the passwords Secret first if it has none (undefined without a Secret). */
export async function ensureApiToken(kube: Kube, app: string): Promise<string | undefined> {
  const name = objects.passwords(app);
  for (let attempt = 0; ; attempt++) {
    let s: V1Secret;
    try {
      s = await kube.core.readNamespacedSecret({ name, namespace: kube.namespace });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
    const have = decode(s);
    if (have) return have;
    const token = generateApiToken();
    s.data = { ...(s.data ?? {}), [API_TOKEN_KEY]: Buffer.from(token).toString('base64') };
    try {
      await kube.core.replaceNamespacedSecret({ name, namespace: kube.namespace, body: s });
      return token;
    } catch (e) {
      if (!isConflict(e) || attempt > 20) throw e;
    }
  }
}
