import { describe, expect, test } from 'vitest';
import {
  ConfigError,
  configHash,
  defaults,
  diffConfig,
  didYouMean,
  memoryBytes,
  parseConfigArgs,
  parseValueText,
  planConfigChange,
  renderConfigDiff,
  renderProblems,
  validateSettings,
  type ConfigValues,
  type OptionType,
} from '../../agent/charm-meta/index.js';
import { meta, problemsOf } from './fixtures.js';

const m = meta();
const DEFAULTS = defaults(m);

describe('typing key=value text', () => {
  const cases: [OptionType, string, { value: unknown } | { error: string }][] = [
    ['int', '42', { value: 42 }],
    ['int', '-1', { value: -1 }],
    ['int', '+7', { value: 7 }],
    ['int', '1.5', { error: 'expected int, got "1.5"' }],
    ['int', '1e3', { error: 'expected int, got "1e3"' }],
    ['int', '0x10', { error: 'expected int, got "0x10"' }],
    ['int', '', { error: 'expected int, got ""' }],
    ['int', '99999999999999999999', { error: 'expected int, got "99999999999999999999"' }],
    ['float', '0.25', { value: 0.25 }],
    ['float', '2', { value: 2 }],
    ['float', '.5', { value: 0.5 }],
    ['float', '1e-3', { value: 0.001 }],
    ['float', 'NaN', { error: 'expected float, got "NaN"' }],
    ['float', 'Infinity', { error: 'expected float, got "Infinity"' }],
    ['boolean', 'true', { value: true }],
    ['boolean', 'false', { value: false }],
    ['boolean', 'yes', { error: 'expected boolean (true or false), got "yes"' }],
    ['boolean', 'True', { error: 'expected boolean (true or false), got "True"' }],
    ['string', '', { value: '' }],
    ['string', 'a=b c', { value: 'a=b c' }],
  ];
  test.each(cases)('%s %j', (type, text, expected) => {
    expect(parseValueText(type, text)).toEqual(expected);
  });

  test('memory sizes', () => {
    expect(memoryBytes('128MB')).toBe(128 * 1024 * 1024);
    expect(memoryBytes('64kB')).toBe(64 * 1024);
    expect(memoryBytes('1GB')).toBe(1024 ** 3);
    expect(memoryBytes('128mb')).toBeUndefined();
    expect(memoryBytes('128')).toBeUndefined();
  });
});

describe('parseConfigArgs', () => {
  test('types values and collects resets', () => {
    expect(parseConfigArgs(m, ['max-connections=200', 'synchronous-mode=false', 'ratio=0.75', 'shared-buffers=1GB'], ['profile'])).toEqual({
      set: { 'max-connections': 200, 'synchronous-mode': false, ratio: 0.75, 'shared-buffers': '1GB' },
      reset: ['profile'],
    });
  });

  const bad: [string, string[], string[], string[]][] = [
    ['unknown key, with a suggestion', ['max-connection=5'], [], ['max-connection: unknown option; did you mean "max-connections"?']],
    ['unknown key, nothing close', ['wal-level=replica'], [], ['wal-level: unknown option']],
    ['int given a fraction', ['max-connections=1.5'], [], ['max-connections: expected int, got "1.5"']],
    ['boolean given yes', ['synchronous-mode=yes'], [], ['synchronous-mode: expected boolean (true or false), got "yes"']],
    ['empty value for an int', ['max-connections='], [], ['max-connections: expected int, got ""; to go back to the default use --reset max-connections']],
    ['no =', ['max-connections'], [], ['max-connections: expected key=value (to go back to the default: --reset max-connections)']],
    ['no key', ['=5'], [], ['=5: expected key=value']],
    ['given twice', ['ratio=0.1', 'ratio=0.2'], [], ['ratio: given more than once']],
    ['set and reset', ['ratio=0.1'], ['ratio'], ['ratio: both set and reset']],
    ['reset unknown', [], ['profle'], ['profle: unknown option; did you mean "profile"?']],
    [
      'all problems at once',
      ['max-connection=5', 'ratio=x', 'synchronous-mode=1'],
      ['shared-buffer'],
      [
        'max-connection: unknown option; did you mean "max-connections"?',
        'ratio: expected float, got "x"',
        'synchronous-mode: expected boolean (true or false), got "1"',
        'shared-buffer: unknown option; did you mean "shared-buffers"?',
      ],
    ],
  ];
  test.each(bad)('%s', (_name, args, reset, expected) => {
    expect(problemsOf(() => parseConfigArgs(m, args, reset))).toEqual(expected);
  });

  test('key= is the empty string for string options', () => {
    expect(parseConfigArgs(m, ['profile=']).set).toEqual({ profile: '' });
  });
});

describe('validateSettings', () => {
  test('effective config is the defaults overlaid with the settings, in option order', () => {
    const eff = validateSettings(m, { 'max-connections': 300, profile: 'testing' });
    expect(eff).toEqual({ ...DEFAULTS, 'max-connections': 300, profile: 'testing' });
    expect(Object.keys(eff)).toEqual(Object.keys(m.options));
  });

  const cases: [string, Record<string, unknown>, ConfigValues | undefined, string[]][] = [
    ['wrong type', { 'max-connections': '300' }, undefined, ['max-connections: expected int, got "300"']],
    ['below min', { 'max-connections': 5 }, undefined, ['max-connections: must be at least 10, got 5']],
    ['above max', { ratio: 1.5 }, undefined, ['ratio: must be at most 1, got 1.5']],
    ['not allowed', { profile: 'staging' }, undefined, ['profile: must be one of production, testing, got "staging"']],
    ['not allowed, close', { profile: 'testin' }, undefined, ['profile: must be one of production, testing, got "testin"; did you mean "testing"?']],
    ['bad memory size', { 'shared-buffers': '1 GB' }, undefined, ['shared-buffers: must be a size with a unit like "128MB" (units: B, kB, MB, GB, TB), got "1 GB"; did you mean "1GB"?']],
    ['unknown key', { 'max-connection': 5 }, undefined, ['max-connection: unknown option; did you mean "max-connections"?']],
    ['immutable may be chosen before deploy', { 'postgresql-major': 16 }, undefined, []],
    ['immutable unchanged after deploy', { 'postgresql-major': 15 }, DEFAULTS, []],
    ['immutable changed after deploy', { 'postgresql-major': 16 }, DEFAULTS, ['postgresql-major: immutable after deploy (deployed with 15, asked for 16)']],
    ['immutable changed by its default', {}, { ...DEFAULTS, 'postgresql-major': 14 }, ['postgresql-major: immutable after deploy (deployed with 14, the default is 15)']],
    [
      'every problem at once',
      { 'postgresql-major': 16, 'max-connections': 5, profile: 'staging', 'max-connection': 1 },
      DEFAULTS,
      [
        'postgresql-major: immutable after deploy (deployed with 15, asked for 16)',
        'max-connections: must be at least 10, got 5',
        'profile: must be one of production, testing, got "staging"',
        'max-connection: unknown option; did you mean "max-connections"?',
      ],
    ],
  ];
  test.each(cases)('%s', (_name, settings, deployed, expected) => {
    const got = problemsOf(() => validateSettings(m, settings, deployed));
    expect(got.sort()).toEqual([...expected].sort());
  });
});

describe('planConfigChange (pgcharm config)', () => {
  const deployed = { ...DEFAULTS, 'max-connections': 200 };
  const state = { settings: { 'max-connections': 200 }, deployed };

  test('set and reset produce new settings, effective config and changes', () => {
    const plan = planConfigChange(m, state, ['profile=testing', 'shared-buffers=256MB'], ['max-connections']);
    expect(plan.settings).toEqual({ profile: 'testing', 'shared-buffers': '256MB' });
    expect(plan.effective).toEqual({ ...DEFAULTS, profile: 'testing', 'shared-buffers': '256MB' });
    expect(plan.changes).toEqual([
      { key: 'max-connections', before: 200, after: 100 },
      { key: 'shared-buffers', before: '128MB', after: '256MB' },
      { key: 'profile', before: 'production', after: 'testing' },
    ]);
  });

  test('a setting equal to the default is kept (it pins the value)', () => {
    const plan = planConfigChange(m, { settings: {} }, ['postgresql-major=15']);
    expect(plan.settings).toEqual({ 'postgresql-major': 15 });
    expect(plan.changes).toEqual([]);
  });

  const refused: [string, string[], string[], string[]][] = [
    ['immutable after deploy', ['postgresql-major=16'], [], ['postgresql-major: immutable after deploy (deployed with 15, asked for 16)']],
    ['out of range', ['max-connections=5'], [], ['max-connections: must be at least 10, got 5']],
    ['did you mean', ['max-connection=300'], [], ['max-connection: unknown option; did you mean "max-connections"?']],
    [
      'parse and validation problems together',
      ['max-connections=abc', 'profile=staging', 'postgresql-major=14'],
      [],
      [
        'max-connections: expected int, got "abc"',
        'profile: must be one of production, testing, got "staging"',
        'postgresql-major: immutable after deploy (deployed with 15, asked for 14)',
      ],
    ],
  ];
  test.each(refused)('refused: %s', (_name, args, reset, expected) => {
    expect(problemsOf(() => planConfigChange(m, state, args, reset)).sort()).toEqual([...expected].sort());
  });

  test('resetting a pinned immutable option to a different default is refused', () => {
    const s = { settings: { 'postgresql-major': 14 }, deployed: { ...DEFAULTS, 'postgresql-major': 14 } };
    expect(problemsOf(() => planConfigChange(m, s, [], ['postgresql-major']))).toEqual([
      'postgresql-major: immutable after deploy (deployed with 14, reset would make it the default 15)',
    ]);
  });

  test('the error lists every problem, one per line', () => {
    try {
      planConfigChange(m, state, ['max-connection=1', 'ratio=2']);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).message).toBe(
        'config refused: 2 problems\n  max-connection: unknown option; did you mean "max-connections"?\n  ratio: must be at most 1, got 2',
      );
      expect(renderProblems((e as ConfigError).problems)).toBe('max-connection: unknown option; did you mean "max-connections"?\nratio: must be at most 1, got 2');
    }
  });
});

describe('diffConfig and its rendering', () => {
  test('changed, added and removed keys', () => {
    const before = { a: 1, b: 'x', gone: true };
    const after = { a: 2, b: 'x', added: '' };
    const changes = diffConfig(before, after);
    expect(changes).toEqual([
      { key: 'a', before: 1, after: 2 },
      { key: 'added', before: undefined, after: '' },
      { key: 'gone', before: true, after: undefined },
    ]);
    expect(renderConfigDiff(changes, { from: 'deployed', to: 'requested' })).toBe(
      ['--- deployed', '+++ requested', '-a: 1', '+a: 2', '+added: ""', '-gone: true'].join('\n'),
    );
  });

  test('types are part of the value: 15 and "15" differ and show differently', () => {
    const changes = diffConfig({ v: 15 }, { v: '15' });
    expect(changes).toEqual([{ key: 'v', before: 15, after: '15' }]);
    expect(renderConfigDiff(changes)).toBe('--- before\n+++ after\n-v: 15\n+v: "15"');
  });

  test('no changes', () => {
    expect(diffConfig(DEFAULTS, { ...DEFAULTS })).toEqual([]);
    expect(renderConfigDiff([])).toBe('no changes');
  });

  test('color marks removed lines red and added lines green', () => {
    const out = renderConfigDiff([{ key: 'a', before: 1, after: 2 }], { color: true });
    expect(out).toContain('\x1b[31m-a: 1\x1b[0m');
    expect(out).toContain('\x1b[32m+a: 2\x1b[0m');
  });
});

describe('configHash', () => {
  test('is stable across key order and changes with any value or type', () => {
    const h = configHash({ a: 1, b: 'x' });
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(configHash({ b: 'x', a: 1 })).toBe(h);
    expect(configHash({ a: 2, b: 'x' })).not.toBe(h);
    expect(configHash({ a: '1', b: 'x' })).not.toBe(h);
    expect(configHash({ a: 1, b: 'x', c: false })).not.toBe(h);
    // Pinned so that a change of the encoding (which would re-apply every deployment) is seen.
    expect(configHash({})).toBe('4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945');
  });
});

describe('didYouMean', () => {
  const cases: [string, string[], string | undefined][] = [
    ['max-connection', ['max-connections', 'port'], 'max-connections'],
    ['wrk-mem', ['work-mem', 'shared-buffers'], 'work-mem'],
    ['integer', ['string', 'int', 'float', 'boolean'], 'int'],
    ['int', ['string', 'integer', 'number'], 'integer'],
    ['MAX-CONNECTIONS', ['max-connections'], 'max-connections'],
    ['cuont', ['count', 'mode'], 'count'],
    ['c', ['a', 'b'], undefined],
    ['mode', ['runs', 'tags'], undefined],
    ['wal-level', ['max-connections', 'port', 'profile'], undefined],
  ];
  test.each(cases)('%s', (word, candidates, expected) => {
    expect(didYouMean(word, candidates)).toBe(expected);
  });
});
