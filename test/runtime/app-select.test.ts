import { describe, expect, test } from 'vitest';
import { checkAppName, pickApp } from '../../agent/commands/context.js';

/** `--app`: which application of a model a command acts on (the two-application deployment is in apps.test.ts). */
describe('application names and selection', () => {
  test.each(['postgresql', 'pg-1', 'a', 'a1', 'x'.repeat(40)])('%s is a valid name', (name) => {
    expect(checkAppName(name)).toBe(name);
  });

  test.each([
    ['upper case', 'Postgres'],
    ['a leading digit', '1pg'],
    ['a trailing dash', 'pg-'],
    ['an underscore', 'pg_1'],
    ['a slash', 'pg/0'],
    ['empty', ''],
    ['longer than 40 characters', 'x'.repeat(41)],
  ])('refuses %s, naming the field', (_, name) => {
    expect(() => checkAppName(name)).toThrow(new RegExp(`^--app: ${JSON.stringify(name)} is not a valid application name: lowercase letters`));
    expect(() => checkAppName(name, 'charm.yaml: name')).toThrow(/^charm\.yaml: name: /);
  });

  test('one application: inferred', () => {
    expect(pickApp('/m', ['postgresql'])).toBe('postgresql');
  });

  test('several and --app: that one', () => {
    expect(pickApp('/m', ['a', 'b'], 'b')).toBe('b');
  });

  test('several without --app: an error listing them', () => {
    expect(() => pickApp('/m', ['pg-b', 'pg-a'])).toThrow('model /m has several applications (pg-a, pg-b): pass --app');
  });

  test('an --app the model does not have: an error listing those it has', () => {
    expect(() => pickApp('/m', ['pg-a', 'pg-b'], 'pg-c')).toThrow('--app: model /m has no application pg-c: applications are pg-a, pg-b');
  });

  test('an invalid --app is refused before looking', () => {
    expect(() => pickApp('/m', ['Bad'], 'Bad')).toThrow(/^--app: "Bad" is not a valid application name/);
  });

  test('no application at all', () => {
    expect(() => pickApp('/m', [])).toThrow(/model \/m has a controller but no application/);
  });
});
