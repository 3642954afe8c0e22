import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '#client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killMarked, waitFor } from '../helpers/procs.js';
import { NS, startTestServer, type TestServer } from './helpers/server.js';

/**
 * kubectl, unchanged, through the generated kubeconfig: get, describe and get -w of
 * ConfigMaps and Leases (server-side printed Tables, events found by field selectors, watches).
 */

const run = promisify(execFile);
const MARK = 'PGCHARM_KUBECTL_TEST';
const marker = randomUUID();
const children: ChildProcess[] = [];
let t: TestServer;
let env: NodeJS.ProcessEnv;
let kubectlPath: string;

/** $PGCHARM_KUBECTL (to try other kubectl versions), else kubectl from /usr/bin or PATH. */
function findKubectl(): string {
  const chosen = process.env['PGCHARM_KUBECTL'];
  if (chosen) return chosen;
  for (const dir of ['/usr/bin', ...(process.env['PATH'] ?? '').split(':')]) {
    const p = path.join(dir, 'kubectl');
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  throw new Error('kubectl is not installed: apt-get install -y kubernetes-client (Debian) provides it');
}

async function kubectl(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run(kubectlPath, ['--request-timeout', '15s', ...args], { env, timeout: 30_000 });
    return stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`kubectl ${args.join(' ')} failed: ${err.stderr || err.message}`);
  }
}

/** Starts `kubectl get -w`; returns its growing output lines. */
function watch(...args: string[]): { lines: () => string[]; proc: ChildProcess } {
  const proc = spawn(kubectlPath, ['get', '-w', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return {
    proc,
    lines: () => {
      if (err.trim()) throw new Error(`kubectl get -w ${args.join(' ')}: ${err}`);
      return out.split('\n').filter((l) => l.trim() !== '');
    },
  };
}

const cells = (line: string) => line.trim().split(/\s{2,}|\s+/);
const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

beforeAll(async () => {
  kubectlPath = findKubectl();
  t = await startTestServer();
  const home = path.join(t.dir, 'home');
  fs.mkdirSync(home);
  // A private HOME keeps kubectl's discovery cache out of the user's ~/.kube.
  env = { ...process.env, KUBECONFIG: t.kubeconfig, HOME: home, KUBECACHEDIR: path.join(home, 'cache'), [MARK]: marker };
  await t.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'app-config', labels: { app: 'pg' } }, data: { a: '1', b: '2' } } });
  await t.coordination.createNamespacedLease({
    namespace: NS,
    body: { metadata: { name: 'app-leader' }, spec: { holderIdentity: 'unit-0', leaseDurationSeconds: 15, renewTime: new k8s.V1MicroTime() } },
  });
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  killMarked(MARK, marker);
  await t?.cleanup();
});

describe('kubectl', () => {
  it('gets ConfigMaps and Leases as tables', async () => {
    const cms = (await kubectl('get', 'configmaps')).trim().split('\n');
    expect(cells(cms[0]!)).toEqual(['NAME', 'DATA', 'AGE']);
    expect(cells(cms[1]!).slice(0, 2)).toEqual(['app-config', '2']);
    const all = (await kubectl('get', 'cm', '-A', '--show-labels')).trim().split('\n');
    expect(cells(all[0]!)).toEqual(['NAMESPACE', 'NAME', 'DATA', 'AGE', 'LABELS']);
    expect(all.some((l) => cells(l)[0] === NS && cells(l)[1] === 'app-config' && l.includes('app=pg'))).toBe(true);
    const leases = (await kubectl('get', 'leases')).trim().split('\n');
    expect(cells(leases[0]!)).toEqual(['NAME', 'HOLDER', 'AGE']);
    expect(cells(leases[1]!).slice(0, 2)).toEqual(['app-leader', 'unit-0']);
    const json = JSON.parse(await kubectl('get', 'cm', 'app-config', '-o', 'json'));
    expect(json).toMatchObject({ kind: 'ConfigMap', data: { a: '1', b: '2' }, metadata: { namespace: NS } });
    expect((await kubectl('get', 'cm', '-l', 'app=pg', '-o', 'name')).trim()).toBe('configmap/app-config');
  });

  it('describes a ConfigMap with its events, and a Lease', async () => {
    const cm = await t.core.readNamespacedConfigMap({ name: 'app-config', namespace: NS });
    await t.core.createNamespacedEvent({
      namespace: NS,
      body: {
        metadata: { name: 'app-config.1' },
        involvedObject: { kind: 'ConfigMap', name: 'app-config', namespace: NS, uid: cm.metadata!.uid!, apiVersion: 'v1' },
        reason: 'Rendered',
        message: 'config rendered for unit 0',
        type: 'Normal',
        count: 1,
        firstTimestamp: new Date(),
        lastTimestamp: new Date(),
        source: { component: 'pgcharm' },
      },
    });
    const d = await kubectl('describe', 'configmap', 'app-config');
    expect(d).toMatch(/^Name:\s+app-config$/m);
    expect(d).toMatch(/^Namespace:\s+pgcharm-test$/m);
    expect(d).toMatch(/^Labels:\s+app=pg$/m);
    expect(d).toMatch(/^a:\n-+\n1$/m);
    expect(d).toMatch(/Normal\s+Rendered\s+\S+\s+pgcharm\s+config rendered for unit 0/);
    const l = await kubectl('describe', 'lease', 'app-leader');
    expect(l).toMatch(/^Name:\s+app-leader$/m);
    expect(l).toMatch(/Holder Identity:\s+unit-0/);
    expect(l).toMatch(/Lease Duration Seconds:\s+15/);
  });

  it('watches ConfigMaps: a change shows up as a new line', async () => {
    const w = watch('configmaps');
    await waitFor('the initial table', () => w.lines().some((l) => cells(l)[0] === 'app-config'), 20_000);
    await t.core.patchNamespacedConfigMap({ name: 'app-config', namespace: NS, body: { data: { c: '3' } } }, merge);
    await waitFor('the modified row', () => w.lines().some((l) => cells(l)[0] === 'app-config' && cells(l)[1] === '3'), 20_000);
    await t.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'late-arrival' } } });
    await waitFor('the new row', () => w.lines().some((l) => cells(l)[0] === 'late-arrival'), 20_000);
    w.proc.kill('SIGTERM');
  });

  it('watches Leases with event types', async () => {
    const w = watch('leases', '--output-watch-events');
    await waitFor('the initial row', () => w.lines().some((l) => cells(l)[0] === 'ADDED' && cells(l)[1] === 'app-leader'), 20_000);
    const lease = await t.coordination.readNamespacedLease({ name: 'app-leader', namespace: NS });
    await t.coordination.replaceNamespacedLease({ name: 'app-leader', namespace: NS, body: { ...lease, spec: { ...lease.spec, holderIdentity: 'unit-1', renewTime: new k8s.V1MicroTime() } } });
    await waitFor('the takeover', () => w.lines().some((l) => cells(l).slice(0, 3).join(' ') === 'MODIFIED app-leader unit-1'), 20_000);
    await t.coordination.deleteNamespacedLease({ name: 'app-leader', namespace: NS });
    await waitFor('the deletion', () => w.lines().some((l) => cells(l).slice(0, 2).join(' ') === 'DELETED app-leader'), 20_000);
    w.proc.kill('SIGTERM');
  });

  it('creates, applies and replaces from files (the server validates)', async () => {
    const file = path.join(t.dir, 'objects.yaml');
    const write = (value: string) =>
      fs.writeFileSync(
        file,
        `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-file}\ndata: {v: "${value}"}\n---\napiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: file-lease}\nspec: {holderIdentity: me}\n`,
      );
    write('1');
    expect(await kubectl('apply', '-f', file)).toMatch(/configmap\/from-file created\nlease.coordination.k8s.io\/file-lease created/);
    write('2');
    expect(await kubectl('apply', '-f', file)).toMatch(/configmap\/from-file configured/);
    expect((await t.core.readNamespacedConfigMap({ name: 'from-file', namespace: NS })).data).toEqual({ v: '2' });
    write('3');
    expect(await kubectl('replace', '-f', file)).toMatch(/configmap\/from-file replaced/);
    fs.writeFileSync(file, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n');
    await expect(kubectl('create', '-f', file)).rejects.toThrow(/ConfigMap "Bad_Name" is invalid: metadata.name/);
  });

  it('creates ConfigMaps and Secrets from literals (sent as protobuf by recent kubectl)', async () => {
    await kubectl('create', 'configmap', 'literal', '--from-literal=a=1', '--from-literal=b=héllo');
    expect((await t.core.readNamespacedConfigMap({ name: 'literal', namespace: NS })).data).toEqual({ a: '1', b: 'héllo' });
    await kubectl('create', 'secret', 'generic', 'pw', '--from-literal=password=s3cret');
    const s = await t.core.readNamespacedSecret({ name: 'pw', namespace: NS });
    expect([s.type, Buffer.from(s.data!['password']!, 'base64').toString()]).toEqual(['Opaque', 's3cret']);
  });

  it('labels, annotates and deletes through patches and DeleteOptions', async () => {
    await kubectl('label', 'cm', 'app-config', 'tier=db');
    await kubectl('annotate', 'cm', 'app-config', 'note=hello');
    const cm = await t.core.readNamespacedConfigMap({ name: 'app-config', namespace: NS });
    expect(cm.metadata?.labels).toEqual({ app: 'pg', tier: 'db' });
    expect(cm.metadata?.annotations).toEqual({ note: 'hello' });
    expect((await kubectl('delete', 'cm', 'late-arrival')).trim()).toBe('configmap "late-arrival" deleted');
    expect((await kubectl('get', 'namespaces')).split('\n')[0]).toMatch(/^NAME\s+STATUS\s+AGE$/);
  });
});
