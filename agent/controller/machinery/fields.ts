import { SelectorError } from './labels.js';

/**
 * Field selectors (k8s.io/apimachinery/pkg/fields): `field=value`, `field==value` and
 * `field!=value` terms joined by commas; `\` escapes `\`, `,` and `=` in values. Which
 * fields can be selected on is up to each resource.
 */

export interface FieldRequirement {
  field: string;
  op: '=' | '!=';
  value: string;
}

export type FieldSelector = FieldRequirement[];

/** Splits on separators that are not escaped with a backslash. */
function splitUnescaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) {
      cur += c + s[i + 1]!;
      i++;
    } else if (c === sep) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

function unescape(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const n = s[i + 1];
    if (n === '\\' || n === ',' || n === '=') {
      out += n;
      i++;
    } else throw new SelectorError(`invalid field selector: invalid escape sequence in ${JSON.stringify(s)}`);
  }
  return out;
}

export function parseFieldSelector(s: string): FieldSelector {
  if (s.trim() === '') return [];
  return splitUnescaped(s, ',').map((term) => {
    for (let i = 0; i < term.length; i++) {
      if (term[i] === '\\') {
        i++;
        continue;
      }
      for (const op of ['!=', '==', '='] as const) {
        if (term.startsWith(op, i)) {
          const field = unescape(term.slice(0, i).trim());
          const value = unescape(term.slice(i + op.length).trim());
          if (field === '') throw new SelectorError(`invalid field selector: ${JSON.stringify(term)} has no field name`);
          return { field, op: op === '!=' ? '!=' : '=', value };
        }
      }
    }
    throw new SelectorError(`invalid selector: '${s}'; can't understand '${term}'`);
  });
}

export function matchesFields(sel: FieldSelector, fields: (field: string) => string | undefined): boolean {
  return sel.every((r) => {
    const v = fields(r.field) ?? '';
    return r.op === '=' ? v === r.value : v !== r.value;
  });
}
