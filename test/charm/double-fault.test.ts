import pg from 'pg';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testModel, type TestModel } from '../helpers/model.js';
import { waitFor } from '../helpers/procs.js';

/**
 * The double fault of issue 12, on real PostgreSQL: synchronous set ANY 1 (A, B); A's WAL
 * receiver stalls, so commits are acknowledged by B alone (100 MB, more than socket buffers
 * hold); then the primary unit and B die together. A must not promote itself alone: it has not
 * got what B acknowledged.
 */
describe('PostgreSQL charm: quorum-safe promotion after a double fault', () => {
  let m: TestModel;
  let pw = '';
  const stopped = new Set<number>();

  type Units = Record<string, { role: string; address: string; workload: { status: string; message: string } }>;
  const units = async (): Promise<Units> => (JSON.parse((await m.cli(['status', '--format', 'json'])).stdout) as { units: Units }).units;
  const port = (u: Units[string]) => Number(u.address.split(':')[1]);
  const connect = async (p: number) => {
    const c = new pg.Client({ host: '127.0.0.1', port: p, user: 'operator', password: pw, database: 'postgres', connectionTimeoutMillis: 2000 });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  const q = async <T extends Record<string, unknown>>(p: number, sql: string, args: unknown[] = []): Promise<T[]> => {
    const c = await connect(p);
    try {
      return (await c.query<T>(sql, args)).rows;
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  const writable = async (p: number) => (await q<{ r: boolean }>(p, 'SELECT NOT pg_is_in_recovery() AS r').catch(() => [{ r: false }]))[0]!.r;
  const settled = async () =>
    waitFor('one primary, two streaming synchronous standbys', async () => {
      const us = await units();
      const primary = Object.entries(us).find(([, u]) => u.role === 'primary');
      if (!primary || Object.values(us).some((u) => u.workload.status !== 'active')) return undefined;
      const repl = await q<{ application_name: string }>(port(primary[1]), "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = 'quorum'").catch(() => []);
      return repl.length === 2 ? { primary: primary[0], us } : undefined;
    }, 120_000);

  /** SIGSTOPs a standby's WAL receiver: it stays connected but takes nothing more. */
  const stallReceiver = async (p: number): Promise<number> => {
    const pid = (await q<{ pid: number }>(p, 'SELECT pid FROM pg_stat_wal_receiver'))[0]?.pid;
    expect(pid).toBeGreaterThan(0);
    process.kill(pid!, 'SIGSTOP');
    stopped.add(pid!);
    return pid!;
  };
  const resume = (pid: number) => {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
    stopped.delete(pid);
  };

  /**
   * 1000 commits of 100 kB of incompressible text each (100 MB of WAL: more than the socket
   * buffers between the primary and a stalled receiver hold, 32 MB + 4 MB here), acknowledged
   * one by one; returns the acknowledged ids.
   */
  const writeMany = async (p: number, from: number): Promise<number[]> => {
    const c = await connect(p);
    const acked: number[] = [];
    try {
      for (let i = from; i < from + 1000; i++) {
        await c.query("INSERT INTO big SELECT $1, string_agg(md5(random()::text || g), '') FROM generate_series(1, 3200) g", [i]);
        acked.push(i);
      }
    } finally {
      await c.end().catch(() => undefined);
    }
    return acked;
  };
  const lsnBytes = (l: string) => {
    const [hi, lo] = l.split('/');
    return Number((BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`));
  };

  beforeAll(async () => {
    m = testModel();
    // No WAL archive: a lagging standby would fetch from it what it lacks (restore_command),
    // and this test needs the loser to really lack the acknowledged commits.
    const r = await m.cli(['deploy', '--units', '3', '--timeout', '120', '--config', 'backup-repo-path=none'], 180_000);
    expect(r.code, r.stderr).toBe(0);
    pw = (await m.cli(['run', 'leader', 'get-password', '--wait'])).stdout.match(/password: (\S+)/)![1]!;
  }, 200_000);
  afterAll(async () => {
    for (const pid of [...stopped]) resume(pid);
    await m?.cleanup();
  }, 60_000);

  it('the lagging standby waits instead of promoting alone; when the other member returns it is promoted and no acknowledged commit is lost', async () => {
    const { primary: P, us } = await settled();
    const [A, B] = Object.keys(us).filter((u) => u !== P).sort() as [string, string];
    await q(port(us[P]!), 'CREATE TABLE big (id int PRIMARY KEY, payload text); ALTER TABLE big ALTER COLUMN payload SET STORAGE EXTERNAL');
    await waitFor('the table on both standbys', async () => (await Promise.all([A, B].map((u) => q(port(us[u]!), "SELECT to_regclass('big') IS NOT NULL AS ok").then((r) => r[0]!['ok'])))).every(Boolean));

    const receiver = await stallReceiver(port(us[A]!));
    const acked = await writeMany(port(us[P]!), 0);
    const [{ lsn: head }] = await q<{ lsn: string }>(port(us[P]!), 'SELECT pg_current_wal_lsn()::text AS lsn');
    const [{ lsn: atA }] = await q<{ lsn: string }>(port(us[A]!), 'SELECT pg_last_wal_receive_lsn()::text AS lsn');
    // A really lacks what B acknowledged: far more than any socket buffer holds.
    expect(lsnBytes(head!) - lsnBytes(atA!)).toBeGreaterThan(60 * 1024 * 1024);

    const kills = await Promise.all([P, B].map((u) => m.cli(['kill', u, '--no-restart'])));
    expect(kills.map((k) => k.code)).toEqual([0, 0]);
    resume(receiver); // the stall ends; the socket's leftovers do not make A whole
    // Well past the lease TTL (2 s): A is not promoted, and says what it waits for.
    await new Promise((r) => setTimeout(r, 8000));
    expect(await writable(port(us[A]!))).toBe(false);
    const waiting = await waitFor('A says why it waits', async () => {
      const u = (await units())[A]!;
      return u.workload.status === 'waiting' && /waiting for 1 more member of the synchronous set/.test(u.workload.message) ? u.workload.message : undefined;
    }, 10_000);
    expect(waiting).toContain(B);
    const [{ n: onA }] = await q<{ n: string }>(port(us[A]!), 'SELECT count(*) AS n FROM big');
    expect(Number(onA)).toBeLessThan(acked.length); // promoting A would have lost these

    // The operator is told why, and that force exists.
    const refused = await m.cli(['run', A, 'promote-to-primary', '--wait']);
    expect(refused.code).not.toBe(0);
    const refusal = (parse(refused.stdout) as Record<string, { status: string; message: string }>)[A]!;
    expect(refusal.status).toBe('failed');
    expect(refusal.message).toMatch(/waiting for 1 more member of the synchronous set.*force=true/);

    expect((await m.cli(['kill', '--revive', B])).code).toBe(0);
    const next = await waitFor('a new primary', async () => {
      for (const u of [A, B]) if (await writable(port(us[u]!))) return u;
      return undefined;
    }, 60_000);
    expect(next).toBe(B); // the most advanced member of the set
    const ids = (await q<{ id: number }>(port(us[B]!), 'SELECT id FROM big ORDER BY id')).map((r) => r.id);
    expect(acked.filter((i) => !ids.includes(i))).toEqual([]);
    expect(await writable(port(us[A]!))).toBe(false);

    expect((await m.cli(['kill', '--revive', P])).code).toBe(0);
    await settled();
  }, 300_000);

  it('promote-to-primary force=true promotes the lagging unit anyway and reports the gap', async () => {
    const { primary: P, us } = await settled();
    const [A, B] = Object.keys(us).filter((u) => u !== P).sort() as [string, string];
    const receiver = await stallReceiver(port(us[A]!));
    const acked = await writeMany(port(us[P]!), 10_000);
    await Promise.all([P, B].map((u) => m.cli(['kill', u, '--no-restart'])));
    resume(receiver);
    await waitFor('A waits for the set', async () => /waiting for 1 more member/.test((await units())[A]!.workload.message), 20_000);

    const forced = await m.cli(['run', A, 'promote-to-primary', 'force=true', '--wait']);
    expect(forced.code, forced.stdout + forced.stderr).toBe(0);
    const out = parse(forced.stdout) as Record<string, { results: { promoted: string; forced: boolean; 'lsn-gap-bytes': number; 'known-positions': Record<string, string | null> } }>;
    const r = out[A]!.results;
    expect(r.promoted).toBe(A);
    expect(r.forced).toBe(true);
    expect(r['lsn-gap-bytes']).toBeGreaterThan(40 * 1024 * 1024);
    expect(r['known-positions'][B]).toBeNull();
    await waitFor('A writable', () => writable(port(us[A]!)), 30_000);
    // The forced promotion really lost what only P and B had; the report said how much.
    const ids = new Set((await q<{ id: number }>(port(us[A]!), 'SELECT id FROM big WHERE id >= 10000')).map((x) => x.id));
    expect(acked.filter((i) => !ids.has(i)).length).toBeGreaterThan(0);
  }, 300_000);
});
