import { readFile } from 'node:fs/promises';
import { loadCharmYaml, parseConfigArgs } from '../charm-meta/index.js';
import { isQuantity, jujuSizeToQuantity, manifestsYaml, quantityBytes, renderManifests } from '../manifests/render.js';
import { validAppName } from '../runtime/names.js';
import { checkAppName, UserError } from './context.js';
import { parse } from '#yaml';
import { ALERT_RULES } from './prometheus-config.js';

export interface ManifestsOptions {
  /** Path of charm.yaml. */
  charm: string;
  units: number;
  namespace: string;
  /** Application name (default: charm.yaml's name). */
  app?: string;
  /** Size of each unit's data volume, a Kubernetes quantity (default: charm.yaml's minimum-size). */
  storageSize?: string;
  /** `key=value` config settings, checked like `pgcharm config` (e.g. postgresql-major=16 picks the image). */
  config?: readonly string[];
  image?: { agent: string; workload: string };
  /** Add a ServiceMonitor and/or a PrometheusRule (the Prometheus Operator's kinds). */
  serviceMonitor?: boolean;
  prometheusRule?: boolean;
}

/** A namespace is a DNS-1123 label. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** `pgcharm manifests`: the YAML for `kubectl apply -f -`. Every option is checked first, each failure naming it. */
export async function manifestsCommand(o: ManifestsOptions): Promise<string> {
  if (!Number.isInteger(o.units) || o.units < 1 || o.units > 9) {
    throw new UserError(`--units: must be an integer from 1 to 9, got ${JSON.stringify(o.units)}`);
  }
  if (typeof o.namespace !== 'string' || o.namespace.length > 63 || !DNS_LABEL.test(o.namespace)) {
    throw new UserError(
      `--namespace: ${JSON.stringify(o.namespace)} is not a valid namespace: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (a DNS-1123 label)`,
    );
  }
  if (o.app !== undefined) checkAppName(o.app);
  if (o.storageSize !== undefined && !isQuantity(o.storageSize)) {
    throw new UserError(`--storage-size: ${JSON.stringify(o.storageSize)} is not a Kubernetes quantity; use e.g. 10Gi or 500Mi`);
  }
  const meta = await loadCharmYaml(o.charm);
  const app = o.app ?? meta.name;
  if (!validAppName(app)) throw new UserError(`${o.charm}: the charm name ${JSON.stringify(app)} cannot name Kubernetes objects; pass --app`);
  if (o.storageSize !== undefined) {
    for (const [name, s] of Object.entries(meta.storage)) {
      if (s.minimumSize && quantityBytes(o.storageSize) < quantityBytes(jujuSizeToQuantity(s.minimumSize))) {
        throw new UserError(`--storage-size: ${o.storageSize} is below storage ${name}'s minimum-size ${s.minimumSize} in charm.yaml`);
      }
    }
  }
  // Config problems are ConfigErrors listing every key and reason, as `pgcharm config` reports
  // them (parseConfigArgs types the values, renderManifests checks them against charm.yaml).
  const settings = parseConfigArgs(meta, o.config ?? []).set;
  const charmText = await readFile(o.charm, 'utf8');
  const rules = o.prometheusRule ? (parse(await readFile(ALERT_RULES, 'utf8')) as { groups: unknown[] }) : undefined;
  return manifestsYaml(
    renderManifests(meta, settings, {
      app,
      units: o.units,
      namespace: o.namespace,
      charmText,
      ...(o.storageSize !== undefined ? { storageSize: o.storageSize } : {}),
      ...(o.image ? { image: o.image } : {}),
      ...(o.serviceMonitor ? { serviceMonitor: true } : {}),
      ...(rules ? { prometheusRule: { groups: rules.groups } } : {}),
    }),
  );
}
