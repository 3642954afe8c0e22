import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sidecarCli } from '../../agent/sidecar-location.js';
import { checkAccess, defaultUser, parseBasicAuth, ROUTE_ACCESS, routeAccess, WEBSOCKET_PATH, type RouteAccess, type Transport } from '../../sidecar/api/access.js';
import { changesRoutes } from '../../sidecar/api/changes.js';
import { checksRoutes } from '../../sidecar/api/checks.js';
import { execRoutes } from '../../sidecar/api/exec.js';
import { filesRoutes } from '../../sidecar/api/files.js';
import { identitiesRoutes } from '../../sidecar/api/identities.js';
import { logsRoutes } from '../../sidecar/api/logs.js';
import { metricsRoutes } from '../../sidecar/api/metrics.js';
import { noticesRoutes } from '../../sidecar/api/notices.js';
import { planRoutes } from '../../sidecar/api/plan.js';
import { servicesRoutes } from '../../sidecar/api/services.js';
import { logLevelRoutes, systemRoutes } from '../../sidecar/api/system.js';
import { ChangeStore } from '../../sidecar/changes/state.js';
import { runCli } from '../../sidecar/cli.js';
import { identitiesTable, parseIdentitiesYaml } from '../../sidecar/client/identities.js';
import { APIError, PebbleClient } from '../../sidecar/client/index.js';
import { applyIdentities, identitiesToApi, parseIdentitiesRequest, type Identity, type IdentityAccess } from '../../sidecar/identities/identities.js';
import { hashProblem, MAX_ROUNDS, verifyPassword } from '../../sidecar/identities/password.js';
import { IDENTITIES_FILE } from '../../sidecar/identities/store.js';
import { lookupUser } from '../../sidecar/osutil/users.js';
import { startTestSidecar, type TestSidecar } from '../helpers/sidecar.js';

const log = pino({ level: 'silent' });

/** `openssl passwd -6`, the hash Pebble's docs tell users to make. */
const opensslHash = (password: string, salt?: string): string =>
  execFileSync('openssl', ['passwd', '-6', '-stdin', ...(salt ? ['-salt', salt] : [])], { input: password }).toString().trim();

/** Pebble's 401 (internals/daemon/response.go: Unauthorized sets kind login-required). */
const DENIED = { type: 'error', 'status-code': 401, status: 'Unauthorized', result: { message: 'access denied', kind: 'login-required' } };

interface Answer {
  status: number;
  type: string;
  text: string;
  json?: unknown;
}

/** A raw request, so the test sees the exact status and body rather than the client's reading of them. */
function call(target: { port: number } | { socketPath: string }, method: string, path: string, o: { auth?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const where = 'port' in target ? { host: '127.0.0.1', port: target.port } : { socketPath: target.socketPath };
    const body = o.body === undefined ? undefined : JSON.stringify(o.body);
    const headers: Record<string, string> = { ...o.headers };
    if (o.auth !== undefined) headers['Authorization'] = `Basic ${Buffer.from(o.auth).toString('base64')}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const req = http.request({ ...where, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => {
        const type = String(res.headers['content-type'] ?? '');
        resolve({ status: res.statusCode ?? 0, type, text, ...(type.startsWith('application/json') ? { json: JSON.parse(text) as unknown } : {}) });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function cli(args: string[], socket: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c: Buffer) => (stdout += c.toString()));
  err.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await runCli(args, { stdout: out, stderr: err, env: { PEBBLE_SOCKET: socket } });
  return { code, stdout, stderr };
}

describe('access levels (pure): Pebble access checkers', () => {
  // Rows: what the route needs and the transport; columns: no identity, untrusted, metrics, read, admin.
  const USERS: (IdentityAccess | undefined)[] = [undefined, 'untrusted', 'metrics', 'read', 'admin'];
  const TABLE: [RouteAccess, Transport, string][] = [
    ['open', 'unix', 'YYYYY'],
    ['open', 'http', 'YYYYY'],
    ['user', 'unix', 'NNNYY'],
    ['user', 'http', 'NNNNN'], // HTTP is not concealed: a read identity cannot read there
    ['admin', 'unix', 'NNNNY'],
    ['admin', 'http', 'NNNNN'],
    ['metrics', 'unix', 'NNYYY'],
    ['metrics', 'http', 'NNYNN'], // over HTTP only a metrics identity (its password is the one sent in clear)
  ];
  it.each(TABLE)('%s access over %s', (route, transport, expected) => {
    const got = USERS.map((access) => (checkAccess(route, transport, access ? { access } : undefined) ? 'Y' : 'N')).join('');
    expect(got).toBe(expected);
  });

  it.each([
    ['root', 0, {}, 'admin'],
    ["the sidecar's own UID", 1234, {}, 'admin'],
    ['any other UID (only reachable with a wider socket mode)', 4321, {}, 'read'],
    ['a peer that came in through --socket-group', 4321, { socketGroup: 10001 }, 'admin'],
  ] as const)('with no identity matching, %s on the socket is %s', (_what, uid, extra, access) => {
    expect(defaultUser(uid, { daemonUid: 1234, ...extra })).toEqual({ access, uid });
  });

  it.each([
    [undefined, undefined],
    ['', undefined],
    ['Bearer abc', undefined],
    [`Basic ${Buffer.from('alice:s3cret:with:colons').toString('base64')}`, { username: 'alice', password: 's3cret:with:colons' }],
    [`basic ${Buffer.from('bob:').toString('base64')}`, { username: 'bob', password: '' }],
    [`Basic ${Buffer.from('no-colon').toString('base64')}`, undefined],
    ['Basic !!!notbase64', undefined],
  ])('reads the Authorization header %j as Go does', (header, expected) => {
    expect(parseBasicAuth(header)).toEqual(expected);
  });

  it("gives every route Pebble's api.go level, and lists every route the sidecar serves", () => {
    const PEBBLE_API_GO: Record<string, RouteAccess> = {
      'GET /v1/system-info': 'open',
      'GET /v1/health': 'open',
      'GET /v1/changes': 'user',
      'GET /v1/changes/{id}': 'user',
      'POST /v1/changes/{id}': 'admin',
      'GET /v1/changes/{id}/wait': 'user',
      'GET /v1/services': 'user',
      'POST /v1/services': 'admin',
      'GET /v1/plan': 'admin',
      'POST /v1/layers': 'admin',
      'GET /v1/files': 'admin',
      'POST /v1/files': 'admin',
      'GET /v1/logs': 'user',
      'POST /v1/exec': 'admin',
      'GET /v1/tasks/{task-id}/websocket/{websocket-id}': 'admin',
      'POST /v1/signals': 'admin',
      'GET /v1/checks': 'user',
      'POST /v1/checks': 'admin',
      'POST /v1/checks/refresh': 'admin',
      'GET /v1/notices': 'user',
      'POST /v1/notices': 'user',
      'GET /v1/notices/{id}': 'user',
      'GET /v1/identities': 'user',
      'POST /v1/identities': 'admin',
      'GET /v1/metrics': 'metrics',
    };
    expect(ROUTE_ACCESS).toMatchObject(PEBBLE_API_GO);
    expect(routeAccess('GET', WEBSOCKET_PATH)).toBe('admin');
    expect(routeAccess('GET', '/v1/not-listed')).toBe('admin');
    // The route factories as daemon.ts calls them; they only keep their managers for later.
    const d = {} as never;
    const routes = [
      ...systemRoutes({ version: 'v', bootId: 'b' }),
      ...logLevelRoutes(log),
      ...servicesRoutes(d),
      ...changesRoutes(d),
      ...planRoutes(d),
      ...checksRoutes(d),
      ...metricsRoutes(d, d),
      ...filesRoutes(d),
      ...execRoutes({ changes: new ChangeStore(), log, serviceContext: d }),
      ...logsRoutes(d, d),
      ...noticesRoutes(d),
      ...identitiesRoutes(d, log),
    ].map((r) => `${r.method} ${r.path}`);
    expect(routes.filter((r) => !(r in ROUTE_ACCESS))).toEqual([]);
    expect(Object.keys(ROUTE_ACCESS).filter((r) => !routes.includes(r) && r !== `GET ${WEBSOCKET_PATH}`)).toEqual([]);
  });
});

describe('identities (pure): validation and changes with Pebble wording', () => {
  const local = (uid: number, access: IdentityAccess = 'read'): Identity => ({ access, local: { 'user-id': uid } });
  const current = new Map<string, Identity>([
    ['bob', local(42, 'admin')],
    ['mary', local(1000)],
    ['nancy', { access: 'metrics', basic: { password: '$6$hash' } }],
  ]);

  it.each([
    ['an unknown access level', { action: 'add', identities: { x: { access: 'superuser', local: { 'user-id': 1 } } } }, 'invalid identity for "x": invalid access value "superuser", must be "admin", "read", "metrics", or "untrusted"'],
    ['no access level', { action: 'add', identities: { x: { local: { 'user-id': 1 } } } }, 'invalid identity for "x": access value must be specified ("admin", "read", "metrics", or "untrusted")'],
    ['no type', { action: 'add', identities: { x: { access: 'admin' } } }, 'invalid identity for "x": identity must have at least one type ("local", "basic", or "cert")'],
    ['a local type without user-id', { action: 'add', identities: { x: { access: 'admin', local: {} } } }, 'invalid identity for "x": local identity must specify user-id'],
    ['a basic type without password', { action: 'add', identities: { x: { access: 'metrics', basic: {} } } }, 'invalid identity for "x": basic identity must specify password (hashed)'],
    ['a bad name', { action: 'add', identities: { '1x': local(5) } }, 'invalid identity for "1x": identity name "1x" invalid: must start with an alphabetic character and only contain alphanumeric characters, underscore, and hyphen'],
    ['a cert type (no HTTPS listener here)', { action: 'add', identities: { x: { access: 'read', cert: { pem: 'x' } } } }, 'invalid identity for "x": cert identities are not supported: the sidecar has no HTTPS listener'],
    ['an invalid identity whatever the action', { action: 'foobar', identities: { x: { access: 'admin' } } }, 'invalid identity for "x": identity must have at least one type ("local", "basic", or "cert")'],
    ['an unknown action', { action: 'delete', identities: {} }, 'invalid action "delete", must be "add", "update", "replace", or "remove"'],
    ['no action', { identities: {} }, 'invalid action "", must be "add", "update", "replace", or "remove"'],
    ['null in add', { action: 'add', identities: { x: null } }, 'identity value for "x" must not be null for add operation'],
    ['null in update', { action: 'update', identities: { x: null } }, 'identity value for "x" must not be null for update operation'],
    ['a value in remove', { action: 'remove', identities: { bob: local(42) } }, 'identity value for "bob" must be null for remove operation'],
    ['a user-id that is no uint32', { action: 'add', identities: { x: { access: 'read', local: { 'user-id': -1 } } } }, 'cannot decode request body: identities.x.local.user-id: expected an integer from 0 to 4294967295'],
    ['an access that is no string', { action: 'add', identities: { x: { access: 3, local: { 'user-id': 1 } } } }, 'cannot decode request body: identities.x.access: expected a string'],
  ])('refuses %s', (_what, body, message) => {
    expect(() => parseIdentitiesRequest(body as Record<string, unknown>)).toThrow(message);
  });

  it.each([
    ['add of an existing name', 'add', { mary: local(7), bob: local(8) }, 'identities already exist: bob, mary'],
    ['update of a missing name', 'update', { ghost: local(7), bob: local(8), elf: local(9) }, 'identities do not exist: elf, ghost'],
    ['remove of a missing name', 'remove', { ghost: null }, 'identities do not exist: ghost'],
    ['two identities of one UID', 'add', { bill: local(1000) }, 'cannot have multiple identities with user ID 1000 (bill, mary)'],
    ['a replace that gives one UID twice', 'replace', { bob: local(1000) }, 'cannot have multiple identities with user ID 1000 (bob, mary)'],
  ] as const)('refuses %s, changing nothing', (_what, action, changes, message) => {
    const before = structuredClone([...current]);
    expect(() => applyIdentities(current, action, new Map(Object.entries(changes)))).toThrow(message);
    expect([...current]).toEqual(before);
  });

  it('adds, updates, replaces (null removes, missing adds) and removes', () => {
    let set = applyIdentities(current, 'add', new Map([['olivia', local(2000, 'untrusted')]]));
    set = applyIdentities(set, 'update', new Map([['bob', local(43, 'admin')]]));
    set = applyIdentities(set, 'replace', new Map<string, Identity | null>([['mary', null], ['newguy', local(1000)]]));
    set = applyIdentities(set, 'remove', new Map([['olivia', null]]));
    expect(Object.fromEntries(set)).toEqual({ bob: local(43, 'admin'), nancy: current.get('nancy'), newguy: local(1000) });
    // Both types at once are allowed, as in Pebble ("one or more authentication types").
    const both = parseIdentitiesRequest({ action: 'add', identities: { both: { access: 'read', local: { 'user-id': 5 }, basic: { password: '$6$x' } } } });
    expect(both.identities.get('both')).toEqual({ access: 'read', local: { 'user-id': 5 }, basic: { password: '$6$x' } });
  });

  it('shows identities sorted, with passwords masked', () => {
    expect(identitiesToApi(current)).toEqual({ bob: local(42, 'admin'), mary: local(1000), nancy: { access: 'metrics', basic: { password: '*****' } } });
    expect(Object.keys(identitiesToApi(new Map([['zed', local(1)], ['abe', local(2)]])))).toEqual(['abe', 'zed']);
  });
});

describe('sha512-crypt verification against `openssl passwd -6`', () => {
  // 64 and 128 bytes: unixcrypt 3.0.4 alone rejects the right password there (vendor/build.mjs fixes it).
  it.each([1, 8, 16, 63, 64, 65, 100, 127, 128, 129, 200])('matches a %i-byte password and no other', async (n) => {
    const password = 'p'.repeat(n - 1) + String.fromCharCode(97 + (n % 26));
    const hash = opensslHash(password);
    expect(await verifyPassword(password, hash)).toBe(true);
    expect(await verifyPassword(`${password}x`, hash)).toBe(false);
    expect(await verifyPassword(password.slice(0, -1), hash)).toBe(false);
  });

  it('matches UTF-8 passwords, short and long salts, a 64-character hex password', async () => {
    for (const [password, salt] of [['pässwörd-日本語', undefined], ['secret', 'abc'], ['secret', 'abcdefghijklmnop'], ['0123456789abcdef'.repeat(4), undefined]] as const) {
      expect(await verifyPassword(password, opensslHash(password, salt))).toBe(true);
    }
  });

  it('never matches hashes that are not sha512-crypt, malformed ones, or ones with too many rounds', async () => {
    const md5 = execFileSync('openssl', ['passwd', '-1', '-stdin'], { input: 'secret' }).toString().trim();
    const sha256 = execFileSync('openssl', ['passwd', '-5', '-stdin'], { input: 'secret' }).toString().trim();
    const good = opensslHash('secret', 'saltsalt');
    for (const hash of [md5, sha256, '', 'secret', good.slice(0, -1), good.replace('$6$', '$6$rounds=999999999$')]) {
      expect(hashProblem(hash)).toBeDefined();
      expect(await verifyPassword('secret', hash)).toBe(false);
    }
    expect(hashProblem(good.replace('$6$', `$6$rounds=${MAX_ROUNDS}$`))).toBeUndefined();
  });
});

describe('identities YAML (CLI)', () => {
  it("reads pebble's file format, null for removal, and only the fields pebble's client knows", () => {
    const text = ['identities:', '  bob:', '    access: admin', '    local:', '      user-id: 42', '    extra: ignored', '  alice:', '    access: metrics', '    basic:', "      password: '$6$abc$def'", '  gone: null', ''].join('\n');
    expect(parseIdentitiesYaml(text)).toEqual({ bob: { access: 'admin', local: { 'user-id': 42 } }, alice: { access: 'metrics', basic: { password: '$6$abc$def' } }, gone: null });
  });

  it.each([
    ['bob:\n  access: admin\n', 'no identities to add; did you forget the top-level "identities" key?'],
    ['identities: {}\n', 'no identities to add; did you forget the top-level "identities" key?'],
    ['identities:\n  bob: [1]\n', 'cannot unmarshal identities: identity "bob" must be a mapping or null'],
    ['identities: [\n', 'cannot unmarshal identities: '],
  ])('refuses %j', (text, message) => {
    expect(() => parseIdentitiesYaml(text)).toThrow(message);
  });

  it('lists identities as `pebble identities` does', () => {
    expect(identitiesTable({ mary: { access: 'read', local: { 'user-id': 1 } }, bob: { access: 'admin', local: { 'user-id': 2 }, basic: { password: '*****' } } })).toBe(
      ['Name  Access  Types', 'bob   admin   basic,local', 'mary  read    local', ''].join('\n'),
    );
  });
});

describe('a real sidecar with an --http listener', () => {
  let sc: TestSidecar;
  let port: number;
  /** What earlier sidecar processes wrote (a restart starts a new one). */
  const outputs: string[] = [];
  const metricsHash = opensslHash('scrape-me');
  const readHash = opensslHash('read-me');
  const httpPort = async () => Number((await sc.client.getSystemInfo())['http-address']!.split(':').pop());

  beforeAll(async () => {
    sc = await startTestSidecar({ hold: true, http: '127.0.0.1:0', layers: { '001-base.yaml': 'services:\n  sleeper:\n    override: replace\n    command: sleep 1000\n' } });
    port = await httpPort();
  });
  afterAll(async () => {
    await sc?.cleanup();
  });

  it('answers open routes to anyone over HTTP and refuses everything else with 401 "access denied"', async () => {
    const health = await call({ port }, 'GET', '/v1/health');
    expect(health.status).toBe(200);
    expect(health.json).toEqual({ type: 'sync', 'status-code': 200, status: 'OK', result: { healthy: true } });
    expect((await call({ port }, 'GET', '/v1/system-info')).status).toBe(200);
    const refused: [string, string, unknown?][] = [
      ['GET', '/v1/metrics'],
      ['GET', '/v1/services'],
      ['POST', '/v1/services', { action: 'start', services: ['sleeper'] }],
      ['POST', '/v1/exec', { command: ['true'] }],
      ['GET', '/v1/files?action=list&path=/'],
      ['GET', '/v1/files?action=read&path=/etc/hostname'],
      ['POST', '/v1/files', { action: 'remove', paths: [{ path: '/tmp/x' }] }],
      ['GET', '/v1/plan'],
      ['POST', '/v1/layers', { action: 'add', label: 'x', format: 'yaml', layer: 'summary: x\n' }],
      ['GET', '/v1/logs'],
      ['GET', '/v1/identities'],
      ['POST', '/v1/identities', { action: 'add', identities: { me: { access: 'admin', basic: { password: metricsHash } } } }],
      ['POST', '/v1/log-level', { level: 'trace' }],
    ];
    for (const [method, path, body] of refused) {
      const r = await call({ port }, method, path, { body });
      expect([method, path, r.status, r.json]).toEqual([method, path, 401, DENIED]);
    }
    // Exec's websockets too (an upgrade, answered before any websocket handshake).
    const ws = await call({ port }, 'GET', '/v1/tasks/1/websocket/control', { headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
    expect([ws.status, ws.json]).toEqual([401, DENIED]);
    // Unknown paths are still 404, wrong methods 405.
    expect((await call({ port }, 'GET', '/v1/nope')).status).toBe(404);
    expect((await call({ port }, 'DELETE', '/v1/services')).status).toBe(405);
    // Nothing was changed by the refused calls.
    expect((await sc.client.getServices())[0]!.current).toBe('inactive');
    expect(await sc.client.getIdentities()).toEqual({});
  });

  it('adds identities with the CLI (root on the socket is admin) and lists them as pebble does', async () => {
    const file = join(sc.tmp, 'add.yaml');
    writeFileSync(file, `identities:\n  scraper:\n    access: metrics\n    basic:\n      password: '${metricsHash}'\n  reader:\n    access: read\n    basic:\n      password: '${readHash}'\n`);
    expect(await cli(['add-identities', '--from', file], sc.socket)).toEqual({ code: 0, stdout: 'Added 2 new identities.\n', stderr: '' });
    expect((await cli(['identities'], sc.socket)).stdout).toBe('Name     Access   Types\nreader   read     basic\nscraper  metrics  basic\n');
    expect((await cli(['identity', 'scraper'], sc.socket)).stdout).toBe("access: metrics\nbasic:\n    password: '*****'\n");
    expect((await cli(['identities', '--format', 'json'], sc.socket)).stdout).toBe('{"identities":{"reader":{"access":"read","basic":{"password":"*****"}},"scraper":{"access":"metrics","basic":{"password":"*****"}}}}\n');
    expect(await cli(['identity', 'nobody'], sc.socket)).toMatchObject({ code: 1, stderr: 'error: cannot find identity "nobody"\n' });
    const stored = join(sc.dir, IDENTITIES_FILE);
    expect(statSync(stored).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(stored, 'utf8'))).toEqual({ identities: { reader: { access: 'read', basic: { password: readHash } }, scraper: { access: 'metrics', basic: { password: metricsHash } } } });
  });

  it('serves /v1/metrics over HTTP to the metrics identity only, and nothing else to it', async () => {
    const ok = await call({ port }, 'GET', '/v1/metrics', { auth: 'scraper:scrape-me' });
    expect([ok.status, ok.type]).toEqual([200, 'text/plain; charset=utf-8']);
    for (const auth of ['scraper:wrong', 'scraper:', 'ghost:scrape-me', 'reader:read-me', ':scrape-me']) {
      const r = await call({ port }, 'GET', '/v1/metrics', { auth });
      expect([auth, r.status, r.json]).toEqual([auth, 401, DENIED]);
    }
    for (const [method, path] of [['GET', '/v1/services'], ['GET', '/v1/changes'], ['GET', '/v1/identities'], ['POST', '/v1/exec']] as const) {
      expect((await call({ port }, method, path, { auth: 'scraper:scrape-me', body: method === 'POST' ? { command: ['true'] } : undefined })).status).toBe(401);
    }
    // The client's basic-auth credentials, as pebble's Go client takes them.
    const scraper = new PebbleClient({ baseUrl: `http://127.0.0.1:${port}`, basicUsername: 'scraper', basicPassword: 'scrape-me' });
    expect((await scraper.getHealth()).healthy).toBe(true);
    const e = await scraper.getServices().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(APIError);
    expect(e).toMatchObject({ status: 401, kind: 'login-required', message: 'access denied' });
    expect(() => new PebbleClient({ baseUrl: `http://127.0.0.1:${port}`, basicUsername: 'scraper' })).toThrow('cannot use incomplete basic auth credentials');
  });

  it('does not let a read identity read over HTTP: plain HTTP is not concealed', async () => {
    for (const path of ['/v1/services', '/v1/changes', '/v1/checks', '/v1/identities']) {
      expect((await call({ port }, 'GET', path, { auth: 'reader:read-me' })).json).toEqual(DENIED);
    }
    // Over the socket the same credentials name the read identity: reading yes, changing no.
    expect((await call({ socketPath: sc.socket }, 'GET', '/v1/services', { auth: 'reader:read-me' })).status).toBe(200);
    expect((await call({ socketPath: sc.socket }, 'POST', '/v1/services', { auth: 'reader:read-me', body: { action: 'start', services: ['sleeper'] } })).json).toEqual(DENIED);
    // Wrong credentials on the socket name nobody: root's peer UID decides (admin), as in Pebble.
    expect((await call({ socketPath: sc.socket }, 'GET', '/v1/plan', { auth: 'reader:wrong' })).status).toBe(200);
  });

  it("refuses bad input with Pebble's 400 errors and changes nothing", async () => {
    const before = await sc.client.getIdentities();
    const stored = readFileSync(join(sc.dir, IDENTITIES_FILE), 'utf8');
    const bad: [unknown, string][] = [
      [{ action: 'add', identities: { x: { access: 'superuser', local: { 'user-id': 1 } } } }, 'invalid identity for "x": invalid access value "superuser", must be "admin", "read", "metrics", or "untrusted"'],
      [{ action: 'add', identities: { x: { local: { 'user-id': 1 } } } }, 'invalid identity for "x": access value must be specified ("admin", "read", "metrics", or "untrusted")'],
      [{ action: 'add', identities: { x: { access: 'read' } } }, 'invalid identity for "x": identity must have at least one type ("local", "basic", or "cert")'],
      [{ action: 'add', identities: { x: { access: 'read', local: {} } } }, 'invalid identity for "x": local identity must specify user-id'],
      [{ action: 'add', identities: { x: { access: 'read', basic: { password: '' } } } }, 'invalid identity for "x": basic identity must specify password (hashed)'],
      [{ action: 'add', identities: { ok: { access: 'read', local: { 'user-id': 7 } }, 'bad name': { access: 'read', local: { 'user-id': 8 } } } }, 'invalid identity for "bad name": identity name "bad name" invalid: must start with an alphabetic character and only contain alphanumeric characters, underscore, and hyphen'],
      [{ action: 'remove', identities: { ghost: null } }, 'identities do not exist: ghost'],
      [{ action: 'remove', identities: { scraper: null, ghost: null } }, 'identities do not exist: ghost'],
      [{ action: 'add', identities: { scraper: { access: 'admin', local: { 'user-id': 9 } } } }, 'identities already exist: scraper'],
      [{ action: 'update', identities: { ghost: { access: 'admin', local: { 'user-id': 9 } } } }, 'identities do not exist: ghost'],
      [{ action: 'add', identities: { a: { access: 'read', local: { 'user-id': 1000 } }, b: { access: 'admin', local: { 'user-id': 1000 } } } }, 'cannot have multiple identities with user ID 1000 (a, b)'],
      [{ action: 'add', identities: { x: null } }, 'identity value for "x" must not be null for add operation'],
      [{ action: 'remove', identities: { scraper: { access: 'read', local: { 'user-id': 1 } } } }, 'identity value for "scraper" must be null for remove operation'],
      [{ action: 'delete', identities: { scraper: null } }, 'invalid action "delete", must be "add", "update", "replace", or "remove"'],
    ];
    for (const [body, message] of bad) {
      const r = await call({ socketPath: sc.socket }, 'POST', '/v1/identities', { body });
      expect([r.status, r.json]).toEqual([400, { type: 'error', 'status-code': 400, status: 'Bad Request', result: { message } }]);
    }
    const broken = await call({ socketPath: sc.socket }, 'POST', '/v1/identities', { headers: { 'Content-Type': 'application/json' }, body: undefined });
    expect(broken.status).toBe(400);
    // The CLI's own checks (pebble's) and the server's errors, as `error: ...`.
    const file = join(sc.tmp, 'bad.yaml');
    writeFileSync(file, 'identities:\n  scraper: {access: read, local: {user-id: 1}}\n');
    expect(await cli(['remove-identities', '--from', file], sc.socket)).toMatchObject({ code: 1, stderr: 'error: identity value for "scraper" must be null for remove operation\n' });
    expect(await cli(['add-identities', '--from', file], sc.socket)).toMatchObject({ code: 1, stderr: 'error: identities already exist: scraper\n' });
    expect(await cli(['add-identities', '--from', join(sc.tmp, 'missing.yaml')], sc.socket)).toMatchObject({ code: 1, stderr: `error: open ${join(sc.tmp, 'missing.yaml')}: no such file or directory\n` });
    expect(await sc.client.getIdentities()).toEqual(before);
    expect(readFileSync(join(sc.dir, IDENTITIES_FILE), 'utf8')).toBe(stored);
  });

  it('updates, replaces and removes with the CLI; both types at once are allowed, as in Pebble', async () => {
    const file = join(sc.tmp, 'change.yaml');
    writeFileSync(file, `identities:\n  reader:\n    access: read\n    local:\n      user-id: 3000\n    basic:\n      password: '${readHash}'\n`);
    expect((await cli(['update-identities', '--from', file], sc.socket)).stdout).toBe('Updated 1 identity.\n');
    writeFileSync(file, `identities:\n  reader: null\n  temp:\n    access: untrusted\n    local:\n      user-id: 3001\n`);
    expect((await cli(['update-identities', '--from', file, '--replace'], sc.socket)).stdout).toBe('Replaced 2 identities.\n');
    expect((await cli(['identities'], sc.socket)).stdout).toBe('Name     Access     Types\nscraper  metrics    basic\ntemp     untrusted  local\n');
    writeFileSync(file, 'identities:\n  temp: null\n');
    expect((await cli(['remove-identities', '--from', file], sc.socket)).stdout).toBe('Removed 1 identity.\n');
    await sc.client.replaceIdentities({ reader: { access: 'read', local: { 'user-id': 3000 }, basic: { password: readHash } } });
    expect(await sc.client.getIdentities()).toEqual({ reader: { access: 'read', local: { 'user-id': 3000 }, basic: { password: '*****' } }, scraper: { access: 'metrics', basic: { password: '*****' } } });
  });

  it('keeps identities over a restart of the sidecar', async () => {
    outputs.push(sc.output());
    sc = await sc.restart();
    port = await httpPort();
    expect(await sc.client.getIdentities()).toEqual({ reader: { access: 'read', local: { 'user-id': 3000 }, basic: { password: '*****' } }, scraper: { access: 'metrics', basic: { password: '*****' } } });
    expect((await call({ port }, 'GET', '/v1/metrics', { auth: 'scraper:scrape-me' })).status).toBe(200);
    expect((await call({ port }, 'GET', '/v1/metrics')).json).toEqual(DENIED);
    await sc.client.removeIdentities(['reader']);
    expect(Object.keys(await sc.client.getIdentities())).toEqual(['scraper']);
  });

  it('logs no password, hash or Authorization header', () => {
    const out = [...outputs, sc.output()].join('');
    expect(out).toContain('"msg":"identity added"');
    expect(out).toContain('"msg":"access denied"');
    for (const secret of ['scrape-me', 'read-me', metricsHash, readHash, 'Basic ', 'authorization']) expect(out).not.toContain(secret);
  });
});

describe('a sidecar whose identities file is damaged', () => {
  it('refuses to start, naming the file and the fault, as it does for a bad layer', async () => {
    const sc = await startTestSidecar({ hold: true });
    try {
      writeFileSync(join(sc.dir, IDENTITIES_FILE), JSON.stringify({ identities: { x: { access: 'root', local: { 'user-id': 1 } } } }));
      const e = await sc.restart().catch((x: unknown) => x);
      expect(String(e)).toContain(`cannot load identities from ${join(sc.dir, IDENTITIES_FILE)}: invalid identity for "x": invalid access value "root"`);
    } finally {
      await sc.cleanup();
    }
  });
});

const nobody = lookupUser('nobody');

describe.skipIf(process.getuid?.() !== 0 || !nobody)('local identities on the unix socket (peer UID)', () => {
  let sc: TestSidecar;
  beforeAll(async () => {
    // The socket is handed to nobody's group, as the charm container gets it in a pod.
    sc = await startTestSidecar({ hold: true, args: () => ['--socket-group', String(nobody!.gid)] });
  });
  afterAll(async () => {
    await sc?.cleanup();
  });

  /** pgcharm-sidecar run as nobody: its peer UID is what the sidecar sees. */
  const asNobody = (...args: string[]) => {
    const r = spawnSync(process.execPath, [sidecarCli(), ...args], { uid: nobody!.uid, gid: nobody!.gid, env: { PEBBLE_SOCKET: sc.socket, PATH: process.env['PATH'] }, encoding: 'utf8' });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('lets the socket group drive the sidecar until a local identity for its UID says otherwise', async () => {
    expect(statSync(sc.socket).mode & 0o777).toBe(0o660);
    expect(asNobody('plan')).toMatchObject({ code: 0 });

    await sc.client.addIdentities({ nob: { access: 'read', local: { 'user-id': nobody!.uid } } });
    expect(asNobody('services')).toMatchObject({ code: 0, stderr: 'Plan has no services.\n' });
    expect(asNobody('plan')).toEqual({ code: 1, stdout: '', stderr: 'error: access denied\n' });
    expect(asNobody('identities').stdout).toContain('nob ');

    await sc.client.updateIdentities({ nob: { access: 'untrusted', local: { 'user-id': nobody!.uid } } });
    expect(asNobody('services')).toMatchObject({ code: 1, stderr: 'error: access denied\n' });
    expect(asNobody('health')).toMatchObject({ code: 0, stdout: 'healthy\n' });

    await sc.client.updateIdentities({ nob: { access: 'metrics', local: { 'user-id': nobody!.uid } } });
    expect(asNobody('services')).toMatchObject({ code: 1 });
    expect((await call({ socketPath: sc.socket }, 'GET', '/v1/metrics')).status).toBe(200); // root: still admin

    await sc.client.updateIdentities({ nob: { access: 'admin', local: { 'user-id': nobody!.uid } } });
    expect(asNobody('plan')).toMatchObject({ code: 0 });
    expect(sc.output()).toContain('"msg":"access denied"');
  });
});
