import { recordEvent } from '../../runtime/cluster-events.js';
import { connect } from 'node:net';
import type { CharmLoop, EventContext, Handler } from '../../runtime/charm.js';
import { nextCronRun } from '../../charm-meta/values.js';
import { archiveFailing, archiveGap, type BackupType, archiveState, archiving, checkRestoreTarget, decideStanza, describeTarget, isBackupType, parseHistory, parseRestoreParams, repoName, STANZA, repoPath, s3KeysProblem, s3Repo, type RestoreRequest, type S3Repo } from './backup.js';
import { dumpKey, type S3Dumps } from './dump-s3.js';
import { Backrest } from './backup-run.js';
import { backupServerPlan, ensureBackupServer } from './backup-server.js';
import { chooseBackupSource, parseBackupFileLine, parseBackupServer, serverConfLines, type BackupServer } from './backup-standby.js';
import { memberPositions, memberTargets, parseAddress } from './positions.js';
import { readPasswords, readS3Credentials, writeS3Credentials, type Passwords } from './secrets.js';
import { local, state } from './state.js';
import { unitWorkload, withConnection, type PostgresWorkload } from './workload.js';

/**
 * The charm's side of backups: configuring pgBackRest on every unit, the primary's check that
 * the repository is this cluster's (and creating its stanza), and the backup actions.
 */

const NO_REPOSITORY = 'no backup repository: set backup-repo-path or s3-bucket (on Kubernetes there is no default)';

/** Where dumps go: the repository's `dumps/` (a path, or the S3 prefix). */
type DumpRepo = { kind: 'posix'; path: string } | { kind: 's3'; repo: S3Repo };

function dumpRepo(config: EventContext['config'], app: string): DumpRepo | undefined {
  const s3 = s3Repo(config, app);
  if (s3) return { kind: 's3', repo: s3 };
  const path = repoPath(config, app);
  return path ? { kind: 'posix', path } : undefined;
}

async function openS3Dumps(ctx: EventContext, repo: S3Repo): Promise<S3Dumps> {
  const keys = await readS3Credentials(ctx.kube, ctx.app);
  if (!keys) throw new Error('no S3 keys yet: pgcharm run leader set-s3-credentials --params FILE');
  const { S3Dumps } = await import('./dump-s3.js');
  return S3Dumps.open(repo, keys);
}

/**
 * pg_dump -Fc -Z9 of `db` as `<db>-<stamp>.dump` and `<db>-latest.dump` under the repository's
 * dumps/<db>/: locally written beside and renamed; in S3 streamed through the sidecar into a
 * multipart upload that completes only with pg_dump, then copied server-side to the latest.
 */
async function takeDump(ctx: EventContext, repo: DumpRepo, b: Backrest, db: string, at: string): Promise<{ file: string; latest: string; bytes: number }> {
  if (repo.kind === 'posix') return b.dump(db, dumpDir(repo.path, db), at);
  const store = await openS3Dumps(ctx, repo.repo);
  try {
    const [key, latest] = [dumpKey(repo.repo, db, `${db}-${at}.dump`), dumpKey(repo.repo, db, `${db}-latest.dump`)];
    const bytes = await store.put(key, (out) => b.dumpTo(db, out));
    await store.copy(key, latest);
    return { file: store.where(key), latest: store.where(latest), bytes };
  } finally {
    store.close();
  }
}

/** Actions that must run on the primary: `why`, and how to run `cmd` there, unless this is it. */
async function notOnPrimary(ctx: EventContext, why: string, cmd: string): Promise<string | undefined> {
  const holder = await state.lease(ctx).holder();
  if (holder === ctx.unit && ctx.peers.local.get('role') === 'primary') return undefined;
  return holder ? `${why}: pgcharm run ${holder} ${cmd}` : `${why} (there is none now)`;
}

/** A primary whose repository is foreign or unreadable looks at it again this often. */
const RECHECK_MS = 60_000;

/** Every unit, before its Postgres starts (archive_command and restore_command run pgBackRest). */
export async function configureBackrest(ctx: EventContext, w: PostgresWorkload, port: number, pw: Passwords): Promise<void> {
  let s3;
  try {
    s3 = s3Repo(ctx.config, ctx.app);
  } catch (e) {
    // An S3 setting pgBackRest cannot use: blocked, saying which (nothing is written anywhere).
    ctx.peers.local.set('backup-blocked', (e as Error).message);
    return;
  }
  const repo = s3 ?? repoPath(ctx.config, ctx.app);
  if (!repo) return;
  const server = backupServerPlan(ctx);
  await new Backrest(w).configure({ config: ctx.config, repo, port, operatorPassword: pw.operator, server: server && serverConfLines(w.l, server), ...(s3 ? { s3: (await readS3Credentials(ctx.kube, ctx.app)) ?? null } : {}) });
  if (server) wantBackupServer(ctx, server, port);
}

/** What the backup server is set up for: its plan, the Postgres port, and the day (certificates are looked at again daily). */
const serverKey = (server: object, port: number): string => JSON.stringify([server, port, Math.floor(Date.now() / 86_400_000)]);

/**
 * The backup server (certificates, service) is set up in an event of its own after the hook:
 * new keys and a CA take a moment, and nothing in a bootstrap needs the server.
 */
function wantBackupServer(ctx: EventContext, server: object, port: number): void {
  if (state.backupServerReady !== serverKey(server, port)) ctx.emit('pgcharm-backup-server');
}

const setUpBackupServer: Handler = async (ctx) => {
  const server = backupServerPlan(ctx);
  const port = ctx.workload.address()?.port;
  if (!server || !port || !archiving(ctx.config) || state.backupServerReady === serverKey(server, port)) return;
  await ensureBackupServer(ctx, unitWorkload(ctx), server, port);
  state.backupServerReady = serverKey(server, port);
};

/** What a stanza check is valid for: the repository, and the S3 keys it was read with. */
function repoKey(ctx: EventContext): string | undefined {
  const name = repoName(ctx.config, ctx.app);
  return name && `${name}|${ctx.peers.app.get('s3-credentials-set') ?? ''}`;
}

/**
 * Asked by the primary's reconcile: the stanza check runs as its own event, after the hook
 * that started the primary (a bootstrap does not wait for pgBackRest), once per repository,
 * and again every minute while the repository is foreign or unreadable.
 */
export function wantStanzaCheck(ctx: EventContext): void {
  const repo = repoKey(ctx);
  if (!repo || !archiving(ctx.config)) return;
  const blocked = ctx.peers.local.get('backup-blocked');
  if (state.stanzaChecked === repo && !blocked) return;
  if (blocked && state.stanzaTried === repo && Date.now() - state.stanzaCheckedAt < RECHECK_MS) return;
  ctx.emit('pgcharm-stanza');
}

const checkStanza: Handler = async (ctx) => {
  const repo = repoName(ctx.config, ctx.app);
  // The owner marker is a file beside the stanza: in a posix repository only.
  const posix = repoPath(ctx.config, ctx.app);
  const me = ctx.workload.address();
  const pw = await readPasswords(ctx.kube, ctx.app);
  if (!repo || !me || !pw || ctx.peers.local.get('role') !== 'primary') return;
  state.stanzaCheckedAt = Date.now();
  state.stanzaTried = repoKey(ctx);
  const b = new Backrest(unitWorkload(ctx));
  const systemId = await withConnection(me, pw.operator, async (c) => (await c.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0]!.id);
  const noKeys = s3Repo(ctx.config, ctx.app) && !(await readS3Credentials(ctx.kube, ctx.app));
  const [info, owner] = noKeys ? [{ code: 99, message: 'no S3 keys yet: pgcharm run leader set-s3-credentials --params FILE', backups: [] }, undefined] : await Promise.all([b.info(), posix ? b.owner(posix) : undefined]);
  const namespace = ctx.kube.namespace;
  const d = decideStanza({ info, systemId, repo, app: ctx.app, namespace, owner });
  const mine = { application: ctx.app, namespace, 'system-identifier': systemId };
  if (d.kind === 'create') {
    await b.stanzaCreate();
    if (posix) await b.writeOwner(posix, mine);
    // WAL switched before the stanza existed failed to archive, and Postgres's archiver waits a
    // minute after three failures: a reload wakes it to push those segments now.
    await withConnection(me, pw.operator, (c) => c.query('SELECT pg_reload_conf()'));
  } else if (d.kind === 'ours' && posix && (owner?.application !== ctx.app || owner.namespace !== namespace)) {
    // Ours by system identifier but marked by another deployment: this one was restored from
    // that one's backups (bootstrap-from-backup) and takes the repository over.
    await b.writeOwner(posix, mine);
  }
  const blocked = d.kind === 'foreign' || d.kind === 'unreachable' ? d.why : null;
  const was = ctx.peers.local.get('backup-blocked') ?? null;
  ctx.peers.local.set('backup-blocked', blocked);
  state.stanzaChecked = blocked ? undefined : repoKey(ctx);
  if (blocked !== was || d.kind === 'create') ctx.log[blocked ? 'error' : 'info']({ decision: d.kind, why: d.why, repo }, 'backup repository');
  // The reconcile writes the statuses (the unit's, and the leader's for the application).
  if (blocked !== was) ctx.emit('pgcharm-reconcile');
  // A promoted standby checks its stanza first, then what the old primary left unarchived.
  if (!blocked) wantArchiveGapCheck(ctx);
};

/** What blocks the primary and the application: a foreign or unreadable repository, archiving failing for long. */
export function backupProblem(bag: { get(k: string): string | undefined }): string | undefined {
  return bag.get('backup-blocked') || (bag.get('archive-blocked') ? bag.get('archive-problem') : undefined) || undefined;
}

/** A failing archive short of blocking: said in the primary's status message. */
export const archiveWarning = (bag: { get(k: string): string | undefined }): string | undefined => [bag.get('archive-problem'), bag.get('archive-gap')].filter(Boolean).join('; ') || undefined;

/**
 * The primary's update-status: is WAL archiving failing (pg_stat_archiver, on the kept
 * connection)? Records it in the unit bag (status, `pgcharm status`, the leader's application
 * status) only when that changes; returns whether it did.
 */
export async function checkArchiving(ctx: EventContext, me: { host: string; port: number }, pw: Passwords): Promise<boolean> {
  if (!archiving(ctx.config)) return false;
  const [r] = await local.query<{ failed_at: number | null; archived_at: number | null; wal: string | null }>(
    me,
    pw.operator,
    'SELECT extract(epoch FROM last_failed_time) * 1000 AS failed_at, extract(epoch FROM last_archived_time) * 1000 AS archived_at, last_failed_wal AS wal FROM pg_stat_archiver',
  );
  const stats = { failedAt: r?.failed_at ?? undefined, archivedAt: r?.archived_at ?? undefined, lastFailedWal: r?.wal ?? undefined };
  // pgBackRest's reason, read only while it fails.
  const reason = archiveFailing(stats) ? await new Backrest(unitWorkload(ctx)).archiveError().catch(() => undefined) : undefined;
  const a = archiveState(stats, state.archiveFailingSince, Date.now(), reason);
  state.archiveFailingSince = a.since;
  const problem = a.message ?? null;
  const blocked = a.blocked ? 'true' : null;
  if ((ctx.peers.local.get('archive-problem') ?? null) === problem && (ctx.peers.local.get('archive-blocked') ?? null) === blocked) return false;
  ctx.peers.local.set('archive-problem', problem);
  ctx.peers.local.set('archive-blocked', blocked);
  ctx.log[problem ? 'warn' : 'info']({ decision: problem ? 'archiving failing' : 'archiving works', why: problem ?? 'the last segment was archived' }, 'backup');
  return true;
}

/** The primary's reconcile: once per timeline after a promotion, the archive is checked for WAL the old primary never archived. */
export function wantArchiveGapCheck(ctx: EventContext): void {
  const tl = Number(ctx.peers.local.get('timeline') ?? 0);
  if (tl <= 1 || state.gapCheckedTimeline === tl || state.stanzaChecked !== repoKey(ctx) || !archiving(ctx.config)) return;
  if (Date.now() - state.gapCheckFailedAt < RECHECK_MS) return;
  ctx.emit('pgcharm-archive-gap');
}

/** The check never fails its event (a failed event would hold every later one): it logs, and is tried again a minute later. */
const archiveGapCheck: Handler = async (ctx) => {
  try {
    await checkArchiveGap(ctx);
  } catch (e) {
    state.gapCheckFailedAt = Date.now();
    ctx.log.warn({ decision: 'archive gap check failed', why: e instanceof Error ? e.message : String(e), retryInMs: RECHECK_MS }, 'backup');
  }
};

/**
 * After a promotion: the old timeline's segments the old primary completed but never archived
 * (backup.ts archiveGap). Those this unit still has in pg_wal (it streamed them) are pushed
 * now; if any is gone, point-in-time recovery into that stretch is impossible for good: the
 * primary says so and takes a full backup, so that a restore to any time from now on works.
 */
async function checkArchiveGap(ctx: EventContext): Promise<void> {
  const me = ctx.workload.address();
  const pw = await readPasswords(ctx.kube, ctx.app);
  if (!me || !pw || ctx.peers.local.get('role') !== 'primary' || !archiving(ctx.config) || state.stanzaChecked !== repoKey(ctx)) return;
  const w = unitWorkload(ctx);
  const { tl, history } = await withConnection(me, pw.operator, async (c) => {
    const t = parseInt((await c.query<{ w: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS w')).rows[0]!.w.slice(0, 8), 16);
    const file = `pg_wal/${t.toString(16).toUpperCase().padStart(8, '0')}.history`;
    const text = t > 1 ? (await c.query<{ h: string | null }>('SELECT pg_read_file($1::text, 0, 1048576, true) AS h', [file])).rows[0]?.h : undefined;
    return { tl: t, history: parseHistory(text ?? '') };
  });
  if (tl <= 1 || state.gapCheckedTimeline === tl) return;
  const b = new Backrest(w);
  const info = await b.info();
  if (info.code !== 0 || !info.archiveId) return;
  const listed = () => b.repoLs(`archive/${STANZA}/${info.archiveId}`);
  const missing = archiveGap({ history, archived: await listed(), oldestBackupLsn: info.backups[0]?.['lsn-start'] });
  const pushed: string[] = [];
  for (const seg of missing) {
    if (!(await w.exists(`${w.l.pgdata}/pg_wal/${seg}`))) continue;
    await b.pushSegment(`${w.l.pgdata}/pg_wal/${seg}`);
    pushed.push(seg);
  }
  const left = pushed.length ? archiveGap({ history, archived: await listed(), oldestBackupLsn: info.backups[0]?.['lsn-start'] }) : missing;
  if (pushed.length) ctx.log.warn({ decision: 'archived what the old primary had not', segments: pushed, timeline: history.at(-1)?.tli, why: 'the old primary failed before it archived them; this unit had streamed them' }, 'backup');
  if (!left.length) {
    state.gapCheckedTimeline = tl;
    if (ctx.peers.local.get('archive-gap')) ctx.peers.local.set('archive-gap', null);
    return;
  }
  const gap = `WAL ${left[0]}${left.length > 1 ? `..${left.at(-1)}` : ''} (${left.length} segment${left.length > 1 ? 's' : ''}) was never archived: the old primary failed first; no restore can reach a time in or after it from an older backup`;
  ctx.peers.local.set('archive-gap', `${gap}; taking a full backup`);
  ctx.log.error({ decision: 'archive gap', segments: left, why: gap }, 'backup');
  const t0 = Date.now();
  const took = await takeBackup(ctx, 'full', { from: 'standby', pw, repo: repoName(ctx.config, ctx.app) ?? '' });
  ctx.peers.local.set('archive-gap', null);
  state.gapCheckedTimeline = tl;
  ctx.log.warn({ decision: 'full backup after an archive gap', ms: Date.now() - t0, source: took.source, why: 'restores to a time from now on start from it' }, 'backup');
}

/** Where a backup copies the files from: a streaming standby's server, else the primary (and why). */
async function backupSource(ctx: EventContext, pw: Passwords): Promise<{ unit: string; server: BackupServer } | { why: string }> {
  const me = ctx.workload.address();
  const units = ctx.peers.units;
  const targets = { ...memberTargets(Object.fromEntries(units.map((u) => [u, ctx.peers.unit(u).entries()]))), ...(me ? { [ctx.unit]: me } : {}) };
  const servers = Object.fromEntries(units.map((u) => [u, parseBackupServer(ctx.peers.unit(u).get('backup-server'))]));
  const [live, up] = await Promise.all([memberPositions(targets, pw.operator), Promise.all(units.map((u) => (servers[u] ? answers(servers[u]) : false)))]);
  const tl = live[ctx.unit]?.timeline;
  if (!tl) return { why: 'the primary did not report its timeline' };
  return chooseBackupSource(
    tl,
    units.map((u, i) => {
      const p = live[u];
      return { unit: u, role: ctx.peers.unit(u).get('role'), server: servers[u], serverUp: up[i]!, pos: p && p.state !== 'unreachable' && p.timeline !== null ? { streaming: p.streaming, timeline: p.timeline, lagBytes: p.lagBytes } : undefined };
    }),
  );
}

/** Whether a backup server accepts a TCP connection within 2 s. */
function answers(s: BackupServer): Promise<boolean> {
  return new Promise((res) => {
    const sock = connect({ host: s.host, port: s.port, timeout: 2000 });
    const done = (ok: boolean) => {
      sock.destroy();
      res(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
    sock.once('timeout', () => done(false));
  });
}

interface Reporter {
  log(line: string): void;
  progress(message: string, fraction: number): void;
}
const QUIET: Reporter = { log: () => undefined, progress: () => undefined };

/**
 * A backup on the primary: from the least lagging streaming standby (its server sends the
 * files; the primary only starts and stops the backup) unless `from` is primary, from the
 * primary when there is none or the standby's attempt fails. Progress is pgBackRest's, per file.
 */
/** A backup, recorded as an Event either way (the dashboard's timeline, `kubectl get events`). */
async function takeBackup(ctx: EventContext, type: BackupType, o: { from: 'standby' | 'primary'; pw: Passwords; repo: string; r?: Reporter }): Promise<Awaited<ReturnType<typeof takeBackupOnce>>> {
  const t0 = Date.now();
  try {
    const took = await takeBackupOnce(ctx, type, o);
    // Every successful backup (action, schedule, after an archive gap): the last-backup metric and alert read it.
    ctx.peers.local.set('last-backup', new Date().toISOString());
    recordEvent(ctx.kube, ctx.app, { unit: ctx.unit, reason: 'BackupCompleted', message: `${type} backup into ${o.repo} in ${Math.round((Date.now() - t0) / 1000)} s, files from ${took.source} (${took['source-role']})` }, ctx.log);
    return took;
  } catch (e) {
    recordEvent(ctx.kube, ctx.app, { unit: ctx.unit, reason: 'BackupFailed', type: 'Warning', message: `${type} backup into ${o.repo} failed: ${(e instanceof Error ? e.message : String(e)).slice(0, 300)}` }, ctx.log);
    throw e;
  }
}

async function takeBackupOnce(ctx: EventContext, type: BackupType, o: { from: 'standby' | 'primary'; pw: Passwords; repo: string; r?: Reporter }) {
  const r = o.r ?? QUIET;
  const b = new Backrest(unitWorkload(ctx));
  const source = o.from === 'standby' ? await backupSource(ctx, o.pw) : { why: 'params.from=primary' };
  const take = async (standby: { unit: string; server: BackupServer } | undefined) => {
    const where = standby ? `from the standby ${standby.unit}` : 'from the primary';
    r.progress(`taking a ${type} backup ${where} into ${o.repo}`, 0);
    const files = { standby: 0, primary: 0 };
    let shown = { at: 0, fraction: 0 };
    await b.backup(type, {
      standby: standby?.server,
      onLine: (line) => {
        const f = parseBackupFileLine(line);
        if (!f) {
          // pgBackRest's own account (start, waits, stop, label); the per-file lines are progress,
          // and "command begin" only restates the options.
          if (!/ DETAIL: | command begin /.test(line)) r.log(line.replace(/^\S+ \S+ P\d+ +/, ''));
          return;
        }
        files[f.remote ? 'standby' : 'primary']++;
        if (f.fraction - shown.fraction >= 0.05 || Date.now() - shown.at > 2000) {
          shown = { at: Date.now(), fraction: f.fraction };
          r.progress(`copying files ${where}`, f.fraction);
        }
      },
    });
    return { source: standby ? standby.unit : ctx.unit, 'source-role': standby ? 'standby' : 'primary', 'files-from-standby': files.standby, 'files-from-primary': files.primary };
  };
  if (!('unit' in source)) {
    if (o.from === 'standby') r.log(`no standby to take the backup from (${source.why}): taking it from the primary`);
    return { ...(await take(undefined)), 'source-reason': source.why };
  }
  try {
    return await take(source);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    // Only a failure of the standby's side is worth a second backup from the primary; a full
    // repository or an archive check would fail that one too (and a backup may take hours).
    if (!why.includes(source.server.host) && !/\bpg2\b|remote|standby/i.test(why)) throw e;
    ctx.log.warn({ decision: 'backup from the primary', standby: source.unit, why }, 'backup');
    r.log(`the backup from ${source.unit} failed (${why}); taking it from the primary`);
    return { ...(await take(undefined)), 'standby-error': why };
  }
}

const createBackup: Handler = async (ctx) => {
  const a = ctx.action!;
  const repo = repoName(ctx.config, ctx.app);
  if (!repo) return a.fail(NO_REPOSITORY);
  const type = a.params['type'] ?? 'full';
  if (!isBackupType(type)) return a.fail(`params.type: must be one of full, diff, incr`);
  const from = a.params['from'] ?? 'standby';
  if (from !== 'standby' && from !== 'primary') return a.fail('params.from: must be standby or primary');
  const elsewhere = await notOnPrimary(ctx, 'create-backup runs on the primary', 'create-backup');
  if (elsewhere) return a.fail(elsewhere);
  const blocked = ctx.peers.local.get('backup-blocked');
  if (blocked) return a.fail(blocked);
  if (state.stanzaChecked !== repoKey(ctx)) return a.fail(`the repository ${repo} is still being checked (its stanza is created after the bootstrap); try again in a few seconds`);
  const pw = await readPasswords(ctx.kube, ctx.app);
  if (!pw) return a.fail('no passwords yet');
  const t0 = Date.now();
  const took = await takeBackup(ctx, type, { from, pw, repo, r: a });
  const info = await new Backrest(unitWorkload(ctx)).info();
  const taken = info.backups.at(-1);
  if (!taken) return a.fail('pgBackRest finished but lists no backup');
  a.progress('done', 1);
  a.setResults({ 'backup-id': taken.id, type: taken.type, 'lsn-start': taken['lsn-start'], 'lsn-stop': taken['lsn-stop'], timeline: taken.timeline, size: taken.size, 'repository-size': taken['repository-size'], 'took-ms': Date.now() - t0, ...took });
};

const listBackups: Handler = async (ctx) => {
  const a = ctx.action!;
  const repo = repoName(ctx.config, ctx.app);
  if (!repo) return a.fail(NO_REPOSITORY);
  const info = await new Backrest(unitWorkload(ctx)).info();
  if (info.code !== 0 && info.code !== 2) return a.fail(`the repository ${repo} cannot be read: ${info.message || `pgBackRest status ${info.code}`}`);
  a.setResults({ repository: repo, 'system-identifier': info.systemId ?? '', backups: info.backups, 'archived-wal': info.archive ?? null });
};

/**
 * restore, on the leader: checks the target against the repository (nothing stops for a target
 * that cannot be reached), makes sure the WAL written so far is archived, then records the
 * request in the application bag; the units carry it out (charm.ts followRestore): the others
 * stop, the primary is restored and promoted on a new timeline, then the others rejoin it.
 */
const restore: Handler = async (ctx) => {
  const a = ctx.action!;
  if (!ctx.isLeader()) return a.fail('restore runs on the leader: pgcharm run leader restore ...');
  const repo = repoName(ctx.config, ctx.app);
  if (!repo) return a.fail(NO_REPOSITORY);
  const target = parseRestoreParams(a.params);
  if ('error' in target) return a.fail(target.error);
  if (ctx.peers.app.get('restore')) return a.fail('a restore is already under way (pgcharm status shows it)');
  const holder = await state.lease(ctx).holder();
  if (!holder) return a.fail('no primary holds the lease: the restore needs a unit to restore onto');
  const pw = await readPasswords(ctx.kube, ctx.app);
  if (!pw) return a.fail('no passwords yet');
  // What is written until now must be in the archive for a target near now to be reachable.
  if (target.kind !== 'backup') {
    const at = parseAddress(ctx.peers.unit(holder).get('address'));
    a.progress('archiving the current WAL segment', 0);
    const seg = at ? await withConnection(at, pw.operator, async (c) => (await c.query<{ w: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS w')).rows[0]!.w).catch(() => undefined) : undefined;
    if (at && seg) {
      for (const until = Date.now() + 60_000; ; ) {
        // Archived once its .ready mark is gone (the switch made it; the archiver renames it
        // .done). Not last_archived_wal by name: that may be a backup history file named after
        // an earlier segment (or a timeline history file), archived after this one. The size
        // field, not the row: a row IS NOT NULL only when every field is, and `creation` is
        // always NULL on Linux.
        const [r] = await withConnection(at, pw.operator, async (c) => (await c.query<{ ready: boolean }>("SELECT (pg_stat_file('pg_wal/archive_status/' || $1 || '.ready', true)).size IS NOT NULL AS ready", [seg])).rows);
        if (r && !r.ready) break;
        if (Date.now() > until) return a.fail(`WAL segment ${seg} was not archived within 60 s: a target after it could not be reached (pgcharm status shows the archiving error)`);
        await new Promise((res) => setTimeout(res, 200));
      }
    }
  }
  const info = await new Backrest(unitWorkload(ctx)).info();
  if (info.code !== 0) return a.fail(`the repository ${repo} cannot be read: ${info.message || `pgBackRest status ${info.code}`}`);
  const ok = checkRestoreTarget(target, info, Date.now());
  if ('error' in ok) return a.fail(ok.error);
  const req: RestoreRequest = { token: `${Date.now().toString(36)}`, primary: holder, target, what: describeTarget(target) };
  ctx.peers.app.set('restore', JSON.stringify(req));
  ctx.log.warn({ decision: 'restore', primary: holder, target: req.what }, 'backup');
  a.log(`restoring ${holder} to ${req.what}; the other units stop, then rejoin it (pgcharm status shows the progress)`);
  a.setResults({ primary: holder, target: req.what, token: req.token });
};

/** A cron schedule the leader keeps: when it fires next (UTC). */
class Schedule {
  private spec: string | undefined;
  due: Date | undefined;

  /** Sleep until it fires (an hour at a time without a schedule). */
  sleepMs(): number {
    return this.due ? Math.min(3_600_000, Math.max(1000, this.due.getTime() - Date.now())) : 3_600_000;
  }

  /** Whether it fires now; a new or changed schedule only sets when it fires next. */
  fires(spec: string | undefined, now: Date): boolean {
    if (!spec) {
      this.spec = this.due = undefined;
      return false;
    }
    if (this.spec !== spec || !this.due) {
      this.spec = spec;
      this.due = nextCronRun(spec, now);
      return false;
    }
    if (now < this.due) return false;
    this.due = nextCronRun(spec, now);
    return true;
  }
}

const backupSchedule = new Schedule();
const dumpSchedule = new Schedule();

/**
 * backup-schedule: the leader keeps the schedule (a loop that sleeps until the next time it
 * fires) and asks for a backup in the application bag; the primary takes it (a full backup)
 * and records which request it served.
 */
export const backupScheduleLoop: CharmLoop = {
  name: 'backup-schedule',
  everyMs: () => backupSchedule.sleepMs(),
  async run(ctx) {
    const config = ctx.config();
    const spec = String(config['backup-schedule'] ?? '').trim();
    const now = new Date();
    if (!backupSchedule.fires(ctx.isLeader() && archiving(config) ? spec : undefined, now)) return;
    await ctx.setApp({ 'backup-requested': now.toISOString() });
    ctx.log.info({ decision: 'scheduled backup', schedule: spec, next: backupSchedule.due?.toISOString() }, 'backup');
  },
};

/**
 * dump-schedule: the leader dumps every database that takes connections (templates aside) on
 * its own unit when the schedule fires (a replica's dump spares the primary).
 */
export const dumpScheduleLoop: CharmLoop = {
  name: 'dump-schedule',
  everyMs: () => dumpSchedule.sleepMs(),
  run(ctx) {
    const config = ctx.config();
    const spec = String(config['dump-schedule'] ?? '').trim();
    const repo = (() => {
      try {
        return dumpRepo(config, ctx.app);
      } catch {
        return undefined; // an S3 setting pgBackRest cannot use either: the status says which
      }
    })();
    if (dumpSchedule.fires(ctx.isLeader() && repo ? spec : undefined, new Date())) ctx.emit('pgcharm-scheduled-dump');
    return Promise.resolve();
  },
};

const scheduledDump: Handler = async (ctx) => {
  const repo = dumpRepo(ctx.config, ctx.app);
  const me = ctx.workload.address();
  const pw = await readPasswords(ctx.kube, ctx.app);
  if (!ctx.isLeader() || !repo || !me || !pw) return;
  const dbs = await withConnection(me, pw.operator, async (c) => (await c.query<{ d: string }>('SELECT datname AS d FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1')).rows.map((r) => r.d));
  const b = new Backrest(unitWorkload(ctx), me.port);
  const at = stamp(new Date());
  for (const db of dbs) {
    if (!DB_NAME.test(db)) {
      ctx.log.warn({ decision: 'scheduled dump skipped', database: db, why: 'its name is not one pgcharm uses as a file name' }, 'backup');
      continue;
    }
    try {
      const r = await takeDump(ctx, repo, b, db, at);
      ctx.log.info({ decision: 'scheduled dump taken', database: db, file: r.file, bytes: r.bytes }, 'backup');
    } catch (e) {
      ctx.log.error({ decision: 'scheduled dump failed', database: db, why: e instanceof Error ? e.message : String(e) }, 'backup');
    }
  }
};

/** Whether any unit served this request: a primary promoted after the old one took it must not take it again. */
const served = (ctx: EventContext, asked: string): boolean => [ctx.peers.local, ...ctx.peers.units.map((u) => ctx.peers.unit(u))].some((b) => b.get('backup-served') === asked);

/** The primary's reconcile: a scheduled backup asked for and not yet served is taken after this hook. */
export function wantScheduledBackup(ctx: EventContext): void {
  const asked = ctx.peers.app.get('backup-requested');
  if (asked && !served(ctx, asked) && !state.scheduledBackupBusy) ctx.emit('pgcharm-scheduled-backup');
}

const scheduledBackup: Handler = async (ctx) => {
  const asked = ctx.peers.app.get('backup-requested');
  const repo = repoName(ctx.config, ctx.app);
  if (!asked || !repo || served(ctx, asked) || ctx.peers.local.get('role') !== 'primary' || (await state.lease(ctx).holder()) !== ctx.unit) return;
  // Served either way: a failed backup is logged and in the status; the next one is the schedule's.
  ctx.peers.local.set('backup-served', asked);
  if (ctx.peers.local.get('backup-blocked') || state.stanzaChecked !== repoKey(ctx)) {
    ctx.log.error({ decision: 'scheduled backup skipped', why: ctx.peers.local.get('backup-blocked') ?? 'the repository is not checked yet', asked }, 'backup');
    return;
  }
  state.scheduledBackupBusy = true;
  try {
    const pw = await readPasswords(ctx.kube, ctx.app);
    if (!pw) throw new Error('no passwords yet');
    const t0 = Date.now();
    const took = await takeBackup(ctx, 'full', { from: 'standby', pw, repo });
    ctx.log.info({ decision: 'scheduled backup taken', type: 'full', ms: Date.now() - t0, source: took.source, asked }, 'backup');
  } catch (e) {
    ctx.log.error({ decision: 'scheduled backup failed', why: e instanceof Error ? e.message : String(e), asked }, 'backup');
  } finally {
    state.scheduledBackupBusy = false;
  }
};

/** Database names a dump may name (they become file names too). */
const DB_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/;
const dumpDir = (repo: string, db: string) => `${repo}/dumps/${db}`;
/** UTC, sortable, no characters a file name or S3 key would trip on: 20261127T205915Z. */
const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');

const dumpDatabase: Handler = async (ctx) => {
  const a = ctx.action!;
  const repo = dumpRepo(ctx.config, ctx.app);
  if (!repo) return a.fail(NO_REPOSITORY);
  const db = String(a.params['database'] ?? '');
  if (!DB_NAME.test(db)) return a.fail(`params.database: ${JSON.stringify(db)} is not a database name pgcharm dumps (letters, digits, _ and -, at most 63)`);
  const me = ctx.workload.address();
  const pw = await readPasswords(ctx.kube, ctx.app);
  if (!me || !pw) return a.fail('this unit has no running PostgreSQL yet');
  const exists = await withConnection(me, pw.operator, async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1 AND datallowconn', [db])).rowCount === 1);
  if (!exists) return a.fail(`params.database: no database ${db} on ${ctx.unit}`);
  const t0 = Date.now();
  a.progress(`pg_dump of ${db}`, 0);
  const r = await takeDump(ctx, repo, new Backrest(unitWorkload(ctx), me.port), db, stamp(new Date()));
  a.progress('done', 1);
  a.setResults({ database: db, file: r.file, latest: r.latest, bytes: r.bytes, 'took-ms': Date.now() - t0 });
};

const restoreDump: Handler = async (ctx) => {
  const a = ctx.action!;
  const repo = dumpRepo(ctx.config, ctx.app);
  if (!repo) return a.fail(NO_REPOSITORY);
  const db = String(a.params['database'] ?? '');
  if (!DB_NAME.test(db)) return a.fail(`params.database: ${JSON.stringify(db)} is not a database name pgcharm dumps`);
  const into = String(a.params['into'] ?? db);
  if (!DB_NAME.test(into)) return a.fail(`params.into: ${JSON.stringify(into)} is not a database name`);
  const from = String(a.params['from'] ?? `${db}-latest.dump`);
  if (!/^[A-Za-z0-9_.-]+\.dump$/.test(from) || from.includes('..')) return a.fail(`params.from: ${JSON.stringify(from)} is not a dump file name (like ${db}-20261127T205915Z.dump)`);
  const elsewhere = await notOnPrimary(ctx, 'restore-dump writes, so it runs on the primary', 'restore-dump ...');
  if (elsewhere) return a.fail(elsewhere);
  const me = ctx.workload.address();
  const pw = await readPasswords(ctx.kube, ctx.app);
  if (!me || !pw) return a.fail('this unit has no running PostgreSQL yet');
  const w = unitWorkload(ctx);
  const s3 = repo.kind === 's3' ? await openS3Dumps(ctx, repo.repo) : undefined;
  try {
    const key = repo.kind === 's3' ? dumpKey(repo.repo, db, from) : `${dumpDir(repo.path, db)}/${from}`;
    const file = s3 ? s3.where(key) : key;
    if (!(s3 ? (await s3.size(key)) !== undefined : await w.exists(key))) return a.fail(`params.from: no dump ${file}`);
    await restoreDumpInto(ctx, me, pw, into, s3 ? (b) => s3.get(key).then((body) => b.restoreDumpFrom(body, into)) : (b) => b.restoreDump(key, into), file);
  } finally {
    s3?.close();
  }
};

/** A new database `into`, then `fill` (pg_restore) into it. */
async function restoreDumpInto(ctx: EventContext, me: { host: string; port: number }, pw: Passwords, into: string, fill: (b: Backrest) => Promise<void>, file: string): Promise<void> {
  const a = ctx.action!;
  // A new database only: restoring over one in use is a decision for a human (drop it first).
  const created = await withConnection(me, pw.operator, async (c) => {
    if ((await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [into])).rowCount) return false;
    await c.query('SET synchronous_commit = local');
    await c.query(`CREATE DATABASE ${JSON.stringify(into)}`);
    return true;
  });
  if (!created) return a.fail(`params.into: database ${into} exists; restore into a new one (into=NEWNAME) or drop it first`);
  const t0 = Date.now();
  a.progress(`pg_restore of ${file} into ${into}`, 0);
  await fill(new Backrest(unitWorkload(ctx), me.port));
  a.progress('done', 1);
  a.setResults({ database: into, from: file, 'took-ms': Date.now() - t0 });
}

/** set-s3-credentials, on the leader: the keys go into a Secret (write-only params); every unit writes its 0600 file. */
const setS3Credentials: Handler = async (ctx) => {
  const a = ctx.action!;
  if (!ctx.isLeader()) return a.fail('set-s3-credentials runs on the leader: pgcharm run leader set-s3-credentials --params FILE');
  const key = String(a.params['access-key'] ?? '');
  const secret = String(a.params['secret-key'] ?? '');
  const problem = s3KeysProblem(key, secret);
  if (problem) return a.fail(`params.${problem}`);
  await writeS3Credentials(ctx.kube, ctx.app, { 'access-key': key, 'secret-key': secret });
  // Every unit rewrites its file on the leader-settings-changed this causes (never the keys themselves in a bag).
  ctx.peers.app.set('s3-credentials-set', new Date().toISOString());
  // A bootstrap waiting for the keys (bootstrap-from-backup in S3) goes on now, not at the next update-status.
  ctx.emit('pgcharm-reconcile');
  a.setResults({ stored: `Secret ${ctx.app}-s3-credentials` });
};

export const backupHandlers: Record<string, Handler> = {
  'set-s3-credentials-action': setS3Credentials,
  'pgcharm-scheduled-dump': scheduledDump,
  'dump-database-action': dumpDatabase,
  'restore-dump-action': restoreDump,
  'pgcharm-scheduled-backup': scheduledBackup,
  'restore-action': restore,
  'pgcharm-stanza': checkStanza,
  'pgcharm-backup-server': setUpBackupServer,
  'pgcharm-archive-gap': archiveGapCheck,
  'create-backup-action': createBackup,
  'list-backups-action': listBackups,
};
