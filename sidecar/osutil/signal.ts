/**
 * Signals a process group (pid is its leader, as for children spawned detached), falling back
 * to the process alone when the group is gone; a process that already exited is no error.
 */
export function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  }
}
