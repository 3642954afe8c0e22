import { join } from 'node:path';
import type { V1ConfigMap, V1Pod, V1Secret } from '#client-node';
import type { Logger } from 'pino';
import { PebbleClient } from '../../sidecar/client/index.js';
import { unsealValues } from '../charm-meta/secret-config.js';
import { ActionRun } from './actions.js';
import { RelationDataAccessError, type Charm, type CharmLoop, type ConfigValue, type EventContext, type LoopContext, type Relation, type RelationView, type Status, type Workload } from './charm.js';
import { grantedLabel, revisionOf, secretIdOf, secretObjectName, StoreSecrets } from './juju-secrets.js';
import { bagLabels, JOINED_ANNOTATION, relationLabel, relationObjects, type RelationRecord } from './relations.js';
import { readConfigSecrets } from './config-secrets.js';
import { EventQueue, type QueuedEvent } from './events.js';
import { apiMessage, mergePatch, type Kube } from './kube.js';
import { DEFAULT_LEASE_TIMING, LeaderElector, type LeaseTiming } from './leadership.js';
import { LeaseCache, leaseLabels } from './leases.js';
import { BufferedBag, parseList, sameData } from './model.js';
import { ANNOTATIONS, LABELS, objects, parseUnit, podName, unitName, type UnitName } from './names.js';
import { Store, watchPath, type Watcher } from './store.js';
import { RelationScopes, type RelationState } from './relation-scopes.js';
import { UnitApi } from './unit-api.js';
import * as metrics from './metrics.js';

export interface AgentOptions {
  unit: UnitName;
  kube: Kube;
  /** The sidecar's API socket (the workload container's Pebble). */
  socketPath: string;
  charm: Charm;
  log: Logger;
  /** Peer relation name from charm.yaml (a charm without one gets no peer events). */
  peerRelation?: string;
  /** Workload container name from charm.yaml (for `<container>-pebble-ready`). */
  container: string;
  leaseTiming?: LeaseTiming;
  /** update-status period, also the drift resync; default 10 s. */
  updateStatusMs?: number;
  /** Set to the running event's name (a pino mixin puts it on every log line). */
  current?: { event: string };
  /** Mount locations of the workload container's storage, by storage name (from charm.yaml). */
  storage?: Record<string, string>;
  /** Actions charm.yaml marks `sensitive: true`: their results go to a short-lived Secret, not the store. */
  sensitiveActions?: readonly string[];
}

interface ConfigSnapshot {
  /** As stored: secret options hold references (charm-meta/secret-config.ts). */
  values: Record<string, ConfigValue>;
  hash: string;
  /** Options whose value is a reference to Secret `<app>-config-secrets`. */
  refs: string[];
}

const ERROR_RETRY_MS = [5_000, 10_000, 20_000, 40_000, 60_000];
/** An update-status running longer than this shows "executing" in status. */
const EXECUTING_AFTER_MS = 1000;
/** A notice key nobody records: the agent's long-poll on it ends only by timeout or by the sidecar going away. */
const SIDECAR_WATCH_KEY = 'pgcharm.io/agent-follows-sidecar';
/** How often the store is listed again in case a watch missed something (it re-lists after any error). */
const RESYNC_MS = 5 * 60_000;
const LOG_LEVELS: readonly string[] = ['trace', 'debug', 'info', 'warn', 'error'];

/**
 * One unit's charm agent: turns store watches, leadership, sidecar readiness, actions and a
 * timer into Juju's charm events, runs them one at a time, commits what handlers wrote to the
 * relation bags, and reports unit and agent status. Knows nothing about Postgres.
 */
export class Agent {
  readonly store: Store;
  readonly elector: LeaderElector;
  readonly leases: LeaseCache;
  readonly pebble: PebbleClient;
  private readonly queue = new EventQueue();
  private readonly unit: string;
  private readonly pod: string;
  private readonly myBag: string;
  private readonly log: Logger;
  private readonly run = { stopped: false };
  private watchers: Watcher[] = [];
  private timers: NodeJS.Timeout[] = [];
  private loopDone: Promise<void> = Promise.resolve();

  private config: ConfigSnapshot | undefined;
  /** The config with secret values filled in, for the hash it was read for. */
  private resolved: { hash: string; values: Record<string, ConfigValue> } | undefined;
  private appliedHash = '';
  private installed = false;
  private myData: Record<string, string> = {};
  private appData: Record<string, string> = {};
  /** Other units' bags, by unit name, as last seen. */
  private peers = new Map<string, Record<string, string>>();
  /** Peers whose joined event ran (persisted, so a restarted agent does not re-join them). */
  private joined = new Set<string>();
  private pebbleBootId: string | undefined;
  private dying = false;
  private removed = false;
  private sleeping: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  private podObject: V1Pod | undefined;
  /** The last hook failed and the unit shows an error status (cleared by the next success). */
  private inError = false;
  private loops: Promise<void>[] = [];
  /** The unit's HTTP API, when the charm has routes and the pod an `api` port. */
  private api: UnitApi | undefined;
  private apiChain: Promise<void> = Promise.resolve();
  private apiError = '';
  readonly workload: Workload;
  /** Relations with other applications: what the relation watch shows, turned into events. */
  private readonly scopes: RelationScopes;
  private readonly secrets: StoreSecrets;
  /**
   * The revision of each secret granted to this application that this unit has seen or handled
   * secret-changed for (kept on its bag, so a rotation while the agent was down is not missed).
   */
  private readonly secretRevisions = new Map<string, number>();

  constructor(private readonly opts: AgentOptions) {
    this.unit = unitName(opts.unit);
    this.pod = podName(opts.unit);
    this.myBag = objects.unitBag(opts.unit);
    this.log = opts.log;
    this.store = new Store(opts.kube, opts.unit.app);
    this.leases = new LeaseCache(opts.kube, opts.unit.app, this.log);
    this.elector = new LeaderElector(opts.kube, objects.leaderLease(opts.unit.app), this.unit, opts.leaseTiming ?? DEFAULT_LEASE_TIMING, this.log, this.leases, leaseLabels(opts.unit.app));
    this.pebble = new PebbleClient({ socketPath: opts.socketPath });
    this.scopes = new RelationScopes(opts.unit.app, this.unit, (e) => this.queue.push(e));
    this.secrets = new StoreSecrets({ kube: opts.kube, app: opts.unit.app, isLeader: () => this.elector.isLeader(), relations: () => this.scopes.remoteApps() });
    this.workload = {
      address: () => {
        const ip = this.podObject?.status?.podIP;
        const c = this.podObject?.spec?.containers.find((x) => x.name === opts.container);
        const port = c?.ports?.[0]?.containerPort;
        return ip && port ? { host: ip, port } : undefined;
      },
      api: () => {
        const ip = this.podObject?.status?.podIP;
        const port = this.podObject?.spec?.containers.flatMap((x) => x.ports ?? []).find((p) => p.name === 'api')?.containerPort;
        return ip && port ? { host: ip, port } : undefined;
      },
      port: (name: string) => this.podObject?.spec?.containers.flatMap((x) => x.ports ?? []).find((p) => p.name === name)?.containerPort,
      storage: (name: string) => {
        // The local kubelet keeps each unit's volumes under one directory; in a pod they are mounts.
        const local = process.env['PGCHARM_STORAGE_DIR'];
        if (local) return join(local, name);
        const at = opts.storage?.[name];
        if (!at) throw new Error(`no storage ${JSON.stringify(name)} is mounted in container ${opts.container}`);
        return at;
      },
    };
  }

  private get app(): string {
    return this.opts.unit.app;
  }

  private get relation(): string {
    return this.opts.peerRelation ?? '';
  }

  /** Startup: Juju's order is install, leader-elected or leader-settings-changed, config-changed, start. */
  async start(): Promise<void> {
    this.leases.start();
    // Independent reads and the first leadership round at once: this is on the way to every unit's first hook.
    const [bag, config, appBag] = await Promise.all([
      this.store.ensure(this.myBag, this.store.labels('unit-bag', { [LABELS.unit]: this.pod })),
      this.store.get(objects.config(this.app)),
      this.store.get(objects.appBag(this.app)),
      this.elector.start(),
    ]);
    const ann = bag.metadata?.annotations ?? {};
    for (const [k, v] of Object.entries(ann)) this.written.set(k, v);
    this.myData = { ...(bag.data ?? {}) };
    this.installed = ann[ANNOTATIONS.installed] === 'true';
    this.inError = ann[ANNOTATIONS.workloadStatus] === 'error'; // left by a previous run of this agent
    this.appliedHash = ann[ANNOTATIONS.appliedConfigHash] ?? '';
    for (const u of parseList(ann[ANNOTATIONS.peers])) this.joined.add(u);
    for (const [name, rev] of Object.entries(parseRecord(ann[SECRET_REVISIONS]))) if (typeof rev === 'number') this.secretRevisions.set(name, rev);
    this.config = parseConfig(config);
    this.applyLogLevel();
    this.appData = { ...(appBag?.data ?? {}) };
    this.appBagExists = Boolean(appBag);
    this.appStatusShown = appStatusOf(appBag?.metadata?.annotations);

    this.elector.on('elected', () => this.queue.push({ name: 'leader-elected' }));
    if (!this.installed) this.queue.push({ name: 'install' });
    this.queue.push({ name: this.elector.isLeader() ? 'leader-elected' : 'leader-settings-changed' });
    this.queue.push({ name: 'config-changed' });
    this.queue.push({ name: 'start' });

    this.watchers.push(
      this.store.watchConfigMaps(`${LABELS.app}=${this.app}`, {
        upsert: (cm) => this.onConfigMap(cm),
        remove: (cm) => this.onConfigMapGone(cm),
        synced: (all) => this.onSynced(all),
      }, this.log),
      watchPath<V1Pod>(
        this.opts.kube,
        `/api/v1/namespaces/${this.store.namespace}/pods`,
        () => this.opts.kube.core.listNamespacedPod({ namespace: this.store.namespace, labelSelector: `statefulset.kubernetes.io/pod-name=${this.pod}` }),
        `statefulset.kubernetes.io/pod-name=${this.pod}`,
        { upsert: (p) => this.onPod(p), remove: () => undefined },
        this.log,
      ),
      // Relations with other applications: the relation objects and both sides' bags carry a label per application.
      this.store.watchConfigMaps(relationLabel(this.app), {
        upsert: (cm) => this.scopes.observe(cm, false),
        remove: (cm) => this.scopes.observe(cm, true),
        synced: (all) => this.scopes.resync(all),
      }, this.log),
      watchPath<V1Secret>(
        this.opts.kube,
        `/api/v1/namespaces/${this.store.namespace}/secrets`,
        () => this.opts.kube.core.listNamespacedSecret({ namespace: this.store.namespace, labelSelector: grantedLabel(this.app) }),
        grantedLabel(this.app),
        {
          upsert: (s) => this.onGrantedSecret(s),
          remove: (s) => {
            if (this.secretRevisions.delete(s.metadata?.name ?? '')) void this.annotate(this.secretRevisionsAnnotation());
          },
          synced: (all) => all.forEach((s) => this.onGrantedSecret(s)),
        },
        this.log,
      ),
    );
    this.timers.push(setInterval(() => void this.serveApi(), 1000));
    // A safety net only: the watches re-list after any error, so this finds nothing in a healthy store.
    this.timers.push(setInterval(() => void this.resync(), RESYNC_MS));
    // Loops act at once on a lease renewed, taken or expired (a standby's failover starts at expiry).
    const wake = () => this.wakeLoops();
    this.leases.on('change', wake);
    this.leases.on('expired', wake);
    this.leases.on('own-holder', wake);
    this.armUpdateStatus();
    void this.followPebble();
    this.loopDone = this.loop();
    for (const l of this.opts.charm.loops ?? []) this.loops.push(this.runCharmLoop(l));
    this.log.info({ leader: this.elector.isLeader() }, 'agent started');
  }

  /** Pod termination: run `stop`, give up leadership, and end. */
  async stop(why: string): Promise<void> {
    if (this.run.stopped) return;
    this.log.info({ why }, 'agent stopping');
    this.queue.push({ name: 'stop' });
    // Let the queue drain up to and including stop; then shut down.
    this.stopAfter = 'stop';
    this.sleeping?.wake();
    await this.loopDone;
    await this.shutdown();
  }

  private stopAfter: string | undefined;

  private async shutdown(): Promise<void> {
    this.run.stopped = true;
    this.queue.interrupt();
    this.sleeping?.wake();
    for (const t of this.timers) clearInterval(t);
    clearInterval(this.updateStatus);
    await (this.apiChain = this.apiChain.then(() => this.api?.close()));
    await Promise.all(this.watchers.map((w) => w.stop().catch(() => undefined)));
    this.wakeLoops();
    await Promise.all(this.loops);
    await this.opts.charm.shutdown?.().catch((e: unknown) => this.log.warn({ err: String(e) }, 'charm shutdown failed'));
    await this.elector.stop(true);
    await this.leases.stop();
  }

  private loopContext(name: string): LoopContext {
    const log = this.log.child({ loop: name });
    return {
      unit: this.unit,
      app: this.app,
      isLeader: () => this.elector.isLeader(),
      // A loop sees secret options as their references until an event has read the Secret.
      config: () => Object.freeze({ ...(this.resolved && this.resolved.hash === this.config?.hash ? this.resolved.values : (this.config?.values ?? {})) }),
      bags: () => ({ local: { ...this.myData }, app: { ...this.appData }, peers: new Map(this.peers) }),
      setLocal: async (data) => {
        await this.store.patch(this.myBag, { data });
        this.myData = applyPatch(this.myData, data);
        this.wakeBagLoops();
      },
      setApp: async (data) => {
        if (!this.elector.isLeader()) throw new RelationDataAccessError(`unit ${this.unit} is not the leader: only the leader writes the ${this.relation} application bag`);
        await this.ensureAppBag();
        await this.store.patch(objects.appBag(this.app), { data });
        this.appData = applyPatch(this.appData, data);
      },
      relations: (endpoint) => this.scopes.visible().filter((st) => endpoint === undefined || st.endpoint === endpoint).map((st) => relationView(st, this.scopes.units(st))),
      setRelationApp: async (id, data) => {
        const st = this.scopes.states.get(id);
        if (!st?.record || !this.scopes.inScope(st)) throw new RelationDataAccessError(`${this.app} is not in relation ${id}`);
        if (!this.elector.isLeader()) throw new RelationDataAccessError(`unit ${this.unit} is not the leader: only the leader writes ${this.app}'s bag of relation ${id}`);
        await this.writeRelationApp(st, st.record, data);
      },
      secrets: this.secrets,
      // Only between hooks: a leader-only hook cut off halfway fails, and its retry no longer leads.
      resignLeadership: (why) => this.elector.resign(2 * (this.opts.leaseTiming ?? DEFAULT_LEASE_TIMING).retryMs, why, () => !this.dispatching && this.queue.size === 0),
      setUnitStatus: (st) => this.setUnitStatus(st),
      pebble: this.pebble,
      workload: this.workload,
      kube: this.opts.kube,
      leases: this.leases,
      emit: (event) => this.queue.push({ name: event }),
      log,
    };
  }

  private async writeRelationApp(st: RelationState, record: RelationRecord, data: Record<string, string | null>): Promise<void> {
    const name = relationObjects.appBag(st.id, this.app);
    await this.store.ensure(name, bagLabels(record, this.app));
    await this.store.patch(name, { data });
    st.localApp = applyPatch(st.localApp, data);
  }

  /**
   * A secret granted to this application: a revision other than the one this unit last handled
   * is secret-changed; the first sight only records it (the relation that carries its id says so).
   */
  private onGrantedSecret(s: V1Secret): void {
    const name = s.metadata?.name ?? '';
    const rev = revisionOf(s);
    const handled = this.secretRevisions.get(name);
    if (handled === undefined) {
      this.secretRevisions.set(name, rev);
      void this.annotate(this.secretRevisionsAnnotation());
    } else if (handled !== rev) {
      const id = secretIdOf(name);
      this.queue.push({ name: 'secret-changed', key: `secret-changed:${id}`, secret: { id, revision: rev } });
    }
  }

  private secretRevisionsAnnotation(): Record<string, string> {
    return { [SECRET_REVISIONS]: JSON.stringify(Object.fromEntries([...this.secretRevisions].sort())) };
  }

  /** A charm loop: run, sleep everyMs (from the current config), repeat; a failure is logged, not fatal. */
  private async runCharmLoop(l: CharmLoop): Promise<void> {
    const ctx = this.loopContext(l.name);
    while (!this.run.stopped) {
      try {
        await l.run(ctx);
      } catch (e) {
        ctx.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'charm loop failed');
      }
      if (this.run.stopped) break;
      await new Promise<void>((r) => {
        const done = () => {
          clearTimeout(t);
          this.loopWakers.delete(done);
          this.bagWakers.delete(done);
          r();
        };
        const t = setTimeout(done, Math.max(10, l.everyMs(ctx.config())));
        this.loopWakers.add(done);
        if (l.wakeOnBagChange) this.bagWakers.add(done);
      });
    }
  }

  /** A peer relation event; a charm without a peer relation gets none. */
  private pushPeer(e: QueuedEvent): void {
    if (this.opts.peerRelation) this.queue.push(e);
  }

  /** Ends every loop's sleep: its next run starts now (runs still never overlap). */
  private wakeLoops(): void {
    for (const w of [...this.loopWakers]) w();
  }

  private readonly loopWakers = new Set<() => void>();
  /** The sleeping loops that also look at once when a bag of the peer relation changes. */
  private readonly bagWakers = new Set<() => void>();

  private wakeBagLoops(): void {
    for (const w of [...this.bagWakers]) w();
  }

  /** Resolves when the agent has finished (after stop(), or after the unit was removed). */
  done(): Promise<void> {
    return this.loopDone;
  }

  // ---- event sources -------------------------------------------------------------------

  private onConfigMap(cm: V1ConfigMap): void {
    const kind = cm.metadata?.labels?.[LABELS.kind];
    const name = cm.metadata?.name ?? '';
    if (kind === 'config' && name === objects.config(this.app)) {
      const c = parseConfig(cm);
      if (c && c.hash !== this.config?.hash) {
        this.config = c;
        this.armUpdateStatus();
        this.applyLogLevel();
        // A loop's pace may depend on the config (its everyMs): it looks again now.
        this.wakeLoops();
        if (c.hash !== this.appliedHash) this.queue.push({ name: 'config-changed' });
      }
    } else if (kind === 'app-bag' && name === objects.appBag(this.app)) {
      const data = { ...(cm.data ?? {}) };
      if (sameData(data, this.appData)) return;
      this.appData = data;
      // The leader wrote it; the other units hear about it (Juju does not notify the writer).
      if (!this.elector.isLeader()) {
        this.pushPeer({ name: `${this.relation}-relation-changed`, key: 'relation-changed:app', appChanged: true });
        this.queue.push({ name: 'leader-settings-changed' });
      }
    } else if (kind === 'unit-bag') {
      const pod = cm.metadata?.labels?.[LABELS.unit];
      if (!pod || pod === this.pod) return;
      const u = unitName(parseUnit(pod));
      if (cm.metadata?.annotations?.[ANNOTATIONS.removed] === 'true') return this.peerGone(u);
      const data = { ...(cm.data ?? {}) };
      const before = this.peers.get(u);
      this.peers.set(u, data);
      if (!before || !sameData(before, data)) this.wakeBagLoops();
      // Joined once per peer: when first seen, unless a previous run of this agent already joined it.
      if (!before && !this.joined.has(u)) {
        this.pushPeer({ name: `${this.relation}-relation-joined`, key: `relation-joined:${u}`, remoteUnit: u });
        this.pushPeer({ name: `${this.relation}-relation-changed`, key: `relation-changed:${u}`, remoteUnit: u });
      } else if (!before || !sameData(before, data)) {
        this.pushPeer({ name: `${this.relation}-relation-changed`, key: `relation-changed:${u}`, remoteUnit: u });
      }
    } else if (kind === 'action' && cm.metadata?.labels?.[LABELS.unit] === this.pod) {
      if (cm.data?.['status'] === 'pending') {
        const id = Number(cm.data['id']);
        this.queue.push({ name: `${cm.data['action']}-action`, key: `action:${id}`, actionId: id });
      }
    }
  }

  private onConfigMapGone(cm: V1ConfigMap): void {
    if (cm.metadata?.labels?.[LABELS.kind] !== 'unit-bag') return;
    const pod = cm.metadata.labels[LABELS.unit];
    if (pod && pod !== this.pod) this.peerGone(unitName(parseUnit(pod)));
  }

  /** After a (re-)list: peers whose bag vanished while we were not watching have departed. */
  private onSynced(all: V1ConfigMap[]): void {
    const present = new Set(
      all
        .filter((c) => c.metadata?.labels?.[LABELS.kind] === 'unit-bag' && c.metadata.annotations?.[ANNOTATIONS.removed] !== 'true')
        .map((c) => c.metadata?.labels?.[LABELS.unit] ?? ''),
    );
    for (const u of new Set([...this.joined, ...this.peers.keys()])) {
      if (!present.has(podName(parseUnit(u)))) this.peerGone(u);
    }
  }

  private peerGone(u: string): void {
    const known = this.peers.delete(u);
    if (known || this.joined.has(u)) {
      this.pushPeer({ name: `${this.relation}-relation-departed`, key: `relation-departed:${u}`, remoteUnit: u });
    }
  }

  private onPod(p: V1Pod): void {
    this.podObject = p;
    this.publishIngressAddress(p.status?.podIP);
    void this.serveApi();
    if (p.metadata?.annotations?.[ANNOTATIONS.dying] === 'true' && !this.dying) {
      this.dying = true;
      this.log.info('unit is being removed');
      for (const u of [...this.joined].sort()) {
        this.pushPeer({ name: `${this.relation}-relation-departed`, key: `relation-departed:${u}`, remoteUnit: u });
      }
      this.scopes.leave(); // every relation with another application: -departed for each remote unit, then -broken
      this.queue.push({ name: 'stop' });
      this.queue.push({ name: 'remove' });
    }
  }

  /**
   * Juju puts each unit's `ingress-address` in its relation data before any hook runs; so does
   * this runtime, as soon as the pod has an IP. Peers can then admit the unit (pg_hba) before
   * its first hook, which may need the access already (a clone from the primary), has ended.
   */
  private publishIngressAddress(ip: string | undefined): void {
    if (!ip || this.myData[INGRESS_ADDRESS] === ip || this.publishingIngress === ip) return;
    this.publishingIngress = ip;
    this.store
      .patch(this.myBag, { data: { [INGRESS_ADDRESS]: ip } })
      .then(() => {
        this.myData = { ...this.myData, [INGRESS_ADDRESS]: ip };
      })
      .catch((e: unknown) => this.log.warn({ err: apiMessage(e) }, 'could not publish the ingress address'))
      .finally(() => {
        this.publishingIngress = undefined;
      });
  }

  private publishingIngress: string | undefined;

  /** The config with secret values read from Secret `<app>-config-secrets` (cached per config hash). */
  private async resolveConfig(c: ConfigSnapshot | undefined): Promise<Record<string, ConfigValue>> {
    if (!c) return {};
    if (!c.refs.length) return c.values;
    if (this.resolved?.hash === c.hash) return this.resolved.values;
    const secrets = await readConfigSecrets(this.opts.kube, this.app);
    const { values, missing } = unsealValues(c.values, c.refs, secrets?.entries ?? {});
    if (missing.length) {
      throw new Error(`config ${missing.join(', ')}: the value is missing from Secret ${objects.configSecrets(this.app)}; set it again with pgcharm config`);
    }
    this.resolved = { hash: c.hash, values };
    return values;
  }

  /** Serves the charm's API routes on the pod's `api` address once the pod has one (again if it moved). */
  private serveApi(): Promise<void> {
    // One at a time (pod events come in bursts); a failed listen is retried by the next call.
    this.apiChain = this.apiChain.then(async () => {
      const at = this.workload.api();
      const charmApi = this.opts.charm.api;
      if (!at || this.run.stopped) return;
      this.api ??= new UnitApi({ routes: [...(charmApi?.routes ?? []), metrics.metricsRoute], token: () => charmApi?.token(), log: this.log.child({ api: true }) });
      if (this.api.listening === `${at.host}:${at.port}`) return;
      try {
        await this.api.listen(at.host, at.port);
        this.apiError = '';
      } catch (e) {
        const err = e instanceof Error ? e.message : String(e);
        if (err !== this.apiError) this.log.error({ err, api: `${at.host}:${at.port}` }, 'could not serve the unit API; retrying every second');
        this.apiError = err;
      }
    });
    return this.apiChain;
  }

  /** update-status every `update-status-interval` seconds of the config (else the option given, else 10 s). */
  private armUpdateStatus(): void {
    const fromConfig = Number(this.config?.values['update-status-interval']);
    const ms = fromConfig > 0 ? fromConfig * 1000 : (this.opts.updateStatusMs ?? 10_000);
    if (this.updateStatus && this.updateStatusMs === ms) return;
    clearInterval(this.updateStatus);
    this.updateStatusMs = ms;
    this.updateStatus = setInterval(() => this.queue.push({ name: 'update-status' }), ms);
  }

  private updateStatus: NodeJS.Timeout | undefined;
  private updateStatusMs = 0;

  /** The level the sidecar of this boot id was given (`<level>@<boot id>`). */
  private sidecarLevel = '';

  /**
   * The config's `agent-log-level`, when the charm has one: this agent's logger at once (its
   * children follow it), and the workload sidecar's through its API, again after each sidecar
   * boot. Nothing restarts. A sidecar without the route (a real Pebble) keeps its own level.
   */
  private applyLogLevel(): void {
    const level = this.config?.values['agent-log-level'];
    if (typeof level !== 'string' || !LOG_LEVELS.includes(level)) return;
    if (this.log.level !== level) {
      this.log.info({ from: this.log.level, to: level }, 'log level changed');
      this.log.level = level;
    }
    const want = `${level}@${this.pebbleBootId ?? ''}`;
    if (!this.pebbleBootId || this.sidecarLevel === want) return;
    this.pebble.setLogLevel(level).then(
      () => void (this.sidecarLevel = want),
      (e: unknown) => this.log.debug({ err: (e as Error).message }, 'could not set the sidecar log level'),
    );
  }

  /** Asks the sidecar its boot id; a new one is a (re)started sidecar: pebble-ready. False when it does not answer. */
  private async checkPebble(): Promise<boolean> {
    try {
      const info = await this.pebble.getSystemInfo();
      if (info['boot-id'] !== this.pebbleBootId) {
        this.pebbleBootId = info['boot-id'];
        this.applyLogLevel(); // a sidecar started again runs at its start-up level
        this.queue.push({ name: `${this.opts.container}-pebble-ready` });
      }
      return true;
    } catch {
      // Not up yet (or restarting): pebble-ready fires once it answers with a new boot id.
      return false;
    }
  }

  /**
   * Follows the sidecar without polling it: every second until it answers, then a long-poll
   * of its notices API (a request a minute) that fails the moment the sidecar goes away, when
   * it is asked again at once. A sidecar without notices (an old Pebble) is asked every second.
   */
  private async followPebble(): Promise<void> {
    const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
    while (!this.run.stopped) {
      if (!(await this.checkPebble())) {
        await pause(1000);
        continue;
      }
      const asked = Date.now();
      try {
        await this.pebble.getNotices({ types: ['custom'], keys: [SIDECAR_WATCH_KEY], after: new Date(), timeoutMs: 60_000 });
      } catch {
        // Gone or restarted (checked at once), or no long-poll here: then at most once a second.
        if (Date.now() - asked < 1000 && (await this.checkPebble())) await pause(1000);
      }
    }
  }

  // ---- dispatch ------------------------------------------------------------------------

  private async loop(): Promise<void> {
    while (!this.run.stopped) {
      const batch = await this.queue.next(this.run);
      for (const e of batch) {
        if (this.run.stopped) return;
        await this.runWithRetry(e);
        if (e.name === 'remove') return this.finishRemoval();
        if (this.stopAfter && e.name === this.stopAfter) return;
      }
    }
  }

  /** A failed hook puts the unit in error and is retried with backoff, as Juju does; actions just fail. */
  private async runWithRetry(e: QueuedEvent): Promise<void> {
    for (let attempt = 0; !this.run.stopped; attempt++) {
      const err = await this.dispatch(e);
      if (!err) return;
      const wait = ERROR_RETRY_MS[Math.min(attempt, ERROR_RETRY_MS.length - 1)]!;
      this.log.error({ event: e.name, err: err.message, retryInMs: wait }, 'hook failed; retrying');
      this.inError = true;
      await this.annotate({ [ANNOTATIONS.agentStatus]: 'error', [ANNOTATIONS.agentMessage]: `hook failed: "${e.name}": ${err.message}`, [ANNOTATIONS.workloadStatus]: 'error', [ANNOTATIONS.workloadMessage]: `hook failed: "${e.name}"` });
      await this.sleep(wait);
      if (this.stopAfter && e.name !== this.stopAfter) return; // a stopping unit does not keep retrying
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleeping = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleeping = { timer, wake };
    });
  }

  /** A hook is running (dispatch to its end). */
  private dispatching = false;

  /** Runs one event; returns the error when the handler failed (the unit goes into error). */
  private async dispatch(e: QueuedEvent): Promise<Error | undefined> {
    this.dispatching = true;
    try {
      return await this.dispatchOne(e);
    } finally {
      this.dispatching = false;
    }
  }

  private async dispatchOne(e: QueuedEvent): Promise<Error | undefined> {
    if (this.opts.current) this.opts.current.event = e.name;
    const log = e.remoteUnit ? this.log.child({ remote: e.remoteUnit }) : this.log;
    let action: ActionRun | undefined;
    if (this.scopes.stale(e)) {
      log.debug({ event: e.name }, 'relation gone or left: event dropped');
      this.queue.settled(e); // and a deferred copy with it
      this.scopes.dropped(e);
      return undefined;
    }
    if (e.actionId !== undefined) {
      action = await ActionRun.claim(this.store, this.app, e.actionId, log, this.opts.sensitiveActions ?? []);
      if (!action) return undefined; // cancelled or already taken
    }
    const config = this.config;
    let values: Record<string, ConfigValue>;
    try {
      values = await this.resolveConfig(config);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      if (!action) return error;
      metrics.actions.inc({ action: action.context.name, outcome: await action.finish(error) });
      return undefined;
    }
    const leader = () => this.elector.isLeader();
    const local = new BufferedBag(this.myData, () => true);
    const appBag = new BufferedBag(this.appData, () =>
      leader() ? true : `unit ${this.unit} is not the leader: only the leader writes the ${this.relation} application bag`,
    );
    const others = new Map([...this.peers].map(([u, d]) => [u, new BufferedBag(d, () => `unit ${this.unit} cannot write the bag of unit ${u}: each unit writes only its own`)]));
    // Relations with other applications, built on first use: their bags are committed with the peer bags.
    const built = new Map<number, BuiltRelation>();
    const relationOf = (st: RelationState): Relation => {
      const have = built.get(st.id);
      if (have) return have.relation;
      // The unit a -joined is about is in relation.units already, as in ops.
      const joining = st.id === e.relationId && e.name.endsWith('-relation-joined') ? e.remoteUnit : undefined;
      const b = this.buildRelation(st, leader, joining);
      built.set(st.id, b);
      return b.relation;
    };
    const eventState = e.relationId === undefined ? undefined : this.scopes.states.get(e.relationId);
    if (eventState) relationOf(eventState);
    let deferred = false;
    const statuses = { unit: this.shownStatus.unit, app: this.shownStatus.app };
    const ctx: EventContext = {
      name: e.name,
      unit: this.unit,
      app: this.app,
      isLeader: leader,
      config: Object.freeze({ ...values }),
      configHash: config?.hash ?? '',
      peers: {
        name: this.relation,
        units: [...this.peers.keys()].sort(),
        app: appBag,
        local,
        unit: (name: string) => {
          if (name === this.unit) return local;
          const b = others.get(name);
          if (!b) throw new Error(`unit ${name} is not in the ${this.relation} relation`);
          return b;
        },
      },
      ...(e.remoteUnit ? { remoteUnit: e.remoteUnit } : {}),
      ...(e.appChanged ? { appChanged: true } : {}),
      leaving: this.dying,
      relations: (endpoint?: string) => this.scopes.visible().filter((st) => endpoint === undefined || st.endpoint === endpoint).map(relationOf),
      ...(eventState ? { relation: relationOf(eventState), remoteApp: eventState.remoteApp } : {}),
      ...(e.secret ? { secret: e.secret } : {}),
      secrets: this.secrets,
      ...(action ? { action: action.context } : {}),
      pebble: this.pebble,
      workload: this.workload,
      kube: this.opts.kube,
      leases: this.leases,
      setUnitStatus: (s) => this.setUnitStatus(s),
      setAppStatus: (s) => this.setAppStatus(s),
      defer: () => {
        deferred = true;
      },
      emit: (event) => this.queue.push({ name: event }),
      log,
    };

    const handler = this.opts.charm.handlers[e.name];
    // "executing" while a hook runs (what `deploy` waits out before it calls the units settled),
    // except for a quick update-status: the timer's hook that changes nothing writes nothing.
    const executing = { [ANNOTATIONS.agentStatus]: 'executing', [ANNOTATIONS.agentMessage]: `running ${e.name} hook` };
    let shown: Promise<void> | undefined;
    if (e.name !== 'update-status') shown = this.annotate(executing);
    const slow = shown ? undefined : setTimeout(() => void (shown = this.annotate(executing)), EXECUTING_AFTER_MS);
    const t0 = performance.now();
    let wrote = false;
    try {
      if (handler) await handler(ctx);
      wrote = await this.commit(local, appBag);
      wrote = (await this.commitRelations(e, built, deferred)) || wrote;
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      clearTimeout(slow);
      await shown;
      metrics.events.inc({ event: e.name, outcome: 'error' });
      if (action) {
        metrics.actions.inc({ action: action.context.name, outcome: await action.finish(error) });
        await this.annotate({ [ANNOTATIONS.agentStatus]: 'idle', [ANNOTATIONS.agentMessage]: null });
        return undefined;
      }
      return error;
    }
    clearTimeout(slow);
    await shown;
    metrics.events.inc({ event: e.name, outcome: deferred ? 'deferred' : 'ok' });
    if (action) metrics.actions.inc({ action: action.context.name, outcome: await action.finish() });
    await this.afterSuccess(e, deferred, config);
    // update-status runs every few seconds: it is worth a line at info only when it changed something.
    const quiet = e.name === 'update-status' && !deferred && !action && !wrote && statuses.unit === this.shownStatus.unit && statuses.app === this.shownStatus.app;
    log[quiet ? 'debug' : 'info']({ handled: Boolean(handler), deferred, ms: Math.round(performance.now() - t0) }, deferred ? 'event deferred' : 'event handled');
    if (this.opts.current) this.opts.current.event = 'idle';
    return undefined;
  }

  /** Writes what the hook changed in the bags; says whether there was anything. */
  private async commit(local: BufferedBag, appBag: BufferedBag): Promise<boolean> {
    const mine = local.patch();
    if (mine) {
      await this.store.patch(this.myBag, { data: mine });
      // Onto the current data: the runtime (ingress-address) and loops may have written meanwhile.
      this.myData = applyPatch(this.myData, mine);
    }
    const app = appBag.patch();
    if (app) {
      if (!this.elector.isLeader()) throw new Error(`lost leadership before the application bag could be written`);
      await this.ensureAppBag();
      await this.store.patch(objects.appBag(this.app), { data: app });
      this.appData = appBag.entries();
    }
    return Boolean(mine || app);
  }

  /** A relation with its bags as one handler sees them (Juju's write rules in the bags). */
  private buildRelation(st: RelationState, leader: () => boolean, joining?: string): BuiltRelation {
    const local = new BufferedBag(st.mine ?? {}, () => true);
    const localApp = new BufferedBag(st.localApp, () => (leader() ? true : `unit ${this.unit} is not the leader: only the leader writes ${this.app}'s bag of relation ${st.id}`));
    const remoteApp = new BufferedBag(st.remoteAppData, () => `${this.app} cannot write ${st.remoteApp}'s bag of relation ${st.id}: nobody writes the other side's`);
    const remote = new Map([...st.remoteUnits].map(([u, d]) => [u, new BufferedBag(d, () => `unit ${this.unit} cannot write the bag of unit ${u}: nobody writes the other side's`)]));
    const relation: Relation = {
      id: st.id,
      name: st.endpoint,
      interface: st.interface,
      app: st.remoteApp,
      remoteEndpoint: st.remoteEndpoint,
      units: this.scopes.units(st, joining),
      localApp,
      remoteApp,
      local,
      unit: (name: string) => {
        if (name === this.unit) return local;
        const b = remote.get(name);
        if (!b) throw new Error(`unit ${name} is not in relation ${st.id} (${st.endpoint})`);
        return b;
      },
      dying: this.scopes.removing(st),
    };
    return { relation, local, localApp };
  }

  /**
   * What an event of a relation with another application changes in the store: the bags its
   * handler wrote; this unit's bag created at -created (it enters scope: the remote units see
   * -joined) and deleted after -broken (it leaves; its leader's application bag goes too); the
   * joined set kept on the bag.
   */
  private async commitRelations(e: QueuedEvent, built: Map<number, BuiltRelation>, deferred: boolean): Promise<boolean> {
    let wrote = false;
    const kind = /-relation-(created|joined|changed|departed|broken)$/.exec(e.name)?.[1];
    for (const [id, b] of built) {
      const st = this.scopes.states.get(id);
      const record = st?.record;
      if (!st || !record) continue;
      const mine = b.local.patch();
      const bag = relationObjects.unitBag(id, this.app, this.opts.unit.index);
      if (st.mine === undefined && (mine || (kind === 'created' && e.relationId === id))) {
        const ip = this.myData[INGRESS_ADDRESS];
        const cm = await this.store.ensure(bag, bagLabels(record, this.app, this.pod), ip ? { [INGRESS_ADDRESS]: ip } : {}, { [JOINED_ANNOTATION]: '[]' });
        st.mine = { ...(cm.data ?? {}) };
        wrote = true;
      }
      if (mine) {
        await this.store.patch(bag, { data: mine });
        st.mine = applyPatch(st.mine ?? {}, mine);
        wrote = true;
      }
      const app = b.localApp.patch();
      if (app) {
        if (!this.elector.isLeader()) throw new Error(`lost leadership before ${this.app}'s bag of relation ${id} could be written`);
        await this.writeRelationApp(st, record, app);
        wrote = true;
      }
    }
    const st = e.relationId === undefined ? undefined : this.scopes.states.get(e.relationId);
    // A deferred event has not happened yet: it leaves scope (or joins) when it runs to the end.
    if (!st || deferred) return wrote;
    const bag = relationObjects.unitBag(st.id, this.app, this.opts.unit.index);
    if ((kind === 'joined' || kind === 'departed') && e.remoteUnit && st.mine !== undefined) {
      const joined = new Set(st.joined);
      if (kind === 'joined') joined.add(e.remoteUnit);
      else joined.delete(e.remoteUnit);
      await this.store.patch(bag, { annotations: { [JOINED_ANNOTATION]: JSON.stringify([...joined].sort()) } });
    }
    if (kind === 'broken') {
      await this.store.delete(bag);
      st.mine = undefined;
      // The application's bag goes with the relation, not with a unit leaving it (remove-unit).
      if (this.elector.isLeader() && this.scopes.removing(st)) await this.store.delete(relationObjects.appBag(st.id, this.app));
      wrote = true;
    }
    return wrote;
  }

  private async afterSuccess(e: QueuedEvent, deferred: boolean, config: ConfigSnapshot | undefined): Promise<void> {
    const ann: Record<string, string | null> = { [ANNOTATIONS.agentStatus]: 'idle', [ANNOTATIONS.agentMessage]: null };
    if (deferred) {
      this.queue.defer(e);
    } else {
      this.queue.settled(e);
      this.scopes.ran(e);
      if (e.name === 'install') {
        this.installed = true;
        ann[ANNOTATIONS.installed] = 'true';
      }
      if (e.name === 'config-changed' && config) {
        this.appliedHash = config.hash;
        ann[ANNOTATIONS.appliedConfigHash] = config.hash;
        ann[ANNOTATIONS.appliedConfig] = JSON.stringify(config.values);
      }
      if (e.secret) {
        this.secretRevisions.set(secretObjectName(e.secret.id), Math.max(e.secret.revision, this.secretRevisions.get(secretObjectName(e.secret.id)) ?? 0));
        Object.assign(ann, this.secretRevisionsAnnotation());
      }
      if (e.relationId === undefined) {
        if (e.remoteUnit && e.name.endsWith('-relation-joined')) this.joined.add(e.remoteUnit);
        if (e.remoteUnit && e.name.endsWith('-relation-departed')) this.joined.delete(e.remoteUnit);
        if (e.remoteUnit) ann[ANNOTATIONS.peers] = JSON.stringify([...this.joined].sort());
      }
    }
    // A unit in error that now succeeds clears the error it was showing.
    if (this.inError) {
      this.inError = false;
      ann[ANNOTATIONS.workloadStatus] = 'unknown';
      ann[ANNOTATIONS.workloadMessage] = null;
    }
    if (this.queue.size > 0 && !this.stopAfter) {
      // The next event runs at once and says `executing`: no `idle` in between (a start-up or a
      // burst of relation events is a dozen events); what this one recorded goes with its write.
      delete ann[ANNOTATIONS.agentStatus];
      delete ann[ANNOTATIONS.agentMessage];
      this.carried = { ...this.carried, ...ann };
    } else await this.annotate(ann);
    if (deferred) this.log.debug({ deferred: this.queue.deferredNames() }, 'deferred events');
  }

  /** The drift resync (every RESYNC_MS): re-read what the watches maintain. */
  private async resync(): Promise<void> {
    try {
      const all = await this.store.list(`${LABELS.app}=${this.app}`);
      for (const cm of all) this.onConfigMap(cm);
      this.onSynced(all);
    } catch (e) {
      this.log.warn({ err: apiMessage(e) }, 'resync failed');
    }
  }

  /** The statuses last set (`name: message`), to tell a hook that changed one from one that set it again. */
  private readonly shownStatus = { unit: '', app: '' };

  private async setUnitStatus(s: Status): Promise<void> {
    this.shownStatus.unit = `${s.name}: ${s.message}`;
    await this.annotate({ [ANNOTATIONS.workloadStatus]: s.name, [ANNOTATIONS.workloadMessage]: s.message || null });
  }

  private async setAppStatus(s: Status): Promise<void> {
    if (!this.elector.isLeader()) throw new Error(`unit ${this.unit} is not the leader: only the leader sets the application status`);
    this.shownStatus.app = `${s.name}: ${s.message}`;
    const name = objects.appBag(this.app);
    const shown = `${s.name}|${s.message}`;
    if (this.appStatusShown === shown) return;
    await this.ensureAppBag();
    await this.store.patch(name, { annotations: { [ANNOTATIONS.workloadStatus]: s.name, [ANNOTATIONS.workloadMessage]: s.message || null } });
    this.appStatusShown = shown;
  }

  private async ensureAppBag(): Promise<void> {
    if (this.appBagExists) return;
    await this.store.ensure(objects.appBag(this.app), this.store.labels('app-bag'));
    this.appBagExists = true;
  }

  /** The application status as last written or seen (the leader writes only a change). */
  private appStatusShown: string | undefined;
  private appBagExists = false;

  /** Annotations as this agent last stored them (only it writes its bag's): a write changing none is skipped. */
  private readonly written = new Map<string, string | null>();
  /** What a finished event recorded while the next one was already waiting; stored with that one's status. */
  private carried: Record<string, string | null> = {};
  /** Status writes one after another (events and loops both write): `written` then matches the store. */
  private annotating: Promise<void> = Promise.resolve();

  private annotate(a: Record<string, string | null>): Promise<void> {
    this.annotating = this.annotating.then(async () => {
      const changed = Object.fromEntries(Object.entries({ ...this.carried, ...a }).filter(([k, v]) => this.written.get(k) !== v));
      this.carried = {};
      // Every event used to write its status twice and a waiting unit the same status again: each
      // write is a store request and a watch event for every other agent.
      if (!Object.keys(changed).length) return;
      try {
        await this.store.patch(this.myBag, { annotations: { ...changed, [ANNOTATIONS.updated]: new Date().toISOString() } });
        for (const [k, v] of Object.entries(changed)) this.written.set(k, v);
      } catch (e) {
        this.log.warn({ err: apiMessage(e) }, 'could not record unit status');
      }
    });
    return this.annotating;
  }

  /** After `remove`: the bag goes (peers see departed), the lease is released, the kubelet reaps the pod. */
  private async finishRemoval(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    await this.store.patch(this.myBag, { annotations: { [ANNOTATIONS.removed]: 'true' } }).catch(() => undefined);
    await this.store.delete(this.myBag).catch((e: unknown) => this.log.warn({ err: apiMessage(e) }, 'could not delete the unit bag'));
    await this.shutdown();
    try {
      await this.opts.kube.core.patchNamespacedPod(
        { name: this.pod, namespace: this.store.namespace, body: { metadata: { annotations: { [ANNOTATIONS.removed]: 'true' } } } },
        mergePatch,
      );
    } catch (e) {
      this.log.warn({ err: apiMessage(e) }, 'could not mark the pod removed');
    }
    this.log.info('unit removed');
  }
}

interface BuiltRelation {
  relation: Relation;
  local: BufferedBag;
  localApp: BufferedBag;
}

function relationView(st: RelationState, units: string[]): RelationView {
  return {
    id: st.id,
    name: st.endpoint,
    interface: st.interface,
    app: st.remoteApp,
    remoteEndpoint: st.remoteEndpoint,
    units,
    localApp: { ...st.localApp },
    remoteApp: { ...st.remoteAppData },
  };
}

function appStatusOf(ann: Record<string, string> | undefined): string | undefined {
  const name = ann?.[ANNOTATIONS.workloadStatus];
  return name ? `${name}|${ann[ANNOTATIONS.workloadMessage] ?? ''}` : undefined;
}

function applyPatch(data: Record<string, string>, p: Record<string, string | null>): Record<string, string> {
  const out = { ...data };
  for (const [k, v] of Object.entries(p)) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

function parseConfig(cm: V1ConfigMap | undefined): ConfigSnapshot | undefined {
  const raw = cm?.data?.['config'];
  const hash = cm?.data?.['hash'];
  if (!raw || !hash) return undefined;
  try {
    return { values: JSON.parse(raw) as Record<string, ConfigValue>, hash, refs: parseList(cm?.data?.['secrets']) };
  } catch {
    return undefined;
  }
}

/** On the unit bag: the revision of each granted secret this unit last handled (JSON, by Secret name). */
const SECRET_REVISIONS = 'pgcharm.io/secret-revisions';

function parseRecord(s: string | undefined): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(s ?? '{}');
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The bag key the runtime keeps the pod IP under (Juju's name for it). */
export const INGRESS_ADDRESS = 'ingress-address';
