import type { Logger } from 'pino';
import type { Route } from './router.js';
import { badRequest, sync } from './response.js';

export function systemRoutes(info: { version: string; bootId: string; httpAddress?: string }): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/system-info',
      handler: () =>
        sync({
          version: info.version,
          'boot-id': info.bootId,
          ...(info.httpAddress ? { 'http-address': info.httpAddress } : {}),
        }),
    },
    // The sidecar raises no warnings, but ops.pebble.Client.get_warnings/ack_warnings call
    // these; Pebble answers [] and 0 when it has none (internals/daemon/api_warnings.go).
    {
      method: 'GET',
      path: '/v1/warnings',
      handler: (ctx) => {
        const select = ctx.query('select') ?? '';
        if (!['all', 'pending', ''].includes(select)) throw badRequest(`invalid select parameter: ${JSON.stringify(select)}`);
        return sync([]);
      },
    },
    {
      method: 'POST',
      path: '/v1/warnings',
      handler: async (ctx) => {
        const body = await ctx.json();
        if (body['action'] !== 'okay') throw badRequest(`unknown warning action ${JSON.stringify(body['action'] ?? '')}`);
        return sync(0);
      },
    },
  ];
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;

/**
 * GET/POST /v1/log-level: the sidecar's own log level, changed at run time (the charm applies
 * its agent-log-level option here, without restarting the sidecar and what it supervises).
 * A pgcharm extension: Pebble has no such route, and a client of a real Pebble gets 404.
 */
export function logLevelRoutes(log: Logger): Route[] {
  return [
    { method: 'GET', path: '/v1/log-level', handler: () => sync({ level: log.level }) },
    {
      method: 'POST',
      path: '/v1/log-level',
      handler: async (ctx) => {
        const level = (await ctx.json())['level'];
        if (typeof level !== 'string' || !(LOG_LEVELS as readonly string[]).includes(level)) {
          throw badRequest(`level: must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(level ?? null)}`);
        }
        if (log.level !== level) {
          log.info({ from: log.level, to: level }, 'log level changed');
          log.level = level;
        }
        return sync({ level });
      },
    },
  ];
}
