import { describe, expect, it } from 'vitest';
import { backoffSchedule, nextBackoff } from '../../sidecar/services/backoff.js';
import { canTransition, currentOf, TRANSITIONS, type State } from '../../sidecar/services/states.js';

describe('backoff schedule', () => {
  it.each([
    [{ backoffDelay: 500, backoffFactor: 2, backoffLimit: 30_000 }, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]],
    [{ backoffDelay: 100, backoffFactor: 1, backoffLimit: 30_000 }, [100, 100, 100, 100, 100, 100, 100, 100]],
    [{ backoffDelay: 100, backoffFactor: 3, backoffLimit: 1000 }, [100, 300, 900, 1000, 1000, 1000, 1000, 1000]],
    [{ backoffDelay: 2000, backoffFactor: 2, backoffLimit: 1000 }, [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000]],
    [{ backoffDelay: 250, backoffFactor: 1.5, backoffLimit: 2000 }, [250, 375, 562.5, 843.75, 1265.625, 1898.4375, 2000, 2000]],
  ])('%j', (settings, expected) => expect(backoffSchedule(settings, 8)).toEqual(expected));

  it('starts again from the delay after a reset', () => {
    const s = { backoffDelay: 500, backoffFactor: 2, backoffLimit: 30_000 };
    expect(nextBackoff(s, 0)).toBe(500);
    expect(nextBackoff(s, 16_000)).toBe(30_000);
  });
});

describe('service states', () => {
  it.each<[State, string]>([
    ['initial', 'inactive'],
    ['stopped', 'inactive'],
    ['starting', 'active'],
    ['running', 'active'],
    ['terminating', 'active'],
    ['killing', 'active'],
    ['backoff', 'backoff'],
    ['exited', 'error'],
  ])('%s reports as %s', (s, current) => expect(currentOf(s)).toBe(current));

  it.each<[State, State, boolean]>([
    ['initial', 'starting', true],
    ['initial', 'running', false],
    ['running', 'backoff', true],
    ['backoff', 'running', true],
    ['stopped', 'running', false],
    ['terminating', 'killing', true],
    ['killing', 'terminating', false],
    ['exited', 'starting', true],
  ])('%s -> %s allowed: %s', (from, to, ok) => expect(canTransition(from, to)).toBe(ok));

  it('every state can eventually start again', () => {
    for (const s of Object.keys(TRANSITIONS) as State[]) {
      const seen = new Set<State>([s]);
      const queue = [s];
      while (queue.length) for (const n of TRANSITIONS[queue.shift()!]) if (!seen.has(n) && seen.add(n)) queue.push(n);
      expect(seen.has('starting') || seen.has('running')).toBe(true);
    }
  });
});
