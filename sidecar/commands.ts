import { createReadStream, createWriteStream, readFileSync, readlinkSync, statSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { PebbleClient } from './client/client.js';
import { ChangeError } from './client/errors.js';
import { formatLogLine, formatMode, formatSize, formatTime, parseGlob, table } from './client/format.js';
import { identitiesTable, identityYaml, numItems, parseIdentitiesYaml } from './client/identities.js';
import type { CheckLevel, Identity, Ownership } from './client/types.js';
import { parseDuration } from './plan/duration.js';
import { LOG_LEVELS } from './api/system.js';
import { ROTATION_ENV } from './logs/rotate.js';
import { CliError, runOptions, type RunFlags } from './run-flags.js';

/**
 * The subcommands of `pgcharm-sidecar`: runs the sidecar (`run`) and drives it like the `pebble`
 * CLI does, same subcommands, same output, same exit codes. cli.ts, the entry, loads this module
 * for everything but a plain `run` command line.
 */

export interface CliIO {
  stdout: Writable & { isTTY?: boolean; columns?: number; rows?: number };
  stderr: Writable;
  stdin: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  env: NodeJS.ProcessEnv;
}

export { CliError };

interface State {
  exitCode: number;
}

const PROG = 'pgcharm-sidecar';

function intArg(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return Number(v);
  };
}

function durationArg(v: string): number {
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  if (ms < 0) throw new InvalidArgumentError('duration must not be negative');
  return ms;
}

function permissionsArg(v: string): string {
  if (!/^[0-7]{3,4}$/.test(v)) throw new InvalidArgumentError('permissions must be 3 or 4 octal digits, like 644');
  return v;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function addOwnership(cmd: Command, permissions: boolean): Command {
  if (permissions) cmd.addOption(new Option('-m, --permissions <octal>', 'Permissions in octal, e.g. 644').argParser(permissionsArg));
  return cmd
    .addOption(new Option('--uid <n>', 'User ID for the file').argParser(intArg('--uid')))
    .option('--user <name>', 'User name for the file (must match --uid if both given)')
    .addOption(new Option('--gid <n>', 'Group ID for the file').argParser(intArg('--gid')))
    .option('--group <name>', 'Group name for the file (must match --gid if both given)');
}

interface OwnershipFlags {
  permissions?: string;
  uid?: number;
  user?: string;
  gid?: number;
  group?: string;
}

function ownershipOf(o: OwnershipFlags): Ownership {
  const out: Ownership = {};
  if (o.permissions !== undefined) out.permissions = o.permissions;
  if (o.uid !== undefined) out.userId = o.uid;
  if (o.user !== undefined) out.user = o.user;
  if (o.gid !== undefined) out.groupId = o.gid;
  if (o.group !== undefined) out.group = o.group;
  return out;
}

/** True when fd 1 and fd 2 are the same file (a terminal): then stderr is merged on the server, as pebble does. */
function sameOutput(): boolean {
  try {
    return readlinkSync('/proc/self/fd/1') === readlinkSync('/proc/self/fd/2');
  } catch {
    return false;
  }
}

const FORWARDED_SIGNALS: NodeJS.Signals[] = [
  'SIGTERM',
  'SIGINT',
  'SIGQUIT',
  'SIGTSTP',
  'SIGTTIN',
  'SIGTTOU',
  'SIGUSR1',
  'SIGUSR2',
  'SIGCONT',
];

/** Builds the command tree; exported so tests can drive it with parseAsync. */
export function buildProgram(io: CliIO, state: State = { exitCode: 0 }): Command {
  const out = (s: string) => void io.stdout.write(s);
  const client = () => PebbleClient.fromEnvironment(io.env);
  const absTime = () => new Option('--abs-time', 'Display absolute times (RFC 3339) instead of relative ones');

  const program = new Command(PROG)
    .description('Pebble-compatible service supervisor for pgcharm containers')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showSuggestionAfterError();

  async function waitFor(c: PebbleClient, id: string, noWait: boolean | undefined): Promise<void> {
    if (noWait) {
      out(`${id}\n`);
      return;
    }
    await c.waitChange(id);
  }

  program
    .command('run')
    .description('Run the sidecar: supervise the services of the layers in DIR and serve the API')
    .option('--dir <dir>', 'Sidecar directory with layers/ (default $PEBBLE)')
    .option('--hold', 'Do not start the default services automatically')
    .option('--http <address>', 'Also serve the API over HTTP on host:port')
    .option('--socket-group <gid>', 'Also let this group (numeric gid) use the socket: mode 0660 (default: owner only, 0600)')
    .option('--log-level <level>', `Level of the sidecar's own log: ${LOG_LEVELS.join(', ')} (default $PEBBLE_LOG_LEVEL, else info; POST /v1/log-level changes it while running)`)
    .option('--log-file <path>', "Write the sidecar's log and the services' output to this file, rotated by size, instead of stderr and stdout")
    .option('--log-max-size <size>', `With --log-file: rotate past this size, e.g. 512K, 10M (default $${ROTATION_ENV.maxSize}, else 10M)`)
    .option('--log-max-files <n>', `With --log-file: rotated files kept, FILE.1 … FILE.n (default $${ROTATION_ENV.maxFiles}, else 3)`)
    .action(async (o: RunFlags) => {
      const opts = runOptions(o, io.env);
      // Loaded lazily: client commands should not pay for (or depend on) the daemon's modules.
      const { runDaemon } = await import('./daemon.js');
      await runDaemon(opts);
    });

  program
    .command('plan')
    .description('Show the plan with layers combined')
    .action(async () => {
      const plan = await client().getPlan();
      out(plan.endsWith('\n') || plan === '' ? plan : `${plan}\n`);
    });

  program
    .command('services')
    .description('Query the status of configured services')
    .argument('[service...]')
    .addOption(absTime())
    .action(async (names: string[], o: { absTime?: boolean }) => {
      const services = await client().getServices(names);
      if (services.length === 0) {
        io.stderr.write(names.length ? 'No matching services.\n' : 'Plan has no services.\n');
        return;
      }
      const rows = [['Service', 'Startup', 'Current', 'Since']];
      for (const s of services) rows.push([s.name, s.startup, s.current, formatTime(s['current-since'], !!o.absTime)]);
      out(table(rows));
    });

  for (const action of ['start', 'stop', 'restart'] as const) {
    program
      .command(action)
      .description(`${action[0]!.toUpperCase()}${action.slice(1)} services and wait for the change`)
      .argument('<service...>')
      .option('--no-wait', 'Do not wait for the operation to finish; print the change id')
      .action(async (names: string[], o: { wait: boolean }) => {
        const c = client();
        await waitFor(c, await c[action](names), !o.wait);
      });
  }

  program
    .command('replan')
    .description('Ensure running services match the current plan')
    .option('--no-wait', 'Do not wait for the operation to finish; print the change id')
    .action(async (o: { wait: boolean }) => {
      const c = client();
      await waitFor(c, await c.replan(), !o.wait);
    });

  program
    .command('add')
    .description('Add a layer to the plan')
    .argument('<label>')
    .argument('<layer-path>')
    .option('--combine', 'Combine the new layer with an existing layer that has the given label')
    .action(async (label: string, path: string, o: { combine?: boolean }) => {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (e) {
        throw new CliError(`cannot read layer file ${JSON.stringify(path)}: ${(e as Error).message}`);
      }
      await client().addLayer(label, text, { combine: !!o.combine });
      out(`Layer ${JSON.stringify(label)} added successfully from ${JSON.stringify(path)}\n`);
    });

  const levelOption = () =>
    new Option('--level <level>', 'Check level to filter for').choices(['alive', 'ready'] as const);

  program
    .command('checks')
    .description('Query the status of configured health checks')
    .argument('[check...]')
    .addOption(levelOption())
    .action(async (names: string[], o: { level?: CheckLevel }) => {
      const checks = await client().getChecks({ level: o.level, names });
      if (checks.length === 0) {
        io.stderr.write(names.length || o.level ? 'No matching health checks.\n' : 'Plan has no health checks.\n');
        return;
      }
      const rows = [['Check', 'Level', 'Status', 'Failures', 'Change']];
      for (const ch of checks) {
        rows.push([ch.name, ch.level || '-', ch.status, `${ch.failures}/${ch.threshold}`, ch['change-id'] || '-']);
      }
      out(table(rows));
    });

  program
    .command('health')
    .description('Query health of checks (exit code 1 when unhealthy)')
    .argument('[check...]')
    .addOption(levelOption())
    .addOption(new Option('--format <format>', 'Output format').choices(['text', 'json']).default('text'))
    .action(async (names: string[], o: { level?: CheckLevel; format: string }) => {
      const health = await client().getHealth({ level: o.level, names });
      out(o.format === 'json' ? `${JSON.stringify({ healthy: health.healthy })}\n` : health.healthy ? 'healthy\n' : 'unhealthy\n');
      if (!health.healthy) state.exitCode = 1;
    });

  program
    .command('logs')
    .description('Fetch service logs')
    .argument('[service...]')
    .option('-f, --follow', 'Follow (tail) the logs until Ctrl-C')
    .option('-n <n>', 'Number of logs to show (before following); "all" for all buffered logs', '30')
    .addOption(new Option('--format <format>', 'Output format').choices(['text', 'json']).default('text'))
    .action(async (services: string[], o: { follow?: boolean; n: string; format: string }) => {
      let n: number;
      if (o.n === 'all') n = -1;
      else if (/^\d+$/.test(o.n)) n = Number(o.n);
      else throw new CliError(`expected n to be a non-negative integer or "all", not ${JSON.stringify(o.n)}`);
      const write = (e: { time: string; service: string; message: string }) =>
        out(o.format === 'json' ? `${JSON.stringify(e)}\n` : formatLogLine(e));
      const c = client();
      if (!o.follow) {
        for (const e of await c.getLogs({ services, n })) write(e);
        return;
      }
      const abort = new AbortController();
      const stop = () => abort.abort();
      process.once('SIGINT', stop);
      try {
        for await (const e of c.followLogs({ services, n, signal: abort.signal })) write(e);
      } finally {
        process.off('SIGINT', stop);
      }
    });

  const exec = program
    .command('exec')
    .description('Execute a remote command and wait for it to finish')
    .argument('<command...>')
    .passThroughOptions()
    .option('-w <dir>', 'Working directory to run command in')
    .option('--env <K=V>', 'Environment variable to set (repeatable)', collect, [])
    .addOption(new Option('--uid <n>', 'User ID to run command as').argParser(intArg('--uid')))
    .option('--user <name>', "Username to run command as (user's UID must match uid if both present)")
    .addOption(new Option('--gid <n>', 'Group ID to run command as').argParser(intArg('--gid')))
    .option('--group <name>', "Group name to run command as (group's GID must match gid if both present)")
    .addOption(new Option('--timeout <duration>', 'Timeout after which to terminate command').argParser(durationArg))
    .option('--context <service>', "Inherit the service's environment, user, group and working directory")
    .option('-t', 'Allocate remote pseudo-terminal and connect stdout to it (default if stdout is a TTY)')
    .option('-T', 'Disable remote pseudo-terminal allocation')
    .option('-i', 'Interactive mode: connect stdin to the pseudo-terminal (default if stdin and stdout are TTYs)')
    .option('-I', 'Disable interactive mode and use a pipe for stdin');
  exec.action(async (command: string[], o: ExecFlags) => {
    state.exitCode = await runExec(io, client(), command, o);
  });

  addOwnership(
    program
      .command('push')
      .description('Transfer a file to the remote system')
      .argument('<local-path>')
      .argument('<remote-path>')
      .option('-p, --make-dirs', 'Create parent directories for the file'),
    true,
  ).action(async (local: string, remote: string, o: { makeDirs?: boolean } & OwnershipFlags) => {
    try {
      if (!statSync(local).isFile()) throw new Error('not a regular file');
    } catch (e) {
      throw new CliError(`cannot read ${JSON.stringify(local)}: ${(e as Error).message}`);
    }
    await client().push(remote, createReadStream(local), { makeDirs: !!o.makeDirs, ...ownershipOf(o) });
  });

  program
    .command('pull')
    .description('Retrieve a file from the remote system')
    .argument('<remote-path>')
    .argument('<local-path>')
    .action(async (remote: string, local: string) => {
      const stream = await client().pullStream(remote);
      await pipeline(stream, createWriteStream(local));
    });

  program
    .command('ls')
    .description('List path contents')
    .argument('<path>')
    .option('-d', 'List matching entries themselves, not directory contents')
    .option('-l', 'Use a long listing format')
    .addOption(absTime())
    .action(async (path: string, o: { d?: boolean; l?: boolean; absTime?: boolean }) => {
      let glob;
      try {
        glob = parseGlob(path);
      } catch (e) {
        throw new CliError((e as Error).message);
      }
      const files = await client().listFiles(glob.path, { pattern: glob.pattern, itself: !!o.d });
      if (!o.l) {
        out(files.map((f) => `${f.name}\n`).join(''));
        return;
      }
      const rows = files.map((f) => [
        formatMode(f),
        f.user ?? String(f['user-id'] ?? '-'),
        f.group ?? String(f['group-id'] ?? '-'),
        f.type === 'file' ? formatSize(f.size ?? 0).padStart(6) : '     -',
        formatTime(f['last-modified'], !!o.absTime),
        f.name,
      ]);
      out(table(rows));
    });

  addOwnership(
    program
      .command('mkdir')
      .description('Create a directory')
      .argument('<path>')
      .option('-p', 'Create parent directories as needed'),
    true,
  ).action(async (path: string, o: { p?: boolean } & OwnershipFlags) => {
    await client().makeDir(path, { makeParents: !!o.p, ...ownershipOf(o) });
  });

  program
    .command('rm')
    .description('Remove a file or directory')
    .argument('<path>')
    .option('-r', 'Remove all content under the directory too')
    .action(async (path: string, o: { r?: boolean }) => {
      await client().removePath(path, { recursive: !!o.r });
    });

  program
    .command('signal')
    .description('Send a signal to one or more running services')
    .argument('<signal>')
    .argument('<service...>')
    .action(async (sig: string, services: string[]) => {
      let name = sig.toUpperCase();
      if (!name.startsWith('SIG')) name = `SIG${name}`;
      await client().sendSignal(name, services);
    });

  program
    .command('changes')
    .description('List system changes')
    .argument('[service]')
    .addOption(absTime())
    .action(async (service: string | undefined, o: { absTime?: boolean }) => {
      if (service && /^\d+$/.test(service)) {
        throw new CliError(`'${PROG} changes' command expects a service name, try '${PROG} tasks ${service}'`);
      }
      const changes = await client().getChanges({ select: 'all', service });
      if (changes.length === 0) throw new CliError('no changes found');
      changes.sort((a, b) => Date.parse(a['spawn-time']) - Date.parse(b['spawn-time']));
      const rows = [['ID', 'Status', 'Spawn', 'Ready', 'Summary']];
      for (const ch of changes) {
        rows.push([ch.id, ch.status, formatTime(ch['spawn-time'], !!o.absTime), formatTime(ch['ready-time'], !!o.absTime), ch.summary]);
      }
      out(`${table(rows)}\n`);
    });

  program
    .command('tasks')
    .description("List a change's tasks")
    .argument('<change-id>')
    .addOption(absTime())
    .action(async (id: string, o: { absTime?: boolean }) => {
      const ch = await client().getChange(id);
      const rows = [['Status', 'Spawn', 'Ready', 'Summary']];
      for (const t of ch.tasks) {
        let summary = t.summary;
        if (t.status === 'Doing' && t.progress.total > 1) {
          summary += ` (${((t.progress.done / t.progress.total) * 100).toFixed(2)}%)`;
        }
        rows.push([t.status, formatTime(t['spawn-time'], !!o.absTime), formatTime(t['ready-time'], !!o.absTime), summary]);
      }
      let text = table(rows);
      for (const t of ch.tasks) {
        if (!t.log?.length) continue;
        text += `\n${'.'.repeat(70)}\n${t.summary}\n\n${t.log.join('\n')}\n`;
      }
      out(`${text}\n`);
    });

  program
    .command('notify')
    .description('Record a custom notice')
    .argument('<key>', 'Notice key, in "example.com/path" form')
    .argument('[data...]', 'key=value data for this occurrence')
    .addOption(new Option('--repeat-after <duration>', 'Do not repeat the notice within this duration').argParser(durationArg))
    .action(async (key: string, pairs: string[], o: { repeatAfter?: number }) => {
      const data: Record<string, string> = {};
      for (const p of pairs) {
        const i = p.indexOf('=');
        if (i <= 0) throw new CliError(`data args must be in key=value format, not ${JSON.stringify(p)}`);
        data[p.slice(0, i)] = p.slice(i + 1);
      }
      const id = await client().notify({ key, data, repeatAfterMs: o.repeatAfter });
      out(`Recorded notice ${id}\n`);
    });

  program
    .command('notices')
    .description('List notices')
    .option('--type <type>', 'Only list notices of this type (repeatable)', collect, [])
    .option('--key <key>', 'Only list notices with this key (repeatable)', collect, [])
    .addOption(new Option('--timeout <duration>', 'Wait up to this long for matching notices').argParser(durationArg))
    .addOption(absTime())
    .action(async (o: { type: string[]; key: string[]; timeout?: number; absTime?: boolean }) => {
      const notices = await client().getNotices({ types: o.type, keys: o.key, timeoutMs: o.timeout || undefined });
      if (notices.length === 0) {
        io.stderr.write('No matching notices.\n');
        return;
      }
      const rows = [['ID', 'Type', 'Key', 'First', 'Repeated', 'Occurrences']];
      for (const n of notices) {
        const key = n.key.length > 32 ? `${n.key.slice(0, 14)}...${n.key.slice(-15)}` : n.key;
        rows.push([
          n.id,
          n.type,
          key,
          formatTime(n['first-occurred'], !!o.absTime),
          formatTime(n['last-repeated'], !!o.absTime),
          String(n.occurrences),
        ]);
      }
      out(table(rows));
    });

  const formatOption = () => new Option('--format <format>', 'Output format').choices(['text', 'json', 'yaml']).default('text');

  program
    .command('identities')
    .description('List identities (identity, add-identities, update-identities and remove-identities manage them)')
    .addOption(formatOption())
    .action(async (o: { format: string }) => {
      const identities = await client().getIdentities();
      if (o.format === 'json') out(`${JSON.stringify({ identities })}\n`);
      else if (o.format === 'yaml') out(identityYaml({ identities }));
      else if (Object.keys(identities).length === 0) io.stderr.write('No identities.\n');
      else out(identitiesTable(identities));
    });

  program
    .command('identity')
    .description('Show a single identity')
    .argument('<name>')
    .addOption(formatOption())
    .action(async (name: string, o: { format: string }) => {
      const identities = await client().getIdentities();
      if (!Object.hasOwn(identities, name)) throw new CliError(`cannot find identity ${JSON.stringify(name)}`);
      const identity = identities[name];
      out(o.format === 'json' ? `${JSON.stringify(identity)}\n` : identityYaml(identity));
    });

  const readIdentities = (path: string): Record<string, Identity | null> => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new CliError(`open ${path}: ${/^\w+: ([^,]*)/.exec((e as Error).message)?.[1] ?? (e as Error).message}`);
    }
    try {
      return parseIdentitiesYaml(text);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  };
  const fromOption = () => new Option('--from <file>', 'Path of YAML file to read identities from (required)').makeOptionMandatory();
  const nonNull = (identities: Record<string, Identity | null>, action: string): Record<string, Identity> => {
    for (const [name, identity] of Object.entries(identities)) {
      if (identity === null) throw new CliError(`identity value for ${JSON.stringify(name)} must not be null for ${action} operation`);
    }
    return identities as Record<string, Identity>;
  };

  program
    .command('add-identities')
    .description('Add new identities (YAML: identities: {NAME: {access: admin|read|metrics|untrusted, local: {user-id: UID} | basic: {password: HASH}}}; hash passwords with `openssl passwd -6`)')
    .addOption(fromOption())
    .action(async (o: { from: string }) => {
      const identities = nonNull(readIdentities(o.from), 'add');
      await client().addIdentities(identities);
      out(`Added ${numItems(Object.keys(identities).length, 'new identity', 'new identities')}.\n`);
    });

  program
    .command('update-identities')
    .description('Update or replace identities (with --replace: add those missing, remove those given as null)')
    .addOption(fromOption())
    .option('--replace', 'Replace (add or update) identities; remove null identities')
    .action(async (o: { from: string; replace?: boolean }) => {
      const identities = readIdentities(o.from);
      const n = Object.keys(identities).length;
      if (o.replace) {
        await client().replaceIdentities(identities);
        out(`Replaced ${numItems(n, 'identity', 'identities')}.\n`);
      } else {
        await client().updateIdentities(nonNull(identities, 'update'));
        out(`Updated ${numItems(n, 'identity', 'identities')}.\n`);
      }
    });

  program
    .command('remove-identities')
    .description('Remove identities (each given as null in the YAML)')
    .addOption(fromOption())
    .action(async (o: { from: string }) => {
      const identities = readIdentities(o.from);
      for (const [name, identity] of Object.entries(identities)) {
        if (identity !== null) throw new CliError(`identity value for ${JSON.stringify(name)} must be null for remove operation`);
      }
      await client().removeIdentities(Object.keys(identities));
      out(`Removed ${numItems(Object.keys(identities).length, 'identity', 'identities')}.\n`);
    });

  return program;
}

interface ExecFlags {
  w?: string;
  env: string[];
  uid?: number;
  user?: string;
  gid?: number;
  group?: string;
  timeout?: number;
  context?: string;
  t?: boolean;
  T?: boolean;
  i?: boolean;
  I?: boolean;
}

/** `pebble exec`: our stdin in, its stdout/stderr out, signals and window size forwarded; returns its exit code. */
async function runExec(io: CliIO, c: PebbleClient, command: string[], o: ExecFlags): Promise<number> {
  if (o.t && o.T) throw new CliError('cannot use -t and -T at the same time');
  if (o.i && o.I) throw new CliError('cannot use -i and -I at the same time');
  const environment: Record<string, string> = {};
  if (io.env['TERM']) environment['TERM'] = io.env['TERM'];
  for (const kv of o.env) {
    const i = kv.indexOf('=');
    if (i === 0) throw new CliError(`--env: ${JSON.stringify(kv)} has no variable name`);
    if (i < 0) environment[kv] = '';
    else environment[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const stdoutTTY = !!io.stdout.isTTY;
  const stdinTTY = !!io.stdin.isTTY;
  const terminal = o.t ? true : o.T ? false : stdoutTTY;
  const interactive = o.i ? true : o.I ? false : stdinTTY && stdoutTTY;
  const split = !(io.stdout === process.stdout && io.stderr === process.stderr && sameOutput());

  const raw = terminal && stdinTTY && typeof io.stdin.setRawMode === 'function';
  if (raw) io.stdin.setRawMode!(true);
  const handlers: [NodeJS.Signals, () => void][] = [];
  let onResize: (() => void) | undefined;
  try {
    const proc = await c.exec(command, {
      environment,
      workingDir: o.w,
      timeoutMs: o.timeout || undefined,
      userId: o.uid,
      user: o.user,
      groupId: o.gid,
      group: o.group,
      serviceContext: o.context,
      terminal,
      interactive,
      splitStderr: split,
      width: stdoutTTY ? io.stdout.columns : undefined,
      height: stdoutTTY ? io.stdout.rows : undefined,
      stdin: io.stdin,
      stdout: io.stdout,
      stderr: split ? io.stderr : undefined,
    });
    let hangup: () => void = () => {};
    const hungUp = new Promise<number>((resolve) => (hangup = () => resolve(0)));
    for (const sig of FORWARDED_SIGNALS) {
      const h = () => void proc.sendSignal(sig);
      handlers.push([sig, h]);
      process.on(sig, h);
    }
    const onHup = () => {
      proc.sendSignal('SIGHUP');
      // \r because the terminal may be in raw mode. Exit 0, as ssh does.
      io.stderr.write('SIGHUP received, exiting\r\n');
      hangup();
    };
    handlers.push(['SIGHUP', onHup]);
    process.on('SIGHUP', onHup);
    if (terminal && stdoutTTY) {
      onResize = () => void proc.resize(io.stdout.columns ?? 80, io.stdout.rows ?? 25);
      io.stdout.on('resize', onResize);
    }
    return await Promise.race([proc.wait(), hungUp]);
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
    if (onResize) io.stdout.off('resize', onResize);
    if (raw) io.stdin.setRawMode!(false);
  }
}

function describe(e: unknown): string {
  // Pebble prints only the change's err, not the task logs that ChangeError.message carries.
  if (e instanceof ChangeError) return e.err;
  return e instanceof Error ? e.message : String(e);
}

/** Runs one command line; returns the process exit code. */
export async function runCli(argv: readonly string[], io: Partial<CliIO> = {}): Promise<number> {
  const full: CliIO = {
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    stdin: io.stdin ?? process.stdin,
    env: io.env ?? process.env,
  };
  const state: State = { exitCode: 0 };
  const program = buildProgram(full, state);
  if (argv.length === 0) {
    program.outputHelp({ error: true });
    return 1;
  }
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return state.exitCode;
  } catch (e) {
    // Commander has printed its own "error: ..." (or the help) already.
    if (e instanceof CommanderError) return e.exitCode;
    full.stderr.write(`error: ${describe(e)}\n`);
    return e instanceof CliError ? e.exitCode : 1;
  }
}
