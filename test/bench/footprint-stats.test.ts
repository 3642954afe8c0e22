import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { lineKey, LogWatch, rotatedGroup } from '../../bench/log-stats.js';
import { classify, cpuTicks, type Proc } from '../../bench/proc-stats.js';

/** The footprint bench's accounting: CPU across exited children, process kinds, logs across rotation. */
const proc = (pid: number, ppid: number, comm: string, t: Partial<Proc> = {}): Proc => ({ pid, ppid, comm, start: pid, utime: 0, stime: 0, cutime: 0, cstime: 0, rss: 0, ...t });
const snap = (...ps: Proc[]) => new Map(ps.map((p) => [p.pid, p]));

describe('cpuTicks', () => {
  test("a live process: its own and its reaped children's time in the window", () => {
    const a = snap(proc(10, 1, 'sh', { utime: 5, cutime: 100 }));
    const b = snap(proc(10, 1, 'sh', { utime: 7, cutime: 130 }));
    expect(cpuTicks(a, b).get(10)).toBe(32);
  });

  test('a child that exited in the window: what it used before the window is taken off its reaper', () => {
    const a = snap(proc(10, 1, 'postgres', { utime: 50 }), proc(11, 10, 'postgres', { utime: 20, stime: 5 }));
    // The backend used 3 more ticks, then exited; the postmaster reaped it (cutime += 28).
    const b = snap(proc(10, 1, 'postgres', { utime: 51, cutime: 28 }));
    expect(cpuTicks(a, b).get(10)).toBe(1 + 3);
  });

  test('a process started in the window counts whole; a reused pid is a new process', () => {
    const a = snap(proc(20, 1, 'old', { utime: 40 }));
    const b = snap(proc(20, 1, 'new', { start: 999, utime: 4 }), proc(21, 1, 'x', { utime: 2, cutime: 1 }));
    expect(cpuTicks(a, b).get(20)).toBe(4);
    expect(cpuTicks(a, b).get(21)).toBe(3);
  });
});

describe('classify', () => {
  const roots = [
    { pid: 2, kind: 'sidecar', label: 'pg/0' },
    { pid: 3, kind: 'agent', label: 'pg/0' },
  ];
  const refine = (path: Proc[], root: { kind: string }) => (path.some((p) => p.comm === 'postgres') ? 'postgres' : root.kind === 'sidecar' && path.length > 1 ? 'watchdog' : root.kind);
  test('each process belongs to its nearest root; Postgres and the rest of the workload apart', () => {
    const ps = snap(proc(1, 0, 'controller'), proc(2, 1, 'node'), proc(3, 1, 'node'), proc(4, 2, 'postgres'), proc(5, 4, 'postgres'), proc(6, 5, 'sh'), proc(7, 2, 'sh'), proc(8, 7, 'sleep'), proc(9, 1, 'other'));
    const c = classify(ps, roots, refine);
    expect(Object.fromEntries([...c].map(([pid, x]) => [pid, x.kind]))).toEqual({ 2: 'sidecar', 3: 'agent', 4: 'postgres', 5: 'postgres', 6: 'postgres', 7: 'watchdog', 8: 'watchdog' });
    expect(c.get(8)!.label).toBe('pg/0');
  });
});

describe('LogWatch', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const watch = () => new LogWatch(() => ['x.log', 'x.log.1', 'x.log.2.gz'].map((n) => ({ path: join(dir, n), ...rotatedGroup(n) })));

  test('counts what was written after the start, across a rename rotation, and ignores compressed copies', () => {
    dir = mkdtempSync(join(tmpdir(), 'logwatch-'));
    writeFileSync(join(dir, 'x.log'), 'before\n');
    const w = watch();
    w.sample();
    appendFileSync(join(dir, 'x.log'), 'one\n');
    w.sample();
    appendFileSync(join(dir, 'x.log'), 'two\n');
    renameSync(join(dir, 'x.log'), join(dir, 'x.log.1'));
    writeFileSync(join(dir, 'x.log'), 'three\n');
    writeFileSync(join(dir, 'x.log.2.gz'), 'compressed copy of something older');
    w.sample();
    expect(w.bytes()).toEqual({ 'x.log': 4 + 4 + 6 });
    expect(w.text()['x.log']!.split('\n').filter(Boolean).sort()).toEqual(['one', 'three', 'two']);
  });

  test('a truncated file (copytruncate) counts what it holds after the truncation', () => {
    dir = mkdtempSync(join(tmpdir(), 'logwatch-'));
    writeFileSync(join(dir, 'x.log'), '0123456789\n');
    const w = watch();
    w.sample();
    writeFileSync(join(dir, 'x.log'), 'ab\n');
    w.sample();
    expect(w.bytes()).toEqual({ 'x.log': 3 });
  });
});

test('lineKey: the same message with other times, pids and numbers is one key', () => {
  const a = '2026-11-27T16:49:11.343Z [postgresql] 2026-11-27 16:49:11.339 GMT [13691] LOG:  received SIGHUP, reloading configuration files';
  const b = '2026-11-27T17:01:02.000Z [postgresql] 2026-11-27 17:01:01.999 GMT [42] LOG:  received SIGHUP, reloading configuration files';
  expect(lineKey(a)).toBe(lineKey(b));
  expect(lineKey('{"level":30,"path":"/u/pg-0/pgcharm/fence-deadline","msg":"push file"}')).toBe('push file fence-deadline');
  expect(rotatedGroup('pg-0.sidecar.log.3')).toEqual({ group: 'pg-0.sidecar.log', live: false });
});
