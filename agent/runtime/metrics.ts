import { Counter, Registry } from '#prom-client';
import type { Route } from './unit-api.js';

/**
 * The agent's Prometheus metrics, served as GET /metrics on the unit's API (beside Patroni's
 * routes, as Patroni serves its /metrics). One registry per process: the runtime counts events,
 * actions and store requests here; a charm registers its own metrics on it (prom-client).
 * No unit or application label: the scrape target carries them (pgcharm prometheus-config,
 * the ServiceMonitor), as it does for the exporter's and the sidecar's metrics.
 */
export const registry = new Registry();

export const events = new Counter({
  name: 'pgcharm_events_total',
  help: "Events this unit's agent handled, by name and outcome (ok, deferred, error).",
  labelNames: ['event', 'outcome'] as const,
  registers: [registry],
});

export const actions = new Counter({
  name: 'pgcharm_actions_total',
  help: 'Actions this unit ran, by name and outcome (completed, failed).',
  labelNames: ['action', 'outcome'] as const,
  registers: [registry],
});

export const storeRequests = new Counter({
  name: 'pgcharm_store_requests_total',
  help: 'Requests to the store (Kubernetes API) by client operation; watches are not counted (one long request each).',
  labelNames: ['operation'] as const,
  registers: [registry],
});

export const storeErrors = new Counter({
  name: 'pgcharm_store_errors_total',
  help: 'Store requests that failed, by operation and reason: unreachable (no answer: a timeout or a connection error) or the HTTP status.',
  labelNames: ['operation', 'reason'] as const,
  registers: [registry],
});

/**
 * One scrape at a time: the gauges' collect() resets and then awaits a reading, so two scrapes
 * at once could each emit the other's values.
 */
let scraping: Promise<unknown> = Promise.resolve();
function scrape(): Promise<string> {
  const next = scraping.catch(() => undefined).then(() => registry.metrics());
  scraping = next;
  return next;
}

/** GET /metrics: Prometheus's text format (what Patroni's /metrics and prom-client serve). */
export const metricsRoute: Route = {
  method: 'GET',
  path: '/metrics',
  auth: false,
  handle: async () => ({ status: 200, body: await scrape(), contentType: registry.contentType }),
};
