import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Prometheus's file-based service discovery (file_sd) for a local model: the local controller
 * keeps one JSON file per application and job under `<model>/monitoring/`, rewritten when units
 * come or go (Prometheus watches the files), and `pgcharm prometheus-config` points a Prometheus
 * at them. Every target is labelled with its application and unit, as the ServiceMonitor's
 * relabelling labels pods in Kubernetes: the alert rules group by those.
 */

export const SCRAPE_JOBS = {
  /** The agent's unit API: GET /metrics. */
  'pgcharm-agent': { port: 'api', path: '/metrics' },
  /** The workload's postgres exporter. */
  'pgcharm-postgres': { port: 'metrics', path: '/metrics' },
  /** The sidecar's HTTP listener: Pebble's GET /v1/metrics (basic auth, a `metrics` identity). */
  'pgcharm-sidecar': { port: 'pebble', path: '/v1/metrics' },
} as const;
export type ScrapeJob = keyof typeof SCRAPE_JOBS;

export interface UnitPorts {
  unit: string;
  /** Ports by pod port name (api, metrics, pebble); a unit without one has no target for that job. */
  ports: Readonly<Record<string, number | undefined>>;
}

export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

/** The file_sd groups of each job (pure): one group per unit, so each target carries its unit. */
export function targetGroups(app: string, host: string, units: readonly UnitPorts[]): Record<ScrapeJob, TargetGroup[]> {
  const out = {} as Record<ScrapeJob, TargetGroup[]>;
  for (const [job, { port }] of Object.entries(SCRAPE_JOBS) as [ScrapeJob, (typeof SCRAPE_JOBS)[ScrapeJob]][]) {
    out[job] = [...units]
      .sort((a, b) => a.unit.localeCompare(b.unit, 'en', { numeric: true }))
      .flatMap((u) => (u.ports[port] ? [{ targets: [`${host}:${u.ports[port]}`], labels: { application: app, unit: u.unit } }] : []));
  }
  return out;
}

export const targetsDir = (model: string): string => join(model, 'monitoring');
export const targetsFile = (model: string, app: string, job: ScrapeJob): string => join(targetsDir(model), `${app}.${job}.json`);

/** Writes the files that changed (a rename: Prometheus never reads half a file). Returns how many it wrote. */
export function writeTargets(model: string, app: string, groups: Record<ScrapeJob, TargetGroup[]>): number {
  mkdirSync(targetsDir(model), { recursive: true, mode: 0o755 });
  let wrote = 0;
  for (const [job, g] of Object.entries(groups) as [ScrapeJob, TargetGroup[]][]) {
    const file = targetsFile(model, app, job);
    const text = JSON.stringify(g, null, 2) + '\n';
    if (existsSync(file) && readFileSync(file, 'utf8') === text) continue;
    writeFileSync(`${file}.tmp`, text, { mode: 0o644 });
    renameSync(`${file}.tmp`, file);
    wrote++;
  }
  return wrote;
}
