import { isObject } from '../machinery/json.js';
import type { KubeObject } from '../registry/types.js';

/**
 * One change in the store, as it is journaled: the global resourceVersion it got, and the
 * object's new state (`put`) or its removal (`del`). Replaying the records in rv order over
 * a snapshot rebuilds the state and the watch history.
 */
export type StoreRecord =
  | { rv: number; op: 'put'; res: string; ns: string; name: string; obj: KubeObject }
  | { rv: number; op: 'del'; res: string; ns: string; name: string };

/** Parses one journal line; undefined when it is not a whole, well-formed record. */
export function parseRecord(line: string): StoreRecord | undefined {
  let r: unknown;
  try {
    r = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!isObject(r)) return undefined;
  const { rv, op, res, ns, name } = r;
  if (typeof rv !== 'number' || !Number.isSafeInteger(rv) || rv <= 0) return undefined;
  if (typeof res !== 'string' || typeof ns !== 'string' || typeof name !== 'string') return undefined;
  if (op === 'del') return { rv, op, res, ns, name };
  if (op === 'put' && isObject(r['obj']) && isObject(r['obj']['metadata'])) return { rv, op, res, ns, name, obj: r['obj'] as unknown as KubeObject };
  return undefined;
}
