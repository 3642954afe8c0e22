import { EventEmitter } from 'node:events';
import { isDeepStrictEqual } from 'node:util';
import { constants } from 'node:os';
import type { Change, ChangeStore } from '../changes/state.js';
import { serviceSettings, startOrder, stopOrder } from '../plan/combine.js';
import type { Plan, Service } from '../plan/types.js';
import { PlanError } from '../plan/types.js';
import { ServiceRunner, StartError, type RunnerDeps } from './runner.js';

export type ServiceActionName = 'start' | 'stop' | 'restart' | 'replan' | 'autostart';

export interface ServiceInfo {
  name: string;
  startup: 'enabled' | 'disabled';
  current: 'inactive' | 'active' | 'backoff' | 'error';
  'current-since'?: string;
}

/** Pebble's change summaries: `Start service "a"`, `Start service "a" and "b"`, `"a", "b" and "c"`. */
function listNames(names: string[]): string {
  const q = names.map((n) => JSON.stringify(n));
  if (q.length <= 1) return q.join('');
  return `${q.slice(0, -1).join(', ')} and ${q[q.length - 1]}`;
}

/**
 * Owns the service runners and turns API actions into changes. A change's tasks run in
 * stop/start order, which is what makes "stop then start" (restart, replan) well defined;
 * changes touching a common service run one after another.
 */
export class ServiceManager extends EventEmitter {
  private runners = new Map<string, ServiceRunner>();
  private plan: Plan = { layers: [], services: {}, checks: {}, 'log-targets': {} };
  /** Per service, the last queued change that touches it. */
  private lanes = new Map<string, Promise<void>>();
  private pending = new Set<Promise<void>>();

  constructor(
    private readonly changes: ChangeStore,
    private readonly deps: RunnerDeps,
  ) {
    super();
  }

  setPlan(plan: Plan): void {
    this.plan = plan;
  }

  private runner(name: string): ServiceRunner {
    let r = this.runners.get(name);
    if (!r) {
      r = new ServiceRunner(name, this.plan.services[name]!, this.deps);
      r.on('shutdown', (code: number) => this.emit('shutdown', code, name));
      this.runners.set(name, r);
    }
    return r;
  }

  get(name: string): ServiceRunner | undefined {
    return this.runners.get(name);
  }

  /** Pebble's service metrics: every service started at least once, by name. */
  metrics(): { name: string; active: boolean; starts: number }[] {
    return [...this.runners.entries()]
      .filter(([, r]) => r.startCount > 0)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, r]) => ({ name, active: r.current === 'active', starts: r.startCount }));
  }

  list(names: string[] = []): ServiceInfo[] {
    const wanted = names.length ? names : Object.keys(this.plan.services).sort();
    const out: ServiceInfo[] = [];
    for (const name of wanted) {
      const svc = this.plan.services[name];
      if (!svc) continue;
      const r = this.runners.get(name);
      const info: ServiceInfo = {
        name,
        startup: serviceSettings(svc).startup,
        current: r?.current ?? 'inactive',
      };
      if (r) info['current-since'] = r.currentSince.toISOString();
      out.push(info);
    }
    return out;
  }

  /**
   * Validates the request synchronously (unknown service, empty list) so the API can answer
   * 400 with nothing changed; then queues the work and returns the change.
   */
  act(action: ServiceActionName, names: string[]): Change {
    let stop: string[] = [];
    let start: string[] = [];
    const enabled = () =>
      Object.keys(this.plan.services).filter((n) => serviceSettings(this.plan.services[n]!).startup === 'enabled');
    switch (action) {
      case 'start':
        if (!names.length) throw new PlanError('no services specified');
        start = startOrder(this.plan, names);
        break;
      case 'stop':
        if (!names.length) throw new PlanError('no services specified');
        stop = stopOrder(this.plan, names);
        break;
      case 'restart': {
        if (!names.length) throw new PlanError('no services specified');
        // Pebble restarts what is running among them, and starts the rest.
        stop = stopOrder(this.plan, names).filter((n) => this.runners.get(n)?.active || this.runners.get(n)?.state === 'backoff');
        start = startOrder(this.plan, names);
        break;
      }
      case 'autostart': {
        const en = enabled();
        if (!en.length) throw new PlanError('no default services');
        start = startOrder(this.plan, en);
        break;
      }
      case 'replan': {
        // Services whose configuration changed since they started are stopped; then every
        // enabled service is started (Pebble's replan).
        const changed = [...this.runners.values()]
          .filter((r) => (r.active || r.state === 'backoff') && !isDeepStrictEqual(r.config, this.plan.services[r.name]))
          .map((r) => r.name);
        const removed = changed.filter((n) => !this.plan.services[n]);
        const present = changed.filter((n) => this.plan.services[n]);
        stop = [...removed, ...(present.length ? stopOrder(this.plan, present) : [])];
        start = enabled().length ? startOrder(this.plan, enabled()) : [];
        break;
      }
    }
    const verb = action === 'autostart' ? 'Autostart' : action[0]!.toUpperCase() + action.slice(1);
    const summary =
      action === 'autostart' || action === 'replan'
        ? `${verb} service${start.length === 1 ? '' : 's'} ${listNames(start)}`.trim()
        : `${verb} service${names.length === 1 ? '' : 's'} ${listNames(names)}`;
    const change = this.changes.newChange(action, summary);
    change.data['services'] = [...new Set([...stop, ...start])];
    const stopTasks = stop.map((n) => ({ name: n, task: change.addTask('stop', `Stop service ${JSON.stringify(n)}`) }));
    const startTasks = start.map((n) => ({ name: n, task: change.addTask('start', `Start service ${JSON.stringify(n)}`) }));
    for (const { task, name } of [...stopTasks, ...startTasks]) task.data['service-names'] = [name];
    change.touch();

    // Changes that share a service run one after another; the others do not wait (a start's
    // 1 s okay delay would otherwise hold up every other service's start or stop).
    const touched = [...new Set([...stop, ...start])];
    const run = Promise.all(touched.map((n) => this.lanes.get(n))).then(async () => {
      let failed = false;
      for (const { name, task } of stopTasks) {
        task.start();
        try {
          const r = this.runners.get(name);
          if (!r || !(r.active || r.state === 'backoff')) task.logf('Service already stopped');
          else await r.stop();
          task.done();
        } catch (e) {
          task.fail(`cannot stop service: ${(e as Error).message}`);
          failed = true;
        }
      }
      for (const { name, task } of startTasks) {
        if (failed) {
          task.hold();
          continue;
        }
        const svc = this.plan.services[name];
        task.start();
        try {
          if (!svc) throw new Error('service no longer in the plan');
          const r = this.runner(name);
          if (r.state === 'starting' || r.state === 'running') task.logf('Service already started');
          else await r.start(structuredClone(svc));
          task.done();
        } catch (e) {
          const msg = (e as Error).message;
          // Pebble puts the output of a service that exited quickly in the task log (ChangeError shows it).
          if (e instanceof StartError && e.output.length) {
            task.logf(`Most recent service output:\n${e.output.map((l) => `    ${l}`).join('\n')}`);
          }
          task.fail(msg.startsWith('cannot start service') ? msg : `cannot start service: ${msg}`);
          failed = true;
        }
      }
      // Services removed from the plan and stopped are forgotten.
      for (const n of stop) {
        if (!this.plan.services[n]) this.runners.delete(n);
      }
    });
    const settled = run.catch(() => undefined);
    for (const n of touched) this.lanes.set(n, settled);
    settled.then(() => {
      for (const n of touched) if (this.lanes.get(n) === settled) this.lanes.delete(n);
    });
    this.pending.add(settled);
    void settled.then(() => this.pending.delete(settled));
    return change;
  }

  /** Sends a signal to the main process of each named service (Pebble's /v1/signals). */
  signal(signal: string, names: string[]): void {
    if (!names.length) throw new PlanError('must specify one or more services');
    const sig = signal.toUpperCase();
    if (!(sig in constants.signals)) throw new PlanError(`invalid signal name ${JSON.stringify(signal)}`);
    const errors: string[] = [];
    for (const n of names) {
      if (!this.plan.services[n]) {
        errors.push(`service ${JSON.stringify(n)} does not exist`);
        continue;
      }
      const r = this.runners.get(n);
      if (!r?.pid || !r.active) {
        errors.push(`cannot send signal to ${JSON.stringify(n)}: service is not running`);
        continue;
      }
    }
    if (errors.length) throw new PlanError(errors.join('; '));
    for (const n of names) this.runners.get(n)!.signal(sig as NodeJS.Signals);
  }

  /** on-check-failure handling: the check manager reports a check went down. */
  checkFailed(check: string): void {
    for (const [name, svc] of Object.entries(this.plan.services)) {
      const action = svc['on-check-failure'][check];
      if (!action || action === 'ignore') continue;
      const r = this.runners.get(name);
      if (!r || r.state !== 'running') continue;
      this.deps.log.warn({ service: name, check, action }, 'check failed; acting on service');
      if (action === 'restart') r.restartForCheck();
      else this.emit('shutdown', action === 'success-shutdown' ? 0 : 10, name);
    }
  }

  /** Stops everything in stop order (sidecar shutdown). */
  async stopAll(): Promise<void> {
    await Promise.all(this.pending);
    const active = [...this.runners.values()].filter((r) => r.active || r.state === 'backoff').map((r) => r.name);
    const inPlan = active.filter((n) => this.plan.services[n]);
    const orderNames = [...active.filter((n) => !this.plan.services[n]), ...(inPlan.length ? stopOrder(this.plan, inPlan) : [])];
    for (const n of orderNames) {
      try {
        await this.runners.get(n)!.stop();
      } catch (e) {
        this.deps.log.error({ service: n, err: (e as Error).message }, 'cannot stop service');
      }
    }
    for (const r of this.runners.values()) r.dispose();
  }

  /** The service's context for exec and exec checks (`service-context`). */
  context(name: string): Service {
    const svc = this.plan.services[name];
    if (!svc) throw new Error(`context service ${JSON.stringify(name)} not found`);
    return svc;
  }
}
