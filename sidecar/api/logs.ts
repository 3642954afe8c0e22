import type { LogEntry, LogStore } from '../logs/buffer.js';
import type { ServiceManager } from '../services/manager.js';
import { badRequest, raw } from './response.js';
import type { Route } from './router.js';

const entryJson = (e: LogEntry) =>
  JSON.stringify({ time: e.time.toISOString(), service: e.service, message: e.message }) + '\n';

/** GET /v1/logs: newline-delimited JSON entries, Pebble's format; `follow` keeps the stream open. */
export function logsRoutes(logs: LogStore, services: ServiceManager): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/logs',
      handler: (ctx) => {
        const names = ctx.queryList('services');
        const known = new Set(services.list().map((s) => s.name));
        const unknown = names.filter((n) => !known.has(n) && n !== 'all');
        if (unknown.length) throw badRequest(`services: unknown service ${JSON.stringify(unknown[0])}`);
        const filter = names.includes('all') ? [] : names;
        const nText = ctx.query('n') ?? '30';
        const n = Number(nText);
        if (!Number.isInteger(n) || n < -1) throw badRequest(`n must be -1 or a non-negative integer, not ${JSON.stringify(nText)}`);
        const followText = ctx.query('follow') ?? 'false';
        if (!['true', 'false'].includes(followText)) throw badRequest(`follow must be "true" or "false", not ${JSON.stringify(followText)}`);
        const follow = followText === 'true';
        return raw((res) => {
          res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-cache' });
          for (const e of logs.tail(filter, n)) res.write(entryJson(e));
          if (!follow) {
            res.end();
            return;
          }
          res.flushHeaders();
          const onEntry = (e: LogEntry) => {
            if (!filter.length || filter.includes(e.service)) res.write(entryJson(e));
          };
          logs.on('entry', onEntry);
          res.on('close', () => logs.off('entry', onEntry));
        });
      },
    },
  ];
}
