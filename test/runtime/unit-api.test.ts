import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// A pass-through spy on timingSafeEqual: the token check must go through it with equal-length inputs.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});
const crypto = await import('node:crypto');
const { ApiError, UnitApi, authProblem, callUnit, tokensEqual } = await import('../../agent/runtime/unit-api.js');
const { metricsRoute, events } = await import('../../agent/runtime/metrics.js');

const TOKEN = 'tok-' + 'x'.repeat(40);

describe('unit API', () => {
  const seen: unknown[] = [];
  const logged: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void logged.push(l) });
  const api = new UnitApi({
    routes: [
      { method: 'POST', path: '/v1/echo', auth: true, handle: (r) => (seen.push(r.body), { status: 200, body: { got: r.body } }) },
      { method: 'GET', path: '/v1/open', auth: false, handle: () => ({ status: 200, body: { ok: true } }) },
      metricsRoute,
      {
        method: 'POST',
        path: '/v1/strict',
        auth: true,
        handle: () => {
          throw new ApiError(400, 'primary: required', 'primary');
        },
      },
    ],
    token: () => TOKEN,
    log,
  });
  let port = 0;
  /** A request callUnit would not send: headers and body as given. */
  const raw = async (body: string, headers: Record<string, string>) => {
    const { request } = await import('node:http');
    return new Promise<{ status: number; body: unknown }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/echo', headers }, (res) => {
        let t = '';
        res.on('data', (c: Buffer) => (t += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(t) as unknown }));
      });
      req.on('error', reject);
      req.end(body);
    });
  };
  const call = (o: { method?: 'GET' | 'POST'; path: string; token?: string; body?: unknown }) => callUnit({ host: '127.0.0.1', port, method: o.method ?? 'POST', path: o.path, ...(o.token ? { token: o.token } : {}), body: o.body, timeoutMs: 2000 });

  beforeAll(async () => {
    await api.listen('127.0.0.1', 0);
    port = Number(api.listening!.split(':')[1]) || 0;
  });
  afterAll(() => api.close());

  it("GET /metrics: Prometheus's text format, unauthenticated, with what the runtime counted", async () => {
    events.inc({ event: 'update-status', outcome: 'ok' });
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('# TYPE pgcharm_events_total counter');
    expect(text).toMatch(/^pgcharm_events_total\{event="update-status",outcome="ok"\} [1-9]\d*$/m);
    const head = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('listens on the address it is given and says where', async () => {
    // Port 0 is for the test only; a unit gets its pod's `api` port.
    expect(api.listening).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('serves a route with the right token, JSON in and out', async () => {
    const r = await call({ path: '/v1/echo', token: TOKEN, body: { primary: 'pg/0' } });
    expect(r).toEqual({ status: 200, body: { got: { primary: 'pg/0' } } });
  });

  it.each([
    ['no token', undefined, /missing Authorization header/],
    ['a wrong token of the same length', TOKEN.slice(0, -1) + 'y', /wrong token/],
    ['a wrong token of another length', 'short', /wrong token/],
    ['a prefix of the token', TOKEN.slice(0, 10), /wrong token/],
    ['an empty bearer', ' ', /expected "Bearer <token>"/],
  ])('refuses %s with 401 and a JSON error, without calling the route', async (_what, token, msg) => {
    const before = seen.length;
    const r = token === ' ' ? await raw('', { Authorization: 'Bearer ' }) : await call({ path: '/v1/echo', ...(token ? { token } : {}), body: { primary: 'pg/0' } });
    expect(r.status).toBe(401);
    expect((r.body as { error: string }).error).toMatch(msg);
    expect(seen.length).toBe(before);
  });

  it('never logs the token or the header', async () => {
    await call({ path: '/v1/echo', token: TOKEN.slice(0, -1) + 'z' });
    const all = logged.join('');
    expect(all).toContain('unit API request refused');
    expect(all).not.toContain(TOKEN.slice(0, 20));
  });

  it('compares tokens in constant time: both sides hashed to 32 bytes, then timingSafeEqual', () => {
    const spy = vi.mocked(crypto.timingSafeEqual);
    spy.mockClear();
    expect(tokensEqual('short', TOKEN)).toBe(false);
    expect(tokensEqual(TOKEN, TOKEN)).toBe(true);
    expect(tokensEqual(TOKEN + 'x', TOKEN)).toBe(false);
    expect(tokensEqual('', '')).toBe(false);
    expect(spy).toHaveBeenCalledTimes(4);
    for (const [a, b] of spy.mock.calls) {
      expect((a as Buffer).length).toBe(32);
      expect((b as Buffer).length).toBe(32);
    }
    // The route check goes through the same comparison whatever the given token's length.
    spy.mockClear();
    expect(authProblem('Bearer x', TOKEN)).toMatch(/wrong token/);
    expect(spy).toHaveBeenCalledTimes(1);
    expect(authProblem('Bearer x', undefined)).toMatch(/no API token yet/);
  });

  it('answers bad requests with a JSON error naming the problem', async () => {
    expect(await call({ method: 'GET', path: '/nope' })).toEqual({ status: 404, body: { error: 'no route /nope' } });
    expect(await call({ method: 'GET', path: '/v1/echo', token: TOKEN })).toEqual({ status: 405, body: { error: 'GET not allowed on /v1/echo; use POST' } });
    expect(await call({ path: '/v1/strict', token: TOKEN, body: {} })).toEqual({ status: 400, body: { error: 'primary: required', field: 'primary' } });
    const json = (body: string, type: string) => raw(body, { Authorization: `Bearer ${TOKEN}`, 'Content-Type': type });
    const bad = await json('{"primary": ', 'application/json');
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ field: 'body', error: expect.stringMatching(/^body: not valid JSON/) });
    expect(await json('primary=pg/0', 'application/x-www-form-urlencoded')).toMatchObject({ status: 415, body: { field: 'Content-Type' } });
    expect((await json('x'.repeat(70_000), 'application/json')).status).toBe(413);
    expect(await call({ method: 'GET', path: '/v1/open' })).toEqual({ status: 200, body: { ok: true } });
  });

  it('a call to a unit that accepts connections but never answers ends at its timeout', async () => {
    const net = await import('node:net');
    const sockets: import('node:net').Socket[] = [];
    const frozen = net.createServer((s) => void sockets.push(s)).listen(0, '127.0.0.1');
    await new Promise((r) => frozen.once('listening', r));
    const t0 = Date.now();
    await expect(callUnit({ host: '127.0.0.1', port: (frozen.address() as { port: number }).port, method: 'POST', path: '/v1/echo', body: {}, timeoutMs: 150 })).rejects.toThrow(/no answer within 150 ms/);
    expect(Date.now() - t0).toBeLessThan(1000);
    for (const s of sockets) s.destroy();
    frozen.close();
  });
});
