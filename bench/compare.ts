import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { medianTimeline, type BootstrapTimeline } from './bootstrap-timeline.js';
import { closeProbes, healthyOf, probe, saveLogs, states, until, type Cluster, type ServerState } from './cluster.js';
import { ensurePatroni, PATRONI_PROFILES, PatroniCluster } from './patroni.js';
import { PgcharmCluster } from './pgcharm.js';
import { summary } from './stats.js';
import { timelineSvg, type Series } from './svg.js';
import { Writer } from './writer.js';

/**
 * pgcharm and Patroni side by side: the same writer (a row every 10 ms, every acknowledged id
 * recorded), the same faults, the same clock. Each system gets fresh 3-node clusters on loopback.
 */

/** How long a killed node stays down before its supervisor starts it again (the local controller's reschedule delay). */
const REVIVE_AFTER_MS = 10_000;

type Summary = ReturnType<typeof summary>;

export interface SystemFigures {
  bootstrap_3_nodes_to_standbys_streaming_ms: Summary;
  /** pgcharm: ms from deploy start to each step, the median of the runs and each run's. */
  bootstrap_timeline_ms?: { median: Record<string, number>; runs: BootstrapTimeline[] };
  failover_kill9_primary_node_to_first_acked_write_ms: Summary;
  failover_acknowledged_writes_lost: { runs: number[]; total: number };
  failover_killed_node_streaming_again_ms: Summary;
  postmaster_kill9_to_first_acked_write_ms: Summary;
  postmaster_crash_acknowledged_writes_lost: { runs: number[]; total: number };
}

export interface CompareOptions {
  systems: string[];
  bootstrapRuns: number;
  failoverRuns: number;
  crashRuns: number;
  outDir: string;
  log: (s: string) => void;
}

interface Timeline {
  system: string;
  run: number;
  acks: number[];
  killAt: number;
  resumedAt: number;
  lost: number;
}

function makeCluster(system: string): Cluster {
  if (system === 'pgcharm') return new PgcharmCluster();
  const profile = PATRONI_PROFILES.find((p) => p.name === system);
  if (!profile) throw new Error(`unknown system ${system}: pgcharm, ${PATRONI_PROFILES.map((p) => p.name).join(', ')}`);
  return new PatroniCluster(profile, REVIVE_AFTER_MS);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function healthy(cluster: Cluster, timeoutMs = 240_000): Promise<string> {
  const c = await cluster.credentials();
  // Polled every 20 ms on connections kept open: the same for every system, and light on the machine measured.
  // What the nodes said last goes into the timeout's message: why it never became healthy.
  let last: Record<string, ServerState | undefined> = {};
  const check = async () => healthyOf((last = await states(cluster, c, { keep: true })));
  try {
    return await until(`${cluster.name}: one primary and every other node streaming`, check, timeoutMs, 20);
  } catch (e) {
    throw new Error(`${(e as Error).message}; last seen: ${JSON.stringify(last)}`);
  } finally {
    await closeProbes();
  }
}

/** `runs` fresh clusters from deploy to healthy; all but the last destroyed. `make` gives other than 3-node clusters. */
export async function bootstrap(system: string, runs: number, log: (s: string) => void, make = () => makeCluster(system)): Promise<{ ms: number[]; timelines: BootstrapTimeline[]; last: Cluster }> {
  const ms: number[] = [];
  const timelines: BootstrapTimeline[] = [];
  for (let i = 0; ; i++) {
    const cluster = make();
    try {
      const t0 = Date.now();
      await cluster.start();
      await healthy(cluster);
      const healthyAt = Date.now();
      ms.push(healthyAt - t0);
      const tl = await cluster.bootstrapTimeline?.(t0, healthyAt);
      if (tl) timelines.push(tl);
      log(`${system}: bootstrap ${i + 1}/${runs}: ${ms.at(-1)} ms${tl ? ` (${timelineLine(tl)})` : ''}`);
    } catch (e) {
      log(`${system}: bootstrap ${i + 1} failed; logs kept in ${saveLogs(cluster, 'bootstrap')}`);
      await cluster.destroy();
      throw e;
    }
    if (i + 1 >= runs) return { ms, timelines, last: cluster };
    await cluster.destroy();
  }
}

/** The main steps of one bootstrap on one line. */
function timelineLine(t: BootstrapTimeline): string {
  const units = Object.values(t.units);
  const max = (f: (u: (typeof units)[number]) => number | undefined) => Math.max(...units.map((u) => f(u) ?? NaN));
  const standbys = units.filter((u) => u.role === 'standby');
  const steps: [string, number | undefined][] = [
    ['controller', t.controller_ready],
    ['spawned', max((u) => u.spawned)],
    ['sidecars', max((u) => u.sidecar_ready)],
    ['agents', max((u) => u.agent_started)],
    ['leader', t.leader_elected],
    ['initdb', t.initdb_start],
    ['-', t.initdb_end],
    ['writable', t.primary_accepting_writes],
    ['clones', Math.min(...standbys.map((u) => u.clone_start ?? NaN))],
    ['-', Math.max(...standbys.map((u) => u.clone_end ?? NaN))],
    ['streaming', t.standbys_streaming],
  ];
  return steps.map(([k, v]) => `${k} ${v === undefined || Number.isNaN(v) ? '?' : v}`).join(', ').replace(/, - /g, '-');
}

export async function failover(cluster: Cluster, run: number, log: (s: string) => void) {
  const c = await cluster.credentials();
  const old = await healthy(cluster);
  const w = new Writer({ ports: () => cluster.ports(), ...c });
  await w.start();
  try {
    await sleep(1000);
    const oldPort = cluster.portOf(old);
    // The node stays down until writes resume elsewhere: a node that came back first would hide
    // how long the system takes to fail over (with Patroni's ttl 30 it would, after 10 s).
    const killAt = await cluster.killNode(old, { holdDown: true });
    const resumedAt = await until('a write acknowledged by the new primary', () => w.firstAckAfter(killAt, oldPort), 180_000, 10);
    await sleep(1000);
    await w.stop();
    const lost = (await w.lost()).length;
    const revivedAt = Date.now();
    await cluster.revive(old);
    await until(`${old} streaming again`, async () => ((await probe(cluster.portOf(old), c))?.receiver === 'streaming' ? true : undefined), 240_000, 50);
    const rejoinMs = Date.now() - revivedAt;
    log(`${cluster.name}: failover ${run}: first write on the new primary after ${resumedAt - killAt} ms, ${lost} lost; ${old}, started again, streaming after ${rejoinMs} ms`);
    const timeline: Timeline = { system: cluster.name, run, acks: w.acked.map((a) => a.at), killAt, resumedAt, lost };
    return { toFirstWrite: resumedAt - killAt, lost, rejoinMs, timeline };
  } finally {
    await w.stop();
  }
}

async function postmasterCrash(cluster: Cluster, run: number, log: (s: string) => void) {
  const c = await cluster.credentials();
  const primary = await healthy(cluster);
  const w = new Writer({ ports: () => cluster.ports(), ...c });
  await w.start();
  try {
    await sleep(1000);
    const t = await cluster.killPostmaster(primary);
    const first = await until('writes acknowledged again after the crash', () => w.firstAckAfterOutage(t), 180_000, 10);
    await sleep(500);
    await w.stop();
    const lost = (await w.lost()).length;
    log(`${cluster.name}: postmaster crash ${run}: first write after ${first - t} ms, ${lost} lost`);
    return { ms: first - t, lost };
  } finally {
    await w.stop();
  }
}

export async function compare(o: CompareOptions) {
  if (o.systems.some((s) => s.startsWith('patroni'))) ensurePatroni(o.log);
  const results: Record<string, SystemFigures> = {};
  const timelines: Timeline[] = [];
  const medians: Record<string, Record<string, number>> = {};
  const failed: Record<string, string> = {};
  for (const system of o.systems) {
    let cluster: Cluster | undefined;
    try {
      const b = await bootstrap(system, o.bootstrapRuns, o.log);
      cluster = b.last;
      const boot = b.ms;
      const timeline = b.timelines.length ? { bootstrap_timeline_ms: { median: medianTimeline(b.timelines), runs: b.timelines } } : {};
      const fo = [];
      for (let i = 1; i <= o.failoverRuns; i++) fo.push(await failover(cluster, i, o.log));
      const crash = [];
      for (let i = 1; i <= o.crashRuns; i++) crash.push(await postmasterCrash(cluster, i, o.log));
      timelines.push(...fo.map((f) => f.timeline));
      const r: SystemFigures = {
        bootstrap_3_nodes_to_standbys_streaming_ms: summary(boot),
        ...timeline,
        failover_kill9_primary_node_to_first_acked_write_ms: summary(fo.map((f) => f.toFirstWrite)),
        failover_acknowledged_writes_lost: { runs: fo.map((f) => f.lost), total: fo.reduce((a, f) => a + f.lost, 0) },
        failover_killed_node_streaming_again_ms: summary(fo.map((f) => f.rejoinMs)),
        postmaster_kill9_to_first_acked_write_ms: summary(crash.map((x) => x.ms)),
        postmaster_crash_acknowledged_writes_lost: { runs: crash.map((x) => x.lost), total: crash.reduce((a, x) => a + x.lost, 0) },
      };
      results[system] = r;
      medians[system] = {
        bootstrap: r.bootstrap_3_nodes_to_standbys_streaming_ms.median,
        failover: r.failover_kill9_primary_node_to_first_acked_write_ms.median,
        rejoin: r.failover_killed_node_streaming_again_ms.median,
        crash: r.postmaster_kill9_to_first_acked_write_ms.median,
      };
    } catch (e) {
      // One system failing (say, a package that would not install) still leaves the others' figures.
      failed[system] = (e as Error).message;
      o.log(`${system}: FAILED: ${(e as Error).message}${cluster ? `; logs kept in ${saveLogs(cluster, 'compare')}` : ''}`);
    } finally {
      await cluster?.destroy();
    }
  }
  // Ratios: how many times longer each other system takes than pgcharm (medians).
  const ratios: Record<string, Record<string, number>> = {};
  const base = medians['pgcharm'];
  if (base) {
    for (const [system, m] of Object.entries(medians)) {
      if (system === 'pgcharm') continue;
      ratios[`${system}_over_pgcharm`] = Object.fromEntries(Object.entries(m).map(([k, v]) => [k, Math.round((v / base[k]!) * 100) / 100]));
    }
  }
  mkdirSync(o.outDir, { recursive: true });
  const colors: Record<string, string> = { pgcharm: '#1f6fd1', 'patroni-defaults': '#d1761f', 'patroni-tuned': '#8a2be2' };
  const pictures: string[] = [];
  for (let run = 1; run <= o.failoverRuns; run++) {
    const series: Series[] = timelines
      .filter((t) => t.run === run)
      .map((t) => ({ label: `${t.system}, run ${run}`, color: colors[t.system] ?? '#333', acks: t.acks, killAt: t.killAt, resumedAt: t.resumedAt, lost: t.lost }));
    if (!series.length) continue;
    const file = join(o.outDir, `failover-run-${run}.svg`);
    writeFileSync(file, timelineSvg(`kill -9 of the primary node under a writer (run ${run} of ${o.failoverRuns})`, series));
    pictures.push(file);
  }
  return {
    what: {
      failover: 'SIGKILL of everything belonging to the primary node (pgcharm: agent, sidecar, Postgres; Patroni: patroni and its Postgres) under a writer inserting a row every 10 ms -> first write acknowledged by another node; the killed node stays down until then',
      killed_node_streaming_again: 'the killed node started again (1 s after writes resumed; pgcharm: `pgcharm kill --revive`, Patroni: patroni started again) -> its WAL receiver streams from the new primary',
      postmaster_crash: 'SIGKILL of the primary postmaster only -> writes acknowledged again (on any node) after the first failed one',
      bootstrap: 'start of the processes (pgcharm: `pgcharm deploy`, controller included; Patroni: etcd and 3 patroni) -> one primary with both standbys streaming',
      patroni: 'Debian packages (patroni, etcd-server), 3 nodes + 1 etcd on loopback, use_pg_rewind and use_slots on, synchronous_mode off (Patroni\'s default); pgcharm runs its default synchronous-mode=quorum',
    },
    systems: results,
    ...(Object.keys(failed).length ? { failed } : {}),
    ratios,
    pictures,
  };
}
