import { parse as parseYaml } from '#yaml';
import { z } from '#zod';
import { parseDuration } from './duration.js';
import { PlanError, type Check, type Layer, type LogTarget, type Service } from './types.js';

/**
 * Parses one layer (Pebble's format) and validates every field it can on its own.
 * Unknown keys are errors, as with Pebble's yaml KnownFields(true): a typo in a layer
 * must not silently become a default.
 */

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  if (typeof v === 'number') {
    ctx.addIssue({ code: 'custom', message: `expected a duration string like "5s", got ${v}` });
    return z.NEVER;
  }
  try {
    const ms = parseDuration(v);
    if (ms < 0) throw new Error(`duration ${JSON.stringify(v)} must not be negative`);
    return ms;
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

// YAML turns `PORT: 5432` into a number; Pebble's map[string]string accepts any scalar.
const scalarString = z.union([z.string(), z.number(), z.boolean()]).transform((v) => String(v));
const stringMap = z.record(z.string(), scalarString).nullish().transform((v) => v ?? {});
const nameList = z.array(z.string()).nullish().transform((v) => v ?? []);
const override = z.enum(['merge', 'replace'], { error: 'must be "merge" or "replace"' });
const action = z.enum(['restart', 'shutdown', 'failure-shutdown', 'success-shutdown', 'ignore'], {
  error: 'must be one of restart, shutdown, failure-shutdown, success-shutdown, ignore',
});
const startup = z.enum(['enabled', 'disabled'], { error: 'must be "enabled" or "disabled"' });
const id = z.number().int().min(0);

/** Who and where a command runs as: shared by services and exec checks. */
const runAs = {
  'user-id': id.optional(),
  user: z.string().optional(),
  'group-id': id.optional(),
  group: z.string().optional(),
  'working-dir': z.string().optional(),
};

const serviceSchema = z.strictObject({
  summary: z.string().optional(),
  description: z.string().optional(),
  startup: startup.optional(),
  override: override.optional(),
  command: z.string().optional(),
  after: nameList,
  before: nameList,
  requires: nameList,
  environment: stringMap,
  ...runAs,
  'on-success': action.optional(),
  'on-failure': action.optional(),
  'on-check-failure': z
    .record(z.string(), action)
    .nullish()
    .transform((v) => v ?? {}),
  'backoff-delay': duration.optional(),
  'backoff-factor': z.number().optional(),
  'backoff-limit': duration.optional(),
  'kill-delay': duration.optional(),
});

const checkSchema = z.strictObject({
  override: override.optional(),
  level: z.enum(['alive', 'ready'], { error: 'must be "alive" or "ready"' }).optional(),
  startup: startup.optional(),
  period: duration.optional(),
  timeout: duration.optional(),
  threshold: z.number().int().min(1, 'must be at least 1').optional(),
  http: z
    .strictObject({ url: z.string().optional(), headers: stringMap })
    .optional(),
  tcp: z
    .strictObject({ port: z.number().int().min(1).max(65535).optional(), host: z.string().optional() })
    .optional(),
  exec: z
    .strictObject({
      command: z.string().optional(),
      'service-context': z.string().optional(),
      environment: stringMap,
      ...runAs,
    })
    .optional(),
});

const logTargetSchema = z.strictObject({
  override: override.optional(),
  type: z.enum(['loki', 'syslog', 'opentelemetry'], { error: 'must be "loki", "syslog" or "opentelemetry"' }).optional(),
  location: z.string().optional(),
  services: nameList,
  labels: stringMap,
});

// Entries may be null in YAML (`svc:` with nothing under it); reported with a clear message below.
const layerSchema = z.strictObject({
  summary: z.string().optional(),
  description: z.string().optional(),
  services: z.record(z.string(), serviceSchema.nullable()).nullish(),
  checks: z.record(z.string(), checkSchema.nullable()).nullish(),
  'log-targets': z.record(z.string(), logTargetSchema.nullable()).nullish(),
});

function formatIssue(issue: z.core.$ZodIssue): string {
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
  const parsed = layerSchema.safeParse(doc);
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
