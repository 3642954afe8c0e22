import { spawn } from 'node:child_process';
import { parseAddress } from '../charm/postgresql/positions.js';
import { readPasswords } from '../charm/postgresql/secrets.js';
import { objects } from '../runtime/names.js';
import { resolveUnit, UserError, type ModelContext } from './context.js';

export interface Endpoint {
  unit: string;
  host: string;
  port: number;
}

/** Units' Postgres endpoints from their bags: `primary`, `replicas`, or one unit. */
export async function endpoints(ctx: ModelContext, which: string): Promise<Endpoint[]> {
  const app = (await ctx.store.get(objects.appBag(ctx.app)))?.data ?? {};
  const all: (Endpoint & { role: string })[] = [];
  for (const index of ctx.deployment.units) {
    const bag = (await ctx.store.get(objects.unitBag({ app: ctx.app, index })))?.data ?? {};
    const t = parseAddress(bag['address']);
    if (t) all.push({ unit: `${ctx.app}/${index}`, ...t, role: bag['role'] ?? '' });
  }
  if (which === 'primary') {
    const p = all.find((e) => e.unit === app['primary'] && e.role === 'primary');
    if (!p) throw new UserError(`no primary is serving right now${app['primary'] ? ` (${app['primary']} is recorded)` : ''}: see \`pgcharm status\``);
    return [p];
  }
  if (which === 'replicas') {
    const r = all.filter((e) => e.role === 'replica');
    if (!r.length) throw new UserError('no replica is serving right now: see `pgcharm status`');
    return r;
  }
  const u = await resolveUnit(ctx, which);
  const e = all.find((x) => x.unit === u.unit);
  if (!e) throw new UserError(`${u.unit} has no Postgres address yet: see \`pgcharm status\``);
  return [e];
}

async function operatorPassword(ctx: ModelContext): Promise<string> {
  const pw = await readPasswords(ctx.kube, ctx.app);
  if (!pw) throw new UserError(`application ${ctx.app} has no passwords yet (Secret ${objects.passwords(ctx.app)})`);
  return pw.operator;
}

/** libpq URIs with the operator's credentials (what `pgcharm uri` prints). */
export async function uris(ctx: ModelContext, which: string): Promise<string[]> {
  const pw = encodeURIComponent(await operatorPassword(ctx));
  return (await endpoints(ctx, which)).map((e) => `postgresql://operator:${pw}@${e.host}:${e.port}/postgres`);
}

/**
 * `pgcharm psql [target] [-- psql-args...]`, from the operands commander parsed (it drops the
 * `--` and hands over everything after it as operands too, so `psql -- -c "select 1"` arrives as
 * target "-c") and `afterDashDash`, the raw arguments after the first `--` (empty without one).
 * What stood before the `--` is the target (default primary) and any psql arguments given
 * without a `--`.
 */
export function psqlInvocation(operands: readonly string[], afterDashDash: readonly string[]): { target: string; args: string[] } {
  const before = operands.slice(0, Math.max(0, operands.length - afterDashDash.length));
  return { target: before[0] ?? 'primary', args: [...before.slice(1), ...afterDashDash] };
}

/** `pgcharm psql`: psql on a unit; the password goes in the environment, never on its command line. */
export async function psql(ctx: ModelContext, which: string, args: string[]): Promise<number> {
  const [e] = await endpoints(ctx, which);
  const env = { ...process.env, PGPASSWORD: await operatorPassword(ctx) };
  const child = spawn('psql', [`postgresql://operator@${e!.host}:${e!.port}/postgres`, ...args], { stdio: 'inherit', env });
  return new Promise((resolve, reject) => {
    child.on('error', (err) => reject(new UserError(`cannot run psql: ${err.message} (apt-get install postgresql-client)`)));
    child.on('exit', (code) => resolve(code ?? 1));
  });
}
