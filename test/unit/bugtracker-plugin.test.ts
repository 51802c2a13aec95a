// The bug tracker's tools, called as the dispatcher calls them, over a real temp database.
import fs from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { JsonObject, Plugin } from "../../src/plugins/contract.js";
import { createBugtrackerPlugin } from "../../src/plugins/builtin/bugtracker/index.js";
import { projectIdFor } from "../../src/plugins/builtin/bugtracker/ids.js";
import { createTestContext, invokeTool, schemaValidator, type TestContext, type ToolCallResult } from "../helpers/plugin-context.js";

type Bug = {
  bug_id: string;
  uid: string;
  project_id: string;
  project_path?: string;
  title: string;
  description: string;
  status: string;
  priority: string;
  tags: string[];
  related_bugs: { bug_id: string; relationship: string }[];
  revision: number;
  created_at: string;
  updated_at: string;
  history?: { revision: number; at: string; changes: Record<string, unknown>; note?: string; call_id?: string }[];
};

function fakeClock(start = Date.UTC(2025, 0, 1)): () => number {
  let now = start;
  return () => (now += 1000);
}

interface Harness {
  tc: TestContext;
  plugin: Plugin;
  project: string;
  /** Calls a tool with the session project set to `project` (override with sessionProject; null: none). */
  call(tool: string, args?: JsonObject, sessionProject?: string | null): Promise<ToolCallResult>;
  /** Calls a tool and requires success; returns structuredContent. */
  ok(tool: string, args?: JsonObject, sessionProject?: string | null): Promise<JsonObject>;
  /** Calls a tool and requires an isError result with this code. */
  fails(tool: string, args: JsonObject, code: string, sessionProject?: string | null): Promise<string>;
  add(title: string, extra?: JsonObject): Promise<Bug>;
  get(bugId: string, extra?: JsonObject): Promise<Bug>;
}

function harness(): Harness {
  const tc = createTestContext();
  const project = tc.makeDir("proj-alpha");
  const plugin = createBugtrackerPlugin({ now: fakeClock() });
  const call = (tool: string, args: JsonObject = {}, sessionProject: string | null = project) =>
    invokeTool(plugin, tool, args, tc.context({ projectPath: sessionProject ?? undefined }));
  const ok = async (tool: string, args: JsonObject = {}, sessionProject: string | null = project) => {
    const result = await call(tool, args, sessionProject);
    assert.equal(result.isError, false, `${tool} failed: ${result.text ?? ""}`);
    assert.ok(result.structured, `${tool} returned no structuredContent`);
    return result.structured;
  };
  const fails = async (tool: string, args: JsonObject, code: string, sessionProject: string | null = project) => {
    const result = await call(tool, args, sessionProject);
    assert.equal(result.isError, true, `${tool} should have failed with ${code}`);
    assert.equal(result.code, code, `wrong code; message: ${result.text ?? ""}`);
    assert.equal(result.structured, undefined, "an error carries no structuredContent");
    assert.ok(result.text !== undefined && result.text.length > 0, "an error says why");
    return result.text;
  };
  const add = async (title: string, extra: JsonObject = {}) => (await ok("add_bug", { title, ...extra })).bug as Bug;
  const get = async (bugId: string, extra: JsonObject = {}) => (await ok("get_bug", { bug_id: bugId, ...extra })).bug as Bug;
  return { tc, plugin, project, call, ok, fails, add, get };
}

let h: Harness;
beforeEach(() => {
  h = harness();
});
afterEach(async () => {
  await h.plugin.close?.();
  h.tc.cleanup();
});

void describe("tool definitions", () => {
  const plugin = createBugtrackerPlugin();
  const byName = new Map(plugin.tools.map((tool) => [tool.name, tool]));

  void it("has the seed's seven tools", () => {
    assert.deepEqual(
      plugin.tools.map((tool) => tool.name),
      ["init_bugtracker", "add_bug", "get_bug", "update_bug", "close_bug", "list_bugs", "search_bugs_global"],
    );
  });

  void it("declares strict input and output schemas that compile as JSON Schema 2020-12", () => {
    for (const tool of plugin.tools) {
      assert.equal(tool.inputSchema.type, "object", tool.name);
      assert.equal(tool.inputSchema.additionalProperties, false, tool.name);
      assert.ok(tool.outputSchema, `${tool.name} has an outputSchema`);
      schemaValidator(tool.inputSchema);
      schemaValidator(tool.outputSchema);
    }
  });

  void it("marks project_path for the path guard on every tool but the global search", () => {
    for (const tool of plugin.tools) {
      const properties = tool.inputSchema.properties as Record<string, JsonObject>;
      if (tool.name === "search_bugs_global") assert.equal(properties.project_path, undefined);
      else assert.equal(properties.project_path?.["x-path"], "read", tool.name);
    }
  });

  void it("gives honest annotations", () => {
    for (const tool of plugin.tools) {
      assert.equal(tool.annotations.openWorldHint, false, tool.name);
      const readOnly = ["get_bug", "list_bugs", "search_bugs_global"].includes(tool.name);
      assert.equal(tool.annotations.readOnlyHint, readOnly, tool.name);
      assert.equal(tool.annotations.destructiveHint, false, tool.name);
    }
    assert.equal(byName.get("add_bug")?.annotations.idempotentHint, false);
    assert.equal(byName.get("update_bug")?.annotations.idempotentHint, false);
    assert.equal(byName.get("init_bugtracker")?.annotations.idempotentHint, true);
  });

  void it("accepts the seed's calls", () => {
    const valid = (name: string, args: JsonObject) => assert.equal(schemaValidator(byName.get(name)!.inputSchema)(args), true, `${name} ${JSON.stringify(args)}`);
    valid("init_bugtracker", { project_path: "/work/proj" });
    valid("add_bug", { title: "Login fails", description: "steps:\n1. go\n\t2. fail", priority: "high", tags: ["ui", "auth"], project_path: "/p" });
    valid("get_bug", { bug_id: "bug-12", project_path: "/p" });
    valid("update_bug", {
      bug_id: "BUG-1",
      status: "in_progress",
      priority: "critical",
      tags: ["auth"],
      related_bugs: [{ bug_id: "BUG-2", relationship: "blocks" }],
      note: "found it",
    });
    valid("close_bug", { bug_id: "BUG-1", resolution: "fixed" });
    valid("list_bugs", { status: "open", priority: "low", tags: ["ui"], project_path: "/p" });
    valid("search_bugs_global", { status: "closed" });
    valid("list_bugs", { query: "crash", sort: "relevance", limit: 200, cursor: "abc", include_history: true });
  });

  void it("refuses what the seed let through", () => {
    const invalid = (name: string, args: JsonObject) => assert.equal(schemaValidator(byName.get(name)!.inputSchema)(args), false, `${name} ${JSON.stringify(args)}`);
    invalid("add_bug", { title: "x", priority: "bogus" });
    invalid("add_bug", { title: "x", tags: "not-a-list" });
    invalid("add_bug", { title: "x".repeat(20_000) });
    invalid("add_bug", { title: 123 });
    invalid("add_bug", { title: "" });
    invalid("add_bug", { title: "   " });
    invalid("add_bug", { title: "two\nlines" });
    invalid("add_bug", { title: "bidi \u202e trick" });
    invalid("add_bug", { title: "x", description: "bell \u0007" });
    invalid("add_bug", { title: "x", tags: ["has space"] });
    invalid("add_bug", { title: "x", tags: Array.from({ length: 21 }, (_, i) => `t${i}`) });
    invalid("add_bug", { description: "no title" });
    invalid("add_bug", { title: "x", extra: 1 });
    invalid("update_bug", { bug_id: "BUG-1", status: "wontfix" });
    invalid("update_bug", { bug_id: "BUG-1", related_bugs: [{ bug_id: "BUG-2", relationship: "parent_of" }] });
    invalid("update_bug", { bug_id: "BUG-1", note: "" });
    invalid("get_bug", { bug_id: "xyz" });
    invalid("list_bugs", { limit: 0 });
    invalid("list_bugs", { limit: 201 });
    invalid("list_bugs", { sort: "random" });
    invalid("search_bugs_global", { project_path: "/p" });
  });
});

void describe("projects", () => {
  void it("registers a project once and reports it", async () => {
    const first = await h.ok("init_bugtracker", { project_path: h.project });
    assert.deepEqual(first, {
      status: "ready",
      project_id: projectIdFor(h.project),
      project_path: h.project,
      created: true,
      bug_count: 0,
      next_bug_id: "BUG-1",
    });
    await h.add("one");
    const second = await h.ok("init_bugtracker", { project_path: h.project });
    assert.equal(second.created, false);
    assert.equal(second.bug_count, 1);
    assert.equal(second.next_bug_id, "BUG-2");
  });

  void it("identifies a project by its real path (a symlink leads to the same project)", async () => {
    const link = path.join(h.tc.root, "alias");
    fs.symlinkSync(h.project, link);
    await h.add("through the real path");
    const listed = await h.ok("list_bugs", { project_path: link });
    assert.equal(listed.project_path, h.project);
    assert.equal(listed.count, 1);
  });

  void it("says what to pass when there is no project at all", async () => {
    const text = await h.fails("list_bugs", {}, "PROJECT_REQUIRED", null);
    assert.match(text, /project_path/);
    assert.match(text, /MCP_PROJECT_PATH/);
  });

  void it("requires an allowed, existing, absolute directory", async () => {
    const file = path.join(h.tc.root, "file.txt");
    fs.writeFileSync(file, "x");
    await h.fails("init_bugtracker", { project_path: path.join(h.tc.root, "missing") }, "PROJECT_NOT_FOUND");
    assert.match(await h.fails("init_bugtracker", { project_path: file }, "PROJECT_NOT_DIRECTORY"), /allowed directory/);
    // A relative path without a session project would depend on the server's working directory.
    assert.match(await h.fails("init_bugtracker", { project_path: "proj-alpha" }, "PROJECT_PATH_INVALID", null), /no project to resolve it against/);
    await h.fails("init_bugtracker", { project_path: "/etc" }, "PATH_OUTSIDE_ROOTS");
    await h.fails("add_bug", { title: "x", project_path: path.dirname(h.tc.root) }, "PATH_OUTSIDE_ROOTS");
    // The session's project goes through the same checks.
    await h.fails("list_bugs", {}, "PATH_OUTSIDE_ROOTS", "/etc");
    await h.fails("list_bugs", {}, "PROJECT_PATH_INVALID", "relative/dir");
  });

  void it("reads a relative project_path under the session's project, as the seed did", async () => {
    const sub = path.join(h.project, "packages", "web");
    fs.mkdirSync(sub, { recursive: true });
    const init = await h.ok("init_bugtracker", { project_path: "packages/web" });
    assert.equal(init.project_path, sub);
    assert.equal((await h.ok("init_bugtracker", { project_path: "./packages/web/" })).project_id, init.project_id);
    assert.equal((await h.ok("init_bugtracker", { project_path: "." })).project_path, h.project);
    await h.fails("init_bugtracker", { project_path: "missing" }, "PROJECT_NOT_FOUND");
    // Up and out of the session's project is still the policy's to judge.
    await h.fails("init_bugtracker", { project_path: "../.." }, "PATH_OUTSIDE_ROOTS");
  });

  void it("refuses a path the policy denies inside an allowed root", async () => {
    const tc = createTestContext({ deniedPaths: [] });
    const secret = tc.makeDir("secret");
    const denied = createTestContext({ allowedRoots: [tc.root], deniedPaths: [secret], stateDir: tc.stateDir });
    const plugin = createBugtrackerPlugin();
    try {
      const result = await invokeTool(plugin, "init_bugtracker", { project_path: secret }, denied.context());
      assert.equal(result.code, "PATH_DENIED");
    } finally {
      await plugin.close?.();
      denied.cleanup();
      tc.cleanup();
    }
  });

  void it("acts on the session's project without project_path, and project_path wins over it", async () => {
    const other = h.tc.makeDir("proj-beta");
    await h.add("in alpha");
    await h.ok("add_bug", { title: "in beta", project_path: other });
    const alpha = await h.ok("list_bugs");
    const beta = await h.ok("list_bugs", { project_path: other });
    const betaBySession = await h.ok("list_bugs", {}, other);
    assert.deepEqual((alpha.bugs as Bug[]).map((bug) => bug.title), ["in alpha"]);
    assert.deepEqual((beta.bugs as Bug[]).map((bug) => bug.title), ["in beta"]);
    assert.deepEqual(betaBySession, beta);
  });

  void it("refuses unknown projects for the tools that name a bug", async () => {
    for (const [tool, args] of [
      ["get_bug", { bug_id: "BUG-1" }],
      ["update_bug", { bug_id: "BUG-1", note: "x" }],
      ["close_bug", { bug_id: "BUG-1" }],
    ] as const) {
      assert.match(await h.fails(tool, args, "PROJECT_UNKNOWN"), /init_bugtracker or add_bug/);
    }
    await h.add("registers the project");
    assert.equal((await h.ok("list_bugs")).count, 1);
  });

  void it("lists an unknown project as empty, with a note, and registers nothing", async () => {
    const listed = await h.ok("list_bugs", { status: "open", query: "crash" });
    assert.deepEqual(listed, {
      project_id: projectIdFor(h.project),
      project_path: h.project,
      bugs: [],
      count: 0,
      has_more: false,
      note: "no bug has been reported in this project yet; add_bug reports the first one",
    });
    // The arguments are checked as for a known project.
    await h.fails("list_bugs", { query: "*" }, "INVALID_QUERY");
    await h.fails("list_bugs", { cursor: "not-a-cursor" }, "INVALID_CURSOR");
    assert.equal((await h.ok("init_bugtracker")).created, true, "listing registered the project");
    const known = await h.ok("list_bugs");
    assert.equal(known.note, undefined, "a registered project's list carries no note");
    assert.equal(known.count, 0);
  });

  void it("never reaches another project's bug by id alone", async () => {
    const other = h.tc.makeDir("proj-beta");
    const alphaBug = await h.add("alpha's secret");
    await h.ok("init_bugtracker", { project_path: other });
    await h.fails("get_bug", { bug_id: "BUG-1" }, "BUG_NOT_FOUND", other);
    await h.fails("get_bug", { bug_id: alphaBug.uid }, "BUG_NOT_FOUND", other);
    await h.fails("update_bug", { bug_id: alphaBug.uid, status: "closed" }, "BUG_NOT_FOUND", other);
    await h.fails("close_bug", { bug_id: "BUG-1", project_path: other }, "BUG_NOT_FOUND");
    assert.equal((await h.get("BUG-1")).status, "open");
  });
});

void describe("add_bug and get_bug", () => {
  void it("creates open bugs with per-project numbers and ULIDs", async () => {
    const first = await h.add("  Login fails  ", { description: "steps", priority: "high", tags: ["UI", "auth", "ui"] });
    assert.equal(first.bug_id, "BUG-1");
    assert.match(first.uid, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.equal(first.title, "Login fails");
    assert.equal(first.status, "open");
    assert.equal(first.priority, "high");
    assert.deepEqual(first.tags, ["auth", "ui"]);
    assert.equal(first.revision, 0);
    assert.equal(first.history, undefined);
    const second = await h.add("Defaults");
    assert.equal(second.bug_id, "BUG-2");
    assert.equal(second.priority, "medium");
    assert.equal(second.description, "");
    assert.deepEqual(second.tags, []);
    assert.notEqual(second.uid, first.uid);
    // Another project counts from 1 on its own.
    const other = h.tc.makeDir("proj-beta");
    const theirs = (await h.ok("add_bug", { title: "x", project_path: other })).bug as Bug;
    assert.equal(theirs.bug_id, "BUG-1");
    assert.equal((await h.add("third")).bug_id, "BUG-3");
  });

  void it("answers with the seed's message", async () => {
    assert.equal((await h.ok("add_bug", { title: "x" })).message, "Created bug: BUG-1");
  });

  void it("finds a bug by BUG-n in any case or by its uid in any case", async () => {
    const bug = await h.add("findable");
    for (const id of ["BUG-1", "bug-1", "Bug-001", bug.uid, bug.uid.toLowerCase()]) assert.equal((await h.get(id)).uid, bug.uid, id);
    await h.fails("get_bug", { bug_id: "BUG-2" }, "BUG_NOT_FOUND");
  });

  void it("includes the history unless asked not to", async () => {
    await h.add("x");
    assert.deepEqual((await h.get("BUG-1")).history, []);
    assert.equal((await h.get("BUG-1", { include_history: false })).history, undefined);
  });

  void it("shows the newest 100 revisions of a long history and says how many older ones are left out", async () => {
    await h.add("busy");
    await h.add("quiet");
    for (let n = 1; n <= 103; n++) await h.ok("update_bug", { bug_id: "BUG-1", note: `note ${n}` });
    await h.ok("update_bug", { bug_id: "BUG-2", note: "only one" });
    const busy = (await h.get("BUG-1")) as Bug & { history_omitted?: number };
    assert.equal(busy.revision, 103);
    assert.equal(busy.history?.length, 100);
    assert.deepEqual([busy.history?.[0]?.revision, busy.history?.at(-1)?.revision, busy.history_omitted], [4, 103, 3]);
    // A list page caps each bug's history the same way; a short one is whole and says nothing.
    const listed = (await h.ok("list_bugs", { include_history: true })).bugs as (Bug & { history_omitted?: number })[];
    const byId = new Map(listed.map((bug) => [bug.bug_id, bug]));
    assert.deepEqual([byId.get("BUG-1")?.history?.length, byId.get("BUG-1")?.history_omitted], [100, 3]);
    assert.deepEqual([byId.get("BUG-2")?.history?.length, "history_omitted" in (byId.get("BUG-2") ?? {})], [1, false]);
  });

  void it("checks its arguments again at the plugin boundary", async () => {
    await h.fails("add_bug", { title: "x", priority: "bogus" }, "INVALID_ARGUMENT");
    await h.fails("add_bug", { title: "x", tags: "not-a-list" }, "INVALID_ARGUMENT");
    await h.fails("add_bug", { title: "x".repeat(201) }, "INVALID_ARGUMENT");
    await h.fails("add_bug", { title: "   " }, "INVALID_ARGUMENT");
    await h.fails("add_bug", { title: 123 }, "INVALID_ARGUMENT");
    assert.match(await h.fails("add_bug", {}, "INVALID_ARGUMENT"), /title/);
    assert.match(await h.fails("add_bug", { title: "x", colour: "red" }, "INVALID_ARGUMENT"), /unknown argument "colour"/);
    await h.fails("get_bug", { bug_id: "bug-xxxxxxxx" }, "INVALID_ARGUMENT");
    await h.fails("update_bug", { bug_id: "BUG-1", status: "wontfix" }, "INVALID_ARGUMENT");
    await h.fails("list_bugs", { limit: 1000 }, "INVALID_ARGUMENT");
    // Nothing was created by the refused calls.
    assert.equal((await h.ok("init_bugtracker")).bug_count, 0);
  });

  void it("counts characters as the schema does: an emoji is one character, not two", async () => {
    // The engine's schema check counts code points; a plugin counting UTF-16 units refused text
    // the schema had accepted, saying it was twice as long as it is.
    const bug = "\u{1F41B}";
    const schema = (name: string) => schemaValidator(h.plugin.tools.find((tool) => tool.name === name)!.inputSchema);
    const add = { title: `crash ${bug.repeat(150)}`, description: bug.repeat(6_000) };
    assert.equal(schema("add_bug")(add), true);
    const created = await h.add(add.title, { description: add.description });
    assert.equal(created.title, add.title);
    assert.equal(created.description, add.description);
    const update = { bug_id: created.bug_id, title: bug.repeat(200), note: bug.repeat(5_000) };
    assert.equal(schema("update_bug")(update), true);
    await h.ok("update_bug", update);
    // 𠮷 (U+20BB7, a CJK letter outside the BMP, as in Japanese names): one word of 400 of them.
    const list = { query: "\u{20BB7}".repeat(400) };
    assert.equal(schema("list_bugs")(list), true);
    await h.ok("list_bugs", list);
    // Past the limit, both refuse, and the message counts characters.
    assert.equal(schema("add_bug")({ title: bug.repeat(201) }), false);
    assert.match(await h.fails("add_bug", { title: bug.repeat(201) }, "INVALID_ARGUMENT"), /is 201 characters long; the limit is 200/);
  });

  void it("refuses half a surrogate pair in text instead of storing it mangled", async () => {
    // Not a character, and not encodable as UTF-8: SQLite was handed the three bytes of its
    // CESU-8 form, and get_bug then returned three U+FFFD where the caller had sent one code unit.
    const schema = (name: string) => schemaValidator(h.plugin.tools.find((tool) => tool.name === name)!.inputSchema);
    const refused: Array<[string, JsonObject]> = [
      ["add_bug", { title: "lone \ud800 high half" }],
      ["add_bug", { title: "lone \udc00 low half" }],
      ["add_bug", { title: "reversed \udc1b\ud83d pair" }],
      ["add_bug", { title: "ok", description: "ends with a high half \ud83d" }],
    ];
    for (const [tool, args] of refused) {
      assert.equal(schema(tool)(args), false, JSON.stringify(args));
      await h.fails(tool, args, "INVALID_ARGUMENT");
    }
    assert.equal((await h.ok("init_bugtracker")).bug_count, 0, "nothing was stored");
    const bug = await h.add("pairs are fine \u{1F41B}");
    for (const args of [{ note: "x \ud800" }, { description: "\udfff" }] as JsonObject[]) {
      assert.equal(schema("update_bug")({ bug_id: bug.bug_id, ...args }), false);
      await h.fails("update_bug", { bug_id: bug.bug_id, ...args }, "INVALID_ARGUMENT");
    }
    await h.fails("close_bug", { bug_id: bug.bug_id, resolution: "fixed \ud800" }, "INVALID_ARGUMENT");
    assert.equal((await h.get(bug.bug_id)).revision, 0);
  });

  void it("refuses a title, note or resolution that shows nothing: invisible characters are not text", async () => {
    // Each would list as an empty title or history entry, indistinguishable from the next. The
    // plugin refuses them itself: the published patterns stay in a form every regex engine reads
    // (no \p{...}, which Python's re lacks), so they ask only for something other than whitespace.
    for (const tool of h.plugin.tools) assert.doesNotMatch(JSON.stringify(tool.inputSchema), /\\\\p\{/, tool.name);
    const blanks = ["\u200b", "\u200c\u200d\u2060", "\ufeff", "\u00ad", "\u0301\u0302", " \u3000\u2003 ", "\u200e\u200f", "\u2800", "\u200b\u00ad \u0301"];
    const bug = await h.add("visible");
    for (const blank of blanks) {
      const calls: Array<[string, JsonObject, string]> = [
        ["add_bug", { title: blank }, "title"],
        ["update_bug", { bug_id: bug.bug_id, title: blank }, "title"],
        ["update_bug", { bug_id: bug.bug_id, note: blank }, "note"],
        ["update_bug", { bug_id: bug.bug_id, note: `${blank}\n\t${blank}` }, "note"],
        ["close_bug", { bug_id: bug.bug_id, resolution: blank }, "resolution"],
      ];
      for (const [tool, args, key] of calls) {
        assert.match(await h.fails(tool, args, "INVALID_ARGUMENT"), new RegExp(`^"${key}" has no visible character: spaces and characters that show nothing`));
      }
    }
    assert.equal((await h.ok("init_bugtracker")).bug_count, 1, "no bug was added");
    const after = await h.get(bug.bug_id);
    assert.deepEqual([after.title, after.status, after.revision], ["visible", "open", 0]);
    // A title with one visible character among invisible ones is kept as sent (trimmed of spaces).
    assert.equal((await h.add(" \u200bx\u00ad ")).title, "\u200bx\u00ad");
    // A description may be empty, so one that shows nothing is accepted like an empty one.
    assert.equal((await h.ok("update_bug", { bug_id: bug.bug_id, description: "\u200b" })).changed, true);
  });

  void it("keeps a title to one line: Unicode's line and paragraph separators are line breaks too", async () => {
    const schema = schemaValidator(h.plugin.tools.find((tool) => tool.name === "add_bug")!.inputSchema);
    for (const title of ["first\u2028second", "first\u2029second"]) {
      assert.equal(schema({ title }), false, JSON.stringify(title));
      await h.fails("add_bug", { title }, "INVALID_ARGUMENT");
      // A description may hold line breaks of any kind.
      assert.equal(schema({ title: "x", description: title }), true);
    }
    const bug = await h.add("one line", { description: "a\u2028b" });
    await h.fails("update_bug", { bug_id: bug.bug_id, title: "two\u2028lines" }, "INVALID_ARGUMENT");
  });

  void it("does nothing when the call was cancelled before the database work", async () => {
    await h.add("existing");
    const controller = new AbortController();
    controller.abort(new Error("cancelled by the client"));
    const ctx = h.tc.context({ projectPath: h.project, signal: controller.signal });
    await assert.rejects(h.plugin.execute("add_bug", { title: "too late" }, ctx), /cancelled by the client/);
    assert.equal((await h.ok("init_bugtracker")).bug_count, 1);
  });

  void it("refuses an unknown tool name", async () => {
    assert.equal((await h.call("delete_bug", { bug_id: "BUG-1" })).code, "UNKNOWN_TOOL");
  });
});

void describe("update_bug", () => {
  void it("records each real change once, with the call id", async () => {
    await h.add("target", { priority: "high", tags: ["ui", "auth"] });
    const ctx = h.tc.context({ projectPath: h.project });
    const result = await invokeTool(h.plugin, "update_bug", { bug_id: "BUG-1", status: "in_progress", priority: "critical", tags: ["auth", "p0"], note: "found missing handler" }, ctx);
    assert.equal(result.isError, false);
    assert.equal(result.structured?.message, "Updated bug: BUG-1");
    assert.equal(result.structured?.changed, true);
    assert.deepEqual(result.structured?.changes, {
      status: { from: "open", to: "in_progress" },
      priority: { from: "high", to: "critical" },
      tags: { added: ["p0"], removed: ["ui"] },
    });
    const bug = await h.get("BUG-1");
    assert.equal(bug.revision, 1);
    assert.deepEqual(bug.tags, ["auth", "p0"]);
    assert.equal(bug.history?.length, 1);
    const entry = bug.history?.[0];
    assert.equal(entry?.revision, 1);
    assert.equal(entry?.note, "found missing handler");
    assert.equal(entry?.call_id, ctx.callId);
    assert.deepEqual(entry?.changes, result.structured?.changes);
  });

  void it("records nothing when nothing changes", async () => {
    await h.add("target", { priority: "high", tags: ["ui"] });
    const before = await h.get("BUG-1");
    const result = await h.ok("update_bug", { bug_id: "BUG-1", status: "open", priority: "high", tags: ["UI"], related_bugs: [] });
    assert.equal(result.changed, false);
    assert.match(result.message as string, /No changes/);
    assert.deepEqual(result.changes, {});
    const after = await h.get("BUG-1");
    assert.deepEqual(after, before);
  });

  void it("counts a note alone as a change", async () => {
    await h.add("target");
    await h.ok("update_bug", { bug_id: "BUG-1", note: "still investigating" });
    await h.ok("update_bug", { bug_id: "BUG-1", note: "  still investigating  " });
    const bug = await h.get("BUG-1");
    assert.equal(bug.revision, 2);
    assert.deepEqual(
      bug.history?.map((entry) => [entry.revision, entry.note, entry.changes]),
      [
        [1, "still investigating", {}],
        [2, "still investigating", {}],
      ],
    );
  });

  void it("needs something to update", async () => {
    await h.add("target");
    assert.match(await h.fails("update_bug", { bug_id: "BUG-1" }, "INVALID_ARGUMENT"), /nothing to update: .*title, description, status/);
  });

  void it("corrects the title and the description, in the history and in search", async () => {
    await h.add("Crash on sav", { description: "typo everywhere" });
    const ctx = h.tc.context({ projectPath: h.project });
    const result = await invokeTool(h.plugin, "update_bug", { bug_id: "BUG-1", title: "  Crash on save  ", description: "Steps:\n1. save\n" }, ctx);
    assert.equal(result.isError, false, result.text);
    assert.deepEqual(result.structured?.changes, {
      title: { from: "Crash on sav", to: "Crash on save" },
      description: { from: "typo everywhere", to: "Steps:\n1. save\n" },
    });
    const bug = await h.get("BUG-1");
    assert.deepEqual([bug.title, bug.description, bug.revision], ["Crash on save", "Steps:\n1. save\n", 1]);
    assert.deepEqual(bug.history?.map((entry) => [entry.changes, entry.call_id]), [[result.structured?.changes, ctx.callId]]);
    // The full-text index follows: the new words are found, the old ones no longer.
    assert.equal((await h.ok("list_bugs", { query: "steps save" })).count, 1);
    assert.equal((await h.ok("list_bugs", { query: "typo" })).count, 0);
    // The same text again (the title is trimmed, as add_bug trims it) changes nothing.
    const again = await h.ok("update_bug", { bug_id: "BUG-1", title: "Crash on save ", description: "Steps:\n1. save\n" });
    assert.equal(again.changed, false);
    // A description may be emptied; the other fields stay as they were.
    await h.ok("update_bug", { bug_id: "BUG-1", description: "", status: "in_progress" });
    const emptied = await h.get("BUG-1");
    assert.deepEqual([emptied.title, emptied.description, emptied.status, emptied.revision], ["Crash on save", "", "in_progress", 2]);
  });

  void it("checks a corrected title and description as add_bug does, and changes nothing on refusal", async () => {
    await h.add("target", { description: "kept" });
    for (const [args, pattern] of [
      [{ title: "   " }, /"title" has no visible character/],
      [{ title: "two\nlines" }, /"title" must be one line/],
      [{ title: "x".repeat(201) }, /"title" is 201 characters long; the limit is 200/],
      [{ title: 12 }, /"title" must be a string/],
      [{ description: "bell\u0007" }, /"description" must not contain control characters/],
      [{ description: "x".repeat(10_001), note: "n" }, /"description" is 10001 characters long; the limit is 10000/],
    ] as const) {
      assert.match(await h.fails("update_bug", { bug_id: "BUG-1", ...args }, "INVALID_ARGUMENT"), pattern);
    }
    const bug = await h.get("BUG-1");
    assert.deepEqual([bug.title, bug.description, bug.revision], ["target", "kept", 0]);
  });

  void it("checks status transitions and leaves the bug as it was on refusal", async () => {
    await h.add("target");
    await h.ok("update_bug", { bug_id: "BUG-1", status: "resolved" });
    assert.match(await h.fails("update_bug", { bug_id: "BUG-1", status: "in_progress", note: "lost?" }, "INVALID_TRANSITION"), /resolved to in_progress.*closed, open/);
    await h.ok("update_bug", { bug_id: "BUG-1", status: "closed" });
    const text = await h.fails("update_bug", { bug_id: "BUG-1", status: "resolved" }, "INVALID_TRANSITION");
    assert.match(text, /from closed/);
    assert.match(text, /reopen/);
    const bug = await h.get("BUG-1");
    assert.equal(bug.status, "closed");
    assert.equal(bug.history?.some((entry) => entry.note === "lost?"), false, "a refused update records nothing");
    await h.ok("update_bug", { bug_id: "BUG-1", status: "open", note: "reopened" });
    await h.ok("update_bug", { bug_id: "BUG-1", status: "in_progress" });
    assert.equal((await h.get("BUG-1")).status, "in_progress");
  });

  void it("keeps reciprocal links on both bugs, in one transaction", async () => {
    for (const title of ["a", "b", "c", "d"]) await h.add(title);
    await h.ok("update_bug", {
      bug_id: "BUG-1",
      related_bugs: [
        { bug_id: "BUG-2", relationship: "blocks" },
        { bug_id: "bug-3", relationship: "duplicate_of" },
        { bug_id: "BUG-4", relationship: "related_to" },
      ],
    });
    const links = async (id: string) => (await h.get(id)).related_bugs;
    assert.deepEqual(await links("BUG-1"), [
      { bug_id: "BUG-2", relationship: "blocks" },
      { bug_id: "BUG-3", relationship: "duplicate_of" },
      { bug_id: "BUG-4", relationship: "related_to" },
    ]);
    assert.deepEqual(await links("BUG-2"), [{ bug_id: "BUG-1", relationship: "blocked_by" }]);
    assert.deepEqual(await links("BUG-3"), [{ bug_id: "BUG-1", relationship: "duplicated_by" }]);
    assert.deepEqual(await links("BUG-4"), [{ bug_id: "BUG-1", relationship: "related_to" }]);
    // The other side has its own history entry.
    const two = await h.get("BUG-2");
    assert.equal(two.revision, 1);
    assert.deepEqual(two.history?.[0]?.changes, { related_bugs: [{ bug_id: "BUG-1", to: "blocked_by" }] });

    // Changing the set from the other side updates both again.
    await h.ok("update_bug", { bug_id: "BUG-2", related_bugs: [{ bug_id: "BUG-1", relationship: "related_to" }] });
    assert.deepEqual(await links("BUG-2"), [{ bug_id: "BUG-1", relationship: "related_to" }]);
    assert.deepEqual((await links("BUG-1"))[0], { bug_id: "BUG-2", relationship: "related_to" });

    // Replacing with a smaller set removes the dropped links on both sides.
    const result = await h.ok("update_bug", { bug_id: "BUG-1", related_bugs: [{ bug_id: "BUG-4", relationship: "related_to" }] });
    assert.deepEqual((result.changes as JsonObject).related_bugs, [
      { bug_id: "BUG-2", from: "related_to" },
      { bug_id: "BUG-3", from: "duplicate_of" },
    ]);
    assert.deepEqual(await links("BUG-1"), [{ bug_id: "BUG-4", relationship: "related_to" }]);
    assert.deepEqual(await links("BUG-2"), []);
    assert.deepEqual(await links("BUG-3"), []);
    const three = await h.get("BUG-3");
    assert.deepEqual(three.history?.at(-1)?.changes, { related_bugs: [{ bug_id: "BUG-1", from: "duplicated_by" }] });
  });

  void it("requires related bugs to exist in the same project and changes nothing otherwise", async () => {
    await h.add("a");
    await h.add("b");
    const other = h.tc.makeDir("proj-beta");
    await h.ok("add_bug", { title: "elsewhere", project_path: other });
    await h.ok("add_bug", { title: "elsewhere 2", project_path: other });
    await h.ok("add_bug", { title: "elsewhere 3", project_path: other });
    const attempt = (related: JsonObject[]) => ({ bug_id: "BUG-1", status: "in_progress", related_bugs: related });
    assert.match(await h.fails("update_bug", attempt([{ bug_id: "BUG-2", relationship: "blocks" }, { bug_id: "BUG-99", relationship: "blocks" }]), "BUG_NOT_FOUND"), /BUG-99/);
    await h.fails("update_bug", attempt([{ bug_id: "BUG-3", relationship: "blocks" }]), "BUG_NOT_FOUND");
    await h.fails("update_bug", attempt([{ bug_id: "BUG-1", relationship: "blocks" }]), "INVALID_ARGUMENT");
    await h.fails(
      "update_bug",
      attempt([
        { bug_id: "BUG-2", relationship: "blocks" },
        { bug_id: "bug-2", relationship: "related_to" },
      ]),
      "INVALID_ARGUMENT",
    );
    const one = await h.get("BUG-1");
    assert.equal(one.status, "open");
    assert.deepEqual(one.related_bugs, []);
    assert.deepEqual((await h.get("BUG-2")).related_bugs, []);
  });
});

void describe("close_bug", () => {
  void it("closes with the resolution as a note, and refuses to close twice", async () => {
    await h.add("target");
    const closed = await h.ok("close_bug", { bug_id: "BUG-1", resolution: "added handler" });
    assert.equal(closed.message, "Closed bug: BUG-1");
    assert.equal((closed.bug as Bug).status, "closed");
    assert.equal(await h.fails("close_bug", { bug_id: "bug-1", resolution: "again" }, "ALREADY_CLOSED"), "BUG-1 is already closed");
    const bug = await h.get("BUG-1");
    assert.equal(bug.history?.length, 1, "the refused close added nothing");
    assert.deepEqual(bug.history?.[0]?.changes, { status: { from: "open", to: "closed" } });
    assert.equal(bug.history?.[0]?.note, "added handler");
  });

  void it("closes from every other status, and after a reopen", async () => {
    for (const status of ["open", "in_progress", "resolved"]) {
      const bug = await h.add(status);
      if (status !== "open") await h.ok("update_bug", { bug_id: bug.bug_id, status });
      await h.ok("close_bug", { bug_id: bug.bug_id });
    }
    await h.ok("update_bug", { bug_id: "BUG-1", status: "open" });
    await h.ok("close_bug", { bug_id: "BUG-1" });
    const history = (await h.get("BUG-1")).history ?? [];
    assert.equal(history.length, 3);
    assert.equal(history.some((entry) => entry.note !== undefined), false, "no resolution, no note");
  });
});

void describe("list_bugs", () => {
  async function seedFour(): Promise<void> {
    await h.add("one", { priority: "low", tags: ["ui", "auth"] });
    await h.add("two", { priority: "critical", tags: ["ui"] });
    await h.add("three", { priority: "high", tags: ["auth", "ui", "p0"] });
    await h.add("four", { priority: "critical" });
  }
  const ids = (result: JsonObject) => (result.bugs as Bug[]).map((bug) => bug.bug_id);

  void it("orders newest first by default, like the seed, and by the other sorts on request", async () => {
    await seedFour();
    await h.ok("update_bug", { bug_id: "BUG-2", note: "touched" });
    assert.deepEqual(ids(await h.ok("list_bugs")), ["BUG-4", "BUG-3", "BUG-2", "BUG-1"]);
    assert.deepEqual(ids(await h.ok("list_bugs", { sort: "created_asc" })), ["BUG-1", "BUG-2", "BUG-3", "BUG-4"]);
    assert.deepEqual(ids(await h.ok("list_bugs", { sort: "updated_desc" })), ["BUG-2", "BUG-4", "BUG-3", "BUG-1"]);
    assert.deepEqual(ids(await h.ok("list_bugs", { sort: "priority" })), ["BUG-4", "BUG-2", "BUG-3", "BUG-1"]);
  });

  void it("filters by status, priority and all of the given tags", async () => {
    await seedFour();
    await h.ok("update_bug", { bug_id: "BUG-3", status: "in_progress" });
    assert.deepEqual(ids(await h.ok("list_bugs", { status: "open" })), ["BUG-4", "BUG-2", "BUG-1"]);
    assert.deepEqual(ids(await h.ok("list_bugs", { priority: "critical" })), ["BUG-4", "BUG-2"]);
    assert.deepEqual(ids(await h.ok("list_bugs", { tags: ["ui"] })), ["BUG-3", "BUG-2", "BUG-1"]);
    assert.deepEqual(ids(await h.ok("list_bugs", { tags: ["ui", "AUTH"] })), ["BUG-3", "BUG-1"]);
    assert.deepEqual(ids(await h.ok("list_bugs", { tags: ["ui", "auth", "p0"] })), ["BUG-3"]);
    assert.deepEqual(ids(await h.ok("list_bugs", { tags: ["nope"] })), []);
    assert.deepEqual(ids(await h.ok("list_bugs", { status: "open", tags: ["ui"], priority: "low" })), ["BUG-1"]);
    assert.deepEqual(ids(await h.ok("list_bugs", { status: "closed" })), []);
  });

  void it("leaves histories out unless include_history is true", async () => {
    await h.add("x");
    await h.ok("update_bug", { bug_id: "BUG-1", note: "n" });
    assert.equal((await h.ok("list_bugs")).bugs instanceof Array, true);
    assert.equal(((await h.ok("list_bugs")).bugs as Bug[])[0]?.history, undefined);
    const withHistory = ((await h.ok("list_bugs", { include_history: true })).bugs as Bug[])[0];
    assert.equal(withHistory?.history?.[0]?.note, "n");
  });

  void it("pages with limit and an opaque cursor bound to the query", async () => {
    await seedFour();
    const first = await h.ok("list_bugs", { limit: 3 });
    assert.deepEqual(ids(first), ["BUG-4", "BUG-3", "BUG-2"]);
    assert.equal(first.has_more, true);
    assert.equal(typeof first.next_cursor, "string");
    const second = await h.ok("list_bugs", { limit: 3, cursor: first.next_cursor! });
    assert.deepEqual(ids(second), ["BUG-1"]);
    assert.equal(second.has_more, false);
    assert.equal(second.next_cursor, undefined);
    assert.match(await h.fails("list_bugs", { limit: 3, status: "open", cursor: first.next_cursor! }, "INVALID_CURSOR"), /without a cursor/);
    await h.fails("list_bugs", { sort: "created_asc", cursor: first.next_cursor! }, "INVALID_CURSOR");
    await h.fails("list_bugs", { cursor: "garbage" }, "INVALID_CURSOR");
    const other = h.tc.makeDir("proj-beta");
    await h.ok("add_bug", { title: "x", project_path: other });
    await h.fails("list_bugs", { limit: 3, cursor: first.next_cursor!, project_path: other }, "INVALID_CURSOR");
  });

  void it("needs a query for relevance order", async () => {
    await h.add("x");
    await h.fails("list_bugs", { sort: "relevance" }, "INVALID_ARGUMENT");
  });
});

void describe("search_bugs_global", () => {
  void it("searches every registered project and says where each bug lives", async () => {
    const beta = h.tc.makeDir("proj-beta");
    await h.add("alpha crash", { tags: ["ui"] });
    await h.ok("add_bug", { title: "beta crash", tags: ["ui"], project_path: beta });
    await h.ok("add_bug", { title: "beta other", project_path: beta });
    const all = await h.ok("search_bugs_global", {});
    assert.deepEqual(
      (all.bugs as Bug[]).map((bug) => [bug.title, bug.project_id, bug.project_path]),
      [
        ["beta other", projectIdFor(beta), beta],
        ["beta crash", projectIdFor(beta), beta],
        ["alpha crash", projectIdFor(h.project), h.project],
      ],
    );
    assert.equal(all.excluded_projects, 0);
    const found = await h.ok("search_bugs_global", { query: "crash", tags: ["ui"] });
    assert.deepEqual((found.bugs as Bug[]).map((bug) => bug.title).sort(), ["alpha crash", "beta crash"]);
  });

  void it("leaves out projects the policy no longer allows, or that are gone", async () => {
    const beta = h.tc.makeDir("proj-beta");
    const gamma = h.tc.makeDir("proj-gamma");
    await h.add("alpha bug");
    await h.ok("add_bug", { title: "beta bug", project_path: beta });
    await h.ok("add_bug", { title: "gamma bug", project_path: gamma });
    fs.rmSync(gamma, { recursive: true });
    const strict = createTestContext({ allowedRoots: [h.tc.root], deniedPaths: [beta], stateDir: h.tc.stateDir });
    try {
      const result = await invokeTool(h.plugin, "search_bugs_global", {}, strict.context());
      assert.equal(result.isError, false);
      assert.deepEqual((result.structured?.bugs as Bug[]).map((bug) => bug.title), ["alpha bug"]);
      assert.equal(result.structured?.excluded_projects, 2);
    } finally {
      strict.cleanup();
    }
  });

  void it("returns nothing (not an error) before any project exists", async () => {
    const result = await h.ok("search_bugs_global", { status: "open" });
    assert.deepEqual(result, { excluded_projects: 0, bugs: [], count: 0, has_more: false });
  });
});
