// Usage (as root, PostgreSQL 15 installed, after npm run build): IDLE=60 node scripts/sidecar-footprint/pg.mjs; ENTRY=scripts/sidecar-footprint/wrap.mjs adds V8 heap figures.
// RSS of a sidecar with PostgreSQL 15 under it: after start, after IDLE s idle, after API calls.
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { PebbleClient } from '../../dist/sidecar/client/index.js';
import { SIDECAR_NODE_FLAGS } from '../../dist/sidecar/node-flags.js';
import { startSingle } from '../../dist/agent/single.js';
import { defaults, loadCharmYaml } from '../../dist/agent/charm-meta/index.js';
import { freePort } from '../../dist/agent/ports.js';

const IDLE = Number(process.env.IDLE ?? 60);
const flags = process.env.FLAGS !== undefined ? process.env.FLAGS.split(' ').filter(Boolean) : [...SIDECAR_NODE_FLAGS];
const entry = resolve(process.env.ENTRY ?? 'dist/sidecar/cli.js');
const tmp = mkdtempSync(join(tmpdir(), 'pgcharm-mem-'));
chmodSync(tmp, 0o755);
const dir = join(tmp, 'pebble');
mkdirSync(join(dir, 'layers'), { recursive: true });
const memstat = join(tmp, 'memstat.json');
const proc = spawn(process.execPath, [...flags, entry, 'run', '--dir', dir, '--hold'], { env: { ...process.env, MEMSTAT: memstat, PGCHARM_MEASURE: tmp }, stdio: ['ignore', 'ignore', 'pipe'] });
let err = '';
proc.stderr.on('data', (c) => (err = (err + c).slice(-20000)));
const client = new PebbleClient({ socketPath: join(dir, '.pebble.socket') });
for (let i = 0; ; i++) {
  try { await client.getSystemInfo(); break; } catch { if (i > 600) { console.error(err); process.exit(1); } await new Promise((r) => setTimeout(r, 25)); }
}
const pid = proc.pid;
const rss = () => {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const g = (k) => +(parseInt(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)[1]) / 1024).toFixed(1);
  return { rss: g('VmRSS'), anon: g('RssAnon'), file: g('RssFile'), hwm: g('VmHWM') };
};
const cpu = () => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 10; };
const stats = () => (existsSync(memstat) ? JSON.parse(readFileSync(memstat, 'utf8')) : undefined);
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));
const report = (label) => console.log(label.padEnd(22), JSON.stringify({ ...rss(), cpuMs: cpu(), ...(stats() ? { heap: stats() } : {}) }));
await sleep(2.5);
report('ready (no services)');
const port = await freePort();
const config = { ...defaults(await loadCharmYaml(resolve('charm.yaml'))), profile: 'testing' };
try {
  const s = await startSingle(client, { storage: join(tmp, 'storage'), major: 15, port, password: 'secretpw', config, log: pino({ level: 'warn' }) });
  await sleep(2.5);
  report('postgres up');
  await sleep(IDLE);
  report(`idle ${IDLE}s`);
  // API calls: exec, push/pull, services, logs.
  let c0 = cpu();
  for (let i = 0; i < 5; i++) {
    const p = await client.exec(['/bin/echo', 'hi'], { user: 'postgres' });
    await p.wait();
  }
  const cExec = (cpu() - c0) / 5;
  const big = Buffer.alloc(4 << 20, 'x');
  c0 = cpu();
  for (let i = 0; i < 5; i++) await client.push(join(tmp, `f${i}`), big, { makeDirs: true });
  const cPush = (cpu() - c0) / 5;
  c0 = cpu();
  for (let i = 0; i < 5; i++) await client.pull(join(tmp, `f${i}`));
  const cPull = (cpu() - c0) / 5;
  for (let i = 0; i < 10; i++) { await client.getServices([]); await client.getChecks({}); await client.getChanges({ select: 'all' }); }
  if (client.getLogs) await client.getLogs({ services: [], n: 100 }).catch((e) => console.error('logs', e.message));
  console.log('cpu per op (ms, 10 ms ticks):', JSON.stringify({ exec: cExec, push4MB: cPush, pull4MB: cPull }));
  report('after API calls');
  await sleep(Number(process.env.IDLE2 ?? 20));
  report(`+${process.env.IDLE2 ?? 20}s idle`);
} finally {
  proc.kill('SIGTERM');
  await new Promise((r) => proc.on('exit', r));
  rmSync(tmp, { recursive: true, force: true });
}
