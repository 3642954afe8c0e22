import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from '#yaml';
import { DatabaseRequires, type DatabaseInfo } from '../../agent/interfaces/postgresql-client.js';
import type { Charm, EventContext, Handler, Status } from '../../agent/runtime/charm.js';

/**
 * The sample application charm: runs the todo service (server.ts, compiled beside this module)
 * through Pebble, with the database it gets from PostgreSQL on its `database` endpoint
 * (postgresql_client, see agent/interfaces/postgresql-client.ts).
 *
 * The credentials and endpoints go into files (0600) in the `config` storage, each written only
 * when its content differs; the service re-reads them on its own. The Pebble layer holds only
 * what does not rotate (file paths, database name, listen address), so it is replaced, and the
 * service restarted, only when that changes: a password rotation or a failover (new endpoints)
 * costs no restart.
 */

const SERVICE = 'todo';
const CHECK = 'todo-ready';
const FILES = { username: 'db-username', password: 'db-password', endpoints: 'db-endpoints' } as const;
/** The compiled server beside the compiled charm (dist/examples/todo/server.js). */
const SERVER = fileURLToPath(new URL('./server.js', import.meta.url));
const NODE = 'node';

interface Layer {
  summary: string;
  services: Record<string, { override: 'replace'; summary: string; command: string; startup: 'enabled'; environment: Record<string, string> }>;
  checks: Record<string, { override: 'replace'; level: 'ready'; period: string; timeout: string; threshold: number; http: { url: string } }>;
}

/** Pebble splits a command like a shell: quote what would not survive that. */
const shellWord = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

export function todoLayer(dir: string, database: string, address: { host: string; port: number }): Layer {
  return {
    summary: 'todo service (pgcharm sample)',
    services: {
      [SERVICE]: {
        override: 'replace',
        summary: 'todo HTTP service',
        command: `${NODE} ${shellWord(SERVER)}`,
        startup: 'enabled',
        environment: {
          DB_USERNAME_FILE: join(dir, FILES.username),
          DB_PASSWORD_FILE: join(dir, FILES.password),
          DB_ENDPOINTS_FILE: join(dir, FILES.endpoints),
          DB_NAME: database,
          HOST: address.host,
          PORT: String(address.port),
        },
      },
    },
    checks: {
      [CHECK]: { override: 'replace', level: 'ready', period: '5s', timeout: '3s', threshold: 3, http: { url: `http://${address.host}:${address.port}/health` } },
    },
  };
}

type PlanDoc = {
  services?: Record<string, { command?: string; startup?: string; environment?: Record<string, string> }>;
  checks?: Record<string, { level?: string; http?: { url?: string } }>;
} | null;

/** Whether the plan already runs the service and check as `want` has them (the plan has defaults filled in, so compare fields). */
export function planMatches(planYaml: string, want: Layer): boolean {
  const plan = parse(planYaml) as PlanDoc;
  const s = plan?.services?.[SERVICE];
  const w = want.services[SERVICE]!;
  const c = plan?.checks?.[CHECK];
  const wc = want.checks[CHECK]!;
  if (!s || s.command !== w.command || s.startup !== w.startup) return false;
  const env = s.environment ?? {};
  if (Object.keys(env).length !== Object.keys(w.environment).length || Object.entries(w.environment).some(([k, v]) => env[k] !== v)) return false;
  return c?.level === wc.level && c.http?.url === wc.http.url;
}

/** Writes the file unless it holds `content` already; says whether it wrote. */
async function pushIfChanged(ctx: EventContext, path: string, content: string): Promise<boolean> {
  const now = await ctx.pebble.pull(path).catch(() => undefined);
  if (now !== undefined && now.toString() === content) return false;
  await ctx.pebble.push(path, content, { permissions: 0o600, makeDirs: true });
  return true;
}

async function setStatus(ctx: EventContext, s: Status): Promise<void> {
  await ctx.setUnitStatus(s);
  if (ctx.isLeader()) await ctx.setAppStatus(s);
}

export default function todo(): Charm {
  const db = new DatabaseRequires({
    endpoint: 'database',
    database: (ctx) => String(ctx.config['database-name'] ?? 'todo'),
    extraUserRoles: (ctx) => String(ctx.config['extra-user-roles'] ?? ''),
  });
  /** Events whose context was reconciled already (several library events may fire in one hook). */
  const done = new WeakSet<EventContext>();

  async function ensureService(ctx: EventContext, info: DatabaseInfo, address: { host: string; port: number }): Promise<void> {
    const dir = ctx.workload.storage('config');
    // One after the other: concurrent pushes that each make the missing directory race in the sidecar.
    const wrote: boolean[] = [];
    for (const [file, content] of [[FILES.username, info.username], [FILES.password, info.password], [FILES.endpoints, info.endpoints]] as const) {
      wrote.push(await pushIfChanged(ctx, join(dir, file), content));
    }
    if (wrote.some(Boolean)) ctx.log.info({ files: Object.values(FILES).filter((_, i) => wrote[i]) }, 'database files written');
    const layer = todoLayer(dir, info.database, address);
    let change: string | undefined;
    if (!planMatches(await ctx.pebble.getPlan(), layer)) {
      await ctx.pebble.addLayer('todo', layer as unknown as Record<string, unknown>, { combine: true });
      change = await ctx.pebble.replan();
      ctx.log.info({ database: info.database, port: address.port }, 'todo layer replaced');
    } else {
      const [s] = await ctx.pebble.getServices([SERVICE]);
      if (s?.current !== 'active' && s?.current !== 'backoff') change = await ctx.pebble.start([SERVICE]);
    }
    // The server listens at once (it answers 503 until its database works): a start takes its okay delay.
    if (change) await ctx.pebble.waitChange(change, { timeoutMs: 30_000 });
  }

  async function reconcile(ctx: EventContext): Promise<void> {
    if (done.has(ctx)) return;
    done.add(ctx);
    const info = await db.fetch(ctx);
    if (!info) {
      const [r] = ctx.relations('database');
      await setStatus(
        ctx,
        r
          ? { name: 'waiting', message: `waiting for database ${String(ctx.config['database-name'] ?? 'todo')} from ${r.app}` }
          : { name: 'blocked', message: `needs a database relation (pgcharm integrate ${ctx.app} postgresql)` },
      );
      return;
    }
    const address = ctx.workload.address();
    if (!address) {
      await ctx.setUnitStatus({ name: 'waiting', message: 'waiting for the pod address' });
      return;
    }
    await ensureService(ctx, info, address);
    await setStatus(ctx, { name: 'active', message: `serving database ${info.database} at ${info.endpoints}` });
  }

  for (const ev of ['database-created', 'endpoints-changed', 'read-only-endpoints-changed', 'authentication-updated'] as const) db.on(ev, reconcile);
  db.on('database-broken', async (ctx) => {
    // The relation's role lost LOGIN: drop its credentials; the service answers 503 until a new relation.
    const dir = ctx.workload.storage('config');
    for (const f of Object.values(FILES)) await ctx.pebble.removePath(join(dir, f)).catch(() => undefined);
    await reconcile(ctx);
  });

  /** The library first (it may emit, and so reconcile), then reconcile if it did not. */
  const checked: Handler = async (ctx) => {
    await db.check(ctx);
    await reconcile(ctx);
  };

  return {
    handlers: {
      ...db.handlers(),
      start: reconcile,
      'todo-pebble-ready': reconcile,
      // A changed database-name is asked again (leader); the service follows once PostgreSQL answers.
      'config-changed': checked,
      // Catches up with what no event brought (e.g. a database renamed by the provider) and restarts a stopped service.
      'update-status': checked,
      'todo-stats-action': async (ctx) => {
        const a = ctx.action!;
        const address = ctx.workload.address();
        if (!address) return a.fail('the pod has no address yet');
        const res = await fetch(`http://${address.host}:${address.port}/todos?limit=1`, { signal: AbortSignal.timeout(5000) }).catch((e: unknown) => e as Error);
        if (res instanceof Error) return a.fail(`the todo service does not answer: ${res.message}`);
        if (!res.ok) return a.fail(`the todo service answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
        const body = (await res.json()) as { count?: unknown };
        a.setResults({ count: Number(body.count), unit: ctx.unit });
      },
    },
  };
}
