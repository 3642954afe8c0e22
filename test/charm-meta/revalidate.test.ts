import { describe, expect, test } from 'vitest';
import { defaults, revalidateConfig, validateSettings, type ConfigState } from '../../agent/charm-meta/index.js';
import { meta, problemsOf, type Doc } from './fixtures.js';

/** charm.yaml edited under a running deployment: old meta + stored state + new meta. */
const oldMeta = meta();
const settings = { 'max-connections': 200, profile: 'testing' };
const deployed = validateSettings(oldMeta, settings);
const state: ConfigState = { settings, deployed };
const opts = (d: Doc) => d.config.options;

describe('revalidateConfig: accepted edits', () => {
  const cases: [string, (d: Doc) => void, ConfigState, Record<string, unknown>, { key: string; before: unknown; after: unknown }[]][] = [
    ['nothing changed', () => {}, state, {}, []],
    ['a default the user did not set', (d) => (opts(d)['shared-buffers'].default = '256MB'), state, { 'shared-buffers': '256MB' }, [{ key: 'shared-buffers', before: '128MB', after: '256MB' }]],
    ['a default the user did set: the setting wins', (d) => (opts(d)['max-connections'].default = 500), state, {}, []],
    ['a wider range', (d) => (opts(d)['max-connections'].max = 20000), state, {}, []],
    [
      'a new option',
      (d) => (opts(d)['work-mem'] = { type: 'string', format: 'memory', default: '4MB', description: 'd' }),
      state,
      { 'work-mem': '4MB' },
      [{ key: 'work-mem', before: undefined, after: '4MB' }],
    ],
    ['an option removed that the user had not set', (d) => delete opts(d).ratio, state, {}, [{ key: 'ratio', before: 0.5, after: undefined }]],
    ['an immutable default changed, but the user pinned it', (d) => (opts(d)['postgresql-major'].default = 16), { settings: { ...settings, 'postgresql-major': 15 }, deployed }, {}, []],
    ['an immutable default changed before deploy', (d) => (opts(d)['postgresql-major'].default = 16), { settings }, { 'postgresql-major': 16 }, [{ key: 'postgresql-major', before: 15, after: 16 }]],
    ['an option made immutable, same value', (d) => (opts(d).profile.immutable = true), state, {}, []],
  ];
  test.each(cases)('%s', (_name, edit, st, effectiveChanges, changes) => {
    const newMeta = meta(edit);
    const plan = revalidateConfig(oldMeta, newMeta, st);
    const expected: Record<string, unknown> = { ...defaults(newMeta), ...st.settings, ...effectiveChanges };
    expect(plan.effective).toEqual(expected);
    expect(plan.settings).toEqual(st.settings);
    expect(plan.changes).toEqual(changes);
  });
});

describe('revalidateConfig: refused edits', () => {
  const cases: [string, (d: Doc) => void, string[]][] = [
    [
      'an immutable option whose default changed',
      (d) => (opts(d)['postgresql-major'].default = 16),
      ['postgresql-major: immutable after deploy (deployed with 15, charm.yaml changed its default from 15 to 16; keep the old default or pin it first: pgcharm config postgresql-major=15)'],
    ],
    [
      'a removed option the user had set',
      (d) => delete opts(d)['max-connections'],
      ['max-connections: set to 200, but charm.yaml no longer has this option (reset it first: pgcharm config --reset max-connections)'],
    ],
    [
      'a renamed option the user had set',
      (d) => {
        opts(d)['max-connection'] = opts(d)['max-connections'];
        delete opts(d)['max-connections'];
      },
      ['max-connections: set to 200, but charm.yaml no longer has this option; did you mean "max-connection"? (reset it first: pgcharm config --reset max-connections)'],
    ],
    ['a narrower range', (d) => (opts(d)['max-connections'].max = 150), ['max-connections: your setting no longer fits charm.yaml: must be at most 150, got 200']],
    [
      'a new type',
      (d) => (opts(d)['max-connections'] = { type: 'string', default: '100', description: 'd' }),
      ['max-connections: your setting no longer fits charm.yaml: expected string, got 200'],
    ],
    [
      'fewer allowed values',
      (d) => (opts(d).profile.allowed = ['production', 'staging']),
      ['profile: your setting no longer fits charm.yaml: must be one of production, staging, got "testing"'],
    ],
    [
      'several at once',
      (d) => {
        opts(d)['postgresql-major'].default = 14;
        opts(d)['postgresql-major'].allowed = [14, 16];
        delete d.containers.postgresql.images['15'];
        opts(d)['max-connections'].min = 300;
        opts(d)['max-connections'].default = 300;
        delete opts(d).profile;
      },
      [
        'max-connections: your setting no longer fits charm.yaml: must be at least 300, got 200',
        'profile: set to "testing", but charm.yaml no longer has this option (reset it first: pgcharm config --reset profile)',
        'postgresql-major: immutable after deploy (deployed with 15, charm.yaml changed its default from 15 to 14, and it no longer accepts 15: must be one of 14, 16, got 15)',
      ],
    ],
  ];
  test.each(cases)('%s', (_name, edit, expected) => {
    expect(problemsOf(() => revalidateConfig(oldMeta, meta(edit), state))).toEqual(expected);
  });

  test('the error says it was the charm.yaml change that was refused', () => {
    expect(() => revalidateConfig(oldMeta, meta((d) => (opts(d)['max-connections'].max = 150)), state)).toThrow(/^charm\.yaml change refused: 1 problem\n/);
  });

  test('a pinned immutable option that the new charm.yaml no longer allows is refused once', () => {
    const pinned: ConfigState = { settings: { 'postgresql-major': 15 }, deployed };
    const newMeta = meta((d) => {
      opts(d)['postgresql-major'].allowed = [16];
      opts(d)['postgresql-major'].default = 16;
      d.containers.postgresql.images = { '16': 'pg:16' };
    });
    expect(problemsOf(() => revalidateConfig(oldMeta, newMeta, pinned))).toEqual([
      'postgresql-major: your setting no longer fits charm.yaml: must be one of 16, got 15',
    ]);
  });
});
