import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { badRequest, internalError, methodNotAllowed, pathNotFound, StatusError, unauthorized } from '../machinery/status.js';
import { namespaceTable } from '../registry/namespaces.js';
import type { Registry, WriteOptions } from '../registry/registry.js';
import type { KubeObject } from '../registry/types.js';
import { identify, rbacVerb, type AuditEntry } from './auth.js';
import { decodeBody, decodePatch, patchType, readBody } from './body.js';
import { apiGroup, apiGroupList, apiResourceList, apiVersions, SERVER_VERSION } from './discovery.js';
import { negotiate } from './negotiate.js';
import { OPENAPI_V2_PROTOBUF, openApiV2Json, openApiV3Doc, openApiV3Root } from './openapi.js';
import { parsePath, type ApiPath } from './paths.js';
import { boolParam, deleteOptions, includeObject, intParam, listOptions, writeOptions } from './query.js';
import { shapeList, shapeObject, writeJson, writeText, type Shape } from './respond.js';
import { serveWatch } from './watch.js';

/**
 * The HTTP layer, kept thin: authenticate, work out what the path names, parse the query
 * and body, call the Registry, write the answer. Health probes and /version need no token,
 * as on a real API server with anonymous access to public info; everything else does.
 */

export interface HandlerContext {
  registry: Registry;
  token: string;
  /** Further bearer tokens, each a service account's (token -> user name). */
  serviceAccounts: ReadonlyMap<string, string>;
  /** Called with every resource request a service account makes (what RBAC would check). */
  audit?: (e: AuditEntry) => void;
  log: Logger;
  bookmarkIntervalMs: number;
  /** Open watch streams, ended when the server closes. */
  active: Set<() => void>;
  /** host:port as clients reach the server, for /api's serverAddressByClientCIDRs. */
  address(): string;
}

export function createHandler(ctx: HandlerContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    res.on('finish', () => {
      ctx.log.debug({ method: req.method, path: url.pathname, code: res.statusCode, ms: Math.round(performance.now() - started) }, 'request');
    });
    handle(ctx, req, res, url).catch((e: unknown) => {
      const err = e instanceof StatusError ? e : internalError((e as Error)?.message ?? String(e));
      if (!(e instanceof StatusError)) ctx.log.error({ err: (e as Error)?.message, method: req.method, path: url.pathname }, 'request failed');
      if (res.headersSent) res.destroy();
      else writeJson(res, err.code, err.toStatus());
    });
  };
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

async function handle(ctx: HandlerContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const path = parsePath(url.pathname);
  const method = req.method ?? 'GET';
  if (path.kind === 'health') {
    if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed();
    return writeText(res, 200, 'ok');
  }
  const user = path.kind === 'version' ? 'anonymous' : identify(req.headers, ctx.token, ctx.serviceAccounts);
  if (!user) throw unauthorized();
  if (path.kind === 'unknown') throw pathNotFound();
  if (ctx.audit && user !== 'admin' && (path.kind === 'collection' || path.kind === 'object')) {
    ctx.audit({
      time: new Date().toISOString(),
      user,
      verb: rbacVerb(method, path.kind === 'object', path.watch || (method === 'GET' && boolParam(url.searchParams, 'watch') === true)),
      group: path.def.group,
      resource: path.def.name,
      ...(path.kind === 'object' && path.subresource ? { subresource: path.subresource } : {}),
      ...(path.namespace ? { namespace: path.namespace } : {}),
      ...(path.kind === 'object' ? { name: path.name } : {}),
    });
  }
  if (path.kind !== 'collection' && path.kind !== 'object' && method !== 'GET') throw methodNotAllowed();
  const body = BODY_METHODS.has(method) ? await readBody(req) : undefined;
  switch (path.kind) {
    case 'version':
      return writeJson(res, 200, SERVER_VERSION);
    case 'api':
      return writeJson(res, 200, apiVersions(ctx.address()));
    case 'apis':
      return writeJson(res, 200, apiGroupList());
    case 'group':
      return writeJson(res, 200, apiGroup(path.group) ?? notFoundPath());
    case 'resources':
      return writeJson(res, 200, apiResourceList(path.group, path.version) ?? notFoundPath());
    case 'namespaces':
      return namespaces(ctx, req, res, url, path);
    case 'openapi':
      return openapi(req, res, path);
    case 'collection':
      return collection(ctx, req, res, url, path, body);
    case 'object':
      return object(ctx, req, res, url, path, body);
  }
}

function notFoundPath(): never {
  throw pathNotFound();
}

function shapeFor(req: IncomingMessage, url: URL, def: { table: Shape['table'] }): Shape {
  return { output: negotiate(req.headers.accept), include: includeObject(url.searchParams), table: def.table };
}

function openapi(req: IncomingMessage, res: ServerResponse, path: Extract<ApiPath, { kind: 'openapi' }>): void {
  if (path.version === 'v2') {
    if (path.doc !== '') throw pathNotFound();
    if ((req.headers.accept ?? '').includes(OPENAPI_V2_PROTOBUF)) {
      // An empty OpenAPIv2 Document message: kubectl then finds no schema and leaves validation to us.
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': 0 }); // as kube-openapi labels it
      res.end();
      return;
    }
    return writeJson(res, 200, openApiV2Json);
  }
  if (path.doc === '') return writeJson(res, 200, openApiV3Root());
  const doc = openApiV3Doc(path.doc);
  if (doc === undefined) throw pathNotFound();
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(doc) });
  res.end(doc);
}

function namespaces(ctx: HandlerContext, req: IncomingMessage, res: ServerResponse, url: URL, path: Extract<ApiPath, { kind: 'namespaces' }>): void {
  const shape = shapeFor(req, url, { table: namespaceTable });
  if (boolParam(url.searchParams, 'watch')) throw new StatusError(405, 'MethodNotAllowed', 'namespaces are implicit here and cannot be watched');
  if (path.name !== undefined) return writeJson(res, 200, shapeObject(ctx.registry.namespace(path.name), shape));
  writeJson(res, 200, shapeList(ctx.registry.namespaces(), shape));
}

async function collection(
  ctx: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  path: Extract<ApiPath, { kind: 'collection' }>,
  body: Buffer | undefined,
): Promise<void> {
  const { def, namespace } = path;
  const q = url.searchParams;
  const method = req.method;
  if (method === 'GET') {
    const shape = shapeFor(req, url, def);
    const list = listOptions(q, namespace);
    if (path.watch || boolParam(q, 'watch')) {
      const opts = {
        ...list,
        ...optional('allowWatchBookmarks', boolParam(q, 'allowWatchBookmarks')),
        ...optional('sendInitialEvents', boolParam(q, 'sendInitialEvents')),
      };
      return serveWatch(res, {
        registry: ctx.registry,
        res: def.name,
        opts,
        shape,
        timeoutSeconds: intParam(q, 'timeoutSeconds'),
        bookmarkIntervalMs: ctx.bookmarkIntervalMs,
        active: ctx.active,
        log: ctx.log,
      });
    }
    return writeJson(res, 200, shapeList(ctx.registry.list(def.name, list), shape));
  }
  if (namespace === undefined) throw methodNotAllowed(); // all-namespace lists are read-only
  if (method === 'POST') {
    const opts = writeOptions(q);
    const created = await ctx.registry.create(def.name, namespace, decodeBody(req, body!, def.kind), opts);
    return writeJson(res, 201, shapeObject(created, shapeFor(req, url, def)), opts.report!.warnings);
  }
  if (method === 'DELETE') {
    const opts = deleteOptions(q, body!.length ? decodeBody(req, body!, 'DeleteOptions') : undefined);
    const deleted = await ctx.registry.deleteCollection(def.name, listOptions(q, namespace), opts);
    return writeJson(res, 200, deleted);
  }
  throw methodNotAllowed();
}

async function object(
  ctx: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  path: Extract<ApiPath, { kind: 'object' }>,
  body: Buffer | undefined,
): Promise<void> {
  const { def, namespace, name } = path;
  const q = url.searchParams;
  const method = req.method;
  const shape = shapeFor(req, url, def);
  if (path.subresource !== undefined && !(path.subresource === 'status' && def.statusSubresource)) throw pathNotFound();
  if (path.watch) {
    // The legacy /watch/namespaces/{ns}/{resource}/{name} form: a watch of one object.
    if (method !== 'GET' || path.subresource) throw methodNotAllowed();
    const list = listOptions(q, namespace);
    const fieldSelector = [`metadata.name=${name}`, list.fieldSelector].filter((s) => s).join(',');
    return serveWatch(res, {
      registry: ctx.registry,
      res: def.name,
      opts: { ...list, fieldSelector, ...optional('allowWatchBookmarks', boolParam(q, 'allowWatchBookmarks')) },
      shape,
      timeoutSeconds: intParam(q, 'timeoutSeconds'),
      bookmarkIntervalMs: ctx.bookmarkIntervalMs,
      active: ctx.active,
      log: ctx.log,
    });
  }
  const sub: Pick<WriteOptions, 'subresource'> = path.subresource === 'status' ? { subresource: 'status' } : {};
  switch (method) {
    case 'GET':
      return writeJson(res, 200, shapeObject(ctx.registry.get(def.name, namespace, name), shape));
    case 'PUT': {
      const opts = { ...writeOptions(q), ...sub };
      const o = await ctx.registry.replace(def.name, namespace, name, decodeBody(req, body!, def.kind), opts);
      return writeJson(res, opts.report!.created ? 201 : 200, shapeObject(o, shape), opts.report!.warnings);
    }
    case 'PATCH': {
      if (!body!.length) throw badRequest('the patch body is empty');
      const type = patchType(req);
      const opts = { ...writeOptions(q), ...sub };
      const o = await ctx.registry.patch(def.name, namespace, name, type, decodePatch(body!), opts);
      return writeJson(res, 200, shapeObject(o, shape), opts.report!.warnings);
    }
    case 'DELETE': {
      if (path.subresource) throw methodNotAllowed();
      const opts = deleteOptions(q, body!.length ? decodeBody(req, body!, 'DeleteOptions') : undefined);
      const r = await ctx.registry.delete(def.name, namespace, name, opts);
      return writeJson(res, r.code, r.body.kind === 'Status' ? r.body : shapeObject(r.body as KubeObject, shape));
    }
    default:
      throw methodNotAllowed();
  }
}

/** `{ [key]: value }` when value is defined, else `{}` (exactOptionalPropertyTypes-friendly spreads). */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
