import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { PebbleClient } from '../sidecar/client/index.js';
import { SIDECAR_NODE_FLAGS } from '../sidecar/node-flags.js';
import { sidecarCli } from './sidecar-location.js';

export interface SidecarProcess {
  proc: ChildProcess;
  client: PebbleClient;
  socket: string;
  dir: string;
  /** Everything the sidecar wrote (service output on stdout, its pino logs on stderr). */
  output(): string;
  /** SIGTERM (the sidecar stops its services in order), SIGKILL if it has not exited in `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
}

export interface SpawnSidecarOptions {
  dir: string;
  hold?: boolean;
  http?: string;
  env?: Record<string, string>;
  /** More `run` flags (--log-file …). */
  args?: string[];
  /** Copy the sidecar's output to ours as well (the demo does; tests keep it). */
  echo?: boolean;
  readyTimeoutMs?: number;
}

/** Starts `pgcharm-sidecar run` as a child process and waits until its API answers. */
export async function spawnSidecar(opts: SpawnSidecarOptions): Promise<SidecarProcess> {
  const socket = join(opts.dir, '.pebble.socket');
  const args = [...SIDECAR_NODE_FLAGS, sidecarCli(), 'run', '--dir', opts.dir];
  if (opts.hold) args.push('--hold');
  if (opts.http) args.push('--http', opts.http);
  args.push(...(opts.args ?? []));
  const env = { ...process.env, ...opts.env };
  delete env['PEBBLE_SOCKET'];
  const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const MAX = 4 * 1024 * 1024;
  for (const s of [proc.stdout!, proc.stderr!]) {
    s.on('data', (c: Buffer) => {
      out = (out + c.toString()).slice(-MAX);
      if (opts.echo) (s === proc.stdout ? process.stdout : process.stderr).write(c);
    });
  }
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res((exitCode = code))));
  const client = new PebbleClient({ socketPath: socket });
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  for (;;) {
    if (exitCode !== undefined) throw new Error(`sidecar exited with code ${exitCode} before it was ready:\n${out.slice(-4000)}`);
    try {
      await client.getSystemInfo();
      break;
    } catch {
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`sidecar did not answer on ${socket}:\n${out.slice(-4000)}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  return {
    proc,
    client,
    socket,
    dir: opts.dir,
    output: () => out,
    async stop(graceMs = 15_000) {
      if (exitCode !== undefined) return exitCode;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}
