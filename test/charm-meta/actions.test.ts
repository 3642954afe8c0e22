import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import {
  ActionParamsError,
  findAction,
  findCharmYaml,
  parseActionArgs,
  parseCharmYaml,
  prepareAction,
  validateActionParams,
} from '../../agent/charm-meta/index.js';
import { meta, problemsOf } from './fixtures.js';

const repo = parseCharmYaml(readFileSync(findCharmYaml()!, 'utf8'));

const m = meta((d) => {
  d.actions.bench = {
    description: 'd',
    params: {
      mode: { type: 'string', enum: ['fast', 'slow'] },
      runs: { type: 'integer' },
      count: { type: 'integer', minimum: 1, default: 10 },
      ratio: { type: 'number' },
      verbose: { type: 'boolean', default: false },
      tags: { type: 'array', items: { type: 'string' } },
      opts: { type: 'object', properties: { depth: { type: 'integer' } }, additionalProperties: false },
    },
    required: ['mode', 'runs'],
  };
  d.actions.debug = { description: 'd', params: { level: { type: 'integer' } }, additionalProperties: true };
});

describe("the repo's actions", () => {
  const ok: [string, string[], Record<string, unknown>][] = [
    ['get-primary', [], {}],
    ['get-password', [], { username: 'operator' }],
    ['get-password', ['username=replication'], { username: 'replication' }],
    ['set-password', ['username=rewind', 'password=correct horse'], { username: 'rewind', password: 'correct horse' }],
    ['set-password', [], { username: 'operator' }],
    ['switchover', [], {}],
    ['switchover', ['to=postgresql/2'], { to: 'postgresql/2' }],
    ['restart', [], {}],
  ];
  test.each(ok)('%s %j', (action, args, params) => {
    expect(prepareAction(repo, action, args)).toEqual({ action: repo.actions[action], params });
  });

  const refused: [string, string[], string[]][] = [
    ['get-pasword', [], ['get-pasword: unknown action; did you mean "get-password"?']],
    ['frobnicate', [], ['frobnicate: unknown action (actions: get-primary, get-password, set-password, rotate-client-password, switchover, promote-to-primary, list-members, restart, create-backup, restore, set-s3-credentials, dump-database, restore-dump, list-backups)']],
    ['get-password', ['username=root'], ['params.username: must be one of operator, replication, rewind, monitoring, got "root"']],
    ['get-password', ['username=operater'], ['params.username: must be one of operator, replication, rewind, monitoring, got "operater"; did you mean "operator"?']],
    ['get-password', ['user=operator'], ['params.user: unknown param; did you mean "username"?']],
    ['get-primary', ['unit=postgresql/0'], ['params.unit: unknown param (takes no params)']],
    ['set-password', ['password=short'], ['params.password: must NOT have fewer than 8 characters']],
    ['switchover', ['to=primary'], ['params.to: must match pattern "^[a-z][a-z0-9-]*/[0-9]+$"']],
  ];
  test.each(refused)('refused: %s %j', (action, args, expected) => {
    expect(problemsOf(() => prepareAction(repo, action, args))).toEqual(expected);
  });
});

describe('typing and checking params', () => {
  const ok: [string[], Record<string, unknown>][] = [
    [['mode=fast', 'runs=3'], { mode: 'fast', runs: 3, count: 10, verbose: false }],
    [['mode=slow', 'runs=-1', 'count=5', 'ratio=0.5', 'verbose=true'], { mode: 'slow', runs: -1, count: 5, ratio: 0.5, verbose: true }],
    [['mode=fast', 'runs=1', 'tags=["a","b"]', 'opts={"depth":2}'], { mode: 'fast', runs: 1, count: 10, verbose: false, tags: ['a', 'b'], opts: { depth: 2 } }],
  ];
  test.each(ok)('%j', (args, params) => {
    expect(prepareAction(m, 'bench', args).params).toEqual(params);
  });

  const refused: [string, string[], string[]][] = [
    ['required params missing', [], ['params.mode: required', 'params.runs: required']],
    ['integer given a fraction', ['mode=fast', 'runs=1.5'], ['params.runs: must be integer, got "1.5"']],
    ['an untypable required param is reported once', ['mode=fast', 'runs=x'], ['params.runs: must be integer, got "x"']],
    ['below minimum', ['mode=fast', 'runs=1', 'count=0'], ['params.count: must be >= 1']],
    ['number', ['mode=fast', 'runs=1', 'ratio=abc'], ['params.ratio: must be number, got "abc"']],
    ['array not JSON', ['mode=fast', 'runs=1', 'tags=a,b'], ['params.tags: must be a JSON array, got "a,b"']],
    ['array of the wrong items', ['mode=fast', 'runs=1', 'tags=[1]'], ['params.tags[0]: must be string, got 1']],
    ['object where an array goes', ['mode=fast', 'runs=1', 'tags={"a":1}'], ['params.tags: must be array, got a map']],
    ['unknown field in an object', ['mode=fast', 'runs=1', 'opts={"x":1}'], ['params.opts.x: unknown field']],
    ['wrong type in an object', ['mode=fast', 'runs=1', 'opts={"depth":"a"}'], ['params.opts.depth: must be integer, got "a"']],
    ['given twice', ['mode=fast', 'runs=1', 'mode=slow'], ['params.mode: given more than once']],
    ['not key=value', ['mode=fast', 'runs=1', 'verbose'], ['params: expected key=value, got "verbose"']],
    ['unknown param', ['mode=fast', 'runs=1', 'cuont=3'], ['params.cuont: unknown param; did you mean "count"?']],
    [
      'every problem at once',
      ['mode=medium', 'count=0', 'ratio=x', 'extra=1'],
      [
        'params.ratio: must be number, got "x"',
        'params.extra: unknown param (takes mode, runs, count, ratio, verbose, tags, opts)',
        'params.runs: required',
        'params.mode: must be one of fast, slow, got "medium"',
        'params.count: must be >= 1',
      ],
    ],
  ];
  test.each(refused)('refused: %s', (_name, args, expected) => {
    expect(problemsOf(() => prepareAction(m, 'bench', args))).toEqual(expected);
  });

  test('an action that allows additional params keeps them as text', () => {
    expect(prepareAction(m, 'debug', ['level=2', 'note=hello']).params).toEqual({ level: 2, note: 'hello' });
    expect(problemsOf(() => prepareAction(m, 'debug', ['__proto__=x']))).toEqual([
      'params.__proto__: invalid name: must be lowercase letters, digits and single dashes, starting with a letter',
    ]);
  });

  test('params from a file (not argv) are checked the same way, defaults applied to a copy', () => {
    const spec = findAction(repo, 'set-password');
    const input = { password: 'long enough' };
    expect(validateActionParams(spec, input)).toEqual({ username: 'operator', password: 'long enough' });
    expect(input).toEqual({ password: 'long enough' });
    expect(problemsOf(() => validateActionParams(spec, { password: 12345678 }))).toEqual(['params.password: must be string, got 12345678']);
  });

  test('parseActionArgs only types', () => {
    expect(parseActionArgs(m.actions['bench']!, ['count=0', 'tags=[]'])).toEqual({ count: 0, tags: [] });
    expect(problemsOf(() => parseActionArgs(m.actions['bench']!, ['count=zero']))).toEqual(['params.count: must be integer, got "zero"']);
  });

  test('the error names the action and lists every problem', () => {
    try {
      prepareAction(m, 'bench', []);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ActionParamsError);
      expect((e as Error).message).toBe('action "bench" refused: 2 problems\n  params.mode: required\n  params.runs: required');
    }
  });
});
