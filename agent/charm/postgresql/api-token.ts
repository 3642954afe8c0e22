import { randomBytes } from 'node:crypto';

/**
 * The token units present to each other's API (agent/runtime/unit-api.ts): key `api-token` of
 * Secret `<app>-passwords`, generated with the Secret; a Secret from before it existed gets one
 * from the leader (secrets.ts: readApiToken, ensureApiToken).
 */
export const API_TOKEN_KEY = 'api-token';

/** 256 random bits, URL-safe. */
export function generateApiToken(): string {
  return randomBytes(32).toString('base64url');
}
