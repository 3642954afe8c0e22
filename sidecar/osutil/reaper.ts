/**
 * Orphan reaper: the sidecar is PID 1 in its container, so every orphaned descendant
 * (a daemon's double fork, a shell's background job) is re-parented to it and stays a
 * zombie until someone waits for it. Node only waits for the pids it spawned, so a tiny
 * native addon (sidecar/native) provides waitpid() and PR_SET_CHILD_SUBREAPER.
 *
 * Only zombies that nobody in this process owns are reaped: children registered with
 * trackChild() are waited for by libuv or node-pty, and reaping one of them would make its
 * 'exit' event never fire.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { isOwnedChild } from './children.js';
import { loadNativeAddon } from './native.js';

export interface Reaper {
  stop(): void;
  /** Orphans reaped since start. */
  reapedCount(): number;
}

/** State and parent of a process from /proc/<pid>/stat (comm may contain spaces and parens). */
function procStat(pid: number): { state: string; ppid: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', ppid: Number(fields[1]) };
}

const hasChildrenFiles = existsSync(`/proc/self/task/${process.pid}/children`);

/**
 * Our direct children. /proc/self/task/<tid>/children lists them per thread (an orphan can be
 * re-parented to any of our threads), which is far cheaper than reading every /proc/<pid>/stat;
 * kernels built without CONFIG_PROC_CHILDREN lack the file, so fall back to the full scan.
 */
function childPids(): number[] {
  const pids = new Set<number>();
  if (hasChildrenFiles) {
    for (const tid of readdirSync('/proc/self/task')) {
      let list: string;
      try {
        list = readFileSync(`/proc/self/task/${tid}/children`, 'utf8').trim();
      } catch {
        continue; // the thread just exited
      }
      if (list !== '') for (const p of list.split(' ')) pids.add(Number(p));
    }
    return [...pids];
  }
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    if (procStat(Number(d))?.ppid === process.pid) pids.add(Number(d));
  }
  return [...pids];
}

function describeStatus(status: number): { code?: number; signal?: number } {
  return (status & 0x7f) === 0 ? { code: (status >> 8) & 0xff } : { signal: status & 0x7f };
}

/**
 * Makes this process a child subreaper (orphans of our services come to us even when we are
 * not PID 1) and reaps orphaned zombies now, on every SIGCHLD and every `intervalMs` (1 s;
 * the timer covers SIGCHLDs that coalesced or arrived while a scan ran). Without the addon it
 * logs a warning and does nothing.
 */
export function startReaper(log: Logger, opts: { intervalMs?: number } = {}): Reaper {
  const load = loadNativeAddon();
  if (!('addon' in load)) {
    log.warn(load.details, `orphan reaper ${load.problem}; orphaned processes will stay zombies`);
    return { stop() {}, reapedCount: () => 0 };
  }
  const addon = load.addon;
  if (!addon.setChildSubreaper() && process.pid !== 1) {
    log.warn('cannot become a child subreaper; orphans of services will be re-parented to init instead');
  }

  let reaped = 0;
  let stopped = false;
  const scan = (): void => {
    if (stopped) return;
    let pids: number[];
    try {
      pids = childPids();
    } catch (err) {
      log.warn({ err }, 'orphan reaper cannot list children');
      return;
    }
    for (const pid of pids) {
      // The ownership check and waitpid() run in the same synchronous turn as any spawn() +
      // trackChild(), so a pid cannot become owned in between.
      if (isOwnedChild(pid) || procStat(pid)?.state !== 'Z') continue;
      let status: number | null;
      try {
        status = addon.reap(pid);
      } catch (err) {
        log.warn({ err, orphan: pid }, 'orphan reaper: waitpid failed');
        continue;
      }
      if (status === null) continue;
      reaped++;
      log.debug({ orphan: pid, ...describeStatus(status) }, 'reaped orphaned process');
    }
  };

  scan();
  process.on('SIGCHLD', scan);
  const timer = setInterval(scan, opts.intervalMs ?? 1000);
  timer.unref(); // the reaper alone must not keep the process alive
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
      process.off('SIGCHLD', scan);
    },
    reapedCount: () => reaped,
  };
}
