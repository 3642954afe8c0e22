import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { formatDuration } from '../plan/duration.js';
import { DEFAULTS, type Check, type CheckLevel, type ServiceContext, type Startup } from '../plan/types.js';
import { CheckError, runChecker, type CheckSpec } from './checkers.js';

/**
 * Pebble's health checks (internals/overlord/checkstate), without changes and tasks.
 *
 * Each configured check is in one of three states:
 *
 * | status   | meaning                                   | leaves when                                     |
 * | -------- | ----------------------------------------- | ----------------------------------------------- |
 * | up       | running, fewer than `threshold` failures  | failures reach threshold -> down, 'failure'     |
 * | down     | running, threshold reached; keeps probing | one success -> up (failures 0), 'recovered'     |
 * | inactive | not running (startup: disabled, stopped)  | startChecks / replan / setPlan -> up, 0 failures |
 *
 * Probes run every `period` (the first one period after start, like Go's ticker), each
 * bounded by `timeout`. A probe that was in flight when its check was stopped or
 * reconfigured does not count.
 */
export type CheckStatus = 'up' | 'down' | 'inactive';

/** Pebble's /v1/checks item (the route drops `failures` when 0, as Pebble's omitempty does). */
export interface CheckInfo {
  name: string;
  level?: CheckLevel;
  startup: Startup;
  status: CheckStatus;
  successes: number;
  failures: number;
  threshold: number;
  'change-id'?: string;
}


export interface CheckManagerOptions {
  log: Logger;
  /** Called when the plan is applied; must already see the new plan's services. */
  serviceContext(name: string): ServiceContext;
}

export interface CheckFilter {
  level?: CheckLevel;
  names?: string[];
}

/** Some names given to startChecks/stopChecks are not in the plan (Pebble's ChecksNotFound). */
export class ChecksNotFoundError extends Error {
  constructor(readonly names: string[]) {
    super(`cannot find checks in plan: ${[...names].sort().join(', ')}`);
  }
}

export class CheckNotFoundError extends Error {
  constructor(readonly checkName: string) {
    super(`cannot find check with name ${JSON.stringify(checkName)}`);
  }
}

type Events = { failure: [name: string]; recovered: [name: string] };

interface Resolved {
  check: Check;
  spec: CheckSpec | { type: 'invalid'; error: string };
  period: number;
  timeout: number;
  threshold: number;
}

interface Entry {
  name: string;
  resolved: Resolved;
  status: CheckStatus;
  successes: number;
  failures: number;
  /** Every success and failure so far (Pebble's pebble_check_success_count / _failure_count). */
  successTotal: number;
  failureTotal: number;
  lastError?: string;
  active: boolean;
  /** Bumped on every start/stop so late results and timers of an older run are ignored. */
  gen: number;
  timer?: NodeJS.Timeout;
  inflight?: AbortController;
  /** Probes of one check never overlap: scheduled runs and runNow queue here. */
  chain: Promise<unknown>;
}

const STOPPED = new CheckError('check stopped');

export class CheckManager extends EventEmitter<Events> {
  private readonly log: Logger;
  private readonly serviceContext: (name: string) => ServiceContext;
  private entries = new Map<string, Entry>();
  private closed = false;

  constructor(opts: CheckManagerOptions) {
    super();
    this.log = opts.log;
    this.serviceContext = opts.serviceContext;
  }

  /**
   * Applies the plan's checks: running checks whose config (with the service context
   * merged in) is unchanged keep running with their counters; every other check is
   * created afresh, started unless `startup: disabled` (a running check stays running).
   */
  setPlan(checks: Record<string, Check>): void {
    const next = new Map<string, Entry>();
    let started = 0;
    for (const [name, check] of Object.entries(checks)) {
      const resolved = this.resolve(name, check);
      const old = this.entries.get(name);
      if (old?.active && sameConfig(old.resolved, resolved)) {
        next.set(name, old);
        continue;
      }
      const wasRunning = old?.active ?? false;
      if (old) this.deactivate(old);
      const e: Entry = {
        name,
        resolved,
        status: 'inactive',
        successes: 0,
        failures: 0,
        // The totals live as long as the check's name does, across changes of its config.
        successTotal: old?.successTotal ?? 0,
        failureTotal: old?.failureTotal ?? 0,
        active: false,
        gen: (old?.gen ?? 0) + 1,
        chain: Promise.resolve(),
      };
      if (!this.closed && (check.startup !== 'disabled' || wasRunning)) {
        this.start(e);
        started++;
      }
      next.set(name, e);
    }
    let removed = 0;
    for (const [name, old] of this.entries) {
      if (!next.has(name)) {
        this.deactivate(old);
        removed++;
      }
    }
    this.entries = next;
    this.log.debug({ checks: next.size, started, removed }, 'checks configured');
  }

  /** Pebble's check metrics, by name: up (undefined while inactive), and the totals. */
  metrics(): { name: string; up: boolean | undefined; successes: number; failures: number }[] {
    return [...this.entries.values()]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((e) => ({ name: e.name, up: e.status === 'inactive' ? undefined : e.status === 'up', successes: e.successTotal, failures: e.failureTotal }));
  }

  /** Checks ordered by name. A level matches exactly, as in Pebble's GET /v1/checks. */
  list(opts: CheckFilter = {}): CheckInfo[] {
    const names = opts.names?.length ? new Set(opts.names) : undefined;
    return [...this.entries.values()]
      .filter((e) => !opts.level || e.resolved.check.level === opts.level)
      .filter((e) => !names || names.has(e.name))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((e) => this.info(e));
  }

  /**
   * Pebble's /v1/health: unhealthy when any matching check is down. "ready" also takes in
   * "alive" checks (not alive implies not ready); inactive checks and unknown names count
   * for nothing, so no checks at all means healthy.
   */
  health(opts: CheckFilter = {}): boolean {
    const names = opts.names?.length ? new Set(opts.names) : undefined;
    for (const e of this.entries.values()) {
      const level = e.resolved.check.level;
      const levelMatch = !opts.level || opts.level === level || (opts.level === 'ready' && level === 'alive');
      if (levelMatch && (!names || names.has(e.name)) && e.status === 'down') return false;
    }
    return true;
  }

  /** Starts the named inactive checks with fresh counters; returns those started, sorted. */
  startChecks(names: string[]): string[] {
    this.requireKnown(names);
    const started: string[] = [];
    for (const name of new Set(names)) {
      const e = this.entries.get(name)!;
      if (e.active || this.closed) continue;
      this.start(e);
      started.push(name);
    }
    return started.sort();
  }

  /** Stops the named running checks; they become inactive and keep their failure count. */
  stopChecks(names: string[]): string[] {
    this.requireKnown(names);
    const stopped: string[] = [];
    for (const name of new Set(names)) {
      const e = this.entries.get(name)!;
      if (!e.active) continue;
      this.deactivate(e);
      stopped.push(name);
    }
    return stopped.sort();
  }

  /** On replan Pebble starts every inactive check whose startup is not disabled. */
  replan(): void {
    if (this.closed) return;
    for (const e of this.entries.values()) {
      if (!e.active && e.resolved.check.startup !== 'disabled') this.start(e);
    }
  }

  /**
   * Runs a check now (Pebble's refresh) and restarts its period from now. For an inactive
   * check the probe runs once and changes nothing. `error` is "" on success.
   */
  async runNow(name: string): Promise<{ info: CheckInfo; error: string }> {
    const e = this.entries.get(name);
    if (!e) throw new CheckNotFoundError(name);
    if (!e.active) {
      const error = await this.perform(e, -1);
      return { info: this.info(e), error };
    }
    clearTimeout(e.timer);
    e.timer = undefined;
    const gen = e.gen;
    const run = e.chain.then(() => this.perform(e, gen));
    e.chain = run;
    const error = await run;
    if (gen === e.gen) this.schedule(e, e.resolved.period);
    return { info: this.info(e), error };
  }

  /** The last failure of a check with its details (output or body), if it is failing. */
  lastError(name: string): string | undefined {
    return this.entries.get(name)?.lastError;
  }

  /** Stops every check, kills in-flight check commands; the manager starts nothing afterwards. */
  stop(): void {
    this.closed = true;
    for (const e of this.entries.values()) this.deactivate(e);
  }

  private requireKnown(names: string[]): void {
    const missing = [...new Set(names)].filter((n) => !this.entries.has(n));
    if (missing.length) throw new ChecksNotFoundError(missing);
  }

  private info(e: Entry): CheckInfo {
    const c = e.resolved.check;
    const info: CheckInfo = {
      name: e.name,
      startup: c.startup ?? 'enabled',
      status: e.status,
      successes: e.successes,
      failures: e.failures,
      threshold: e.resolved.threshold,
    };
    if (c.level) info.level = c.level;
    return info;
  }

  private resolve(name: string, check: Check): Resolved {
    return {
      check,
      spec: this.spec(name, check),
      period: Math.max(1, check.period ?? DEFAULTS.checkPeriod),
      timeout: Math.max(1, check.timeout ?? DEFAULTS.checkTimeout),
      threshold: Math.max(1, check.threshold ?? DEFAULTS.checkThreshold),
    };
  }

  private spec(name: string, check: Check): Resolved['spec'] {
    if (check.http) return { type: 'http', url: check.http.url ?? '', headers: { ...check.http.headers } };
    if (check.tcp) {
      if (check.tcp.port === undefined) return { type: 'invalid', error: 'tcp check has no port' };
      return { type: 'tcp', host: check.tcp.host || 'localhost', port: check.tcp.port };
    }
    if (check.exec) {
      const x = check.exec;
      // Pebble's MergeServiceContext: the service's settings, then the check's where set.
      let ctx: ServiceContext = { environment: {} };
      if (x['service-context']) {
        try {
          ctx = this.serviceContext(x['service-context']);
        } catch (err) {
          this.log.error({ check: name, err }, 'cannot get service context of check');
          return { type: 'invalid', error: `context service ${JSON.stringify(x['service-context'])} not found` };
        }
      }
      const exec = {
        command: x.command ?? '',
        environment: { ...ctx.environment, ...x.environment },
        userId: x['user-id'] ?? ctx.userId,
        user: x.user || ctx.user,
        groupId: x['group-id'] ?? ctx.groupId,
        group: x.group || ctx.group,
        workingDir: x['working-dir'] || ctx.workingDir,
      };
      return { type: 'exec', exec };
    }
    return { type: 'invalid', error: 'check has no http, tcp or exec section' };
  }

  private start(e: Entry): void {
    e.active = true;
    e.gen++;
    e.status = 'up';
    e.successes = 0;
    e.failures = 0;
    e.lastError = undefined;
    this.schedule(e, e.resolved.period);
  }

  private deactivate(e: Entry): void {
    e.active = false;
    e.gen++;
    e.status = 'inactive';
    clearTimeout(e.timer);
    e.timer = undefined;
    e.inflight?.abort(STOPPED);
  }

  private schedule(e: Entry, delay: number): void {
    clearTimeout(e.timer);
    const gen = e.gen;
    e.timer = setTimeout(() => {
      e.timer = undefined;
      if (gen !== e.gen) return;
      const began = Date.now();
      e.chain = e.chain.then(async () => {
        if (gen !== e.gen) return;
        await this.perform(e, gen);
        // Fixed rate like a ticker; a probe slower than the period is followed at once.
        if (gen === e.gen) this.schedule(e, Math.max(0, e.resolved.period - (Date.now() - began)));
      });
    }, delay);
  }

  /** One probe; records the result only while `gen` is still the check's current run. */
  private async perform(e: Entry, gen: number): Promise<string> {
    const { spec, timeout } = e.resolved;
    const ac = new AbortController();
    e.inflight = ac;
    const timedOut = new CheckError(`check timed out after ${formatDuration(timeout)}`);
    const timer = setTimeout(() => ac.abort(timedOut), timeout);
    let err: CheckError | undefined;
    try {
      if (spec.type === 'invalid') throw new CheckError(spec.error);
      await runChecker(spec, ac.signal);
    } catch (x) {
      if (ac.signal.aborted) err = ac.signal.reason instanceof CheckError ? ac.signal.reason : STOPPED;
      else err = x instanceof CheckError ? x : new CheckError((x as Error)?.message ?? String(x));
    } finally {
      clearTimeout(timer);
      if (e.inflight === ac) e.inflight = undefined;
    }
    if (gen === e.gen && e.active) this.record(e, err);
    return err ? err.full() : '';
  }

  private record(e: Entry, err: CheckError | undefined): void {
    const { threshold } = e.resolved;
    if (err) e.failureTotal++;
    else e.successTotal++;
    if (!err) {
      e.lastError = undefined;
      if (e.status === 'down') {
        this.log.info({ check: e.name, failures: e.failures }, 'check recovered');
        e.status = 'up';
        e.failures = 0;
        e.successes = 1;
        this.emitSafe('recovered', e.name);
        return;
      }
      if (e.failures > 0) this.log.info({ check: e.name, failures: e.failures }, 'check succeeded after failures');
      e.failures = 0;
      e.successes++;
      return;
    }
    e.failures++;
    e.lastError = err.full();
    // Only the message: details hold command output or a response body, which may say anything.
    this.log.warn({ check: e.name, failures: e.failures, threshold, reason: err.message }, 'check failure');
    if (e.status === 'up' && e.failures >= threshold) {
      this.log.error({ check: e.name, threshold }, 'check failure threshold hit, triggering action');
      e.status = 'down';
      e.successes = 0;
      this.emitSafe('failure', e.name);
    }
  }

  private emitSafe(event: keyof Events, name: string): void {
    try {
      this.emit(event, name);
    } catch (err) {
      this.log.error({ check: name, event, err }, 'check event listener failed');
    }
  }
}

/** Deep equality of plain JSON-like values; a key set to undefined equals a missing key. */
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
  for (const k of keys) if (!deepEqual(ao[k], bo[k])) return false;
  return true;
}

function sameConfig(a: Resolved, b: Resolved): boolean {
  return deepEqual(a.check, b.check) && deepEqual(a.spec, b.spec);
}
