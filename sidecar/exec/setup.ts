import { statSync } from 'node:fs';
import { DEFAULT_PATH, lookPath } from '../osutil/lookpath.js';
import { lookupUser, normalizeUidGid, userEnvironment, type Identity } from '../osutil/users.js';
import type { ServiceContext } from '../plan/types.js';

/**
 * Turning an exec request into something runnable: service context merge, user and
 * group, environment, working directory and executable lookup, following Pebble's
 * cmdstate.Exec and v1PostExec. Pure apart from reading /etc/passwd and the file system.
 */

/** A decoded and type-checked exec request (field names as in Pebble's execPayload). */
export interface ExecRequest {
  command: string[];
  serviceContext?: string;
  environment: Record<string, string>;
  workingDir?: string;
  /** 0 means no timeout. */
  timeoutMs: number;
  userId?: number;
  user?: string;
  groupId?: number;
  group?: string;
  terminal: boolean;
  interactive: boolean;
  splitStderr: boolean;
  width: number;
  height: number;
}


/** Everything needed to start the process. */
export interface ExecSetup {
  /** The command as requested (argv). */
  command: string[];
  /** command[0] resolved against PATH (or as given when it contains a slash). */
  executable: string;
  environment: Record<string, string>;
  workingDir: string;
  /** Set only when the process must run as someone other than the sidecar. */
  uid?: number;
  gid?: number;
  timeoutMs: number;
  terminal: boolean;
  interactive: boolean;
  splitStderr: boolean;
  width: number;
  height: number;
}

/** A request that cannot run; `field` is the request field at fault. */
export class ExecSetupError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

export { DEFAULT_PATH };

export function resolveExec(req: ExecRequest, serviceContext?: (name: string) => ServiceContext): ExecSetup {
  if (req.command.length === 0) throw new ExecSetupError('command', 'must specify command');
  if (req.interactive && !req.terminal) {
    throw new ExecSetupError('interactive', 'cannot use interactive mode without a terminal');
  }

  // Service context first, request fields on top (Pebble's plan.MergeServiceContext).
  let ctx: ServiceContext = { environment: {} };
  if (req.serviceContext) {
    if (!serviceContext) {
      throw new ExecSetupError('service-context', `service-context ${JSON.stringify(req.serviceContext)} not found`);
    }
    try {
      ctx = serviceContext(req.serviceContext);
    } catch (e) {
      throw new ExecSetupError(
        'service-context',
        `cannot use service-context ${JSON.stringify(req.serviceContext)}: ${(e as Error).message}`,
      );
    }
  }
  const userId = req.userId ?? ctx.userId;
  const user = req.user || ctx.user;
  const groupId = req.groupId ?? ctx.groupId;
  const group = req.group || ctx.group;
  const requestedDir = req.workingDir || ctx.workingDir;

  let identity: Identity;
  try {
    identity = normalizeUidGid({ userId, user, groupId, group });
  } catch (e) {
    throw new ExecSetupError(group && !user && userId === undefined ? 'group' : 'user', (e as Error).message);
  }

  const environment = buildEnvironment(identity, { ...ctx.environment, ...req.environment });

  // Default working directory is the target user's home, as in Pebble.
  const workingDir = requestedDir || environment.HOME || '/';
  if (requestedDir && !isDir(requestedDir)) {
    throw new ExecSetupError('working-dir', `cannot find working directory ${JSON.stringify(requestedDir)}`);
  }

  const executable = lookPath(req.command[0]!, environment.PATH ?? DEFAULT_PATH, workingDir);
  if (!executable) {
    throw new ExecSetupError('command', `cannot find executable ${JSON.stringify(req.command[0])}`);
  }

  const setup: ExecSetup = {
    command: [...req.command],
    executable,
    environment,
    workingDir,
    timeoutMs: req.timeoutMs,
    terminal: req.terminal,
    interactive: req.interactive,
    splitStderr: req.splitStderr,
    width: req.width,
    height: req.height,
  };
  // Like Pebble's osutil.IsCurrent: no credential switch when the target is ourselves.
  const isCurrent = identity.uid === process.getuid?.() && identity.gid === process.getgid?.();
  if (identity.uid !== undefined && identity.gid !== undefined && !isCurrent) {
    setup.uid = identity.uid;
    setup.gid = identity.gid;
  }
  return setup;
}

/**
 * Sidecar environment < service context < request, then PATH, HOME, USER and LANG
 * defaults (Pebble's cmdstate.Exec). When running as another user the sidecar's own
 * HOME and USER would be wrong for the child, so they are derived from that user.
 */
function buildEnvironment(identity: Identity, requested: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  if (identity.uid !== undefined && identity.uid !== process.getuid?.()) {
    delete env.HOME;
    delete env.USER;
  }
  Object.assign(env, requested);
  env.PATH ??= DEFAULT_PATH;
  const target = identity.user ?? (identity.uid === undefined ? lookupUser(process.getuid?.() ?? 0) : undefined);
  const withUser = target ? userEnvironment({ ...identity, user: target }, env) : env;
  withUser.LANG ??= 'C.UTF-8';
  return withUser;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

