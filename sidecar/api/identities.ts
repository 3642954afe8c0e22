import type { Logger } from 'pino';
import { identitiesToApi, IdentityError, parseIdentitiesRequest } from '../identities/identities.js';
import type { IdentityStore } from '../identities/store.js';
import { badRequest, sync } from './response.js';
import type { RequestContext, Route } from './router.js';

/** Pebble's userString: the identity's name, else the peer's UID. */
const who = (ctx: RequestContext): string => ctx.user?.name ?? (ctx.user?.uid !== undefined ? String(ctx.user.uid) : '<unknown>');

/**
 * GET /v1/identities (passwords shown as "*****") and POST /v1/identities with Pebble's
 * actions: add, update, replace (null removes), remove (values must be null). Every change is
 * logged with who made it, as Pebble's security log does; never with a password hash.
 */
export function identitiesRoutes(store: IdentityStore, log: Logger): Route[] {
  return [
    { method: 'GET', path: '/v1/identities', handler: () => sync(identitiesToApi(store.identities)) },
    {
      method: 'POST',
      path: '/v1/identities',
      handler: async (ctx) => {
        const body = await ctx.json();
        let request: ReturnType<typeof parseIdentitiesRequest>;
        try {
          request = parseIdentitiesRequest(body);
          store.apply(request.action, request.identities);
        } catch (e) {
          if (e instanceof IdentityError) throw badRequest(e.message);
          throw e;
        }
        for (const [name, identity] of request.identities) {
          if (identity === null || request.action === 'remove') log.warn({ by: who(ctx), identity: name }, 'identity removed');
          else log.warn({ by: who(ctx), identity: name, access: identity.access }, request.action === 'add' ? 'identity added' : 'identity updated');
        }
        return sync(null);
      },
    },
  ];
}
