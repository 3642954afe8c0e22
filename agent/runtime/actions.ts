import type { V1ConfigMap } from '#client-node';
import type { Logger } from 'pino';
import type { ActionContext } from './charm.js';
import { apiMessage, isConflict, isNotFound } from './kube.js';
import { LABELS, objects } from './names.js';
import type { Store } from './store.js';

/**
 * Actions live in the store as one ConfigMap each (`<app>-action-<id>`), labelled with the
 * unit that runs them. Ids come from a counter ConfigMap bumped by compare-and-swap, so they
 * are small increasing numbers like Juju's. status: pending -> running -> completed | failed.
 *
 * A sensitive action's results (charm.yaml `sensitive: true`, e.g. get-password) never go into
 * its ConfigMap: the unit writes them to Secret `<app>-action-<id>-results` and names it in the
 * ConfigMap's `results-secret`; `pgcharm run --wait` reads that Secret once, deletes it, and
 * prints the results. Secrets left behind by a caller that went away are deleted by the next
 * `pgcharm run` once RESULTS_TTL_MS old.
 */

/** How long sensitive results wait for their caller before any `pgcharm run` may delete them. */
export const RESULTS_TTL_MS = 10 * 60_000;

export type ActionStatus = 'pending' | 'running' | 'completed' | 'failed';

export interface ActionRecord {
  id: number;
  action: string;
  unit: string;
  params: Record<string, unknown>;
  status: ActionStatus;
  message?: string;
  results: Record<string, unknown>;
  log: { time: string; message: string }[];
  progress?: { message: string; fraction?: number };
  enqueued: string;
  started?: string;
  completed?: string;
  /** Sensitive action: the Secret its results were put in (read once, then deleted, by the caller). */
  resultsSecret?: string;
}

export const STATUS_LABEL = 'pgcharm.io/action-status';

export function decodeAction(cm: V1ConfigMap): ActionRecord {
  const d = cm.data ?? {};
  const json = <T>(k: string, dflt: T): T => {
    try {
      return d[k] ? (JSON.parse(d[k]) as T) : dflt;
    } catch {
      return dflt;
    }
  };
  return {
    id: Number(d['id']),
    action: d['action'] ?? '',
    unit: d['unit'] ?? '',
    params: json('params', {}),
    status: (d['status'] ?? 'pending') as ActionStatus,
    ...(d['message'] ? { message: d['message'] } : {}),
    results: json('results', {}),
    log: json('log', []),
    ...(d['progress'] ? { progress: json('progress', { message: '' }) } : {}),
    enqueued: d['enqueued'] ?? '',
    ...(d['started'] ? { started: d['started'] } : {}),
    ...(d['completed'] ? { completed: d['completed'] } : {}),
    ...(d['results-secret'] ? { resultsSecret: d['results-secret'] } : {}),
  };
}

/** What a write-only param (a password) shows once the unit has read it. */
export const REDACTED = '(redacted)';

/**
 * Queues an action for a unit (pod name `podName`, unit name `unit`); returns its id.
 * `writeOnly` names params (`writeOnly: true` in charm.yaml) that the unit blanks out in the
 * store as soon as it has taken the action: a password does not outlive its use there.
 */
export async function enqueueAction(
  store: Store,
  unit: string,
  podName: string,
  action: string,
  params: Record<string, unknown>,
  writeOnly: readonly string[] = [],
  sensitive = false,
): Promise<number> {
  const counter = objects.operations(store.app);
  await store.ensure(counter, store.labels('operations'), { next: '1' });
  let id = 0;
  await store.update(counter, (cm) => {
    id = Number(cm.data?.['next'] ?? '1');
    cm.data = { ...(cm.data ?? {}), next: String(id + 1) };
  });
  // Write-only params go to their own Secret, never into the action's ConfigMap (plain text in
  // the store and its journal); the ConfigMap shows them redacted.
  const hidden = Object.fromEntries(Object.entries(params).filter(([k]) => writeOnly.includes(k)));
  const paramsSecret = Object.keys(hidden).length ? objects.actionParams(store.app, id) : undefined;
  if (paramsSecret) {
    await store.kube.core.createNamespacedSecret({
      namespace: store.namespace,
      body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: paramsSecret, labels: store.labels('action-params') }, type: 'Opaque', data: { params: Buffer.from(JSON.stringify(hidden)).toString('base64') } },
    });
  }
  const shown = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, k in hidden ? REDACTED : v]));
  await store.kube.core.createNamespacedConfigMap({
    namespace: store.namespace,
    body: {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: objects.action(store.app, id), labels: store.labels('action', { [LABELS.unit]: podName, [STATUS_LABEL]: 'pending' }) },
      data: {
        id: String(id),
        action,
        unit,
        params: JSON.stringify(shown),
        ...(writeOnly.length ? { 'write-only': JSON.stringify(writeOnly) } : {}),
        ...(paramsSecret ? { 'params-secret': paramsSecret } : {}),
        ...(sensitive ? { sensitive: 'true' } : {}),
        status: 'pending',
        enqueued: new Date().toISOString(),
        log: '[]',
        results: '{}',
      },
    },
  });
  return id;
}

/** A running action on this unit: its context for the handler and its record in the store. */
export class ActionRun {
  private record: ActionRecord;
  private failure: string | undefined;
  private writes: Promise<unknown> = Promise.resolve();
  readonly context: ActionContext;

  private constructor(
    private readonly store: Store,
    private readonly name: string,
    cm: V1ConfigMap,
    private readonly log: Logger,
    private readonly sensitive: boolean,
  ) {
    this.record = decodeAction(cm);
    const self = this;
    this.context = {
      id: this.record.id,
      name: this.record.action,
      params: this.record.params,
      log(message: string) {
        self.record.log.push({ time: new Date().toISOString(), message });
        self.flush({ log: JSON.stringify(self.record.log) });
      },
      progress(message: string, fraction?: number) {
        self.flush({ progress: JSON.stringify(fraction === undefined ? { message } : { message, fraction }) });
      },
      setResults(results: Record<string, unknown>) {
        self.record.results = { ...self.record.results, ...results };
      },
      fail(message: string) {
        self.failure = message;
      },
    };
  }

  /** Takes a pending action (compare-and-swap pending -> running); undefined if it is not pending any more. */
  static async claim(store: Store, app: string, id: number, log: Logger, sensitiveActions: readonly string[] = []): Promise<ActionRun | undefined> {
    const name = objects.action(app, id);
    try {
      let params = '{}';
      const cm = await store.update(name, (c) => {
        if (c.data?.['status'] !== 'pending') return false;
        params = c.data['params'] ?? '{}';
        c.data = { ...c.data, status: 'running', started: new Date().toISOString(), params: redact(params, c.data['write-only']) };
        c.metadata!.labels = { ...(c.metadata?.labels ?? {}), [STATUS_LABEL]: 'running' };
      });
      if (cm.data?.['status'] !== 'running') return undefined;
      log.info({ action: cm.data['action'], id }, 'action started');
      const secretName = cm.data['params-secret'];
      if (secretName) params = JSON.stringify({ ...(JSON.parse(params) as Record<string, unknown>), ...(await takeParams(store, secretName)) });
      // The handler gets the params as given; the store keeps them with write-only ones blanked.
      // Sensitive if this unit's charm.yaml says so, or the caller's did.
      const sensitive = sensitiveActions.includes(cm.data['action'] ?? '') || cm.data['sensitive'] === 'true';
      return new ActionRun(store, name, { ...cm, data: { ...cm.data, params } }, log, sensitive);
    } catch (e) {
      if (isConflict(e)) return undefined;
      throw e;
    }
  }

  private flush(data: Record<string, string>): void {
    this.writes = this.writes.then(() => this.store.patch(this.name, { data }).catch((e: unknown) => this.log.warn({ err: String(e) }, 'could not record action progress')));
  }

  /** Stores the outcome: failed when the handler threw or called fail(), else completed. */
  async finish(error?: Error): Promise<'completed' | 'failed'> {
    await this.writes;
    let message = error ? `action failed: ${error.message}` : this.failure;
    let resultsSecret: string | null = null;
    if (this.sensitive && Object.keys(this.record.results).length) {
      try {
        resultsSecret = await this.storeResultsSecret();
      } catch (e) {
        message = `action failed: could not store its (sensitive) results: ${apiMessage(e)}`;
      }
    }
    const status: ActionStatus = message ? 'failed' : 'completed';
    await this.store.patch(this.name, {
      data: {
        status,
        message: message ?? null,
        results: this.sensitive ? '{}' : JSON.stringify(this.record.results),
        'results-secret': resultsSecret,
        log: JSON.stringify(this.record.log),
        completed: new Date().toISOString(),
      },
      labels: { [STATUS_LABEL]: status },
    });
    this.log.info({ action: this.record.action, id: this.record.id, status }, 'action finished');
    return status === 'failed' ? 'failed' : 'completed';
  }

  /** A sensitive action's results, in their own Secret (created, never updated: one per action). */
  private async storeResultsSecret(): Promise<string> {
    const name = objects.actionResults(this.store.app, this.record.id);
    await this.store.kube.core.createNamespacedSecret({
      namespace: this.store.namespace,
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'Opaque',
        metadata: { name, labels: this.store.labels('action-results', { [LABELS.unit]: this.record.unit.replace('/', '-') }) },
        data: { results: Buffer.from(JSON.stringify(this.record.results)).toString('base64') },
      },
    });
    return name;
  }
}

/**
 * The caller's side: the results of a sensitive action, read once. The Secret is deleted
 * whatever happens next; undefined when it is gone (another caller read it, or it expired).
 */
export async function takeResults(store: Store, rec: ActionRecord): Promise<Record<string, unknown> | undefined> {
  if (!rec.resultsSecret) return undefined;
  let s;
  try {
    s = await store.kube.core.readNamespacedSecret({ name: rec.resultsSecret, namespace: store.namespace });
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
  await store.kube.core.deleteNamespacedSecret({ name: rec.resultsSecret, namespace: store.namespace }).catch((e: unknown) => {
    if (!isNotFound(e)) throw e;
  });
  const raw = s.data?.['results'];
  return raw ? (JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) as Record<string, unknown>) : {};
}

/** Deletes results Secrets of sensitive actions whose caller never came for them (older than RESULTS_TTL_MS). */
export async function sweepResults(store: Store, now = Date.now()): Promise<number> {
  const list = await store.kube.core.listNamespacedSecret({ namespace: store.namespace, labelSelector: `${LABELS.app}=${store.app},${LABELS.kind}=action-results` });
  let n = 0;
  for (const s of list.items) {
    const born = s.metadata?.creationTimestamp ? new Date(s.metadata.creationTimestamp).getTime() : now;
    if (now - born < RESULTS_TTL_MS || !s.metadata?.name) continue;
    await store.kube.core.deleteNamespacedSecret({ name: s.metadata.name, namespace: store.namespace }).catch(() => undefined);
    n++;
  }
  return n;
}

/**
 * The write-only params, read once: the Secret is emptied as the unit takes them (the caller
 * deletes it when it sees the action finish).
 */
async function takeParams(store: Store, name: string): Promise<Record<string, unknown>> {
  const s = await store.kube.core.readNamespacedSecret({ name, namespace: store.namespace });
  const raw = s.data?.['params'];
  if (raw) {
    s.data = {};
    await store.kube.core.replaceNamespacedSecret({ name, namespace: store.namespace, body: s });
  }
  return raw ? (JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) as Record<string, unknown>) : {};
}

/** The params JSON with each write-only param replaced by REDACTED. */
function redact(params: string, writeOnly: string | undefined): string {
  if (!writeOnly) return params;
  try {
    const p = JSON.parse(params) as Record<string, unknown>;
    for (const k of JSON.parse(writeOnly) as string[]) if (k in p) p[k] = REDACTED;
    return JSON.stringify(p);
  } catch {
    return '{}'; // unreadable: keep nothing rather than something secret
  }
}
