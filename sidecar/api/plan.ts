import type { PlanManager } from '../plan/manager.js';
import { PlanError } from '../plan/types.js';
import { planToYaml } from '../plan/yaml.js';
import { badRequest, sync } from './response.js';
import type { Route } from './router.js';

export function planRoutes(plans: PlanManager): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/plan',
      handler: (ctx) => {
        const format = ctx.query('format') ?? 'yaml';
        if (format !== 'yaml') throw badRequest(`invalid format ${JSON.stringify(format)}: only "yaml" is supported`);
        return sync(planToYaml(plans.plan));
      },
    },
    {
      method: 'POST',
      path: '/v1/layers',
      handler: async (ctx) => {
        const body = await ctx.json();
        if (body['action'] !== 'add') {
          throw badRequest(`invalid action ${JSON.stringify(body['action'] ?? '')}: only "add" is supported`);
        }
        if ((body['format'] ?? 'yaml') !== 'yaml') {
          throw badRequest(`invalid format ${JSON.stringify(body['format'])}: only "yaml" is supported`);
        }
        const label = body['label'];
        if (typeof label !== 'string' || label === '') throw badRequest('label must be set to the layer label');
        const layer = body['layer'];
        if (typeof layer !== 'string') throw badRequest('layer must be the layer as a YAML string');
        const combine = body['combine'];
        if (combine !== undefined && typeof combine !== 'boolean') throw badRequest('combine must be true or false');
        try {
          plans.addLayer(label, layer, combine === true);
        } catch (e) {
          if (e instanceof PlanError) throw badRequest(e.message);
          throw e;
        }
        return sync(true);
      },
    },
  ];
}
