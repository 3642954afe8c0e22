/**
 * Splits a command line into words the way Pebble does (canonical/x-go strutil/shlex, a
 * port of google/shlex): whitespace separates words; single quotes are literal; inside
 * double quotes a backslash makes the next character literal; outside quotes a backslash
 * escapes the next character; `#` at the start of a word begins a comment to end of line.
 * No expansion of variables, globs or operators happens: there is no shell.
 */
export class ShlexError extends Error {}

type State = 'start' | 'word' | 'escape' | 'single' | 'double' | 'double-escape' | 'comment';

const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\r' || c === '\n';

export function shlexSplit(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let state: State = 'start';
  for (const c of text) {
    switch (state) {
      case 'start':
        if (isSpace(c)) break;
        if (c === '#') state = 'comment';
        else if (c === '\\') state = 'escape';
        else if (c === "'") state = 'single';
        else if (c === '"') state = 'double';
        else {
          word = c;
          state = 'word';
        }
        break;
      case 'word':
        if (isSpace(c)) {
          words.push(word);
          word = '';
          state = 'start';
        } else if (c === '\\') state = 'escape';
        else if (c === "'") state = 'single';
        else if (c === '"') state = 'double';
        else word += c;
        break;
      case 'escape':
        word += c;
        state = 'word';
        break;
      case 'single':
        if (c === "'") state = 'word';
        else word += c;
        break;
      case 'double':
        if (c === '"') state = 'word';
        else if (c === '\\') state = 'double-escape';
        else word += c;
        break;
      case 'double-escape':
        word += c;
        state = 'double';
        break;
      case 'comment':
        if (c === '\n') state = 'start';
        break;
    }
  }
  switch (state) {
    case 'word':
      words.push(word);
      break;
    case 'escape':
    case 'double-escape':
      throw new ShlexError('EOF found after escape character');
    case 'single':
    case 'double':
      throw new ShlexError('EOF found when expecting closing quote');
    default:
      break;
  }
  return words;
}

/** Quotes a word so shlexSplit gives it back unchanged. */
export function shlexQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'"'"'`)}'`;
}

export function shlexJoin(words: string[]): string {
  return words.map(shlexQuote).join(' ');
}
