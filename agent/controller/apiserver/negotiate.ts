import { notAcceptable } from '../machinery/status.js';

/**
 * Content negotiation. Responses are JSON, in one of three shapes the client can ask for
 * in Accept: the objects themselves, a meta.k8s.io Table (server-side printing, what
 * `kubectl get` asks for) or PartialObjectMetadata. Asks we cannot honour (aggregated
 * discovery, protobuf) are skipped in favour of the next acceptable entry, as client-go
 * expects; nothing acceptable at all is a 406.
 */
export type Output = { as: 'object' } | { as: 'Table'; apiVersion: string } | { as: 'PartialObjectMetadata' };

interface MediaType {
  type: string;
  params: Record<string, string>;
}

function parseAccept(accept: string): MediaType[] {
  return accept
    .split(',')
    .map((part) => {
      const [type, ...params] = part.split(';').map((s) => s.trim());
      const p: Record<string, string> = {};
      for (const kv of params) {
        const i = kv.indexOf('=');
        if (i > 0) p[kv.slice(0, i).trim()] = kv.slice(i + 1).trim().replace(/^"|"$/g, '');
      }
      return { type: (type ?? '').toLowerCase(), params: p };
    })
    .filter((m) => m.type !== '');
}

export function negotiate(accept: string | undefined): Output {
  if (!accept || accept.trim() === '') return { as: 'object' };
  for (const m of parseAccept(accept)) {
    if (m.type !== 'application/json' && m.type !== '*/*' && m.type !== 'application/*') continue;
    const { as, g, v } = m.params;
    if (as === undefined) return { as: 'object' };
    if (g !== 'meta.k8s.io') continue;
    if (as === 'Table' && (v === 'v1' || v === 'v1beta1')) return { as: 'Table', apiVersion: `meta.k8s.io/${v}` };
    if ((as === 'PartialObjectMetadata' || as === 'PartialObjectMetadataList') && v === 'v1') return { as: 'PartialObjectMetadata' };
  }
  throw notAcceptable(accept);
}
