import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU and memory of groups of processes from /proc, for the footprint benchmarks. A group is
 * named by its roots (a controller, an agent, a sidecar, a postmaster, ...): every process
 * belongs to its nearest root ancestor. CPU counts what exited children used too
 * (cutime/cstime, credited to whoever reaped them), so a watchdog's `sleep` and `date`, a
 * sidecar's execs and Postgres's short-lived backends are all in.
 */

/** One process as /proc/<pid>/stat shows it: times in clock ticks, RSS in bytes. */
export interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  /** Start time (ticks since boot): tells a reused pid apart. */
  start: number;
  utime: number;
  stime: number;
  cutime: number;
  cstime: number;
  rss: number;
}

const conf = (name: string, dflt: number) => {
  try {
    return Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim()) || dflt;
  } catch {
    return dflt;
  }
};
export const CLK_TCK = conf('CLK_TCK', 100);
const PAGE = conf('PAGESIZE', 4096);

export function readProc(pid: number): Proc | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // exited
  }
  // comm may hold spaces and parentheses: the fields start after the last ')'.
  const close = stat.lastIndexOf(')');
  const f = stat.slice(close + 2).split(' ').map(Number);
  // f[0] is field 3 (state) of proc(5): ppid 4, utime 14, stime 15, cutime 16, cstime 17, starttime 22, rss 24.
  return { pid, comm: stat.slice(stat.indexOf('(') + 1, close), ppid: f[1]!, utime: f[11]!, stime: f[12]!, cutime: f[13]!, cstime: f[14]!, start: f[19]!, rss: f[21]! * PAGE };
}

export function snapshot(): Map<number, Proc> {
  const out = new Map<number, Proc>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const p = readProc(Number(d));
    if (p) out.set(p.pid, p);
  }
  return out;
}

/** Proportional set size (shared pages split between their users): what Postgres's processes really hold, shared_buffers counted once. */
export function pss(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** A process that names a group: its kind (agent, sidecar, etcd, ...) and label (the unit or node it belongs to). */
export interface Root {
  pid: number;
  kind: string;
  label: string;
}

/** What a process counts as: usually its root's kind; `refine` may say otherwise (Postgres under a sidecar). */
export interface Class {
  kind: string;
  label: string;
}

/**
 * `path` runs from the process up to its root, both included; `refine` returns the kind, e.g.
 * 'postgres' when any process on the path is a postgres.
 */
export type Refine = (path: Proc[], root: Root) => string;

export function classify(procs: Map<number, Proc>, roots: Root[], refine: Refine): Map<number, Class> {
  const byPid = new Map(roots.filter((r) => procs.has(r.pid)).map((r) => [r.pid, r]));
  const out = new Map<number, Class>();
  for (const p of procs.values()) {
    const path: Proc[] = [];
    for (let q: Proc | undefined = p; q && path.length < 64; q = procs.get(q.ppid)) {
      path.push(q);
      const root = byPid.get(q.pid);
      if (root) {
        out.set(p.pid, { kind: refine(path, root), label: root.label });
        break;
      }
    }
  }
  return out;
}

const total = (p: Proc) => p.utime + p.stime + p.cutime + p.cstime;
const same = (a: Proc | undefined, b: Proc | undefined): boolean => Boolean(a && b && a.start === b.start);

/**
 * Clock ticks each live process used between snapshots `a` and `b`, children it reaped
 * included. A process that exited in between is not in the result: what it used in the
 * window is in its reaper's cutime, from which what it had used before `a` is taken off.
 */
export function cpuTicks(a: Map<number, Proc>, b: Map<number, Proc>): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of b.values()) {
    const before = a.get(p.pid);
    out.set(p.pid, total(p) - (same(before, p) ? total(before!) : 0));
  }
  for (const p of a.values()) {
    if (same(p, b.get(p.pid))) continue;
    // Reaped by the nearest ancestor still alive (a process reparented to init is lost to us).
    for (let q = a.get(p.ppid); q && q.pid > 1; q = a.get(q.ppid)) {
      if (same(q, b.get(q.pid))) {
        out.set(q.pid, (out.get(q.pid) ?? 0) - total(p));
        break;
      }
    }
  }
  return out;
}
