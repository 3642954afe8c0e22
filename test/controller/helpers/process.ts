import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The API server as its own process (dist/agent/controller/apiserver/main.js), for crash tests. */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const MAIN = path.join(root, 'dist', 'agent', 'controller', 'apiserver', 'main.js');

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** Fails clearly when the compiled server is missing or older than its sources. */
export function checkBuilt(): void {
  if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first (npm test does)`);
  const controller = path.join(root, 'agent', 'controller');
  const src = Math.max(fs.statSync(path.join(controller, 'kubeconfig.ts')).mtimeMs, ...['apiserver', 'store', 'registry', 'machinery'].map((d) => newestSource(path.join(controller, d))));
  if (fs.statSync(MAIN).mtimeMs < src - 1000) throw new Error(`${MAIN} is older than agent/controller's sources: run \`npm run build\` first (npm test does)`);
}

export interface ServerProcess {
  proc: ChildProcess;
  url: string;
  port: number;
  output(): string;
  /** Resolves when the process has exited. */
  exited: Promise<number | null>;
}

export async function spawnServer(args: string[], env: Record<string, string>): Promise<ServerProcess> {
  const proc = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-200_000)));
  let code: number | null | undefined;
  const exited = new Promise<number | null>((r) => proc.on('exit', (c) => r((code = c))));
  const deadline = Date.now() + 20_000;
  let ready: { url: string; port: number } | undefined;
  while (!ready) {
    if (code !== undefined) throw new Error(`the API server exited (${code}) before it listened:\n${err.slice(-4000)}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`the API server did not listen within 20 s:\n${err.slice(-4000)}`);
    }
    const line = out.split('\n').find((l) => l.startsWith('{'));
    if (line) ready = JSON.parse(line) as { url: string; port: number };
    else await new Promise((r) => setTimeout(r, 20));
  }
  return { proc, url: ready.url, port: ready.port, output: () => err, exited };
}
