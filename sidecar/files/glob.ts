import { RequestError } from './errors.js';

/**
 * Go's path.Match pattern language, which Pebble uses to filter listings:
 *   '*'  any run of non-'/' characters     '?'  one non-'/' character
 *   '[' ['^'] ranges ']'  a class; a range is c, '\' c, or lo '-' hi
 *   '\' c  the character c
 * '-' and ']' inside a class, a trailing '\' and an unclosed '[' are syntax errors.
 */
export function compileGlob(pattern: string): RegExp {
  const bad = () => new RequestError(`pattern ${JSON.stringify(pattern)}: syntax error in pattern`);
  const chars = Array.from(pattern);
  // Unicode-mode regexps reject needless escapes, so '-' is escaped only inside classes.
  const esc = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
  const escClass = (c: string) => c.replace(/[\\^\]\-[]/g, '\\$&');
  let out = '^';
  let i = 0;
  // One class member: a plain character or an escaped one.
  const classChar = (): string => {
    let c = chars[i];
    if (c === undefined || c === '-' || c === ']') throw bad();
    if (c === '\\') {
      i++;
      c = chars[i];
      if (c === undefined) throw bad();
    }
    i++;
    return c;
  };
  while (i < chars.length) {
    const c = chars[i]!;
    if (c === '*') {
      out += '[^/]*';
      i++;
    } else if (c === '?') {
      out += '[^/]';
      i++;
    } else if (c === '\\') {
      const n = chars[i + 1];
      if (n === undefined) throw bad();
      out += esc(n);
      i += 2;
    } else if (c === '[') {
      i++;
      let negate = false;
      if (chars[i] === '^') {
        negate = true;
        i++;
      }
      let body = '';
      let ranges = 0;
      for (;;) {
        if (i >= chars.length) throw bad();
        if (chars[i] === ']' && ranges > 0) {
          i++;
          break;
        }
        const lo = classChar();
        let hi = lo;
        if (chars[i] === '-') {
          i++;
          hi = classChar();
          if (hi.codePointAt(0)! < lo.codePointAt(0)!) throw bad();
        }
        body += lo === hi ? escClass(lo) : `${escClass(lo)}-${escClass(hi)}`;
        ranges++;
      }
      // A class never matches the separator, negated or not.
      out += negate ? `(?![${body}])[^/]` : `[${body}]`;
    } else {
      out += esc(c);
      i++;
    }
  }
  return new RegExp(out + '$', 'su');
}
