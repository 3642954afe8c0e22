import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from '#pino';
import { changesRoutes } from './api/changes.js';
import { checksRoutes } from './api/checks.js';
import { metricsRoutes } from './api/metrics.js';
import { execManager, execRoutes, execUpgrade, type ExecDeps } from './api/exec.js';
import { filesRoutes } from './api/files.js';
import { FilesManager } from './files/manager.js';
import { AccessGuard } from './api/access.js';
import { identitiesRoutes } from './api/identities.js';
import { IdentityStore } from './identities/store.js';
import { logsRoutes } from './api/logs.js';
import { noticesRoutes } from './api/notices.js';
import { planRoutes } from './api/plan.js';
import { Router } from './api/router.js';
import { createApiServer, listenTcp, listenUnix } from './api/server.js';
import { servicesRoutes } from './api/services.js';
import { logLevelRoutes, systemRoutes } from './api/system.js';
import { ChangeStore } from './changes/state.js';
import { CheckManager } from './checks/manager.js';
import { LogStore } from './logs/buffer.js';
import { openProcessLog, type Rotation } from './logs/rotate.js';
import { NoticeStore } from './notices/state.js';
import { cpuMs } from './osutil/cpu.js';
import { peerUidReader } from './osutil/peercred.js';
import { startReaper } from './osutil/reaper.js';
import { checksWithDefaults } from './plan/combine.js';
import { PlanManager } from './plan/manager.js';
import type { Plan, Service } from './plan/types.js';
import { ServiceManager } from './services/manager.js';

export interface DaemonOptions {
  /** Pebble directory: layers/ is read from it and .pebble.socket is created in it. */
  dir: string;
  /** Do not autostart enabled services (pebble run --hold). */
  hold: boolean;
  /** Also serve the API on this host:port (tests, debugging). */
  http?: string;
  /** Unix socket path; defaults to $PEBBLE_SOCKET or <dir>/.pebble.socket. */
  socket?: string;
  /** Group (gid) also allowed on the socket (mode 0660): a charm container running as that group, not root. */
  socketGroup?: number;
  /** pino level of the sidecar's own log (default info); POST /v1/log-level changes it later. */
  logLevel?: string;
  /**
   * Write the sidecar's log and the services' output to this file, size-capped and rotated,
   * instead of stderr and stdout (a local unit: no container runtime collects its output).
   */
  logFile?: { path: string; limits: Rotation };
  log?: Logger;
}

export function sidecarVersion(): string {
  try {
    // The package's root is an ancestor: sidecar/ (source), dist/sidecar/ or dist/sidecar/bundle/.
    for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'pgcharm' && pkg.version) return `v${pkg.version}`;
      } catch {
        /* not here: try the parent */
      }
      if (dirname(dir) === dir) break;
    }
  } catch {
    /* fall through */
  }
  return 'unknown';
}

function contextOf(svc: Service): ReturnType<ExecDeps['serviceContext']> {
  return {
    environment: { ...svc.environment },
    ...(svc['user-id'] !== undefined ? { userId: svc['user-id'] } : {}),
    ...(svc.user !== undefined ? { user: svc.user } : {}),
    ...(svc['group-id'] !== undefined ? { groupId: svc['group-id'] } : {}),
    ...(svc.group !== undefined ? { group: svc.group } : {}),
    ...(svc['working-dir'] !== undefined ? { workingDir: svc['working-dir'] } : {}),
  };
}

/** Runs the sidecar until SIGTERM/SIGINT or a service's shutdown action; never returns normally. */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const own = opts.logFile ? openProcessLog(opts.logFile.path, opts.logFile.limits) : undefined;
  const log = opts.log ?? pino({ name: 'pgcharm-sidecar', base: { pid: process.pid }, level: opts.logLevel ?? 'info' }, own?.file ?? pino.destination(2));
  own?.logCrashes(log);
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });

  const plans = new PlanManager();
  plans.loadDir(opts.dir); // a bad layer file stops the sidecar here with the reason
  const identities = new IdentityStore(opts.dir, log); // so does a bad identities file

  const changes = new ChangeStore();
  const notices = new NoticeStore();
  const logs = new LogStore();
  const echo = (line: string) => (own ? own.file.write(line) : process.stdout.write(line));
  const services = new ServiceManager(changes, { log, logs, echo });
  const serviceContext = (name: string) => contextOf(services.context(name));
  const checks = new CheckManager({ log, serviceContext });

  const applyPlan = (plan: Plan) => {
    services.setPlan(plan);
    checks.setPlan(checksWithDefaults(plan));
  };
  applyPlan(plans.plan);
  plans.on('changed', applyPlan);
  checks.on('failure', (name: string) => services.checkFailed(name));

  // Pebble records a change-update notice whenever a change's status moves.
  const lastStatus = new Map<string, string>();
  changes.on('update', (c) => {
    if (lastStatus.get(c.id) === c.status) return;
    lastStatus.set(c.id, c.status);
    notices.add('change-update', c.id, { kind: c.kind });
  });

  const router = new Router();
  const execDeps: ExecDeps = { changes, log, serviceContext };
  const socketPath = opts.socket ?? process.env['PEBBLE_SOCKET'] ?? join(opts.dir, '.pebble.socket');
  const bootId = randomUUID();
  const info: { version: string; bootId: string; httpAddress?: string } = { version: sidecarVersion(), bootId };
  if (opts.http) info.httpAddress = opts.http;
  router.add([
    ...systemRoutes(info),
    ...logLevelRoutes(log),
    ...servicesRoutes(services, () => checks.replan()),
    ...changesRoutes(changes),
    ...planRoutes(plans),
    ...checksRoutes(checks),
    ...metricsRoutes(services, checks),
    ...filesRoutes(new FilesManager(log)),
    ...execRoutes(execDeps),
    ...logsRoutes(logs, services),
    ...noticesRoutes(notices),
    ...identitiesRoutes(identities, log),
  ]);
  const upgrades = [execUpgrade(execDeps)];
  // Who may call what (Pebble's access levels and identities): the socket knows its peer's
  // UID; the HTTP listener knows only basic-auth credentials and is not concealed.
  const guard = (transport: 'unix' | 'http') =>
    new AccessGuard({
      transport,
      identities,
      log,
      daemonUid: process.getuid?.() ?? 0,
      ...(opts.socketGroup !== undefined ? { socketGroup: opts.socketGroup } : {}),
      ...(transport === 'unix' ? { peerUid: peerUidReader(log) } : {}),
    });
  const server = createApiServer(router, upgrades, log, guard('unix'));
  await listenUnix(server, socketPath, opts.socketGroup);
  let httpServer: ReturnType<typeof createApiServer> | undefined;
  if (opts.http) {
    httpServer = createApiServer(router, upgrades, log, guard('http'));
    const a = await listenTcp(httpServer, opts.http);
    info.httpAddress = `${a.host}:${a.port}`;
  }
  const reaper = startReaper(log);
  log.info({ socket: socketPath, http: info.httpAddress, version: info.version, services: Object.keys(plans.plan.services), identities: identities.identities.size, processStart: Math.round(performance.timeOrigin), cpuMs: cpuMs() }, 'sidecar ready');

  let stopping = false;
  const shutdown = async (code: number, why: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ why, exitCode: code }, 'sidecar shutting down: stopping services');
    checks.stop();
    await execManager(execDeps).shutdown();
    await services.stopAll();
    reaper.stop();
    server.close();
    httpServer?.close();
    server.closeAllConnections();
    httpServer?.closeAllConnections();
    log.info('sidecar stopped');
    process.exit(code);
  };
  process.on('SIGTERM', () => void shutdown(0, 'SIGTERM'));
  process.on('SIGINT', () => void shutdown(0, 'SIGINT'));
  services.on('shutdown', (code: number, name: string) => void shutdown(code, `service ${name} asked for shutdown`));

  if (!opts.hold && Object.values(plans.plan.services).some((s) => s.startup === 'enabled')) {
    const change = services.act('autostart', []);
    log.info({ change: change.id }, 'autostarting enabled services');
  }
  await new Promise<never>(() => undefined);
}
