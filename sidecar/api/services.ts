import { PlanError } from '../plan/types.js';
import type { ServiceActionName, ServiceManager } from '../services/manager.js';
import { ApiError, asyncResponse, badRequest, sync } from './response.js';
import type { Route } from './router.js';

const ACTIONS = new Set<ServiceActionName>(['start', 'stop', 'restart', 'replan', 'autostart']);

function stringList(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw badRequest(`${field} must be a list of strings`);
  }
  return v as string[];
}

/** PlanErrors are the caller's mistake (unknown service, loop): 400 with the reason. */
function asApiError(e: unknown): never {
  if (e instanceof PlanError) throw badRequest(e.message);
  throw e;
}

/** `onReplan` lets checks follow a replan, as Pebble's replan also restarts inactive checks. */
export function servicesRoutes(services: ServiceManager, onReplan: () => void = () => undefined): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/services',
      handler: (ctx) => sync(services.list(ctx.queryList('names'))),
    },
    {
      method: 'POST',
      path: '/v1/services',
      handler: async (ctx) => {
        const body = await ctx.json();
        const action = body['action'];
        if (typeof action !== 'string' || !ACTIONS.has(action as ServiceActionName)) {
          throw badRequest(
            `action must be one of "start", "stop", "restart", "replan", "autostart", not ${JSON.stringify(action ?? '')}`,
          );
        }
        const names = stringList(body['services'], 'services');
        if ((action === 'replan' || action === 'autostart') && names.length) {
          throw badRequest(`${action} takes no services, got ${JSON.stringify(names)}`);
        }
        try {
          const change = services.act(action as ServiceActionName, names);
          if (action === 'replan') onReplan();
          return asyncResponse(change.id);
        } catch (e) {
          return asApiError(e);
        }
      },
    },
    {
      method: 'POST',
      path: '/v1/signals',
      handler: async (ctx) => {
        const body = await ctx.json();
        const signal = body['signal'];
        if (typeof signal !== 'string' || signal === '') throw badRequest('signal must be a signal name like "SIGHUP"');
        const names = stringList(body['services'], 'services');
        try {
          services.signal(signal, names);
        } catch (e) {
          if (e instanceof PlanError) throw new ApiError(400, e.message);
          throw e;
        }
        return sync(true);
      },
    },
  ];
}
