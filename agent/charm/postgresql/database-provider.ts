import type { CharmLoop, EventContext, Handler, LoopContext, Relation } from '../../runtime/charm.js';
import { LABELS, objects } from '../../runtime/names.js';
import { SECRET_ANNOTATIONS } from '../../runtime/juju-secrets.js';
import { decodeRelation, relationLabel } from '../../runtime/relations.js';
import { checkRequest, provision, retire, roleName, rotatePassword } from './client-db.js';
import { primaryTarget } from './password-change.js';
import { parseAddress } from './positions.js';
import { generatePassword } from './scram.js';
import { readPasswords } from './secrets.js';
import { state } from './state.js';
import { operatorClient, withConnection } from './workload.js';

/**
 * The `database` endpoint (interface postgresql_client, v0 field names): each related
 * application asks for a database in its application bag; the leader gives the relation a role
 * of its own (`relation_<id>`, client-db.ts) owning that database, and answers in this
 * application's bag of the relation:
 *
 *   database, endpoints (the primary's host:port), read-only-endpoints (the replicas'),
 *   version, tls, secret-user (a secret granted to the relation: username, password, uris)
 *
 * `uris` lists every unit with target_session_attrs=read-write, so libpq finds the primary
 * itself and the URI does not change at a failover; it holds the password, so it travels in
 * the secret (the requirer's requested-secrets names it), as data_interfaces does. `endpoints`
 * follows the primary Lease: the leader's loop rewrites it the moment the Lease changes hands.
 */

export const ENDPOINT = 'database';
const secretLabel = (id: number) => `database-relation-${id}`;

/**
 * A primary that does not take the connection now (down, restarting, starting up, fenced): the
 * work waits (defer) instead of failing the hook, which would hold up every later event of the
 * unit while it is retried.
 */
function primaryUnavailable(e: unknown): boolean {
  const x = e as { code?: string; message?: string };
  return ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', '57P01', '57P02', '57P03', '25006'].includes(x.code ?? '') || /timeout|terminated|Connection terminated/i.test(x.message ?? '');
}

async function orDefer(ctx: EventContext, what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (!primaryUnavailable(e)) throw e;
    ctx.log.info({ err: (e as Error).message }, `${what}: the primary does not answer now; it waits`);
    ctx.defer();
  }
}

/** Relations the leader refused, by id: what the application status says (blocked). */
const problems = new Map<number, string>();

export function relationProblem(): string | undefined {
  const all = [...problems.entries()].sort((a, b) => a[0] - b[0]).map(([, m]) => m);
  return all.length ? all.join('; ') : undefined;
}

interface UnitView {
  unit: string;
  address: string | undefined;
  role: string | undefined;
}

/**
 * What the relation's bag says about where to connect (pure): the holder of the primary Lease
 * (its bag's address), the units that run as replicas, and every unit with an address.
 */
export function clientEndpoints(holder: string | undefined, units: readonly UnitView[]): { endpoints: string; readOnly: string; all: string[] } {
  const addr = (u: UnitView) => (u.address && parseAddress(u.address) ? u.address : undefined);
  const sorted = [...units].sort((a, b) => a.unit.localeCompare(b.unit, 'en', { numeric: true }));
  const primary = sorted.find((u) => u.unit === holder);
  return {
    endpoints: (primary && addr(primary)) ?? '',
    readOnly: sorted.filter((u) => u.unit !== holder && u.role === 'replica' && addr(u)).map((u) => u.address!).join(','),
    all: sorted.map(addr).filter((a): a is string => Boolean(a)),
  };
}

/** libpq's multi-host URI: whichever unit is writable answers (target_session_attrs=read-write). */
export function clientUri(user: string, password: string, hosts: readonly string[], database: string): string {
  return `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${hosts.join(',')}/${encodeURIComponent(database)}?target_session_attrs=read-write`;
}

function unitViews(ctx: EventContext): UnitView[] {
  return [ctx.unit, ...ctx.peers.units].map((u) => ({ unit: u, address: ctx.peers.unit(u).get('address'), role: ctx.peers.unit(u).get('role') }));
}

function setProblem(ctx: EventContext, id: number, message: string | undefined): void {
  const before = problems.get(id);
  if (message === undefined) problems.delete(id);
  else problems.set(id, message);
  if (before !== message) {
    if (message) ctx.log.warn({ relation: id, why: message }, 'database relation blocked');
    else if (before) ctx.log.info({ relation: id }, 'database relation unblocked');
    ctx.emit('pgcharm-reconcile'); // the application status says it
  }
}

/**
 * The leader answers one relation: checks the request, makes the role and database match it
 * (a no-op when they do), keeps the secret and the bag current. Without a primary it defers.
 */
async function serve(ctx: EventContext, r: Relation): Promise<void> {
  const req = checkRequest({ database: r.remoteApp.get('database'), extraUserRoles: r.remoteApp.get('extra-user-roles') });
  if (!req.ok) {
    // Nothing asked yet is not a problem: the requirer writes its request in its own time.
    setProblem(ctx, r.id, r.remoteApp.get('database') === undefined ? undefined : `relation ${r.id} (${r.app}): ${req.message}`);
    return;
  }
  const holder = await state.lease(ctx).holder();
  const target = primaryTarget(ctx, holder);
  const pw = await readPasswords(ctx.kube, ctx.app);
  if (!target || !pw) {
    ctx.log.info({ relation: r.id }, 'no primary serving yet: the database relation waits');
    return ctx.defer();
  }
  let id = r.localApp.get('secret-user') ?? (await ctx.secrets.find(secretLabel(r.id)));
  const had = id ? await ctx.secrets.get(id).catch(() => undefined) : undefined;
  const password = had?.['password'] ?? generatePassword();
  const username = roleName(r.id);
  const where = clientEndpoints(holder, unitViews(ctx));
  let version = '';
  try {
    await withConnection(target, pw.operator, async (c) => {
      await c.query('SET synchronous_commit = local');
      version = ((await c.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? '').split(' ')[0] ?? '';
      const done = await provision(c, {
        relationId: r.id,
        database: req.database,
        extraRoles: req.extraRoles,
        password,
        connect: (database) => operatorClient(target, pw.operator, { database }),
      });
      if (done.changes.length) ctx.log.info({ relation: r.id, app: r.app, database: req.database, changes: done.changes, ...(done.reclaimedFrom ? { reclaimedFrom: done.reclaimedFrom } : {}), ...(done.sharedWith ? { sharedWith: done.sharedWith } : {}) }, 'database relation provisioned');
    });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // A database we did not create is never taken over: the relation stays blocked, saying whose it is.
    if (/owned by|not created by/i.test(msg)) return setProblem(ctx, r.id, `relation ${r.id} (${r.app}): ${msg}`);
    throw e;
  }
  const content = { username, password, uris: clientUri(username, password, where.all, req.database) };
  if (!id) id = await ctx.secrets.add(content, { label: secretLabel(r.id), description: `credentials of relation ${r.id} (${r.app})` });
  else await ctx.secrets.set(id, content);
  await ctx.secrets.grant(id, r);
  const bag: Record<string, string> = { database: req.database, endpoints: where.endpoints, 'read-only-endpoints': where.readOnly, version, tls: 'False', 'secret-user': id };
  for (const [k, v] of Object.entries(bag)) if (r.localApp.get(k) !== v) r.localApp.set(k, v);
  setProblem(ctx, r.id, undefined);
}

/** -created, -joined, -changed: the leader serves the relation. */
export const onDatabaseRelation: Handler = async (ctx) => {
  const r = ctx.relation;
  if (!ctx.isLeader() || !r) return;
  await orDefer(ctx, `database relation ${r.id}`, () => serve(ctx, r));
};

/**
 * The leader answers every relation again (a new leader; the units changed: new uris), and
 * retires what no relation holds any more: LOGIN roles `relation_<id>` and their secrets whose
 * relation is gone (a -broken that ran on a unit which was not leader at that moment, or a
 * deferred one lost with its agent).
 */
export const onDatabaseRefresh: Handler = async (ctx) => {
  if (!ctx.isLeader()) return;
  await orDefer(ctx, 'database relations refresh', () => refresh(ctx));
};

async function refresh(ctx: EventContext): Promise<void> {
  const live = ctx.relations(ENDPOINT);
  for (const r of live) await serve(ctx, r);
  // Every relation of this endpoint the store has and that is not being removed: one this unit has
  // not joined yet (a new leader's -created still queued) keeps its role too. What is left is a
  // relation's secret (made with its role, removed after the role is retired) without a relation.
  const [listed, secrets] = await Promise.all([
    ctx.kube.core.listNamespacedConfigMap({ namespace: ctx.kube.namespace, labelSelector: `${LABELS.kind}=relation,${relationLabel(ctx.app)}=${ENDPOINT}` }),
    ctx.kube.core.listNamespacedSecret({ namespace: ctx.kube.namespace, labelSelector: `${LABELS.app}=${ctx.app},${LABELS.kind}=secret` }),
  ]);
  const keep = new Set(listed.items.map(decodeRelation).filter((r) => r && !r.dying).map((r) => r!.id));
  const orphans = secrets.items
    .map((x) => /^database-relation-(\d+)$/.exec(x.metadata?.annotations?.[SECRET_ANNOTATIONS.label] ?? '')?.[1])
    .filter((id): id is string => id !== undefined)
    .map(Number)
    .filter((id) => !keep.has(id));
  if (!orphans.length) return; // the usual case: no connection to the primary at all
  const target = primaryTarget(ctx, await state.lease(ctx).holder());
  const pw = await readPasswords(ctx.kube, ctx.app);
  if (!target || !pw) return ctx.defer();
  await withConnection(target, pw.operator, async (c) => {
    await c.query('SET synchronous_commit = local');
    for (const id of orphans) await retire(c, id);
  });
  for (const id of orphans) {
    const secret = await ctx.secrets.find(secretLabel(id));
    if (secret) await ctx.secrets.remove(secret);
    ctx.log.info({ relation: id, role: roleName(id) }, 'database relation gone: its role may no longer log in, data kept');
  }
}

/**
 * -broken: the role may no longer log in and its sessions end; the database and its data stay
 * (a later relation asking for the same name gets them). The secret goes.
 */
export const onDatabaseBroken: Handler = async (ctx) => {
  const r = ctx.relation;
  // A unit leaving (remove-unit) leaves the relation to the others: only its removal retires the role.
  if (!ctx.isLeader() || !r?.dying) return;
  problems.delete(r.id);
  const target = primaryTarget(ctx, await state.lease(ctx).holder());
  const pw = await readPasswords(ctx.kube, ctx.app);
  if (!target || !pw) {
    ctx.log.info({ relation: r.id }, 'no primary serving: retiring the relation role waits');
    return ctx.defer();
  }
  await orDefer(ctx, `database relation ${r.id} broken`, async () => {
    const ended = await withConnection(target, pw.operator, async (c) => {
      await c.query('SET synchronous_commit = local');
      return retire(c, r.id);
    });
    const id = r.localApp.get('secret-user') ?? (await ctx.secrets.find(secretLabel(r.id)));
    if (id) await ctx.secrets.remove(id).catch((e: unknown) => ctx.log.warn({ relation: r.id, err: (e as Error).message }, 'could not remove the relation secret'));
    ctx.log.info({ relation: r.id, app: r.app, role: roleName(r.id), sessionsEnded: ended }, 'database relation removed: role may no longer log in, data kept');
  });
  ctx.emit('pgcharm-reconcile');
};

/** rotate-client-password: a new password for one relation's role (or every relation's); the requirers get secret-changed. */
export const rotateClientPassword: Handler = async (ctx) => {
  const a = ctx.action!;
  if (!ctx.isLeader()) return a.fail('rotate-client-password runs on the leader: pgcharm run leader rotate-client-password [relation-id=N]');
  const want = a.params['relation-id'];
  const rels = ctx.relations(ENDPOINT).filter((r) => want === undefined || r.id === Number(want));
  if (!rels.length) return a.fail(want === undefined ? 'no database relation to rotate' : `params.relation-id: no database relation ${String(want)} (relations: ${ctx.relations(ENDPOINT).map((r) => r.id).join(', ') || 'none'})`);
  const holder = await state.lease(ctx).holder();
  const target = primaryTarget(ctx, holder);
  const pw = await readPasswords(ctx.kube, ctx.app);
  if (!target || !pw) return a.fail('no primary is serving; try again once `pgcharm status` shows one');
  const hosts = clientEndpoints(holder, unitViews(ctx)).all;
  const rotated: number[] = [];
  for (const r of rels) {
    const id = r.localApp.get('secret-user');
    if (!id) continue; // not provisioned yet: it gets a fresh password when it is
    const content = await ctx.secrets.get(id);
    const password = generatePassword();
    // The role first, then the secret: a requirer never holds a password the role does not have yet.
    await withConnection(target, pw.operator, async (c) => {
      await c.query('SET synchronous_commit = local');
      await rotatePassword(c, r.id, password);
    });
    await ctx.secrets.set(id, { ...content, password, uris: clientUri(roleName(r.id), password, hosts, r.localApp.get('database') ?? '') });
    rotated.push(r.id);
    a.log(`relation ${r.id} (${r.app}): password of ${roleName(r.id)} rotated`);
  }
  a.setResults({ rotated: rotated.join(',') || 'none' });
};

/** The units' addresses last served into the relations' uris, per relation (leader's memory). */
const servedHosts = new Map<number, string>();

/**
 * The leader's loop: `endpoints` and `read-only-endpoints` follow the primary Lease and the
 * units' roles (woken at once by a Lease change), written only when they differ; a change in
 * the set of units asks for a refresh (new uris in the secrets). Reads only what the agent
 * keeps in memory: at idle it makes no request.
 */
export const databaseEndpointsLoop: CharmLoop = {
  name: 'database-endpoints',
  everyMs: () => 2000,
  // The new primary says so in its bag once pg_promote returned: endpoints move then, not at the
  // takeover ~300 ms earlier, when a client sent there would still meet a read-only server.
  wakeOnBagChange: true,
  async run(ctx: LoopContext) {
    if (!ctx.isLeader()) return;
    const rels = ctx.relations(ENDPOINT).filter((r) => r.localApp['secret-user']);
    if (!rels.length) return;
    const holder = ctx.leases.get(objects.primaryLease(ctx.app))?.lease.spec?.holderIdentity ?? undefined;
    const bags = ctx.bags();
    const units: UnitView[] = [{ unit: ctx.unit, address: bags.local['address'], role: bags.local['role'] }, ...[...bags.peers].map(([u, b]) => ({ unit: u, address: b['address'], role: b['role'] }))];
    const where = clientEndpoints(holder, units);
    const promoted = units.find((u) => u.unit === holder)?.role === 'primary';
    let refresh = false;
    for (const r of rels) {
      const patch: Record<string, string> = {};
      if (promoted && where.endpoints && r.localApp['endpoints'] !== where.endpoints) patch['endpoints'] = where.endpoints;
      if (r.localApp['read-only-endpoints'] !== where.readOnly) patch['read-only-endpoints'] = where.readOnly;
      if (Object.keys(patch).length) {
        await ctx.setRelationApp(r.id, patch);
        ctx.log.info({ relation: r.id, app: r.app, ...patch }, 'database relation endpoints changed');
      }
      const hosts = where.all.join(',');
      if (servedHosts.has(r.id) && servedHosts.get(r.id) !== hosts) refresh = true;
      servedHosts.set(r.id, hosts);
    }
    if (refresh) ctx.emit('pgcharm-database-refresh');
  },
};
