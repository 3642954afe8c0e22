/**
 * POSIX-shell-like word splitting for service and check commands (what Pebble's shlex does):
 * whitespace separates words, single quotes are literal, double quotes allow \" \\ \$ \`,
 * a backslash outside quotes escapes the next character. No expansion of any kind.
 */
export function shlexSplit(input: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  while (i < input.length) {
    const ch = input[i]!;
    if (ch === "'") {
      const end = input.indexOf("'", i + 1);
      if (end < 0) throw new Error('unterminated single-quoted string');
      cur += input.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (ch === '"') {
      i++;
      let closed = false;
      while (i < input.length) {
        const c = input[i]!;
        if (c === '"') {
          closed = true;
          i++;
          break;
        }
        if (c === '\\' && i + 1 < input.length && '"\\$`\n'.includes(input[i + 1]!)) {
          if (input[i + 1] !== '\n') cur += input[i + 1];
          i += 2;
          continue;
        }
        cur += c;
        i++;
      }
      if (!closed) throw new Error('unterminated double-quoted string');
      inWord = true;
    } else if (ch === '\\') {
      if (i + 1 >= input.length) throw new Error('trailing backslash');
      if (input[i + 1] !== '\n') {
        cur += input[i + 1];
        inWord = true;
      }
      i += 2;
    } else if (/\s/.test(ch)) {
      if (inWord) {
        words.push(cur);
        cur = '';
        inWord = false;
      }
      i++;
    } else if (ch === '#' && !inWord) {
      break; // comment to end of input, as shlex does
    } else {
      cur += ch;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(cur);
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
