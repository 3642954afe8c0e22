import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARK, testModel, type TestModel } from '../helpers/model.js';
import { cmdline, freePort, pidsWithEnv, waitFor } from '../helpers/procs.js';

/**
 * End to end with a real Prometheus (Debian's package, 2.42): it runs the configuration
 * `pgcharm prometheus-config` prints for a 3-unit deployment, scrapes every agent, exporter and
 * sidecar, and evaluates pgcharm's alert rules. A standby's Postgres killed over and over (as
 * the kernel's OOM killer would) raises PgcharmReplicaNotStreaming, and the alert resolves once
 * the unit is left to recover.
 */

interface Target {
  labels: Record<string, string>;
  health: string;
  lastError: string;
}
interface Alert {
  labels: Record<string, string>;
  state: string;
}

describe('Prometheus scrapes a deployment and evaluates the alert rules', () => {
  let m: TestModel;
  let prom: ChildProcess | undefined;
  let data = '';
  let url = '';
  let killing = false;

  const api = async <T>(path: string): Promise<T> => {
    const r = await fetch(`${url}${path}`);
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
    return ((await r.json()) as { data: T }).data;
  };
  const query = async (q: string) => (await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(q)}`)).result;
  const alerts = async (name: string) => (await api<{ alerts: Alert[] }>('/api/v1/alerts')).alerts.filter((a) => a.labels['alertname'] === name);

  beforeAll(async () => {
    m = testModel();
    const r = await m.cli(['deploy', '--units', '3', '--timeout', '120'], 180_000);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const cfg = await m.cli(['prometheus-config', '--scrape-interval', '2s', '--evaluation-interval', '2s']);
    expect(cfg.code, cfg.stderr).toBe(0);
    writeFileSync(join(m.dir, 'prometheus.yml'), cfg.stdout);
    data = mkdtempSync(join(tmpdir(), 'pgcharm-prometheus-'));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    // Marked like the model's processes: the model's cleanup kills it even if this file's afterAll does not run.
    prom = spawn('prometheus', [`--config.file=${join(m.dir, 'prometheus.yml')}`, `--storage.tsdb.path=${data}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
      env: { ...process.env, [MARK]: m.marker },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    prom.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
    await waitFor(`Prometheus ready (${stderr})`, async () => (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok, 30_000, 200);
  }, 240_000);

  afterAll(async () => {
    killing = false;
    prom?.kill('SIGKILL');
    await m?.cleanup();
    if (data) rmSync(data, { recursive: true, force: true });
  }, 60_000);

  it('scrapes 3 agents, 3 exporters and 3 sidecars, each labelled with its unit; one primary, every Postgres up', async () => {
    const up = await waitFor(
      'every target up',
      async () => {
        const t = (await api<{ activeTargets: Target[] }>('/api/v1/targets')).activeTargets;
        return t.length === 9 && t.every((x) => x.health === 'up') ? t : undefined;
      },
      60_000,
      500,
    ).catch(async (e: unknown) => {
      const t = (await api<{ activeTargets: Target[] }>('/api/v1/targets')).activeTargets;
      throw new Error(`${String(e)}: ${JSON.stringify(t.map((x) => [x.labels['job'], x.labels['unit'], x.health, x.lastError]))}`);
    });
    const byJob = (job: string) => up.filter((x) => x.labels['job'] === job).map((x) => x.labels['unit']).sort();
    for (const job of ['pgcharm-agent', 'pgcharm-postgres', 'pgcharm-sidecar']) expect(byJob(job), job).toEqual(['postgresql/0', 'postgresql/1', 'postgresql/2']);
    expect(up.every((x) => x.labels['application'] === 'postgresql')).toBe(true);
    await waitFor('one primary', async () => (await query('sum(pgcharm_primary)'))[0]?.value[1] === '1', 20_000, 500);
    expect((await query('sum(pg_up)'))[0]?.value[1]).toBe('3');
    expect((await query('sum(pebble_service_active{service="postgresql"})'))[0]?.value[1]).toBe('3');
    // A scrape from the first seconds after the deploy may have made it pending: gone at the next evaluation.
    await waitFor('PgcharmNoPrimary neither pending nor firing', async () => (await alerts('PgcharmNoPrimary')).length === 0, 10_000, 500);
  }, 90_000);

  it("a standby's Postgres killed again and again: PgcharmReplicaNotStreaming fires for it, and resolves once it recovers", async () => {
    const status = JSON.parse((await m.cli(['status', '--format', 'json'])).stdout) as { units: Record<string, { role: string }> };
    const standby = Object.entries(status.units).find(([, u]) => u.role === 'replica')![0];
    const postmaster = () =>
      pidsWithEnv('PGCHARM_LOCAL_UNIT', `${m.dir}#${standby.replace('/', '-')}`).find((p) => /\/bin\/postgres$/.test(cmdline(p)[0] ?? ''));
    killing = true;
    let kills = 0;
    const loop = (async () => {
      while (killing) {
        const pid = postmaster();
        if (pid) {
          try {
            process.kill(pid, 'SIGKILL');
            kills++;
          } catch {
            /* already gone */
          }
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    try {
      const firing = await waitFor(
        `PgcharmReplicaNotStreaming firing for ${standby}`,
        async () => (await alerts('PgcharmReplicaNotStreaming')).find((a) => a.state === 'firing' && a.labels['unit'] === standby),
        150_000,
        1000,
      );
      expect(firing.labels['severity']).toBe('warning');
      expect(kills).toBeGreaterThan(0);
      // Only the standby that was killed.
      expect((await alerts('PgcharmReplicaNotStreaming')).map((a) => a.labels['unit'])).toEqual([standby]);
    } finally {
      killing = false;
      await loop;
    }
    await waitFor(`PgcharmReplicaNotStreaming resolved for ${standby}`, async () => (await alerts('PgcharmReplicaNotStreaming')).length === 0, 90_000, 1000);
    expect((await query(`pgcharm_replica_streaming{unit="${standby}"}`))[0]?.value[1]).toBe('1');
    // The sidecar restarted it each time: its start count says so.
    expect(Number((await query(`pebble_service_start_count{unit="${standby}",service="postgresql"}`))[0]?.value[1])).toBeGreaterThan(1);
  }, 300_000);
});
