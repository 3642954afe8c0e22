import { cpSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readControllerInfo } from '../../agent/controller/model.js';
import { callUnit } from '../../agent/runtime/unit-api.js';
import { Writer } from '../../bench/writer.js';
import { testModel, type TestModel } from '../helpers/model.js';
import { cmdline, pidsWithEnv, procState, waitFor } from '../helpers/procs.js';

/**
 * Failsafe end to end (3 units, PostgreSQL 15, 2 s primary lease): the store (the local
 * controller, which serves the Kubernetes API) is frozen with SIGSTOP, as an API server that
 * accepts connections and never answers. Every unit is probed for writability all along.
 */

interface Unit {
  role: string;
  address: string;
  api: string;
  workload: { status: string };
  agent: { status: string };
}

describe('failsafe: a store outage is not a write outage', () => {
  let m: TestModel;
  let pw = '';
  /** Every process this file stopped: resumed whatever happens. */
  const stopped = new Set<number>();
  const stop = (pid: number) => {
    stopped.add(pid);
    process.kill(pid, 'SIGSTOP');
  };
  const resume = (pid: number) => {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
    stopped.delete(pid);
  };
  const units = async () => (JSON.parse((await m.cli(['status', '--format', 'json'])).stdout) as { units: Record<string, Unit> }).units;
  const settled = async () => {
    const u = await units();
    return Object.values(u).every((x) => x.workload.status === 'active' && ['primary', 'replica'].includes(x.role)) && Object.values(u).filter((x) => x.role === 'primary').length === 1 ? u : undefined;
  };
  const controllerPid = () => readControllerInfo(m.dir)!.pid;
  const agentPid = (unit: string) => {
    const pid = pidsWithEnv('PGCHARM_LOCAL_UNIT', `${m.dir}#${unit.replace('/', '-')}`).find((p) => cmdline(p).includes('agent'));
    if (!pid) throw new Error(`no agent process for ${unit}`);
    return pid;
  };

  /**
   * Probes every unit for writability every ~20 ms with a write that does not wait for standbys
   * (synchronous_commit local): a unit that accepts it is writable at that moment.
   */
  const probeAll = (all: Record<string, Unit>) => {
    const accepted: { unit: string; at: number }[] = [];
    let on = true;
    const loop = async (unit: string, port: number) => {
      while (on) {
        const c = new pg.Client({ host: '127.0.0.1', port, user: 'operator', password: pw, database: 'postgres', connectionTimeoutMillis: 300, statement_timeout: 300 });
        c.on('error', () => undefined);
        try {
          await c.connect();
          await c.query('SET synchronous_commit = local');
          await c.query('INSERT INTO failsafe_probe VALUES ($1, $2)', [unit, Date.now()]);
          accepted.push({ unit, at: Date.now() });
        } catch {
          /* read-only, fenced or down */
        }
        await c.end().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const loops = Object.entries(all).map(([u, x]) => loop(u, Number(x.address.split(':')[1])));
    return {
      accepted,
      stop: async () => {
        on = false;
        await Promise.all(loops);
      },
    };
  };

  /** Never two writable units: once writes moved from one unit to another, the first never accepts again. */
  const neverTwoWritable = (accepted: { unit: string; at: number }[]) => {
    const order: string[] = [];
    for (const a of [...accepted].sort((x, y) => x.at - y.at)) if (order.at(-1) !== a.unit) order.push(a.unit);
    expect(new Set(order).size, `writable in turn: ${order.join(' -> ')}`).toBe(order.length);
  };

  beforeAll(async () => {
    m = testModel();
    const r = await m.cli(['deploy', '--units', '3', '--timeout', '120'], 180_000);
    expect(r.code, r.stderr).toBe(0);
    pw = (await m.cli(['run', 'leader', 'get-password', '--wait'])).stdout.match(/password: (\S+)/)![1]!;
    const u = await waitFor('settled', settled, 90_000);
    const primary = Object.values(u).find((x) => x.role === 'primary')!;
    const c = new pg.Client({ host: '127.0.0.1', port: Number(primary.address.split(':')[1]), user: 'operator', password: pw, database: 'postgres' });
    c.on('error', () => undefined);
    await c.connect();
    await c.query('CREATE TABLE failsafe_probe (unit text, at bigint)');
    await c.end();
  }, 240_000);

  let failed = false;
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') failed = true;
  });
  afterAll(async () => {
    for (const pid of [...stopped]) resume(pid);
    if ((failed || process.env.KEEP_LOGS) && m) {
      // The units' logs outlive the model (KEEP_LOGS=1: after a pass too): they say which decision was taken when.
      const keep = `${m.dir}-logs`;
      cpSync(join(m.dir, 'logs'), keep, { recursive: true });
      console.log(`unit logs kept in ${keep}`);
    }
    await m?.cleanup();
  }, 60_000);

  it('each unit serves its API at the address status shows; a call without the right token gets 401', async () => {
    const u = await units();
    const apis = Object.values(u).map((x) => x.api);
    expect(apis.every((a) => /^127\.0\.0\.1:\d+$/.test(a))).toBe(true);
    expect(new Set(apis).size).toBe(3);
    const [host, port] = apis[0]!.split(':');
    for (const token of [undefined, 'wrong']) {
      const r = await callUnit({ host: host!, port: Number(port), method: 'POST', path: '/v1/failsafe', ...(token ? { token } : {}), body: { primary: 'postgresql/0' }, timeoutMs: 2000 });
      expect(r.status).toBe(401);
      expect(r.body).toMatchObject({ error: expect.stringMatching(/Authorization/) });
    }
  });

  it("Patroni's health routes, unauthenticated: /primary on the primary only, /replica (and ?lag=) on the standbys, HEAD and OPTIONS alike; after a switchover /primary moves", async () => {
    const get = async (api: string, path: string, method: 'GET' | 'HEAD' | 'OPTIONS' = 'GET') => {
      const r = await fetch(`http://${api}${path}`, { method });
      return { status: r.status, text: await r.text() };
    };
    const check = async (u: Record<string, Unit>) => {
      const primary = Object.entries(u).find(([, x]) => x.role === 'primary')![0];
      for (const [name, x] of Object.entries(u)) {
        const isPrimary = name === primary;
        for (const path of ['/primary', '/read-write', '/leader', '/master']) expect((await get(x.api, path)).status, `${name} ${path}`).toBe(isPrimary ? 200 : 503);
        const body = JSON.parse((await get(x.api, '/replica')).text) as Record<string, unknown>;
        expect(body).toMatchObject({ unit: name, state: 'running', role: isPrimary ? 'primary' : 'replica' });
        expect((await get(x.api, '/replica')).status, `${name} /replica`).toBe(isPrimary ? 503 : 200);
        for (const path of ['/read-only', '/health', '/liveness', '/readiness']) expect((await get(x.api, path)).status, `${name} ${path}`).toBe(200);
        for (const method of ['HEAD', 'OPTIONS'] as const) expect(await get(x.api, '/primary', method), `${name} ${method}`).toEqual({ status: isPrimary ? 200 : 503, text: '' });
        if (!isPrimary) {
          await waitFor(`${name} caught up`, async () => (await get(x.api, '/replica?lag=0')).status === 200, 10_000);
          expect((await get(x.api, '/replica?lag=16MB')).status).toBe(200);
          const bad = await get(x.api, '/replica?lag=lots');
          expect(bad.status).toBe(400);
          expect(JSON.parse(bad.text)).toMatchObject({ field: 'lag', error: expect.stringMatching(/^lag: expected bytes or a size/) });
        }
      }
      return primary;
    };
    const before = await check((await waitFor('settled', settled, 90_000)));
    const r = await m.cli(['run', 'leader', 'switchover', '--wait']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const moved = await waitFor('the switchover settled, and /primary answered by the new primary', async () => {
      const u = await settled();
      if (!u || u[before]?.role === 'primary') return undefined;
      const p = Object.entries(u).find(([, x]) => x.role === 'primary')!;
      return (await get(p[1].api, '/primary')).status === 200 && (await get(u[before]!.api, '/primary')).status === 503 ? u : undefined;
    }, 60_000, 200);
    const now = await check(moved);
    expect(now).not.toBe(before);
    // /cluster, from any unit: the same picture, in Patroni's shape.
    for (const x of Object.values(moved)) {
      const c = JSON.parse((await get(x.api, '/cluster')).text) as { scope: string; members: { name: string; role: string; state: string; port: number; api_url: string; timeline: number }[] };
      expect(c.scope).toBe('postgresql');
      expect(c.members.map((mm) => mm.name)).toEqual(Object.keys(moved).sort());
      expect(c.members.filter((mm) => mm.role === 'leader').map((mm) => mm.name)).toEqual([now]);
      for (const mm of c.members) {
        expect(mm.api_url).toBe(`http://${moved[mm.name]!.api}`);
        expect(mm.port).toBe(Number(moved[mm.name]!.address.split(':')[1]));
        if (mm.name !== now) expect(['replica', 'sync_standby']).toContain(mm.role);
      }
    }
  });

  it('store frozen 15 s under a writer: writes go on (gap <= 2 s), nothing lost, never two writable units', async () => {
    const u = await waitFor('settled', settled, 90_000);
    const primary = Object.entries(u).find(([, x]) => x.role === 'primary')![0];
    const w = new Writer(m.dir, pw);
    await w.start();
    const probes = probeAll(u);
    const controller = controllerPid();
    let frozenAt = 0;
    let thawedAt = 0;
    try {
      await new Promise((r) => setTimeout(r, 1000));
      frozenAt = Date.now();
      stop(controller);
      await new Promise((r) => setTimeout(r, 15_000));
      resume(controller);
      thawedAt = Date.now();
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      resume(controller);
      await probes.stop();
      await w.stop();
    }
    const during = w.acked.filter((a) => a.at > frozenAt && a.at < thawedAt);
    const gap = w.longestGapAfter(frozenAt - 1000);
    console.log(`store frozen ${thawedAt - frozenAt} ms: ${w.acked.length} writes acknowledged (${during.length} while frozen), longest gap ${gap} ms`);
    expect(during.length).toBeGreaterThan(100);
    expect(gap).toBeLessThanOrEqual(2000);
    expect(await w.lost()).toEqual([]);
    neverTwoWritable(probes.accepted);
    expect(new Set(probes.accepted.map((a) => a.unit))).toEqual(new Set([primary]));
    // The primary said why it went on, the others what they promised.
    const agentLog = (unit: string) => readFileSync(join(m.dir, 'logs', `${unit.replace('/', '-')}.agent.log`), 'utf8');
    expect(agentLog(primary)).toMatch(/failsafe: writes go on without the store/);
    for (const other of Object.keys(u).filter((x) => x !== primary)) expect(agentLog(other)).toMatch(/failsafe: promised not to take the primary lease/);
    await waitFor('settled after the outage', settled, 60_000);
  }, 120_000);

  it('store frozen and one peer agent frozen too: no failsafe without every confirmation, the primary fences; nothing lost, never two writable', async () => {
    const u = await waitFor('settled', settled, 90_000);
    const primary = Object.entries(u).find(([, x]) => x.role === 'primary')![0];
    const peer = Object.keys(u).find((x) => x !== primary)!;
    const w = new Writer(m.dir, pw);
    await w.start();
    const probes = probeAll(u);
    // /primary, asked of every unit all along (HAProxy's view): who answered 200, and when.
    const said: { unit: string; at: number }[] = [];
    let asking = true;
    const askers = Object.entries(u).map(async ([unit, x]) => {
      while (asking) {
        const r = await fetch(`http://${x.api}/primary`, { method: 'OPTIONS', signal: AbortSignal.timeout(300) }).catch(() => undefined);
        if (r?.status === 200) said.push({ unit, at: Date.now() });
        await new Promise((res) => setTimeout(res, 50));
      }
    });
    const controller = controllerPid();
    const peerAgent = agentPid(peer);
    let frozenAt = 0;
    let thawedAt = 0;
    try {
      await new Promise((r) => setTimeout(r, 1000));
      frozenAt = Date.now();
      stop(peerAgent);
      stop(controller);
      await new Promise((r) => setTimeout(r, 8000));
      resume(controller);
      resume(peerAgent);
      thawedAt = Date.now();
      await waitFor('writes resumed', () => w.acked.some((a) => a.at > thawedAt), 60_000);
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      resume(controller);
      resume(peerAgent);
      asking = false;
      await Promise.all(askers);
      await probes.stop();
      await w.stop();
    }
    const lastBefore = Math.max(...w.acked.filter((a) => a.at < thawedAt).map((a) => a.at));
    const acceptedWhileFrozen = probes.accepted.filter((a) => a.at > frozenAt + 1500 && a.at < thawedAt);
    // The fenced primary's HA loop could not learn that its lease is gone (the store is frozen),
    // but /primary also needs Postgres to take writes: it stopped answering 200 with the fence.
    expect(said.filter((a) => a.at > frozenAt + 1500 && a.at < thawedAt)).toEqual([]);
    expect(said.filter((a) => a.at < frozenAt).map((a) => a.unit)).toContain(primary);
    expect(new Set(said.map((a) => a.unit)).size).toBeLessThanOrEqual(2);
    console.log(`store and ${peer}'s agent frozen ${thawedAt - frozenAt} ms: last write ${lastBefore - frozenAt} ms after the freeze; writes back ${w.firstAckAfter(thawedAt)! - thawedAt} ms after the thaw`);
    // The fence deadline is at most TTL/2 (1 s) after the last renewal, before the freeze.
    expect(lastBefore - frozenAt).toBeLessThan(1500);
    expect(acceptedWhileFrozen).toEqual([]);
    expect(await w.lost()).toEqual([]);
    neverTwoWritable(probes.accepted);
    await waitFor('settled after the outage', settled, 90_000);
  }, 180_000);

  it('/replica?lag= leaves out a standby that falls behind; after a failover /primary answers 200 on the new primary within 1 s of its promotion, never on two units', async () => {
    const get = async (api: string, path: string) => (await fetch(`http://${api}${path}`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined))?.status ?? 0;
    const u = await waitFor('settled', settled, 90_000);
    const [primary, p] = Object.entries(u).find(([, x]) => x.role === 'primary')!;
    const [standby, s] = Object.entries(u).find(([, x]) => x.role === 'replica')!;
    // The standby's WAL receiver frozen (the postmaster's child titled walreceiver), 32 MB written on the primary.
    const pmFile = join(m.dir, 'units', standby.replace('/', '-'), 'storage', 'pgdata', 'pgdata', 'postmaster.pid');
    const pm = Number(readFileSync(pmFile, 'utf8').split('\n')[0]);
    const receiver = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(Number)
      .find((c) => procState(c)?.ppid === pm && /walreceiver/.test(readFileSync(`/proc/${c}/cmdline`, 'utf8')));
    expect(receiver, 'the standby has a WAL receiver').toBeDefined();
    stop(receiver!);
    try {
      const c = new pg.Client({ host: '127.0.0.1', port: Number(p.address.split(':')[1]), user: 'operator', password: pw, database: 'postgres' });
      c.on('error', () => undefined);
      await c.connect();
      await c.query("CREATE TABLE lag_probe AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 32000) g");
      await c.end();
      await waitFor(`${standby} out of /replica?lag=16MB`, async () => (await get(s.api, '/replica?lag=16MB')) === 503, 10_000, 100);
      expect(await get(s.api, '/replica?lag=1GB')).toBe(200);
      expect(await get(s.api, '/replica')).toBe(200);
    } finally {
      resume(receiver!);
    }
    await waitFor(`${standby} back in /replica?lag=16MB`, async () => (await get(s.api, '/replica?lag=16MB')) === 200, 20_000, 100);

    // Failover: the primary's unit killed; every other unit's /primary asked every 20 ms.
    const others = Object.entries(u).filter(([n]) => n !== primary);
    const first: Record<string, number> = {};
    let twoAtOnce = 0;
    let on = true;
    const polling = (async () => {
      while (on) {
        const ok = (await Promise.all(others.map(async ([n, x]) => ((await get(x.api, '/primary')) === 200 ? n : undefined)))).filter(Boolean) as string[];
        if (ok.length > 1) twoAtOnce++;
        for (const n of ok) first[n] ??= Date.now();
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const k = await m.cli(['kill', primary]);
    expect(k.code, k.stderr).toBe(0);
    try {
      await waitFor('a new primary answering /primary', () => Object.keys(first).length > 0, 30_000, 50);
    } finally {
      on = false;
      await polling;
    }
    const [winner, answeredAt] = Object.entries(first)[0]!;
    const { connect } = await import('../../agent/runtime/kube.js');
    const lease = await connect({ kubeconfig: join(m.dir, 'kubeconfig') }).coordination.readNamespacedLease({ name: 'postgresql-primary', namespace: readControllerInfo(m.dir)!.namespace });
    expect(lease.spec?.holderIdentity).toBe(winner);
    const promotedAt = new Date(lease.spec!.acquireTime as unknown as string).getTime();
    console.log(`/primary on ${winner} answered 200 ${answeredAt - promotedAt} ms after it took the lease`);
    expect(answeredAt - promotedAt).toBeLessThanOrEqual(1000);
    expect(twoAtOnce).toBe(0);
    expect(Object.keys(first)).toEqual([winner]);
    await waitFor('settled after the failover', settled, 90_000);
  }, 180_000);
});
