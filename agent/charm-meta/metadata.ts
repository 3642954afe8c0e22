import { z } from '#zod';
import { paramDefaultProblems, paramSchemaProblems } from './action-schema.js';
import { describeValue, ProblemList, type Path } from './problems.js';
import { entries, isMap, readFields, sectionSchema } from './read.js';
import {
  INTERFACE_RE,
  NAME_RE,
  NAME_RULE,
  PARAM_TYPES,
  type ActionSpec,
  type CharmMeta,
  type ConfigOption,
  type Container,
  type Mount,
  type ParamSchema,
  type RelationEndpoint,
  type Storage,
} from './schema.js';
import { suggestion } from './suggest.js';
import { OPTION_TYPES, STRING_FORMATS, parseValueText, valueProblems, type ConfigValue, type OptionType } from './values.js';

/**
 * Checks a parsed charm.yaml document (plain data from the YAML parser) and builds CharmMeta.
 * Every problem is collected; the returned meta is only meaningful when `problems` is empty.
 * Cross-references (mounts -> storage, image-option -> config option) are checked after the
 * sections themselves, against whatever parts of them were readable.
 */
export function validateCharmMeta(doc: unknown): { meta: CharmMeta; problems: ProblemList } {
  const sink = new ProblemList();
  const meta: CharmMeta = {
    name: '',
    summary: '',
    description: '',
    containers: {},
    storage: {},
    peers: {},
    provides: {},
    requires: {},
    options: {},
    actions: {},
  };
  const top = readFields(
    doc ?? {},
    {
      name: z.string(),
      summary: z.string().min(1, 'must not be empty'),
      description: z.string().min(1, 'must not be empty'),
      containers: sectionSchema,
      storage: sectionSchema,
      peers: sectionSchema,
      provides: sectionSchema,
      requires: sectionSchema,
      config: z.unknown(),
      actions: sectionSchema,
    },
    [],
    sink,
    ['name', 'summary', 'description'],
  );
  if (!top) return { meta, problems: sink };

  if (top.name !== undefined) {
    if (!NAME_RE.test(top.name)) sink.add(['name'], `${NAME_RULE}, got ${describeValue(top.name)}`);
    meta.name = top.name;
  }
  meta.summary = top.summary ?? '';
  meta.description = top.description ?? '';

  meta.storage = named(top.storage, ['storage'], sink, readStorage);
  const options = readOptions(top.config, sink);
  meta.options = options.read;
  // Cross-references look names up among the entries written, so an entry that is itself
  // broken (and reported) does not also show up as "unknown" where it is referenced.
  const declared = { storage: Object.keys(top.storage ?? {}), options: options.declared };
  meta.containers = named(top.containers, ['containers'], sink, (raw, name, path) => readContainer(raw, name, path, sink, meta, declared));
  const endpoints = new Map<string, string>();
  for (const section of ['peers', 'provides', 'requires'] as const) {
    meta[section] = named(top[section], [section], sink, (raw, name, path) => {
      const seen = endpoints.get(name);
      if (seen) sink.add(path, `endpoint name already used in ${seen}`);
      endpoints.set(name, section);
      return readEndpoint(raw, name, path, sink);
    });
  }
  meta.actions = named(top.actions, ['actions'], sink, (raw, name, path) => readAction(raw, name, path, sink));
  return { meta, problems: sink };
}

/** Reads each named entry of a section, checking its name. Entries that fail to read are left out. */
function named<T>(
  section: Record<string, unknown> | null | undefined,
  path: Path,
  sink: ProblemList,
  read: (raw: unknown, name: string, path: Path, sink: ProblemList) => T | undefined,
): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [name, raw] of entries(section)) {
    const p = [...path, name];
    if (!NAME_RE.test(name)) sink.add(p, NAME_RULE);
    const v = read(raw, name, p, sink);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

function readStorage(raw: unknown, name: string, path: Path, sink: ProblemList): Storage | undefined {
  const f = readFields(
    raw,
    {
      type: z.enum(['filesystem', 'block']),
      description: z.string(),
      'minimum-size': z.string().regex(/^\d+[MGTP]?$/, 'must be a size like "1G" (suffixes M, G, T, P)'),
    },
    path,
    sink,
    ['type'],
  );
  if (!f?.type) return undefined;
  return {
    name,
    type: f.type,
    ...(f.description !== undefined ? { description: f.description } : {}),
    ...(f['minimum-size'] !== undefined ? { minimumSize: f['minimum-size'] } : {}),
  };
}

function readEndpoint(raw: unknown, name: string, path: Path, sink: ProblemList): RelationEndpoint | undefined {
  const f = readFields(
    raw,
    {
      interface: z.string().regex(INTERFACE_RE, 'invalid interface name: lowercase letters, digits, "_" and "-", starting with a letter'),
      description: z.string(),
      limit: z.int().min(1, 'must be at least 1'),
      optional: z.boolean(),
    },
    path,
    sink,
    ['interface'],
  );
  if (!f?.interface) return undefined;
  return {
    name,
    interface: f.interface,
    optional: f.optional ?? false,
    ...(f.description !== undefined ? { description: f.description } : {}),
    ...(f.limit !== undefined ? { limit: f.limit } : {}),
  };
}

interface Declared {
  storage: string[];
  options: string[];
}

function readContainer(raw: unknown, name: string, path: Path, sink: ProblemList, meta: CharmMeta, declared: Declared): Container | undefined {
  const f = readFields(
    raw,
    {
      image: z.string().min(1, 'must not be empty'),
      images: z.record(z.string(), z.string().min(1, 'must not be empty')),
      'image-option': z.string(),
      mounts: z.array(z.unknown()).nullable(),
    },
    path,
    sink,
  );
  if (!f) return undefined;
  const has = (k: string) => isMap(raw) && Object.hasOwn(raw, k);
  if (!has('image') && !has('images')) sink.add(path, 'needs "image", or "images" with "image-option"');
  if (has('image') && has('images')) sink.add([...path, 'images'], 'give either "image" or "images", not both');
  if (has('images') && !has('image-option')) sink.add([...path, 'image-option'], 'required with "images": the config option whose value picks the image');
  if (has('image-option') && !has('images')) sink.add([...path, 'image-option'], 'only meaningful with "images"');
  if (f['image-option'] !== undefined && f.images) checkImages(f.images, f['image-option'], path, sink, meta, declared);

  const mounts: Mount[] = [];
  const locations = new Map<string, number>();
  (f.mounts ?? []).forEach((m, i) => {
    const mp = [...path, 'mounts', i];
    const mf = readFields(m, { storage: z.string(), location: z.string() }, mp, sink, ['storage', 'location']);
    if (!mf?.storage || mf.location === undefined) return;
    if (!declared.storage.includes(mf.storage)) {
      sink.add([...mp, 'storage'], `unknown storage ${JSON.stringify(mf.storage)}${suggestion(mf.storage, declared.storage)}`);
    }
    if (!mf.location.startsWith('/')) sink.add([...mp, 'location'], `must be an absolute path, got ${describeValue(mf.location)}`);
    const dup = locations.get(mf.location);
    if (dup !== undefined) sink.add([...mp, 'location'], `same location as mounts[${dup}]`);
    locations.set(mf.location, i);
    mounts.push({ storage: mf.storage, location: mf.location });
  });
  return {
    name,
    mounts,
    ...(f.image !== undefined ? { image: f.image } : {}),
    ...(f.images !== undefined ? { images: f.images } : {}),
    ...(f['image-option'] !== undefined ? { imageOption: f['image-option'] } : {}),
  };
}

/** Every value the image option can take needs an image, and every image key must be such a value. */
function checkImages(images: Record<string, string>, optName: string, path: Path, sink: ProblemList, meta: CharmMeta, declared: Declared): void {
  if (!declared.options.includes(optName)) {
    sink.add([...path, 'image-option'], `unknown config option ${JSON.stringify(optName)}${suggestion(optName, declared.options)}`);
    return;
  }
  const opt = Object.hasOwn(meta.options, optName) ? meta.options[optName] : undefined;
  if (!opt) return; // declared but broken: reported where it is declared
  for (const key of Object.keys(images)) {
    const parsed = parseValueText(opt.type, key);
    const why = 'error' in parsed ? [parsed.error] : valueProblems(opt, parsed.value);
    for (const w of why) sink.add([...path, 'images', key], `not a possible value of ${optName}: ${w}`);
  }
  for (const v of opt.allowed ?? [opt.default]) {
    if (!Object.hasOwn(images, String(v))) sink.add([...path, 'images'], `no image for ${optName} ${String(v)}`);
  }
}

function readOptions(config: unknown, sink: ProblemList): { read: Record<string, ConfigOption>; declared: string[] } {
  if (config === undefined || config === null) return { read: {}, declared: [] };
  const f = readFields(config, { options: sectionSchema }, ['config'], sink);
  return { read: named(f?.options, ['config', 'options'], sink, readOption), declared: Object.keys(f?.options ?? {}) };
}

const isNumeric = (t: OptionType) => t === 'int' || t === 'float';

function readOption(raw: unknown, name: string, path: Path, sink: ProblemList): ConfigOption | undefined {
  const f = readFields(
    raw,
    {
      type: z.string(),
      default: z.unknown(),
      description: z.string().min(1, 'must not be empty'),
      min: z.number(),
      max: z.number(),
      allowed: z.array(z.unknown()).min(1, 'must not be empty'),
      format: z.string(),
      immutable: z.boolean(),
      secret: z.boolean(),
    },
    path,
    sink,
    ['type', 'default', 'description'],
  );
  if (!f || f.type === undefined) return undefined;
  if (!(OPTION_TYPES as readonly string[]).includes(f.type)) {
    sink.add([...path, 'type'], `must be one of ${OPTION_TYPES.join(', ')}, got ${describeValue(f.type)}${suggestion(f.type, OPTION_TYPES)}`);
    return undefined;
  }
  const type = f.type as OptionType;
  const opt: ConfigOption = { name, type, default: '', description: f.description ?? '', immutable: f.immutable ?? false, secret: f.secret ?? false };

  for (const bound of ['min', 'max'] as const) {
    const b = f[bound];
    if (b === undefined) continue;
    if (!isNumeric(type)) sink.add([...path, bound], 'only int and float options have a range');
    else if (type === 'int' && !Number.isSafeInteger(b)) sink.add([...path, bound], `expected int, got ${b}`);
    else opt[bound] = b;
  }
  if (opt.min !== undefined && opt.max !== undefined && opt.min > opt.max) {
    sink.add([...path, 'min'], `must not exceed max (${opt.min} > ${opt.max})`);
  }
  if (f.format !== undefined) {
    if (type !== 'string') sink.add([...path, 'format'], 'only string options have a format');
    else if (!(STRING_FORMATS as readonly string[]).includes(f.format)) {
      sink.add([...path, 'format'], `must be one of ${STRING_FORMATS.join(', ')}, got ${describeValue(f.format)}${suggestion(f.format, STRING_FORMATS)}`);
    } else opt.format = f.format as (typeof STRING_FORMATS)[number];
  }
  if (f.allowed !== undefined) {
    if (type === 'boolean') sink.add([...path, 'allowed'], 'boolean options cannot restrict their values');
    else {
      const ok: ConfigValue[] = [];
      f.allowed.forEach((v, i) => {
        const why = valueProblems(opt, v);
        for (const w of why) sink.add([...path, 'allowed', i], w);
        if (why.length) return;
        if (ok.includes(v as ConfigValue)) sink.add([...path, 'allowed', i], `duplicate value ${describeValue(v)}`);
        else ok.push(v as ConfigValue);
      });
      opt.allowed = ok;
    }
  }
  if (isMap(raw) && Object.hasOwn(raw, 'default')) {
    for (const w of valueProblems(opt, f.default)) sink.add([...path, 'default'], w);
    opt.default = f.default as ConfigValue;
  }
  if (opt.secret) secretProblems(opt, path, sink);
  return opt;
}

/**
 * charm.yaml is not secret: whatever it says about a secret option's value (a default, a list
 * of allowed values, a format the CLI would echo back in an error) would give the value away.
 */
function secretProblems(opt: ConfigOption, path: Path, sink: ProblemList): void {
  if (opt.type !== 'string') sink.add([...path, 'secret'], `only string options can be secret, this one is ${opt.type}`);
  else if (opt.default !== '') sink.add([...path, 'default'], `a secret option's default must be "" (charm.yaml is not secret), got ${describeValue(opt.default)}`);
  if (opt.allowed) sink.add([...path, 'allowed'], 'a secret option cannot list its allowed values (they would be public)');
  if (opt.format) sink.add([...path, 'format'], 'a secret option cannot have a format (an error would echo the value)');
}

function readAction(raw: unknown, name: string, path: Path, sink: ProblemList): ActionSpec | undefined {
  const f = readFields(
    raw,
    {
      description: z.string().min(1, 'must not be empty'),
      params: sectionSchema,
      required: z.array(z.string()),
      additionalProperties: z.boolean(),
      sensitive: z.boolean(),
    },
    path,
    sink,
    ['description'],
  );
  if (!f) return undefined;
  const params = named(f.params, [...path, 'params'], sink, readParam);
  const names = Object.keys(isMap(f.params) ? f.params : {});
  (f.required ?? []).forEach((r, i) => {
    if (!names.includes(r)) sink.add([...path, 'required', i], `unknown param ${JSON.stringify(r)}${suggestion(r, names)}`);
  });
  return {
    name,
    description: f.description ?? '',
    params,
    required: f.required ?? [],
    additionalProperties: f.additionalProperties ?? false,
    sensitive: f.sensitive ?? false,
  };
}

function readParam(raw: unknown, name: string, path: Path, sink: ProblemList): ParamSchema | undefined {
  if (!isMap(raw)) {
    sink.add(path, `expected a map (a JSON schema), got ${describeValue(raw)}`);
    return undefined;
  }
  // `type` is required so that `key=value` text can be typed before validation.
  if (!Object.hasOwn(raw, 'type')) {
    sink.add([...path, 'type'], `required (one of ${PARAM_TYPES.join(', ')})`);
    return undefined;
  }
  const t = raw['type'];
  if (typeof t !== 'string' || !(PARAM_TYPES as readonly string[]).includes(t)) {
    const hint = typeof t === 'string' ? suggestion(t, PARAM_TYPES) : '';
    sink.add([...path, 'type'], `must be one of ${PARAM_TYPES.join(', ')}, got ${describeValue(t)}${hint}`);
    return undefined;
  }
  const schemaProblems = paramSchemaProblems(name, raw);
  for (const p of schemaProblems) sink.add([...path, ...p.path], p.message);
  if (schemaProblems.length) return undefined;
  const schema = raw as ParamSchema;
  for (const p of paramDefaultProblems(name, schema)) sink.add([...path, ...p.path], p.message);
  return schema;
}
