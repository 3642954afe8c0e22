import type { V1ConfigMap, V1Lease, V1Pod } from '#client-node';
import { stringify } from '#yaml';
import { formatBytes, memberPositions, parseAddress, type MemberPosition } from '../charm/postgresql/positions.js';
import { slotName } from '../charm/postgresql/render.js';
import { readPasswords } from '../charm/postgresql/secrets.js';
import { describeSlot, slotUsage, type SlotUsage } from '../charm/postgresql/slots.js';
import { ANNOTATIONS, LABELS, objects } from '../runtime/names.js';
import type { ModelContext } from './context.js';

export interface UnitStatus {
  workload: { status: string; message: string };
  agent: { status: string; message: string };
  leader: boolean;
  /** host:port of the unit's workload (its Postgres), else the pod IP. */
  address: string;
  /** host:port of the unit agent's API (the pod's port named `api`); '' when the pod has none. */
  api: string;
  role: string;
  /** Live from the unit's Postgres when it answers, else the unit's last report; null when neither. */
  timeline: number | null;
  /** Bytes of WAL not yet replayed behind the primary (0 on the primary); null when unknown. */
  lag: number | null;
  /** What the unit's Postgres answered just now: primary | replica | unreachable; '' without a password or address. */
  postgres: string;
  pod: { phase: string; restarts: number };
  'applied-config': string;
  /**
   * This unit's replication slot on the primary, live (absent on the primary itself and when
   * the primary does not answer): the WAL it holds back against max_slot_wal_keep_size.
   */
  slot?: UnitSlot;
}

export interface UnitSlot {
  'retained-bytes': number | null;
  'bound-bytes': number | null;
  /** pg_replication_slots.wal_status: reserved, extended, unreserved (about to go), lost. */
  'wal-status': string | null;
  /** Bytes that can still be written before the slot is invalidated (safe_wal_size). */
  'safe-bytes': number | null;
  active: boolean;
  /** What the unit's line says about it ('' when nothing is worth saying). */
  summary: string;
}

export interface ModelStatus {
  model: { name: string; directory: string; namespace: string; controller: string };
  application: { name: string; status: string; message: string; scale: number; leader: string; config: string; 'config-rejected'?: string };
  units: Record<string, UnitStatus>;
  /** The relations this application is in (its peer relation included), as `juju status --relations`. */
  integrations?: IntegrationRow[];
}

/** One row of the Integrations section. */
export interface IntegrationRow {
  provider: string;
  requirer: string;
  interface: string;
  type: 'regular' | 'peer';
  /** The relation id (regular relations). */
  id?: number;
  message: string;
}

/** Every application of a model: `pgcharm status` without --app when there are several. */
export interface ModelOverview {
  model: ModelStatus['model'];
  applications: Record<string, { application: ModelStatus['application']; units: Record<string, UnitStatus> }>;
  integrations: IntegrationRow[];
}

/**
 * The Integrations rows of these applications: each one's peer relation (from its stored
 * charm metadata) and the relations between applications that involve any of them.
 */
export async function gatherIntegrations(kube: ModelContext['kube'], apps: readonly string[]): Promise<IntegrationRow[]> {
  const [{ listRelations }, { readConfig }, { Store }] = await Promise.all([import('./integrate.js'), import('../controller/config-store.js'), import('../runtime/store.js')]);
  const [relations, metas] = await Promise.all([listRelations(kube), Promise.all(apps.map((a) => readConfig(new Store(kube, a)).catch(() => undefined)))]);
  const rows: IntegrationRow[] = [];
  for (const r of relations) {
    if (!apps.includes(r.provider.app) && !apps.includes(r.requirer.app)) continue;
    rows.push({ provider: `${r.provider.app}:${r.provider.endpoint}`, requirer: `${r.requirer.app}:${r.requirer.endpoint}`, interface: r.interface, type: 'regular', id: r.id, message: r.dying ? 'removing' : '' });
  }
  apps.forEach((a, i) => {
    for (const p of Object.values(metas[i]?.meta.peers ?? {})) rows.push({ provider: `${a}:${p.name}`, requirer: `${a}:${p.name}`, interface: p.interface, type: 'peer', message: '' });
  });
  return rows;
}

/** The status of every application of the model (contexts from openApps), and their integrations. */
export async function gatherOverview(apps: readonly ModelContext[]): Promise<ModelOverview> {
  const first = apps[0]!;
  const [all, integrations] = await Promise.all([
    Promise.all(apps.map((ctx) => gatherStatus(ctx, { integrations: false }))),
    gatherIntegrations(first.kube, apps.map((ctx) => ctx.app)),
  ]);
  const out: ModelOverview = { model: all[0]!.model, applications: {}, integrations };
  for (const s of all) out.applications[s.application.name] = { application: s.application, units: s.units };
  return out;
}

/**
 * Reads everything `pgcharm status` shows from the store, in one pass; with `live` (the
 * default) also each unit's timeline and lag from its Postgres, which a poll that only waits
 * for statuses does not need.
 */
export async function gatherStatus(ctx: ModelContext, o: { live?: boolean; integrations?: boolean } = {}): Promise<ModelStatus> {
  const ns = ctx.kube.namespace;
  const [cms, pods, lease] = await Promise.all([
    ctx.store.list(`${LABELS.app}=${ctx.app}`),
    ctx.kube.core.listNamespacedPod({ namespace: ns, labelSelector: `${LABELS.app}=${ctx.app}` }).then((l) => l.items),
    ctx.kube.coordination.readNamespacedLease({ name: objects.leaderLease(ctx.app), namespace: ns }).catch(() => undefined),
  ]);
  const s = statusFrom(ctx, { cms, pods, leaderLease: lease });
  await Promise.all([
    o.live ?? true ? addLivePositions(ctx, s.units) : undefined,
    o.integrations ?? true ? gatherIntegrations(ctx.kube, [ctx.app]).then((rows) => void (s.integrations = rows)) : undefined,
  ]);
  return s;
}

/** What the status is made of: the application's ConfigMaps and pods, and its leader Lease. */
export interface StatusObjects {
  cms: readonly V1ConfigMap[];
  pods: readonly V1Pod[];
  leaderLease: V1Lease | undefined;
}

/** The status as the store's objects say it (no live positions): gatherStatus, or a watch's copies (deploy). */
export function statusFrom(ctx: ModelContext, { cms, pods, leaderLease: lease }: StatusObjects): ModelStatus {
  const ns = ctx.kube.namespace;
  const byName = new Map(cms.map((c) => [c.metadata?.name ?? '', c]));
  const leader = lease?.spec?.holderIdentity ?? '';
  const appBag = byName.get(objects.appBag(ctx.app));
  const config = byName.get(objects.config(ctx.app));
  const configHash = config?.data?.['hash'] ?? '';
  const units: Record<string, UnitStatus> = {};
  for (const index of ctx.deployment.units) {
    const unit = `${ctx.app}/${index}`;
    const bag: V1ConfigMap | undefined = byName.get(objects.unitBag({ app: ctx.app, index }));
    const pod: V1Pod | undefined = pods.find((p) => p.metadata?.name === `${ctx.app}-${index}`);
    const ann = bag?.metadata?.annotations ?? {};
    const held = ctx.deployment.held.includes(index);
    const applied = ann[ANNOTATIONS.appliedConfigHash] ?? '';
    units[unit] = {
      workload: { status: pod ? (ann[ANNOTATIONS.workloadStatus] ?? 'waiting') : 'unknown', message: pod ? (ann[ANNOTATIONS.workloadMessage] ?? '') : held ? 'killed (--no-restart)' : 'unit is being rescheduled' },
      agent: { status: pod ? (ann[ANNOTATIONS.agentStatus] ?? 'allocating') : 'lost', message: ann[ANNOTATIONS.agentMessage] ?? '' },
      leader: leader === unit,
      address: bag?.data?.['address'] ?? pod?.status?.podIP ?? '',
      api: apiAddress(pod),
      role: pod ? (bag?.data?.['role'] ?? '') : '',
      timeline: bag?.data?.['timeline'] ? Number(bag.data['timeline']) : null,
      lag: null,
      postgres: '',
      pod: { phase: pod?.status?.phase ?? 'Missing', restarts: (pod?.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0) },
      'applied-config': !applied ? 'none' : applied === configHash ? 'current' : `stale (${applied.slice(0, 12)})`,
    };
  }
  const appAnn = appBag?.metadata?.annotations ?? {};
  const rejected = config?.metadata?.annotations?.['pgcharm.io/rejected'];
  return {
    model: { name: ns, directory: ctx.model, namespace: ns, controller: ctx.controller.url },
    application: {
      name: ctx.app,
      status: appAnn[ANNOTATIONS.workloadStatus] ?? 'waiting',
      message: appAnn[ANNOTATIONS.workloadMessage] ?? '',
      scale: ctx.deployment.units.length,
      leader,
      config: configHash.slice(0, 12),
      ...(rejected ? { 'config-rejected': rejected } : {}),
    },
    units,
  };
}

/** The pod IP and its port named `api` (where the unit's agent serves its API). */
function apiAddress(pod: V1Pod | undefined): string {
  const port = pod?.spec?.containers.flatMap((c) => c.ports ?? []).find((p) => p.name === 'api')?.containerPort;
  return pod?.status?.podIP && port ? `${pod.status.podIP}:${port}` : '';
}

/** Timeline and lag as each unit's Postgres reports them now (1 s connect timeout per unit, all at once). */
async function addLivePositions(ctx: ModelContext, units: Record<string, UnitStatus>): Promise<void> {
  const pw = await readPasswords(ctx.kube, ctx.app).catch(() => undefined);
  if (!pw) return;
  const targets: Record<string, { host: string; port: number }> = {};
  for (const [u, s] of Object.entries(units)) {
    const t = parseAddress(s.address);
    if (t && s.role) targets[u] = t;
  }
  const live: Record<string, MemberPosition> = await memberPositions(targets, pw.operator);
  for (const [u, p] of Object.entries(live)) {
    const s = units[u]!;
    s.postgres = p.state;
    if (p.timeline !== null) s.timeline = p.timeline;
    s.lag = p.lagBytes;
  }
  // Slots live on the primary: each unit's (a unit held down included) as it stands now.
  const primaries = Object.keys(live).filter((u) => live[u]!.state === 'primary');
  if (primaries.length !== 1) return;
  const slots: Record<string, SlotUsage> = await slotUsage(targets[primaries[0]!]!, pw.operator).catch(() => ({}));
  for (const [u, s] of Object.entries(units)) {
    const x = slots[slotName(u)];
    if (!x || u === primaries[0]) continue;
    s.slot = { 'retained-bytes': x.retained, 'bound-bytes': x.bound, 'wal-status': x.walStatus, 'safe-bytes': x.safe, active: x.active, summary: describeSlot(x, formatBytes) };
  }
}

export function renderStatus(s: ModelStatus | ModelOverview, format: 'tabular' | 'yaml' | 'json'): string {
  if (format === 'json') return JSON.stringify(s, null, 2) + '\n';
  if (format === 'yaml') return stringify(s);
  const apps = 'applications' in s ? Object.values(s.applications) : [{ application: s.application, units: s.units }];
  const out: string[] = [];
  out.push(table([['Model', 'Namespace', 'Controller'], [s.model.name, s.model.namespace, s.model.controller]]));
  out.push(table([['App', 'Status', 'Scale', 'Config', 'Message'], ...apps.map(({ application: a }) => [a.name, a.status, String(a.scale), a.config, a.message])]));
  const rows = [['Unit', 'Workload', 'Agent', 'Address', 'Role', 'TL', 'Lag', 'Restarts', 'Config', 'Message']];
  for (const { units } of apps) {
    for (const [name, u] of Object.entries(units)) {
      const msg = [u.agent.status === 'error' ? u.agent.message : u.workload.message, u.slot?.summary ?? ''].filter(Boolean).join('; ');
      rows.push([name + (u.leader ? '*' : ''), u.workload.status, u.agent.status, u.address, u.role, u.timeline === null ? '' : String(u.timeline), formatBytes(u.lag), String(u.pod.restarts), u['applied-config'], msg]);
    }
  }
  out.push(table(rows));
  const integrations = s.integrations ?? [];
  if (integrations.length) {
    out.push(table([['Integration provider', 'Requirer', 'Interface', 'Type', 'Id', 'Message'], ...integrations.map((r) => [r.provider, r.requirer, r.interface, r.type, r.id === undefined ? '' : String(r.id), r.message])]));
  }
  for (const { application: a } of apps) {
    if (a['config-rejected']) out.push(`${a.name}: charm.yaml edit refused, still running the previous config:\n  ${a['config-rejected'].replace(/\n/g, '\n  ')}\n`);
  }
  return out.join('\n');
}

/** Left-aligned columns two spaces apart, like juju status. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}
