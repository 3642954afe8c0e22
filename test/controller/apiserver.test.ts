import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '#client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeKubeconfig } from '../../agent/controller/kubeconfig.js';
import { clients, failure, NS, raw, startTestServer, type TestServer } from './helpers/server.js';

/**
 * Every verb through @kubernetes/client-node against a running server, as the agents use it:
 * the same calls would run against a real cluster.
 */

let t: TestServer;
const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const jsonPatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch);
const strategic = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch);

beforeAll(async () => {
  t = await startTestServer();
});

afterAll(async () => {
  await t?.cleanup();
});

const cm = (name: string, labels: Record<string, string> = {}, data: Record<string, string> = {}): k8s.V1ConfigMap => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, labels },
  data,
});

const names = (l: { items: { metadata?: { name?: string } }[] }) => l.items.map((o) => o.metadata!.name).sort();

describe('discovery and health', () => {
  it('answers health probes without a token', async () => {
    for (const p of ['/healthz', '/livez', '/readyz']) {
      const r = await raw(t, 'GET', p, { token: null });
      expect([r.status, r.text]).toEqual([200, 'ok']);
    }
  });

  it('serves the discovery documents', async () => {
    expect((await raw(t, 'GET', '/version')).json).toMatchObject({ major: '1', gitVersion: expect.stringMatching(/^v1\./) });
    expect((await raw(t, 'GET', '/api')).json).toMatchObject({ kind: 'APIVersions', versions: ['v1'] });
    const apis = (await raw(t, 'GET', '/apis')).json;
    expect(apis.groups.map((g: { name: string }) => g.name)).toEqual(['coordination.k8s.io']);
    const v1 = (await raw(t, 'GET', '/api/v1')).json;
    expect(v1.resources.map((r: { name: string }) => r.name)).toEqual(['configmaps', 'events', 'namespaces', 'pods', 'pods/status', 'secrets']);
    const coord = (await raw(t, 'GET', '/apis/coordination.k8s.io/v1')).json;
    expect(coord).toMatchObject({ groupVersion: 'coordination.k8s.io/v1', resources: [{ name: 'leases', kind: 'Lease', namespaced: true }] });
    expect((await raw(t, 'GET', '/apis/coordination.k8s.io')).json).toMatchObject({ kind: 'APIGroup', preferredVersion: { version: 'v1' } });
    // Aggregated discovery is not offered: the plain form answers, which client-go falls back to.
    const agg = await raw(t, 'GET', '/apis', { accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json' });
    expect(agg.json.kind).toBe('APIGroupList');
  });

  it('serves just enough OpenAPI for kubectl to leave validation to the server', async () => {
    const root = (await raw(t, 'GET', '/openapi/v3')).json;
    expect(Object.keys(root.paths)).toEqual(['api/v1', 'apis/coordination.k8s.io/v1']);
    const doc = (await raw(t, 'GET', root.paths['api/v1'].serverRelativeURL)).json;
    const patch = doc.paths['/api/v1/namespaces/{namespace}/configmaps/{name}'].patch;
    expect(patch['x-kubernetes-group-version-kind']).toEqual({ group: '', version: 'v1', kind: 'ConfigMap' });
    expect(patch.parameters.map((p: { name: string }) => p.name)).toContain('fieldValidation');
    const v2 = await raw(t, 'GET', '/openapi/v2', { accept: 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf' });
    expect([v2.status, v2.text]).toEqual([200, '']);
    expect((await raw(t, 'GET', '/openapi/v3/apis/apps/v1')).status).toBe(404);
    expect((await raw(t, 'GET', '/openapi/v3', { token: null })).status).toBe(401);
  });

  it('answers namespaces: any DNS label exists', async () => {
    expect((await t.core.readNamespace({ name: 'anything' })).status?.phase).toBe('Active');
    expect((await failure(t.core.readNamespace({ name: 'Not_A_Label' }))).code).toBe(404);
    expect(names(await t.core.listNamespace())).toContain('default');
  });
});

describe('authentication', () => {
  it('refuses requests without a token', async () => {
    const r = await raw(t, 'GET', `/api/v1/namespaces/${NS}/configmaps`, { token: null });
    expect(r.status).toBe(401);
    expect(r.json).toMatchObject({ kind: 'Status', reason: 'Unauthorized', code: 401 });
  });

  it('refuses a wrong token, through client-node too', async () => {
    const kubeconfig = path.join(t.dir, 'wrong-token');
    writeKubeconfig(kubeconfig, { server: t.server.url, token: `${t.token}x`, namespace: NS, name: 'wrong', ca: t.server.ca });
    const { core } = clients(kubeconfig);
    const f = await failure(core.listNamespacedConfigMap({ namespace: NS }));
    expect(f.code).toBe(401);
    expect(fs.statSync(kubeconfig).mode & 0o777).toBe(0o600);
  });
});

describe('ConfigMaps', () => {
  it('creates with server-set metadata and gets it back', async () => {
    const created = await t.core.createNamespacedConfigMap({ namespace: NS, body: cm('alpha', { app: 'db', tier: 'a' }, { k: 'v' }) });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number(created.metadata?.resourceVersion)).toBeGreaterThan(0);
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(created.metadata?.namespace).toBe(NS);
    const got = await t.core.readNamespacedConfigMap({ name: 'alpha', namespace: NS });
    expect(got.data).toEqual({ k: 'v' });
    expect(got.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
  });

  it('refuses a second object with the same name (409 AlreadyExists)', async () => {
    const f = await failure(t.core.createNamespacedConfigMap({ namespace: NS, body: cm('alpha') }));
    expect(f.code).toBe(409);
    expect(f.body).toMatchObject({ reason: 'AlreadyExists', message: 'configmaps "alpha" already exists', details: { name: 'alpha', kind: 'configmaps' } });
  });

  it('generates names from generateName', async () => {
    const a = await t.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { generateName: 'gen-', labels: { gen: 'yes' } } } });
    const b = await t.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { generateName: 'gen-', labels: { gen: 'yes' } } } });
    expect(a.metadata?.name).toMatch(/^gen-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    expect(b.metadata?.name).not.toBe(a.metadata?.name);
    expect((await t.core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'gen=yes' })).items).toHaveLength(2);
  });

  it('lists with label selectors of every operator', async () => {
    await t.core.createNamespacedConfigMap({ namespace: NS, body: cm('beta', { app: 'db', tier: 'b' }) });
    await t.core.createNamespacedConfigMap({ namespace: NS, body: cm('gamma', { app: 'web' }) });
    await t.core.createNamespacedConfigMap({ namespace: NS, body: cm('delta', { other: 'x' }) });
    const sel = async (labelSelector: string) => names(await t.core.listNamespacedConfigMap({ namespace: NS, labelSelector })).filter((n) => !n!.startsWith('gen-'));
    expect(await sel('app=db')).toEqual(['alpha', 'beta']);
    expect(await sel('app==web')).toEqual(['gamma']);
    expect(await sel('app!=db')).toEqual(['delta', 'gamma']);
    expect(await sel('app in (web, db),tier notin (a)')).toEqual(['beta', 'gamma']);
    expect(await sel('tier')).toEqual(['alpha', 'beta']);
    expect(await sel('!app')).toEqual(['delta']);
    expect((await failure(t.core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'app in db' }))).code).toBe(400);
  });

  it('lists with field selectors, and across namespaces', async () => {
    const byName = await t.core.listNamespacedConfigMap({ namespace: NS, fieldSelector: 'metadata.name=beta' });
    expect(names(byName)).toEqual(['beta']);
    expect(names(await t.core.listNamespacedConfigMap({ namespace: NS, fieldSelector: 'metadata.name!=beta,metadata.namespace=' + NS, labelSelector: 'app' }))).toEqual([
      'alpha',
      'gamma',
    ]);
    expect((await failure(t.core.listNamespacedConfigMap({ namespace: NS, fieldSelector: 'data.k=v' }))).body.message).toBe('field label not supported: data.k');
    await t.core.createNamespacedConfigMap({ namespace: 'elsewhere', body: cm('alpha', { app: 'db' }) });
    const all = await t.core.listConfigMapForAllNamespaces({ labelSelector: 'app=db' });
    expect(all.items.map((o) => `${o.metadata?.namespace}/${o.metadata?.name}`)).toEqual(['elsewhere/alpha', `${NS}/alpha`, `${NS}/beta`]);
    expect(Number(all.metadata?.resourceVersion)).toBeGreaterThan(0);
  });

  it('pages lists with limit and continue, at one resourceVersion', async () => {
    const first = await t.core.listNamespacedConfigMap({ namespace: NS, limit: 2 });
    expect(first.items).toHaveLength(2);
    expect(first.metadata?._continue).toBeTruthy();
    await t.core.createNamespacedConfigMap({ namespace: NS, body: cm('zzz-after-first-page') });
    let items = [...first.items];
    let cont = first.metadata?._continue;
    while (cont) {
      const page = await t.core.listNamespacedConfigMap({ namespace: NS, limit: 2, _continue: cont });
      expect(page.metadata?.resourceVersion).toBe(first.metadata?.resourceVersion);
      items = items.concat(page.items);
      cont = page.metadata?._continue;
    }
    expect(names({ items })).not.toContain('zzz-after-first-page');
    expect(names({ items })).toEqual(names(await t.core.listNamespacedConfigMap({ namespace: NS, resourceVersion: first.metadata!.resourceVersion!, resourceVersionMatch: 'Exact' })));
  });

  it('replaces with compare-and-swap on resourceVersion', async () => {
    const cur = await t.core.readNamespacedConfigMap({ name: 'beta', namespace: NS });
    const next = await t.core.replaceNamespacedConfigMap({ name: 'beta', namespace: NS, body: { ...cur, data: { n: '1' } } });
    expect(Number(next.metadata?.resourceVersion)).toBeGreaterThan(Number(cur.metadata?.resourceVersion));
    expect(next.metadata?.uid).toBe(cur.metadata?.uid);
    // The stale copy loses.
    const f = await failure(t.core.replaceNamespacedConfigMap({ name: 'beta', namespace: NS, body: { ...cur, data: { n: 'stale' } } }));
    expect(f.code).toBe(409);
    expect(f.body).toMatchObject({
      reason: 'Conflict',
      message: 'Operation cannot be fulfilled on configmaps "beta": the object has been modified; please apply your changes to the latest version and try again',
    });
    expect((await t.core.readNamespacedConfigMap({ name: 'beta', namespace: NS })).data).toEqual({ n: '1' });
    // Without a resourceVersion the update is unconditional.
    const uncond = await t.core.replaceNamespacedConfigMap({ name: 'beta', namespace: NS, body: cm('beta', { app: 'db', tier: 'b' }, { n: '2' }) });
    expect(uncond.data).toEqual({ n: '2' });
    expect(uncond.metadata?.creationTimestamp).toEqual(cur.metadata?.creationTimestamp);
  });

  it('does not bump the resourceVersion for an update that changes nothing', async () => {
    const cur = await t.core.readNamespacedConfigMap({ name: 'beta', namespace: NS });
    const same = await t.core.replaceNamespacedConfigMap({ name: 'beta', namespace: NS, body: cur });
    expect(same.metadata?.resourceVersion).toBe(cur.metadata?.resourceVersion);
  });

  it('answers 404 for replacing or patching a missing object, 400 for a name that differs from the URL', async () => {
    expect((await failure(t.core.replaceNamespacedConfigMap({ name: 'nope', namespace: NS, body: cm('nope') }))).body).toMatchObject({
      code: 404,
      reason: 'NotFound',
      message: 'configmaps "nope" not found',
    });
    expect((await failure(t.core.patchNamespacedConfigMap({ name: 'nope', namespace: NS, body: { data: {} } }, merge))).code).toBe(404);
    const f = await failure(t.core.replaceNamespacedConfigMap({ name: 'beta', namespace: NS, body: cm('gamma') }));
    expect(f.body).toMatchObject({ code: 400, reason: 'BadRequest', message: 'the name of the object (gamma) does not match the name on the URL (beta)' });
  });

  it('applies merge patches (null removes a key)', async () => {
    await t.core.patchNamespacedConfigMap({ name: 'gamma', namespace: NS, body: { data: { a: '1', b: '2' } } }, merge);
    const p = await t.core.patchNamespacedConfigMap({ name: 'gamma', namespace: NS, body: { data: { a: null, c: '3' }, metadata: { labels: { patched: 'yes' } } } }, merge);
    expect(p.data).toEqual({ b: '2', c: '3' });
    expect(p.metadata?.labels).toEqual({ app: 'web', patched: 'yes' });
  });

  it('applies JSON patches, and a failing test op changes nothing (422)', async () => {
    const before = await t.core.readNamespacedConfigMap({ name: 'gamma', namespace: NS });
    const p = await t.core.patchNamespacedConfigMap(
      {
        name: 'gamma',
        namespace: NS,
        body: [
          { op: 'test', path: '/data/b', value: '2' },
          { op: 'replace', path: '/data/b', value: 'two' },
          { op: 'add', path: '/metadata/annotations', value: { note: 'x' } },
        ],
      },
      jsonPatch,
    );
    expect(p.data?.['b']).toBe('two');
    expect(p.metadata?.annotations).toEqual({ note: 'x' });
    const f = await failure(
      t.core.patchNamespacedConfigMap(
        {
          name: 'gamma',
          namespace: NS,
          body: [
            { op: 'replace', path: '/data/c', value: 'changed' },
            { op: 'test', path: '/data/b', value: '2' },
          ],
        },
        jsonPatch,
      ),
    );
    expect(f.code).toBe(422);
    expect(f.body.message).toMatch(/testing value \/data\/b failed/);
    const after = await t.core.readNamespacedConfigMap({ name: 'gamma', namespace: NS });
    expect(after.data?.['c']).toBe('3');
    expect(Number(after.metadata?.resourceVersion)).toBe(Number(before.metadata?.resourceVersion) + 1);
    // A patch carrying a stale resourceVersion is a compare-and-swap too.
    const stale = await failure(t.core.patchNamespacedConfigMap({ name: 'gamma', namespace: NS, body: { metadata: { resourceVersion: before.metadata?.resourceVersion }, data: { z: '1' } } }, merge));
    expect(stale.code).toBe(409);
  });

  it('treats strategic merge patches as merge patches and refuses unknown patch types (415)', async () => {
    const p = await t.core.patchNamespacedConfigMap({ name: 'gamma', namespace: NS, body: { data: { s: 'smp' } } }, strategic);
    expect(p.data?.['s']).toBe('smp');
    const apply = await raw(t, 'PATCH', `/api/v1/namespaces/${NS}/configmaps/gamma`, { body: 'data: {x: y}', contentType: 'application/apply-patch+yaml' });
    expect(apply.status).toBe(415);
    expect(apply.json.reason).toBe('UnsupportedMediaType');
  });

  it('deletes with preconditions (409 on a stale resourceVersion or uid)', async () => {
    const cur = await t.core.readNamespacedConfigMap({ name: 'delta', namespace: NS });
    const staleRv = await failure(t.core.deleteNamespacedConfigMap({ name: 'delta', namespace: NS, body: { preconditions: { resourceVersion: '1' } } }));
    expect(staleRv.code).toBe(409);
    expect(staleRv.body.message).toMatch(/Precondition failed: ResourceVersion in precondition: 1/);
    const staleUid = await failure(t.core.deleteNamespacedConfigMap({ name: 'delta', namespace: NS, body: { preconditions: { uid: 'not-the-uid' } } }));
    expect(staleUid.code).toBe(409);
    const st = await t.core.deleteNamespacedConfigMap({
      name: 'delta',
      namespace: NS,
      body: { preconditions: { resourceVersion: cur.metadata!.resourceVersion!, uid: cur.metadata!.uid! } },
    });
    expect(st).toMatchObject({ kind: 'Status', status: 'Success', details: { name: 'delta', kind: 'configmaps', uid: cur.metadata?.uid } });
    expect((await failure(t.core.readNamespacedConfigMap({ name: 'delta', namespace: NS }))).code).toBe(404);
    expect((await failure(t.core.deleteNamespacedConfigMap({ name: 'delta', namespace: NS }))).code).toBe(404);
  });

  it('deletes collections by selector', async () => {
    await t.core.deleteCollectionNamespacedConfigMap({ namespace: NS, labelSelector: 'gen=yes' });
    expect((await t.core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'gen=yes' })).items).toHaveLength(0);
  });

  it('dry runs validate without storing', async () => {
    const rv = (await t.core.listNamespacedConfigMap({ namespace: NS })).metadata?.resourceVersion;
    await t.core.createNamespacedConfigMap({ namespace: NS, body: cm('dry'), dryRun: 'All' });
    expect((await failure(t.core.readNamespacedConfigMap({ name: 'dry', namespace: NS }))).code).toBe(404);
    expect((await t.core.listNamespacedConfigMap({ namespace: NS })).metadata?.resourceVersion).toBe(rv);
  });
});

describe('validation: 422 naming each field, and nothing stored', () => {
  it('reports every invalid field of a ConfigMap at once', async () => {
    const rv = (await t.core.listNamespacedConfigMap({ namespace: NS })).metadata?.resourceVersion;
    const f = await failure(
      t.core.createNamespacedConfigMap({
        namespace: NS,
        body: { metadata: { name: 'Bad_Name', labels: { 'bad key!': 'v', ok: 'bad value!' } }, data: { 'bad/key': 'x', good: 'y' } },
      }),
    );
    expect(f.code).toBe(422);
    expect(f.body.reason).toBe('Invalid');
    expect(f.body.message).toMatch(/^ConfigMap "Bad_Name" is invalid: \[metadata\.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/);
    expect(f.body.details.causes.map((c: { field: string }) => c.field)).toEqual(['metadata.name', 'metadata.labels', 'metadata.labels', 'data[bad/key]']);
    expect(f.body.details).toMatchObject({ name: 'Bad_Name', kind: 'ConfigMap' });
    expect((await t.core.listNamespacedConfigMap({ namespace: NS })).metadata?.resourceVersion).toBe(rv);
  });

  it('refuses data values that are not strings, and too-large objects', async () => {
    const notString = await raw(t, 'POST', `/api/v1/namespaces/${NS}/configmaps`, { body: { metadata: { name: 'typed' }, data: { n: 1 } } });
    expect(notString.status).toBe(422);
    expect(notString.json.details.causes).toEqual([{ reason: 'FieldValueTypeInvalid', message: 'Invalid value: 1: must be a string, got a number', field: 'data[n]' }]);
    const big = await failure(t.core.createNamespacedConfigMap({ namespace: NS, body: cm('big', {}, { blob: 'x'.repeat(1024 * 1024 + 1) }) }));
    expect(big.code).toBe(422);
    expect(big.body.details.causes[0].reason).toBe('FieldValueTooLong');
    expect((await failure(t.core.readNamespacedConfigMap({ name: 'big', namespace: NS }))).code).toBe(404);
  });

  it('refuses annotations over 256 KiB', async () => {
    const f = await failure(t.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'annotated', annotations: { a: 'x'.repeat(256 * 1024) } } } }));
    expect(f.body.details.causes).toEqual([{ reason: 'FieldValueTooLong', message: 'Too long: must have at most 262144 bytes', field: 'metadata.annotations' }]);
  });

  it('answers 400 for malformed JSON, a wrong kind or apiVersion, and a namespace that differs from the URL', async () => {
    const bad = await raw(t, 'POST', `/api/v1/namespaces/${NS}/configmaps`, { body: '{"metadata": {' });
    expect([bad.status, bad.json.reason]).toEqual([400, 'BadRequest']);
    const kind = await raw(t, 'POST', `/api/v1/namespaces/${NS}/configmaps`, { body: { kind: 'Secret', apiVersion: 'v1', metadata: { name: 'k' } } });
    expect([kind.status, kind.json.message]).toEqual([400, 'the kind in the data (Secret) does not match the expected kind (ConfigMap)']);
    const version = await raw(t, 'POST', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`, { body: { kind: 'Lease', apiVersion: 'coordination.k8s.io/v1beta1', metadata: { name: 'l' } } });
    expect(version.status).toBe(400);
    const ns = await failure(t.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'n', namespace: 'other' } } }));
    expect(ns.code).toBe(400);
  });

  it('answers 405 for a method a path does not take, 404 for unknown resources', async () => {
    expect((await raw(t, 'POST', `/api/v1/namespaces/${NS}/configmaps/alpha`, { body: {} })).json).toMatchObject({ code: 405, reason: 'MethodNotAllowed' });
    expect((await raw(t, 'POST', '/api/v1/configmaps', { body: {} })).status).toBe(405);
    expect((await raw(t, 'GET', `/api/v1/namespaces/${NS}/services`)).status).toBe(404);
  });

  it('drops unknown fields with a warning, or refuses them with fieldValidation=Strict', async () => {
    const warn = await raw(t, 'POST', `/api/v1/namespaces/${NS}/configmaps`, { body: { metadata: { name: 'extra' }, spec: { x: 1 } } });
    expect(warn.status).toBe(201);
    expect(warn.headers.get('warning')).toBe('299 - "unknown field \\"spec\\""');
    expect(warn.json.spec).toBeUndefined();
    const strict = await raw(t, 'POST', `/api/v1/namespaces/${NS}/configmaps?fieldValidation=Strict`, { body: { metadata: { name: 'extra2' }, spec: { x: 1 } } });
    expect([strict.status, strict.json.message]).toEqual([400, 'strict decoding error: unknown field "spec"']);
  });
});

describe('Secrets', () => {
  it('merges stringData into data and never stores it', async () => {
    const s = await t.core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'pw' }, data: { a: Buffer.from('A').toString('base64') }, stringData: { b: 'B', a: 'over' } } });
    expect(s.type).toBe('Opaque');
    expect(s.stringData).toBeUndefined();
    expect(Buffer.from(s.data!['a']!, 'base64').toString()).toBe('over');
    expect(Buffer.from(s.data!['b']!, 'base64').toString()).toBe('B');
  });

  it('refuses data that is not base64, bad keys, and a change of type', async () => {
    const f = await failure(t.core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'bad' }, data: { a: 'not base64!', '..x': 'QQ==' } } }));
    expect(f.body.details.causes.map((c: { field: string }) => c.field).sort()).toEqual(['data[..x]', 'data[a]']);
    const cur = await t.core.readNamespacedSecret({ name: 'pw', namespace: NS });
    const ty = await failure(t.core.replaceNamespacedSecret({ name: 'pw', namespace: NS, body: { ...cur, type: 'kubernetes.io/basic-auth' } }));
    expect(ty.code).toBe(422);
  });

  it('keeps immutable ones immutable', async () => {
    const s = await t.core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'frozen' }, immutable: true, stringData: { a: 'x' } } });
    const f = await failure(t.core.replaceNamespacedSecret({ name: 'frozen', namespace: NS, body: { ...s, stringData: { a: 'y' } } }));
    expect(f.body.details.causes[0]).toMatchObject({ reason: 'FieldValueForbidden', field: 'data' });
  });
});

describe('Leases', () => {
  const spec = (holder: string): k8s.V1LeaseSpec => ({
    holderIdentity: holder,
    leaseDurationSeconds: 15,
    acquireTime: new k8s.V1MicroTime(),
    renewTime: new k8s.V1MicroTime(),
    leaseTransitions: 0,
  });

  it('create, read and compare-and-swap renewals', async () => {
    const l = await t.coordination.createNamespacedLease({ namespace: NS, body: { metadata: { name: 'app-leader' }, spec: spec('unit-0') } });
    expect(l.spec?.holderIdentity).toBe('unit-0');
    const raw1 = await raw(t, 'GET', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/app-leader`);
    expect(raw1.json.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    const renewed = await t.coordination.replaceNamespacedLease({ name: 'app-leader', namespace: NS, body: { ...l, spec: { ...l.spec, renewTime: new k8s.V1MicroTime() } } });
    expect(Number(renewed.metadata?.resourceVersion)).toBeGreaterThan(Number(l.metadata?.resourceVersion));
    const stale = await failure(t.coordination.replaceNamespacedLease({ name: 'app-leader', namespace: NS, body: { ...l, spec: spec('unit-1') } }));
    expect([stale.code, stale.body.message]).toEqual([
      409,
      'Operation cannot be fulfilled on leases.coordination.k8s.io "app-leader": the object has been modified; please apply your changes to the latest version and try again',
    ]);
  });

  it('refuses wrong spec types and times without microseconds, naming each field', async () => {
    const f = await failure(
      t.coordination.createNamespacedLease({
        namespace: NS,
        body: { metadata: { name: 'bad-lease' }, spec: { holderIdentity: 'u', leaseDurationSeconds: 0, renewTime: new Date() } },
      }),
    );
    expect(f.code).toBe(422);
    expect(f.body.details.causes.map((c: { field: string }) => c.field)).toEqual(['spec.leaseDurationSeconds', 'spec.renewTime']);
    const typed = await raw(t, 'POST', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`, {
      body: { metadata: { name: 'typed' }, spec: { holderIdentity: 7, leaseDurationSeconds: 1.5, leaseTransitions: '1', acquireTime: 'yesterday' } },
    });
    expect(typed.json.details.causes.map((c: { field: string }) => c.field)).toEqual(['spec.holderIdentity', 'spec.leaseDurationSeconds', 'spec.leaseTransitions', 'spec.acquireTime']);
  });
});

describe('Events', () => {
  it('are found by involvedObject field selectors, as kubectl describe asks', async () => {
    const target = await t.core.readNamespacedConfigMap({ name: 'alpha', namespace: NS });
    const ref = { kind: 'ConfigMap', name: 'alpha', namespace: NS, uid: target.metadata!.uid! };
    await t.core.createNamespacedEvent({
      namespace: NS,
      body: { metadata: { name: 'alpha.1' }, involvedObject: ref, reason: 'Tested', message: 'hello', type: 'Normal', count: 1, firstTimestamp: new Date(), lastTimestamp: new Date() },
    });
    await t.core.createNamespacedEvent({ namespace: NS, body: { metadata: { name: 'beta.1' }, involvedObject: { ...ref, name: 'beta', uid: 'other' }, reason: 'Other' } });
    const sel = `involvedObject.name=alpha,involvedObject.namespace=${NS},involvedObject.kind=ConfigMap,involvedObject.uid=${ref.uid}`;
    expect(names(await t.core.listNamespacedEvent({ namespace: NS, fieldSelector: sel }))).toEqual(['alpha.1']);
    const bad = await failure(t.core.createNamespacedEvent({ namespace: NS, body: { metadata: { name: 'x.1' }, involvedObject: { ...ref, namespace: 'elsewhere' } } }));
    expect(bad.body.details.causes[0]).toMatchObject({ field: 'involvedObject.namespace' });
  });
});

describe('Pods', () => {
  const pod = (name: string, nodeName?: string): k8s.V1Pod => ({
    metadata: { name, labels: { app: 'pg' } },
    spec: { containers: [{ name: 'postgresql', image: 'postgres:15' }], ...(nodeName ? { nodeName } : {}) },
  });

  it('start Pending; status changes go through the status subresource only', async () => {
    const p = await t.core.createNamespacedPod({ namespace: NS, body: { ...pod('pg-0', 'local'), status: { phase: 'Running' } } });
    expect(p.status?.phase).toBe('Pending');
    expect(p.spec?.restartPolicy).toBe('Always');
    const ignored = await t.core.replaceNamespacedPod({ name: 'pg-0', namespace: NS, body: { ...p, status: { phase: 'Failed' } } });
    expect(ignored.status?.phase).toBe('Pending');
    const running = await t.core.replaceNamespacedPodStatus({ name: 'pg-0', namespace: NS, body: { ...p, metadata: { ...p.metadata, labels: { changed: 'no' } }, status: { phase: 'Running', podIP: '127.0.0.1' } } });
    expect(running.status).toEqual({ phase: 'Running', podIP: '127.0.0.1' });
    expect(running.metadata?.labels).toEqual({ app: 'pg' });
    const spec = await failure(t.core.patchNamespacedPod({ name: 'pg-0', namespace: NS, body: { spec: { nodeName: 'other' } } }, merge));
    expect([spec.code, spec.body.details.causes[0].field]).toEqual([422, 'spec']);
    const image = await t.core.patchNamespacedPod({ name: 'pg-0', namespace: NS, body: [{ op: 'replace', path: '/spec/containers/0/image', value: 'postgres:16' }] }, jsonPatch);
    expect(image.spec?.containers[0]?.image).toBe('postgres:16');
  });

  it('refuses pods without containers or images', async () => {
    const f = await failure(t.core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'empty' }, spec: { containers: [{ name: 'x' } as k8s.V1Container] } } }));
    expect(f.body.details.causes.map((c: { field: string }) => c.field)).toEqual(['spec.containers[0].image']);
  });

  it('on a node are deleted gracefully: marked first, gone after a delete with grace 0', async () => {
    const r = await raw(t, 'DELETE', `/api/v1/namespaces/${NS}/pods/pg-0`);
    expect(r.status).toBe(202);
    expect(r.json.metadata.deletionTimestamp).toBeTruthy();
    expect(r.json.metadata.deletionGracePeriodSeconds).toBe(30);
    expect((await t.core.readNamespacedPod({ name: 'pg-0', namespace: NS })).metadata?.deletionTimestamp).toBeTruthy();
    const gone = await t.core.deleteNamespacedPod({ name: 'pg-0', namespace: NS, gracePeriodSeconds: 0 });
    expect((gone as k8s.V1Pod).metadata?.name).toBe('pg-0');
    expect((await failure(t.core.readNamespacedPod({ name: 'pg-0', namespace: NS }))).code).toBe(404);
    // Not on a node: deleted at once.
    await t.core.createNamespacedPod({ namespace: NS, body: pod('pg-1') });
    expect((await raw(t, 'DELETE', `/api/v1/namespaces/${NS}/pods/pg-1`)).status).toBe(200);
  });

  it('with finalizers stay until an update removes them', async () => {
    const c = await t.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'fin', finalizers: ['pgcharm.io/keep'] } } });
    const marked = await raw(t, 'DELETE', `/api/v1/namespaces/${NS}/configmaps/fin`);
    expect(marked.status).toBe(202);
    const add = await failure(t.core.patchNamespacedConfigMap({ name: 'fin', namespace: NS, body: { metadata: { finalizers: ['pgcharm.io/keep', 'new.io/f'] } } }, merge));
    expect(add.code).toBe(422);
    await t.core.patchNamespacedConfigMap({ name: 'fin', namespace: NS, body: { metadata: { finalizers: null } } }, merge);
    expect((await failure(t.core.readNamespacedConfigMap({ name: 'fin', namespace: NS }))).code).toBe(404);
    expect(c.metadata?.finalizers).toEqual(['pgcharm.io/keep']);
  });
});

describe('server-side printing', () => {
  const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json';

  it('answers kubectl get with Tables', async () => {
    const r = await raw(t, 'GET', `/api/v1/namespaces/${NS}/configmaps?labelSelector=app%3Ddb`, { accept: TABLE });
    expect(r.json).toMatchObject({ kind: 'Table', apiVersion: 'meta.k8s.io/v1' });
    expect(r.json.columnDefinitions.map((c: { name: string }) => c.name)).toEqual(['Name', 'Data', 'Age']);
    expect(r.json.rows.map((row: { cells: unknown[] }) => row.cells.slice(0, 2))).toEqual([
      ['alpha', 1],
      ['beta', 1],
    ]);
    expect(r.json.rows[0].object).toMatchObject({ kind: 'PartialObjectMetadata', metadata: { name: 'alpha', namespace: NS } });
    const lease = await raw(t, 'GET', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/app-leader`, { accept: TABLE });
    expect(lease.json.columnDefinitions.map((c: { name: string }) => c.name)).toEqual(['Name', 'Holder', 'Age']);
    expect(lease.json.rows[0].cells.slice(0, 2)).toEqual(['app-leader', 'unit-0']);
  });

  it('refuses media types it cannot produce (406)', async () => {
    expect((await raw(t, 'GET', `/api/v1/namespaces/${NS}/configmaps`, { accept: 'application/vnd.kubernetes.protobuf' })).status).toBe(406);
  });
});

describe('the in-process store', () => {
  it('offers the same operations and sees the same objects', async () => {
    const store = t.server.store;
    const created = await store.create('configmaps', NS, { metadata: { name: 'in-process' }, data: { a: '1' } });
    expect((await t.core.readNamespacedConfigMap({ name: 'in-process', namespace: NS })).data).toEqual({ a: '1' });
    expect(Object.isFrozen(created)).toBe(true);
    const patched = await store.patch('configmaps', NS, 'in-process', 'merge', { data: { b: '2' } });
    expect(patched.data).toEqual({ a: '1', b: '2' });
    await expect(store.replace('configmaps', NS, 'in-process', { ...created, data: {} })).rejects.toMatchObject({ code: 409, reason: 'Conflict' });
    expect(store.list('configmaps', { namespace: NS, fieldSelector: 'metadata.name=in-process' }).items).toHaveLength(1);
    await store.delete('configmaps', NS, 'in-process');
    expect(() => store.get('configmaps', NS, 'in-process')).toThrow(/not found/);
  });
});
