/**
 * Service lifecycle, Pebble's state machine (see STATES.md for the diagram). Every
 * transition the runner makes is listed here; anything else is a bug and throws.
 */
export type State = 'initial' | 'starting' | 'running' | 'terminating' | 'killing' | 'stopped' | 'backoff' | 'exited';

export const TRANSITIONS: Readonly<Record<State, readonly State[]>> = {
  initial: ['starting'],
  // okay delay passed | exited quickly | spawn failed | stop requested while starting
  starting: ['running', 'exited', 'stopped', 'terminating'],
  // exit with restart action | exit with ignore/shutdown action | stop or check-failure restart
  running: ['backoff', 'exited', 'terminating'],
  // exited | kill-delay elapsed
  terminating: ['stopped', 'backoff', 'killing'],
  // exited | gave up waiting after SIGKILL
  killing: ['stopped', 'backoff'],
  // restarted after the backoff wait | restart failed to spawn | stop requested | start requested
  backoff: ['running', 'backoff', 'stopped', 'starting'],
  stopped: ['starting'],
  exited: ['starting'],
};

/** The API's coarse view ("current" in /v1/services). */
export type Current = 'inactive' | 'active' | 'backoff' | 'error';

export function currentOf(s: State): Current {
  switch (s) {
    case 'initial':
    case 'stopped':
      return 'inactive';
    case 'starting':
    case 'running':
    case 'terminating':
    case 'killing':
      return 'active';
    case 'backoff':
      return 'backoff';
    case 'exited':
      return 'error';
  }
}

export function canTransition(from: State, to: State): boolean {
  return TRANSITIONS[from].includes(to);
}
