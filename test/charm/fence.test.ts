import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fenceWriter } from '../../agent/charm/postgresql/fence.js';
import { fenceScript, layout } from '../../agent/charm/postgresql/render.js';

/**
 * The fence watchdog as the workload runs it (bash, render.ts fenceScript) and the agent's end
 * of its pipe (fence.ts), with a stand-in postmaster (a `sleep` whose pid is in postmaster.pid):
 * what it stops, when, and what it leaves alone. Real processes, a real named pipe.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('fence watchdog', () => {
  const started: ChildProcess[] = [];
  const dirs: string[] = [];
  afterEach(() => {
    for (const p of started.splice(0)) p.kill('SIGKILL');
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function setup(o: { primary: boolean; marginMs?: number }) {
    const dir = mkdtempSync(join(tmpdir(), 'pgcharm-fence-'));
    dirs.push(dir);
    const l = layout(dir, 15);
    mkdirSync(l.pgdata, { recursive: true });
    mkdirSync(l.private, { recursive: true });
    const postmaster = spawn('sleep', ['300'], { stdio: 'ignore' });
    started.push(postmaster);
    writeFileSync(join(l.pgdata, 'postmaster.pid'), `${postmaster.pid}\n${l.pgdata}\n`);
    if (!o.primary) writeFileSync(join(l.pgdata, 'standby.signal'), '');
    const pipe = join(dir, '.pgcharm-fence');
    const w = fenceWriter(pipe);
    await w.ensure();
    writeFileSync(join(l.private, 'fence.sh'), fenceScript(l, pipe, o.marginMs ?? 1000));
    let out = '';
    const watchdog = spawn('/bin/bash', [join(l.private, 'fence.sh')], { stdio: ['ignore', 'pipe', 'inherit'] });
    watchdog.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    started.push(watchdog);
    return { l, w, postmaster: postmaster.pid!, watchdog, output: () => out };
  }

  const cpuTicks = (pid: number) => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  };

  it('stops the postmaster once the deadline passes with no newer one, and marks the data directory a standby', async () => {
    const f = await setup({ primary: true, marginMs: 60_000 });
    // Renewals every 100 ms, each moving the deadline 300 ms out: nothing happens.
    for (let i = 0; i < 10; i++) {
      await f.w.write(Date.now() + 300, 2000);
      await sleep(100);
    }
    expect(alive(f.postmaster)).toBe(true);
    const last = Date.now() + 300;
    await f.w.write(last, 2000);
    for (const until = Date.now() + 3000; alive(f.postmaster) && Date.now() < until; ) await sleep(10);
    const stoppedAt = Date.now();
    expect(alive(f.postmaster)).toBe(false);
    expect(stoppedAt - last).toBeLessThan(200);
    expect(stoppedAt).toBeGreaterThanOrEqual(last);
    expect(existsSync(join(f.l.pgdata, 'standby.signal'))).toBe(true);
    expect(f.output()).toMatch(new RegExp(`^fenced: primary lease not renewed by ${last} `));
  });

  it('a disarmed fence (0) and a standby are left alone', async () => {
    const f = await setup({ primary: true, marginMs: 60_000 });
    await f.w.write(Date.now() + 200, 2000);
    await f.w.write(0, 2000);
    await sleep(600);
    expect(alive(f.postmaster)).toBe(true);
    const s = await setup({ primary: false });
    await s.w.write(Date.now() + 100, 2000);
    await sleep(500);
    expect(alive(s.postmaster)).toBe(true);
    expect(s.output()).toBe('');
  });

  it('started while Postgres serves writes, arms the margin at once (a restarted watchdog with no agent writing)', async () => {
    const f = await setup({ primary: true, marginMs: 400 });
    const t0 = Date.now();
    for (const until = t0 + 3000; alive(f.postmaster) && Date.now() < until; ) await sleep(10);
    expect(alive(f.postmaster)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  it('keeps the last deadline when its writer goes away, and idles without using the CPU', async () => {
    const f = await setup({ primary: true, marginMs: 60_000 });
    await f.w.write(Date.now() + 60_000, 2000);
    f.w.close(); // the agent died: the watchdog holds the pipe open itself, sees no end of file
    const before = cpuTicks(f.watchdog.pid!);
    await sleep(2000);
    // Blocked in read: no wake-ups, no forks (the old one polled 20 times a second with date and cat).
    expect(cpuTicks(f.watchdog.pid!) - before).toBeLessThanOrEqual(1);
    expect(alive(f.postmaster)).toBe(true);
    const last = Date.now() + 200;
    await f.w.write(last, 2000); // a new agent's first write
    for (const until = Date.now() + 3000; alive(f.postmaster) && Date.now() < until; ) await sleep(10);
    expect(alive(f.postmaster)).toBe(false);
  });
});
