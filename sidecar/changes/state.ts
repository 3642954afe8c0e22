import { EventEmitter } from 'node:events';

/**
 * Changes and tasks, Pebble's unit of long-running work. A client gets a change id back
 * from an async request and can poll or wait for it; this is what makes
 * `ops.pebble.Client.wait_change` and `pebble changes/tasks` work.
 */
export type Status = 'Default' | 'Hold' | 'Do' | 'Doing' | 'Undo' | 'Undoing' | 'Done' | 'Undone' | 'Abort' | 'Error' | 'Wait';

const READY: ReadonlySet<Status> = new Set(['Done', 'Undone', 'Error', 'Hold']);

export class Task {
  status: Status = 'Do';
  readonly log: string[] = [];
  progress = { label: '', done: 0, total: 1 };
  readonly data: Record<string, unknown> = {};
  readonly spawnTime = new Date();
  readyTime?: Date;
  /** Set when the task failed; becomes part of the change's err. */
  error?: string;

  constructor(
    readonly change: Change,
    readonly id: string,
    readonly kind: string,
    readonly summary: string,
  ) {}

  logf(message: string, level: 'INFO' | 'ERROR' = 'INFO'): void {
    this.log.push(`${new Date().toISOString()} ${level} ${message}`);
    this.change.touch();
  }

  start(): void {
    this.status = 'Doing';
    this.change.touch();
  }

  done(): void {
    this.status = 'Done';
    this.progress.done = this.progress.total;
    this.readyTime = new Date();
    this.change.touch();
  }

  fail(message: string): void {
    this.status = 'Error';
    this.error = message;
    this.logf(message, 'ERROR');
    this.readyTime = new Date();
    this.change.touch();
  }

  hold(): void {
    this.status = 'Hold';
    this.readyTime = new Date();
    this.change.touch();
  }

  get ready(): boolean {
    return READY.has(this.status);
  }

  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = {
      id: this.id,
      kind: this.kind,
      summary: this.summary,
      status: this.status,
      progress: { ...this.progress },
      'spawn-time': this.spawnTime.toISOString(),
    };
    if (this.log.length) out.log = [...this.log];
    if (this.readyTime) out['ready-time'] = this.readyTime.toISOString();
    if (Object.keys(this.data).length) out.data = { ...this.data };
    return out;
  }
}

export class Change {
  readonly tasks: Task[] = [];
  readonly data: Record<string, unknown> = {};
  readonly spawnTime = new Date();
  readyTime?: Date;
  private wasReady = false;

  constructor(
    private readonly store: ChangeStore,
    readonly id: string,
    readonly kind: string,
    readonly summary: string,
  ) {}

  addTask(kind: string, summary: string): Task {
    const t = new Task(this, this.store.nextTaskId(), kind, summary);
    this.tasks.push(t);
    this.store.indexTask(t);
    return t;
  }

  /** Pebble derives a change's status from its tasks: pending work wins, then errors. */
  get status(): Status {
    if (this.tasks.length === 0) return 'Done';
    const has = (s: Status) => this.tasks.some((t) => t.status === s);
    if (has('Doing')) return 'Doing';
    if (has('Do')) return 'Do';
    if (has('Error')) return 'Error';
    if (has('Hold')) return 'Hold';
    return 'Done';
  }

  get ready(): boolean {
    return this.tasks.every((t) => t.ready);
  }

  /** Pebble's "cannot perform the following tasks" text, which ops surfaces in ChangeError. */
  get err(): string | undefined {
    const failed = this.tasks.filter((t) => t.status === 'Error');
    if (failed.length === 0) return undefined;
    return (
      'cannot perform the following tasks:\n' + failed.map((t) => `- ${t.summary} (${t.error ?? 'failed'})`).join('\n')
    );
  }

  touch(): void {
    if (!this.wasReady && this.ready) {
      this.wasReady = true;
      this.readyTime = new Date();
    }
    this.store.emitUpdate(this);
  }

  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = {
      id: this.id,
      kind: this.kind,
      summary: this.summary,
      status: this.status,
      tasks: this.tasks.map((t) => t.toJSON()),
      ready: this.ready,
      'spawn-time': this.spawnTime.toISOString(),
    };
    const err = this.err;
    if (err) out.err = err;
    if (this.readyTime) out['ready-time'] = this.readyTime.toISOString();
    if (Object.keys(this.data).length) out.data = { ...this.data };
    return out;
  }
}

export type Select = 'in-progress' | 'ready' | 'all';

/** Finished changes older than this are pruned, as Pebble prunes its state. */
const KEEP_READY_MS = 24 * 3600_000;
const MAX_CHANGES = 500;

export class ChangeStore extends EventEmitter {
  private changes = new Map<string, Change>();
  private tasks = new Map<string, Task>();
  private lastChange = 0;
  private lastTask = 0;

  constructor() {
    super();
    // Every /wait request and exec session listens for updates; there is no leak to warn about.
    this.setMaxListeners(0);
  }

  newChange(kind: string, summary: string): Change {
    this.prune();
    const c = new Change(this, String(++this.lastChange), kind, summary);
    this.changes.set(c.id, c);
    return c;
  }

  nextTaskId(): string {
    return String(++this.lastTask);
  }

  indexTask(t: Task): void {
    this.tasks.set(t.id, t);
  }

  emitUpdate(c: Change): void {
    this.emit('update', c);
  }

  get(id: string): Change | undefined {
    return this.changes.get(id);
  }

  task(id: string): Task | undefined {
    return this.tasks.get(id);
  }

  /** `forService` matches changes whose tasks carry that service name in data (Pebble's "for" filter). */
  list(select: Select = 'in-progress', forService?: string): Change[] {
    return [...this.changes.values()].filter((c) => {
      if (select === 'in-progress' && c.ready) return false;
      if (select === 'ready' && !c.ready) return false;
      if (forService) {
        const services = (c.data['services'] as string[] | undefined) ?? [];
        if (!services.includes(forService)) return false;
      }
      return true;
    });
  }

  /** Resolves when the change is ready, or with null on timeout/abort. */
  wait(c: Change, timeoutMs?: number, signal?: AbortSignal): Promise<Change | null> {
    if (c.ready) return Promise.resolve(c);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        this.off('update', onUpdate);
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const onUpdate = (u: Change) => {
        if (u === c && c.ready) {
          cleanup();
          resolve(c);
        }
      };
      const onAbort = () => {
        cleanup();
        resolve(null);
      };
      this.on('update', onUpdate);
      signal?.addEventListener('abort', onAbort);
      if (timeoutMs !== undefined && timeoutMs > 0) timer = setTimeout(onAbort, timeoutMs);
    });
  }

  private prune(): void {
    const now = Date.now();
    for (const [id, c] of this.changes) {
      const old = c.readyTime && now - c.readyTime.getTime() > KEEP_READY_MS;
      if (old || (this.changes.size > MAX_CHANGES && c.ready)) {
        this.changes.delete(id);
        for (const t of c.tasks) this.tasks.delete(t.id);
      }
    }
  }
}
