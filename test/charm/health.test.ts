import { describe, expect, it } from 'vitest';
import { healthAnswer, parseLag, type HealthCheck, type HealthFacts } from '../../agent/charm/postgresql/health.js';
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
