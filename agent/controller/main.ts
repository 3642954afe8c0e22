import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { V1ConfigMap } from '#client-node';
import { pino, type Logger } from 'pino';
import { openProcessLog, RotatingFile, rotationFrom, type Rotation } from '../../sidecar/logs/rotate.js';
import { SIDECAR_NODE_FLAGS } from '../../sidecar/node-flags.js';
import { cpuMs } from '../../sidecar/osutil/cpu.js';
import { AGENT_NODE_FLAGS } from '../node-flags.js';
import { sidecarCli } from '../sidecar-location.js';
import { listenOn, reusePort } from '../ports.js';
import { createServer } from 'node:http';
import { connect, type Kube } from '../runtime/kube.js';
import { LABELS } from '../runtime/names.js';
import { Store, type Watcher } from '../runtime/store.js';
import { startApiServer } from './apiserver/server.js';
import type { AuditEntry } from './apiserver/auth.js';
import { ConfigSync } from './config-sync.js';
import { decodeDeployment } from './deployment.js';
import { writeKubeconfig } from './kubeconfig.js';
import { Kubelet, raisePriority } from './kubelet.js';
import { modelPaths, namespaceFor, pidAlive, readControllerInfo, type ControllerInfo } from './model.js';

export class ModelInUseError extends Error {
  override name = 'ModelInUseError';
}

/**
 * Takes the model's lock file (O_EXCL), replacing it only when its owner is dead; two
 * controllers on one model directory would both start every unit.
 */
function takeLock(path: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(path, 'utf8') === String(process.pid)) rmSync(path);
        } catch {
          /* already gone */
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(readFileSync(path, 'utf8'));
      if (owner && owner !== process.pid && pidAlive(owner)) {
        throw new ModelInUseError(`model ${dirname(path)} is in use by another controller (pid ${owner})`);
      }
      rmSync(path, { force: true }); // stale: its owner died
    }
  }
  throw new ModelInUseError(`cannot take the lock ${path}`);
}

function readOrCreateToken(path: string): string {
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const token = randomBytes(32).toString('base64url');
  writeFileSync(path, token, { mode: 0o600 });
  return token;
}

/** How to run this package's CLIs from the controller (the same node, compiled JS). */
function cliCommands(): { sidecar: string[]; agent: string[] } {
  const here = dirname(fileURLToPath(import.meta.url)); // dist/agent/controller
  return {
    sidecar: [process.execPath, ...SIDECAR_NODE_FLAGS, sidecarCli()],
    agent: [process.execPath, ...AGENT_NODE_FLAGS, join(here, '..', 'cli.js')],
  };
}

export interface ControllerOptions {
  model: string;
  port?: number;
  /** Delay before a killed unit is recreated. */
  rescheduleDelayMs?: number;
  /** Log to this size-capped, rotated file instead of stdout (deploy starts the controller so). */
  logFile?: { path: string; limits: Rotation };
}

/**
 * `pgcharm controller`: the local controller of one model. It serves the Kubernetes API
 * subset (the relation store), writes the kubeconfig, plays kubelet for the deployment's units
 * and applies charm.yaml edits. Runs until SIGTERM/SIGINT; units are then stopped gracefully.
 */
export async function runController(o: ControllerOptions): Promise<void> {
  const paths = modelPaths(o.model);
  mkdirSync(paths.root, { recursive: true, mode: 0o755 });
  mkdirSync(paths.logs, { recursive: true });
  // The units' log files get the same caps (their stdout/stderr files too): from the flags, else the environment.
  const limits = o.logFile?.limits ?? rotationFrom({});
  const release = takeLock(paths.lock);
  // Opened once the model is ours: a second controller refused here must not rotate the first one's log.
  const own = o.logFile ? openProcessLog(o.logFile.path, o.logFile.limits) : undefined;
  const log = own ? pino({ name: 'pgcharm-controller' }, own.file) : pino({ name: 'pgcharm-controller' });
  // The store answers lease renewals: it gets the agents' CPU share (kubelet.ts raisePriority).
  raisePriority(undefined, log);
  own?.logCrashes(log);
  const token = readOrCreateToken(paths.token);
  const namespace = namespaceFor(o.model);
  // The agents' own identity, as a service account in a cluster. What they do is audited on
  // request only (PGCHARM_AUDIT=1): a test holds the manifests' RBAC rules to the requests
  // agents really make, the footprint bench counts them; at idle an audit line per request
  // was most of what a cluster wrote.
  const agentToken = readOrCreateToken(paths.agentToken);
  const agentUser = `system:serviceaccount:${namespace}:pgcharm-agent`;
  const audit = auditRequested() ? new RotatingFile(paths.audit, limits) : undefined;
  const previous = readControllerInfo(o.model);
  const port = o.port ?? (await reusePort(previous?.port));
  const server = await startApiServer({
    dir: paths.store,
    host: '127.0.0.1',
    port,
    token,
    serviceAccounts: new Map([[agentToken, agentUser]]),
    ...(audit ? { audit: (e: AuditEntry) => void audit.write(JSON.stringify(e) + '\n') } : {}),
    log: log.child({ component: 'apiserver' }),
  });
  writeKubeconfig(paths.kubeconfig, { server: server.url, token, namespace, name: `pgcharm-${namespace}`, ca: server.ca });
  const kube = connect({ kubeconfig: paths.kubeconfig, namespace });
  const dashboard = await serveDashboard(o.model, kube, previous?.dashboard, log.child({ component: 'dashboard' }));
  const info: ControllerInfo = { pid: process.pid, url: server.url, port: server.port, namespace, started: new Date().toISOString(), dashboard: dashboard.url };
  writeFileSync(`${paths.controllerJson}.tmp`, JSON.stringify(info, null, 2) + '\n');
  renameSync(`${paths.controllerJson}.tmp`, paths.controllerJson);
  // processStart: what starting node and loading the modules took (the bootstrap timeline shows it).
  log.info({ url: server.url, namespace, model: o.model, processStart: Math.round(performance.timeOrigin), cpuMs: cpuMs() }, 'controller ready');

  const apps = new Map<string, { kubelet: Kubelet; sync: ConfigSync }>();
  const cmds = cliCommands();
  const onDeployment = (cm: V1ConfigMap) => {
    const app = cm.metadata?.labels?.[LABELS.app];
    if (!app || apps.has(app)) return;
    const dep = decodeDeployment(cm);
    const store = new Store(kube, app);
    const kubelet = new Kubelet(
      {
        kube,
        model: o.model,
        sidecarCommand: cmds.sidecar,
        agentCommand: cmds.agent,
        kubeconfig: paths.kubeconfig,
        serviceAccount: { host: '127.0.0.1', port: server.port, token: agentToken, ca: server.ca, namespace },
        log: log.child({ app, component: 'kubelet' }),
        logLimits: limits,
        ...(o.rescheduleDelayMs !== undefined ? { rescheduleDelayMs: o.rescheduleDelayMs } : {}),
      },
      app,
    );
    const sync = new ConfigSync(store, dep.charm, log.child({ app, component: 'config' }));
    apps.set(app, { kubelet, sync });
    kubelet.start();
    sync.start();
    log.info({ app, charm: dep.charm }, 'managing application');
  };
  const deployments: Watcher = new Store(kube, '').watchConfigMaps(`${LABELS.kind}=deployment`, { upsert: onDeployment, remove: () => undefined }, log);

  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info({ signal: sig }, 'controller stopping; stopping units');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await deployments.stop();
  await stopApps(apps, log);
  await dashboard.close();
  await server.close();
  release();
}

/**
 * The model's dashboard on a loopback port of its own (kept across controller restarts when
 * free). Its code is loaded at the first request: a controller nobody looks at pays only for a
 * listening socket.
 */
async function serveDashboard(model: string, kube: Kube, previous: string | undefined, log: Logger): Promise<{ url: string; close(): Promise<void> }> {
  const port = await reusePort(Number(/:(\d+)\/?$/.exec(previous ?? '')?.[1]) || undefined);
  let dash: Promise<import('../dashboard/server.js').Dashboard> | undefined;
  const server = createServer((req, res) => {
    dash ??= import('../dashboard/server.js').then((m) => new m.Dashboard({ kube, model, log }));
    dash.then((d) => d.handle(req, res)).catch((e: unknown) => {
      log.error({ err: e instanceof Error ? e.message : String(e) }, 'dashboard failed to load');
      res.writeHead(500).end('the dashboard failed to load; see the controller log\n');
    });
  });
  await listenOn(server, port, '127.0.0.1');
  return {
    url: `http://127.0.0.1:${port}/`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await (await dash?.catch(() => undefined))?.close();
    },
  };
}

async function stopApps(apps: Map<string, { kubelet: Kubelet; sync: ConfigSync }>, log: Logger): Promise<void> {
  await Promise.all(
    [...apps.values()].map(async ({ kubelet, sync }) => {
      sync.stop();
      await kubelet.stop().catch((e: unknown) => log.error({ err: String(e) }, 'stopping units failed'));
    }),
  );
}

/** PGCHARM_AUDIT=1 (or true) in the environment `pgcharm deploy` or `pgcharm controller` runs in. */
export function auditRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['1', 'true'].includes((env['PGCHARM_AUDIT'] ?? '').toLowerCase());
}
