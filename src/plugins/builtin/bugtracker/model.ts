/**
 * The bug tracker's vocabulary: statuses, priorities, relationships, the status
 * transition table and the limits on user text. Pure data and pure checks, shared
 * by the schemas (tools.ts), the argument parser (args.ts) and the store.
 */

export const STATUSES = ["open", "in_progress", "resolved", "closed"] as const;
export type Status = (typeof STATUSES)[number];

/** Stored as a rank so that "priority" sorting walks an index; index = rank. */
export const PRIORITIES = ["low", "medium", "high", "critical"] as const;
export type Priority = (typeof PRIORITIES)[number];

export const RELATIONSHIPS = ["duplicate_of", "duplicated_by", "related_to", "blocks", "blocked_by"] as const;
export type Relationship = (typeof RELATIONSHIPS)[number];

export const SORTS = ["created_desc", "created_asc", "updated_desc", "priority", "relevance"] as const;
export type Sort = (typeof SORTS)[number];

/** What the other bug records when this one records `kind` towards it. */
export const RECIPROCAL: Readonly<Record<Relationship, Relationship>> = {
  duplicate_of: "duplicated_by",
  duplicated_by: "duplicate_of",
  related_to: "related_to",
  blocks: "blocked_by",
  blocked_by: "blocks",
};

/**
 * Allowed status moves. Staying in the same status is not a move (no change is
 * recorded). Reopening is the only way out of `closed`, so a closed bug is never
 * silently reworked.
 */
export const TRANSITIONS: Readonly<Record<Status, readonly Status[]>> = {
  open: ["in_progress", "resolved", "closed"],
  in_progress: ["open", "resolved", "closed"],
  resolved: ["closed", "open"],
  closed: ["open"],
};

export function canTransition(from: Status, to: Status): boolean {
  return TRANSITIONS[from].includes(to);
}

export function isStatus(value: unknown): value is Status {
  return typeof value === "string" && (STATUSES as readonly string[]).includes(value);
}

export function isPriority(value: unknown): value is Priority {
  return typeof value === "string" && (PRIORITIES as readonly string[]).includes(value);
}

export function isRelationship(value: unknown): value is Relationship {
  return typeof value === "string" && (RELATIONSHIPS as readonly string[]).includes(value);
}

export function priorityRank(priority: Priority): number {
  return PRIORITIES.indexOf(priority);
}

export function priorityOfRank(rank: number): Priority {
  const priority = PRIORITIES[rank];
  if (priority === undefined) throw new RangeError(`priority rank ${rank} is out of range`);
  return priority;
}

/**
 * Length in characters as the tools' JSON Schemas count them (maxLength counts code points):
 * a character outside the Basic Multilingual Plane (an emoji) is one, not its two UTF-16 units,
 * so the plugin's own check agrees with the schema the engine already applied.
 */
export function characterCount(text: string): number {
  let count = text.length;
  for (let i = 0; i < text.length - 1; i++) {
    const high = text.charCodeAt(i);
    if (high < 0xd800 || high > 0xdbff) continue;
    const low = text.charCodeAt(i + 1);
    if (low >= 0xdc00 && low <= 0xdfff) {
      count--;
      i++;
    }
  }
  return count;
}

export const LIMITS = {
  titleMax: 200,
  descriptionMax: 10_000,
  noteMax: 5_000,
  tagsMax: 20,
  tagMax: 50,
  relatedMax: 50,
  queryMax: 500,
  queryTermsMax: 32,
  filterTagsMax: 10,
  cursorMax: 1_000,
  pathMax: 4_096,
  bugIdMax: 40,
  pageDefault: 50,
  pageMax: 200,
} as const;

/**
 * Tags are short identifiers: a letter or digit, then letters, digits and `._:+-`.
 * They are stored lower-cased, so `UI` and `ui` are one tag.
 */
export const TAG_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:+-]*$";

// C0 controls (except tab/newline/CR in multi-line text), DEL, C1 controls and the
// bidi overrides/isolates: they hide or reorder text when a person reads the bug. And half a
// surrogate pair (the patterns run with the u flag, where a whole pair is one code point
// outside this range): it is no character and has no UTF-8 form, so SQLite would store
// something else than was sent.
// A one-line text also refuses Unicode's line and paragraph separators (U+2028, U+2029).
const UNSAFE_INLINE = "\\u0000-\\u001f\\u007f-\\u009f\\u2028-\\u202e\\u2066-\\u2069\\ud800-\\udfff";
const UNSAFE_MULTILINE = "\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069\\ud800-\\udfff";

// What shows nothing on its own, so that a title or note made only of it would look empty:
// whitespace of every kind; the default-ignorable code points (zero-width space and joiners,
// soft hyphen, word joiner, byte order mark, variation selectors, Hangul fillers, tag
// characters); the other format characters (bidi marks) and controls; combining marks, which
// only change the character before them; and the blank braille cell, often used as a filler.
const INVISIBLE = "\\s\\p{Default_Ignorable_Code_Point}\\p{Cf}\\p{Cc}\\p{M}\\u2800";
/** One character that shows something: the plugin checks it itself (see the patterns below). */
export const VISIBLE_PATTERN = `[^${INVISIBLE}]`;

// "Nothing unsafe anywhere" is a lookahead over the whole text, and "something visible" a
// search after it: written as one run on each side of the visible character, a text that
// fails at its end was tried at every split (quadratic: 20,000 characters took 0.4 s).
// The patterns are published in tools/list, where a client (or the model provider it hands them to)
// may compile them with a regex engine that has no \p{...} (Python's re): they ask for one character
// other than whitespace, and the plugin's own check (VISIBLE_PATTERN) refuses the invisible rest.
/** One line, at least one character other than whitespace. */
export const SINGLE_LINE_PATTERN = `^(?=[^${UNSAFE_INLINE}]*$)\\s*\\S`;
/** Multi-line text (tabs and newlines allowed), possibly empty. */
export const MULTILINE_PATTERN = `^[^${UNSAFE_MULTILINE}]*$`;
/** Multi-line text with at least one character other than whitespace. */
export const MULTILINE_NONBLANK_PATTERN = `^(?=[^${UNSAFE_MULTILINE}]*$)\\s*\\S`;
/** `BUG-12` (any case) or a 26-character ULID. */
export const BUG_REF_PATTERN = "^(?:[Bb][Uu][Gg]-[0-9]{1,9}|[0-9A-Za-z]{26})$";
