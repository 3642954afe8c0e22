import { ProtocolError } from './errors.js';
import { ensureOk, type Transport } from './transport.js';
import type { LogEntry } from './types.js';

export interface LogsOptions {
  /** Services to read; empty or absent means all. */
  services?: readonly string[];
  /** Entries from the buffer to return first; -1 for all. Server default is 30 (0 when following). */
  n?: number;
  /** Stops following (the iterator then ends without error). */
  signal?: AbortSignal;
}

const isAbort = (e: unknown, signal?: AbortSignal) => signal?.aborted === true || (e as Error)?.name === 'AbortError';

function parseLine(line: string): LogEntry {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new ProtocolError(`cannot decode log entry ${JSON.stringify(line.slice(0, 200))}: ${(e as Error).message}`);
  }
  const o = v as Partial<LogEntry> | null;
  if (!o || typeof o.time !== 'string' || typeof o.service !== 'string' || typeof o.message !== 'string') {
    throw new ProtocolError(`log entry lacks time, service or message: ${line.slice(0, 200)}`);
  }
  return { time: o.time, service: o.service, message: o.message };
}

/** GET /v1/logs: newline-delimited JSON entries, streamed as they arrive. */
export async function* readLogs(t: Transport, opts: LogsOptions, follow: boolean): AsyncGenerator<LogEntry> {
  let res;
  try {
    res = await t.request({
      method: 'GET',
      path: '/v1/logs',
      query: {
        services: opts.services?.length ? opts.services : undefined,
        n: opts.n,
        follow: follow ? 'true' : undefined,
      },
      signal: opts.signal,
    });
  } catch (e) {
    if (isAbort(e, opts.signal)) return;
    throw e;
  }
  try {
    await ensureOk(res);
    let pending = '';
    res.setEncoding('utf8');
    for await (const chunk of res as AsyncIterable<string>) {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl).trim();
        pending = pending.slice(nl + 1);
        if (line) yield parseLine(line);
      }
    }
    if (pending.trim()) yield parseLine(pending.trim());
  } catch (e) {
    if (isAbort(e, opts.signal)) return;
    throw e;
  } finally {
    res.destroy();
  }
}
