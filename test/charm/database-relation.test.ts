import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_RBAC_RULES, RELATION_ONLY } from '../../agent/manifests/render.js';
import { ROOT, testModel, type TestModel } from '../helpers/model.js';
import { q, runAction } from '../helpers/pg.js';
import { waitFor } from '../helpers/procs.js';

const TODO = join(ROOT, 'examples', 'todo', 'charm.yaml');

interface PgStatus {
  application: { status: string; message: string; leader: string };
  units: Record<string, { role: string; address: string; postgres: string }>;
}

/**
 * The database endpoint end to end: PostgreSQL (3 units) and the sample todo application
 * (twice: todo and todo2) in one model, integrated with `pgcharm integrate`. Every figure a
 * client cares about is counted from what the application acknowledged (HTTP 201).
 */
describe('database relation: PostgreSQL and the todo sample application', () => {
  let m: TestModel;
  let operator = '';
  const file = (app: string, name: string) => join(m.dir, 'units', `${app}-0`, 'storage', 'config', name);
  const creds = (app: string) => ({ user: readFileSync(file(app, 'db-username'), 'utf8').trim(), password: readFileSync(file(app, 'db-password'), 'utf8').trim() });
  const port = (app: string) => Number(readFileSync(join(m.dir, 'units', `${app}-0`, 'port'), 'utf8'));
  const post = async (app: string, title: string): Promise<number | undefined> => {
    try {
      const r = await fetch(`http://127.0.0.1:${port(app)}/todos`, { method: 'POST', body: JSON.stringify({ title }), signal: AbortSignal.timeout(5000) });
      return r.status === 201 ? ((await r.json()) as { id: number }).id : undefined;
    } catch {
      return undefined;
    }
  };
  const pgStatus = async () => JSON.parse((await m.cli(['status', '--app', 'postgresql', '--format', 'json'])).stdout) as PgStatus;
  // As its Postgres answers now: a killed primary's bag says primary until it rejoins.
  const primary = async () => Object.entries((await pgStatus()).units).find(([, u]) => u.postgres === 'primary');
  /** A login as an application's role to a database, on the primary: the error message, or '' when it worked. */
  const loginAs = async (who: { user: string; password: string }, database: string, sql = 'SELECT 1'): Promise<string> => {
    const [, p] = (await primary())!;
    const [host, portNo] = p.address.split(':');
    const c = new pg.Client({ host, port: Number(portNo), user: who.user, password: who.password, database, connectionTimeoutMillis: 3000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query(sql);
      return '';
    } catch (e) {
      return (e as Error).message;
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  /** Posts a todo every 20 ms until stopped; the ids acknowledged and the requests that failed. */
  const writer = (app: string) => {
    const acked: number[] = [];
    let failed = 0;
    let stop = false;
    let lastOk = Date.now();
    let longestGap = 0;
    const done = (async () => {
      for (let i = 0; !stop; i++) {
        const id = await post(app, `w${i}`);
        if (id !== undefined) {
          acked.push(id);
          longestGap = Math.max(longestGap, Date.now() - lastOk);
          lastOk = Date.now();
        } else failed++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    return {
      acked,
      get failed() {
        return failed;
      },
      get longestGap() {
        return longestGap;
      },
      async stop() {
        stop = true;
        await done;
      },
    };
  };

  beforeAll(async () => {
    m = testModel();
    const r = await m.cli(['deploy', '--units', '3', '--timeout', '120'], 180_000);
    expect(r.code, r.stderr).toBe(0);
    operator = /Connection string \(primary\): (\S+)/.exec(r.stdout)![1]!;
    for (const args of [['--units', '1'], ['--units', '1', '--app', 'todo2', '--config', 'database-name=todo2']]) {
      const t = await m.cli(['deploy', '--charm', TODO, ...args, '--timeout', '60']);
      expect(t.code, t.stderr).toBe(0);
    }
  }, 240_000);
  afterAll(async () => {
    await m?.cleanup();
  }, 60_000);

  /** The operator's URI to a database on the primary as it is now (the deploy's URI names the first one). */
  const operatorTo = async (db: string) => {
    const [, p] = (await waitFor('a primary', () => primary(), 30_000))!;
    const pw = decodeURIComponent(new URL(operator).password);
    return `postgresql://operator:${encodeURIComponent(pw)}@${p.address}/${db}`;
  };

  it('refuses bad integrations, naming the candidates, and changes nothing', async () => {
    const unknown = await m.cli(['integrate', 'todo', 'postgresql:nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/postgresql has no endpoint "nope": its endpoints are postgresql:database \(provides postgresql_client\), postgresql:metrics-endpoint \(provides prometheus_scrape\)/);
    const mismatch = await m.cli(['integrate', 'todo', 'todo2']);
    expect(mismatch.stderr).toMatch(/no matching endpoints between todo and todo2/);
    const st = await m.cli(['status']);
    expect(st.stdout).not.toMatch(/regular/);
    expect(st.stdout).toMatch(/^todo\/0\*\s+blocked.*needs a database relation \(pgcharm integrate todo postgresql\)/m);
  });

  it('integrate: the application gets its own role and database, credentials as 0600 files, and serves writes', async () => {
    const r = await m.cli(['integrate', 'todo', 'postgresql']);
    expect(r.code, r.stderr).toBe(0);
    const id = Number(/relation (\d+)/.exec(r.stderr)![1]);
    await waitFor('todo serves a write', () => post('todo', 'first'), 60_000, 100);
    const role = `relation_${id}`;
    expect(creds('todo').user).toBe(role);
    for (const f of ['db-username', 'db-password', 'db-endpoints']) expect(statSync(file('todo', f)).mode & 0o777, f).toBe(0o600);
    const [row] = await q(await operatorTo('postgres'), `SELECT r.rolsuper, r.rolreplication, r.rolcanlogin, r.rolcreatedb, pg_get_userbyid(d.datdba) AS owner FROM pg_roles r, pg_database d WHERE r.rolname = '${role}' AND d.datname = 'todo'`);
    expect(row).toEqual({ rolsuper: false, rolreplication: false, rolcanlogin: true, rolcreatedb: false, owner: role });
    const st = await m.cli(['status']);
    expect(st.stdout).toMatch(new RegExp(`postgresql:database\\s+todo:database\\s+postgresql_client\\s+regular\\s+${id}`));
    expect(st.stdout).toMatch(/^todo\/0\*\s+active\s+idle.*serving database todo at 127\.0\.0\.1:\d+/m);
    // The password is in the file only: not in the relation's bags, status or the unit logs.
    const { password } = creds('todo');
    expect(st.stdout).not.toContain(password);
    const bags = await m.cli(['status', '--format', 'yaml']);
    expect(bags.stdout).not.toContain(password);
    for (const log of ['postgresql-0', 'postgresql-1', 'postgresql-2', 'todo-0'].flatMap((u) => [`${u}.agent.log`, `${u}.sidecar.log`])) {
      expect(readFileSync(join(m.dir, 'logs', log), 'utf8'), log).not.toContain(password);
    }
  }, 90_000);

  it('two applications get two databases and two roles; neither can use the other\'s', async () => {
    expect((await m.cli(['integrate', 'todo2', 'postgresql'])).code).toBe(0);
    await waitFor('todo2 serves a write', () => post('todo2', 'second app'), 60_000, 100);
    const a = creds('todo');
    const b = creds('todo2');
    expect(a.user).not.toBe(b.user);
    expect(await loginAs(a, 'todo2')).toMatch(/permission denied for database "todo2"/);
    expect(await loginAs(b, 'todo')).toMatch(/permission denied for database "todo"/);
    // Even with CONNECT, the tables are the owner's: granted to nobody else.
    await q(await operatorTo('todo'), 'GRANT CONNECT ON DATABASE todo TO PUBLIC');
    try {
      expect(await loginAs(b, 'todo', 'SELECT count(*) FROM todos')).toMatch(/permission denied for table todos/);
    } finally {
      await q(await operatorTo('todo'), 'REVOKE CONNECT ON DATABASE todo FROM PUBLIC');
    }
    expect(await loginAs(a, 'todo', 'SELECT count(*) FROM todos')).toBe('');
  }, 90_000);

  it('failover under the application\'s load: it reconnects through the new endpoints; no acknowledged write is lost', async () => {
    // The leader hands leadership to a replica once settled: the primary's loss is then not also the leader's.
    await waitFor('the leader is not the primary', async () => {
      const s = await pgStatus();
      return s.units[s.application.leader]?.role === 'replica';
    }, 40_000, 500);
    const [victim, before] = (await primary())!;
    const w = writer('todo');
    await waitFor('writes go on', () => w.acked.length >= 20, 20_000);
    const k = await m.cli(['kill', '--app', 'postgresql', victim]);
    expect(k.code, k.stderr).toBe(0);
    const moved = await waitFor('the application follows the new primary', async () => {
      const now = (await primary())?.[1].address;
      const inFile = readFileSync(file('todo', 'db-endpoints'), 'utf8').trim();
      return now && now !== before.address && inFile === now && now;
    }, 30_000, 100);
    const ackedAtMove = w.acked.length;
    await waitFor('writes succeed again', () => w.acked.length >= ackedAtMove + 20, 30_000);
    await w.stop();
    const stored = new Set((await q(await operatorTo('todo'), 'SELECT id FROM todos')).map((r) => Number(r['id'])));
    const lost = w.acked.filter((id) => !stored.has(id));
    expect(lost, `acknowledged but missing after the failover to ${moved}`).toEqual([]);
    expect(w.acked.length).toBeGreaterThan(40);
  }, 120_000);

  it('password rotation reaches the application with at most one failed request; the old password stops working', async () => {
    await waitFor('a primary', () => primary(), 30_000);
    const old = creds('todo');
    const id = Number(old.user.replace('relation_', ''));
    const w = writer('todo');
    await waitFor('writes go on', () => w.acked.length >= 10, 20_000);
    const failedBefore = w.failed;
    const rot = await runAction(m, 'leader', 'rotate-client-password', [`relation-id=${id}`], ['--app', 'postgresql']);
    expect(rot.status, rot.message).toBe('completed');
    await waitFor('the new password reached the application', () => creds('todo').password !== old.password, 20_000);
    const ackedAt = w.acked.length;
    await waitFor('writes go on with the new password', () => w.acked.length >= ackedAt + 25, 20_000);
    await w.stop();
    expect(w.failed - failedBefore).toBeLessThanOrEqual(1);
    expect(await loginAs(old, 'todo')).toMatch(/password authentication failed/);
    expect(await loginAs(creds('todo'), 'todo')).toBe('');
  }, 90_000);

  it('switchover: the application\'s endpoints file names the new primary within 3 s of the switchover completing', async () => {
    const [from] = (await waitFor('a primary', () => primary(), 30_000))!;
    const sw = await runAction(m, 'leader', 'switchover', [], ['--app', 'postgresql']);
    expect(sw.status, sw.message).toBe('completed');
    const done = Date.now();
    const to = String(sw.results!['to']);
    expect(to).not.toBe(from);
    const addr = (await pgStatus()).units[to]!.address;
    await waitFor('the endpoints file names the new primary', () => readFileSync(file('todo', 'db-endpoints'), 'utf8').trim() === addr, 10_000, 20);
    expect(Date.now() - done).toBeLessThan(3000);
    expect(await post('todo', 'after switchover')).toBeDefined();
  }, 90_000);

  it('bad requests block the relation with the reason and change nothing: extra-user-roles=SUPERUSER, an invalid database name', async () => {
    const b = creds('todo2');
    const set = await m.cli(['config', '--app', 'todo2', 'extra-user-roles=SUPERUSER']);
    expect(set.code, set.stderr).toBe(0);
    await waitFor('postgresql blocked, naming the role', async () => /blocked/.test((await pgStatus()).application.status) && /extra-user-roles: "SUPERUSER" is not allowed/.test((await pgStatus()).application.message), 30_000, 250);
    expect(await q(await operatorTo('postgres'), `SELECT rolsuper FROM pg_roles WHERE rolname = '${b.user}'`)).toEqual([{ rolsuper: false }]);
    expect((await m.cli(['config', '--app', 'todo2', '--reset', 'extra-user-roles'])).code).toBe(0);
    await waitFor('postgresql active again', async () => (await pgStatus()).application.status === 'active', 30_000, 250);
    const bad = await m.cli(['config', '--app', 'todo2', 'database-name=1bad']);
    expect(bad.code, bad.stderr).toBe(0);
    await waitFor('blocked for the name', async () => /database "1bad": not a valid database name/.test((await pgStatus()).application.message), 30_000, 250);
    expect(await q(await operatorTo('postgres'), "SELECT count(*)::int AS n FROM pg_database WHERE datname = '1bad'")).toEqual([{ n: 0 }]);
    // The application keeps its database meanwhile.
    expect(await post('todo2', 'still here')).toBeDefined();
    // Back to what it was deployed with (--reset would give the charm's default, `todo`).
    expect((await m.cli(['config', '--app', 'todo2', 'database-name=todo2'])).code).toBe(0);
    await waitFor('postgresql active again', async () => (await pgStatus()).application.status === 'active', 30_000, 250);
  }, 120_000);

  it('remove-relation: the role can no longer log in, its sessions end, the data stays; a new relation gets it back', async () => {
    const b = creds('todo2');
    const rows = (await q(await operatorTo('todo2'), 'SELECT count(*)::int AS n FROM todos'))[0]!['n'] as number;
    expect(rows).toBeGreaterThan(0);
    // A session of the role open across the removal: it is ended.
    const [, p] = (await primary())!;
    const [host, portNo] = p.address.split(':');
    const session = new pg.Client({ host, port: Number(portNo), user: b.user, password: b.password, database: 'todo2' });
    let ended = '';
    session.on('error', (e) => void (ended = e.message));
    await session.connect();
    await session.query('SELECT 1');
    const r = await m.cli(['remove-relation', 'todo2', 'postgresql']);
    expect(r.code, r.stderr).toBe(0);
    await expect(session.query('SELECT 1')).rejects.toThrow();
    expect(ended).toMatch(/terminating connection due to administrator command|Connection terminated unexpectedly/);
    // ... by the leader's retire (pg_terminate_backend), which counts it.
    const logs = ['postgresql-0', 'postgresql-1', 'postgresql-2'].map((u) => readFileSync(join(m.dir, 'logs', `${u}.agent.log`), 'utf8')).join('\n');
    expect(logs).toMatch(new RegExp(`"role":"${b.user}","sessionsEnded":[1-9]`));
    await session.end().catch(() => undefined);
    expect(await loginAs(b, 'todo2')).toMatch(/role "relation_\d+" is not permitted to log in/);
    expect((await q(await operatorTo('todo2'), 'SELECT count(*)::int AS n FROM todos'))[0]!['n']).toBe(rows);
    await waitFor('todo2 no longer serves', async () => (await post('todo2', 'x')) === undefined, 20_000, 200);
    const again = await m.cli(['integrate', 'todo2', 'postgresql']);
    expect(again.code, again.stderr).toBe(0);
    await waitFor('todo2 serves again', () => post('todo2', 'back'), 60_000, 100);
    const c = creds('todo2');
    expect(c.user).not.toBe(b.user);
    const got = (await (await fetch(`http://127.0.0.1:${port('todo2')}/todos`)).json()) as { count: number };
    expect(got.count).toBe(rows + 1);
  }, 90_000);

  it("the agents' API calls stay within the manifests' Role, and the relation-only ones were made", () => {
    const used = new Set<string>();
    for (const line of readFileSync(join(m.dir, 'logs', 'audit.jsonl'), 'utf8').trim().split('\n')) {
      const e = JSON.parse(line) as { group: string; resource: string; subresource?: string; verb: string };
      used.add(`${e.group}/${e.resource}${e.subresource ? `/${e.subresource}` : ''}:${e.verb}`);
    }
    const granted = new Set(AGENT_RBAC_RULES.flatMap((r) => r.apiGroups!.flatMap((g) => r.resources!.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`)))));
    expect([...used].filter((u) => !granted.has(u))).toEqual([]);
    for (const v of RELATION_ONLY) expect(used).toContain(v);
  });
});
