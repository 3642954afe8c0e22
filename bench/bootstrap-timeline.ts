import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { median } from './stats.js';

/**
 * Where a pgcharm bootstrap spends its time: ms from the start of `pgcharm deploy` to each
 * step, read from the model's logs (pino JSON with `time`; Postgres's own lines in the
 * sidecar logs carry the sidecar's ISO timestamp) and from the Leases' acquireTime. Every
 * process runs on this machine's clock, so the times compare directly.
 */

/** One unit's steps (ms from deploy start; absent when the step did not happen or left no trace). */
export interface UnitTimeline {
  role?: 'primary' | 'standby';
  /** The controller spawned the unit's sidecar and agent. */
  spawned?: number;
  /** The sidecar's node process began (performance.timeOrigin), and its API answered. */
  sidecar_process?: number;
  sidecar_ready?: number;
  /** The agent's node process began, and its runtime had started (first events queued). */
  agent_process?: number;
  agent_started?: number;
  initdb_start?: number;
  initdb_end?: number;
  /** Postgres said "ready to accept connections" (primary) or "read-only connections" (standby). */
  postgres_ready?: number;
  clone_start?: number;
  clone_end?: number;
  streaming?: number;
}

export interface BootstrapTimeline {
  controller_process?: number;
  controller_ready?: number;
  /** The controller saw the deployment `pgcharm deploy` wrote. */
  deployment_seen?: number;
  leader?: string;
  leader_elected?: number;
  primary?: string;
  primary_lease_taken?: number;
  initdb_start?: number;
  initdb_end?: number;
  primary_accepting_writes?: number;
  /** The primary's charm finished its bootstrap reconcile (roles, slots, bag role=primary). */
  primary_bootstrapped?: number;
  standbys_streaming?: number;
  /** What the benchmark measured: one writable node, every other streaming (its probe). */
  healthy?: number;
  units: Record<string, UnitTimeline>;
  /**
   * CPU time (ms) each process had used when it was ready: mostly starting node and loading
   * its modules (the agents' figure includes loading the charm and charm.yaml).
   */
  startup_cpu_ms: { controller?: number; agents: number[]; sidecars: number[] };
}

interface Line {
  time: number;
  msg: string;
  o: Record<string, unknown>;
}

/** A log file's lines: pino JSON, or `<ISO time> [service] text` (a service's output through the sidecar). */
function readLines(file: string): Line[] {
  if (!existsSync(file)) return [];
  const out: Line[] = [];
  for (const l of readFileSync(file, 'utf8').split('\n')) {
    if (l.startsWith('{')) {
      try {
        const o = JSON.parse(l) as Record<string, unknown>;
        if (typeof o['time'] === 'number') out.push({ time: o['time'], msg: String(o['msg'] ?? ''), o });
      } catch {
        /* a line cut short by a kill */
      }
      continue;
    }
    const m = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) \[([^\]]+)\] (.*)$/.exec(l);
    if (m) out.push({ time: Date.parse(m[1]!), msg: m[3]!, o: { service: m[2] } });
  }
  return out;
}

const first = (lines: Line[], pred: (l: Line) => boolean): number | undefined => lines.find(pred)?.time;

/** Reads the timeline of a model's first bootstrap; `t0` is the deploy start, `leases` the Leases' acquire times (epoch ms). */
export function pgcharmBootstrapTimeline(model: string, t0: number, leases: { leader?: { holder: string; at: number }; primary?: { holder: string; at: number } }, healthyAt?: number): BootstrapTimeline {
  const logs = join(model, 'logs');
  const rel = (t: number | undefined) => (t === undefined ? undefined : t - t0);
  const ctl = readLines(join(logs, 'controller.log'));
  const ready = ctl.find((l) => l.msg === 'controller ready');
  const tl: BootstrapTimeline = {
    controller_process: rel(ready?.o['processStart'] as number | undefined),
    controller_ready: rel(ready?.time),
    deployment_seen: rel(first(ctl, (l) => l.msg === 'managing application')),
    units: {},
    startup_cpu_ms: { ...(typeof ready?.o['cpuMs'] === 'number' ? { controller: ready.o['cpuMs'] } : {}), agents: [], sidecars: [] },
  };
  const pods = existsSync(logs) ? [...new Set(readdirSync(logs).map((f) => /^(.*)\.(agent|sidecar)\.log$/.exec(f)?.[1]).filter((p): p is string => Boolean(p)))].sort() : [];
  for (const pod of pods) {
    const unit = pod.replace(/-(\d+)$/, '/$1');
    const agent = readLines(join(logs, `${pod}.agent.log`));
    const sidecar = readLines(join(logs, `${pod}.sidecar.log`));
    const pg = sidecar.filter((l) => l.o['service'] === 'postgresql');
    const sidecarReady = sidecar.find((l) => l.msg === 'sidecar ready');
    const agentFirst = agent.find((l) => l.o['processStart'] !== undefined);
    const u: UnitTimeline = {
      spawned: rel(first(ctl, (l) => l.msg === 'unit started' && l.o['unit'] === unit)),
      sidecar_process: rel(sidecarReady?.o['processStart'] as number | undefined),
      sidecar_ready: rel(sidecarReady?.time),
      agent_process: rel(agentFirst?.o['processStart'] as number | undefined),
      agent_started: rel(first(agent, (l) => l.msg === 'agent started')),
      initdb_start: rel(first(agent, (l) => l.msg === 'initialising a new cluster')),
      initdb_end: rel(first(agent, (l) => l.msg === 'initialised a new cluster')),
      clone_start: rel(first(agent, (l) => l.msg === 'cloning the primary with pg_basebackup')),
      clone_end: rel(first(agent, (l) => l.msg === 'cloned the primary with pg_basebackup')),
      postgres_ready: rel(first(pg, (l) => /database system is ready to accept (read-only )?connections/.test(l.msg))),
      streaming: rel(first(pg, (l) => /started streaming WAL from primary/.test(l.msg))),
    };
    if (typeof agentFirst?.o['cpuMs'] === 'number') tl.startup_cpu_ms.agents.push(agentFirst.o['cpuMs']);
    if (typeof sidecarReady?.o['cpuMs'] === 'number') tl.startup_cpu_ms.sidecars.push(sidecarReady.o['cpuMs']);
    u.role = u.initdb_start !== undefined ? 'primary' : u.clone_start !== undefined ? 'standby' : undefined;
    tl.units[unit] = Object.fromEntries(Object.entries(u).filter(([, v]) => v !== undefined)) as UnitTimeline;
    if (u.role === 'primary') {
      tl.initdb_start = u.initdb_start;
      tl.initdb_end = u.initdb_end;
      tl.primary_accepting_writes = u.postgres_ready;
      tl.primary_bootstrapped = rel(first(agent, (l) => l.msg === 'reconcile' && l.o['decision'] === 'bootstrapped'));
    }
  }
  if (leases.leader) Object.assign(tl, { leader: leases.leader.holder, leader_elected: rel(leases.leader.at) });
  if (leases.primary) Object.assign(tl, { primary: leases.primary.holder, primary_lease_taken: rel(leases.primary.at) });
  const standbys = Object.values(tl.units).filter((u) => u.role === 'standby');
  if (standbys.length && standbys.every((u) => u.streaming !== undefined)) tl.standbys_streaming = Math.max(...standbys.map((u) => u.streaming!));
  if (healthyAt !== undefined) tl.healthy = healthyAt - t0;
  return tl;
}

/**
 * The median of each step over runs (`cpu.*`: start-up CPU ms, the median unit's). Units are named by role (primary; standby-1 the first
 * to stream, standby-2 the last), not by number: which unit leads differs from run to run.
 */
export function medianTimeline(runs: BootstrapTimeline[]): Record<string, number> {
  const flat = runs.map((r) => {
    const out: Record<string, number> = {};
    const c = r.startup_cpu_ms;
    if (c.controller !== undefined) out['cpu.controller_startup'] = c.controller;
    if (c.agents.length) out['cpu.agent_startup'] = median(c.agents);
    if (c.sidecars.length) out['cpu.sidecar_startup'] = median(c.sidecars);
    for (const [k, v] of Object.entries(r)) if (typeof v === 'number') out[k] = v;
    const byRole = Object.values(r.units).sort((a, b) => (a.role === 'primary' ? -1 : b.role === 'primary' ? 1 : (a.streaming ?? Infinity) - (b.streaming ?? Infinity)));
    byRole.forEach((u, i) => {
      const name = u.role === 'primary' ? 'primary' : `standby-${i}`;
      for (const [k, v] of Object.entries(u)) if (typeof v === 'number') out[`${name}.${k}`] = v;
    });
    return out;
  });
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))];
  const med = Object.fromEntries(keys.map((k) => [k, Math.round(median(flat.map((f) => f[k]).filter((v): v is number => v !== undefined)))]));
  // Steps in time order (that is how it reads), then the start-up CPU figures.
  const cpu = (k: string) => k.startsWith('cpu.');
  return Object.fromEntries(Object.entries(med).sort((a, b) => Number(cpu(a[0])) - Number(cpu(b[0])) || a[1] - b[1]));
}
