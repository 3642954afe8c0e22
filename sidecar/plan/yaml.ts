import { stringify } from '#yaml';
import { formatDuration } from './duration.js';
import type { Check, Layer, LogTarget, Plan, Service } from './types.js';

/**
 * Renders a plan or layer the way Pebble does: fields in Pebble's order, map keys
 * sorted, unset fields omitted, durations as Go duration strings.
 */
const SERVICE_FIELDS = [
  'summary', 'description', 'startup', 'override', 'command', 'after', 'before', 'requires',
  'environment', 'user-id', 'user', 'group-id', 'group', 'working-dir', 'on-success',
  'on-failure', 'on-check-failure', 'backoff-delay', 'backoff-factor', 'backoff-limit', 'kill-delay',
] as const;
const DURATIONS = new Set(['backoff-delay', 'backoff-limit', 'kill-delay', 'period', 'timeout']);

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.keys(v as object).length === 0;
  return false;
}

function sorted(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}

function pick(o: object, fields: readonly string[]): Record<string, unknown> {
  const src = o as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    let v = src[f];
    if (isEmpty(v)) continue;
    if (DURATIONS.has(f) && typeof v === 'number') v = formatDuration(v);
    else if (v && typeof v === 'object' && !Array.isArray(v)) v = sorted(v as Record<string, unknown>);
    out[f] = v;
  }
  return out;
}

const service = (s: Service) => pick(s, SERVICE_FIELDS);

function check(c: Check): Record<string, unknown> {
  const out = pick(c, ['override', 'level', 'startup', 'period', 'timeout', 'threshold']);
  if (c.http) out.http = pick(c.http, ['url', 'headers']);
  if (c.tcp) out.tcp = pick(c.tcp, ['port', 'host']);
  if (c.exec) {
    out.exec = pick(c.exec, ['command', 'service-context', 'environment', 'user-id', 'user', 'group-id', 'group', 'working-dir']);
  }
  return out;
}

const logTarget = (t: LogTarget) => pick(t, ['type', 'location', 'services', 'labels', 'override']);

function sections(l: Pick<Plan, 'services' | 'checks' | 'log-targets'>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const names = (o: Record<string, unknown>) => Object.keys(o).sort();
  if (names(l.services).length) out.services = Object.fromEntries(names(l.services).map((n) => [n, service(l.services[n]!)]));
  if (names(l.checks).length) out.checks = Object.fromEntries(names(l.checks).map((n) => [n, check(l.checks[n]!)]));
  if (names(l['log-targets']).length) {
    out['log-targets'] = Object.fromEntries(names(l['log-targets']).map((n) => [n, logTarget(l['log-targets'][n]!)]));
  }
  return out;
}

export function planToYaml(plan: Plan): string {
  const doc = sections(plan);
  return Object.keys(doc).length ? stringify(doc, { lineWidth: 0 }) : '{}\n';
}

export function layerToYaml(layer: Layer): string {
  const doc: Record<string, unknown> = {};
  if (layer.summary) doc.summary = layer.summary;
  if (layer.description) doc.description = layer.description;
  Object.assign(doc, sections(layer));
  return Object.keys(doc).length ? stringify(doc, { lineWidth: 0 }) : '{}\n';
}
