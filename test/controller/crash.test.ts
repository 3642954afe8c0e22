import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '#client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { generateToken } from '../../agent/controller/apiserver/auth.js';
import { killMarked } from '../helpers/procs.js';
import { clients, NS, tempDir } from './helpers/server.js';
import { checkBuilt, spawnServer, type ServerProcess } from './helpers/process.js';

/**
 * The controller's store survives kill -9: the API server runs as its own process, several
 * clients write concurrently (creates and compare-and-swap updates of a few hundred
 * objects, some of them contended), the server is SIGKILLed mid-burst and started again on
 * the same directory. Every write that got a success answer must be there, and the
 * resourceVersion must go on increasing. Small journal segments make compactions (snapshot
 * writes and segment deletions) happen during the burst, so kills land in them too.
 */

const MARK = 'PGCHARM_CRASH_TEST';
const dirs: string[] = [];
const markers: string[] = [];

afterEach(() => {
  for (const m of markers.splice(0)) killMarked(MARK, m);
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

interface Ledger {
  /** Per object: the highest acknowledged `seq`, the highest attempted, and the acknowledged resourceVersion. */
  acked: Map<string, { seq: number; rv: number }>;
  attempted: Map<string, number>;
  /** Acknowledged increments of each shared counter, and attempts. */
  counterAcks: Map<string, number>;
  counterTries: Map<string, number>;
  maxAckedRv: number;
  acks: number;
  /** Called after each acknowledgement is recorded (the test kills the server from here). */
  onAck(): void;
}

const isTransport = (e: unknown) => !(e instanceof k8s.ApiException) || e.code >= 500;

async function client(core: k8s.CoreV1Api, prefix: string, objects: number, ledger: Ledger, stop: () => boolean): Promise<void> {
  const ack = (name: string, seq: number, rv: string | undefined) => {
    const n = Number(rv);
    ledger.acked.set(name, { seq, rv: n });
    ledger.maxAckedRv = Math.max(ledger.maxAckedRv, n);
    ledger.acks++;
    ledger.onAck();
  };
  for (let i = 0; i < objects && !stop(); i++) {
    const name = `${prefix}-${i}`;
    ledger.attempted.set(name, 0);
    try {
      const c = await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name, labels: { client: prefix } }, data: { seq: '0' } } });
      ack(name, 0, c.metadata?.resourceVersion);
      let cur = c;
      for (let seq = 1; seq <= 2 && !stop(); seq++) {
        ledger.attempted.set(name, seq);
        cur = await core.replaceNamespacedConfigMap({ name, namespace: NS, body: { ...cur, data: { seq: String(seq) } } });
        ack(name, seq, cur.metadata?.resourceVersion);
      }
      // A contended counter: read, increment, compare-and-swap; a 409 means someone else won.
      const counter = `shared-${i % 3}`;
      for (let attempt = 0; attempt < 20 && !stop(); attempt++) {
        const s = await core.readNamespacedConfigMap({ name: counter, namespace: NS });
        ledger.counterTries.set(counter, (ledger.counterTries.get(counter) ?? 0) + 1);
        try {
          const r = await core.replaceNamespacedConfigMap({ name: counter, namespace: NS, body: { ...s, data: { n: String(Number(s.data!['n']) + 1) } } });
          ledger.counterAcks.set(counter, (ledger.counterAcks.get(counter) ?? 0) + 1);
          ledger.maxAckedRv = Math.max(ledger.maxAckedRv, Number(r.metadata?.resourceVersion));
          ledger.acks++;
          ledger.onAck();
          break;
        } catch (e) {
          if (!(e instanceof k8s.ApiException && e.code === 409)) throw e;
          ledger.counterTries.set(counter, (ledger.counterTries.get(counter) ?? 0) - 1); // a refused CAS wrote nothing
        }
      }
    } catch (e) {
      if (isTransport(e)) return; // the server died under us: this write's fate is unknown
      throw e;
    }
  }
}

describe('controller restart', () => {
  it('keeps every acknowledged write through kill -9 mid-burst', async () => {
    checkBuilt();
    const dir = tempDir('crash');
    dirs.push(dir);
    const marker = randomUUID();
    markers.push(marker);
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, generateToken(), { mode: 0o600 });
    const kubeconfig = path.join(dir, 'kubeconfig');
    const args = ['--dir', path.join(dir, 'store'), '--port', '0', '--token-file', tokenFile, '--compact-bytes', '16384', '--kubeconfig', kubeconfig, '--namespace', NS];
    const env = { [MARK]: marker };

    let server: ServerProcess = await spawnServer(args, env);
    let { core } = clients(kubeconfig);
    for (let i = 0; i < 3; i++) await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: `shared-${i}` }, data: { n: '0' } } });

    const ledger: Ledger = {
      acked: new Map(),
      attempted: new Map(),
      counterAcks: new Map(),
      counterTries: new Map(),
      maxAckedRv: 0,
      acks: 0,
      onAck: () => {},
    };
    try {
      // Two rounds, so the second recovers a store that was itself recovered.
      for (const round of [1, 2]) {
        // Kill mid-burst, the instant an acknowledgement arrives: anything acknowledged before it was on disk would be lost.
        const target = ledger.acks + 400 + Math.floor(Math.random() * 300);
        let killed = false;
        ledger.onAck = () => {
          if (killed || ledger.acks < target) return;
          killed = true;
          server.proc.kill('SIGKILL');
        };
        const CLIENTS = 6;
        const PER_CLIENT = 60; // 360 objects per round, each created and updated twice, plus 360 counter increments
        await Promise.all(
          // Each client its own connection pool, as separate agents would have.
          Array.from({ length: CLIENTS }, (_, id) => client(clients(kubeconfig).core, `r${round}-c${id}`, PER_CLIENT, ledger, () => killed)),
        );
        expect(killed, `round ${round} ended before the kill`).toBe(true);
        await server.exited;

        server = await spawnServer(args, env);
        ({ core } = clients(kubeconfig));
        const list = await core.listNamespacedConfigMap({ namespace: NS });
        const byName = new Map(list.items.map((o) => [o.metadata!.name!, o]));
        expect(Number(list.metadata?.resourceVersion)).toBeGreaterThanOrEqual(ledger.maxAckedRv);
        for (const [name, a] of ledger.acked) {
          const o = byName.get(name);
          expect(o, `acknowledged ${name} is missing`).toBeDefined();
          const seq = Number(o!.data!['seq']);
          // At least what was acknowledged; at most the one write in flight when the server died.
          expect(seq, name).toBeGreaterThanOrEqual(a.seq);
          expect(seq, name).toBeLessThanOrEqual(ledger.attempted.get(name)!);
          expect(Number(o!.metadata!.resourceVersion), name).toBeGreaterThanOrEqual(a.rv);
        }
        for (const [counter, n] of ledger.counterAcks) {
          const v = Number(byName.get(counter)!.data!['n']);
          expect(v, counter).toBeGreaterThanOrEqual(n);
          expect(v, counter).toBeLessThanOrEqual(ledger.counterTries.get(counter)!);
        }
        // The resourceVersion goes on from where it was.
        const after = await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: `after-round-${round}` } } });
        const newest = Math.max(ledger.maxAckedRv, ...list.items.map((o) => Number(o.metadata!.resourceVersion)));
        expect(Number(after.metadata?.resourceVersion)).toBeGreaterThan(newest);
        ledger.maxAckedRv = Number(after.metadata?.resourceVersion);
      }
      expect(ledger.acked.size).toBeGreaterThan(200);
    } finally {
      server.proc.kill('SIGTERM');
      await server.exited;
    }
  });

  it('refuses a second server on the same directory', async () => {
    checkBuilt();
    const dir = tempDir('lock');
    dirs.push(dir);
    const marker = randomUUID();
    markers.push(marker);
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, generateToken(), { mode: 0o600 });
    const args = ['--dir', path.join(dir, 'store'), '--port', '0', '--token-file', tokenFile];
    const first = await spawnServer(args, { [MARK]: marker });
    try {
      await expect(spawnServer(args, { [MARK]: marker })).rejects.toThrow(new RegExp(`in use by process ${first.proc.pid}`));
    } finally {
      first.proc.kill('SIGTERM');
      expect(await first.exited).toBe(0);
    }
  });
});
