#!/usr/bin/env node
import fs from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { writeKubeconfig } from '../kubeconfig.js';
import { startApiServer } from './server.js';

/**
 * The API server alone, as a process (for crash tests and debugging):
 *
 *   node dist/agent/controller/apiserver/main.js --dir D --port P --token-file F
 *
 * Prints one JSON line {"url","port","pid"} on stdout once it listens (after writing
 * --kubeconfig, when given); logs go to stderr.
 * SIGTERM/SIGINT close it cleanly; a disk failure exits 1 (the next start recovers).
 */

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
};

const program = new Command('pgcharm-apiserver')
  .requiredOption('--dir <dir>', 'store directory')
  .requiredOption('--token-file <file>', 'file holding the bearer token')
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--port <port>', 'port (0: any free one)', int, 0)
  .option('--compact-bytes <n>', 'journal size that triggers a snapshot', int)
  .option('--history <n>', 'watch events kept for resuming', int)
  .option('--bookmark-interval-ms <n>', 'interval of watch bookmarks', int)
  .option('--kubeconfig <file>', 'write a kubeconfig for this server here')
  .option('--namespace <ns>', 'the namespace of that kubeconfig', 'default')
  .option('--log-level <level>', 'pino log level', 'info');

async function main(): Promise<void> {
  program.parse();
  const o = program.opts<{
    dir: string;
    tokenFile: string;
    host: string;
    port: number;
    compactBytes?: number;
    history?: number;
    bookmarkIntervalMs?: number;
    kubeconfig?: string;
    namespace: string;
    logLevel: string;
  }>();
  const log = pino({ name: 'pgcharm-apiserver', level: o.logLevel }, pino.destination(2));
  const token = fs.readFileSync(o.tokenFile, 'utf8').trim();
  const server = await startApiServer({
    dir: o.dir,
    host: o.host,
    port: o.port,
    token,
    log,
    ...(o.compactBytes !== undefined ? { compactBytes: o.compactBytes } : {}),
    ...(o.history !== undefined ? { historyLimit: o.history } : {}),
    ...(o.bookmarkIntervalMs !== undefined ? { bookmarkIntervalMs: o.bookmarkIntervalMs } : {}),
    onFatal: (e) => {
      log.fatal({ err: e.message }, 'store failed; exiting so that a restart recovers from disk');
      process.exit(1);
    },
  });
  if (o.kubeconfig) writeKubeconfig(o.kubeconfig, { server: server.url, token, namespace: o.namespace, name: 'pgcharm-apiserver', ca: server.ca });
  process.stdout.write(`${JSON.stringify({ url: server.url, port: server.port, pid: process.pid })}\n`);
  const stop = (signal: string) => {
    log.info({ signal }, 'stopping');
    server.close().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error({ err: String(e) }, 'close failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((e: unknown) => {
  process.stderr.write(`pgcharm-apiserver: ${(e as Error).message ?? String(e)}\n`);
  process.exit(1);
});
