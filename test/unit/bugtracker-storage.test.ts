// The bug tracker's database: settings, migrations, refusals, damaged files, locks and concurrent writers.
import fs from "node:fs";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { afterEach, beforeEach, describe, it } from "node:test";
import Database from "better-sqlite3";
import type { JsonObject, Plugin } from "../../src/plugins/contract.js";
import { openBugDatabase } from "../../src/plugins/builtin/bugtracker/database.js";
import { createBugtrackerPlugin } from "../../src/plugins/builtin/bugtracker/index.js";
import { APPLICATION_ID, LATEST_VERSION, MIGRATIONS, SchemaError, migrate } from "../../src/plugins/builtin/bugtracker/migrations.js";
import { describeSchemaDamage, expectedObjects, readSchema, schemaProblems, type SchemaObject } from "../../src/plugins/builtin/bugtracker/schema-check.js";
import { HISTORY_REVISIONS_SHOWN } from "../../src/plugins/builtin/bugtracker/store.js";
import { createTestContext, invokeTool, type TestContext } from "../helpers/plugin-context.js";

type Bug = { bug_id: string; revision: number; history?: { revision: number; note?: string }[] };

let tc: TestContext;
let project: string;
let plugins: Plugin[];

beforeEach(() => {
  tc = createTestContext();
  project = tc.makeDir("proj");
  plugins = [];
});
afterEach(async () => {
  for (const plugin of plugins) await plugin.close?.();
  tc.cleanup();
});

function newPlugin(options: Parameters<typeof createBugtrackerPlugin>[0] = {}): Plugin {
  const plugin = createBugtrackerPlugin(options);
  plugins.push(plugin);
  return plugin;
}

function call(plugin: Plugin, tool: string, args: JsonObject = {}, context: TestContext = tc) {
  return invokeTool(plugin, tool, args, context.context({ projectPath: project }));
}

async function ok(plugin: Plugin, tool: string, args: JsonObject = {}, context: TestContext = tc): Promise<JsonObject> {
  const result = await call(plugin, tool, args, context);
  assert.equal(result.isError, false, `${tool} failed: ${result.text ?? ""}`);
  return result.structured!;
}

/** Creates the database with a few bugs, then closes every connection. */
async function populated(): Promise<void> {
  const plugin = createBugtrackerPlugin();
  for (let i = 0; i < 30; i++) await ok(plugin, "add_bug", { title: `bug ${i}`, description: "x".repeat(500) });
  // The plugin closes its connection (the one the storage handed out); the next open starts afresh.
  await plugin.close?.();
}

void describe("database settings", () => {
  void it("opens in WAL mode with foreign keys, a busy timeout, our application id and the latest schema", () => {
    const db = openBugDatabase(tc.ctx.storage, 1234);
    try {
      assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
      assert.equal(db.pragma("foreign_keys", { simple: true }), 1);
      assert.equal(db.pragma("busy_timeout", { simple: true }), 1234);
      assert.equal(db.pragma("user_version", { simple: true }), LATEST_VERSION);
      assert.equal(db.pragma("application_id", { simple: true }), APPLICATION_ID);
    } finally {
      db.close();
    }
    assert.equal(fs.statSync(tc.databasePath("bugtracker")).mode & 0o777, 0o600);
  });

  void it("keeps data in tables: projects, bugs, tags, relations, history", async () => {
    const plugin = newPlugin();
    await ok(plugin, "add_bug", { title: "a", tags: ["x", "y"] });
    await ok(plugin, "add_bug", { title: "b" });
    await ok(plugin, "update_bug", { bug_id: "BUG-1", related_bugs: [{ bug_id: "BUG-2", relationship: "blocks" }], note: "n" });
    const db = new Database(tc.databasePath("bugtracker"), { readonly: true });
    try {
      const count = (table: string) => (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
      assert.deepEqual([count("projects"), count("bugs"), count("bug_tags"), count("relations"), count("history")], [1, 2, 2, 2, 3]);
    } finally {
      db.close();
    }
  });

  void it("refuses to delete bugs or rewrite history, even through SQL", async () => {
    const plugin = newPlugin();
    await ok(plugin, "add_bug", { title: "a" });
    await ok(plugin, "update_bug", { bug_id: "BUG-1", note: "n" });
    const db = new Database(tc.databasePath("bugtracker"));
    try {
      assert.throws(() => db.prepare("DELETE FROM bugs").run(), /never deleted/);
      assert.throws(() => db.prepare("UPDATE history SET note = 'x'").run(), /append-only/);
      assert.throws(() => db.prepare("DELETE FROM history").run(), /append-only/);
    } finally {
      db.close();
    }
  });
});

void describe("migrations", () => {
  void it("creates the schema on an empty database once", () => {
    const db = new Database(":memory:");
    assert.equal(migrate(db), LATEST_VERSION);
    assert.equal(migrate(db), LATEST_VERSION);
    assert.ok(db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'bugs'").get());
    db.close();
  });

  void it("applies later steps in order, in one transaction, and refuses a newer schema", () => {
    const db = new Database(":memory:");
    migrate(db);
    const next = [...MIGRATIONS, { version: LATEST_VERSION + 1, description: "extra", sql: "CREATE TABLE extra (x INTEGER) STRICT;" }];
    assert.equal(migrate(db, next), LATEST_VERSION + 1);
    assert.ok(db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'extra'").get());
    assert.throws(
      () => migrate(db),
      (error: unknown) => error instanceof SchemaError && error.code === "SCHEMA_TOO_NEW" && /newer than this server/.test(error.message),
    );
    // A failing step leaves the version and the schema as they were.
    const broken = [...next, { version: LATEST_VERSION + 2, description: "broken", sql: "CREATE TABLE half (x); THIS IS NOT SQL;" }];
    assert.throws(() => migrate(db, broken));
    assert.equal(db.pragma("user_version", { simple: true }), LATEST_VERSION + 1);
    assert.equal(db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'half'").get(), undefined);
    db.close();
  });

  void it("moves a version 1 database to title and description history, keeping its rows, index and triggers", () => {
    const db = new Database(":memory:");
    assert.equal(migrate(db, MIGRATIONS.slice(0, 1)), 1);
    db.exec(`
      INSERT INTO projects (id, project_id, path, name, next_number, created_at) VALUES (1, 'p-1', '/p', 'p', 3, 0);
      INSERT INTO bugs (id, uid, project, number, title, description, status, priority, created_at, updated_at, revision)
        VALUES (1, 'U1', 1, 1, 'first', 'about zanzibar', 'open', 1, 0, 0, 0), (2, 'U2', 1, 2, 'second', '', 'open', 1, 0, 0, 0);
      INSERT INTO history (bug, revision, at, field, old_value, new_value, other_bug, note, call_id) VALUES
        (1, 1, 5, 'status', 'open', 'in_progress', NULL, NULL, 'c1'),
        (1, 1, 5, 'related', NULL, 'blocks', 2, NULL, 'c1'),
        (1, 2, 6, 'note', NULL, NULL, NULL, 'found in kalamazoo', 'c2');`);
    const rows = db.prepare("SELECT * FROM history ORDER BY id").all();
    const search = (words: string) => db.prepare("SELECT rowid FROM bug_search WHERE bug_search MATCH ?").all(words).length;
    assert.equal(search("kalamazoo"), 1);
    assert.throws(() => db.prepare("INSERT INTO history (bug, revision, at, field, old_value, new_value) VALUES (1, 3, 7, 'title', 'first', 'First')").run(), /CHECK/);

    assert.equal(migrate(db), LATEST_VERSION);
    assert.deepEqual(db.prepare("SELECT * FROM history ORDER BY id").all(), rows);
    assert.deepEqual(db.pragma("integrity_check"), [{ integrity_check: "ok" }]);
    assert.deepEqual(db.pragma("foreign_key_check"), []);
    db.exec("INSERT INTO bug_search (bug_search) VALUES ('integrity-check')");
    assert.equal(search("kalamazoo"), 1);
    const names = (type: string) => (db.prepare("SELECT name FROM sqlite_schema WHERE type = ? AND tbl_name = 'history' ORDER BY name").all(type) as { name: string }[]).map((row) => row.name);
    assert.deepEqual(names("index"), ["history_bug"]);
    assert.deepEqual(names("trigger"), ["history_no_change", "history_no_delete", "history_search_note"]);
    assert.deepEqual(db.prepare("SELECT name FROM temp.sqlite_schema").all(), [], "the copy aside is gone");

    // The new fields are accepted; the triggers still keep history append-only and notes searchable.
    db.prepare("INSERT INTO history (bug, revision, at, field, old_value, new_value) VALUES (1, 3, 7, 'title', 'first', 'First')").run();
    db.prepare("INSERT INTO history (bug, revision, at, field, old_value, new_value) VALUES (1, 3, 7, 'description', 'about zanzibar', '')").run();
    assert.throws(() => db.prepare("UPDATE history SET note = 'x'").run(), /append-only/);
    assert.throws(() => db.prepare("DELETE FROM history").run(), /append-only/);
    db.prepare("INSERT INTO history (bug, revision, at, field, note) VALUES (2, 1, 8, 'note', 'seen in timbuktu')").run();
    assert.equal(search("timbuktu"), 1);
    db.exec("INSERT INTO bug_search (bug_search) VALUES ('integrity-check')");
    db.close();
  });

  void it("refuses a database that belongs to another program", () => {
    const foreign = new Database(":memory:");
    foreign.exec("CREATE TABLE notes (x)");
    assert.throws(() => migrate(foreign), (error: unknown) => error instanceof SchemaError && error.code === "NOT_OUR_DATABASE");
    foreign.close();
    const other = new Database(":memory:");
    other.pragma("application_id = 42");
    assert.throws(() => migrate(other), (error: unknown) => error instanceof SchemaError && error.code === "NOT_OUR_DATABASE");
    other.close();
    const versioned = new Database(":memory:");
    versioned.pragma("user_version = 1");
    assert.throws(() => migrate(versioned), (error: unknown) => error instanceof SchemaError && error.code === "NOT_OUR_DATABASE");
    versioned.close();
  });

  void it("reports a newer database through the tools and leaves the file as it is", async () => {
    await populated();
    const file = tc.databasePath("bugtracker");
    const raw = new Database(file);
    raw.pragma(`user_version = ${LATEST_VERSION + 5}`);
    raw.close();
    const before = fs.readFileSync(file);
    const result = await call(newPlugin(), "list_bugs");
    assert.equal(result.code, "SCHEMA_TOO_NEW");
    assert.match(result.text ?? "", /upgrade mcp-secure-local/);
    assert.deepEqual(fs.readFileSync(file), before);
  });
});

void describe("a database upgraded by a newer server while this one has it open", () => {
  void it("is reported as newer from the next call on, and not written to", async () => {
    // Two servers share the database: the one started after an upgrade of mcp-secure-local
    // migrates it while the older one keeps its open connection (and its prepared statements).
    const plugin = newPlugin();
    await ok(plugin, "add_bug", { title: "before the upgrade" });
    const newer = new Database(tc.databasePath("bugtracker"));
    const next = [...MIGRATIONS, { version: LATEST_VERSION + 1, description: "a newer server's step", sql: "CREATE TABLE extra (x INTEGER) STRICT;" }];
    assert.equal(migrate(newer, next), LATEST_VERSION + 1);
    const bugs = () => (newer.prepare("SELECT count(*) AS n FROM bugs").get() as { n: number }).n;
    const history = () => (newer.prepare("SELECT count(*) AS n FROM history").get() as { n: number }).n;
    try {
      for (const [tool, args] of [
        ["add_bug", { title: "after the upgrade" }],
        ["update_bug", { bug_id: "BUG-1", note: "written by the older server" }],
        ["close_bug", { bug_id: "BUG-1" }],
        ["init_bugtracker", {}],
        ["list_bugs", {}],
        ["get_bug", { bug_id: "BUG-1" }],
        ["search_bugs_global", {}],
      ] as Array<[string, JsonObject]>) {
        const result = await call(plugin, tool, args);
        assert.equal(result.code, "SCHEMA_TOO_NEW", `${tool}: ${result.text ?? "succeeded"}`);
        assert.match(result.text ?? "", /upgrade mcp-secure-local/);
      }
      assert.equal(bugs(), 1);
      assert.equal(history(), 0);
    } finally {
      newer.close();
    }
  });
});

void describe("damaged databases", () => {
  void it("reports a file that is not a database, and never overwrites it", async () => {
    const file = tc.databasePath("bugtracker");
    fs.mkdirSync(tc.stateDir, { recursive: true });
    const garbage = Buffer.alloc(8192, "this is not an SQLite database, it is garbage. ");
    fs.writeFileSync(file, garbage, { mode: 0o600 });
    const plugin = newPlugin();
    for (const [tool, args] of [
      ["add_bug", { title: "x" }],
      ["init_bugtracker", {}],
      ["list_bugs", {}],
    ] as const) {
      const result = await call(plugin, tool, args);
      assert.equal(result.isError, true);
      assert.equal(result.code, "DB_CORRUPT", tool);
      assert.match(result.text ?? "", /left untouched/);
      assert.deepEqual(fs.readFileSync(file), garbage, "the garbage bytes are unchanged");
    }
    assert.ok(tc.logs.some((entry) => entry.level === "error" && entry.data?.code === "DB_CORRUPT"));
    // Once the file is moved aside, the next call starts a new database.
    fs.renameSync(file, `${file}.damaged`);
    assert.equal((await ok(plugin, "add_bug", { title: "fresh start" })).message, "Created bug: BUG-1");
  });

  void it("reports damaged pages (SQLITE_CORRUPT) on read, and leaves the file as it is", async () => {
    await populated();
    const file = tc.databasePath("bugtracker");
    const bytes = fs.readFileSync(file);
    assert.ok(bytes.length > 8 * 4096, "the database has pages past the schema");
    // Keep the header page (schema version, page size) and scramble every later page.
    for (let i = 4096; i < bytes.length; i++) bytes[i] = (i * 7919) % 251;
    fs.writeFileSync(file, bytes);
    const plugin = newPlugin();
    for (const [tool, args] of [
      ["list_bugs", {}],
      ["get_bug", { bug_id: "BUG-3" }],
    ] as const) {
      const result = await call(plugin, tool, args);
      assert.equal(result.code, "DB_CORRUPT", `${tool}: ${result.text ?? ""}`);
    }
    assert.deepEqual(fs.readFileSync(file), bytes);
  });
});

void describe("a schema changed outside the server", () => {
  const ALL_TOOLS: Array<[string, JsonObject]> = [
    ["init_bugtracker", {}],
    ["add_bug", { title: "must not be written" }],
    ["get_bug", { bug_id: "BUG-1" }],
    ["update_bug", { bug_id: "BUG-1", note: "must not be written" }],
    ["close_bug", { bug_id: "BUG-1" }],
    ["list_bugs", { query: "searchable" }],
    ["search_bugs_global", {}],
  ];

  /** Every tool refuses with SCHEMA_DAMAGED and a message matching `named`; the error is logged for the operator. */
  async function refusedEverywhere(plugin: Plugin, named: RegExp): Promise<void> {
    for (const [tool, args] of ALL_TOOLS) {
      const result = await call(plugin, tool, args);
      assert.equal(result.code, "SCHEMA_DAMAGED", `${tool}: ${result.text ?? "succeeded"}`);
      assert.match(result.text ?? "", named, tool);
      assert.match(result.text ?? "", /changed outside the server/);
      assert.match(result.text ?? "", /left untouched .*restore it from a backup, or move it aside to start an empty one/);
    }
    assert.ok(tc.logs.some((entry) => entry.level === "error" && entry.data?.code === "SCHEMA_DAMAGED"));
  }

  /** A closed database with one bug (a tag, a note), changed by `damage` through another connection. */
  async function damaged(damage: string): Promise<Buffer> {
    const plugin = createBugtrackerPlugin();
    await ok(plugin, "add_bug", { title: "searchable", tags: ["ui"] });
    await ok(plugin, "update_bug", { bug_id: "BUG-1", note: "a note" });
    await plugin.close?.();
    const raw = new Database(tc.databasePath("bugtracker"));
    raw.exec(damage);
    raw.close();
    return fs.readFileSync(tc.databasePath("bugtracker"));
  }

  void it("lists every object the migrations make, at every version, and nothing else", () => {
    // The expected schema is written out by hand: this keeps it from drifting from the migrations.
    for (let version = 1; version <= LATEST_VERSION; version++) {
      const db = new Database(":memory:");
      try {
        assert.equal(migrate(db, MIGRATIONS.slice(0, version)), version);
        const expected = expectedObjects(version);
        assert.ok(expected !== undefined, `version ${version} is described`);
        const made = db.prepare("SELECT type, name, tbl_name AS tbl FROM sqlite_schema ORDER BY name").all() as { type: string; name: string; tbl: string }[];
        // SQLite's own objects: autoindexes of UNIQUE and PRIMARY KEY, FTS5's shadow tables.
        const ours = made.filter((row) => !row.name.startsWith("sqlite_") && !/^bug_search_(data|idx|docsize|config)$/.test(row.name));
        assert.deepEqual(
          ours.map((row) => `${row.type} ${row.name} on ${row.tbl}`),
          [...expected].sort((a, b) => (a.name < b.name ? -1 : 1)).map((object) => `${object.type} ${object.name} on ${object.table}`),
        );
        for (const object of expected.filter((item) => item.columns !== undefined)) {
          const columns = (db.prepare("SELECT name FROM pragma_table_info(?)").all(object.name) as { name: string }[]).map((row) => row.name);
          assert.deepEqual(columns, object.columns, `columns of ${object.name} at version ${version}`);
        }
        assert.deepEqual(schemaProblems(expected, readSchema(db, expected)), []);
      } finally {
        db.close();
      }
    }
    assert.equal(expectedObjects(0), undefined);
    assert.equal(expectedObjects(LATEST_VERSION + 1), undefined);
  });

  void it("reads names as SQLite does, whatever their case: an index or trigger made again as BUGS_STATUS ON Bugs is there", () => {
    const db = new Database(":memory:");
    try {
      migrate(db);
      db.exec(`
        DROP INDEX bugs_status; CREATE INDEX BUGS_STATUS ON Bugs (status);
        DROP TRIGGER bugs_no_delete; CREATE TRIGGER Bugs_No_Delete BEFORE DELETE ON BUGS BEGIN SELECT RAISE(ABORT, 'bugs are never deleted'); END;
        ALTER TABLE bug_tags RENAME COLUMN tag TO Tag;
      `);
      // SQLite itself finds them by their lower-case names.
      assert.equal((db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name = 'bugs_status' COLLATE NOCASE").get() as { n: number }).n, 1);
      const expected = expectedObjects(LATEST_VERSION)!;
      assert.deepEqual(schemaProblems(expected, readSchema(db, expected)), []);
      // A name that differs otherwise is still missing.
      db.exec("DROP INDEX BUGS_STATUS; CREATE INDEX bugs_statuses ON bugs (status)");
      assert.deepEqual(schemaProblems(expected, readSchema(db, expected)), [{ kind: "missing", type: "index", name: "bugs_status" }]);
    } finally {
      db.close();
    }
  });

  void it("keeps triggers apart from tables, views and indexes, as SQLite does: an object of one's own may share a name across them", () => {
    const db = new Database(":memory:");
    try {
      migrate(db);
      // A trigger named after its table, a table named like one of our triggers: SQLite allows both.
      db.exec(`
        CREATE TABLE edits (at INTEGER);
        CREATE TRIGGER bugs AFTER UPDATE ON bugs BEGIN INSERT INTO edits VALUES (new.updated_at); END;
        CREATE TABLE bugs_search_insert (note TEXT);
      `);
      const expected = expectedObjects(LATEST_VERSION)!;
      assert.deepEqual(schemaProblems(expected, readSchema(db, expected)), []);
      // Our trigger gone, the table of that name left: the trigger is missing.
      db.exec("DROP TRIGGER bugs_search_insert");
      assert.deepEqual(schemaProblems(expected, readSchema(db, expected)), [{ kind: "missing", type: "trigger", name: "bugs_search_insert" }]);
    } finally {
      db.close();
    }
  });

  void it("names what is wrong, leaves out what a missing table took with it, and counts what it does not name", () => {
    const expected: SchemaObject[] = [
      { type: "table", name: "a", table: "a", columns: ["x", "y"] },
      { type: "table", name: "b", table: "b", columns: ["z"] },
      { type: "table", name: "fts", table: "fts", columns: ["t"] },
      { type: "view", name: "v", table: "v" },
      { type: "index", name: "a_x", table: "a" },
      { type: "trigger", name: "a_t", table: "a" },
      { type: "index", name: "b_z", table: "b" },
      { type: "trigger", name: "b_t", table: "b" },
    ];
    const actual = {
      objects: new Map([
        ["a", { type: "table", table: "a" }],
        ["fts", { type: "table", table: "fts" }],
        ["v", { type: "table", table: "v" }],
        ["a_x", { type: "index", table: "other" }],
        ["extra", { type: "index", table: "a" }],
      ]),
      triggers: new Map<string, { type: string; table: string }>(),
      columns: new Map<string, readonly string[] | string>([
        ["a", ["x", "extra"]],
        ["fts", "vtable constructor failed: fts"],
      ]),
    };
    const problems = schemaProblems(expected, actual);
    assert.deepEqual(problems, [
      { kind: "missing-column", table: "a", column: "y" },
      { kind: "missing", type: "table", name: "b" },
      { kind: "unreadable", name: "fts", reason: "vtable constructor failed: fts" },
      { kind: "wrong-type", name: "v", expected: "view", actual: "table" },
      { kind: "wrong-table", type: "index", name: "a_x", expected: "a", actual: "other" },
      { kind: "missing", type: "trigger", name: "a_t" },
    ]);
    const message = describeSchemaDamage(3, problems);
    assert.match(message, /no longer has the schema of its version 3: column `y` of table `a` is missing; table `b` is missing; table `fts` cannot be read \(vtable constructor failed: fts\); `v` is a table, not a view; index `a_x` is on table `other`, not `a` \(and 1 more\)\./);
  });

  for (const [damage, named] of [
    ["DROP TABLE history", /table `history` is missing/],
    ["DROP TABLE bug_search", /table `bug_search` is missing/],
    ["ALTER TABLE bugs DROP COLUMN revision", /column `revision` of table `bugs` is missing/],
    ["DROP TRIGGER bugs_search_insert", /trigger `bugs_search_insert` is missing/],
    ["DROP INDEX bugs_status", /index `bugs_status` is missing/],
  ] as const) {
    void it(`refuses every call with SCHEMA_DAMAGED after ${damage}, and leaves the file as it is`, async () => {
      const before = await damaged(damage);
      await refusedEverywhere(newPlugin(), named);
      assert.deepEqual(fs.readFileSync(tc.databasePath("bugtracker")), before);
    });
  }

  void it("refuses a damaged version 1 database before upgrading it, and leaves it at version 1", async () => {
    fs.mkdirSync(tc.stateDir, { recursive: true });
    const file = tc.databasePath("bugtracker");
    const raw = new Database(file);
    // As an older server left it: in WAL mode.
    raw.pragma("journal_mode = WAL");
    migrate(raw, MIGRATIONS.slice(0, 1));
    raw.exec("DROP TRIGGER history_no_delete");
    raw.close();
    const before = fs.readFileSync(file);
    await refusedEverywhere(newPlugin(), /schema of its version 1: trigger `history_no_delete` is missing/);
    assert.deepEqual(fs.readFileSync(file), before);
  });

  void it("notices a change made by another process while the server has the database open, and serves again once it is undone", async () => {
    // SQLite itself would not complain here: without the trigger, new bugs just never reach the search index.
    const plugin = newPlugin();
    await ok(plugin, "add_bug", { title: "searchable" });
    const other = new Database(tc.databasePath("bugtracker"));
    try {
      const trigger = (other.prepare("SELECT sql FROM sqlite_schema WHERE name = 'bugs_search_insert'").get() as { sql: string }).sql;
      other.exec("DROP TRIGGER bugs_search_insert");
      await refusedEverywhere(plugin, /trigger `bugs_search_insert` is missing/);
      assert.equal((other.prepare("SELECT count(*) AS n FROM bugs").get() as { n: number }).n, 1, "nothing was written");
      other.exec(trigger);
    } finally {
      other.close();
    }
    assert.equal((await ok(plugin, "add_bug", { title: "searchable again" })).message, "Created bug: BUG-2");
    assert.equal((await ok(plugin, "list_bugs", { query: "searchable" })).count, 2);
  });

  void it("leaves a database it refuses in the journal mode it was in: WAL is set only once the file is known to be ours and whole", async () => {
    // Another program's database, a damaged one of ours, and a newer one, each in rollback-journal
    // mode (a copy made by VACUUM INTO, or a tool that set journal_mode = DELETE): switching it to
    // WAL rewrites its header and leaves it unreadable to SQLite before 3.7 and on network file systems.
    fs.mkdirSync(tc.stateDir, { recursive: true });
    const file = tc.databasePath("bugtracker");
    const cases: Array<[string, (db: Database.Database) => void]> = [
      ["NOT_OUR_DATABASE", (db) => db.exec("CREATE TABLE notes (x)")],
      [
        "SCHEMA_DAMAGED",
        (db) => {
          migrate(db);
          db.exec("DROP TRIGGER bugs_no_delete");
        },
      ],
      [
        "SCHEMA_TOO_NEW",
        (db) => {
          migrate(db);
          db.pragma(`user_version = ${LATEST_VERSION + 1}`);
        },
      ],
    ];
    for (const [code, make] of cases) {
      for (const suffix of ["", "-wal", "-shm"]) fs.rmSync(file + suffix, { force: true });
      const raw = new Database(file);
      make(raw);
      raw.close();
      const before = fs.readFileSync(file);
      assert.equal(before[18], 1, "written in rollback-journal mode");
      const result = await call(newPlugin(), "list_bugs");
      assert.equal(result.code, code, result.text);
      assert.deepEqual(fs.readFileSync(file), before, `${code}: the file is as it was`);
    }
  });

  void it("starts a new database once the damaged one is moved aside", async () => {
    await damaged("DROP TABLE relations");
    const plugin = newPlugin();
    assert.equal((await call(plugin, "list_bugs")).code, "SCHEMA_DAMAGED");
    const file = tc.databasePath("bugtracker");
    for (const suffix of ["", "-wal", "-shm"]) if (fs.existsSync(file + suffix)) fs.renameSync(file + suffix, `${file}.damaged${suffix}`);
    assert.equal((await ok(plugin, "add_bug", { title: "fresh start" })).message, "Created bug: BUG-1");
  });
});

void describe("database files the storage cannot open", () => {
  // Each is the operator's to fix: the model gets the reason and the fix, never "internal error".
  async function refusedWith(code: string, ...patterns: RegExp[]): Promise<void> {
    const plugin = newPlugin();
    for (const [tool, args] of [
      ["add_bug", { title: "x" }],
      ["list_bugs", {}],
    ] as const) {
      const result = await call(plugin, tool, args);
      assert.equal(result.isError, true, tool);
      assert.equal(result.code, code, `${tool}: ${result.text ?? ""}`);
      for (const pattern of patterns) assert.match(result.text ?? "", pattern);
    }
  }

  void it("a directory where the database file belongs", async () => {
    fs.mkdirSync(tc.databasePath("bugtracker"), { recursive: true });
    await refusedWith("DB_UNAVAILABLE", /bugtracker\.db/, /is a directory/, /move it aside/);
  });

  void it("a symbolic link where the database file belongs (never followed)", async () => {
    fs.mkdirSync(tc.stateDir, { recursive: true });
    const elsewhere = tc.makeDir("elsewhere");
    fs.writeFileSync(`${elsewhere}/real.db`, "");
    fs.symlinkSync(`${elsewhere}/real.db`, tc.databasePath("bugtracker"));
    await refusedWith("DB_UNAVAILABLE", /symbolic link/, /does not follow/);
    assert.equal(fs.readFileSync(`${elsewhere}/real.db`, "utf8"), "", "the link's target is untouched");
  });

  void it("a file where the data folder belongs", async () => {
    fs.rmSync(tc.stateDir, { recursive: true, force: true });
    fs.writeFileSync(tc.stateDir, "not a folder");
    await refusedWith("DB_UNAVAILABLE", /cannot be created/, /not a directory/);
  });

  void it("a read-only database file", { skip: process.getuid?.() === 0 ? "root may write to any file" : false }, async () => {
    fs.mkdirSync(tc.stateDir, { recursive: true });
    await ok(newPlugin(), "add_bug", { title: "x" });
    for (const plugin of plugins.splice(0)) await plugin.close?.();
    fs.chmodSync(tc.databasePath("bugtracker"), 0o400);
    await refusedWith("DB_READONLY", /read-only/, /read and write access/);
  });
});

void describe("a database file replaced during a call", () => {
  void it("search_bugs_global, which awaits the path checks between its reads, asks to repeat the call", async () => {
    const plugin = newPlugin();
    await ok(plugin, "add_bug", { title: "in the first file" });
    const base = tc.context({ projectPath: project });
    // What the storage does when the file at the path changed: closes the old connection, opens the new file.
    let current = base.storage.openDatabase("bugtracker");
    const replace = () => {
      current.close();
      current = new Database(`${tc.stateDir}/replacement.db`);
    };
    let replaced = false;
    const ctx = {
      ...base,
      fs: {
        ...base.fs,
        stat: async (target: string) => {
          const info = await base.fs.stat(target);
          if (!replaced) {
            replaced = true;
            replace();
          }
          return info;
        },
      },
      storage: { openDatabase: () => current },
    };
    const result = await invokeTool(plugin, "search_bugs_global", {}, ctx);
    assert.equal(result.isError, true);
    assert.equal(result.code, "DB_REPLACED", result.text);
    assert.match(result.text ?? "", /repeat the call/);
    // The next call works on the file now at the path.
    assert.equal((await invokeTool(plugin, "search_bugs_global", {}, ctx)).structured?.count, 0);
  });
});

void describe("locks", () => {
  void it("answers DB_BUSY when another process holds the write lock past the timeout, and recovers", async () => {
    const plugin = newPlugin({ busyTimeoutMs: 50 });
    await ok(plugin, "add_bug", { title: "first" });
    const other = new Database(tc.databasePath("bugtracker"));
    try {
      other.exec("BEGIN IMMEDIATE");
      const refused = await call(plugin, "add_bug", { title: "blocked" });
      assert.equal(refused.code, "DB_BUSY");
      assert.match(refused.text ?? "", /retry/);
      // WAL: readers are not blocked by the writer.
      assert.equal((await ok(plugin, "list_bugs")).count, 1);
      other.exec("ROLLBACK");
    } finally {
      other.close();
    }
    assert.equal((await ok(plugin, "add_bug", { title: "after" })).message, "Created bug: BUG-2");
    assert.ok(tc.logs.some((entry) => entry.level === "warn" && entry.data?.code === "DB_BUSY"));
  });
});

void describe("waiting for a lock", () => {
  void it("waits asleep, not in SQLite: other calls are served meanwhile, and the call goes through once the lock is freed", async () => {
    const plugin = newPlugin({ busyTimeoutMs: 10_000 });
    await ok(plugin, "add_bug", { title: "first" });
    const other = new Database(tc.databasePath("bugtracker"));
    try {
      other.exec("BEGIN IMMEDIATE");
      const blocked = call(plugin, "add_bug", { title: "waited" });
      let settled = false;
      void blocked.then(() => (settled = true));
      // Served while add_bug waits (a wait inside SQLite would hold the whole thread).
      assert.equal((await ok(plugin, "list_bugs")).count, 1);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(settled, false, "add_bug is still waiting for the lock");
      other.exec("ROLLBACK");
      const done = await blocked;
      assert.equal(done.isError, false, done.text);
      assert.equal(done.structured?.message, "Created bug: BUG-2");
    } finally {
      other.close();
    }
  });

  void it("many calls waiting for the lock retry one at a time, so the others are still served promptly", { timeout: 60_000 }, async () => {
    // A try may wait up to its slice (20 ms) inside SQLite, holding the thread. 100 calls trying
    // each on its own held it nearly all the time: the server answered a ping after 2.9 s.
    const plugin = newPlugin({ busyTimeoutMs: 30_000 });
    await ok(plugin, "add_bug", { title: "first" });
    const other = new Database(tc.databasePath("bugtracker"));
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    // As in the server, each call's path check completes as an event of its own (not all in one
    // run of microtasks), and the calls' first tries follow one another in one turn of the loop.
    const base = tc.context({ projectPath: project });
    const ctx = { ...base, fs: { ...base.fs, stat: async (target: string) => (await new Promise((resolve) => setImmediate(resolve)), base.fs.stat(target)) } };
    try {
      other.exec("BEGIN IMMEDIATE");
      const blocked = Array.from({ length: 100 }, (_, i) => invokeTool(plugin, "add_bug", { title: `waiting ${i}` }, ctx));
      let slowest = 0;
      // Each round: a read, and a 20 ms timer (what the server's own I/O and timers wait behind).
      for (const until = performance.now() + 1_500; performance.now() < until; ) {
        const start = performance.now();
        assert.equal((await ok(plugin, "list_bugs", { limit: 1 })).count, 1);
        await pause(20);
        slowest = Math.max(slowest, performance.now() - start - 20);
      }
      other.exec("ROLLBACK");
      const results = await Promise.all(blocked);
      assert.deepEqual(results.filter((result) => result.isError).map((result) => result.text), [], "every waiting call went through once the lock was freed");
      assert.ok(slowest < 500, `a read and a 20 ms timer were ${Math.round(slowest)} ms late behind the waiting calls`);
    } finally {
      other.close();
    }
    assert.equal((await ok(plugin, "init_bugtracker")).bug_count, 101);
  });

  // A wait that ignored the signal would last the whole busy timeout, far past the test's own.
  void it("a cancelled call stops waiting at once", { timeout: 20_000 }, async () => {
    const plugin = newPlugin({ busyTimeoutMs: 600_000 });
    await ok(plugin, "add_bug", { title: "first" });
    const other = new Database(tc.databasePath("bugtracker"));
    try {
      other.exec("BEGIN IMMEDIATE");
      const abort = new AbortController();
      const blocked = invokeTool(plugin, "add_bug", { title: "given up" }, { ...tc.context({ projectPath: project }), signal: abort.signal });
      await new Promise((resolve) => setTimeout(resolve, 100));
      abort.abort(new Error("cancelled by the client"));
      const result = await blocked;
      assert.equal(result.code, "CANCELLED", result.text);
      assert.match(result.text ?? "", /cancelled while it waited/);
      assert.ok(!tc.logs.some((entry) => entry.data?.code === "DB_BUSY"), "no warning of a lock held past the timeout");
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    assert.equal((await ok(plugin, "list_bugs")).count, 1, "the cancelled call wrote nothing");
  });
});

void describe("two writers on one database", () => {
  void it("lose nothing when two connections interleave writes", async () => {
    const second = createTestContext({ stateDir: tc.stateDir, allowedRoots: [tc.root] });
    try {
      const a = newPlugin();
      const b = newPlugin();
      await ok(a, "add_bug", { title: "shared" });
      const run = async (plugin: Plugin, context: TestContext, name: string) => {
        for (let i = 0; i < 40; i++) {
          await ok(plugin, "add_bug", { title: `${name} ${i}` }, context);
          await ok(plugin, "update_bug", { bug_id: "BUG-1", note: `${name} note ${i}` }, context);
        }
      };
      // The two loops interleave at every await; each call is one transaction on its own connection.
      await Promise.all([run(a, tc, "a"), run(b, second, "b")]);
      await checkOutcome(a, 40, ["a", "b"]);
    } finally {
      second.cleanup();
    }
  });

  void it("lose nothing when two threads write at the same time", async () => {
    // 2 x 50 updates: the shared bug's whole history fits in what get_bug shows (the newest 100 revisions).
    const count = 50;
    await ok(newPlugin(), "add_bug", { title: "shared" });
    const ts = import.meta.url.endsWith(".ts");
    const url = (relative: string) => new URL(relative + (ts ? ".ts" : ".js"), import.meta.url).href;
    const workerData = {
      tsx: ts ? import.meta.resolve("tsx/esm/api") : undefined,
      plugin: url("../../src/plugins/builtin/bugtracker/index"),
      helper: url("../helpers/plugin-context"),
      stateDir: tc.stateDir,
      root: tc.root,
      project,
      count,
    };
    const results = await Promise.all(
      ["w1", "w2"].map(
        (name) =>
          new Promise<{ failures?: string[]; error?: string }>((resolve, reject) => {
            const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ...workerData, name } });
            worker.once("message", (message: { failures?: string[]; error?: string }) => resolve(message));
            worker.once("error", reject);
          }),
      ),
    );
    for (const result of results) {
      assert.equal(result.error, undefined);
      assert.deepEqual(result.failures, []);
    }
    await checkOutcome(newPlugin(), count, ["w1", "w2"]);
  });
});

/** Every add got its own number and every note is in BUG-1's history, once, with contiguous revisions. */
async function checkOutcome(plugin: Plugin, perWriter: number, writers: string[]): Promise<void> {
  const total = 1 + perWriter * writers.length;
  const init = await ok(plugin, "init_bugtracker");
  assert.equal(init.bug_count, total);
  const numbers: number[] = [];
  let cursor: string | undefined;
  do {
    const page = await ok(plugin, "list_bugs", { sort: "created_asc", limit: 200, ...(cursor ? { cursor } : {}) });
    numbers.push(...(page.bugs as Bug[]).map((bug) => Number(bug.bug_id.slice(4))));
    cursor = page.next_cursor as string | undefined;
  } while (cursor !== undefined);
  assert.deepEqual(numbers, Array.from({ length: total }, (_, i) => i + 1));
  const shared = (await ok(plugin, "get_bug", { bug_id: "BUG-1" })).bug as Bug;
  assert.ok(perWriter * writers.length <= HISTORY_REVISIONS_SHOWN, "the whole history is shown");
  assert.equal(shared.revision, perWriter * writers.length);
  assert.deepEqual(
    shared.history?.map((entry) => entry.revision),
    Array.from({ length: perWriter * writers.length }, (_, i) => i + 1),
  );
  const notes = new Set(shared.history?.map((entry) => entry.note));
  for (const writer of writers) for (let i = 0; i < perWriter; i++) assert.ok(notes.has(`${writer} note ${i}`), `${writer} note ${i}`);
}

// A worker thread acting as a second server process: its own plugin, connection and context.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  const { createBugtrackerPlugin } = await import(workerData.plugin);
  const { createTestContext, invokeTool } = await import(workerData.helper);
  const tc = createTestContext({ stateDir: workerData.stateDir, allowedRoots: [workerData.root] });
  const plugin = createBugtrackerPlugin();
  const failures = [];
  try {
    for (let i = 0; i < workerData.count; i++) {
      const added = await invokeTool(plugin, "add_bug", { title: workerData.name + " " + i }, tc.context({ projectPath: workerData.project }));
      if (added.isError) failures.push(added.text);
      const noted = await invokeTool(plugin, "update_bug", { bug_id: "BUG-1", note: workerData.name + " note " + i }, tc.context({ projectPath: workerData.project }));
      if (noted.isError) failures.push(noted.text);
    }
  } finally {
    plugin.close();
    tc.cleanup();
  }
  return failures;
})().then(
  (failures) => parentPort.postMessage({ failures }),
  (error) => parentPort.postMessage({ error: String((error && error.stack) || error) }),
);
`;
