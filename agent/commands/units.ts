import { mergePatch } from '../runtime/kube.js';
import { updateDeployment } from '../controller/deployment.js';
import { KILL } from '../controller/kubelet.js';
import { resolveUnit, UserError, type ModelContext } from './context.js';

/** `add-unit -n N`: the next unit numbers (never reused); returns the new unit names. */
export async function addUnits(ctx: ModelContext, n: number): Promise<string[]> {
  const added: string[] = [];
  await updateDeployment(ctx.store, (d) => {
    added.length = 0;
    for (let i = 0; i < n; i++) {
      added.push(`${ctx.app}/${d.next}`);
      d.units.push(d.next++);
    }
  });
  return added;
}

/** `remove-unit U`: the unit runs departed/stop/remove, then the kubelet deletes it and its data. */
export async function removeUnit(ctx: ModelContext, spec: string): Promise<string> {
  const u = await resolveUnit(ctx, spec);
  if (ctx.deployment.units.length === 1) throw new UserError(`${u.unit} is the last unit; \`pgcharm destroy\` removes the whole deployment`);
  await updateDeployment(ctx.store, (d) => {
    d.units = d.units.filter((i) => i !== u.index);
    d.held = d.held.filter((i) => i !== u.index);
  });
  return u.unit;
}

/**
 * `kill U`: SIGKILL to the unit's agent, sidecar and Postgres at once (a node failure); it is
 * rescheduled after a delay unless noRestart, which holds it down until `pgcharm kill --revive`.
 */
export async function killUnit(ctx: ModelContext, spec: string, noRestart: boolean): Promise<string> {
  const u = await resolveUnit(ctx, spec);
  if (noRestart) {
    await updateDeployment(ctx.store, (d) => {
      if (!d.held.includes(u.index)) d.held.push(u.index);
    });
  }
  try {
    await ctx.kube.core.patchNamespacedPod(
      { name: u.pod, namespace: ctx.kube.namespace, body: { metadata: { annotations: { [KILL.at]: new Date().toISOString(), [KILL.noRestart]: String(noRestart) } } } },
      mergePatch,
    );
  } catch (e) {
    if ((e as { code?: number }).code === 404 && !noRestart) throw new UserError(`${u.unit} is not running right now (it is being rescheduled)`);
    if ((e as { code?: number }).code !== 404) throw e;
  }
  return u.unit;
}

/** Brings back a unit killed with --no-restart. */
export async function reviveUnit(ctx: ModelContext, spec: string): Promise<string> {
  const u = await resolveUnit(ctx, spec);
  if (!ctx.deployment.held.includes(u.index)) throw new UserError(`${u.unit} is not held down (only units killed with --no-restart are)`);
  await updateDeployment(ctx.store, (d) => {
    d.held = d.held.filter((i) => i !== u.index);
  });
  return u.unit;
}
