import { isLabelValue, isQualifiedName } from './names.js';

/**
 * Label selectors with apimachinery's grammar (k8s.io/apimachinery/pkg/labels):
 *
 *   selector    := requirement ("," requirement)*
 *   requirement := ["!"] key
 *                | key ("=" | "==" | "!=") value
 *                | key ("in" | "notin") "(" value ("," value)* ")"
 *                | key (">" | "<") integer
 *
 * `!=` and `notin` also match objects without the key, as in Kubernetes.
 */

export type Operator = 'exists' | '!exists' | '=' | '!=' | 'in' | 'notin' | 'gt' | 'lt';

export interface Requirement {
  key: string;
  op: Operator;
  values: string[];
}

export type LabelSelector = Requirement[];

export class SelectorError extends Error {}

type Token =
  | { t: 'id'; v: string }
  | { t: 'op'; v: '=' | '==' | '!=' | '!' | '(' | ')' | ',' | '<' | '>' }
  | { t: 'in' }
  | { t: 'notin' }
  | { t: 'end' };

const SPECIAL = new Set(['=', '!', '(', ')', ',', '<', '>']);

function lex(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (SPECIAL.has(c)) {
      const two = s.slice(i, i + 2);
      if (two === '==' || two === '!=') {
        out.push({ t: 'op', v: two });
        i += 2;
      } else {
        out.push({ t: 'op', v: c as '=' | '!' | '(' | ')' | ',' | '<' | '>' });
        i++;
      }
      continue;
    }
    let j = i;
    while (j < s.length && !SPECIAL.has(s[j]!) && !/\s/.test(s[j]!)) j++;
    const word = s.slice(i, j);
    out.push(word === 'in' ? { t: 'in' } : word === 'notin' ? { t: 'notin' } : { t: 'id', v: word });
    i = j;
  }
  out.push({ t: 'end' });
  return out;
}

const show = (t: Token) => (t.t === 'id' || t.t === 'op' ? t.v : t.t === 'end' ? 'end of string' : t.t);

export function parseLabelSelector(s: string): LabelSelector {
  const toks = lex(s);
  let p = 0;
  const peek = () => toks[p]!;
  const next = () => toks[p++]!;
  const reqs: Requirement[] = [];
  if (peek().t === 'end') return reqs;

  const value = (key: string): string => {
    const t = peek();
    // An empty value is allowed (`key=` selects an empty label value).
    if (t.t === 'end' || (t.t === 'op' && (t.v === ',' || t.v === ')'))) return '';
    if (t.t !== 'id') throw new SelectorError(`found '${show(t)}', expected: identifier after '${key}'`);
    p++;
    return t.v;
  };

  for (;;) {
    let t = next();
    let negated = false;
    if (t.t === 'op' && t.v === '!') {
      negated = true;
      t = next();
    }
    if (t.t !== 'id') throw new SelectorError(`found '${show(t)}', expected: !, identifier, or 'end of string'`);
    const key = t.v;
    let req: Requirement;
    const op = peek();
    if (negated || op.t === 'end' || (op.t === 'op' && op.v === ',')) {
      req = { key, op: negated ? '!exists' : 'exists', values: [] };
    } else if (op.t === 'op' && (op.v === '=' || op.v === '==' || op.v === '!=')) {
      p++;
      req = { key, op: op.v === '!=' ? '!=' : '=', values: [value(key)] };
    } else if (op.t === 'op' && (op.v === '<' || op.v === '>')) {
      p++;
      const v = value(key);
      if (!/^-?\d+$/.test(v)) throw new SelectorError(`for 'gt', 'lt' operators, exactly one value is required and it must be an integer (got ${JSON.stringify(v)})`);
      req = { key, op: op.v === '>' ? 'gt' : 'lt', values: [v] };
    } else if (op.t === 'in' || op.t === 'notin') {
      p++;
      const open = next();
      if (!(open.t === 'op' && open.v === '(')) throw new SelectorError(`found '${show(open)}', expected: '('`);
      const values: string[] = [];
      for (;;) {
        values.push(value(key));
        const sep = next();
        if (sep.t === 'op' && sep.v === ')') break;
        if (!(sep.t === 'op' && sep.v === ',')) throw new SelectorError(`found '${show(sep)}', expected: ',' or ')'`);
      }
      req = { key, op: op.t, values };
    } else {
      throw new SelectorError(`found '${show(op)}', expected: in, notin, =, ==, !=, gt, lt`);
    }
    validateRequirement(req);
    reqs.push(req);
    const sep = next();
    if (sep.t === 'end') return reqs;
    if (!(sep.t === 'op' && sep.v === ',')) throw new SelectorError(`found '${show(sep)}', expected: ',' or 'end of string'`);
  }
}

function validateRequirement(r: Requirement): void {
  const keyErrs = isQualifiedName(r.key);
  if (keyErrs.length) throw new SelectorError(`key: Invalid value: ${JSON.stringify(r.key)}: ${keyErrs.join('; ')}`);
  if (r.op === 'gt' || r.op === 'lt') return;
  r.values.forEach((v, i) => {
    const errs = isLabelValue(v);
    if (errs.length) throw new SelectorError(`values[${i}][${r.key}]: Invalid value: ${JSON.stringify(v)}: ${errs.join('; ')}`);
  });
}

export function matchesLabels(sel: LabelSelector, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return sel.every((r) => {
    const has = Object.hasOwn(l, r.key);
    const v = has ? l[r.key]! : undefined;
    switch (r.op) {
      case 'exists':
        return has;
      case '!exists':
        return !has;
      case '=':
      case 'in':
        return has && r.values.includes(v!);
      case '!=':
      case 'notin':
        return !has || !r.values.includes(v!);
      case 'gt':
      case 'lt': {
        if (!has || !/^-?\d+$/.test(v!)) return false;
        const n = Number(v);
        const bound = Number(r.values[0]);
        return r.op === 'gt' ? n > bound : n < bound;
      }
    }
  });
}

/** The canonical text of a selector (for logs and error messages). */
export function formatLabelSelector(sel: LabelSelector): string {
  return sel
    .map((r) => {
      switch (r.op) {
        case 'exists':
          return r.key;
        case '!exists':
          return `!${r.key}`;
        case '=':
        case '!=':
          return `${r.key}${r.op}${r.values[0]}`;
        case 'gt':
          return `${r.key}>${r.values[0]}`;
        case 'lt':
          return `${r.key}<${r.values[0]}`;
        default:
          return `${r.key} ${r.op} (${r.values.join(',')})`;
      }
    })
    .join(',');
}
