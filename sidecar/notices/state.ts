import { EventEmitter } from 'node:events';

/**
 * Pebble's notices: deduplicated by (type, key); a repeat within `repeat-after` bumps the
 * occurrence count without re-notifying. Clients long-poll for notices after a time.
 */
export type NoticeType = 'custom' | 'change-update' | 'warning';

export interface Notice {
  id: string;
  type: NoticeType;
  key: string;
  firstOccurred: Date;
  lastOccurred: Date;
  lastRepeated: Date;
  occurrences: number;
  lastData: Record<string, string>;
  repeatAfter?: number;
  expireAfter: number;
}

const DEFAULT_EXPIRE_MS = 7 * 24 * 3600_000;
const MAX_NOTICES = 1000;

export function noticeJson(n: Notice): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: n.id,
    'user-id': null,
    type: n.type,
    key: n.key,
    'first-occurred': n.firstOccurred.toISOString(),
    'last-occurred': n.lastOccurred.toISOString(),
    'last-repeated': n.lastRepeated.toISOString(),
    occurrences: n.occurrences,
    'expire-after': `${Math.round(n.expireAfter / 1000)}s`,
  };
  if (Object.keys(n.lastData).length) out['last-data'] = n.lastData;
  if (n.repeatAfter !== undefined) out['repeat-after'] = `${n.repeatAfter / 1000}s`;
  return out;
}

export interface NoticeFilter {
  types?: string[];
  keys?: string[];
  after?: Date;
}

export class NoticeStore extends EventEmitter {
  private byKey = new Map<string, Notice>();
  private lastId = 0;

  constructor() {
    super();
    this.setMaxListeners(0);
  }

  add(type: NoticeType, key: string, data: Record<string, string> = {}, repeatAfter?: number): Notice {
    const now = new Date();
    const k = `${type}\u0000${key}`;
    let n = this.byKey.get(k);
    if (n) {
      n.occurrences++;
      n.lastOccurred = now;
      n.lastData = data;
      if (repeatAfter !== undefined) n.repeatAfter = repeatAfter;
      const ra = n.repeatAfter ?? 0;
      if (now.getTime() - n.lastRepeated.getTime() >= ra) n.lastRepeated = now;
      else return n;
    } else {
      n = {
        id: String(++this.lastId),
        type,
        key,
        firstOccurred: now,
        lastOccurred: now,
        lastRepeated: now,
        occurrences: 1,
        lastData: data,
        expireAfter: DEFAULT_EXPIRE_MS,
        ...(repeatAfter !== undefined ? { repeatAfter } : {}),
      };
      this.byKey.set(k, n);
      this.prune();
    }
    this.emit('notice', n);
    return n;
  }

  get(id: string): Notice | undefined {
    for (const n of this.byKey.values()) if (n.id === id) return n;
    return undefined;
  }

  list(f: NoticeFilter): Notice[] {
    return [...this.byKey.values()]
      .filter(
        (n) =>
          (!f.types?.length || f.types.includes(n.type)) &&
          (!f.keys?.length || f.keys.includes(n.key)) &&
          (!f.after || n.lastRepeated.getTime() > f.after.getTime()),
      )
      .sort((a, b) => a.lastRepeated.getTime() - b.lastRepeated.getTime());
  }

  /** Waits up to timeoutMs for at least one matching notice. */
  async wait(f: NoticeFilter, timeoutMs: number, signal?: AbortSignal): Promise<Notice[]> {
    const now = this.list(f);
    if (now.length || timeoutMs <= 0) return now;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.off('notice', onNotice);
        signal?.removeEventListener('abort', done);
        resolve(this.list(f));
      };
      const onNotice = () => {
        if (this.list(f).length) done();
      };
      const timer = setTimeout(done, timeoutMs);
      this.on('notice', onNotice);
      signal?.addEventListener('abort', done);
    });
  }

  private prune(): void {
    const now = Date.now();
    for (const [k, n] of this.byKey) {
      if (now - n.lastRepeated.getTime() > n.expireAfter) this.byKey.delete(k);
    }
    while (this.byKey.size > MAX_NOTICES) {
      const oldest = [...this.byKey.entries()].sort((a, b) => a[1].lastRepeated.getTime() - b[1].lastRepeated.getTime())[0]!;
      this.byKey.delete(oldest[0]);
    }
  }
}
