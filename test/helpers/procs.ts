import { readFileSync } from 'node:fs';
export { freePort } from '../../agent/ports.js';
export { cmdline, killMarked, pidsWithEnv } from '../../agent/procs.js';

export function procState(pid: number): { state: string; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0]!, ppid: Number(rest[1]) };
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  const s = procState(pid);
  return s !== undefined && s.state !== 'Z';
}

/**
 * Polls `fn` until it gives a value: anything but undefined, null, false or '' (so that
 * `u && check(u) && u` with an empty `u` waits on instead of returning '').
 */
export async function waitFor<T>(what: string, fn: () => T | undefined | null | false | '' | Promise<T | undefined | null | false | ''>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false && v !== '') return v as T;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

