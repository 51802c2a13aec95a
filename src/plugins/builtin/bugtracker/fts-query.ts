/**
 * Turns what a person or a model typed into a safe FTS5 MATCH expression.
 *
 * FTS5 has its own query language (AND/OR/NOT/NEAR, column filters, `^`, `*`,
 * parentheses, quotes). None of it is exposed: every whitespace-separated word
 * becomes one quoted string, so operators and punctuation are searched as plain
 * text (or dropped by the tokenizer). All words must match (implicit AND). The only
 * feature kept is a trailing `*` on a word, which we translate into a prefix search
 * ourselves.
 */
import { LIMITS, characterCount } from "./model.js";

export class SearchQueryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SearchQueryError";
  }
}

// A word is searchable when it holds at least one letter or digit; the tokenizer
// would drop anything else anyway, and an empty quoted string is not a valid term.
const SEARCHABLE = /[\p{L}\p{N}]/u;

export interface FtsQuery {
  /** The MATCH expression (only quoted strings, optionally with a trailing `*`). */
  expression: string;
  /** The words as understood, for messages and fingerprints. */
  terms: string[];
}

export function buildFtsQuery(input: string): FtsQuery {
  if (characterCount(input) > LIMITS.queryMax) throw new SearchQueryError(`query is longer than ${LIMITS.queryMax} characters`);
  const terms: string[] = [];
  const parts: string[] = [];
  for (const raw of input.split(/\s+/u)) {
    let word = raw;
    let prefix = false;
    if (word.endsWith("*")) {
      word = word.replace(/\*+$/u, "");
      prefix = true;
    }
    if (!SEARCHABLE.test(word)) continue;
    terms.push(prefix ? `${word}*` : word);
    // Inside an FTS5 string the only special character is `"`, escaped by doubling.
    parts.push(`"${word.replaceAll('"', '""')}"${prefix ? "*" : ""}`);
  }
  if (parts.length === 0) {
    throw new SearchQueryError("query has no searchable words: use letters or digits (operators and punctuation are ignored)");
  }
  if (parts.length > LIMITS.queryTermsMax) throw new SearchQueryError(`query has more than ${LIMITS.queryTermsMax} words`);
  return { expression: parts.join(" "), terms };
}
