import { describe, expect, it } from 'vitest';
import { quickRunFlags, runOptions } from '../../sidecar/run-flags.js';

/** cli.ts starts the daemon without commander for a plain `run` line, and leaves anything else to commander. */
describe('quickRunFlags', () => {
  it.each([
    [[], {}],
    [['--dir', '/p'], { dir: '/p' }],
    [['--dir=/p', '--hold'], { dir: '/p', hold: true }],
    [['--dir', '/p', '--http', ':0', '--socket-group', '5', '--log-level', 'debug'], { dir: '/p', http: ':0', socketGroup: '5', logLevel: 'debug' }],
    [['--log-file', '/l', '--log-max-size=1M', '--log-max-files', '2'], { logFile: '/l', logMaxSize: '1M', logMaxFiles: '2' }],
  ])('parses %j', (args, flags) => expect(quickRunFlags(args)).toEqual(flags));

  it.each([
    [['--help']],
    [['-h']],
    [['--dir']],
    [['--dir', '--hold']],
    [['--dir=']],
    [['--dir', '/a', '--dir', '/b']],
    [['--hold=yes']],
    [['--hold', '--hold']],
    [['--dri', '/p']],
    [['extra']],
    [['--dir', '/p', 'extra']],
  ])('leaves %j to commander', (args) => expect(quickRunFlags(args)).toBeUndefined());
});

describe('runOptions', () => {
  it('fills in defaults from the environment', () => {
    expect(runOptions({}, { PEBBLE: '/p', PEBBLE_SOCKET_GROUP: '7', PEBBLE_LOG_LEVEL: 'warn' })).toEqual({ dir: '/p', hold: false, logLevel: 'warn', socketGroup: 7 });
  });

  it.each([
    [{}, /no sidecar directory given/],
    [{ dir: '/p', socketGroup: 'x' }, /--socket-group: must be a numeric gid/],
    [{ dir: '/p', logLevel: 'loud' }, /--log-level: must be one of/],
    [{ dir: '/p', logMaxSize: '1M' }, /go with --log-file/],
  ])('refuses %j', (flags, err) => expect(() => runOptions(flags, {})).toThrow(err));
});
