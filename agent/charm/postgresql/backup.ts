import type { ConfigValue } from '../../runtime/charm.js';
import type { Layout } from './render.js';
import { isBackupId, isLsn, parseRecoveryTime, TIME_EXAMPLE, type RecoveryTarget } from '../../charm-meta/values.js';

/**
 * Backups and WAL archiving with pgBackRest (see /work/shared/notes/pgbackrest-design.md for
 * what was tried). Each unit has its own pgBackRest config directory in its storage (locally
 * the units share a machine, so lock, log and spool paths must differ per unit), pointing at
 * the application's repository. The primary archives (archive_mode=on: standbys do not, so a
 * segment is never pushed by two units); every unit has restore_command, so a promoted standby
 * picks a timeline the archive does not have yet.
 *
 * This file is pure (rendering and decisions, table-tested); backup-run.ts runs pgBackRest in
 * the workload through the sidecar.
 */

/** One stanza per repository: the repository path is what separates deployments. */
export const STANZA = 'pgcharm';

/** The marker pgcharm leaves beside the stanza: who owns the repository, for the guard's message. */
export const OWNER_FILE = 'pgcharm-owner.json';

type Config = Readonly<Record<string, ConfigValue>>;

/** This unit's pgBackRest directory: config, lock, log and spool. */
export const backrestDir = (l: Layout): string => `${l.storage}/pgbackrest`;

/** The passfile pgBackRest's own connections use (the superuser over the local socket). */
export const backrestPassfile = (l: Layout): string => `${l.private}/pgpass-backup`;

/** An S3 repository (pgBackRest speaks HTTPS only). */
export interface S3Repo {
  host: string;
  port: number;
  bucket: string;
  /** The prefix in the bucket, starting with /. */
  path: string;
  region: string;
  uriStyle: 'host' | 'path';
  /** PEM CA chain to verify the endpoint with; '' for the system's. */
  ca: string;
}

const str = (config: Config, k: string) => String(config[k] ?? '').trim();

/**
 * The S3 repository when s3-bucket is set: s3-endpoint is host[:port] or https://host[:port]
 * (port 443 by default), s3-path the prefix (default /<application>). Throws, naming the
 * option, for what pgBackRest cannot use.
 */
export function s3Repo(config: Config, app: string): S3Repo | undefined {
  const bucket = str(config, 's3-bucket');
  if (!bucket) return undefined;
  const raw = str(config, 's3-endpoint');
  if (!raw) throw new Error('s3-endpoint: required with s3-bucket (host[:port] of the S3 service)');
  if (/^http:\/\//i.test(raw)) throw new Error(`s3-endpoint: ${raw}: pgBackRest speaks only HTTPS to S3`);
  const m = /^(?:https:\/\/)?([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?\/?$/.exec(raw);
  if (!m) throw new Error(`s3-endpoint: ${JSON.stringify(raw)} is not host[:port]`);
  const path = str(config, 's3-path') || `/${app}`;
  const style = str(config, 's3-uri-style') || 'host';
  if (style !== 'host' && style !== 'path') throw new Error(`s3-uri-style: must be host or path, got ${JSON.stringify(style)}`);
  return { host: m[1]!, port: m[2] ? Number(m[2]) : 443, bucket, path: path.startsWith('/') ? path.replace(/\/+$/, '') || '/' : `/${path.replace(/\/+$/, '')}`, region: str(config, 's3-region') || 'us-east-1', uriStyle: style, ca: String(config['s3-tls-ca-chain'] ?? '').trim() };
}

/**
 * The posix repository: `backup-repo-path`, else (local controller) the model's backups
 * directory, one per application; undefined when there is neither, or when the repository is
 * in S3.
 */
export function repoPath(config: Config, app: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (str(config, 's3-bucket')) return undefined;
  const set = str(config, 'backup-repo-path');
  if (set === NO_REPO) return undefined;
  if (set) return set.replace(/\/+$/, '');
  const base = env['PGCHARM_BACKUP_DIR'];
  return base ? `${base.replace(/\/+$/, '')}/${app}` : undefined;
}

/** The repository as messages name it: a path, or s3://bucket/prefix at the endpoint. */
export function repoName(config: Config, app: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const s3 = (() => {
    try {
      return s3Repo(config, app);
    } catch {
      return undefined;
    }
  })();
  return s3 ? `s3://${s3.bucket}${s3.path} at ${s3.host}:${s3.port}` : repoPath(config, app, env);
}

/** backup-repo-path's value for no repository at all (no archiving), the local default included. */
export const NO_REPO = 'none';

/** Whether this deployment archives WAL: it has a repository. */
export const archiving = (config: Config, env: NodeJS.ProcessEnv = process.env): boolean =>
  Boolean(str(config, 's3-bucket')) || (str(config, 'backup-repo-path') === NO_REPO ? false : Boolean(str(config, 'backup-repo-path') || env['PGCHARM_BACKUP_DIR']));

const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** pgBackRest's command line for this unit (the config path keeps /etc/pgbackrest.conf out). */
export const backrestArgv = (l: Layout): string[] => ['pgbackrest', `--config-path=${backrestDir(l)}`, `--stanza=${STANZA}`];

/** What Postgres needs to archive and to fetch archived WAL; reload-class except archive_mode. */
export function archiveParams(config: Config, l: Layout): Record<string, string> {
  const cmd = `pgbackrest --config-path=${shq(backrestDir(l))} --stanza=${STANZA}`;
  return {
    archive_mode: 'on',
    archive_command: `${cmd} archive-push %p`,
    restore_command: `${cmd} archive-get %f "%p"`,
    archive_timeout: `${Number(config['archive-timeout'])}s`,
  };
}

/** The S3 keys' file (0600, postgres), included from the config directory: never argv, env or a ConfigMap. */
export const s3CredentialsFile = (l: Layout): string => `${backrestDir(l)}/conf.d/s3-credentials.conf`;
/** The S3 endpoint's CA chain (s3-tls-ca-chain). */
export const s3CaFile = (l: Layout): string => `${backrestDir(l)}/s3-ca.pem`;

/** What is wrong with the S3 keys (the name and the reason), undefined when nothing: they go into an INI line. */
export function s3KeysProblem(key: string, secret: string): string | undefined {
  for (const [k, v] of Object.entries({ 'access-key': key, 'secret-key': secret })) {
    if (!v || /\s/.test(v)) return `${k}: must be non-empty, without spaces or line breaks`;
  }
  return undefined;
}

export function renderS3Credentials(key: string, secret: string): string {
  const problem = s3KeysProblem(key, secret);
  if (problem) throw new Error(problem);
  return `[global]\nrepo1-s3-key=${key}\nrepo1-s3-key-secret=${secret}\n`;
}

/** pgbackrest.conf for one unit (INI; values are taken to the end of the line). */
export function renderBackrestConf(o: { config: Config; repo: string | S3Repo; l: Layout; port: number; server?: string[] | undefined }): string {
  const dir = backrestDir(o.l);
  const repoLines =
    typeof o.repo === 'string'
      ? [`repo1-path=${o.repo}`]
      : [
          'repo1-type=s3',
          `repo1-path=${o.repo.path}`,
          `repo1-s3-endpoint=${o.repo.host}`,
          `repo1-storage-port=${o.repo.port}`,
          `repo1-s3-bucket=${o.repo.bucket}`,
          `repo1-s3-region=${o.repo.region}`,
          `repo1-s3-uri-style=${o.repo.uriStyle}`,
          'repo1-storage-verify-tls=y',
          ...(o.repo.ca ? [`repo1-storage-ca-file=${s3CaFile(o.l)}`] : []),
        ];
  for (const [k, v] of Object.entries({ repo: repoLines.join(' '), storage: o.l.storage })) {
    if (/[\n\r]/.test(v)) throw new Error(`${k} path contains a line break: ${JSON.stringify(v)}`);
  }
  return [
    '# Written by the pgcharm charm; edits are overwritten. Change settings with `pgcharm config`.',
    '[global]',
    ...repoLines,
    `repo1-retention-full=${Number(o.config['backup-retention-full'])}`,
    `lock-path=${dir}/lock`,
    `log-path=${dir}/log`,
    `spool-path=${dir}/spool`,
    // archive-push returns at once and a background process ships the segments.
    'archive-async=y',
    // Quiet: errors and warnings only (to the caller, and to Postgres's log for archive-push).
    'log-level-console=warn',
    'log-level-stderr=warn',
    'log-level-file=warn',
    // A backup starts with an immediate checkpoint, not a spread one.
    'start-fast=y',
    'process-max=2',
    'compress-type=lz4',
    // This unit's TLS server, for backups taken from it while a standby (backup-standby.ts).
    ...(o.server ?? []),
    `[${STANZA}]`,
    `pg1-path=${o.l.pgdata}`,
    `pg1-port=${o.port}`,
    `pg1-socket-path=${o.l.socketDir}`,
    'pg1-user=operator',
    '',
  ].join('\n');
}

export interface BackupInfo {
  id: string;
  type: string;
  /** ISO 8601 (UTC). */
  start: string;
  stop: string;
  'lsn-start': string;
  'lsn-stop': string;
  timeline: number;
  /** Bytes of the database, and what the backup takes in the repository. */
  size: number;
  'repository-size': number;
  /** The backup this one builds on (diff, incr), else ''. */
  prior: string;
}

export interface StanzaInfo {
  /** pgBackRest's status code: 0 ok, 1 missing stanza path, 2 no valid backups, 3 missing stanza data, 99 other error. */
  code: number;
  message: string;
  /** The system identifier of the stanza's current database (a string: 64-bit), undefined without a stanza. */
  systemId?: string;
  backups: BackupInfo[];
  /** The archived WAL range of the current database, when any. */
  archive?: { min: string; max: string };
  /** The current database's archive directory name (like 15-1), when the stanza has one. */
  archiveId?: string;
}

/**
 * `pgbackrest info --output=json` for our stanza. The system identifier is a 64-bit integer
 * that JSON.parse would round, so it is read as a string first.
 */
export function parseInfo(raw: string): StanzaInfo {
  const text = raw.replace(/("system-id"\s*:\s*)(\d+)/g, '$1"$2"');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error(`pgbackrest info printed no JSON: ${raw.slice(0, 200)}`);
  }
  type Raw = {
    name?: string;
    status?: { code?: number; message?: string };
    db?: { id: number; 'system-id': string }[];
    backup?: {
      label: string;
      type: string;
      prior?: string | null;
      timestamp?: { start: number; stop: number };
      lsn?: { start: string; stop: string };
      archive?: { start: string; stop: string };
      info?: { size?: number; repository?: { delta?: number; size?: number } };
      database?: { id: number };
    }[];
    archive?: { id?: string; min?: string | null; max?: string | null; database?: { id: number } }[];
    repo?: { status?: { code?: number; message?: string } }[];
  };
  const stanza = (Array.isArray(doc) ? (doc as Raw[]) : []).find((s) => s.name === STANZA);
  if (!stanza) return { code: 1, message: 'missing stanza', backups: [] };
  const dbs = [...(stanza.db ?? [])].sort((a, b) => b.id - a.id);
  const current = dbs[0];
  const iso = (s: number | undefined) => (s ? new Date(s * 1000).toISOString() : '');
  const backups = (stanza.backup ?? []).map(
    (b): BackupInfo => ({
      id: b.label,
      type: b.type,
      start: iso(b.timestamp?.start),
      stop: iso(b.timestamp?.stop),
      'lsn-start': b.lsn?.start ?? '',
      'lsn-stop': b.lsn?.stop ?? '',
      // The first 8 hex digits of a WAL segment name are its timeline.
      timeline: b.archive?.start ? parseInt(b.archive.start.slice(0, 8), 16) : 0,
      size: b.info?.size ?? 0,
      'repository-size': b.info?.repository?.delta ?? b.info?.repository?.size ?? 0,
      prior: b.prior ?? '',
    }),
  );
  const arch = (stanza.archive ?? []).find((a) => current && a.database?.id === current.id);
  // The stanza's status says only "other" for a repository error; the repository's says what.
  const repoError = (stanza.repo ?? []).map((r) => r.status).find((st) => st && st.code !== 0 && st.message)?.message;
  return {
    code: stanza.status?.code ?? 99,
    message: repoError ?? stanza.status?.message ?? '',
    ...(current ? { systemId: String(current['system-id']) } : {}),
    backups,
    ...(arch?.min && arch.max ? { archive: { min: arch.min, max: arch.max } } : {}),
    ...(arch?.id ? { archiveId: arch.id } : {}),
  };
}

/** Who made a repository's stanza (OWNER_FILE), as far as pgcharm recorded it. */
export interface RepoOwner {
  application: string;
  namespace: string;
  'system-identifier': string;
}

export type StanzaDecision =
  | { kind: 'create'; why: string }
  | { kind: 'ours'; why: string }
  | { kind: 'foreign'; why: string }
  | { kind: 'unreachable'; why: string };

/**
 * Whether this cluster may write to the repository: its stanza must be missing (create it) or
 * belong to this cluster's system identifier. Never stanza-upgrade onto another cluster's
 * stanza: pgBackRest would accept it and lock the rightful owner out.
 */
export function decideStanza(o: { info: StanzaInfo; systemId: string; repo: string; app: string; namespace: string; owner?: RepoOwner | undefined }): StanzaDecision {
  const { info } = o;
  if (info.systemId === undefined) {
    // 1: no stanza directory; 3: a stanza directory without its info files (an interrupted create).
    if (info.code === 1 || info.code === 3) return { kind: 'create', why: `no stanza in ${o.repo} yet` };
    return { kind: 'unreachable', why: `the backup repository ${o.repo} cannot be read: ${info.message || `pgBackRest status ${info.code}`}` };
  }
  if (info.systemId === o.systemId) return { kind: 'ours', why: `the stanza in ${o.repo} is this cluster's` };
  const who = o.owner && o.owner['system-identifier'] === info.systemId ? `application ${o.owner.application} in ${o.owner.namespace}` : 'another cluster';
  return {
    kind: 'foreign',
    why: `backup repository ${o.repo} belongs to ${who} (system identifier ${info.systemId}), not to ${o.app} in ${o.namespace} (system identifier ${o.systemId}): nothing is written there; set backup-repo-path to a repository of its own`,
  };
}

/** create-backup's type param, as pgBackRest names it. */
export const BACKUP_TYPES = ['full', 'diff', 'incr'] as const;
export type BackupType = (typeof BACKUP_TYPES)[number];
export const isBackupType = (t: unknown): t is BackupType => typeof t === 'string' && (BACKUP_TYPES as readonly string[]).includes(t);

/** pg_stat_archiver as the archiving check reads it (epoch ms). */
export interface ArchiverStats {
  failedAt?: number | undefined;
  archivedAt?: number | undefined;
  lastFailedWal?: string | undefined;
}

/** The last archive attempt failed after the last success. */
export const archiveFailing = (s: ArchiverStats): boolean => s.failedAt !== undefined && (s.archivedAt === undefined || s.failedAt > s.archivedAt);

/** After this long failing, archiving blocks the application (a total loss would lose everything since). */
export const ARCHIVE_BLOCK_AFTER_MS = 10 * 60_000;

/**
 * Whether WAL archiving is failing now (the last attempt failed after the last success), since
 * when on this unit's clock, and what the statuses say: a message at once, blocked after
 * ARCHIVE_BLOCK_AFTER_MS. A failing archive is never silent.
 */
export function archiveState(s: ArchiverStats, since: number | undefined, now: number, reason?: string): { since?: number; message?: string; blocked: boolean } {
  if (!archiveFailing(s)) return { blocked: false };
  const from = since ?? now;
  const mins = Math.floor((now - from) / 60_000);
  const message = `WAL archiving failing${mins ? ` for ${mins} min` : ''} (segment ${s.lastFailedWal ?? '?'})${reason ? `: ${reason}` : ''}`;
  return { since: from, message, blocked: now - from >= ARCHIVE_BLOCK_AFTER_MS };
}

/** What a restore recovers to: a backup's end, a time, an LSN, or the end of the archive. */
export type RestoreTarget = RecoveryTarget;

/**
 * The restore action's params: exactly one of backup-id, restore-to-time (RFC 3339 or a
 * PostgreSQL timestamp; UTC when it has no offset), restore-to-lsn, latest=true.
 */
export function parseRestoreParams(p: Readonly<Record<string, unknown>>): RestoreTarget | { error: string } {
  const given = ['backup-id', 'restore-to-time', 'restore-to-lsn', 'latest'].filter((k) => p[k] !== undefined && p[k] !== '' && p[k] !== false);
  if (given.length !== 1) return { error: `give exactly one of backup-id, restore-to-time, restore-to-lsn, latest=true (got ${given.length ? given.join(', ') : 'none'})` };
  const k = given[0]!;
  const v = String(p[k]).trim();
  if (k === 'backup-id') return isBackupId(v) ? { kind: 'backup', id: v } : { error: `params.backup-id: ${JSON.stringify(v)} is not a pgBackRest backup id (like 20261127-204517F); list-backups shows them` };
  if (k === 'restore-to-lsn') return isLsn(v) ? { kind: 'lsn', lsn: v.toUpperCase() } : { error: `params.restore-to-lsn: ${JSON.stringify(v)} is not an LSN (like 0/3000060)` };
  if (k === 'latest') return { kind: 'latest' };
  const t = parseRecoveryTime(v);
  return t ? { kind: 'time', ...t } : { error: `params.restore-to-time: ${JSON.stringify(v)} is not a timestamp (${TIME_EXAMPLE})` };
}

/** 16 MB WAL segments (initdb's default; pgcharm does not change it). */
const SEGMENT = 0x1000000n;
const hex8 = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
const segno = (lsn: string): bigint => lsnNumber(lsn) / SEGMENT;
/** A WAL segment's file name on a timeline. */
export const segmentName = (tli: number, no: bigint): string => `${hex8(tli)}${hex8(no / 0x100n)}${hex8(no % 0x100n)}`;

/** A timeline history file (pg_wal/0000000N.history): each ancestor timeline and the LSN where it ended. */
export function parseHistory(text: string): { tli: number; switchLsn: string }[] {
  return text
    .split('\n')
    .map((l) => /^\s*(\d+)\s+([0-9A-F]+\/[0-9A-F]+)/i.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ tli: Number(m[1]), switchLsn: m[2]!.toUpperCase() }));
}

/**
 * WAL of the timeline a promotion ended that the archive lacks: segments the old primary
 * completed (its standbys streamed them) but had not archived when it failed. Standbys do not
 * archive (archive_mode=on), so nobody would: a restore into or across them would fail. Needed
 * are the parent timeline's segments from its start (or the oldest backup's, if later) up to
 * the one it ended in, which the promotion copied into the new timeline (and archives as
 * .partial). `archived`: the archive's file names (segment, then -checksum and extension).
 * Nothing is needed without a backup to restore from.
 */
export function archiveGap(o: { history: readonly { tli: number; switchLsn: string }[]; archived: readonly string[]; oldestBackupLsn?: string | undefined }): string[] {
  const parent = o.history.at(-1);
  if (!parent || !o.oldestBackupLsn) return [];
  const before = o.history.at(-2);
  const start = before ? segno(before.switchLsn) : 0n;
  const from = segno(o.oldestBackupLsn) > start ? segno(o.oldestBackupLsn) : start;
  const have = new Set(o.archived.map((f) => f.split('/').pop()!).filter((f) => /^[0-9A-F]{24}-/.test(f) && parseInt(f.slice(0, 8), 16) === parent.tli).map((f) => f.slice(0, 24)));
  const missing: string[] = [];
  for (let n = from; n < segno(parent.switchLsn); n++) {
    const name = segmentName(parent.tli, n);
    if (!have.has(name)) missing.push(name);
  }
  return missing;
}

/** The LSN just past a WAL segment (16 MB segments), as a number. */
function segmentEnd(segment: string): bigint {
  const log = BigInt(`0x${segment.slice(8, 16)}`);
  const seg = BigInt(`0x${segment.slice(16, 24)}`);
  return (log << 32n) + (seg + 1n) * 0x1000000n;
}

const lsnNumber = (lsn: string): bigint => {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
};

/** Whether the repository can recover to the target: refused (with why) before anything stops. */
export function checkRestoreTarget(t: RestoreTarget, info: StanzaInfo, now: number): { ok: true } | { error: string } {
  const done = info.backups;
  if (!done.length) return { error: 'the repository has no backup to restore from: create-backup first' };
  const first = done[0]!;
  if (t.kind === 'backup') return done.some((b) => b.id === t.id) ? { ok: true } : { error: `params.backup-id: no backup ${t.id} in the repository (list-backups shows ${done.map((b) => b.id).join(', ')})` };
  if (t.kind === 'time') {
    if (t.at > now) return { error: `params.restore-to-time: ${t.time} is in the future` };
    // pgBackRest records a backup's stop to the second and wants one that stopped before the
    // target: a target in the second the first backup ended is not reachable either.
    if (t.at < Date.parse(first.stop) + 1000) return { error: `params.restore-to-time: ${t.time} is before the end of the first backup (${first.id}, ${first.stop}); nothing can be restored to it` };
  }
  if (t.kind === 'lsn') {
    if (lsnNumber(t.lsn) < lsnNumber(first['lsn-stop'])) return { error: `params.restore-to-lsn: ${t.lsn} is before the end of the first backup (${first.id}, ${first['lsn-stop']})` };
    if (!info.archive || lsnNumber(t.lsn) > segmentEnd(info.archive.max)) return { error: `params.restore-to-lsn: ${t.lsn} is past the end of the archived WAL (${info.archive?.max ?? 'none'})` };
  }
  return { ok: true };
}

/** What pgBackRest writes into postgresql.auto.conf for a recovery: reset once promoted, or a later recovery (a rewind into a standby) would stop at the target. */
export const RECOVERY_SETTINGS = ['restore_command', 'recovery_target', 'recovery_target_time', 'recovery_target_lsn', 'recovery_target_xid', 'recovery_target_name', 'recovery_target_action', 'recovery_target_timeline', 'recovery_target_inclusive'] as const;

/** pgBackRest's restore arguments for a target: into the existing data directory (--delta), promoting at the target. */
export function restoreArgs(t: RestoreTarget): string[] {
  switch (t.kind) {
    case 'backup':
      return ['restore', '--delta', `--set=${t.id}`, '--type=immediate', '--target-action=promote'];
    case 'time':
      return ['restore', '--delta', '--type=time', `--target=${t.time}`, '--target-action=promote'];
    case 'lsn':
      return ['restore', '--delta', '--type=lsn', `--target=${t.lsn}`, '--target-action=promote'];
    case 'latest':
      return ['restore', '--delta', '--type=default'];
  }
}

/** A restore the leader asked for (the application bag's `restore`). */
export interface RestoreRequest {
  token: string;
  /** The unit that is restored and serves as primary afterwards; the others stop, then rejoin it. */
  primary: string;
  target: RestoreTarget;
  /** What the user asked for, for the statuses. */
  what: string;
}

export function parseRestoreRequest(s: string | undefined): RestoreRequest | undefined {
  if (!s) return undefined;
  try {
    const r = JSON.parse(s) as Partial<RestoreRequest>;
    return typeof r.token === 'string' && typeof r.primary === 'string' && r.target && typeof r.what === 'string' ? (r as RestoreRequest) : undefined;
  } catch {
    return undefined;
  }
}

/** What a restore describes itself as in statuses and logs. */
export function describeTarget(t: RestoreTarget): string {
  return t.kind === 'backup' ? `backup ${t.id}` : t.kind === 'time' ? `time ${t.time}` : t.kind === 'lsn' ? `LSN ${t.lsn}` : 'the end of the archive';
}
