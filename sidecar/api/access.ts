import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Credentials, IdentityAccess } from '../identities/identities.js';
import type { IdentityStore } from '../identities/store.js';
import { ApiError } from './response.js';

/**
 * Who may call what, as Pebble decides it (internals/daemon/access.go, api.go, daemon.go):
 * each route needs an access level; the caller is the identity its credentials name, else (on
 * the unix socket only) a default from its UID; the transport counts, since plain HTTP is not
 * concealed. The decision is a pure function (checkAccess) with a table test; AccessGuard
 * gathers a request's credentials for it.
 */

/** What a route needs: Pebble's OpenAccess, UserAccess, AdminAccess and MetricsAccess checkers. */
export type RouteAccess = 'open' | 'user' | 'admin' | 'metrics';

/** The unix socket is concealed (local); the --http listener is not. (There is no HTTPS listener.) */
export type Transport = 'unix' | 'http';

export interface User {
  access: IdentityAccess;
  /** The identity's name when one matched. */
  name?: string;
  /** The peer's UID on the unix socket. */
  uid?: number;
}

/** Exec's websockets: served as upgrades, not routes. */
export const WEBSOCKET_PATH = '/v1/tasks/{task-id}/websocket/{websocket-id}';

/**
 * Pebble's api.go, route by route (`METHOD path` as the router declares it). A route missing
 * here needs admin; a test checks that every route the daemon serves is listed. The extensions
 * Pebble lacks follow its pattern: reading is for users, changing for admins.
 */
export const ROUTE_ACCESS: Readonly<Record<string, RouteAccess>> = {
  'GET /v1/system-info': 'open',
  'GET /v1/health': 'open',
  'GET /v1/changes': 'user',
  'GET /v1/changes/{id}': 'user',
  'POST /v1/changes/{id}': 'admin',
  'GET /v1/changes/{id}/wait': 'user',
  'GET /v1/services': 'user',
  'POST /v1/services': 'admin',
  'GET /v1/plan': 'admin',
  'POST /v1/layers': 'admin',
  'GET /v1/files': 'admin', // some files are sensitive (Pebble's words)
  'POST /v1/files': 'admin',
  'GET /v1/logs': 'user',
  'POST /v1/exec': 'admin',
  [`GET ${WEBSOCKET_PATH}`]: 'admin', // used by exec, so admin (Pebble)
  'POST /v1/signals': 'admin',
  'GET /v1/checks': 'user',
  'POST /v1/checks': 'admin',
  'POST /v1/checks/refresh': 'admin',
  'GET /v1/notices': 'user',
  'POST /v1/notices': 'user', // any user may add a notice (Pebble)
  'GET /v1/notices/{id}': 'user',
  'GET /v1/identities': 'user',
  'POST /v1/identities': 'admin',
  'GET /v1/metrics': 'metrics',
  // Not in today's Pebble: warnings (older Pebble's, for ops' get_warnings) and our log level.
  'GET /v1/warnings': 'user',
  'POST /v1/warnings': 'admin',
  'GET /v1/log-level': 'user',
  'POST /v1/log-level': 'admin',
};

export const routeAccess = (method: string, path: string): RouteAccess => ROUTE_ACCESS[`${method} ${path}`] ?? 'admin';

/**
 * Pebble's access checkers. Open: anyone. User (read or admin) and admin: only over a concealed
 * transport. Metrics: a `metrics` identity over HTTP too (its basic-auth password is the only
 * secret sent in clear); over the socket metrics, read or admin.
 */
export function checkAccess(route: RouteAccess, transport: Transport, user: User | undefined): boolean {
  if (route === 'open') return true;
  if (!user) return false;
  if (route === 'metrics' && transport === 'http') return user.access === 'metrics';
  if (transport !== 'unix') return false;
  switch (route) {
    case 'admin':
      return user.access === 'admin';
    case 'user':
      return user.access === 'read' || user.access === 'admin';
    case 'metrics':
      return user.access === 'metrics' || user.access === 'read' || user.access === 'admin';
  }
}

/**
 * The caller on the unix socket whom no identity matched (Pebble's daemon.go): root and the
 * sidecar's own UID are admins, any other UID reads. One addition: with --socket-group, a peer
 * of another UID could only connect through that group (mode 0660), which is the charm
 * container being given the sidecar to drive, so it is an admin too, as it was before identities.
 */
export function defaultUser(peerUid: number, o: { daemonUid: number; socketGroup?: number }): User {
  if (peerUid === 0 || peerUid === o.daemonUid || o.socketGroup !== undefined) return { access: 'admin', uid: peerUid };
  return { access: 'read', uid: peerUid };
}

/** Go's Request.BasicAuth: "Basic " (any case) and base64 of user:password; anything else is none. */
export function parseBasicAuth(header: string | undefined): { username: string; password: string } | undefined {
  if (!header || header.length < 6 || header.slice(0, 6).toLowerCase() !== 'basic ') return undefined;
  const b64 = header.slice(6);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) return undefined;
  const text = Buffer.from(b64, 'base64').toString('utf8');
  const i = text.indexOf(':');
  if (i < 0) return undefined;
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

export const accessDenied = () => new ApiError(401, 'access denied', 'login-required');

export interface AccessGuardOptions {
  transport: Transport;
  identities: IdentityStore;
  log: Logger;
  /** The sidecar's own UID (admin on the socket, as root is). */
  daemonUid: number;
  /** --socket-group: peers of that group drive the sidecar too. */
  socketGroup?: number;
  /** The UID of a unix socket's peer; undefined when it cannot be known (no native addon). */
  peerUid?: (socket: Socket) => number | undefined;
}

/**
 * One listener's gatekeeper: finds who is calling (credentials, then the socket default) and
 * refuses with Pebble's 401 "access denied" what that caller may not do. Secrets (passwords,
 * the Authorization header) are never logged; a refused known caller is, as Pebble does.
 */
export class AccessGuard {
  constructor(private readonly o: AccessGuardOptions) {}

  get transport(): Transport {
    return this.o.transport;
  }

  /** Throws ApiError 401 unless the request may use a route that needs `access`. */
  async authorize(req: IncomingMessage, access: RouteAccess, path: string): Promise<User | undefined> {
    if (access === 'open') return undefined; // as Pebble: no identity lookup (no hashing) for open routes
    const user = await this.userOf(req);
    if (checkAccess(access, this.o.transport, user)) return user;
    if (user) this.o.log.warn({ user: user.name ?? user.uid, access: user.access, path, transport: this.o.transport }, 'access denied');
    throw accessDenied();
  }

  private async userOf(req: IncomingMessage): Promise<User | undefined> {
    const c: Credentials = {};
    const basic = parseBasicAuth(req.headers.authorization);
    if (basic) {
      c.username = basic.username;
      c.password = basic.password;
    }
    let peerUid: number | undefined;
    if (this.o.transport === 'unix') {
      peerUid = this.o.peerUid?.(req.socket);
      if (peerUid !== undefined) c.uid = peerUid;
    }
    const match = await this.o.identities.identityFromCredentials(c);
    if (match) return { access: match.identity.access, name: match.name, ...(match.identity.local && peerUid !== undefined ? { uid: peerUid } : {}) };
    if (this.o.transport !== 'unix') return undefined;
    if (peerUid !== undefined) return defaultUser(peerUid, this.o);
    // Without peer credentials (no native addon) only the socket's mode says who connected:
    // root, the owner or the socket group, all admins by the rules above. A local identity
    // might say otherwise for one of them, so with any defined nobody is trusted by default.
    return this.o.identities.hasLocal() ? undefined : { access: 'admin' };
  }
}
