import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * A model directory holds one local deployment: the controller's state and token, the
 * kubeconfig the agents and kubectl use, each unit's sidecar and data directories, and logs.
 *
 *   controller.json  pid, url        kubeconfig  (0600)     units/<pod>/{pebble,data}
 *   controller.lock  pid of owner    token       (0600)     logs/<pod>.{agent,sidecar}.log
 *   store/           the API objects (journal + snapshot)   logs/controller.log
 *   agent-token      (0600) the agents' service account    logs/audit.jsonl (their requests)
 *
 * Every log is size-capped and rotated (x.log.1 … x.log.N; PGCHARM_LOG_MAX_SIZE and
 * PGCHARM_LOG_MAX_FILES); what a process writes to stdout or stderr regardless of its log (a
 * crash trace) goes to logs/<pod>.{agent,sidecar}.stderr and logs/controller.stderr, rotated alike.
 */

export function defaultModelDir(): string {
  const env = process.env['PGCHARM_MODEL'];
  if (env) return resolve(env);
  // root's home is 0700, and Postgres runs as the postgres user inside the model directory.
  if (process.getuid?.() === 0) return '/var/lib/pgcharm/default';
  const base = process.env['XDG_DATA_HOME'] || join(homedir(), '.local', 'share');
  return join(base, 'pgcharm', 'default');
}

export const modelPaths = (model: string) => ({
  root: model,
  controllerJson: join(model, 'controller.json'),
  lock: join(model, 'controller.lock'),
  token: join(model, 'token'),
  agentToken: join(model, 'agent-token'),
  audit: join(model, 'logs', 'audit.jsonl'),
  kubeconfig: join(model, 'kubeconfig'),
  store: join(model, 'store'),
  units: join(model, 'units'),
  unit: (pod: string) => join(model, 'units', pod),
  logs: join(model, 'logs'),
  controllerLog: join(model, 'logs', 'controller.log'),
  controllerStderr: join(model, 'logs', 'controller.stderr'),
});

export interface ControllerInfo {
  pid: number;
  url: string;
  port: number;
  namespace: string;
  started: string;
  /** The model's dashboard page (pgcharm dashboard), on loopback. */
  dashboard?: string;
}

export function readControllerInfo(model: string): ControllerInfo | undefined {
  const p = modelPaths(model).controllerJson;
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as ControllerInfo;
  } catch {
    return undefined;
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The namespace of a model: its directory name, made a valid DNS label. */
export function namespaceFor(model: string): string {
  const base = resolve(model).split('/').filter(Boolean).pop() ?? 'default';
  const ns = base.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  return /^[a-z0-9]/.test(ns) ? ns : `m-${ns || 'default'}`.slice(0, 63);
}
