import { describe, expect, it } from 'vitest';
import { clusterAnswer, Health, healthAnswer, parseLag, type HealthCheck, type HealthFacts } from '../../agent/charm/postgresql/health.js';
import { ApiError } from '../../agent/runtime/unit-api.js';

const running = (writable: boolean, streaming = !writable) => ({ writable, streaming, timeline: 2, lsn: '0/3000060' });
const base = { unit: 'pg/0', haAgeMs: 100, liveWithinMs: 6000 };
const PRIMARY: HealthFacts = { ...base, holdsLease: true, pg: running(true) };
const REPLICA: HealthFacts = { ...base, holdsLease: false, pg: running(false), lagBytes: 4096 };
const CHECKS: HealthCheck[] = ['primary', 'replica', 'read-only', 'health', 'liveness', 'readiness'];

describe("Patroni's health routes: the answers", () => {
  it.each<[string, HealthFacts, Record<HealthCheck, number>]>([
    ['the primary (lease and writable)', PRIMARY, { primary: 200, replica: 503, 'read-only': 200, health: 200, liveness: 200, readiness: 200 }],
    ['a streaming standby', REPLICA, { primary: 503, replica: 200, 'read-only': 200, health: 200, liveness: 200, readiness: 200 }],
    ['a standby not streaming: reads, but not a replica to send traffic to', { ...REPLICA, pg: running(false, false) }, { primary: 503, replica: 503, 'read-only': 200, health: 200, liveness: 200, readiness: 503 }],
    ['writable without the lease (a lost lease, fencing under way): never /primary', { ...PRIMARY, holdsLease: false }, { primary: 503, replica: 503, 'read-only': 503, health: 200, liveness: 200, readiness: 503 }],
    ['the lease but Postgres still in recovery (being promoted)', { ...PRIMARY, pg: running(false, false) }, { primary: 503, replica: 503, 'read-only': 200, health: 200, liveness: 200, readiness: 503 }],
    ['Postgres down', { ...REPLICA, pg: undefined }, { primary: 503, replica: 503, 'read-only': 503, health: 503, liveness: 200, readiness: 503 }],
    ['the HA loop stalled (frozen or stuck agent)', { ...REPLICA, haAgeMs: 6001 }, { primary: 503, replica: 200, 'read-only': 200, health: 200, liveness: 503, readiness: 200 }],
    ['the HA loop never ran', { ...REPLICA, haAgeMs: undefined }, { primary: 503, replica: 200, 'read-only': 200, health: 200, liveness: 503, readiness: 200 }],
  ])('%s', (_why, facts, want) => {
    expect(Object.fromEntries(CHECKS.map((c) => [c, healthAnswer(c, facts).status]))).toEqual(want);
  });

  it('?lag= filters replicas by their distance behind the primary; an unknown lag is not good enough', () => {
    expect(healthAnswer('replica', REPLICA, 4096).status).toBe(200);
    expect(healthAnswer('replica', REPLICA, 4095)).toMatchObject({ status: 503, body: { why: 'lag 4096 > 4095' } });
    expect(healthAnswer('replica', { ...REPLICA, lagBytes: undefined }, 1 << 30)).toMatchObject({ status: 503, body: { why: 'lag unknown (the primary did not answer)' } });
    expect(healthAnswer('primary', PRIMARY, 0).status).toBe(200);
  });

  it('the body says who and what, as Patroni does', () => {
    expect(healthAnswer('primary', PRIMARY).body).toEqual({ unit: 'pg/0', state: 'running', role: 'primary', timeline: 2, lsn: '0/3000060' });
    expect(healthAnswer('replica', REPLICA).body).toEqual({ unit: 'pg/0', state: 'running', role: 'replica', timeline: 2, lsn: '0/3000060', lag: 4096 });
    expect(healthAnswer('health', { ...REPLICA, pg: undefined, lagBytes: undefined }).body).toEqual({ unit: 'pg/0', state: 'stopped', role: 'unknown' });
    expect(healthAnswer('liveness', PRIMARY).body).toMatchObject({ ha_loop_age_ms: 100 });
  });

  it.each([
    ['0', 0],
    ['1048576', 1048576],
    ['16MB', 16 * 1024 * 1024],
    ['1 GB', 1024 ** 3],
    ['64kB', 65536],
  ])('lag=%s is %d bytes', (v, n) => {
    expect(parseLag(v)).toBe(n);
  });

  it.each(['', 'lots', '-1', '1.5MB', '16 MiB'])('lag=%j is refused, naming the field', (v) => {
    expect(() => parseLag(v)).toThrow(ApiError);
    expect(() => parseLag(v)).toThrow(/^lag: expected bytes or a size like 16MB/);
  });
  it('no lag parameter: no filter', () => {
    expect(parseLag(null)).toBeUndefined();
  });
});

describe("GET /cluster, in Patroni's shape", () => {
  const bags = {
    'pg/0': { role: 'primary', address: '10.0.0.1:5432', api: '10.0.0.1:8008', 'synchronous-standbys': 'pg/1', 'synchronous-count': '1' },
    'pg/1': { role: 'replica', address: '10.0.0.2:5432', api: '10.0.0.2:8008' },
    'pg/2': { role: 'replica', address: '10.0.0.3:5432' },
    'pg/3': {},
  };
  it('the leader, the synchronous standby, a replica behind, and a unit not started yet', () => {
    const out = clusterAnswer({
      app: 'pg',
      holder: 'pg/0',
      bags,
      live: {
        'pg/0': { state: 'primary', timeline: 3, lsn: '0/5000000', lagBytes: 0, streaming: false },
        'pg/1': { state: 'replica', timeline: 3, lsn: '0/5000000', lagBytes: 0, streaming: true },
        'pg/2': { state: 'replica', timeline: 3, lsn: '0/4000000', lagBytes: 16777216, streaming: false },
        'pg/3': { state: 'unreachable', timeline: null, lsn: null, lagBytes: null, streaming: false },
      },
    });
    expect(out).toEqual({
      scope: 'pg',
      members: [
        { name: 'pg/0', role: 'leader', state: 'running', host: '10.0.0.1', port: 5432, api_url: 'http://10.0.0.1:8008', timeline: 3, lsn: '0/5000000' },
        { name: 'pg/1', role: 'sync_standby', state: 'streaming', host: '10.0.0.2', port: 5432, api_url: 'http://10.0.0.2:8008', timeline: 3, lsn: '0/5000000', lag: 0 },
        { name: 'pg/2', role: 'replica', state: 'running', host: '10.0.0.3', port: 5432, timeline: 3, lsn: '0/4000000', lag: 16777216 },
        { name: 'pg/3', role: 'starting', state: 'stopped' },
      ],
    });
  });
  it("roles come from each Postgres now, not from a bag read a moment ago (a switchover just happened); a writable member without the lease is 'demoted'", () => {
    const out = clusterAnswer({
      app: 'pg',
      holder: 'pg/1',
      bags: { 'pg/0': { role: 'primary' }, 'pg/1': { role: 'replica' }, 'pg/2': { role: 'primary' }, 'pg/3': { role: 'replica' }, 'pg/4': { role: 'primary' } },
      live: {
        'pg/0': { state: 'replica', timeline: 4, lsn: '0/6000000', lagBytes: 0, streaming: true },
        'pg/1': { state: 'primary', timeline: 4, lsn: '0/6000000', lagBytes: 0, streaming: false },
        'pg/2': { state: 'primary', timeline: 3, lsn: '0/5000000', lagBytes: null, streaming: false },
      },
    });
    expect((out['members'] as { name: string; role: string; state: string }[]).map((x) => [x.name, x.role, x.state])).toEqual([
      ['pg/0', 'replica', 'streaming'],
      ['pg/1', 'leader', 'running'],
      ['pg/2', 'demoted', 'running'],
      ['pg/3', 'replica', 'stopped'],
      // a failed primary that did not answer: not shown as a primary
      ['pg/4', 'unknown', 'stopped'],
    ]);
  });
});

describe('the facts behind the answers', () => {
  it('the lease seen by the last HA cycle counts only until the fence deadline in force: a loop stuck behind a frozen store cannot keep a unit primary', async () => {
    let now = 1_000_000;
    let deadline = now + 1000;
    const h = new Health(() => now);
    h.observe({ unit: 'pg/0', app: 'pg', holder: 'pg/0', bags: {}, leaseHolder: () => 'pg/0', leaseValidUntil: () => deadline, me: undefined, primaryLsn: () => undefined, primary: undefined, password: undefined, periodMs: 400 });
    expect((await h.facts()).holdsLease).toBe(true);
    now += 999;
    expect((await h.facts()).holdsLease).toBe(true);
    now += 1;
    expect((await h.facts()).holdsLease).toBe(false);
    // A failsafe confirmation (or a renewal) moves the deadline: held again.
    deadline = now + 1000;
    expect((await h.facts()).holdsLease).toBe(true);
    expect((await h.facts()).liveWithinMs).toBe(5000);
  });
});
