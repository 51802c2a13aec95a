import { test } from "node:test";
import assert from "node:assert/strict";
import { createDiscoveryPlugin, scoreTool, tokenize } from "../../src/plugins/builtin/discovery.js";
import { ToolError, type CatalogEntry, type ToolContext, type ToolDefinition } from "../../src/plugins/contract.js";

const def = (name: string, title: string, description: string): ToolDefinition => ({
  name,
  title,
  description,
  inputSchema: { type: "object" },
  annotations: { readOnlyHint: true },
});

const catalog: CatalogEntry[] = [
  {
    plugin: "bugtracker",
    version: "2.0.0",
    description: "bugs",
    tools: [def("add_bug", "Add a bug", "Create a bug in the project."), def("list_bugs", "List bugs", "List and search bugs."), def("get_bug", "Get a bug", "Read one bug.")],
  },
  { plugin: "discovery", version: "1.0.0", description: "find", tools: [def("search_tools", "Search tools", "Find tools by what they do.")] },
];
const ctx = { catalog: { entries: () => catalog } } as unknown as ToolContext;
const plugin = createDiscoveryPlugin();
const run = async (tool: string, args: Record<string, unknown>) => (await plugin.execute(tool, args as never, ctx)).structuredContent as Record<string, any>;

test("tokenize splits on non-alphanumerics and lowercases", () => {
  assert.deepEqual(tokenize("Add_Bug, now!"), ["add", "bug", "now"]);
});

test("scoring: every word must match; name beats description", () => {
  const add = catalog[0]!.tools[0]!;
  assert.ok(scoreTool(add, ["bug"]) > scoreTool(add, ["project"]));
  assert.equal(scoreTool(add, ["bug", "zebra"]), 0);
  assert.ok(scoreTool(add, ["add", "bug"]) > scoreTool(catalog[0]!.tools[1]!, ["add", "bug"]) || scoreTool(catalog[0]!.tools[1]!, ["add", "bug"]) === 0);
});

test("search_tools ranks matches and honours detail levels", async () => {
  const names = await run("search_tools", { query: "bug", detail_level: "name" });
  assert.equal(names.total, 3);
  assert.deepEqual(Object.keys(names.results[0]).sort(), ["category", "name", "score"]);
  const summary = await run("search_tools", { query: "add bug" });
  assert.equal(summary.results[0].name, "add_bug");
  assert.equal(summary.results[0].title, "Add a bug");
  assert.equal(summary.results[0].inputSchema, undefined);
  const full = await run("search_tools", { query: "search", detail_level: "full" });
  assert.deepEqual(full.results[0].inputSchema, { type: "object" });
  assert.deepEqual(full.results[0].annotations, { readOnlyHint: true });
});

test("search_tools: category filter, no query lists all, intent counts as words, limit", async () => {
  const inCategory = await run("search_tools", { category: "Discovery" });
  assert.deepEqual(
    inCategory.results.map((r: { name: string }) => r.name),
    ["search_tools"],
  );
  assert.equal((await run("search_tools", {})).total, 4);
  assert.equal((await run("search_tools", { intent: "read one bug" })).results[0].name, "get_bug");
  assert.equal((await run("search_tools", { limit: 1 })).results.length, 1);
  assert.equal((await run("search_tools", { query: "zebra" })).total, 0);
});

test("an invalid detail_level or unknown category is a ToolError, not a fallback", async () => {
  await assert.rejects(plugin.execute("search_tools", { detail_level: "bogus" }, ctx), ToolError);
  await assert.rejects(plugin.execute("search_tools", { category: "nope" }, ctx), /Unknown category "nope". Categories: bugtracker, discovery/);
});

test("list_categories reports category, version, tool_count and tools", async () => {
  const result = await run("list_categories", {});
  assert.deepEqual(result.categories[0], {
    category: "bugtracker",
    version: "2.0.0",
    description: "bugs",
    tool_count: 3,
    tools: ["add_bug", "list_bugs", "get_bug"],
  });
});
