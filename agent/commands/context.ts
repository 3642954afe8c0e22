import { existsSync } from 'node:fs';
import { connect, type Kube } from '../runtime/kube.js';
import { LABELS } from '../runtime/names.js';
import { Store } from '../runtime/store.js';
import { decodeDeployment, type Deployment } from '../controller/deployment.js';
import { modelPaths, pidAlive, readControllerInfo, type ControllerInfo } from '../controller/model.js';

/** A user-facing failure: printed as `error: <message>`, exit code 1, no stack. */
export class UserError extends Error {
  override name = 'UserError';
}

export interface ModelContext {
  model: string;
  controller: ControllerInfo;
  kube: Kube;
  app: string;
  store: Store;
  deployment: Deployment;
}

/** Opens a model whose controller is running, or says why it cannot. */
export function openController(model: string): { controller: ControllerInfo; kube: Kube } {
  const paths = modelPaths(model);
  const controller = readControllerInfo(model);
  if (!existsSync(paths.root) || !controller) {
    throw new UserError(`no deployment in model ${model}: run \`pgcharm deploy\` first (or pass --model / set PGCHARM_MODEL)`);
  }
  if (!pidAlive(controller.pid)) {
    throw new UserError(`the controller of model ${model} is not running (pid ${controller.pid} is gone): \`pgcharm deploy --model ${model}\` starts it again`);
  }
  return { controller, kube: connect({ kubeconfig: paths.kubeconfig, namespace: controller.namespace }) };
}

export async function openModel(model: string): Promise<ModelContext> {
  const { controller, kube } = openController(model);
  const list = await kube.core.listNamespacedConfigMap({ namespace: kube.namespace, labelSelector: `${LABELS.kind}=deployment` });
  const cm = list.items[0];
  const app = cm?.metadata?.labels?.[LABELS.app];
  if (!cm || !app) throw new UserError(`model ${model} has a controller but no application: run \`pgcharm deploy --model ${model}\``);
  return { model, controller, kube, app, store: new Store(kube, app), deployment: decodeDeployment(cm) };
}

/** An application on a Kubernetes cluster (no local model): what `pgcharm config --kubeconfig` needs. */
export function clusterApp(kubeconfig: string, namespace: string | undefined, app: string): Pick<ModelContext, 'kube' | 'store' | 'app'> {
  if (!existsSync(kubeconfig)) throw new UserError(`--kubeconfig: ${kubeconfig} does not exist`);
  const kube = connect({ kubeconfig, ...(namespace ? { namespace } : {}) });
  return { kube, app, store: new Store(kube, app) };
}

/** Resolves `postgresql/1`, `1` or `leader` to a unit of the deployment. */
export async function resolveUnit(ctx: ModelContext, spec: string): Promise<{ unit: string; index: number; pod: string }> {
  let index: number;
  if (spec === 'leader') {
    const lease = await ctx.kube.coordination.readNamespacedLease({ name: `${ctx.app}-leader`, namespace: ctx.kube.namespace }).catch(() => undefined);
    const holder = lease?.spec?.holderIdentity;
    if (!holder) throw new UserError(`application ${ctx.app} has no leader at the moment`);
    index = Number(holder.split('/')[1]);
  } else {
    const m = /^(?:([a-z][a-z0-9-]*)\/)?(\d+)$/.exec(spec);
    if (!m || (m[1] && m[1] !== ctx.app)) throw new UserError(`unit ${JSON.stringify(spec)} not found: units are ${ctx.deployment.units.map((i) => `${ctx.app}/${i}`).join(', ') || 'none'}`);
    index = Number(m[2]);
  }
  if (!ctx.deployment.units.includes(index)) {
    throw new UserError(`unit ${ctx.app}/${index} not found: units are ${ctx.deployment.units.map((i) => `${ctx.app}/${i}`).join(', ') || 'none'}`);
  }
  return { unit: `${ctx.app}/${index}`, index, pod: `${ctx.app}-${index}` };
}
