#!/usr/bin/env -S node --lite-mode --max-semi-space-size=1 --v8-pool-size=1 --single-threaded-gc
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CliIO } from './commands.js';
import { CliError, quickRunFlags, runOptions } from './run-flags.js';

/**
 * `pgcharm-sidecar`, the entry. A plain `run` command line (what every Postgres pod's PID 1 is
 * started with) goes straight to the daemon: commander and the client behind the other
 * subcommands (commands.ts) would cost the daemon ~2.5 MB of RSS and ~50 ms of start-up for
 * nothing. Any other command line, `run --help` or a mistyped flag included, goes through
 * commander, so help, messages and exit codes stay commander's.
 */

export type { CliIO } from './commands.js';
export { CliError } from './run-flags.js';

/** Runs one command line; returns the process exit code. */
export async function runCli(argv: readonly string[], io: Partial<CliIO> = {}): Promise<number> {
  const commands = await import('./commands.js');
  return commands.runCli(argv, io);
}

async function main(argv: readonly string[]): Promise<number> {
  const flags = argv[0] === 'run' ? quickRunFlags(argv.slice(1)) : undefined;
  if (!flags) return runCli(argv);
  try {
    const opts = runOptions(flags, process.env);
    const { runDaemon } = await import('./daemon.js');
    await runDaemon(opts);
    return 0;
  } catch (e) {
    // As runCli reports a failed `run`.
    process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    return e instanceof CliError ? e.exitCode : 1;
  }
}

function isMain(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const code = await main(process.argv.slice(2));
  // Exit explicitly: a forwarded stdin keeps the event loop alive after exec finished.
  process.stdout.write('', () => process.exit(code));
}
