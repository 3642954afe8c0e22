import type { V1ConfigMap } from '#client-node';
import {
  configHash,
  parseCharmYaml,
  referencedEntries,
  sealValues,
  secretOptions,
  unsealValues,
  type CharmMeta,
  type ConfigPlan,
  type ConfigState,
  type ConfigValues,
} from '../charm-meta/index.js';
import { addConfigSecrets, configSecretKey, pruneConfigSecrets, readConfigSecrets } from '../runtime/config-secrets.js';
import { isConflict } from '../runtime/kube.js';
import { objects } from '../runtime/names.js';
import type { Store } from '../runtime/store.js';

/**
 * ConfigMap `<app>-config`: the effective config every unit applies (`config`, `hash`), the
 * user's own settings (`settings`, so later charm.yaml defaults still reach keys the user did
 * not set), and the charm.yaml text it was validated against (the baseline for the next edit).
 * A refused charm.yaml edit is recorded in the `pgcharm.io/rejected` annotation for `status`.
 *
 * Options marked `secret: true` hold references there (`secret:<hmac>`, listed in `secrets`);
 * their values are in Secret `<app>-config-secrets` (runtime/config-secrets.ts). readConfig
 * returns the real values; writes split them off again.
 */
export const REJECTED = 'pgcharm.io/rejected';

export interface StoredConfig extends ConfigState {
  deployed: ConfigValues;
  hash: string;
  charmText: string;
  meta: CharmMeta;
  rejected?: string;
  /** Secret options whose value was not found in the Secret (they keep their reference). */
  unresolved: string[];
}

const refsOf = (d: Record<string, string> | undefined): string[] => JSON.parse(d?.['secrets'] ?? '[]') as string[];

export async function readConfig(store: Store): Promise<StoredConfig | undefined> {
  const cm = await store.get(objects.config(store.app));
  const d = cm?.data;
  if (!d?.['config'] || !d['charm']) return undefined;
  const rejected = cm?.metadata?.annotations?.[REJECTED];
  let settings = JSON.parse(d['settings'] ?? '{}') as ConfigValues;
  let deployed = JSON.parse(d['config']) as ConfigValues;
  const refs = refsOf(d);
  const unresolved = new Set<string>();
  if (refs.length) {
    const entries = (await readConfigSecrets(store.kube, store.app))?.entries ?? {};
    for (const side of ['settings', 'deployed'] as const) {
      const r = unsealValues(side === 'settings' ? settings : deployed, refs, entries);
      if (side === 'settings') settings = r.values;
      else deployed = r.values;
      for (const m of r.missing) unresolved.add(m);
    }
  }
  const charmText = d['charm'];
  let meta: CharmMeta | undefined;
  return {
    settings,
    deployed,
    hash: d['hash'] ?? '',
    charmText,
    // Parsed when asked for (~0.1 s of CPU): the controller's charm.yaml watch reads the stored
    // config at start-up, just as the units are being started, and mostly compares the text.
    get meta(): CharmMeta {
      return (meta ??= parseCharmYaml(charmText, 'stored charm.yaml'));
    },
    ...(rejected ? { rejected } : {}),
    unresolved: [...unresolved],
  };
}

/** The ConfigMap data for a plan (secret values replaced by references) and the Secret entries it needs. */
function encode(
  meta: CharmMeta,
  plan: Pick<ConfigPlan, 'settings' | 'effective'>,
  charmText: string,
  key: Buffer | undefined,
  previous: Record<string, string> | undefined,
): { data: Record<string, string>; entries: Record<string, string> } {
  const names = secretOptions(meta);
  let effective: ConfigValues = plan.effective;
  let settings: ConfigValues = plan.settings;
  let entries: Record<string, string> = {};
  let refs: string[] = [];
  if (key) {
    const prev = (k: string) => (previous?.[k] ? (JSON.parse(previous[k]) as ConfigValues) : {});
    const e = sealValues(plan.effective, names, key, prev('config'));
    const s = sealValues(plan.settings, names, key, prev('settings'));
    effective = e.values;
    settings = s.values;
    entries = { ...e.entries, ...s.entries };
    refs = [...new Set([...e.refs, ...s.refs])];
  }
  return {
    data: {
      config: JSON.stringify(effective),
      settings: JSON.stringify(settings),
      hash: configHash(effective),
      charm: charmText,
      ...(refs.length ? { secrets: JSON.stringify(refs) } : {}),
    },
    entries,
  };
}

/** Whether any secret option has a value to keep out of the ConfigMap (else no Secret is needed). */
function hasSecretValues(meta: CharmMeta, plan: Pick<ConfigPlan, 'settings' | 'effective'>): boolean {
  return secretOptions(meta).some((k) => (plan.effective[k] ?? '') !== '' || (plan.settings[k] ?? '') !== '');
}

/** First write at deploy time (no-op when the model already has a config). */
export async function initConfig(store: Store, meta: CharmMeta, plan: Pick<ConfigPlan, 'settings' | 'effective'>, charmText: string): Promise<void> {
  if (await store.get(objects.config(store.app))) return;
  const key = hasSecretValues(meta, plan) ? await configSecretKey(store.kube, store.app) : undefined;
  const { data, entries } = encode(meta, plan, charmText, key, undefined);
  await addConfigSecrets(store.kube, store.app, entries);
  await store.ensure(objects.config(store.app), store.labels('config'), data);
}

/**
 * Stores a validated plan, unless the stored config moved since `expectedHash` was read
 * (then the caller must re-validate against the new state): returns false in that case.
 * Secret values reach their Secret first, so an agent never sees a reference it cannot resolve
 * (unless an entry was lost: see readConfig's `unresolved`).
 */
export async function writeConfig(store: Store, meta: CharmMeta, plan: Pick<ConfigPlan, 'settings' | 'effective'>, charmText: string, expectedHash: string): Promise<boolean> {
  const name = objects.config(store.app);
  const cm = await store.get(name);
  if (!cm) throw new Error(`ConfigMap ${name} does not exist`);
  if ((cm.data?.['hash'] ?? '') !== expectedHash) return false;
  const secretsExist = Boolean(await readConfigSecrets(store.kube, store.app));
  const key = secretsExist || hasSecretValues(meta, plan) ? await configSecretKey(store.kube, store.app) : undefined;
  const { data, entries } = encode(meta, plan, charmText, key, cm.data);
  await addConfigSecrets(store.kube, store.app, entries);
  cm.data = data;
  const ann = { ...(cm.metadata?.annotations ?? {}) };
  delete ann[REJECTED];
  cm.metadata = { ...cm.metadata, annotations: ann };
  try {
    await store.kube.core.replaceNamespacedConfigMap({ name, namespace: store.namespace, body: cm });
  } catch (e) {
    if (isConflict(e)) return false; // written meanwhile: the caller reads and validates again
    throw e;
  }
  if (key) await pruneConfigSecrets(store.kube, store.app, async () => referenced(await store.get(name)), entries);
  return true;
}

/** The Secret entries a stored config ConfigMap refers to. */
function referenced(cm: V1ConfigMap | undefined): string[] {
  const d = cm?.data;
  if (!d) return [];
  const refs = refsOf(d);
  return [...new Set([...referencedEntries(JSON.parse(d['config'] ?? '{}') as ConfigValues, refs), ...referencedEntries(JSON.parse(d['settings'] ?? '{}') as ConfigValues, refs)])];
}

export async function markRejected(store: Store, message: string | null): Promise<void> {
  await store.patch(objects.config(store.app), { annotations: { [REJECTED]: message } });
}
