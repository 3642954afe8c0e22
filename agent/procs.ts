import { readdirSync, readFileSync } from 'node:fs';

/**
 * Processes are found by a marker in their environment, which every descendant inherits even
 * after it was re-parented (a killed sidecar's Postgres, say): the local kubelet uses it to
 * kill a whole unit, tests to clean up everything they started.
 */

/** Pids of live processes whose environment carries `KEY=value` (how tests find everything they started). */
export function pidsWithEnv(key: string, value: string, also: Record<string, string> = {}): number[] {
  const needles = [`${key}=${value}`, ...Object.entries(also).map(([k, v]) => `${k}=${v}`)];
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const env = readFileSync(`/proc/${d}/environ`, 'utf8').split('\0');
      if (needles.every((n) => env.includes(n))) out.push(Number(d));
    } catch {
      /* exited or not ours to read */
    }
  }
  return out;
}

/** Whether `pid` is alive and carries every marker (a pid from a file may have been reused). */
export function hasEnv(pid: number, markers: Record<string, string>): boolean {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    return Object.entries(markers).every(([k, v]) => env.includes(`${k}=${v}`));
  } catch {
    return false;
  }
}

/** Kills every process carrying the marker (SIGKILL), e.g. services left behind by a failed test. */
export function killMarked(key: string, value: string, also: Record<string, string> = {}): number {
  let n = 0;
  for (const pid of pidsWithEnv(key, value, also)) {
    try {
      process.kill(pid, 'SIGKILL');
      n++;
    } catch {
      /* gone */
    }
  }
  return n;
}


/** A process's argv (empty once it exited: short-lived execs come and go while we look). */
export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}
