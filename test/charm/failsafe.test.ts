import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { API_TOKEN_KEY } from '../../agent/charm/postgresql/api-token.js';
import { ensureApiToken, readApiToken } from '../../agent/charm/postgresql/secrets.js';
import { decideExtension, Failsafe, mayConfirm, probeTimeoutMs, roundBudgetMs, storeTimeoutMs, type ExtensionInput, type PeerAnswer } from '../../agent/charm/postgresql/failsafe.js';
import type { Kube } from '../../agent/runtime/kube.js';
import { UnitApi, callUnit } from '../../agent/runtime/unit-api.js';

const log = pino({ level: 'silent' });
const ok = (promisedMs = 2000): PeerAnswer => ({ kind: 'confirmed', promisedMs });
const T = 1_000_000;

describe('failsafe: the primary extends its fence deadline only with every peer confirming', () => {
  // TTL 2 s: the window is a TTL, the fence margin TTL/2; the last renewal's deadline is 500 ms away.
  const base: ExtensionInput = { enabled: true, peers: ['pg/1', 'pg/2'], answers: {}, sentAt: T, windowMs: 2000, fenceMarginMs: 1000, deadline: T + 500, now: T + 150 };
  it.each<[string, Partial<ExtensionInput>, { extend: boolean; until?: number; why: RegExp }]>([
    ['both peers confirm: until asked + window - TTL/2, as after a renewal', { answers: { 'pg/1': ok(), 'pg/2': ok() } }, { extend: true, until: T + 1000, why: /every peer \(pg\/1, pg\/2\) confirmed/ }],
    ['the shortest promise bounds the extension', { answers: { 'pg/1': ok(1800), 'pg/2': ok(5000) } }, { extend: true, until: T + 800, why: /every peer/ }],
    ['a longer promise than our window does not stretch it', { answers: { 'pg/1': ok(9000), 'pg/2': ok(9000) } }, { extend: true, until: T + 1000, why: /every peer/ }],
    ['one refusal', { answers: { 'pg/1': ok(), 'pg/2': { kind: 'refused', reason: 'this unit can reach the store' } } }, { extend: false, why: /^pg\/2 refused: this unit can reach the store/ }],
    ['one peer silent (frozen agent)', { answers: { 'pg/1': { kind: 'silent', error: 'no answer within 400 ms' }, 'pg/2': ok() } }, { extend: false, why: /^no answer from pg\/1: no answer within 400 ms/ }],
    ['one peer missing from the answers', { answers: { 'pg/2': ok() } }, { extend: false, why: /^no answer from pg\/1$/ }],
    ['a confirmation promising nothing', { answers: { 'pg/1': ok(0), 'pg/2': ok() } }, { extend: false, why: /pg\/1 promised no time/ }],
    ['failsafe-mode off', { enabled: false, answers: { 'pg/1': ok(), 'pg/2': ok() } }, { extend: false, why: /failsafe-mode is off/ }],
    ['the fence deadline passed while asking', { answers: { 'pg/1': ok(), 'pg/2': ok() }, now: T + 501 }, { extend: false, why: /already passed/ }],
    ['a promise too short to outlast the fence margin', { answers: { 'pg/1': ok(1300), 'pg/2': ok() } }, { extend: false, why: /ends before the current fence deadline/ }],
    ['no peers: nobody else can be promoted', { peers: [] }, { extend: true, until: T + 1000, why: /no peers/ }],
    ['an answer from a unit that is not a peer does not count', { peers: ['pg/1'], answers: { 'pg/2': ok() } }, { extend: false, why: /no answer from pg\/1/ }],
  ])('%s', (_name, over, want) => {
    const d = decideExtension({ ...base, ...over });
    expect(d.extend).toBe(want.extend);
    expect(d.why).toMatch(want.why);
    if (want.until !== undefined) expect(d).toMatchObject({ until: want.until });
  });
});

describe("failsafe: a peer's rule for confirming", () => {
  const base = { enabled: true, self: 'pg/1', requester: 'pg/0', knownHolder: 'pg/0', takingOver: false, storeReachable: false, now: T, windowMs: 2000 };
  it.each<[string, Partial<typeof base> & { knownHolder?: string | undefined }, { confirm: boolean; why: RegExp }]>([
    ['cannot reach the store, asked by the holder it knows: promises for the window', {}, { confirm: true, why: /does not answer this unit either/ }],
    ['can reach the store', { storeReachable: true }, { confirm: false, why: /can reach the store/ }],
    ['asked by a unit it does not know as the holder', { knownHolder: 'pg/2' }, { confirm: false, why: /last saw pg\/2 hold the primary lease, not pg\/0/ }],
    ['never saw a holder', { knownHolder: undefined }, { confirm: false, why: /last saw no unit/ }],
    ['it holds the lease itself', { knownHolder: 'pg/1' }, { confirm: false, why: /last saw pg\/1/ }],
    ['asked by itself', { requester: 'pg/1', knownHolder: 'pg/1' }, { confirm: false, why: /does not confirm itself/ }],
    ['taking the lease right now (or unsure whether it did)', { takingOver: true }, { confirm: false, why: /taking the primary lease/ }],
    ['failsafe-mode off here', { enabled: false }, { confirm: false, why: /failsafe-mode is off on this unit/ }],
  ])('%s', (_name, over, want) => {
    const d = mayConfirm({ ...base, ...over });
    expect(d.confirm).toBe(want.confirm);
    expect(d.why).toMatch(want.why);
    if (d.confirm) expect(d.until).toBe(T + 2000);
  });

  it('timeouts: a round fits in the fence margin (TTL/2) with room to spare', () => {
    for (const ttl of [1000, 2000, 10_000, 30_000]) {
      // The first: the tick TTL/5 after the last renewal, the store timeout, a peer's probe, the calls.
      expect(ttl / 5 + storeTimeoutMs(ttl) + probeTimeoutMs(ttl) + 100).toBeLessThan(ttl / 2);
      // The next ones: the loop at twice its pace (TTL/10, 100 ms at least) after the last round.
      expect(Math.max(100, ttl / 10) + storeTimeoutMs(ttl) + probeTimeoutMs(ttl) + 100).toBeLessThan(ttl / 2);
    }
  });
});

/** A store that never answers (as when the API server is frozen), or one that does. */
const kube = (reachable: boolean): Kube =>
  ({
    namespace: 'ns',
    coordination: {
      readNamespacedLease: async () => {
        if (reachable) return { spec: { holderIdentity: 'pg/0' } };
        throw Object.assign(new Error('The user aborted a request.'), { name: 'AbortError' });
      },
    },
  }) as unknown as Kube;

describe('failsafe: a unit keeps its promise', () => {
  const config = { 'primary-lease-ttl': 2, 'failsafe-mode': true };
  const peer = (reachable: boolean, now: { t: number }) => {
    const f = new Failsafe(() => now.t);
    f.configure({ unit: 'pg/1', app: 'pg', kube: kube(reachable), config, log });
    f.observe('pg/0');
    return f;
  };
  const ask = async (f: Failsafe, body: unknown) => f.routes()[0]!.handle({ method: 'POST', path: '/v1/failsafe', query: new URLSearchParams(), body, remote: '' });

  it('confirms, then holds off a takeover for a TTL, as a renewal it saw would', async () => {
    const now = { t: T };
    const f = peer(false, now);
    expect(await ask(f, { primary: 'pg/0' })).toEqual({ status: 200, body: { confirmed: true, unit: 'pg/1', 'promised-ms': 2000 } });
    expect(f.promisedUntilMs()).toBe(T + 2000);
    for (const [at, held] of [[T, true], [T + 1999, true], [T + 2000, false]] as const) {
      expect(f.holdsPromise(at), `at +${at - T} ms`).toBe(held);
    }
    now.t = T + 1500;
    expect(f.blocksTakeover(log)).toBe(true);
    let took = false;
    expect(await f.takeover(async () => (took = true))).toBeUndefined();
    expect(took).toBe(false);
    now.t = T + 2000;
    expect(await f.takeover(async () => (took = true))).toBe(true);
  });

  it("answers from its own HA loop's finding when that is less than a loop period old, else checks the store itself", async () => {
    const now = { t: T };
    // This store would answer a probe: only the loop's recent finding can make the unit confirm.
    const f = peer(true, now);
    const fence = { read: async () => undefined, set: async () => undefined };
    now.t = T + 10;
    await f.onStoreUnreachable(() => ({ unit: 'pg/1', config, peers: new Map(), fence, log, role: 'replica' }), new Error('aborted'));
    now.t = T + 560; // the loop's period when failing: TTL/5 + the store timeout (150 ms)
    expect(await ask(f, { primary: 'pg/0' })).toMatchObject({ body: { confirmed: true } });
    now.t = T + 561;
    expect(await ask(f, { primary: 'pg/0' })).toMatchObject({ body: { confirmed: false, reason: expect.stringMatching(/can reach the store/) } });
    await f.onStoreUnreachable(() => ({ unit: 'pg/1', config, peers: new Map(), fence, log, role: 'replica' }), new Error('aborted'));
    now.t = T + 570;
    f.observe('pg/0'); // the loop reached the store since
    expect(await ask(f, { primary: 'pg/0' })).toMatchObject({ body: { confirmed: false } });
  });

  it('refuses when it can reach the store, and promises nothing', async () => {
    const f = peer(true, { t: T });
    expect(await ask(f, { primary: 'pg/0' })).toMatchObject({ status: 200, body: { confirmed: false, reason: expect.stringMatching(/can reach the store/) } });
    expect(f.holdsPromise(T)).toBe(false);
  });

  it('refuses while its own takeover is under way, and after one whose outcome it does not know', async () => {
    const now = { t: T };
    const f = peer(false, now);
    let release!: () => void;
    const running = f.takeover(() => new Promise<boolean>((r) => (release = () => r(true))));
    expect(await ask(f, { primary: 'pg/0' })).toMatchObject({ body: { confirmed: false, reason: expect.stringMatching(/taking the primary lease/) } });
    release();
    await running;
    await expect(f.takeover(async () => Promise.reject(Object.assign(new Error('aborted'), { name: 'AbortError' })))).rejects.toThrow();
    expect(await ask(f, { primary: 'pg/0' })).toMatchObject({ body: { confirmed: false } });
    f.observe('pg/0'); // a successful read of the Lease settles it
    expect(await ask(f, { primary: 'pg/0' })).toMatchObject({ body: { confirmed: true } });
  });

  it.each([
    [null, 'body', /expected a JSON object/],
    [[], 'body', /expected a JSON object/],
    [{}, 'primary', /primary: required/],
    [{ primary: 7 }, 'primary', /primary: expected a unit name like postgresql\/0, got 7/],
    [{ primary: 'pg-0' }, 'primary', /got "pg-0"/],
    [{ primary: 'pg/0', until: 5 }, 'until', /until: unknown field/],
  ])('a bad request %j is refused naming %s', async (body, field, msg) => {
    const f = peer(false, { t: T });
    await expect(ask(f, body)).rejects.toMatchObject({ status: 400, field, message: expect.stringMatching(msg) });
    expect(f.holdsPromise(T)).toBe(false);
  });
});

describe('failsafe: a round, over the unit API', () => {
  const config = { 'primary-lease-ttl': 2, 'failsafe-mode': true };
  const TOKEN = 'shared-token-0123456789';

  it('extends the fence when every peer confirms; not when one is silent or has another token', async () => {
    const servers: UnitApi[] = [];
    const peers = new Map<string, Record<string, string>>();
    const peerUnits: Failsafe[] = [];
    for (const u of ['pg/1', 'pg/2']) {
      const f = new Failsafe();
      f.configure({ unit: u, app: 'pg', kube: kube(false), config, log });
      f.observe('pg/0');
      f.token = TOKEN;
      const api = new UnitApi({ routes: f.routes(), token: () => f.token, log });
      await api.listen('127.0.0.1', 0);
      servers.push(api);
      peerUnits.push(f);
      peers.set(u, { api: api.listening! });
    }
    try {
      const primary = new Failsafe();
      primary.token = TOKEN;
      primary.observe('pg/0');
      let deadline = Date.now() + 800;
      const fence = { read: async () => deadline, set: async (t: number) => void (deadline = t) };
      const t0 = Date.now();
      const { extension: ext, retryUntil } = await primary.onStoreUnreachable(() => ({ unit: 'pg/0', config, peers, fence, log, role: 'primary' }), new Error('aborted'));
      expect(ext).toMatchObject({ extend: true });
      expect(retryUntil).toBeUndefined();
      // When asked + TTL/2: the same margin as after a renewal.
      expect(deadline).toBeGreaterThanOrEqual(t0 + 1000);
      expect(deadline).toBeLessThanOrEqual(Date.now() + 1000);
      expect(primary.engaged()).toBe(true);
      for (const p of peerUnits) expect(p.holdsPromise()).toBe(true);

      // A unit not known to hold the lease, or not primary by its bag, asks nobody.
      expect(await primary.onStoreUnreachable(() => ({ unit: 'pg/0', config, peers, fence, log, role: 'replica' }), new Error('x'))).toEqual({});

      // One peer that does not answer at all (its agent frozen): no extension.
      await servers[1]!.close();
      const frozen = (await import('node:net')).createServer(() => undefined).listen(0, '127.0.0.1');
      await new Promise((r) => frozen.once('listening', r));
      peers.set('pg/2', { api: `127.0.0.1:${(frozen.address() as { port: number }).port}` });
      deadline = Date.now() + 800;
      const before = deadline;
      const silent = await primary.onStoreUnreachable(() => ({ unit: 'pg/0', config, peers, fence, log, role: 'primary' }), new Error('aborted'));
      // No extension; with time left the loop tries the store again at once, waiting for it until just before the deadline.
      expect(silent).toMatchObject({ extension: { extend: false, why: expect.stringMatching(/^no answer from pg\/2/) }, retryUntil: before - 50 });
      expect(deadline).toBe(before);
      expect(primary.engaged()).toBe(false);
      frozen.close();

      // A peer with another token: 401 counts as a refusal.
      const other = new UnitApi({ routes: peerUnits[1]!.routes(), token: () => 'another-token', log });
      await other.listen('127.0.0.1', 0);
      servers.push(other);
      peers.set('pg/2', { api: other.listening! });
      deadline = Date.now() + 800;
      const refused = await primary.onStoreUnreachable(() => ({ unit: 'pg/0', config, peers, fence, log, role: 'primary' }), new Error('aborted'));
      expect(refused).toMatchObject({ extension: { extend: false, why: expect.stringMatching(/pg\/2 refused: HTTP 401: Authorization header: wrong token/) } });
      // The call carried the token in a header only.
      const direct = await callUnit({ host: '127.0.0.1', port: Number(other.listening!.split(':')[1]), method: 'POST', path: '/v1/failsafe', token: TOKEN, body: { primary: 'pg/0' }, timeoutMs: 1000 });
      expect(direct.status).toBe(401);
    } finally {
      for (const s of servers) await s.close();
    }
  });
});

describe('failsafe: the watchdog starts a round a round budget before the deadline, whatever the HA loop is doing', () => {
  const config = { 'primary-lease-ttl': 2, 'failsafe-mode': true };
  const setup = () => {
    const f = new Failsafe();
    f.observe('pg/0');
    const fence = { deadline: Date.now() + roundBudgetMs(2000) + 60, set: 0 };
    const context = () => ({ unit: 'pg/0', role: 'primary', config, peers: new Map<string, Record<string, string>>(), fence: { read: async () => fence.deadline, set: async (t: number) => void (fence.set = t) }, log });
    return { f, fence, context };
  };

  it('when a store call of the loop has waited past the store timeout', async () => {
    const { f, fence, context } = setup();
    void f.track(() => new Promise(() => undefined)); // a store that never answers
    await new Promise((r) => setTimeout(r, storeTimeoutMs(2000)));
    fence.deadline = Date.now() + roundBudgetMs(2000) + 20;
    f.watch(fence.deadline, context);
    await waitFor(() => fence.set > 0, 1000);
    expect(fence.set).toBeGreaterThan(fence.deadline); // no peers: extended
    f.stop();
  });

  it('not when the store answered (nothing waiting, nothing unanswered)', async () => {
    const { f, fence, context } = setup();
    await f.track(async () => 'answered');
    f.watch(fence.deadline, context);
    await new Promise((r) => setTimeout(r, 150));
    expect(fence.set).toBe(0);
    f.stop();
  });
});

async function waitFor(ok: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !ok(); ) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('the unit API token in the passwords Secret', () => {
  it('the leader adds one to a Secret from before it existed (compare-and-swap, retried on 409); others read it', async () => {
    const { ApiException } = await import('#client-node');
    const b64 = (v: string) => Buffer.from(v).toString('base64');
    let stored: { metadata: { name: string; resourceVersion: string }; data: Record<string, string> } = { metadata: { name: 'pg-passwords', resourceVersion: '1' }, data: { operator: b64('op') } };
    let conflicts = 1;
    const fake = {
      namespace: 'ns',
      core: {
        readNamespacedSecret: async () => structuredClone(stored),
        replaceNamespacedSecret: async ({ body }: { body: typeof stored }) => {
          if (conflicts-- > 0) throw new ApiException(409, 'Conflict', {}, {});
          stored = { ...body, metadata: { ...body.metadata, resourceVersion: '2' } };
          return stored;
        },
      },
    } as unknown as Kube;
    expect(await readApiToken(fake, 'pg')).toBeUndefined();
    const token = await ensureApiToken(fake, 'pg');
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(stored.data[API_TOKEN_KEY]!, 'base64').toString()).toBe(token);
    expect(stored.data['operator']).toBe(b64('op'));
    expect(await readApiToken(fake, 'pg')).toBe(token);
    expect(await ensureApiToken(fake, 'pg')).toBe(token);
  });
});
