import { configHash, parseCharmYaml, type CharmMeta, type ConfigPlan, type ConfigState, type ConfigValues } from '../charm-meta/index.js';
import { objects } from '../runtime/names.js';
import type { Store } from '../runtime/store.js';

/**
 * ConfigMap `<app>-config`: the effective config every unit applies (`config`, `hash`), the
 * user's own settings (`settings`, so later charm.yaml defaults still reach keys the user did
 * not set), and the charm.yaml text it was validated against (the baseline for the next edit).
 * A refused charm.yaml edit is recorded in the `pgcharm.io/rejected` annotation for `status`.
 */
export const REJECTED = 'pgcharm.io/rejected';

export interface StoredConfig extends ConfigState {
  deployed: ConfigValues;
  hash: string;
  charmText: string;
  meta: CharmMeta;
  rejected?: string;
}

export async function readConfig(store: Store): Promise<StoredConfig | undefined> {
  const cm = await store.get(objects.config(store.app));
  const d = cm?.data;
  if (!d?.['config'] || !d['charm']) return undefined;
  const rejected = cm?.metadata?.annotations?.[REJECTED];
  return {
    settings: JSON.parse(d['settings'] ?? '{}') as ConfigValues,
    deployed: JSON.parse(d['config']) as ConfigValues,
    hash: d['hash'] ?? '',
    charmText: d['charm'],
    meta: parseCharmYaml(d['charm'], 'stored charm.yaml'),
    ...(rejected ? { rejected } : {}),
  };
}

function encode(plan: Pick<ConfigPlan, 'settings' | 'effective'>, charmText: string): Record<string, string> {
  return {
    config: JSON.stringify(plan.effective),
    settings: JSON.stringify(plan.settings),
    hash: configHash(plan.effective),
    charm: charmText,
  };
}

/** First write at deploy time (no-op when the model already has a config). */
export async function initConfig(store: Store, plan: Pick<ConfigPlan, 'settings' | 'effective'>, charmText: string): Promise<void> {
  await store.ensure(objects.config(store.app), store.labels('config'), encode(plan, charmText));
}

/**
 * Stores a validated plan, unless the stored config moved since `expectedHash` was read
 * (then the caller must re-validate against the new state): returns false in that case.
 */
export async function writeConfig(store: Store, plan: Pick<ConfigPlan, 'settings' | 'effective'>, charmText: string, expectedHash: string): Promise<boolean> {
  let stale = false;
  await store.update(objects.config(store.app), (cm) => {
    if ((cm.data?.['hash'] ?? '') !== expectedHash) {
      stale = true;
      return false;
    }
    cm.data = encode(plan, charmText);
    const ann = { ...(cm.metadata?.annotations ?? {}) };
    delete ann[REJECTED];
    cm.metadata = { ...cm.metadata, annotations: ann };
  });
  return !stale;
}

export async function markRejected(store: Store, message: string | null): Promise<void> {
  await store.patch(objects.config(store.app), { annotations: { [REJECTED]: message } });
}
