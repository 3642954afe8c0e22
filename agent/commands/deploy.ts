import { spawn } from 'node:child_process';
import https from 'node:https';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCharmYaml, parseConfigArgs, prepareAction, validateSettings, type PreparedAction } from '../charm-meta/index.js';
import { modelPaths, pidAlive, readControllerInfo } from '../controller/model.js';
import { rotateIfOver, rotationFrom, type Rotation } from '../../sidecar/logs/rotate.js';
import { AGENT_NODE_FLAGS } from '../node-flags.js';
import type { V1ConfigMap, V1Lease, V1Pod } from '#client-node';
import { LABELS, objects } from '../runtime/names.js';
import type { ModelContext } from './context.js';
import type { ModelStatus } from './status.js';
import { checkAppName, UserError } from './user-error.js';

const here = dirname(fileURLToPath(import.meta.url)); // dist/agent/commands

/** Starts `pgcharm controller` for the model in the background unless one runs; returns once it answers. */
export async function ensureController(model: string, timeoutMs = 20_000): Promise<void> {
  const paths = modelPaths(model);
  const info = readControllerInfo(model);
  if (info && pidAlive(info.pid) && (await healthy(model, info.url))) return;
  mkdirSync(paths.logs, { recursive: true });
  // Its log rotates itself (caps from PGCHARM_LOG_MAX_SIZE/FILES, which it and its units inherit);
  // stdout and stderr keep only what bypasses the log (a crash trace), bounded too.
  const limits = logLimits();
  rotateIfOver(paths.controllerStderr, limits);
  const out = openSync(paths.controllerStderr, 'a');
  const args = ['controller', '--model', model, '--log-file', paths.controllerLog, '--log-max-size', String(limits.maxBytes), '--log-max-files', String(limits.files)];
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, join(here, '..', 'cli.js'), ...args], { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const now = readControllerInfo(model);
    if (now && now.pid === child.pid && (await healthy(model, now.url))) return;
    if (child.exitCode !== null) break;
    // Short: the controller's start-up is on the path of every deploy; a look at controller.json is cheap.
    await new Promise((r) => setTimeout(r, 20));
  }
  const last = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').slice(-15).join('\n') : '');
  const tail = [last(paths.controllerLog), last(paths.controllerStderr)].filter(Boolean).join('\n');
  throw new UserError(`the controller for ${model} did not start:\n${tail}`);
}

/** The log caps from the environment; a bad value is the user's to fix. */
function logLimits(): Rotation {
  try {
    return rotationFrom({});
  } catch (e) {
    throw new UserError((e as Error).message);
  }
}

/** GET /readyz with the model's kubeconfig (the controller's self-signed CA and token). */
async function healthy(model: string, url: string): Promise<boolean> {
  const kubeconfig = modelPaths(model).kubeconfig;
  if (!existsSync(kubeconfig)) return false;
  try {
    // Loaded here, not at the top: a new controller starts meanwhile (deploy's first call).
    const { KubeConfig } = await import('#client-node');
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
  /** Application name (default: charm.yaml's name); several applications can share a model. */
  app?: string;
  /** `key=value` config settings (from --config and --config-file), checked like `pgcharm config`. */
  config?: readonly string[];
  /** Actions run on the leader as soon as there is one, while the units settle (`key=value` params, checked before anything starts). */
  leaderActions?: readonly { action: string; params: readonly string[] }[];
  /** Progress lines for the terminal. */
  say: (line: string) => void;
}

/**
 * `deploy --restore-from REPO [--restore-to TARGET]` as config settings: the repository
 * (a path, or s3://bucket/prefix with the endpoint in --config) and bootstrap-from-backup.
 * Refuses a setting given both ways.
 */
export function restoreSettings(from: string, to: string | undefined, config: readonly string[]): string[] {
  const given = new Set(config.map((kv) => kv.slice(0, kv.indexOf('=') >>> 0)));
  const s3 = /^s3:\/\/([^/]+)(\/.*)?$/.exec(from);
  if (from.startsWith('s3:') && !s3) throw new UserError(`--restore-from ${JSON.stringify(from)}: an S3 repository is s3://bucket/prefix`);
  if (s3 && !given.has('s3-endpoint')) throw new UserError(`--restore-from ${from}: give the S3 endpoint too (--config s3-endpoint=host[:port], and s3-tls-ca-chain, s3-region, s3-uri-style as the repository needs)`);
  if (!s3 && !from.startsWith('/')) throw new UserError(`--restore-from ${JSON.stringify(from)}: an absolute path or s3://bucket/prefix`);
  if (!s3 && !existsSync(from)) throw new UserError(`--restore-from ${from}: no such directory`);
  const out = s3 ? [`s3-bucket=${s3[1]}`, `s3-path=${s3[2] && s3[2] !== '/' ? s3[2].replace(/\/+$/, '') : '/'}`] : [`backup-repo-path=${from.replace(/\/+$/, '')}`];
  out.push(`bootstrap-from-backup=${to ?? 'latest'}`);
  for (const kv of out) {
    const k = kv.slice(0, kv.indexOf('='));
    if (given.has(k)) throw new UserError(`--restore-from sets ${k}: do not give it in --config too`);
  }
  return out;
}

/** `pgcharm deploy`: controller, config, units; returns the status once every unit settled. */
export async function deploy(o: DeployOptions): Promise<ModelStatus> {
  const charmPath = resolve(o.charm);
  const meta = await loadCharmYaml(charmPath); // refuses a broken charm.yaml before anything starts
  const settings = parseConfigArgs(meta, o.config ?? []).set; // bad settings: refused before anything starts
  const effective = validateSettings(meta, settings);
  const actions = (o.leaderActions ?? []).map((a) => ({ ...a, prepared: prepareAction(meta, a.action, a.params) })); // and bad params
  if (!existsSync(o.charmModule)) throw new UserError(`charm code ${o.charmModule} not found: run \`npm run build\` first`);
  const app = o.app === undefined ? checkAppName(meta.name, `${charmPath}: name (pass --app)`) : checkAppName(o.app);
  await ensureController(o.model);
  // The Kubernetes client and what uses it load while the controller starts (ensureController).
  const [{ initConfig }, { deploymentName, encodeDeployment }, { Store }, { deployments, openController, openModel }] = await Promise.all([
    import('../controller/config-store.js'),
    import('../controller/deployment.js'),
    import('../runtime/store.js'),
    import('./context.js'),
  ]);
  const { kube } = openController(o.model);
  const existing = (await deployments(kube)).has(app);
  if (existing && o.config?.length) {
    throw new UserError(`${app} is already deployed in model ${o.model}: change its config with \`pgcharm config\` (deploy --config applies to a new deployment only)`);
  }
  if (existing) {
    // Deploying again (npm start twice, or after a reboot): the controller is up again, so are the units.
    o.say(`${app} is already deployed in model ${o.model}; waiting for its units to settle (\`pgcharm destroy\` starts over)`);
    return waitSettled(await openModel(o.model, app), o.timeoutMs);
  }
  // Objects are named after the application, so another one in the same model shares nothing with it.
  const store = new Store(kube, app);
  await initConfig(store, meta, { settings, effective }, readFileSync(charmPath, 'utf8'));
  const units = Array.from({ length: o.units }, (_, i) => i);
  const container = Object.keys(meta.containers)[0];
  await store.ensure(deploymentName(app), store.labels('deployment'), encodeDeployment({ units, held: [], next: o.units, charm: charmPath, charmModule: resolve(o.charmModule), keepData: false, ...(container ? { container } : {}) }));
  o.say(`deployed ${app} with ${o.units} unit${o.units === 1 ? '' : 's'} in model ${o.model}; waiting for the units to settle`);
  const ctx = await openModel(o.model, app);
  const deadline = Date.now() + o.timeoutMs;
  const ran = Promise.all(actions.map((a) => onLeader(ctx, a.action, a.prepared, deadline, o.say)));
  return (await Promise.all([waitSettled(ctx, o.timeoutMs), ran]))[0];
}

/** Runs a prepared action on the leader once one is elected; an action that fails fails the deploy. */
async function onLeader(ctx: ModelContext, action: string, prepared: PreparedAction, deadline: number, say: (line: string) => void): Promise<void> {
  const { runAction } = await import('./run.js');
  for (;;) {
    const lease = await ctx.kube.coordination.readNamespacedLease({ name: objects.leaderLease(ctx.app), namespace: ctx.kube.namespace }).catch(() => undefined);
    if (lease?.spec?.holderIdentity) break;
    if (Date.now() > deadline) throw new UserError(`${ctx.app} elected no leader to run ${action} on`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const writeOnly = Object.entries(prepared.action.params).filter(([, p]) => p['writeOnly'] === true).map(([k]) => k);
  const rec = await runAction(ctx, 'leader', action, prepared.params, { wait: true, timeoutMs: Math.max(1000, deadline - Date.now()), writeOnly, sensitive: prepared.action.sensitive });
  if (rec.status === 'failed') throw new UserError(`${action} on ${rec.unit} failed: ${rec.message ?? 'no reason given'}`);
  say(`${action} done on ${rec.unit}`);
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

/** How long the units must stay settled before deploy returns. */
const SETTLED_QUIET_MS = 300;
/** How long a unit may stay in error (retrying its hook) before deploy gives up on it: past its first retry. */
const ERROR_GRACE_MS = 12_000;

export async function waitSettled(ctx: ModelContext, timeoutMs: number): Promise<ModelStatus> {
  const [{ gatherStatus, statusFrom }, { watchPath }, { default: pino }] = await Promise.all([import('./status.js'), import('../runtime/store.js'), import('pino')]);
  // Watched, not polled: a bootstrap changes these objects a few dozen times, and a status poll
  // every 250 ms (three lists) cost the CLI and the controller ~1 s of CPU on the machine the
  // units were starting on. The status returned, which deploy prints, is read afresh with each
  // unit's live position.
  const ns = ctx.kube.namespace;
  const selector = `${LABELS.app}=${ctx.app}`;
  const cms = new Map<string, V1ConfigMap>();
  const pods = new Map<string, V1Pod>();
  const leases = new Map<string, V1Lease>();
  let settle!: { ok: () => void; fail: (e: Error) => void };
  const finished = new Promise<void>((ok, fail) => (settle = { ok, fail }));
  const timer = setTimeout(() => settle.fail(new UserError(`units did not settle within ${Math.round(timeoutMs / 1000)} s; \`pgcharm status\` and \`pgcharm debug-log\` show where they are`)), timeoutMs);
  // Settled and still so a moment later: a unit's last bag write reaches the leader by a watch
  // an instant after that unit went idle, and the leader's summary ("1/2 replicas") follows it.
  let quiet: NodeJS.Timeout | undefined;
  // A unit in error retries its hook (5 s, then longer, as Juju does): deploy gives up on it only
  // once it stayed in error past a retry, not on a hook that failed once against a sidecar that
  // was restarting (a unit killed a moment before).
  const inError = new Map<string, number>();
  let recheck: NodeJS.Timeout | undefined;
  const check = () => {
    clearTimeout(quiet);
    clearTimeout(recheck);
    const s = statusFrom(ctx, { cms: [...cms.values()], pods: [...pods.values()], leaderLease: leases.get(objects.leaderLease(ctx.app)) });
    const now = Date.now();
    for (const [unit, u] of Object.entries(s.units)) {
      // A retry shows the unit executing a moment; only a hook that went through clears it.
      if (u.agent.status === 'idle') inError.delete(unit);
      else if (u.agent.status === 'error' && !inError.has(unit)) inError.set(unit, now);
    }
    const failed = Object.entries(s.units).find(([unit, u]) => u.agent.status === 'error' && now - (inError.get(unit) ?? now) >= ERROR_GRACE_MS);
    if (settled(s)) quiet = setTimeout(() => settle.ok(), SETTLED_QUIET_MS);
    else if (failed) settle.fail(new UserError(`unit ${failed[0]} is in error: ${failed[1].agent.message} (\`pgcharm debug-log\` shows why)`));
    else if (inError.size) recheck = setTimeout(check, Math.max(250, ERROR_GRACE_MS - (now - Math.min(...inError.values())) + 10));
  };
  // One look per burst of events (a re-list delivers every object at once).
  let queued = false;
  const changed = () => {
    if (queued) return;
    queued = true;
    setImmediate(() => {
      queued = false;
      check();
    });
  };
  const cache = <T extends { metadata?: { name?: string } }>(m: Map<string, T>) => ({
    upsert: (o: T) => void (m.set(o.metadata?.name ?? '', o), changed()),
    remove: (o: T) => void (m.delete(o.metadata?.name ?? ''), changed()),
    synced: (all: T[]) => {
      m.clear();
      for (const o of all) m.set(o.metadata?.name ?? '', o);
      changed();
    },
  });
  const log = pino({ enabled: false });
  const watchers = [
    watchPath<V1ConfigMap>(ctx.kube, `/api/v1/namespaces/${ns}/configmaps`, () => ctx.kube.core.listNamespacedConfigMap({ namespace: ns, labelSelector: selector }), selector, cache(cms), log),
    watchPath<V1Pod>(ctx.kube, `/api/v1/namespaces/${ns}/pods`, () => ctx.kube.core.listNamespacedPod({ namespace: ns, labelSelector: selector }), selector, cache(pods), log),
    watchPath<V1Lease>(ctx.kube, `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`, () => ctx.kube.coordination.listNamespacedLease({ namespace: ns, labelSelector: selector }), selector, cache(leases), log),
  ];
  try {
    await finished;
  } finally {
    clearTimeout(timer);
    clearTimeout(quiet);
    clearTimeout(recheck);
    await Promise.all(watchers.map((w) => w.stop().catch(() => undefined)));
  }
  return gatherStatus(ctx);
}
