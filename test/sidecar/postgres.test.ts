import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgBinDir } from '../../agent/postgres/binaries.js';
import { connectionString, INCLUDE, postgresLayer, SERVICE, writeSettings, type SinglePostgres } from '../../agent/postgres/single.js';
import { freePort, isAlive, waitFor } from '../helpers/procs.js';
import { startTestSidecar, type TestSidecar } from '../helpers/sidecar.js';

/** A real PostgreSQL 15 supervised by a real sidecar, driven only through the Pebble API. */
describe('PostgreSQL under the sidecar', () => {
  let sc: TestSidecar;
  let pgc: SinglePostgres;
  let url: string;

  const query = async (sql: string): Promise<pg.QueryResult> => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    await c.connect();
    try {
      return await c.query(sql);
    } finally {
      await c.end();
    }
  };
  const postmasterPid = async () => Number((await sc.client.pull(join(pgc.pgdata, 'postmaster.pid'))).toString().split('\n')[0]);

  beforeAll(async () => {
    sc = await startTestSidecar({ hold: true });
    pgc = {
      binDir: pgBinDir(15),
      pgdata: join(sc.tmp, 'pgdata'),
      socketDir: join(sc.tmp, 'run'),
      port: await freePort(),
      user: 'operator',
      password: randomBytes(12).toString('hex'),
    };
    url = connectionString(pgc);
  });
  afterAll(async () => {
    await sc?.cleanup();
  });

  it('initialises the cluster through exec as the postgres user', async () => {
    await sc.client.makeDir(pgc.pgdata, { makeParents: true, permissions: '700', user: 'postgres', group: 'postgres' });
    await sc.client.makeDir(pgc.socketDir, { permissions: '700', user: 'postgres', group: 'postgres' });
    const pwfile = join(pgc.socketDir, 'pw');
    await sc.client.push(pwfile, pgc.password, { permissions: '600', user: 'postgres', group: 'postgres' });
    const proc = await sc.client.exec(
      [`${pgc.binDir}/initdb`, '-D', pgc.pgdata, '-U', pgc.user, `--pwfile=${pwfile}`, '--auth-host=scram-sha-256', '--auth-local=peer'],
      { user: 'postgres', group: 'postgres' },
    );
    const r = await proc.waitOutput();
    expect(r.exitCode, r.stderr.toString()).toBe(0);
    await sc.client.removePath(pwfile);
    const files = await sc.client.listFiles(pgc.pgdata, { pattern: 'PG_VERSION' });
    expect(files[0]).toMatchObject({ name: 'PG_VERSION', user: 'postgres' });
    // The charm-owned include file carries settings; postgresql.conf only points at it.
    const conf = (await sc.client.pull(join(pgc.pgdata, 'postgresql.conf'))).toString();
    await sc.client.push(join(pgc.pgdata, 'postgresql.conf'), `${conf}\ninclude_if_exists = '${INCLUDE}'\n`, {
      permissions: '600',
      user: 'postgres',
      group: 'postgres',
    });
  });

  it('runs postgres as a service and accepts connections', async () => {
    await sc.client.addLayer('postgresql', postgresLayer(pgc));
    const change = await sc.client.waitChange(await sc.client.replan());
    expect(change.tasks.map((t) => t.summary)).toEqual([`Start service "${SERVICE}"`]);
    const res = await waitFor('postgres accepting connections', () => query('SELECT current_user, version()').catch(() => undefined));
    expect(res.rows[0].current_user).toBe('operator');
    expect(res.rows[0].version).toMatch(/PostgreSQL 15/);
    await waitFor('ready check up', async () => (await sc.client.getHealth({ level: 'ready' })).healthy, 20_000, 200);
  });

  it('reloads a pushed setting on SIGHUP through /v1/signals, without a restart', async () => {
    const before = await postmasterPid();
    expect((await query('SHOW work_mem')).rows[0].work_mem).toBe('4MB');
    await writeSettings(sc.client, pgc, { work_mem: '7MB' });
    await sc.client.sendSignal('SIGHUP', [SERVICE]);
    await waitFor('work_mem reloaded', async () => (await query('SHOW work_mem')).rows[0].work_mem === '7MB');
    expect(await postmasterPid()).toBe(before);
  });

  it('restarts the postmaster after kill -9 and accepts connections again', async () => {
    const killed = await postmasterPid();
    process.kill(killed, 'SIGKILL');
    await waitFor('postmaster dead', () => !isAlive(killed));
    const res = await waitFor('accepting connections again', () => query('SELECT 1 AS ok').catch(() => undefined), 30_000);
    expect(res.rows[0].ok).toBe(1);
    const now = await postmasterPid();
    expect(now).not.toBe(killed);
    expect((await sc.client.getServices([SERVICE]))[0]!.current).toBe('active');
    // The setting survived: it lives in the data directory, not in the process.
    expect((await query('SHOW work_mem')).rows[0].work_mem).toBe('7MB');
  });

  it('stops postgres cleanly through the sidecar', async () => {
    const pid = await postmasterPid();
    await sc.client.waitChange(await sc.client.stop([SERVICE]));
    expect(isAlive(pid)).toBe(false);
    await expect(query('SELECT 1')).rejects.toThrow();
  });
});
