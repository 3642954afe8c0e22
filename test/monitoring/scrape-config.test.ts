import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ALERT_RULES, prometheusConfig } from '../../agent/commands/prometheus-config.js';
import { exporterLayer } from '../../agent/charm/postgresql/exporter.js';
import { layout } from '../../agent/charm/postgresql/render.js';
import { targetGroups, targetsFile, writeTargets } from '../../agent/monitoring/targets.js';

const dir = mkdtempSync(join(tmpdir(), 'pgcharm-scrape-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('file_sd targets', () => {
  const units = [
    { unit: 'pg/10', ports: { api: 4010, metrics: 5010, pebble: 6010, workload: 7010 } },
    { unit: 'pg/2', ports: { api: 4002, metrics: 5002 } },
  ];

  it('one group per unit and job, labelled with application and unit, in unit order; a port a unit lacks gives no target', () => {
    const g = targetGroups('pg', '127.0.0.1', units);
    expect(g['pgcharm-agent']).toEqual([
      { targets: ['127.0.0.1:4002'], labels: { application: 'pg', unit: 'pg/2' } },
      { targets: ['127.0.0.1:4010'], labels: { application: 'pg', unit: 'pg/10' } },
    ]);
    expect(g['pgcharm-postgres'].map((x) => x.targets[0])).toEqual(['127.0.0.1:5002', '127.0.0.1:5010']);
    expect(g['pgcharm-sidecar']).toEqual([{ targets: ['127.0.0.1:6010'], labels: { application: 'pg', unit: 'pg/10' } }]);
  });

  it('writes only the files whose content changed', () => {
    const g = targetGroups('pg', '127.0.0.1', units);
    expect(writeTargets(dir, 'pg', g)).toBe(3);
    expect(writeTargets(dir, 'pg', g)).toBe(0);
    expect(writeTargets(dir, 'pg', targetGroups('pg', '127.0.0.1', units.slice(1)))).toBe(3);
    expect(JSON.parse(readFileSync(targetsFile(dir, 'pg', 'pgcharm-agent'), 'utf8'))).toHaveLength(1);
  });
});

describe('pgcharm prometheus-config', () => {
  it('scrapes each application\'s agents, exporters and (with a password) sidecars, with the rules; promtool accepts it', () => {
    const pw = join(dir, 'pg.sidecar-metrics.password');
    writeFileSync(pw, 'secret', { mode: 0o600 });
    const text = prometheusConfig({ model: dir, apps: ['pg', 'other'], scrapeInterval: '5s', evaluationInterval: '5s', sidecarPasswordFile: (app) => (app === 'pg' ? pw : undefined) });
    const c = parse(text) as { rule_files: string[]; scrape_configs: { job_name: string; metrics_path: string; basic_auth?: { password_file: string }; file_sd_configs: { files: string[] }[]; relabel_configs: { target_label: string; replacement: string }[] }[] };
    expect(c.rule_files).toEqual([ALERT_RULES]);
    expect(c.scrape_configs.map((s) => s.job_name)).toEqual(['other/pgcharm-agent', 'other/pgcharm-postgres', 'pg/pgcharm-agent', 'pg/pgcharm-postgres', 'pg/pgcharm-sidecar']);
    const sidecar = c.scrape_configs.find((s) => s.job_name === 'pg/pgcharm-sidecar')!;
    expect(sidecar.metrics_path).toBe('/v1/metrics');
    expect(sidecar.basic_auth?.password_file).toBe(pw);
    expect(text).not.toContain('secret');
    for (const s of c.scrape_configs) expect(s.relabel_configs).toContainEqual({ target_label: 'job', replacement: s.job_name.split('/')[1] });
    writeFileSync(join(dir, 'prometheus.yml'), text);
    const r = spawnSync('promtool', ['check', 'config', join(dir, 'prometheus.yml')], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('refuses a bad interval, naming the flag', () => {
    expect(() => prometheusConfig({ model: dir, apps: ['pg'], scrapeInterval: 'often', evaluationInterval: '15s' })).toThrow(/--scrape-interval: expected a duration/);
    expect(() => prometheusConfig({ model: dir, apps: ['pg'], scrapeInterval: '15s', evaluationInterval: '0s' })).toThrow(/--evaluation-interval/);
  });
});

describe('the postgres exporter layer', () => {
  it('runs as postgres on the unit port, over the socket as monitoring, the password from a file only', () => {
    const l = layout('/data', 15);
    const y = parse(exporterLayer(l, { listen: '10.0.0.7:9187', pgPort: 5432, digest: 'abc' })) as { services: Record<string, { command: string; user: string; environment: Record<string, string> }> };
    const s = y.services['postgres-exporter']!;
    expect(s.user).toBe('postgres');
    expect(s.command).toContain('--web.listen-address=10.0.0.7:9187');
    expect(s.environment['DATA_SOURCE_USER']).toBe('monitoring');
    expect(s.environment['DATA_SOURCE_PASS_FILE']).toBe(`${l.private}/monitoring.password`);
    expect(s.environment['DATA_SOURCE_URI']).toBe(`localhost:5432/postgres?host=${encodeURIComponent(l.socketDir)}&sslmode=disable`);
    expect(Object.keys(s.environment).some((k) => /PASS$|PASSWORD/.test(k))).toBe(false);
  });
});
