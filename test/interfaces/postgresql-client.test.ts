import { describe, expect, test } from 'vitest';
import { DatabaseRequires, DIFF_KEY, REQUESTED_SECRETS, type DatabaseEvent, type DatabaseInfo } from '../../agent/interfaces/postgresql-client.js';
import { RelationDataAccessError, type EventContext, type Relation, type RelationBag, type Secrets } from '../../agent/runtime/charm.js';

// ---------------------------------------------------------------------------------------------
// Fakes: in-memory bags, secrets and an event context with only what the library uses.

class Bag implements RelationBag {
  constructor(public data: Record<string, string> = {}) {}
  get(key: string): string | undefined {
    return this.data[key];
  }
  entries(): Record<string, string> {
    return { ...this.data };
  }
  set(key: string, value: string | null): void {
    if (value === null) delete this.data[key];
    else this.data[key] = value;
  }
}

class FakeSecrets implements Secrets {
  content = new Map<string, Record<string, string>>();
  granted = new Set<string>();
  reads = 0;
  async get(id: string): Promise<Record<string, string>> {
    this.reads++;
    const c = this.content.get(id);
    if (!c || !this.granted.has(id)) throw new RelationDataAccessError(`secret ${id} is not granted to todo`);
    return { ...c };
  }
  add(): Promise<string> {
    throw new Error('not used');
  }
  find(): Promise<string | undefined> {
    throw new Error('not used');
  }
  set(): Promise<number> {
    throw new Error('not used');
  }
  grant(): Promise<void> {
    throw new Error('not used');
  }
  revoke(): Promise<void> {
    throw new Error('not used');
  }
  remove(): Promise<void> {
    throw new Error('not used');
  }
}

const SECRET_A = 'secret:aaaaaaaaaaaaaaaaaaaa';
const SECRET_B = 'secret:bbbbbbbbbbbbbbbbbbbb';

class World {
  leader = true;
  secrets = new FakeSecrets();
  localApp = new Bag();
  remoteApp = new Bag();
  local = new Bag();
  dying = false;
  seen: { event: DatabaseEvent; info: DatabaseInfo | undefined }[] = [];
  readonly relation: Relation;
  readonly db: DatabaseRequires;

  constructor(opts: { extraUserRoles?: string } = {}) {
    const w = this;
    this.relation = {
      id: 7,
      name: 'database',
      interface: 'postgresql_client',
      app: 'postgresql',
      remoteEndpoint: 'database',
      units: ['postgresql/0'],
      get localApp() {
        return w.localApp;
      },
      get remoteApp() {
        return w.remoteApp;
      },
      get local() {
        return w.local;
      },
      unit: () => w.local,
      get dying() {
        return w.dying;
      },
    };
    this.db = new DatabaseRequires({ endpoint: 'database', database: 'todo', ...opts });
    for (const ev of ['database-created', 'endpoints-changed', 'read-only-endpoints-changed', 'authentication-updated', 'database-broken'] as const) {
      this.db.on(ev, (_ctx, info) => void this.seen.push({ event: ev, info }));
    }
  }

  ctx(name: string, extra: Partial<EventContext> = {}): EventContext {
    const relational = name.startsWith('database-relation-');
    return {
      name,
      unit: 'todo/0',
      app: 'todo',
      isLeader: () => this.leader,
      config: {},
      relations: (endpoint?: string) => (this.dying || (endpoint !== undefined && endpoint !== 'database') ? [] : [this.relation]),
      ...(relational ? { relation: this.relation, remoteApp: 'postgresql', appChanged: true } : {}),
      secrets: this.secrets,
      ...extra,
    } as unknown as EventContext;
  }

  /** Runs one handler of the library; returns the events it emitted. */
  async run(name: string, extra: Partial<EventContext> = {}): Promise<DatabaseEvent[]> {
    const handler = this.db.handlers()[name];
    if (!handler) throw new Error(`no handler for ${name}`);
    this.seen = [];
    await handler(this.ctx(name, extra));
    return this.seen.map((s) => s.event);
  }

  /** What the provider answers: its app bag, and its secret's content (granted). */
  provide(bag: Record<string, string>, secret?: { id: string; content: Record<string, string> }): void {
    this.remoteApp.data = { ...bag };
    if (secret) {
      this.secrets.content.set(secret.id, secret.content);
      this.secrets.granted.add(secret.id);
    }
  }
}

const ANSWER = { database: 'todo', endpoints: '10.0.0.1:5432', 'read-only-endpoints': '10.0.0.2:5432', version: '16.4', tls: 'False', 'secret-user': SECRET_A };
const CREDS = { username: 'relation_7', password: 'hunter2-very-secret', uris: 'postgresql://relation_7:hunter2-very-secret@10.0.0.1:5432/todo' };

/** A world that saw the first complete answer (database-created done). */
async function created(): Promise<World> {
  const w = new World();
  w.provide(ANSWER, { id: SECRET_A, content: CREDS });
  expect(await w.run('database-relation-changed')).toEqual(['database-created']);
  return w;
}

// ---------------------------------------------------------------------------------------------

describe('relation-created: the request', () => {
  test.each<[string, boolean, string | undefined, Record<string, string>]>([
    ['the leader writes the request', true, undefined, { database: 'todo', 'requested-secrets': JSON.stringify(REQUESTED_SECRETS) }],
    ['with extra-user-roles when given', true, 'CREATEDB,pg_monitor', { database: 'todo', 'extra-user-roles': 'CREATEDB,pg_monitor', 'requested-secrets': '["username","password","tls-ca","uris"]' }],
    ['a non-leader writes nothing', false, 'CREATEDB', {}],
  ])('%s', async (_name, leader, extraUserRoles, want) => {
    const w = new World(extraUserRoles ? { extraUserRoles } : {});
    w.leader = leader;
    expect(await w.run('database-relation-created')).toEqual([]);
    expect(w.localApp.data).toEqual(want);
    expect(w.local.data).toEqual({});
    expect(w.remoteApp.data).toEqual({});
  });

  test('the database may come from the event (config), and a changed one is asked again', async () => {
    let name = 'one';
    const db = new DatabaseRequires({ endpoint: 'database', database: (ctx) => String(ctx.config['database-name'] ?? name) });
    const w = new World();
    await db.handlers()['database-relation-created']!(w.ctx('database-relation-created'));
    expect(w.localApp.get('database')).toBe('one');
    name = 'two';
    await db.check(w.ctx('config-changed'));
    expect(w.localApp.get('database')).toBe('two');
  });
});

describe('relation-changed: what the provider answered, against what this unit saw', () => {
  test.each<[string, Record<string, string>, { id: string; content: Record<string, string> } | undefined, boolean]>([
    ['nothing answered yet', {}, undefined, false],
    ['endpoints but no secret id', { endpoints: '10.0.0.1:5432' }, undefined, false],
    ['a secret id but no endpoints', { 'secret-user': SECRET_A }, { id: SECRET_A, content: CREDS }, false],
    ['a secret not granted yet', ANSWER, undefined, false],
    ['a secret without a password', ANSWER, { id: SECRET_A, content: { username: 'relation_7' } }, false],
    ['everything', ANSWER, { id: SECRET_A, content: CREDS }, true],
    ['everything but read-only endpoints (optional)', { ...ANSWER, 'read-only-endpoints': '' }, { id: SECRET_A, content: CREDS }, true],
  ])('%s', async (_name, bag, secret, complete) => {
    const w = new World();
    w.provide(bag, secret);
    expect(await w.run('database-relation-changed')).toEqual(complete ? ['database-created'] : []);
    expect(w.local.get(DIFF_KEY) !== undefined).toBe(complete);
    // And again with nothing new: nothing.
    expect(await w.run('database-relation-changed')).toEqual([]);
  });

  test('database-created carries the info, once', async () => {
    const w = new World();
    w.provide(ANSWER, { id: SECRET_A, content: { ...CREDS, 'tls-ca': 'CA' } });
    await w.run('database-relation-changed');
    expect(w.seen).toEqual([
      {
        event: 'database-created',
        info: { relationId: 7, database: 'todo', endpoints: '10.0.0.1:5432', readOnlyEndpoints: '10.0.0.2:5432', username: 'relation_7', password: 'hunter2-very-secret', uris: CREDS.uris, version: '16.4', tls: 'False', tlsCa: 'CA' },
      },
    ]);
    expect(await w.run('database-relation-changed')).toEqual([]);
  });

  test('a secret granted after the bag was written: created on the next look', async () => {
    const w = new World();
    w.provide(ANSWER);
    expect(await w.run('database-relation-changed')).toEqual([]);
    w.secrets.content.set(SECRET_A, CREDS);
    w.secrets.granted.add(SECRET_A);
    expect(await w.run('database-relation-changed')).toEqual(['database-created']);
  });

  test('another store error fails the hook (to be run again)', async () => {
    const w = new World();
    w.provide(ANSWER);
    w.secrets.get = async () => {
      throw new Error('connection refused');
    };
    await expect(w.run('database-relation-changed')).rejects.toThrow('connection refused');
  });

  test.each<[string, Record<string, string>, Record<string, string> | undefined, DatabaseEvent[]]>([
    ['endpoints moved', { ...ANSWER, endpoints: '10.0.0.9:5432' }, undefined, ['endpoints-changed']],
    ['read-only endpoints moved', { ...ANSWER, 'read-only-endpoints': '10.0.0.2:5432,10.0.0.3:5432' }, undefined, ['read-only-endpoints-changed']],
    ['both moved', { ...ANSWER, endpoints: '10.0.0.2:5432', 'read-only-endpoints': '10.0.0.1:5432' }, undefined, ['endpoints-changed', 'read-only-endpoints-changed']],
    ['a new secret id', { ...ANSWER, 'secret-user': SECRET_B }, { ...CREDS, password: 'other' }, ['authentication-updated']],
    ['a new secret id, same credentials', { ...ANSWER, 'secret-user': SECRET_B }, CREDS, ['authentication-updated']],
    ['version only', { ...ANSWER, version: '16.5' }, undefined, []],
    ['endpoints gone (incomplete): nothing, the old ones stay', { ...ANSWER, endpoints: '' }, undefined, []],
  ])('after creation, %s', async (_name, bag, secretB, want) => {
    const w = await created();
    w.provide(bag, secretB ? { id: SECRET_B, content: secretB } : undefined);
    expect(await w.run('database-relation-changed')).toEqual(want);
    expect(await w.run('database-relation-changed')).toEqual([]);
  });

  test('endpoints-changed gives the new endpoints', async () => {
    const w = await created();
    w.provide({ ...ANSWER, endpoints: '10.0.0.9:5432' });
    await w.run('database-relation-changed');
    expect(w.seen[0]?.info?.endpoints).toBe('10.0.0.9:5432');
  });

  test('a password rotated without a secret-changed seen is noticed at the next relation-changed', async () => {
    const w = await created();
    w.secrets.content.set(SECRET_A, { ...CREDS, password: 'rotated' });
    expect(await w.run('database-relation-changed')).toEqual(['authentication-updated']);
  });
});

describe('secret-changed', () => {
  test.each<[string, string, Record<string, string>, DatabaseEvent[]]>([
    ['our secret, new password', SECRET_A, { ...CREDS, password: 'rotated' }, ['authentication-updated']],
    ['our secret, new username', SECRET_A, { ...CREDS, username: 'relation_7b' }, ['authentication-updated']],
    ['our secret, same credentials (uris only)', SECRET_A, { ...CREDS, uris: 'postgresql://x' }, []],
    ['another secret', SECRET_B, { ...CREDS, password: 'rotated' }, []],
  ])('%s', async (_name, id, content, want) => {
    const w = await created();
    w.secrets.content.set(SECRET_A, content);
    expect(await w.run('secret-changed', { secret: { id, revision: 2 } })).toEqual(want);
    expect(await w.run('secret-changed', { secret: { id, revision: 2 } })).toEqual([]);
  });

  test('authentication-updated gives the new password', async () => {
    const w = await created();
    w.secrets.content.set(SECRET_A, { ...CREDS, password: 'rotated' });
    await w.run('secret-changed', { secret: { id: SECRET_A, revision: 2 } });
    expect(w.seen[0]?.info?.password).toBe('rotated');
  });

  test('before creation, a secret-changed creates (when the rest is there)', async () => {
    const w = new World();
    w.provide(ANSWER, { id: SECRET_A, content: CREDS });
    expect(await w.run('secret-changed', { secret: { id: SECRET_A, revision: 2 } })).toEqual(['database-created']);
  });
});

describe('relation-broken and fetch', () => {
  test('broken: database-broken, without info', async () => {
    const w = await created();
    w.dying = true;
    expect(await w.run('database-relation-broken')).toEqual(['database-broken']);
    expect(w.seen[0]?.info).toBeUndefined();
  });

  test('fetch reads the current info; undefined without a relation or while incomplete', async () => {
    const w = new World();
    expect(await w.db.fetch(w.ctx('update-status'))).toBeUndefined();
    w.provide(ANSWER, { id: SECRET_A, content: CREDS });
    expect(await w.db.fetch(w.ctx('update-status'))).toMatchObject({ relationId: 7, endpoints: '10.0.0.1:5432', username: 'relation_7', password: 'hunter2-very-secret' });
    expect(await w.db.fetch(w.ctx('update-status'), 8)).toBeUndefined();
    w.dying = true;
    expect(await w.db.fetch(w.ctx('update-status'))).toBeUndefined();
    // fetch does not move the diff base.
    expect(w.local.data).toEqual({});
  });

  test('check (e.g. update-status) catches up like relation-changed', async () => {
    const w = new World();
    w.provide(ANSWER, { id: SECRET_A, content: CREDS });
    w.seen = [];
    await w.db.check(w.ctx('update-status'));
    expect(w.seen.map((s) => s.event)).toEqual(['database-created']);
  });
});

describe('the diff base', () => {
  test('holds one key, and never the password nor the username', async () => {
    const w = await created();
    w.secrets.content.set(SECRET_A, { ...CREDS, password: 'rotated-password' });
    await w.run('secret-changed', { secret: { id: SECRET_A, revision: 2 } });
    expect(Object.keys(w.local.data)).toEqual([DIFF_KEY]);
    const text = JSON.stringify(w.local.data);
    for (const s of ['hunter2-very-secret', 'rotated-password', 'relation_7', CREDS.uris]) expect(text).not.toContain(s);
    const base = JSON.parse(w.local.get(DIFF_KEY)!) as Record<string, string>;
    expect(Object.keys(base).sort()).toEqual(['credentials', 'database', 'endpoints', 'read-only-endpoints', 'secret-user']);
    expect(base['credentials']).toMatch(/^[0-9a-f]{64}$/);
  });

  test('a listener that throws fails the handler (the runtime then stores nothing)', async () => {
    const w = new World();
    w.db.on('database-created', () => {
      throw new Error('listener failed');
    });
    w.provide(ANSWER, { id: SECRET_A, content: CREDS });
    await expect(w.run('database-relation-changed')).rejects.toThrow('listener failed');
  });
});
