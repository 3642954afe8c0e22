import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { StatusError } from '../machinery/status.js';
import type { Registry, WatchEvent, WatchHandle, WatchOptions } from '../registry/registry.js';
import type { ResourceName } from '../registry/types.js';
import { shapeObject, type Shape } from './respond.js';

/**
 * A watch as a streamed HTTP response: one JSON event per line, in resourceVersion order.
 * A resourceVersion older than the history is a 200 with one ERROR event carrying a 410
 * Expired Status, then the end of the stream, which is what informers expect before they
 * re-list. Bookmarks go out every `bookmarkIntervalMs` when asked for; the stream ends
 * after timeoutSeconds (default: a random 30 to 60 minutes, as Kubernetes spreads them),
 * when the client goes, when the server closes, or when the client reads too slowly.
 */

/** A client this far behind is cut off; it will re-watch from its last resourceVersion. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

export interface WatchRequest {
  registry: Registry;
  res: ResourceName;
  opts: WatchOptions;
  shape: Shape;
  timeoutSeconds: number | undefined;
  bookmarkIntervalMs: number;
  /** Open streams; the server ends them all when it closes. */
  active: Set<() => void>;
  log: Logger;
}

const HEADERS = { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' };

export function serveWatch(res: ServerResponse, w: WatchRequest): void {
  let first = true;
  let started = false;
  const early: string[] = [];
  const encode = (e: WatchEvent): string => {
    let object: unknown = e.object;
    if (e.type !== 'BOOKMARK' && e.type !== 'ERROR') {
      object = shapeObject(e.object, w.shape, !first);
      first = false;
    }
    return `${JSON.stringify({ type: e.type, object })}\n`;
  };
  let finish = () => {};
  const send = (e: WatchEvent) => {
    const line = encode(e);
    if (!started) {
      early.push(line);
      return;
    }
    res.write(line);
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      w.log.warn({ resource: w.res, buffered: res.writableLength }, 'watch client too slow; closing its stream');
      finish();
    }
  };

  let handle: WatchHandle;
  try {
    handle = w.registry.watch(w.res, w.opts, send);
  } catch (e) {
    if (e instanceof StatusError && e.code === 410) {
      res.writeHead(200, HEADERS);
      res.end(`${JSON.stringify({ type: 'ERROR', object: e.toStatus() })}\n`);
      return;
    }
    throw e;
  }
  res.writeHead(200, HEADERS);
  res.flushHeaders(); // the client waits for the headers before it counts the watch as started
  started = true;
  if (early.length) res.write(early.join(''));

  const seconds = w.timeoutSeconds ?? 1800 * (1 + Math.random());
  const timeout = setTimeout(() => finish(), seconds * 1000);
  const bookmarks = w.opts.allowWatchBookmarks ? setInterval(() => send(handle.bookmark()), w.bookmarkIntervalMs) : undefined;
  let done = false;
  finish = () => {
    if (done) return;
    done = true;
    handle.stop();
    clearTimeout(timeout);
    clearInterval(bookmarks);
    w.active.delete(finish);
    if (!res.writableEnded) res.end();
  };
  w.active.add(finish);
  // res 'close' means the client went (or we ended); req 'close' can fire once a request body is read.
  res.on('close', finish);
  res.on('error', finish);
}
