import type { CoreV1Event, V1ConfigMap } from '#client-node';
import type { Logger } from 'pino';
import pg from '#pg';
import { readPasswords } from '../charm/postgresql/secrets.js';
import type { Kube } from '../runtime/kube.js';
import { LABELS } from '../runtime/names.js';
import { Store, watchPath, type Watcher } from '../runtime/store.js';

/**
 * What the dashboard shows, gathered for a model: its applications (deployment ConfigMaps), each
 * unit's bag (where its agent's API and its Postgres are), the Events the agents record, and,
 * only while a page is open, once a second: each application's cluster as one of its units'
 * GET /cluster tells it (Patroni's shape) and the primary's commit count (a tiny query as
 * `monitoring`). Everything from the store comes by watch: an open page adds no store requests
 * but the one Secret read per application.
 */

export interface Member {
  name: string;
  role: string;
  state: string;
  host?: string;
  port?: number;
  timeline?: number;
  lsn?: string;
  lag?: number;
}

export interface AppView {
  app: string;
  members: Member[];
  /** The unit whose API answered, or why none did. */
  from: string;
  /** Commits per second on the primary since the previous sample; undefined for the first. */
  commitsPerSec?: number;
}

export interface TimelineEvent {
  time: string;
  app: string;
  unit: string;
  type: string;
  reason: string;
  message: string;
}

export interface Alert {
  name: string;
  state: string;
  severity: string;
  unit?: string;
  application?: string;
  summary: string;
  since?: string;
}

export interface Snapshot {
  time: string;
  model: string;
  apps: AppView[];
  events: TimelineEvent[];
  /** Firing and pending alerts from Prometheus; undefined when none is configured. */
  alerts?: Alert[];
  alertsError?: string;
  prometheus?: string;
}

const MAX_EVENTS = 200;

interface AppState {
  bags: Map<string, Record<string, string>>;
  watcher: Watcher;
  commits?: { at: number; count: number; where: string };
  monitoring?: string;
  /** Kept open while pages listen (a login a second would cost the primary a fork each). */
  client?: { where: string; c: pg.Client };
}

export class ClusterSource {
  private readonly apps = new Map<string, AppState>();
  private readonly events = new Map<string, TimelineEvent>();
  private watchers: Watcher[] = [];

  constructor(
    private readonly o: { kube: Kube; model: string; log: Logger; prometheus?: string | undefined },
  ) {}

  start(): void {
    const ns = this.o.kube.namespace;
    this.watchers.push(
      new Store(this.o.kube, '').watchConfigMaps(`${LABELS.kind}=deployment`, { upsert: (cm) => this.addApp(cm), remove: (cm) => void this.dropApp(cm) }, this.o.log),
      watchPath<CoreV1Event>(
        this.o.kube,
        `/api/v1/namespaces/${ns}/events`,
        () => this.o.kube.core.listNamespacedEvent({ namespace: ns, labelSelector: LABELS.app }),
        LABELS.app,
        { upsert: (e) => this.addEvent(e), remove: () => undefined },
        this.o.log,
      ),
    );
  }

  /** Stops every watch and forgets what they brought (start() lists it all again). */
  async stop(): Promise<void> {
    this.idle();
    const all = [...this.watchers, ...[...this.apps.values()].map((a) => a.watcher)];
    this.watchers = [];
    this.apps.clear();
    await Promise.all(all.map((w) => w.stop()));
  }

  private addApp(cm: V1ConfigMap): void {
    const app = cm.metadata?.labels?.[LABELS.app];
    if (!app || this.apps.has(app)) return;
    const bags = new Map<string, Record<string, string>>();
    const unitOf = (b: V1ConfigMap) => {
      const pod = b.metadata?.labels?.[LABELS.unit] ?? '';
      const i = pod.lastIndexOf('-');
      return i > 0 ? `${pod.slice(0, i)}/${pod.slice(i + 1)}` : pod;
    };
    const watcher = new Store(this.o.kube, app).watchConfigMaps(
      `${LABELS.app}=${app},${LABELS.kind}=unit-bag`,
      { upsert: (b) => void bags.set(unitOf(b), b.data ?? {}), remove: (b) => void bags.delete(unitOf(b)) },
      this.o.log,
    );
    this.apps.set(app, { bags, watcher });
  }

  private async dropApp(cm: V1ConfigMap): Promise<void> {
    const app = cm.metadata?.labels?.[LABELS.app];
    const a = app ? this.apps.get(app) : undefined;
    if (!a) return;
    this.apps.delete(app!);
    await a.watcher.stop();
  }

  private addEvent(e: CoreV1Event): void {
    const at = e.lastTimestamp ?? e.firstTimestamp ?? e.metadata?.creationTimestamp;
    const ev: TimelineEvent = {
      time: at ? new Date(at).toISOString() : new Date().toISOString(),
      app: e.metadata?.labels?.[LABELS.app] ?? '',
      unit: e.reportingInstance || (e.involvedObject?.name ?? ''),
      type: e.type ?? 'Normal',
      reason: e.reason ?? '',
      message: e.message ?? '',
    };
    this.events.set(e.metadata?.name ?? `${ev.time}${ev.reason}`, ev);
    if (this.events.size > MAX_EVENTS * 2) {
      const keep = [...this.events.entries()].sort((a, b) => (a[1].time < b[1].time ? 1 : -1)).slice(0, MAX_EVENTS);
      this.events.clear();
      for (const [k, v] of keep) this.events.set(k, v);
    }
  }

  /** One look at every application now (called once a second while a page listens). */
  async snapshot(): Promise<Snapshot> {
    const apps = await Promise.all([...this.apps.keys()].sort().map((app) => this.appView(app)));
    const events = [...this.events.values()].sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0)).slice(0, MAX_EVENTS);
    return { time: new Date().toISOString(), model: this.o.model, apps, events, ...(await this.alerts()) };
  }

  private async appView(app: string): Promise<AppView> {
    const a = this.apps.get(app)!;
    // The unit that says it is primary first: its view of the cluster is the freshest.
    const units = [...a.bags.entries()].sort(([x, bx], [y, by]) => Number(by['role'] === 'primary') - Number(bx['role'] === 'primary') || x.localeCompare(y));
    let cluster: { members: Member[] } | undefined;
    let from = 'no unit API answered';
    for (const [unit, bag] of units) {
      const api = bag['api'];
      if (!api) continue;
      try {
        const r = await fetch(`http://${api}/cluster`, { signal: AbortSignal.timeout(800) });
        if (!r.ok) continue;
        cluster = (await r.json()) as { members: Member[] };
        from = unit;
        break;
      } catch {
        // that unit's agent is down: ask the next
      }
    }
    const members: Member[] = cluster?.members ?? [...a.bags.entries()].sort(([x], [y]) => x.localeCompare(y)).map(([name, bag]) => ({ name, role: bag['role'] ?? 'unknown', state: 'unknown' }));
    const leader = members.find((m) => m.role === 'leader');
    const commitsPerSec = leader?.host && leader.port ? await this.commitRate(app, a, { host: leader.host, port: leader.port }) : undefined;
    return { app, members, from, ...(commitsPerSec !== undefined ? { commitsPerSec } : {}) };
  }

  /** Commits per second on the primary: pg_stat_database's sum, as the `monitoring` role. */
  private async commitRate(app: string, a: AppState, at: { host: string; port: number }): Promise<number | undefined> {
    const where = `${at.host}:${at.port}`;
    if (a.client && a.client.where !== where) this.closeClient(a);
    try {
      if (!a.client) {
        a.monitoring ??= (await readPasswords(this.o.kube, app).catch(() => undefined))?.monitoring;
        if (!a.monitoring) return undefined;
        const c = new pg.Client({ host: at.host, port: at.port, user: 'monitoring', password: a.monitoring, database: 'postgres', connectionTimeoutMillis: 800, statement_timeout: 800, application_name: 'pgcharm-dashboard' });
        c.on('error', () => this.closeClient(a, c));
        a.client = { where, c };
        await c.connect();
      }
      const c = a.client.c;
      const count = Number((await c.query<{ n: string }>('SELECT sum(xact_commit)::bigint AS n FROM pg_stat_database')).rows[0]!.n);
      const now = Date.now();
      const prev = a.commits;
      a.commits = { at: now, count, where };
      // Another primary's counters are its own: only a delta on the same server is a rate.
      return prev && prev.where === where && count >= prev.count && now > prev.at ? ((count - prev.count) * 1000) / (now - prev.at) : undefined;
    } catch (e) {
      // A rotated password: read it again next time.
      if ((e as { code?: string }).code === '28P01') a.monitoring = undefined;
      if (a.client?.where === where) this.closeClient(a, a.client.c);
      return undefined;
    }
  }

  /** Closes the app's kept connection (only `c`, when given: not a newer one opened meanwhile). */
  private closeClient(a: AppState, c?: pg.Client): void {
    if (!a.client || (c && a.client.c !== c)) return;
    a.client.c.end().catch(() => undefined);
    a.client = undefined;
  }

  /** No page listens: the kept connections go. */
  idle(): void {
    for (const a of this.apps.values()) this.closeClient(a);
  }

  private async alerts(): Promise<Pick<Snapshot, 'alerts' | 'alertsError' | 'prometheus'>> {
    const url = this.o.prometheus;
    if (!url) return {};
    try {
      const r = await fetch(`${url.replace(/\/$/, '')}/api/v1/alerts`, { signal: AbortSignal.timeout(1000) });
      if (!r.ok) return { prometheus: url, alertsError: `HTTP ${r.status}` };
      const body = (await r.json()) as { data: { alerts: { labels: Record<string, string>; annotations: Record<string, string>; state: string; activeAt?: string }[] } };
      const alerts = body.data.alerts.map((x) => ({
        name: x.labels['alertname'] ?? '',
        state: x.state,
        severity: x.labels['severity'] ?? '',
        ...(x.labels['unit'] ? { unit: x.labels['unit'] } : {}),
        ...(x.labels['application'] ? { application: x.labels['application'] } : {}),
        summary: x.annotations['summary'] ?? '',
        ...(x.activeAt ? { since: x.activeAt } : {}),
      }));
      return { prometheus: url, alerts };
    } catch (e) {
      return { prometheus: url, alertsError: e instanceof Error ? e.message : String(e) };
    }
  }
}
