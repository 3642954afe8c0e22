import type { ChangeStore, Select } from '../changes/state.js';
import { parseDuration } from '../plan/duration.js';
import { ApiError, badRequest, notFound, sync } from './response.js';
import type { Route } from './router.js';

export function changesRoutes(changes: ChangeStore): Route[] {
  const find = (id: string) => {
    const c = changes.get(id);
    if (!c) throw notFound(`cannot find change with id ${JSON.stringify(id)}`);
    return c;
  };
  return [
    {
      method: 'GET',
      path: '/v1/changes',
      handler: (ctx) => {
        const select = (ctx.query('select') ?? 'in-progress') as Select;
        if (!['in-progress', 'ready', 'all'].includes(select)) {
          throw badRequest(`select should be one of: all,in-progress,ready`);
        }
        const list = changes.list(select, ctx.query('for'));
        return sync(list.map((c) => c.toJSON()));
      },
    },
    { method: 'GET', path: '/v1/changes/{id}', handler: (ctx) => sync(find(ctx.params['id']!).toJSON()) },
    {
      method: 'GET',
      path: '/v1/changes/{id}/wait',
      handler: async (ctx) => {
        const c = find(ctx.params['id']!);
        let timeout: number | undefined;
        const t = ctx.query('timeout');
        if (t !== undefined) {
          try {
            timeout = parseDuration(t);
          } catch (e) {
            throw badRequest(`invalid timeout: ${(e as Error).message}`);
          }
        }
        // Stop waiting when the client goes away.
        const ac = new AbortController();
        const abort = () => ac.abort();
        // Keep-alive sockets carry many requests: the listener must not outlive this one.
        ctx.req.socket.once('close', abort);
        const done = await changes.wait(c, timeout, ac.signal).finally(() => ctx.req.socket.off('close', abort));
        if (!done) throw new ApiError(504, `timed out waiting for change after ${t}`);
        return sync(done.toJSON());
      },
    },
    {
      method: 'POST',
      path: '/v1/changes/{id}',
      handler: async (ctx) => {
        const c = find(ctx.params['id']!);
        const body = await ctx.json();
        if (body['action'] !== 'abort') throw badRequest(`action must be "abort", not ${JSON.stringify(body['action'])}`);
        if (c.ready) throw badRequest(`cannot abort change ${c.id} with nothing pending`);
        throw badRequest(`change ${c.id} (${c.kind}) cannot be aborted: it finishes on its own`);
      },
    },
  ];
}
