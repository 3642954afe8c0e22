import { randomBytes } from 'node:crypto';
import type { V1Secret } from '#client-node';
import { RelationDataAccessError, type Relation, type Secrets } from './charm.js';
import { isConflict, isNotFound, type Kube } from './kube.js';
import { LABELS } from './names.js';

/**
 * Juju secrets on the store. A secret is Kubernetes Secret `secret-<xid>` (its id is
 * `secret:<xid>`), owned by one application. Granting it to a relation lets that relation's
 * remote application read it: the grant is recorded in an annotation (relation id → app) and
 * as the label `granted.pgcharm.io/<app>`, which the consumer's agents watch to learn of new
 * revisions (secret-changed). Content keys follow Juju's rule: lowercase letters, digits and
 * single dashes, at least 3 characters, starting with a letter.
 *
 * On Kubernetes every agent of a namespace shares one Role, so the grant is what this runtime
 * enforces, not what RBAC does: an application in another namespace reads nothing.
 */

export const GRANTED_PREFIX = 'granted.pgcharm.io/';
export const grantedLabel = (app: string): string => `${GRANTED_PREFIX}${app}`;
export const SECRET_ANNOTATIONS = {
  label: 'pgcharm.io/secret-label',
  description: 'pgcharm.io/secret-description',
  revision: 'pgcharm.io/secret-revision',
  /** JSON {"<relation id>": "<consumer app>"}. */
  grants: 'pgcharm.io/secret-grants',
} as const;

const KEY = /^[a-z](?:-?[a-z0-9]){2,}$/;
const ID = /^secret:([0-9a-v]{20})$/;

/** `secret:<xid>` → the Kubernetes Secret's name. */
export function secretObjectName(id: string): string {
  const m = ID.exec(id);
  if (!m) throw new Error(`invalid secret id ${JSON.stringify(id)}: expected secret:<20 characters [0-9a-v]>`);
  return `secret-${m[1]}`;
}

export const secretIdOf = (name: string): string => `secret:${name.replace(/^secret-/, '')}`;

/** 12 random bytes in base32hex, 20 characters, as Juju's (xid) secret ids look. */
function newXid(): string {
  const alphabet = '0123456789abcdefghijklmnopqrstuv';
  const b = randomBytes(13); // 100 bits used: 20 characters of 5 bits
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const byte of b) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 20) {
      out += alphabet[(acc >> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}

export function revisionOf(s: V1Secret): number {
  return Number(s.metadata?.annotations?.[SECRET_ANNOTATIONS.revision] ?? '1') || 1;
}

export function grantsOf(s: V1Secret): Record<string, string> {
  try {
    const v: unknown = JSON.parse(s.metadata?.annotations?.[SECRET_ANNOTATIONS.grants] ?? '{}');
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, string>) : {};
  } catch {
    return {};
  }
}

function checkContent(content: Record<string, string>): Record<string, string> {
  const keys = Object.keys(content);
  if (!keys.length) throw new RelationDataAccessError('a secret needs at least one key');
  const data: Record<string, string> = {};
  for (const k of keys) {
    if (!KEY.test(k)) throw new RelationDataAccessError(`invalid secret key ${JSON.stringify(k)}: lowercase letters, digits and single '-', at least 3 characters, starting with a letter`);
    const v = content[k];
    if (typeof v !== 'string') throw new RelationDataAccessError(`secret values are strings; ${JSON.stringify(k)} got ${typeof v}`);
    data[k] = Buffer.from(v).toString('base64');
  }
  return data;
}

export interface SecretAccess {
  kube: Kube;
  app: string;
  isLeader(): boolean;
  /** The remote application of each relation this application is in (and not broken), by id. */
  relations(): ReadonlyMap<number, string>;
}

export class StoreSecrets implements Secrets {
  constructor(private readonly a: SecretAccess) {}

  private get ns(): string {
    return this.a.kube.namespace;
  }

  private leaderOnly(what: string): void {
    if (!this.a.isLeader()) throw new RelationDataAccessError(`only the leader of ${this.a.app} may ${what} its secrets`);
  }

  private async read(id: string): Promise<V1Secret> {
    try {
      return await this.a.kube.core.readNamespacedSecret({ name: secretObjectName(id), namespace: this.ns });
    } catch (e) {
      if (isNotFound(e)) throw new RelationDataAccessError(`secret ${id} not found`);
      throw e;
    }
  }

  private async owned(id: string): Promise<V1Secret> {
    const s = await this.read(id);
    if (s.metadata?.labels?.[LABELS.app] !== this.a.app) throw new RelationDataAccessError(`secret ${id} is not owned by ${this.a.app}`);
    return s;
  }

  /** Compare-and-swap edit of one of this application's secrets. */
  private async edit(id: string, mutate: (s: V1Secret) => boolean): Promise<V1Secret> {
    for (let attempt = 0; ; attempt++) {
      const s = await this.owned(id);
      if (!mutate(s)) return s;
      try {
        return await this.a.kube.core.replaceNamespacedSecret({ name: s.metadata!.name!, namespace: this.ns, body: s });
      } catch (e) {
        if (!isConflict(e) || attempt >= 20) throw e;
      }
    }
  }

  async add(content: Record<string, string>, opts: { label?: string; description?: string } = {}): Promise<string> {
    this.leaderOnly('add');
    const data = checkContent(content);
    if (opts.label !== undefined && (await this.find(opts.label))) throw new RelationDataAccessError(`${this.a.app} already has a secret labelled ${JSON.stringify(opts.label)}`);
    const name = `secret-${newXid()}`;
    await this.a.kube.core.createNamespacedSecret({
      namespace: this.ns,
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'Opaque',
        metadata: {
          name,
          labels: { [LABELS.app]: this.a.app, [LABELS.managedBy]: 'pgcharm', [LABELS.kind]: 'secret' },
          annotations: {
            [SECRET_ANNOTATIONS.revision]: '1',
            ...(opts.label !== undefined ? { [SECRET_ANNOTATIONS.label]: opts.label } : {}),
            ...(opts.description !== undefined ? { [SECRET_ANNOTATIONS.description]: opts.description } : {}),
          },
        },
        data,
      },
    });
    return secretIdOf(name);
  }

  async get(id: string): Promise<Record<string, string>> {
    const s = await this.read(id);
    if (s.metadata?.labels?.[LABELS.app] !== this.a.app) {
      const rels = this.a.relations();
      const granted = Object.entries(grantsOf(s)).some(([rid, app]) => app === this.a.app && rels.get(Number(rid)) === s.metadata?.labels?.[LABELS.app]);
      if (!granted) throw new RelationDataAccessError(`secret ${id} is not granted to ${this.a.app}`);
    }
    return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  }

  async find(label: string): Promise<string | undefined> {
    // Listed by owner and kind; the label itself is an annotation (any string, unlike a label value).
    const l = await this.a.kube.core.listNamespacedSecret({ namespace: this.ns, labelSelector: `${LABELS.app}=${this.a.app},${LABELS.kind}=secret` });
    const s = l.items.find((x) => x.metadata?.annotations?.[SECRET_ANNOTATIONS.label] === label);
    return s?.metadata?.name ? secretIdOf(s.metadata.name) : undefined;
  }

  async set(id: string, content: Record<string, string>): Promise<number> {
    this.leaderOnly('change');
    const data = checkContent(content);
    const s = await this.edit(id, (x) => {
      const same = Object.keys(data).length === Object.keys(x.data ?? {}).length && Object.entries(data).every(([k, v]) => x.data?.[k] === v);
      if (same) return false; // the same content is not a new revision (Juju does the same)
      x.data = data;
      x.metadata!.annotations = { ...x.metadata!.annotations, [SECRET_ANNOTATIONS.revision]: String(revisionOf(x) + 1) };
      return true;
    });
    return revisionOf(s);
  }

  async grant(id: string, relation: Relation | number): Promise<void> {
    this.leaderOnly('grant');
    const rid = typeof relation === 'number' ? relation : relation.id;
    const app = this.a.relations().get(rid);
    if (!app) throw new RelationDataAccessError(`${this.a.app} is not in relation ${rid}`);
    await this.edit(id, (s) => {
      const grants = grantsOf(s);
      if (grants[String(rid)] === app) return false;
      grants[String(rid)] = app;
      this.writeGrants(s, grants);
      return true;
    });
  }

  async revoke(id: string, relation: Relation | number): Promise<void> {
    this.leaderOnly('revoke');
    const rid = String(typeof relation === 'number' ? relation : relation.id);
    await this.edit(id, (s) => {
      const grants = grantsOf(s);
      if (!(rid in grants)) return false;
      delete grants[rid];
      this.writeGrants(s, grants);
      return true;
    });
  }

  private writeGrants(s: V1Secret, grants: Record<string, string>): void {
    s.metadata!.annotations = { ...s.metadata!.annotations, [SECRET_ANNOTATIONS.grants]: JSON.stringify(grants) };
    const labels = Object.fromEntries(Object.entries(s.metadata!.labels ?? {}).filter(([k]) => !k.startsWith(GRANTED_PREFIX)));
    for (const app of new Set(Object.values(grants))) labels[grantedLabel(app)] = 'true';
    s.metadata!.labels = labels;
  }

  async remove(id: string): Promise<void> {
    this.leaderOnly('remove');
    await this.owned(id);
    try {
      await this.a.kube.core.deleteNamespacedSecret({ name: secretObjectName(id), namespace: this.ns });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
}
