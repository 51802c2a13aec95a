// Full-text search, keyset pagination and query plans of the bug tracker.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import type { JsonObject } from "../../src/plugins/contract.js";
import { createBugtrackerPlugin } from "../../src/plugins/builtin/bugtracker/index.js";
import { migrate } from "../../src/plugins/builtin/bugtracker/migrations.js";
import { PRIORITIES, STATUSES, type Sort } from "../../src/plugins/builtin/bugtracker/model.js";
import { BugStore, pageSql, type BugRow, type PageQuery, type ProjectRow } from "../../src/plugins/builtin/bugtracker/store.js";
import { createTestContext, invokeTool, type TestContext } from "../helpers/plugin-context.js";

type Bug = { bug_id: string; title: string; history?: unknown[] };

function setup() {
  const tc = createTestContext();
  const project = tc.makeDir("proj");
  const plugin = createBugtrackerPlugin();
  const call = (tool: string, args: JsonObject = {}) => invokeTool(plugin, tool, args, tc.context({ projectPath: project }));
  const ok = async (tool: string, args: JsonObject = {}) => {
    const result = await call(tool, args);
    assert.equal(result.isError, false, `${tool} ${JSON.stringify(args)} failed: ${result.text ?? ""}`);
    return result.structured!;
  };
  const titles = async (args: JsonObject) => ((await ok("list_bugs", args)).bugs as Bug[]).map((bug) => bug.title);
  return { tc, project, plugin, call, ok, titles, done: async () => (await plugin.close?.(), tc.cleanup()) };
}

void describe("full-text search", () => {
  let s: ReturnType<typeof setup>;
  before(async () => {
    s = setup();
    await s.ok("add_bug", { title: "Login crashes on start", description: "Stack trace attached" });
    await s.ok("add_bug", { title: "Button colour", description: "The login button is grey" });
    await s.ok("add_bug", { title: "Authentication timeout", description: "Session expires" });
    await s.ok("add_bug", { title: "Café menu renders badly", description: "Unicode" });
    await s.ok("add_bug", { title: "Slow search", description: "Takes seconds" });
    await s.ok("update_bug", { bug_id: "BUG-5", note: "Profiling shows a crash in the indexer" });
    await s.ok("add_bug", { title: "Quote \"weird\" title", description: "has NEAR and OR words" });
    await s.ok("close_bug", { bug_id: "BUG-3", resolution: "raised the zanzibar limit" });
  });
  after(() => s.done());

  void it("searches titles, descriptions and notes (including resolutions)", async () => {
    assert.deepEqual(await s.titles({ query: "grey" }), ["Button colour"]);
    assert.deepEqual(await s.titles({ query: "indexer" }), ["Slow search"]);
    assert.deepEqual(await s.titles({ query: "zanzibar" }), ["Authentication timeout"]);
  });

  void it("requires every word, across fields", async () => {
    assert.deepEqual(await s.titles({ query: "login button" }), ["Button colour"]);
    assert.deepEqual(await s.titles({ query: "slow indexer" }), ["Slow search"]);
    assert.deepEqual(await s.titles({ query: "login zanzibar" }), []);
  });

  void it("stems English words, folds diacritics and supports a trailing *", async () => {
    assert.deepEqual((await s.titles({ query: "crash", sort: "created_asc" })).sort(), ["Login crashes on start", "Slow search"]);
    assert.deepEqual(await s.titles({ query: "cafe" }), ["Café menu renders badly"]);
    assert.deepEqual(await s.titles({ query: "authent*" }), ["Authentication timeout"]);
  });

  void it("ranks a title match above a description match", async () => {
    assert.deepEqual(await s.titles({ query: "login", sort: "relevance" }), ["Login crashes on start", "Button colour"]);
  });

  void it("treats FTS5 syntax as plain text and never fails on it", async () => {
    const same = await s.titles({ query: "login" });
    for (const query of ['"login"', "-login", "login*", "+login", "(login)", "login)", "^login", "login:"]) {
      assert.deepEqual((await s.titles({ query })).sort(), [...same].sort(), query);
    }
    // Operators are words that must appear: only the bug that literally says "NEAR" and "OR" matches.
    assert.deepEqual(await s.titles({ query: "NEAR OR" }), ['Quote "weird" title']);
    assert.deepEqual(await s.titles({ query: "NEAR(login crash)" }), []);
    assert.deepEqual(await s.titles({ query: "login OR grey" }), []);
    // Not a column filter (that would find the title match): the phrase "title login" appears nowhere.
    assert.deepEqual(await s.titles({ query: "title:login" }), []);
    assert.deepEqual(await s.titles({ query: "login NOT grey" }), []);
    assert.deepEqual(await s.titles({ query: '"weird' }), ['Quote "weird" title']);
    assert.deepEqual(await s.titles({ query: "'; DROP TABLE bugs; --" }), []);
    assert.deepEqual(await s.titles({ query: "NEAR(" }), ['Quote "weird" title']);
    for (const query of ['"', "*", "-", '" * - ( )', "^", "(", ":"]) {
      const result = await s.call("list_bugs", { query });
      assert.equal(result.code, "INVALID_QUERY", query);
      assert.match(result.text ?? "", /letters or digits/);
    }
    assert.equal((await s.ok("list_bugs")).count, 6, "the table is intact");
  });

  void it("keeps the index in step with the content (FTS5 integrity check)", async () => {
    const db = new Database(s.tc.databasePath("bugtracker"));
    try {
      db.prepare("INSERT INTO bug_search (bug_search, rank) VALUES ('integrity-check', 1)").run();
      // No tool edits titles, but the trigger for it keeps the index right should one ever do.
      db.prepare("UPDATE bugs SET title = 'Renamed quokka' WHERE number = 2").run();
      db.prepare("INSERT INTO bug_search (bug_search, rank) VALUES ('integrity-check', 1)").run();
    } finally {
      db.close();
    }
    assert.deepEqual(await s.titles({ query: "quokka" }), ["Renamed quokka"]);
    assert.deepEqual(await s.titles({ query: "colour" }), []);
    assert.deepEqual(await s.titles({ query: "grey" }), ["Renamed quokka"]);
  });
});

/** Seeds bugs straight through the store in one transaction (fast), with ties in time. */
function seed(tc: TestContext, projectPath: string, count: number): { rows: BugRow[]; project: ProjectRow } {
  const db = new Database(tc.databasePath("bugtracker"));
  try {
    migrate(db);
    let tick = 0;
    let serial = 0;
    // Seven rows share each millisecond, so sort keys tie and the id must break the tie.
    const now = () => Date.UTC(2025, 0, 1) + Math.floor(tick++ / 7);
    const random = () => {
      const bytes = new Uint8Array(10);
      new DataView(bytes.buffer).setUint32(6, ++serial);
      return bytes;
    };
    const store = new BugStore(db, { now, random });
    return store.write(() => {
      const { project } = store.registerProject(projectPath, "proj", "proj-00000000");
      const rows: BugRow[] = [];
      for (let i = 0; i < count; i++) {
        const words = ["alpha", i % 3 === 0 ? "crash" : "glitch", i % 5 === 0 ? "crash crash" : "", `n${i}`].join(" ");
        rows.push(
          store.insertBug(project, {
            title: `bug ${i} ${words}`,
            description: i % 4 === 0 ? "crash in the description" : "plain",
            priority: PRIORITIES[i % 4]!,
            tags: i % 2 === 0 ? ["even"] : ["odd"],
          }),
        );
      }
      // Shuffle update times and statuses for some bugs.
      for (let i = 0; i < count; i += 11) {
        const row = rows[i]!;
        const status = STATUSES[1 + (i % 3)]!;
        rows[i] = store.applyPlan(row, { status: { from: "open", to: status }, tagsAdded: [], tagsRemoved: [], related: [] }, undefined);
      }
      return { rows, project };
    });
  } finally {
    db.close();
  }
}

void describe("keyset pagination over a few thousand bugs", () => {
  const COUNT = 2500;
  let s: ReturnType<typeof setup>;
  let rows: BugRow[];
  let ranked: Map<string, number[]>;
  before(async () => {
    s = setup();
    await s.ok("init_bugtracker");
    rows = seed(s.tc, s.project, COUNT).rows;
    // Reference relevance order for the query used below, straight from SQLite without LIMIT.
    const db = new Database(s.tc.databasePath("bugtracker"), { readonly: true });
    try {
      const ids = db.prepare("SELECT rowid AS id FROM bug_search WHERE bug_search MATCH '\"crash\"' ORDER BY rank, rowid DESC").all() as { id: number }[];
      ranked = new Map([["crash", ids.map((row) => row.id)]]);
    } finally {
      db.close();
    }
  });
  after(() => s.done());

  async function walk(args: JsonObject): Promise<number[]> {
    const seen: number[] = [];
    let cursor: string | undefined;
    for (let pages = 0; pages < 1000; pages++) {
      const page = await s.ok("list_bugs", { ...args, limit: 200, ...(cursor === undefined ? {} : { cursor }) });
      const bugs = page.bugs as Bug[];
      assert.ok(bugs.length <= 200);
      assert.equal(page.count, bugs.length);
      for (const bug of bugs) seen.push(Number(bug.bug_id.slice(4)));
      if (page.has_more !== true) {
        assert.equal(page.next_cursor, undefined);
        return seen;
      }
      assert.equal(bugs.length, 200, "only the last page may be short");
      cursor = page.next_cursor as string;
    }
    throw new Error("pagination did not end");
  }

  const byNumber = (list: BugRow[]) => list.map((row) => row.number);
  const cases: Array<{ name: string; args: JsonObject; expected: () => number[] }> = [
    { name: "created_desc", args: {}, expected: () => byNumber([...rows].sort((a, b) => b.id - a.id)) },
    { name: "created_asc", args: { sort: "created_asc" }, expected: () => byNumber([...rows].sort((a, b) => a.id - b.id)) },
    {
      name: "updated_desc",
      args: { sort: "updated_desc" },
      expected: () => byNumber([...rows].sort((a, b) => b.updated_at - a.updated_at || b.id - a.id)),
    },
    { name: "priority", args: { sort: "priority" }, expected: () => byNumber([...rows].sort((a, b) => b.priority - a.priority || b.id - a.id)) },
    {
      name: "priority, open and tagged even",
      args: { sort: "priority", status: "open", tags: ["even"] },
      expected: () =>
        byNumber(rows.filter((row) => row.status === "open" && row.number % 2 === 1).sort((a, b) => b.priority - a.priority || b.id - a.id)),
    },
    {
      name: "relevance",
      args: { query: "crash", sort: "relevance" },
      expected: () => ranked.get("crash")!.map((id) => rows.find((row) => row.id === id)!.number),
    },
    {
      name: "query in created order",
      args: { query: "crash", sort: "created_desc", priority: "high" },
      expected: () => {
        const matching = new Set(ranked.get("crash"));
        return byNumber(rows.filter((row) => matching.has(row.id) && row.priority === 2).sort((a, b) => b.id - a.id));
      },
    },
  ];

  for (const { name, args, expected } of cases) {
    void it(`walks every page once, in order: ${name}`, async () => {
      const seen = await walk(args);
      assert.equal(new Set(seen).size, seen.length, "no bug twice");
      assert.deepEqual(seen, expected());
      assert.ok(seen.length > 0);
    });
  }

  void it("saw each of the bugs exactly once in the unfiltered walk", async () => {
    const seen = await walk({ sort: "created_asc" });
    assert.equal(seen.length, COUNT);
    assert.deepEqual(seen, Array.from({ length: COUNT }, (_, i) => i + 1));
  });

  void it("stays correct when bugs are added between pages (new bugs appear only in later created_asc pages)", async () => {
    const first = await s.ok("list_bugs", { limit: 100 });
    await s.ok("add_bug", { title: "arrived mid-walk" });
    const second = await s.ok("list_bugs", { limit: 100, cursor: first.next_cursor as string });
    const one = (first.bugs as Bug[]).map((bug) => bug.bug_id);
    const two = (second.bugs as Bug[]).map((bug) => bug.bug_id);
    assert.equal(one.filter((id) => two.includes(id)).length, 0);
    assert.equal(two.includes(`BUG-${COUNT + 1}`), false, "newest-first pages continue below the cursor");
  });
});

void describe("page queries use indexes", () => {
  const db = new Database(":memory:");
  migrate(db);
  const plan = (query: PageQuery) => {
    const { sql, params } = pageSql(query);
    return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params) as { detail: string }[]).map((row) => row.detail);
  };
  const base = { tags: [], limit: 50 } as const;

  void it("walks an index in sort order for a project's pages (no full scan, no sort step)", () => {
    const indexed: Array<Partial<PageQuery> & { sort: Sort }> = [
      { sort: "created_desc" },
      { sort: "created_asc" },
      { sort: "updated_desc" },
      { sort: "priority" },
      { sort: "created_desc", status: "open" },
      { sort: "priority", status: "open" },
      { sort: "created_desc", priority: "high" },
      { sort: "created_desc", status: "open", priority: "high" },
      { sort: "created_desc", after: [100] },
      { sort: "updated_desc", after: [1000, 100] },
      { sort: "priority", status: "open", after: [2, 100] },
      { sort: "created_desc", match: '"crash"' },
      { sort: "created_desc", match: '"crash"', after: [100] },
    ];
    for (const variant of indexed) {
      const details = plan({ ...base, project: 1, ...variant });
      const text = details.join(" | ");
      assert.ok(!details.some((detail) => /^SCAN b\b/.test(detail)), `full scan: ${JSON.stringify(variant)}: ${text}`);
      assert.ok(!details.some((detail) => detail.includes("TEMP B-TREE")), `sort step: ${JSON.stringify(variant)}: ${text}`);
    }
  });

  void it("walks in order without a sort step for global pages", () => {
    for (const sort of ["created_desc", "created_asc", "updated_desc", "priority"] as const) {
      const details = plan({ ...base, sort, excludeProjects: [3] });
      assert.ok(!details.some((detail) => detail.includes("TEMP B-TREE")), `${sort}: ${details.join(" | ")}`);
    }
  });

  void it("prepares each page statement once per connection", () => {
    const store = new BugStore(db, { now: () => 0, random: () => new Uint8Array(10) });
    store.page({ ...base, project: 1, sort: "priority" });
    store.page({ ...base, project: 2, sort: "priority", after: [1, 2] });
    store.page({ ...base, project: 2, sort: "priority", after: [3, 4] });
    store.page({ ...base, project: 1, sort: "priority" });
    assert.equal(store.cachedPageStatements, 2);
  });
});

void describe("review finding: control characters in a search", () => {
  void it("are refused with a clear message instead of cutting the query", async () => {
    const t = createTestContext();
    try {
      const plugin = createBugtrackerPlugin();
      const project = t.makeDir("ctl");
      const result = await invokeTool(plugin, "list_bugs", { project_path: project, query: "\u0000alpha" }, t.context());
      assert.equal(result.isError, true);
      assert.match(result.text ?? "", /control characters/);
    } finally {
      t.cleanup();
    }
  });
});
