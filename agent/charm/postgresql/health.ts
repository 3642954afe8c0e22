import type { ApiRequest, ApiResponse, Route } from '../../runtime/unit-api.js';
import { ApiError } from '../../runtime/unit-api.js';
import { lsnValue, parseSyncSet } from './decide.js';
import { memberPositions, memberTargets, parseAddress, POSITION_SQL, readPosition, toPosition, type MemberPosition, type Position, type PositionRow } from './positions.js';
import { local, LocalConnection } from './state.js';

/** `p`, or a rejection after `ms` (a frozen Postgres never answers; the probe must). */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

/**
 * Patroni's health routes, on the unit's API (read-only and unauthenticated like Patroni's: they
 * reveal roles, not data), so that HAProxy, Kubernetes probes and scripts written for Patroni
 * work unchanged: `/primary` (`/read-write`, `/leader`, `/master`), `/replica[?lag=]`,
 * `/read-only`, `/health`, `/liveness`, `/readiness`. 200 when the answer is yes, 503 when no;
 * HEAD and OPTIONS answer the same without a body.
 *
 * healthAnswer is pure (table-tested); Health gathers the facts: the primary lease as this
 * unit's HA loop last saw it, and its Postgres's position, read at most every 250 ms however
 * often the probes come. /primary needs both, so a primary whose lease is gone but whose HA loop
 * could not say so (a frozen store) stops answering 200 when its fence stops writes.
 */

export const HEALTH_PATHS = {
  primary: ['/primary', '/read-write', '/leader', '/master'],
  replica: ['/replica'],
  'read-only': ['/read-only'],
  health: ['/health'],
  liveness: ['/liveness'],
  readiness: ['/readiness'],
} as const;
export type HealthCheck = keyof typeof HEALTH_PATHS;

export interface HealthFacts {
  unit: string;
  /** This unit holds the primary lease (as its HA loop last saw it, not expired). */
  holdsLease: boolean;
  /** Its Postgres now; undefined when it did not answer. */
  pg?: Pick<Position, 'writable' | 'streaming' | 'timeline' | 'lsn'> | undefined;
  /** A standby's distance behind the primary's WAL position, when known. */
  lagBytes?: number | undefined;
  /** Since this unit's HA loop last completed a cycle (undefined: never). */
  haAgeMs: number | undefined;
  /** How old that may be before the unit is not live: a few of its periods. */
  liveWithinMs: number;
}

const SIZE = /^(\d+)\s*(B|kB|KB|MB|GB|TB)?$/;
const MULT: Record<string, number> = { B: 1, kB: 1024, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

/** `?lag=` as Patroni takes it: bytes, or a size with a unit (16MB, 1GB). */
export function parseLag(v: string | null): number | undefined {
  if (v === null) return undefined;
  const m = SIZE.exec(v.trim());
  if (!m) throw new ApiError(400, `lag: expected bytes or a size like 16MB, got ${JSON.stringify(v)}`, 'lag');
  return Number(m[1]) * MULT[m[2] ?? 'B']!;
}

/** The answer to one check, given the facts (`lagLimit`: /replica?lag=). */
export function healthAnswer(check: HealthCheck, f: HealthFacts, lagLimit?: number): ApiResponse {
  const pg = f.pg;
  const primary = f.holdsLease && pg?.writable === true;
  const replica = !f.holdsLease && pg !== undefined && !pg.writable && pg.streaming;
  const role = primary ? 'primary' : pg && !pg.writable ? 'replica' : pg?.writable ? 'demoted' : 'unknown';
  const body: Record<string, unknown> = {
    unit: f.unit,
    state: pg ? 'running' : 'stopped',
    role,
    ...(pg ? { timeline: pg.timeline, lsn: pg.lsn } : {}),
    ...(f.lagBytes !== undefined && !primary ? { lag: f.lagBytes } : {}),
  };
  let ok: boolean;
  switch (check) {
    case 'primary':
      ok = primary;
      break;
    case 'replica':
      ok = replica && (lagLimit === undefined || (f.lagBytes !== undefined && f.lagBytes <= lagLimit));
      if (replica && lagLimit !== undefined && !ok) body['why'] = f.lagBytes === undefined ? 'lag unknown (the primary did not answer)' : `lag ${f.lagBytes} > ${lagLimit}`;
      break;
    case 'read-only':
      ok = primary || (pg !== undefined && !pg.writable);
      break;
    case 'health':
      ok = pg !== undefined;
      break;
    case 'liveness':
      ok = f.haAgeMs !== undefined && f.haAgeMs <= f.liveWithinMs;
      body['ha_loop_age_ms'] = f.haAgeMs ?? null;
      break;
    case 'readiness':
      ok = primary || replica;
      break;
  }
  return { status: ok ? 200 : 503, body };
}

/**
 * GET /cluster, in the shape of Patroni's: every member with its role (`leader`: the lease
 * holder; `sync_standby` and `replica`; `demoted`: writable without the lease, being fenced),
 * its state and position as its Postgres reports them now, and where to reach it and its API.
 */
export function clusterAnswer(o: { app: string; holder: string | undefined; bags: Readonly<Record<string, Readonly<Record<string, string>>>>; live: Readonly<Record<string, MemberPosition>> }): Record<string, unknown> {
  const sync = parseSyncSet(o.holder ? o.bags[o.holder] : undefined).members;
  const members = Object.keys(o.bags)
    .sort()
    .map((name) => {
      const bag = o.bags[name]!;
      const at = parseAddress(bag['address']);
      const p = o.live[name];
      // What its Postgres says now; the bag (as this unit's HA loop last read it) only for a
      // member that did not answer, and never `primary` for one without the lease: that is a
      // failed primary, down (a standby when it comes back).
      const recorded = bag['role'] === 'primary' ? 'unknown' : (bag['role'] ?? 'starting');
      const role =
        p?.state === 'primary' ? (name === o.holder ? 'leader' : 'demoted') : p?.state === 'replica' ? (sync.includes(name) ? 'sync_standby' : 'replica') : name === o.holder ? 'leader' : recorded;
      const state = !p || p.state === 'unreachable' ? 'stopped' : p.state === 'replica' ? (p.streaming ? 'streaming' : 'running') : 'running';
      return {
        name,
        role,
        state,
        ...(at ? { host: at.host, port: at.port } : {}),
        ...(bag['api'] ? { api_url: `http://${bag['api']}` } : {}),
        ...(p?.timeline !== null && p?.timeline !== undefined ? { timeline: p.timeline } : {}),
        ...(p?.lsn ? { lsn: p.lsn } : {}),
        ...(role !== 'leader' && p?.lagBytes !== null && p?.lagBytes !== undefined ? { lag: p.lagBytes } : {}),
      };
    });
  return { scope: o.app, members };
}

/** What the HA loop tells the health routes at each cycle. */
export interface HealthView {
  unit: string;
  app: string;
  holder: string | undefined;
  /** Every unit's bag, this one's included. */
  bags: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /**
   * The lease's holder now, as this process's Lease watch (and its own writes) keep it: a
   * promotion is seen at once, not at the HA loop's next cycle.
   */
  leaseHolder: () => string | undefined;
  /** Until when that holds without another renewal (epoch ms): the fence deadline in force. */
  leaseValidUntil: () => number;
  /** This unit's Postgres and the primary's, and the password to ask them with. */
  me: { host: string; port: number } | undefined;
  /** The WAL position the primary published with its last lease renewal (as the Lease watch saw it, now). */
  primaryLsn: () => string | undefined;
  primary: { host: string; port: number } | undefined;
  password: string | undefined;
  /** The HA loop's period now. */
  periodMs: number;
}

/**
 * How long one reading of Postgres answers the probes. Short: a primary fenced at TTL/2 after its
 * last renewal must stop answering /primary well before another unit may take the lease (a TTL
 * after it), or two units could answer 200 at once.
 */
const CACHE_MS = 250;

/**
 * Connections to the members for GET /cluster, kept while it is being asked (a dashboard asks
 * every second: a SCRAM login and a backend fork per member each time would cost more than the
 * query), closed after 10 s without a request.
 */
class MemberConnections {
  private readonly conns = new Map<string, { c: LocalConnection; used: number }>();
  private sweeper: NodeJS.Timeout | undefined;

  async read(t: { host: string; port: number }, password: string): Promise<Position> {
    const key = `${t.host}:${t.port}`;
    let e = this.conns.get(key);
    if (!e) this.conns.set(key, (e = { c: new LocalConnection('pgcharm-health'), used: 0 }));
    e.used = Date.now();
    this.sweeper ??= setInterval(() => this.sweep(), 5000).unref();
    return toPosition((await withTimeout(e.c.query<PositionRow>(t, password, POSITION_SQL), 1000))[0]!);
  }

  private sweep(): void {
    for (const [k, e] of this.conns) {
      if (Date.now() - e.used < 10_000) continue;
      e.c.drop();
      this.conns.delete(k);
    }
    if (!this.conns.size) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }
}

export class Health {
  private readonly members = new MemberConnections();
  private view: HealthView | undefined;
  private cycleAt: number | undefined;
  private cached: { at: number; facts: Promise<Omit<HealthFacts, 'holdsLease' | 'haAgeMs' | 'liveWithinMs'>> } | undefined;
  private clusterCached: { at: number; answer: Promise<Record<string, unknown>> } | undefined;

  constructor(private readonly now: () => number = Date.now) {}

  /** What the HA loop last told (undefined before its first cycle). */
  viewed(): HealthView | undefined {
    return this.view;
  }

  /** Since the HA loop's last completed cycle (ms). */
  cycleAge(): number | undefined {
    return this.cycleAt === undefined ? undefined : this.now() - this.cycleAt;
  }

  /** Each completed HA cycle. */
  observe(view: HealthView): void {
    this.view = view;
    this.cycleAt = this.now();
  }

  private async gather(v: HealthView): Promise<Omit<HealthFacts, 'holdsLease' | 'haAgeMs' | 'liveWithinMs'>> {
    // This unit's Postgres over the HA loop's kept connection (a login per probe would cost
    // Postgres a fork each time); the primary's position as its last renewal published it in the
    // lease (Patroni compares with the leader's optime in the DCS the same way), and asked only
    // when the lease carries none.
    const pw = v.password;
    const mine = v.me && pw ? withTimeout(local.query<PositionRow>(v.me, pw, POSITION_SQL), 1000).then((r) => toPosition(r[0]!)).catch(() => undefined) : Promise.resolve(undefined);
    const published = v.primaryLsn();
    const askPrimary = !published && v.primary && v.primary !== v.me && pw ? readPosition(v.primary, pw, 1000).catch(() => undefined) : Promise.resolve(undefined);
    const [pg, head] = await Promise.all([mine, askPrimary]);
    const headLsn = published ?? (head?.writable ? head.lsn : undefined);
    const lagBytes = pg && !pg.writable && headLsn ? Math.max(0, Number(lsnValue(headLsn) - lsnValue(pg.have))) : undefined;
    return { unit: v.unit, pg, ...(lagBytes !== undefined ? { lagBytes } : {}) };
  }

  /** This unit holds the lease now, and not past the fence deadline in force. */
  private holds(v: HealthView): boolean {
    return v.leaseHolder() === v.unit && this.now() < v.leaseValidUntil();
  }

  async facts(): Promise<HealthFacts> {
    const v = this.view;
    const liveWithinMs = Math.max(3 * (v?.periodMs ?? 0), 5000);
    const haAgeMs = this.cycleAge();
    if (!v) return { unit: '', holdsLease: false, haAgeMs, liveWithinMs };
    if (!this.cached || this.now() - this.cached.at > CACHE_MS) this.cached = { at: this.now(), facts: this.gather(v) };
    const f = await this.cached.facts;
    // The lease is looked at now, not as the cached reading saw it.
    return { ...f, holdsLease: this.holds(v), haAgeMs, liveWithinMs };
  }

  private cluster(): Promise<Record<string, unknown>> {
    const v = this.view;
    if (!v) throw new ApiError(503, "this unit's HA loop has not run yet");
    if (!this.clusterCached || this.now() - this.clusterCached.at > CACHE_MS) {
      const live = v.password ? memberPositions(memberTargets(v.bags), v.password, (t, pw) => this.members.read(t, pw)) : Promise.resolve({});
      this.clusterCached = { at: this.now(), answer: live.then((l) => clusterAnswer({ app: v.app, holder: v.holder, bags: v.bags, live: l })) };
    }
    return this.clusterCached.answer;
  }

  routes(): Route[] {
    const cluster: Route = { method: 'GET', path: '/cluster', auth: false, handle: async () => ({ status: 200, body: await this.cluster() }) };
    return [cluster, ...(Object.entries(HEALTH_PATHS) as [HealthCheck, readonly string[]][]).flatMap(([check, paths]) =>
      paths.map(
        (path): Route => ({
          method: 'GET',
          path,
          auth: false,
          handle: async (req: ApiRequest) => {
            const lag = check === 'replica' ? parseLag(req.query.get('lag')) : undefined;
            return healthAnswer(check, await this.facts(), lag);
          },
        }),
      ),
    )];
  }
}

export const health = new Health();
