import { isIP } from 'node:net';
import { stringify } from '#yaml';
import { cidrList } from '../../charm-meta/values.js';
import type { ConfigValue } from '../../runtime/charm.js';
import { archiveParams, archiving } from './backup.js';
import { LOCAL_SHARE, maxWalSize, profileParams, slotWalKeepSize, syncfsReportsErrors, unitMemory, type UnitResources } from './profile.js';

/**
 * Pure rendering of what the charm writes into the workload: the Postgres config file it owns
 * (the server runs with config_file pointing at it), pg_hba.conf, and the sidecar layer.
 */

export interface Layout {
  binDir: string;
  /** The storage mount (PGDATA lives in it, beside the charm's own files). */
  storage: string;
  pgdata: string;
  /** The charm's private files (password files), postgres-owned, 0700. */
  private: string;
  socketDir: string;
  confFile: string;
  hbaFile: string;
  identFile: string;
  pgpass: string;
}

export function layout(storage: string, major: number): Layout {
  const pgdata = `${storage}/pgdata`;
  return {
    binDir: `/usr/lib/postgresql/${major}/bin`,
    storage,
    pgdata,
    private: `${storage}/pgcharm`,
    socketDir: `${storage}/run`,
    confFile: `${pgdata}/pgcharm.conf`,
    hbaFile: `${pgdata}/pg_hba.conf`,
    identFile: `${pgdata}/pg_ident.conf`,
    pgpass: `${storage}/pgcharm/pgpass`,
  };
}

export type Role = 'primary' | 'replica';

export interface Standby {
  /** libpq conninfo of the primary, without a password (passfile= carries it). */
  primaryConninfo: string;
  slot: string;
}

/** Replication slot names allow [a-z0-9_]: postgresql/1 -> postgresql_1. */
export const slotName = (unit: string): string => unit.replace(/[^a-z0-9]/g, '_');

/**
 * The Postgres parameters for this unit, from the charm config, its role and (for the profile's
 * memory settings and the slot WAL bound) what its workload has: `resources`, undefined when
 * unknown.
 */
export function pgParams(
  config: Readonly<Record<string, ConfigValue>>,
  o: { host: string; port: number; l: Layout; standby?: Standby; synchronousStandbyNames?: string; resources?: UnitResources | undefined },
): Record<string, string> {
  // Locally every unit shares the machine's memory and filesystem (profile.ts LOCAL_SHARE).
  const share = o.host === '127.0.0.1' ? LOCAL_SHARE : 1;
  const p: Record<string, string> = {
    // Locally every unit shares 127.0.0.1 (one port each); in a pod, all interfaces (the pod IP and loopback).
    listen_addresses: o.host === '127.0.0.1' ? '127.0.0.1' : '*',
    port: String(o.port),
    unix_socket_directories: o.l.socketDir,
    hba_file: o.l.hbaFile,
    ident_file: o.l.identFile,
    max_connections: String(config['max-connections']),
    ...profileParams(config, o.resources ? unitMemory(o.resources, share) : undefined),
    password_encryption: String(config['password-encryption']),
    log_connections: config['log-connections'] ? 'on' : 'off',
    log_min_duration_statement: String(config['log-min-duration-statement']),
    timezone: String(config['timezone']),
    wal_level: 'replica',
    max_wal_senders: '16',
    max_replication_slots: '16',
    hot_standby: 'on',
    hot_standby_feedback: 'on',
    // pg_rewind needs either checksums or hint-bit WAL; this keeps rewind possible either way.
    wal_log_hints: 'on',
    wal_keep_size: '128MB',
    // A standby whose primary restarted (a postmaster crash) retries streaming after this; the
    // 5 s default kept commits waiting for a synchronous standby that long.
    wal_retrieve_retry_interval: '1s',
    // A standby that is down must not fill the primary's disk: past this its slot is invalidated
    // (at a checkpoint, which max_wal_size brings on sooner on a small volume).
    max_slot_wal_keep_size: slotWalKeepSize(config, o.resources?.volumeBytes, share),
    max_wal_size: maxWalSize(o.resources?.volumeBytes, share),
    synchronous_commit: String(config['synchronous-commit']),
    synchronous_standby_names: o.synchronousStandbyNames ?? '',
    // Before recovery (a clone's first start, any start after a crash) Postgres syncs the data
    // directory: one syncfs where it reports write errors, instead of opening and fsyncing each
    // file (0.1-1.9 s for a fresh clone's ~1000 files here).
    recovery_init_sync_method: syncfsReportsErrors(o.resources?.kernel) ? 'syncfs' : 'fsync',
    log_line_prefix: '%m [%p] %q%u@%d ',
    // WAL archiving to the pgBackRest repository, when there is one (backup.ts).
    ...(archiving(config) ? archiveParams(config, o.l) : { archive_mode: 'off' }),
  };
  if (o.standby) {
    p['primary_conninfo'] = o.standby.primaryConninfo;
    p['primary_slot_name'] = o.standby.slot;
  }
  return p;
}

const quote = (v: string) => `'${v.replace(/'/g, "''")}'`;

export function renderConf(params: Record<string, string>): string {
  const lines = ['# Written by the pgcharm charm; edits are overwritten. Change settings with `pgcharm config`.'];
  for (const [k, v] of Object.entries(params)) lines.push(`${k} = ${quote(v)}`);
  return lines.join('\n') + '\n';
}

/** What pg_hba.conf admits, beyond the local socket. */
export interface HbaSpec {
  /** scram-sha-256 or md5 (password_encryption). */
  method: string;
  /** The units' own addresses (every peer and this unit), hosts or IPs without a port. */
  peers: readonly string[];
  /** Address ranges other clients may come from (resolveClientCidrs). */
  clients: readonly string[];
}

/** A host as a pg_hba address: an IP as a one-address range (/32, /128), a host name as is. */
export function hostEntry(host: string): string {
  const family = isIP(host);
  return family === 4 ? `${host}/32` : family === 6 ? `${host}/128` : host;
}

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || /^127\./.test(host);

/**
 * `allowed-client-cidrs` as ranges. `auto`: loopback when this unit's address is loopback (a
 * local deployment, every unit on 127.0.0.1); otherwise the /16 around the pod's IPv4 address
 * (IPv6: the /64), which holds the pod network of common clusters (microk8s 10.1.0.0/16,
 * flannel and kind 10.244.0.0/16). A host name gives no range: set the option.
 */
export function resolveClientCidrs(setting: string, ownHost: string): string[] {
  if (setting.trim() !== 'auto') return cidrList(setting);
  if (isLoopback(ownHost)) return [ownHost === '::1' ? '::1/128' : '127.0.0.1/32'];
  if (isIP(ownHost) === 4) return [`${ownHost.split('.').slice(0, 2).join('.')}.0.0/16`];
  if (isIP(ownHost) === 6) return [`${ipv6Prefix64(ownHost)}::/64`];
  return [];
}

/** The first four groups of an IPv6 address, with :: expanded. */
function ipv6Prefix64(ip: string): string {
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.slice(0, 4).map((g) => g || '0').join(':');
}

/**
 * First match wins. The system users come only from the units themselves (and the socket):
 * replication only as replication connections from peers, rewind only to the `postgres`
 * database from peers (pg_rewind), operator (the superuser) and monitoring from peers; any
 * other address is refused for them explicitly, before the rule for other clients, which
 * admits every other user from `clients`. The OS user postgres keeps peer auth on the socket,
 * as itself and as the operator (IDENT_MAP): it owns the data directory anyway, and a cluster
 * restored from another deployment's backup holds that deployment's passwords until the
 * charm, connecting this way, sets its own.
 */
export function renderHba(spec: HbaSpec): string {
  const m = spec.method;
  const peers = [...new Set(spec.peers.map(hostEntry))].sort();
  const row = (type: string, db: string, user: string, addr: string, method: string) =>
    `${type.padEnd(7)} ${db.padEnd(12)} ${user.padEnd(28)} ${addr.padEnd(20)} ${method}`.trimEnd();
  return [
    '# Written by the pgcharm charm; edits are overwritten. Clients: config option allowed-client-cidrs.',
    row('# TYPE', 'DATABASE', 'USER', 'ADDRESS', 'METHOD'),
    row('local', 'all', 'postgres', '', 'peer'),
    row('local', 'all', 'operator', '', `peer map=${IDENT_MAP}`),
    row('local', 'all', 'all', '', m),
    '# the units (this one included): streaming, pg_basebackup, pg_rewind, the agents',
    ...peers.flatMap((a) => [row('host', 'replication', 'replication', a, m), row('host', 'postgres', 'rewind', a, m), row('host', 'all', 'operator,monitoring', a, m)]),
    '# the system users from anywhere else: refused',
    row('host', 'replication', 'all', 'all', 'reject'),
    row('host', 'all', 'operator,replication,rewind', 'all', 'reject'),
    '# other clients',
    ...[...new Set(spec.clients)].map((c) => row('host', 'all', 'all', c, m)),
    '',
  ].join('\n');
}

/** The pg_ident map that lets the OS user postgres in as the operator over the socket. */
export const IDENT_MAP = 'pgcharm';

export function renderIdent(): string {
  return ['# Written by the pgcharm charm; edits are overwritten.', '# MAPNAME  SYSTEM-USERNAME  PG-USERNAME', `${IDENT_MAP}  postgres  operator`, ''].join('\n');
}

export const SERVICE = 'postgresql';

/** Restart backoff cap for the postgresql service, and how long it must run for the backoff to reset. */
export const BACKOFF_LIMIT_MS = 5000;

/** Supervision settings every Postgres service gets, charm-managed or the single demo. */
export const POSTGRES_SUPERVISION = {
  user: 'postgres',
  group: 'postgres',
  // A fast shutdown checkpoints first; SIGKILL only when that is truly stuck.
  'kill-delay': '30s',
  // A crashed postmaster is back after 0.5 s, then 1, 2, 4, 5, 5... s while it keeps crashing;
  // the penalty resets after 5 s of healthy running (Pebble resets it after backoff-limit).
  // The 30 s default would keep a database down for half a minute.
  'backoff-limit': `${BACKOFF_LIMIT_MS}ms`,
} as const;

/** The ready check: the port accepts TCP connections. */
export function readyCheck(port: number): Record<string, unknown> {
  return { override: 'replace', level: 'ready', period: '5s', timeout: '3s', tcp: { host: '127.0.0.1', port } };
}

/** The sidecar layer: Postgres as the postgres user, started only when the charm decides (startup: disabled). */
export function postgresLayer(l: Layout, port: number): string {
  return stringify({
    summary: 'PostgreSQL (pgcharm)',
    services: {
      [SERVICE]: {
        override: 'replace',
        summary: 'PostgreSQL server',
        command: `${l.binDir}/postgres -D ${l.pgdata} -c config_file=${l.confFile}`,
        // Never autostarted: after a failover, an old primary must not come back writable before its agent decides.
        startup: 'disabled',
        ...POSTGRES_SUPERVISION,
      },
    },
    checks: { 'postgresql-ready': readyCheck(port) },
  });
}

export const FENCE_SERVICE = 'pgcharm-fence';

/**
 * The fence, a watchdog beside Postgres in the workload, so it works when the agent is frozen,
 * dead or cut off: once the deadline the agent wrote at its last lease renewal has passed, it
 * marks PGDATA a standby (so the sidecar's restart brings Postgres back read-only) and stops the
 * postmaster at once (SIGQUIT, immediate shutdown).
 *
 * The agent writes each deadline (epoch ms; 0 disarms) as a line into a named pipe (fence.ts);
 * the watchdog sleeps in `read -t` until the next line or the deadline. Bash builtins only
 * ($EPOCHREALTIME, printf -v, read, kill): at idle it forks nothing and wakes only when the
 * agent writes. It holds the pipe open for writing too, so it never sees end-of-file and a
 * dead agent simply stops sending deadlines. Started while Postgres already serves writes (the
 * watchdog itself was restarted), it arms the margin from now, as if a renewal just happened.
 */
export function fenceScript(l: Layout, pipe: string, marginMs: number): string {
  return `#!/bin/bash
# Written by the pgcharm charm. See agent/charm/postgresql/render.ts (fenceScript).
pipe=${shq(pipe)}
pgdata=${shq(l.pgdata)}
margin=${Math.round(marginMs)}
exec 3<>"$pipe" || exit 1
primary() { [ -f "$pgdata/postmaster.pid" ] && [ ! -e "$pgdata/standby.signal" ]; }
deadline=0
if primary; then us=\${EPOCHREALTIME//[!0-9]/}; deadline=$(( us / 1000 + margin )); fi
while :; do
  if (( deadline > 0 )); then
    us=\${EPOCHREALTIME//[!0-9]/}
    now=$(( us / 1000 ))
    left=$(( deadline - now ))
    if (( left <= 0 )); then
      if primary; then
        : > "$pgdata/standby.signal"
        read -r pid < "$pgdata/postmaster.pid"
        kill -QUIT "$pid" 2>/dev/null
        echo "fenced: primary lease not renewed by $deadline (now $now); postgres stopped, restarting read-only"
      fi
      deadline=0
      continue
    fi
    printf -v wait '%d.%03d' $(( left / 1000 )) $(( left % 1000 ))
    if read -r -t "$wait" -u 3 line && [[ $line =~ ^[0-9]+$ ]]; then deadline=$line; fi
  elif read -r -u 3 line && [[ $line =~ ^[0-9]+$ ]]; then
    deadline=$line
  fi
done
`;
}

/**
 * The watchdog runs as postgres; its group is the one that may write the pipe: postgres when
 * the agent is root (it hands the pipe to that group), else the agent's own group (a pod).
 */
export function fenceLayer(l: Layout, pipe: string, marginMs: number, agentGid: number | undefined): string {
  return stringify({
    summary: 'pgcharm fence',
    services: {
      [FENCE_SERVICE]: {
        override: 'replace',
        summary: 'stops a primary whose lease was not renewed in time',
        command: `/bin/bash ${l.private}/fence.sh`,
        startup: 'enabled',
        user: 'postgres',
        ...(agentGid === undefined ? { group: 'postgres' } : { 'group-id': agentGid }),
        'kill-delay': '1s',
        // Unused by the script (it has them written in): here a new TTL changes the layer, and
        // changing a layer is what makes the sidecar restart the watchdog with the new script.
        environment: { PGCHARM_FENCE_PIPE: pipe, PGCHARM_FENCE_MARGIN_MS: String(Math.round(marginMs)) },
      },
    },
  });
}

/** A single-quoted shell word. */
const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** On the unit's own pod: what Services `<app>-primary` and `<app>-replicas` select on. */
export const ROLE_LABEL = 'pgcharm.io/role';
