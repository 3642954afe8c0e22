import type { V1ConfigMap } from '#client-node';
import type { QueuedEvent } from './events.js';
import { sameData } from './model.js';
import { classify, sidesOf, type RelationRecord } from './relations.js';

/** One relation with another application, as this unit knows it. */
export interface RelationState {
  id: number;
  /** Undefined once the relation object is gone. */
  record: RelationRecord | undefined;
  endpoint: string;
  interface: string;
  remoteApp: string;
  remoteEndpoint: string;
  localApp: Record<string, string>;
  remoteAppData: Record<string, string>;
  /** Remote units' bags: a remote unit is in scope while its bag exists. */
  remoteUnits: Map<string, Record<string, string>>;
  /** This unit's bag; it exists from relation-created on (this unit is in scope). */
  mine: Record<string, string> | undefined;
  /** Remote units whose -joined ran. */
  joined: Set<string>;
  /** Events queued and not yet run, so a burst of watch events queues each once. */
  queued: Set<string>;
  createdRan: boolean;
  broken: boolean;
}

/**
 * Turns what the relation watch shows (relation objects and bags of this application's
 * relations) into Juju's relation events, in Juju's order: -created once per unit, then per
 * remote unit -joined and -changed, -changed again on each change of a remote unit's or the
 * remote application's bag, -departed when a remote unit leaves scope, and on removal -departed
 * for every joined unit and then -broken. Level-triggered: after every watch event it compares
 * what is with what ran and queues what is missing, so a restarted agent neither repeats
 * -created nor misses a departure (the joined set is kept on this unit's bag).
 */
export class RelationScopes {
  readonly states = new Map<number, RelationState>();
  private synced = false;
  /** The unit is being removed: every relation is left (departed, broken). */
  private leaving = false;

  constructor(
    private readonly app: string,
    private readonly unit: string,
    private readonly push: (e: QueuedEvent) => void,
  ) {}

  private state(id: number): RelationState {
    let st = this.states.get(id);
    if (!st) {
      st = { id, record: undefined, endpoint: '', interface: '', remoteApp: '', remoteEndpoint: '', localApp: {}, remoteAppData: {}, remoteUnits: new Map(), mine: undefined, joined: new Set(), queued: new Set(), createdRan: false, broken: false };
      this.states.set(id, st);
    }
    return st;
  }

  /** Live: the relation exists, is not being removed, and this unit stays. */
  alive(st: RelationState): boolean {
    return Boolean(st.record && !st.record.dying && !this.leaving && !st.broken);
  }

  /** In scope: relation-created ran (or this unit's bag says it did before a restart). */
  inScope(st: RelationState): boolean {
    return !st.broken && (st.createdRan || st.mine !== undefined);
  }

  private queue(st: RelationState, kind: 'created' | 'joined' | 'changed' | 'departed' | 'broken', remote?: string): void {
    const key = `rel-${kind}:${st.id}:${remote ?? ''}`;
    if (st.queued.has(key)) return;
    st.queued.add(key);
    this.push({
      name: `${st.endpoint}-relation-${kind}`,
      key,
      relationId: st.id,
      ...(remote && remote !== 'app' ? { remoteUnit: remote } : {}),
      ...(remote === 'app' ? { appChanged: true } : {}),
    });
  }

  /** A watch upsert (removed=false) or delete of one of this application's relation objects. */
  observe(cm: V1ConfigMap, removed: boolean): void {
    const o = classify(cm);
    if (!o) return;
    if (o.kind === 'relation') {
      const sides = sidesOf(o.record, this.app);
      if (!sides) return;
      const st = this.state(o.record.id);
      st.record = removed ? undefined : o.record;
      if (removed && st.broken) {
        this.states.delete(st.id);
        return;
      }
      st.endpoint = sides.local.endpoint;
      st.interface = o.record.interface;
      st.remoteApp = sides.remote.app;
      st.remoteEndpoint = sides.remote.endpoint;
    } else if (o.kind === 'app-bag') {
      const st = this.state(o.id);
      const data = removed ? {} : o.data;
      if (o.app === this.app) st.localApp = data;
      else {
        const changed = !sameData(st.remoteAppData, data);
        st.remoteAppData = data;
        if (changed && this.synced && this.inScope(st) && this.alive(st)) this.queue(st, 'changed', 'app');
      }
    } else {
      const st = this.state(o.id);
      if (o.unit === this.unit) {
        if (removed) st.mine = undefined;
        else {
          if (st.mine === undefined && !st.createdRan) for (const u of o.joined) st.joined.add(u); // a previous run's
          st.mine = o.data;
        }
      } else if (o.app !== this.app) {
        // Units of this application see each other through the peer relation, not this one.
        const before = st.remoteUnits.get(o.unit);
        if (removed) st.remoteUnits.delete(o.unit);
        else {
          st.remoteUnits.set(o.unit, o.data);
          if (before && !sameData(before, o.data) && this.synced && st.joined.has(o.unit) && this.alive(st)) this.queue(st, 'changed', o.unit);
        }
      }
    }
    if (this.synced) this.reconcile();
  }

  /**
   * After a (re-)list: the complete set of this application's relation objects. The state is
   * rebuilt from the list as a whole before anything is decided (deciding halfway would take a
   * relation not listed yet for gone: -departed, -broken); then what changed while the watch
   * was away is queued as -changed, and reconcile() queues the rest.
   */
  resync(all: V1ConfigMap[]): void {
    const before = new Map([...this.states].map(([id, st]) => [id, { app: st.remoteAppData, units: new Map(st.remoteUnits) }]));
    const seen = new Set<number>();
    for (const st of this.states.values()) {
      st.record = undefined;
      st.remoteUnits.clear();
      st.remoteAppData = {};
      st.localApp = {};
      st.mine = undefined;
    }
    const wasSynced = this.synced;
    this.synced = false; // observe() records, decides nothing
    for (const cm of all) {
      const o = classify(cm);
      if (o) seen.add(o.kind === 'relation' ? o.record.id : o.id);
      this.observe(cm, false);
    }
    for (const [id, st] of this.states) if (!seen.has(id) && !this.inScope(st)) this.states.delete(id);
    this.synced = true;
    if (wasSynced) {
      for (const [id, was] of before) {
        const st = this.states.get(id);
        if (!st || !this.inScope(st) || !this.alive(st)) continue;
        if (!sameData(was.app, st.remoteAppData)) this.queue(st, 'changed', 'app');
        for (const [u, data] of st.remoteUnits) {
          const old = was.units.get(u);
          if (old && st.joined.has(u) && !sameData(old, data)) this.queue(st, 'changed', u);
        }
      }
    }
    this.reconcile();
  }

  /** The unit is being removed (remove-unit): leave every relation. */
  leave(): void {
    this.leaving = true;
    this.reconcile();
  }

  /** Queues what is missing: -created, -joined (+ -changed), -departed, -broken. */
  reconcile(): void {
    for (const st of [...this.states.values()].sort((a, b) => a.id - b.id)) {
      if (st.broken) continue;
      const alive = this.alive(st);
      if (!this.inScope(st)) {
        if (alive) this.queue(st, 'created');
        continue;
      }
      if (alive) {
        for (const u of [...st.remoteUnits.keys()].sort()) {
          if (!st.joined.has(u)) {
            this.queue(st, 'joined', u);
            this.queue(st, 'changed', u);
          }
        }
        for (const u of [...st.joined].sort()) if (!st.remoteUnits.has(u)) this.queue(st, 'departed', u);
      } else {
        for (const u of [...st.joined].sort()) this.queue(st, 'departed', u);
        this.queue(st, 'broken');
      }
    }
  }

  /** After an event of relation `id` ran to completion. */
  ran(e: QueuedEvent): void {
    const st = e.relationId === undefined ? undefined : this.states.get(e.relationId);
    if (!st) return;
    st.queued.delete(e.key ?? e.name);
    const kind = /-relation-(created|joined|changed|departed|broken)$/.exec(e.name)?.[1];
    if (kind === 'created') {
      st.createdRan = true;
      if (Object.keys(st.remoteAppData).length) this.queue(st, 'changed', 'app');
    }
    if (kind === 'joined' && e.remoteUnit) st.joined.add(e.remoteUnit);
    if (kind === 'departed' && e.remoteUnit) st.joined.delete(e.remoteUnit);
    if (kind === 'broken') {
      st.broken = true;
      st.joined.clear();
    }
    this.reconcile();
  }

  /** An event of a relation that went away before it ran (or ran already): it is dropped. */
  stale(e: QueuedEvent): boolean {
    if (e.relationId === undefined) return false;
    const st = this.states.get(e.relationId);
    if (!st) return true;
    if (e.name.endsWith('-relation-broken')) return st.broken;
    if (e.name.endsWith('-relation-created')) return st.broken || this.inScope(st) || !this.alive(st);
    return st.broken || !this.inScope(st);
  }

  /** An event dropped as stale: it may be queued again. */
  dropped(e: QueuedEvent): void {
    const st = e.relationId === undefined ? undefined : this.states.get(e.relationId);
    st?.queued.delete(e.key ?? e.name);
  }

  /** True when the relation itself is being removed (not merely this unit leaving it). */
  removing(st: RelationState): boolean {
    return !st.record || st.record.dying;
  }

  /** The remote units a handler or loop sees in the relation: joined (or joining now) and still in scope. */
  units(st: RelationState, joining?: string): string[] {
    return [...st.remoteUnits.keys()].filter((u) => st.joined.has(u) || u === joining).sort();
  }

  /** Relations a handler sees in ctx.relations(): in scope and not being removed. */
  visible(): RelationState[] {
    return [...this.states.values()].filter((st) => this.inScope(st) && this.alive(st)).sort((a, b) => a.id - b.id);
  }

  /** Remote application by relation id, for the relations this application is in (secret grants). */
  remoteApps(): Map<number, string> {
    return new Map([...this.states.values()].filter((st) => st.record && !st.broken).map((st) => [st.id, st.remoteApp]));
  }

}
