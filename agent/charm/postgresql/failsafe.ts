import type { Logger } from 'pino';
import type { ConfigValue } from '../../runtime/charm.js';
import { isUnreachable, withStoreTimeout, type Kube } from '../../runtime/kube.js';
import { objects } from '../../runtime/names.js';
import { ApiError, callUnit, type Route } from '../../runtime/unit-api.js';
import { parseAddress } from './positions.js';

/**
 * Failsafe (Patroni's failsafe_mode): a store outage need not be a write outage. When the
 * primary's store requests get no answer (timeout or connection error, not a 409), it asks
 * every peer directly over the unit API whether it may go on. A peer confirms only if it cannot
 * reach the store either, and then promises not to take the lease for the failsafe window (one
 * lease TTL from when it answers). With every peer confirming, the primary moves its fence
 * deadline to (when it asked + the window - TTL/2); one refusal or silence and the fence stops
 * writes as without failsafe.
 *
 * A confirmation thus counts as a lease renewal on both sides: the peer may take the lease no
 * sooner than a TTL after it (as after a renewal it saw), the primary is fenced TTL/2 after it
 * asked (as after a renewal it sent). Invariant 1 holds as it does for renewals: the primary
 * needs every peer, and is fenced at least TTL/2 before any of them may be promoted. A peer
 * whose agent restarts forgets its promise, but then first has to watch the Lease for a TTL.
 *
 * The decisions are pure functions (decideExtension, mayConfirm), table-tested in
 * test/charm/failsafe.test.ts; the Failsafe class holds a unit's promise and runs a round.
 */

export const FAILSAFE_PATH = '/v1/failsafe';

/**
 * Every store request of the HA loop's observe and renew (150 ms at the default 2 s TTL): the
 * tick after the last renewal (TTL/5), this timeout, a round of peer calls (a probe's timeout at
 * most) and writing the deadline must all fit in the fence margin (TTL/2) with room to spare.
 * A store merely slow past it costs a round and an immediate retry (charm.ts, haLoop.run).
 */
export const storeTimeoutMs = (ttlMs: number): number => clamp(ttlMs * 0.075, 75, 5000);
/** A peer's own check of the store before it confirms (100 ms at 2 s; the local store answers in a few). */
export const probeTimeoutMs = (ttlMs: number): number => clamp(ttlMs / 20, 50, 5000);

const clamp = (v: number, lo: number, hi: number) => Math.round(Math.min(hi, Math.max(lo, v)));

/** A peer's answer to the primary's request, as the primary saw it. */
export type PeerAnswer = { kind: 'confirmed'; promisedMs: number } | { kind: 'refused'; reason: string } | { kind: 'silent'; error: string };

export interface ExtensionInput {
  enabled: boolean;
  /** Every other unit of the peer relation. */
  peers: readonly string[];
  answers: Readonly<Record<string, PeerAnswer | undefined>>;
  /** When this unit sent the requests (its own clock): no peer's promise began earlier. */
  sentAt: number;
  /** The failsafe window (this unit's lease TTL): what it asks its peers to promise. */
  windowMs: number;
  /** How long before the end of a promise the primary must be fenced (TTL/2, as after a renewal). */
  fenceMarginMs: number;
  /** The fence deadline in force before this round (epoch ms). */
  deadline: number;
  now: number;
}

export type Extension = { extend: true; until: number; why: string } | { extend: false; why: string };

/**
 * The primary's rule: extend only when every peer confirmed, and only to when it asked plus the
 * shortest window promised, less the fence margin (a peer's promise started after the request
 * left, so it ends later than that). With no peers, no other unit could be promoted: extend.
 */
export function decideExtension(i: ExtensionInput): Extension {
  const no = (why: string): Extension => ({ extend: false, why });
  if (!i.enabled) return no('failsafe-mode is off');
  if (i.now >= i.deadline) return no('the fence deadline already passed');
  let window = i.windowMs;
  for (const p of [...i.peers].sort()) {
    const a = i.answers[p];
    if (!a) return no(`no answer from ${p}`);
    if (a.kind === 'silent') return no(`no answer from ${p}: ${a.error}`);
    if (a.kind === 'refused') return no(`${p} refused: ${a.reason}`);
    if (!(a.promisedMs > 0)) return no(`${p} promised no time`);
    window = Math.min(window, a.promisedMs);
  }
  const until = i.sentAt + window - i.fenceMarginMs;
  if (until <= i.deadline) return no('the confirmed window ends before the current fence deadline');
  return { extend: true, until, why: i.peers.length ? `every peer (${[...i.peers].sort().join(', ')}) confirmed it cannot reach the store either` : 'no peers: no other unit can be promoted' };
}

export interface ConfirmInput {
  enabled: boolean;
  self: string;
  /** The unit asking, by its own account. */
  requester: string;
  /** The primary Lease holder as this unit last read it (undefined: never read one). */
  knownHolder: string | undefined;
  /** This unit is taking the lease right now, or sent a takeover whose outcome it never learnt. */
  takingOver: boolean;
  /** What this unit's own short store request found just now. */
  storeReachable: boolean;
  now: number;
  windowMs: number;
}

export type Confirmation = { confirm: true; until: number; why: string } | { confirm: false; why: string };

/**
 * A peer's rule: confirm only for the unit it last saw holding the lease, when it cannot reach
 * the store itself, and when no takeover of its own may land; then it promises until now + window.
 */
export function mayConfirm(i: ConfirmInput): Confirmation {
  const no = (why: string): Confirmation => ({ confirm: false, why });
  if (!i.enabled) return no('failsafe-mode is off on this unit');
  if (i.requester === i.self) return no('a unit does not confirm itself');
  if (i.knownHolder !== i.requester) return no(`this unit last saw ${i.knownHolder ?? 'no unit'} hold the primary lease, not ${i.requester}`);
  if (i.takingOver) return no('this unit is taking the primary lease (or does not know whether its takeover went through)');
  if (i.storeReachable) return no('this unit can reach the store: the primary should renew its lease there');
  return { confirm: true, until: i.now + i.windowMs, why: 'the store does not answer this unit either' };
}

/** What the HA loop tells the failsafe each tick (a peer's handler has no context of its own). */
export interface FailsafeView {
  unit: string;
  app: string;
  kube: Kube;
  config: Readonly<Record<string, ConfigValue>>;
  log: Logger;
}

/** What a round needs from the primary's side: its role, its peers' API addresses and its fence deadline. */
export interface RoundContext {
  unit: string;
  /** This unit's role by its own bag. */
  role: string | undefined;
  config: Readonly<Record<string, ConfigValue>>;
  /** Every other unit of the peer relation, with the `api` address from its bag. */
  peers: ReadonlyMap<string, Record<string, string>>;
  fence: { read(): Promise<number | undefined>; set(epochMs: number): Promise<void> };
  log: Logger;
}

/** Below this much time before the fence deadline, another store attempt cannot help. */
const RETRY_MIN_MS = 100;
/** A retry's store requests end this long before the fence deadline (writing the new one takes a few ms). */
const RETRY_MARGIN_MS = 50;

/** What a round may take: a peer's probe, the calls, writing the deadline. The watchdog starts one this long before the deadline. */
export const roundBudgetMs = (ttlMs: number): number => probeTimeoutMs(ttlMs) + 250;

const enabled = (config: Readonly<Record<string, ConfigValue>>) => config['failsafe-mode'] !== false;
const ttlOf = (config: Readonly<Record<string, ConfigValue>>) => Number(config['primary-lease-ttl']) * 1000;
const UNIT = /^[a-z][a-z0-9-]*\/[0-9]+$/;

/**
 * One unit's failsafe state: the promise it made (as a peer), the primary it last saw, the
 * token for unit-to-unit calls, and the last decision logged (logs say what changed, not every tick).
 */
export class Failsafe {
  /** The unit API token (from the passwords Secret); undefined until read. Never logged. */
  token: string | undefined;
  private view: FailsafeView | undefined;
  private knownHolder: string | undefined;
  private promisedUntil = 0;
  private promisedTo: string | undefined;
  /** The last round extended the fence and the store has not answered since. */
  private extending = false;
  /** Rounds that extended the fence since the store last answered, and the closest one (ms to spare). */
  private streak = { rounds: 0, minSpareMs: Infinity, since: 0 };
  private takingOver = false;
  private takeoverInDoubt = false;
  private storeDown = false;
  /** When this unit's own HA loop last got no answer from the store, and last got one (its clock). */
  private lastUnreachableAt = 0;
  private lastReachableAt = 0;
  private lastLogged = '';
  private lastPeerLogged = '';
  /** The HA loop's store calls under way (id -> when sent), for the watchdog. */
  private pending = new Map<number, number>();
  private calls = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private inFlight: Promise<{ extension?: Extension; retryUntil?: number }> | undefined;

  constructor(private readonly now: () => number = Date.now) {}

  /** Each HA tick, before anything else: who this unit is and how to reach the store. */
  configure(view: FailsafeView): void {
    this.view = view;
  }

  /** After every successful read of the primary Lease: whom this unit would confirm. */
  observe(holder: string | undefined): void {
    this.knownHolder = holder;
    this.takeoverInDoubt = false;
    this.lastReachableAt = this.now();
    this.extending = false;
    if (this.storeDown) {
      this.storeDown = false;
      const kept = this.streak.rounds ? { extensions: this.streak.rounds, keptWritingMs: this.now() - this.streak.since, minSpareMs: this.streak.minSpareMs } : {};
      this.view?.log.info({ failsafe: 'store reachable again', ...kept, ...(this.promisedTo ? { promisedTo: this.promisedTo, promisedUntil: iso(this.promisedUntil) } : {}) }, 'failsafe');
      this.lastLogged = '';
      this.streak = { rounds: 0, minSpareMs: Infinity, since: 0 };
    }
  }

  /**
   * The last store request of this unit's HA loop got no answer, less than one period of a loop
   * that keeps failing (TTL/5 + the store timeout) ago.
   */
  private recentlyUnreachable(ttlMs: number): boolean {
    return this.lastUnreachableAt > this.lastReachableAt && this.now() - this.lastUnreachableAt <= ttlMs / 5 + storeTimeoutMs(ttlMs);
  }

  /** One store call of the HA loop (observe, renew): noted while it waits, for the watchdog. */
  async track<T>(fn: () => Promise<T>): Promise<T> {
    const id = ++this.calls;
    this.pending.set(id, this.now());
    try {
      return await fn();
    } finally {
      this.pending.delete(id);
    }
  }

  /**
   * Arms the watchdog for a fence deadline just set (by a renewal or an extension): a round
   * budget before it, if the store still has not answered since (a call of the HA loop waiting
   * longer than the store timeout, or the last one unanswered), a round starts then, whatever
   * the HA loop is doing. The loop detects the store's silence sooner in the usual case; this
   * bounds the case where it was late (a long hook beside it, a slow Postgres connection).
   */
  watch(deadline: number, context: () => RoundContext): void {
    clearTimeout(this.watchdog);
    const ttl = ttlOf(context().config);
    this.watchdog = setTimeout(() => {
      const now = this.now();
      const oldest = Math.min(...this.pending.values());
      const silent = now - oldest >= storeTimeoutMs(ttl) || this.lastUnreachableAt > this.lastReachableAt;
      if (!silent) return;
      void this.onStoreUnreachable(context, new Error(`the store has not answered for ${Number.isFinite(oldest) ? now - oldest : '?'} ms (watchdog)`)).catch((e: unknown) =>
        context().log.warn({ err: e instanceof Error ? e.message : String(e) }, 'failsafe: watchdog round failed'),
      );
    }, Math.max(0, deadline - roundBudgetMs(ttl) - this.now()));
    this.watchdog.unref();
  }

  /** Charm shutdown: no more rounds. */
  stop(): void {
    clearTimeout(this.watchdog);
  }

  /** Until when this unit promised not to take the lease (0: never). */
  promisedUntilMs(): number {
    return this.promisedUntil;
  }

  /**
   * Whether a promise keeps this unit from taking the lease at `now` (until a TTL after it
   * answered: the primary it confirmed is fenced TTL/2 before that).
   */
  holdsPromise(now = this.now()): boolean {
    return now < this.promisedUntil;
  }

  /**
   * Writes go on by failsafe extensions: each lasts TTL/2 from when it was asked for, like a
   * renewal, so the HA loop runs at twice its pace meanwhile (a round has a store timeout to
   * wait out before it starts).
   */
  engaged(): boolean {
    return this.extending;
  }

  /** holdsPromise, said in the log once per promise: the HA loop's check before it looks for a candidate. */
  blocksTakeover(log: Logger, now = this.now()): boolean {
    if (!this.holdsPromise(now)) return false;
    const key = `hold:${this.promisedTo}:${this.promisedUntil}`;
    if (key !== this.lastPeerLogged) {
      this.lastPeerLogged = key;
      log.info({ decision: 'no action', why: `failsafe: promised ${this.promisedTo} not to take the primary lease before ${iso(this.promisedUntil)}` }, 'ha');
    }
    return true;
  }

  /**
   * Runs a takeover of the primary Lease (`fn`, the compare-and-swap) unless a promise holds;
   * no promise is given while it runs, nor after it when its outcome is unknown (a request the
   * store never answered may still land) until the next successful read of the Lease.
   */
  async takeover<T>(fn: () => Promise<T>): Promise<T | undefined> {
    if (this.holdsPromise()) return undefined;
    this.takingOver = true;
    try {
      return await fn();
    } catch (e) {
      if (isUnreachable(e)) this.takeoverInDoubt = true;
      throw e;
    } finally {
      this.takingOver = false;
    }
  }

  /** The unit API's failsafe route (authenticated: unit-to-unit only). */
  routes(): Route[] {
    return [{ method: 'POST', path: FAILSAFE_PATH, auth: true, handle: async (req) => ({ status: 200, body: await this.answer(req.body) }) }];
  }

  /** A peer's side: validate, check the store itself, decide, and keep the promise. */
  private async answer(body: unknown): Promise<Record<string, unknown>> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'body: expected a JSON object {"primary": "<unit>"}', 'body');
    const extra = Object.keys(body).filter((k) => k !== 'primary');
    if (extra.length) throw new ApiError(400, `${extra[0]}: unknown field; the only field is "primary"`, extra[0]);
    const requester = (body as { primary?: unknown }).primary;
    if (requester === undefined) throw new ApiError(400, 'primary: required (the unit asking, e.g. postgresql/0)', 'primary');
    if (typeof requester !== 'string' || !UNIT.test(requester)) throw new ApiError(400, `primary: expected a unit name like postgresql/0, got ${JSON.stringify(requester)}`, 'primary');
    const v = this.view;
    if (!v) return { confirmed: false, reason: "this unit's HA loop has not run yet" };
    const ttl = ttlOf(v.config);
    let storeReachable = true;
    if (enabled(v.config) && this.knownHolder === requester && this.recentlyUnreachable(ttl)) {
      // This unit's own HA loop found the store silent within its last period: no need to ask
      // again (the answer is needed well inside the primary's fence margin).
      storeReachable = false;
    } else if (enabled(v.config) && this.knownHolder === requester) {
      // Only when the answer could be yes: a short read of our own, like the primary's.
      try {
        await withStoreTimeout(probeTimeoutMs(ttl), () => v.kube.coordination.readNamespacedLease({ name: objects.primaryLease(v.app), namespace: v.kube.namespace }));
      } catch (e) {
        storeReachable = !isUnreachable(e);
      }
    }
    const now = this.now();
    const d = mayConfirm({ enabled: enabled(v.config), self: v.unit, requester, knownHolder: this.knownHolder, takingOver: this.takingOver || this.takeoverInDoubt, storeReachable, now, windowMs: ttl });
    const key = `${d.confirm}:${requester}:${d.why}`;
    if (key !== this.lastPeerLogged) {
      this.lastPeerLogged = key;
      if (d.confirm) v.log.warn({ failsafe: 'confirmed', primary: requester, promisedUntil: iso(d.until), why: d.why }, 'failsafe: promised not to take the primary lease');
      else v.log.info({ failsafe: 'refused', primary: requester, why: d.why }, 'failsafe: refused to confirm');
    }
    if (!d.confirm) return { confirmed: false, unit: v.unit, reason: d.why };
    this.promisedUntil = Math.max(this.promisedUntil, d.until);
    this.promisedTo = requester;
    return { confirmed: true, unit: v.unit, 'promised-ms': ttl };
  }

  /**
   * The HA loop's store requests got no answer. On the primary (it last saw itself holding the
   * lease, its bag says primary, its fence is armed): ask every peer, and move the fence
   * deadline when they all confirm. Elsewhere: nothing to do but say so once.
   */
  async onStoreUnreachable(context: () => RoundContext, err: unknown): Promise<{ extension?: Extension; retryUntil?: number }> {
    // One round at a time: the HA loop and the watchdog may both find the store silent.
    if (this.inFlight) return this.inFlight;
    this.inFlight = this.unreachable(context, err);
    try {
      return await this.inFlight;
    } finally {
      this.inFlight = undefined;
    }
  }

  private async unreachable(context: () => RoundContext, err: unknown): Promise<{ extension?: Extension; retryUntil?: number }> {
    const ctx = context();
    const role = ctx.role;
    this.lastUnreachableAt = this.now();
    if (!this.storeDown) {
      this.storeDown = true;
      ctx.log.warn({ failsafe: 'store unreachable', err: err instanceof Error ? err.message : String(err) }, 'failsafe');
    }
    if (this.knownHolder !== ctx.unit || role !== 'primary') return {};
    const deadline = await ctx.fence.read();
    if (deadline === undefined) return {};
    const ext = await this.round(ctx, deadline);
    if (ext.extend) {
      await ctx.fence.set(ext.until);
      this.watch(ext.until, context);
      this.streak = { rounds: this.streak.rounds + 1, minSpareMs: Math.min(this.streak.minSpareMs, deadline - this.now()), since: this.streak.since || this.now() };
    }
    this.extending = ext.extend;
    const key = `${ext.extend}:${ext.why}`;
    if (key !== this.lastLogged) {
      this.lastLogged = key;
      // spareMs: how long before the fence would have stopped writes the extension was in place.
      if (ext.extend) ctx.log.warn({ decision: 'failsafe', until: iso(ext.until), spareMs: deadline - this.now(), why: ext.why }, 'failsafe: writes go on without the store');
      else ctx.log.warn({ decision: 'fence', why: ext.why }, 'failsafe: no extension; unless the lease is renewed in time the fence stops writes at its deadline');
    }
    // Refused with time left: the store may answer now, if slowly (a peer reached it), so try it
    // again at once, waiting for it until just before the deadline, rather than a loop period
    // later, when the fence may have acted.
    return !ext.extend && deadline - this.now() >= RETRY_MIN_MS ? { extension: ext, retryUntil: deadline - RETRY_MARGIN_MS } : { extension: ext };
  }

  /** Asks every peer at once; each call ends by the fence deadline (an answer after it is no use). */
  private async round(ctx: RoundContext, deadline: number): Promise<Extension> {
    const ttl = ttlOf(ctx.config);
    const sentAt = this.now();
    const base = { enabled: enabled(ctx.config), peers: [...ctx.peers.keys()], sentAt, windowMs: ttl, fenceMarginMs: ttl / 2, deadline };
    if (!base.enabled || sentAt >= deadline) return decideExtension({ ...base, answers: {}, now: sentAt });
    const timeoutMs = Math.min(probeTimeoutMs(ttl) + 250, deadline - sentAt - 20);
    const answers: Record<string, PeerAnswer> = {};
    await Promise.all(
      [...ctx.peers].map(async ([unit, bag]) => {
        answers[unit] = await this.ask(ctx.unit, unit, bag['api'], timeoutMs);
      }),
    );
    return decideExtension({ ...base, answers, now: this.now() });
  }

  private async ask(self: string, unit: string, api: string | undefined, timeoutMs: number): Promise<PeerAnswer> {
    const at = parseAddress(api);
    if (!at) return { kind: 'silent', error: 'no API address in its bag' };
    if (!this.token) return { kind: 'silent', error: 'this unit has no API token yet' };
    if (timeoutMs <= 0) return { kind: 'silent', error: 'no time left before the fence deadline' };
    try {
      const r = await callUnit({ ...at, method: 'POST', path: FAILSAFE_PATH, token: this.token, body: { primary: self }, timeoutMs });
      const b = (r.body ?? {}) as { confirmed?: unknown; reason?: unknown; error?: unknown; 'promised-ms'?: unknown };
      if (r.status !== 200) return { kind: 'refused', reason: `HTTP ${r.status}: ${String(b.error ?? '')}` };
      if (b.confirmed === true && typeof b['promised-ms'] === 'number') return { kind: 'confirmed', promisedMs: b['promised-ms'] };
      return { kind: 'refused', reason: String(b.reason ?? 'no reason given') };
    } catch (e) {
      return { kind: 'silent', error: e instanceof Error ? e.message : String(e) };
    }
  }
}

const iso = (t: number) => new Date(t).toISOString();
