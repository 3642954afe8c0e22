import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '../agent/runtime/kube.js';
import { modelPaths, pidAlive, readControllerInfo } from '../agent/controller/model.js';
import { until } from './cluster.js';
import { killedAt, pgcharmCli as cli } from './pgcharm.js';
import { summary } from './stats.js';

/**
 * Agent runtime benchmarks on a real 3-unit local deployment of the recorder test charm:
 * leader failover after `pgcharm kill` of the leader unit, and a charm.yaml edit until
 * config-changed was handled on every unit.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'); // dist/bench -> repo
const CHARM = join(root, 'test', 'fixtures', 'recorder', 'charm.yaml');
const MODULE = join(root, 'dist', 'test', 'fixtures', 'recorder', 'charm.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Ev {
  t: number;
  event: string;
  config: Record<string, unknown>;
}

function events(model: string, pod: string): Ev[] {
  const f = join(modelPaths(model).unit(pod), 'events.jsonl');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Ev);
}

export async function benchRuntime(opts: { failoverRuns: number; configRuns: number }) {
  const model = mkdtempSync(join(tmpdir(), 'pgcharm-bench-model-'));
  chmodSync(model, 0o755);
  const charm = `${model}-charm.yaml`;
  copyFileSync(CHARM, charm);
  const original = readFileSync(charm, 'utf8');
  try {
    await cli(model, ['deploy', '--units', '3', '--charm', charm, '--charm-module', MODULE, '--timeout', '120']);
    const info = readControllerInfo(model)!;
    const kube = connect({ kubeconfig: modelPaths(model).kubeconfig, namespace: info.namespace });
    const holder = async () => (await kube.coordination.readNamespacedLease({ name: 'recorder-leader', namespace: kube.namespace })).spec?.holderIdentity ?? '';
    const settled = async () => {
      const s = JSON.parse(await cli(model, ['status', '--format', 'json'])) as { units: Record<string, { agent: { status: string }; workload: { status: string } }> };
      return Object.values(s.units).every((u) => u.agent.status === 'idle' && u.workload.status === 'active') ? true : undefined;
    };

    // Leader failover: kill -9 of the whole leader unit -> another unit holds the lease -> its leader-elected ran.
    const takeover: number[] = [];
    const elected: number[] = [];
    for (let i = 0; i < opts.failoverRuns; i++) {
      const old = await holder();
      const before = Date.now();
      await cli(model, ['kill', old]);
      // Measured from the SIGKILL itself (the kubelet logs it), not from the CLI's start-up.
      const t0 = await until('the kill', () => killedAt(model, before), 10_000, 10);
      const next = await until('a new leader', async () => {
        const h = await holder();
        return h && h !== old ? h : undefined;
      }, 60_000, 10);
      takeover.push(Date.now() - t0);
      const pod = next.replace('/', '-');
      const ev = await until('leader-elected', () => events(model, pod).find((e) => e.event === 'leader-elected' && e.t >= t0), 30_000, 10);
      elected.push(ev.t - t0);
      await until('the killed unit back and every unit settled', settled, 120_000, 500);
    }

    // charm.yaml edit -> config-changed handled on all three units.
    const config: number[] = [];
    for (let i = 0; i < opts.configRuns; i++) {
      const greeting = `bench-${i}-${Date.now()}`;
      const t0 = Date.now();
      writeFileSync(charm, original.replace('default: hello', `default: ${greeting}`));
      const times = await until('config-changed on every unit', () => {
        const ts = ['recorder-0', 'recorder-1', 'recorder-2'].map((p) => events(model, p).find((e) => e.event === 'config-changed' && e.config['greeting'] === greeting)?.t);
        return ts.every((t) => t !== undefined) ? (ts as number[]) : undefined;
      }, 60_000, 10);
      config.push(Math.max(...times) - t0);
      await sleep(500);
    }

    return {
      leader_failover_after_kill9_ms: { ...summary(takeover), what: 'pgcharm kill of the leader unit -> another unit holds the leader lease (lease 5 s, retry 1 s)' },
      leader_elected_handled_after_kill9_ms: { ...summary(elected), what: 'pgcharm kill of the leader unit -> leader-elected handler running on the new leader' },
      charm_yaml_edit_to_config_changed_all_units_ms: { ...summary(config), what: 'charm.yaml written -> config-changed handler started on all 3 units' },
    };
  } finally {
    const info = readControllerInfo(model);
    if (info && pidAlive(info.pid)) await cli(model, ['destroy']).catch(() => undefined);
    rmSync(model, { recursive: true, force: true });
    rmSync(charm, { force: true });
  }
}
