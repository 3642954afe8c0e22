import { findResource } from '../registry/resources.js';
import type { ResourceDef } from '../registry/types.js';

/**
 * What a request path names, following the Kubernetes URL layout:
 *
 *   /api/v1[/watch]/namespaces/{ns}/{resource}[/{name}[/{subresource}]]
 *   /api/v1[/watch]/{resource}                       (all namespaces)
 *   /apis/{group}/{version}/...                      (the same under a group)
 *   /api/v1/namespaces[/{name}]                      (implicit namespaces)
 *   /version, /api, /apis, /apis/{group}[/{version}] (discovery)
 *   /openapi/v2, /openapi/v3[/{api/v1 | apis/{group}/{version}}]
 *   /healthz, /livez, /readyz                        (health, no auth)
 */
export type ApiPath =
  | { kind: 'health' }
  | { kind: 'version' }
  | { kind: 'api' }
  | { kind: 'apis' }
  | { kind: 'group'; group: string }
  | { kind: 'resources'; group: string; version: string }
  | { kind: 'namespaces'; name?: string }
  | { kind: 'collection'; def: ResourceDef; namespace?: string; watch: boolean }
  | { kind: 'object'; def: ResourceDef; namespace: string; name: string; subresource?: string; watch: boolean }
  | { kind: 'openapi'; version: 'v2' | 'v3'; doc: string }
  | { kind: 'unknown' };

function segments(pathname: string): string[] | undefined {
  try {
    return pathname
      .split('/')
      .filter((s) => s !== '')
      .map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
}

export function parsePath(pathname: string): ApiPath {
  const s = segments(pathname);
  if (!s) return { kind: 'unknown' };
  const [a, b, c] = s;
  if (a === 'healthz' || a === 'livez' || a === 'readyz') return { kind: 'health' };
  if (a === 'version' && s.length === 1) return { kind: 'version' };
  if (a === 'openapi' && (b === 'v2' || b === 'v3')) return { kind: 'openapi', version: b, doc: s.slice(2).join('/') };
  if (a === 'api') {
    if (s.length === 1) return { kind: 'api' };
    if (b !== 'v1') return { kind: 'unknown' };
    return s.length === 2 ? { kind: 'resources', group: '', version: 'v1' } : inGroupVersion('', 'v1', s.slice(2));
  }
  if (a === 'apis') {
    if (s.length === 1) return { kind: 'apis' };
    if (s.length === 2) return { kind: 'group', group: b! };
    if (s.length === 3) return { kind: 'resources', group: b!, version: c! };
    return inGroupVersion(b!, c!, s.slice(3));
  }
  return { kind: 'unknown' };
}

function inGroupVersion(group: string, version: string, rest: string[]): ApiPath {
  let watch = false;
  if (rest[0] === 'watch') {
    watch = true;
    rest = rest.slice(1);
  }
  if (group === '' && rest[0] === 'namespaces' && rest.length <= 2) {
    return { kind: 'namespaces', ...(rest[1] !== undefined ? { name: rest[1] } : {}) };
  }
  if (rest.length === 1) {
    const def = findResource(group, version, rest[0]!);
    return def ? { kind: 'collection', def, watch } : { kind: 'unknown' };
  }
  if (rest[0] !== 'namespaces' || rest.length < 3 || rest.length > 5) return { kind: 'unknown' };
  const def = findResource(group, version, rest[2]!);
  if (!def) return { kind: 'unknown' };
  const namespace = rest[1]!;
  if (rest.length === 3) return { kind: 'collection', def, namespace, watch };
  return { kind: 'object', def, namespace, name: rest[3]!, ...(rest[4] !== undefined ? { subresource: rest[4] } : {}), watch };
}
