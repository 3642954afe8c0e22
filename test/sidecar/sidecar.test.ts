import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { APIError, ChangeError } from '../../sidecar/client/index.js';
import { isAlive, waitFor } from '../helpers/procs.js';
import { startTestSidecar, type TestSidecar } from '../helpers/sidecar.js';

/** Raw request so the test sees the exact status and envelope, not the client's interpretation. */
function rawRequest(socketPath: string, method: string, path: string, body?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { 'Content-Type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(data) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const pidFile = (sc: TestSidecar, name: string) => join(sc.tmp, `${name}.pid`);
const readPid = (sc: TestSidecar, name: string) => {
  try {
    return Number(readFileSync(pidFile(sc, name), 'utf8').trim()) || undefined;
  } catch {
    return undefined;
  }
};
/** A service that records its pid (exec keeps it) and then sleeps. */
const sleeper = (sc: TestSidecar, name: string, extra = '') =>
  `  ${name}:\n    override: replace\n    command: sh -c 'echo $$ > ${pidFile(sc, name)}; exec sleep 1000'\n${extra}`;

describe('sidecar process', () => {
  let sc: TestSidecar;
  beforeAll(async () => {
    sc = await startTestSidecar({ hold: true });
  });
  afterAll(async () => {
    await sc?.cleanup();
  });

  it('listens on a 0600 unix socket and reports system info', async () => {
    expect(statSync(sc.socket).mode & 0o777).toBe(0o600);
    const info = await sc.client.getSystemInfo();
    expect(info.version).toMatch(/^v\d/);
    expect(info['boot-id']).toMatch(/[0-9a-f-]{36}/);
  });

  it('adds a layer over the API, replans, and restarts a killed service with growing backoff', async () => {
    await sc.client.addLayer(
      'svc',
      `services:\n${sleeper(sc, 'worker', '    startup: enabled\n    backoff-delay: 200ms\n    backoff-factor: 2\n    backoff-limit: 5s\n')}`,
    );
    expect(await sc.client.getPlan()).toContain('backoff-delay: 200ms');
    const change = await sc.client.waitChange(await sc.client.replan());
    expect(change.status).toBe('Done');
    expect((await sc.client.getServices(['worker']))[0]!.current).toBe('active');

    const seen: number[] = [];
    for (let i = 0; i < 3; i++) {
      const pid = await waitFor('worker pid', () => {
        const p = readPid(sc, 'worker');
        return p && !seen.includes(p) && isAlive(p) ? p : undefined;
      });
      seen.push(pid);
      process.kill(pid, 'SIGKILL');
    }
    // The sidecar logs each restart with its wait: 200 ms, then doubled.
    const waits = await waitFor('three restarts', () => {
      const w = [...sc.output().matchAll(/"service":"worker","attempt":(\d+),"waitMs":(\d+)/g)].map((m) => Number(m[2]));
      return w.length >= 3 ? w : undefined;
    });
    expect(waits.slice(0, 3)).toEqual([200, 400, 800]);
    const last = await waitFor('worker restarted again', () => {
      const p = readPid(sc, 'worker');
      return p && !seen.includes(p) && isAlive(p) ? p : undefined;
    });
    expect(last).toBeGreaterThan(0);
    await waitFor('worker active', async () => (await sc.client.getServices(['worker']))[0]!.current === 'active');
    await sc.client.waitChange(await sc.client.stop(['worker']));
    expect(isAlive(last)).toBe(false);
  });

  it('stop sends SIGTERM to the group and SIGKILL only after kill-delay', async () => {
    await sc.client.addLayer(
      'stubborn',
      `services:\n  stubborn:\n    override: replace\n    command: sh -c 'trap "" TERM; echo $$ > ${pidFile(sc, 'stubborn')}; while :; do sleep 0.05; done'\n    kill-delay: 1500ms\n` +
        `  polite:\n    override: replace\n    command: sh -c 'echo $$ > ${pidFile(sc, 'polite')}; exec sleep 1000'\n    kill-delay: 10s\n`,
    );
    await sc.client.waitChange(await sc.client.start(['stubborn', 'polite']));
    const stubborn = readPid(sc, 'stubborn')!;
    const t0 = Date.now();
    await sc.client.waitChange(await sc.client.stop(['stubborn']));
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(1400); // it ignored SIGTERM, so only SIGKILL after kill-delay ended it
    expect(isAlive(stubborn)).toBe(false);
    expect(sc.output()).toMatch(/"service":"stubborn".*did not stop after SIGTERM; sending SIGKILL/);

    const polite = readPid(sc, 'polite')!;
    const t1 = Date.now();
    await sc.client.waitChange(await sc.client.stop(['polite']));
    expect(Date.now() - t1).toBeLessThan(10_000); // SIGTERM was enough; the 10 s kill-delay never ran out
    expect(isAlive(polite)).toBe(false);
    expect((await sc.client.getServices(['stubborn', 'polite'])).map((s) => s.current)).toEqual(['inactive', 'inactive']);
  });

  it('starts dependencies first and stops dependants first', async () => {
    await sc.client.addLayer(
      'deps',
      `services:\n${sleeper(sc, 'db')}${sleeper(sc, 'app', '    requires: [db]\n    after: [db]\n')}`,
    );
    const started = await sc.client.waitChange(await sc.client.start(['app']));
    expect(started.tasks.map((t) => t.summary)).toEqual(['Start service "db"', 'Start service "app"']);
    const stopped = await sc.client.waitChange(await sc.client.stop(['db']));
    expect(stopped.tasks.map((t) => t.summary)).toEqual(['Stop service "app"', 'Stop service "db"']);
  });

  it('runs changes of unrelated services side by side, and changes of the same service in order', async () => {
    await sc.client.addLayer('lanes', `services:\n${sleeper(sc, 'lane-a')}${sleeper(sc, 'lane-b')}`);
    const a = await sc.client.start(['lane-a']);
    // lane-a sits in its 1 s okay delay; lane-b's start must not queue behind it.
    const b = await sc.client.start(['lane-b']);
    await waitFor('lane-b spawned', async () => readPid(sc, 'lane-b'), 5000, 10);
    expect((await sc.client.getChange(a)).ready).toBe(false);
    // A stop of lane-a waits for its start to finish: it never overtakes it.
    const stopA = await sc.client.stop(['lane-a']);
    const [startedA, stoppedA] = await Promise.all([sc.client.waitChange(a), sc.client.waitChange(stopA)]);
    expect(startedA.status).toBe('Done');
    expect(new Date(stoppedA['ready-time']!).getTime()).toBeGreaterThanOrEqual(new Date(startedA['ready-time']!).getTime());
    expect((await sc.client.waitChange(b)).status).toBe('Done');
    expect((await sc.client.getServices(['lane-a', 'lane-b'])).map((s) => s.current)).toEqual(['inactive', 'active']);
    await sc.client.waitChange(await sc.client.stop(['lane-b']));
  });

  it('reports a service that exits within the okay delay as a failed start', async () => {
    await sc.client.addLayer('quick', `services:\n  quick:\n    override: replace\n    command: sh -c 'echo bye >&2; exit 3'\n`);
    const err = await sc.client.waitChange(await sc.client.start(['quick'])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChangeError);
    expect((err as Error).message).toMatch(/exited quickly with code 3/);
    // Pebble logs the last output to the start task, so ops' ChangeError shows it.
    const [task] = (err as ChangeError).change.tasks;
    expect(task!.log![0]).toMatch(/ INFO Most recent service output:\n {4}bye$/);
    expect(task!.log![1]).toMatch(/ ERROR cannot start service: exited quickly with code 3$/);
    expect((await sc.client.getServices(['quick']))[0]!.current).toBe('error');
    const logs = await sc.client.getLogs({ services: ['quick'] });
    expect(logs.map((l) => l.message)).toContain('bye\n');
    expect(sc.output()).toMatch(/\[quick\] bye/);
  });

  it('refuses a missing executable with a clear error', async () => {
    await sc.client.addLayer('missing', `services:\n  missing:\n    override: replace\n    command: /nonexistent/bin/x --flag\n`);
    const err = await sc.client.waitChange(await sc.client.start(['missing'])).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/cannot find executable "\/nonexistent\/bin\/x"/);
  });

  it('runs services as the user given, with HOME and USER set', async () => {
    await sc.client.addLayer(
      'as-postgres',
      `services:\n  whoami:\n    override: replace\n    user: postgres\n    command: sh -c 'echo "$(id -un) $(id -G) $HOME $USER"; exec sleep 1000'\n`,
    );
    await sc.client.waitChange(await sc.client.start(['whoami']));
    const line = (await sc.client.getLogs({ services: ['whoami'] })).map((l) => l.message).join('');
    const [name, ...rest] = line.trim().split(' ');
    expect(name).toBe('postgres');
    expect(rest.slice(-2)).toEqual(['/var/lib/postgresql', 'postgres']);
    expect(rest.slice(0, -2)).not.toContain('0'); // root's groups were dropped
    await sc.client.waitChange(await sc.client.stop(['whoami']));
  });

  it('restarts a service when its check fails (on-check-failure)', async () => {
    const flag = join(sc.tmp, 'healthy');
    writeFileSync(flag, '');
    await sc.client.addLayer(
      'checked',
      `services:\n${sleeper(sc, 'checked', `    on-check-failure: {flag: restart}\n    backoff-delay: 100ms\n`)}` +
        `checks:\n  flag:\n    override: replace\n    period: 300ms\n    timeout: 200ms\n    threshold: 2\n    exec: {command: "test -e ${flag}"}\n`,
    );
    await sc.client.waitChange(await sc.client.start(['checked']));
    const first = readPid(sc, 'checked')!;
    // Like Pebble, the action fires when the check goes down, so it must be up first.
    await waitFor('check up', async () => (await sc.client.getChecks({ names: ['flag'] }))[0]!.status === 'up');
    unlinkSync(flag);
    await waitFor('restart after check failure', () => {
      const p = readPid(sc, 'checked');
      return p && p !== first && isAlive(p) ? p : undefined;
    });
    const checks = await sc.client.getChecks({ names: ['flag'] });
    expect(checks[0]!.status).toBe('down');
    expect((await sc.client.getHealth({ names: ['flag'] })).healthy).toBe(false);
    await sc.client.waitChange(await sc.client.stop(['checked']));
  });

  it('sends signals to a running service', async () => {
    const got = join(sc.tmp, 'got-hup');
    await sc.client.addLayer(
      'hup',
      `services:\n  hup:\n    override: replace\n    command: sh -c 'trap "echo hup > ${got}" HUP; while :; do sleep 0.05; done'\n`,
    );
    await sc.client.waitChange(await sc.client.start(['hup']));
    await sc.client.sendSignal('SIGHUP', ['hup']);
    await waitFor('HUP handled', () => readFileSync(got, 'utf8').trim() === 'hup');
    await expect(sc.client.sendSignal('SIGNOPE', ['hup'])).rejects.toThrow(/invalid signal name "SIGNOPE"/);
    await expect(sc.client.sendSignal('SIGHUP', ['quick'])).rejects.toThrow(/service is not running/);
    await sc.client.waitChange(await sc.client.stop(['hup']));
  });

  it('execs with stdin, split stdout/stderr, exit codes and a terminal', async () => {
    const p = await sc.client.exec(['sh', '-c', 'cat; echo err >&2; exit 5'], { stdin: 'hello' });
    const r = await p.waitOutput();
    expect([r.exitCode, r.stdout.toString(), r.stderr.toString()]).toEqual([5, 'hello', 'err\n']);
    // Pebble's non-interactive terminal: output on a pty (hence \r\n), input still a pipe.
    const probe = 'if [ -t 1 ]; then echo out-tty; fi; if [ ! -t 0 ]; then echo in-pipe; fi';
    const t = await (await sc.client.exec(['sh', '-c', probe], { terminal: true })).waitOutput();
    expect(t.stdout.toString()).toBe('out-tty\r\nin-pipe\r\n');
    const i = await (await sc.client.exec(['tty'], { terminal: true, interactive: true })).waitOutput();
    expect(i.stdout.toString()).toMatch(/^\/dev\/pts\/\d+\r\n$/);
  });

  it("returns a fast command's output every time (200 execs that exit at once)", async () => {
    // The command starts once all websockets are connected and can finish before the client has
    // its listeners on them: its output and end frame must still arrive (they once were dropped,
    // and the exec returned nothing after the server's 10 s linger).
    for (let i = 0; i < 200; i++) {
      // A hang guard, not a speed check: the lost end frame showed as a wait for the 10 s linger.
      const hung = new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5000).unref());
      const r = await Promise.race([sc.client.exec(['echo', `run ${i}`]).then((p) => p.waitOutput()), hung]);
      expect(r === 'hung' ? `exec ${i} still waiting after 5 s` : r.stdout.toString()).toBe(`run ${i}\n`);
    }
  });

  it('pushes and pulls a 10 MB file byte for byte', async () => {
    const data = randomBytes(10 * 1024 * 1024);
    const path = join(sc.tmp, 'files', 'big.bin');
    await sc.client.push(path, data, { makeDirs: true, permissions: '640', user: 'postgres', group: 'postgres' });
    const st = statSync(path);
    expect([st.size, st.mode & 0o777]).toEqual([data.length, 0o640]);
    const back = await sc.client.pull(path);
    expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('refuses bad layers with 400 naming the layer, key and reason, and keeps the plan', async () => {
    const before = await sc.client.getPlan();
    const cases: [string, RegExp][] = [
      ['services:\n  a:\n    override: replace\n    command: x\n    restart-delay: 1s\n', /layer "broken".*services\.a: unknown field "restart-delay"/],
      ['services:\n  a:\n    command: x\n', /layer "broken" must define "override" for service "a"/],
      ['services:\n  a:\n    override: replace\n    command: x\n    backoff-delay: fast\n', /services\.a\.backoff-delay: invalid duration "fast"/],
      ['services:\n  a:\n    override: replace\n    command: x\n    requires: [ghost]\n', /requires "ghost", which does not exist/],
      ['checks:\n  c:\n    override: replace\n    tcp: {port: 1}\n    http: {url: "http://x"}\n', /one of "http", "tcp", or "exec"/],
      ['services: {a: [}', /cannot parse layer "broken"/],
    ];
    for (const [layer, msg] of cases) {
      const r = await rawRequest(sc.socket, 'POST', '/v1/layers', JSON.stringify({ action: 'add', label: 'broken', format: 'yaml', layer }));
      expect(r.status).toBe(400);
      expect(r.json['type']).toBe('error');
      expect((r.json['result'] as { message: string }).message).toMatch(msg);
    }
    expect(await sc.client.getPlan()).toBe(before);
  });

  it('answers bad requests with 400 and Pebble error envelopes, and creates no change', async () => {
    const changesBefore = (await sc.client.getChanges({ select: 'all' })).length;
    const cases: [string, string, string | undefined, RegExp][] = [
      ['POST', '/v1/services', '{"action":"explode","services":["x"]}', /action must be one of/],
      ['POST', '/v1/services', '{"action":"start","services":["ghost"]}', /service "ghost" does not exist/],
      ['POST', '/v1/services', '{"action":"start","services":"worker"}', /services must be a list of strings/],
      ['POST', '/v1/services', '{not json', /cannot decode request body/],
      ['POST', '/v1/layers', '{"action":"add","label":"Bad Label","layer":"{}"}', /invalid layer label/],
      ['POST', '/v1/signals', '{"signal":"SIGHUP","services":["ghost"]}', /service "ghost" does not exist/],
      ['GET', '/v1/changes/99999/wait?timeout=soon', undefined, /cannot find change|invalid timeout/],
      ['GET', '/v1/logs?n=abc', undefined, /n must be/],
      ['GET', '/v1/checks?level=sometimes', undefined, /level must be "alive" or "ready"/],
      ['POST', '/v1/exec', '{"command":[]}', /command/],
      ['POST', '/v1/notices', '{"action":"add","type":"custom","key":"no-domain"}', /example\.com\/path/],
    ];
    for (const [method, path, body, msg] of cases) {
      const r = await rawRequest(sc.socket, method, path, body);
      expect([path, r.status]).toEqual([path, path.includes('/changes/99999') ? 404 : 400]);
      expect((r.json['result'] as { message: string }).message).toMatch(msg);
    }
    expect((await sc.client.getChanges({ select: 'all' })).length).toBe(changesBefore);
    const unknown = await rawRequest(sc.socket, 'GET', '/v1/nope');
    expect([unknown.status, unknown.json['type']]).toEqual([404, 'error']);
    await expect(sc.client.getChange('424242')).rejects.toBeInstanceOf(APIError);
  });

  it('answers the warnings API as Pebble does with no warnings (ops get_warnings/ack_warnings)', async () => {
    expect(await rawRequest(sc.socket, 'GET', '/v1/warnings?select=all')).toMatchObject({ status: 200, json: { result: [] } });
    expect(await rawRequest(sc.socket, 'GET', '/v1/warnings')).toMatchObject({ status: 200, json: { result: [] } });
    const ack = await rawRequest(sc.socket, 'POST', '/v1/warnings', '{"action":"okay","timestamp":"2024-01-01T00:00:00Z"}');
    expect(ack).toMatchObject({ status: 200, json: { result: 0 } });
    expect((await rawRequest(sc.socket, 'GET', '/v1/warnings?select=some')).status).toBe(400);
    expect((await rawRequest(sc.socket, 'POST', '/v1/warnings', '{"action":"nope"}')).status).toBe(400);
  });

  it('records custom notices and change-update notices', async () => {
    const id = await sc.client.notify({ key: 'example.com/backup-done', data: { size: '10' } });
    const n = await sc.client.getNotice(id);
    expect([n.type, n.key, n.occurrences]).toEqual(['custom', 'example.com/backup-done', 1]);
    const updates = await sc.client.getNotices({ types: ['change-update'] });
    expect(updates.length).toBeGreaterThan(0);
  });
});

describe('sidecar start-up and shut-down', () => {
  let sc: TestSidecar | undefined;
  afterEach(async () => {
    await sc?.cleanup();
    sc = undefined;
  });

  it('reads layers from the layers directory in order and autostarts enabled services', async () => {
    sc = await startTestSidecar({
      layers: {
        '001-base.yaml': 'services:\n  a:\n    override: replace\n    command: sleep 1000\n    startup: disabled\n',
        '002-override.yaml': 'services:\n  a:\n    override: merge\n    startup: enabled\n',
      },
    });
    await waitFor('autostart', async () => (await sc!.client.getServices(['a']))[0]!.current === 'active');
  });

  it('--hold leaves enabled services alone', async () => {
    sc = await startTestSidecar({ hold: true, layers: { '001-base.yaml': 'services:\n  a:\n    override: replace\n    command: sleep 1000\n    startup: enabled\n' } });
    await new Promise((r) => setTimeout(r, 1200));
    expect((await sc.client.getServices(['a']))[0]!.current).toBe('inactive');
  });

  it('shares the socket with a group when asked (a non-root charm container): 0660, that gid', async () => {
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    sc = await startTestSidecar({ hold: true, env: { PEBBLE_SOCKET_GROUP: String(gid) } });
    const st = statSync(sc.socket);
    expect(st.mode & 0o777).toBe(0o660);
    expect(st.gid).toBe(gid);
    // The postgres user (in that group, not the owner) can now drive the sidecar.
    const get = `require('http').get({ socketPath: ${JSON.stringify(sc.socket)}, path: '/v1/system-info' }, (r) => { let d = ''; r.on('data', (c) => (d += c)); r.on('end', () => process.stdout.write(d)); })`;
    const out = execFileSync('su', ['postgres', '-s', '/bin/sh', '-c', `${process.execPath} -e "${get.replace(/"/g, '\\"')}"`], { encoding: 'utf8' });
    expect(JSON.parse(out).result.version).toMatch(/^v\d/);
    await sc.cleanup();
    sc = undefined;
    await expect(startTestSidecar({ env: { PEBBLE_SOCKET_GROUP: 'staff' } })).rejects.toThrow(/--socket-group: must be a numeric gid/);
  });

  it('refuses to start with a bad layer file, naming it', async () => {
    await expect(startTestSidecar({ layers: { '001-base.yaml': 'services:\n  a:\n    override: replace\n    comand: x\n' } })).rejects.toThrow(
      /layer "base".*unknown field "comand"/,
    );
    await expect(startTestSidecar({ layers: { '1-base.yaml': 'services: {}\n' } })).rejects.toThrow(/invalid layer filename/);
  });

  it('stops its services on SIGTERM and exits 0, leaving no process behind', async () => {
    sc = await startTestSidecar({ layers: { '001-base.yaml': 'services:\n  a:\n    override: replace\n    command: sleep 1000\n    startup: enabled\n' } });
    await waitFor('autostart', async () => (await sc!.client.getServices(['a']))[0]!.current === 'active');
    const children = readFileSync(`/proc/${sc.proc.pid}/task/${sc.proc.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    expect(children.length).toBeGreaterThan(0);
    expect(await sc.stop()).toBe(0);
    for (const pid of children) expect(isAlive(pid)).toBe(false);
  });
});
