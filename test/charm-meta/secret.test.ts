import { describe, expect, test } from 'vitest';
import {
  configHash,
  defaults,
  isSecretRef,
  planConfigChange,
  referencedEntries,
  renderConfigDiff,
  diffConfig,
  sealValues,
  secretEntryKey,
  secretOptions,
  secretRef,
  unsealValues,
  validateSettings,
} from '../../agent/charm-meta/index.js';
import { meta, problemsOf } from './fixtures.js';

/** The fixture with a secret option (and an immutable secret one, to check error messages). */
const m = meta((d) => {
  d.config.options.password = { type: 'string', default: '', secret: true, description: 'd' };
  d.config.options['deploy-key'] = { type: 'string', default: '', secret: true, immutable: true, description: 'd' };
});
const KEY = Buffer.alloc(32, 7);
const OTHER_KEY = Buffer.alloc(32, 8);

describe('secret options: references instead of values', () => {
  test('charm.yaml marks them; they are found by name', () => {
    expect(secretOptions(m)).toEqual(['password', 'deploy-key']);
    expect(m.options['password']?.secret).toBe(true);
    expect(m.options['max-connections']?.secret).toBe(false);
  });

  test('a reference is a keyed hash: same value same reference, no trace of the value, different per key and option', () => {
    const r = secretRef(KEY, 'password', 'hunter22');
    expect(isSecretRef(r)).toBe(true);
    expect(r).toBe(secretRef(KEY, 'password', 'hunter22'));
    expect(r).not.toContain('hunter22');
    expect(secretRef(KEY, 'password', 'hunter23')).not.toBe(r);
    expect(secretRef(OTHER_KEY, 'password', 'hunter22')).not.toBe(r);
    expect(secretRef(KEY, 'deploy-key', 'hunter22')).not.toBe(r);
  });

  test('seal: secret values become references plus Secret entries; "" and other options stay', () => {
    const values = { ...defaults(m), password: 'hunter22', 'max-connections': 300 };
    const s = sealValues(values, secretOptions(m), KEY);
    expect(s.values['password']).toBe(secretRef(KEY, 'password', 'hunter22'));
    expect(s.values['deploy-key']).toBe('');
    expect(s.values['max-connections']).toBe(300);
    expect(s.refs).toEqual(['password']);
    expect(s.entries).toEqual({ [secretEntryKey('password', s.values['password'] as string)]: 'hunter22' });
    expect(JSON.stringify(s.values)).not.toContain('hunter22');
    expect(referencedEntries(s.values, s.refs)).toEqual(Object.keys(s.entries));
  });

  test('unseal: the real values back; a missing entry keeps its reference and is named', () => {
    const s = sealValues({ ...defaults(m), password: 'hunter22', 'deploy-key': 'k3y-material' }, secretOptions(m), KEY);
    expect(unsealValues(s.values, s.refs, s.entries)).toEqual({ values: { ...defaults(m), password: 'hunter22', 'deploy-key': 'k3y-material' }, missing: [] });
    const partial = unsealValues(s.values, s.refs, { [secretEntryKey('password', s.values['password'] as string)]: 'hunter22' });
    expect(partial.missing).toEqual(['deploy-key']);
    expect(partial.values['deploy-key']).toBe(s.values['deploy-key']);
  });

  test('a reference read back unresolved passes through unchanged when it is the stored one (kept, not set)', () => {
    const first = sealValues({ password: 'hunter22' }, ['password'], KEY);
    const again = sealValues({ password: first.values['password']! }, ['password'], KEY, first.values);
    expect(again.values).toEqual(first.values);
    expect(again.entries).toEqual({});
  });

  test('the config hash changes with a secret value, and only through its reference', () => {
    const a = sealValues({ ...defaults(m), password: 'one-password' }, secretOptions(m), KEY).values;
    const b = sealValues({ ...defaults(m), password: 'two-password' }, secretOptions(m), KEY).values;
    expect(configHash(a)).not.toBe(configHash(b));
    expect(configHash(a)).toBe(configHash(sealValues({ ...defaults(m), password: 'one-password' }, secretOptions(m), KEY).values));
  });
});

describe('secret values are never shown', () => {
  test('diffs show (secret); an empty value shows as ""', () => {
    const before = { ...defaults(m) };
    const after = { ...before, password: 'hunter22' };
    const text = renderConfigDiff(diffConfig(before, after), { secret: secretOptions(m) });
    expect(text).toBe('--- before\n+++ after\n-password: ""\n+password: (secret)');
    const changed = renderConfigDiff(diffConfig(after, { ...after, password: 'hunter23' }), { secret: secretOptions(m) });
    expect(changed).toBe('--- before\n+++ after\n-password: (secret)\n+password: (secret)');
  });

  test('an immutable secret option is refused without echoing either value', () => {
    const deployed = { ...defaults(m), 'deploy-key': 'first-key' };
    const got = problemsOf(() => planConfigChange(m, { settings: { 'deploy-key': 'first-key' }, deployed }, ['deploy-key=second-key']));
    expect(got).toEqual(['deploy-key: immutable after deploy (deployed with (secret), asked for (secret))']);
  });

  test('a setting of the wrong type is refused without echoing it', () => {
    const got = problemsOf(() => validateSettings(m, { password: 12345678 }));
    expect(got).toEqual(['password: expected string, got a number (value not shown: the option is secret)']);
    expect(got.join()).not.toContain('12345678');
  });
});
