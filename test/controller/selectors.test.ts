import { describe, expect, it } from 'vitest';
import { matchesFields, parseFieldSelector } from '../../agent/controller/machinery/fields.js';
import { formatLabelSelector, matchesLabels, parseLabelSelector } from '../../agent/controller/machinery/labels.js';

describe('label selectors: parsing', () => {
  it.each([
    ['', []],
    ['app=db', [{ key: 'app', op: '=', values: ['db'] }]],
    ['app==db', [{ key: 'app', op: '=', values: ['db'] }]],
    ['app!=db', [{ key: 'app', op: '!=', values: ['db'] }]],
    ['app', [{ key: 'app', op: 'exists', values: [] }]],
    ['!app', [{ key: 'app', op: '!exists', values: [] }]],
    [' app in ( a , b ) ', [{ key: 'app', op: 'in', values: ['a', 'b'] }]],
    ['app notin (a)', [{ key: 'app', op: 'notin', values: ['a'] }]],
    ['app=', [{ key: 'app', op: '=', values: [''] }]],
    ['n>3', [{ key: 'n', op: 'gt', values: ['3'] }]],
    ['n<3', [{ key: 'n', op: 'lt', values: ['3'] }]],
    [
      'example.com/app=db,tier,!gone',
      [
        { key: 'example.com/app', op: '=', values: ['db'] },
        { key: 'tier', op: 'exists', values: [] },
        { key: 'gone', op: '!exists', values: [] },
      ],
    ],
  ])('parses %j', (text, want) => expect(parseLabelSelector(text)).toEqual(want));

  it.each([
    ['app in db', /expected: '\('/],
    ['app in (a', /expected: ',' or '\)'/],
    ['app=a b', /expected: ',' or 'end of string'/],
    ['=a', /expected: !, identifier/],
    ['app=a,', /expected: !, identifier/],
    ['bad key!=x', /found 'key', expected: in, notin, =, ==, !=, gt, lt/],
    ['-bad=x', /key: Invalid value: "-bad"/],
    ['app=-bad', /values\[0\]\[app\]: Invalid value: "-bad"/],
    ['n>x', /must be an integer/],
    [`app=${'x'.repeat(64)}`, /must be no more than 63 characters/],
  ])('rejects %j', (text, err) => expect(() => parseLabelSelector(text)).toThrow(err));

  it('formats what it parsed', () => expect(formatLabelSelector(parseLabelSelector('a==1, b in (x,y),!c, n>2'))).toBe('a=1,b in (x,y),!c,n>2'));
});

describe('label selectors: matching', () => {
  const labels = { app: 'db', tier: 'a', n: '5' };
  it.each([
    ['', true],
    ['app=db', true],
    ['app=web', false],
    ['app!=web', true],
    ['missing!=x', true],
    ['app in (web,db)', true],
    ['app notin (web,db)', false],
    ['missing notin (x)', true],
    ['tier', true],
    ['!tier', false],
    ['!missing', true],
    ['n>4', true],
    ['n<5', false],
    ['app=db,tier=b', false],
    ['app=db,tier in (a,b),!missing', true],
  ])('%j matches: %s', (sel, want) => expect(matchesLabels(parseLabelSelector(sel), labels)).toBe(want));

  it('treats no labels as an empty set', () => {
    expect(matchesLabels(parseLabelSelector('!app'), undefined)).toBe(true);
    expect(matchesLabels(parseLabelSelector('app'), undefined)).toBe(false);
  });
});

describe('field selectors', () => {
  it.each([
    ['', []],
    ['metadata.name=a', [{ field: 'metadata.name', op: '=', value: 'a' }]],
    ['metadata.name==a', [{ field: 'metadata.name', op: '=', value: 'a' }]],
    [
      'metadata.name!=a,involvedObject.kind=Pod',
      [
        { field: 'metadata.name', op: '!=', value: 'a' },
        { field: 'involvedObject.kind', op: '=', value: 'Pod' },
      ],
    ],
    ['reason=a\\,b\\=c', [{ field: 'reason', op: '=', value: 'a,b=c' }]],
    ['metadata.namespace=', [{ field: 'metadata.namespace', op: '=', value: '' }]],
  ])('parses %j', (text, want) => expect(parseFieldSelector(text)).toEqual(want));

  it.each([['metadata.name'], ['=a'], ['reason=a\\b']])('rejects %j', (text) => expect(() => parseFieldSelector(text)).toThrow());

  it('matches against field values, missing ones being empty', () => {
    const fields: Record<string, string> = { 'metadata.name': 'a', reason: 'x' };
    const get = (f: string) => fields[f];
    expect(matchesFields(parseFieldSelector('metadata.name=a,reason!=y'), get)).toBe(true);
    expect(matchesFields(parseFieldSelector('metadata.name=b'), get)).toBe(false);
    expect(matchesFields(parseFieldSelector('type='), get)).toBe(true);
  });
});
