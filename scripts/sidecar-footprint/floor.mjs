// Usage: node --lite-mode --max-semi-space-size=1 scripts/sidecar-footprint/floor.mjs, then read VmRSS in /proc/PID/status (43.1 MB on Node 20.20.2).
// The floor: an ESM script that serves HTTP on a unix socket and can spawn, nothing else.
import http from 'node:http';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
const s = http.createServer((q, r) => r.end('{}'));
s.listen('/tmp/sidecar-floor.sock');
spawn('/bin/true').on('exit', () => {});
