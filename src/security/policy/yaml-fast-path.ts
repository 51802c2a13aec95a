/**
 * A fast path for the plain YAML that policies are written in, so that a start does not
 * load and run the full `yaml` library for them (about 5 ms of a cold start).
 *
 * It answers only when it is sure: for a text wholly inside the subset below it returns
 * the value `yaml` would (YAML 1.2 core schema, with the loader's options), and for
 * anything else `undefined`, and the loader parses with `yaml`, which stays the authority
 * on meaning, on errors and on their positions. A differential test holds the two equal.
 *
 * The subset: printable ASCII and line feeds only; block mappings whose keys are plain
 * words (a letter or `_`, then letters, digits, `_`, `-`, `.`; not null/true/false, not
 * `__proto__`, never repeated); block sequences of scalars or of such mappings (`- host: a`),
 * also at their key's indent;
 * one-line flow sequences of scalars; double-quoted scalars without escapes, single-quoted
 * ones without `''`; plain scalars resolved as the core schema resolves them; comments.
 * Not in it (so `yaml` parses): anchors, aliases, tags, block scalars, multi-line scalars,
 * flow mappings, sequences inside sequences, escapes, tabs, CR, a BOM, several documents.
 */

/** Why the fast path declines; never seen outside this module. */
class NotSimple extends Error {}

interface Line {
  indent: number;
  text: string;
}

const KEY = /^([A-Za-z_][A-Za-z0-9_.-]*):(?: +|$)/;
const NOT_PLAIN_KEYS = new Set(["null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "__proto__"]);
/** Characters that start something other than a plain scalar (or may: `-`, `?`, `:`). */
const INDICATORS = new Set([..."-?:,[]{}#&*!|>'\"%@`"]);
const AFTER_SCALAR = /^(?: +(?:#.*)?)?$/;

/** The value of `text` when it lies in the subset; `undefined` when `yaml` must decide. */
export function parseSimpleYaml(text: string): Record<string, unknown> | undefined {
  // Printable ASCII and LF only: no tabs, CR, BOM, control or non-ASCII characters.
  if (!/^[\x20-\x7e\n]*$/.test(text)) return undefined;
  const lines: Line[] = [];
  for (const raw of text.split("\n")) {
    const content = raw.trimStart();
    if (content === "" || content.startsWith("#")) continue;
    const indent = raw.length - content.length;
    if (indent === 0 && (content.startsWith("---") || content.startsWith("...") || content.startsWith("%"))) return undefined;
    lines.push({ indent, text: content.trimEnd() });
  }
  const first = lines[0];
  if (first === undefined || isSequenceEntry(first.text)) return undefined;
  try {
    const [value, next] = parseMapping(lines, 0, first.indent);
    return next === lines.length ? value : undefined;
  } catch (error) {
    if (error instanceof NotSimple) return undefined;
    throw error;
  }
}

function isSequenceEntry(text: string): boolean {
  return text === "-" || text.startsWith("- ");
}

/** A block mapping at `indent`, from line `start`; returns it and the first line after it. */
function parseMapping(lines: Line[], start: number, indent: number): [Record<string, unknown>, number] {
  const mapping: Record<string, unknown> = {};
  let i = start;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.indent < indent) break;
    if (line.indent > indent || isSequenceEntry(line.text)) throw new NotSimple();
    const match = KEY.exec(line.text);
    if (match === null) throw new NotSimple();
    const key = match[1]!;
    // YAML limits an implicit key to 1024 characters; long keys are left to `yaml`.
    if (key.length > 1000 || NOT_PLAIN_KEYS.has(key) || Object.hasOwn(mapping, key)) throw new NotSimple();
    const rest = line.text.slice(match[0].length);
    const next = lines[i + 1];
    if (rest !== "" && !rest.startsWith("#")) {
      mapping[key] = parseInline(rest);
      i += 1;
    } else if (next !== undefined && next.indent > indent) {
      [mapping[key], i] = isSequenceEntry(next.text) ? parseSequence(lines, i + 1, next.indent) : parseMapping(lines, i + 1, next.indent);
    } else if (next !== undefined && next.indent === indent && isSequenceEntry(next.text)) {
      [mapping[key], i] = parseSequence(lines, i + 1, indent);
    } else {
      mapping[key] = null;
      i += 1;
    }
  }
  return [mapping, i];
}

/** A block sequence of scalars at `indent`. */
function parseSequence(lines: Line[], start: number, indent: number): [unknown[], number] {
  const sequence: unknown[] = [];
  let i = start;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.indent < indent || (line.indent === indent && !isSequenceEntry(line.text))) break;
    if (line.indent > indent || line.text === "-") throw new NotSimple();
    const rest = line.text.slice(2).trimStart();
    // An empty entry or a sequence inside an entry: `yaml` decides.
    if (rest === "" || rest.startsWith("#") || isSequenceEntry(rest)) throw new NotSimple();
    if (KEY.test(rest)) {
      // `- host: a` starts a mapping whose keys stand at the column of `host`.
      const column = line.indent + line.text.length - rest.length;
      lines[i] = { indent: column, text: rest };
      let entry: Record<string, unknown>;
      [entry, i] = parseMapping(lines, i, column);
      sequence.push(entry);
    } else {
      sequence.push(parseInline(rest));
      i += 1;
    }
  }
  return [sequence, i];
}

/** A scalar or a one-line flow sequence, with an optional comment after it. */
function parseInline(text: string): unknown {
  const first = text[0];
  if (first === '"' || first === "'") {
    const close = text.indexOf(first, 1);
    if (close < 0 || !AFTER_SCALAR.test(text.slice(close + 1))) throw new NotSimple();
    return quoted(text.slice(0, close + 1));
  }
  if (first === "[") {
    const close = text.indexOf("]");
    if (close < 0 || !AFTER_SCALAR.test(text.slice(close + 1))) throw new NotSimple();
    return flowSequence(text.slice(1, close));
  }
  const comment = text.indexOf(" #");
  const plain = (comment < 0 ? text : text.slice(0, comment)).trimEnd();
  if (!isSafePlain(plain)) throw new NotSimple();
  return resolvePlain(plain);
}

/** A complete quoted scalar (quotes included) with nothing to unescape. */
function quoted(text: string): string {
  const quote = text[0]!;
  const body = text.slice(1, -1);
  if (text.length < 2 || text[text.length - 1] !== quote || body.includes(quote) || body.includes("\\")) throw new NotSimple();
  return body;
}

function flowSequence(body: string): unknown[] {
  if (body.trim() === "") return [];
  if (/[[\]{}#]/.test(body)) throw new NotSimple();
  return body.split(",").map((part) => {
    const item = part.trim();
    if (item === "") throw new NotSimple(); // `[a,,b]`, `[a,]`
    if (item[0] === '"' || item[0] === "'") return quoted(item);
    if (!isSafePlain(item) || /[:"']/.test(item)) throw new NotSimple();
    return resolvePlain(item);
  });
}

/** A plain scalar that reads the same in every context: no indicator start, no `: `, no ` #`, no trailing `:`. */
function isSafePlain(text: string): boolean {
  if (text === "") return false;
  const first = text[0]!;
  if (INDICATORS.has(first) && !(first === "-" && /^-[0-9]/.test(text))) return false;
  return !text.includes(": ") && !text.endsWith(":") && !text.includes(" #");
}

/** The YAML 1.2 core schema's reading of a plain scalar, in `yaml`'s order of tags. */
function resolvePlain(text: string): unknown {
  if (/^(?:~|[Nn]ull|NULL)$/.test(text)) return null;
  if (/^(?:[Tt]rue|TRUE)$/.test(text)) return true;
  if (/^(?:[Ff]alse|FALSE)$/.test(text)) return false;
  if (/^0o[0-7]+$/.test(text)) return parseInt(text.slice(2), 8);
  if (/^[-+]?[0-9]+$/.test(text)) return parseInt(text, 10);
  if (/^0x[0-9a-fA-F]+$/.test(text)) return parseInt(text.slice(2), 16);
  if (/^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$/.test(text)) throw new NotSimple(); // rare; `yaml` decides
  if (/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/.test(text) || /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/.test(text)) {
    return parseFloat(text);
  }
  return text;
}
