import {
  CheckNotFoundError,
  ChecksNotFoundError,
  type CheckFilter,
  type CheckInfo,
  type CheckManager,
} from '../checks/manager.js';
import type { CheckLevel } from '../plan/types.js';
import { badRequest, notFound, sync } from './response.js';
import type { RequestContext, Route } from './router.js';

/** Pebble's api_checks.go and api_health.go: GET/POST /v1/checks, POST /v1/checks/refresh, GET /v1/health. */
export function checksRoutes(checks: CheckManager): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/checks',
      handler: (ctx) => sync(checks.list(filter(ctx)).map(wire)),
    },
    {
      method: 'POST',
      path: '/v1/checks',
      handler: async (ctx) => {
        const body = await ctx.json();
        const action = body.action;
        if (action !== undefined && typeof action !== 'string') {
          throw badRequest('cannot decode data from request body: "action" must be a string');
        }
        const names = body.checks;
        if (names !== undefined && (!Array.isArray(names) || names.some((n) => typeof n !== 'string'))) {
          throw badRequest('cannot decode data from request body: "checks" must be a list of strings');
        }
        const list = (names ?? []) as string[];
        if (list.length === 0) throw badRequest(`must specify checks for ${action ?? ''} action`);
        if (action !== 'start' && action !== 'stop') throw badRequest(`invalid action ${JSON.stringify(action ?? '')}`);
        try {
          const changed = action === 'start' ? checks.startChecks(list) : checks.stopChecks(list);
          return sync({ changed });
        } catch (e) {
          if (e instanceof ChecksNotFoundError) throw badRequest(`cannot ${action} checks: ${e.message}`);
          throw e;
        }
      },
    },
    {
      method: 'POST',
      path: '/v1/checks/refresh',
      handler: async (ctx) => {
        const body = await ctx.json();
        if (body.name !== undefined && typeof body.name !== 'string') {
          throw badRequest('cannot decode data from request body: "name" must be a string');
        }
        if (!body.name) throw badRequest('must specify check name');
        try {
          const { info, error } = await checks.runNow(body.name);
          return sync(error ? { info: wire(info), error } : { info: wire(info) });
        } catch (e) {
          if (e instanceof CheckNotFoundError) throw notFound(e.message);
          throw e;
        }
      },
    },
    {
      method: 'GET',
      path: '/v1/health',
      handler: (ctx) => {
        const healthy = checks.health(filter(ctx));
        // Pebble answers an unhealthy result with a sync envelope carrying 502.
        return sync({ healthy }, healthy ? 200 : 502);
      },
    },
  ];
}

function filter(ctx: RequestContext): CheckFilter {
  const level = ctx.query('level') ?? '';
  if (level !== '' && level !== 'alive' && level !== 'ready') {
    throw badRequest('level must be "alive" or "ready"');
  }
  const f: CheckFilter = { names: ctx.queryList('names') };
  if (level) f.level = level as CheckLevel;
  return f;
}

/** Pebble's field order; `failures` is left out when zero (Go's omitempty). */
function wire(info: CheckInfo): Record<string, unknown> {
  const out: Record<string, unknown> = { name: info.name };
  if (info.level) out.level = info.level;
  out.startup = info.startup;
  out.status = info.status;
  out.successes = info.successes;
  if (info.failures) out.failures = info.failures;
  out.threshold = info.threshold;
  if (info['change-id']) out['change-id'] = info['change-id'];
  return out;
}
