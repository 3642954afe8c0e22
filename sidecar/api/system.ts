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
