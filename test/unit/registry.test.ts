import { test } from "node:test";
import assert from "node:assert/strict";
import { PluginRegistry, RegistryError } from "../../src/plugins/registry.js";
import type { Plugin, ToolDefinition } from "../../src/plugins/contract.js";

const tool = (name: string, extra: Partial<ToolDefinition> = {}): ToolDefinition => ({
  name,
  title: "T",
  description: "D",
  inputSchema: { type: "object" },
  annotations: {},
  ...extra,
});
const plugin = (name: string, tools: ToolDefinition[]): Plugin => ({ name, version: "1", description: "d", tools, execute: () => Promise.resolve({}) });

const failsWith = (code: string) => (error: unknown) => error instanceof RegistryError && error.code === code;

test("registers tools and looks them up", () => {
  const registry = new PluginRegistry([plugin("a", [tool("one"), tool("two")]), plugin("b", [tool("three.x-y_z")])]);
  assert.equal(registry.lookup("two")?.plugin.name, "a");
  assert.equal(registry.lookup("three.x-y_z")?.plugin.name, "b");
  assert.equal(registry.lookup("nope"), undefined);
  assert.deepEqual(
    registry.tools().map((entry) => entry.tool.name),
    ["one", "two", "three.x-y_z"],
  );
});

test("refuses duplicate tool names across plugins, naming both", () => {
  assert.throws(
    () => new PluginRegistry([plugin("a", [tool("same")]), plugin("b", [tool("same")])]),
    (error: unknown) => failsWith("DUPLICATE_TOOL")(error) && /plugin "a" and plugin "b"/.test((error as Error).message),
  );
  assert.throws(() => new PluginRegistry([plugin("a", []), plugin("a", [])]), failsWith("DUPLICATE_PLUGIN"));
});

test("refuses invalid tool names", () => {
  for (const name of ["", "has space", "slash/name", "x".repeat(65), "comma,name", "ü"]) {
    assert.throws(() => new PluginRegistry([plugin("a", [tool(name)])]), failsWith("INVALID_TOOL_NAME"), name);
  }
});

test("refuses incomplete tools", () => {
  assert.throws(() => new PluginRegistry([plugin("a", [tool("t", { title: " " })])]), failsWith("INVALID_TOOL"));
  assert.throws(() => new PluginRegistry([plugin("a", [tool("t", { description: "" })])]), failsWith("INVALID_TOOL"));
  assert.throws(() => new PluginRegistry([plugin("a", [tool("t", { inputSchema: { type: "string" } })])]), failsWith("INVALID_TOOL"));
  assert.throws(() => new PluginRegistry([plugin("a", [tool("t", { outputSchema: { type: "array" } })])]), failsWith("INVALID_TOOL"));
});
