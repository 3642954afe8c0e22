import { LOG_LEVELS } from './api/system.js';
import { rotationFrom, type Rotation } from './logs/rotate.js';

/** A failure to report as `error: <message>` (exit code 1 unless given). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** The flags of `pgcharm-sidecar run`, as given (commander's option names). */
export interface RunFlags {
  dir?: string;
  hold?: boolean;
  http?: string;
  socketGroup?: string;
  logLevel?: string;
  logFile?: string;
  logMaxSize?: string;
  logMaxFiles?: string;
}

/** What runDaemon takes, from the flags and the environment (daemon.ts's DaemonOptions, without its test-only fields). */
export interface RunOptions {
  dir: string;
  hold: boolean;
  logLevel: string;
  http?: string;
  socketGroup?: number;
  logFile?: { path: string; limits: Rotation };
}

/** Checks the flags of `run` and fills in the defaults from the environment. */
export function runOptions(o: RunFlags, env: NodeJS.ProcessEnv): RunOptions {
  const dir = o.dir ?? env['PEBBLE'];
  if (!dir) throw new CliError('--dir: no sidecar directory given and $PEBBLE is not set');
  const group = o.socketGroup ?? env['PEBBLE_SOCKET_GROUP'];
  if (group !== undefined && !/^[0-9]+$/.test(group)) throw new CliError(`--socket-group: must be a numeric gid, got ${JSON.stringify(group)}`);
  const level = o.logLevel ?? env['PEBBLE_LOG_LEVEL'] ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new CliError(`--log-level: must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(level)}`);
  let logFile: { path: string; limits: Rotation } | undefined;
  if (!o.logFile && (o.logMaxSize !== undefined || o.logMaxFiles !== undefined)) throw new CliError('--log-max-size and --log-max-files go with --log-file');
  if (o.logFile) {
    try {
      logFile = { path: o.logFile, limits: rotationFrom({ maxSize: o.logMaxSize, maxFiles: o.logMaxFiles }, env) };
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  }
  return { dir, hold: o.hold ?? false, logLevel: level, ...(o.http ? { http: o.http } : {}), ...(group !== undefined ? { socketGroup: Number(group) } : {}), ...(logFile ? { logFile } : {}) };
}

const VALUE_FLAGS: Record<string, keyof RunFlags> = {
  '--dir': 'dir',
  '--http': 'http',
  '--socket-group': 'socketGroup',
  '--log-level': 'logLevel',
  '--log-file': 'logFile',
  '--log-max-size': 'logMaxSize',
  '--log-max-files': 'logMaxFiles',
};

/**
 * The flags of a plain `run` command line (the arguments after `run`): known flags, each once,
 * as `--flag value` or `--flag=value`. Anything else (help, an unknown or repeated flag, a value
 * that looks like a flag) gives undefined: commander then parses it, with its own messages.
 */
export function quickRunFlags(args: readonly string[]): RunFlags | undefined {
  const flags: RunFlags = {};
  const seen = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (seen.has(name)) return undefined;
    seen.add(name);
    if (name === '--hold' && eq < 0) {
      flags.hold = true;
      continue;
    }
    const key = VALUE_FLAGS[name];
    if (!key) return undefined;
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined || value === '' || value.startsWith('-')) return undefined;
    (flags as Record<string, string>)[key] = value;
  }
  return flags;
}
