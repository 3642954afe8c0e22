import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openModel, type ModelContext } from '../agent/commands/context.js';
import { readPasswords } from '../agent/charm/postgresql/secrets.js';
import { settled } from '../agent/commands/deploy.js';
import { gatherStatus } from '../agent/commands/status.js';
import { pidsWithEnv } from '../agent/procs.js';
import { pgcharmBootstrapTimeline, type BootstrapTimeline } from './bootstrap-timeline.js';
import type { Cluster } from './cluster.js';

/** A 3-unit pgcharm deployment in a fresh local model, driven through the `pgcharm` CLI. */

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(root, 'dist', 'agent', 'cli.js');

/** `env`: more environment for the CLI (PGCHARM_AUDIT=1 on a deploy has the controller audit the agents' requests). */
export function pgcharmCli(model: string, args: string[], timeoutMs = 300_000, env: Record<string, string> = {}): Promise<string> {
  return new Promise((res, rej) =>
    execFile(process.execPath, [CLI, args[0]!, '--model', model, ...args.slice(1)], { env: { ...process.env, PGCHARM_MODEL: '', ...env }, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      err ? rej(new Error(`pgcharm ${args.join(' ')} failed: ${stderr}`)) : res(stdout),
    ),
  );
}

/** When the controller logged the kill (its clock is the one the kill happened on). */
export function killedAt(model: string, after: number): number | undefined {
  const lines = readFileSync(join(model, 'logs', 'controller.log'), 'utf8').trim().split('\n');
  for (const l of lines.reverse()) {
    const o = JSON.parse(l) as { time?: number; msg?: string };
    if (o.msg === 'killing unit' && (o.time ?? 0) >= after) return o.time;
  }
  return undefined;
}

/**
 * Waits for `deploy` (a `pgcharm deploy`), and when it gave up because a unit's hook failed,
 * for the units to settle anyway: the agent retries a failed hook, as Juju does, and a benchmark
 * measuring something else should not end there. Returns the errors seen, to be reported.
 */
export async function settleApp(deploy: Promise<string>, model: string, app?: string, timeoutMs = 300_000): Promise<string[]> {
  try {
    await deploy;
    return [];
  } catch (e) {
    const m = /error: (unit \S+ is in error: .*)/.exec((e as Error).message);
    if (!m) throw e;
    const seen = [m[1]!.split(' (`pgcharm debug-log`')[0]!];
    for (const deadline = Date.now() + timeoutMs; ; ) {
      const s = await openModel(model, app).then((ctx) => gatherStatus(ctx, { live: false })).catch(() => undefined);
      if (s && settled(s)) return seen;
      if (Date.now() > deadline) throw new Error(`units did not settle within ${timeoutMs / 1000} s after ${seen[0]}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export class PgcharmCluster implements Cluster {
  readonly name = 'pgcharm';
  readonly model: string;
  private deploy?: Promise<string>;
  private password?: string;

  /** `env`: for the `pgcharm deploy` process, and so the controller it starts. */
  constructor(
    private readonly units = 3,
    private readonly env: Record<string, string> = {},
  ) {
    this.model = mkdtempSync(join(tmpdir(), 'pgcharm-bench-'));
    chmodSync(this.model, 0o755);
  }

  async start(): Promise<void> {
    this.deploy = pgcharmCli(this.model, ['deploy', '--units', String(this.units), '--timeout', '180'], 300_000, this.env);
    this.deploy.catch(() => undefined);
  }

  /** Resolves once every unit settled; returns the hook errors `pgcharm deploy` gave up on and the units got over (see settleApp). */
  async deployed(): Promise<string[]> {
    if (!this.deploy) throw new Error('pgcharm: deployed() before start()');
    return settleApp(this.deploy, this.model);
  }

  async credentials(): Promise<{ user: string; password: string }> {
    for (const deadline = Date.now() + 180_000; !this.password; ) {
      // In-process (a `pgcharm` child per poll would take a core from the units being measured),
      // one model context for the whole wait, and only the Secret: each poll costs the
      // controller being measured one request. The probes find the primary.
      this.ctx ??= await openModel(this.model).catch(() => undefined);
      const pw = this.ctx ? await readPasswords(this.ctx.kube, this.ctx.app).catch(() => undefined) : undefined;
      if (pw) this.password = pw.operator;
      else if (Date.now() > deadline) throw new Error('pgcharm: no password within 180 s');
      else await new Promise((r) => setTimeout(r, 50));
    }
    return { user: 'operator', password: this.password };
  }

  private ctx: ModelContext | undefined;

  private pods(): string[] {
    const dir = join(this.model, 'units');
    return existsSync(dir) ? readdirSync(dir).filter((p) => existsSync(join(dir, p, 'port'))).sort() : [];
  }

  nodeNames(): string[] {
    return this.pods().map((p) => p.replace(/-(\d+)$/, '/$1'));
  }

  portOf(node: string): number {
    return Number(readFileSync(join(this.model, 'units', node.replace('/', '-'), 'port'), 'utf8'));
  }

  ports(): number[] {
    return this.nodeNames().map((n) => this.portOf(n));
  }

  async revive(node: string): Promise<void> {
    await pgcharmCli(this.model, ['kill', node, '--revive']);
  }

  async killNode(node: string, o: { holdDown?: boolean } = {}): Promise<number> {
    const before = Date.now();
    await pgcharmCli(this.model, ['kill', node, ...(o.holdDown ? ['--no-restart'] : [])]);
    for (const deadline = Date.now() + 10_000; ; ) {
      const t = killedAt(this.model, before);
      // The controller logs before it kills: return once the unit's processes are gone, so
      // whoever looks next does not see the unit still serving.
      if (t && !pidsWithEnv('PGCHARM_LOCAL_UNIT', `${this.model}#${node.replace('/', '-')}`).length) return t;
      if (Date.now() > deadline) throw new Error(t ? `${node}'s processes still run 10 s after the controller logged its kill` : `the controller logged no kill of ${node} within 10 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async killPostmaster(node: string): Promise<number> {
    const pidFile = join(this.model, 'units', node.replace('/', '-'), 'storage', 'pgdata', 'pgdata', 'postmaster.pid');
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    const t = Date.now();
    process.kill(pid, 'SIGKILL');
    return t;
  }

  async bootstrapTimeline(t0: number, healthyAt: number): Promise<BootstrapTimeline> {
    const ctx = await openModel(this.model);
    const lease = async (name: string) => {
      const l = await ctx.kube.coordination.readNamespacedLease({ name: `${ctx.app}-${name}`, namespace: ctx.kube.namespace }).catch(() => undefined);
      const holder = l?.spec?.holderIdentity;
      const at = l?.spec?.acquireTime ? new Date(l.spec.acquireTime).getTime() : undefined;
      return holder && at ? { holder, at } : undefined;
    };
    const [leader, primary] = await Promise.all([lease('leader'), lease('primary')]);
    return pgcharmBootstrapTimeline(this.model, t0, { ...(leader ? { leader } : {}), ...(primary ? { primary } : {}) }, healthyAt);
  }

  /** The whole model's logs (controller, agents, sidecars) are in one directory. */
  logs(): Record<string, string> {
    const dir = join(this.model, 'logs');
    return existsSync(dir) ? Object.fromEntries(readdirSync(dir).map((f) => [f, join(dir, f)])) : {};
  }

  async destroy(): Promise<void> {
    await this.deploy?.catch(() => undefined);
    await pgcharmCli(this.model, ['destroy']).catch(() => undefined);
    rmSync(this.model, { recursive: true, force: true });
  }
}
