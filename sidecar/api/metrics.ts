import type { CheckManager } from '../checks/manager.js';
import type { ServiceManager } from '../services/manager.js';
import { raw, type ApiResponse } from './response.js';
import type { Route } from './router.js';

/**
 * GET /v1/metrics as Pebble serves it (internals/daemon/api_metrics.go): its own OpenMetrics
 * text, the same names, comments and layout (a blank line after each sample), so a scraper set
 * up for Pebble reads the sidecar unchanged. Services: every one started at least once; checks:
 * `pebble_check_up` only for active ones. Written by hand as Pebble writes it: five lines of
 * format do not justify a metrics library in the supervisor that must stay small.
 */

interface Sample {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
  label: [string, string];
  value: number;
}

const quote = (v: string): string => JSON.stringify(v);

export function renderMetrics(o: { services: ReturnType<ServiceManager['metrics']>; checks: ReturnType<CheckManager['metrics']> }): string {
  const samples: Sample[] = [];
  for (const s of o.services) {
    samples.push({ name: 'pebble_service_active', type: 'gauge', help: 'Whether the service is currently active (1) or not (0)', label: ['service', s.name], value: s.active ? 1 : 0 });
    samples.push({ name: 'pebble_service_start_count', type: 'counter', help: 'Number of times the service has started', label: ['service', s.name], value: s.starts });
  }
  for (const c of o.checks) {
    if (c.up !== undefined) samples.push({ name: 'pebble_check_up', type: 'gauge', help: 'Whether the health check is up (1) or not (0)', label: ['check', c.name], value: c.up ? 1 : 0 });
    samples.push({ name: 'pebble_check_success_count', type: 'counter', help: 'Number of times the check has succeeded', label: ['check', c.name], value: c.successes });
    samples.push({ name: 'pebble_check_failure_count', type: 'counter', help: 'Number of times the check has failed', label: ['check', c.name], value: c.failures });
  }
  return samples.map((m) => `# HELP ${m.name} ${m.help}\n# TYPE ${m.name} ${m.type}\n${m.name}{${m.label[0]}=${quote(m.label[1])}} ${m.value}\n\n`).join('');
}

export function metricsRoutes(services: ServiceManager, checks: CheckManager): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/metrics',
      handler: (): ApiResponse =>
        raw((res) => {
          const text = renderMetrics({ services: services.metrics(), checks: checks.metrics() });
          res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
          res.end(text);
        }),
    },
  ];
}
