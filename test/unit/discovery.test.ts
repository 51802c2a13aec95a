import { test } from "node:test";
import assert from "node:assert/strict";
import { createDiscoveryPlugin, scoreTool } from "../../src/plugins/builtin/discovery.js";
import { contentWords, stem, tokenize } from "../../src/plugins/builtin/discovery-words.js";
import { ToolError, type CatalogEntry, type ToolContext, type ToolDefinition } from "../../src/plugins/contract.js";
import { BUILTIN_TOOLS } from "../helpers/tool-samples.js";

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

test("search_tools: category filter, no query lists all, intent ranks, limit", async () => {
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

// The built-in tools as a session sees them, for ranking by what real definitions say.
const builtins = { catalog: { entries: () => [{ plugin: "builtin", version: "1", description: "all", tools: BUILTIN_TOOLS }] } } as unknown as ToolContext;
const names = async (args: Record<string, unknown>): Promise<string[]> => {
  const result = (await plugin.execute("search_tools", { ...args, detail_level: "name", limit: 100 }, builtins)).structuredContent as Record<string, any>;
  return (result.results as Array<{ name: string }>).map((tool) => tool.name);
};
const BUG_TOOLS = ["add_bug", "close_bug", "get_bug", "init_bugtracker", "list_bugs", "search_bugs_global", "update_bug"];

test("stem: plural and verb endings meet their word; other words stay as they are", () => {
  const meet = [
    ["bug", "bugs"],
    ["search", "searches", "searching", "searched"],
    ["file", "files"],
    ["category", "categories"],
    ["create", "creates", "created", "creating"],
    ["close", "closes", "closed", "closing"],
    ["track", "tracks", "tracked", "tracking", "tracker"],
    ["run", "running"],
    ["add", "added", "adds"],
    ["status", "statuses"],
    ["directory", "directories"],
  ];
  for (const group of meet) assert.deepEqual(new Set(group.map(stem)).size, 1, `${group.join(", ")} -> ${group.map(stem).join(", ")}`);
  assert.notEqual(stem("bug"), stem("status"));
  for (const word of ["status", "is", "web", "ui", "v2", "überall", "use"]) assert.equal(stem(word), word);
});

test("contentWords drops the words that only say how one asks", () => {
  assert.deepEqual(contentWords("I want to report a bug in my project"), ["report", "bug", "project"]);
});

test("query words all match, also by their stems: 'bugs' finds every bug tool, 'bug zebra' none", async () => {
  assert.deepEqual((await names({ query: "bugs" })).sort(), BUG_TOOLS);
  assert.deepEqual((await names({ query: "bug" })).sort(), BUG_TOOLS);
  assert.deepEqual(await names({ query: "bug zebra" }), []);
  assert.equal((await names({ query: "list categories" }))[0], "list_categories");
});

test("intent words rank: one is enough, more rank higher, stop words do not count", async () => {
  const found = await names({ intent: "I want to report a bug in my project" });
  assert.equal(found[0], "add_bug");
  assert.ok(found.length >= BUG_TOOLS.length && BUG_TOOLS.every((name) => found.includes(name)), found.join(", "));
  assert.equal((await names({ intent: "I want to read a file" }))[0], "read_file");
  // Unknown words leave the known ones to rank; only unknown words find nothing.
  assert.equal((await names({ intent: "zebra bug giraffe" })).length, BUG_TOOLS.length);
  assert.deepEqual(await names({ intent: "zebra giraffe" }), []);
  // A word repeated in a goal counts once.
  const add = BUILTIN_TOOLS.find((tool) => tool.name === "add_bug")!;
  assert.equal(scoreTool(add, [], ["report", "report", "bug"]), scoreTool(add, [], ["report", "bug"]) + 15);
  assert.equal((await names({ intent: "report report report bug" }))[0], "add_bug");
  const once = (await plugin.execute("search_tools", { intent: "report report bug" }, builtins)).structuredContent as Record<string, any>;
  const twice = (await plugin.execute("search_tools", { intent: "report bug" }, builtins)).structuredContent as Record<string, any>;
  assert.deepEqual(once.results, twice.results);
});

test("with a query and an intent, the query filters and the intent ranks", async () => {
  const found = await names({ query: "bug", intent: "close it as fixed" });
  assert.deepEqual([...found].sort(), BUG_TOOLS);
  assert.equal(found[0], "close_bug");
});

test("a match in more words outranks a match in a better field", () => {
  const inName = def("report_tool", "Other", "Nothing here.");
  const inDescription = def("other_tool", "Other", "Report a crash.");
  assert.ok(scoreTool(inDescription, [], ["report", "crash"]) > scoreTool(inName, [], ["report", "crash"]));
});

test("results are the same on every call, ties in name order", async () => {
  const first = await names({ intent: "bug" });
  assert.deepEqual(await names({ intent: "bug" }), first);
  const tied = first.filter((name) => ["add_bug", "close_bug", "get_bug"].includes(name));
  assert.deepEqual(tied, ["add_bug", "close_bug", "get_bug"]);
});
