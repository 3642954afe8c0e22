import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { modelPaths, readControllerInfo } from '../agent/controller/model.js';
import { hasEnv } from '../agent/procs.js';
import { saveLogs } from './cluster.js';
import { healthy } from './compare.js';
import { measure, type Footprint, type Role, type Subject } from './footprint-measure.js';
import { rotatedGroup } from './log-stats.js';
import { ensurePatroni, PATRONI_PROFILES, PatroniCluster } from './patroni.js';
import { PgcharmCluster } from './pgcharm.js';
import type { Proc, Root } from './proc-stats.js';

/**
 * Issue 13, "Footprint": what an idle 3-unit pgcharm deployment costs (store requests, CPU,
 * RSS, logs, SIGHUPs) beside Patroni + etcd doing the same job, each measured alone.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The goals of issue 13 for an idle 3-unit pgcharm deployment. */
export const GOALS = {
  store_requests_per_second: 3,
  ha_cpu_pct: 3,
  log_bytes_per_minute: 5 * 1024,
  agent_rss_mb: 70,
  sidecar_rss_mb: 45,
  controller_rss_mb: 80,
  sighups_per_minute: 0,
};

const isPostgres = (path: Proc[]) => path.some((p) => p.comm === 'postgres');

/** A pgcharm model: the controller, each unit's agent and sidecar (pid files, checked against the unit's marker), and what the sidecar runs. */
export function pgcharmSubject(model: string): Subject {
  const paths = modelPaths(model);
  const pidOf = (pod: string, which: 'agent' | 'sidecar'): number | undefined => {
    try {
      const pid = Number(readFileSync(join(paths.unit(pod), `${which}.pid`), 'utf8').trim());
      const container = which === 'agent' ? 'charm' : 'workload';
      // A pid file outlives its process; the markers tell whether the pid is still this unit's.
      return pid && hasEnv(pid, { PGCHARM_LOCAL_UNIT: `${model}#${pod}`, PGCHARM_LOCAL_CONTAINER: container }) ? pid : undefined;
    } catch {
      return undefined;
    }
  };
  return {
    name: 'pgcharm',
    roots() {
      const roots: Root[] = [];
      const c = readControllerInfo(model);
      if (c) roots.push({ pid: c.pid, kind: 'controller', label: 'controller' });
      for (const pod of existsSync(paths.units) ? readdirSync(paths.units) : []) {
        const label = pod.replace(/-(\d+)$/, '/$1');
        for (const which of ['agent', 'sidecar'] as const) {
          const pid = pidOf(pod, which);
          if (pid) roots.push({ pid, kind: which, label });
        }
      }
      return roots;
    },
    // Under a sidecar: Postgres (its archiver's pgBackRest too), the backup server (pgBackRest)
    // and the postgres exporter (comm truncated to 15 characters) — neither an HA process:
    // Patroni's side has neither — and the rest of the workload (the fence watchdog and its sleeps).
    refine: (path, root) =>
      isPostgres(path)
        ? 'postgres'
        : path.some((p) => p.comm === 'pgbackrest')
          ? 'pgbackrest'
          : path.some((p) => p.comm.startsWith('prometheus-post'))
            ? 'exporter'
            : root.kind === 'sidecar' && path.length > 1
              ? 'watchdog'
              : root.kind,
    haKinds: ['controller', 'agent', 'sidecar', 'watchdog'],
    roles: { store: 'controller', 'ha-agent': 'agent', sidecar: 'sidecar', watchdog: 'watchdog', postgres: 'postgres' },
    logs: () => (existsSync(paths.logs) ? readdirSync(paths.logs).map((name) => ({ path: join(paths.logs, name), ...rotatedGroup(name) })) : []),
    apart: ['audit.jsonl'],
    postgresLog: (g) => g.endsWith('.sidecar.log'),
    pushLog: (g) => g.endsWith('.sidecar.log'),
    countRequests: async () => auditCounter(model),
  };
}

/** Counts the agents' requests in the controller's audit trail (PGCHARM_AUDIT=1) from now on. */
function auditCounter(model: string): () => Promise<Record<string, number>> {
  const file = modelPaths(model).audit;
  if (!existsSync(file)) throw new Error(`${file} does not exist: deploy with PGCHARM_AUDIT=1 in the environment to audit the agents' requests`);
  const from = statSync(file).size;
  const t0 = Date.now();
  return async () => {
    const t1 = Date.now();
    await sleep(300); // written through a stream: let the window's last lines land
    const fd = openSync(file, 'r');
    const buf = Buffer.alloc(statSync(file).size - from);
    try {
      readSync(fd, buf, 0, buf.length, from);
    } finally {
      closeSync(fd);
    }
    const out: Record<string, number> = {};
    for (const l of buf.toString('utf8').split('\n')) {
      if (!l) continue;
      const e = JSON.parse(l) as { time: string; verb: string; resource: string; subresource?: string; name?: string };
      const t = Date.parse(e.time);
      if (t < t0 || t > t1) continue;
      const key = `${e.verb} ${e.resource}${e.subresource ? `/${e.subresource}` : ''}${e.name ? ` ${e.name}` : ''}`;
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  };
}

/** Patroni + etcd: etcd, each node's Patroni and Postgres; DCS requests through the counting proxy. */
export function patroniSubject(c: PatroniCluster): Subject {
  return {
    name: c.name,
    roots: () => c.processRoots(),
    refine: (path, root) => (isPostgres(path) ? 'postgres' : root.kind),
    haKinds: ['patroni', 'etcd'],
    roles: { store: 'etcd', 'ha-agent': 'patroni', postgres: 'postgres' },
    logs: () => c.logFiles(),
    apart: [],
    postgresLog: (g) => g.startsWith('node'),
    countRequests: async () => {
      const before = c.dcsRequests();
      return async () => Object.fromEntries(Object.entries(c.dcsRequests()).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => Number(v) > 0));
    },
  };
}

export interface FootprintOptions {
  seconds: number;
  /** Quiet time after everything settled, before the window starts. */
  quietSeconds: number;
  systems: string[];
  log: (s: string) => void;
}

/** A footprint, and what went wrong on the way (hook errors the units got over while settling). */
export type Measured = Footprint & { bootstrap_hook_errors?: string[] };

/** An idle 3-unit pgcharm deployment, measured; destroyed afterwards whatever happened. */
export async function pgcharmFootprint(seconds: number, quietSeconds: number, log: (s: string) => void): Promise<Measured> {
  const cluster = new PgcharmCluster(3, { PGCHARM_AUDIT: '1' });
  try {
    await cluster.start();
    const errors = await cluster.deployed();
    for (const e of errors) log(`pgcharm: while settling: ${e}`);
    log(`pgcharm: 3 units settled; ${quietSeconds} s quiet, then ${seconds} s measured`);
    await sleep(quietSeconds * 1000);
    return { ...(await measure(pgcharmSubject(cluster.model), seconds)), ...(errors.length ? { bootstrap_hook_errors: errors } : {}) };
  } catch (e) {
    log(`pgcharm: logs kept in ${saveLogs(cluster, 'footprint')}`);
    throw e;
  } finally {
    await cluster.destroy();
  }
}

export async function benchFootprint(o: FootprintOptions) {
  const figures: Record<string, Measured> = {};
  const failed: Record<string, string> = {};
  for (const system of o.systems) {
    try {
      if (system === 'pgcharm') {
        figures[system] = await pgcharmFootprint(o.seconds, o.quietSeconds, o.log);
        continue;
      }
      const profile = PATRONI_PROFILES.find((p) => p.name === system);
      if (!profile) throw new Error(`unknown system ${system}: pgcharm, ${PATRONI_PROFILES.map((p) => p.name).join(', ')}`);
      ensurePatroni(o.log);
      const cluster = new PatroniCluster(profile, 10_000, { countDcs: true });
      try {
        await cluster.start();
        await healthy(cluster);
        o.log(`${system}: one primary, 2 standbys streaming; ${o.quietSeconds} s quiet, then ${o.seconds} s measured`);
        await sleep(o.quietSeconds * 1000);
        figures[system] = await measure(patroniSubject(cluster), o.seconds);
      } catch (e) {
        o.log(`${system}: logs kept in ${saveLogs(cluster, 'footprint')}`);
        throw e;
      } finally {
        await cluster.destroy();
      }
    } catch (e) {
      failed[system] = (e as Error).message;
      o.log(`${system}: FAILED: ${(e as Error).message}`);
    }
  }
  const p = figures['pgcharm'];
  return {
    what: {
      window: `${o.seconds} s of an idle deployment, ${o.quietSeconds} s after every unit settled (Patroni: after both standbys streamed); processes sampled every 5 s`,
      store_requests: "pgcharm: the agents' requests in the controller's audit trail (PGCHARM_AUDIT=1); Patroni: HTTP requests to etcd's v3 gateway through a counting proxy (a watch counts once)",
      cpu: "% of one core from /proc utime+stime plus cutime+cstime (exited children: the watchdog's sleeps, the sidecar's execs, short-lived backends count with whoever reaped them); HA processes: pgcharm controller+agents+sidecars+watchdogs, Patroni patroni+etcd",
      rss: 'max over the window per process; Postgres also as PSS (shared memory once)',
      logs: 'bytes written per minute per file (followed by inode across rotation); pgcharm audit.jsonl apart (on request only); Patroni: patroni.log (with its Postgres log) and etcd.log',
    },
    systems: figures,
    ...(p ? { goals: goals(p) } : {}),
    ...(Object.keys(failed).length ? { failed } : {}),
  };
}

export function goals(p: Footprint): Record<string, { value: number; goal: number; met: boolean }> {
  const g = (value: number, goal: number) => ({ value, goal, met: value <= goal });
  return {
    store_requests_per_second: g(p.store_requests_per_second, GOALS.store_requests_per_second),
    ha_cpu_pct_of_one_core: g(p.ha_cpu_pct, GOALS.ha_cpu_pct),
    log_bytes_per_minute: g(p.log_bytes_per_minute_total, GOALS.log_bytes_per_minute),
    agent_rss_mb: g(p.kinds['agent']?.rss_max_mb ?? 0, GOALS.agent_rss_mb),
    sidecar_rss_mb: g(p.kinds['sidecar']?.rss_max_mb ?? 0, GOALS.sidecar_rss_mb),
    controller_rss_mb: g(p.kinds['controller']?.rss_max_mb ?? 0, GOALS.controller_rss_mb),
    sighups_per_minute: g(p.sighups_per_minute, GOALS.sighups_per_minute),
  };
}

/** The side-by-side table for stderr. */
export function footprintTable(systems: Record<string, Footprint>): string[] {
  const names = Object.keys(systems);
  const figs = names.map((n) => systems[n]!);
  const role = (r: Role, f: (k: NonNullable<Footprint['kinds'][string]>) => number) => figs.map((x) => (x.roles[r] && x.kinds[x.roles[r]!] ? String(f(x.kinds[x.roles[r]!]!)) : '-'));
  const label = (r: Role) => [...new Set(figs.map((x) => x.roles[r]).filter(Boolean))].join(' / ');
  const rows: string[][] = [
    ['', ...names],
    ['store (DCS) requests/s', ...figs.map((x) => String(x.store_requests_per_second))],
    ['CPU % of one core, HA processes', ...figs.map((x) => String(x.ha_cpu_pct))],
    ...(['store', 'ha-agent', 'sidecar', 'watchdog', 'postgres'] as Role[]).map((r) => [`  ${label(r)}`, ...role(r, (k) => k.cpu_pct)]),
    ...(['store', 'ha-agent', 'sidecar'] as Role[]).map((r) => [`RSS MB, ${label(r)} (max)`, ...role(r, (k) => k.rss_max_mb)]),
    ['Postgres PSS MB, all nodes', ...role('postgres', (k) => k.pss_total_mb)],
    ['log bytes/min (pgcharm: audit apart)', ...figs.map((x) => String(x.log_bytes_per_minute_total))],
    ['SIGHUPs/min', ...figs.map((x) => String(x.sighups_per_minute))],
    ['fences / failovers in the window', ...figs.map((x) => `${x.ha_events.fences} / ${x.ha_events.failovers}`)],
    ['config file writes/min', ...figs.map((x) => (x.config_file_writes_per_minute === null ? 'n/a' : String(x.config_file_writes_per_minute)))],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
}

/** Goal lines and what stands out (top requests, the noisiest log lines) for the summary. */
export function footprintSummary(p: Measured): string[] {
  const lines = Object.entries(goals(p)).map(([k, v]) => `${v.met ? 'met    ' : 'MISSED '} ${k}: ${v.value} (goal <= ${v.goal})`);
  const top = Object.entries(p.store_requests_by).slice(0, 5).map(([k, v]) => `${k} ${v}/s`);
  lines.push(`top store requests: ${top.join(', ')}`);
  const noisy = Object.entries(p.log_top_lines_per_minute).flatMap(([g, m]) => Object.entries(m).map(([l, n]) => [`${g}: ${l}`, n] as const)).sort((a, b) => b[1] - a[1]).slice(0, 4);
  lines.push(`noisiest log lines (per minute): ${noisy.map(([l, n]) => `${n} x ${l}`).join('; ')}`);
  lines.push(`audit.jsonl (apart): ${p.log_bytes_per_minute_apart['audit.jsonl'] ?? 0} bytes/min`);
  for (const l of p.ha_events.fence_lines) lines.push(`FENCED at idle: ${l}`);
  for (const e of p.bootstrap_hook_errors ?? []) lines.push(`while settling (the units got over it): ${e}`);
  if (p.push_files_note) lines.push(p.push_files_note);
  else lines.push(`files pushed per minute: ${Object.entries(p.push_files_per_minute ?? {}).map(([f, n]) => `${f} ${n}`).join(', ') || 'none'}`);
  return lines;
}
