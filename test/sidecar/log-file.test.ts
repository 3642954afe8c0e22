import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sidecarCli } from '../../agent/sidecar-location.js';
import { startTestSidecar, type TestSidecar } from '../helpers/sidecar.js';
import { waitFor } from '../helpers/procs.js';
import { ROOT } from '../helpers/model.js';

const CAP = 4096;

/** `run --log-file`: the sidecar's log and its services' output in one size-capped, rotated file (a local unit's). */
describe('sidecar log file', () => {
  let sc: TestSidecar;
  let log: string;
  beforeAll(async () => {
    sc = await startTestSidecar({ hold: true, args: (tmp) => ['--log-file', join(tmp, 'sidecar.log'), '--log-max-size', '4K', '--log-max-files', '2'] });
    log = join(sc.tmp, 'sidecar.log');
  });
  afterAll(async () => {
    await sc?.cleanup();
  });

  it('keeps the newest output under the cap, in a bounded number of rotated files', async () => {
    // ~40 KB of service output: ten times the cap, so the file rotates many times.
    const script = join(sc.tmp, 'chatty.sh');
    writeFileSync(script, 'i=1\nwhile [ $i -le 400 ]; do echo "line $i of a chatty service, padded out to a realistic length"; i=$((i+1)); done\nexec sleep 60\n');
    await sc.client.addLayer('chatty', `services:\n  chatty:\n    override: replace\n    command: /bin/sh ${script}\n`);
    await sc.client.waitChange(await sc.client.start(['chatty']));
    await waitFor('the last line in the log', () => existsSync(log) && readFileSync(log, 'utf8').includes('line 400 of'));

    const files = readdirSync(sc.tmp).filter((f) => f.startsWith('sidecar.log')).sort();
    expect(files).toEqual(['sidecar.log', 'sidecar.log.1', 'sidecar.log.2']);
    for (const f of files) expect(statSync(join(sc.tmp, f)).size, f).toBeLessThanOrEqual(CAP);
    // Oldest to newest, the kept lines run on without a gap up to the last one; the oldest went.
    const text = ['sidecar.log.2', 'sidecar.log.1', 'sidecar.log'].map((f) => readFileSync(join(sc.tmp, f), 'utf8')).join('');
    const numbers = [...text.matchAll(/\[chatty\] line (\d+) of/g)].map((m) => Number(m[1]));
    expect(numbers.at(-1)).toBe(400);
    expect(numbers[0]).toBeGreaterThan(1);
    expect(numbers).toEqual(numbers.map((_, i) => numbers[0]! + i));
    // Nothing of it went to the sidecar's stdout or stderr.
    expect(sc.output()).not.toContain('chatty');
  });

  it('writes its own log lines there too, and keeps to the cap when the level goes up', async () => {
    await sc.client.setLogLevel('debug');
    for (let i = 0; i < 40; i++) await sc.client.pull(join(sc.tmp, 'chatty.sh'));
    await waitFor('debug lines of the file API', () => readFileSync(log, 'utf8').includes('"msg":"pull file"'));
    for (const f of readdirSync(sc.tmp).filter((n) => n.startsWith('sidecar.log'))) expect(statSync(join(sc.tmp, f)).size, f).toBeLessThanOrEqual(CAP);
    expect(readdirSync(sc.tmp).filter((n) => n.startsWith('sidecar.log'))).toHaveLength(3);
  });

  it('refuses bad caps, naming the flag or the variable', () => {
    const run = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [sidecarCli(), 'run', '--dir', '/nonexistent', ...args], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...env } });
    expect(run(['--log-file', '/tmp/x.log', '--log-max-size', '10']).stderr).toMatch(/--log-max-size: must be a size of at least 1K, like 512K or 10M, got "10"/);
    expect(run(['--log-file', '/tmp/x.log', '--log-max-files', '0']).stderr).toMatch(/--log-max-files: must be a number of files from 1 to 100, got "0"/);
    expect(run(['--log-file', '/tmp/x.log'], { PGCHARM_LOG_MAX_SIZE: 'lots' }).stderr).toMatch(/PGCHARM_LOG_MAX_SIZE: must be a size/);
    expect(run(['--log-max-size', '1M']).stderr).toMatch(/--log-max-size and --log-max-files go with --log-file/);
  });
});

/**
 * What bypasses the log: an uncaught exception is logged (with its stack) before Node prints it
 * to stderr and exits, and the stderr file a kubelet gave the process is kept under the cap too.
 */
describe('crash output of a process with a log file', () => {
  const rotate = resolve(ROOT, 'dist', 'sidecar', 'logs', 'rotate.js');
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pgcharm-crash-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs a module with stdout and stderr appended to <dir>/<name>, as the kubelet starts a unit's processes. */
  const runScript = (name: string, body: string): Promise<number | null> => {
    const stderr = openSync(join(dir, name), 'a');
    try {
      const child = spawn(process.execPath, ['--input-type=module', '-e', body], { stdio: ['ignore', stderr, stderr], cwd: ROOT });
      return new Promise((res) => child.on('exit', (code) => res(code)));
    } finally {
      closeSync(stderr);
    }
  };

  it('an uncaught exception reaches the log with its stack, and stderr still gets the trace', async () => {
    const code = await runScript(
      'crash.stderr',
      `import { pino } from 'pino'; import { openProcessLog } from ${JSON.stringify(rotate)};
       const own = openProcessLog(${JSON.stringify(join(dir, 'p.log'))}, { maxBytes: 4096, files: 2 });
       const log = pino({}, own.file); own.logCrashes(log);
       log.info('up'); setTimeout(() => { throw new Error('boom in a timer'); }, 10);`,
    );
    expect(code).not.toBe(0);
    const lines = readFileSync(join(dir, 'p.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; err?: { stack: string } });
    expect(lines.at(-1)).toMatchObject({ level: 60, msg: 'uncaught exception; exiting' });
    expect(lines.at(-1)!.err!.stack).toMatch(/Error: boom in a timer\n\s+at /);
    expect(readFileSync(join(dir, 'crash.stderr'), 'utf8')).toMatch(/Error: boom in a timer/);
  });

  it('a stderr file past the cap is rotated, its newest content kept', async () => {
    // Three writes of 5 KB to stderr, each past the 4 KB cap, checked every 50 ms.
    const code = await runScript(
      'p.stderr',
      `import { boundStderr } from ${JSON.stringify(rotate)};
       const b = boundStderr({ maxBytes: 4096, files: 2 }, 50);
       for (const c of ['a', 'b', 'c']) { process.stderr.write(c.repeat(5000) + '\\n'); await new Promise((r) => setTimeout(r, 300)); }
       process.stderr.write('last words\\n'); b.stop();`,
    );
    expect(code).toBe(0);
    expect(readdirSync(dir).filter((f) => f.startsWith('p.stderr')).sort()).toEqual(['p.stderr', 'p.stderr.1', 'p.stderr.2']);
    expect(readFileSync(join(dir, 'p.stderr'), 'utf8')).toBe('last words\n');
    expect(readFileSync(join(dir, 'p.stderr.1'), 'utf8')).toBe('c'.repeat(5000) + '\n');
    expect(readFileSync(join(dir, 'p.stderr.2'), 'utf8')).toBe('b'.repeat(5000) + '\n');
  });
});
