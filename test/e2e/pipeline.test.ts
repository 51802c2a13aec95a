/**
 * The security pipeline driven through the real server over stdio: for every stage,
 * a refused call never reaches the plugin (the testkit's spy counts every call that
 * does), the refusal is an isError result that says why, and the audit log records
 * which stage refused. Then deadlines, crashes and invalid output.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { ServerProcess, resultText, type Message } from "../helpers/server-process.js";
import { TEST_SERVER_ENTRY, auditEntries, listAllPages, spyCount, tempDir } from "../helpers/e2e.js";

const INVALID_PARAMS = -32602;
const ULID = /[0-9A-HJKMNP-TV-Z]{26}/;

interface PolicyOptions {
  root: string;
  deny?: string[];
  rateLimits?: Record<string, number>;
  timeouts?: Record<string, number>;
}

/** A policy file: one allowed root, a deny glob under it, small argument limits. */
function policyYaml(options: PolicyOptions): string {
  const lines = [
    'version: "1.0"',
    "filesystem:",
    "  allowed_paths:",
    `    - ${JSON.stringify(`${options.root}/**`)}`,
    "  denied_paths:",
    '    - "**/secrets/**"',
    "tools:",
    `  deny: ${JSON.stringify(options.deny ?? [])}`,
    "  rate_limits:",
    "    default: 600",
    ...Object.entries(options.rateLimits ?? {}).map(([tool, limit]) => `    ${tool}: ${limit}`),
    "  timeout: 30",
    "  timeouts:",
    ...Object.entries(options.timeouts ?? { echo: 30 }).map(([tool, seconds]) => `    ${tool}: ${seconds}`),
    "limits:",
    "  max_string_length: 200",
    "  max_depth: 6",
    "  max_array_length: 16",
    "  max_argument_bytes: 4096",
    "audit:",
    '  log_file: "${STATE_DIR}/audit/audit.log"',
    "",
  ];
  return lines.join("\n");
}

/** A temp folder standing for the user's project: a file, a secrets folder, and a link out of it. */
function makeRoot(): string {
  const root = realpathSync(tempDir("msl-root-"));
  writeFileSync(join(root, "file.txt"), "inside the root\n");
  mkdirSync(join(root, ".git", "hooks"), { recursive: true });
  writeFileSync(join(root, ".git", "HEAD"), "ref: refs/heads/main\n");
  mkdirSync(join(root, "secrets"));
  writeFileSync(join(root, "secrets", "key.txt"), "do not read\n");
  symlinkSync("/etc", join(root, "link"));
  // A line break in a folder name must not take what is beneath it out of a deny rule.
  mkdirSync(join(root, "line\nbreak", "secrets"), { recursive: true });
  writeFileSync(join(root, "line\nbreak", "secrets", "key.txt"), "do not read either\n");
  return root;
}

function deniedFor(stateDir: string, tool: string): Message[] {
  return auditEntries(stateDir).filter((entry) => entry.event === "denied" && entry.tool === tool);
}

void describe("stage 1: a denied tool", () => {
  let root: string;
  let server: ServerProcess;

  before(async () => {
    root = makeRoot();
    server = await ServerProcess.initialized({
      entry: TEST_SERVER_ENTRY,
      policy: policyYaml({ root, deny: ["spy_target", "an?i"], timeouts: { stubborn: 1 } }),
    });
  });

  after(async () => {
    try {
      await server.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  void test("is not listed, not searchable, and calling it is an unknown tool", async () => {
    const names = (await listAllPages(server)).flat().map((tool) => tool.name as string);
    assert.ok(names.includes("spy_count"), "the rest of the plugin is there");
    assert.equal(names.includes("spy_target"), false);
    assert.equal(names.includes("ansi"), false, "deny globs work");

    const search = await server.callTool("search_tools", { query: "spy" });
    const found = (search.result.structuredContent.results as Message[]).map((r) => r.name);
    assert.ok(found.includes("spy_count"));
    assert.equal(found.includes("spy_target"), false, "search_tools hides denied tools");
    const categories = await server.callTool("list_categories", {});
    const testkit = (categories.result.structuredContent.categories as Message[]).find((c) => c.category === "testkit");
    assert.equal((testkit?.tools as string[]).includes("spy_target"), false);

    const call = await server.callTool("spy_target", { n: 1 });
    assert.equal(call.error?.code, INVALID_PARAMS);
    assert.match(call.error.message as string, /unknown tool/i);
    assert.equal(await spyCount(server), 0);
  });

  void test("a call past its deadline is answered 'timed out after 1 s' although the tool ignores its signal", async () => {
    const started = performance.now();
    const reply = await server.callTool("stubborn", { ms: 20_000 });
    const elapsed = performance.now() - started;
    assert.equal(reply.result?.isError, true);
    assert.match(resultText(reply), /timed out after 1 s/);
    assert.ok(elapsed < 3000, `answered at the deadline, not when the tool finished (${Math.round(elapsed)} ms)`);
    const outcome = auditEntries(server.stateDir).find((e) => e.event === "tool_result" && e.tool === "stubborn");
    assert.equal(outcome?.outcome, "timeout");
  });

  void test("a crashing tool gives an 'internal error' with a reference, details only in the server log", async () => {
    const reply = await server.callTool("crash", {});
    assert.equal(reply.result?.isError, true);
    const text = resultText(reply);
    assert.match(text, /internal error/i);
    const ref = ULID.exec(text)?.[0];
    assert.ok(ref, `a reference in: ${text}`);
    assert.doesNotMatch(text, /TypeError|Cannot read|property/, "no internals reach the model");
    assert.equal(resultText(await server.callTool("echo", { text: "after the crash" })), "after the crash");
    await server.request("ping");
    assert.ok(server.stderr.includes(ref), "the operator finds the reference on stderr");
  });

  void test("structured output that breaks its outputSchema is withheld as an error", async () => {
    const reply = await server.callTool("bad_output", {});
    assert.equal(reply.result?.isError, true);
    assert.equal(reply.result.structuredContent, undefined);
    assert.doesNotMatch(resultText(reply), /many/, "the invalid output is not passed on");
    assert.equal(resultText(await server.callTool("echo", { text: "ok" })), "ok");
  });
});

void describe("stage 2: the rate limit", () => {
  let root: string;
  let server: ServerProcess;

  before(async () => {
    root = makeRoot();
    server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, policy: policyYaml({ root, rateLimits: { spy_target: 2 } }) });
  });

  after(async () => {
    try {
      await server.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  void test("the third call in a minute is refused with when to retry, and never reaches the tool", async () => {
    for (let i = 1; i <= 2; i++) {
      const reply = await server.callTool("spy_target", { n: i });
      assert.notEqual(reply.result?.isError, true, resultText(reply));
    }
    assert.equal(await spyCount(server), 2);
    const third = await server.callTool("spy_target", { n: 3 });
    assert.equal(third.result?.isError, true);
    assert.match(resultText(third), /rate limit/i);
    assert.match(resultText(third), /retry/i);
    assert.equal(await spyCount(server), 2, "the refused call did not reach the tool");
    assert.equal(resultText(await server.callTool("echo", { text: "other tools" })), "other tools", "other tools have their own budget");
    const denied = deniedFor(server.stateDir, "spy_target");
    assert.equal(denied.length, 1);
    assert.match(String(denied[0]!.reason), /^rate_limit:/);
  });
});

void describe("stages 3-5: argument limits, schema, paths", () => {
  let root: string;
  let server: ServerProcess;

  before(async () => {
    root = makeRoot();
    server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, policy: policyYaml({ root }) });
  });

  after(async () => {
    try {
      await server.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  async function refused(args: Message, pattern: RegExp): Promise<string> {
    const reply = await server.callTool("spy_target", args);
    assert.equal(reply.error, undefined, JSON.stringify(reply.error));
    assert.equal(reply.result?.isError, true, `refused: ${JSON.stringify(args).slice(0, 200)}`);
    const text = resultText(reply);
    assert.match(text, pattern, JSON.stringify(args).slice(0, 200));
    return text;
  }

  void test("stage 3: arguments over the policy's limits are refused before anything else", async () => {
    await refused({ value: "a".repeat(201) }, /limit/i);
    // Deeper than max_depth: refused by the limits, before the schema would object to the unknown property.
    const nested = await refused({ deep: [[[[[[[[1]]]]]]]] }, /limit/i);
    assert.doesNotMatch(nested, /unexpected property/);
    await refused({ many: Array.from({ length: 17 }, (_, i) => i) }, /limit/i);
    assert.equal(await spyCount(server), 0, "spy_target was not reached");
    const reasons = deniedFor(server.stateDir, "spy_target").map((e) => String(e.reason));
    assert.equal(reasons.length, 3);
    for (const reason of reasons) assert.match(reason, /^limits:/);
  });

  void test("stage 4: schema violations name the field", async () => {
    await refused({ n: 11 }, /\bn\b.*10|10.*\bn\b/);
    await refused({ n: "3" }, /\bn\b/);
    await refused({ other: 1 }, /other/);
    assert.equal(await spyCount(server), 0, "spy_target was not reached");
    const reasons = deniedFor(server.stateDir, "spy_target").map((e) => String(e.reason));
    assert.equal(reasons.filter((r) => r.startsWith("validation:")).length, 3);
  });

  void test("stage 5: paths outside the allowed root, escapes, links out and denied globs are refused", async () => {
    const attempts = [
      "/etc/passwd",
      `${root}/../../../../etc/passwd`,
      `${root}/link/passwd`,
      `${root}/secrets/key.txt`,
      `${root}/line\nbreak/secrets/key.txt`,
      "../../../../etc/passwd",
      "~/.ssh/id_rsa",
      `file://${root}/file.txt`,
    ];
    for (const value of attempts) await refused({ value, n: 1 }, /arguments\.value|value/);
    assert.equal(await spyCount(server), 0, "spy_target was not reached");
    const reasons = deniedFor(server.stateDir, "spy_target").map((e) => String(e.reason));
    assert.equal(reasons.filter((r) => r.startsWith("path_guard:")).length, attempts.length);
    const calls = auditEntries(server.stateDir).filter((e) => e.event === "tool_call" && e.tool === "spy_target");
    assert.equal(calls.length, 0, "no refused call was recorded as started");
  });

  void test("a valid call passes every stage and reaches the tool", async () => {
    const reply = await server.callTool("spy_target", { value: `${root}/file.txt`, n: 3 });
    assert.notEqual(reply.result?.isError, true, resultText(reply));
    assert.match(resultText(reply), /reached \(1\)/);
    assert.equal(await spyCount(server), 1);
    const calls = auditEntries(server.stateDir).filter((e) => e.event === "tool_call" && e.tool === "spy_target");
    assert.equal(calls.length, 1);
  });

  void test("stage 5: a path the tool would write is refused where a write runs code (the built-in write_denied_paths); reading there is not", async () => {
    const before = await spyCount(server);
    for (const target of [`${root}/.git/hooks/pre-commit`, `${root}/.vscode/tasks.json`, `${root}/.mcp.json`]) {
      await refused({ target, n: 1 }, /may be read but not written/);
    }
    assert.equal(await spyCount(server), before, "spy_target was not reached");
    const read = await server.callTool("spy_target", { value: `${root}/.git/HEAD`, n: 1 });
    assert.notEqual(read.result?.isError, true, resultText(read));
    const write = await server.callTool("spy_target", { target: `${root}/notes/todo.md`, n: 1 });
    assert.notEqual(write.result?.isError, true, resultText(write));
    assert.equal(await spyCount(server), before + 2);
  });
});

void describe("stage 5: the server's own files, under an allowed root", () => {
  let server: ServerProcess;

  before(async () => {
    // The allowed root holds the state directory (audit log, signing key) and the policy file.
    server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, policy: policyYaml({ root: realpathSync(tmpdir()) }) });
  });

  after(async () => {
    await server.close();
  });

  void test("are refused for reads and writes, whatever allowed_paths says; the rest of the root is not", async () => {
    const before = await spyCount(server);
    const state = realpathSync(server.stateDir);
    for (const [args, what] of [
      [{ value: join(state, "audit", "audit.log") }, /the server's state/],
      [{ target: join(state, "audit", "audit.log") }, /the server's state/],
      [{ value: join(state, "keys", "audit-ed25519.pem") }, /the server's state/],
      [{ target: join(state, "data", "x.db") }, /the server's state/],
      [{ target: join(realpathSync(server.home), "policy.yaml") }, /the policy file this server runs on/],
    ] as const) {
      const reply = await server.callTool("spy_target", { ...args, n: 1 });
      assert.equal(reply.result?.isError, true, JSON.stringify(args));
      assert.match(resultText(reply), what);
    }
    assert.equal(await spyCount(server), before, "spy_target was not reached");
    const denied = auditEntries(server.stateDir).filter((entry) => entry.event === "denied" && entry.tool === "spy_target");
    assert.equal(denied.length, 5);
    mkdirSync(join(state, "workspace"), { recursive: true });
    const allowed = await server.callTool("spy_target", { target: join(state, "workspace", "notes.md"), n: 1 });
    assert.notEqual(allowed.result?.isError, true, resultText(allowed));
    assert.equal(await spyCount(server), before + 1);
  });
});

void describe("stage 5: the policy file through a symbolic link", () => {
  let server: ServerProcess;
  let dotfiles: string;
  let root: string;

  before(async () => {
    // ~/policy.yaml links to a dotfiles folder (as stow makes it); the server reads it through the link.
    root = realpathSync(tempDir("msl-linked-"));
    dotfiles = join(root, "dotfiles");
    mkdirSync(dotfiles);
    writeFileSync(join(dotfiles, "policy.yaml"), policyYaml({ root }));
    symlinkSync(join(dotfiles, "policy.yaml"), join(root, "policy.yaml"));
    server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, args: ["--policy", join(root, "policy.yaml")] });
  });

  after(async () => {
    await server.close();
    rmSync(root, { recursive: true, force: true });
  });

  void test("is refused at the link and where it leads; the rest of the folder is not", async () => {
    const before = await spyCount(server);
    for (const target of [join(root, "policy.yaml"), join(dotfiles, "policy.yaml")]) {
      const reply = await server.callTool("spy_target", { target, n: 1 });
      assert.equal(reply.result?.isError, true, target);
      assert.match(resultText(reply), /the policy file this server runs on/);
    }
    assert.equal(await spyCount(server), before, "spy_target was not reached");
    const allowed = await server.callTool("spy_target", { target: join(dotfiles, "notes.md"), n: 1 });
    assert.notEqual(allowed.result?.isError, true, resultText(allowed));
  });
});
