// Usage (from the repository root, after npm run build): node scripts/sidecar-footprint/start.mjs [N=7 WAIT=3000 FLAGS=... ENTRY=...]
// Start time: spawn → first answer on the socket (polled every 2 ms), N runs; and the 'sidecar ready' cpuMs.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SIDECAR_NODE_FLAGS } from '../../dist/sidecar/node-flags.js';
const flags = process.env.FLAGS !== undefined ? process.env.FLAGS.split(' ').filter(Boolean) : [...SIDECAR_NODE_FLAGS];
const entry = resolve(process.env.ENTRY ?? 'dist/sidecar/cli.js');
const N = Number(process.env.N ?? 7);
const ask = (socketPath) => new Promise((res) => { const r = http.get({ socketPath, path: '/v1/system-info' }, (m) => { m.resume(); m.on('end', () => res(m.statusCode === 200)); }); r.on('error', () => res(false)); });
const ts = [], cpus = [], rss = [];
for (let i = 0; i < N; i++) {
  const tmp = mkdtempSync(join(tmpdir(), 'sc-start-'));
  const dir = join(tmp, 'p'); mkdirSync(join(dir, 'layers'), { recursive: true });
  const t0 = performance.now();
  const p = spawn(process.execPath, [...flags, entry, 'run', '--dir', dir, '--hold'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = ''; p.stderr.on('data', (c) => (err += c));
  let ex = false; p.on("exit", () => (ex = true));
  while (!(await ask(join(dir, ".pebble.socket")))) { if (ex) { console.error(err); process.exit(1); } await new Promise((r) => setTimeout(r, 2)); }
  ts.push(performance.now() - t0);
  await new Promise((r) => setTimeout(r, Number(process.env.WAIT ?? 3000)));
  { const st = (await import('node:fs')).readFileSync(`/proc/${p.pid}/status`, 'utf8'); const g = (k) => +(parseInt(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(st)[1]) / 1024).toFixed(1); rss.push([g('VmRSS'), g('RssAnon'), g('RssFile')]); }
  cpus.push(JSON.parse(err.split('\n').find((l) => l.includes('sidecar ready'))).cpuMs);
  p.kill('SIGTERM'); await new Promise((r) => p.on('exit', r));
  rmSync(tmp, { recursive: true, force: true });
}
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
console.log(JSON.stringify({ entry: process.env.ENTRY ?? 'cli.js', flags: flags.join(' '), startMs: Math.round(med(ts)), min: Math.round(Math.min(...ts)), readyCpuMs: med(cpus), rss: rss.map((r) => r.join('/')).join(' ') }));
