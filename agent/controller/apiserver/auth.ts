import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** A fresh bearer token: 32 random bytes, URL-safe. */
export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * Whether the request carries `Authorization: Bearer <token>`. Both sides are hashed first so
 * the comparison takes the same time whatever the length or content of the guess.
 */
export function hasToken(headers: IncomingHttpHeaders, token: string): boolean {
  const h = headers.authorization;
  if (typeof h !== 'string') return false;
  const given = /^Bearer\s+(\S+)\s*$/i.exec(h)?.[1] ?? '';
  return timingSafeEqual(digest(given), digest(token)) && given !== '';
}

/**
 * Who the request is: the admin token's holder, a service account (by its token), or nobody
 * (undefined: answer 401).
 */
export function identify(headers: IncomingHttpHeaders, admin: string, serviceAccounts: ReadonlyMap<string, string>): string | undefined {
  if (hasToken(headers, admin)) return 'admin';
  for (const [token, user] of serviceAccounts) if (hasToken(headers, token)) return user;
  return undefined;
}

/** One request a service account made, as RBAC sees it: verb on group/resource[/subresource]. */
export interface AuditEntry {
  time: string;
  user: string;
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/** The RBAC verb of a request on a collection or an object. */
export function rbacVerb(method: string, onObject: boolean, watch: boolean): string {
  if (watch) return 'watch';
  switch (method) {
    case 'GET':
    case 'HEAD':
      return onObject ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return onObject ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}
