import { parse, stringify } from 'yaml';
import { parseCharmYaml } from '../../agent/charm-meta/load.js';
import { ProblemsError, type Problem } from '../../agent/charm-meta/problems.js';
import type { CharmMeta } from '../../agent/charm-meta/schema.js';

/** A small charm.yaml with every section, valid; tests break one thing at a time. */
export const BASE = `
name: postgresql
summary: s
description: d
containers:
  postgresql:
    image-option: postgresql-major
    images: {"14": pg:14, "15": pg:15, "16": pg:16}
    mounts:
      - {storage: pgdata, location: /var/lib/postgresql/data}
storage:
  pgdata: {type: filesystem}
peers:
  database-peers: {interface: postgresql_peers}
provides:
  database: {interface: postgresql_client}
config:
  options:
    postgresql-major: {type: int, default: 15, allowed: [14, 15, 16], immutable: true, description: d}
    max-connections: {type: int, default: 100, min: 10, max: 10000, description: d}
    shared-buffers: {type: string, format: memory, default: 128MB, description: d}
    profile: {type: string, default: production, allowed: [production, testing], description: d}
    ratio: {type: float, default: 0.5, min: 0, max: 1, description: d}
    synchronous-mode: {type: boolean, default: true, description: d}
actions:
  get-primary: {description: d}
  set-password:
    description: d
    params:
      username: {type: string, enum: [operator, replication], default: operator}
      password: {type: string, minLength: 8}
    required: [password]
`;

// any: the fixture is parsed YAML that tests edit at arbitrary depth; typing every shape
// (including deliberately wrong ones) would only add casts.
export type Doc = any;

export function baseDoc(): Doc {
  return parse(BASE) as Doc;
}

export function meta(edit: (d: Doc) => void = () => {}): CharmMeta {
  const d = baseDoc();
  edit(d);
  return parseCharmYaml(stringify(d));
}

/** `path: message` lines of the error a call throws (or [] if it does not). */
export function problemsOf(f: () => unknown): string[] {
  try {
    f();
    return [];
  } catch (e) {
    if (!(e instanceof ProblemsError)) throw e;
    return e.problems.map((p: Problem) => (p.path ? `${p.path}: ${p.message}` : p.message));
  }
}

export function yamlProblems(text: string): string[] {
  return problemsOf(() => parseCharmYaml(text));
}

export function editedProblems(edit: (d: Doc) => void): string[] {
  const d = baseDoc();
  edit(d);
  return yamlProblems(stringify(d));
}
