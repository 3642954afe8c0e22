import { describe, expect, it } from 'vitest';
import { applyJsonPatch, parseJsonPatch, PatchApplyError, PatchSyntaxError } from '../../agent/controller/machinery/json-patch.js';
import type { Json } from '../../agent/controller/machinery/json.js';
import { mergePatch, strategicMergePatch } from '../../agent/controller/machinery/merge-patch.js';

describe('JSON merge patch (RFC 7386, appendix A)', () => {
  it.each<[Json, Json, Json]>([
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ])('%j + %j = %j', (target, patch, want) => expect(mergePatch(target, patch)).toEqual(want));

  it('leaves its inputs alone', () => {
    const target = { a: { b: 1 } };
    mergePatch(target, { a: { b: 2 } });
    expect(target).toEqual({ a: { b: 1 } });
  });
});

describe('strategic merge patch (as a merge patch, directives dropped)', () => {
  it.each<[Json, Json, Json]>([
    [{ data: { a: '1' } }, { data: { b: '2' } }, { data: { a: '1', b: '2' } }],
    [{ data: { a: '1' } }, { data: { a: null } }, { data: {} }],
    [{ spec: { containers: [{ name: 'a', image: 'x' }] } }, { spec: { $setElementOrder: [1], containers: [{ name: 'a', image: 'y' }] } }, { spec: { containers: [{ name: 'a', image: 'y' }] } }],
    [{ metadata: { labels: { a: '1', b: '2' } } }, { metadata: { labels: { $patch: 'replace', c: '3' } } }, { metadata: { labels: { c: '3' } } }],
    [{ metadata: { labels: { a: '1' } }, data: {} }, { metadata: { labels: { $patch: 'delete' } } }, { metadata: {}, data: {} }],
  ])('%j + %j = %j', (target, patch, want) => expect(strategicMergePatch(target, patch)).toEqual(want));
});

describe('JSON patch (RFC 6902, appendix A)', () => {
  const apply = (doc: Json, ops: unknown) => applyJsonPatch(doc, parseJsonPatch(ops));

  it.each<[string, Json, unknown, Json]>([
    ['add an object member', { foo: 'bar' }, [{ op: 'add', path: '/baz', value: 'qux' }], { foo: 'bar', baz: 'qux' }],
    ['add an array element', { foo: ['bar', 'baz'] }, [{ op: 'add', path: '/foo/1', value: 'qux' }], { foo: ['bar', 'qux', 'baz'] }],
    ['remove an object member', { baz: 'qux', foo: 'bar' }, [{ op: 'remove', path: '/baz' }], { foo: 'bar' }],
    ['remove an array element', { foo: ['bar', 'qux', 'baz'] }, [{ op: 'remove', path: '/foo/1' }], { foo: ['bar', 'baz'] }],
    ['replace a value', { baz: 'qux', foo: 'bar' }, [{ op: 'replace', path: '/baz', value: 'boo' }], { baz: 'boo', foo: 'bar' }],
    [
      'move a value',
      { foo: { bar: 'baz', waldo: 'fred' }, qux: { corge: 'grault' } },
      [{ op: 'move', from: '/foo/waldo', path: '/qux/thud' }],
      { foo: { bar: 'baz' }, qux: { corge: 'grault', thud: 'fred' } },
    ],
    ['move an array element', { foo: ['all', 'grass', 'cows', 'eat'] }, [{ op: 'move', from: '/foo/1', path: '/foo/3' }], { foo: ['all', 'cows', 'eat', 'grass'] }],
    ['test a value', { baz: 'qux', foo: ['a', 2, 'c'] }, [{ op: 'test', path: '/baz', value: 'qux' }, { op: 'test', path: '/foo/1', value: 2 }], { baz: 'qux', foo: ['a', 2, 'c'] }],
    ['add a nested member object', { foo: 'bar' }, [{ op: 'add', path: '/child', value: { grandchild: {} } }], { foo: 'bar', child: { grandchild: {} } }],
    ['add to the end of an array', { foo: ['bar'] }, [{ op: 'add', path: '/foo/-', value: ['abc', 'def'] }], { foo: ['bar', ['abc', 'def']] }],
    ['escape ~ and / in pointers', { '/': 9, '~1': 10 }, [{ op: 'test', path: '/~01', value: 10 }, { op: 'replace', path: '/~1', value: 1 }], { '/': 1, '~1': 10 }],
    ['copy a value', { a: { b: 1 } }, [{ op: 'copy', from: '/a', path: '/c' }], { a: { b: 1 }, c: { b: 1 } }],
    ['replace the root', { a: 1 }, [{ op: 'replace', path: '', value: { b: 2 } }], { b: 2 }],
    ['test deep equality regardless of key order', { a: { x: 1, y: [1, 2] } }, [{ op: 'test', path: '/a', value: { y: [1, 2], x: 1 } }], { a: { x: 1, y: [1, 2] } }],
  ])('%s', (_name, doc, ops, want) => expect(apply(doc, ops)).toEqual(want));

  it.each<[string, Json, unknown, RegExp]>([
    ['a failing test', { baz: 'qux' }, [{ op: 'test', path: '/baz', value: 'bar' }], /testing value \/baz failed/],
    ['a test of a number against a string', { baz: 10 }, [{ op: 'test', path: '/baz', value: '10' }], /testing value/],
    ['adding under a missing parent', { foo: 'bar' }, [{ op: 'add', path: '/baz/bat', value: 'qux' }], /missing path/],
    ['removing a missing member', { foo: 'bar' }, [{ op: 'remove', path: '/baz' }], /nonexistent key/],
    ['replacing a missing member', { foo: 'bar' }, [{ op: 'replace', path: '/baz', value: 1 }], /missing path/],
    ['an index past the end', { foo: [1] }, [{ op: 'add', path: '/foo/5', value: 2 }], /out of bounds/],
    ['a leading-zero index', { foo: [1, 2] }, [{ op: 'remove', path: '/foo/01' }], /invalid array index/],
    ['moving into a child of itself', { a: { b: {} } }, [{ op: 'move', from: '/a', path: '/a/b/c' }], /its own child/],
  ])('fails on %s, leaving the document as it was', (_name, doc, ops, err) => {
    const before = JSON.stringify(doc);
    expect(() => apply(doc, ops)).toThrow(PatchApplyError);
    expect(() => apply(doc, ops)).toThrow(err);
    expect(JSON.stringify(doc)).toBe(before);
  });

  it.each<[string, unknown]>([
    ['not an array', { op: 'add' }],
    ['an unknown op', [{ op: 'frobnicate', path: '/a' }]],
    ['a missing value', [{ op: 'add', path: '/a' }]],
    ['a missing from', [{ op: 'move', path: '/a' }]],
    ['a missing path', [{ op: 'remove' }]],
  ])('refuses a malformed patch: %s', (_name, ops) => expect(() => parseJsonPatch(ops)).toThrow(PatchSyntaxError));
});
