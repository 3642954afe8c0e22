import { spawn } from 'node:child_process';
import https from 'node:https';
import { KubeConfig } from '#client-node';
import { existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCharmYaml, parseConfigArgs, validateSettings } from '../charm-meta/index.js';
import { initConfig } from '../controller/config-store.js';
import { deploymentName, encodeDeployment } from '../controller/deployment.js';
import { modelPaths, pidAlive, readControllerInfo } from '../controller/model.js';
import { AGENT_NODE_FLAGS } from '../node-flags.js';
import { LABELS } from '../runtime/names.js';
import { Store } from '../runtime/store.js';
import { openController, openModel, UserError, type ModelContext } from './context.js';
import { gatherStatus, type ModelStatus } from './status.js';

const here = dirname(fileURLToPath(import.meta.url)); // dist/agent/commands

/** Starts `pgcharm controller` for the model in the background unless one runs; returns once it answers. */
export async function ensureController(model: string, timeoutMs = 20_000): Promise<void> {
  const paths = modelPaths(model);
  const info = readControllerInfo(model);
  if (info && pidAlive(info.pid) && (await healthy(model, info.url))) return;
  mkdirSync(paths.logs, { recursive: true });
  const out = openSync(paths.controllerLog, 'a');
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, join(here, '..', 'cli.js'), 'controller', '--model', model], { detached: true, stdio: ['ignore', out, out] });
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const now = readControllerInfo(model);
    if (now && now.pid === child.pid && (await healthy(model, now.url))) return;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const tail = existsSync(paths.controllerLog) ? readFileSync(paths.controllerLog, 'utf8').split('\n').slice(-15).join('\n') : '';
  throw new UserError(`the controller for ${model} did not start:\n${tail}`);
}

/** GET /readyz with the model's kubeconfig (the controller's self-signed CA and token). */
async function healthy(model: string, url: string): Promise<boolean> {
  const kubeconfig = modelPaths(model).kubeconfig;
  if (!existsSync(kubeconfig)) return false;
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    if (kc.getCurrentCluster()?.server !== url) return false; // written by an older controller
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    return await new Promise<boolean>((resolve) => {
      const req = https.get(`${url}/readyz`, { ...opts, timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy());
    });
  } catch {
    return false;
  }
}

export interface DeployOptions {
  model: string;
  units: number;
  charm: string;
  charmModule: string;
  timeoutMs: number;
  /** `key=value` config settings (from --config and --config-file), checked like `pgcharm config`. */
  config?: readonly string[];
  /** Progress lines for the terminal. */
  say: (line: string) => void;
}

/** `pgcharm deploy`: controller, config, units; returns the status once every unit settled. */
export async function deploy(o: DeployOptions): Promise<ModelStatus> {
  const charmPath = resolve(o.charm);
  const meta = await loadCharmYaml(charmPath); // refuses a broken charm.yaml before anything starts
  const settings = parseConfigArgs(meta, o.config ?? []).set; // bad settings: refused before anything starts
  const effective = validateSettings(meta, settings);
  if (!existsSync(o.charmModule)) throw new UserError(`charm code ${o.charmModule} not found: run \`npm run build\` first`);
  await ensureController(o.model);
  const { kube } = openController(o.model);
  const existing = await kube.core.listNamespacedConfigMap({ namespace: kube.namespace, labelSelector: `${LABELS.kind}=deployment` });
  const other = existing.items[0]?.metadata?.labels?.[LABELS.app];
  if (other && other !== meta.name) {
    throw new UserError(`model ${o.model} already has application ${other} deployed: \`pgcharm status\` shows it, \`pgcharm destroy\` removes it, or deploy into another --model`);
  }
  if (other && o.config?.length) {
    throw new UserError(`${other} is already deployed in model ${o.model}: change its config with \`pgcharm config\` (deploy --config applies to a new deployment only)`);
  }
  if (other) {
    // Deploying again (npm start twice, or after a reboot): the controller is up again, so are the units.
    o.say(`${other} is already deployed in model ${o.model}; waiting for its units to settle (\`pgcharm destroy\` starts over)`);
    return waitSettled(await openModel(o.model), o.timeoutMs);
  }
  const store = new Store(kube, meta.name);
  await initConfig(store, meta, { settings, effective }, readFileSync(charmPath, 'utf8'));
  const units = Array.from({ length: o.units }, (_, i) => i);
  await store.ensure(deploymentName(meta.name), store.labels('deployment'), encodeDeployment({ units, held: [], next: o.units, charm: charmPath, charmModule: resolve(o.charmModule), keepData: false }));
  o.say(`deployed ${meta.name} with ${o.units} unit${o.units === 1 ? '' : 's'} in model ${o.model}; waiting for the units to settle`);
  const ctx = await openModel(o.model);
  return waitSettled(ctx, o.timeoutMs);
}

/** Every unit has run its start hook, is idle, and the application has a leader. */
export function settled(s: ModelStatus): boolean {
  const units = Object.values(s.units);
  return (
    units.length > 0 &&
    Boolean(s.application.leader) &&
    units.every((u) => u.agent.status === 'idle' && u['applied-config'] === 'current' && ['active', 'blocked'].includes(u.workload.status))
  );
}

export async function waitSettled(ctx: ModelContext, timeoutMs: number): Promise<ModelStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Polled without the live positions (connections to every Postgres, while they bootstrap);
    // the status returned, which deploy prints, has them.
    const s = await gatherStatus(ctx, { live: false });
    if (settled(s)) return gatherStatus(ctx);
    const failed = Object.entries(s.units).find(([, u]) => u.agent.status === 'error');
    if (failed) throw new UserError(`unit ${failed[0]} is in error: ${failed[1].agent.message} (\`pgcharm debug-log\` shows why)`);
    if (Date.now() > deadline) throw new UserError(`units did not settle within ${Math.round(timeoutMs / 1000)} s; \`pgcharm status\` and \`pgcharm debug-log\` show where they are`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
