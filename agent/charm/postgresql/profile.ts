import type { ConfigValue } from '../../runtime/charm.js';
import { memoryBytes } from '../../charm-meta/index.js';

/**
 * Sizing from what the unit has: the `profile` option's memory settings and the default bound
 * on the WAL replication slots may keep. Pure functions; the facts come from the workload
 * (PostgresWorkload.resources) and are parsed by parseResources.
 */

const KB = 1024;
const MB = 1024 * KB;
const GB = 1024 * MB;

/** What the workload container has, as read inside it. */
export interface UnitResources {
  /** The lowest cgroup memory limit of the container and its ancestors; undefined when unlimited. */
  cgroupLimit?: number;
  /** MemTotal of the machine (node) the container runs on. */
  machineMemory: number;
  /** Size of the filesystem holding PGDATA (statfs: block size × blocks). */
  volumeBytes: number;
  /** The kernel's release (uname -r): whether syncfs reports write errors (syncfsReportsErrors). */
  kernel?: string;
}

/**
 * Whether syncfs(2) returns the errors of the writes it waited for: Linux 5.8 and later. Before
 * that it could succeed although a write failed (PostgreSQL's recovery_init_sync_method docs),
 * so a single syncfs may stand in for fsyncing each file only from 5.8 on; unknown means no.
 */
export function syncfsReportsErrors(kernel: string | undefined): boolean {
  const m = /^(\d+)\.(\d+)/.exec(kernel ?? '');
  if (!m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 5 || (major === 5 && minor >= 8);
}

/**
 * Locally every unit runs on the one machine (and its one filesystem), beside the controller
 * and whatever else the machine does. Each unit sizes itself from a fixed share of it rather
 * than from 1/number-of-units: that number changes with add-unit and remove-unit, and a new
 * shared_buffers is a restart of every unit's Postgres. A quarter fits the default 3 units with
 * room for everything else.
 */
export const LOCAL_SHARE = 4;

/**
 * The memory a unit may use: its container's memory limit (on Kubernetes the pod spec's
 * resources.limits.memory, enforced as the container's cgroup memory.max), else the machine's
 * memory, as Charmed PostgreSQL uses the pod limit else the node's memory. `share` divides it
 * when several units share one machine (LOCAL_SHARE locally, 1 in a pod).
 */
export function unitMemory(r: Pick<UnitResources, 'cgroupLimit' | 'machineMemory'>, share: number): number {
  const limit = r.cgroupLimit !== undefined && r.cgroupLimit < r.machineMemory ? r.cgroupLimit : r.machineMemory;
  return Math.floor(limit / Math.max(1, share));
}

/**
 * PostgreSQL's own defaults, written out rather than left out: a parameter removed from the
 * config file is not reported by pg_file_settings, so a switch back to them would never
 * restart Postgres for shared_buffers.
 */
export const POSTGRES_DEFAULTS = { shared_buffers: '128MB', effective_cache_size: '4GB', maintenance_work_mem: '64MB', work_mem: '4MB' } as const;

/**
 * `profile=production`: the memory settings the user left unset ("") are sized from the unit's
 * memory, as Charmed PostgreSQL's production profile sizes shared_buffers (25 %) and
 * effective_cache_size (the rest), and pgtune the other two: maintenance_work_mem one
 * sixteenth, at most 2 GB; work_mem (memory − shared_buffers) / (3 × max_connections), at least
 * 64 kB (PostgreSQL's minimum). `profile=testing`, or production without known resources:
 * PostgreSQL's small defaults. A value the user set always wins, in either profile.
 */
export function profileParams(config: Readonly<Record<string, ConfigValue>>, memory: number | undefined): Record<string, string> {
  const p: Record<string, string> = { ...POSTGRES_DEFAULTS };
  if (config['profile'] === 'production' && memory !== undefined && memory > 0) {
    const shared = Math.max(16 * MB, Math.floor(memory / 4));
    const connections = Math.max(1, Number(config['max-connections']) || 100);
    p['shared_buffers'] = `${Math.floor(shared / MB)}MB`;
    p['effective_cache_size'] = `${Math.max(1, Math.floor((memory - shared) / MB))}MB`;
    p['maintenance_work_mem'] = `${Math.max(1, Math.floor(Math.min(2 * GB, memory / 16) / MB))}MB`;
    p['work_mem'] = `${Math.max(64, Math.floor((memory - shared) / (3 * connections) / KB))}kB`;
  }
  const explicit: [string, string][] = [
    ['shared-buffers', 'shared_buffers'],
    ['work-mem', 'work_mem'],
    ['maintenance-work-mem', 'maintenance_work_mem'],
  ];
  for (const [option, param] of explicit) {
    const v = config[option];
    if (typeof v === 'string' && v !== '') p[param] = v;
  }
  return p;
}

/** What max_slot_wal_keep_size defaults to: this fraction of the data volume. */
export const SLOT_WAL_FRACTION = 0.25;
/** Never below the WAL wal_keep_size keeps anyway (render.ts): a smaller bound would protect nothing. */
export const SLOT_WAL_MIN = 128 * MB;
/** The charm's minimum volume (charm.yaml storage pgdata minimum-size), assumed when the size is unknown. */
export const UNKNOWN_VOLUME = 1 * GB;

/**
 * max_slot_wal_keep_size, in MB: the explicit `max-slot-wal-keep-size`, else a quarter of the
 * data volume (divided by `share` where units share one filesystem). Why a quarter: the same
 * volume holds the data, the WAL that max_wal_size and wal_keep_size keep anyway, and temporary
 * files; a standby that is down for long may take a quarter more, after which its slot is
 * invalidated and it re-clones when it comes back (slots.ts) rather than stopping the primary
 * with a full disk. One dead standby among several cannot take more than that either: each
 * slot is bounded by the same figure from the same current position, so their retained WAL
 * overlaps instead of adding up.
 */
export function slotWalKeepSize(config: Readonly<Record<string, ConfigValue>>, volumeBytes: number | undefined, share: number): string {
  const explicit = config['max-slot-wal-keep-size'];
  if (typeof explicit === 'string' && explicit !== '') {
    const b = memoryBytes(explicit);
    if (b !== undefined) return `${Math.floor(b / MB)}MB`;
  }
  const volume = volumeBytes !== undefined && volumeBytes > 0 ? volumeBytes : UNKNOWN_VOLUME;
  return `${Math.floor(Math.max(SLOT_WAL_MIN, (volume * SLOT_WAL_FRACTION) / Math.max(1, share)) / MB)}MB`;
}

/**
 * max_wal_size: PostgreSQL's 1 GB, or a quarter of a smaller data volume (at least 128 MB).
 * The slot bound is enforced at checkpoints, and a busy primary checkpoints only every
 * max_wal_size of WAL: on the charm's minimum 1 GB volume the default alone would let pg_wal
 * reach the size of the disk before a dead standby's slot is ever invalidated.
 */
export function maxWalSize(volumeBytes: number | undefined, share: number): string {
  const volume = volumeBytes !== undefined && volumeBytes > 0 ? volumeBytes : UNKNOWN_VOLUME;
  return `${Math.floor(Math.min(GB, Math.max(SLOT_WAL_MIN, volume / 4 / Math.max(1, share))) / MB)}MB`;
}

/**
 * The shell the workload runs to report its resources (resourcesScript), one fact per line:
 * `cgroup <bytes|max>` for every memory limit from the container's cgroup up to the root
 * (v2 memory.max; v1 hierarchical_memory_limit, already the lowest of its ancestors),
 * `meminfo <kB>` and `fs <block size> <blocks>` for the storage directory, `kernel <release>`.
 */
export function resourcesScript(storage: string): string {
  const q = `'${storage.replace(/'/g, `'\\''`)}'`;
  return [
    'if [ -f /sys/fs/cgroup/cgroup.controllers ]; then',
    '  p=$(sed -n "s/^0:://p" /proc/self/cgroup)',
    '  while :; do',
    '    [ -r "/sys/fs/cgroup$p/memory.max" ] && echo "cgroup $(cat "/sys/fs/cgroup$p/memory.max")"',
    '    [ -z "$p" ] || [ "$p" = / ] && break',
    '    p=${p%/*}',
    '  done',
    'else',
    '  p=$(sed -n "s/^[0-9]*:\\([^:]*,\\)\\{0,1\\}memory\\(,[^:]*\\)\\{0,1\\}://p" /proc/self/cgroup)',
    '  for f in "/sys/fs/cgroup/memory$p/memory.stat" /sys/fs/cgroup/memory/memory.stat; do',
    '    if [ -r "$f" ]; then sed -n "s/^hierarchical_memory_limit /cgroup /p" "$f"; break; fi',
    '  done',
    'fi',
    'sed -n "s/^MemTotal: *\\([0-9]*\\) kB/meminfo \\1/p" /proc/meminfo',
    `echo "fs $(stat -f -c '%S %b' ${q})"`,
    'echo "kernel $(uname -r)"',
  ].join('\n');
}

/** resourcesScript's output; undefined without the machine's memory. A v1 "no limit" (2^63 rounded to pages) is no limit. */
export function parseResources(text: string): UnitResources | undefined {
  let cgroup: number | undefined;
  let machine: number | undefined;
  let volume = 0;
  let kernel: string | undefined;
  for (const line of text.split('\n')) {
    const [k, a, b] = line.trim().split(/\s+/);
    if (k === 'cgroup' && a && /^\d+$/.test(a)) {
      const n = Number(a);
      if (n < 2 ** 60) cgroup = cgroup === undefined ? n : Math.min(cgroup, n);
    } else if (k === 'meminfo' && a && /^\d+$/.test(a)) machine = Number(a) * KB;
    else if (k === 'fs' && a && b && /^\d+$/.test(a) && /^\d+$/.test(b)) volume = Number(a) * Number(b);
    else if (k === 'kernel' && a) kernel = a;
  }
  if (!machine) return undefined;
  return { ...(cgroup !== undefined ? { cgroupLimit: cgroup } : {}), machineMemory: machine, volumeBytes: volume, ...(kernel ? { kernel } : {}) };
}
