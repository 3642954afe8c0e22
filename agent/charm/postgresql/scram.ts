import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * A SCRAM-SHA-256 verifier as PostgreSQL stores it (RFC 5802/7677, pg's scram_build_secret).
 * Roles get this instead of the password itself, so neither the SQL text nor a server log line
 * (a failed statement is logged with its text) ever holds a password.
 */
export function scramVerifier(password: string, iterations = 4096, salt = randomBytes(16)): string {
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** Passwords the charm generates: 24 URL-safe characters (144 bits). */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

/**
 * Whether `password` is the one a role's stored secret (pg_authid.rolpassword) was made from:
 * a SCRAM-SHA-256 verifier (recomputed with its salt and iterations) or an md5 hash. Lets the
 * charm tell which of two passwords a role has without logging in as it.
 */
export function passwordMatches(stored: string | null, role: string, password: string): boolean {
  if (!stored) return false;
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(stored);
  if (m) return timingSafeEqualText(scramVerifier(password, Number(m[1]), Buffer.from(m[2]!, 'base64')), stored);
  if (/^md5[0-9a-f]{32}$/.test(stored)) return timingSafeEqualText('md5' + createHash('md5').update(password + role).digest('hex'), stored);
  return false;
}

function timingSafeEqualText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
