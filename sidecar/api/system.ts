import type { Route } from './router.js';
import { sync } from './response.js';

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
  ];
}
