import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaults, loadCharmYaml } from '../../agent/charm-meta/index.js';
import { layout, SERVICE, type Layout } from '../../agent/charm/postgresql/render.js';
import { PostgresWorkload } from '../../agent/charm/postgresql/workload.js';
import { startSingle, writeSingleConfig } from '../../agent/single.js';
import type { ConfigValue } from '../../agent/runtime/charm.js';
import { freePort, isAlive, waitFor } from '../helpers/procs.js';
import { ROOT } from '../helpers/model.js';
import { startTestSidecar, type TestSidecar } from '../helpers/sidecar.js';
import { join } from 'node:path';

/**
 * A real PostgreSQL 15 supervised by a real sidecar, driven only through the Pebble API by the
 * charm's workload code (PostgresWorkload, render.ts), as `pgcharm single` runs it.
 */
describe('PostgreSQL under the sidecar', () => {
  let sc: TestSidecar;
  let l: Layout;
  let w: PostgresWorkload;
  let port: number;
  let config: Record<string, ConfigValue>;
  const password = randomBytes(12).toString('hex');
  let url: string;

  const query = async (sql: string): Promise<pg.QueryResult> => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return await c.query(sql);
    } finally {
      await c.end();
    }
  };
  const postmasterPid = async () => Number((await sc.client.pull(join(l.pgdata, 'postmaster.pid'))).toString().split('\n')[0]);

  beforeAll(async () => {
    sc = await startTestSidecar({ hold: true });
    l = layout(join(sc.tmp, 'storage'), 15);
    w = new PostgresWorkload(sc.client, l, pino({ level: 'warn' }));
    port = await freePort();
    // PostgreSQL's own memory defaults (profile testing), so the figures below are known.
    config = { ...defaults(await loadCharmYaml(join(ROOT, 'charm.yaml'))), profile: 'testing' };
    url = `postgresql://operator:${password}@127.0.0.1:${port}/postgres`;
  });
  afterAll(async () => {
    await sc?.cleanup();
  });

  it('initialises the cluster through exec as the postgres user and starts it (startSingle, what `pgcharm single` runs)', async () => {
    const s = await startSingle(sc.client, { storage: l.storage, major: 15, port, password, config, log: pino({ level: 'warn' }) });
    expect(s.created).toBe(true);
    expect(s.url).toBe(url);
    const files = await sc.client.listFiles(l.pgdata, { pattern: 'PG_VERSION' });
    expect(files[0]).toMatchObject({ name: 'PG_VERSION', user: 'postgres' });
    // The password went through a file that is gone again.
    expect(await w.exists(`${l.private}/initdb-password`)).toBe(false);
    // The charm-owned config file carries every setting; the server runs with config_file pointing at it.
    expect((await sc.client.pull(l.confFile)).toString()).toMatch(new RegExp(`^port = '${port}'$`, 'm'));
    const res = await query('SELECT current_user, version()');
    expect(res.rows[0].current_user).toBe('operator');
    expect(res.rows[0].version).toMatch(/PostgreSQL 15/);
    expect((await sc.client.getServices([SERVICE]))[0]!.current).toBe('active');
    await waitFor('ready check up', async () => (await sc.client.getHealth({ level: 'ready' })).healthy, 20_000, 200);
  });

  it('reuses the cluster when started again', async () => {
    const s = await startSingle(sc.client, { storage: l.storage, major: 15, port, password, config, log: pino({ level: 'warn' }) });
    expect(s.created).toBe(false);
  });

  it('reloads a pushed setting on SIGHUP through /v1/signals, without a restart', async () => {
    const before = await postmasterPid();
    expect((await query('SHOW work_mem')).rows[0].work_mem).toBe('4MB');
    await writeSingleConfig(w, { ...config, 'work-mem': '7MB' }, port);
    await w.reload();
    await waitFor('work_mem reloaded', async () => (await query('SHOW work_mem')).rows[0].work_mem === '7MB');
    expect(await postmasterPid()).toBe(before);
  });

  it('restarts the postmaster after kill -9 and accepts connections again', async () => {
    // A service that exits while it is still starting (the sidecar's 1 s okay delay) failed to start and is not restarted.
    await waitFor('the start change done', async () => (await sc.client.getChanges({ select: 'in-progress' })).length === 0, 10_000);
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
