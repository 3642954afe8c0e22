import { randomInt, randomUUID } from 'node:crypto';
import { applyJsonPatch, parseJsonPatch, PatchApplyError, PatchSyntaxError } from '../machinery/json-patch.js';
import { deepEqual, jsonClone, type Json } from '../machinery/json.js';
import { mergePatch, strategicMergePatch } from '../machinery/merge-patch.js';
import {
  alreadyExists,
  badRequest,
  conflict,
  expired,
  fieldTooLong,
  invalid,
  MODIFIED,
  notFound,
  StatusError,
  successStatus,
  type Status,
} from '../machinery/status.js';
import { formatTime } from '../machinery/time.js';
import type { ObjectStore } from '../store/object-store.js';
import { decodeObject, type FieldValidation } from './decode.js';
import { markDeleted, podGraceSeconds, readyToRemove, type DeleteOptions } from './deletion.js';
import { namespaceObject, validNamespace, WELL_KNOWN_NAMESPACES } from './namespaces.js';
import { validateObjectMeta } from './objectmeta.js';
import { resourceDef } from './resources.js';
import { decodeContinue, encodeContinue, listKey, parseResourceVersion, selector } from './select.js';
import { apiVersionOf, type KubeList, type KubeObject, type ResourceDef, type ResourceName } from './types.js';

/**
 * The Kubernetes API semantics over the object store, the same for every kind: decoding,
 * defaulting, validation, compare-and-swap on resourceVersion, preconditions, patches,
 * selectors, graceful deletion and watches. The HTTP layer only translates requests into
 * these calls; the controller calls them directly.
 *
 * Objects handed out are the stored ones, deep-frozen: clone (structuredClone) to edit.
 * Each check-and-write runs without an await in between, so concurrent requests are
 * serialized by the event loop; a call resolves only once its write is on disk.
 */

/** etcd's request limit is 1.5 MiB; objects here are held to 1 MiB. */
export const MAX_OBJECT_BYTES = 1024 * 1024;

export type PatchType = 'merge' | 'json' | 'strategic';

export interface WriteOptions {
  /** Validate and answer without storing (dryRun=All). */
  dryRun?: boolean;
  /** Unknown fields: dropped with a warning (default), dropped silently, or refused. */
  fieldValidation?: FieldValidation;
  /** Write to the status subresource: only status changes (Pods). */
  subresource?: 'status';
  /** Filled in by the call: warnings for the client, and whether a PUT created the object. */
  report?: { warnings: string[]; created: boolean };
}

export interface ListOptions {
  /** Undefined lists across all namespaces. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  resourceVersionMatch?: string;
}

export interface WatchOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Absent, "" or "0": the current state as ADDED events first, then changes. Else changes after it. */
  resourceVersion?: string;
  sendInitialEvents?: boolean;
  allowWatchBookmarks?: boolean;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent {
  type: WatchEventType;
  object: KubeObject;
}

export interface WatchHandle {
  stop(): void;
  /** A BOOKMARK event for the newest resourceVersion: every event up to it has been delivered. */
  bookmark(): WatchEvent;
}

export interface DeleteResult {
  /** 200 when gone, 202 when only marked for deletion (finalizers, graceful Pod deletion). */
  code: 200 | 202;
  body: KubeObject | Status;
}

const NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';
const randomSuffix = () => Array.from({ length: 5 }, () => NAME_CHARS[randomInt(NAME_CHARS.length)]).join('');

const rid = (d: ResourceDef) => ({ group: d.group, plural: d.name });

const withoutTypeMeta = (o: KubeObject): KubeObject => {
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return rest as KubeObject;
};

export class Registry {
  constructor(readonly store: ObjectStore) {}

  /** The newest committed resourceVersion. */
  get resourceVersion(): string {
    return String(this.store.rv);
  }

  get(res: ResourceName, ns: string, name: string): KubeObject {
    const def = resourceDef(res);
    const o = this.store.get(def.name, ns, name);
    if (!o) throw notFound(rid(def), name);
    return o;
  }

  list(res: ResourceName, opts: ListOptions = {}): KubeList {
    const def = resourceDef(res);
    const matches = selector(def, opts.labelSelector, opts.fieldSelector);
    let rv = this.store.rv;
    let items: KubeObject[];
    let start = '';
    if (opts.continue) {
      const token = decodeContinue(opts.continue);
      try {
        items = this.store.listAt(def.name, opts.namespace, token.rv);
      } catch (e) {
        if (e instanceof StatusError && e.code === 410) {
          throw expired('The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
        }
        throw e;
      }
      rv = token.rv;
      start = token.start;
    } else if (opts.resourceVersionMatch === 'Exact' && opts.resourceVersion) {
      rv = parseResourceVersion(opts.resourceVersion);
      if (rv > this.store.rv) throw new StatusError(504, 'Timeout', `Too large resource version: ${rv}, current: ${this.store.rv}`);
      items = this.store.listAt(def.name, opts.namespace, rv);
    } else {
      if (opts.resourceVersion) parseResourceVersion(opts.resourceVersion);
      items = this.store.list(def.name, opts.namespace);
    }
    items = items.filter((o) => (start === '' || listKey(o) > start) && matches(o));
    const metadata: KubeList['metadata'] = { resourceVersion: String(rv) };
    const limit = opts.limit ?? 0;
    if (limit > 0 && items.length > limit) {
      metadata.continue = encodeContinue({ rv, start: listKey(items[limit - 1]!) });
      if (!opts.labelSelector && !opts.fieldSelector) metadata.remainingItemCount = items.length - limit;
      items = items.slice(0, limit);
    }
    return { apiVersion: apiVersionOf(def), kind: `${def.kind}List`, metadata, items: items.map(withoutTypeMeta) };
  }

  async create(res: ResourceName, ns: string, body: unknown, opts: WriteOptions = {}): Promise<KubeObject> {
    const def = resourceDef(res);
    const obj = decodeObject(def, body, ns, opts.fieldValidation ?? 'Warn', opts.report?.warnings ?? []);
    return this.createDecoded(def, ns, obj, opts);
  }

  /** PUT: replaces the whole object; a resourceVersion in it must be the current one. */
  async replace(res: ResourceName, ns: string, name: string, body: unknown, opts: WriteOptions = {}): Promise<KubeObject> {
    const def = resourceDef(res);
    const obj = decodeObject(def, body, ns, opts.fieldValidation ?? 'Warn', opts.report?.warnings ?? []);
    checkName(obj, name);
    const old = this.store.latest(def.name, ns, name);
    if (!old) {
      if (!def.allowCreateOnUpdate || opts.subresource) throw notFound(rid(def), name);
      if (opts.report) opts.report.created = true;
      return this.createDecoded(def, ns, obj, opts);
    }
    return this.update(def, ns, name, obj, old, opts);
  }

  async patch(res: ResourceName, ns: string, name: string, type: PatchType, patch: unknown, opts: WriteOptions = {}): Promise<KubeObject> {
    const def = resourceDef(res);
    const old = this.store.latest(def.name, ns, name);
    if (!old) throw notFound(rid(def), name);
    const current = old as unknown as Json;
    let patched: Json;
    try {
      if (type === 'json') patched = applyJsonPatch(current, parseJsonPatch(patch));
      else if (type === 'merge') patched = mergePatch(current, patch as Json);
      else patched = strategicMergePatch(current, patch as Json);
    } catch (e) {
      if (e instanceof PatchSyntaxError) throw badRequest(e.message);
      if (e instanceof PatchApplyError) {
        throw new StatusError(422, 'Invalid', `the server rejected our request due to an error in our request: ${e.message}`, {
          name,
          ...(def.group ? { group: def.group } : {}),
          kind: def.kind,
          causes: [{ reason: 'FieldValueInvalid', message: e.message, field: '' }],
        });
      }
      throw e;
    }
    const obj = decodeObject(def, patched, ns, opts.fieldValidation ?? 'Warn', opts.report?.warnings ?? []);
    checkName(obj, name);
    return this.update(def, ns, name, obj, old, opts);
  }

  async delete(res: ResourceName, ns: string, name: string, opts: DeleteOptions = {}): Promise<DeleteResult> {
    const def = resourceDef(res);
    const old = this.store.latest(def.name, ns, name);
    if (!old) throw notFound(rid(def), name);
    const pre = opts.preconditions ?? {};
    if (pre.uid && pre.uid !== old.metadata.uid) {
      throw conflict(rid(def), name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`);
    }
    if (pre.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion) {
      throw conflict(rid(def), name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`);
    }
    const grace = def.name === 'pods' ? podGraceSeconds(old, opts) : 0;
    const finalizers = old.metadata.finalizers?.length ?? 0;
    let marked: KubeObject | undefined;
    if (old.metadata.deletionTimestamp) {
      // Already terminating: a shorter grace period moves the deadline forward (kubelet's final delete uses 0).
      const current = old.metadata.deletionGracePeriodSeconds ?? 0;
      if (grace < current) marked = markDeleted(old, grace);
      else return { code: 202, body: old };
    } else if (finalizers > 0 || grace > 0) {
      marked = markDeleted(old, grace);
    }
    if (marked && !readyToRemove(marked)) {
      if (opts.dryRun) return { code: 202, body: marked };
      const { object, durable } = this.store.put(def.name, ns, name, marked);
      await durable;
      return { code: 202, body: object };
    }
    if (opts.dryRun) return { code: 200, body: def.returnDeletedObject ? old : this.deletedStatus(def, old) };
    const { rv, durable } = this.store.remove(def.name, ns, name);
    await durable;
    const last = { ...(marked ?? old), metadata: { ...(marked ?? old).metadata, resourceVersion: String(rv) } };
    return { code: 200, body: def.returnDeletedObject ? last : this.deletedStatus(def, old) };
  }

  /** Deletes every object the selectors match, one by one; answers with the list of them. */
  async deleteCollection(res: ResourceName, list: ListOptions, opts: DeleteOptions = {}): Promise<KubeList> {
    const def = resourceDef(res);
    const victims = this.list(res, { ...list, limit: 0, continue: '' });
    const deleted: KubeObject[] = [];
    for (const o of victims.items) {
      try {
        const r = await this.delete(def.name, o.metadata.namespace!, o.metadata.name!, { ...opts, preconditions: {} });
        deleted.push(withoutTypeMeta(r.code === 200 && 'metadata' in r.body && r.body.metadata.name ? (r.body as KubeObject) : o));
      } catch (e) {
        if (!(e instanceof StatusError && e.code === 404)) throw e;
      }
    }
    return { ...victims, items: deleted };
  }

  /**
   * Streams changes to `onEvent` until stopped, in resourceVersion order, with Kubernetes'
   * selector semantics: an object that starts matching arrives as ADDED, one that stops
   * matching as DELETED. Throws 410 Expired when `resourceVersion` is older than the history.
   */
  watch(res: ResourceName, opts: WatchOptions, onEvent: (e: WatchEvent) => void): WatchHandle {
    const def = resourceDef(res);
    const matches = selector(def, opts.labelSelector, opts.fieldSelector);
    const rvParam = opts.resourceVersion ?? '';
    const initial = opts.sendInitialEvents ?? (rvParam === '' || rvParam === '0');
    let from = rvParam === '' ? this.store.rv : parseResourceVersion(rvParam);
    const bookmark = (annotations?: Record<string, string>): WatchEvent => ({
      type: 'BOOKMARK',
      object: { apiVersion: apiVersionOf(def), kind: def.kind, metadata: { resourceVersion: String(this.store.rv), ...(annotations ? { annotations } : {}) } },
    });
    if (initial) {
      for (const o of this.store.list(def.name, opts.namespace)) if (matches(o)) onEvent({ type: 'ADDED', object: o });
      from = this.store.rv;
      if (opts.sendInitialEvents && opts.allowWatchBookmarks) onEvent(bookmark({ 'k8s.io/initial-events-end': 'true' }));
    }
    const stop = this.store.watch(def.name, opts.namespace, from, (e) => {
      const was = e.prev !== undefined && matches(e.prev);
      const is = e.type !== 'DELETED' && matches(e.object);
      if (e.type === 'DELETED') {
        if (was) onEvent({ type: 'DELETED', object: e.object });
      } else if (is) onEvent({ type: was ? 'MODIFIED' : 'ADDED', object: e.object });
      else if (was) onEvent({ type: 'DELETED', object: e.object });
    });
    return { stop, bookmark: () => bookmark() };
  }

  /** Namespaces are implicit (see namespaces.ts): every DNS label is one. */
  namespace(name: string): KubeObject {
    if (!validNamespace(name)) throw notFound({ group: '', plural: 'namespaces' }, name);
    return namespaceObject(name, this.store.created);
  }

  namespaces(): KubeList {
    const names = new Set([...WELL_KNOWN_NAMESPACES, ...this.store.namespaces()]);
    return {
      apiVersion: 'v1',
      kind: 'NamespaceList',
      metadata: { resourceVersion: String(this.store.rv) },
      items: [...names].sort().map((n) => withoutTypeMeta(namespaceObject(n, this.store.created))),
    };
  }

  private async createDecoded(def: ResourceDef, ns: string, obj: KubeObject, opts: WriteOptions): Promise<KubeObject> {
    const meta = obj.metadata;
    if (meta.resourceVersion) throw badRequest('resourceVersion should not be set on objects to be created');
    meta.namespace = ns;
    meta.uid = randomUUID();
    meta.creationTimestamp = formatTime(new Date());
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    delete meta.generation;
    const generate = !meta.name && typeof meta.generateName === 'string' && meta.generateName !== '';
    if (generate) meta.name = `${meta.generateName}${randomSuffix()}`;
    def.prepareForCreate?.(obj);
    this.validate(def, obj, undefined);
    // A generated name that is taken is drawn again, as Kubernetes does.
    for (let attempt = 0; this.store.latest(def.name, ns, meta.name!); attempt++) {
      if (!generate || attempt >= 8) throw alreadyExists(rid(def), meta.name!);
      meta.name = `${meta.generateName}${randomSuffix()}`;
    }
    if (opts.dryRun) return obj;
    const { object, durable } = this.store.put(def.name, ns, meta.name!, obj);
    await durable;
    return object;
  }

  private async update(def: ResourceDef, ns: string, name: string, obj: KubeObject, old: KubeObject, opts: WriteOptions): Promise<KubeObject> {
    const meta = obj.metadata;
    if (meta.resourceVersion && meta.resourceVersion !== old.metadata.resourceVersion) throw conflict(rid(def), name, MODIFIED);
    if (meta.uid && meta.uid !== old.metadata.uid) {
      throw conflict(rid(def), name, `Precondition failed: UID in precondition: ${meta.uid}, UID in object meta: ${old.metadata.uid}`);
    }
    let next: KubeObject;
    if (opts.subresource === 'status') {
      next = { ...jsonClone(old), status: obj['status'] };
      if (obj['status'] === undefined) delete next['status'];
    } else {
      next = obj;
      const o = old.metadata;
      next.metadata = {
        ...meta,
        namespace: ns,
        uid: o.uid,
        creationTimestamp: o.creationTimestamp,
        resourceVersion: o.resourceVersion,
        ...(o.deletionTimestamp ? { deletionTimestamp: o.deletionTimestamp, deletionGracePeriodSeconds: o.deletionGracePeriodSeconds } : {}),
      };
      if (!o.deletionTimestamp) {
        delete next.metadata.deletionTimestamp;
        delete next.metadata.deletionGracePeriodSeconds;
      }
      if (o.generation === undefined) delete next.metadata.generation;
      else next.metadata.generation = o.generation;
      def.prepareForUpdate?.(next, old);
    }
    this.validate(def, next, old);
    if (deepEqual(next, old)) return old; // nothing changed: no new resourceVersion, no event
    if (opts.dryRun) return next;
    if (readyToRemove(next)) {
      const { rv, durable } = this.store.remove(def.name, ns, name);
      await durable;
      return { ...next, metadata: { ...next.metadata, resourceVersion: String(rv) } };
    }
    const { object, durable } = this.store.put(def.name, ns, name, next);
    await durable;
    return object;
  }

  private validate(def: ResourceDef, obj: KubeObject, old: KubeObject | undefined): void {
    const errs = [...validateObjectMeta(obj.metadata, old?.metadata), ...def.validate(obj, old)];
    if (errs.length === 0 && Buffer.byteLength(JSON.stringify(obj)) > MAX_OBJECT_BYTES) errs.push(fieldTooLong('', MAX_OBJECT_BYTES));
    if (errs.length) throw invalid(def.kind, def.group, obj.metadata.name ?? '', errs);
  }

  private deletedStatus(def: ResourceDef, old: KubeObject): Status {
    return successStatus({ name: old.metadata.name, ...(def.group ? { group: def.group } : {}), kind: def.name, uid: old.metadata.uid });
  }
}

function checkName(obj: KubeObject, name: string): void {
  const n = obj.metadata.name;
  if (n !== name) throw badRequest(`the name of the object (${typeof n === 'string' ? n : ''}) does not match the name on the URL (${name})`);
}

export type { DeleteOptions, FieldValidation };
