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
 * - A surrogate without its other half becomes U+FFFD: it is no character, cannot be
 *   written as UTF-8, and a strict JSON parser refuses its escape.
 */
import type { ContentBlock } from "../plugins/contract.js";
import { LONE_SURROGATE_SOURCE, wellFormed } from "../util/text.js";

/** Anything that sanitizing would change. */
// Tag characters are astral: matched as their surrogate pairs (U+DB40 U+DC00–U+DC7F), no `u` flag needed.
// A lone surrogate too: it cannot be encoded as UTF-8, and strict JSON parsers refuse its escape.
const NEEDS_WORK = new RegExp(`[\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F\\u202A-\\u202E\\u2066-\\u2069]|\\uDB40[\\uDC00-\\uDC7F]|${LONE_SURROGATE_SOURCE}`);

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

/** Returns `text` without escape sequences, control characters, bidi controls or tag characters, lone surrogates as U+FFFD. */
export function sanitizeText(text: string): string {
  if (!NEEDS_WORK.test(text)) return text;
  return wellFormed(text.replace(STRIP, (match) => (match.charCodeAt(0) === 0x0d ? "\n" : "")));
}

/**
 * What a plugin returned that the MCP schema cannot carry (a malformed content block, a
 * value that is not JSON). The engine fails the call with it, as an internal error: a
 * client must never receive a result that breaks the schema, and nothing the checks
 * below do not understand is passed through to the model.
 */
export class OutputShapeError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "OutputShapeError";
  }
}

/**
 * A sanitized copy of a JSON value: every string sanitized, object keys too. Throws
 * `OutputShapeError` on what JSON cannot carry (cycles, BigInt, functions, symbols,
 * non-finite numbers) and on objects that are not plain (a Date, a Map, a typed array, a
 * class instance), which would otherwise arrive as `{}` or as an object of indexes; and
 * on two keys that sanitizing makes equal, where one would silently replace the other.
 * Properties whose value is `undefined` are left out, as JSON leaves them out.
 */
export function sanitizeJson(value: unknown, at = "value", seen: Set<object> = new Set()): unknown {
  switch (typeof value) {
    case "string":
      return sanitizeText(value);
    case "boolean":
      return value;
    case "number":
      if (!Number.isFinite(value)) throw new OutputShapeError(`${at} is ${String(value)}, which JSON cannot carry`);
      return value;
    case "object": {
      if (value === null) return null;
      if (seen.has(value)) throw new OutputShapeError(`${at} refers back to itself (a cycle), which JSON cannot carry`);
      seen.add(value);
      let out: unknown;
      if (Array.isArray(value)) out = value.map((item, index) => sanitizeJson(item, `${at}[${index}]`, seen));
      else {
        if (!isPlainObject(value)) throw new OutputShapeError(`${at} is a ${describeObject(value)}, not a plain JSON object`);
        const copy: Record<string, unknown> = {};
        for (const [rawKey, item] of Object.entries(value)) {
          if (item === undefined) continue;
          const key = sanitizeText(rawKey);
          if (Object.hasOwn(copy, key)) throw new OutputShapeError(`${at} has two keys that read the same once sanitized`);
          // defineProperty: a "__proto__" key stays a plain own property and pollutes nothing.
          Object.defineProperty(copy, key, { value: sanitizeJson(item, `${at}.${key}`, seen), enumerable: true, writable: true, configurable: true });
        }
        out = copy;
      }
      seen.delete(value);
      return out;
    }
    default:
      throw new OutputShapeError(`${at} is a ${typeof value}, which JSON cannot carry`);
  }
}

/**
 * Checks the content blocks a plugin returned against the MCP 2025-11-25 content types
 * (text, image, audio, resource_link, embedded resource) and sanitizes what a person or
 * a model reads in them: texts, names, titles, descriptions, MIME types, annotations and
 * `_meta`. URIs are left as they are (changing one would change its target). Fields the
 * type does not define are dropped; a block that is malformed (an unknown type, a field
 * of the wrong type, `data` that is not base64) throws `OutputShapeError`. Blocks that
 * need no change are returned as they are; the input is never mutated.
 */
export function sanitizeContent(blocks: unknown): ContentBlock[] {
  if (!Array.isArray(blocks)) throw new OutputShapeError("content must be a list of content blocks");
  return blocks.map((block: unknown, index) => sanitizeBlock(block, index));
}

type FieldCheck = (value: unknown, at: string) => unknown;

const textField: FieldCheck = (value, at) => {
  if (typeof value !== "string") throw new OutputShapeError(`${at} must be a string`);
  return sanitizeText(value);
};

const uriField: FieldCheck = (value, at) => {
  if (typeof value !== "string") throw new OutputShapeError(`${at} must be a string`);
  return value;
};

// A simple character class and a length check: a grouped repetition over megabytes of
// image data would overflow the regular expression engine's backtracking stack.
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const base64Field: FieldCheck = (value, at) => {
  if (typeof value !== "string" || value.length % 4 !== 0 || !BASE64.test(value)) throw new OutputShapeError(`${at} must be base64`);
  return value;
};

const sizeField: FieldCheck = (value, at) => {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) throw new OutputShapeError(`${at} must be a whole number of bytes`);
  return value;
};

const metaField: FieldCheck = (value, at) => {
  if (!isPlainObject(value)) throw new OutputShapeError(`${at} must be an object`);
  return sanitizeJson(value, at);
};

const annotationsField: FieldCheck = (value, at) => {
  if (!isPlainObject(value)) throw new OutputShapeError(`${at} must be an object`);
  return sanitizeFields(value, at, NO_FIELDS, ANNOTATION_OPTIONAL);
};

const resourceField: FieldCheck = (value, at) => {
  if (!isPlainObject(value)) throw new OutputShapeError(`${at} must be an object`);
  // A key set to undefined is absent, as JSON leaves it out.
  const hasText = value.text !== undefined;
  if (hasText === (value.blob !== undefined)) throw new OutputShapeError(`${at} must have either "text" or "blob"`);
  return sanitizeFields(value, at, hasText ? TEXT_RESOURCE_REQUIRED : BLOB_RESOURCE_REQUIRED, RESOURCE_OPTIONAL);
};

/** Field names and their checks, as a list: walked for every block of every result. */
type Fields = ReadonlyArray<readonly [string, FieldCheck]>;
const fields = (checks: Record<string, FieldCheck>): Fields => Object.freeze(Object.entries(checks));

const NO_FIELDS: Fields = fields({});
const ROLES = new Set(["user", "assistant"]);
const ANNOTATION_OPTIONAL: Fields = fields({
  audience: (value, at) => {
    if (!Array.isArray(value) || !value.every((role) => typeof role === "string" && ROLES.has(role))) {
      throw new OutputShapeError(`${at} must be a list of "user" and "assistant"`);
    }
    return value as string[];
  },
  priority: (value, at) => {
    if (typeof value !== "number" || !(value >= 0 && value <= 1)) throw new OutputShapeError(`${at} must be a number from 0 to 1`);
    return value;
  },
  lastModified: textField,
});
const EXTRAS = { annotations: annotationsField, _meta: metaField };
const THEMES = new Set(["dark", "light"]);
const ICON_REQUIRED: Fields = fields({ src: uriField });
const ICON_OPTIONAL: Fields = fields({
  mimeType: textField,
  sizes: (value, at) => {
    if (!Array.isArray(value)) throw new OutputShapeError(`${at} must be a list of strings`);
    return value.map((size, i) => textField(size, `${at}[${i}]`));
  },
  theme: (value, at) => {
    if (typeof value !== "string" || !THEMES.has(value)) throw new OutputShapeError(`${at} must be "dark" or "light"`);
    return value;
  },
});
const iconsField: FieldCheck = (value, at) => {
  if (!Array.isArray(value)) throw new OutputShapeError(`${at} must be a list of icons`);
  return value.map((icon, i) => {
    if (!isPlainObject(icon)) throw new OutputShapeError(`${at}[${i}] must be an icon object`);
    return sanitizeFields(icon, `${at}[${i}]`, ICON_REQUIRED, ICON_OPTIONAL);
  });
};
const TEXT_RESOURCE_REQUIRED: Fields = fields({ uri: uriField, text: textField });
const BLOB_RESOURCE_REQUIRED: Fields = fields({ uri: uriField, blob: base64Field });
const RESOURCE_OPTIONAL: Fields = fields({ mimeType: textField, _meta: metaField });

const BLOCK_TYPES: Readonly<Record<ContentBlock["type"], { required: Fields; optional: Fields }>> = {
  text: { required: fields({ text: textField }), optional: fields(EXTRAS) },
  image: { required: fields({ data: base64Field, mimeType: textField }), optional: fields(EXTRAS) },
  audio: { required: fields({ data: base64Field, mimeType: textField }), optional: fields(EXTRAS) },
  resource_link: {
    required: fields({ uri: uriField, name: textField }),
    optional: fields({ title: textField, description: textField, mimeType: textField, size: sizeField, icons: iconsField, ...EXTRAS }),
  },
  resource: { required: fields({ resource: resourceField }), optional: fields(EXTRAS) },
};

function sanitizeBlock(block: unknown, index: number): ContentBlock {
  // The usual block, `{ type: "text", text }` and nothing else, without the general walk.
  if (isPlainObject(block) && block.type === "text" && typeof block.text === "string" && Object.keys(block).length === 2) {
    const text = sanitizeText(block.text);
    return text === block.text ? (block as unknown as ContentBlock) : { type: "text", text };
  }
  const at = `content[${index}]`;
  if (!isPlainObject(block)) throw new OutputShapeError(`${at} must be a content block object`);
  const type = block.type;
  if (typeof type !== "string" || !Object.hasOwn(BLOCK_TYPES, type)) {
    throw new OutputShapeError(`${at} has the unknown type ${JSON.stringify(type) ?? "undefined"} (text, image, audio, resource_link or resource)`);
  }
  const { required, optional } = BLOCK_TYPES[type as ContentBlock["type"]];
  return sanitizeFields(block, at, required, optional, "type") as unknown as ContentBlock;
}

/**
 * Checks and sanitizes the fields of one object: `required` ones must be present,
 * `optional` ones are checked when present, `keep` is copied as it is, anything else is
 * dropped. Returns `object` itself when nothing changed.
 */
function sanitizeFields(object: Record<string, unknown>, at: string, required: Fields, optional: Fields, keep?: string): Record<string, unknown> {
  let changed = false;
  const out: Record<string, unknown> = {};
  if (keep !== undefined) out[keep] = object[keep];
  for (const [name, check] of required) {
    if (!Object.hasOwn(object, name)) throw new OutputShapeError(`${at} lacks its "${name}"`);
    const value = object[name];
    const clean = check(value, `${at}.${name}`);
    if (clean !== value) changed = true;
    out[name] = clean;
  }
  let present = required.length + (keep === undefined ? 0 : 1);
  for (const [name, check] of optional) {
    if (!Object.hasOwn(object, name)) continue;
    const value = object[name];
    if (value === undefined) {
      changed = true;
      continue;
    }
    present += 1;
    const clean = check(value, `${at}.${name}`);
    if (clean !== value) changed = true;
    out[name] = clean;
  }
  // Any other own key is a field the schema does not define here: dropped.
  if (!changed && Object.keys(object).length !== present) changed = true;
  return changed ? out : object;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function describeObject(value: object): string {
  const name: unknown = (value.constructor as { name?: unknown } | undefined)?.name;
  return typeof name === "string" && name !== "" ? name : "non-plain object";
}
