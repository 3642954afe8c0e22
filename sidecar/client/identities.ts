import { parse as parseYaml, stringify } from '#yaml';
import { table } from './format.js';
import type { Identity } from './types.js';

/**
 * The identities YAML of pebble's add-identities, update-identities and remove-identities
 * (`identities: {name: {access, local: {user-id}, basic: {password}}}`, null for "remove"),
 * and the way `pebble identities` and `pebble identity` print them. Plain functions, tested
 * without a server.
 */

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Only the fields pebble's client.Identity has; the server checks their values. */
function pick(v: Record<string, unknown>): Identity {
  const out: Record<string, unknown> = {};
  if ('access' in v) out['access'] = v['access'];
  if (isMap(v['local'])) out['local'] = 'user-id' in v['local'] ? { 'user-id': v['local']['user-id'] } : {};
  if (isMap(v['basic'])) out['basic'] = { password: v['basic']['password'] ?? '' };
  if (isMap(v['cert'])) out['cert'] = { pem: v['cert']['pem'] ?? '' };
  return out as unknown as Identity; // shape only: values are the server's to validate
}

/** Pebble's readIdentities: the named identities of a YAML document; an identity given as null stays null. */
export function parseIdentitiesYaml(text: string): Record<string, Identity | null> {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new Error(`cannot unmarshal identities: ${(e as Error).message}`);
  }
  if (doc !== null && doc !== undefined && !isMap(doc)) throw new Error('cannot unmarshal identities: the document must be a mapping');
  const raw = isMap(doc) ? doc['identities'] : undefined;
  if (raw !== null && raw !== undefined && !isMap(raw)) throw new Error('cannot unmarshal identities: "identities" must be a mapping');
  const out: Record<string, Identity | null> = {};
  for (const [name, v] of Object.entries(raw ?? {})) {
    if (v !== null && !isMap(v)) throw new Error(`cannot unmarshal identities: identity ${JSON.stringify(name)} must be a mapping or null`);
    Object.defineProperty(out, name, { value: v === null ? null : pick(v), enumerable: true, writable: true, configurable: true });
  }
  if (Object.keys(out).length === 0) throw new Error('no identities to add; did you forget the top-level "identities" key?');
  return out;
}

/** `pebble identities`: name, access and types, sorted by name. */
export function identitiesTable(identities: Readonly<Record<string, Identity>>): string {
  const rows = [['Name', 'Access', 'Types']];
  for (const name of Object.keys(identities).sort()) {
    const identity = identities[name]!;
    const types = [identity.local && 'local', identity.basic && 'basic'].filter((t): t is string => !!t).sort();
    rows.push([name, identity.access, types.length ? types.join(',') : 'unknown']);
  }
  return table(rows);
}

/** YAML as pebble prints it (Go's yaml.v3: four-space indents, single quotes). */
export const identityYaml = (value: unknown): string => stringify(value, { indent: 4, singleQuote: true });

/** "1 identity", "2 identities" (pebble's numItems). */
export const numItems = (n: number, singular: string, plural: string): string => (n === 1 ? `1 ${singular}` : `${n} ${plural}`);
