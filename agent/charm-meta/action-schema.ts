import { Ajv, type ErrorObject, type ValidateFunction } from '#ajv';
import { describeValue, type PathSeg } from './problems.js';
import type { ActionSpec, ParamSchema } from './schema.js';
import { suggestion } from './suggest.js';

/**
 * Action params are JSON schema (as in Juju's actions.yaml), so ajv checks both the schemas in
 * charm.yaml and the params given to `pgcharm run`. Strict mode turns a misspelt keyword
 * (`minLenght`) or a keyword that cannot apply (`minLength` on an integer) into an error
 * instead of a schema that silently accepts everything.
 */
const ajv = new Ajv({ allErrors: true, strict: true, useDefaults: true, verbose: true, logger: false });

const KEYWORDS = Object.keys(ajv.RULES.keywords);

/**
 * ajv keeps every compiled schema object in its cache for good; charm.yaml is re-read for the
 * life of an agent, so forget each one once compiled (the validator keeps working).
 */
function compileOnce(schema: Record<string, unknown>): ValidateFunction {
  try {
    return ajv.compile(schema);
  } finally {
    ajv.removeSchema(schema);
  }
}

export interface RelProblem {
  path: PathSeg[];
  message: string;
}

function pointerPath(pointer: string): PathSeg[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/** Wraps one param so that `default` is legal (ajv refuses it at a schema root). */
const wrap = (name: string, schema: Readonly<Record<string, unknown>>) => ({
  type: 'object',
  properties: { [name]: schema },
});

/** Problems with one param's schema, paths relative to the param. Empty when ajv compiles it. */
export function paramSchemaProblems(name: string, schema: Readonly<Record<string, unknown>>): RelProblem[] {
  const wrapped = wrap(name, schema);
  if (!ajv.validateSchema(wrapped)) {
    const out: RelProblem[] = [];
    const seen = new Set<string>();
    for (const e of ajv.errors ?? []) {
      // The meta-schema explains one bad value several ways (enum, type, anyOf); keep the first.
      if (seen.has(e.instancePath)) continue;
      seen.add(e.instancePath);
      out.push({ path: pointerPath(e.instancePath).slice(2), message: e.message ?? 'invalid' });
    }
    return out;
  }
  try {
    compileOnce(wrapped);
    return [];
  } catch (e) {
    const msg = (e as Error).message;
    const unknown = /unknown keyword: "([^"]*)"/.exec(msg);
    if (unknown) {
      const kw = unknown[1]!;
      return [{ path: Object.hasOwn(schema, kw) ? [kw] : [], message: `unknown keyword ${JSON.stringify(kw)}${suggestion(kw, KEYWORDS)}` }];
    }
    const needsType = /missing type "([^"]*)" for keyword "([^"]*)"/.exec(msg);
    if (needsType) {
      const kw = needsType[2]!;
      return [{ path: Object.hasOwn(schema, kw) ? [kw] : [], message: `keyword ${JSON.stringify(kw)} needs type ${needsType[1]}` }];
    }
    return [{ path: [], message: msg.replace(/^strict mode: /, '') }];
  }
}

/** Problems with a param's `default` under its own schema. Call only after its schema compiled. */
export function paramDefaultProblems(name: string, schema: ParamSchema): RelProblem[] {
  if (!Object.hasOwn(schema, 'default')) return [];
  const validate = compileOnce(wrap(name, schema));
  if (validate({ [name]: structuredClone(schema['default']) })) return [];
  return errorProblems(validate.errors ?? [], []).map((p) => ({ path: ['default', ...p.path.slice(1)], message: p.message }));
}

/** The whole-params object schema of an action, as Juju builds it. */
export function paramsSchema(spec: ActionSpec): Record<string, unknown> {
  return {
    type: 'object',
    properties: spec.params,
    ...(spec.required.length ? { required: spec.required } : {}),
    additionalProperties: spec.additionalProperties,
  };
}

const compiled = new WeakMap<ActionSpec, ValidateFunction>();

/** ajv's validator for an action's params (compiled once per spec). It applies defaults in place. */
export function paramsValidator(spec: ActionSpec): ValidateFunction {
  let v = compiled.get(spec);
  if (!v) {
    v = compileOnce(paramsSchema(spec));
    compiled.set(spec, v);
  }
  return v;
}

/** `unknown param; did you mean "x"?`, or the list of params when nothing is close. */
export function unknownParam(key: string, knownParams: readonly string[]): string {
  const hint = suggestion(key, knownParams) || (knownParams.length ? ` (takes ${knownParams.join(', ')})` : ' (takes no params)');
  return `unknown param${hint}`;
}

/**
 * ajv's errors as path + reason. `knownParams` names the action's params, so an unknown one at
 * the top gets a did-you-mean.
 */
export function errorProblems(errors: readonly ErrorObject[], knownParams: readonly string[]): RelProblem[] {
  return errors.map((e) => {
    const path = pointerPath(e.instancePath);
    const p = e.params as Record<string, unknown>;
    switch (e.keyword) {
      case 'required':
        return { path: [...path, String(p['missingProperty'])], message: 'required' };
      case 'additionalProperties': {
        const key = String(p['additionalProperty']);
        if (path.length > 0) return { path: [...path, key], message: 'unknown field' };
        return { path: [key], message: unknownParam(key, knownParams) };
      }
      case 'type':
        return { path, message: `must be ${String(p['type'])}, got ${describeValue(e.data)}` };
      case 'enum': {
        const allowed = (p['allowedValues'] as unknown[]).map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
        const hint = typeof e.data === 'string' ? suggestion(e.data, allowed) : '';
        return { path, message: `must be one of ${allowed.join(', ')}, got ${describeValue(e.data)}${hint}` };
      }
      default:
        return { path, message: e.message ?? e.keyword };
    }
  });
}
