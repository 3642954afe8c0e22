import type { NoticeStore, NoticeType } from '../notices/state.js';
import { noticeJson } from '../notices/state.js';
import { parseDuration } from '../plan/duration.js';
import { badRequest, notFound, sync } from './response.js';
import type { Route } from './router.js';

// Pebble requires custom keys to look like "example.com/path".
const CUSTOM_KEY = /^[a-z0-9]+(?:[.-][a-z0-9]+)*\.[a-z]{2,}(?:\/[\w.\-/]*)?$/;
const TYPES = new Set(['custom', 'change-update', 'warning']);

function duration(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseDuration(value);
  } catch (e) {
    throw badRequest(`invalid ${field}: ${(e as Error).message}`);
  }
}

export function noticesRoutes(notices: NoticeStore): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/notices',
      handler: async (ctx) => {
        const types = ctx.queryList('types');
        const bad = types.find((t) => !TYPES.has(t));
        if (bad) throw badRequest(`types: unknown notice type ${JSON.stringify(bad)}`);
        let after: Date | undefined;
        const a = ctx.query('after');
        if (a !== undefined) {
          after = new Date(a);
          if (Number.isNaN(after.getTime())) throw badRequest(`after: invalid time ${JSON.stringify(a)}`);
        }
        const filter = { types, keys: ctx.queryList('keys'), ...(after ? { after } : {}) };
        const timeout = duration(ctx.query('timeout'), 'timeout');
        const ac = new AbortController();
        ctx.req.socket.once('close', () => ac.abort());
        const list = timeout ? await notices.wait(filter, timeout, ac.signal) : notices.list(filter);
        return sync(list.map(noticeJson));
      },
    },
    {
      method: 'GET',
      path: '/v1/notices/{id}',
      handler: (ctx) => {
        const n = notices.get(ctx.params['id']!);
        if (!n) throw notFound(`cannot find notice with ID ${JSON.stringify(ctx.params['id'])}`);
        return sync(noticeJson(n));
      },
    },
    {
      method: 'POST',
      path: '/v1/notices',
      handler: async (ctx) => {
        const body = await ctx.json();
        if (body['action'] !== 'add') throw badRequest(`action must be "add", not ${JSON.stringify(body['action'] ?? '')}`);
        if (body['type'] !== 'custom') throw badRequest(`type: only "custom" notices may be added, not ${JSON.stringify(body['type'] ?? '')}`);
        const key = body['key'];
        if (typeof key !== 'string' || !CUSTOM_KEY.test(key) || key.length > 256) {
          throw badRequest(`key must be in the "example.com/path" format, not ${JSON.stringify(key ?? '')}`);
        }
        const data = body['data'] ?? {};
        if (typeof data !== 'object' || data === null || Array.isArray(data) || Object.values(data).some((v) => typeof v !== 'string')) {
          throw badRequest('data must be a map of string keys to string values');
        }
        const ra = body['repeat-after'];
        if (ra !== undefined && typeof ra !== 'string') throw badRequest('repeat-after must be a duration string like "1h"');
        const repeatAfter = duration(ra as string | undefined, 'repeat-after');
        const n = notices.add('custom' as NoticeType, key, data as Record<string, string>, repeatAfter);
        return sync({ id: n.id });
      },
    },
  ];
}
