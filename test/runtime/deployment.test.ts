import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deployArgs, testModel, type TestModel } from '../helpers/model.js';
import { cmdline, pidsWithEnv, waitFor } from '../helpers/procs.js';

/**
 * A real 3-unit local deployment of the recorder charm: controller, sidecars and agents as
 * processes, talking through the controller's Kubernetes API.
 */
describe('3-unit local deployment', () => {
  let m: TestModel;
  const pods = ['recorder-0', 'recorder-1', 'recorder-2'];
  const status = async () => {
    const r = await m.cli(['status', '--format', 'json']);
    if (r.code !== 0) throw new Error(`pgcharm status failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as Status;
  };
  type Status = {
    application: { leader: string; 'config-rejected'?: string };
    units: Record<string, { leader: boolean; agent: { status: string }; workload: { status: string; message: string }; 'applied-config': string; pod: { restarts: number } }>;
  };
  const leaderPod = async () => (await status()).application.leader.replace('/', '-');

  beforeAll(async () => {
    m = testModel();
    const r = await m.cli(deployArgs(m, 3));
    expect(r.stderr + r.stdout).toMatch(/recorder\/0/);
    expect(r.code).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await m?.cleanup();
  }, 60_000);

  it('settles with exactly one leader, Juju event order, and peers joined', async () => {
    const s = await status();
    expect(Object.keys(s.units)).toEqual(['recorder/0', 'recorder/1', 'recorder/2']);
    expect(Object.values(s.units).filter((u) => u.leader)).toHaveLength(1);
    expect(Object.values(s.units).every((u) => u.agent.status === 'idle' && u.workload.status === 'active' && u['applied-config'] === 'current')).toBe(true);
    await waitFor('peers joined everywhere', () => pods.every((p) => m.events(p).filter((e) => e.event === 'peers-relation-joined').length === 2));
    for (const p of pods) {
      const names = m.events(p).map((e) => e.event);
      const leading = names.includes('leader-elected');
      const start = names.slice(0, 4);
      expect(start).toEqual(['install', leading ? 'leader-elected' : 'leader-settings-changed', 'config-changed', 'start']);
      expect(names).toContain('workload-pebble-ready');
      const joined = m.events(p).filter((e) => e.event === 'peers-relation-joined').map((e) => e.remote).sort();
      expect(joined).toEqual(pods.filter((q) => q !== p).map((q) => q.replace('-', '/')));
    }
    expect(pods.filter((p) => m.events(p).some((e) => e.event === 'leader-elected'))).toHaveLength(1);
  });

  it("refuses a non-leader's write to the application bag and accepts the leader's", async () => {
    const leader = await leaderPod();
    const other = pods.find((p) => p !== leader)!.replace('-', '/');
    const refused = await m.cli(['run', other, 'write-app-bag', 'key=colour', 'value=red', '--wait']);
    expect(refused.code).toBe(1);
    const out = parse(refused.stdout) as Record<string, { status: string; message: string }>;
    expect(out[other]!.status).toBe('failed');
    expect(out[other]!.message).toMatch(/is not the leader: only the leader writes the peers application bag/);
    const ok = await m.cli(['run', 'leader', 'write-app-bag', 'key=colour', 'value=red', '--wait']);
    expect(ok.code).toBe(0);
    expect((parse(ok.stdout) as Record<string, { results: unknown }>)[leader.replace('-', '/')]!.results).toEqual({ written: true });
    // The other units hear about it as relation-changed (app) and leader-settings-changed.
    await waitFor('leader-settings-changed after the app bag write', () =>
      pods.filter((p) => p !== leader).every((p) => m.events(p).filter((e) => e.event === 'leader-settings-changed').length >= 2),
    );
  });

  it('runs an action with params validation, log lines, progress and results', async () => {
    const bad = await m.cli(['run', 'recorder/1', 'count', 'to=abc']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/params\.to: must be integer/);
    const missing = await m.cli(['run', 'recorder/1', 'count']);
    expect(missing.stderr).toMatch(/params\.to: required/);
    const unknown = await m.cli(['run', 'recorder/1', 'cuont', 'to=1']);
    expect(unknown.stderr).toMatch(/did you mean "count"/);
    const r = await m.cli(['run', 'recorder/1', 'count', 'to=3', '--wait']);
    expect(r.code).toBe(0);
    const out = (parse(r.stdout) as Record<string, { status: string; results: Record<string, unknown>; log: string[]; progress: { fraction: number } }>)['recorder/1']!;
    expect(out.status).toBe('completed');
    expect(out.results).toMatchObject({ counted: 3, unit: 'recorder/1' });
    expect(out.log.map((l) => l.replace(/^\S+ /, ''))).toEqual(['counted 1', 'counted 2', 'counted 3']);
    expect(out.progress.fraction).toBe(1);
    expect(r.stderr).toMatch(/counted 2/);
    const failed = await m.cli(['run', 'recorder/2', 'fail', 'message=on purpose', '--wait']);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/status: failed/);
    expect(failed.stdout).toMatch(/on purpose/);
  });

  it('applies a valid config change on every unit and refuses bad ones, changing nothing', async () => {
    const diff = await m.cli(['config', 'greeting=hi', '--diff']);
    expect(diff.stdout).toMatch(/-greeting: "hello"\n\+greeting: "hi"/);
    for (const [args, why] of [
      [['size=20'], /size: .*(10|range|at most)/],
      [['size=abc'], /size: .*int/],
      [['greetin=x'], /did you mean "greeting"/],
      [['flavour=spicy'], /flavour: .*immutable/],
    ] as const) {
      const r = await m.cli(['config', ...args]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(why);
    }
    const before = (await m.cli(['config'])).stdout;
    expect(before).toMatch(/greeting\s+"hello"/);
    const ok = await m.cli(['config', 'greeting=bonjour']);
    expect(ok.code, ok.stderr).toBe(0);
    await waitFor('config-changed with the new value on every unit', () =>
      pods.every((p) => m.events(p).some((e) => e.event === 'config-changed' && e.config['greeting'] === 'bonjour')),
    );
  });

  it('picks up charm.yaml edits: valid ones reach every unit, invalid ones are refused with path and reason', async () => {
    const original = readFileSync(m.charm, 'utf8');
    writeFileSync(m.charm, original.replace('default: 1\n', 'default: 4\n'));
    await waitFor('config-changed with size 4 on every unit', () => pods.every((p) => m.events(p).some((e) => e.event === 'config-changed' && e.config['size'] === 4)), 30_000);
    const count = () => pods.map((p) => m.events(p).filter((e) => e.event === 'config-changed').length);
    const settledCounts = count();
    writeFileSync(m.charm, original.replace('default: 1\n', 'default: abc\n'));
    await waitFor('bad type refused', async () => /config\.options\.size\.default: expected int, got "abc"/.test((await status()).application['config-rejected'] ?? ''), 30_000);
    writeFileSync(m.charm, original.replace('default: plain', 'default: spicy'));
    await waitFor('immutable change refused', async () => /flavour/.test((await status()).application['config-rejected'] ?? ''), 30_000);
    expect((await m.cli(['status'])).stdout).toMatch(/charm\.yaml edit refused/);
    expect(count()).toEqual(settledCounts);
    expect((await m.cli(['config'])).stdout).toMatch(/size\s+4/);
    writeFileSync(m.charm, original.replace('default: 1\n', 'default: 4\n'));
    await waitFor('rejection cleared', async () => (await status()).application['config-rejected'] === undefined, 30_000);
  }, 120_000);

  it('elects a new leader when the leader unit is killed; leader-elected fires once on it', async () => {
    const old = await leaderPod();
    const t0 = Date.now();
    const k = await m.cli(['kill', old.replace('-', '/')]);
    expect(k.code, k.stderr).toBe(0);
    const next = await waitFor('a new leader', async () => {
      const l = await leaderPod();
      return l && l !== old ? l : undefined;
    }, 30_000);
    await waitFor('leader-elected on the new leader', () => m.events(next).some((e) => e.event === 'leader-elected' && e.t >= t0), 15_000);
    await new Promise((r) => setTimeout(r, 3000));
    expect(m.events(next).filter((e) => e.event === 'leader-elected' && e.t >= t0)).toHaveLength(1);
    const others = pods.filter((p) => p !== next && p !== old);
    for (const p of others) expect(m.events(p).filter((e) => e.event === 'leader-elected' && e.t >= t0)).toHaveLength(0);
    // The killed unit comes back (as a non-leader) and settles.
    await waitFor('killed unit back', async () => {
      const u = (await status()).units[old.replace('-', '/')];
      return u?.agent.status === 'idle' && u.workload.status === 'active';
    }, 60_000);
    expect(await leaderPod()).toBe(next);
  }, 120_000);

  it('adds a unit that joins its peers, and removes it: departed, stop and remove run, its directory goes', async () => {
    const add = await m.cli(['add-unit']);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stderr).toMatch(/added recorder\/3/);
    await waitFor('recorder/3 joined by everyone', () =>
      pods.every((p) => m.events(p).some((e) => e.event === 'peers-relation-joined' && e.remote === 'recorder/3')) &&
      m.events('recorder-3').filter((e) => e.event === 'peers-relation-joined').length === 3,
    60_000);
    const rm = await m.cli(['remove-unit', 'recorder/3']);
    expect(rm.code, rm.stderr).toBe(0);
    await waitFor('departed on the others', () => pods.every((p) => m.events(p).some((e) => e.event === 'peers-relation-departed' && e.remote === 'recorder/3')), 60_000);
    await waitFor('unit directory removed', () => !existsSync(join(m.dir, 'units', 'recorder-3')), 60_000);
    const s = await status();
    expect(Object.keys(s.units)).toEqual(['recorder/0', 'recorder/1', 'recorder/2']);
    expect((await m.cli(['remove-unit', 'recorder/3'])).stderr).toMatch(/unit recorder\/3 not found/);
  }, 120_000);

  it('runs the removed unit through departed, stop and remove in order', async () => {
    // The removed unit's own record went with its directory; the order is checked on a unit added for it.
    await m.cli(['add-unit']);
    await waitFor('recorder/4 settled', async () => (await status()).units['recorder/4']?.agent.status === 'idle' && m.events('recorder-4').filter((e) => e.event === 'peers-relation-joined').length === 3, 60_000);
    const log = join(m.dir, 'recorder-4-events.jsonl');
    const copy = setInterval(() => {
      try {
        copyFileSync(join(m.dir, 'units', 'recorder-4', 'events.jsonl'), log);
      } catch {
        /* gone */
      }
    }, 20);
    try {
      await m.cli(['remove-unit', '4']);
      await waitFor('unit directory removed', () => !existsSync(join(m.dir, 'units', 'recorder-4')), 60_000);
    } finally {
      clearInterval(copy);
    }
    const tail = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; remote: string | null }).filter((e) => e.event !== 'update-status').slice(-5);
    expect(tail.map((e) => e.event)).toEqual(['peers-relation-departed', 'peers-relation-departed', 'peers-relation-departed', 'stop', 'remove']);
  }, 120_000);

  it('execs in a unit through its sidecar, with the exit code', async () => {
    const r = await m.cli(['exec', 'recorder/0', '--', 'sh', '-c', 'echo "hi $(id -un)"; exit 3']);
    expect(r.stdout, `code ${r.code}, stderr: ${r.stderr}`).toBe('hi root\n');
    expect(r.code).toBe(3);
  });

  it('shows the merged debug log with unit and event on agent lines', async () => {
    const r = await m.cli(['debug-log', '--no-tail', '-n', '400', '--include', 'recorder/1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\d\d:\d\d:\d\d\.\d{3} recorder\/1:agent INFO \[config-changed\] event handled/m);
    expect(r.stdout).not.toMatch(/recorder\/0:/);
  });

  it('gives clear errors for unknown units, a second deploy, and a model without a deployment', async () => {
    expect((await m.cli(['run', 'recorder/9', 'count', 'to=1'])).stderr).toMatch(/unit "?recorder\/9"? not found: units are recorder\/0, recorder\/1, recorder\/2/);
    expect((await m.cli(['kill', 'postgresql/0'])).stderr).toMatch(/not found/);
    const again = await m.cli(deployArgs(m, 3));
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/recorder is already deployed in model .*; waiting for its units to settle/);
    const empty = testModel();
    try {
      const r = await empty.cli(['status']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/no deployment in model .*: run `pgcharm deploy` first/);
    } finally {
      await empty.cleanup();
    }
  });

  it('holds a unit killed with --no-restart down until revived, and restarts a crashed agent process', async () => {
    const k = await m.cli(['kill', 'recorder/2', '--no-restart']);
    expect(k.code, k.stderr).toBe(0);
    await waitFor('recorder/2 down', async () => (await status()).units['recorder/2']?.workload.message === 'killed (--no-restart)', 30_000);
    expect(pidsWithEnv('PGCHARM_LOCAL_UNIT', `${m.dir}#recorder-2`)).toEqual([]);
    expect((await m.cli(['kill', 'recorder/1', '--revive'])).stderr).toMatch(/not held down/);
    expect((await m.cli(['kill', 'recorder/2', '--revive'])).code).toBe(0);
    await waitFor('recorder/2 back', async () => (await status()).units['recorder/2']?.agent.status === 'idle', 60_000);

    const agentPid = pidsWithEnv('PGCHARM_LOCAL_UNIT', `${m.dir}#recorder-1`).find((p) => cmdline(p).includes('agent'));
    expect(agentPid).toBeDefined();
    const killedAt = Date.now();
    process.kill(agentPid!, 'SIGKILL');
    // A restarted agent goes through config-changed and start again (not install: it is stored).
    await waitFor('agent restarted', () => m.events('recorder-1').some((e) => e.event === 'start' && e.t > killedAt), 60_000);
    expect(m.events('recorder-1').filter((e) => e.event === 'install')).toHaveLength(1);
    expect((await status()).units['recorder/1']!.pod.restarts).toBeGreaterThanOrEqual(1);
  }, 150_000);

  it('keeps units running through a controller kill -9; a new controller adopts them, and a dead sidecar takes its services with it', async () => {
    const procs = () =>
      pods.flatMap((p) => pidsWithEnv('PGCHARM_LOCAL_UNIT', `${m.dir}#${p}`).filter((pid) => cmdline(pid).some((a) => a.endsWith('cli.js')))).sort((a, b) => a - b);
    const before = procs();
    expect(before).toHaveLength(6);
    const controller = JSON.parse(readFileSync(join(m.dir, 'controller.json'), 'utf8')) as { pid: number };
    process.kill(controller.pid, 'SIGKILL');
    await waitFor('controller gone', () => !existsSync(`/proc/${controller.pid}`) || readFileSync(`/proc/${controller.pid}/stat`, 'utf8').includes(') Z '), 10_000);
    // The units log (their pipes no longer go through the controller) and keep running.
    await new Promise((r) => setTimeout(r, 2000));
    expect(procs()).toEqual(before);
    const again = await m.cli(deployArgs(m, 3));
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(join(m.dir, 'logs', 'controller.log'), 'utf8')).toMatch(/unit found running; adopted/);
    await waitFor('settled after the controller came back', async () => Object.values((await status()).units).every((u) => u.agent.status === 'idle'), 60_000);
    expect(procs()).toEqual(before); // adopted, not started twice

    // The sidecar is the workload container's PID 1: when it dies, what it ran goes too.
    const sidecar = pidsWithEnv('PGCHARM_LOCAL_UNIT', `${m.dir}#recorder-0`).find((p) => cmdline(p).includes('run') && cmdline(p).some((a) => a.endsWith('sidecar/bundle/cli.js')))!;
    const exec = await m.cli(['exec', 'recorder/0', '--', 'sh', '-c', 'sleep 300 & echo $!']);
    const orphan = Number(exec.stdout.trim());
    expect(orphan).toBeGreaterThan(0);
    const readyBefore = m.events('recorder-0').filter((e) => e.event === 'workload-pebble-ready').length;
    process.kill(sidecar, 'SIGKILL');
    await waitFor('the sidecar restarted and its leftover process killed', () => {
      const now = pidsWithEnv('PGCHARM_LOCAL_UNIT', `${m.dir}#recorder-0`);
      return !now.includes(orphan) && now.some((p) => p !== sidecar && cmdline(p).some((a) => a.endsWith('sidecar/bundle/cli.js')));
    }, 30_000);
    // The agent follows its sidecar by a long-poll that fails when the sidecar goes: a new one is pebble-ready again.
    await waitFor('pebble-ready for the restarted sidecar', () => m.events('recorder-0').filter((e) => e.event === 'workload-pebble-ready').length === readyBefore + 1, 30_000);
  }, 150_000);

  it('destroys the model: every unit runs stop, and no process is left', async () => {
    const r = await m.cli(['destroy', '--keep-data']);
    expect(r.code, r.stderr).toBe(0);
    for (const p of pods) expect(m.events(p).slice(-3).map((e) => `${p}:${e.event}`)).toContain(`${p}:stop`);
    expect(pidsWithEnv('PGCHARM_TEST_RUN', m.marker)).toEqual([]);
    expect(readdirSync(m.dir)).toEqual(['units']);
  }, 120_000);
});
