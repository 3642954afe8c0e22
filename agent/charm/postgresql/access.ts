import type { EventContext } from '../../runtime/charm.js';
import { parseAddress } from './positions.js';
import { resolveClientCidrs, type HbaSpec } from './render.js';

/**
 * Who may connect (pg_hba.conf): the units themselves, by the addresses in their bags, and
 * other clients from `allowed-client-cidrs`. Rewritten by every reconcile, which reloads
 * Postgres after it, so a peer that joins, leaves or moves (a rescheduled pod's new IP) is
 * admitted or dropped at the next relation event.
 */

/**
 * A peer's host: `ingress-address`, which the runtime publishes as soon as the pod has an IP
 * (before the unit's first hook ends), else the host of the `address` its charm recorded.
 */
export function peerHost(bag: Readonly<Record<string, string | undefined>>): string | undefined {
  return bag['ingress-address'] || parseAddress(bag['address'])?.host;
}

/** The pg_hba input for this unit (at `ownHost`) and peers with these bags (pure). */
export function hbaSpec(config: Readonly<Record<string, unknown>>, ownHost: string, peerBags: readonly Readonly<Record<string, string | undefined>>[]): HbaSpec {
  const peers = [ownHost, ...peerBags.map(peerHost).filter((h): h is string => Boolean(h))];
  return {
    method: String(config['password-encryption'] ?? 'scram-sha-256'),
    peers,
    clients: resolveClientCidrs(String(config['allowed-client-cidrs'] ?? 'auto'), ownHost),
  };
}

/** hbaSpec for an event: this unit's address and its peers' bags as the event sees them. */
export function hbaFor(ctx: EventContext, me: { host: string }): HbaSpec {
  const bags = ctx.peers.units.map((u) => {
    const b = ctx.peers.unit(u);
    return { 'ingress-address': b.get('ingress-address'), address: b.get('address') };
  });
  return hbaSpec(ctx.config, me.host, bags);
}
