import { createHash } from 'node:crypto';
import { stringify } from '#yaml';
import type { EventContext, Handler } from '../../runtime/charm.js';
import type { Layout } from './render.js';
import { ensureMetricsAuth, readPasswords } from './secrets.js';
import { state } from './state.js';
import { unitWorkload } from './workload.js';

/**
 * Postgres's metrics: Debian's prometheus-postgres-exporter as a Pebble service in the workload
 * (as Charmed PostgreSQL runs it), on the pod port `metrics` (9187, the exporter's own default).
 * It logs in as `monitoring` (pg_monitor, read-only: system-roles.ts) over this unit's socket,
 * with the password from a postgres-only file, never in its command line or environment.
 */

export const EXPORTER_SERVICE = 'postgres-exporter';
export const EXPORTER_PORT_NAME = 'metrics';
export const EXPORTER_PORT = 9187;
export const EXPORTER_BINARY = 'prometheus-postgres-exporter';

export const exporterPassFile = (l: Layout) => `${l.private}/monitoring.password`;

/** The exporter's layer (pure). `listen` is host:port; `digest` changes whenever it must restart. */
export function exporterLayer(l: Layout, o: { listen: string; pgPort: number; digest: string }): string {
  return stringify({
    summary: 'PostgreSQL metrics for Prometheus (pgcharm)',
    services: {
      [EXPORTER_SERVICE]: {
        override: 'replace',
        summary: "serves this unit's PostgreSQL statistics to Prometheus",
        command: `${EXPORTER_BINARY} --web.listen-address=${o.listen} --log.level=warn`,
        startup: 'enabled',
        user: 'postgres',
        group: 'postgres',
        environment: {
          // lib/pq: the socket directory as host; the port names the socket file.
          DATA_SOURCE_URI: `localhost:${o.pgPort}/postgres?host=${encodeURIComponent(l.socketDir)}&sslmode=disable`,
          DATA_SOURCE_USER: 'monitoring',
          DATA_SOURCE_PASS_FILE: exporterPassFile(l),
          PGCHARM_CONFIG_DIGEST: o.digest,
        },
      },
    },
  });
}

/** What the exporter runs with; a change restarts it (it reads its password only at start). */
const exporterKey = (ctx: EventContext, listen: string, pgPort: number): string => JSON.stringify([listen, pgPort, ctx.peers.app.get('passwords-rotated') ?? '']);

function plan(ctx: EventContext): { listen: string; pgPort: number } | undefined {
  const port = ctx.workload.port(EXPORTER_PORT_NAME);
  const me = ctx.workload.address();
  if (!port || !me) return undefined;
  return { listen: `${me.host.includes(':') ? `[${me.host}]` : me.host}:${port}`, pgPort: me.port };
}

/** Asked by the reconcile once Postgres runs: the exporter is set up in an event of its own, after the hook. */
export function wantExporter(ctx: EventContext): void {
  const p = plan(ctx);
  if (p && state.exporterReady !== exporterKey(ctx, p.listen, p.pgPort)) ctx.emit('pgcharm-exporter');
}

/**
 * The sidecar's `metrics` identity (Pebble's: basic auth, access metrics), so Prometheus can
 * scrape its GET /v1/metrics over the HTTP listener and nothing else. The sidecar keeps only the
 * password's sha512-crypt hash; the identity is replaced when the hash no longer matches.
 */
async function ensureMetricsIdentity(ctx: EventContext): Promise<void> {
  const auth = await ensureMetricsAuth(ctx.kube, ctx.app);
  const have = (await ctx.pebble.getIdentities())[auth.username];
  if (have?.access === 'metrics' && have.basic && identityPasswords.get(ctx.pebble.transport.address) === auth.password) return;
  const { encrypt } = await import('#unixcrypt');
  const made = encrypt(auth.password);
  await ctx.pebble.replaceIdentities({ [auth.username]: { access: 'metrics', basic: { password: made } } });
  identityPasswords.set(ctx.pebble.transport.address, auth.password);
  ctx.log.info({ identity: auth.username, access: 'metrics' }, 'sidecar metrics identity set');
}

/** Which password each sidecar's identity was last set to (the sidecar shows only "*****"). */
const identityPasswords = new Map<string, string>();

/**
 * Never fails its event (a failed event holds every later one in the unit's queue, the HA
 * reconciles included): a failure is logged, and the next reconcile asks again.
 */
export const setUpExporter: Handler = async (ctx) => {
  try {
    await setUp(ctx);
  } catch (e) {
    ctx.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'could not set up the postgres exporter; trying again at the next reconcile');
  }
};

async function setUp(ctx: EventContext): Promise<void> {
  const p = plan(ctx);
  if (!p) return;
  const key = exporterKey(ctx, p.listen, p.pgPort);
  if (state.exporterReady === key) return;
  await ensureMetricsIdentity(ctx);
  const w = unitWorkload(ctx);
  // An image (or a machine) without the exporter: said once, and the rest of the unit works.
  const found = await w.run(['/bin/sh', '-c', `command -v ${EXPORTER_BINARY} || true`]);
  if (!found.trim()) {
    ctx.log.warn({ binary: EXPORTER_BINARY, why: 'not installed in the workload: no PostgreSQL metrics on this unit (scripts/install-postgres.sh installs it)' }, 'exporter');
    state.exporterReady = key;
    return;
  }
  const pw = await readPasswords(ctx.kube, ctx.app);
  if (!pw) return;
  await w.ensureDir(w.l.private, '700');
  await w.pushIfChanged(exporterPassFile(w.l), pw.monitoring);
  // The password's digest, not the password: a rotation restarts the exporter, and nothing readable leaks into the plan.
  const digest = createHash('sha256').update(JSON.stringify([p, pw.monitoring])).digest('hex').slice(0, 16);
  await w.ensureService(EXPORTER_SERVICE, exporterLayer(w.l, { ...p, digest }), EXPORTER_SERVICE, digest);
  state.exporterReady = key;
  ctx.log.info({ listen: p.listen }, 'postgres exporter running');
}
