import { parseCommand } from './command.js';
import { shlexSplit } from './shlex.js';
import { DEFAULTS, PlanError, type Check, type Layer, type LogTarget, type Plan, type Service } from './types.js';

/**
 * Combining layers follows Pebble's rules: `replace` takes the new definition whole;
 * `merge` overwrites scalars the new layer sets, appends after/before/requires (and log
 * target services) and merges maps key by key. The combined plan is then validated as a
 * whole; on any error the caller keeps its old plan.
 */

function copy<T>(v: T): T {
  return structuredClone(v);
}

function mergeService(old: Service, s: Service): Service {
  const out = copy(old);
  const scalars = [
    'summary',
    'description',
    'startup',
    'command',
    'kill-delay',
    'user-id',
    'user',
    'group-id',
    'group',
    'working-dir',
    'on-success',
    'on-failure',
    'backoff-delay',
    'backoff-factor',
    'backoff-limit',
  ] as const;
  for (const k of scalars) {
    if (s[k] !== undefined && s[k] !== '') (out as unknown as Record<string, unknown>)[k] = s[k];
  }
  out.override = s.override ?? out.override;
  out.after = [...out.after, ...s.after];
  out.before = [...out.before, ...s.before];
  out.requires = [...out.requires, ...s.requires];
  out.environment = { ...out.environment, ...s.environment };
  out['on-check-failure'] = { ...out['on-check-failure'], ...s['on-check-failure'] };
  return out;
}

function mergeCheck(old: Check, c: Check): Check {
  const out = copy(old);
  for (const k of ['level', 'startup', 'period', 'timeout', 'threshold'] as const) {
    if (c[k] !== undefined) (out as unknown as Record<string, unknown>)[k] = c[k];
  }
  out.override = c.override ?? out.override;
  if (c.http) {
    out.http = {
      ...(out.http ?? { headers: {} }),
      ...(c.http.url ? { url: c.http.url } : {}),
      headers: { ...(out.http?.headers ?? {}), ...c.http.headers },
    };
  }
  if (c.tcp) out.tcp = { ...(out.tcp ?? {}), ...defined(c.tcp) };
  if (c.exec) {
    const { environment, ...rest } = c.exec;
    out.exec = {
      ...(out.exec ?? { environment: {} }),
      ...defined(rest),
      environment: { ...(out.exec?.environment ?? {}), ...environment },
    };
  }
  return out;
}

function mergeLogTarget(old: LogTarget, t: LogTarget): LogTarget {
  const out = copy(old);
  if (t.type) out.type = t.type;
  if (t.location) out.location = t.location;
  out.override = t.override ?? out.override;
  out.services = [...out.services, ...t.services];
  out.labels = { ...out.labels, ...t.labels };
  return out;
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== '')) as Partial<T>;
}

function combineSection<T extends { override?: string }>(
  kind: string,
  label: string,
  into: Record<string, T>,
  from: Record<string, T>,
  merge: (a: T, b: T) => T,
): void {
  for (const [name, item] of Object.entries(from)) {
    switch (item.override) {
      case 'merge':
        into[name] = into[name] ? merge(into[name]!, item) : copy(item);
        break;
      case 'replace':
        into[name] = copy(item);
        break;
      case undefined:
        throw new PlanError(`layer ${JSON.stringify(label)} must define "override" for ${kind} ${JSON.stringify(name)}`);
      default:
        throw new PlanError(`layer ${JSON.stringify(label)} has invalid "override" value for ${kind} ${JSON.stringify(name)}`);
    }
  }
}

/** Combines layers into one layer value (used both for the plan and for `add --combine`). */
export function combineInto(base: Layer, layer: Layer): Layer {
  const out: Layer = copy(base);
  if (layer.summary) out.summary = layer.summary;
  if (layer.description) out.description = layer.description;
  combineSection('service', layer.label, out.services, layer.services, mergeService);
  combineSection('check', layer.label, out.checks, layer.checks, mergeCheck);
  combineSection('log target', layer.label, out['log-targets'], layer['log-targets'], mergeLogTarget);
  return out;
}

export function combineLayers(layers: Layer[]): Plan {
  let acc: Layer = { order: 0, label: '', services: {}, checks: {}, 'log-targets': {} };
  for (const l of layers) acc = combineInto(acc, l);
  const plan: Plan = { layers, services: acc.services, checks: acc.checks, 'log-targets': acc['log-targets'] };
  validatePlan(plan);
  return plan;
}

const q = JSON.stringify;

export function validatePlan(plan: Plan): void {
  for (const [name, s] of Object.entries(plan.services)) {
    if (!s.command) throw new PlanError(`plan must define "command" for service ${q(name)}`);
    try {
      parseCommand(s.command);
    } catch (e) {
      throw new PlanError(`plan service ${q(name)} command invalid: ${(e as Error).message}`);
    }
    if (s['backoff-factor'] !== undefined && s['backoff-factor'] < 1) {
      throw new PlanError(`plan service ${q(name)} backoff-factor must be 1.0 or greater, not ${s['backoff-factor']}`);
    }
    if (s['backoff-delay'] !== undefined && s['backoff-delay'] <= 0) {
      throw new PlanError(`plan service ${q(name)} backoff-delay must be greater than zero`);
    }
    if (s.user === undefined && s['user-id'] === undefined && (s.group !== undefined || s['group-id'] !== undefined)) {
      throw new PlanError(`plan service ${q(name)} must specify user, not just group`);
    }
    for (const dep of s.requires) {
      if (!plan.services[dep]) {
        throw new PlanError(`plan service ${q(name)} requires ${q(dep)}, which does not exist`);
      }
    }
    for (const check of Object.keys(s['on-check-failure'])) {
      if (!plan.checks[check]) {
        throw new PlanError(`plan service ${q(name)} on-check-failure refers to unknown check ${q(check)}`);
      }
    }
  }

  for (const [name, c] of Object.entries(plan.checks)) {
    const period = c.period ?? DEFAULTS.checkPeriod;
    if (c.period !== undefined && c.period === 0) throw new PlanError(`plan check ${q(name)} period must not be zero`);
    if (c.timeout !== undefined && c.timeout === 0) throw new PlanError(`plan check ${q(name)} timeout must not be zero`);
    // Pebble compares only an explicit timeout: period 1s with the default 3s timeout is valid.
    if (c.timeout !== undefined && c.timeout >= period) {
      throw new PlanError(`plan check ${q(name)} timeout must be less than period`);
    }
    let types = 0;
    if (c.http) {
      if (!c.http.url) throw new PlanError(`plan must set "url" for http check ${q(name)}`);
      try {
        new URL(c.http.url);
      } catch {
        throw new PlanError(`plan check ${q(name)} http url ${q(c.http.url)} is not a valid URL`);
      }
      types++;
    }
    if (c.tcp) {
      if (!c.tcp.port) throw new PlanError(`plan must set "port" for tcp check ${q(name)}`);
      types++;
    }
    if (c.exec) {
      if (!c.exec.command) throw new PlanError(`plan must set "command" for exec check ${q(name)}`);
      try {
        if (shlexSplit(c.exec.command).length === 0) throw new Error('command is empty');
      } catch (e) {
        throw new PlanError(`plan check ${q(name)} command invalid: ${(e as Error).message}`);
      }
      const ctx = c.exec['service-context'];
      if (ctx && !plan.services[ctx]) {
        throw new PlanError(`plan check ${q(name)} service-context specifies non-existent service ${q(ctx)}`);
      }
      types++;
    }
    if (types !== 1) throw new PlanError(`plan must specify one of "http", "tcp", or "exec" for check ${q(name)}`);
  }

  for (const [name, t] of Object.entries(plan['log-targets'])) {
    if (!t.type) throw new PlanError(`plan must define "type" ("loki", "syslog" or "opentelemetry") for log target ${q(name)}`);
    if (!t.location) throw new PlanError(`plan must define "location" for log target ${q(name)}`);
    for (let svc of t.services) {
      svc = svc.replace(/^-/, '');
      if (svc !== 'all' && !plan.services[svc]) {
        throw new PlanError(`log target ${q(name)} specifies unknown service ${q(svc)}`);
      }
    }
  }

  order(plan.services, Object.keys(plan.services), false);
}

/**
 * Start (or stop) order for the named services plus everything they require (or, for
 * stop, everything that requires them), honouring after/before. Pebble's algorithm:
 * build successor edges among the involved services, then a topological sort that
 * reports loops.
 */
export function order(services: Record<string, Service>, names: string[], stop: boolean): string[] {
  const predecessors = new Map<string, string[]>();
  if (stop) {
    for (const [n, s] of Object.entries(services)) {
      for (const r of s.requires) predecessors.set(r, [...(predecessors.get(r) ?? []), n]);
    }
  }
  const involved = new Set<string>();
  const pending = [...names];
  while (pending.length) {
    const n = pending.shift()!;
    if (involved.has(n)) continue;
    const s = services[n];
    if (!s) throw new PlanError(`service ${q(n)} does not exist`);
    involved.add(n);
    pending.push(...(stop ? (predecessors.get(n) ?? []) : s.requires));
  }
  // edges: a -> b means a must come after b (b first)
  const deps = new Map<string, Set<string>>([...involved].map((n) => [n, new Set<string>()]));
  for (const n of involved) {
    const s = services[n]!;
    const after = stop ? s.before : s.after;
    const before = stop ? s.after : s.before;
    for (const a of after) if (involved.has(a)) deps.get(n)!.add(a);
    for (const b of before) if (involved.has(b)) deps.get(b)!.add(n);
  }
  const out: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (n: string, stack: string[]) => {
    const st = state.get(n);
    if (st === 'done') return;
    if (st === 'visiting') {
      const loop = stack.slice(stack.indexOf(n)).sort();
      throw new PlanError(`services in before/after loop: ${loop.join(', ')}`);
    }
    state.set(n, 'visiting');
    for (const d of [...deps.get(n)!].sort()) visit(d, [...stack, n]);
    state.set(n, 'done');
    out.push(n);
  };
  for (const n of [...involved].sort()) visit(n, []);
  return out;
}

export const startOrder = (plan: Plan, names: string[]) => order(plan.services, names, false);
export const stopOrder = (plan: Plan, names: string[]) => order(plan.services, names, true);

/** Effective service settings with Pebble's defaults applied (the plan keeps only what layers set). */
export function serviceSettings(s: Service) {
  return {
    backoffDelay: s['backoff-delay'] ?? DEFAULTS.backoffDelay,
    backoffFactor: s['backoff-factor'] ?? DEFAULTS.backoffFactor,
    backoffLimit: s['backoff-limit'] ?? DEFAULTS.backoffLimit,
    killDelay: s['kill-delay'] ?? DEFAULTS.killDelay,
    onSuccess: s['on-success'] ?? 'restart',
    onFailure: s['on-failure'] ?? 'restart',
    startup: s.startup ?? 'disabled',
  };
}

/** Checks with period/timeout/threshold filled in, as the check manager runs them. */
export function checksWithDefaults(plan: Plan): Record<string, Check> {
  const out: Record<string, Check> = {};
  for (const [name, c] of Object.entries(plan.checks)) {
    out[name] = {
      ...copy(c),
      period: c.period ?? DEFAULTS.checkPeriod,
      timeout: c.timeout ?? DEFAULTS.checkTimeout,
      threshold: c.threshold ?? DEFAULTS.checkThreshold,
    };
  }
  return out;
}
