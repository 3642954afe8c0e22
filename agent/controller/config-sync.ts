import { readFileSync, unwatchFile, watch, watchFile, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { CharmYamlError, ProblemsError, renderProblems, revalidateConfig, parseCharmYaml } from '../charm-meta/index.js';
import { apiMessage } from '../runtime/kube.js';
import type { Store } from '../runtime/store.js';
import { markRejected, readConfig, writeConfig } from './config-store.js';

/**
 * Picks up edits of a running deployment's charm.yaml: the new file is validated, the user's
 * stored settings are re-validated against it (types, ranges, immutable options), and only
 * then is the new effective config stored, which every unit sees as config-changed. A refused
 * edit changes nothing; the reason is logged and shown by `pgcharm status`.
 */
export class ConfigSync {
  private lastText: string | undefined;
  private running: Promise<void> = Promise.resolve();
  private watcher: FSWatcher | undefined;

  constructor(
    private readonly store: Store,
    private readonly charmPath: string,
    private readonly log: Logger,
    private readonly pollMs = 250,
  ) {}

  start(): void {
    // The directory, not the file: editors that save by writing a new file and renaming it
    // over the old one replace the inode a file watch would follow. inotify: nothing runs
    // until something in the directory changes (stat() polling cost 4 calls a second, for ever).
    try {
      const name = basename(this.charmPath);
      this.watcher = watch(dirname(this.charmPath), { persistent: false }, (_event, file) => {
        if (file === null || file === name) this.kick();
      });
      this.watcher.on('error', (e) => {
        this.log.warn({ path: this.charmPath, err: e.message }, 'cannot watch charm.yaml; polling it instead');
        this.watcher?.close();
        this.watcher = undefined;
        this.poll();
      });
    } catch (e) {
      // A filesystem without inotify (some network mounts): polling stat() still works there.
      this.log.warn({ path: this.charmPath, err: (e as Error).message }, 'cannot watch charm.yaml; polling it instead');
      this.poll();
    }
    this.kick();
  }

  private poll(): void {
    watchFile(this.charmPath, { interval: this.pollMs }, () => this.kick());
  }

  stop(): void {
    this.watcher?.close();
    unwatchFile(this.charmPath);
  }

  private kick(): void {
    this.running = this.running.then(async () => void (await this.sync())).catch((e: unknown) => this.log.error({ err: apiMessage(e) }, 'charm.yaml sync failed'));
  }

  /** Exposed for tests and for the controller's start-up. */
  async sync(): Promise<'unchanged' | 'applied' | 'refused'> {
    let text: string;
    try {
      text = readFileSync(this.charmPath, 'utf8');
    } catch (e) {
      this.log.error({ path: this.charmPath, err: (e as Error).message }, 'cannot read charm.yaml; keeping the current config');
      return 'refused';
    }
    if (text === this.lastText) return 'unchanged';
    this.lastText = text;
    const stored = await readConfig(this.store);
    if (!stored) return 'unchanged'; // not deployed yet
    if (stored.charmText === text) {
      if (stored.rejected) await markRejected(this.store, null);
      return 'unchanged';
    }
    try {
      const meta = parseCharmYaml(text, this.charmPath);
      const plan = revalidateConfig(stored.meta, meta, stored);
      if (!(await writeConfig(this.store, meta, plan, text, stored.hash))) {
        this.lastText = undefined; // changed under us (pgcharm config): validate again
        this.kick();
        return 'unchanged';
      }
      this.log.info({ path: this.charmPath, changes: plan.changes.map((c) => c.key) }, 'charm.yaml edit applied');
      return 'applied';
    } catch (e) {
      if (!(e instanceof ProblemsError || e instanceof CharmYamlError)) throw e;
      const message = renderProblems(e.problems, { file: this.charmPath });
      this.log.error({ path: this.charmPath, problems: e.problems }, 'charm.yaml edit refused; the deployment keeps its current config');
      await markRejected(this.store, message);
      return 'refused';
    }
  }
}
