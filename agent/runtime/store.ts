import * as k8s from '#client-node';
import type { V1ConfigMap } from '#client-node';
import type { Logger } from 'pino';
import { apiMessage, isConflict, isNotFound, mergePatch, type Kube } from './kube.js';
import { LABELS } from './names.js';

export type Labels = Record<string, string>;

/**
 * The ConfigMap operations the runtime needs, on top of client-node: read, create-if-missing,
 * compare-and-swap updates (re-read and re-apply on 409), merge patches, and watches that
 * re-list after any error so a controller restart or a dropped stream loses nothing.
 */
export class Store {
  constructor(
    readonly kube: Kube,
    readonly app: string,
  ) {}

  get namespace(): string {
    return this.kube.namespace;
  }

  labels(kind: string, extra: Labels = {}): Labels {
    return { [LABELS.app]: this.app, [LABELS.managedBy]: 'pgcharm', [LABELS.kind]: kind, ...extra };
  }

  async get(name: string): Promise<V1ConfigMap | undefined> {
    try {
      return await this.kube.core.readNamespacedConfigMap({ name, namespace: this.namespace });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async list(labelSelector: string): Promise<V1ConfigMap[]> {
    return (await this.kube.core.listNamespacedConfigMap({ namespace: this.namespace, labelSelector })).items;
  }

  /** Creates the ConfigMap unless it exists; returns the stored object either way. */
  async ensure(name: string, labels: Labels, data: Record<string, string> = {}, annotations: Record<string, string> = {}): Promise<V1ConfigMap> {
    const existing = await this.get(name);
    if (existing) return existing;
    try {
      return await this.kube.core.createNamespacedConfigMap({
        namespace: this.namespace,
        body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels, annotations }, data },
      });
    } catch (e) {
      if (isConflict(e)) return (await this.get(name))!;
      throw e;
    }
  }

  /**
   * Compare-and-swap: `mutate` edits a fresh copy (return false to leave it as is), which is
   * written with its resourceVersion; a 409 means someone wrote in between, so read and decide again.
   */
  async update(name: string, mutate: (cm: V1ConfigMap) => boolean | void): Promise<V1ConfigMap> {
    for (let attempt = 0; ; attempt++) {
      const cm = await this.get(name);
      if (!cm) throw new Error(`ConfigMap ${name} does not exist`);
      if (mutate(cm) === false) return cm;
      try {
        return await this.kube.core.replaceNamespacedConfigMap({ name, namespace: this.namespace, body: cm });
      } catch (e) {
        if (!isConflict(e) || attempt >= 50) throw e;
      }
    }
  }

  /** JSON merge patch of data and annotations; a null value removes the key. */
  async patch(name: string, p: { data?: Record<string, string | null>; annotations?: Record<string, string | null>; labels?: Record<string, string | null> }): Promise<V1ConfigMap> {
    const body: Record<string, unknown> = {};
    if (p.data) body['data'] = p.data;
    if (p.annotations || p.labels) body['metadata'] = { ...(p.annotations ? { annotations: p.annotations } : {}), ...(p.labels ? { labels: p.labels } : {}) };
    return this.kube.core.patchNamespacedConfigMap({ name, namespace: this.namespace, body }, mergePatch);
  }

  async delete(name: string): Promise<void> {
    try {
      await this.kube.core.deleteNamespacedConfigMap({ name, namespace: this.namespace });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  /** Watches the application's ConfigMaps matching `labelSelector`; see watchPath. */
  watchConfigMaps(labelSelector: string, on: WatchHandlers<V1ConfigMap>, log: Logger): Watcher {
    return watchPath<V1ConfigMap>(
      this.kube,
      `/api/v1/namespaces/${this.namespace}/configmaps`,
      () => this.kube.core.listNamespacedConfigMap({ namespace: this.namespace, labelSelector }),
      labelSelector,
      on,
      log,
    );
  }
}

export interface WatchHandlers<T> {
  /** Called for creations and changes (and for every object after a re-list). */
  upsert(obj: T): void;
  remove(obj: T): void;
  /** After each (re-)list: the complete current set, so a consumer can drop what vanished. */
  synced?(all: T[]): void;
}

export interface Watcher {
  stop(): Promise<void>;
}

/**
 * client-node's informer (list, then watch from the list's resourceVersion), restarted after
 * any error with a short pause; each restart re-lists, so the consumer converges.
 */
export function watchPath<T extends k8s.KubernetesObject>(
  kube: Kube,
  path: string,
  list: () => Promise<k8s.KubernetesListObject<T>>,
  labelSelector: string,
  on: WatchHandlers<T>,
  log: Logger,
): Watcher {
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const listing = async () => {
    const l = await list();
    on.synced?.(l.items);
    return l;
  };
  const informer = k8s.makeInformer<T>(kube.kc, path, listing, labelSelector);
  informer.on('add', (o) => on.upsert(o));
  informer.on('update', (o) => on.upsert(o));
  informer.on('delete', (o) => on.remove(o));
  informer.on('error', (err: unknown) => {
    if (stopped) return;
    log.warn({ path, err: apiMessage(err) }, 'watch failed; re-listing shortly');
    clearTimeout(retry);
    retry = setTimeout(() => void start(), 1000);
  });
  let starting: Promise<void> | undefined;
  const start = async () => {
    if (stopped) return;
    try {
      await (starting = informer.start());
    } catch (e) {
      log.warn({ path, err: apiMessage(e) }, 'list failed; retrying');
      clearTimeout(retry);
      retry = setTimeout(() => void start(), 1000);
    }
  };
  void start();
  return {
    async stop() {
      stopped = true;
      clearTimeout(retry);
      await informer.stop();
      // client-node opens the watch once its list returns even if stop() came meanwhile (a
      // consumer that stops on what the list showed): close that one too, or it holds the process.
      await starting?.catch(() => undefined);
      await informer.stop();
    },
  };
}
