import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../agent/controller/apiserver/auth.js';
import { generateToken } from '../../agent/controller/apiserver/auth.js';
import { writeKubeconfig } from '../../agent/controller/kubeconfig.js';
import { connect } from '../../agent/runtime/kube.js';
import { LeaderElector, type LeaseTiming } from '../../agent/runtime/leadership.js';
import { LeaseCache, leaseLabels } from '../../agent/runtime/leases.js';
import { NS, startTestServer, type TestServer } from '../controller/helpers/server.js';

/**
 * The agents follow Leases by watch: a unit that does not hold a lease asks the store nothing,
 * and learns of an expiry from its own clock the moment it happens. Against the real local API
 * server, counting each unit's requests in its audit trail.
 */

const log = pino({ level: 'silent' });
const TIMING: LeaseTiming = { leaseMs: 2000, renewDeadlineMs: 1500, retryMs: 400 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('lease watch', () => {
  let t: TestServer;
  const audit: (AuditEntry & { at: number })[] = [];
  const users = ['a', 'b', 'c'];
  const kubes: Record<string, ReturnType<typeof connect>> = {};

  beforeAll(async () => {
    const tokens = users.map(() => generateToken());
    t = await startTestServer({
      serviceAccounts: new Map(users.map((u, i) => [tokens[i]!, `system:serviceaccount:${NS}:${u}`])),
      audit: (e) => void audit.push({ ...e, at: Date.now() }),
    });
    users.forEach((u, i) => {
      const file = path.join(t.dir, `kubeconfig-${u}`);
      writeKubeconfig(file, { server: t.server.url, token: tokens[i]!, namespace: NS, name: u, ca: t.server.ca });
      kubes[u] = connect({ kubeconfig: file, namespace: NS });
    });
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  const requestsBy = (u: string, since: number) => audit.filter((e) => e.at >= since && e.user.endsWith(`:${u}`) && e.verb !== 'watch');

  it('only the holder writes; the others make no request, and take over at expiry on their own clock', async () => {
    const caches = users.map((u) => new LeaseCache(kubes[u]!, 'app', log));
    const electors = users.map((u, i) => new LeaderElector(kubes[u]!, 'app-leader', u, TIMING, log, caches[i], leaseLabels('app')));
    try {
      for (const c of caches) c.start();
      await electors[0]!.start();
      expect(electors[0]!.isLeader()).toBe(true);
      await Promise.all(electors.slice(1).map((e) => e.start()));
      expect(electors.filter((e) => e.isLeader())).toHaveLength(1);
      await sleep(500); // the watches have listed

      // Another application in the namespace, its name sharing the prefix: its renewals reach nobody here.
      const other = new LeaderElector(kubes['c']!, 'app-x-leader', 'x', TIMING, log, undefined, leaseLabels('app-x'));
      await other.start();
      const since = Date.now();
      await sleep(3000);
      await other.stop(false);
      expect(caches.map((c) => c.get('app-x-leader'))).toEqual([undefined, undefined, undefined]);
      const leader = requestsBy('a', since);
      expect(leader.length).toBeGreaterThanOrEqual(5); // a renewal every 400 ms
      expect(new Set(leader.map((e) => `${e.verb} ${e.resource}`))).toEqual(new Set(['update leases']));
      expect(requestsBy('b', since)).toEqual([]);
      expect(requestsBy('c', since).filter((e) => e.name !== 'app-x-leader')).toEqual([]);

      // The leader stops renewing without giving the lease up (a frozen or killed unit).
      const stoppedAt = Date.now();
      await electors[0]!.stop(false);
      let tookAt = 0;
      for (const e of electors.slice(1)) e.once('elected', () => (tookAt ||= Date.now()));
      for (const deadline = Date.now() + 5000; !tookAt && Date.now() < deadline; ) await sleep(10);
      expect(tookAt, 'someone took over').toBeGreaterThan(0);
      // Expired a lease duration after the last renewal seen; taken at once (not at a retry period).
      expect(tookAt - stoppedAt).toBeLessThan(TIMING.leaseMs + 300);
      expect(tookAt - stoppedAt).toBeGreaterThan(TIMING.leaseMs - TIMING.retryMs - 100);
      expect(electors.filter((e) => e.isLeader())).toHaveLength(1);

      // A leader that stops gives the lease up: the last one takes it at once, not at its next round.
      const [holder, last] = electors[1]!.isLeader() ? [electors[1]!, electors[2]!] : [electors[2]!, electors[1]!];
      let lastAt = 0;
      last.once('elected', () => (lastAt = Date.now()));
      const releasedAt = Date.now();
      await holder.stop(true);
      for (const deadline = Date.now() + 5000; !lastAt && Date.now() < deadline; ) await sleep(10);
      expect(lastAt - releasedAt).toBeGreaterThan(0);
      expect(lastAt - releasedAt).toBeLessThan(TIMING.retryMs);
    } finally {
      await Promise.all(electors.map((e) => e.stop(false)));
      await Promise.all(caches.map((c) => c.stop()));
    }
  }, 30_000);

  it("a stale watch does not make a live holder look expired: the taker reads the store first", async () => {
    const caches = ['a', 'b'].map((u) => new LeaseCache(kubes[u]!, 'app', log));
    const [ca, cb] = caches as [LeaseCache, LeaseCache];
    const a = new LeaderElector(kubes['a']!, 'app-stale', 'a', TIMING, log, ca, leaseLabels('app'));
    try {
      ca.start();
      cb.start();
      await a.start();
      await sleep(500);
      // b stops hearing renewals (its watch is gone) while a keeps renewing.
      await cb.stop();
      const b = new LeaderElector(kubes['b']!, 'app-stale', 'b', TIMING, log, cb, leaseLabels('app'));
      await b.start();
      await sleep(TIMING.leaseMs * 2);
      expect(a.isLeader()).toBe(true);
      expect(b.isLeader()).toBe(false);
      await b.stop(false);
    } finally {
      await a.stop(false);
      await ca.stop();
    }
  }, 30_000);
});
