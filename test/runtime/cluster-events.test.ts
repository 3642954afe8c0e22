import { describe, expect, it } from 'vitest';
import { eventObject } from '../../agent/runtime/cluster-events.js';
import { LABELS } from '../../agent/runtime/names.js';

describe('Kubernetes Events the agents record', () => {
  const now = new Date('2026-11-28T05:00:00.000Z');

  it("a core/v1 Event on the unit's pod, in its namespace, labelled with the application and pod", () => {
    const e = eventObject('pg', 'postgresql', { unit: 'postgresql/2', reason: 'Failover', type: 'Warning', message: 'postgresql/2 is the primary' }, now, '18c0ffee');
    expect(e).toMatchObject({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'postgresql-2.18c0ffee', namespace: 'pg', labels: { [LABELS.app]: 'postgresql', [LABELS.unit]: 'postgresql-2' } },
      involvedObject: { apiVersion: 'v1', kind: 'Pod', name: 'postgresql-2', namespace: 'pg' },
      reason: 'Failover',
      type: 'Warning',
      message: 'postgresql/2 is the primary',
      reportingInstance: 'postgresql/2',
      count: 1,
    });
    expect(e.firstTimestamp).toEqual(now);
    expect(e.lastTimestamp).toEqual(now);
  });

  it('Normal unless said otherwise', () => {
    expect(eventObject('pg', 'app', { unit: 'app/0', reason: 'ConfigApplied', message: 'config abc applied' }, now, 'x').type).toBe('Normal');
  });

  it('refuses a unit name that is not <app>/<n>', () => {
    expect(() => eventObject('pg', 'app', { unit: 'app', reason: 'Restarted', message: '' }, now, 'x')).toThrow(/invalid unit name/);
  });
});
