/**
 * The files plugin over the real guarded filesystem (`ctx.fs` as the server builds it) in a
 * temp directory: what each tool returns, how it pages, how text is cut and refused, and that
 * the policy's refusals come through as they are.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ToolError, type JsonObject, type ToolContext } from "../../src/plugins/contract.js";
import { createGuardedFs } from "../../src/security/capabilities/fs.js";
import { compilePathPolicy } from "../../src/security/path-guard.js";
import { createFilesPlugin } from "../../src/plugins/builtin/files/index.js";
import { decodeTextPart } from "../../src/plugins/builtin/files/text.js";
import { createTestContext, invokeTool, type TestContext, type ToolCallResult } from "../helpers/plugin-context.js";

const plugin = createFilesPlugin();
const A_MD = "# Title\nTODO: call the clinic\nnothing here\ntodo again\n";
const A_MD_BYTES = Buffer.byteLength(A_MD);
let tmp = "";
let root = "";
let harness: TestContext;
let ctx: ToolContext;
let compiledPolicy: () => ReturnType<typeof compilePathPolicy>;

before(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "msl-files-")));
  root = path.join(tmp, "root");
  fs.mkdirSync(path.join(root, "notes", "2026"), { recursive: true });
  fs.mkdirSync(path.join(root, "secrets"));
  fs.mkdirSync(path.join(root, ".hidden"));
  fs.mkdirSync(path.join(root, ".git"));
  fs.mkdirSync(path.join(tmp, "outside"));
  fs.writeFileSync(path.join(root, "notes", "a.md"), A_MD);
  fs.writeFileSync(path.join(root, "notes", "2026", "b.md"), "deep TODO\n");
  fs.writeFileSync(path.join(root, "notes", "c.txt"), "plain text, no marker\n");
  fs.writeFileSync(path.join(root, "notes", "image.bin"), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0x54, 0x4f, 0x44, 0x4f]));
  fs.writeFileSync(path.join(root, "secrets", "key.txt"), "TODO secret\n");
  fs.writeFileSync(path.join(root, ".hidden", "h.md"), "TODO hidden\n");
  fs.writeFileSync(path.join(root, "unicode.txt"), "héllo wörld €\n");
  fs.writeFileSync(path.join(tmp, "outside", "x.txt"), "outside\n");
  const compiled = compilePathPolicy(
    {
      allowed_paths: [`${root}/**`],
      denied_paths: ["**/secrets/**"],
      write_denied_paths: ["**/.git/**"],
      max_read_bytes: 64 * 1024,
      max_write_bytes: 1024,
    },
    { baseDir: root, homeDir: root },
  );
  harness = createTestContext();
  ctx = { ...harness.ctx, fs: createGuardedFs(compiled, { maxReadBytes: 64 * 1024, maxWriteBytes: 1024 }) };
  compiledPolicy = () => compiled;
});

after(() => {
  harness.cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function call(tool: string, args: JsonObject, context: ToolContext = ctx): Promise<ToolCallResult> {
  return invokeTool(plugin, tool, args, context);
}

function ok(result: ToolCallResult): JsonObject {
  assert.equal(result.isError, false, result.text);
  return result.structured as JsonObject;
}

void describe("list_directory", () => {
  test("names, kinds and file sizes, sorted; denied entries left out; relative paths from the session's base", async () => {
    const listed = ok(await call("list_directory", { path: "notes" }));
    assert.equal(listed.path, path.join(root, "notes"));
    assert.deepEqual(listed.entries, [
      { name: "2026", kind: "directory" },
      { name: "a.md", kind: "file", size: A_MD_BYTES },
      { name: "c.txt", kind: "file", size: 22 },
      { name: "image.bin", kind: "file", size: 10 },
    ]);
    assert.equal(listed.total, 4);
    assert.equal(listed.next_offset, undefined);
    const top = ok(await call("list_directory", { path: root }));
    assert.ok(!(top.entries as JsonObject[]).some((entry) => entry.name === "secrets"), "a denied directory is not listed");
  });

  test("pages with offset and limit", async () => {
    const first = ok(await call("list_directory", { path: "notes", limit: 3 }));
    assert.deepEqual((first.entries as JsonObject[]).map((entry) => entry.name), ["2026", "a.md", "c.txt"]);
    assert.equal(first.next_offset, 3);
    const second = ok(await call("list_directory", { path: "notes", offset: 3, limit: 3 }));
    assert.deepEqual((second.entries as JsonObject[]).map((entry) => entry.name), ["image.bin"]);
    assert.equal(second.next_offset, undefined);
  });

  test("the policy's refusals come through with their codes; a file is not a directory", async () => {
    assert.equal((await call("list_directory", { path: path.join(tmp, "outside") })).code, "PATH_OUTSIDE_ROOTS");
    assert.equal((await call("list_directory", { path: "secrets" })).code, "PATH_DENIED");
    assert.equal((await call("list_directory", { path: "notes/a.md" })).code, "PATH_NOT_DIRECTORY");
  });
});

void describe("read_file", () => {
  test("text from the start, whole: no next_offset", async () => {
    const read = ok(await call("read_file", { path: "notes/a.md" }));
    assert.deepEqual(read, {
      path: path.join(root, "notes", "a.md"),
      size: A_MD_BYTES,
      offset: 0,
      bytes: A_MD_BYTES,
      encoding: "utf8",
      content: A_MD,
    });
  });

  test("room for the result is reserved before the read: what the file holds past what was asked (cut to the read cap), base64 as its encoded size", async () => {
    harness.reservations.length = 0;
    ok(await call("read_file", { path: "notes/a.md", length: 5 }));
    ok(await call("read_file", { path: "notes/a.md" }));
    ok(await call("read_file", { path: "notes/image.bin", encoding: "base64", length: 6 }));
    assert.deepEqual(harness.reservations, [5, A_MD_BYTES, 8]);
    // Past 32 KiB asked, the file's size decides, and a missing file is refused before any room is taken.
    const large = { ...ctx, fs: createGuardedFs(compiledPolicy(), { maxReadBytes: 8 << 20, maxWriteBytes: 1024 }) };
    harness.reservations.length = 0;
    ok(await call("read_file", { path: "notes/a.md", length: 8 << 20 }, large));
    ok(await call("read_file", { path: "notes/a.md", offset: 3, length: 8 << 20 }, large));
    assert.equal((await call("read_file", { path: "notes/missing.md", length: 8 << 20 }, large)).code, "PATH_NOT_FOUND");
    assert.equal((await call("read_file", { path: "notes", length: 8 << 20 }, large)).code, "PATH_IS_DIRECTORY");
    assert.deepEqual(harness.reservations, [A_MD_BYTES, A_MD_BYTES - 3]);
  });

  test("review finding: a file that grows between the stat and the read returns no more than the room reserved for it", async () => {
    // A log a program appends to: small when sized, 40 KiB when read (the default read now sizes by the file first).
    const file = path.join(root, "growing.log");
    fs.writeFileSync(file, "start\n");
    const growing = {
      ...ctx,
      fs: {
        ...ctx.fs,
        stat: async (p: string) => {
          const info = await ctx.fs.stat(p);
          fs.appendFileSync(file, "x".repeat(40 * 1024));
          return info;
        },
      },
    };
    try {
      harness.reservations.length = 0;
      const read = ok(await call("read_file", { path: "growing.log" }, growing));
      const reserved = harness.reservations.reduce((a, b) => a + b, 0);
      assert.ok((read.bytes as number) <= reserved, `${read.bytes as number} bytes returned on ${reserved} reserved`);
    } finally {
      fs.rmSync(file);
    }
  });

  test("the model reads the text as it is (no JSON escapes), and a note where it is only a part; base64 stays JSON", async () => {
    const whole = await call("read_file", { path: "notes/a.md" });
    assert.deepEqual(whole.texts, [A_MD], "a whole file: its text alone");
    const file = path.join(root, "notes", "a.md");
    const head = await call("read_file", { path: "notes/a.md", length: 5 });
    assert.deepEqual(head.texts, [A_MD.slice(0, 5), `[read_file: ${file}, bytes 0 to 5 of ${A_MD_BYTES}; the file goes on: read on with offset 5]`]);
    const tail = await call("read_file", { path: "notes/a.md", offset: 5 });
    assert.deepEqual(tail.texts, [A_MD.slice(5), `[read_file: ${file}, bytes 5 to ${A_MD_BYTES} of ${A_MD_BYTES}; the file ends here]`]);
    fs.writeFileSync(path.join(root, "empty.txt"), "");
    assert.deepEqual((await call("read_file", { path: "empty.txt" })).texts, ["", `[read_file: ${path.join(root, "empty.txt")} is empty]`]);
    fs.rmSync(path.join(root, "empty.txt"));
    assert.deepEqual((await call("read_file", { path: "notes/image.bin", encoding: "base64" })).texts, [], "the engine adds the JSON copy");
  });

  test("review finding: an offset past the end is said to be so, not shown as bytes the file does not have", async () => {
    const file = path.join(root, "notes", "a.md");
    const past = await call("read_file", { path: "notes/a.md", offset: A_MD_BYTES + 100 });
    assert.deepEqual(past.texts, ["", `[read_file: ${file} has ${A_MD_BYTES} bytes; offset ${A_MD_BYTES + 100} is past its end]`]);
    const atEnd = await call("read_file", { path: "notes/a.md", offset: A_MD_BYTES });
    assert.deepEqual(atEnd.texts, ["", `[read_file: ${file}, bytes ${A_MD_BYTES} to ${A_MD_BYTES} of ${A_MD_BYTES}; the file ends here]`]);
  });

  test("parts never split a character: a start inside one moves past it, an end inside one leaves it for the next part", async () => {
    // "héllo": é is bytes 1-2. Reading 2 bytes from 0 ends inside it.
    const first = ok(await call("read_file", { path: "unicode.txt", length: 2 }));
    assert.deepEqual([first.content, first.bytes, first.next_offset], ["h", 1, 1]);
    const second = ok(await call("read_file", { path: "unicode.txt", offset: 1, length: 5 }));
    assert.deepEqual([second.content, second.offset, second.next_offset], ["éllo", 1, 6]);
    const inside = ok(await call("read_file", { path: "unicode.txt", offset: 2, length: 4 }));
    assert.deepEqual([inside.content, inside.offset], ["llo", 3]);
    // Walking the file part by part gives it back whole.
    let text = "";
    let offset: number | undefined = 0;
    while (offset !== undefined) {
      const part = ok(await call("read_file", { path: "unicode.txt", offset, length: 4 }));
      text += part.content as string;
      offset = part.next_offset as number | undefined;
    }
    assert.equal(text, fs.readFileSync(path.join(root, "unicode.txt"), "utf8"));
  });

  test("a part too short for one character, a binary file, and a directory are refused with what to do", async () => {
    const euro = Buffer.byteLength("héllo wörld ");
    const short = await call("read_file", { path: "unicode.txt", offset: euro, length: 2 });
    assert.equal(short.code, "FS_INVALID_ARGUMENT");
    assert.match(short.text ?? "", /at least 3$/, "the euro sign is 3 bytes");
    // From inside a character: its rest is skipped, then the next one must fit whole.
    fs.writeFileSync(path.join(root, "emoji.txt"), "\u{1F600}\u{1F600}\u{1F600}");
    try {
      assert.match((await call("read_file", { path: "emoji.txt", offset: 1, length: 6 })).text ?? "", /at least 7$/);
      assert.equal(ok(await call("read_file", { path: "emoji.txt", offset: 1, length: 7 })).content, "\u{1F600}");
    } finally {
      fs.rmSync(path.join(root, "emoji.txt"));
    }
    const binary = await call("read_file", { path: "notes/image.bin" });
    assert.equal(binary.code, "FILE_NOT_TEXT");
    assert.match(binary.text ?? "", /base64/);
    assert.equal((await call("read_file", { path: "notes" })).code, "PATH_IS_DIRECTORY");
  });

  test("base64 gives the bytes as they are, paged the same way", async () => {
    const read = ok(await call("read_file", { path: "notes/image.bin", encoding: "base64", length: 6 }));
    assert.equal(Buffer.from(read.content as string, "base64").toString("hex"), "89504e470000");
    assert.equal(read.next_offset, 6);
    const rest = ok(await call("read_file", { path: "notes/image.bin", encoding: "base64", offset: 6 }));
    assert.equal(Buffer.from(rest.content as string, "base64").toString("latin1"), "TODO");
    assert.equal(rest.next_offset, undefined);
  });

  test("size and next_offset describe the file that was read, not what a separate stat saw (a log that grew in between)", async () => {
    // A stat taken before the read would say 10 bytes: a whole-looking read with no next_offset.
    const stale: ToolContext = { ...ctx, fs: { ...ctx.fs, stat: async (target) => ({ ...(await ctx.fs.stat(target)), size: 10 }) } };
    const read = ok(await call("read_file", { path: "notes/a.md", length: 12 }, stale));
    assert.deepEqual([read.size, read.bytes, read.next_offset], [A_MD_BYTES, 12, 12]);
    const whole = ok(await call("read_file", { path: "notes/a.md" }, stale));
    assert.deepEqual([whole.size, whole.content, whole.next_offset], [A_MD_BYTES, A_MD, undefined]);
  });

  test("an offset past the end reads nothing; the policy's read cap shortens a part and says where to go on", async () => {
    const past = ok(await call("read_file", { path: "notes/a.md", offset: 1000 }));
    assert.deepEqual([past.content, past.bytes, past.next_offset], ["", 0, undefined]);
    fs.writeFileSync(path.join(root, "big.txt"), "x".repeat(100 * 1024));
    try {
      const capped = ok(await call("read_file", { path: "big.txt", length: 1_000_000 }));
      assert.equal(capped.bytes, 64 * 1024);
      assert.equal(capped.next_offset, 64 * 1024);
    } finally {
      fs.rmSync(path.join(root, "big.txt"));
    }
  });

  test("a denied file is refused; so are special files and hard links, even empty ones", async () => {
    assert.equal((await call("read_file", { path: "secrets/key.txt" })).code, "PATH_DENIED");
    const fifo = path.join(root, "pipe");
    const linked = path.join(root, "linked.txt");
    execFileSync("mkfifo", [fifo]);
    fs.writeFileSync(path.join(root, "empty.txt"), "");
    fs.linkSync(path.join(root, "empty.txt"), linked);
    try {
      assert.equal((await call("read_file", { path: "pipe" })).code, "PATH_NOT_REGULAR_FILE");
      assert.equal((await call("read_file", { path: "linked.txt" })).code, "PATH_HARDLINKED");
      assert.equal((await call("file_info", { path: "linked.txt" })).code, "PATH_HARDLINKED");
      const listed = ok(await call("list_directory", { path: "." }));
      assert.deepEqual((listed.entries as JsonObject[]).find((entry) => entry.name === "linked.txt"), { name: "linked.txt", kind: "file" }, "listed, without its size");
    } finally {
      for (const file of [fifo, linked, path.join(root, "empty.txt")]) fs.rmSync(file);
    }
  });
});

void describe("list_allowed_directories", () => {
  test("names each allowed directory with its policy entry, and where relative paths resolve", async () => {
    assert.deepEqual(ok(await call("list_allowed_directories", {})), { directories: [{ path: root, pattern: `${root}/**` }], relative_to: root, relative_allowed: true });
    // A session whose relative paths land outside every allowed directory is told to give absolute ones.
    const compiled = compilePathPolicy({ allowed_paths: [`${root}/notes/*.md`, `${tmp}/missing/**`], denied_paths: [], write_denied_paths: [], max_read_bytes: 1024, max_write_bytes: 1024 }, { baseDir: tmp, homeDir: root });
    const outside: ToolContext = { ...ctx, fs: createGuardedFs(compiled, { maxReadBytes: 1024, maxWriteBytes: 1024 }) };
    const listed = ok(await call("list_allowed_directories", {}, outside));
    assert.deepEqual(listed, {
      directories: [
        { path: path.join(root, "notes"), pattern: `${root}/notes/*.md` },
        // Not made yet: listed all the same (create_directory may make it).
        { path: path.join(tmp, "missing"), pattern: `${tmp}/missing/**` },
      ],
      relative_allowed: false,
    });
    // A root that leads into a denied place (a link into secrets/) is not named: its real path is what the policy hides.
    fs.symlinkSync(path.join(root, "secrets"), path.join(tmp, "keys-link"));
    try {
      const linked = compilePathPolicy(
        { allowed_paths: [`${tmp}/keys-link/**`, `${root}/notes/**`], denied_paths: ["**/secrets/**"], write_denied_paths: [], max_read_bytes: 1024, max_write_bytes: 1024 },
        { baseDir: root, homeDir: root },
      );
      const hiding: ToolContext = { ...ctx, fs: createGuardedFs(linked, { maxReadBytes: 1024, maxWriteBytes: 1024 }) };
      const shown = ok(await call("list_allowed_directories", {}, hiding));
      assert.deepEqual(shown.directories, [{ path: path.join(root, "notes"), pattern: `${root}/notes/**` }]);
      assert.ok(!JSON.stringify(shown).includes("secrets"));
    } finally {
      fs.rmSync(path.join(tmp, "keys-link"));
    }
  });
});

void describe("file_info", () => {
  test("kind, size, time and mode", async () => {
    fs.chmodSync(path.join(root, "notes", "c.txt"), 0o640);
    const when = new Date("2026-03-04T05:06:07.000Z");
    fs.utimesSync(path.join(root, "notes", "c.txt"), when, when);
    const info = ok(await call("file_info", { path: "notes/c.txt" }));
    assert.equal(info.kind, "file");
    assert.equal(info.size, 22);
    assert.equal(info.mode, "0640");
    assert.equal(info.modified, "2026-03-04T05:06:07.000Z");
    assert.equal(ok(await call("file_info", { path: "notes" })).kind, "directory");
    assert.equal((await call("file_info", { path: "notes/none" })).code, "PATH_NOT_FOUND");
  });
});

void describe("search_files", () => {
  test("by name: a glob on the relative path, hidden names and denied directories skipped", async () => {
    const found = ok(await call("search_files", { path: ".", pattern: "**/*.md" }));
    assert.deepEqual((found.results as JsonObject[]).map((result) => result.path).sort(), ["notes/2026/b.md", "notes/a.md"]);
    assert.equal(found.complete, true);
    const hidden = ok(await call("search_files", { path: ".", pattern: "**/*.md", include_hidden: true }));
    assert.deepEqual((hidden.results as JsonObject[]).map((result) => result.path).sort(), [".hidden/h.md", "notes/2026/b.md", "notes/a.md"]);
  });

  test("by content: matching lines with their numbers, case-insensitive by default; binary files passed over", async () => {
    const found = ok(await call("search_files", { path: ".", contains: "todo" }));
    assert.deepEqual(found.results, [
      { path: "notes/a.md", kind: "file", matches: [{ line: 2, text: "TODO: call the clinic" }, { line: 4, text: "todo again" }] },
      { path: "notes/2026/b.md", kind: "file", matches: [{ line: 1, text: "deep TODO" }] },
    ]);
    const exact = ok(await call("search_files", { path: "notes", contains: "todo", case_sensitive: true }));
    assert.deepEqual((exact.results as JsonObject[]).map((result) => result.path), ["a.md"]);
  });

  test("limits are said: max_results, max_depth", async () => {
    const one = ok(await call("search_files", { path: ".", pattern: "**/*.md", max_results: 1 }));
    assert.equal((one.results as JsonObject[]).length, 1);
    assert.equal(one.complete, false);
    assert.match(one.note as string, /max_results \(1\)/);
    const shallow = ok(await call("search_files", { path: ".", pattern: "**/*.md", max_depth: 2 }));
    assert.deepEqual((shallow.results as JsonObject[]).map((result) => result.path), ["notes/a.md"]);
    assert.equal(shallow.complete, false);
    assert.match(shallow.note as string, /deeper than max_depth \(2\)/);
  });

  test("symbolic links are listed, not followed, even to a directory inside the allowed root", async () => {
    const link = path.join(root, "notes", "again");
    fs.symlinkSync(path.join(root, "notes", "2026"), link);
    try {
      const found = ok(await call("search_files", { path: "notes", pattern: "**/b.md" }));
      assert.deepEqual(found.results, [{ path: "2026/b.md", kind: "file" }], "not again/b.md as well");
      const named = ok(await call("search_files", { path: "notes", pattern: "again" }));
      assert.deepEqual(named.results, [{ path: "again", kind: "symlink" }]);
    } finally {
      fs.rmSync(link);
    }
  });

  // A regex compiled from this pattern (picomatch's) did not finish in 30 s on one such name.
  test("a pattern that makes a regex backtrack is matched in bounded time", { timeout: 20_000 }, async () => {
    fs.writeFileSync(path.join(root, "notes", "settings-page-reference-renderer-v2.tsx"), "");
    try {
      const found = ok(await call("search_files", { path: ".", pattern: `**/${"*?".repeat(12)}#` }));
      assert.deepEqual(found.results, []);
      assert.equal(found.complete, true);
    } finally {
      fs.rmSync(path.join(root, "notes", "settings-page-reference-renderer-v2.tsx"));
    }
  });

  test("directories no match can lie under are not entered, so a low max_depth is not reported as a cut", async () => {
    const top = ok(await call("search_files", { path: ".", pattern: "*", max_depth: 1 }));
    assert.equal(top.complete, true, JSON.stringify(top.note));
    assert.deepEqual((top.results as JsonObject[]).map((result) => result.path).sort(), ["notes", "unicode.txt"]);
  });

  test("a pattern naming a dot entry finds it without include_hidden", async () => {
    const found = ok(await call("search_files", { path: ".", pattern: ".hidden/*.md" }));
    assert.deepEqual(found.results, [{ path: ".hidden/h.md", kind: "file" }]);
  });

  test("a cancelled search ends as cancelled, also in the middle of a directory, never as a result", async () => {
    const controller = new AbortController();
    let reads = 0;
    const cancelling: ToolContext = {
      ...ctx,
      signal: controller.signal,
      fs: {
        ...ctx.fs,
        readBytes: async (target, options) => {
          if (++reads === 1) controller.abort(new ToolError("the call was cancelled", "CANCELLED"));
          return ctx.fs.readBytes(target, options);
        },
      },
    };
    const result = await call("search_files", { path: "notes", contains: "todo" }, cancelling);
    assert.equal(result.code, "CANCELLED");
  });

  test("an invalid pattern is refused, saying what is wrong", async () => {
    const result = await call("search_files", { path: ".", pattern: "[z-a]" });
    assert.equal(result.code, "INVALID_PATTERN");
    assert.match(result.text ?? "", /runs backwards/);
  });

  test("an entry that cannot be read is passed over and said", async () => {
    fs.writeFileSync(path.join(root, "notes", "shut.md"), "TODO locked\n");
    fs.chmodSync(path.join(root, "notes", "shut.md"), 0o000);
    try {
      // As root the file stays readable: nothing to pass over.
      const readable = process.getuid?.() === 0;
      const found = ok(await call("search_files", { path: "notes", contains: "locked" }));
      if (readable) {
        assert.equal((found.results as JsonObject[]).length, 1);
      } else {
        assert.deepEqual(found.results, []);
        assert.equal(found.note, "1 entry could not be read and was passed over");
        assert.equal(found.complete, true, "nothing was cut short");
      }
    } finally {
      fs.chmodSync(path.join(root, "notes", "shut.md"), 0o600);
      fs.rmSync(path.join(root, "notes", "shut.md"));
    }
  });

  test("a directory too large to list below the root is named, and the search is not complete", async () => {
    const listing: ToolContext = {
      ...ctx,
      fs: {
        ...ctx.fs,
        list: async (target) => {
          if (target.endsWith("/2026")) throw new ToolError(`directory "${target}" holds more than 6 entries`, "DIRECTORY_TOO_LARGE");
          return ctx.fs.list(target);
        },
      },
    };
    const found = ok(await call("search_files", { path: "notes", pattern: "**/*.md" }, listing));
    assert.deepEqual(found.results, [{ path: "a.md", kind: "file" }]);
    assert.equal(found.complete, false);
    assert.equal(found.note, 'not searched, too many entries to list: "2026"');
  });

  test("a long matching line shows the part around the match", async () => {
    fs.writeFileSync(path.join(root, "notes", "long.txt"), `${"x".repeat(1000)}NEEDLE${"y".repeat(1000)}\n`);
    try {
      const found = ok(await call("search_files", { path: "notes", contains: "needle" }));
      const text = ((found.results as JsonObject[])[0]?.matches as JsonObject[])[0]?.text as string;
      assert.ok(text.includes("NEEDLE") && text.startsWith("\u2026") && text.endsWith("\u2026") && text.length <= 400, text);
    } finally {
      fs.rmSync(path.join(root, "notes", "long.txt"));
    }
  });

  test("a search outside the allowed root is refused", async () => {
    assert.equal((await call("search_files", { path: path.join(tmp, "outside") })).code, "PATH_OUTSIDE_ROOTS");
  });
});

/** The same policy with room for files of a few MiB. */
function roomy(): ToolContext {
  return { ...ctx, fs: createGuardedFs(compiledPolicy(), { maxReadBytes: 4 * 1024 * 1024, maxWriteBytes: 4 * 1024 * 1024 }) };
}

void describe("edit_file", () => {
  const file = (): string => path.join(root, "edit.txt");
  const edit = (args: JsonObject, context?: ToolContext) => call("edit_file", { path: "edit.txt", ...args }, context);

  test("a file name with a line break is quoted in the diff's headers, so it cannot add lines of its own to the diff", async () => {
    const named = path.join(root, "a\n+forged line.txt");
    fs.writeFileSync(named, "one\n");
    try {
      const result = ok(await call("edit_file", { path: named, edits: [{ old_text: "one", new_text: "two" }] }));
      assert.equal(result.diff, `--- ${JSON.stringify(named)}\n+++ ${JSON.stringify(named)}\n@@ -1 +1 @@\n-one\n+two\n`);
    } finally {
      fs.rmSync(named);
    }
  });

  test("replaces text found once, in order, and shows the change as a unified diff", async () => {
    fs.writeFileSync(file(), "one\ntwo\nthree\n");
    try {
      const done = ok(await edit({ edits: [{ old_text: "two", new_text: "2" }, { old_text: "2\nthree", new_text: "2\n3" }] }));
      assert.deepEqual(done, {
        path: file(),
        changed: true,
        dry_run: false,
        edits: 2,
        size: 8,
        diff: `--- ${file()}\n+++ ${file()}\n@@ -1,3 +1,3 @@\n one\n-two\n-three\n+2\n+3\n`,
      });
      assert.equal(fs.readFileSync(file(), "utf8"), "one\n2\n3\n");
    } finally {
      fs.rmSync(file());
    }
  });

  test("dry_run shows the diff and writes nothing; an edit that changes nothing writes nothing", async () => {
    fs.writeFileSync(file(), "keep\n");
    const before = fs.statSync(file()).mtimeMs;
    try {
      const dry = ok(await edit({ edits: [{ old_text: "keep", new_text: "drop" }], dry_run: true }));
      assert.deepEqual([dry.changed, dry.dry_run, dry.size], [true, true, 5]);
      assert.match(dry.diff as string, /^-keep\n\+drop\n$/m);
      const same = ok(await edit({ edits: [{ old_text: "keep", new_text: "keep" }] }));
      assert.deepEqual([same.changed, same.diff], [false, ""]);
      assert.equal(fs.readFileSync(file(), "utf8"), "keep\n");
      assert.equal(fs.statSync(file()).mtimeMs, before);
    } finally {
      fs.rmSync(file());
    }
  });

  test("a dry run refuses what the write would refuse: a result past filesystem.max_write_bytes", async () => {
    fs.writeFileSync(file(), "small\n");
    try {
      const big = "x".repeat(1100);
      const dry = await edit({ edits: [{ old_text: "small", new_text: big }], dry_run: true });
      const wet = await edit({ edits: [{ old_text: "small", new_text: big }] });
      assert.deepEqual([dry.isError, dry.code, wet.isError, wet.code], [true, "FS_WRITE_TOO_LARGE", true, "FS_WRITE_TOO_LARGE"]);
      assert.match(dry.text ?? "", /1101 bytes.*max_write_bytes: 1024/);
      // At the limit it passes, dry and real alike.
      const fits = "x".repeat(1023);
      assert.equal(ok(await edit({ edits: [{ old_text: "small", new_text: fits }], dry_run: true })).size, 1024);
      assert.equal(fs.readFileSync(file(), "utf8"), "small\n");
      assert.equal(ok(await edit({ edits: [{ old_text: "small", new_text: fits }] })).size, 1024);
    } finally {
      fs.rmSync(file());
    }
  });

  test("a missing or repeated old_text refuses every edit, saying which and where", async () => {
    fs.writeFileSync(file(), "x = 1\ny = 2\nx = 1\n    indented line\n");
    try {
      const missing = await edit({ edits: [{ old_text: "y = 2", new_text: "y = 3" }, { old_text: "z = 9", new_text: "" }] });
      assert.equal(missing.code, "EDIT_NOT_FOUND");
      assert.match(missing.text ?? "", /^edit 2: old_text is not in the file \(as the edits before it left it\)/);
      const twice = await edit({ edits: [{ old_text: "x = 1", new_text: "x = 0" }] });
      assert.equal(twice.code, "EDIT_AMBIGUOUS");
      assert.match(twice.text ?? "", /occurs 2 times \(lines 1, 3\)/);
      const loose = await edit({ edits: [{ old_text: "y = 2\nx = 1\nindented line", new_text: "" }] });
      assert.equal(loose.code, "EDIT_NOT_FOUND");
      assert.match(loose.text ?? "", /matches at line 2 when leading and trailing spaces are ignored/);
      assert.equal(fs.readFileSync(file(), "utf8"), "x = 1\ny = 2\nx = 1\n    indented line\n", "nothing was written");
    } finally {
      fs.rmSync(file());
    }
  });

  test("a file with Windows line endings keeps them, whatever old_text and new_text use; a byte order mark stays", async () => {
    const cases: Array<[string, string, string]> = [
      ["a\nb\n", "A\nB\n", "\ufeffA\r\nB\r\nc\r\n"],
      ["b", "b\nb2", "\ufeffa\r\nb\r\nb2\r\nc\r\n"],
      // "\nb" is the "\r\nb" of the file, never the second half of a line break.
      ["\nb", "", "\ufeffa\r\nc\r\n"],
      ["\nb", "\nB\nB2", "\ufeffa\r\nB\r\nB2\r\nc\r\n"],
    ];
    try {
      for (const [oldText, newText, expected] of cases) {
        fs.writeFileSync(file(), "\ufeffa\r\nb\r\nc\r\n");
        ok(await edit({ edits: [{ old_text: oldText, new_text: newText }] }));
        assert.equal(fs.readFileSync(file(), "utf8"), expected, JSON.stringify([oldText, newText]));
      }
      // Half of a "\r\n" is never matched: it would leave a lone \r or \n behind.
      fs.writeFileSync(file(), "a\r\nb\r\n");
      assert.equal((await edit({ edits: [{ old_text: "a\r", new_text: "z" }] })).code, "EDIT_SPLITS_LINE_BREAK");
      // Mixed endings: the exact text first, the "\r\n" form where that is not found.
      fs.writeFileSync(file(), "a\nb\r\nc\r\n");
      ok(await edit({ edits: [{ old_text: "b\nc", new_text: "B\nC" }] }));
      assert.equal(fs.readFileSync(file(), "utf8"), "a\nB\r\nC\r\n");
    } finally {
      fs.rmSync(file());
    }
  });

  test("a path ending with '/' is refused by a dry run as by the edit itself (the write refuses it; the dry run passed)", async () => {
    try {
      fs.writeFileSync(file(), "one\n");
      for (const dryRun of [true, false]) {
        const result = await call("edit_file", { path: "edit.txt/", edits: [{ old_text: "one", new_text: "two" }], dry_run: dryRun });
        assert.equal(result.code, "FS_INVALID_ARGUMENT", `dry_run ${dryRun}: ${result.text}`);
      }
      assert.equal(fs.readFileSync(file(), "utf8"), "one\n");
    } finally {
      fs.rmSync(file());
    }
  });

  test("a file with Unix line endings keeps them: a \\r\\n in old_text or new_text is read as \\n", async () => {
    try {
      fs.writeFileSync(file(), "a\nb\nc\n");
      ok(await edit({ edits: [{ old_text: "a\r\nb", new_text: "A\r\nB\r\nB2" }] }));
      assert.equal(fs.readFileSync(file(), "utf8"), "A\nB\nB2\nc\n");
      // Matched as sent, new_text's \r\n still becomes the file's \n.
      ok(await edit({ edits: [{ old_text: "c", new_text: "c\r\nd" }] }));
      assert.equal(fs.readFileSync(file(), "utf8"), "A\nB\nB2\nc\nd\n");
      // A file of one line has no line breaks to keep: the \r\n sent is the only kind there is.
      fs.writeFileSync(file(), "@echo off");
      ok(await edit({ edits: [{ old_text: "@echo off", new_text: "@echo off\r\necho hi\r\n" }] }));
      assert.equal(fs.readFileSync(file(), "utf8"), "@echo off\r\necho hi\r\n");
    } finally {
      fs.rmSync(file());
    }
  });

  test("two edits of one file at once both land: calls that change a file take turns", async () => {
    fs.writeFileSync(file(), `TOP\n${"middle\n".repeat(30_000)}BOTTOM\n`);
    try {
      const [top, bottom] = await Promise.all([
        edit({ edits: [{ old_text: "TOP", new_text: "top" }] }, roomy()),
        edit({ edits: [{ old_text: "BOTTOM", new_text: "bottom" }] }, roomy()),
      ]);
      ok(top);
      ok(bottom);
      const text = fs.readFileSync(file(), "utf8");
      assert.ok(text.startsWith("top\n") && text.endsWith("bottom\n"), "neither edit was written over");
    } finally {
      fs.rmSync(file());
    }
  });

  test("text with half a surrogate pair is refused; repeats on one line are counted once per line; an empty file says what to do", async () => {
    fs.writeFileSync(file(), "\u{1F600} aaa\n");
    try {
      assert.equal((await edit({ edits: [{ old_text: "\ud83d", new_text: "x" }] })).code, "EDIT_INVALID_TEXT");
      assert.equal((await edit({ edits: [{ old_text: "a", new_text: "\ude00" }] })).code, "EDIT_INVALID_TEXT");
      const repeated = await edit({ edits: [{ old_text: "a", new_text: "b" }] });
      assert.match(repeated.text ?? "", /occurs 3 times \(line 1\)/);
      fs.writeFileSync(file(), "");
      assert.match((await edit({ edits: [{ old_text: "a", new_text: "b" }] })).text ?? "", /the file is empty.*write_file/);
      fs.writeFileSync(file(), Buffer.from([0x61, 0xff]));
      assert.match((await edit({ edits: [{ old_text: "a", new_text: "b" }] })).text ?? "", /not UTF-8 text \(invalid UTF-8\)/);
    } finally {
      fs.rmSync(file());
    }
  });

  test("many edits of a large file are refused before any work, saying how many fit", async () => {
    fs.writeFileSync(file(), "x".repeat(3 * 1024 * 1024));
    try {
      const edits = Array.from({ length: 100 }, (_, i) => ({ old_text: `never ${i}`, new_text: "" }));
      const refused = await edit({ edits }, roomy());
      assert.equal(refused.code, "EDIT_TOO_COSTLY");
      assert.match(refused.text ?? "", /at most 85 edits per call/);
    } finally {
      fs.rmSync(file());
    }
  });

  test("a file that is not text, or larger than one read, is refused; so are paths the policy does not let you write", async () => {
    assert.equal((await call("edit_file", { path: "notes/image.bin", edits: [{ old_text: "PNG", new_text: "GIF" }] })).code, "FILE_NOT_TEXT");
    fs.writeFileSync(file(), "x".repeat(64 * 1024 + 1));
    try {
      const big = await edit({ edits: [{ old_text: "xx", new_text: "y" }] });
      assert.equal(big.code, "FILE_TOO_LARGE");
      assert.match(big.text ?? "", /65537 bytes/);
    } finally {
      fs.rmSync(file());
    }
    assert.equal((await call("edit_file", { path: "notes", edits: [{ old_text: "a", new_text: "b" }] })).code, "PATH_IS_DIRECTORY");
    assert.equal((await call("edit_file", { path: "secrets/key.txt", edits: [{ old_text: "TODO", new_text: "" }] })).code, "PATH_DENIED");
  });

  test("room for the file is reserved before it is read whole; a missing, too large or directory path is refused before any", async () => {
    fs.writeFileSync(file(), "alpha\nbeta\n");
    try {
      harness.reservations.length = 0;
      ok(await edit({ edits: [{ old_text: "beta", new_text: "gamma" }] }));
      assert.deepEqual(harness.reservations, [11], "the file's size, before the read");
      fs.writeFileSync(file(), "x".repeat(64 * 1024 + 1));
      assert.equal((await edit({ edits: [{ old_text: "xx", new_text: "y" }] })).code, "FILE_TOO_LARGE");
      assert.equal((await call("edit_file", { path: "notes/missing.md", edits: [{ old_text: "a", new_text: "b" }] })).code, "PATH_NOT_FOUND");
      assert.equal((await call("edit_file", { path: "notes", edits: [{ old_text: "a", new_text: "b" }] })).code, "PATH_IS_DIRECTORY");
      assert.deepEqual(harness.reservations, [11], "nothing reserved for what is refused");
      // A file that grew between the stat and the read: room for the rest too.
      fs.writeFileSync(file(), "start\n");
      const growing: ToolContext = {
        ...ctx,
        fs: {
          ...ctx.fs,
          stat: async (target) => {
            const info = await ctx.fs.stat(target);
            fs.appendFileSync(file(), "more\n");
            return info;
          },
        },
      };
      harness.reservations.length = 0;
      ok(await edit({ edits: [{ old_text: "more", new_text: "less" }] }, growing));
      assert.deepEqual(harness.reservations, [6, 5]);
    } finally {
      fs.rmSync(file());
    }
  });

  test("a file changed between the read and the write is not overwritten", async () => {
    fs.writeFileSync(file(), "v1\n");
    let reads = 0;
    const racing: ToolContext = {
      ...ctx,
      fs: {
        ...ctx.fs,
        read: async (target, options) => {
          const result = await ctx.fs.read(target, options);
          // Someone saves the file just after edit_file read it.
          if (++reads === 1) fs.writeFileSync(file(), "v1 edited elsewhere\n");
          return result;
        },
      },
    };
    try {
      const raced = await edit({ edits: [{ old_text: "v1", new_text: "v2" }] }, racing);
      assert.equal(raced.code, "EDIT_CONFLICT");
      assert.equal(fs.readFileSync(file(), "utf8"), "v1 edited elsewhere\n");
    } finally {
      fs.rmSync(file());
    }
  });
});

void describe("move_file", () => {
  test("renames a file and reports both real paths; never replaces one; a write-denied place is refused", async () => {
    fs.writeFileSync(path.join(root, "draft.md"), "draft\n");
    fs.writeFileSync(path.join(root, "final.md"), "final\n");
    try {
      const moved = ok(await call("move_file", { source: "draft.md", destination: "notes/draft.md" }));
      assert.deepEqual(moved, { source: path.join(root, "draft.md"), destination: path.join(root, "notes", "draft.md"), size: 6 });
      assert.equal(fs.existsSync(path.join(root, "draft.md")), false);
      const clash = await call("move_file", { source: "notes/draft.md", destination: "final.md" });
      assert.equal(clash.code, "PATH_EXISTS");
      assert.match(clash.text ?? "", /never replaces a file/);
      assert.equal(fs.readFileSync(path.join(root, "final.md"), "utf8"), "final\n");
      assert.equal((await call("move_file", { source: "final.md", destination: ".git/final.md" })).code, "PATH_DENIED");
      assert.equal((await call("move_file", { source: "notes", destination: "notes2" })).code, "PATH_IS_DIRECTORY");
      // Review finding: a directory as the destination read "already exists", as if it were a file.
      const into = await call("move_file", { source: "final.md", destination: "notes" });
      assert.equal(into.code, "PATH_IS_DIRECTORY");
      assert.match(into.text ?? "", /"notes" is a directory; give the file's new path inside it/);
    } finally {
      fs.rmSync(path.join(root, "notes", "draft.md"), { force: true });
      fs.rmSync(path.join(root, "final.md"), { force: true });
    }
  });
});

void describe("write_file and create_directory", () => {
  test("create refuses an existing file and says how to replace it; overwrite and append do what they say", async () => {
    const file = path.join(root, "out.txt");
    const created = ok(await call("write_file", { path: "out.txt", content: "one\n" }));
    assert.deepEqual(created, { path: file, bytes_written: 4, size: 4, mode: "create" });
    const again = await call("write_file", { path: "out.txt", content: "two\n" });
    assert.equal(again.code, "PATH_EXISTS");
    assert.match(again.text ?? "", /mode "overwrite"/);
    ok(await call("write_file", { path: "out.txt", content: "two\n", mode: "append" }));
    assert.equal(fs.readFileSync(file, "utf8"), "one\ntwo\n");
    const replaced = ok(await call("write_file", { path: "out.txt", content: "é", mode: "overwrite" }));
    assert.deepEqual([replaced.bytes_written, replaced.size], [2, 2]);
    assert.equal(fs.readFileSync(file, "utf8"), "é");
    fs.rmSync(file);
  });

  test("content holding half a surrogate pair is refused, not written with U+FFFD in its place", async () => {
    for (const content of ["cut emoji \ud83d", "\ude00 at the start"]) {
      const refused = await call("write_file", { path: "half.txt", content });
      assert.equal(refused.code, "WRITE_INVALID_TEXT");
      assert.match(refused.text ?? "", /half of a surrogate pair/);
    }
    assert.equal(fs.existsSync(path.join(root, "half.txt")), false);
    ok(await call("write_file", { path: "half.txt", content: "whole \u{1F600}" }));
    assert.equal(fs.readFileSync(path.join(root, "half.txt"), "utf8"), "whole \u{1F600}");
    fs.rmSync(path.join(root, "half.txt"));
  });

  test("the policy's write refusals and size cap come through", async () => {
    assert.equal((await call("write_file", { path: ".git/config", content: "x" })).code, "PATH_DENIED");
    assert.equal((await call("write_file", { path: path.join(tmp, "outside", "y.txt"), content: "x" })).code, "PATH_OUTSIDE_ROOTS");
    assert.equal((await call("write_file", { path: "big.txt", content: "x".repeat(2000) })).code, "FS_WRITE_TOO_LARGE");
    const orphan = await call("write_file", { path: "no/such/dir/f.txt", content: "x" });
    assert.equal(orphan.code, "PATH_NOT_FOUND");
    assert.match(orphan.text ?? "", /"no\/such\/dir" does not exist; make it with create_directory first/);
    assert.equal(fs.existsSync(path.join(root, "big.txt")), false);
  });

  test("create_directory makes missing parents, outermost first; an existing directory is fine; a file in the way is not", async () => {
    const made = ok(await call("create_directory", { path: "new/a/b" }));
    assert.deepEqual(made, { path: path.join(root, "new", "a", "b"), created: [path.join(root, "new"), path.join(root, "new", "a"), path.join(root, "new", "a", "b")] });
    assert.ok(fs.statSync(path.join(root, "new", "a", "b")).isDirectory());
    assert.deepEqual(ok(await call("create_directory", { path: "new/a" })).created, []);
    assert.equal((await call("create_directory", { path: "notes/a.md" })).code, "PATH_NOT_DIRECTORY");
    assert.equal((await call("create_directory", { path: ".git/hooks" })).code, "PATH_DENIED");
    fs.rmSync(path.join(root, "new"), { recursive: true });
  });

  test("create_directory: two calls for one path at once both succeed; a failure part way says what it made", async () => {
    const last = path.join(root, "race", "a", "b");
    // Another call makes the last directory between this call's parents and its own mkdir.
    const racing: ToolContext = {
      ...ctx,
      fs: {
        ...ctx.fs,
        mkdir: async (dir) => {
          if (dir === last && fs.existsSync(path.dirname(last))) fs.mkdirSync(last);
          return ctx.fs.mkdir(dir);
        },
      },
    };
    try {
      const made = ok(await call("create_directory", { path: "race/a/b" }, racing));
      assert.deepEqual(made.created, [path.join(root, "race"), path.join(root, "race", "a")]);
      assert.ok(fs.statSync(last).isDirectory());
      const full: ToolContext = {
        ...ctx,
        fs: {
          ...ctx.fs,
          mkdir: async (dir) => {
            if (dir.endsWith("/z") && fs.existsSync(path.dirname(dir))) throw new ToolError("no space left on the device", "FS_NO_SPACE");
            return ctx.fs.mkdir(dir);
          },
        },
      };
      const failed = await call("create_directory", { path: "race/x/y/z" }, full);
      assert.equal(failed.code, "FS_NO_SPACE");
      assert.match(failed.text ?? "", /no space left on the device \(made before that, and left in place: .*race\/x.*, .*race\/x\/y.*\)/);
    } finally {
      fs.rmSync(path.join(root, "race"), { recursive: true, force: true });
    }
  });

  test("create_directory: a link is refused as writes through links are; more than 64 new levels are refused, nothing made", async () => {
    fs.symlinkSync(path.join(root, "notes"), path.join(root, "notes-link"));
    try {
      const link = await call("create_directory", { path: "notes-link" });
      assert.equal(link.code, "PATH_SYMLINK");
      assert.match(link.text ?? "", /writes never follow links/);
    } finally {
      fs.rmSync(path.join(root, "notes-link"));
    }
    const deep = await call("create_directory", { path: `deep/${"d/".repeat(70)}end` });
    assert.equal(deep.code, "FS_INVALID_ARGUMENT");
    assert.match(deep.text ?? "", /more than 64 directories/);
    assert.equal(fs.existsSync(path.join(root, "deep")), false);
    const ok64 = ok(await call("create_directory", { path: `deep/${"d/".repeat(62)}end` }));
    assert.equal((ok64.created as string[]).length, 64);
    fs.rmSync(path.join(root, "deep"), { recursive: true });
  });
});

void describe("text parts", () => {
  test("a byte order mark is kept (byte counts stay true); NUL bytes mean binary", () => {
    const bom = decodeTextPart(new Uint8Array([0xef, 0xbb, 0xbf, 0x61]), false, false);
    assert.deepEqual(bom, { ok: true, text: "\ufeffa", skipped: 0, bytes: 4 });
    assert.deepEqual(decodeTextPart(new Uint8Array([0x61, 0x00]), false, false), { ok: false, reason: "nul" });
    assert.deepEqual(decodeTextPart(new Uint8Array([0xff, 0x61]), false, false), { ok: false, reason: "invalid" });
    // A 4-byte character cut after 3 bytes at the end of a part is held back whole.
    assert.deepEqual(decodeTextPart(new Uint8Array([0x61, 0xf0, 0x9f, 0x98]), false, true), { ok: true, text: "a", skipped: 0, bytes: 1 });
    // The same cut at the end of the file is invalid text.
    assert.deepEqual(decodeTextPart(new Uint8Array([0x61, 0xf0, 0x9f, 0x98]), false, false), { ok: false, reason: "invalid" });
  });
});
