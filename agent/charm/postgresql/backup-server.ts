import { createHash } from 'node:crypto';
import type { EventContext } from '../../runtime/charm.js';
import { podName } from '../../runtime/names.js';
import type { KeyPair } from '../../tls/x509.js';
import { BACKUP_CLIENT_CN, BACKUP_SERVER_PORT_NAME, BACKUP_SERVER_SERVICE, backupServerLayer, serverBind, serverConfLines, serverNames, tlsFiles, type BackupServer } from './backup-standby.js';
import { ensureCa } from './secrets.js';
import { isMissing, type PostgresWorkload } from './workload.js';

/**
 * Every unit's pgBackRest TLS server (backup-standby.ts has the pure parts): its certificates
 * from the deployment's CA, the Pebble service, and the bag entry a backup on the primary finds
 * it by.
 */

/** Where and how this unit's server listens; undefined when the pod has no `pgbackrest` port (older manifests) or no address yet. */
export function backupServerPlan(ctx: EventContext): { names: string[]; bind: string; port: number } | undefined {
  const port = ctx.workload.port(BACKUP_SERVER_PORT_NAME);
  const me = ctx.workload.address();
  if (!port || !me) return undefined;
  const [app, n] = ctx.unit.split('/');
  const names = serverNames({ podIp: me.host, pod: podName({ app: app!, index: Number(n) }), app: ctx.app, namespace: ctx.kube.namespace });
  return { names, bind: serverBind(names, me.host), port };
}

/** The certificates a unit has checked: what they were checked against, and when (renewals are looked for daily). */
const checked = new Map<string, { key: string; at: number; server: string }>();
const RECHECK_MS = 86_400_000;

/**
 * The unit's server certificate (for its names) and client certificate (CN pgcharm-backup), each
 * issued again when it is missing, not from the current CA, lacks a name, or expires within 30
 * days. Returns the server certificate (PEM).
 */
async function ensureCerts(w: PostgresWorkload, ca: KeyPair, names: string[]): Promise<string> {
  const f = tlsFiles(w.l);
  const key = `${ca.cert}|${names.join(',')}`;
  const seen = checked.get(w.l.storage);
  if (seen?.key === key && Date.now() - seen.at < RECHECK_MS) return seen.server;
  // Loaded when first needed (node-forge): once per agent process.
  const { issue, needsRenewal } = await import('../../tls/x509.js');
  await w.ensureDir(f.dir, '700');
  await w.pushIfChanged(f.ca, ca.cert);
  const leaf = async (certPath: string, keyPath: string, want: { dns?: string[]; cn?: string }, make: () => Promise<KeyPair>): Promise<string> => {
    const have = await w.pebble.pull(certPath).then(
      (b) => b.toString(),
      (e: unknown) => {
        if (isMissing(e)) return '';
        throw e;
      },
    );
    const why = have ? needsRenewal(have, ca.cert, want) : 'missing';
    if (!why) return have;
    const made = await make();
    // The key first: a certificate is never beside a key it does not match for long.
    await w.pushIfChanged(keyPath, made.key);
    await w.pushIfChanged(certPath, made.cert);
    w.log.info({ cert: certPath, why }, 'certificate issued');
    return made.cert;
  };
  const [server] = await Promise.all([
    leaf(f.serverCert, f.serverKey, { dns: names }, () => issue(ca, { cn: names[0]!, dns: names, usage: 'server' })),
    leaf(f.clientCert, f.clientKey, { cn: BACKUP_CLIENT_CN }, () => issue(ca, { cn: BACKUP_CLIENT_CN, usage: 'client' })),
  ]);
  checked.set(w.l.storage, { key, at: Date.now(), server });
  return server;
}

/**
 * Certificates, the running service, and the bag entry `backup-server`. Called where the unit
 * configures pgBackRest (its server lines are in pgbackrest.conf already).
 */
export async function ensureBackupServer(ctx: EventContext, w: PostgresWorkload, plan: { names: string[]; bind: string; port: number }, pgPort: number): Promise<void> {
  const ca = await ensureCa(ctx.kube, ctx.app);
  if (!ca) return;
  const serverCert = await ensureCerts(w, ca, plan.names);
  const digest = createHash('sha256').update(JSON.stringify([serverConfLines(w.l, plan), ca.cert, serverCert])).digest('hex').slice(0, 16);
  await w.ensureService(BACKUP_SERVER_SERVICE, backupServerLayer(w.l, digest), BACKUP_SERVER_SERVICE, digest);
  const at: BackupServer = { host: plan.names[0]!, port: plan.port, pgdata: w.l.pgdata, socket: w.l.socketDir, 'pg-port': pgPort };
  ctx.peers.local.set('backup-server', JSON.stringify(at));
}
