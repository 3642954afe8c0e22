import { stringify } from '#yaml';
import { backrestDir, backrestPassfile } from './backup.js';
import type { Layout } from './render.js';

/**
 * Backups taken from a streaming standby (pgBackRest's backup-standby). The backup runs on the
 * primary, where the repository is: pgBackRest starts and stops it on the primary and copies
 * the files from the standby (pg2), reaching it through the `pgbackrest server` every unit runs
 * in its workload, over mutual TLS with certificates from the deployment's CA. The primary's
 * disks and network only carry what changed while the backup ran.
 *
 * This file is pure (table-tested); backup-actions.ts runs it.
 */

/** The Pebble service that serves this unit's data directory to a backup on the primary. */
export const BACKUP_SERVER_SERVICE = 'pgbackrest-server';
/** The pod port it listens on (container port `pgbackrest`; 8432 in the manifests). */
export const BACKUP_SERVER_PORT_NAME = 'pgbackrest';
export const BACKUP_SERVER_PORT = 8432;
/** The subject of the client certificate the servers accept (tls-server-auth), for our stanza only. */
export const BACKUP_CLIENT_CN = 'pgcharm-backup';

/** Where a unit keeps its TLS files for the server and as a client. */
export const tlsFiles = (l: Layout) => {
  const d = `${backrestDir(l)}/tls`;
  return { dir: d, ca: `${d}/ca.crt`, serverCert: `${d}/server.crt`, serverKey: `${d}/server.key`, clientCert: `${d}/client.crt`, clientKey: `${d}/client.key` };
};

/**
 * The names a unit's server is reached by, the first one what clients connect to: locally
 * (every pod at 127.0.0.1) `localhost`; in Kubernetes the pod's DNS name under the headless
 * Service (`.svc`, resolved through the pod's search path whatever the cluster domain; the
 * certificate names the cluster.local form too). pgBackRest 2.45 checks DNS names only, not IP
 * addresses, so a certificate for the pod IP would not do.
 */
export function serverNames(o: { podIp: string; pod: string; app: string; namespace: string }): string[] {
  if (/^127\./.test(o.podIp) || o.podIp === '::1') return ['localhost'];
  const svc = `${o.pod}.${o.app}-endpoints.${o.namespace}.svc`;
  return [svc, `${svc}.cluster.local`];
}

/** Where the server binds: the name locally (so server and client resolve it alike), else the pod IP. */
export const serverBind = (names: readonly string[], podIp: string): string => (names[0] === 'localhost' ? 'localhost' : podIp);

/** pgbackrest.conf lines for the server ([global]; other commands ignore them). */
export function serverConfLines(l: Layout, s: { bind: string; port: number }): string[] {
  const f = tlsFiles(l);
  return [
    `tls-server-address=${s.bind}`,
    `tls-server-port=${s.port}`,
    `tls-server-cert-file=${f.serverCert}`,
    `tls-server-key-file=${f.serverKey}`,
    `tls-server-ca-file=${f.ca}`,
    // Only a client certificate with this subject, and only for our stanza.
    `tls-server-auth=${BACKUP_CLIENT_CN}=pgcharm`,
  ];
}

/**
 * The server as a Pebble service, as postgres. `digest` (of its config and certificates) is in
 * its environment so that a change is a changed layer: the server reads them only at start.
 */
export function backupServerLayer(l: Layout, digest: string): string {
  return stringify({
    summary: 'pgBackRest TLS server (pgcharm)',
    services: {
      [BACKUP_SERVER_SERVICE]: {
        override: 'replace',
        summary: 'serves this data directory to backups taken on the primary',
        command: `pgbackrest --config-path=${backrestDir(l)} server`,
        startup: 'enabled',
        user: 'postgres',
        group: 'postgres',
        // It connects to this unit's Postgres over the socket as the operator.
        environment: { PGPASSFILE: backrestPassfile(l), PGCHARM_CONFIG_DIGEST: digest },
      },
    },
  });
}

/** What a unit publishes in its bag (`backup-server`) once its server runs: where a backup finds it and its data. */
export interface BackupServer {
  host: string;
  port: number;
  pgdata: string;
  socket: string;
  'pg-port': number;
}

export function parseBackupServer(s: string | undefined): BackupServer | undefined {
  if (!s) return undefined;
  try {
    const v = JSON.parse(s) as Partial<BackupServer>;
    return typeof v.host === 'string' && typeof v.port === 'number' && typeof v.pgdata === 'string' && typeof v.socket === 'string' && typeof v['pg-port'] === 'number' ? (v as BackupServer) : undefined;
  } catch {
    return undefined;
  }
}

export interface SourceCandidate {
  unit: string;
  role: string | undefined;
  server: BackupServer | undefined;
  /** From the unit's Postgres now; undefined when it did not answer. */
  pos?: { streaming: boolean; timeline: number; lagBytes: number | null } | undefined;
  /**
   * Its server accepted a TCP connection just now. pgBackRest itself retries a refused
   * connection for minutes before it gives up, so a server that is down is skipped up front.
   */
  serverUp?: boolean;
}

/**
 * Where create-backup copies the files from: the streaming standby on the primary's timeline
 * with the least lag whose server runs; the primary itself when there is none (and why).
 */
export function chooseBackupSource(primaryTimeline: number, candidates: readonly SourceCandidate[]): { unit: string; server: BackupServer } | { why: string } {
  const ok = candidates
    .filter((c) => c.role === 'replica' && c.server && c.serverUp && c.pos?.streaming && c.pos.timeline === primaryTimeline)
    .sort((a, b) => (a.pos!.lagBytes ?? Infinity) - (b.pos!.lagBytes ?? Infinity) || a.unit.localeCompare(b.unit));
  const best = ok[0];
  if (best) return { unit: best.unit, server: best.server! };
  const replicas = candidates.filter((c) => c.role === 'replica');
  if (!replicas.length) return { why: 'no standby' };
  const why = replicas.map((c) => `${c.unit} ${!c.pos ? 'did not answer' : !c.pos.streaming ? 'is not streaming' : c.pos.timeline !== primaryTimeline ? `is on timeline ${c.pos.timeline}` : !c.server ? 'has no backup server' : 'has a backup server that does not answer'}`);
  return { why: why.join(', ') };
}

/** pgBackRest's options for a backup from `s` (pg2; pg1 is the primary, local). */
export function standbyArgs(l: Layout, s: BackupServer): string[] {
  const f = tlsFiles(l);
  return [
    '--backup-standby',
    `--pg2-host=${s.host}`,
    '--pg2-host-type=tls',
    `--pg2-host-port=${s.port}`,
    `--pg2-host-cert-file=${f.clientCert}`,
    `--pg2-host-key-file=${f.clientKey}`,
    `--pg2-host-ca-file=${f.ca}`,
    `--pg2-path=${s.pgdata}`,
    `--pg2-port=${s['pg-port']}`,
    `--pg2-socket-path=${s.socket}`,
    '--pg2-user=operator',
  ];
}

/**
 * One `backup file` (or, diff and incr, `match file from prior backup`) line of pgBackRest's detail log: the file, whether it came from a remote
 * (pg2: `host:path`), and how far the backup is (its percentage, of the bytes to copy).
 */
export function parseBackupFileLine(line: string): { remote: boolean; fraction: number } | undefined {
  const m = / DETAIL: (?:backup file|match file from prior backup) (\S+) \([^,]*, (\d+(?:\.\d+)?)%\)/.exec(line);
  if (!m) return undefined;
  // A local path starts with /; a remote one with its host.
  return { remote: !m[1]!.startsWith('/'), fraction: Math.min(1, Number(m[2]) / 100) };
}
