import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { openProcessLog, type Rotation } from '../../sidecar/logs/rotate.js';
import { cpuMs } from '../../sidecar/osutil/cpu.js';
import { loadCharmYaml } from '../charm-meta/index.js';
import { Agent } from './agent.js';
import type { Charm, CharmFactory } from './charm.js';
import { connect } from './kube.js';
import { DEFAULT_LEASE_TIMING } from './leadership.js';
import { parseUnit, unitName } from './names.js';

export interface AgentProcessOptions {
  unit: string;
  kubeconfig?: string;
  namespace?: string;
  socket: string;
  charm: string;
  charmModule: string;
  updateStatusMs?: number;
  leaseMs?: number;
  /** A termination signal that arrived before this function was called. */
  stopRequested?: string;
  /** Log to this size-capped, rotated file instead of stdout (a local unit). */
  logFile?: { path: string; limits: Rotation };
}

export async function loadCharmModule(path: string): Promise<Charm> {
  const mod = (await asNode21(() => import(pathToFileURL(path).href))) as { default?: unknown };
  if (typeof mod.default !== 'function') throw new Error(`charm module ${path} must export a default function returning the charm`);
  return (mod.default as CharmFactory)();
}

/**
 * Runs `load` with `navigator` defined as Node 21 and later define it (only its userAgent). pg,
 * the PostgreSQL charm's driver, asks on load whether it runs in Cloudflare Workers: by
 * navigator.userAgent, else, as on Node 20, by constructing a `Response`, which loads undici
 * (Node's fetch, used by nothing here): 12 MB of RSS per agent for that one question, and a crash
 * where there is no WebAssembly (--lite-mode, --jitless).
 */
export async function asNode21<T>(load: () => Promise<T>): Promise<T> {
  if ('navigator' in globalThis) return load();
  const major = process.versions.node.split('.')[0];
  Object.defineProperty(globalThis, 'navigator', { value: { userAgent: `Node.js/${major}` }, configurable: true, writable: true });
  try {
    return await load();
  } finally {
    delete (globalThis as { navigator?: unknown }).navigator;
  }
}

/** `pgcharm agent`: one unit's agent process, until SIGTERM (runs `stop`) or the unit is removed. */
export async function runAgent(o: AgentProcessOptions): Promise<void> {
  // Pod termination can come at any moment, start-up included: note it now, act once started.
  let stopRequested: string | undefined = o.stopRequested;
  let onStop = (why: string) => {
    stopRequested ??= why;
  };
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  const unit = parseUnit(o.unit);
  const current = { event: 'idle' };
  const own = o.logFile ? openProcessLog(o.logFile.path, o.logFile.limits) : undefined;
  const logOpts = { base: { unit: unitName(unit) }, mixin: () => ({ event: current.event }) };
  const log = own ? pino(logOpts, own.file) : pino(logOpts);
  own?.logCrashes(log);
  const meta = await loadCharmYaml(o.charm);
  const peerRelation = Object.keys(meta.peers)[0];
  const container = Object.keys(meta.containers)[0];
  if (!container) throw new Error(`${o.charm}: the runtime needs a charm with a container`);
  const charm = await loadCharmModule(o.charmModule);
  const storage = Object.fromEntries(meta.containers[container]!.mounts.map((m) => [m.storage, m.location]));
  const kube = connect({ ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}), ...(o.namespace ? { namespace: o.namespace } : {}) });
  log.info({ credentials: kube.mode, server: kube.kc.getCurrentCluster()?.server, namespace: kube.namespace, processStart: Math.round(performance.timeOrigin), cpuMs: cpuMs() }, 'API server');
  const leaseTiming = o.leaseMs
    ? { leaseMs: o.leaseMs, renewDeadlineMs: Math.round(o.leaseMs * 0.6), retryMs: Math.max(100, Math.round(o.leaseMs / 5)) }
    : DEFAULT_LEASE_TIMING;
  const sensitiveActions = Object.values(meta.actions).filter((a) => a.sensitive).map((a) => a.name);
  const agent = new Agent({ unit, kube, socketPath: o.socket, charm, log, ...(peerRelation ? { peerRelation } : {}), container, leaseTiming, current, storage, sensitiveActions, ...(o.updateStatusMs ? { updateStatusMs: o.updateStatusMs } : {}) });
  let stopping = false;
  onStop = (why: string) => {
    if (stopping) return;
    stopping = true;
    void agent.stop(why).then(() => process.exit(0));
  };
  await agent.start();
  if (stopRequested) onStop(stopRequested);
  await agent.done();
  if (!stopping) process.exit(0);
}
