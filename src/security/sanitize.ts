/**
 * Output sanitizing: text returned to the client is shown in terminals and chat UIs,
 * where escape sequences can recolour, hide or rewrite text, plant hyperlinks (OSC 8)
 * or write the clipboard (OSC 52), and bidi controls can reorder what a reviewer reads.
 *
 * - ANSI sequences (CSI, OSC, DCS/SOS/PM/APC, single-character ESC sequences, and their
 *   8-bit C1 forms) are removed whole. A string sequence without its terminator loses
 *   only its introducer: the rest stays as plain, harmless text.
 * - Other C0 controls (except tab and line feed), DEL and C1 controls are removed.
 * - `\r\n` becomes `\n`, and a lone `\r` becomes `\n`: a carriage return can otherwise
 *   draw later text over earlier text, hiding it from a person.
 * - Bidi embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069) are
 *   removed, so text reads in the order it is stored.
 * - Unicode tag characters (U+E0000–U+E007F) are removed: they mirror ASCII, show as
 *   nothing, and a model reads them, so they carry instructions a person cannot see
 *   ("ASCII smuggling"). Their one legitimate use, subdivision flag emoji, degrades to 🏴.
 */
import type { ContentBlock } from "../plugins/contract.js";

/** Anything that sanitizing would change. */
// Tag characters are astral: matched as their surrogate pairs (U+DB40 U+DC00–U+DC7F), no `u` flag needed.
// eslint-disable-next-line no-control-regex -- control characters are what this module looks for.
const NEEDS_WORK = /[\x00-\x08\x0B-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]|\uDB40[\uDC00-\uDC7F]/;

const STRIP = new RegExp(
  [
    // CSI: ESC [ or 8-bit CSI, parameter bytes, intermediate bytes, final byte.
    "(?:\\x1B\\[|\\x9B)[\\x30-\\x3F]*[\\x20-\\x2F]*[\\x40-\\x7E]",
    // OSC, DCS, SOS, PM, APC (7-bit and 8-bit introducers) with body and terminator (BEL or ST).
    // The body stops at any ESC or C1 introducer, which keeps matching linear.
    "(?:\\x1B[\\]PX^_]|[\\x90\\x98\\x9D\\x9E\\x9F])(?:[^\\x07\\x1B\\x90\\x98\\x9C-\\x9F]*(?:\\x07|\\x1B\\\\|\\x9C))?",
    // Other ESC sequences: intermediate bytes and one final byte (ESC c, ESC 7, ESC ( B, ...).
    "\\x1B[\\x20-\\x2F]*[\\x30-\\x7E]",
    // Line endings are normalised, not removed.
    "\\r\\n?",
    // Remaining controls and bidi formatting characters.
    "[\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F\\u202A-\\u202E\\u2066-\\u2069]",
    // Tag characters.
    "\\uDB40[\\uDC00-\\uDC7F]",
  ].join("|"),
  "g",
);

/** Returns `text` without escape sequences, control characters, bidi controls or tag characters. */
export function sanitizeText(text: string): string {
  if (!NEEDS_WORK.test(text)) return text;
  return text.replace(STRIP, (match) => (match.charCodeAt(0) === 0x0d ? "\n" : ""));
}

/**
 * Sanitizes what a person may read in content blocks: text, and a resource link's
 * name and description. The link's URI is left as is (changing it would change its
 * target); images and audio are binary. Unchanged blocks are returned as they are.
 */
export function sanitizeContent(blocks: readonly ContentBlock[]): ContentBlock[] {
  return blocks.map((block) => {
    switch (block.type) {
      case "text": {
        const text = sanitizeText(block.text);
        return text === block.text ? block : { ...block, text };
      }
      case "resource_link": {
        const name = sanitizeText(block.name);
        const description = block.description === undefined ? undefined : sanitizeText(block.description);
        if (name === block.name && description === block.description) return block;
        return description === undefined ? { ...block, name } : { ...block, name, description };
      }
      case "image":
      case "audio":
        return block;
    }
  });
}
