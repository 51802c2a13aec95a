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
      const existing = this.byTool.get(tool.name);
      if (existing) {
        throw new RegistryError(
          "DUPLICATE_TOOL",
          `tool "${tool.name}" is declared by both plugin "${existing.plugin.name}" and plugin "${plugin.name}"`,
        );
      }
      const problem = describeIncompleteTool(tool);
      if (problem) throw new RegistryError("INVALID_TOOL", `plugin "${plugin.name}", tool "${tool.name}": ${problem}`);
      let frozen: ToolDefinition;
      try {
        frozen = frozenJsonCopy(tool, "") as ToolDefinition;
      } catch (error) {
        throw new RegistryError("INVALID_TOOL", `plugin "${plugin.name}", tool "${tool.name}": ${(error as Error).message}`);
      }
      const hidden = findHiddenCharacter(frozen, "");
      if (hidden) {
        throw new RegistryError(
          "INVALID_TOOL",
          `plugin "${plugin.name}", tool "${tool.name}": ${hidden.at} holds the invisible or control character ${hidden.character}. ` +
            "Clients hand tool definitions to the model as they are, so a definition may hold no control, escape, " +
            "format (bidi, zero-width, tag) or private-use characters (tab and line feed excepted).",
        );
      }
      this.byTool.set(tool.name, Object.freeze({ plugin, tool: frozen }));
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
const HIDDEN_CHARACTER = /(?![\t\n])[\p{Cc}\p{Cf}\p{Co}\p{Cs}\u{FE00}-\u{FE0F}\u{E0100}-\u{E01EF}]/u;

/** The first hidden character in any string (key or value) of a frozen definition, and where it is. */
function findHiddenCharacter(value: unknown, at: string): { at: string; character: string } | undefined {
  const check = (text: string, where: string) => {
    const match = HIDDEN_CHARACTER.exec(text);
    if (match === null) return undefined;
    const code = match[0].codePointAt(0) as number;
    return { at: where || "the definition", character: `U+${code.toString(16).toUpperCase().padStart(4, "0")}` };
  };
  if (typeof value === "string") return check(value, at);
  if (value === null || typeof value !== "object") return undefined;
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const found = findHiddenCharacter(item, `${at}[${index}]`);
      if (found) return found;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    const where = at === "" ? key : `${at}.${key}`;
    const found = check(key, `a property name in ${at || "the definition"}`) ?? findHiddenCharacter(item, where);
    if (found) return found;
  }
  return undefined;
}

/**
 * A deep copy of a JSON value with every object and array frozen. A value JSON cannot
 * carry (a function, a Date, a Map, a cycle, a non-finite number) is refused rather than
 * converted: the definition served must be the one written. Properties whose value is
 * `undefined` are left out, as JSON leaves them out.
 */
function frozenJsonCopy(value: unknown, at: string, ancestors: object[] = []): unknown {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      if (!Number.isFinite(value)) throw new Error(`${at || "the definition"} is ${String(value)}, which JSON cannot carry`);
      return value;
    case "object": {
      if (value === null) return null;
      if (ancestors.includes(value)) throw new Error(`${at || "the definition"} refers back to itself (a cycle)`);
      ancestors.push(value);
      let copy: unknown;
      if (Array.isArray(value)) {
        copy = value.map((item, index) => frozenJsonCopy(item, `${at}[${index}]`, ancestors));
      } else {
        const prototype: unknown = Object.getPrototypeOf(value);
        if (prototype !== Object.prototype && prototype !== null) throw new Error(`${at || "the definition"} is not a plain object`);
        const out: Record<string, unknown> = {};
        for (const [key, item] of Object.entries(value)) {
          if (item === undefined) continue;
          // defineProperty: a "__proto__" key stays an own property, as JSON.parse makes it.
          Object.defineProperty(out, key, { value: frozenJsonCopy(item, at === "" ? key : `${at}.${key}`, ancestors), enumerable: true });
        }
        copy = out;
      }
      ancestors.pop();
      return Object.freeze(copy);
    }
    default:
      throw new Error(`${at || "the definition"} is a ${typeof value}, which JSON cannot carry`);
  }
}
