/**
 * The bug tracker's database under trouble, through the built CLI: another process
 * holding the write lock (the call waits for busy_timeout, then fails with a retry
 * hint, and nothing is half-written), and a damaged database file (reported, never
 * touched), and a database file removed or replaced while the server runs (the server
 * follows the path, so nothing it confirms is written into a file nobody sees).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { ServerProcess, resultText, type Message } from "../helpers/server-process.js";
import { expectStructured as ok, expectToolError as fails } from "../helpers/e2e.js";

function policyFor(root: string): string {
  return ['version: "1.0"', "filesystem:", `  allowed_paths: [${JSON.stringify(`${root}/**`)}]`, "tools:", "  rate_limits:", "    default: 100000", ""].join("\n");
}

/** A temp dir with an allowed project folder in it. */
function makeWorld(): { tmp: string; root: string; project: string } {
  const tmp = realpathSync(mkdtempSync(join(tmpdir(), "msl-")));
  const root = join(tmp, "root");
  const project = join(root, "app");
  mkdirSync(project, { recursive: true });
  return { tmp, root, project };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


/** One call of every bug tool on `project`, each of which would write or read the database. */
function everyBugTool(project: string): Array<[string, Message]> {
  return [
    ["init_bugtracker", { project_path: project }],
    ["add_bug", { project_path: project, title: "Must not be written" }],
    ["get_bug", { project_path: project, bug_id: "BUG-1" }],
    ["update_bug", { project_path: project, bug_id: "BUG-1", note: "x" }],
    ["close_bug", { project_path: project, bug_id: "BUG-1" }],
    ["list_bugs", { project_path: project }],
    ["search_bugs_global", { query: "anything" }],
  ];
}

void describe("a bug database locked by another process", () => {
  void test("reads go on; a write waits for the lock, fails with a retry hint after busy_timeout, and succeeds once the lock is gone", async () => {
    const world = makeWorld();
    const server = await ServerProcess.initialized({ policy: policyFor(world.root) });
    let holder: Database.Database | undefined;
    try {
      ok(await server.callTool("add_bug", { project_path: world.project, title: "Before the lock" }));

      // Another process takes the write lock and keeps it.
      holder = new Database(join(server.stateDir, "data", "bugtracker.db"), { fileMustExist: true });
      holder.exec("BEGIN IMMEDIATE");

      // WAL: readers are not blocked by a writer.
      const listed = ok(await server.callTool("list_bugs", { project_path: world.project }));
      assert.equal(listed.count, 1);

      // The write waits for busy_timeout (5 s), then gives up with a message that says what to do.
      const started = Date.now();
      const busy = await server.request("tools/call", { name: "add_bug", arguments: { project_path: world.project, title: "During the lock" } }, server.newId(), 20_000);
      const waited = Date.now() - started;
      fails(busy, /the bug database is busy/, /locked for more than 5000 ms/, /retry the call/);
      assert.ok(waited >= 4_500, `the call waited for the lock (${waited} ms) instead of failing at once`);

      // A write that arrives while the lock is held and is released during its wait goes through.
      const pending = server.request("tools/call", { name: "update_bug", arguments: { project_path: world.project, bug_id: "BUG-1", note: "written after the wait" } }, server.newId(), 20_000);
      await sleep(1_000);
      holder.exec("ROLLBACK");
      const waitedOut = ok(await pending);
      assert.equal((waitedOut.bug as Message).revision, 1);

      // The failed add left nothing behind: the next bug is BUG-2, and there are two bugs.
      const next = ok(await server.callTool("add_bug", { project_path: world.project, title: "After the lock" }));
      assert.equal((next.bug as Message).bug_id, "BUG-2");
      const all = ok(await server.callTool("list_bugs", { project_path: world.project }));
      assert.deepEqual(
        (all.bugs as Message[]).map((bug) => bug.title),
        ["After the lock", "Before the lock"],
      );
      const history = (ok(await server.callTool("get_bug", { project_path: world.project, bug_id: "BUG-1" })).bug as Message).history as Message[];
      assert.deepEqual(
        history.map((entry) => entry.note),
        ["written after the wait"],
      );
    } finally {
      if (holder?.inTransaction) holder.exec("ROLLBACK");
      holder?.close();
      await server.close();
      rmSync(world.tmp, { recursive: true, force: true });
    }
  });
});

void describe("a damaged bug database", () => {
  void test("every bug tool reports it as damaged, the server keeps serving, and the file is left byte for byte as it was", async () => {
    const world = makeWorld();
    const stateDir = join(world.tmp, "state");
    const dataDir = join(stateDir, "data");
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const dbFile = join(dataDir, "bugtracker.db");
    // Not an SQLite file: text, then a deterministic byte pattern.
    const garbage = Buffer.alloc(16_384);
    garbage.write("this is not a database, it is someone's only copy of something\n");
    for (let i = 64; i < garbage.length; i++) garbage[i] = (i * 131 + 7) & 0xff;
    writeFileSync(dbFile, garbage, { mode: 0o600 });
    const digest = () => createHash("sha256").update(readFileSync(dbFile)).digest("hex");
    const before = digest();

    const server = await ServerProcess.initialized({ policy: policyFor(world.root), stateDir });
    try {
      const calls = everyBugTool(world.project);
      for (const [tool, args] of calls) {
        fails(
          await server.callTool(tool, args),
          /the bug database \(bugtracker\.db in the server's state directory\) is damaged or not an SQLite database/,
          /SQLITE_NOTADB/,
          /left untouched/,
          /restore it from a backup/,
        );
        assert.equal(digest(), before, `the file is unchanged after ${tool}`);
      }
      // Only the bug tracker is affected: the server still answers other tools.
      const other = await server.callTool("list_categories", {});
      assert.notEqual(other.result?.isError, true, resultText(other));
    } finally {
      await server.close();
    }
    try {
      assert.equal(digest(), before, "the file is unchanged after shutdown");
      assert.deepEqual(readdirSync(dataDir), ["bugtracker.db"], "no journal, WAL or replacement file was created next to it");
    } finally {
      rmSync(world.tmp, { recursive: true, force: true });
    }
  });
});

void describe("a bug database whose schema was changed outside the server", () => {
  void test("every bug tool names what is missing, the server keeps serving, a restart says the same, and the rows are left as they were", async () => {
    const world = makeWorld();
    const stateDir = join(world.tmp, "state");
    const dbFile = join(stateDir, "data", "bugtracker.db");
    const calls = everyBugTool(world.project);
    const refusesAll = async (server: ServerProcess) => {
      for (const [tool, args] of calls) {
        fails(
          await server.callTool(tool, args),
          /the bug database \(bugtracker\.db in the server's state directory\) was changed outside the server/,
          /table `history` is missing/,
          /left untouched/,
          /restore it from a backup, or move it aside to start an empty one/,
        );
      }
    };
    const rows = () => {
      const db = new Database(dbFile, { readonly: true, fileMustExist: true });
      try {
        return db.prepare("SELECT number, title, revision FROM bugs ORDER BY id").all();
      } finally {
        db.close();
      }
    };
    let server = await ServerProcess.initialized({ policy: policyFor(world.root), stateDir });
    try {
      ok(await server.callTool("add_bug", { project_path: world.project, title: "Kept as it was" }));
      // Another process drops a table while the server has the database open.
      const other = new Database(dbFile, { fileMustExist: true });
      try {
        other.exec("DROP TABLE history");
      } finally {
        other.close();
      }
      await refusesAll(server);
      // Only the bug tracker is affected: the server still answers other tools.
      const categories = await server.callTool("list_categories", {});
      assert.notEqual(categories.result?.isError, true, resultText(categories));
      assert.match(server.stderr, /SCHEMA_DAMAGED/, "the operator's log names the code");

      // The next server finds the same damage when it opens the file, and says the same.
      await server.close();
      server = await ServerProcess.initialized({ policy: policyFor(world.root), stateDir });
      await refusesAll(server);
      assert.deepEqual(rows(), [{ number: 1, title: "Kept as it was", revision: 0 }], "nothing was written or repaired");

      // Moved aside, it is replaced by a new database at the next call.
      for (const name of readdirSync(join(stateDir, "data"))) renameSync(join(stateDir, "data", name), join(world.tmp, name));
      const added = ok(await server.callTool("add_bug", { project_path: world.project, title: "A new start" }));
      assert.equal((added.bug as Message).bug_id, "BUG-1");
    } finally {
      await server.close();
      rmSync(world.tmp, { recursive: true, force: true });
    }
  });
});

void describe("a bug database removed or replaced while the server runs", () => {
  const titles = (listed: Message) => (listed.bugs as Message[]).map((bug) => bug.title as string);

  /** Adds "In the backup", backs the database up, adds "Not in the backup", then moves the backup over the file. */
  async function restoreOlderBackup(server: ServerProcess, world: { tmp: string; project: string }, dbFile: string): Promise<void> {
    const backup = join(world.tmp, "backup.db");
    ok(await server.callTool("add_bug", { project_path: world.project, title: "In the backup" }));
    const copy = new Database(dbFile, { fileMustExist: true });
    try {
      copy.exec(`VACUUM INTO ${JSON.stringify(backup).replaceAll('"', "'")}`);
    } finally {
      copy.close();
    }
    ok(await server.callTool("add_bug", { project_path: world.project, title: "Not in the backup" }));
    renameSync(backup, dbFile);
  }

  interface Restartable {
    world: { tmp: string; root: string; project: string };
    stateDir: string;
    dbFile: string;
    server: ServerProcess;
    /** Stops the server and starts a new one on the same state directory. */
    restart(): Promise<ServerProcess>;
  }

  /** A server on a fresh project and state directory; whichever server runs at the end is closed, and the files removed. */
  async function withRestartableServer(body: (it: Restartable) => Promise<void>): Promise<void> {
    const world = makeWorld();
    const stateDir = join(world.tmp, "state");
    const start = () => ServerProcess.initialized({ policy: policyFor(world.root), stateDir });
    const it: Restartable = {
      world,
      stateDir,
      dbFile: join(stateDir, "data", "bugtracker.db"),
      server: await start(),
      async restart() {
        await it.server.close();
        it.server = await start();
        return it.server;
      },
    };
    try {
      await body(it);
    } finally {
      await it.server.close();
      rmSync(world.tmp, { recursive: true, force: true });
    }
  }

  void test("after the file is deleted, new bugs go to a new file at the path and survive a restart", () =>
    withRestartableServer(async (it) => {
      const { world } = it;
      const dataDir = join(it.stateDir, "data");
      ok(await it.server.callTool("add_bug", { project_path: world.project, title: "Before the deletion" }));
      for (const name of readdirSync(dataDir)) rmSync(join(dataDir, name));

      const added = ok(await it.server.callTool("add_bug", { project_path: world.project, title: "After the deletion" }));
      assert.equal((added.bug as Message).bug_id, "BUG-1", "a fresh database numbers from 1 again");
      assert.ok(readdirSync(dataDir).includes("bugtracker.db"), "the database file is back at its path");

      // What the server confirmed is what the next server finds.
      const next = await it.restart();
      assert.deepEqual(titles(ok(await next.callTool("list_bugs", { project_path: world.project }))), ["After the deletion"]);
    }));

  void test("after a backup is moved over the file, calls read and write the restored database", () =>
    withRestartableServer(async (it) => {
      const { world } = it;
      await restoreOlderBackup(it.server, world, it.dbFile);

      assert.deepEqual(titles(ok(await it.server.callTool("list_bugs", { project_path: world.project }))), ["In the backup"]);
      const added = ok(await it.server.callTool("add_bug", { project_path: world.project, title: "After the restore" }));
      assert.equal((added.bug as Message).bug_id, "BUG-2");

      const next = await it.restart();
      assert.deepEqual(titles(ok(await next.callTool("list_bugs", { project_path: world.project }))), ["After the restore", "In the backup"]);
    }));

  void test("a backup moved over the file just before shutdown is what the next start finds, without the old log's pages", () =>
    withRestartableServer(async (it) => {
      await restoreOlderBackup(it.server, it.world, it.dbFile);

      const next = await it.restart();
      assert.deepEqual(titles(ok(await next.callTool("list_bugs", { project_path: it.world.project }))), ["In the backup"]);
      const check = new Database(it.dbFile, { readonly: true, fileMustExist: true });
      try {
        assert.deepEqual(check.pragma("integrity_check"), [{ integrity_check: "ok" }]);
      } finally {
        check.close();
      }
    }));
});
