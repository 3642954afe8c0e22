import { randomBytes } from 'node:crypto';
import type { V1Secret } from '#client-node';
import { isConflict, isNotFound, type Kube } from './kube.js';
import { LABELS, objects } from './names.js';

/**
 * Secret `<app>-config-secrets`: the values of secret config options, under `<option>.<hmac>`
 * (see charm-meta/secret-config.ts), and `hmac-key`, the random key those references are
 * made with. Writers (the CLI, the controller's charm.yaml sync) add the entries a new config
 * needs before they store the config, and prune the ones no stored config refers to after.
 * Agents only read it.
 */

const KEY = 'hmac-key';

export interface ConfigSecrets {
  key: Buffer | undefined;
  /** `<option>.<hmac>` -> value. */
  entries: Record<string, string>;
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

function decode(s: V1Secret): ConfigSecrets {
  const entries: Record<string, string> = {};
  let key: Buffer | undefined;
  for (const [k, v] of Object.entries(s.data ?? {})) {
    if (k === KEY) key = Buffer.from(v, 'base64');
    else entries[k] = Buffer.from(v, 'base64').toString('utf8');
  }
  return { key, entries };
}

async function read(kube: Kube, app: string): Promise<V1Secret | undefined> {
  try {
    return await kube.core.readNamespacedSecret({ name: objects.configSecrets(app), namespace: kube.namespace });
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

export async function readConfigSecrets(kube: Kube, app: string): Promise<ConfigSecrets | undefined> {
  const s = await read(kube, app);
  return s ? decode(s) : undefined;
}

/** The Secret as a manifest would create it (`pgcharm manifests`), with a fresh key. */
export function configSecretsObject(app: string, namespace: string | undefined, entries: Record<string, string>, key: Buffer = randomBytes(32)): V1Secret & { apiVersion: string; kind: string; metadata: { name: string } } {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name: objects.configSecrets(app),
      ...(namespace !== undefined ? { namespace } : {}),
      labels: { [LABELS.app]: app, [LABELS.managedBy]: 'pgcharm', [LABELS.kind]: 'config-secrets' },
    },
    data: { [KEY]: b64(key), ...Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, b64(v)])) },
  };
}

/** The deployment's HMAC key, creating the Secret with a new one if there is none yet. */
export async function configSecretKey(kube: Kube, app: string): Promise<Buffer> {
  for (let attempt = 0; ; attempt++) {
    const s = await read(kube, app);
    const have = s ? decode(s).key : undefined;
    if (have) return have;
    const key = randomBytes(32);
    try {
      if (!s) await kube.core.createNamespacedSecret({ namespace: kube.namespace, body: configSecretsObject(app, undefined, {}, key) });
      else await kube.core.replaceNamespacedSecret({ name: objects.configSecrets(app), namespace: kube.namespace, body: { ...s, data: { ...(s.data ?? {}), [KEY]: b64(key) } } });
      return key;
    } catch (e) {
      if (!isConflict(e) || attempt >= 20) throw e;
    }
  }
}

/**
 * Compare-and-swap edit of the entries; `edit` returns the new entries, or undefined to leave
 * them. The key is never touched.
 */
async function updateEntries(kube: Kube, app: string, edit: (entries: Record<string, string>) => Promise<Record<string, string> | undefined>): Promise<void> {
  const name = objects.configSecrets(app);
  for (let attempt = 0; ; attempt++) {
    const s = await read(kube, app);
    if (!s) throw new Error(`Secret ${name} does not exist`);
    const { key, entries } = decode(s);
    const next = await edit(entries);
    if (!next) return;
    s.data = { ...(key ? { [KEY]: b64(key) } : {}), ...Object.fromEntries(Object.entries(next).map(([k, v]) => [k, b64(v)])) };
    try {
      await kube.core.replaceNamespacedSecret({ name, namespace: kube.namespace, body: s });
      return;
    } catch (e) {
      if (!isConflict(e) || attempt >= 20) throw e;
    }
  }
}

/** Before a config that refers to them is stored: the entries are there. */
export async function addConfigSecrets(kube: Kube, app: string, add: Record<string, string>): Promise<void> {
  if (Object.keys(add).length === 0) return;
  await updateEntries(kube, app, async (entries) => (Object.entries(add).every(([k, v]) => entries[k] === v) ? undefined : { ...entries, ...add }));
}

/**
 * After a config was stored: keep exactly the entries the stored config refers to, as read by
 * `referenced()` between reading the Secret and writing it back. Always written, even when
 * nothing changes: a concurrent pruner that read the config before ours was stored then fails
 * its compare-and-swap and reads again, instead of removing our entries; and one that removed
 * them before we got here is undone from `own`, our own values.
 */
export async function pruneConfigSecrets(kube: Kube, app: string, referenced: () => Promise<string[]>, own: Record<string, string>): Promise<void> {
  if (!(await read(kube, app))) return;
  await updateEntries(kube, app, async (entries) => {
    const want = await referenced();
    const next: Record<string, string> = {};
    for (const k of want) {
      const v = entries[k] ?? own[k];
      if (v !== undefined) next[k] = v;
    }
    return next;
  });
}
