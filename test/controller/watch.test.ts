import * as k8s from '#client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/procs.js';
import { NS, raw, startTestServer, type TestServer } from './helpers/server.js';

/** Watches through client-node's Watch and informer, as the agents use them. */

interface Seen {
  type: string;
  name: string;
  rv: number;
  object: k8s.KubernetesObject & { data?: Record<string, string>; code?: number };
}

interface Watching {
  events: Seen[];
  /** Resolves with the error (or null) the watch ended with. */
  done: Promise<unknown>;
  stop(): void;
}

const servers: TestServer[] = [];
const watches: Watching[] = [];

async function startWatch(t: TestServer, path: string, params: Record<string, string | number | boolean>): Promise<Watching> {
  const events: Seen[] = [];
  let finished: (e: unknown) => void = () => {};
  const done = new Promise<unknown>((r) => (finished = r));
  const ctl = await new k8s.Watch(t.kc).watch(
    path,
    params,
    (type, object: Seen['object']) => events.push({ type, name: object.metadata?.name ?? '', rv: Number(object.metadata?.resourceVersion), object }),
    (err) => finished(err),
  );
  const w = { events, done, stop: () => ctl.abort() };
  watches.push(w);
  return w;
}

let t: TestServer;

beforeAll(async () => {
  t = await startTestServer({ bookmarkIntervalMs: 200 });
  servers.push(t);
});

afterEach(() => {
  for (const w of watches.splice(0)) w.stop();
});

afterAll(async () => {
  for (const s of servers) await s.cleanup();
});

const CM = `/api/v1/namespaces/${NS}/configmaps`;
const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const listRv = async (labelSelector?: string) => (await t.core.listNamespacedConfigMap({ namespace: NS, ...(labelSelector ? { labelSelector } : {}) })).metadata!.resourceVersion!;

describe('watch', () => {
  it('sees a burst of concurrent changes in resourceVersion order', async () => {
    const from = await listRv();
    const w = await startWatch(t, CM, { resourceVersion: from, labelSelector: 'burst=yes' });
    const N = 20;
    const labels = { burst: 'yes' };
    // Creates, then updates and deletes racing each other across objects.
    await Promise.all(Array.from({ length: N }, (_, i) => t.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: `b-${i}`, labels }, data: { v: '0' } } })));
    await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        await t.core.patchNamespacedConfigMap({ name: `b-${i}`, namespace: NS, body: { data: { v: '1' } } }, merge);
        await t.core.patchNamespacedConfigMap({ name: `b-${i}`, namespace: NS, body: { data: { v: '2' } } }, merge);
        if (i % 2 === 0) await t.core.deleteNamespacedConfigMap({ name: `b-${i}`, namespace: NS });
      }),
    );
    await waitFor('every burst event', () => w.events.length >= N * 3 + N / 2);
    const rvs = w.events.map((e) => e.rv);
    expect(rvs).toEqual([...rvs].sort((a, b) => a - b));
    expect(new Set(rvs).size).toBe(rvs.length);
    for (let i = 0; i < N; i++) {
      const mine = w.events.filter((e) => e.name === `b-${i}`);
      expect(mine.map((e) => e.type)).toEqual(i % 2 === 0 ? ['ADDED', 'MODIFIED', 'MODIFIED', 'DELETED'] : ['ADDED', 'MODIFIED', 'MODIFIED']);
      expect(mine.map((e) => e.object.data?.['v'])).toEqual(i % 2 === 0 ? ['0', '1', '2', '2'] : ['0', '1', '2']);
    }
    expect(rvs.at(-1)).toBe(Number(await listRv()));
  });

  it('starts with the current state as ADDED when no resourceVersion is given', async () => {
    for (const rv of [undefined, '0']) {
      const w = await startWatch(t, CM, { labelSelector: 'burst=yes', ...(rv ? { resourceVersion: rv } : {}) });
      await waitFor('initial events', () => w.events.length >= 10);
      expect(w.events.map((e) => e.type)).toEqual(Array(10).fill('ADDED'));
      await t.core.patchNamespacedConfigMap({ name: 'b-1', namespace: NS, body: { data: { v: rv ?? 'x' } } }, merge);
      await waitFor('the change', () => w.events.length === 11 && w.events[10]);
      expect(w.events[10]).toMatchObject({ type: 'MODIFIED', name: 'b-1' });
    }
  });

  it('resumes from a resourceVersion with exactly the changes after it', async () => {
    const a = await t.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'resume', labels: { r: '1' } } } });
    const b = await t.core.patchNamespacedConfigMap({ name: 'resume', namespace: NS, body: { data: { x: '1' } } }, merge);
    await t.core.deleteNamespacedConfigMap({ name: 'resume', namespace: NS });
    const w = await startWatch(t, CM, { resourceVersion: a.metadata!.resourceVersion!, labelSelector: 'r=1' });
    await waitFor('two events', () => w.events.length >= 2);
    expect(w.events.map((e) => [e.type, e.rv])).toEqual([
      ['MODIFIED', Number(b.metadata!.resourceVersion)],
      ['DELETED', Number(b.metadata!.resourceVersion) + 1],
    ]);
  });

  it('turns selector transitions into ADDED and DELETED', async () => {
    const w = await startWatch(t, CM, { resourceVersion: await listRv(), labelSelector: 'sel=on' });
    await t.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'trans' } } });
    await t.core.patchNamespacedConfigMap({ name: 'trans', namespace: NS, body: { metadata: { labels: { sel: 'on' } } } }, merge);
    await t.core.patchNamespacedConfigMap({ name: 'trans', namespace: NS, body: { data: { a: 'b' } } }, merge);
    await t.core.patchNamespacedConfigMap({ name: 'trans', namespace: NS, body: { metadata: { labels: { sel: 'off' } } } }, merge);
    await waitFor('three events', () => w.events.length >= 3);
    expect(w.events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
  });

  it('watches one object by field selector, and the legacy /watch/ path', async () => {
    const w = await startWatch(t, CM, { resourceVersion: await listRv(), fieldSelector: 'metadata.name=single' });
    await t.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'other-one' } } });
    await t.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'single' } } });
    await waitFor('the event', () => w.events.length >= 1);
    expect(w.events.map((e) => e.name)).toEqual(['single']);
    const legacy = await startWatch(t, `/api/v1/watch/namespaces/${NS}/configmaps/single`, {});
    await waitFor('the initial event', () => legacy.events.length >= 1);
    expect(legacy.events.map((e) => [e.type, e.name])).toEqual([['ADDED', 'single']]);
  });

  it('sends bookmarks when allowed', async () => {
    const w = await startWatch(t, CM, { resourceVersion: await listRv(), allowWatchBookmarks: true, labelSelector: 'none=here' });
    const bm = await waitFor('a bookmark', () => w.events.find((e) => e.type === 'BOOKMARK'), 10_000);
    expect(bm.rv).toBe(Number(await listRv()));
    expect(bm.object.kind).toBe('ConfigMap');
  });

  it('ends at timeoutSeconds', async () => {
    const w = await startWatch(t, CM, { resourceVersion: await listRv(), timeoutSeconds: 1 });
    expect(await w.done).toBeNull();
  });

  it('watches Leases too', async () => {
    const w = await startWatch(t, `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`, { resourceVersion: await listRv() });
    await t.coordination.createNamespacedLease({ namespace: NS, body: { metadata: { name: 'l1' }, spec: { holderIdentity: 'a' } } });
    await t.coordination.deleteNamespacedLease({ name: 'l1', namespace: NS });
    await waitFor('two events', () => w.events.length >= 2);
    expect(w.events.map((e) => e.type)).toEqual(['ADDED', 'DELETED']);
  });

  it('takes watch=1 and streams one JSON event per line; ends the store watch when the client goes', async () => {
    const r = await raw(t, 'GET', `${CM}?watch=1&timeoutSeconds=1&fieldSelector=metadata.name%3Dsingle`);
    expect(r.status).toBe(200);
    const lines = r.text.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toMatchObject([{ type: 'ADDED', object: { kind: 'ConfigMap', metadata: { name: 'single' } } }]);
    for (const w of watches.splice(0)) w.stop();
    await waitFor('no open watches', () => t.server.store.store.watchCount === 0);
  });

  it('refuses bad selectors before streaming (400)', async () => {
    const r = await raw(t, 'GET', `${CM}?watch=true&labelSelector=a%20in%20b`);
    expect([r.status, r.json.reason]).toEqual([400, 'BadRequest']);
  });
});

describe('watch history', () => {
  it('answers a resourceVersion older than the history with a 410 Expired ERROR event', async () => {
    const small = await startTestServer({ historyLimit: 5 });
    servers.push(small);
    const first = await small.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'h' } } });
    for (let i = 0; i < 30; i++) await small.core.patchNamespacedConfigMap({ name: 'h', namespace: NS, body: { data: { i: String(i) } } }, merge);
    const w = await startWatch(small, CM, { resourceVersion: first.metadata!.resourceVersion! });
    await w.done;
    expect(w.events).toHaveLength(1);
    expect(w.events[0]!.type).toBe('ERROR');
    expect(w.events[0]!.object).toMatchObject({ kind: 'Status', code: 410, reason: 'Expired' });
    expect(String((w.events[0]!.object as { message?: string }).message)).toMatch(/^too old resource version: \d+ \(\d+\)$/);
    // A list that pages from a too-old resourceVersion is refused the same way.
    const exact = await raw(small, 'GET', `${CM}?resourceVersion=${first.metadata!.resourceVersion}&resourceVersionMatch=Exact`);
    expect(exact.status).toBe(410);
  });

  it('keeps an informer (list, then watch) in sync', async () => {
    const path = CM;
    const informer = k8s.makeInformer<k8s.V1ConfigMap>(t.kc, path, () => t.core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'inf=1' }), 'inf=1');
    const seen: string[] = [];
    informer.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
    informer.on('update', (o) => seen.push(`update ${o.metadata?.name} ${o.data?.['x']}`));
    informer.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
    await t.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'inf-a', labels: { inf: '1' } } } });
    await informer.start();
    try {
      await t.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'inf-b', labels: { inf: '1' } } } });
      await t.core.patchNamespacedConfigMap({ name: 'inf-a', namespace: NS, body: { data: { x: '1' } } }, merge);
      await t.core.deleteNamespacedConfigMap({ name: 'inf-b', namespace: NS });
      await waitFor('informer events', () => seen.length >= 4);
      expect(seen).toEqual(['add inf-a', 'add inf-b', 'update inf-a 1', 'delete inf-b']);
      expect(informer.list(NS).map((o) => o.metadata?.name)).toEqual(['inf-a']);
    } finally {
      await informer.stop();
    }
  });
});
