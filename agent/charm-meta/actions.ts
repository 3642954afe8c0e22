import { errorProblems, paramsValidator, unknownParam } from './action-schema.js';
import { ActionParamsError, describeValue, ProblemList } from './problems.js';
import { NAME_RE, NAME_RULE, type ActionSpec, type CharmMeta, type ParamType } from './schema.js';
import { suggestion } from './suggest.js';
import { parseFloatText, parseIntText } from './values.js';

/**
 * `pgcharm run UNIT ACTION key=value...`: find the action, type each value per its param's
 * JSON schema type, apply schema defaults and check the whole params object with ajv. Every
 * problem is reported at once, as `params.<name>: <reason>`.
 */

export type ActionParams = Record<string, unknown>;

export interface PreparedAction {
  action: ActionSpec;
  /** Validated, with schema defaults filled in. */
  params: ActionParams;
}

function lookup(meta: CharmMeta, name: string, sink: ProblemList): ActionSpec | undefined {
  if (Object.hasOwn(meta.actions, name)) return meta.actions[name];
  const names = Object.keys(meta.actions);
  sink.add([name], `unknown action${suggestion(name, names) || ` (actions: ${names.join(', ')})`}`);
  return undefined;
}

/** The action called `name`, or ActionParamsError with a did-you-mean. */
export function findAction(meta: CharmMeta, name: string): ActionSpec {
  const sink = new ProblemList();
  const spec = lookup(meta, name, sink);
  if (!spec) throw new ActionParamsError(name, sink.toProblems());
  return spec;
}

function typed(type: ParamType, text: string): { value: unknown } | { error: string } {
  const got = describeValue(text);
  switch (type) {
    case 'string':
      return { value: text };
    case 'integer': {
      const n = parseIntText(text);
      return n === undefined ? { error: `must be integer, got ${got}` } : { value: n };
    }
    case 'number': {
      const n = parseFloatText(text);
      return n === undefined ? { error: `must be number, got ${got}` } : { value: n };
    }
    case 'boolean':
      if (text === 'true' || text === 'false') return { value: text === 'true' };
      return { error: `must be boolean (true or false), got ${got}` };
    case 'array':
    case 'object':
      // Juju would read YAML here; JSON keeps one obvious syntax for structured values.
      try {
        return { value: JSON.parse(text) as unknown };
      } catch {
        return { error: `must be a JSON ${type}, got ${got}` };
      }
  }
}

/** Parses `key=value` args into params; keys that failed are added to `failed`. */
function parseArgs(spec: ActionSpec, args: readonly string[], sink: ProblemList, failed: Set<string>): ActionParams {
  const params: ActionParams = {};
  const known = Object.keys(spec.params);
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq <= 0) {
      sink.add(['params'], `expected key=value, got ${describeValue(arg)}`);
      continue;
    }
    const key = arg.slice(0, eq);
    const text = arg.slice(eq + 1);
    if (Object.hasOwn(params, key) || failed.has(key)) {
      sink.add(['params', key], 'given more than once');
      failed.add(key);
      continue;
    }
    const schema = Object.hasOwn(spec.params, key) ? spec.params[key] : undefined;
    if (!schema) {
      if (!spec.additionalProperties) sink.add(['params', key], unknownParam(key, known));
      // Extra params of an open action stay text; the name rule keeps keys like __proto__ out.
      else if (!NAME_RE.test(key)) sink.add(['params', key], NAME_RULE);
      else {
        params[key] = text;
        continue;
      }
      failed.add(key);
      continue;
    }
    const t = typed(schema.type, text);
    if ('error' in t) {
      sink.add(['params', key], t.error);
      failed.add(key);
    } else params[key] = t.value;
  }
  return params;
}

function check(spec: ActionSpec, params: Readonly<ActionParams>, sink: ProblemList, skip: ReadonlySet<string>): ActionParams {
  const out = structuredClone(params) as ActionParams;
  const validate = paramsValidator(spec);
  if (!validate(out)) {
    for (const p of errorProblems(validate.errors ?? [], Object.keys(spec.params))) {
      // A param whose text could not be typed is reported already; ajv only sees it missing.
      if (typeof p.path[0] === 'string' && skip.has(p.path[0])) continue;
      sink.add(['params', ...p.path], p.message);
    }
  }
  return out;
}

/** Types `key=value` args per the action's param schemas (no other checks). */
export function parseActionArgs(spec: ActionSpec, args: readonly string[]): ActionParams {
  const sink = new ProblemList();
  const params = parseArgs(spec, args, sink, new Set());
  if (!sink.empty) throw new ActionParamsError(spec.name, sink.toProblems());
  return params;
}

/**
 * Checks a params object (from args, or from a params file so secrets stay out of argv)
 * against the action's schema and returns a copy with schema defaults applied.
 */
export function validateActionParams(spec: ActionSpec, params: Readonly<ActionParams>): ActionParams {
  const sink = new ProblemList();
  const out = check(spec, params, sink, new Set());
  if (!sink.empty) throw new ActionParamsError(spec.name, sink.toProblems());
  return out;
}

/** `pgcharm run UNIT ACTION key=value...` in one step: lookup, typing and validation. */
export function prepareAction(meta: CharmMeta, name: string, args: readonly string[]): PreparedAction {
  const sink = new ProblemList();
  const spec = lookup(meta, name, sink);
  if (!spec) throw new ActionParamsError(name, sink.toProblems());
  const failed = new Set<string>();
  const parsed = parseArgs(spec, args, sink, failed);
  const params = check(spec, parsed, sink, failed);
  if (!sink.empty) throw new ActionParamsError(name, sink.toProblems());
  return { action: spec, params };
}
