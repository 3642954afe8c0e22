import type { V1ConfigMap } from '#client-node';
import type { CharmMeta } from '../charm-meta/index.js';
import { readConfig } from '../controller/config-store.js';
import { isConflict, isNotFound, mergePatch, type Kube } from '../runtime/kube.js';
import { LABELS } from '../runtime/names.js';
import { decodeRelation, DYING_ANNOTATION, encodeRelation, RELATION_COUNTER, RELATION_ID_LABEL, relationObjects, type RelationRecord } from '../runtime/relations.js';
import { Store } from '../runtime/store.js';
import { deployments } from './context.js';
import { checkAppName, UserError } from './user-error.js';

/** `app` or `app:endpoint`, as juju integrate takes them. */
export interface EndpointSpec {
  app: string;
  endpoint?: string;
}

export function parseEndpointSpec(s: string, field: string): EndpointSpec {
  const [app, endpoint, ...rest] = s.split(':');
  if (rest.length || endpoint === '') throw new UserError(`${field}: ${JSON.stringify(s)}: expected <application> or <application>:<endpoint>`);
  checkAppName(app ?? '', field);
  return { app: app!, ...(endpoint !== undefined ? { endpoint } : {}) };
}

export interface Endpoint {
  app: string;
  name: string;
  interface: string;
  role: 'provider' | 'requirer';
  /** charm.yaml's `limit`: how many relations the endpoint may have at once. */
  limit?: number;
}

export function endpointsOf(app: string, meta: Pick<CharmMeta, 'provides' | 'requires'>): Endpoint[] {
  return [
    ...Object.values(meta.provides).map((e) => ({ app, name: e.name, interface: e.interface, role: 'provider' as const, ...(e.limit !== undefined ? { limit: e.limit } : {}) })),
    ...Object.values(meta.requires).map((e) => ({ app, name: e.name, interface: e.interface, role: 'requirer' as const, ...(e.limit !== undefined ? { limit: e.limit } : {}) })),
  ];
}

const show = (e: Endpoint) => `${e.app}:${e.name} (${e.role === 'provider' ? 'provides' : 'requires'} ${e.interface})`;

/**
 * Which endpoints `integrate A B` joins: a provider and a requirer of the same interface, one
 * per application, narrowed by the endpoint names given. Exactly one pair, or an error saying
 * why with the candidates (Juju's rules; peer endpoints never take part).
 */
export function matchEndpoints(a: EndpointSpec, aEndpoints: Endpoint[], b: EndpointSpec, bEndpoints: Endpoint[]): { provider: Endpoint; requirer: Endpoint } {
  if (a.app === b.app) throw new UserError(`cannot integrate ${a.app} with itself (units of one application meet in its peer relation)`);
  const pick = (spec: EndpointSpec, all: Endpoint[]) => {
    if (spec.endpoint === undefined) return all;
    const e = all.filter((x) => x.name === spec.endpoint);
    if (!e.length) {
      throw new UserError(`${spec.app} has no endpoint ${JSON.stringify(spec.endpoint)}: ${all.length ? `its endpoints are ${all.map(show).join(', ')}` : 'it has no provides or requires endpoints'}`);
    }
    return e;
  };
  const as = pick(a, aEndpoints);
  const bs = pick(b, bEndpoints);
  const pairs: { provider: Endpoint; requirer: Endpoint }[] = [];
  for (const x of as) for (const y of bs) if (x.interface === y.interface && x.role !== y.role) pairs.push(x.role === 'provider' ? { provider: x, requirer: y } : { provider: y, requirer: x });
  if (pairs.length === 1) return pairs[0]!;
  if (!pairs.length) {
    throw new UserError(
      `no matching endpoints between ${a.app} and ${b.app}: a provider and a requirer of the same interface are needed. ${a.app}: ${as.map(show).join(', ') || 'none'}; ${b.app}: ${bs.map(show).join(', ') || 'none'}`,
    );
  }
  throw new UserError(`ambiguous integration between ${a.app} and ${b.app}: name the endpoints, one of ${pairs.map((p) => `${p.provider.app}:${p.provider.name} ${p.requirer.app}:${p.requirer.name}`).join(' | ')}`);
}

/** Every relation between applications in the namespace. */
export async function listRelations(kube: Kube): Promise<RelationRecord[]> {
  const l = await kube.core.listNamespacedConfigMap({ namespace: kube.namespace, labelSelector: `${LABELS.kind}=relation` });
  return l.items.map(decodeRelation).filter((r): r is RelationRecord => Boolean(r)).sort((x, y) => x.id - y.id);
}

async function metaOf(kube: Kube, app: string, apps: readonly string[]): Promise<CharmMeta> {
  if (!apps.includes(app)) throw new UserError(`no application ${app} in this model${apps.length ? `: applications are ${[...apps].sort().join(', ')}` : ''}`);
  const c = await readConfig(new Store(kube, app));
  if (!c) throw new UserError(`${app} has no stored charm metadata yet`);
  return c.meta;
}

/** The next relation id: a compare-and-swap on ConfigMap pgcharm-relations, so two integrates never share one. */
async function nextRelationId(kube: Kube): Promise<number> {
  const ns = kube.namespace;
  for (let attempt = 0; attempt < 50; attempt++) {
    let cm: V1ConfigMap | undefined;
    try {
      cm = await kube.core.readNamespacedConfigMap({ name: RELATION_COUNTER, namespace: ns });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    try {
      if (!cm) {
        await kube.core.createNamespacedConfigMap({ namespace: ns, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: RELATION_COUNTER, labels: { [LABELS.managedBy]: 'pgcharm', [LABELS.kind]: 'relation-counter' } }, data: { next: '2' } } });
        return 1;
      }
      const id = Number(cm.data?.['next'] ?? '1');
      cm.data = { ...cm.data, next: String(id + 1) };
      await kube.core.replaceNamespacedConfigMap({ name: RELATION_COUNTER, namespace: ns, body: cm });
      return id;
    } catch (e) {
      if (!isConflict(e)) throw e;
    }
  }
  throw new Error('could not allocate a relation id: too many concurrent writers');
}

/** `pgcharm integrate A[:ep] B[:ep]`: checks, then records the relation; the agents of both sides take it from there. */
export async function integrate(kube: Kube, aSpec: string, bSpec: string): Promise<RelationRecord> {
  const a = parseEndpointSpec(aSpec, 'first application');
  const b = parseEndpointSpec(bSpec, 'second application');
  const apps = [...(await deployments(kube)).keys()];
  const [am, bm] = await Promise.all([metaOf(kube, a.app, apps), metaOf(kube, b.app, apps)]);
  const { provider, requirer } = matchEndpoints(a, endpointsOf(a.app, am), b, endpointsOf(b.app, bm));
  const all = await listRelations(kube);
  const existing = all.find((r) => r.provider.app === provider.app && r.provider.endpoint === provider.name && r.requirer.app === requirer.app && r.requirer.endpoint === requirer.name);
  if (existing) throw new UserError(`${provider.app}:${provider.name} and ${requirer.app}:${requirer.name} are already integrated (relation ${existing.id}${existing.dying ? ', being removed' : ''})`);
  for (const e of [provider, requirer]) {
    const n = all.filter((r) => (r.provider.app === e.app && r.provider.endpoint === e.name) || (r.requirer.app === e.app && r.requirer.endpoint === e.name)).length;
    if (e.limit !== undefined && n >= e.limit) throw new UserError(`${e.app}:${e.name} has ${n} relation${n === 1 ? '' : 's'} already, its limit (charm.yaml: limit: ${e.limit})`);
  }
  const id = await nextRelationId(kube);
  const record = { id, interface: provider.interface, provider: { app: provider.app, endpoint: provider.name }, requirer: { app: requirer.app, endpoint: requirer.name } };
  const { labels, data } = encodeRelation(record);
  await kube.core.createNamespacedConfigMap({ namespace: kube.namespace, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: relationObjects.relation(id), labels }, data } });
  return { ...record, dying: false };
}

/** The relation `remove-relation` means: by id, or by the two applications (endpoints narrowing it). */
export function findRelation(all: RelationRecord[], a: string, b?: string): RelationRecord {
  if (b === undefined && /^\d+$/.test(a)) {
    const r = all.find((x) => x.id === Number(a));
    if (!r) throw new UserError(`no relation ${a}${all.length ? `: relations are ${all.map((x) => x.id).join(', ')}` : ''}`);
    return r;
  }
  if (b === undefined) throw new UserError('remove-relation: give two applications (A[:endpoint] B[:endpoint]) or a relation id');
  const x = parseEndpointSpec(a, 'first application');
  const y = parseEndpointSpec(b, 'second application');
  const fits = (s: EndpointSpec, end: { app: string; endpoint: string }) => s.app === end.app && (s.endpoint === undefined || s.endpoint === end.endpoint);
  const found = all.filter((r) => (fits(x, r.provider) && fits(y, r.requirer)) || (fits(y, r.provider) && fits(x, r.requirer)));
  if (!found.length) throw new UserError(`no relation between ${a} and ${b}`);
  if (found.length > 1) throw new UserError(`several relations between ${a} and ${b}: name the endpoints or the id (${found.map((r) => `${r.id}: ${r.provider.app}:${r.provider.endpoint} ${r.requirer.app}:${r.requirer.endpoint}`).join(', ')})`);
  return found[0]!;
}

/**
 * `remove-relation`: marks the relation dying; every unit of both sides runs -departed and
 * -broken and removes its bag; once no bag is left the relation goes. With `force`, what is
 * left after the wait (a unit that is down) is deleted too.
 */
export async function removeRelation(kube: Kube, r: RelationRecord, o: { timeoutMs: number; force: boolean; say: (s: string) => void }): Promise<'removed' | 'dying'> {
  const ns = kube.namespace;
  const name = relationObjects.relation(r.id);
  if (!r.dying) {
    await kube.core.patchNamespacedConfigMap({ name, namespace: ns, body: { metadata: { annotations: { [DYING_ANNOTATION]: 'true' } } } }, mergePatch);
  }
  // Done when every unit left (its bag gone); the application bags are the leaders' to delete,
  // but a leader that changed between the -broken hooks may have left one: deleted here.
  const bags = async (kind: string) => (await kube.core.listNamespacedConfigMap({ namespace: ns, labelSelector: `${RELATION_ID_LABEL}=${r.id},${LABELS.kind}=${kind}` })).items;
  const deadline = Date.now() + o.timeoutMs;
  let left = await bags('relation-unit-bag');
  while (left.length && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 200));
    left = await bags('relation-unit-bag');
  }
  if (left.length && !o.force) {
    o.say(`relation ${r.id} is being removed; still in it: ${left.map((c) => c.metadata?.labels?.[LABELS.unit] ?? '?').join(', ')} (a unit that is down leaves when it comes back; --force removes it anyway)`);
    return 'dying';
  }
  for (const c of [...left, ...(await bags('relation-app-bag'))]) await kube.core.deleteNamespacedConfigMap({ name: c.metadata!.name!, namespace: ns }).catch(() => undefined);
  await kube.core.deleteNamespacedConfigMap({ name, namespace: ns }).catch((e: unknown) => {
    if (!isNotFound(e)) throw e;
  });
  return 'removed';
}
