import type { ServerResponse } from 'node:http';
import type { Output } from './negotiate.js';
import { partialMetadata, toTable, type IncludeObject } from '../registry/table.js';
import type { KubeList, KubeObject, TableDef } from '../registry/types.js';

/** Writing answers: JSON bodies, and objects or lists in the shape the client negotiated. */

export function writeJson(res: ServerResponse, code: number, body: unknown, warnings: string[] = []): void {
  const data = JSON.stringify(body);
  const headers: Record<string, string | number | string[]> = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data), 'Cache-Control': 'no-cache, private' };
  // RFC 7234 warn-code 299 ("miscellaneous persistent warning"), as the API server sends them.
  // Header values must be printable ASCII; field names come from the client.
  if (warnings.length) headers['Warning'] = warnings.map((w) => `299 - ${JSON.stringify(w).replace(/[^\x20-\x7e]/g, '?')}`);
  res.writeHead(code, headers);
  res.end(data);
}

export function writeText(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'X-Content-Type-Options': 'nosniff' });
  res.end(text);
}

export interface Shape {
  output: Output;
  include: IncludeObject;
  table: TableDef;
}

export function shapeObject(o: KubeObject, s: Shape, noHeaders = false): unknown {
  if (s.output.as === 'Table') {
    return { ...toTable(s.table, [o], { resourceVersion: o.metadata.resourceVersion ?? '' }, { includeObject: s.include, noHeaders }), apiVersion: s.output.apiVersion };
  }
  if (s.output.as === 'PartialObjectMetadata') return partialMetadata(o);
  return o;
}

export function shapeList(l: KubeList, s: Shape): unknown {
  if (s.output.as === 'Table') return { ...toTable(s.table, l.items, l.metadata, { includeObject: s.include }), apiVersion: s.output.apiVersion };
  if (s.output.as === 'PartialObjectMetadata') {
    return { kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1', metadata: l.metadata, items: l.items.map((o) => ({ metadata: o.metadata })) };
  }
  return l;
}
