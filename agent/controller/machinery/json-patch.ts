import { deepEqual, isObject, jsonClone, quote, type Json, type JsonObject } from './json.js';

/**
 * JSON patch (RFC 6902): add, remove, replace, move, copy and test, applied in order to a
 * copy of the document; any failing operation fails the whole patch and leaves the input as
 * it was. A malformed patch document is a PatchSyntaxError (400 in the API), a patch that
 * does not apply is a PatchApplyError (422).
 */

export class PatchSyntaxError extends Error {}
export class PatchApplyError extends Error {}

type Op =
  | { op: 'add' | 'replace' | 'test'; path: string; value: Json }
  | { op: 'remove'; path: string }
  | { op: 'move' | 'copy'; from: string; path: string };

export function parseJsonPatch(doc: unknown): Op[] {
  if (!Array.isArray(doc)) throw new PatchSyntaxError('json patch must be an array of operations');
  return doc.map((raw, i) => {
    if (!isObject(raw)) throw new PatchSyntaxError(`json patch operation ${i} must be an object`);
    const { op, path } = raw;
    if (typeof path !== 'string') throw new PatchSyntaxError(`json patch operation ${i}: missing "path"`);
    switch (op) {
      case 'add':
      case 'replace':
      case 'test':
        if (!Object.hasOwn(raw, 'value')) throw new PatchSyntaxError(`json patch operation ${i} (${op}): missing "value"`);
        return { op, path, value: raw['value']! };
      case 'remove':
        return { op, path };
      case 'move':
      case 'copy':
        if (typeof raw['from'] !== 'string') throw new PatchSyntaxError(`json patch operation ${i} (${op}): missing "from"`);
        return { op, from: raw['from'], path };
      default:
        throw new PatchSyntaxError(`json patch operation ${i}: unknown op ${quote(op)}`);
    }
  });
}

/** RFC 6901 pointer into its reference tokens. */
export function parsePointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw new PatchApplyError(`invalid JSON pointer ${quote(p)}: must start with '/'`);
  return p
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function arrayIndex(tok: string, len: number, allowEnd: boolean, path: string): number {
  if (allowEnd && tok === '-') return len;
  if (!/^(0|[1-9]\d*)$/.test(tok)) throw new PatchApplyError(`invalid array index ${quote(tok)} in ${path}`);
  const i = Number(tok);
  if (i > len || (!allowEnd && i >= len)) throw new PatchApplyError(`array index ${i} out of bounds in ${path}`);
  return i;
}

/** The container holding the last token of `path`, and that token. */
function parent(doc: Json, path: string): { container: JsonObject | Json[]; key: string } {
  const toks = parsePointer(path);
  if (toks.length === 0) throw new PatchApplyError('the root of the document cannot be the target of this operation');
  let cur: Json = doc;
  for (const t of toks.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(t, cur.length, false, path)]!;
    else if (isObject(cur) && Object.hasOwn(cur, t)) cur = cur[t]!;
    else throw new PatchApplyError(`doc is missing path: ${quote(path)}`);
  }
  if (!Array.isArray(cur) && !isObject(cur)) throw new PatchApplyError(`doc is missing path: ${quote(path)}`);
  return { container: cur, key: toks[toks.length - 1]! };
}

function get(doc: Json, path: string): Json {
  let cur: Json = doc;
  for (const t of parsePointer(path)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(t, cur.length, false, path)]!;
    else if (isObject(cur) && Object.hasOwn(cur, t)) cur = cur[t]!;
    else throw new PatchApplyError(`doc is missing path: ${quote(path)}`);
  }
  return cur;
}

function add(doc: Json, path: string, value: Json): Json {
  if (path === '') return value;
  const { container, key } = parent(doc, path);
  if (Array.isArray(container)) container.splice(arrayIndex(key, container.length, true, path), 0, value);
  else container[key] = value;
  return doc;
}

function remove(doc: Json, path: string): { doc: Json; removed: Json } {
  const { container, key } = parent(doc, path);
  if (Array.isArray(container)) {
    const i = arrayIndex(key, container.length, false, path);
    return { doc, removed: container.splice(i, 1)[0]! };
  }
  if (!Object.hasOwn(container, key)) throw new PatchApplyError(`unable to remove nonexistent key: ${key}: missing value`);
  const removed = container[key]!;
  delete container[key];
  return { doc, removed };
}

export function applyJsonPatch(input: Json, ops: Op[]): Json {
  let doc = jsonClone(input);
  for (const op of ops) {
    switch (op.op) {
      case 'add':
        doc = add(doc, op.path, jsonClone(op.value));
        break;
      case 'remove':
        if (op.path === '') throw new PatchApplyError('cannot remove the root of the document');
        doc = remove(doc, op.path).doc;
        break;
      case 'replace': {
        if (op.path === '') {
          doc = jsonClone(op.value);
          break;
        }
        get(doc, op.path); // must exist
        const { container, key } = parent(doc, op.path);
        if (Array.isArray(container)) container[arrayIndex(key, container.length, false, op.path)] = jsonClone(op.value);
        else container[key] = jsonClone(op.value);
        break;
      }
      case 'move': {
        if (op.path.startsWith(`${op.from}/`)) throw new PatchApplyError(`cannot move ${quote(op.from)} into its own child ${quote(op.path)}`);
        if (op.from === op.path) break;
        const r = remove(doc, op.from);
        doc = add(r.doc, op.path, r.removed);
        break;
      }
      case 'copy':
        doc = add(doc, op.path, jsonClone(get(doc, op.from)));
        break;
      case 'test':
        if (!deepEqual(get(doc, op.path), op.value)) throw new PatchApplyError(`testing value ${op.path} failed`);
        break;
    }
  }
  return doc;
}
