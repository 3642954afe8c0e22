import { describe, expect, it } from 'vitest';
import { RelationDataAccessError } from '../../agent/runtime/charm.js';
import { EventQueue } from '../../agent/runtime/events.js';
import { validateTiming } from '../../agent/runtime/leadership.js';
import { BufferedBag } from '../../agent/runtime/model.js';
import { parseUnit, podName, unitName } from '../../agent/runtime/names.js';
import { decodeDeployment, encodeDeployment } from '../../agent/controller/deployment.js';
import { namespaceFor } from '../../agent/controller/model.js';
import { formatLine } from '../../agent/commands/debug-log.js';

describe('unit names', () => {
  it.each([
    ['postgresql/0', 'postgresql', 0],
    ['postgresql-12', 'postgresql', 12],
    ['my-db/3', 'my-db', 3],
  ])('%s', (s, app, index) => {
    const u = parseUnit(s);
    expect(u).toEqual({ app, index });
    expect(unitName(u)).toBe(`${app}/${index}`);
    expect(podName(u)).toBe(`${app}-${index}`);
  });
  it.each(['postgresql', 'Postgres/1', '/1', 'pg/x', '-a/1'])('refuses %s', (s) => {
    expect(() => parseUnit(s)).toThrow(/invalid unit name/);
  });
});

describe('event queue', () => {
  const run = { stopped: false };
  it('runs events in order and coalesces one that is already waiting', async () => {
    const q = new EventQueue();
    q.push({ name: 'install' });
    q.push({ name: 'config-changed' });
    q.push({ name: 'start' });
    q.push({ name: 'config-changed' });
    const seen: string[] = [];
    while (q.size) for (const e of await q.next(run)) seen.push(e.name);
    expect(seen).toEqual(['install', 'config-changed', 'start']);
  });

  it('coalesces relation events per remote unit, not across units', async () => {
    const q = new EventQueue();
    for (const u of ['a/1', 'a/2', 'a/1']) q.push({ name: 'p-relation-changed', key: `changed:${u}`, remoteUnit: u });
    const seen: string[] = [];
    while (q.size) for (const e of await q.next(run)) seen.push(e.remoteUnit!);
    expect(seen).toEqual(['a/1', 'a/2']);
  });

  it('re-runs a deferred event before each following one until it settles', async () => {
    const q = new EventQueue();
    q.push({ name: 'config-changed' });
    expect((await q.next(run)).map((e) => e.name)).toEqual(['config-changed']);
    q.defer({ name: 'config-changed' });
    q.push({ name: 'update-status' });
    expect((await q.next(run)).map((e) => e.name)).toEqual(['config-changed', 'update-status']);
    q.settled({ name: 'config-changed' });
    q.push({ name: 'update-status' });
    expect((await q.next(run)).map((e) => e.name)).toEqual(['update-status']);
  });

  it('a new copy of a deferred event replaces it instead of running twice', async () => {
    const q = new EventQueue();
    q.defer({ name: 'config-changed' });
    q.push({ name: 'config-changed' });
    expect((await q.next(run)).map((e) => e.name)).toEqual(['config-changed']);
  });

  it('waits for work and lets a stopping agent out', async () => {
    const q = new EventQueue();
    const signal = { stopped: false };
    const next = q.next(signal);
    setTimeout(() => q.push({ name: 'stop' }), 20);
    expect((await next).map((e) => e.name)).toEqual(['stop']);
    const idle = q.next(signal);
    signal.stopped = true;
    q.interrupt();
    expect(await idle).toEqual([]);
  });
});

describe('relation bags', () => {
  it('buffers writes, shows them to the handler, and yields only real changes as a patch', () => {
    const b = new BufferedBag({ a: '1', b: '2' }, () => true);
    b.set('a', '1');
    b.set('b', null);
    b.set('c', '3');
    expect(b.get('b')).toBeUndefined();
    expect(b.entries()).toEqual({ a: '1', c: '3' });
    expect(b.patch()).toEqual({ b: null, c: '3' });
    expect(new BufferedBag({ a: '1' }, () => true).patch()).toBeUndefined();
  });

  it('refuses writes the rules forbid, naming why, and invalid keys', () => {
    const app = new BufferedBag({}, () => 'unit x/1 is not the leader: only the leader writes the p application bag');
    expect(() => app.set('k', 'v')).toThrow(RelationDataAccessError);
    expect(() => app.set('k', 'v')).toThrow(/not the leader/);
    expect(app.patch()).toBeUndefined();
    const mine = new BufferedBag({}, () => true);
    expect(() => mine.set('bad key', 'v')).toThrow(/invalid bag key "bad key"/);
    expect(() => mine.set('k', 5 as unknown as string)).toThrow(/bag values are strings/);
  });
});

describe('lease timing', () => {
  it.each([
    [{ leaseMs: 5000, renewDeadlineMs: 3000, retryMs: 1000 }, true],
    [{ leaseMs: 5000, renewDeadlineMs: 5000, retryMs: 1000 }, false],
    [{ leaseMs: 5000, renewDeadlineMs: 3000, retryMs: 3000 }, false],
    [{ leaseMs: 5000, renewDeadlineMs: 3000, retryMs: 0 }, false],
  ])('%j valid=%s', (t, ok) => {
    if (ok) expect(() => validateTiming(t)).not.toThrow();
    else expect(() => validateTiming(t)).toThrow(/lease timing must satisfy/);
  });
});

describe('deployment record', () => {
  it('round-trips and sorts unit numbers; ignores garbage', () => {
    const d = { units: [2, 0, 1], held: [1], next: 3, charm: '/c/charm.yaml', charmModule: '/c/charm.js', keepData: false };
    expect(decodeDeployment({ data: encodeDeployment(d) })).toEqual({ ...d, units: [0, 1, 2] });
    expect(decodeDeployment({ data: { units: 'nope', held: '[1.5, "x", 2]' } }).held).toEqual([2]);
  });
});

describe('model namespace', () => {
  it.each([
    ['/root/.local/share/pgcharm/default', 'default'],
    ['/tmp/My_Model', 'my-model'],
    ['/tmp/_x', 'x'],
    ['/tmp/9lives', '9lives'],
  ])('%s -> %s', (dir, ns) => expect(namespaceFor(dir)).toBe(ns));
});

describe('debug-log lines', () => {
  it('formats pino lines with level, event and extra fields; plain lines keep the previous time', () => {
    const l = formatLine('postgresql/0:agent', JSON.stringify({ level: 30, time: 1000, pid: 1, unit: 'postgresql/0', event: 'config-changed', msg: 'event handled', ms: 3 }), 0);
    expect(l).toEqual({ time: 1000, source: 'postgresql/0:agent', text: 'INFO [config-changed] event handled ms=3', level: 30 });
    expect(formatLine('x', '[postgresql] LOG:  ready', 1000)).toEqual({ time: 1000, source: 'x', text: '[postgresql] LOG:  ready', level: 30 });
    expect(formatLine('x', JSON.stringify({ level: 50, time: 5, event: 'idle', msg: 'm' }), 0).text).toBe('ERROR m');
  });
});
