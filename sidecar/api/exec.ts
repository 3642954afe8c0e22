import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { WebSocketServer } from '#ws';
import type { ChangeStore } from '../changes/state.js';
import { ConnectError, ExecManager, type WebsocketId } from '../exec/manager.js';
import { ExecSetupError, resolveExec, type ExecRequest } from '../exec/setup.js';
import { parseDuration } from '../plan/duration.js';
import type { ServiceContext } from '../plan/types.js';
import { ApiError, asyncResponse, badRequest, errorEnvelope } from './response.js';
import type { RequestContext, Route, UpgradeHandler } from './router.js';

/**
 * POST /v1/exec and the task websockets, /v1/tasks/{task-id}/websocket/{control|stdio|stderr}.
 * Request decoding and HTTP errors live here; running commands is ExecManager's job.
 */
export interface ExecDeps {
  changes: ChangeStore;
  log: Logger;
  /** Returns the service's context (env, user, group, working dir) or throws Error if no such service. */
  serviceContext(name: string): ServiceContext;
  /** The manager to run commands with; by default one is made per deps object. */
  manager?: ExecManager;
  /** Pebble's 5s unless set (tests shorten it). */
  connectTimeoutMs?: number;
}

const managers = new WeakMap<ExecDeps, ExecManager>();

/** The manager shared by execRoutes(deps) and execUpgrade(deps); call shutdown() on it at exit. */
export function execManager(deps: ExecDeps): ExecManager {
  if (deps.manager) return deps.manager;
  let m = managers.get(deps);
  if (!m) {
    m = new ExecManager({ changes: deps.changes, log: deps.log, connectTimeoutMs: deps.connectTimeoutMs });
    managers.set(deps, m);
  }
  return m;
}

export function execRoutes(deps: ExecDeps): Route[] {
  const manager = execManager(deps);
  return [
    {
      method: 'POST',
      path: '/v1/exec',
      handler: async (ctx: RequestContext) => {
        const req = parseExecRequest(await ctx.json());
        let setup;
        try {
          setup = resolveExec(req, (name) => deps.serviceContext(name));
        } catch (e) {
          // Pebble's texts, prefixed with the field where they do not already name it.
          if (e instanceof ExecSetupError) {
            throw badRequest(e.message.includes(e.field) ? e.message : `${e.field}: ${e.message}`);
          }
          throw e;
        }
        // Its websockets connect next: have the server ready for them.
        await loadWebSocketServer();
        const { change, task } = manager.exec(setup);
        return asyncResponse(change.id, {
          'task-id': task.id,
          environment: setup.environment,
          'working-dir': setup.workingDir,
        });
      },
    },
  ];
}

const WEBSOCKET_PATH = /^\/v1\/tasks\/([^/]+)\/websocket\/([^/]+)$/;

/**
 * The websocket server, made when the first command is started: ws (with the zlib and crypto
 * modules it loads) costs ~2 MB of RSS that a sidecar which never runs a command
 * does not pay. Clients send raw bytes in binary frames and small JSON commands; no
 * compression (Pebble has none).
 */
let wss: WebSocketServer | undefined;
let wssLoading: Promise<WebSocketServer> | undefined;
function loadWebSocketServer(): Promise<WebSocketServer> {
  wssLoading ??= import('#ws').then((ws) => (wss = new ws.WebSocketServer({ noServer: true, perMessageDeflate: false })));
  return wssLoading;
}

export function execUpgrade(deps: ExecDeps): UpgradeHandler {
  const manager = execManager(deps);
  return (req: IncomingMessage, socket: Duplex, head: Buffer, url: URL) => {
    const m = WEBSOCKET_PATH.exec(url.pathname);
    if (!m) return false;
    let taskId: string;
    let id: string;
    try {
      taskId = decodeURIComponent(m[1]!);
      id = decodeURIComponent(m[2]!);
    } catch {
      rejectUpgrade(socket, badRequest(`invalid websocket path ${JSON.stringify(url.pathname)}`));
      return true;
    }
    const task = deps.changes.task(taskId);
    if (!task) {
      deps.log.info({ task: taskId }, 'websocket: cannot find task');
      rejectUpgrade(socket, new ApiError(404, `cannot find task ${JSON.stringify(taskId)}`, 'not-found'));
      return true;
    }
    if (task.kind !== 'exec') {
      rejectUpgrade(socket, badRequest(`${JSON.stringify(task.kind)} tasks do not have websockets`));
      return true;
    }
    try {
      manager.checkConnect(taskId, id);
    } catch (e) {
      if (!(e instanceof ConnectError)) throw e;
      deps.log.info({ task: taskId, websocket: id, reason: e.message }, 'websocket: cannot connect');
      rejectUpgrade(socket, new ApiError(e.status, e.message, e.status === 404 ? 'not-found' : undefined));
      return true;
    }
    const upgrade = (server: WebSocketServer) => server.handleUpgrade(req, socket, head, (ws) => manager.attach(taskId, id as WebsocketId, ws));
    if (wss) upgrade(wss);
    else void loadWebSocketServer().then(upgrade, (err: unknown) => rejectUpgrade(socket, new ApiError(500, `internal error: ${(err as Error).message}`)));
    return true;
  };
}

/** Answers an upgrade request with Pebble's error envelope instead of switching protocols. */
function rejectUpgrade(socket: Duplex, err: ApiError): void {
  const { status, body } = errorEnvelope(err);
  const data = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(data)}\r\n` +
      'Connection: close\r\n\r\n' +
      data,
  );
}

/**
 * Decodes Pebble's execPayload. Like Go's decoder, null means "not given" and unknown
 * fields are ignored; a value of the wrong type is an error naming the field.
 */
export function parseExecRequest(body: Record<string, unknown>): ExecRequest {
  const field = (name: string): unknown => (body[name] === null ? undefined : body[name]);
  const str = (name: string): string | undefined => {
    const v = field(name);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw badRequest(`cannot decode request body: ${JSON.stringify(name)} must be a string`);
    return v;
  };
  const bool = (name: string): boolean => {
    const v = field(name);
    if (v === undefined) return false;
    if (typeof v !== 'boolean') throw badRequest(`cannot decode request body: ${JSON.stringify(name)} must be a boolean`);
    return v;
  };
  const int = (name: string): number | undefined => {
    const v = field(name);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw badRequest(`cannot decode request body: ${JSON.stringify(name)} must be an integer`);
    }
    return v;
  };

  const command = field('command');
  if (command !== undefined && (!Array.isArray(command) || !command.every((c) => typeof c === 'string'))) {
    throw badRequest('cannot decode request body: "command" must be an array of strings');
  }
  if (!command || command.length === 0) throw badRequest('must specify command');

  const envValue = field('environment');
  const environment: Record<string, string> = {};
  if (envValue !== undefined) {
    if (typeof envValue !== 'object' || Array.isArray(envValue)) {
      throw badRequest('cannot decode request body: "environment" must be an object of strings');
    }
    for (const [k, v] of Object.entries(envValue as Record<string, unknown>)) {
      if (typeof v !== 'string') {
        throw badRequest(`cannot decode request body: "environment" value of ${JSON.stringify(k)} must be a string`);
      }
      if (k === '' || k.includes('=') || k.includes('\0') || v.includes('\0')) {
        throw badRequest(`invalid environment variable name ${JSON.stringify(k)}`);
      }
      environment[k] = v;
    }
  }

  const timeout = str('timeout');
  let timeoutMs = 0;
  if (timeout) {
    try {
      timeoutMs = parseDuration(timeout);
    } catch (e) {
      throw badRequest(`invalid timeout: ${(e as Error).message}`);
    }
    if (timeoutMs < 0) throw badRequest(`invalid timeout: ${JSON.stringify(timeout)} is negative`);
  }

  const width = int('width') ?? 0;
  const height = int('height') ?? 0;
  if (width < 0) throw badRequest('invalid width: must not be negative');
  if (height < 0) throw badRequest('invalid height: must not be negative');
  const userId = int('user-id');
  const groupId = int('group-id');
  if (userId !== undefined && userId < 0) throw badRequest('invalid user-id: must not be negative');
  if (groupId !== undefined && groupId < 0) throw badRequest('invalid group-id: must not be negative');

  const req: ExecRequest = {
    command: command as string[],
    environment,
    timeoutMs,
    terminal: bool('terminal'),
    interactive: bool('interactive'),
    splitStderr: bool('split-stderr'),
    width,
    height,
  };
  const serviceContext = str('service-context');
  const workingDir = str('working-dir');
  const user = str('user');
  const group = str('group');
  if (serviceContext) req.serviceContext = serviceContext;
  if (workingDir) req.workingDir = workingDir;
  if (user) req.user = user;
  if (group) req.group = group;
  if (userId !== undefined) req.userId = userId;
  if (groupId !== undefined) req.groupId = groupId;
  return req;
}
