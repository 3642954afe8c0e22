import { isObject, jsonClone, type Json, type JsonObject } from './json.js';

/**
 * JSON merge patch (RFC 7386): objects merge key by key, `null` removes a key, anything
 * else (including arrays) replaces the target value.
 */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return jsonClone(patch);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/**
 * Strategic merge patch for the types served here. ConfigMaps, Secrets, Leases and Events
 * have no lists with merge keys, so a strategic patch means the same as a merge patch once
 * its directives are dropped; for Pods (whose containers lists would merge by name in
 * Kubernetes) lists are replaced whole. `$patch: replace` on a map replaces it, `$patch: delete`
 * removes it; `$setElementOrder/…`, `$retainKeys` and `$deleteFromPrimitiveList/…` are ignored.
 */
export function strategicMergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return jsonClone(patch);
  const directive = patch['$patch'];
  if (directive === 'delete') return null;
  const base: JsonObject = directive === 'replace' || !isObject(target) ? {} : { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue;
    if (v === null) delete base[k];
    else {
      const merged = strategicMergePatch(base[k], v);
      if (merged === null) delete base[k];
      else base[k] = merged;
    }
  }
  return base;
}
