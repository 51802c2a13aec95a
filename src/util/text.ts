/**
 * Cutting and cleaning text that goes back to a client or into a log: a cut never falls
 * between the two halves of a surrogate pair, so text that was well formed stays so (an
 * unpaired surrogate cannot be encoded as UTF-8, and strict JSON parsers refuse its escape).
 */

/** The first `max` UTF-16 units of `text`, one fewer when the cut would split a surrogate pair. */
export function cutAt(text: string, max: number): string {
  if (text.length <= max) return text;
  const last = text.charCodeAt(max - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}

/** `text` as it is when it holds at most `max` units, else its first `max` (see cutAt) and `suffix`. */
export function truncate(text: string, max: number, suffix = "…"): string {
  return text.length <= max ? text : `${cutAt(text, max)}${suffix}`;
}

/** A high surrogate not followed by a low one, or a low one not preceded by a high one (a regex source). */
export const LONE_SURROGATE_SOURCE = "[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]";
const LONE_SURROGATE = new RegExp(LONE_SURROGATE_SOURCE, "g");

/** `text` with each unpaired surrogate replaced by U+FFFD (String.prototype.toWellFormed, ES2024). */
export function wellFormed(text: string): string {
  return text.replace(LONE_SURROGATE, "\ufffd");
}

// C0 (tab and line feed included), DEL, C1, line and paragraph separators, bidi marks and overrides.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
// eslint-disable-next-line no-control-regex
const CONTROL_OR_BACKSLASH = /[\\\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

const escapeControl = (ch: string): string => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`;

/**
 * `text` with control characters (C0 including tab and line feed, DEL, C1, line and
 * paragraph separators, bidi marks and overrides) replaced by a visible `\uXXXX`: for
 * text shown on a terminal or written as one log line, where such a character could drive
 * the terminal, reorder what is read, or start a line that looks like another record.
 * A backslash is written `\\`, so the escapes read one way only: `\u001b` is an ESC byte,
 * `\\u001b` the six characters a file name or message may hold.
 */
export function printable(text: string): string {
  return text.replace(CONTROL_OR_BACKSLASH, (ch) => (ch === "\\" ? "\\\\" : escapeControl(ch)));
}

/**
 * JSON text with the control characters JSON leaves as they are (C1, line and paragraph
 * separators, bidi marks) written as JSON's own `\uXXXX` escapes: the same JSON, on one
 * line, harmless to a terminal. Its backslashes already begin JSON escapes, so unlike
 * `printable` it leaves them alone (and the text still parses to the same value).
 */
export function printableJson(json: string): string {
  return json.replace(CONTROL, escapeControl);
}

/**
 * `name` as a case-insensitive file system compares it, near enough: Unicode NFC, then
 * upper case and back to lower (so `ß` and `SS`, `ς` and `σ` meet). On macOS and Windows
 * volumes (WSL's /mnt/c), FAT and exFAT media, SMB shares and ext4 casefold folders,
 * every spelling so folded opens the same file.
 */
export function foldName(name: string): string {
  // Lower case first: `ẞ` (capital sharp s) upper-cases to itself, and only `ß` becomes `SS`.
  return name.normalize("NFC").toLowerCase().toUpperCase().toLowerCase();
}

/** Words a POSIX shell reads back as given: a word with a space, a quote or a glob character is single-quoted. */
export function shellWords(words: readonly string[]): string {
  return words.map((word) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)).join(" ");
}
