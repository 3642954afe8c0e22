import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cmdline, killMarked, pidsWithEnv } from '../../agent/procs.js';
import { until } from '../cluster.js';
import type { PgcharmCluster } from '../pgcharm.js';
import { pgcharmCli } from '../pgcharm.js';
import type { Rng } from './rng.js';

/**
 * The faults a chaos cycle picks from. Each injects its fault and returns once it has done so
 * (not once the cluster healed: the checks wait for that), saying what it did.
 */

export interface FaultContext {
  cluster: PgcharmCluster;
  rng: Rng;
  /** The writable unit now. */
  primary: string;
  /** Units the chaos removed itself (their directories go by design). */
  removed: Set<string>;
  log: (s: string) => void;
  ttlMs: number;
}

export interface Injected {
  details: Record<string, unknown>;
  /** Undoes what the fault added (a unit), once the cluster is healthy again. */
  afterHealthy?: () => Promise<void>;
}

export interface Fault {
  name: string;
  run(ctx: FaultContext): Promise<Injected>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pod = (unit: string) => unit.replace('/', '-');
const marker = (c: PgcharmCluster, unit: string) => `${c.model}#${pod(unit)}`;

function agentPid(c: PgcharmCluster, unit: string): number {
  const pid = pidsWithEnv('PGCHARM_LOCAL_UNIT', marker(c, unit)).find((p) => cmdline(p).includes('agent'));
  if (!pid) throw new Error(`no agent process for ${unit}`);
  return pid;
}

function controllerPid(c: PgcharmCluster): number {
  return (JSON.parse(readFileSync(join(c.model, 'controller.json'), 'utf8')) as { pid: number }).pid;
}

export const FAULTS: Fault[] = [
  {
    name: 'kill-primary-unit',
    async run({ cluster, primary }) {
      await cluster.killNode(primary);
      return { details: { unit: primary } };
    },
  },
  {
    name: 'kill-postgres',
    async run({ cluster, rng, primary }) {
      // Usually the primary (the interesting case), sometimes a standby.
      const names = cluster.nodeNames();
      const unit = rng.next() < 0.7 ? primary : rng.pick(names.filter((n) => n !== primary));
      await cluster.killPostmaster(unit);
      return { details: { unit, primary: unit === primary } };
    },
  },
  {
    name: 'freeze-primary-agent',
    async run({ cluster, rng, primary, ttlMs }) {
      const pid = agentPid(cluster, primary);
      const ms = Math.round(ttlMs * 2 + 1000 + rng.next() * 3000);
      process.kill(pid, 'SIGSTOP');
      try {
        await sleep(ms);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      return { details: { unit: primary, frozen_ms: ms } };
    },
  },
  {
    name: 'kill-controller-during-failover',
    async run({ cluster, rng, primary }) {
      await cluster.killNode(primary);
      const after = Math.round(200 + rng.next() * 1500);
      await sleep(after);
      const pid = controllerPid(cluster);
      process.kill(pid, 'SIGKILL');
      const down = Math.round(2000 + rng.next() * 3000);
      await sleep(down);
      // `deploy` is idempotent: it starts the controller again, which adopts the running units.
      await pgcharmCli(cluster.model, ['deploy', '--units', '3', '--timeout', '180'], 240_000);
      return { details: { unit: primary, controller_killed_after_ms: after, store_down_ms: down } };
    },
  },
  {
    name: 'kill-standby-during-clone',
    async run({ cluster, log, removed }) {
      const before = new Set(cluster.nodeNames());
      await pgcharmCli(cluster.model, ['add-unit']);
      const unit = await until('the new unit', () => cluster.nodeNames().find((n) => !before.has(n)), 30_000, 20);
      const partial = join(cluster.model, 'units', pod(unit), 'storage', 'pgdata', 'pgdata.cloning');
      await until(`${unit} cloning`, () => (existsSync(partial) ? true : undefined), 120_000, 5);
      // Every process of the unit at once, as a node failure would; the kubelet restarts them.
      const killed = killMarked('PGCHARM_LOCAL_UNIT', marker(cluster, unit));
      log(`killed ${killed} processes of ${unit} while it cloned`);
      return {
        details: { unit, processes_killed: killed, then: 'removed once it streams again' },
        afterHealthy: async () => {
          removed.add(unit);
          await pgcharmCli(cluster.model, ['remove-unit', unit]);
          await until(`${unit} removed`, () => (cluster.nodeNames().includes(unit) ? undefined : true), 120_000, 100);
        },
      };
    },
  },
  {
    name: 'config-change-in-flight',
    async run({ cluster, rng }) {
      const value = 100 + Math.floor(rng.next() * 60);
      await pgcharmCli(cluster.model, ['config', `max-connections=${value}`]);
      const after = Math.round(rng.next() * 1500);
      await sleep(after);
      const unit = rng.pick(cluster.nodeNames());
      await cluster.killNode(unit);
      return { details: { max_connections: value, unit, killed_after_ms: after } };
    },
  },
];
