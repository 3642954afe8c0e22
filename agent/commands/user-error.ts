import { readFileSync } from 'node:fs';
import { parse } from '#yaml';
import { APP_NAME_RULE, validAppName } from '../runtime/names.js';

/**
 * What a command checks before it talks to a controller. Kept apart from context.ts, which
 * loads the Kubernetes client: `deploy` starts the controller first and loads the client while
 * the controller starts (both are on the path of every bootstrap).
 */

/** A user-facing failure: printed as `error: <message>`, exit code 1, no stack. */
export class UserError extends Error {
  override name = 'UserError';
}

/** An application name given as `field`: returned when valid, else an error naming the field and the rule. */
export function checkAppName(app: string, field = '--app'): string {
  if (!validAppName(app)) throw new UserError(`${field}: ${JSON.stringify(app)} is not a valid application name: ${APP_NAME_RULE}`);
  return app;
}

/** `--config-file`/`--file`: a YAML map of option: value, as `key=value` settings. */
export function settingsFromFile(path: string, flag: string): string[] {
  let doc: unknown;
  try {
    doc = parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${flag} ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new UserError(`${flag} ${path}: expected a map of option: value`);
  return Object.entries(doc as Record<string, unknown>).map(([k, v]) => {
    if (v === null || typeof v === 'object') throw new UserError(`${flag} ${path}: ${k}: expected a string, number or boolean`);
    return `${k}=${String(v)}`;
  });
}
