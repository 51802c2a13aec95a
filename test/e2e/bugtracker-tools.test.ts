/**
 * The bug tracker end to end, through the built CLI over stdio: every tool, every
 * tool-level error, the path guard on project_path, and the session project
 * (MCP_PROJECT_PATH). Each success is checked in structuredContent and in its text copy.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { ServerProcess, type Message } from "../helpers/server-process.js";
import { auditEntries } from "../helpers/e2e.js";
import { expectStructured as ok, expectToolError as fails } from "../helpers/e2e.js";

// --- helpers ------------------------------------------------------------------------

/** A real temp dir (realpath: the guard compares canonical paths) with `root/` inside. */
function makeWorld(): { tmp: string; root: string; dir(...parts: string[]): string } {
  const tmp = realpathSync(mkdtempSync(join(tmpdir(), "msl-")));
  const root = join(tmp, "root");
  mkdirSync(root);
  return {
    tmp,
    root,
    dir(...parts: string[]): string {
      const full = join(root, ...parts);
      mkdirSync(full, { recursive: true });
      return full;
    },
  };
}

/** A policy that allows `<root>/**` only, denies any `secret` folder, and does not rate-limit the tests. */
function policyFor(root: string): string {
  return [
    'version: "1.0"',
    "filesystem:",
    `  allowed_paths: [${JSON.stringify(`${root}/**`)}]`,
    '  denied_paths: ["**/secret/**"]',
    "tools:",
    "  rate_limits:",
    "    default: 100000",
    "",
  ].join("\n");
}

/** A successful result: no isError, and the text copy is the structured content. */

/** A tool-level failure whose text matches every pattern; returns the text. */

function ids(bugs: Message[]): string[] {
  return bugs.map((bug) => bug.bug_id as string);
}

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

// --- every tool, every error ----------------------------------------------------------

void describe("bug tracker tools through the real server", () => {
  let world: ReturnType<typeof makeWorld>;
  let server: ServerProcess;

  before(async () => {
    world = makeWorld();
    server = await ServerProcess.initialized({ policy: policyFor(world.root) });
  });

  after(async () => {
    try {
      await server.close();
    } finally {
      rmSync(world.tmp, { recursive: true, force: true });
    }
  });

  void test("init_bugtracker registers a project once and says so", async () => {
    const project = world.dir("init-app");
    const first = ok(await server.callTool("init_bugtracker", { project_path: project }));
    assert.equal(first.status, "ready");
    assert.equal(first.created, true);
    assert.equal(first.project_path, project);
    assert.match(first.project_id as string, /^init-app-[0-9a-f]{8}$/);
    assert.equal(first.bug_count, 0);
    assert.equal(first.next_bug_id, "BUG-1");

    const again = ok(await server.callTool("init_bugtracker", { project_path: project }));
    assert.equal(again.created, false, "the second call finds the project");
    assert.equal(again.project_id, first.project_id);
  });

  void test("add_bug creates an open bug; get_bug finds it by BUG-n (any case) and by its ULID", async () => {
    const project = world.dir("add-app");
    const added = ok(
      await server.callTool("add_bug", {
        project_path: project,
        title: "  Crash when saving a file ",
        description: "Steps:\n1. open\n2. save",
        priority: "high",
        tags: ["UI", "crash", "ui"],
      }),
    );
    assert.equal(added.message, "Created bug: BUG-1");
    const bug = added.bug as Message;
    assert.equal(bug.bug_id, "BUG-1");
    assert.match(bug.uid as string, ULID);
    assert.equal(bug.title, "Crash when saving a file");
    assert.equal(bug.description, "Steps:\n1. open\n2. save");
    assert.equal(bug.status, "open");
    assert.equal(bug.priority, "high");
    assert.deepEqual(bug.tags, ["crash", "ui"], "tags are lower-cased, de-duplicated and sorted");
    assert.deepEqual(bug.related_bugs, []);
    assert.equal(bug.revision, 0);

    // add_bug registers the project on the way: the next init finds it with one bug.
    const init = ok(await server.callTool("init_bugtracker", { project_path: project }));
    assert.equal(init.created, false);
    assert.equal(init.bug_count, 1);
    assert.equal(init.next_bug_id, "BUG-2");
    assert.equal(bug.project_id, init.project_id);

    const second = ok(await server.callTool("add_bug", { project_path: project, title: "Second" }));
    assert.equal((second.bug as Message).bug_id, "BUG-2");
    assert.equal((second.bug as Message).priority, "medium", "the default priority");

    for (const ref of ["BUG-1", "bug-1", bug.uid as string, (bug.uid as string).toLowerCase()]) {
      const got = ok(await server.callTool("get_bug", { project_path: project, bug_id: ref }));
      const { history, ...rest } = got.bug as Message;
      assert.deepEqual(rest, bug, `get_bug ${ref}`);
      assert.deepEqual(history, [], "a new bug has an empty history");
    }
    const bare = ok(await server.callTool("get_bug", { project_path: project, bug_id: "BUG-2", include_history: false }));
    assert.equal((bare.bug as Message).history, undefined);
  });

  void test("update_bug changes status, tags and links (with the reciprocal link) and adds a note", async () => {
    const project = world.dir("update-app");
    const a = ok(await server.callTool("add_bug", { project_path: project, title: "Login is slow", tags: ["perf"] })).bug as Message;
    ok(await server.callTool("add_bug", { project_path: project, title: "Session store times out" }));

    const updated = ok(
      await server.callTool("update_bug", {
        project_path: project,
        bug_id: a.bug_id,
        status: "in_progress",
        tags: ["backend", "Auth"],
        related_bugs: [{ bug_id: "BUG-2", relationship: "blocked_by" }],
        note: "Profiling shows the session store",
      }),
    );
    assert.equal(updated.message, "Updated bug: BUG-1");
    assert.equal(updated.changed, true);
    assert.deepEqual(updated.changes, {
      status: { from: "open", to: "in_progress" },
      tags: { added: ["auth", "backend"], removed: ["perf"] },
      related_bugs: [{ bug_id: "BUG-2", to: "blocked_by" }],
    });
    const bug = updated.bug as Message;
    assert.equal(bug.status, "in_progress");
    assert.deepEqual(bug.tags, ["auth", "backend"]);
    assert.deepEqual(bug.related_bugs, [{ bug_id: "BUG-2", relationship: "blocked_by" }]);
    assert.equal(bug.revision, 1);

    // The other bug carries the reciprocal link, recorded in its own history.
    const other = ok(await server.callTool("get_bug", { project_path: project, bug_id: "BUG-2" })).bug as Message;
    assert.deepEqual(other.related_bugs, [{ bug_id: "BUG-1", relationship: "blocks" }]);
    assert.equal(other.revision, 1);
    assert.deepEqual((other.history as Message[]).map((entry) => entry.changes), [{ related_bugs: [{ bug_id: "BUG-1", to: "blocks" }] }]);

    const withHistory = ok(await server.callTool("get_bug", { project_path: project, bug_id: "BUG-1" })).bug as Message;
    const history = withHistory.history as Message[];
    assert.equal(history.length, 1);
    assert.equal(history[0]!.revision, 1);
    assert.equal(history[0]!.note, "Profiling shows the session store");
    assert.deepEqual(history[0]!.changes, updated.changes);
    assert.match(history[0]!.call_id as string, ULID, "the history names the call, as the audit log does");

    // Asking for what is already there changes nothing and records nothing.
    const same = ok(await server.callTool("update_bug", { project_path: project, bug_id: "BUG-1", status: "in_progress", tags: ["backend", "auth"] }));
    assert.equal(same.changed, false);
    assert.match(same.message as string, /^No changes: BUG-1/);
    assert.equal((same.bug as Message).revision, 1);

    // Removing the link removes both sides.
    const unlinked = ok(await server.callTool("update_bug", { project_path: project, bug_id: "BUG-1", related_bugs: [] }));
    assert.deepEqual((unlinked.changes as Message).related_bugs, [{ bug_id: "BUG-2", from: "blocked_by" }]);
    const otherAfter = ok(await server.callTool("get_bug", { project_path: project, bug_id: "BUG-2", include_history: false })).bug as Message;
    assert.deepEqual(otherAfter.related_bugs, []);
  });

  void test("update_bug corrects a title and a description: recorded in the history and the audit log, searchable, checked as add_bug checks them", async () => {
    const project = world.dir("correct-app");
    ok(await server.callTool("add_bug", { project_path: project, title: "Logn fails", description: "happens sometmes" }));
    const args = { project_path: project, bug_id: "BUG-1", title: "Login fails with a 500", description: "Every login since 2.3.\nSee the gateway log." };
    const updated = ok(await server.callTool("update_bug", args));
    assert.deepEqual(updated.changes, {
      title: { from: "Logn fails", to: "Login fails with a 500" },
      description: { from: "happens sometmes", to: "Every login since 2.3.\nSee the gateway log." },
    });
    const bug = ok(await server.callTool("get_bug", { project_path: project, bug_id: "BUG-1" })).bug as Message;
    assert.deepEqual([bug.title, bug.description, bug.revision], [args.title, args.description, 1]);
    assert.deepEqual((bug.history as Message[]).map((entry) => entry.changes), [updated.changes]);
    const intent = auditEntries(server.stateDir).find((entry) => entry.event === "tool_call" && entry.callId === (bug.history as Message[])[0]!.call_id);
    assert.deepEqual(intent?.arguments, args, "the audit log records the corrected text as sent");
    assert.equal(ok(await server.callTool("list_bugs", { project_path: project, query: "gateway" })).count, 1);
    assert.equal(ok(await server.callTool("list_bugs", { project_path: project, query: "sometmes" })).count, 0);

    fails(await server.callTool("update_bug", { project_path: project, bug_id: "BUG-1", title: "two\nlines" }), /arguments\.title/);
    fails(await server.callTool("update_bug", { project_path: project, bug_id: "BUG-1", description: "x".repeat(10_001) }), /arguments\.description/);
    const after = ok(await server.callTool("get_bug", { project_path: project, bug_id: "BUG-1", include_history: false })).bug as Message;
    assert.equal(after.revision, 1, "a refused correction changes nothing");
  });

  void test("close_bug closes and records the resolution; closing again is an error", async () => {
    const project = world.dir("close-app");
    ok(await server.callTool("add_bug", { project_path: project, title: "Typo in the footer" }));
    const closed = ok(await server.callTool("close_bug", { project_path: project, bug_id: "BUG-1", resolution: "Fixed the spelling" }));
    assert.equal(closed.message, "Closed bug: BUG-1");
    assert.equal((closed.bug as Message).status, "closed");
    assert.equal((closed.bug as Message).revision, 1);

    const got = ok(await server.callTool("get_bug", { project_path: project, bug_id: "BUG-1" })).bug as Message;
    const last = (got.history as Message[]).at(-1)!;
    assert.deepEqual(last.changes, { status: { from: "open", to: "closed" } });
    assert.equal(last.note, "Fixed the spelling");

    fails(await server.callTool("close_bug", { project_path: project, bug_id: "BUG-1" }), /BUG-1 is already closed/);
    const unchanged = ok(await server.callTool("get_bug", { project_path: project, bug_id: "BUG-1", include_history: false })).bug as Message;
    assert.equal(unchanged.revision, 1, "the refused close recorded nothing");

    // The way out of closed is reopening.
    const reopened = ok(await server.callTool("update_bug", { project_path: project, bug_id: "BUG-1", status: "open" }));
    assert.equal((reopened.bug as Message).status, "open");
  });

  void test("list_bugs filters by status, priority and tags, sorts, searches and pages with a cursor", async () => {
    const project = world.dir("list-app");
    const seed: Array<[string, string, string[]]> = [
      ["Login fails with an expired token", "low", ["auth"]],
      ["Crash on save", "critical", ["io", "crash"]],
      ["The bug list is slow", "medium", ["perf"]],
      ["Crashes while loading a project", "high", ["io"]],
      ["Footer typo", "low", []],
    ];
    for (const [title, priority, tags] of seed) ok(await server.callTool("add_bug", { project_path: project, title, priority, tags }));
    ok(await server.callTool("update_bug", { project_path: project, bug_id: "BUG-3", status: "in_progress" }));

    const list = async (args: Message): Promise<Message> => ok(await server.callTool("list_bugs", { project_path: project, ...args }));

    const all = await list({});
    assert.equal(all.project_path, project);
    assert.match(all.project_id as string, /^list-app-[0-9a-f]{8}$/);
    assert.deepEqual(ids(all.bugs as Message[]), ["BUG-5", "BUG-4", "BUG-3", "BUG-2", "BUG-1"], "newest first by default");
    assert.equal(all.count, 5);
    assert.equal(all.has_more, false);
    assert.equal(all.next_cursor, undefined);
    assert.equal((all.bugs as Message[])[0]!.history, undefined, "no history unless asked");

    assert.deepEqual(ids((await list({ sort: "created_asc" })).bugs as Message[]), ["BUG-1", "BUG-2", "BUG-3", "BUG-4", "BUG-5"]);
    assert.deepEqual(ids((await list({ sort: "priority" })).bugs as Message[]), ["BUG-2", "BUG-4", "BUG-3", "BUG-5", "BUG-1"]);
    const byUpdate = (await list({ sort: "updated_desc" })).bugs as Message[];
    assert.equal(byUpdate.length, 5);
    for (let i = 1; i < byUpdate.length; i++) assert.ok(byUpdate[i - 1]!.updated_at >= byUpdate[i]!.updated_at, "updated_desc order");

    assert.deepEqual(ids((await list({ status: "in_progress" })).bugs as Message[]), ["BUG-3"]);
    assert.deepEqual(ids((await list({ status: "open", priority: "low" })).bugs as Message[]), ["BUG-5", "BUG-1"]);
    assert.deepEqual(ids((await list({ tags: ["io"] })).bugs as Message[]), ["BUG-4", "BUG-2"]);
    assert.deepEqual(ids((await list({ tags: ["IO", "crash"] })).bugs as Message[]), ["BUG-2"], "all of the tags, any case");
    assert.deepEqual(ids((await list({ status: "closed" })).bugs as Message[]), []);

    // Full-text with stemming: "crash" finds "Crash" and "Crashes".
    assert.deepEqual(ids((await list({ query: "crash" })).bugs as Message[]).sort(), ["BUG-2", "BUG-4"]);
    assert.deepEqual(ids((await list({ query: "token", include_history: true })).bugs as Message[]), ["BUG-1"]);

    // Pages of two: 5, 4 | 3, 2 | 1.
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await list(cursor === undefined ? { limit: 2 } : { limit: 2, cursor });
      pages++;
      seen.push(...ids(page.bugs as Message[]));
      assert.equal(page.has_more, page.next_cursor !== undefined);
      cursor = page.next_cursor as string | undefined;
    } while (cursor !== undefined && pages < 10);
    assert.equal(pages, 3);
    assert.deepEqual(seen, ["BUG-5", "BUG-4", "BUG-3", "BUG-2", "BUG-1"]);

    // A cursor belongs to its query: reusing it with other filters is refused.
    const first = await list({ limit: 2 });
    fails(await server.callTool("list_bugs", { project_path: project, limit: 2, status: "open", cursor: first.next_cursor }), /invalid cursor/);
  });

  void test("search_bugs_global searches every allowed project and names each bug's project", async () => {
    const one = world.dir("global-one");
    const two = world.dir("global-two");
    ok(await server.callTool("add_bug", { project_path: one, title: "Zanzibar importer drops rows" }));
    ok(await server.callTool("add_bug", { project_path: one, title: "Unrelated" }));
    ok(await server.callTool("add_bug", { project_path: two, title: "Export", description: "the zanzibar export is empty" }));

    const found = ok(await server.callTool("search_bugs_global", { query: "zanzibar" }));
    assert.equal(found.count, 2);
    assert.equal(found.excluded_projects, 0);
    assert.equal(found.has_more, false);
    const bugs = found.bugs as Message[];
    assert.deepEqual(bugs.map((bug) => bug.project_path).sort(), [one, two]);
    for (const bug of bugs) assert.match(bug.project_id as string, /^global-(one|two)-[0-9a-f]{8}$/);

    const paged = ok(await server.callTool("search_bugs_global", { query: "zanzibar", limit: 1 }));
    assert.equal(paged.count, 1);
    assert.equal(paged.has_more, true);
    const rest = ok(await server.callTool("search_bugs_global", { query: "zanzibar", limit: 1, cursor: paged.next_cursor }));
    assert.equal(rest.has_more, false);
    assert.notEqual((rest.bugs as Message[])[0]!.uid, (paged.bugs as Message[])[0]!.uid);
  });

  void test("an unknown project is an error for the tools that name a bug, an empty list for list_bugs, and is not registered by them", async () => {
    const fresh = world.dir("never-initialized");
    const calls: Array<[string, Message]> = [
      ["get_bug", { bug_id: "BUG-1" }],
      ["update_bug", { bug_id: "BUG-1", note: "hello" }],
      ["close_bug", { bug_id: "BUG-1" }],
    ];
    for (const [tool, args] of calls) {
      fails(await server.callTool(tool, { project_path: fresh, ...args }), /has no bugs tracked yet/, /call init_bugtracker or add_bug/);
    }
    const listed = ok(await server.callTool("list_bugs", { project_path: fresh }));
    assert.deepEqual([listed.bugs, listed.count, listed.has_more], [[], 0, false]);
    assert.match(listed.note as string, /no bug has been reported/);
    const init = ok(await server.callTool("init_bugtracker", { project_path: fresh }));
    assert.equal(init.created, true, "the failed calls registered nothing");

    // A folder that does not exist is refused as such.
    fails(await server.callTool("init_bugtracker", { project_path: join(world.root, "no-such-folder") }), /does not exist/);
  });

  void test("an unknown bug is an error for get, update, close and as a link target", async () => {
    const project = world.dir("unknown-bug-app");
    ok(await server.callTool("add_bug", { project_path: project, title: "The only bug" }));
    fails(await server.callTool("get_bug", { project_path: project, bug_id: "BUG-999" }), /bug BUG-999 not found/);
    fails(await server.callTool("get_bug", { project_path: project, bug_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV" }), /bug 01ARZ3NDEKTSV4RRFFQ69G5FAV not found/);
    fails(await server.callTool("update_bug", { project_path: project, bug_id: "BUG-2", status: "closed" }), /bug BUG-2 not found/);
    fails(await server.callTool("close_bug", { project_path: project, bug_id: "BUG-2" }), /bug BUG-2 not found/);
    fails(
      await server.callTool("update_bug", { project_path: project, bug_id: "BUG-1", related_bugs: [{ bug_id: "BUG-7", relationship: "related_to" }] }),
      /related bug BUG-7 not found/,
    );
    const bug = ok(await server.callTool("get_bug", { project_path: project, bug_id: "BUG-1" })).bug as Message;
    assert.equal(bug.revision, 0, "the refused updates changed nothing");
    assert.deepEqual(bug.related_bugs, []);
  });

  void test("an invalid status transition is refused with the allowed moves, and changes nothing", async () => {
    const project = world.dir("transition-app");
    ok(await server.callTool("add_bug", { project_path: project, title: "Flaky test" }));
    ok(await server.callTool("update_bug", { project_path: project, bug_id: "BUG-1", status: "resolved" }));
    fails(
      await server.callTool("update_bug", { project_path: project, bug_id: "BUG-1", status: "in_progress", note: "still flaky" }),
      /cannot move BUG-1 from resolved to in_progress/,
      /allowed statuses are: closed, open/,
    );
    ok(await server.callTool("close_bug", { project_path: project, bug_id: "BUG-1" }));
    fails(await server.callTool("update_bug", { project_path: project, bug_id: "BUG-1", status: "resolved" }), /from closed to resolved/, /reopen it first/);

    const bug = ok(await server.callTool("get_bug", { project_path: project, bug_id: "BUG-1" })).bug as Message;
    assert.equal(bug.status, "closed");
    assert.equal(bug.revision, 2, "only the resolve and the close were recorded");
    assert.equal(
      (bug.history as Message[]).some((entry) => entry.note === "still flaky"),
      false,
      "the note of the refused update was not kept",
    );
  });

  void test("an invalid enum value is refused by the schema, naming the field and the allowed values", async () => {
    const project = world.dir("enum-app");
    ok(await server.callTool("add_bug", { project_path: project, title: "Baseline" }));
    const cases: Array<[string, Message, RegExp]> = [
      ["add_bug", { title: "x", priority: "urgent" }, /arguments\.priority must be one of "low", "medium", "high", "critical" \(got "urgent"\)/],
      ["update_bug", { bug_id: "BUG-1", status: "done" }, /arguments\.status must be one of "open", "in_progress", "resolved", "closed"/],
      ["update_bug", { bug_id: "BUG-1", priority: "p1" }, /arguments\.priority must be one of/],
      ["update_bug", { bug_id: "BUG-1", related_bugs: [{ bug_id: "BUG-1", relationship: "parent_of" }] }, /arguments\.related_bugs\[0\]\.relationship must be one of/],
      ["list_bugs", { sort: "random" }, /arguments\.sort must be one of/],
      ["list_bugs", { status: "wontfix" }, /arguments\.status must be one of/],
    ];
    for (const [tool, args, pattern] of cases) fails(await server.callTool(tool, { project_path: project, ...args }), pattern);
    const listed = ok(await server.callTool("list_bugs", { project_path: project }));
    assert.equal(listed.count, 1, "no refused call created a bug");
    assert.equal((listed.bugs as Message[])[0]!.revision, 0, "no refused call changed one");
  });

  void test("a title, note or resolution of invisible characters only is refused, saying what counts as visible", async () => {
    const project = world.dir("invisible-app");
    ok(await server.callTool("add_bug", { project_path: project, title: "Baseline" }));
    // Zero-width space, soft hyphen, word joiner, a combining accent alone, an ideographic space, a right-to-left mark.
    const blank = "\u200b\u00ad\u2060\u0301\u3000\u200f";
    for (const [tool, args, key] of [
      ["add_bug", { title: blank }, "title"],
      ["update_bug", { bug_id: "BUG-1", title: blank }, "title"],
      ["update_bug", { bug_id: "BUG-1", note: blank }, "note"],
      ["close_bug", { bug_id: "BUG-1", resolution: blank }, "resolution"],
    ] as Array<[string, Message, string]>) {
      fails(await server.callTool(tool, { project_path: project, ...args }), new RegExp(`"${key}" has no visible character: spaces and characters that show nothing`));
    }
    const listed = ok(await server.callTool("list_bugs", { project_path: project }));
    assert.equal(listed.count, 1, "no refused call created a bug");
    assert.equal((listed.bugs as Message[])[0]!.revision, 0, "no refused call changed one");
  });

  void test("without project_path or a session project, the tools ask for one", async () => {
    fails(await server.callTool("add_bug", { title: "Nowhere" }), /no project/, /MCP_PROJECT_PATH/);
    fails(await server.callTool("list_bugs", {}), /no project/);
  });
});

// --- the path guard on project_path -----------------------------------------------------

void describe("the path guard on project_path", () => {
  let world: ReturnType<typeof makeWorld>;
  let server: ServerProcess;
  let outside: string;

  before(async () => {
    world = makeWorld();
    outside = join(world.tmp, "outside");
    mkdirSync(outside);
    server = await ServerProcess.initialized({ policy: policyFor(world.root) });
  });

  after(async () => {
    try {
      await server.close();
    } finally {
      rmSync(world.tmp, { recursive: true, force: true });
    }
  });

  void test("a symlink out of the root, '..', a denied folder and /etc are refused and never registered", async () => {
    const allowed = world.dir("allowed");
    const secret = world.dir("secret", "proj");
    symlinkSync(outside, join(world.root, "escape"));
    mkdirSync(join(outside, "sub"));
    // Written by hand: path.join would fold the '..' away before the server sees it.
    const dotdot = `${world.root}/../outside`;
    const refused: Array<[string, RegExp]> = [
      [join(world.root, "escape"), /resolves \(through a symbolic link or '\.\.'\) to a place outside the directories the filesystem policy allows/],
      [join(world.root, "escape", "sub"), /outside the directories the filesystem policy allows/],
      [dotdot, /outside the directories the filesystem policy allows/],
      [secret, /is denied by the filesystem policy \(rule \*\*\/secret\/\*\*\)/],
      ["/etc", /"\/etc" is outside the directories the filesystem policy allows/],
    ];

    // An allowed project first, so that the database exists and can be inspected.
    ok(await server.callTool("init_bugtracker", { project_path: allowed }));

    for (const [projectPath, reason] of refused) {
      for (const [tool, args] of [
        ["init_bugtracker", {}],
        ["add_bug", { title: "Should never be stored" }],
        ["list_bugs", {}],
      ] as Array<[string, Message]>) {
        const text = fails(await server.callTool(tool, { project_path: projectPath, ...args }), /Argument arguments\.project_path was refused/, reason);
        assert.equal(text.includes("Should never be stored"), false);
      }
    }

    // Every refusal is in the audit log as a denial, and none reached the tool.
    const denied = auditEntries(server.stateDir).filter((entry) => entry.event === "denied");
    assert.equal(denied.length, refused.length * 3);
    for (const entry of denied) assert.match(entry.reason as string, /^path_guard: /);

    // The database holds the allowed project only, and no bug.
    const db = new Database(join(server.stateDir, "data", "bugtracker.db"), { readonly: true, fileMustExist: true });
    try {
      const paths = (db.prepare("SELECT path FROM projects").all() as Array<{ path: string }>).map((row) => row.path);
      assert.deepEqual(paths, [allowed]);
      assert.deepEqual(db.prepare("SELECT COUNT(*) AS n FROM bugs").get(), { n: 0 });
    } finally {
      db.close();
    }
    const global = ok(await server.callTool("search_bugs_global", {}));
    assert.equal(global.count, 0);
  });
});

// --- the session project ------------------------------------------------------------------

void describe("MCP_PROJECT_PATH", () => {
  let world: ReturnType<typeof makeWorld>;
  let sessionProject: string;
  let server: ServerProcess;

  before(async () => {
    world = makeWorld();
    sessionProject = world.dir("session-app");
    server = await ServerProcess.initialized({ policy: policyFor(world.root), env: { MCP_PROJECT_PATH: sessionProject } });
  });

  after(async () => {
    try {
      await server.close();
    } finally {
      rmSync(world.tmp, { recursive: true, force: true });
    }
  });

  void test("every tool acts on the session's project when project_path is left out", async () => {
    const init = ok(await server.callTool("init_bugtracker", {}));
    assert.equal(init.project_path, sessionProject);
    assert.equal(init.created, true);

    const added = ok(await server.callTool("add_bug", { title: "Session bug", tags: ["session"] })).bug as Message;
    assert.equal(added.bug_id, "BUG-1");
    assert.equal(added.project_id, init.project_id);
    ok(await server.callTool("update_bug", { bug_id: "BUG-1", note: "seen in the session" }));
    const got = ok(await server.callTool("get_bug", { bug_id: "BUG-1" })).bug as Message;
    assert.equal((got.history as Message[])[0]!.note, "seen in the session");
    const listed = ok(await server.callTool("list_bugs", {}));
    assert.equal(listed.project_path, sessionProject);
    assert.deepEqual(ids(listed.bugs as Message[]), ["BUG-1"]);
    ok(await server.callTool("close_bug", { bug_id: "BUG-1" }));

    // An explicit project_path still wins over the session's.
    const other = world.dir("other-app");
    const otherBug = ok(await server.callTool("add_bug", { project_path: other, title: "Elsewhere" })).bug as Message;
    assert.equal(otherBug.bug_id, "BUG-1", "numbering is per project");
    assert.notEqual(otherBug.project_id, init.project_id);
    const sessionList = ok(await server.callTool("list_bugs", {}));
    assert.deepEqual(ids(sessionList.bugs as Message[]), ["BUG-1"]);
    assert.equal((sessionList.bugs as Message[])[0]!.status, "closed");
  });
});

void describe("a relative MCP_PROJECT_PATH", () => {
  void test("is the directory relative to the server's working directory, as the seed read it", async () => {
    const world = makeWorld();
    const project = world.dir("app");
    // A client that starts the server in the project (Claude Code does) may say ".".
    const server = await ServerProcess.initialized({ policy: policyFor(world.root), env: { MCP_PROJECT_PATH: "." }, cwd: project });
    try {
      assert.doesNotMatch(server.stderr, /refusing to start/);
      const init = ok(await server.callTool("init_bugtracker", {}));
      assert.equal(init.project_path, project);
      const added = ok(await server.callTool("add_bug", { title: "In the working directory's project" })).bug as Message;
      assert.equal(added.project_id, init.project_id);
      // A relative project_path is a directory under the session's project, for the path guard and the tracker alike.
      const nested = world.dir("app", "packages", "web");
      assert.equal(ok(await server.callTool("init_bugtracker", { project_path: "packages/web" })).project_path, nested);
      fails(await server.callTool("init_bugtracker", { project_path: "../../.." }), /Refused by the security policy|was refused/, /outside/);
    } finally {
      await server.close();
      rmSync(world.tmp, { recursive: true, force: true });
    }
  });
});

void describe("MCP_PROJECT_PATH outside the policy", () => {
  let world: ReturnType<typeof makeWorld>;
  let server: ServerProcess;

  before(async () => {
    world = makeWorld();
    const denied = world.dir("secret", "app");
    server = await ServerProcess.initialized({ policy: policyFor(world.root), env: { MCP_PROJECT_PATH: denied } });
  });

  after(async () => {
    try {
      await server.close();
    } finally {
      rmSync(world.tmp, { recursive: true, force: true });
    }
  });

  void test("a session project the policy denies is refused like an argument would be", async () => {
    // The owner hears it at start, not only the model call by call.
    await server.waitForStderr(/warning: the session's project \S+ \(MCP_PROJECT_PATH\) is refused by the filesystem policy: .*denied.*; bug tracker calls without a project_path will fail/, 5000);
    fails(await server.callTool("init_bugtracker", {}), /Refused by the security policy/, /denied by the filesystem policy/);
    fails(await server.callTool("add_bug", { title: "Should never be stored" }), /Refused by the security policy/);
    const global = ok(await server.callTool("search_bugs_global", {}));
    assert.equal(global.count, 0);
    assert.equal(global.excluded_projects, 0, "nothing was registered");
  });
});
