import { createHash, randomBytes } from 'node:crypto';
import type { EventContext } from '../../runtime/charm.js';
import { podName } from '../../runtime/names.js';
import { CA_SCRIPT, LEAF_SCRIPT, needsRenewal, pemBlocks, type KeyPair } from '../../tls/x509.js';
import { BACKUP_CLIENT_CN, BACKUP_SERVER_PORT_NAME, BACKUP_SERVER_SERVICE, backupServerLayer, serverBind, serverConfLines, serverNames, tlsFiles, type BackupServer } from './backup-standby.js';
import { ensureCa } from './secrets.js';
import type { PostgresWorkload } from './workload.js';

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

/** A new CA, made by openssl in this unit's workload (the key never touches its disk: printed, then gone). */
async function makeCa(w: PostgresWorkload, app: string): Promise<KeyPair> {
  const f = tlsFiles(w.l);
  await w.ensureDir(f.dir, '700');
  let out: string;
  try {
    out = await w.run(['/bin/sh', '-c', CA_SCRIPT, 'sh', f.dir, `pgcharm ${app} CA`]);
  } finally {
    // The script removes its files when it exits; this when it could not.
    await w.pebble.removePath(`${f.dir}/ca-new.key`).catch(() => undefined);
  }
  const [key, cert] = pemBlocks(out);
  if (!key || !cert || !/PRIVATE KEY/.test(key)) throw new Error('openssl printed no CA key and certificate');
  return { key, cert };
}

/**
 * The unit's server certificate (for its names) and client certificate (CN pgcharm-backup), each
 * issued again by openssl in the workload when it is missing, not from the current CA, lacks a
 * name, or expires within 30 days. Returns the server certificate (PEM).
 */
async function ensureCerts(w: PostgresWorkload, ca: KeyPair, names: string[]): Promise<string> {
  const f = tlsFiles(w.l);
  const key = `${ca.cert}|${names.join(',')}`;
  const seen = checked.get(w.l.storage);
  if (seen?.key === key && Date.now() - seen.at < RECHECK_MS) return seen.server;
  await w.ensureDir(f.dir, '700');
  await w.pushIfChanged(f.ca, ca.cert);
  const current = async (path: string) => (await w.readIfExists(path)) ?? '';
  const leaf = async (kind: 'server' | 'client', want: { dns?: string[]; cn?: string }, cn: string): Promise<string> => {
    const path = kind === 'server' ? f.serverCert : f.clientCert;
    const have = await current(path);
    const why = have ? needsRenewal(have, ca.cert, want) : 'missing';
    if (!why) return have;
    // The CA's key only for the moment openssl signs: the script removes it when it exits, and
    // this when it could not (killed at the exec's timeout, the sidecar gone).
    const caKey = `${f.dir}/.ca.key`;
    try {
      await w.pebble.push(caKey, ca.key, { user: 'postgres', group: 'postgres', permissions: '600' });
      await w.run(['/bin/sh', '-c', LEAF_SCRIPT, 'sh', f.dir, kind, `${kind}`, cn, (want.dns ?? []).join(','), randomBytes(16).toString('hex').replace(/^[89a-f]/, '7')]);
    } finally {
      await w.pebble.removePath(caKey).catch(() => undefined);
    }
    w.log.info({ cert: path, why }, 'certificate issued');
    return current(path);
  };
  // One after the other: both use the CA key file.
  const server = await leaf('server', { dns: names }, names[0]!);
  await leaf('client', { cn: BACKUP_CLIENT_CN }, BACKUP_CLIENT_CN);
  checked.set(w.l.storage, { key, at: Date.now(), server });
  return server;
}

/**
 * Certificates, the running service, and the bag entry `backup-server`. Called where the unit
 * configures pgBackRest (its server lines are in pgbackrest.conf already).
 */
export async function ensureBackupServer(ctx: EventContext, w: PostgresWorkload, plan: { names: string[]; bind: string; port: number }, pgPort: number): Promise<void> {
  const ca = await ensureCa(ctx.kube, ctx.app, () => makeCa(w, ctx.app));
  if (!ca) return;
  const serverCert = await ensureCerts(w, ca, plan.names);
  const digest = createHash('sha256').update(JSON.stringify([serverConfLines(w.l, plan), ca.cert, serverCert])).digest('hex').slice(0, 16);
  await w.ensureService(BACKUP_SERVER_SERVICE, backupServerLayer(w.l, digest), BACKUP_SERVER_SERVICE, digest);
  const at: BackupServer = { host: plan.names[0]!, port: plan.port, pgdata: w.l.pgdata, socket: w.l.socketDir, 'pg-port': pgPort };
  ctx.peers.local.set('backup-server', JSON.stringify(at));
}
