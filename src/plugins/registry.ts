/**
 * The registry of plugins and their tools, checked once at start: names follow the
 * tool-name rule, every tool is complete, and no two tools share a name (the seed
 * let the later one silently win).
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
      this.byTool.set(tool.name, { plugin, tool });
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
  if (!tool.title.trim()) return "a title is required";
  if (!tool.description.trim()) return "a description is required";
  if (tool.inputSchema.type !== "object") return 'inputSchema must have a root "type": "object"';
  if (tool.outputSchema !== undefined && tool.outputSchema.type !== "object") return 'outputSchema must have a root "type": "object"';
  return undefined;
}
