import type { EventContext } from '../../runtime/charm.js';
import { parseRecoveryTarget, type RecoveryTarget } from '../../charm-meta/values.js';
import { archiving, checkRestoreTarget, describeTarget, RECOVERY_SETTINGS, repoName, s3Repo } from './backup.js';
import { configureBackrest } from './backup-actions.js';
import { Backrest } from './backup-run.js';
import { Blocked, Waiting } from './outcome.js';
import { scramVerifier } from './scram.js';
import { readS3Credentials, SYSTEM_USERS, type Passwords } from './secrets.js';
import type { PostgresWorkload } from './workload.js';

/**
 * A new deployment built from an existing backup repository instead of initdb (config
 * `bootstrap-from-backup`, which `pgcharm deploy --restore-from` sets): the bootstrap primary
 * restores with pgBackRest, recovers to the target and promotes on a new timeline, then takes
 * the repository over (its stanza has this cluster's system identifier: the restored one).
 *
 * The restored data holds the old deployment's passwords, so until the charm has set its own
 * it talks to Postgres as the OS user postgres over the socket (peer, the pg_ident map). A
 * marker file in the unit's private directory says it is there: a hook that fails on the way
 * goes on from it.
 */

const OPTION = 'bootstrap-from-backup';

/** The restored unit's marker: the restore is in PGDATA, the charm's passwords are not yet. */
const marker = (w: PostgresWorkload) => `${w.l.private}/bootstrap-restore.json`;

/** What `bootstrap-from-backup` asks for; undefined for a new, empty cluster. */
export function bootstrapTarget(config: Readonly<Record<string, unknown>>): RecoveryTarget | undefined {
  const t = parseRecoveryTarget(String(config[OPTION] ?? ''));
  // The config was checked when it was set (format recovery-target): this is only for safety.
  if (t && 'error' in t) throw new Blocked(`${OPTION}: ${t.error}`);
  return t;
}

/**
 * Fills an empty PGDATA from the repository's backups for recovery to `target`. Refuses, with
 * the unit blocked and nothing written, a repository that cannot be read or a target it cannot
 * reach; waits for the S3 keys when the repository is in S3.
 */
export async function restoreForBootstrap(ctx: EventContext, w: PostgresWorkload, port: number, pw: Passwords, target: RecoveryTarget): Promise<void> {
  // A refused restore is tried again a minute later (update-status reconciles every 10 s), or at
  // once when the config or the S3 keys change.
  const inputs = `${ctx.configHash}|${ctx.peers.app.get('s3-credentials-set') ?? ''}`;
  if (lastRefusal && lastRefusal.inputs === inputs && Date.now() - lastRefusal.at < RETRY_MS) throw new Blocked(lastRefusal.why);
  try {
    await restoreOnce(ctx, w, port, pw, target);
    lastRefusal = undefined;
  } catch (e) {
    if (e instanceof Blocked) lastRefusal = { at: Date.now(), inputs, why: e.message };
    throw e;
  }
}

const RETRY_MS = 60_000;
let lastRefusal: { at: number; inputs: string; why: string } | undefined;

async function restoreOnce(ctx: EventContext, w: PostgresWorkload, port: number, pw: Passwords, target: RecoveryTarget): Promise<void> {
  const repo = repoName(ctx.config, ctx.app);
  if (!repo || !archiving(ctx.config)) throw new Blocked(`${OPTION}: there is no backup repository to restore from: set backup-repo-path or s3-bucket`);
  let s3;
  try {
    s3 = s3Repo(ctx.config, ctx.app);
  } catch (e) {
    throw new Blocked((e as Error).message);
  }
  if (s3 && !(await readS3Credentials(ctx.kube, ctx.app))) {
    throw new Waiting(`waiting for the S3 keys to restore from ${repo}: pgcharm run leader set-s3-credentials --params FILE`);
  }
  await configureBackrest(ctx, w, port, pw);
  const b = new Backrest(w);
  const info = await b.info();
  if (info.code !== 0) throw new Blocked(`${OPTION}: cannot restore from ${repo}: ${info.message || `pgBackRest status ${info.code}`}`);
  const ok = checkRestoreTarget(target, info, Date.now());
  if ('error' in ok) throw new Blocked(`${OPTION}: ${ok.error.replace(/^params\.[a-z-]+: /, '')}`);
  const what = describeTarget(target);
  await ctx.setUnitStatus({ name: 'maintenance', message: `restoring from ${repo} to ${what}` });
  ctx.log.warn({ decision: 'bootstrap from a backup', repo, target: what, why: `${OPTION} is set and there is no cluster yet` }, 'reconcile');
  await w.pushSecret(marker(w), `${JSON.stringify({ repo, target: what, at: new Date().toISOString() })}\n`);
  try {
    await w.buildBeside(async (dir) => {
      await b.restore(target, dir);
      // pgBackRest's restore_command names the directory it restored into (--pg1-path); the
      // charm's config has the same command for PGDATA, which applies once this one is gone.
      await w.run(['sed', '-i', '/^restore_command *=/d', `${dir}/postgresql.auto.conf`]);
    });
  } catch (e) {
    // pgBackRest refused (a target it cannot reach, the repository gone): nothing is in PGDATA.
    throw new Blocked(`${OPTION}: the restore from ${repo} to ${what} failed: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Storages known to hold no unfinished restore (asked once per agent process, not every reconcile). */
const finished = new Set<string>();

/** Whether this unit's PGDATA is a restore that still has the old deployment's passwords. */
export async function restoringBootstrap(w: PostgresWorkload): Promise<boolean> {
  if (finished.has(w.l.storage)) return false;
  const there = await w.exists(marker(w));
  if (!there) finished.add(w.l.storage);
  return there;
}

/**
 * Starts the restored cluster (after `prepare`: config, layer, fence), waits for it to recover
 * and promote, then sets the charm's passwords for the system roles and drops the recovery
 * target pgBackRest left in postgresql.auto.conf. Afterwards the charm connects as always.
 */
export async function finishBootstrapRestore(ctx: EventContext, w: PostgresWorkload, port: number, pw: Passwords, prepare: () => Promise<unknown>): Promise<void> {
  await prepare();
  await w.setStandbySignal(false);
  const answers = async () => (await w.sqlAsOwner('SELECT pg_is_in_recovery();', port).catch(() => '')).trim();
  const until = Date.now() + 3_600_000;
  const waitFor = async (ok: (r: string) => boolean, what: string) => {
    for (let down = 0; ; ) {
      const r = await answers();
      if (ok(r)) return;
      // Started and gone: recovery gave up (a target past the archived WAL, a segment missing).
      down = (await w.running()) ? 0 : down + 1;
      if (down >= 25) throw new Blocked(`${OPTION}: PostgreSQL stopped while recovering from the backup (pgcharm debug-log shows its log)`);
      if (Date.now() > until) throw new Error(`${OPTION}: PostgreSQL was still ${what} after an hour (pgcharm debug-log)`);
      await new Promise((res) => setTimeout(res, 200));
    }
  };
  if (!(await w.running())) {
    await w.start(() => waitFor((r) => r !== '', 'starting')).catch((e: unknown) => {
      if (e instanceof Blocked) throw e;
      throw new Blocked(`${OPTION}: PostgreSQL did not start on the restored data (pgcharm debug-log shows its log): ${e instanceof Error ? e.message : String(e)}`);
    });
  }
  await ctx.setUnitStatus({ name: 'maintenance', message: 'recovering the restored database' });
  await waitFor((r) => r === 'f', 'recovering');
  const verifiers = SYSTEM_USERS.map((u) => `SELECT format('ALTER ROLE %I PASSWORD %L', rolname, '${scramVerifier(pw[u])}') FROM pg_roles WHERE rolname = '${u}'\n\\gexec`);
  const resets = RECOVERY_SETTINGS.map((g) => `ALTER SYSTEM RESET ${g};`);
  await w.sqlAsOwner(['SET synchronous_commit = local;', ...verifiers, ...resets, 'SELECT pg_reload_conf();', ''].join('\n'), port);
  await w.pebble.removePath(marker(w));
  finished.add(w.l.storage);
  ctx.log.warn({ decision: 'restored from a backup', why: 'recovered, promoted, and the charm\'s passwords set' }, 'reconcile');
}
