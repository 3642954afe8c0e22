import { parse as parseYaml } from '#yaml';
import * as z from '#zod-mini';
import { parseDuration } from './duration.js';
import { PlanError, type Check, type Layer, type LogTarget, type Service } from './types.js';

/**
 * Parses one layer (Pebble's format) and validates every field it can on its own.
 * Unknown keys are errors, as with Pebble's yaml KnownFields(true): a typo in a layer
 * must not silently become a default. The schemas are zod/mini's (see vendor/zod-mini.d.ts).
 */

z.config(z.en());

const duration = z.pipe(
  z.union([z.string(), z.number()]),
  z.transform((v: string | number, ctx) => {
    const fail = (message: string) => {
      ctx.issues.push({ code: 'custom', message, input: v, path: [] });
      return z.NEVER;
    };
    if (typeof v === 'number') return fail(`expected a duration string like "5s", got ${v}`);
    try {
      const ms = parseDuration(v);
      if (ms < 0) throw new Error(`duration ${JSON.stringify(v)} must not be negative`);
      return ms;
    } catch (e) {
      return fail((e as Error).message);
    }
  }),
);

/** `schema` given as null or not at all becomes `empty()`. */
const orEmpty = <S extends z.ZodMiniType, T>(schema: S, empty: () => T) => z.pipe(z.nullish(schema), z.transform((v) => v ?? empty()));

// YAML turns `PORT: 5432` into a number; Pebble's map[string]string accepts any scalar.
const scalarString = z.pipe(z.union([z.string(), z.number(), z.boolean()]), z.transform((v) => String(v)));
const stringMap = orEmpty(z.record(z.string(), scalarString), () => ({}) as Record<string, string>);
const nameList = orEmpty(z.array(z.string()), () => [] as string[]);
const override = z.enum(['merge', 'replace'], { error: 'must be "merge" or "replace"' });
const action = z.enum(['restart', 'shutdown', 'failure-shutdown', 'success-shutdown', 'ignore'], {
  error: 'must be one of restart, shutdown, failure-shutdown, success-shutdown, ignore',
});
const startup = z.enum(['enabled', 'disabled'], { error: 'must be "enabled" or "disabled"' });
const id = z.int().check(z.minimum(0));
const opt = z.optional;

/** Who and where a command runs as: shared by services and exec checks. */
const runAs = {
  'user-id': opt(id),
  user: opt(z.string()),
  'group-id': opt(id),
  group: opt(z.string()),
  'working-dir': opt(z.string()),
};

const serviceSchema = z.strictObject({
  summary: opt(z.string()),
  description: opt(z.string()),
  startup: opt(startup),
  override: opt(override),
  command: opt(z.string()),
  after: nameList,
  before: nameList,
  requires: nameList,
  environment: stringMap,
  ...runAs,
  'on-success': opt(action),
  'on-failure': opt(action),
  'on-check-failure': orEmpty(z.record(z.string(), action), () => ({}) as Record<string, z.infer<typeof action>>),
  'backoff-delay': opt(duration),
  'backoff-factor': opt(z.number()),
  'backoff-limit': opt(duration),
  'kill-delay': opt(duration),
});

const checkSchema = z.strictObject({
  override: opt(override),
  level: opt(z.enum(['alive', 'ready'], { error: 'must be "alive" or "ready"' })),
  startup: opt(startup),
  period: opt(duration),
  timeout: opt(duration),
  threshold: opt(z.int().check(z.minimum(1, 'must be at least 1'))),
  http: opt(z.strictObject({ url: opt(z.string()), headers: stringMap })),
  tcp: opt(z.strictObject({ port: opt(z.int().check(z.minimum(1), z.maximum(65535))), host: opt(z.string()) })),
  exec: opt(
    z.strictObject({
      command: opt(z.string()),
      'service-context': opt(z.string()),
      environment: stringMap,
      ...runAs,
    }),
  ),
});

const logTargetSchema = z.strictObject({
  override: opt(override),
  type: opt(z.enum(['loki', 'syslog', 'opentelemetry'], { error: 'must be "loki", "syslog" or "opentelemetry"' })),
  location: opt(z.string()),
  services: nameList,
  labels: stringMap,
});

// Entries may be null in YAML (`svc:` with nothing under it); reported with a clear message below.
const layerSchema = z.strictObject({
  summary: opt(z.string()),
  description: opt(z.string()),
  services: z.nullish(z.record(z.string(), z.nullable(serviceSchema))),
  checks: z.nullish(z.record(z.string(), z.nullable(checkSchema))),
  'log-targets': z.nullish(z.record(z.string(), z.nullable(logTargetSchema))),
});

function formatIssue(issue: z.$ZodIssue): string {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => JSON.stringify(k)).join(', ');
    return `${path ? path + ': ' : ''}unknown field${issue.keys.length > 1 ? 's' : ''} ${keys}`;
  }
  if (issue.code === 'invalid_type') {
    return `${path || 'layer'}: expected ${issue.expected}`;
  }
  return `${path || 'layer'}: ${issue.message}`;
}

const LABEL_RE = /^[a-z](?:-?[a-z0-9]){2,}$/;

export function validateLabel(label: string): void {
  if (!LABEL_RE.test(label)) {
    throw new PlanError(
      `invalid layer label ${JSON.stringify(label)}: must be lowercase letters, digits and single dashes, start with a letter, at least 3 characters`,
    );
  }
}

function validateName(kind: string, name: string, label: string): void {
  const where = `layer ${JSON.stringify(label)}`;
  if (name === '') throw new PlanError(`${where}: cannot use empty string as ${kind} name`);
  if (kind === 'service' && name === 'pebble') {
    throw new PlanError(`${where}: cannot use reserved service name "pebble"`);
  }
  if (name.startsWith('-')) {
    throw new PlanError(`${where}: cannot use ${kind} name ${JSON.stringify(name)}: starting with "-" not allowed`);
  }
  if (/[\s,]/.test(name)) {
    throw new PlanError(`${where}: cannot use ${kind} name ${JSON.stringify(name)}: whitespace and "," not allowed`);
  }
}

export function parseLayer(order: number, label: string, text: string): Layer {
  const where = `layer ${JSON.stringify(label)}`;
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true });
  } catch (e) {
    throw new PlanError(`cannot parse ${where}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) doc = {};
  const parsed = z.safeParse(layerSchema, doc);
  if (!parsed.success) {
    throw new PlanError(`cannot parse ${where}: ${parsed.error.issues.map(formatIssue).join('; ')}`);
  }
  const raw = parsed.data;
  const layer: Layer = { order, label, services: {}, checks: {}, 'log-targets': {} };
  if (raw.summary !== undefined) layer.summary = raw.summary;
  if (raw.description !== undefined) layer.description = raw.description;

  for (const [name, s] of Object.entries(raw.services ?? {})) {
    validateName('service', name, label);
    if (!s) throw new PlanError(`${where}: service object cannot be null for service ${JSON.stringify(name)}`);
    const svc: Service = { name, ...s } as Service;
    layer.services[name] = stripUndefined(svc);
  }
  for (const [name, c] of Object.entries(raw.checks ?? {})) {
    validateName('check', name, label);
    if (!c) throw new PlanError(`${where}: check object cannot be null for check ${JSON.stringify(name)}`);
    layer.checks[name] = stripUndefined({ name, ...c } as Check);
  }
  for (const [name, t] of Object.entries(raw['log-targets'] ?? {})) {
    validateName('log target', name, label);
    if (!t) throw new PlanError(`${where}: log target object cannot be null for log target ${JSON.stringify(name)}`);
    layer['log-targets'][name] = stripUndefined({ name, ...t } as LogTarget);
  }
  return layer;
}

/** Keeps "not set" as a missing key so merges and YAML output can tell it apart. */
function stripUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

const FILE_RE = /^([0-9]{3})-([a-z](?:-?[a-z0-9]){2,})\.yaml$/;

/** Parses a layers/ file name (`NNN-label.yaml`) into order and label, or explains why not. */
export function parseLayerFileName(file: string): { order: number; label: string } {
  const m = FILE_RE.exec(file);
  if (!m) throw new PlanError(`invalid layer filename: ${JSON.stringify(file)} (must look like "123-some-label.yaml")`);
  return { order: Number(m[1]), label: m[2]! };
}
