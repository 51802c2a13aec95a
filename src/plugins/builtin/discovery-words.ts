/**
 * The words search_tools compares: tokens of what a model typed and of the tool definitions,
 * a light English stemmer, and the stop words dropped from a goal written as a sentence.
 *
 * The bug tracker's search stems too, but there it is SQLite's FTS5 porter tokenizer at work
 * inside the database: there is no code of ours to share, and discovery has no database. So
 * this is a small stemmer of its own: it removes plural and common verb endings, no more.
 * It needs no dictionary because both sides of a comparison go through it: an odd stem
 * ("creat" for "create", "created" and "creating") still meets itself.
 */

/** Lowercased words of at least one letter or digit. */
export function tokenize(text: string): string[] {
  return text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((word) => word.length > 0);
}

/**
 * Words that say how someone asks rather than what for ("I want to report a bug in my
 * project"): left out of a goal, or every tool would match on "to" or "a" somewhere.
 */
const STOP_WORDS: ReadonlySet<string> = new Set(
  (
    "a an the and or but if then so of to in on at by for from with without into onto about as " +
    "i me my mine we us our you your it its this that these those there here " +
    "is are was were be been being am do does did done have has had " +
    "can could would should will shall may might must " +
    "want wants wanted need needs needed like would please help let lets " +
    "some any all each every other another something anything " +
    "how what which who whom whose when where why " +
    "not no just also very really"
  ).split(" "),
);

/** The words of `text` that carry meaning: tokens without stop words. */
export function contentWords(text: string): string[] {
  return tokenize(text).filter((word) => !STOP_WORDS.has(word));
}

// Stemming is for English words: anything with other letters or digits is left as it is.
const ENGLISH_WORD = /^[a-z]+$/;
// A doubled consonant left by a verb ending: "running" -> "runn" -> "run", "stopped" -> "stop".
const DOUBLED = /([b-df-hj-kmnp-rtv-z])\1$/;

/**
 * `word` (lowercase) without a plural ending (-s, -es, -ies), then without -ing or -ed, then
 * without -er, then without a final -e; each only when enough of the word stays. "bugs" and
 * "bug" meet, as do "searches", "searching" and "search", "files" and "file", "tracker",
 * "tracking" and "track".
 */
export function stem(word: string): string {
  if (word.length <= 3 || !ENGLISH_WORD.test(word)) return word;
  let w = word;
  if (w.endsWith("ies") && w.length > 4) w = `${w.slice(0, -3)}y`;
  else if (w.endsWith("sses")) w = w.slice(0, -2);
  else if (/(?:[sxz]|ch|sh)es$/.test(w)) w = w.slice(0, -2);
  else if (w.endsWith("s") && !/(?:ss|us|is)$/.test(w)) w = w.slice(0, -1);
  for (const ending of ["ing", "ed"]) {
    if (w.endsWith(ending) && w.length - ending.length >= 3) {
      w = w.slice(0, -ending.length);
      if (w.length >= 4 && DOUBLED.test(w)) w = w.slice(0, -1);
      break;
    }
  }
  if (w.endsWith("er") && w.length >= 5) w = w.slice(0, -2);
  if (w.endsWith("e") && w.length >= 4) w = w.slice(0, -1);
  return w;
}
