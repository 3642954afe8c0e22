import type { V1ConfigMap } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { QueuedEvent } from '../../agent/runtime/events.js';
import { RelationScopes } from '../../agent/runtime/relation-scopes.js';
import { bagLabels, DYING_ANNOTATION, encodeRelation, JOINED_ANNOTATION, type RelationRecord } from '../../agent/runtime/relations.js';

/** postgresql/0's view of relations with `todo` (ids 1 and 2): the relation objects and the bags, as the watch delivers them. */
const rec = (id: number, dying = false): RelationRecord => ({ id, interface: 'postgresql_client', provider: { app: 'postgresql', endpoint: 'database' }, requirer: { app: id === 1 ? 'todo' : 'todo2', endpoint: 'database' }, dying });
const relation = (id: number, dying = false): V1ConfigMap => {
  const { labels, data } = encodeRelation(rec(id));
  return { metadata: { name: `relation-${id}`, labels, annotations: dying ? { [DYING_ANNOTATION]: 'true' } : {} }, data };
};
const appBag = (id: number, app: string, data: Record<string, string>): V1ConfigMap => ({ metadata: { name: `relation-${id}-${app}`, labels: bagLabels(rec(id), app) }, data });
const unitBag = (id: number, app: string, n: number, data: Record<string, string> = {}, joined: string[] = []): V1ConfigMap => ({
  metadata: { name: `relation-${id}-${app}-${n}`, labels: bagLabels(rec(id), app, `${app}-${n}`), annotations: { [JOINED_ANNOTATION]: JSON.stringify(joined) } },
  data,
});

function scopes() {
  const q: QueuedEvent[] = [];
  const s = new RelationScopes('postgresql', 'postgresql/0', (e) => q.push(e));
  const names = () => q.splice(0).map((e) => `${e.name}${e.remoteUnit ? `:${e.remoteUnit}` : e.appChanged ? ':app' : ''}`);
  /** Runs what was queued to completion, as the agent would. */
  const runAll = () => {
    const ran: string[] = [];
    while (q.length) {
      const e = q.shift()!;
      ran.push(`${e.name}${e.remoteUnit ? `:${e.remoteUnit}` : e.appChanged ? ':app' : ''}`);
      if (s.stale(e)) {
        s.dropped(e);
        continue;
      }
      s.ran(e);
    }
    return ran;
  };
  return { s, q, names, runAll };
}

/** Two relations, both in scope on this unit with todo/0 (and todo2/0) joined: an agent after a restart. */
const steady = () => [
  relation(1), relation(2),
  unitBag(1, 'postgresql', 0, {}, ['todo/0']), unitBag(2, 'postgresql', 0, {}, ['todo2/0']),
  unitBag(1, 'todo', 0, { a: '1' }), unitBag(2, 'todo2', 0, { b: '1' }),
  appBag(1, 'todo', { database: 'todo' }), appBag(2, 'todo2', { database: 'todo2' }),
];

describe('RelationScopes: watch contents to Juju relation events', () => {
  it('a restarted agent (its bags say in scope, who joined) queues only -changed, never -created or -joined again', () => {
    const { s, names } = scopes();
    s.resync(steady());
    expect(names()).toEqual([]);
  });

  it('a re-list of the same objects queues nothing; a re-list after changes queues just -changed (never -departed or -broken of a relation listed later)', () => {
    const { s, names } = scopes();
    s.resync(steady());
    names();
    s.resync(steady());
    expect(names()).toEqual([]);
    const changed = steady().map((cm) => (cm.metadata!.name === 'relation-2-todo2-0' ? unitBag(2, 'todo2', 0, { b: '2' }) : cm.metadata!.name === 'relation-1-todo' ? appBag(1, 'todo', { database: 'todo', x: 'y' }) : cm));
    s.resync(changed);
    expect(names().sort()).toEqual(['database-relation-changed:app', 'database-relation-changed:todo2/0']);
  });

  it('integrate: -created first, then -joined and -changed per remote unit, and the app bag once in scope', () => {
    const { s, names } = scopes();
    s.resync([]);
    s.observe(relation(1), false);
    expect(names()).toEqual(['database-relation-created']);
    s.observe(unitBag(1, 'todo', 0), false);
    s.observe(appBag(1, 'todo', { database: 'todo' }), false);
    expect(names()).toEqual([]); // not in scope yet: nothing before -created ran
    const { s: s2, runAll: run2 } = scopes();
    s2.resync([relation(1), unitBag(1, 'todo', 0), appBag(1, 'todo', { database: 'todo' })]);
    expect(run2()).toEqual(['database-relation-created', 'database-relation-changed:app', 'database-relation-joined:todo/0', 'database-relation-changed:todo/0']);
  });

  it('remove-relation: -departed for every joined unit, then -broken, once; the relation is dying', () => {
    const { s, names } = scopes();
    s.resync(steady());
    s.observe(relation(1, true), false);
    expect(names()).toEqual(['database-relation-departed:todo/0', 'database-relation-broken']);
    s.observe(relation(1, true), false);
    expect(names()).toEqual([]);
    expect(s.removing(s.states.get(1)!)).toBe(true);
  });

  it('this unit leaving (remove-unit): every relation departed and broken, but none is being removed', () => {
    const { s, names } = scopes();
    s.resync(steady());
    s.leave();
    expect(names()).toEqual(['database-relation-departed:todo/0', 'database-relation-broken', 'database-relation-departed:todo2/0', 'database-relation-broken']);
    expect(s.removing(s.states.get(1)!)).toBe(false);
  });

  it('a -created whose relation went away before it ran is dropped, not run', () => {
    const { s, q } = scopes();
    s.resync([]);
    s.observe(relation(3), false);
    const created = q.shift()!;
    s.observe(relation(3), true);
    expect(s.stale(created)).toBe(true);
  });

  it("a remote unit's bag gone: -departed; a unit of this application's own bag is not a remote unit", () => {
    const { s, names } = scopes();
    s.resync(steady());
    s.observe(unitBag(1, 'postgresql', 1), false);
    expect(names()).toEqual([]);
    s.observe(unitBag(1, 'todo', 0), true);
    expect(names()).toEqual(['database-relation-departed:todo/0']);
  });
});

