import { stringify } from '#yaml';
import { decodeAction, enqueueAction, sweepResults, takeResults, type ActionRecord } from '../runtime/actions.js';
import { objects } from '../runtime/names.js';
import type { ModelContext } from './context.js';
import { resolveUnit, UserError } from './context.js';

/** What `pgcharm run` prints (YAML), keyed by unit like `juju run --format yaml`. */
export function actionYaml(a: ActionRecord): string {
  const body: Record<string, unknown> = {
    id: a.id,
    action: a.action,
    status: a.status,
  };
  if (a.message) body['message'] = a.message;
  if (Object.keys(a.params).length) body['params'] = a.params;
  if (a.log.length) body['log'] = a.log.map((l) => `${l.time} ${l.message}`);
  if (a.progress) body['progress'] = a.progress;
  if (Object.keys(a.results).length || a.status === 'completed') body['results'] = a.results;
  if (a.resultsSecret && !Object.keys(a.results).length) body['results'] = '(sensitive: delivered once, to the caller that waited for them, and not kept)';
  body['timing'] = { enqueued: a.enqueued, ...(a.started ? { started: a.started } : {}), ...(a.completed ? { completed: a.completed } : {}) };
  return stringify({ [a.unit]: body });
}

export interface RunOptions {
  wait: boolean;
  timeoutMs: number;
  /** Params charm.yaml marks `writeOnly: true`: blanked in the store once the unit took the action. */
  writeOnly?: readonly string[];
  /** charm.yaml marks the action `sensitive: true`: its results are read once, here, and not kept. */
  sensitive?: boolean;
  /** Called with each new log line and progress update while waiting. */
  onProgress?: (line: string) => void;
}

/** Queues the (already validated) action on a unit; with wait, follows it to the end. */
export async function runAction(ctx: ModelContext, unitSpec: string, action: string, params: Record<string, unknown>, o: RunOptions): Promise<ActionRecord> {
  if (o.sensitive && !o.wait) {
    throw new UserError(`${action} is sensitive: its results are delivered once, to a caller waiting for them, and not kept: add --wait`);
  }
  const target = await resolveUnit(ctx, unitSpec);
  const id = await enqueueAction(ctx.store, target.unit, target.pod, action, params, o.writeOnly ?? [], o.sensitive ?? false);
  const name = objects.action(ctx.app, id);
  let rec = decodeAction((await ctx.store.get(name))!);
  if (!o.wait) return rec;
  const deadline = Date.now() + o.timeoutMs;
  let shown = 0;
  let progress = '';
  for (;;) {
    const cm = await ctx.store.get(name);
    if (!cm) throw new Error(`action ${id} disappeared from the store`);
    rec = decodeAction(cm);
    for (; shown < rec.log.length; shown++) o.onProgress?.(`${rec.log[shown]!.time} ${rec.log[shown]!.message}`);
    const p = rec.progress ? `progress: ${rec.progress.message}${rec.progress.fraction !== undefined ? ` (${Math.round(rec.progress.fraction * 100)}%)` : ''}` : '';
    if (p && p !== progress) o.onProgress?.((progress = p));
    if (rec.status === 'completed' || rec.status === 'failed') {
      // The write-only params' Secret, emptied by the unit when it took them.
      const paramsSecret = cm.data?.['params-secret'];
      if (paramsSecret) await ctx.kube.core.deleteNamespacedSecret({ name: paramsSecret, namespace: ctx.kube.namespace }).catch(() => undefined);
      if (rec.resultsSecret) {
        const results = await takeResults(ctx.store, rec);
        if (results) rec = { ...rec, results };
        await sweepResults(ctx.store).catch(() => undefined); // left by callers that went away
      }
      return rec;
    }
    if (Date.now() > deadline) {
      throw new Error(`action ${id} on ${target.unit} did not finish within ${Math.round(o.timeoutMs / 1000)} s (status ${rec.status}); it may still complete`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
