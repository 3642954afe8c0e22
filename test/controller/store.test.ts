import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { expireEvents } from '../../agent/controller/registry/event-expiry.js';
import { Registry } from '../../agent/controller/registry/registry.js';
import { isRenewal, ObjectStore, type StoreOptions } from '../../agent/controller/store/object-store.js';
import { tempDir } from './helpers/server.js';

/** The object store and its persistence, in-process: restarts, torn journals, compaction. */

const log = pino({ level: 'silent' });
const dirs: string[] = [];
const open: ObjectStore[] = [];

afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => {});
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function newDir(): string {
  const d = tempDir('store');
  dirs.push(d);
  return path.join(d, 'store');
}

async function openStore(dir: string, opts: Partial<StoreOptions> = {}): Promise<{ store: ObjectStore; reg: Registry }> {
  const store = await ObjectStore.open({ dir, log, ...opts });
  open.push(store);
  return { store, reg: new Registry(store) };
}

async function closeStore(store: ObjectStore): Promise<void> {
  open.splice(open.indexOf(store), 1);
  await store.close();
}

const journals = (dir: string) => fs.readdirSync(dir).filter((f) => f.startsWith('journal-')).sort();

describe('object store', () => {
  it('keeps objects and the resourceVersion counter across a restart', async () => {
    const dir = newDir();
    let { store, reg } = await openStore(dir);
    for (let i = 0; i < 5; i++) await reg.create('configmaps', 'ns', { metadata: { name: `c${i}` }, data: { i: String(i) } });
    await reg.delete('configmaps', 'ns', 'c0');
    const rv = store.rv;
    await closeStore(store);
    ({ store, reg } = await openStore(dir));
    expect(store.rv).toBe(rv);
    expect(reg.list('configmaps', { namespace: 'ns' }).items.map((o) => o.metadata.name)).toEqual(['c1', 'c2', 'c3', 'c4']);
    const next = await reg.create('configmaps', 'ns', { metadata: { name: 'after' } });
    expect(Number(next.metadata.resourceVersion)).toBe(rv + 1);
  });

  it('makes a write visible to readers only once it is durable', async () => {
    const { store } = await openStore(newDir());
    const { durable } = store.put('configmaps', 'ns', 'x', { metadata: { name: 'x', namespace: 'ns' } });
    expect(store.get('configmaps', 'ns', 'x')).toBeUndefined();
    expect(store.latest('configmaps', 'ns', 'x')?.metadata.resourceVersion).toBe('1');
    await durable;
    expect(store.get('configmaps', 'ns', 'x')?.metadata.resourceVersion).toBe('1');
  });

  it.each([
    ['the same holder, renewTime moved: a renewal', { holderIdentity: 'pg/0', leaseTransitions: 3, acquireTime: 'a', leaseDurationSeconds: 2, renewTime: 'r1' }, { holderIdentity: 'pg/0', leaseTransitions: 3, acquireTime: 'a', leaseDurationSeconds: 2, renewTime: 'r2' }, true],
    ['another holder: a takeover, synced', { holderIdentity: 'pg/0', leaseTransitions: 3, acquireTime: 'a' }, { holderIdentity: 'pg/1', leaseTransitions: 4, acquireTime: 'b' }, false],
    ['the same holder taking it again (transitions +1): synced', { holderIdentity: 'pg/0', leaseTransitions: 3, acquireTime: 'a' }, { holderIdentity: 'pg/0', leaseTransitions: 4, acquireTime: 'b' }, false],
    ['a new duration: synced', { holderIdentity: 'pg/0', leaseDurationSeconds: 2 }, { holderIdentity: 'pg/0', leaseDurationSeconds: 4 }, false],
    ['released (no holder): synced', { holderIdentity: 'pg/0' }, { holderIdentity: '' }, false],
    ['a lease nobody held: synced', { holderIdentity: '' }, { holderIdentity: '' }, false],
    ['created: synced', undefined, { holderIdentity: 'pg/0' }, false],
  ])('lease write without fdatasync only for a renewal: %s', (_why, prev, next, want) => {
    const obj = (spec: object | undefined) => (spec ? { metadata: { name: 'l' }, spec } : undefined);
    expect(isRenewal(obj(prev), obj(next)!)).toBe(want);
  });

  it('a renewal is acknowledged and replayed like any write', async () => {
    const dir = newDir();
    let { store } = await openStore(dir);
    const lease = (renewTime: string) => ({ metadata: { name: 'l', namespace: 'ns' }, spec: { holderIdentity: 'pg/0', leaseTransitions: 0, renewTime } });
    await store.put('leases', 'ns', 'l', lease('t1')).durable;
    await store.put('leases', 'ns', 'l', lease('t2')).durable;
    expect((store.get('leases', 'ns', 'l') as unknown as { spec: { renewTime: string } }).spec.renewTime).toBe('t2');
    await closeStore(store);
    ({ store } = await openStore(dir));
    expect((store.get('leases', 'ns', 'l') as unknown as { spec: { renewTime: string } }).spec.renewTime).toBe('t2');
  });

  it('group-commits concurrent writes, in order', async () => {
    const { store, reg } = await openStore(newDir());
    const seen: number[] = [];
    store.watch('configmaps', undefined, 0, (e) => seen.push(e.rv));
    await Promise.all(Array.from({ length: 50 }, (_, i) => reg.create('configmaps', 'ns', { metadata: { name: `g${i}` } })));
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('cuts off a torn final journal line and goes on', async () => {
    const dir = newDir();
    let { store, reg } = await openStore(dir);
    await reg.create('configmaps', 'ns', { metadata: { name: 'kept' } });
    await closeStore(store);
    const seg = path.join(dir, journals(dir).at(-1)!);
    // A crash mid-write: part of a record, no newline.
    fs.appendFileSync(seg, '{"rv":2,"op":"put","res":"configmaps","ns":"ns","name":"torn","obj":{"metad');
    ({ store, reg } = await openStore(dir));
    expect(reg.list('configmaps').items.map((o) => o.metadata.name)).toEqual(['kept']);
    const after = await reg.create('configmaps', 'ns', { metadata: { name: 'after' } });
    expect(after.metadata.resourceVersion).toBe('2');
    await closeStore(store);
    ({ store, reg } = await openStore(dir));
    expect(reg.list('configmaps').items.map((o) => o.metadata.name)).toEqual(['after', 'kept']);
  });

  it('refuses to start when an older journal segment is damaged', async () => {
    const dir = newDir();
    const { store, reg } = await openStore(dir);
    await reg.create('configmaps', 'ns', { metadata: { name: 'a' } });
    await closeStore(store);
    // Simulate a rotation that left a damaged segment behind a newer one.
    const seg = journals(dir).at(-1)!;
    fs.writeFileSync(path.join(dir, seg), 'garbage\n{"rv":1}\n');
    fs.writeFileSync(path.join(dir, `journal-${'9'.repeat(10)}.jsonl`), '');
    await expect(ObjectStore.open({ dir, log })).rejects.toThrow(/damaged at byte 0, and it is not the newest journal segment/);
  });

  it('compacts into a snapshot and loads the same state from it', async () => {
    const dir = newDir();
    let { store, reg } = await openStore(dir, { compactBytes: 4096 });
    for (let i = 0; i < 200; i++) {
      await reg.create('configmaps', 'ns', { metadata: { name: `k${i % 40}-${Math.floor(i / 40)}` }, data: { v: 'x'.repeat(50) } });
    }
    for (let i = 0; i < 40; i++) await reg.delete('configmaps', 'ns', `k${i}-0`);
    const before = JSON.stringify(reg.list('configmaps'));
    const rv = store.rv;
    await closeStore(store);
    expect(journals(dir).length).toBeLessThanOrEqual(3);
    expect(fs.existsSync(path.join(dir, 'snapshot.jsonl'))).toBe(true);
    ({ store, reg } = await openStore(dir, { compactBytes: 4096 }));
    expect(store.rv).toBe(rv);
    expect(JSON.stringify(reg.list('configmaps'))).toBe(before);
  });

  it('lets watches resume across a restart from the journal it replays', async () => {
    const dir = newDir();
    let { store, reg } = await openStore(dir);
    const a = await reg.create('configmaps', 'ns', { metadata: { name: 'a' } });
    await reg.patch('configmaps', 'ns', 'a', 'merge', { data: { x: '1' } });
    await reg.delete('configmaps', 'ns', 'a');
    await closeStore(store);
    ({ store, reg } = await openStore(dir));
    const events: string[] = [];
    const h = reg.watch('configmaps', { namespace: 'ns', resourceVersion: a.metadata.resourceVersion! }, (e) => events.push(`${e.type} ${e.object.metadata.resourceVersion}`));
    h.stop();
    expect(events).toEqual(['MODIFIED 2', 'DELETED 3']);
  });

  it('keeps its files private and allows one server per directory', async () => {
    const dir = newDir();
    const { reg } = await openStore(dir);
    await reg.create('secrets', 'ns', { metadata: { name: 's' }, stringData: { password: 'hunter2' } });
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    for (const f of fs.readdirSync(dir)) expect([f, fs.statSync(path.join(dir, f)).mode & 0o077]).toEqual([f, 0]);
    await expect(ObjectStore.open({ dir, log })).rejects.toThrow(/already open in this process/);
  });

  it('expires events an hour after their last occurrence (or their creation)', async () => {
    const { reg } = await openStore(newDir());
    const at = (ms: number) => new Date(Date.now() + ms).toISOString().replace(/\.\d+Z$/, 'Z');
    const ev = (name: string, last: string) => ({ metadata: { name }, involvedObject: { kind: 'Pod', name: 'p', namespace: 'ns' }, lastTimestamp: last });
    await reg.create('events', 'ns', ev('old', at(-2 * 3600_000)));
    await reg.create('events', 'ns', ev('recurring', at(3600_000)));
    await reg.create('events', 'ns', { ...ev('series', at(-2 * 3600_000)), series: { count: 2, lastObservedTime: `${at(3600_000).slice(0, -1)}.000000Z` } });
    // 90 minutes from now: "old" was created (its last write) more than an hour before.
    expect(await expireEvents(reg, 3600_000, Date.now() + 90 * 60_000)).toBe(1);
    expect(reg.list('events').items.map((e) => e.metadata.name)).toEqual(['recurring', 'series']);
  });

  it('refuses writes once closing (503), without touching the disk', async () => {
    const { store, reg } = await openStore(newDir());
    await closeStore(store);
    await expect(reg.create('configmaps', 'ns', { metadata: { name: 'late' } })).rejects.toMatchObject({ code: 503 });
  });
});
