import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Basic-auth passwords checked against the sha512-crypt hash ("$6$...", `openssl passwd -6`) of
 * a `basic` identity, as Pebble does. The algorithm is unixcrypt's (node:crypto's SHA-512; see
 * vendor/build.mjs for the one fix our bundle carries), loaded on the first basic-auth request:
 * most sidecars never see one.
 *
 * Cost, measured in the sidecar's --lite-mode: ~5 µs a round, so 25 ms for openssl's 5000
 * rounds, and ~4 MB of RSS churn (5000 short-lived hash objects) each time. A scraper sends the
 * same credentials every few seconds, so a match is remembered as an HMAC of the password under
 * a key made at start (as Apache's mod_authn_socache does): a repeat costs microseconds, and
 * neither the password nor anything usable without this process's memory is kept.
 */

/** Above this, one check would hold the supervisor's only thread for over half a second. */
export const MAX_ROUNDS = 100_000;

/** glibc's shape: $6$[rounds=N$]salt(≤16)$ then 86 characters of the crypt alphabet. */
const SHA512_CRYPT = /^\$6\$(?:rounds=(\d{1,9})\$)?[^$]{0,16}\$[./0-9A-Za-z]{86}$/;

/** Why a stored hash can never match, or undefined when it is usable. */
export function hashProblem(hash: string): string | undefined {
  const m = SHA512_CRYPT.exec(hash);
  if (!m) return 'the password hash is not in sha512-crypt format ("$6$...", as `openssl passwd -6` makes)';
  if (m[1] !== undefined && Number(m[1]) > MAX_ROUNDS) return `the password hash has ${Number(m[1])} rounds, more than the ${MAX_ROUNDS} the sidecar verifies`;
  return undefined;
}

type Verify = (plaintext: string, hash: string) => boolean;
let loading: Promise<Verify> | undefined;

const key = randomBytes(32);
const tag = (password: string) => createHmac('sha256', key).update(password).digest();
/** Stored hash → tag of the password that last matched it; a handful of basic identities at most. */
const matched = new Map<string, Buffer>();
const MAX_REMEMBERED = 64;

/**
 * True when `password` matches the sha512-crypt `hash`. A malformed hash, or one with too many
 * rounds (hashProblem), never matches. Throws only when the library cannot be loaded.
 */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  if (hashProblem(hash)) return false;
  const known = matched.get(hash);
  if (known && timingSafeEqual(known, tag(password))) return true;
  loading ??= import('#unixcrypt').then((m) => m.verify);
  let verify: Verify;
  try {
    verify = await loading;
  } catch (e) {
    loading = undefined; // let a later request try again
    throw e;
  }
  let ok: boolean;
  try {
    ok = verify(password, hash);
  } catch {
    ok = false; // unixcrypt throws on shapes it cannot handle (the compare of unequal lengths)
  }
  if (ok) {
    if (matched.size >= MAX_REMEMBERED) matched.clear();
    matched.set(hash, tag(password));
  }
  return ok;
}
