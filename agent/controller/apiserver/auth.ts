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
