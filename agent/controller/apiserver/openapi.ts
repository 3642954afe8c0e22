import { createHash } from 'node:crypto';
import { apiGroups, RESOURCES } from '../registry/resources.js';
import { apiVersionOf, type ResourceDef } from '../registry/types.js';

/**
 * Just enough OpenAPI for kubectl's create/apply/replace -f, which validate before they write.
 * kubectl ≥ 1.27 reads the v3 documents to learn that the server validates fields itself
 * (a `fieldValidation` query parameter on each kind's PATCH operation) and then leaves
 * validation to the server. Older kubectl validates against the v2 document, and skips kinds
 * that document does not describe, so an empty one (an empty protobuf message, since that is
 * the encoding it asks for) lets the server do all validation there too. No schemas are
 * published: `kubectl explain` has nothing to show.
 */

const param = (name: string, where: 'path' | 'query', type = 'string') => ({ name, in: where, required: where === 'path', schema: { type }, description: name });
const WRITE_PARAMS = [param('dryRun', 'query'), param('fieldManager', 'query'), param('fieldValidation', 'query')];

function operation(def: ResourceDef, action: string, parameters: unknown[] = []) {
  return {
    operationId: `${action}${def.kind}`,
    parameters,
    responses: { '200': { description: 'OK' } },
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': { group: def.group, version: def.version, kind: def.kind },
  };
}

function groupVersionDoc(group: string, version: string) {
  const defs = RESOURCES.filter((d) => d.group === group && d.version === version);
  if (defs.length === 0) return undefined;
  const prefix = group ? `/apis/${group}/${version}` : `/api/${version}`;
  const paths: Record<string, unknown> = {};
  for (const d of defs) {
    paths[`${prefix}/namespaces/{namespace}/${d.name}`] = {
      parameters: [param('namespace', 'path')],
      get: operation(d, 'list'),
      post: operation(d, 'post', WRITE_PARAMS),
      delete: operation(d, 'deletecollection'),
    };
    paths[`${prefix}/namespaces/{namespace}/${d.name}/{name}`] = {
      parameters: [param('name', 'path'), param('namespace', 'path')],
      get: operation(d, 'get'),
      put: operation(d, 'put', WRITE_PARAMS),
      patch: operation(d, 'patch', [...WRITE_PARAMS, param('force', 'query', 'boolean')]),
      delete: operation(d, 'delete', [param('dryRun', 'query')]),
    };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes (pgcharm local controller)', version: 'v1.32.0' }, paths, components: { schemas: {} } };
}

const docs = new Map<string, { body: string; hash: string }>();
for (const gv of [{ group: '', version: 'v1' }, ...apiGroups().flatMap((g) => g.versions.map((version) => ({ group: g.name, version })))]) {
  const body = JSON.stringify(groupVersionDoc(gv.group, gv.version));
  const key = gv.group ? `apis/${apiVersionOf(gv)}` : `api/${gv.version}`;
  docs.set(key, { body, hash: createHash('sha256').update(body).digest('hex').slice(0, 32).toUpperCase() });
}

/** GET /openapi/v3: where each group-version's document is. */
export function openApiV3Root() {
  return { paths: Object.fromEntries([...docs].map(([key, d]) => [key, { serverRelativeURL: `/openapi/v3/${key}?hash=${d.hash}` }])) };
}

/** GET /openapi/v3/<api/v1 | apis/group/version>, serialized. */
export function openApiV3Doc(key: string): string | undefined {
  return docs.get(key)?.body;
}

export const OPENAPI_V2_PROTOBUF = 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf';

export const openApiV2Json = { swagger: '2.0', info: { title: 'Kubernetes (pgcharm local controller)', version: 'v1.32.0' }, paths: {}, definitions: {} };
