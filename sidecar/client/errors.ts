import type { Change } from './types.js';

/** An error envelope from the API: `kind` is Pebble's machine-readable kind ("not-found", "permission-denied", ...). */
export class APIError extends Error {
  override readonly name = 'APIError';
  constructor(
    readonly status: number,
    readonly kind: string | undefined,
    message: string,
    readonly value?: unknown,
  ) {
    super(message);
  }
}

/** A change finished with an error. The message carries the task logs, as ops' ChangeError does. */
export class ChangeError extends Error {
  override readonly name = 'ChangeError';
  constructor(
    readonly err: string,
    readonly change: Change,
  ) {
    super(describeChangeError(err, change));
  }
}

function describeChangeError(err: string, change: Change): string {
  const parts = [err];
  change.tasks.forEach((t, i) => {
    if (!t.log?.length) return;
    parts.push(`\n----- Logs from task ${i} -----\n`, t.log.join('\n'));
  });
  if (parts.length > 1) parts.push('\n-----');
  return parts.join('');
}

/** The sidecar cannot be reached at all (socket missing, connection refused). */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  constructor(
    message: string,
    readonly address: string,
    override readonly cause?: unknown,
  ) {
    super(message);
  }
}

/** The server answered, but not in the shape the protocol promises. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/** A per-path failure inside a files request (the request itself succeeded). */
export class PathError extends Error {
  override readonly name = 'PathError';
  constructor(
    readonly kind: string,
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/** Waiting for a change ran out of time; the change itself is still running. */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
  constructor(
    message: string,
    readonly changeId: string,
  ) {
    super(message);
  }
}
