/**
 * The registry of plugins and their tools, checked once at start: names follow the
 * tool-name rule, every tool is complete, and no two tools share a name (the seed
 * let the later one silently win).
 *
 * Each definition is kept as a deep-frozen copy taken at registration. What the audit
 * log's `server_start` hashes, what `tools/list` and the discovery tools show and what
 * the arguments are validated against is then the same definition for the whole run:
 * a plugin that changes its own `tools` objects later (a "rug pull"), or one that edits
 * another plugin's definitions through `ctx.catalog`, changes nothing that is served.
 */
import type { Plugin, ToolDefinition } from "./contract.js";
import { markJsonCopy } from "../security/schema-keywords.js";

/** The widest-compatible subset of the 2025-11-25 tool-name rule (SEP-986 said 64). */
export const TOOL_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

export class RegistryError extends Error {
  constructor(
    readonly code: "INVALID_TOOL_NAME" | "DUPLICATE_TOOL" | "INVALID_TOOL" | "DUPLICATE_PLUGIN",
    message: string,
  ) {
    super(message);
    this.name = "RegistryError";
  }
}

export interface RegisteredTool {
  readonly plugin: Plugin;
  readonly tool: ToolDefinition;
}

export class PluginRegistry {
  private readonly byTool = new Map<string, RegisteredTool>();
  /** Tools by their lower-case name, to refuse names that differ only in case. */
  private readonly byFoldedName = new Map<string, RegisteredTool>();
  private readonly list: Plugin[] = [];

  constructor(plugins: readonly Plugin[]) {
    for (const plugin of plugins) this.add(plugin);
  }

  private add(plugin: Plugin): void {
    if (this.list.some((other) => other.name === plugin.name)) {
      throw new RegistryError("DUPLICATE_PLUGIN", `two plugins are named "${plugin.name}"`);
    }
    for (const tool of plugin.tools) {
      if (!TOOL_NAME_PATTERN.test(tool.name)) {
        throw new RegistryError(
          "INVALID_TOOL_NAME",
          `plugin "${plugin.name}": tool name ${JSON.stringify(tool.name)} must match ${String(TOOL_NAME_PATTERN)}`,
        );
      }
      const existing = this.byFoldedName.get(tool.name.toLowerCase());
      if (existing) {
        const names = existing.tool.name === tool.name ? `tool "${tool.name}" is` : `tools "${existing.tool.name}" and "${tool.name}" (names differing only in case) are`;
        throw new RegistryError("DUPLICATE_TOOL", `${names} declared by both plugin "${existing.plugin.name}" and plugin "${plugin.name}"`);
      }
      const problem = describeIncompleteTool(tool);
      if (problem) throw new RegistryError("INVALID_TOOL", `plugin "${plugin.name}", tool "${tool.name}": ${problem}`);
      let frozen: ToolDefinition;
      try {
        frozen = frozenJsonCopy(tool, []) as ToolDefinition;
      } catch (error) {
        if (!(error instanceof DefinitionError)) throw error;
        throw new RegistryError("INVALID_TOOL", `plugin "${plugin.name}", tool "${tool.name}": ${error.message}`);
      }
      markJsonCopy(frozen.inputSchema);
      if (frozen.outputSchema !== undefined) markJsonCopy(frozen.outputSchema);
      const registered = Object.freeze({ plugin, tool: frozen });
      this.byTool.set(tool.name, registered);
      this.byFoldedName.set(tool.name.toLowerCase(), registered);
    }
    this.list.push(plugin);
  }

  lookup(toolName: string): RegisteredTool | undefined {
    return this.byTool.get(toolName);
  }

  tools(): RegisteredTool[] {
    return [...this.byTool.values()];
  }

  plugins(): readonly Plugin[] {
    return this.list;
  }
}

function describeIncompleteTool(tool: ToolDefinition): string | undefined {
  if (typeof tool.title !== "string" || !tool.title.trim()) return "a title is required";
  if (typeof tool.description !== "string" || !tool.description.trim()) return "a description is required";
  if (typeof tool.inputSchema !== "object" || tool.inputSchema === null || tool.inputSchema.type !== "object") return 'inputSchema must have a root "type": "object"';
  if (tool.outputSchema !== undefined && (typeof tool.outputSchema !== "object" || tool.outputSchema === null || tool.outputSchema.type !== "object")) return 'outputSchema must have a root "type": "object"';
  return undefined;
}

/**
 * Characters a person does not see (or sees as something else) but a model reads:
 * controls other than tab and line feed (ANSI escapes among them), format characters
 * (bidi overrides, zero-width characters, Unicode tag characters that mirror ASCII),
 * variation selectors (which can encode bytes invisibly), private-use characters and lone
 * surrogates. In a tool description they are the carrier of "tool poisoning": instructions
 * the model follows that a person reviewing the tool cannot read. Results are sanitized on
 * the way out; definitions are refused instead, so a poisoned plugin cannot start quietly.
 */
const HIDDEN_CHARACTER = /(?![\t\n])[\p{Cc}\p{Cf}\p{Co}\p{Cs}\u{FE00}-\u{FE0F}\u{E0100}-\u{E01EF}]/gu;
/**
 * The few of those that ordinary text needs, where it needs them: an emoji presentation
 * selector (U+FE0F, "⚠️") or text selector (U+FE0E) right after an emoji, a zero-width joiner
 * between two emoji (family and profession sequences), and a zero-width non-joiner between
 * letters (Persian, Indic scripts). Each carries at most the choice of one glyph's look.
 */
const EMOJI_BEFORE = /\p{Extended_Pictographic}$/u;
const EMOJI_AFTER = /^\p{Extended_Pictographic}/u;
const LETTER_BEFORE = /\p{L}\p{M}*$/u;
const LETTER_AFTER = /^\p{L}/u;

function allowedInContext(text: string, index: number, character: string): boolean {
  const before = text.slice(Math.max(0, index - 8), index);
  const after = text.slice(index + character.length, index + character.length + 8);
  switch (character) {
    case "\uFE0F":
    case "\uFE0E":
      return EMOJI_BEFORE.test(before);
    case "\u200D":
      return EMOJI_BEFORE.test(before.replace(/[\uFE0E\uFE0F]$/u, "")) && EMOJI_AFTER.test(after);
    case "\u200C":
      return LETTER_BEFORE.test(before) && LETTER_AFTER.test(after);
    default:
      return false;
  }
}
/** Printable ASCII, tab and line feed: nearly every string of a definition, and none can hide anything. */
const PLAIN_TEXT = /^[\t\n\x20-\x7e]*$/;

const HIDDEN_RULE =
  "Clients hand tool definitions to the model as they are, so a definition may hold no control, escape, " +
  "format (bidi, zero-width, tag) or private-use characters (tab and line feed excepted; an emoji's " +
  "presentation selector and joiner, and a zero-width non-joiner between letters, are fine).";

/** A definition the registry refuses; the message says where in it, and why. */
class DefinitionError extends Error {}

/** `inputSchema.properties.path`, `annotations[2]`: where a walk is, made only for a message. */
function locationOf(path: readonly (string | number)[]): string {
  if (path.length === 0) return "the definition";
  let text = "";
  for (const part of path) text += typeof part === "number" ? `[${part}]` : text === "" ? part : `.${part}`;
  return text;
}

/** Refuses a string (a value, or a property name at `path`) that holds a hidden character. */
function checkText(text: string, path: readonly (string | number)[], isKey: boolean): void {
  if (PLAIN_TEXT.test(text)) return;
  let hidden: string | undefined;
  for (const match of text.matchAll(HIDDEN_CHARACTER)) {
    if (allowedInContext(text, match.index, match[0])) continue;
    hidden = match[0];
    break;
  }
  if (hidden === undefined) return;
  const code = (hidden.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0");
  const where = isKey ? `a property name in ${locationOf(path)}` : locationOf(path);
  throw new DefinitionError(`${where} holds the invisible or control character U+${code}. ${HIDDEN_RULE}`);
}

/**
 * A deep copy of a JSON value with every object and array frozen, in one walk that also
 * refuses hidden characters in any string or property name. A value JSON cannot carry (a
 * function, a Date, a Map, a cycle, a non-finite number) is refused rather than converted:
 * the definition served must be the one written. Properties whose value is `undefined` are
 * left out, as JSON leaves them out. `path` is the walk's position (grown and shrunk in
 * place: locations are spelled out only for a message).
 */
function frozenJsonCopy(value: unknown, path: (string | number)[], ancestors: object[] = []): unknown {
  // Leaves are copied here, not by a call each: the walk over a whole catalogue runs once at
  // start, and a call per string made it hot enough for V8 to optimize it (TurboFan's compiler
  // paged in: ~4.7 MiB more resident memory for one more tool).
  if (typeof value !== "object" || value === null) return jsonLeaf(value, path);
  if (ancestors.includes(value)) throw new DefinitionError(`${locationOf(path)} refers back to itself (a cycle)`);
  ancestors.push(value);
  let copy: unknown;
  if (Array.isArray(value)) {
    const items: unknown[] = new Array<unknown>(value.length);
    for (let index = 0; index < value.length; index++) {
      const item: unknown = value[index];
      path.push(index);
      items[index] = typeof item === "object" && item !== null ? frozenJsonCopy(item, path, ancestors) : jsonLeaf(item, path);
      path.pop();
    }
    copy = items;
  } else {
    const prototype: unknown = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) throw new DefinitionError(`${locationOf(path)} is not a plain object`);
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      const item = (value as Record<string, unknown>)[key];
      if (item === undefined) continue;
      checkText(key, path, true);
      path.push(key);
      const itemCopy = typeof item === "object" && item !== null ? frozenJsonCopy(item, path, ancestors) : jsonLeaf(item, path);
      path.pop();
      // defineProperty for "__proto__" only: it must stay an own property, as JSON.parse makes it.
      if (key === "__proto__") Object.defineProperty(out, key, { value: itemCopy, enumerable: true, writable: true, configurable: true });
      else out[key] = itemCopy;
    }
    copy = out;
  }
  ancestors.pop();
  return Object.freeze(copy);
}

/** A JSON leaf as it is (a string checked for hidden characters), or why it is none. */
function jsonLeaf(value: unknown, path: readonly (string | number)[]): unknown {
  switch (typeof value) {
    case "string":
      checkText(value, path, false);
      return value;
    case "boolean":
      return value;
    case "number":
      if (!Number.isFinite(value)) throw new DefinitionError(`${locationOf(path)} is ${String(value)}, which JSON cannot carry`);
      return value;
    default:
      if (value === null) return null;
      throw new DefinitionError(`${locationOf(path)} is a ${typeof value}, which JSON cannot carry`);
  }
}
