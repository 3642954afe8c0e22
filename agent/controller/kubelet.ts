import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import type { V1ConfigMap, V1Pod } from '#client-node';
import type { Logger } from 'pino';
import { loadCharmYaml } from '../charm-meta/index.js';
import { freePort } from '../ports.js';
import { cmdline, hasEnv, killMarked, pidsWithEnv } from '../procs.js';
import { apiMessage, isNotFound, mergePatch, SERVICE_ACCOUNT_DIR, type Kube } from '../runtime/kube.js';
import { ANNOTATIONS, LABELS, podName, unitName } from '../runtime/names.js';
import { Store, watchPath, type Watcher } from '../runtime/store.js';
import { rotateIfOver, type Rotation } from '../../sidecar/logs/rotate.js';
import { targetGroups, writeTargets } from '../monitoring/targets.js';
import { signalGroup } from '../../sidecar/osutil/signal.js';
import { decodeDeployment, type Deployment } from './deployment.js';

/** The environment marker every process of a local unit inherits (sidecar, Postgres, agent, execs). */
export const UNIT_MARKER = 'PGCHARM_LOCAL_UNIT';
/** Which of the pod's containers a process belongs to: `workload` (the sidecar and what it runs) or `charm` (the agent). */
export const CONTAINER_MARKER = 'PGCHARM_LOCAL_CONTAINER';
const CONTAINER = { sidecar: 'workload', agent: 'charm' } as const;

/** Annotations the CLI sets on a pod to have it killed like a node failure. */
export const KILL = { at: 'pgcharm.io/kill', noRestart: 'pgcharm.io/no-restart' } as const;

export interface KubeletOptions {
  kube: Kube;
  /** The model directory: units/<pod>/ and logs/ live here. */
  model: string;
  /** How to start this package's CLIs: [node, ...flags, script]. */
  sidecarCommand: string[];
  agentCommand: string[];
  kubeconfig: string;
  /**
   * What a pod gets to reach the API server (service account token, CA, namespace,
   * KUBERNETES_SERVICE_HOST/PORT): agents use the in-cluster path, as in a cluster.
   */
  serviceAccount?: { host: string; port: number; token: string; ca: string; namespace: string };
  log: Logger;
  /** Caps of the units' log files (logs/<pod>.<agent|sidecar>.log, rotated by the processes) and their stderr files. */
  logLimits: Rotation;
  /** Delay before a killed unit comes back, like a pod being rescheduled (default 10 s: longer than the leader lease, so a killed leader is replaced rather than resumed). */
  rescheduleDelayMs?: number;
}

interface Proc {
  /** The running process: one this kubelet started, or one it adopted from a previous controller. */
  pid: number | undefined;
  child: ChildProcess | undefined;
  restarts: number;
  timer?: NodeJS.Timeout;
  /** Liveness polling of an adopted process (not our child, so no exit event). */
  poll?: NodeJS.Timeout;
  /** Where this run's output starts in its stderr file (reported if it dies). */
  stderrFrom?: number;
}

interface LocalUnit {
  index: number;
  pod: string;
  sidecar: Proc;
  agent: Proc;
  stopping: boolean;
}

/**
 * Plays kubelet and StatefulSet controller for local units: for every unit the deployment
 * wants it keeps a Pod object and two processes (sidecar, agent) running and restarts them
 * when they die; a killed unit's processes all get SIGKILL and it comes back after a delay;
 * a removed unit is torn down once its agent ran the remove hook.
 *
 * Units outlive the controller, as pods outlive an API server outage: they write their logs
 * to files themselves (logs/<pod>.<agent|sidecar>.log, size-capped and rotated, Postgres's
 * output in the sidecar's); what reaches their stdout and stderr regardless (a crash trace,
 * V8's fatal errors) goes to logs/<pod>.<agent|sidecar>.stderr, bounded too, and its tail is
 * logged here when the process dies. A controller started again adopts the processes named in the
 * units' pid files instead of starting second copies. A sidecar that dies takes what it ran
 * with it (a container's processes end with its PID 1) before it is started again.
 */
/**
 * Each local unit's ports, by the pod port they are published as, and the file in the unit's
 * directory that keeps each one: `workload` (Postgres), `api` (the agent's unit API, /metrics
 * included), `pgbackrest` (the workload's pgBackRest TLS server, for backups taken from a
 * standby), `metrics` (the workload's postgres exporter), `pebble` (the sidecar's HTTP listener:
 * health for anyone, GET /v1/metrics for its `metrics` identity, nothing else).
 */
const PORT_FILES = { workload: 'port', api: 'api-port', pgbackrest: 'backup-port', metrics: 'metrics-port', pebble: 'pebble-port' } as const;
type PortName = keyof typeof PORT_FILES;

/** Ports this process gave to units (their files may not be written yet). */
const handedOut = new Set<number>();

/** The ports recorded in one unit's directory, by name (a unit not started yet has none). */
function recordedPorts(dir: string): Partial<Record<PortName, number>> {
  const out: Partial<Record<PortName, number>> = {};
  for (const name of Object.keys(PORT_FILES) as PortName[]) {
    try {
      out[name] = Number(readFileSync(join(dir, PORT_FILES[name]), 'utf8'));
    } catch {
      // not recorded yet
    }
  }
  return out;
}

/** Every port recorded in the model's unit directories. */
function unitPorts(units: string): number[] {
  if (!existsSync(units)) return [];
  return readdirSync(units).flatMap((pod) => Object.values(recordedPorts(join(units, pod))));
}

export class Kubelet {
  private readonly store: Store;
  private readonly units = new Map<number, LocalUnit>();
  private deployment: Deployment | undefined;
  private watchers: Watcher[] = [];
  private readonly pending = new Map<number, NodeJS.Timeout>();
  private stopped = false;
  private reconciling: Promise<void> = Promise.resolve();

  constructor(
    private readonly opts: KubeletOptions,
    readonly app: string,
  ) {
    this.store = new Store(opts.kube, app);
  }

  private get ns(): string {
    return this.opts.kube.namespace;
  }

  start(): void {
    this.watchers.push(
      this.store.watchConfigMaps(`${LABELS.app}=${this.app},${LABELS.kind}=deployment`, {
        upsert: (cm) => this.onDeployment(cm),
        remove: () => this.onDeployment(undefined),
      }, this.opts.log),
      watchPath<V1Pod>(
        this.opts.kube,
        `/api/v1/namespaces/${this.ns}/pods`,
        () => this.opts.kube.core.listNamespacedPod({ namespace: this.ns, labelSelector: `${LABELS.app}=${this.app}` }),
        `${LABELS.app}=${this.app}`,
        { upsert: (p) => this.onPod(p), remove: (p) => this.onPodDeleted(p) },
        this.opts.log,
      ),
    );
  }

  private onDeployment(cm: V1ConfigMap | undefined): void {
    this.deployment = cm ? decodeDeployment(cm) : undefined;
    this.kick();
  }

  private kick(): void {
    this.reconciling = this.reconciling.then(() => this.reconcile()).catch((e: unknown) => this.opts.log.error({ err: apiMessage(e) }, 'reconcile failed'));
  }

  /** Brings processes and pods in line with the deployment's wanted units. */
  private async reconcile(): Promise<void> {
    if (this.stopped) return;
    const wanted = new Set(this.deployment?.units ?? []);
    const held = new Set(this.deployment?.held ?? []);
    for (const index of wanted) {
      if (held.has(index) || this.pending.has(index)) continue;
      if (!this.units.has(index)) await this.startUnit(index);
    }
    for (const u of [...this.units.values()]) {
      if (!wanted.has(u.index)) await this.removeUnit(u);
      else if (held.has(u.index)) await this.kill(u, true); // logged as a kill: held down by `pgcharm kill --no-restart`
    }
    this.writeScrapeTargets(wanted);
  }

  /** Prometheus's targets for every wanted unit, a held or dead one included (its `up` is 0: that is an alert). */
  private writeScrapeTargets(wanted: ReadonlySet<number>): void {
    const units = [...wanted].flatMap((index) => {
      // A unit not started yet has no ports, and no target until it has them.
      const ports = recordedPorts(this.unitDir(podName({ app: this.app, index })));
      return Object.keys(ports).length ? [{ unit: unitName({ app: this.app, index }), ports }] : [];
    });
    try {
      writeTargets(this.opts.model, this.app, targetGroups(this.app, '127.0.0.1', units));
    } catch (e) {
      this.opts.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'could not write the Prometheus targets');
    }
  }

  private unitDir(pod: string): string {
    return join(this.opts.model, 'units', pod);
  }

  private marker(pod: string): string {
    return `${this.opts.model}#${pod}`;
  }

  private async startUnit(index: number): Promise<void> {
    const pod = podName({ app: this.app, index });
    const dir = this.unitDir(pod);
    mkdirSync(join(dir, 'pebble', 'layers'), { recursive: true, mode: 0o755 });
    mkdirSync(join(dir, 'storage'), { recursive: true, mode: 0o755 });
    mkdirSync(join(this.opts.model, 'logs'), { recursive: true });
    const ports = {} as Record<PortName, number>;
    const recorded = recordedPorts(dir);
    for (const name of Object.keys(PORT_FILES) as PortName[]) ports[name] = recorded[name] ?? (await this.newPort(dir, name));
    await this.ensurePod(index, pod, ports);
    const u: LocalUnit = { index, pod, sidecar: { pid: undefined, child: undefined, restarts: 0 }, agent: { pid: undefined, child: undefined, restarts: 0 }, stopping: false };
    this.units.set(index, u);
    const adopted = (['sidecar', 'agent'] as const).filter((which) => this.adopt(u, which));
    for (const which of ['sidecar', 'agent'] as const) if (!adopted.includes(which)) this.spawn(u, which);
    // Logged when the processes were spawned, not after the status report (the bootstrap timeline reads it).
    this.opts.log.info({ unit: unitName({ app: this.app, index }), ...(adopted.length ? { adopted } : {}) }, adopted.length ? 'unit found running; adopted' : 'unit started');
    await this.reportStatus(u);
  }

  /**
   * All local units share 127.0.0.1, so each gets its own ports (PORT_FILES: kept in the unit's
   * directory so they survive reschedules), published as container ports like a pod's. This
   * chooses one the unit has not recorded yet, and records it.
   */
  private async newPort(dir: string, name: PortName): Promise<number> {
    // The ports of every unit are chosen before any of them is bound, and the kernel hands out a
    // port that is free now, however often: one unit's Postgres and another's backup server got
    // the same one (Postgres then failed to start). So never one already given to a unit.
    const taken = new Set([...handedOut, ...unitPorts(join(this.opts.model, 'units'))]);
    let port = await freePort();
    for (let i = 0; taken.has(port) && i < 100; i++) port = await freePort();
    handedOut.add(port);
    writeFileSync(join(dir, PORT_FILES[name]), String(port));
    return port;
  }

  /** The workload container's name: the deployment's record of it, else charm.yaml's (read once per deployment). */
  private async workloadContainer(): Promise<string> {
    this.container ??= this.deployment?.container;
    if (!this.container) {
      const meta = await loadCharmYaml(this.deployment?.charm ?? '');
      this.container = Object.keys(meta.containers)[0] ?? 'workload';
    }
    return this.container;
  }

  private container: string | undefined;

  private async ensurePod(index: number, pod: string, ports: Record<PortName, number>): Promise<void> {
    const body: V1Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: pod,
        labels: { [LABELS.app]: this.app, [LABELS.managedBy]: 'pgcharm', 'statefulset.kubernetes.io/pod-name': pod, 'apps.kubernetes.io/pod-index': String(index) },
      },
      spec: {
        containers: [
          // The agent's unit API (failsafe confirmations between units), as the manifests publish it.
          { name: 'charm', image: 'pgcharm/agent', ports: [{ name: 'api', containerPort: ports.api, protocol: 'TCP' }] },
          {
            name: await this.workloadContainer(),
            image: 'pgcharm/workload',
            // The first port is the workload's own (Postgres); as the manifests publish them.
            ports: [
              { name: 'workload', containerPort: ports.workload, protocol: 'TCP' },
              { name: 'pgbackrest', containerPort: ports.pgbackrest, protocol: 'TCP' },
              { name: 'metrics', containerPort: ports.metrics, protocol: 'TCP' },
              { name: 'pebble', containerPort: ports.pebble, protocol: 'TCP' },
            ],
          },
        ],
      },
    };
    try {
      await this.opts.kube.core.createNamespacedPod({ namespace: this.ns, body });
    } catch (e) {
      if ((e as { code?: number }).code !== 409) throw e;
    }
  }

  /**
   * The unit's service account files where a pod has them, under `<unit>/pod-root` (the agent
   * gets that prefix as PGCHARM_IN_CLUSTER_ROOT), and the environment a pod gets.
   */
  private mountServiceAccount(dir: string, sa: NonNullable<KubeletOptions['serviceAccount']>): Record<string, string> {
    const root = join(dir, 'pod-root');
    const mount = join(root, SERVICE_ACCOUNT_DIR);
    mkdirSync(mount, { recursive: true, mode: 0o755 });
    writeFileSync(join(mount, 'token'), sa.token, { mode: 0o600 });
    writeFileSync(join(mount, 'ca.crt'), sa.ca);
    writeFileSync(join(mount, 'namespace'), sa.namespace);
    return { KUBERNETES_SERVICE_HOST: sa.host, KUBERNETES_SERVICE_PORT: String(sa.port), PGCHARM_IN_CLUSTER_ROOT: root };
  }

  private pidFile(u: LocalUnit, which: 'sidecar' | 'agent'): string {
    return join(this.unitDir(u.pod), `${which}.pid`);
  }

  private stderrFile(u: LocalUnit, which: 'sidecar' | 'agent'): string {
    return join(this.opts.model, 'logs', `${u.pod}.${which}.stderr`);
  }

  private markers(u: LocalUnit, which: 'sidecar' | 'agent'): Record<string, string> {
    return { [UNIT_MARKER]: this.marker(u.pod), [CONTAINER_MARKER]: CONTAINER[which] };
  }

  /** Takes over a process a previous controller started, if its pid file names a live one of this unit. */
  private adopt(u: LocalUnit, which: 'sidecar' | 'agent'): boolean {
    let pid: number;
    try {
      pid = Number(readFileSync(this.pidFile(u, which), 'utf8').trim());
    } catch {
      return false;
    }
    // The markers and the command line: a pid from a file may since belong to another process of the unit.
    const own = which === 'sidecar' ? join(this.unitDir(u.pod), 'pebble') : unitName({ app: this.app, index: u.index });
    if (!pid || !hasEnv(pid, this.markers(u, which)) || !cmdline(pid).includes(own)) return false;
    const p = u[which];
    p.pid = pid;
    p.stderrFrom = sizeOf(this.stderrFile(u, which));
    p.poll = setInterval(() => {
      if (hasEnv(pid, this.markers(u, which))) return;
      clearInterval(p.poll);
      p.poll = undefined;
      if (p.pid === pid) this.exited(u, which, null, null);
    }, 250);
    return true;
  }

  /** `--http 127.0.0.1:<pebble-port>` once the unit has that port (a unit directory from before it has none until restarted by startUnit). */
  private sidecarHttp(dir: string): string[] {
    const port = recordedPorts(dir).pebble;
    return port === undefined ? [] : ['--http', `127.0.0.1:${port}`];
  }

  private spawn(u: LocalUnit, which: 'sidecar' | 'agent'): void {
    const p = u[which];
    if (this.stopped || u.stopping) return;
    // What a dead process left behind in its container (a killed sidecar's Postgres, an exec):
    // a container starts empty.
    killMarked(UNIT_MARKER, this.marker(u.pod), { [CONTAINER_MARKER]: CONTAINER[which] });
    const dir = this.unitDir(u.pod);
    const [cmd, ...base] = which === 'sidecar' ? this.opts.sidecarCommand : this.opts.agentCommand;
    const args =
      which === 'sidecar'
        ? [...base, 'run', '--dir', join(dir, 'pebble'), ...this.sidecarHttp(dir)]
        : [
            ...base,
            'agent',
            '--unit', unitName({ app: this.app, index: u.index }),
            ...(this.opts.serviceAccount ? [] : ['--kubeconfig', this.opts.kubeconfig]),
            '--socket', join(dir, 'pebble', '.pebble.socket'),
            '--charm', this.deployment?.charm ?? '',
            '--charm-module', this.deployment?.charmModule ?? '',
          ];
    const env: Record<string, string | undefined> = {
      ...process.env,
      ...this.markers(u, which),
      PGCHARM_UNIT_DIR: dir,
      PGCHARM_STORAGE_DIR: join(dir, 'storage'),
      // The model's backups directory: each application's default pgBackRest repository is in it.
      PGCHARM_BACKUP_DIR: join(this.opts.model, 'backups'),
      PEBBLE: join(dir, 'pebble'),
    };
    delete env['PEBBLE_SOCKET'];
    if (which === 'agent' && this.opts.serviceAccount) Object.assign(env, this.mountServiceAccount(dir, this.opts.serviceAccount));
    // The process writes its log file itself: no pipe through this controller that its death would break.
    const { maxBytes, files } = this.opts.logLimits;
    args.push('--log-file', join(this.opts.model, 'logs', `${u.pod}.${which}.log`), '--log-max-size', String(maxBytes), '--log-max-files', String(files));
    const stderr = this.stderrFile(u, which);
    rotateIfOver(stderr, this.opts.logLimits);
    const out = openSync(stderr, 'a');
    let child: ChildProcess;
    try {
      p.stderrFrom = fstatSync(out).size;
      child = spawn(cmd!, args, { env, stdio: ['ignore', out, out], detached: true });
    } finally {
      closeSync(out);
    }
    p.child = child;
    p.pid = child.pid;
    if (child.pid) writeFileSync(this.pidFile(u, which), `${child.pid}\n`);
    // The agent's CPU share, as its container's CPU request gives it in a pod (manifests): it must
    // renew the primary Lease on time while Postgres saturates the machine. The sidecar gets the
    // default back (it inherits this controller's), or Postgres, which it starts, would have it too.
    if (child.pid) raisePriority(child.pid, this.opts.log, which === 'agent' ? HA_NICE : 0);
    child.on('exit', (code, signal) => {
      if (p.child !== child) return;
      this.exited(u, which, code, signal);
    });
  }

  private exited(u: LocalUnit, which: 'sidecar' | 'agent', code: number | null, signal: NodeJS.Signals | null): void {
    const p = u[which];
    p.child = undefined;
    p.pid = undefined;
    if (this.stopped || u.stopping) return;
    p.restarts++;
    const stderr = tail(this.stderrFile(u, which), p.stderrFrom ?? 0, 4096);
    this.opts.log.warn({ unit: u.pod, process: which, code, signal, restarts: p.restarts, ...(stderr ? { stderr } : {}) }, 'unit process exited; restarting');
    void this.reportStatus(u);
    p.timer = setTimeout(() => {
      this.spawn(u, which);
      void this.reportStatus(u);
    }, Math.min(1000 * p.restarts, 5000));
  }

  /** The pod's status as a kubelet reports it (status is ignored on create, as in Kubernetes). */
  private async reportStatus(u: LocalUnit): Promise<void> {
    const container = (name: string, p: Proc, image: string) => ({
      name,
      image,
      imageID: '',
      ready: Boolean(p.pid),
      started: Boolean(p.pid),
      restartCount: p.restarts,
      state: p.pid ? { running: {} } : { waiting: { reason: 'CrashLoopBackOff' } },
    });
    const ready = Boolean(u.agent.pid && u.sidecar.pid);
    const status = {
      phase: 'Running',
      podIP: '127.0.0.1',
      hostIP: '127.0.0.1',
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
      containerStatuses: [container('charm', u.agent, 'pgcharm/agent'), container(this.container ?? 'workload', u.sidecar, 'pgcharm/workload')],
    };
    try {
      await this.opts.kube.core.patchNamespacedPodStatus({ name: u.pod, namespace: this.ns, body: { status } }, mergePatch);
    } catch (e) {
      this.opts.log.warn({ pod: u.pod, err: apiMessage(e) }, 'could not report pod status');
    }
  }

  private onPod(p: V1Pod): void {
    const index = Number(p.metadata?.labels?.['apps.kubernetes.io/pod-index']);
    const u = this.units.get(index);
    if (!u) return;
    const ann = p.metadata?.annotations ?? {};
    if (ann[KILL.at]) void this.kill(u, ann[KILL.noRestart] === 'true');
    else if (ann[ANNOTATIONS.removed] === 'true' && !(this.deployment?.units ?? []).includes(index)) this.kick();
  }

  /** A pod deleted by someone else (kubectl delete pod): terminate the unit and bring it back. */
  private onPodDeleted(p: V1Pod): void {
    const index = Number(p.metadata?.labels?.['apps.kubernetes.io/pod-index']);
    const u = this.units.get(index);
    if (!u || u.stopping) return;
    void (async () => {
      await this.terminate(u, 10_000);
      this.units.delete(index);
      this.reschedule(index);
    })();
  }

  /** `pgcharm kill`: SIGKILL to every process of the unit (agent, sidecar, Postgres), then reschedule. */
  private async kill(u: LocalUnit, noRestart: boolean): Promise<void> {
    if (u.stopping) return;
    this.opts.log.warn({ unit: u.pod, noRestart }, 'killing unit');
    await this.killUnit(u, !noRestart);
  }

  private async killUnit(u: LocalUnit, reschedule: boolean): Promise<void> {
    u.stopping = true;
    for (const p of [u.agent, u.sidecar]) {
      clearTimeout(p.timer);
      clearInterval(p.poll);
    }
    killMarked(UNIT_MARKER, this.marker(u.pod));
    await this.waitGone(u.pod, 5000);
    this.units.delete(u.index);
    await this.deletePod(u.pod);
    if (reschedule) this.reschedule(u.index);
  }

  private reschedule(index: number): void {
    clearTimeout(this.pending.get(index));
    this.pending.set(
      index,
      setTimeout(() => {
        this.pending.delete(index);
        this.kick();
      }, this.opts.rescheduleDelayMs ?? 10_000),
    );
  }

  /** SIGTERM (the agent runs its stop hook, the sidecar stops Postgres), SIGKILL after the grace period. */
  private async terminate(u: LocalUnit, graceMs: number): Promise<void> {
    u.stopping = true;
    for (const p of [u.agent, u.sidecar]) {
      clearTimeout(p.timer);
      clearInterval(p.poll);
      if (p.pid) signalGroup(p.pid, 'SIGTERM');
    }
    if (!(await this.waitGone(u.pod, graceMs))) {
      killMarked(UNIT_MARKER, this.marker(u.pod));
      await this.waitGone(u.pod, 5000);
    }
  }

  private async waitGone(pod: string, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (pidsWithEnv(UNIT_MARKER, this.marker(pod)).length === 0) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return pidsWithEnv(UNIT_MARKER, this.marker(pod)).length === 0;
  }

  private async deletePod(pod: string): Promise<void> {
    try {
      await this.opts.kube.core.deleteNamespacedPod({ name: pod, namespace: this.ns });
    } catch (e) {
      if (!isNotFound(e)) this.opts.log.warn({ pod, err: apiMessage(e) }, 'could not delete pod');
    }
  }

  /**
   * remove-unit: the agent runs departed/stop/remove once the pod is marked dying, then marks
   * it removed; only then (or after two minutes) the unit is terminated and its directory,
   * which this kubelet created, deleted.
   */
  private async removeUnit(u: LocalUnit): Promise<void> {
    if (u.stopping) return;
    const pod = await this.readPod(u.pod);
    if (pod && !pod.metadata?.annotations?.[ANNOTATIONS.dying]) {
      await this.opts.kube.core.patchNamespacedPod({ name: u.pod, namespace: this.ns, body: { metadata: { annotations: { [ANNOTATIONS.dying]: 'true', 'pgcharm.io/dying-since': new Date().toISOString() } } } }, mergePatch);
      return; // the pod watch brings us back when the agent is done
    }
    const since = Date.parse(pod?.metadata?.annotations?.['pgcharm.io/dying-since'] ?? '') || 0;
    const done = !pod || pod.metadata?.annotations?.[ANNOTATIONS.removed] === 'true';
    if (!done && Date.now() - since < 120_000) {
      setTimeout(() => this.kick(), 5000);
      return;
    }
    await this.terminate(u, 30_000);
    this.units.delete(u.index);
    await this.deletePod(u.pod);
    if (!this.deployment?.keepData) rmSync(this.unitDir(u.pod), { recursive: true, force: true });
    this.opts.log.info({ unit: u.pod }, 'unit removed');
  }

  private async readPod(name: string): Promise<V1Pod | undefined> {
    try {
      return await this.opts.kube.core.readNamespacedPod({ name, namespace: this.ns });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** Controller shutdown: units are terminated gracefully (their pods stay, as on a node reboot). */
  async stop(graceMs = 30_000): Promise<void> {
    this.stopped = true;
    for (const t of this.pending.values()) clearTimeout(t);
    await Promise.all(this.watchers.map((w) => w.stop().catch(() => undefined)));
    await this.reconciling;
    await Promise.all([...this.units.values()].map((u) => this.terminate(u, graceMs)));
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Up to the last `max` bytes of `path` from offset `from` (from 0 if the file was emptied since), trimmed. */
function tail(path: string, from: number, max: number): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(size < from ? 0 : from, size - max);
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    return buf.toString('utf8').trim();
  } finally {
    closeSync(fd);
  }
}

/** Niceness of the HA processes on a local deployment (root only: others may not lower theirs). */
export const HA_NICE = -5;

/** Gives `pid` (default: this process) the HA processes' priority (or `nice`) when allowed; a no-op otherwise. */
export function raisePriority(pid: number | undefined, log: Logger, nice = HA_NICE): void {
  if (process.getuid?.() !== 0) return;
  try {
    if (pid === undefined) setPriority(nice);
    else setPriority(pid, nice);
  } catch (e) {
    log.debug({ pid, err: (e as Error).message }, 'could not raise the process priority');
  }
}
