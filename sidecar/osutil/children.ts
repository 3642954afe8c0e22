/**
 * Pids of processes the sidecar spawned itself (services, exec, check commands, ptys).
 * The orphan reaper must never reap these: their owners (libuv, node-pty) wait for them
 * and would lose the exit status.
 */
const owned = new Set<number>();

export function trackChild(pid: number | undefined): void {
  if (pid !== undefined && pid > 0) owned.add(pid);
}

export function untrackChild(pid: number | undefined): void {
  if (pid !== undefined) owned.delete(pid);
}

export function isOwnedChild(pid: number): boolean {
  return owned.has(pid);
}
