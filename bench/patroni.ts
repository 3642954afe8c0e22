import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../agent/ports.js';
import { pidsWithEnv } from '../agent/procs.js';
import type { Cluster } from './cluster.js';
import { CountingProxy } from './dcs-proxy.js';
import type { LogFile } from './log-stats.js';
import type { Root } from './proc-stats.js';

/**
 * Patroni + etcd on loopback, as Debian ships them, for the side-by-side benchmark: one etcd
 * (the store, like pgcharm's controller, is not on any database node) and 3 Patroni nodes,
 * each running PostgreSQL 15 as the postgres user. A killed node is started again after the
 * same delay the local controller reschedules a killed pgcharm unit with (a supervisor such
 * as systemd or a StatefulSet would).
 */

export interface PatroniProfile {
  name: string;
  ttl: number;
  loop_wait: number;
  retry_timeout: number;
}

/** Patroni's defaults, and the tuned profile the issue asks for. */
export const PATRONI_PROFILES: PatroniProfile[] = [
  { name: 'patroni-defaults', ttl: 30, loop_wait: 10, retry_timeout: 10 },
  { name: 'patroni-tuned', ttl: 10, loop_wait: 2, retry_timeout: 4 },
];

const PG_BIN = '/usr/lib/postgresql/15/bin';
const PACKAGES = ['patroni', 'etcd-server', 'python3-etcd'];

/** Installs Patroni and etcd from Debian when missing (root), or says exactly what to run. */
export function ensurePatroni(log: (s: string) => void): void {
  const have = () => existsSync('/usr/bin/patroni') && existsSync('/usr/bin/etcd') && (() => {
    try {
      execFileSync('/usr/bin/python3', ['-c', 'import etcd, psycopg2'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  if (have()) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`Patroni or etcd is missing; install them with: sudo apt-get install -y ${PACKAGES.join(' ')}`);
  }
  log(`installing ${PACKAGES.join(', ')} from Debian (apt-get)`);
  // Debian starts etcd as a service on install; policy-rc.d 101 keeps it from starting (we run our own).
  const policy = '/usr/sbin/policy-rc.d';
  const hadPolicy = existsSync(policy);
  if (!hadPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...PACKAGES], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  } catch {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...PACKAGES], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  } finally {
    if (!hadPolicy) rmSync(policy, { force: true });
  }
  if (!have()) throw new Error(`Patroni or etcd still missing after apt-get install ${PACKAGES.join(' ')}`);
}

const postgresIds = (): { uid: number; gid: number } => ({
  uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
  gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
});

/** The postmaster of a data directory and its children (Patroni starts Postgres in its own session). */
function postmasterTree(pgdata: string): number[] {
  let pm: number;
  try {
    pm = Number(readFileSync(join(pgdata, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return [];
  }
  if (!pm || !existsSync(`/proc/${pm}`)) return [];
  const kids = readdirSync(`/proc/${pm}/task`).flatMap((t) => {
    try {
      return readFileSync(`/proc/${pm}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
  return [pm, ...kids];
}

interface Node {
  name: string;
  pgPort: number;
  apiPort: number;
  dir: string;
  proc?: ChildProcess;
}

export class PatroniCluster implements Cluster {
  readonly user = 'postgres';
  readonly password = `bench-${Math.random().toString(36).slice(2)}`;
  private readonly dir: string;
  private readonly marker = `bench-${process.pid}-${Date.now()}`;
  private etcd?: ChildProcess;
  private etcdPort = 0;
  private nodes: Node[] = [];
  private timers = new Set<NodeJS.Timeout>();
  private proxy?: CountingProxy;

  /** `countDcs`: Patroni reaches etcd through a CountingProxy (see dcsRequests). */
  constructor(
    readonly profile: PatroniProfile,
    private readonly reviveAfterMs: number,
    private readonly o: { countDcs?: boolean } = {},
  ) {
    this.dir = join(tmpdir(), `pgcharm-bench-${profile.name}-${process.pid}-${Date.now()}`);
    this.name = profile.name;
  }

  readonly name: string;

  /** etcd, then 3 Patroni nodes at once; resolves when they are started (not yet streaming). */
  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    chmodSync(this.dir, 0o755);
    const ids = postgresIds();
    this.etcdPort = await freePort();
    const peer = await freePort();
    const etcdUrl = `http://127.0.0.1:${this.etcdPort}`;
    const etcdLog = openSync(join(this.dir, 'etcd.log'), 'a');
    this.etcd = spawn(
      '/usr/bin/etcd',
      [
        '--name', 'bench',
        '--data-dir', join(this.dir, 'etcd'),
        '--listen-client-urls', etcdUrl,
        '--advertise-client-urls', etcdUrl,
        '--listen-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-cluster', `bench=http://127.0.0.1:${peer}`,
        '--enable-v2=true',
      ],
      { stdio: ['ignore', etcdLog, etcdLog], env: { ...process.env, BENCH_NODE: `${this.marker}-etcd` } },
    );
    if (this.o.countDcs) this.proxy = await CountingProxy.start(this.etcdPort);
    for (let i = 0; i < 3; i++) {
      const n: Node = { name: `node${i}`, pgPort: await freePort(), apiPort: await freePort(), dir: join(this.dir, `node${i}`) };
      mkdirSync(n.dir, { recursive: true, mode: 0o700 });
      chownSync(n.dir, ids.uid, ids.gid);
      writeFileSync(join(n.dir, 'patroni.yml'), stringify(this.config(n)), { mode: 0o600 });
      chownSync(join(n.dir, 'patroni.yml'), ids.uid, ids.gid);
      this.nodes.push(n);
    }
    await this.waitEtcd();
    for (const n of this.nodes) this.spawnNode(n);
  }

  private config(n: Node): Record<string, unknown> {
    const p = this.profile;
    return {
      scope: 'bench',
      name: n.name,
      restapi: { listen: `127.0.0.1:${n.apiPort}`, connect_address: `127.0.0.1:${n.apiPort}` },
      // use_proxies: no discovery of etcd's members, whose advertised address would bypass the proxy.
      etcd3: this.proxy ? { hosts: `127.0.0.1:${this.proxy.port}`, use_proxies: true } : { hosts: `127.0.0.1:${this.etcdPort}` },
      bootstrap: {
        dcs: {
          ttl: p.ttl,
          loop_wait: p.loop_wait,
          retry_timeout: p.retry_timeout,
          postgresql: { use_pg_rewind: true, use_slots: true, parameters: { wal_log_hints: 'on' } },
        },
        initdb: [{ encoding: 'UTF8' }, { locale: 'C.UTF-8' }],
      },
      postgresql: {
        listen: `127.0.0.1:${n.pgPort}`,
        connect_address: `127.0.0.1:${n.pgPort}`,
        data_dir: join(n.dir, 'data'),
        bin_dir: PG_BIN,
        pgpass: join(n.dir, 'pgpass'),
        authentication: {
          superuser: { username: 'postgres', password: this.password },
          replication: { username: 'replicator', password: this.password },
        },
        parameters: { unix_socket_directories: n.dir },
        pg_hba: ['local all all peer', 'host replication replicator 127.0.0.1/32 scram-sha-256', 'host all all 127.0.0.1/32 scram-sha-256'],
      },
    };
  }

  private async waitEtcd(): Promise<void> {
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
      try {
        const r = await fetch(`http://127.0.0.1:${this.etcdPort}/health`);
        if (r.ok) return;
      } catch {
        /* not listening yet */
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`etcd did not answer within 30 s (log: ${join(this.dir, 'etcd.log')})`);
  }

  private spawnNode(n: Node): void {
    const ids = postgresIds();
    const log = openSync(join(n.dir, 'patroni.log'), 'a');
    n.proc = spawn('/usr/bin/patroni', [join(n.dir, 'patroni.yml')], {
      uid: ids.uid,
      gid: ids.gid,
      cwd: n.dir,
      stdio: ['ignore', log, log],
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: n.dir, LANG: 'C.UTF-8', BENCH_NODE: `${this.marker}-${n.name}` },
    });
    n.proc.on('error', () => undefined);
  }

  async credentials(): Promise<{ user: string; password: string }> {
    return { user: this.user, password: this.password };
  }

  ports(): number[] {
    return this.nodes.map((n) => n.pgPort);
  }

  nodeNames(): string[] {
    return this.nodes.map((n) => n.name);
  }

  portOf(node: string): number {
    return this.node(node).pgPort;
  }

  private node(name: string): Node {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** SIGKILL of the node's Patroni and every Postgres process it started; started again after the reschedule delay (unless held down). */
  async revive(name: string): Promise<void> {
    this.spawnNode(this.node(name));
  }

  async killNode(name: string, o: { holdDown?: boolean } = {}): Promise<number> {
    const n = this.node(name);
    const pids = [...new Set([...pidsWithEnv('BENCH_NODE', `${this.marker}-${n.name}`), ...postmasterTree(join(n.dir, 'data'))])];
    const t = Date.now();
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    if (!o.holdDown) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.spawnNode(n);
      }, this.reviveAfterMs);
      this.timers.add(timer);
    }
    return t;
  }

  /** SIGKILL of the postmaster only (Patroni stays and restarts it). */
  async killPostmaster(name: string): Promise<number> {
    const n = this.node(name);
    const pid = Number(readFileSync(join(n.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const t = Date.now();
    process.kill(pid, 'SIGKILL');
    return t;
  }

  /** Requests Patroni made of etcd so far, by "METHOD /path" (with countDcs). */
  dcsRequests(): Record<string, number> {
    if (!this.proxy) throw new Error(`${this.name}: DCS requests are counted only with countDcs`);
    return this.proxy.snapshot();
  }

  /** The processes to measure: etcd, each node's Patroni, each node's postmaster (its children follow it). */
  processRoots(): Root[] {
    const roots: Root[] = this.etcd?.pid ? [{ pid: this.etcd.pid, kind: 'etcd', label: 'etcd' }] : [];
    for (const n of this.nodes) {
      const pm = postmasterTree(join(n.dir, 'data'))[0];
      // Postgres started by Patroni inherits its marker; it is counted as Postgres, not Patroni.
      for (const pid of pidsWithEnv('BENCH_NODE', `${this.marker}-${n.name}`)) if (pid !== pm) roots.push({ pid, kind: 'patroni', label: n.name });
      if (pm) roots.push({ pid: pm, kind: 'postgres', label: n.name });
    }
    return roots;
  }

  /** Log files as the footprint bench reads them: each node's patroni.log (Postgres's log too) and etcd's. */
  logFiles(): LogFile[] {
    return Object.entries(this.logs()).map(([group, path]) => ({ path, group: `${group}.log`, live: true }));
  }

  logs(): Record<string, string> {
    const out: Record<string, string> = { etcd: join(this.dir, 'etcd.log') };
    for (const n of this.nodes) out[n.name] = join(n.dir, 'patroni.log');
    return out;
  }

  async destroy(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const n of this.nodes) {
      for (const pid of [...pidsWithEnv('BENCH_NODE', `${this.marker}-${n.name}`), ...postmasterTree(join(n.dir, 'data'))]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    this.etcd?.kill('SIGKILL');
    await this.proxy?.close();
    await new Promise((r) => setTimeout(r, 200));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
