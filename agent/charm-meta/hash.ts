import { createHash } from 'node:crypto';
import type { ConfigValues } from './values.js';

/**
 * The "applied-config hash": sha256 (hex) of the config with keys sorted, so it depends only on
 * the keys and typed values (15 and "15" differ), never on the order they were written in.
 */
export function configHash(values: ConfigValues): string {
  const canonical = JSON.stringify(Object.keys(values).sort().map((k) => [k, values[k]]));
  return createHash('sha256').update(canonical).digest('hex');
}
