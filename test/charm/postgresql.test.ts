import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { parse } from 'yaml';
import { CoreV1Api, KubeConfig } from '#client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testModel, type TestModel } from '../helpers/model.js';
import { cmdline, pidsWithEnv, waitFor } from '../helpers/procs.js';
import { Writer } from '../../bench/writer.js';
import { AGENT_RBAC_RULES, RELATION_ONLY } from '../../agent/manifests/render.js';

/** The real thing: 3 units of the PostgreSQL charm, PostgreSQL 15 as the postgres user. */
describe('PostgreSQL charm: 3-unit deployment', () => {
  let m: TestModel;
  let deployOut = '';
  const q = async (uri: string, sql: string) => {
    const c = new pg.Client({ connectionString: uri, connectionTimeoutMillis: 3000 });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return (await c.query(sql)).rows as Record<string, unknown>[];
    } finally {
      await c.end();
    }
  };

  beforeAll(async () => {
    m = testModel();
    const r = await m.cli(['deploy', '--units', '3', '--timeout', '120'], 180_000);
    deployOut = r.stdout;
    expect(r.code, r.stderr).toBe(0);
  }, 200_000);
  afterAll(async () => {
    await m?.cleanup();
  }, 60_000);

  it('ends with one primary and two streaming standbys, and prints a working connection string', async () => {
    const uri = /Connection string \(primary\): (\S+)/.exec(deployOut)?.[1];
    expect(uri).toBeDefined();
    const primary = ((await m.cli(['run', 'leader', 'get-primary', '--wait'])).stdout.match(/primary: (\S+)/) ?? [])[1];
    expect(primary).toMatch(/^postgresql\/[012]$/);
    // No fence at bootstrap: the new primary's deadline comes from a renewal made as it starts,
    // not from one made before initdb (the watchdog stopped it 50 ms after it started).
    const logs = join(m.dir, 'logs');
    for (const f of readdirSync(logs).filter((f) => f.endsWith('.sidecar.log'))) expect(readFileSync(join(logs, f), 'utf8'), f).not.toContain('fenced:');
    const repl = await q(uri!, "SELECT application_name, state, sync_state FROM pg_stat_replication ORDER BY 1");
    expect(repl.map((r) => r['application_name'])).toEqual(['postgresql/0', 'postgresql/1', 'postgresql/2'].filter((u) => u !== primary));
    expect(repl.every((r) => r['state'] === 'streaming' && r['sync_state'] === 'quorum')).toBe(true);
    await q(uri!, 'CREATE TABLE probe (v text); INSERT INTO probe VALUES (\'written on the primary\')');
    const replicas = (await m.cli(['uri', 'replicas'])).stdout.trim().split('\n');
    expect(replicas).toHaveLength(2);
    for (const r of replicas) {
      await waitFor('row replicated', async () => (await q(r, 'SELECT v FROM probe'))[0]?.['v'] === 'written on the primary');
      expect((await q(r, 'SELECT pg_is_in_recovery() AS r'))[0]!['r']).toBe(true);
    }
  });

  it('reports role, address, leader and status per unit in status --format json', async () => {
    const s = JSON.parse((await m.cli(['status', '--format', 'json'])).stdout) as { application: { status: string; message: string }; units: Record<string, { leader: boolean; role: string; address: string; workload: { status: string } }> };
    expect(s.application.status).toBe('active');
    expect(s.application.message).toMatch(/^primary postgresql\/[012], 2\/2 replicas$/);
    expect(Object.values(s.units).map((u) => u.role).sort()).toEqual(['primary', 'replica', 'replica']);
    expect(Object.values(s.units).every((u) => /^127\.0\.0\.1:\d+$/.test(u.address) && u.workload.status === 'active')).toBe(true);
    expect(Object.values(s.units).filter((u) => u.leader)).toHaveLength(1);
    // Timeline and lag are read live from each Postgres: a fresh cluster is on timeline 1.
    const live = s.units as unknown as Record<string, { role: string; timeline: number | null; lag: number | null; postgres: string }>;
    for (const u of Object.values(live)) {
      expect(u.timeline).toBe(1);
      expect(u.postgres).toBe(u.role);
      expect(typeof u.lag).toBe('number');
      if (u.role === 'primary') expect(u.lag).toBe(0);
    }
    expect((await m.cli(['status'])).stdout).toMatch(/\bprimary\s+1\s+0\s/);
    // Each agent labels its own pod with its role (what Services <app>-primary/-replicas select),
    // having reached the API server the way a pod does: service account token, CA, namespace.
    const kc = new KubeConfig();
    kc.loadFromFile(join(m.dir, 'kubeconfig'));
    const core = kc.makeApiClient(CoreV1Api);
    const ns = kc.getContextObject(kc.getCurrentContext())!.namespace!;
    await waitFor('pods labelled with their roles', async () => {
      const pods = (await core.listNamespacedPod({ namespace: ns })).items;
      return pods.length === 3 && pods.every((p) => p.metadata!.labels!['pgcharm.io/role'] === s.units[p.metadata!.name!.replace(/-(\d+)$/, '/$1')]!.role);
    }, 20_000);
    const primaryPods = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'pgcharm.io/role=primary' })).items;
    expect(primaryPods).toHaveLength(1);
    const agentLog = readFileSync(join(m.dir, 'logs', `${primaryPods[0]!.metadata!.name}.agent.log`), 'utf8');
    expect(agentLog).toMatch(/"credentials":"in-cluster"/);
  });

  it('keeps passwords out of process lists, logs and status', async () => {
    const pw = (await m.cli(['run', 'leader', 'get-password', '--wait'])).stdout.match(/password: (\S+)/)?.[1];
    expect(pw).toBeDefined();
    const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
    expect(ps).not.toContain(pw);
    const logs = readdirSync(join(m.dir, 'logs')).map((f) => readFileSync(join(m.dir, 'logs', f), 'utf8')).join('\n');
    expect(logs).not.toContain(pw);
    expect((await m.cli(['status', '--format', 'yaml'])).stdout).not.toContain(pw);
  });

  it('at idle: no SIGHUP, no file written, no log line, no store request but lease renewals (30 s, three update-status rounds)', async () => {
    // Every regular file of every unit (layers, config, passfile, scripts, signal files), except
    // what Postgres itself keeps in its data directory; pgcharm's own files there are included.
    const ours = /\/(pgcharm\.conf|pg_hba\.conf|standby\.signal|postgresql\.auto\.conf)$/;
    const files = (dir: string, out = new Map<string, string>()): Map<string, string> => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) {
          if (!/\/storage\/pgdata\/pgdata$/.test(p)) files(p, out);
          else for (const f of readdirSync(p)) if (ours.test(join(p, f))) files1(join(p, f), out);
        } else if (e.isFile()) files1(p, out);
      }
      return out;
    };
    const files1 = (p: string, out: Map<string, string>) => {
      const st = statSync(p);
      out.set(p, `${st.mtimeMs}:${st.size}`);
    };
    // The units' own logs (Postgres's output is in the sidecar's): at idle, not a line at info.
    const sidecarLogs = () => Object.fromEntries(readdirSync(join(m.dir, 'logs')).filter((f) => /\.(sidecar|agent)\.log$/.test(f)).map((f) => [f, readFileSync(join(m.dir, 'logs', f), 'utf8')]));
    const auditLines = () => readFileSync(join(m.dir, 'logs', 'audit.jsonl'), 'utf8').trim().split('\n');
    // A change made just before (the primary's synchronous set, recorded after the bootstrap)
    // gets its one reconcile at the next update-status: the window starts after that round.
    await new Promise((r) => setTimeout(r, 11_000));
    const before = { files: files(join(m.dir, 'units')), logs: sidecarLogs(), audit: auditLines().length };
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 30_000));
    const seconds = (Date.now() - t0) / 1000;
    const after = { files: files(join(m.dir, 'units')), logs: sidecarLogs(), audit: auditLines() };
    for (const [f, text] of Object.entries(after.logs)) {
      const added = text.slice(before.logs[f]?.length ?? 0);
      expect(added.split('\n').filter((l) => /received SIGHUP/.test(l)), `${f}: SIGHUPs at idle`).toEqual([]);
      // Postgres's own timed checkpoints (log_checkpoints) are its business, not pgcharm's.
      const postgresHousekeeping = /\[postgresql\].*LOG: +(checkpoint|restartpoint) (starting|complete)|\[postgresql\].*LOG: +recovery restart point/;
      expect(added.split('\n').filter((l) => l.trim() !== '' && !postgresHousekeeping.test(l)), `${f}: lines logged at idle`).toEqual([]);
    }
    const changed = [...after.files].filter(([p, v]) => before.files.get(p) !== v).map(([p]) => p.slice(m.dir.length));
    expect(changed, 'files written at idle').toEqual([]);
    const requests = after.audit.slice(before.audit).map((l) => JSON.parse(l) as { verb: string; resource: string; name?: string });
    // Lease renewals, and the leader's look for a password change left pending every 30 s.
    const kinds = requests.map((r) => `${r.verb} ${r.resource}`);
    expect(kinds.filter((k) => k !== 'update leases' && k !== 'get secrets'), 'store requests at idle').toEqual([]);
    expect(kinds.filter((k) => k === 'get secrets').length).toBeLessThanOrEqual(2);
    // The primary renews every TTL/5 (2 s: 0.4 s), the leader every 3 s: 2.8 a second.
    expect(requests.length / seconds).toBeLessThanOrEqual(3);
  }, 80_000);

  it('fails over when the primary unit is killed: no acknowledged write lost, the old primary rejoins as a standby', async () => {
    const pw = (await m.cli(['run', 'leader', 'get-password', '--wait'])).stdout.match(/password: (\S+)/)![1]!;
    const roles = async () => {
      const s = JSON.parse((await m.cli(['status', '--format', 'json'])).stdout) as { units: Record<string, { role: string; workload: { status: string } }> };
      return s.units;
    };
    const old = Object.entries(await roles()).find(([, u]) => u.role === 'primary')![0];
    const w = new Writer(m.dir, pw);
    await w.start();
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const killedAt = Date.now();
      expect((await m.cli(['kill', old])).code).toBe(0);
      const next = await waitFor('a new primary', async () => Object.entries(await roles()).find(([u, x]) => u !== old && x.role === 'primary')?.[0], 30_000);
      await waitFor('writes resumed', () => w.acked.some((a) => a.at > killedAt + 500) && w.acked.at(-1)!.at > Date.now() - 500, 30_000);
      // A standby promoted only after the lease expired: the gap is the lease TTL plus detection.
      expect(w.longestGapAfter(killedAt)).toBeLessThan(10_000);
      await w.stop();
      expect(await w.lost()).toEqual([]);
      await waitFor('the old primary back as a standby of the new one', async () => {
        const u = (await roles())[old];
        return u?.role === 'replica' && u.workload.status === 'active';
      }, 90_000);
      const c = new pg.Client({ connectionString: (await m.cli(['uri', old])).stdout.trim() });
      c.on('error', () => undefined);
      await c.connect();
      // A write in flight at the kill may be committed without its acknowledgement reaching the
      // client: the new primary can hold more rows than were acknowledged. The rejoined unit must
      // hold exactly the new primary's rows (nothing of its own kept, nothing missing).
      const onPrimary = (await q((await m.cli(['uri', 'primary'])).stdout.trim(), `SELECT string_agg(id::text, ',' ORDER BY id) AS ids, count(*)::int AS n FROM ${w.table}`))[0]!;
      expect(Number(onPrimary['n'])).toBeGreaterThanOrEqual(w.acked.length);
      try {
        await waitFor('the rejoined unit has exactly the new primary\'s rows', async () => {
          const r = (await c.query(`SELECT string_agg(id::text, ',' ORDER BY id) AS ids, count(*)::int AS n FROM ${w.table}`)).rows[0];
          if (r.ids === onPrimary['ids']) return true;
          // Said in the timeout message when it never catches up.
          const x = (await c.query("SELECT (SELECT status FROM pg_stat_wal_receiver) AS receiver, (SELECT received_tli FROM pg_stat_wal_receiver) AS tli, pg_last_wal_replay_lsn()::text AS replay")).rows[0];
          throw new Error(`${r.n}/${onPrimary['n']} rows (${w.acked.length} acknowledged); wal receiver ${x.receiver ?? 'none'} on timeline ${x.tli}, replayed ${x.replay}`);
        }, 30_000);
        expect((await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r).toBe(true);
      } finally {
        await c.end();
      }
      expect(next).not.toBe(old);
    } finally {
      await w.stop();
    }
  }, 180_000);

  it('fences a primary whose agent is frozen before any other unit is promoted; never two writable primaries', async () => {
    const pw = (await m.cli(['run', 'leader', 'get-password', '--wait'])).stdout.match(/password: (\S+)/)![1]!;
    const roles = async () => (JSON.parse((await m.cli(['status', '--format', 'json'])).stdout) as { units: Record<string, { role: string; address: string; workload: { status: string } }> }).units;
    await waitFor('settled', async () => Object.values(await roles()).every((u) => u.workload.status === 'active' && (u.role === 'primary' || u.role === 'replica')), 90_000);
    const units = await roles();
    const old = Object.entries(units).find(([, u]) => u.role === 'primary')![0];
    const ports = Object.fromEntries(Object.entries(units).map(([u, x]) => [u, Number(x.address.split(':')[1])]));
    const setup = new pg.Client({ host: '127.0.0.1', port: ports[old], user: 'operator', password: pw, database: 'postgres' });
    setup.on('error', () => undefined);
    await setup.connect();
    await setup.query('CREATE TABLE IF NOT EXISTS fence_probe (unit text, at bigint)');
    await setup.end();

    // Every unit is probed with a write that does not wait for standbys (synchronous_commit
    // local), so a primary that is still writable would acknowledge it.
    const accepted: Record<string, number[]> = Object.fromEntries(Object.keys(ports).map((u) => [u, []]));
    let probing = true;
    const probe = async (unit: string) => {
      while (probing) {
        const c = new pg.Client({ host: '127.0.0.1', port: ports[unit], user: 'operator', password: pw, database: 'postgres', connectionTimeoutMillis: 300, statement_timeout: 300 });
        c.on('error', () => undefined);
        try {
          await c.connect();
          await c.query('SET synchronous_commit = local');
          const at = Date.now();
          await c.query('INSERT INTO fence_probe VALUES ($1, $2)', [unit, at]);
          accepted[unit]!.push(Date.now());
        } catch {
          /* read-only, down or fenced */
        }
        await c.end().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const probes = Object.keys(ports).map((u) => probe(u));
    const pod = old.replace('/', '-');
    const agent = pidsWithEnv('PGCHARM_LOCAL_UNIT', `${m.dir}#${pod}`).find((p) => cmdline(p).includes('agent'))!;
    try {
      await new Promise((r) => setTimeout(r, 500));
      const stoppedAt = Date.now();
      process.kill(agent, 'SIGSTOP');
      const next = await waitFor('another unit accepts writes', () => Object.keys(ports).find((u) => u !== old && accepted[u]!.length > 0), 30_000);
      await new Promise((r) => setTimeout(r, 1500));
      const lastOld = Math.max(...accepted[old]!);
      const firstNew = Math.min(...accepted[next]!);
      // The frozen primary stopped acknowledging writes strictly before the new one started.
      expect(lastOld).toBeLessThan(firstNew);
      expect(lastOld - stoppedAt).toBeLessThan(3000);
      for (const [u, times] of Object.entries(accepted)) if (u !== old && u !== next) expect(times).toEqual([]);
    } finally {
      probing = false;
      process.kill(agent, 'SIGCONT');
      await Promise.all(probes);
    }
    await waitFor('the fenced unit rejoins as a standby', async () => {
      const u = (await roles())[old];
      return u?.role === 'replica' && u.workload.status === 'active';
    }, 90_000);
  }, 240_000);

  it('applies a reload-class change without restarting and a restart-class change by a rolling restart: replicas first when raised, the primary first when lowered', async () => {
    const pw = (await m.cli(['run', 'leader', 'get-password', '--wait'])).stdout.match(/password: (\S+)/)![1]!;
    const units = async () => (JSON.parse((await m.cli(['status', '--format', 'json'])).stdout) as { units: Record<string, { role: string; address: string; workload: { status: string }; agent: { status: string } }> }).units;
    await waitFor('settled', async () => Object.values(await units()).every((u) => u.workload.status === 'active' && u.agent.status === 'idle' && ['primary', 'replica'].includes(u.role)), 90_000);
    const u0 = await units();
    const read = async () => {
      const out: Record<string, { work_mem: string; max_connections: string; started: number }> = {};
      for (const [name, u] of Object.entries(u0)) {
        const c = new pg.Client({ host: '127.0.0.1', port: Number(u.address.split(':')[1]), user: 'operator', password: pw, database: 'postgres' });
        c.on('error', () => undefined); // the rolling restart ends this connection
        try {
          await c.connect();
        } catch {
          continue;
        }
        try {
          const r = (await c.query("SELECT current_setting('work_mem') AS w, current_setting('max_connections') AS m, extract(epoch FROM pg_postmaster_start_time()) * 1000 AS s")).rows[0];
          out[name] = { work_mem: r.w, max_connections: r.m, started: Number(r.s) };
        } catch {
          /* restarting */
        } finally {
          await c.end().catch(() => undefined);
        }
      }
      return out;
    };
    const pids = () => Object.keys(u0).flatMap((n) => pidsWithEnv('PGCHARM_LOCAL_UNIT', `${m.dir}#${n.replace('/', '-')}`).filter((p) => cmdline(p).some((a) => a.endsWith('cli.js')))).sort();
    const before = await read();
    const sidecarsAndAgents = pids();
    expect(sidecarsAndAgents).toHaveLength(6);

    // Through the Kubernetes API (as on a cluster: `pgcharm config --kubeconfig`), not the model directory.
    const kc = new KubeConfig();
    kc.loadFromFile(join(m.dir, 'kubeconfig'));
    const core = kc.makeApiClient(CoreV1Api);
    const podUids = async () => Object.fromEntries((await core.listNamespacedPod({ namespace: kc.getContextObject(kc.getCurrentContext())!.namespace! })).items.map((p) => [p.metadata!.name!, p.metadata!.uid!]));
    const uidsBefore = await podUids();
    const viaApi = await m.cli(['config', '--kubeconfig', join(m.dir, 'kubeconfig'), 'work-mem=16MB']);
    expect(viaApi.code, viaApi.stderr).toBe(0);
    await waitFor('work_mem everywhere', async () => Object.values(await read()).every((x) => x.work_mem === '16MB'), 30_000);
    const reloaded = await read();
    for (const n of Object.keys(u0)) expect(reloaded[n]!.started).toBe(before[n]!.started);
    const bad = await m.cli(['config', '--kubeconfig', join(m.dir, 'kubeconfig'), 'work-mem=lots']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/work-mem/);

    expect((await m.cli(['config', 'max-connections=140'])).code).toBe(0);
    await waitFor('max_connections everywhere', async () => {
      const r = await read();
      return Object.keys(u0).every((n) => r[n]?.max_connections === '140');
    }, 90_000);
    const after = await read();
    const primary = Object.entries(u0).find(([, u]) => u.role === 'primary')![0];
    for (const n of Object.keys(u0)) {
      expect(after[n]!.started).toBeGreaterThan(before[n]!.started);
      if (n !== primary) expect(after[n]!.started).toBeLessThan(after[primary]!.started);
    }

    // Lowering it flips the order: a hot standby refuses to replay with less than its primary.
    expect((await m.cli(['config', 'max-connections=120'])).code).toBe(0);
    await waitFor('max_connections lowered everywhere', async () => {
      const r = await read();
      return Object.keys(u0).every((n) => r[n]?.max_connections === '120');
    }, 90_000);
    const lowered = await read();
    for (const n of Object.keys(u0)) {
      expect(lowered[n]!.started).toBeGreaterThan(after[n]!.started);
      if (n !== primary) expect(lowered[n]!.started).toBeGreaterThan(lowered[primary]!.started);
    }
    const uri = (await m.cli(['uri', 'primary'])).stdout.trim();
    await waitFor('both standbys streaming after the lowering', async () => (await q(uri, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'"))[0]!['n'] === 2).catch(async (e: unknown) => {
      // Seen in CI only, under load (a standby not streaming for minutes after this change): what each side says.
      const repl = await q(uri, 'SELECT application_name, state, client_port FROM pg_stat_replication').catch((x: unknown) => String(x));
      const logs = readdirSync(join(m.dir, 'logs'))
        .filter((f) => f.endsWith('.sidecar.log') || f.endsWith('.agent.log'))
        .map((f) => `--- ${f}\n${readFileSync(join(m.dir, 'logs', f), 'utf8').split('\n').filter((l) => /FATAL|ERROR|PANIC|restart|walreceiver|replication|decision/i.test(l)).slice(-25).join('\n')}`);
      throw new Error(`${String(e)}\npg_stat_replication on the primary: ${JSON.stringify(repl)}\n${logs.join('\n')}`);
    });
    expect(pids()).toEqual(sidecarsAndAgents);
    expect(await podUids()).toEqual(uidsBefore); // the pods were never replaced
  }, 240_000);

  it('a standby down while max-connections is lowered starts again when it comes back, then runs the lowered value', async () => {
    const s = JSON.parse((await m.cli(['status', '--format', 'json'])).stdout) as { units: Record<string, { role: string }> };
    const down = Object.entries(s.units).find(([, u]) => u.role === 'replica')![0];
    expect((await m.cli(['kill', down, '--no-restart'])).code).toBe(0);
    expect((await m.cli(['config', 'max-connections=110'])).code).toBe(0);
    const setting = async (unit: string) => {
      const uri = (await m.cli(['uri', unit])).stdout.trim();
      const rows: Record<string, unknown>[] = await q(uri, 'SHOW max_connections').catch(() => []);
      return String(rows[0]?.['max_connections'] ?? '');
    };
    const others = Object.keys(s.units).filter((u) => u !== down);
    await waitFor('the others run the lowered value', async () => (await Promise.all(others.map(setting))).every((v) => v === '110'), 90_000, 500);
    // Its control file holds the primary's old, higher value: started with the lowered one, Postgres would refuse.
    expect((await m.cli(['kill', down, '--revive'])).code).toBe(0);
    const uri = (await m.cli(['uri', 'primary'])).stdout.trim();
    await waitFor('both standbys streaming again', async () => (await q(uri, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'"))[0]!['n'] === 2, 90_000, 500);
    await waitFor(`${down} runs the lowered value`, async () => (await setting(down)) === '110', 90_000, 500);
  }, 240_000);

  it('rotates the operator password with set-password: the old one stops working, the new one works, replicas keep streaming', async () => {
    const oldUri = (await m.cli(['uri', 'primary'])).stdout.trim();
    const oldPw = decodeURIComponent(/operator:([^@]+)@/.exec(oldUri)![1]!);
    const fresh = `rotated-${Date.now().toString(36)}-Pw`;
    const params = join(m.dir, 'set-password.json');
    writeFileSync(params, JSON.stringify({ username: 'operator', password: fresh }), { mode: 0o600 });
    const r = await m.cli(['run', 'leader', 'set-password', '--params', params, '--wait']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // The password param is write-only: the unit blanked it in the stored action when it took it.
    expect(r.stdout).not.toContain(fresh);
    expect(r.stdout).toMatch(/password: \(redacted\)/);
    const kc = new KubeConfig();
    kc.loadFromFile(join(m.dir, 'kubeconfig'));
    const cms = await kc.makeApiClient(CoreV1Api).listNamespacedConfigMap({ namespace: kc.getContextObject(kc.getCurrentContext())!.namespace! });
    expect(JSON.stringify(cms.items)).not.toContain(fresh);
    const newUri = (await m.cli(['uri', 'primary'])).stdout.trim();
    expect(newUri).toContain(encodeURIComponent(fresh));
    await expect(q(oldUri, 'SELECT 1')).rejects.toThrow(/password authentication failed/);
    expect(await q(newUri, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await waitFor('replicas streaming', async () => (await q(newUri, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'"))[0]!['n'] === 2);
    const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
    expect(ps).not.toContain(fresh);
    const logs = readdirSync(join(m.dir, 'logs')).map((f) => readFileSync(join(m.dir, 'logs', f), 'utf8')).join('\n');
    expect(logs).not.toContain(fresh);
    expect(logs).not.toContain(oldPw);
    expect((await m.cli(['status', '--format', 'json'])).stdout).not.toContain(fresh);
  }, 120_000);

  it('switches over both ways under a writer with no acknowledged write lost; the old primary rejoins', async () => {
    const pw = (await m.cli(['run', 'leader', 'get-password', '--wait'])).stdout.match(/password: (\S+)/)![1]!;
    const units = async () => (JSON.parse((await m.cli(['status', '--format', 'json'])).stdout) as { units: Record<string, { role: string; workload: { status: string }; agent: { status: string } }> }).units;
    const settled = async () => Object.values(await units()).every((u) => u.workload.status === 'active' && u.agent.status === 'idle' && ['primary', 'replica'].includes(u.role));
    await waitFor('settled', settled, 90_000);
    const first = Object.entries(await units()).find(([, u]) => u.role === 'primary')![0];
    const w = new Writer(m.dir, pw);
    await w.start();
    try {
      const there = await m.cli(['run', 'leader', 'switchover', '--wait'], 120_000);
      expect(there.code, there.stdout + there.stderr).toBe(0);
      const target = /to: (\S+)/.exec(there.stdout)![1]!;
      expect(target).not.toBe(first);
      await waitFor('the old primary back as a replica', async () => (await units())[first]?.role === 'replica' && (await settled()), 90_000);
      const back = await m.cli(['run', 'leader', 'switchover', `to=${first}`, '--wait'], 120_000);
      expect(back.code, back.stdout + back.stderr).toBe(0);
      await waitFor('settled again', async () => (await units())[first]?.role === 'primary' && (await settled()), 90_000);
      await new Promise((r) => setTimeout(r, 500));
      await w.stop();
      expect(await w.lost()).toEqual([]);
      expect(w.acked.length).toBeGreaterThan(100);
    } finally {
      await w.stop();
    }
    const bad = await m.cli(['run', 'leader', 'switchover', 'to=postgresql/9', '--wait']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/postgresql\/9 is not a replica/);
  }, 300_000);

  it('removing the primary switches over first; the remaining standby follows and the slot goes', async () => {
    const primary = ((await m.cli(['run', 'leader', 'get-primary', '--wait'])).stdout.match(/primary: (\S+)/) ?? [])[1]!;
    expect((await m.cli(['remove-unit', primary])).code).toBe(0);
    const units = async () => (JSON.parse((await m.cli(['status', '--format', 'json'])).stdout) as { units: Record<string, { role: string; workload: { status: string } }> }).units;
    await waitFor('two units left, one primary and one replica', async () => {
      const u = await units();
      const roles = Object.values(u).map((x) => x.role).sort();
      return !u[primary] && roles.join(',') === 'primary,replica' && Object.values(u).every((x) => x.workload.status === 'active');
    }, 120_000);
    const uri = (await m.cli(['uri', 'primary'])).stdout.trim();
    await waitFor('only the remaining standby streams, through its own slot', async () => {
      const slots = (await q(uri, 'SELECT slot_name FROM pg_replication_slots ORDER BY 1')).map((r) => r['slot_name']);
      const streaming = (await q(uri, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")).map((r) => r['application_name']);
      return slots.length === 1 && streaming.length === 1 && slots[0] === String(streaming[0]).replace('/', '_');
    }, 60_000);
  }, 180_000);

  it('add-unit builds a new standby from the current primary; list-members shows every member live', async () => {
    const before = Object.keys((JSON.parse((await m.cli(['status', '--format', 'json'])).stdout) as { units: Record<string, unknown> }).units);
    expect((await m.cli(['add-unit'])).code).toBe(0);
    const uri = (await m.cli(['uri', 'primary'])).stdout.trim();
    // Unit numbers are never reused: the new unit is postgresql/3.
    await waitFor('the new unit streams from the primary', async () =>
      (await q(uri, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")).some((r) => r['application_name'] === 'postgresql/3'),
    120_000);
    await q(uri, "CREATE TABLE IF NOT EXISTS probe (v text); INSERT INTO probe VALUES ('after add-unit')");
    const [tl] = await q(uri, "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS tl");
    const members = async () => {
      const out = (await m.cli(['run', 'leader', 'list-members', '--wait'])).stdout;
      const [rec] = Object.values(parse(out) as Record<string, { results: { members: Record<string, { role: string; state: string; timeline: number; 'lag-bytes': number | null }> } }>);
      return rec!.results.members;
    };
    await waitFor('list-members shows the new standby streaming on the primary\'s timeline', async () => {
      const ms = await members();
      return Object.keys(ms).length === before.length + 1 && ms['postgresql/3']?.state === 'streaming' && ms['postgresql/3']?.role === 'replica' ? ms : undefined;
    }, 60_000);
    const ms = await members();
    expect(Object.values(ms).map((x) => x.role).sort()).toEqual(['primary', ...before.slice(1).map(() => 'replica'), 'replica']);
    for (const x of Object.values(ms)) {
      expect(x.timeline).toBe(tl!['tl']);
      expect(x.state).toBe(x.role === 'primary' ? 'running' : 'streaming');
      expect(typeof x['lag-bytes']).toBe('number');
    }
    const own = (await m.cli(['uri', 'postgresql/3'])).stdout.trim();
    await waitFor('the row written after add-unit is on the new standby', async () => (await q(own, "SELECT count(*)::int AS n FROM probe WHERE v = 'after add-unit'"))[0]!['n'] === 1);
  }, 180_000);

  it("the agents make exactly the API calls the manifests' Role grants (audited over every scenario above)", async () => {
    // The local API server records each request of the agents' service account as RBAC sees it.
    const used = new Set<string>();
    for (const line of readFileSync(join(m.dir, 'logs', 'audit.jsonl'), 'utf8').trim().split('\n')) {
      const e = JSON.parse(line) as { group: string; resource: string; subresource?: string; verb: string };
      used.add(`${e.group}/${e.resource}${e.subresource ? `/${e.subresource}` : ''}:${e.verb}`);
    }
    const granted = new Set(AGENT_RBAC_RULES.flatMap((r) => r.apiGroups!.flatMap((g) => r.resources!.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`)))));
    // What only relations use is audited by test/charm/database-relation.test.ts.
    expect([...used].sort()).toEqual([...granted].filter((g) => !(RELATION_ONLY as readonly string[]).includes(g)).sort());
  });
});
