/**
 * The bug tracker at some scale, through the built CLI: thousands of pipelined
 * add_bug calls walked back page by page, and two server processes writing to one
 * database at the same time without losing a write.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ServerProcess, resultText, type Message } from "../helpers/server-process.js";
import { expectStructured as ok } from "../helpers/e2e.js";

const CALL_TIMEOUT_MS = 120_000;

/** Allows `<root>/**`; no rate limit gets in the way of a burst. `extra` is appended (e.g. an audit section). */
function policyFor(root: string, extra: string[] = []): string {
  return [
    'version: "1.0"',
    "filesystem:",
    `  allowed_paths: [${JSON.stringify(`${root}/**`)}]`,
    "tools:",
    "  rate_limits:",
    "    default: 1000000",
    "    add_bug: 1000000",
    "    update_bug: 1000000",
    "    list_bugs: 1000000",
    "    get_bug: 1000000",
    ...extra,
    "",
  ].join("\n");
}

function makeWorld(): { tmp: string; root: string; project: string } {
  const tmp = realpathSync(mkdtempSync(join(tmpdir(), "msl-")));
  const root = join(tmp, "root");
  const project = join(root, "app");
  mkdirSync(project, { recursive: true });
  return { tmp, root, project };
}


/** Sends a tools/call without waiting for earlier ones (the server handles them concurrently). */
function send(server: ServerProcess, name: string, args: Message): Promise<Message> {
  return server.request("tools/call", { name, arguments: args }, server.newId(), CALL_TIMEOUT_MS);
}

/** Walks list_bugs to the end; returns every page. */
async function walk(server: ServerProcess, args: Message, maxPages: number): Promise<Message[]> {
  const pages: Message[] = [];
  let cursor: string | undefined;
  do {
    const page = ok(await send(server, "list_bugs", cursor === undefined ? args : { ...args, cursor }));
    assert.equal(page.has_more, page.next_cursor !== undefined, "has_more and next_cursor agree");
    pages.push(page);
    cursor = page.next_cursor as string | undefined;
  } while (cursor !== undefined && pages.length <= maxPages);
  assert.equal(cursor, undefined, `the walk ended within ${maxPages} pages`);
  return pages;
}

function bugNumber(bug: Message): number {
  const match = /^BUG-(\d+)$/.exec(bug.bug_id as string);
  assert.ok(match, `a BUG-n id: ${String(bug.bug_id)}`);
  return Number(match[1]);
}

/** Every value once: returns the duplicates (empty when none). */
function duplicates(values: readonly string[]): string[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const value of values) (seen.has(value) ? twice : seen).add(value);
  return [...twice];
}

const PRIORITIES = ["low", "medium", "high", "critical"];

void describe("pagination over a few thousand bugs", () => {
  void test("2,000 pipelined add_bug calls all land, and every page walk returns each bug exactly once", async () => {
    const total = 2_000;
    const world = makeWorld();
    // Batched fsync of the audit log: this test is about pages, not about the disk.
    const server = await ServerProcess.initialized({ policy: policyFor(world.root, ["audit:", "  fsync: batch"]) });
    try {
      ok(await send(server, "init_bugtracker", { project_path: world.project }));
      const pending: Promise<Message>[] = [];
      for (let i = 0; i < total; i++) {
        pending.push(
          send(server, "add_bug", {
            project_path: world.project,
            title: `Bulk bug ${i}`,
            priority: PRIORITIES[i % PRIORITIES.length]!,
            tags: i % 2 === 0 ? ["even"] : ["odd"],
          }),
        );
      }
      const added = (await Promise.all(pending)).map((reply) => ok(reply).bug as Message);
      const numbers = added.map(bugNumber).sort((a, b) => a - b);
      assert.deepEqual(numbers, Array.from({ length: total }, (_, i) => i + 1), "BUG-1 .. BUG-2000, each once");
      const uids = added.map((bug) => bug.uid as string);
      assert.deepEqual(duplicates(uids), []);
      const expected = new Set(uids);

      // Newest first, 200 a page: ten full pages, each bug once, in strictly falling order.
      const pages = await walk(server, { project_path: world.project, limit: 200 }, 20);
      assert.equal(pages.length, total / 200);
      for (const page of pages) assert.equal(page.count, 200);
      const walked = pages.flatMap((page) => page.bugs as Message[]);
      assert.deepEqual(duplicates(walked.map((bug) => bug.uid as string)), []);
      assert.deepEqual(new Set(walked.map((bug) => bug.uid as string)), expected);
      const order = walked.map(bugNumber);
      for (let i = 1; i < order.length; i++) assert.ok(order[i - 1]! > order[i]!, `created_desc order at ${i}`);

      // A two-key cursor (priority, then newest): each bug once, priorities never rising.
      const byPriority = (await walk(server, { project_path: world.project, limit: 200, sort: "priority" }, 20)).flatMap((page) => page.bugs as Message[]);
      assert.equal(byPriority.length, total);
      assert.deepEqual(new Set(byPriority.map((bug) => bug.uid as string)), expected);
      const ranks = byPriority.map((bug) => PRIORITIES.indexOf(bug.priority as string));
      for (let i = 1; i < ranks.length; i++) assert.ok(ranks[i - 1]! >= ranks[i]!, `priority order at ${i}`);

      // A filtered walk: the even half, each once.
      const even = (await walk(server, { project_path: world.project, limit: 200, tags: ["even"], sort: "created_asc" }, 20)).flatMap(
        (page) => page.bugs as Message[],
      );
      assert.equal(even.length, total / 2);
      assert.deepEqual(duplicates(even.map((bug) => bug.uid as string)), []);
      for (const bug of even) assert.deepEqual(bug.tags, ["even"]);
    } finally {
      await server.close();
      rmSync(world.tmp, { recursive: true, force: true });
    }
  });
});

void describe("two servers on one database", () => {
  void test("concurrent add_bug and update_bug calls from two processes are all kept", async () => {
    const perServer = 300;
    const notesPerServer = 60;
    const shared = 4;
    const world = makeWorld();
    const stateDir = join(world.tmp, "state");
    // One database (<stateDir>/data/bugtracker.db); one audit log each, as the log has a single writer.
    const a = await ServerProcess.initialized({ policy: policyFor(world.root, ["audit:", '  log_file: "${STATE_DIR}/audit/a.log"']), stateDir });
    let b: ServerProcess | undefined;
    try {
      b = await ServerProcess.initialized({ policy: policyFor(world.root, ["audit:", '  log_file: "${STATE_DIR}/audit/b.log"']), stateDir });
      const servers: Record<"A" | "B", ServerProcess> = { A: a, B: b };

      for (let i = 1; i <= shared; i++) ok(await send(a, "add_bug", { project_path: world.project, title: `Shared bug ${i}` }));

      // Both servers warm (schemas compiled after their handshake), so neither starts the burst late.
      ok(await send(b, "list_bugs", { project_path: world.project }));
      // Interleaved, nothing awaited until everything is sent.
      const pending: Array<Promise<Message>> = [];
      const notes = new Map<string, string[]>(Array.from({ length: shared }, (_, i) => [`BUG-${i + 1}`, []]));
      for (let i = 0; i < perServer; i++) {
        for (const name of ["A", "B"] as const) {
          pending.push(send(servers[name], "add_bug", { project_path: world.project, title: `From ${name} #${i}`, description: `written by server ${name}` }));
          if (i < notesPerServer) {
            const bugId = `BUG-${(i % shared) + 1}`;
            const note = `note ${i} from ${name}`;
            notes.get(bugId)!.push(note);
            pending.push(send(servers[name], "update_bug", { project_path: world.project, bug_id: bugId, note }));
          }
        }
      }
      const replies = await Promise.all(pending);
      const failed = replies.filter((reply) => reply.result?.isError === true || reply.error !== undefined);
      assert.deepEqual(failed.map(resultText), [], "no call failed (e.g. with a busy database)");
      const added = replies.map((reply) => ok(reply)).filter((result) => result.message !== undefined && (result.message as string).startsWith("Created"));
      assert.equal(added.length, 2 * perServer);

      // Every bug is there once, through either server, numbered without gaps or repeats.
      let interleaved = 0;
      for (const server of [a, b]) {
        const bugs = (await walk(server, { project_path: world.project, limit: 200 }, 20)).flatMap((page) => page.bugs as Message[]);
        // In number order, how often the writer changes: the two processes really wrote at the same time.
        const writers = [...bugs].sort((x, y) => bugNumber(x) - bugNumber(y)).map((bug) => /^From ([AB]) /.exec(bug.title as string)?.[1]);
        interleaved = writers.filter((writer, i) => i > 0 && writer !== undefined && writers[i - 1] !== undefined && writer !== writers[i - 1]).length;
        assert.equal(bugs.length, shared + 2 * perServer);
        assert.deepEqual(
          bugs.map(bugNumber).sort((x, y) => x - y),
          Array.from({ length: shared + 2 * perServer }, (_, i) => i + 1),
          "BUG numbers are unique and contiguous",
        );
        assert.deepEqual(duplicates(bugs.map((bug) => bug.uid as string)), []);
        const titles = new Set(bugs.map((bug) => bug.title as string));
        for (let i = 0; i < perServer; i++) {
          assert.ok(titles.has(`From A #${i}`), `From A #${i}`);
          assert.ok(titles.has(`From B #${i}`), `From B #${i}`);
        }
      }

      assert.ok(interleaved >= 2, `the writes of A and B interleave in the database (${interleaved} switches)`);

      // Every note is in the history of its bug, each in a revision of its own.
      for (const [bugId, expected] of notes) {
        const bug = ok(await send(b, "get_bug", { project_path: world.project, bug_id: bugId })).bug as Message;
        const history = bug.history as Message[];
        assert.deepEqual(history.map((entry) => entry.note as string).sort(), [...expected].sort(), `the notes of ${bugId}`);
        assert.deepEqual(
          history.map((entry) => entry.revision as number),
          Array.from({ length: expected.length }, (_, i) => i + 1),
          `${bugId} has one revision per note, none lost or repeated`,
        );
        assert.equal(bug.revision, expected.length);
      }
    } finally {
      try {
        await b?.close();
      } finally {
        await a.close();
      }
    }

    // Each server recorded its own calls in its own audit log.
    try {
      for (const [file, adds] of [
        ["a.log", perServer + shared],
        ["b.log", perServer],
      ] as const) {
        const entries = readFileSync(join(stateDir, "audit", file), "utf8")
          .split("\n")
          .filter((line) => line.startsWith("{"))
          .map((line) => JSON.parse(line) as Message);
        const results = entries.filter((entry) => entry.event === "tool_result" && entry.tool === "add_bug");
        assert.equal(results.length, adds, `${file} records its server's add_bug calls`);
        assert.ok(results.every((entry) => entry.outcome === "ok"));
      }
    } finally {
      rmSync(world.tmp, { recursive: true, force: true });
    }
  });
});
