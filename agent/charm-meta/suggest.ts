import { distance } from 'fastest-levenshtein';

/**
 * "Did you mean" for unknown names: the closest candidate by edit distance, if it is close
 * enough to be a plausible typo (about one edit per three characters, at least two for words of
 * five letters or more), or a candidate that the word abbreviates or extends ("int" /
 * "integer", "prod" / "production").
 */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  const w = word.toLowerCase();
  // One- and two-letter words are too short for an edit to mean anything ("c" is not "a");
  // from five letters on allow two, so a swapped pair ("cuont") still finds its word.
  const maxEdits = w.length < 3 ? 0 : w.length < 5 ? 1 : Math.max(2, Math.floor(w.length / 3));
  let best: { c: string; d: number } | undefined;
  let prefix: { c: string; d: number } | undefined;
  for (const c of candidates) {
    const lc = c.toLowerCase();
    if (lc === w) return c;
    const d = distance(w, lc);
    if (d <= maxEdits && (!best || d < best.d)) best = { c, d };
    const short = w.length < lc.length ? w : lc;
    if (short.length >= 3 && (lc.startsWith(w) || w.startsWith(lc)) && (!prefix || d < prefix.d)) prefix = { c, d };
  }
  return (best ?? prefix)?.c;
}

/** `; did you mean "x"?` or nothing, ready to append to a message. */
export function suggestion(word: string, candidates: Iterable<string>): string {
  const s = didYouMean(word, candidates);
  return s === undefined ? '' : `; did you mean ${JSON.stringify(s)}?`;
}
