import { ROLE_LABEL } from '../charm/postgresql/render.js';
import { BACKUP_SERVER_PORT, BACKUP_SERVER_PORT_NAME } from '../charm/postgresql/backup-standby.js';
import { EXPORTER_PORT, EXPORTER_PORT_NAME } from '../charm/postgresql/exporter.js';
import type {
  V1ConfigMap,
  V1Container,
  V1PersistentVolumeClaim,
  V1PodDisruptionBudget,
  V1PolicyRule,
  V1Probe,
  V1Role,
  V1RoleBinding,
  V1Service,
  V1ServiceAccount,
  V1StatefulSet,
  V1Volume,
} from '#client-node';
import { stringify } from '#yaml';
import { randomBytes } from 'node:crypto';
import { configHash, containerImage, sealValues, secretOptions, validateSettings, type CharmMeta, type ConfigValue } from '../charm-meta/index.js';
import { configSecretsObject } from '../runtime/config-secrets.js';
import { LABELS, objects, validAppName } from '../runtime/names.js';

/**
 * `pgcharm manifests`: the Kubernetes objects that run a charm as a StatefulSet, rendered from
 * charm.yaml alone (pure: no cluster, no files). Each pod is one unit: the `charm` container
 * runs the agent, the workload container runs the sidecar (PID 1) and Postgres under it, and
 * they talk over the sidecar's unix socket in an emptyDir both mount.
 */

/** The label the agent keeps on its own pod (`primary` or `replica`); the role Services select on it. */
export { ROLE_LABEL };

/** The agent image's user and group (Dockerfile): not root, and the group the sidecar's socket is shared with. */
export const AGENT_UID = 10001;

/** The charm container's CPU request (what keeps lease renewals on time when Postgres saturates the node). */
export const AGENT_CPU_REQUEST = '100m';

/** Where the sidecar keeps its layers and socket, in both containers (Juju's path for Pebble). */
export const PEBBLE_DIR = '/var/lib/pebble/default';
export const PEBBLE_SOCKET = `${PEBBLE_DIR}/.pebble.socket`;

/**
 * The sidecar's HTTP listener in a pod (`--http`): as Pebble's, it serves /v1/health to anyone,
 * GET /v1/metrics to a `metrics` identity (basic auth, Secret <app>-metrics-auth) and nothing
 * else; exec, files and the rest stay on the socket.
 */
export const PEBBLE_HTTP_PORT = 38813;

/** Where the images install pgcharm (Dockerfile, images/postgresql/<major>/Dockerfile). */
export const IMAGE_ROOT = '/opt/pgcharm';

export const AGENT_CONTAINER = 'charm';
export const DEFAULT_AGENT_IMAGE = 'pgcharm/agent:latest';

/** The service account token goes to the agent only: Postgres (and SQL's COPY ... TO PROGRAM) never sees it. */
const TOKEN_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * Exactly the API calls the agent and the charm make (agent/runtime/store.ts, leadership.ts,
 * agent.ts, actions.ts; agent/charm/postgresql/lease.ts, secrets.ts), and nothing more:
 * - configmaps: relation bags, config, actions (read, list+watch, create, replace, merge patch, delete)
 * - secrets: `<app>-passwords` (read, create, replace on rotation and set-password's two
 *   phases), `<app>-config-secrets` (read: secret config values), `<app>-action-<id>-results`
 *   (create: a sensitive action's results, which the caller reads and deletes); relation
 *   secrets `secret-<id>` (agent/runtime/juju-secrets.ts: create, read, list by label, replace
 *   for a new revision or a grant, delete when the relation is broken; list+watch of those
 *   granted to the application, for secret-changed)
 * - leases: `<app>-leader` and `<app>-primary` (read, create, replace: compare-and-swap)
 * - pods: its own pod, watched by the label statefulset.kubernetes.io/pod-name (list+watch),
 *   patched for the removal annotation and the role label (ROLE_LABEL).
 * - events: created (agent/runtime/cluster-events.ts), never read back by the agents.
 * test/charm/postgresql.test.ts holds this list to the requests the agents make (audited);
 * RELATION_ONLY are made only around relations, which test/charm/database-relation.test.ts audits.
 */
/** `group/resource:verb` the agents use only when an application is related (a relation's secret removed at -broken). */
export const RELATION_ONLY = ['/secrets:delete'] as const;

export const AGENT_RBAC_RULES: readonly Readonly<V1PolicyRule>[] = [
  { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
  { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'] },
  // list and watch: the agents follow the leader and primary Leases by watch, not by polling.
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'update'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch', 'patch'] },
  // Failovers, switchovers, restarts, config changes and backups, for `kubectl get events` and the dashboard.
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
];

export interface RenderOptions {
  /** Application name (default: charm.yaml's name); pods are `<app>-<n>`, units `<app>/<n>`. */
  app?: string;
  units: number;
  namespace: string;
  image?: { agent: string; workload: string };
  /** Size of each data volume claim, a Kubernetes quantity (default: the storage's minimum-size). */
  storageSize?: string;
  /** charm.yaml's text, stored beside the config as the baseline for later `pgcharm config` checks. */
  charmText?: string;
  /** The HMAC key for secret options' references (default: a fresh random one; tests pin it). */
  secretKey?: Buffer;
  /** Add a ServiceMonitor (Prometheus Operator) scraping the agents and exporters. */
  serviceMonitor?: boolean;
  /** Add a PrometheusRule (Prometheus Operator) with these rule groups (agent/monitoring/alerts.yaml's). */
  prometheusRule?: { groups: unknown[] };
}

/** Any rendered object: they all have these, whatever their kind. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

type Named<T> = T & KubeObject;

export interface Manifests {
  serviceAccount: Named<V1ServiceAccount>;
  role: Named<V1Role>;
  roleBinding: Named<V1RoleBinding>;
  config: Named<V1ConfigMap>;
  /** Only when a secret option (override-root-password) is set: its value, which the ConfigMap refers to. */
  configSecrets?: KubeObject;
  endpoints: Named<V1Service>;
  primary: Named<V1Service>;
  replicas: Named<V1Service>;
  /** Headless, every pod's metrics ports: what Prometheus (or the ServiceMonitor) discovers targets from. */
  metrics: Named<V1Service>;
  serviceMonitor?: KubeObject;
  prometheusRule?: KubeObject;
  disruptionBudget: Named<V1PodDisruptionBudget>;
  statefulSet: Named<V1StatefulSet>;
}

/**
 * The objects, in the order `kubectl apply` should see them (the service account before the
 * pods that use it). `settings` are the user's config settings, overlaid on charm.yaml's
 * defaults and checked like `pgcharm config` checks them.
 */
export function renderManifests(meta: CharmMeta, settings: Readonly<Record<string, ConfigValue>>, opts: RenderOptions): KubeObject[] {
  const m = renderManifestSet(meta, settings, opts);
  return [
    m.serviceAccount,
    m.role,
    m.roleBinding,
    ...(m.configSecrets ? [m.configSecrets] : []),
    m.config,
    m.endpoints,
    m.primary,
    m.replicas,
    m.metrics,
    m.disruptionBudget,
    m.statefulSet,
    ...(m.serviceMonitor ? [m.serviceMonitor] : []),
    ...(m.prometheusRule ? [m.prometheusRule] : []),
  ];
}

/** The same objects by role, for callers (and tests) that look at one of them. */
export function renderManifestSet(meta: CharmMeta, settings: Readonly<Record<string, ConfigValue>>, opts: RenderOptions): Manifests {
  const app = opts.app ?? meta.name;
  if (!validAppName(app)) throw new Error(`application name ${JSON.stringify(app)}: must be lowercase letters, digits and dashes, start with a letter, at most 40 characters`);
  if (!Number.isInteger(opts.units) || opts.units < 1) throw new Error(`units: must be a positive integer, got ${opts.units}`);
  const ns = opts.namespace;
  const effective = validateSettings(meta, settings);
  const containers = Object.keys(meta.containers);
  // The runtime drives the first container only (agent/runtime/main.ts); say so rather than drop one.
  if (containers.length !== 1) throw new Error(`charm.yaml: the runtime drives exactly one workload container, this charm has ${containers.length}`);
  const workload = containers[0]!;
  const port = Number(effective['port'] ?? 5432);
  // The agent's unit API (failsafe calls between units): charms without the option serve none.
  const apiPort = effective['api-port'] === undefined ? undefined : Number(effective['api-port']);

  const labels = { [LABELS.app]: app, [LABELS.managedBy]: 'pgcharm' };
  const selector = { [LABELS.app]: app };
  const objectMeta = (name: string, extra: Record<string, string> = {}) => ({ name, namespace: ns, labels: { ...labels, ...extra } });

  const serviceAccount: Named<V1ServiceAccount> = {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: objectMeta(app),
    // Mounted by hand into the charm container only (see the pod spec).
    automountServiceAccountToken: false,
  };
  const role: Named<V1Role> = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: objectMeta(app),
    rules: AGENT_RBAC_RULES.map((r) => ({ apiGroups: [...(r.apiGroups ?? [])], resources: [...(r.resources ?? [])], verbs: [...r.verbs] })),
  };
  const roleBinding: Named<V1RoleBinding> = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: objectMeta(app),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: app },
    subjects: [{ kind: 'ServiceAccount', name: app, namespace: ns }],
  };

  // The format agent/controller/config-store.ts reads and writes: the agents apply `config`
  // and notice changes by `hash`; `settings` and `charm` are what `pgcharm config` checks edits against.
  // Secret options' values go to Secret <app>-config-secrets; the ConfigMap holds references.
  const secretNames = secretOptions(meta);
  const secretKey = secretNames.some((k) => (effective[k] ?? '') !== '') ? (opts.secretKey ?? randomBytes(32)) : undefined;
  const sealedEffective = secretKey ? sealValues(effective, secretNames, secretKey) : { values: effective, entries: {}, refs: [] };
  const sealedSettings = secretKey ? sealValues(settings, secretNames, secretKey) : { values: settings, entries: {}, refs: [] };
  const refs = [...new Set([...sealedEffective.refs, ...sealedSettings.refs])];
  const config: Named<V1ConfigMap> = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: objectMeta(objects.config(app), { [LABELS.kind]: 'config' }),
    data: {
      config: JSON.stringify(sealedEffective.values),
      settings: JSON.stringify(sealedSettings.values),
      hash: configHash(sealedEffective.values),
      ...(opts.charmText !== undefined ? { charm: opts.charmText } : {}),
      ...(refs.length ? { secrets: JSON.stringify(refs) } : {}),
    },
  };
  const configSecrets = secretKey ? (configSecretsObject(app, ns, { ...sealedEffective.entries, ...sealedSettings.entries }, secretKey) as KubeObject) : undefined;

  const servicePort = [{ name: 'postgresql', port: 5432, targetPort: 'postgresql', protocol: 'TCP' }];
  const endpoints: Named<V1Service> = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: objectMeta(`${app}-endpoints`),
    spec: {
      // Headless: stable per-pod DNS names for the StatefulSet, listed before they are ready.
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector,
      ports: servicePort,
    },
  };
  const roleService = (role: 'primary' | 'replica', name: string): Named<V1Service> => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: objectMeta(name),
    spec: { type: 'ClusterIP', selector: { ...selector, [ROLE_LABEL]: role }, ports: servicePort },
  });

  // Scraped per pod: the agent's /metrics (on its unit API) and the postgres exporter.
  const metricsPorts = [
    ...(apiPort ? [{ name: 'api', port: apiPort, targetPort: 'api', protocol: 'TCP' }] : []),
    { name: EXPORTER_PORT_NAME, port: EXPORTER_PORT, targetPort: EXPORTER_PORT_NAME, protocol: 'TCP' },
    { name: 'pebble', port: PEBBLE_HTTP_PORT, targetPort: 'pebble', protocol: 'TCP' },
  ];
  const metrics: Named<V1Service> = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: objectMeta(`${app}-metrics`, { 'pgcharm.io/metrics': 'true' }),
    spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector, ports: metricsPorts },
  };
  // The labels the alert rules group by, as `pgcharm prometheus-config` sets them locally:
  // application, unit (<app>/<n> from the pod <app>-<n>) and job.
  const relabel = (job: string) => [
    { sourceLabels: ['__meta_kubernetes_pod_label_app_kubernetes_io_name'], targetLabel: 'application' },
    { sourceLabels: ['__meta_kubernetes_pod_name'], regex: '(.+)-(\\d+)', replacement: '$1/$2', targetLabel: 'unit' },
    { targetLabel: 'job', replacement: job },
  ];
  const serviceMonitor: KubeObject | undefined = opts.serviceMonitor
    ? {
        apiVersion: 'monitoring.coreos.com/v1',
        kind: 'ServiceMonitor',
        metadata: objectMeta(app),
        spec: {
          selector: { matchLabels: { ...selector, 'pgcharm.io/metrics': 'true' } },
          namespaceSelector: { matchNames: [ns] },
          endpoints: [
            ...(apiPort ? [{ port: 'api', path: '/metrics', interval: '15s', relabelings: relabel('pgcharm-agent') }] : []),
            { port: EXPORTER_PORT_NAME, path: '/metrics', interval: '15s', relabelings: relabel('pgcharm-postgres') },
            {
              port: 'pebble',
              path: '/v1/metrics',
              interval: '15s',
              // The agents create this Secret (username, password) and give the sidecars the identity.
              basicAuth: { username: { name: objects.metricsAuth(app), key: 'username' }, password: { name: objects.metricsAuth(app), key: 'password' } },
              relabelings: relabel('pgcharm-sidecar'),
            },
          ],
        },
      }
    : undefined;
  const prometheusRule: KubeObject | undefined = opts.prometheusRule
    ? { apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', metadata: objectMeta(app), spec: { groups: opts.prometheusRule.groups } }
    : undefined;

  const disruptionBudget: Named<V1PodDisruptionBudget> = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: objectMeta(app),
    spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
  };

  const mounts = meta.containers[workload]!.mounts;
  const claims: V1PersistentVolumeClaim[] = mounts.map((mt) => {
    const storage = meta.storage[mt.storage];
    if (!storage) throw new Error(`charm.yaml: container ${workload} mounts unknown storage ${mt.storage}`);
    if (storage.type !== 'filesystem') throw new Error(`charm.yaml: storage ${mt.storage} is ${storage.type}; only filesystem storage is rendered`);
    if (mt.storage === 'pebble' || mt.storage === 'kube-api-access') throw new Error(`charm.yaml: storage name ${mt.storage} is taken by the pod's own volumes`);
    const size = opts.storageSize ?? (storage.minimumSize ? jujuSizeToQuantity(storage.minimumSize) : '1Gi');
    if (!isQuantity(size)) throw new Error(`storage size ${JSON.stringify(size)}: expected a Kubernetes quantity such as 10Gi`);
    if (storage.minimumSize && quantityBytes(size) < quantityBytes(jujuSizeToQuantity(storage.minimumSize))) {
      throw new Error(`storage size ${size}: below storage ${mt.storage}'s minimum-size ${storage.minimumSize} in charm.yaml`);
    }
    return {
      metadata: { name: mt.storage, labels },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: size } } },
    };
  });

  const health = (level: 'alive' | 'ready', periodSeconds: number, failureThreshold: number): V1Probe => ({
    // Asked over the sidecar's socket, the way `pebble health` does. (Its HTTP listener answers
    // /v1/health too, to anyone, as Pebble's does; the probe does not depend on that port.)
    exec: { command: ['pgcharm-sidecar', 'health', '--level', level] },
    periodSeconds,
    timeoutSeconds: 5,
    failureThreshold,
  });

  const agent: V1Container = {
    name: AGENT_CONTAINER,
    image: opts.image?.agent ?? DEFAULT_AGENT_IMAGE,
    imagePullPolicy: 'IfNotPresent',
    // The image's ENTRYPOINT is `node <agent/node-flags.ts> /opt/pgcharm/dist/agent/cli.js agent`; no --kubeconfig: in-cluster config.
    args: [
      // The agent reads the pod form <app>-<n> as unit <app>/<n>.
      '--unit', '$(POD_NAME)',
      '--namespace', '$(POD_NAMESPACE)',
      '--socket', PEBBLE_SOCKET,
      '--charm', `${IMAGE_ROOT}/charm.yaml`,
      '--charm-module', `${IMAGE_ROOT}/dist/agent/charm/postgresql/charm.js`,
    ],
    // The agent serves its unit API on the pod IP at this port (agent/runtime/agent.ts, workload.api),
    // Patroni's health routes included: the agent is live while its HA loop cycles; the pod is
    // ready when its Postgres is the primary or a streaming standby (out of the role Services otherwise).
    ...(apiPort
      ? {
          ports: [{ name: 'api', containerPort: apiPort, protocol: 'TCP' }],
          livenessProbe: { httpGet: { path: '/liveness', port: 'api' }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 },
          readinessProbe: { httpGet: { path: '/readiness', port: 'api' }, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 2 },
        }
      : {}),
    env: [
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    ],
    volumeMounts: [
      { name: 'pebble', mountPath: PEBBLE_DIR },
      { name: 'kube-api-access', mountPath: TOKEN_DIR, readOnly: true },
    ],
    // A CPU share of its own: with Postgres saturating the node the agent must still renew the
    // primary Lease every TTL/5 (a late one fences the primary), as it does locally at nice -5.
    resources: { requests: { cpu: AGENT_CPU_REQUEST } },
    // Not root: the sidecar hands its socket to the agent's group (PEBBLE_SOCKET_GROUP below, mode 0660).
    securityContext: { runAsUser: AGENT_UID, runAsGroup: AGENT_UID, runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
  };

  const workloadContainer: V1Container = {
    name: workload,
    image: opts.image?.workload ?? containerImage(meta, workload, effective),
    imagePullPolicy: 'IfNotPresent',
    // The image's ENTRYPOINT runs the sidecar as PID 1, as root, so it can start Postgres as postgres;
    // these are more `run` flags.
    args: ['--http', `:${PEBBLE_HTTP_PORT}`],
    // The sidecar's socket: root's and the agent's group (0660), nobody else's.
    env: [
      { name: 'PEBBLE', value: PEBBLE_DIR },
      { name: 'PEBBLE_SOCKET_GROUP', value: String(AGENT_UID) },
    ],
    // The agent finds its Postgres at the pod IP and this port (agent/runtime/agent.ts, workload.address).
    // The first port is Postgres's; pgbackrest serves this unit's data to backups taken from it as a standby.
    ports: [
      { name: 'postgresql', containerPort: port, protocol: 'TCP' },
      { name: BACKUP_SERVER_PORT_NAME, containerPort: BACKUP_SERVER_PORT, protocol: 'TCP' },
      // The postgres exporter (a Pebble service the charm adds: exporter.ts), and the sidecar's HTTP listener.
      { name: EXPORTER_PORT_NAME, containerPort: EXPORTER_PORT, protocol: 'TCP' },
      { name: 'pebble', containerPort: PEBBLE_HTTP_PORT, protocol: 'TCP' },
    ],
    volumeMounts: [{ name: 'pebble', mountPath: PEBBLE_DIR }, ...mounts.map((mt) => ({ name: mt.storage, mountPath: mt.location }))],
    // Alive: the sidecar answers. Ready: its `ready` checks pass (the charm's postgresql-ready: Postgres accepts TCP).
    livenessProbe: health('alive', 10, 3),
    readinessProbe: health('ready', 5, 1),
  };

  const volumes: V1Volume[] = [
    { name: 'pebble', emptyDir: {} },
    {
      // What automountServiceAccountToken would mount, in one container instead of all of them.
      name: 'kube-api-access',
      projected: {
        sources: [
          { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
        ],
      },
    },
  ];

  const statefulSet: Named<V1StatefulSet> = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: objectMeta(app),
    spec: {
      replicas: opts.units,
      serviceName: `${app}-endpoints`,
      // Units start together (as Juju's do): the leader bootstraps, the others wait for it in their agents.
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'RollingUpdate' },
      selector: { matchLabels: selector },
      volumeClaimTemplates: claims,
      template: {
        // No config hash here on purpose: a config change is applied in place by the agents and
        // must not replace the pods; only a change of this template (image, probes...) rolls them.
        metadata: { labels },
        spec: {
          serviceAccountName: app,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 30,
          affinity: {
            podAntiAffinity: {
              // Spread units over nodes when there are enough: one node's loss then costs one unit.
              preferredDuringSchedulingIgnoredDuringExecution: [
                { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selector } } },
              ],
            },
          },
          containers: [agent, workloadContainer],
          volumes,
        },
      },
    },
  };

  return {
    serviceAccount,
    role,
    roleBinding,
    config,
    ...(configSecrets ? { configSecrets } : {}),
    endpoints,
    primary: roleService('primary', `${app}-primary`),
    replicas: roleService('replica', `${app}-replicas`),
    metrics,
    disruptionBudget,
    statefulSet,
    ...(serviceMonitor ? { serviceMonitor } : {}),
    ...(prometheusRule ? { prometheusRule } : {}),
  };
}

/**
 * Multi-document YAML for `kubectl apply -f -`. Written as YAML 1.1, which kubectl reads:
 * strings such as `on`, `y` or `0777` are quoted so that kubectl does not take them for
 * booleans or numbers.
 */
export function manifestsYaml(objs: readonly KubeObject[]): string {
  return objs.map((o) => stringify(o, { version: '1.1', lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
}

const QUANTITY = /^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;
const FACTORS: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };

export function isQuantity(s: string): boolean {
  return QUANTITY.test(s);
}

/** Bytes of a Kubernetes quantity (the subset isQuantity accepts). */
export function quantityBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([A-Za-z]*)$/.exec(s);
  if (!m || !isQuantity(s)) throw new Error(`not a Kubernetes quantity: ${JSON.stringify(s)}`);
  return Number(m[1]) * FACTORS[m[2]!]!;
}

/** charm.yaml sizes are Juju's: M, G, T, P, E are powers of 1024 and a bare number is MiB. */
export function jujuSizeToQuantity(size: string): string {
  const m = /^(\d+(?:\.\d+)?)([MGTPE]?)$/.exec(size);
  if (!m) throw new Error(`charm.yaml size ${JSON.stringify(size)}: expected a number with an optional M, G, T, P or E suffix`);
  return `${m[1]}${m[2] || 'M'}i`;
}
