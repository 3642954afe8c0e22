import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { killMarked, pidsWithEnv, procState, waitFor } from '../helpers/procs.js';

// The reaper must run in a process of its own (it makes that process a subreaper and reaps
// its zombies), so the child runs the TypeScript sources through a tiny loader hook that
// strips types with vite's oxc transform (already installed with vitest).
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const req = createRequire(import.meta.url);
const viteUrl = pathToFileURL(req.resolve('vite')).href;
const pinoUrl = pathToFileURL(req.resolve('pino')).href;
const addonBuilt = existsSync(join(repo, 'sidecar/native/build/Release/reaper.node'));

const HOOKS = `
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
const { transformWithOxc } = await import(${JSON.stringify(viteUrl)});
export async function resolve(specifier, context, next) {
  if (specifier.startsWith('.') && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
    const ts = new URL(specifier.slice(0, -3) + '.ts', context.parentURL);
    if (existsSync(ts)) return { url: ts.href, shortCircuit: true };
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const file = fileURLToPath(url);
  const { code } = await transformWithOxc(await readFile(file, 'utf8'), file, { lang: 'ts' });
  return { format: 'module', source: code, shortCircuit: true };
}
`;

const CHILD = `
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
const { startReaper } = await import(process.env.REAPER_URL);
const { trackChild, untrackChild } = await import(process.env.CHILDREN_URL);
const pino = (await import(${JSON.stringify(pinoUrl)})).default;
const log = pino({ level: 'debug' });
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const state = (pid) => {
  try {
    const s = readFileSync('/proc/' + pid + '/stat', 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
};
const owned = new Set();
process.on('SIGTERM', () => {
  for (const pid of owned) try { process.kill(pid, 'SIGKILL'); } catch {}
  process.exit(0);
});
setInterval(() => {}, 60_000); // stay up until the test kills us

if (process.env.MODE === 'missing') {
  const reaper = startReaper(log, { intervalMs: 100 });
  say({ event: 'started', reaped: reaper.reapedCount() });
} else {
  // An owned child that is already a zombie when the reaper's first scan runs: spinning
  // synchronously keeps libuv from waiting for it first.
  const first = spawn('sh', ['-c', 'exit 7'], { stdio: 'ignore' });
  trackChild(first.pid);
  const deadline = Date.now() + 20_000;
  while (state(first.pid) !== 'Z' && Date.now() < deadline) {}
  say({ event: 'owned-zombie', pid: first.pid, state: state(first.pid) });
  const reaper = startReaper(log, { intervalMs: 100 });
  first.on('exit', (code, signal) => {
    untrackChild(first.pid);
    say({ event: 'owned-exit', code, signal });
    // The subshell backgrounds a sleep and exits: that sleep is orphaned and, as we are a
    // subreaper, re-parented to us. The shell itself (exec'd into sleep) is ours and owned.
    const sh = spawn('sh', ['-c', '(sleep 30 &) ; exec sleep 30'], { stdio: 'ignore' });
    trackChild(sh.pid);
    owned.add(sh.pid);
    sh.on('exit', (code, signal) => {
      untrackChild(sh.pid);
      owned.delete(sh.pid);
      say({ event: 'sh-exit', code, signal, reaped: reaper.reapedCount() });
    });
    say({ event: 'ready', owned: sh.pid });
  });
}
`;

interface Line {
  event?: string;
  msg?: string;
  level?: number;
  [k: string]: unknown;
}

describe('orphan reaper', () => {
  let dir: string | undefined;
  let child: ChildProcess | undefined;
  const marker = `reaper-${randomBytes(6).toString('hex')}`;

  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child!.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }
    child = undefined;
    killMarked('PGCHARM_TEST_REAPER', marker);
    await waitFor('marked processes to go', () => pidsWithEnv('PGCHARM_TEST_REAPER', marker).every((p) => procState(p) === undefined || procState(p)?.state === 'Z'));
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  function run(reaperTs: string, childrenTs: string, mode: string): { proc: ChildProcess; lines: Line[]; stderr: () => string } {
    dir ??= mkdtempSync(join(tmpdir(), 'pgcharm-reaper-'));
    writeFileSync(join(dir, 'hooks.mjs'), HOOKS);
    writeFileSync(
      join(dir, 'register.mjs'),
      `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`,
    );
    writeFileSync(join(dir, 'child.mjs'), CHILD);
    const proc = spawn(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, join(dir, 'child.mjs')], {
      env: {
        ...process.env,
        PGCHARM_TEST_REAPER: marker,
        MODE: mode,
        REAPER_URL: pathToFileURL(reaperTs).href,
        CHILDREN_URL: pathToFileURL(childrenTs).href,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    const lines: Line[] = [];
    let buf = '';
    let err = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          lines.push(JSON.parse(l) as Line);
        } catch {
          lines.push({ msg: l });
        }
      }
    });
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    return { proc, lines, stderr: () => err };
  }

  function event(lines: Line[], name: string, proc: ChildProcess, stderr: () => string): Promise<Line> {
    return waitFor(`child event ${name}`, () => {
      if (proc.exitCode !== null) throw new Error(`child exited ${proc.exitCode}: ${stderr()}`);
      return lines.find((l) => l.event === name);
    });
  }

  it('reaps orphans re-parented to it and never an owned child', async () => {
    expect(addonBuilt, 'build the addon first: npm run build:native').toBe(true);
    const { proc, lines, stderr } = run(join(repo, 'sidecar/osutil/reaper.ts'), join(repo, 'sidecar/osutil/children.ts'), 'reap');

    // The owned child was a zombie during the first scan, yet libuv still saw its real exit.
    const zombie = await event(lines, 'owned-zombie', proc, stderr);
    expect(zombie.state).toBe('Z');
    const exit = await event(lines, 'owned-exit', proc, stderr);
    expect(exit).toMatchObject({ code: 7, signal: null });
    expect(lines.filter((l) => l.msg === 'reaped orphaned process' && l.orphan === zombie.pid)).toEqual([]);
    expect(lines.filter((l) => typeof l.level === 'number' && l.level >= 40)).toEqual([]);

    const ready = await event(lines, 'ready', proc, stderr);
    const childPid = proc.pid!;
    const orphan = await waitFor('the background sleep to be re-parented to the subreaper', () =>
      pidsWithEnv('PGCHARM_TEST_REAPER', marker).find((p) => p !== childPid && p !== ready.owned && procState(p)?.ppid === childPid),
    );
    expect(procState(orphan)?.state).not.toBe('Z');

    process.kill(orphan, 'SIGKILL');
    // A zombie keeps its /proc entry; only being waited for removes it.
    await waitFor('the orphan to be reaped', () => procState(orphan) === undefined);
    const log = await waitFor('the reap to be logged', () => lines.find((l) => l.msg === 'reaped orphaned process' && l.orphan === orphan));
    expect(log).toMatchObject({ signal: 9 });
    expect(zombiesOf(childPid)).toEqual([]);

    // The owned shell (now `sleep 30`) still reports its own exit through libuv.
    process.kill(ready.owned as number, 'SIGTERM');
    const shExit = await event(lines, 'sh-exit', proc, stderr);
    expect(shExit).toMatchObject({ code: null, signal: 'SIGTERM', reaped: 1 });
    expect(zombiesOf(childPid)).toEqual([]);
  });

  it('runs without reaping, and says so, when the addon is missing', async () => {
    // Copies of the sources outside the repo cannot find sidecar/native/build.
    dir = mkdtempSync(join(tmpdir(), 'pgcharm-reaper-'));
    const src = join(dir, 'src');
    mkdirSync(src);
    copyFileSync(join(repo, 'sidecar/osutil/reaper.ts'), join(src, 'reaper.ts'));
    copyFileSync(join(repo, 'sidecar/osutil/children.ts'), join(src, 'children.ts'));
    copyFileSync(join(repo, 'sidecar/osutil/native.ts'), join(src, 'native.ts'));
    const { proc, lines, stderr } = run(join(src, 'reaper.ts'), join(src, 'children.ts'), 'missing');

    const started = await event(lines, 'started', proc, stderr);
    expect(started.reaped).toBe(0);
    const warn = lines.find((l) => l.level === 40);
    expect(warn?.msg).toMatch(/orphan reaper addon not found .*npm run build:native/);
    expect(proc.exitCode).toBeNull();
  });
});

function zombiesOf(ppid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((p) => {
      const s = procState(p);
      return s?.ppid === ppid && s.state === 'Z';
    });
}
