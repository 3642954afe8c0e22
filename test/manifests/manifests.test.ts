import { execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ConfigError, configHash, defaults, parseCharmYaml, secretEntryKey, secretRef, type CharmMeta } from '../../agent/charm-meta/index.js';
import { manifestsCommand } from '../../agent/commands/manifests.js';
import {
  AGENT_CONTAINER,
  AGENT_RBAC_RULES,
  PEBBLE_DIR,
  PEBBLE_SOCKET,
  ROLE_LABEL,
  jujuSizeToQuantity,
  manifestsYaml,
  quantityBytes,
  renderManifestSet,
  renderManifests,
  type KubeObject,
} from '../../agent/manifests/render.js';
import { LABELS } from '../../agent/runtime/names.js';

/**
 * Schema-level checks of what `pgcharm manifests` renders from the repository's charm.yaml:
 * kinds and API versions, names, namespaces, the label wiring between the StatefulSet, its
 * pods, the Services and the PodDisruptionBudget, the containers and their volumes, RBAC
 * (exactly AGENT_RBAC_RULES), the config ConfigMap, and a YAML round trip; then kubectl's own
 * reading of the output when kubectl is installed.
 */

const CHARM = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'charm.yaml');
const charmText = readFileSync(CHARM, 'utf8');
const meta: CharmMeta = parseCharmYaml(charmText, 'charm.yaml');
const NS = 'pgcharm-test';
const APP = meta.name;

/** The API version each kind lives in (Kubernetes 1.25+: policy/v1 PodDisruptionBudget). */
const API_VERSIONS: Record<string, string> = {
  ServiceAccount: 'v1',
  ConfigMap: 'v1',
  Service: 'v1',
  Role: 'rbac.authorization.k8s.io/v1',
  RoleBinding: 'rbac.authorization.k8s.io/v1',
  PodDisruptionBudget: 'policy/v1',
  StatefulSet: 'apps/v1',
};

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Service names are DNS-1035 labels: they must start with a letter. */
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

function checkLabels(where: string, labels: Record<string, string> | undefined): void {
  for (const [k, v] of Object.entries(labels ?? {})) {
    expect(LABEL_KEY.test(k) && k.split('/').pop()!.length <= 63, `${where}: label key ${k}`).toBe(true);
    expect(LABEL_VALUE.test(v) && v.length <= 63, `${where}: label ${k} value ${v}`).toBe(true);
  }
}

/** Whether a matchLabels-style selector selects an object with these labels. */
const selects = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean =>
  Boolean(selector && Object.keys(selector).length && Object.entries(selector).every(([k, v]) => labels?.[k] === v));

describe('rendered objects', () => {
  const m = renderManifestSet(meta, {}, { units: 3, namespace: NS, charmText });
  const all = renderManifests(meta, {}, { units: 3, namespace: NS, charmText });
  const sts = m.statefulSet;
  const pod = sts.spec!.template;
  const podLabels = pod.metadata!.labels!;
  const containers = pod.spec!.containers;
  const workloadName = Object.keys(meta.containers)[0]!;
  const agent = containers.find((c) => c.name === AGENT_CONTAINER)!;
  const workload = containers.find((c) => c.name === workloadName)!;

  test('the list and the named set are the same objects', () => {
    expect(all).toEqual([m.serviceAccount, m.role, m.roleBinding, m.config, m.endpoints, m.primary, m.replicas, m.metrics, m.disruptionBudget, m.statefulSet]);
    // The service account exists before the pods that use it are created.
    expect(all.findIndex((o) => o.kind === 'ServiceAccount')).toBeLessThan(all.findIndex((o) => o.kind === 'StatefulSet'));
  });

  test.each(all.map((o) => [`${o.kind} ${o.metadata.name}`, o] as const))('%s: apiVersion, name, namespace, labels', (_, o) => {
    expect(API_VERSIONS[o.kind], `unexpected kind ${o.kind}`).toBeDefined();
    expect(o.apiVersion).toBe(API_VERSIONS[o.kind]);
    expect(o.metadata.name.length).toBeLessThanOrEqual(o.kind === 'Service' ? 63 : 253);
    expect(o.metadata.name).toMatch(o.kind === 'Service' ? DNS1035_LABEL : DNS1123_SUBDOMAIN);
    expect(o.metadata.namespace).toBe(NS);
    expect(o.metadata.namespace).toMatch(DNS1123_LABEL);
    expect(o.metadata.labels?.[LABELS.app]).toBe(APP);
    expect(o.metadata.labels?.[LABELS.managedBy]).toBe('pgcharm');
    checkLabels(`${o.kind} ${o.metadata.name}`, o.metadata.labels);
  });

  test('one object of each kind, four Services, no name used twice for a kind', () => {
    const count = (k: string) => all.filter((o) => o.kind === k).length;
    for (const k of Object.keys(API_VERSIONS)) expect(count(k), k).toBe(k === 'Service' ? 4 : 1);
    expect(new Set(all.map((o) => `${o.kind}/${o.metadata.name}`)).size).toBe(all.length);
    expect(m.endpoints.metadata.name).toBe(`${APP}-endpoints`);
    expect(m.primary.metadata.name).toBe(`${APP}-primary`);
    expect(m.replicas.metadata.name).toBe(`${APP}-replicas`);
    expect(m.config.metadata.name).toBe(`${APP}-config`);
  });

  test('StatefulSet: replicas, service name, selector matches its pod template', () => {
    expect(sts.metadata.name).toBe(APP);
    expect(sts.spec!.replicas).toBe(3);
    expect(sts.spec!.serviceName).toBe(m.endpoints.metadata.name);
    expect(selects(sts.spec!.selector.matchLabels, podLabels)).toBe(true);
    expect(sts.spec!.selector.matchExpressions).toBeUndefined();
    checkLabels('pod template', podLabels);
    // The role label is the agent's to set at run time, never the template's (a rollout would reset it).
    expect(podLabels[ROLE_LABEL]).toBeUndefined();
    // A config hash in the template would replace pods on config changes, which the agents apply in place.
    expect(pod.metadata!.annotations).toBeUndefined();
  });

  test('Services select the pods, the role Services by the role label', () => {
    const primaryPod = { ...podLabels, [ROLE_LABEL]: 'primary' };
    const replicaPod = { ...podLabels, [ROLE_LABEL]: 'replica' };
    expect(ROLE_LABEL).toBe('pgcharm.io/role');
    expect(m.endpoints.spec!.clusterIP).toBe('None');
    expect(selects(m.endpoints.spec!.selector, podLabels)).toBe(true);
    expect(m.primary.spec!.selector).toEqual({ [LABELS.app]: APP, [ROLE_LABEL]: 'primary' });
    expect(m.replicas.spec!.selector).toEqual({ [LABELS.app]: APP, [ROLE_LABEL]: 'replica' });
    expect(selects(m.primary.spec!.selector, primaryPod)).toBe(true);
    expect(selects(m.primary.spec!.selector, replicaPod)).toBe(false);
    expect(selects(m.primary.spec!.selector, podLabels)).toBe(false);
    expect(selects(m.replicas.spec!.selector, replicaPod)).toBe(true);
    expect(selects(m.replicas.spec!.selector, primaryPod)).toBe(false);
    const named = workload.ports!.map((p) => p.name);
    for (const svc of [m.endpoints, m.primary, m.replicas]) {
      expect(svc.spec!.ports).toHaveLength(1);
      expect(svc.spec!.ports![0]!.port).toBe(5432);
      expect(named).toContain(svc.spec!.ports![0]!.targetPort);
    }
  });

  test('PodDisruptionBudget: policy/v1, one unit at a time, selects the pods', () => {
    expect(m.disruptionBudget.spec!.maxUnavailable).toBe(1);
    expect(m.disruptionBudget.spec!.minAvailable).toBeUndefined();
    expect(selects(m.disruptionBudget.spec!.selector!.matchLabels, podLabels)).toBe(true);
  });

  test('two containers sharing the sidecar directory; the data volume in the workload container', () => {
    expect(containers.map((c) => c.name)).toEqual([AGENT_CONTAINER, workloadName]);
    const volumes = pod.spec!.volumes!;
    const claims = sts.spec!.volumeClaimTemplates!;
    const names = [...volumes.map((v) => v.name), ...claims.map((c) => c.metadata!.name!)];
    expect(new Set(names).size).toBe(names.length);
    const pebble = volumes.find((v) => v.emptyDir);
    expect(pebble).toBeDefined();
    for (const c of [agent, workload]) {
      expect(c.volumeMounts).toContainEqual({ name: pebble!.name, mountPath: PEBBLE_DIR });
      for (const vm of c.volumeMounts!) expect(names, `${c.name} mounts ${vm.name}`).toContain(vm.name);
    }
    expect(PEBBLE_SOCKET.startsWith(`${PEBBLE_DIR}/`)).toBe(true);
    const mount = meta.containers[workloadName]!.mounts[0]!;
    expect(claims.map((c) => c.metadata!.name)).toEqual([mount.storage]);
    expect(claims[0]!.spec!.accessModes).toEqual(['ReadWriteOnce']);
    expect(claims[0]!.spec!.resources!.requests!['storage']).toBe(jujuSizeToQuantity(meta.storage[mount.storage]!.minimumSize!));
    expect(workload.volumeMounts).toContainEqual({ name: mount.storage, mountPath: mount.location });
    expect(agent.volumeMounts!.map((v) => v.name)).not.toContain(mount.storage);
  });

  test('workload container: image by postgresql-major, its port, probes through the sidecar', () => {
    expect(workload.image).toBe('pgcharm/postgresql:15');
    expect(workload.ports).toEqual([
      { name: 'postgresql', containerPort: 5432, protocol: 'TCP' },
      { name: 'pgbackrest', containerPort: 8432, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9187, protocol: 'TCP' },
      { name: 'pebble', containerPort: 38813, protocol: 'TCP' },
    ]);
    expect(workload.args).toEqual(['--http', ':38813']);
    expect(workload.env).toContainEqual({ name: 'PEBBLE', value: PEBBLE_DIR });
    for (const probe of [workload.livenessProbe, workload.readinessProbe]) {
      expect(probe?.exec?.command?.slice(0, 2)).toEqual(['pgcharm-sidecar', 'health']);
      expect(probe!.periodSeconds).toBeGreaterThan(0);
      expect(probe!.timeoutSeconds).toBeGreaterThan(0);
    }
    expect(workload.livenessProbe!.exec!.command).toContain('alive');
    expect(workload.readinessProbe!.exec!.command).toContain('ready');
    for (const c of containers) expect(c.imagePullPolicy).toBe('IfNotPresent');
  });

  test('agent container: the pod fills in --unit and --namespace; the token is mounted in it alone', () => {
    const args = agent.args!;
    const arg = (flag: string) => args[args.indexOf(flag) + 1];
    expect(arg('--unit')).toBe('$(POD_NAME)');
    expect(arg('--namespace')).toBe('$(POD_NAMESPACE)');
    expect(arg('--socket')).toBe(PEBBLE_SOCKET);
    expect(args).not.toContain('--kubeconfig');
    expect(agent.env).toEqual([
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    ]);
    // Every $(VAR) in args is defined in env (Kubernetes leaves unknown ones as literal text).
    for (const ref of args.join(' ').matchAll(/\$\((\w+)\)/g)) expect(agent.env!.map((e) => e.name)).toContain(ref[1]);
    expect(pod.spec!.automountServiceAccountToken).toBe(false);
    const token = agent.volumeMounts!.find((v) => v.mountPath === '/var/run/secrets/kubernetes.io/serviceaccount');
    expect(token?.readOnly).toBe(true);
    const projected = pod.spec!.volumes!.find((v) => v.name === token!.name)!.projected!.sources!;
    expect(projected.map((s) => Object.keys(s)[0])).toEqual(['serviceAccountToken', 'configMap', 'downwardAPI']);
    expect(workload.volumeMounts!.map((v) => v.name)).not.toContain(token!.name);
    expect(agent.securityContext?.capabilities?.drop).toEqual(['ALL']);
    expect(agent.securityContext?.allowPrivilegeEscalation).toBe(false);
  });

  test("agent container: the unit API's port (api-port, 8008 by default) on the pod, named api", () => {
    expect(agent.ports).toEqual([{ name: 'api', containerPort: 8008, protocol: 'TCP' }]);
    const other = renderManifestSet(meta, { 'api-port': 9008 }, { units: 3, namespace: NS }).statefulSet.spec!.template.spec!.containers.find((c) => c.name === AGENT_CONTAINER)!;
    expect(other.ports).toEqual([{ name: 'api', containerPort: 9008, protocol: 'TCP' }]);
    expect(() => renderManifestSet(meta, { 'api-port': 80 }, { units: 3, namespace: NS })).toThrow(/api-port/);
  });

  test("agent container: probes are Patroni's routes on the unit API (/liveness, /readiness)", () => {
    expect(agent.livenessProbe?.httpGet).toEqual({ path: '/liveness', port: 'api' });
    expect(agent.readinessProbe?.httpGet).toEqual({ path: '/readiness', port: 'api' });
    // Restarting the agent takes a few failed probes, well past a stuck cycle's 5 s liveness window.
    expect(agent.livenessProbe!.periodSeconds! * agent.livenessProbe!.failureThreshold!).toBeGreaterThanOrEqual(30);
  });

  test('metrics Service: headless, selects the pods, names the agent and exporter ports; no monitoring objects unless asked', () => {
    expect(m.metrics.metadata.name).toBe(`${APP}-metrics`);
    expect(m.metrics.spec!.clusterIP).toBe('None');
    expect(selects(m.metrics.spec!.selector, podLabels)).toBe(true);
    const named = new Set(containers.flatMap((c) => c.ports ?? []).map((p) => p.name));
    expect(m.metrics.spec!.ports!.map((p) => p.targetPort)).toEqual(['api', 'metrics', 'pebble']);
    for (const p of m.metrics.spec!.ports!) expect(named.has(String(p.targetPort)), String(p.targetPort)).toBe(true);
    expect(m.serviceMonitor).toBeUndefined();
    expect(m.prometheusRule).toBeUndefined();
  });

  test('--service-monitor and --prometheus-rule: the Prometheus Operator objects, labelled as the alert rules expect', async () => {
    const docs = parseAllDocuments(await manifestsCommand({ charm: CHARM, units: 3, namespace: NS, serviceMonitor: true, prometheusRule: true })).map((d) => d.toJS() as KubeObject & { spec: Record<string, unknown> });
    const sm = docs.find((d) => d.kind === 'ServiceMonitor')!;
    const rule = docs.find((d) => d.kind === 'PrometheusRule')!;
    expect(sm.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(rule.apiVersion).toBe('monitoring.coreos.com/v1');
    const svc = docs.find((d) => d.kind === 'Service' && d.metadata.name === `${APP}-metrics`)!;
    expect(selects((sm.spec['selector'] as { matchLabels: Record<string, string> }).matchLabels, svc.metadata.labels)).toBe(true);
    // Only the metrics Service: the other Services have the same pods, and would scrape each twice.
    for (const d of docs.filter((x) => x.kind === 'Service' && x !== svc)) expect(selects((sm.spec['selector'] as { matchLabels: Record<string, string> }).matchLabels, d.metadata.labels), d.metadata.name).toBe(false);
    const endpoints = sm.spec['endpoints'] as { port: string; path: string; relabelings: { targetLabel: string; replacement?: string; regex?: string }[] }[];
    expect(endpoints.map((e) => [e.port, e.path, e.relabelings.find((r) => r.targetLabel === 'job')?.replacement])).toEqual([
      ['api', '/metrics', 'pgcharm-agent'],
      ['metrics', '/metrics', 'pgcharm-postgres'],
      ['pebble', '/v1/metrics', 'pgcharm-sidecar'],
    ]);
    expect((endpoints[2] as unknown as { basicAuth: unknown }).basicAuth).toEqual({ username: { name: `${APP}-metrics-auth`, key: 'username' }, password: { name: `${APP}-metrics-auth`, key: 'password' } });
    const unit = endpoints[0]!.relabelings.find((r) => r.targetLabel === 'unit')!;
    expect(`${APP}-2`.replace(new RegExp(`^${unit.regex!}$`), unit.replacement!.replace(/\$(\d)/g, '$$$1'))).toBe(`${APP}/2`);
    const groups = (rule.spec['groups'] as { rules: { alert: string }[] }[]).flatMap((g) => g.rules.map((r) => r.alert));
    expect(groups).toContain('PgcharmNoPrimary');
    expect(groups).toContain('PgcharmReplicaNotStreaming');
  });

  test('RBAC: the pods run as the ServiceAccount, bound to the Role, whose rules are exactly the agent\'s', () => {
    expect(pod.spec!.serviceAccountName).toBe(m.serviceAccount.metadata.name);
    expect(m.roleBinding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: m.role.metadata.name });
    expect(m.roleBinding.subjects).toEqual([{ kind: 'ServiceAccount', name: m.serviceAccount.metadata.name, namespace: NS }]);
    expect(m.role.rules).toEqual(AGENT_RBAC_RULES);
    expect(m.role.rules).toEqual([
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'update'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch', 'patch'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    ]);
    // Copies: editing a rendered Role cannot change the constant.
    expect(m.role.rules![0]).not.toBe(AGENT_RBAC_RULES[0]);
  });

  test('config ConfigMap: charm.yaml defaults, in the format the agents read', () => {
    const d = m.config.data!;
    expect(m.config.metadata.labels?.[LABELS.kind]).toBe('config');
    expect(JSON.parse(d['config']!)).toEqual(defaults(meta));
    expect(JSON.parse(d['settings']!)).toEqual({});
    expect(d['hash']).toBe(configHash(defaults(meta)));
    expect(d['charm']).toBe(charmText);
  });

  test('config ConfigMap with settings: defaults overlaid; postgresql-major picks the image', () => {
    const settings = { 'max-connections': 250, 'postgresql-major': 16 };
    const o = renderManifestSet(meta, settings, { units: 1, namespace: NS });
    const effective = { ...defaults(meta), ...settings };
    expect(JSON.parse(o.config.data!['config']!)).toEqual(effective);
    expect(JSON.parse(o.config.data!['settings']!)).toEqual(settings);
    expect(o.config.data!['hash']).toBe(configHash(effective));
    expect(o.config.data!['charm']).toBeUndefined();
    expect(o.statefulSet.spec!.template.spec!.containers[1]!.image).toBe('pgcharm/postgresql:16');
  });

  test('a secret option (override-root-password): its value in a Secret, only a reference in the ConfigMap', () => {
    const settings = { 'override-root-password': 'sup3r-Secret-pw' };
    const key = Buffer.alloc(32, 1);
    const o = renderManifestSet(meta, settings, { units: 3, namespace: NS, secretKey: key });
    expect(JSON.stringify(o.config)).not.toContain('sup3r-Secret-pw');
    const ref = secretRef(key, 'override-root-password', 'sup3r-Secret-pw');
    expect(JSON.parse(o.config.data!['config']!)['override-root-password']).toBe(ref);
    expect(JSON.parse(o.config.data!['settings']!)).toEqual({ 'override-root-password': ref });
    expect(JSON.parse(o.config.data!['secrets']!)).toEqual(['override-root-password']);
    const secret = o.configSecrets as KubeObject & { data: Record<string, string> };
    expect(secret).toMatchObject({ apiVersion: 'v1', kind: 'Secret', metadata: { name: `${APP}-config-secrets`, namespace: NS } });
    const plain = Object.fromEntries(Object.entries(secret.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
    expect(plain[secretEntryKey('override-root-password', ref)]).toBe('sup3r-Secret-pw');
    expect(Buffer.from(secret.data['hmac-key']!, 'base64')).toEqual(key);
    // Before the ConfigMap that refers to it; and only when there is a secret value.
    const all = renderManifests(meta, settings, { units: 3, namespace: NS });
    expect(all.findIndex((x) => x.kind === 'Secret')).toBeLessThan(all.findIndex((x) => x.kind === 'ConfigMap'));
    expect(renderManifests(meta, {}, { units: 3, namespace: NS }).some((x) => x.kind === 'Secret')).toBe(false);
  });

  test('a bad setting is refused with its key and reason', () => {
    expect(() => renderManifestSet(meta, { 'max-connections': 'lots' }, { units: 1, namespace: NS })).toThrow(ConfigError);
    expect(() => renderManifestSet(meta, { 'postgresql-major': 13 }, { units: 1, namespace: NS })).toThrow(/postgresql-major/);
  });

  test('options: app name, images, storage size', () => {
    const o = renderManifestSet(meta, {}, { app: 'pg-orders', units: 2, namespace: NS, image: { agent: 'reg:32000/agent:1', workload: 'reg:32000/pg:1' }, storageSize: '20Gi' });
    expect(o.statefulSet.metadata.name).toBe('pg-orders');
    expect(o.statefulSet.spec!.serviceName).toBe('pg-orders-endpoints');
    expect(o.config.metadata.name).toBe('pg-orders-config');
    expect(o.primary.spec!.selector![LABELS.app]).toBe('pg-orders');
    expect(o.roleBinding.subjects![0]!.name).toBe('pg-orders');
    expect(o.statefulSet.spec!.template.spec!.containers.map((c) => c.image)).toEqual(['reg:32000/agent:1', 'reg:32000/pg:1']);
    expect(o.statefulSet.spec!.volumeClaimTemplates![0]!.spec!.resources!.requests!['storage']).toBe('20Gi');
    expect(() => renderManifestSet(meta, {}, { units: 1, namespace: NS, storageSize: '512Mi' })).toThrow(/below .*minimum-size 1G/);
    expect(() => renderManifestSet(meta, {}, { units: 1, namespace: NS, storageSize: 'ten' })).toThrow(/Kubernetes quantity/);
  });

  test('sizes: Juju sizes are binary, quantities parse both ways', () => {
    expect(jujuSizeToQuantity('1G')).toBe('1Gi');
    expect(jujuSizeToQuantity('512')).toBe('512Mi');
    expect(quantityBytes('1Gi')).toBe(2 ** 30);
    expect(quantityBytes('1G')).toBe(1e9);
    expect(quantityBytes('1.5Gi')).toBe(1.5 * 2 ** 30);
  });
});

describe('YAML output', () => {
  test('round-trips through the yaml package into the same objects', async () => {
    const text = await manifestsCommand({ charm: CHARM, units: 3, namespace: NS });
    const objs = renderManifests(meta, {}, { units: 3, namespace: NS, charmText });
    for (const version of ['1.1', '1.2'] as const) {
      const docs = parseAllDocuments(text, { version });
      expect(Array.isArray(docs)).toBe(true);
      for (const d of docs as { errors: unknown[] }[]) expect(d.errors).toEqual([]);
      expect((docs as { toJS(): unknown }[]).map((d) => d.toJS())).toEqual(objs);
    }
    expect(text).toBe(manifestsYaml(objs));
    // Plain YAML a person can read and diff: no anchors for labels used in several places.
    expect(text).not.toMatch(/[&*]a\d/);
  });

  test('strings YAML 1.1 would read as booleans or numbers are quoted (kubectl reads 1.1)', () => {
    const o: KubeObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { a: 'on', b: 'y', c: '0777', d: 'no' } };
    const back = parseAllDocuments(manifestsYaml([o]), { version: '1.1' }) as { toJS(): unknown }[];
    expect(back[0]!.toJS()).toEqual(o);
  });
});

describe('manifests command: bad options name the option and the reason', () => {
  test.each([0, 10, 1.5, Number.NaN, -1])('--units %s', async (units) => {
    await expect(manifestsCommand({ charm: CHARM, units, namespace: NS })).rejects.toThrow(/^--units: must be an integer from 1 to 9, got /);
  });

  test.each(['', 'Pgcharm', 'pg_charm', '-pg', 'pg-', 'pg.charm', 'a'.repeat(64)])('--namespace %j', async (namespace) => {
    await expect(manifestsCommand({ charm: CHARM, units: 3, namespace })).rejects.toThrow(/^--namespace: .* is not a valid namespace: .*DNS-1123 label/);
  });

  test('the longest namespace allowed, and a numeric one, are fine', async () => {
    await expect(manifestsCommand({ charm: CHARM, units: 1, namespace: 'a'.repeat(63) })).resolves.toContain('kind: StatefulSet');
    await expect(manifestsCommand({ charm: CHARM, units: 9, namespace: '0' })).resolves.toContain('replicas: 9');
  });

  test('--app, --storage-size, --config, --charm', async () => {
    await expect(manifestsCommand({ charm: CHARM, units: 1, namespace: NS, app: 'Bad' })).rejects.toThrow(/^--app: "Bad" is not a valid application name/);
    await expect(manifestsCommand({ charm: CHARM, units: 1, namespace: NS, storageSize: '10 GB' })).rejects.toThrow(/^--storage-size: "10 GB" is not a Kubernetes quantity/);
    await expect(manifestsCommand({ charm: CHARM, units: 1, namespace: NS, storageSize: '100Mi' })).rejects.toThrow(/^--storage-size: 100Mi is below storage pgdata's minimum-size 1G/);
    await expect(manifestsCommand({ charm: CHARM, units: 1, namespace: NS, config: ['max-connections=abc'] })).rejects.toThrow(/max-connections/);
    await expect(manifestsCommand({ charm: '/nonexistent/charm.yaml', units: 1, namespace: NS })).rejects.toThrow(/cannot read \/nonexistent\/charm.yaml/);
    const text = await manifestsCommand({ charm: CHARM, units: 1, namespace: NS, config: ['postgresql-major=14'], storageSize: '5Gi' });
    expect(text).toContain('image: pgcharm/postgresql:14');
    expect(text).toContain('storage: 5Gi');
  });
});

/** kubectl from /usr/bin or PATH, or undefined. */
function findKubectl(): string | undefined {
  for (const dir of ['/usr/bin', ...(process.env['PATH'] ?? '').split(':')]) {
    const p = join(dir, 'kubectl');
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

const kubectl = findKubectl();

/**
 * kubectl needs an API server's discovery to map kinds to resources, even for a client-side dry
 * run. This one serves only that (the real group/version/resource of each kind rendered) and
 * answers 404 to everything else, so each object reads as new: `apply --dry-run=client` then
 * parses every document, maps it, and prints what it would create, without sending anything.
 */
function discoveryServer(): Server {
  const res = (name: string, kind: string) => ({ name, singularName: kind.toLowerCase(), namespaced: true, kind, verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] });
  const groups: Record<string, ReturnType<typeof res>[]> = {
    'apps/v1': [res('statefulsets', 'StatefulSet')],
    'policy/v1': [res('poddisruptionbudgets', 'PodDisruptionBudget')],
    'rbac.authorization.k8s.io/v1': [res('roles', 'Role'), res('rolebindings', 'RoleBinding')],
    'coordination.k8s.io/v1': [res('leases', 'Lease')],
  };
  const core = [res('configmaps', 'ConfigMap'), res('services', 'Service'), res('serviceaccounts', 'ServiceAccount'), res('pods', 'Pod'), res('secrets', 'Secret')];
  const bodies: Record<string, unknown> = {
    '/api': { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] },
    '/api/v1': { kind: 'APIResourceList', groupVersion: 'v1', resources: core },
    '/apis': {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: Object.keys(groups).map((gv) => {
        const [name, version] = gv.split('/') as [string, string];
        return { name, versions: [{ groupVersion: gv, version }], preferredVersion: { groupVersion: gv, version } };
      }),
    },
    ...Object.fromEntries(Object.entries(groups).map(([gv, resources]) => [`/apis/${gv}`, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv, resources }])),
  };
  return createServer((req, out) => {
    const body = bodies[(req.url ?? '').split('?')[0]!];
    out.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
    out.end(JSON.stringify(body ?? { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: 'not found' }));
  });
}

describe.skipIf(!kubectl)('kubectl reads the output', () => {
  let server: Server;
  let dir: string;

  beforeAll(async () => {
    server = discoveryServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    dir = mkdtempSync(join(tmpdir(), 'pgcharm-manifests-'));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    writeFileSync(
      join(dir, 'kubeconfig'),
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'discovery', cluster: { server: url } }],
        users: [{ name: 'nobody', user: {} }],
        contexts: [{ name: 'discovery', context: { cluster: 'discovery', user: 'nobody' } }],
        'current-context': 'discovery',
      }),
    );
  });

  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('kubectl apply --dry-run=client parses and maps every document', async () => {
    const text = await manifestsCommand({ charm: CHARM, units: 3, namespace: NS });
    const args = ['apply', '--dry-run=client', '-f', '-', '--validate=false', '-o', 'name', '--kubeconfig', join(dir, 'kubeconfig'), '--cache-dir', join(dir, 'cache'), '--request-timeout', '10s'];
    const stdout = await new Promise<string>((resolve, reject) => {
      const child = execFile(kubectl!, args, { timeout: 30_000, env: { ...process.env, KUBECONFIG: join(dir, 'kubeconfig') } }, (err, out, errOut) => {
        if (err) reject(new Error(`kubectl ${args.join(' ')} failed: ${errOut || err.message}`));
        else resolve(out);
      });
      child.stdin!.end(text);
    });
    const group = (apiVersion: string) => (apiVersion.includes('/') ? `.${apiVersion.split('/')[0]}` : '');
    const expected = renderManifests(meta, {}, { units: 3, namespace: NS, charmText }).map((o) => `${o.kind.toLowerCase()}${group(o.apiVersion)}/${o.metadata.name}`);
    expect(stdout.trim().split('\n')).toEqual(expected);
  });
});
