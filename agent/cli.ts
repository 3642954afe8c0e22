#!/usr/bin/env node
import { Command, InvalidArgumentError } from 'commander';
import { runSingle } from './single.js';

function int(name: string, min: number, max: number) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

const program = new Command('pgcharm')
  .description('Highly available PostgreSQL, run the way a Juju Kubernetes charm runs it')
  .showHelpAfterError();

program
  .command('single')
  .description('run one PostgreSQL supervised by the sidecar (what `npm start` does until the local deployment exists)')
  .option('--home <dir>', 'state directory', process.env['PGCHARM_HOME'] ?? '/var/tmp/pgcharm')
  .option('--port <port>', 'PostgreSQL port (default: a free port)', int('--port', 1, 65535))
  .option('--major <n>', 'PostgreSQL major version', int('--major', 12, 99), 15)
  .action(async (o: { home: string; port?: number; major: number }) => {
    await runSingle(o);
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`error: ${(e as Error).message}\n`);
  process.exit(1);
});
