// Runs the sidecar CLI in-process and writes memory stats to $MEMSTAT every 2 s.
import { writeFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
const out = process.env.MEMSTAT;
setInterval(() => {
  const mu = process.memoryUsage();
  const sp = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, +(s.space_used_size / 1048576).toFixed(2)]));
  const spc = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, +(s.physical_space_size / 1048576).toFixed(2)]));
  writeFileSync(out, JSON.stringify({ rss: +(mu.rss / 1048576).toFixed(1), heapUsed: +(mu.heapUsed / 1048576).toFixed(1), heapTotal: +(mu.heapTotal / 1048576).toFixed(1), external: +(mu.external / 1048576).toFixed(1), arrayBuffers: +(mu.arrayBuffers / 1048576).toFixed(1), used: sp, physical: spc }));
}, 2000).unref();
if (process.env.GC_AT) setTimeout(() => { globalThis.gc({ type: 'major', execution: 'sync' }); }, Number(process.env.GC_AT)).unref();
const { runCli } = await import(process.env.CLI ?? '../../dist/sidecar/cli.js');
process.exitCode = await runCli(process.argv.slice(2));
