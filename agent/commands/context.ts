import { existsSync } from 'node:fs';
import type { V1ConfigMap } from '#client-node';
import { connect, type Kube } from '../runtime/kube.js';
import { LABELS } from '../runtime/names.js';
import { checkAppName, UserError } from './user-error.js';
import { Store } from '../runtime/store.js';
import { decodeDeployment, type Deployment } from '../controller/deployment.js';
import { modelPaths, pidAlive, readControllerInfo, type ControllerInfo } from '../controller/model.js';

export { checkAppName, UserError } from './user-error.js';

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


/**
 * Which application a command acts on: `wanted` (--app) if the model has it; else the only
 * one. Several and no --app is an error listing them.
 */
export function pickApp(model: string, apps: readonly string[], wanted?: string): string {
  const list = [...apps].sort().join(', ');
  if (wanted !== undefined) {
    checkAppName(wanted);
    if (!apps.includes(wanted)) throw new UserError(`--app: model ${model} has no application ${wanted}${apps.length ? `: applications are ${list}` : ''}`);
    return wanted;
  }
  if (apps.length === 1) return apps[0]!;
  if (!apps.length) throw new UserError(`model ${model} has a controller but no application: run \`pgcharm deploy --model ${model}\``);
  throw new UserError(`model ${model} has several applications (${list}): pass --app`);
}

/** The deployment ConfigMaps of a model, by application. */
export async function deployments(kube: Kube): Promise<Map<string, V1ConfigMap>> {
  const list = await kube.core.listNamespacedConfigMap({ namespace: kube.namespace, labelSelector: `${LABELS.kind}=deployment` });
  const out = new Map<string, V1ConfigMap>();
  for (const cm of list.items) {
    const app = cm.metadata?.labels?.[LABELS.app];
    if (app) out.set(app, cm);
  }
  return out;
}

/** Opens a model and one of its applications (see pickApp). */
export async function openModel(model: string, app?: string): Promise<ModelContext> {
  const { controller, kube } = openController(model);
  const deps = await deployments(kube);
  const name = pickApp(model, [...deps.keys()], app);
  return appContext(model, controller, kube, name, deps.get(name)!);
}

function appContext(model: string, controller: ControllerInfo, kube: Kube, app: string, deployment: V1ConfigMap): ModelContext {
  return { model, controller, kube, app, store: new Store(kube, app), deployment: decodeDeployment(deployment) };
}

/** Every application of a model, sorted by name, from one list of the deployments. */
export async function openApps(model: string): Promise<ModelContext[]> {
  const { controller, kube } = openController(model);
  const deps = await deployments(kube);
  return [...deps.keys()].sort().map((name) => appContext(model, controller, kube, name, deps.get(name)!));
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
