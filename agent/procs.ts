import { readdirSync, readFileSync } from 'node:fs';

/**
 * Processes are found by a marker in their environment, which every descendant inherits even
 * after it was re-parented (a killed sidecar's Postgres, say): the local kubelet uses it to
 * kill a whole unit, tests to clean up everything they started.
 */

/** Pids of live processes whose environment carries `KEY=value` (how tests find everything they started). */
export function pidsWithEnv(key: string, value: string): number[] {
  const needle = `${key}=${value}`;
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const env = readFileSync(`/proc/${d}/environ`, 'utf8').split('\0');
      if (env.includes(needle)) out.push(Number(d));
    } catch {
      /* exited or not ours to read */
    }
  }
  return out;
}

/** Kills every process carrying the marker (SIGKILL), e.g. services left behind by a failed test. */
export function killMarked(key: string, value: string): number {
  let n = 0;
  for (const pid of pidsWithEnv(key, value)) {
    try {
      process.kill(pid, 'SIGKILL');
      n++;
    } catch {
      /* gone */
    }
  }
  return n;
}

