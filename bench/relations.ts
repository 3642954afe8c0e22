import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { openModel, type ModelContext } from '../agent/commands/context.js';
import { listRelations } from '../agent/commands/integrate.js';
import { gatherStatus, type ModelStatus } from '../agent/commands/status.js';
import { objects } from '../agent/runtime/names.js';
import { saveLogs, until } from './cluster.js';
import { killedAt, pgcharmCli as cli } from './pgcharm.js';
import { summary } from './stats.js';

/**
 * The database relation (postgresql_client) end to end, on a 3-unit PostgreSQL and the sample
 * todo application (examples/todo) in one local model: how long `pgcharm integrate` takes to
 * give the application a working database, and how long a failover takes to reach the
 * application through the relation (primary Lease -> the relation's bag -> the charm's file),
 * with the application's writes going on through it.
 */

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TODO_CHARM = join(root, 'examples', 'todo', 'charm.yaml');
const PG = 'postgresql';
const TODO = 'todo';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface FailoverRun {
  killed: string;
  new_primary: string;
  leader: string;
  new_primary_lease_ms: number;
  bag_endpoints_ms: number;
  app_endpoints_file_ms: number;
  write_gap_ms: number;
  acknowledged_writes_lost: number;
  writes_acknowledged: number;
  writes_failed: number;
  write_failures: Record<string, number>;
  endpoints: { before: string; after: string };
}

export interface RelationsResult {
  integrate_to_first_query_ms: ReturnType<typeof summary> & { what: string };
  endpoints_changed_after_failover_ms: {
    what: string;
    new_primary_lease_ms: ReturnType<typeof summary> & { what: string };
    bag_endpoints_ms: ReturnType<typeof summary> & { what: string };
    app_endpoints_file_ms: ReturnType<typeof summary> & { what: string };
    write_gap_ms: ReturnType<typeof summary> & { what: string };
    acknowledged_writes_lost: { total: number; runs: number[]; what: string };
    runs: FailoverRun[];
  };
}

/** One request to the todo service; undefined when it did not answer (down, refused, timed out). */
async function call(port: number, method: string, path: string, body?: unknown, timeoutMs = 15_000): Promise<{ status: number; json: Record<string, unknown> } | undefined> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await r.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      /* not JSON */
    }
    return { status: r.status, json };
  } catch {
    return undefined;
  }
}

/** Posts a todo every `everyMs` (one at a time), recording each acknowledged id and when. */
class TodoWriter {
  readonly acked: { id: number; at: number }[] = [];
  failed = 0;
  /** Why writes failed: the service's answer (status and error), or that it did not answer; with how often. */
  readonly failures: Record<string, number> = {};
  private stopped = false;
  private done: Promise<void> = Promise.resolve();
  constructor(private readonly port: number, private readonly everyMs = 50) {}
  start(): void {
    this.done = (async () => {
      for (let n = 0; !this.stopped; n++) {
        const r = await call(this.port, 'POST', '/todos', { title: `bench ${n}` });
        if (r?.status === 201 && typeof r.json['id'] === 'number') this.acked.push({ id: r.json['id'], at: Date.now() });
        else {
          this.failed++;
          const why = r ? `${r.status} ${String(r.json['error'] ?? '').replace(/\d+/g, 'N').slice(0, 160)}`.trim() : 'no answer';
          this.failures[why] = (this.failures[why] ?? 0) + 1;
        }
        await sleep(this.everyMs);
      }
    })();
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
  /** The longest time between two acknowledgements, counting from the last one before `t0`. */
  longestGapAround(t0: number): number {
    const from = this.acked.findLastIndex((a) => a.at <= t0);
    let gap = 0;
    for (let i = Math.max(1, from + 1); i < this.acked.length; i++) gap = Math.max(gap, this.acked[i]!.at - this.acked[i - 1]!.at);
    return gap;
  }
}

/** Polls `read` every 20 ms until it gives a value `changed` accepts; returns that value and when it was seen. */
async function firstChange<T>(what: string, read: () => Promise<T> | T, changed: (v: T) => boolean, timeoutMs = 60_000): Promise<{ value: T; at: number }> {
  return until(
    what,
    async () => {
      const v = await Promise.resolve(read()).catch(() => undefined);
      return v !== undefined && changed(v) ? { value: v, at: Date.now() } : undefined;
    },
    timeoutMs,
    20,
  );
}

/**
 * Waits until PostgreSQL is settled with the leader away from the primary: 3 units active and
 * idle, one primary and two replicas (their Postgres answering as replicas), the leader a
 * replica; twice in a row, a second apart.
 */
async function placed(ctx: ModelContext, timeoutMs: number): Promise<{ primary: string; leader: string }> {
  let seen = 0;
  return until(
    'a settled cluster with the leader on a replica',
    async () => {
      const s: ModelStatus | undefined = await gatherStatus(ctx, { live: false, integrations: false }).catch(() => undefined);
      const ok = (x: ModelStatus | undefined) => {
        if (!x) return undefined;
        const units = Object.entries(x.units);
        const primary = units.filter(([, u]) => u.role === 'primary');
        const replicas = units.filter(([, u]) => u.role === 'replica');
        if (units.length !== 3 || primary.length !== 1 || replicas.length !== 2) return undefined;
        if (!units.every(([, u]) => u.workload.status === 'active' && u.agent.status === 'idle')) return undefined;
        const leader = x.application.leader;
        if (!leader || leader === primary[0]![0]) return undefined;
        return { primary: primary[0]![0], leader };
      };
      let r = ok(s);
      // Only then the live look (a connection to each Postgres): the replicas really are replicas.
      if (r) {
        const live = await gatherStatus(ctx, { live: true, integrations: false }).catch(() => undefined);
        r = ok(live) && Object.values(live!.units).every((u) => u.postgres === u.role && u.lag !== null) ? r : undefined;
      }
      seen = r ? seen + 1 : 0;
      return seen >= 2 ? r : undefined;
    },
    timeoutMs,
    500,
  );
}

export async function benchRelations(o: { integrateRuns: number; failoverRuns: number; log: (s: string) => void }): Promise<RelationsResult> {
  const model = mkdtempSync(join(tmpdir(), 'pgcharm-bench-rel-'));
  chmodSync(model, 0o755);
  const started = Date.now();
  const log = (s: string) => o.log(`[${Math.round((Date.now() - started) / 1000)} s] ${s}`);
  try {
    log('deploying 3 PostgreSQL units and 1 todo unit');
    await cli(model, ['deploy', '--units', '3', '--timeout', '180']);
    await cli(model, ['deploy', '--charm', TODO_CHARM, '--units', '1', '--timeout', '120']);
    const port = Number(readFileSync(join(model, 'units', `${TODO}-0`, 'port'), 'utf8'));
    const endpointsFile = join(model, 'units', `${TODO}-0`, 'storage', 'config', 'db-endpoints');
    const readFile = () => (existsSync(endpointsFile) ? readFileSync(endpointsFile, 'utf8').trim() : '');
    const ctx = await openModel(model, PG);
    const ns = ctx.kube.namespace;

    // A settled deployment first: the leader hands leadership to a replica ~10 s after the
    // primary settles, and a resignation in the middle of the relation's first hook on the
    // leader leaves the relation unprovisioned (the retried hook no longer leads, and the new
    // leader's leader-elected does not provision it).
    log('waiting for PostgreSQL to settle with the leader on a replica');
    await placed(ctx, 120_000);

    // 1. integrate -> the first acknowledged write through the application.
    const integrate: number[] = [];
    let relation = 0;
    for (let i = 0; i < o.integrateRuns; i++) {
      const t0 = Date.now();
      const out = cli(model, ['integrate', TODO, PG]);
      out.catch(() => undefined);
      let last = '';
      const first = until(
        'a 201 from POST /todos',
        async () => {
          const r = await call(port, 'POST', '/todos', { title: `integrate ${i}` }, 5000);
          last = r ? `${r.status} ${JSON.stringify(r.json)}` : 'no answer';
          return r?.status === 201 ? Date.now() : undefined;
        },
        60_000,
        20,
      ).catch((e: Error) => {
        throw new Error(`integrate run ${i + 1}: ${e.message}; the service's last answer: ${last}`);
      });
      first.catch(() => undefined);
      await out;
      // (`pgcharm integrate` says the id on stderr.)
      relation = (await listRelations(ctx.kube)).find((r) => !r.dying && r.provider.app === PG && r.requirer.app === TODO)?.id ?? 0;
      integrate.push((await first) - t0);
      log(`integrate run ${i + 1}: relation ${relation}, first write after ${integrate.at(-1)} ms`);
      if (i < o.integrateRuns - 1) {
        await cli(model, ['remove-relation', TODO, PG]);
        await until('todo /health answering 503', async () => ((await call(port, 'GET', '/health', undefined, 5000))?.status === 503 ? true : undefined), 60_000, 100);
      }
    }
    if (!relation) throw new Error('no live relation between todo and postgresql after `pgcharm integrate`');

    // 2. failover under the application's writes.
    const bagName = `relation-${relation}-${PG}`;
    const readLease = async () => (await ctx.kube.coordination.readNamespacedLease({ name: objects.primaryLease(PG), namespace: ns })).spec?.holderIdentity ?? '';
    const readBag = async () => (await ctx.kube.core.readNamespacedConfigMap({ name: bagName, namespace: ns })).data?.['endpoints'] ?? '';
    const runs: FailoverRun[] = [];
    let kept = '';
    for (let i = 0; i < o.failoverRuns; i++) {
      // Between runs: the killed unit back and streaming, then 15 s more for leader placement
      // (the leader resigns to a replica once the primary has held for 10 s), and checked again.
      if (i > 0) {
        await placed(ctx, 180_000);
        await sleep(15_000);
      }
      const { primary, leader } = await placed(ctx, 180_000);
      const w = new TodoWriter(port);
      w.start();
      await until('the writer acknowledged', () => (w.acked.length >= 5 ? true : undefined), 30_000, 50);
      const [lease0, bag0, file0] = [await readLease(), await readBag(), readFile()];
      // Watching from before the kill: each compares with what was there before it.
      const lease = firstChange('a new holder of the primary Lease', readLease, (v) => Boolean(v) && v !== lease0);
      const bag = firstChange(`a new endpoints in ConfigMap ${bagName}`, readBag, (v) => Boolean(v) && v !== bag0);
      const file = firstChange('a new db-endpoints file', readFile, (v) => Boolean(v) && v !== file0);
      for (const p of [lease, bag, file]) p.catch(() => undefined);
      const before = Date.now();
      await cli(model, ['kill', '--app', PG, primary]);
      // When the controller killed it (it logs just before), else when we asked.
      const t0 = killedAt(model, before - 5) ?? before;
      const [l, b, f] = [await lease, await bag, await file];
      // Writes going on after the application got the new endpoints: the gap is over.
      await until('writes after the failover', () => (w.acked.filter((a) => a.at > f.at).length >= 10 ? true : undefined), 60_000, 50).catch(() => undefined);
      await w.stop();
      const lost = await lostIds(model, w.acked.map((a) => a.id));
      const run: FailoverRun = {
        killed: primary,
        new_primary: l.value,
        leader,
        new_primary_lease_ms: l.at - t0,
        bag_endpoints_ms: b.at - t0,
        app_endpoints_file_ms: f.at - t0,
        write_gap_ms: w.longestGapAround(t0),
        acknowledged_writes_lost: lost.length,
        writes_acknowledged: w.acked.length,
        writes_failed: w.failed,
        write_failures: w.failures,
        endpoints: { before: file0, after: f.value },
      };
      runs.push(run);
      // An outlier: the model's logs, kept (a destroy deletes them).
      if ((run.write_gap_ms > 4000 || lost.length) && !kept) {
        const dir = join(model, 'logs');
        kept = saveLogs({ name: 'relations', logs: () => Object.fromEntries(readdirSync(dir).map((f) => [f, join(dir, f)])) }, `failover-run-${i + 1}`);
        log(`run ${i + 1}: logs kept in ${kept}`);
      }
      log(`failover run ${i + 1}: killed ${primary} (leader ${leader}), new primary ${l.value}: lease ${run.new_primary_lease_ms} ms, bag ${run.bag_endpoints_ms} ms, file ${run.app_endpoints_file_ms} ms, write gap ${run.write_gap_ms} ms, ${lost.length} of ${w.acked.length} acknowledged writes lost`);
    }
    const fig = (k: 'new_primary_lease_ms' | 'bag_endpoints_ms' | 'app_endpoints_file_ms' | 'write_gap_ms') => summary(runs.map((r) => r[k]));
    return {
      integrate_to_first_query_ms: {
        ...summary(integrate),
        what: '`pgcharm integrate todo postgresql` started -> first 201 from POST /todos on the todo service (polled every 20 ms); remove-relation and a 503 from /health between runs',
      },
      endpoints_changed_after_failover_ms: {
        what: 'pgcharm kill of the primary unit (the leader on a replica), under a writer posting a todo every 50 ms; t0 = the controller logging the kill',
        new_primary_lease_ms: { ...fig('new_primary_lease_ms'), what: 't0 -> another unit holds the postgresql-primary Lease (polled every 20 ms)' },
        bag_endpoints_ms: { ...fig('bag_endpoints_ms'), what: `t0 -> the endpoints key of the relation's ConfigMap relation-<id>-postgresql changed (polled every 20 ms)` },
        app_endpoints_file_ms: { ...fig('app_endpoints_file_ms'), what: "t0 -> the todo unit's db-endpoints file changed (polled every 20 ms)" },
        write_gap_ms: { ...fig('write_gap_ms'), what: 'longest time between two 201s from POST /todos, from the last one before t0' },
        acknowledged_writes_lost: { total: runs.reduce((s, r) => s + r.acknowledged_writes_lost, 0), runs: runs.map((r) => r.acknowledged_writes_lost), what: 'ids acknowledged (201) but missing from table todos on the new primary' },
        runs,
      },
    };
  } catch (e) {
    const dir = join(model, 'logs');
    if (existsSync(dir)) log(`logs kept in ${saveLogs({ name: 'relations', logs: () => Object.fromEntries(readdirSync(dir).map((f) => [f, join(dir, f)])) }, 'failed')}`);
    throw e;
  } finally {
    await cli(model, ['destroy']).catch((e: Error) => o.log(`destroy failed: ${e.message}`));
    rmSync(model, { recursive: true, force: true });
  }
}

/** Which of `ids` are missing from table todos of database todo on the primary (`pgcharm uri`, as the operator). */
async function lostIds(model: string, ids: number[]): Promise<number[]> {
  const uri = await until('a primary for `pgcharm uri`', async () => (await cli(model, ['uri', '--app', PG]).catch(() => '')).trim().split('\n')[0] || undefined, 60_000, 500);
  const u = new URL(uri);
  u.pathname = '/todo';
  const c = new pg.Client({ connectionString: u.toString(), connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    const have = new Set((await c.query<{ id: string }>('SELECT id FROM todos WHERE id = ANY($1::bigint[])', [ids])).rows.map((r) => Number(r.id)));
    return ids.filter((id) => !have.has(id));
  } finally {
    await c.end().catch(() => undefined);
  }
}
