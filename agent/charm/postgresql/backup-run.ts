import { Writable, type Readable } from 'node:stream';
import type { ConfigValue } from '../../runtime/charm.js';
import { backrestArgv, backrestDir, backrestPassfile, OWNER_FILE, parseInfo, renderBackrestConf, renderS3Credentials, restoreArgs, s3CaFile, s3CredentialsFile, STANZA, type BackupType, type RepoOwner, type RestoreTarget, type S3Repo, type StanzaInfo } from './backup.js';
import type { S3Credentials } from './secrets.js';
import { standbyArgs, type BackupServer } from './backup-standby.js';
import { ExecFailed, type PostgresWorkload } from './workload.js';

const OWNER = { user: 'postgres', group: 'postgres' };

/** A dump or a restore of one may take this long. */
const DUMP_TIMEOUT_MS = 6 * 3_600_000;

/** How long `info` may take: an unreachable repository must not hold a hook or an action for minutes. */
const INFO_TIMEOUT_MS = 30_000;

/** pgBackRest in this unit's workload, as postgres, through the sidecar (backup.ts has the pure parts). */
export class Backrest {
  constructor(
    private readonly w: PostgresWorkload,
    /** This unit's Postgres port (dumps connect over the local socket, whose name has it). */
    private readonly pgPort?: number,
  ) {}

  private get l() {
    return this.w.l;
  }

  /**
   * This unit's config and working directories, the repository directory, and the passfile
   * pgBackRest connects to Postgres with (the operator over the local socket; the postgres OS
   * user owns the data directory anyway). Writes only what changed.
   */
  async configure(o: { config: Readonly<Record<string, ConfigValue>>; repo: string | S3Repo; port: number; operatorPassword: string; server?: string[] | undefined; s3?: S3Credentials | null }): Promise<void> {
    const dir = backrestDir(this.l);
    // The parent first: the sidecar's make-parents is not safe against a concurrent one.
    await Promise.all([this.w.ensureDir(dir, '700'), typeof o.repo === 'string' ? this.w.ensureDir(o.repo, '750') : undefined]);
    await Promise.all(['lock', 'log', 'spool', 'conf.d'].map((d) => this.w.ensureDir(`${dir}/${d}`, '700')));
    const esc = (s: string) => s.replace(/[\\:]/g, (c) => `\\${c}`);
    const s3 = typeof o.repo === 'string' ? undefined : o.repo;
    await Promise.all([
      this.w.pushIfChanged(`${dir}/pgbackrest.conf`, renderBackrestConf({ config: o.config, repo: o.repo, l: this.l, port: o.port, server: o.server })),
      this.w.pushIfChanged(backrestPassfile(this.l), `*:*:*:operator:${esc(o.operatorPassword)}\n`),
      // The keys only in this 0600 file (set-s3-credentials), included by pgBackRest from conf.d.
      s3 && o.s3 ? this.w.pushIfChanged(s3CredentialsFile(this.l), renderS3Credentials(o.s3['access-key'], o.s3['secret-key'])) : this.w.pebble.removePath(s3CredentialsFile(this.l)).catch(() => undefined),
      s3?.ca ? this.w.pushIfChanged(s3CaFile(this.l), `${s3.ca}\n`, '644') : undefined,
    ]);
  }

  private run(args: string[], timeoutMs: number): Promise<string> {
    return this.w.run([...backrestArgv(this.l), ...args], { env: { PGPASSFILE: backrestPassfile(this.l) }, timeoutMs });
  }

  /** The stanza as the repository has it (pgBackRest answers even when the repository is unreachable: see `code`). */
  async info(): Promise<StanzaInfo> {
    try {
      return parseInfo(await this.run(['--io-timeout=10', 'info', '--output=json'], INFO_TIMEOUT_MS));
    } catch (e) {
      // pgBackRest refused to start (an option missing or wrong): the repository cannot be read.
      if (e instanceof ExecFailed) return { code: 99, message: e.message.replace(/^pgbackrest exited with \d+: /, ''), backups: [] };
      throw e;
    }
  }

  /** File names under a repository path, recursively (`repo-ls`). */
  async repoLs(path: string): Promise<string[]> {
    const out = JSON.parse(await this.run(['--io-timeout=30', 'repo-ls', '--recurse', '--output=json', path], INFO_TIMEOUT_MS)) as Record<string, { type?: string }>;
    return Object.entries(out).filter(([, v]) => v.type === 'file').map(([k]) => k);
  }

  /** Archives one WAL file now (not through the asynchronous queue): a segment of an earlier timeline this unit still has. */
  async pushSegment(path: string): Promise<void> {
    await this.run(['--no-archive-async', 'archive-push', path], 600_000);
  }

  /**
   * Creates the stanza. The asynchronous archiver may hold the stanza's archive lock a moment
   * (it was started by a segment switched before the stanza existed, and is failing): waited
   * for, up to 15 s, rather than failing the hook.
   */
  async stanzaCreate(): Promise<void> {
    for (const until = Date.now() + 15_000; ; ) {
      try {
        await this.run(['stanza-create'], 120_000);
        return;
      } catch (e) {
        if (!(e instanceof ExecFailed && /unable to acquire lock/.test(e.message)) || Date.now() > until) throw e;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  }

  /**
   * Takes a backup, from a standby's server when `standby` is given; each line of pgBackRest's
   * console log (at detail: one per file, with the progress) goes to `onLine` as it comes.
   */
  async backup(type: BackupType, o: { standby?: BackupServer | undefined; onLine: (line: string) => void }): Promise<void> {
    let rest = '';
    const out = new Writable({
      write(chunk: Buffer, _enc, done) {
        const lines = (rest + chunk.toString()).split('\n');
        rest = lines.pop()!;
        for (const l of lines) if (l) o.onLine(l);
        done();
      },
      final(done) {
        if (rest) o.onLine(rest);
        done();
      },
    });
    const args = ['backup', `--type=${type}`, '--log-level-console=detail', ...(o.standby ? standbyArgs(this.l, o.standby) : [])];
    await this.w.runStreaming([...backrestArgv(this.l), ...args], { env: { PGPASSFILE: backrestPassfile(this.l) }, timeoutMs: 6 * 3_600_000, stdout: out });
  }

  /** Restores the data directory (Postgres stopped), or a new one `into`, for recovery to the target; Postgres promotes once there. */
  async restore(target: RestoreTarget, into?: string): Promise<void> {
    await this.run([...restoreArgs(target), ...(into ? [`--pg1-path=${into}`] : [])], 6 * 3_600_000);
  }

  /**
   * pg_dump -Fc -Z9 of one database into `<dir>/<db>-<stamp>.dump`, then a copy as
   * `<db>-latest.dump`; each written beside its name and renamed into place, so a reader never
   * sees half a dump. Credentials from the 0600 passfile, never argv or an environment value.
   */
  async dump(db: string, dir: string, stamp: string): Promise<{ file: string; latest: string; bytes: number }> {
    const file = `${dir}/${db}-${stamp}.dump`;
    const latest = `${dir}/${db}-latest.dump`;
    await this.w.ensureDir(dir, '750');
    const bin = this.l.binDir;
    await this.w.run(['/bin/sh', '-c', 'umask 027 && "$1" -Fc -Z9 -h "$2" -p "$3" -U operator -d "$4" -f "$5.partial" && mv "$5.partial" "$5" && cp "$5" "$6.partial" && mv "$6.partial" "$6"', 'sh', `${bin}/pg_dump`, this.l.socketDir, String(this.port()), db, file, latest], {
      env: { PGPASSFILE: backrestPassfile(this.l) },
      timeoutMs: DUMP_TIMEOUT_MS,
    });
    const st = (await this.w.pebble.listFiles(file, { itself: true }))[0];
    return { file, latest, bytes: st?.size ?? 0 };
  }

  /** pg_dump -Fc -Z9 of one database into `out` (streamed through the sidecar; the caller ends `out`). */
  async dumpTo(db: string, out: Writable): Promise<void> {
    await this.w.runStreaming([`${this.l.binDir}/pg_dump`, '-Fc', '-Z9', '-h', this.l.socketDir, '-p', String(this.port()), '-U', 'operator', '-d', db], { env: { PGPASSFILE: backrestPassfile(this.l) }, timeoutMs: DUMP_TIMEOUT_MS, stdout: out });
  }

  private restoreArgv(into: string): string[] {
    return [`${this.l.binDir}/pg_restore`, '-h', this.l.socketDir, '-p', String(this.port()), '-U', 'operator', '-d', into, '--no-owner', '--exit-on-error'];
  }

  /** pg_restore of a dump file in the workload into an existing (empty) database. */
  async restoreDump(file: string, into: string): Promise<void> {
    await this.w.run([...this.restoreArgv(into), file], { env: { PGPASSFILE: backrestPassfile(this.l) }, timeoutMs: DUMP_TIMEOUT_MS });
  }

  /** pg_restore of a dump streamed in (from S3) into an existing (empty) database. */
  async restoreDumpFrom(input: Readable, into: string): Promise<void> {
    await this.w.runStreaming(this.restoreArgv(into), { env: { PGPASSFILE: backrestPassfile(this.l) }, timeoutMs: DUMP_TIMEOUT_MS, stdin: input });
  }

  private port(): number {
    if (this.pgPort === undefined) throw new Error('the unit has no Postgres port yet');
    return this.pgPort;
  }

  /** The owner marker beside the stanza, when pgcharm made it. */
  async owner(repo: string): Promise<RepoOwner | undefined> {
    const text = await this.w.readIfExists(`${repo}/${OWNER_FILE}`);
    if (text === undefined) return undefined;
    try {
      const o = JSON.parse(text) as Partial<RepoOwner>;
      return typeof o.application === 'string' && typeof o.namespace === 'string' && typeof o['system-identifier'] === 'string' ? (o as RepoOwner) : undefined;
    } catch (e) {
      if (e instanceof SyntaxError) return undefined;
      throw e;
    }
  }

  async writeOwner(repo: string, owner: RepoOwner): Promise<void> {
    await this.w.pebble.push(`${repo}/${OWNER_FILE}`, `${JSON.stringify(owner, null, 2)}\n`, { ...OWNER, permissions: '640' });
  }

  /** The reason the asynchronous archiver last gave up (its global error file), if it did. */
  async archiveError(): Promise<string | undefined> {
    const text = (await this.w.readIfExists(`${backrestDir(this.l)}/spool/archive/${STANZA}/out/global.error`))?.trim();
    // First line: the error code; then the message.
    const [code, ...rest] = (text ?? '').split('\n');
    return text ? `[${code}] ${rest.join(' ').trim()}` : undefined;
  }
}
