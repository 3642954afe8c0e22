import { describe, expect, test } from 'vitest';
import { psqlInvocation } from '../../agent/commands/uri.js';

/** `pgcharm psql [target] [-- psql-args...]` (the end-to-end form is in test/charm/slots.test.ts). */
describe('pgcharm psql arguments', () => {
  test.each<[string, string[], string[], { target: string; args: string[] }]>([
    ['nothing: the primary', [], [], { target: 'primary', args: [] }],
    ['a target', ['replicas'], [], { target: 'replicas', args: [] }],
    ['-- -c "select 1" (the README form): psql args, primary', ['-c', 'select 1'], ['-c', 'select 1'], { target: 'primary', args: ['-c', 'select 1'] }],
    ['a target, then -- args', ['postgresql/1', '-c', 'select 1'], ['-c', 'select 1'], { target: 'postgresql/1', args: ['-c', 'select 1'] }],
    ['args without --', ['primary', 'extra'], [], { target: 'primary', args: ['extra'] }],
    ['-- then nothing', [], [], { target: 'primary', args: [] }],
  ])('%s', (_, operands, after, want) => {
    expect(psqlInvocation(operands, after)).toEqual(want);
  });
});
