import type { Logger } from 'pino';
import { parseTime } from '../machinery/time.js';
import type { Registry } from './registry.js';
import type { KubeObject } from './types.js';

/**
 * Events expire, as on a real API server (--event-ttl, 1 hour by default): without that
 * the store would grow with every event the agents record. An event's age counts from its
 * last occurrence.
 */

export const DEFAULT_EVENT_TTL_MS = 60 * 60 * 1000;

export function lastOccurrence(e: KubeObject): number {
  const series = (e['series'] ?? {}) as Record<string, unknown>;
  const times = [series['lastObservedTime'], e['lastTimestamp'], e['eventTime'], e['firstTimestamp'], e.metadata.creationTimestamp].map(parseTime).filter((t) => !Number.isNaN(t));
  return times.length ? Math.max(...times) : 0;
}

/** Deletes expired events now; returns how many went. */
export async function expireEvents(registry: Registry, ttlMs: number, now = Date.now()): Promise<number> {
  let n = 0;
  for (const e of registry.list('events').items) {
    if (now - lastOccurrence(e) < ttlMs) continue;
    try {
      await registry.delete('events', e.metadata.namespace!, e.metadata.name!, { preconditions: { resourceVersion: e.metadata.resourceVersion! } });
      n++;
    } catch {
      /* changed or gone meanwhile: the next sweep looks again */
    }
  }
  return n;
}

/** Sweeps every `everyMs` (default a minute); returns the stop function. */
export function startEventExpiry(registry: Registry, ttlMs: number, log: Logger, everyMs = 60_000): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    expireEvents(registry, ttlMs)
      .then((n) => n > 0 && log.debug({ expired: n }, 'expired events'))
      .catch((e: Error) => log.warn({ err: e.message }, 'event expiry failed'))
      .finally(() => (running = false));
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
