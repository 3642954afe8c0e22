/**
 * Pebble's restart backoff: the first restart waits `delay`, each further one multiplies
 * by `factor`, capped at `limit`. After a run longer than `limit` the sequence resets.
 */
export interface BackoffSettings {
  backoffDelay: number;
  backoffFactor: number;
  backoffLimit: number;
}

export function nextBackoff(s: BackoffSettings, current: number): number {
  if (current <= 0) return Math.min(s.backoffDelay, s.backoffLimit);
  return Math.min(current * s.backoffFactor, s.backoffLimit);
}

/** The first `n` waits of the schedule (used by tests and `pgcharm-sidecar` docs). */
export function backoffSchedule(s: BackoffSettings, n: number): number[] {
  const out: number[] = [];
  let cur = 0;
  for (let i = 0; i < n; i++) {
    cur = nextBackoff(s, cur);
    out.push(cur);
  }
  return out;
}
