import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';

/** An error the API reports with Pebble's error envelope; `kind` is Pebble's machine-readable error kind. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly kind?: string,
    readonly value?: unknown,
  ) {
    super(message);
  }
}

export const badRequest = (message: string, kind?: string) => new ApiError(400, message, kind);
export const notFound = (message: string, kind?: string) => new ApiError(404, message, kind);

export type ApiResponse =
  | { type: 'sync'; status: number; result: unknown }
  | { type: 'async'; change: string; result: unknown }
  | { type: 'raw'; write: (res: ServerResponse) => void | Promise<void> };

export const sync = (result: unknown, status = 200): ApiResponse => ({ type: 'sync', status, result });
export const asyncResponse = (change: string, result: unknown = null): ApiResponse => ({
  type: 'async',
  change,
  result,
});
/** For responses that are not an envelope (logs stream, multipart file reads). */
export const raw = (write: (res: ServerResponse) => void | Promise<void>): ApiResponse => ({ type: 'raw', write });

export function envelope(r: ApiResponse): { status: number; body: Record<string, unknown> } {
  if (r.type === 'sync') {
    return {
      status: r.status,
      body: { type: 'sync', 'status-code': r.status, status: STATUS_CODES[r.status] ?? '', result: r.result },
    };
  }
  if (r.type === 'async') {
    return {
      status: 202,
      body: { type: 'async', 'status-code': 202, status: 'Accepted', change: r.change, result: r.result },
    };
  }
  throw new Error('raw responses have no envelope');
}

export function errorEnvelope(err: ApiError): { status: number; body: Record<string, unknown> } {
  const result: Record<string, unknown> = { message: err.message };
  if (err.kind) result.kind = err.kind;
  if (err.value !== undefined) result.value = err.value;
  return {
    status: err.status,
    body: { type: 'error', 'status-code': err.status, status: STATUS_CODES[err.status] ?? '', result },
  };
}

export function writeJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}
