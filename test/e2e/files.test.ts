/**
 * The files tools over real pipes: a policy that allows one folder, the engine checking every
 * path argument before the plugin runs, the server's own files out of reach whatever the policy
 * says, and the audit log holding each call.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ServerProcess, type Message } from "../helpers/server-process.js";
import { auditEntries, expectReadText, expectStructured, expectToolError, tempDir } from "../helpers/e2e.js";

void describe("the files tools", () => {
  test("on the built-in policy, the instructions point to list_allowed_directories, which names the workspace; a policy that denies it is not pointed to it", async () => {
    const server = await ServerProcess.initialized({ cwd: realpathSync(tempDir("msl-cwd-")) });
    try {
      const initialized = server.messages.find((message) => message.result?.protocolVersion !== undefined);
      assert.match(initialized?.result.instructions as string, /list_allowed_directories names; call it before naming a path/);
      const allowed = expectStructured(await server.callTool("list_allowed_directories", {}));
      const workspace = join(realpathSync(server.stateDir), "workspace");
      assert.deepEqual(allowed.directories, [{ path: workspace, pattern: `${workspace}/**` }]);
      // The working directory is outside it: the model learns to give absolute paths.
      assert.equal(allowed.relative_allowed, false);
      expectStructured(await server.callTool("write_file", { path: join(workspace, "note.txt"), content: "x" }));
    } finally {
      await server.close();
    }
    const denied = await ServerProcess.initialized({ policy: 'version: "1.0"\ntools:\n  deny: [search_tools, list_allowed_directories]\n' });
    try {
      const initialized = denied.messages.find((message) => message.result?.protocolVersion !== undefined);
      assert.doesNotMatch(initialized?.result.instructions as string, /search_tools|list_allowed_directories/);
      assert.match(initialized?.result.instructions as string, /call list_categories\./);
    } finally {
      await denied.close();
    }
  });

  test("list, read, search and write inside the allowed folder; outside it, and the server's own files, refused", async () => {
    const data = realpathSync(tempDir("msl-files-e2e-"));
    mkdirSync(join(data, "records"));
    writeFileSync(join(data, "records", "visit.md"), "Patient seen.\nFollow-up: two weeks.\n");
    const policy = [
      'version: "1.0"',
      "filesystem:",
      `  allowed_paths: ["${data}/**", "\${STATE_DIR}/**"]`,
      "",
    ].join("\n");
    const server = await ServerProcess.initialized({ policy, env: { MCP_PROJECT_PATH: data } });
    try {
      const listed = expectStructured(await server.callTool("list_directory", { path: "records" }));
      assert.deepEqual(listed.entries, [{ name: "visit.md", kind: "file", size: 36 }]);
      const read = expectReadText(await server.callTool("read_file", { path: "records/visit.md" }));
      assert.equal(read.content, "Patient seen.\nFollow-up: two weeks.\n");
      assert.equal(expectReadText(await server.callTool("read_file", { path: "records/visit.md", length: 14 })).next_offset, 14);
      // Review finding: an offset past 2^53 is no exact number (1e308 was read as 0): refused, with the bound.
      expectToolError(await server.callTool("read_file", { path: "records/visit.md", offset: 1e308 }), /offset.*9007199254740991/);
      const found = expectStructured(await server.callTool("search_files", { path: ".", contains: "follow-up" }));
      assert.deepEqual(found.results, [{ path: "records/visit.md", kind: "file", matches: [{ line: 2, text: "Follow-up: two weeks." }] }]);
      expectStructured(await server.callTool("create_directory", { path: "summaries/2026" }));
      expectStructured(await server.callTool("write_file", { path: "summaries/2026/visit.txt", content: "Seen; follow up in two weeks.\n" }));
      assert.equal(readFileSync(join(data, "summaries", "2026", "visit.txt"), "utf8"), "Seen; follow up in two weeks.\n");
      const edits = [{ old_text: "two weeks", new_text: "ten days" }];
      const edited = expectStructured(await server.callTool("edit_file", { path: "summaries/2026/visit.txt", edits }));
      assert.match(edited.diff as string, /^-Seen; follow up in two weeks\.\n\+Seen; follow up in ten days\.$/m);
      assert.equal(readFileSync(join(data, "summaries", "2026", "visit.txt"), "utf8"), "Seen; follow up in ten days.\n");
      expectToolError(await server.callTool("edit_file", { path: "summaries/2026/visit.txt", edits }), /edit 1: old_text is not in the file/);
      const moved = expectStructured(await server.callTool("move_file", { source: "summaries/2026/visit.txt", destination: "summaries/visit-2026.txt" }));
      assert.equal(moved.destination, join(data, "summaries", "visit-2026.txt"));
      expectToolError(await server.callTool("move_file", { source: "summaries/visit-2026.txt", destination: "/etc/visit.txt" }), /outside the directories the filesystem policy allows/);

      // Refused by the engine's path check, before the plugin runs.
      expectToolError(await server.callTool("read_file", { path: "/etc/passwd" }), /outside the directories the filesystem policy allows/);
      // The state directory is allowed by the policy, but the audit log and the keys are the server's own.
      expectToolError(await server.callTool("read_file", { path: join(server.stateDir, "audit", "audit.log") }), /the server's state \(audit log, keys, databases\)/);
      expectStructured(await server.callTool("create_directory", { path: join(server.stateDir, "workspace") }));
      const state = expectStructured(await server.callTool("list_directory", { path: server.stateDir }));
      const names = (state.entries as Message[]).map((entry) => entry.name as string);
      assert.ok(names.includes("workspace"), `the state directory is listed: ${names.join(", ")}`);
      assert.ok(!names.includes("audit") && !names.includes("keys"), `the server's own entries are not listed: ${names.join(", ")}`);

      // The audit log proves what was written without keeping a second copy of it.
      const written = auditEntries(server.stateDir).find((entry) => entry.event === "tool_call" && entry.tool === "write_file");
      assert.deepEqual(written?.arguments, {
        path: "summaries/2026/visit.txt",
        content: { bytes: 30, sha256: createHash("sha256").update("Seen; follow up in two weeks.\n").digest("hex") },
      });
      const editCall = auditEntries(server.stateDir).find((entry) => entry.event === "tool_call" && entry.tool === "edit_file");
      const editsJson = '[{"new_text":"ten days","old_text":"two weeks"}]';
      assert.deepEqual(editCall?.arguments, {
        path: "summaries/2026/visit.txt",
        edits: { bytes: editsJson.length, sha256: createHash("sha256").update(editsJson).digest("hex") },
      });
      const calls = auditEntries(server.stateDir).filter((entry) => entry.event === "tool_call").map((entry) => entry.tool);
      for (const tool of ["list_directory", "read_file", "search_files", "create_directory", "write_file", "edit_file", "move_file"]) assert.ok(calls.includes(tool), tool);
      assert.deepEqual(server.problems, []);
    } finally {
      await server.close();
    }
  });

  // Not a timed assertion: 40,000 files take several seconds to search here (~1 s on a fast idle machine would
  // still be too many for the 2 s limit less its margin), and the match is read first, at the top of the tree.
  test("a search cut short by its time limit returns what it found, with complete: false and progress on the way", { timeout: 120_000 }, async () => {
    const data = realpathSync(tempDir("msl-files-timeout-"));
    try {
      writeFileSync(join(data, "a-match.txt"), "first line\nthe needle is here\n");
      mkdirSync(join(data, "z"));
      for (let i = 0; i < 40_000; i++) closeSync(openSync(join(data, "z", `f${String(i).padStart(5, "0")}.txt`), "w"));
      const policy = ['version: "1.0"', "filesystem:", `  allowed_paths: ["${data}/**", "\${STATE_DIR}/**"]`, "tools:", "  timeouts:", "    search_files: 2", ""].join("\n");
      const server = await ServerProcess.initialized({ policy });
      try {
        const response = await server.callTool("search_files", { path: data, contains: "needle" }, { _meta: { progressToken: "search-1" } });
        const found = expectStructured(response);
        assert.deepEqual(found.results, [{ path: "a-match.txt", kind: "file", matches: [{ line: 2, text: "the needle is here" }] }]);
        assert.equal(found.complete, false);
        assert.equal(found.stopped, "time_limit");
        assert.match(found.note as string, /^stopped near the call's time limit after looking at \d+ entries and reading \d+ files/);
        const progress = server.messages.filter((m) => m.method === "notifications/progress");
        assert.ok(progress.length > 0, "progress was sent while it searched");
        assert.ok(progress.every((m) => m.params.progressToken === "search-1" && /entries looked at/.test(m.params.message as string)));
        const result = auditEntries(server.stateDir).find((entry) => entry.event === "tool_result" && entry.tool === "search_files");
        assert.equal(result?.outcome, "ok", "recorded as a result, not a timeout");
      } finally {
        await server.close();
      }
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });

  test("under the built-in policy only the state directory's workspace is open", async () => {
    const server = await ServerProcess.initialized();
    try {
      const workspace = join(server.stateDir, "workspace");
      expectStructured(await server.callTool("write_file", { path: join(workspace, "note.txt"), content: "hello\n" }));
      const read = expectReadText(await server.callTool("read_file", { path: join(workspace, "note.txt") }));
      assert.equal(read.content, "hello\n");
      expectToolError(await server.callTool("list_directory", { path: server.home }), /outside the directories the filesystem policy allows/);
    } finally {
      await server.close();
    }
  });
});
