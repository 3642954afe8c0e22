import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { loadNativeAddon } from './native.js';

/**
 * The UID of the process at the other end of a unix socket connection (SO_PEERCRED, through the
 * native addon), which Pebble's access control starts from. Undefined when the addon is missing
 * (said once at start) or the socket is not a connected unix socket.
 */
export function peerUidReader(log: Logger): ((socket: Socket) => number | undefined) | undefined {
  const load = loadNativeAddon();
  if (!('addon' in load)) {
    log.warn(load.details, `peer credentials ${load.problem}: local identities cannot be recognised on the socket`);
    return undefined;
  }
  const { addon } = load;
  return (socket) => {
    // Node keeps the descriptor on its internal handle; a pipe accepted by a unix server has one.
    const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return undefined;
    try {
      return addon.peerCred(fd).uid;
    } catch {
      return undefined;
    }
  };
}
