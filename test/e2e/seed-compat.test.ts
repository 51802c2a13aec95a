/**
 * Seed compatibility over real pipes: policies as the Python seed server's users have them
 * (its shipped file, and the odd but valid YAML a Python user writes) start the built server
 * unchanged, and the seed's tool and argument names work as the seed's README shows them.
 * Where the seed had a flaw we fix, the server says so in words.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ServerProcess, type Message } from "../helpers/server-process.js";
import { exitWithin, expectStructured, expectToolError, tempDir } from "../helpers/e2e.js";
import { ROOT } from "../helpers/project.js";

const SEED_POLICY = readFileSync(join(ROOT, "test", "fixtures", "seed-policy.yaml"), "utf8");

/** A home like a seed user's: ~/projects/<name>, where the seed policy allows files. */
function seedHome(): { home: string; project: string } {
  const home = tempDir("msl-seed-home-");
  const project = join(home, "projects", "my-app");
  mkdirSync(project, { recursive: true });
  return { home, project };
}

void describe("the seed's shipped policy", () => {
  void test("starts the server unchanged; the seed README's tool calls work with their argument names", async () => {
    const { home, project } = seedHome();
    const server = await ServerProcess.initialized({ policy: SEED_POLICY, env: { HOME: home, MCP_PROJECT_PATH: project } });
    try {
      assert.doesNotMatch(server.stderr, /refusing to start/);
      // The seed's audit log file, in the (temporary) home the policy names.
      await server.waitForStderr(new RegExp(`audit ${join(home, ".mcp-secure", "audit.log")}`), 5000);
      const names = expectStructured(await server.callTool("search_tools", { query: "bug", detail_level: "name" }));
      assert.deepEqual(
        (names.results as Message[]).map((tool) => tool.name).sort(),
        ["add_bug", "close_bug", "get_bug", "init_bugtracker", "list_bugs", "search_bugs_global", "update_bug"],
      );
      const categories = expectStructured(await server.callTool("list_categories", {}));
      assert.deepEqual((categories.categories as Message[]).map((category) => category.category), ["discovery", "bugtracker", "files", "websearch", "status"]);
      // The seed's web_search, with its two arguments (calling it would search the real web).
      const web = expectStructured(await server.callTool("search_tools", { query: "search the web", detail_level: "full" }));
      const webSearch = (web.results as Message[]).find((tool) => tool.name === "web_search");
      assert.deepEqual(Object.keys(webSearch?.inputSchema.properties ?? {}).sort(), ["max_results", "query"]);
      expectStructured(await server.callTool("init_bugtracker", { project_path: project }));
      const added = expectStructured(
        await server.callTool("add_bug", {
          title: "Login button not responding",
          description: "The login button on the home page doesn't trigger the auth flow",
          priority: "high",
          tags: ["ui", "auth"],
        }),
      );
      const bugId = (added.bug as Message).bug_id as string;
      expectStructured(await server.callTool("update_bug", { bug_id: bugId, status: "in_progress", note: "Identified missing onClick handler" }));
      expectStructured(await server.callTool("close_bug", { bug_id: bugId, resolution: "Added onClick handler to LoginButton component" }));
      const listed = expectStructured(await server.callTool("list_bugs", { status: "closed", tags: ["ui"] }));
      assert.deepEqual((listed.bugs as Message[]).map((bug) => bug.bug_id), [bugId]);
      const global = expectStructured(await server.callTool("search_bugs_global", { status: "closed", priority: "high", tags: ["auth"] }));
      assert.equal((global.bugs as Message[]).length, 1);
      // The seed accepted a project outside allowed_paths (its path policy was never applied): refused, in words.
      expectToolError(await server.callTool("init_bugtracker", { project_path: "../../../../../../etc" }), /outside the directories the filesystem policy allows/);
      assert.doesNotMatch(server.stderr, /the session's project/, "a usable session project is not warned about");
    } finally {
      await server.close();
      rmSync(home, { recursive: true, force: true });
    }
  });

  void test("keeps the seed's rate limits: the 6th init_bugtracker in a minute is refused, as in the seed", async () => {
    const { home, project } = seedHome();
    const server = await ServerProcess.initialized({ policy: SEED_POLICY, env: { HOME: home } });
    try {
      for (let call = 1; call <= 5; call++) expectStructured(await server.callTool("init_bugtracker", { project_path: project }));
      expectToolError(await server.callTool("init_bugtracker", { project_path: project }), /Rate limit for "init_bugtracker" reached \(5 calls per minute\)/);
    } finally {
      await server.close();
      rmSync(home, { recursive: true, force: true });
    }
  });
});

void test("a seed policy in a Python user's YAML (merge keys, commented-out lists, FATAL, a repeated port, a 1e9 limit) serves", async () => {
  const { home, project } = seedHome();
  const policy = [
    "---",
    "version: 1.0",
    "network:",
    "  allowed_ranges:",
    '    # - "127.0.0.0/8"',
    "  allowed_endpoints:",
    "    - &ddg",
    "      host: api.duckduckgo.com",
    "      ports: [443, 443]",
    "      description:",
    "    - <<: *ddg",
    "      host: lite.duckduckgo.com",
    "  blocked_ports:",
    "    - 22    # SSH",
    "  allow_dns: yes",
    "  dns_allowlist: [api.duckduckgo.com, lite.duckduckgo.com]",
    "filesystem:",
    "  allowed_paths:",
    '    - "${HOME}/projects/**"',
    "  denied_paths: ['**/.ssh/**', '**/*.pem']",
    "commands:",
    "  blocked: [curl, wget]",
    "tools:",
    "  rate_limits: {default: 1e9, init_bugtracker: 5}",
    "  timeout: 30",
    "audit:",
    "  log_file: ${HOME}/.mcp-secure/audit.log",
    "  log_level: FATAL",
    "  include: [timestamp, tool_name]",
    "...",
    "",
  ].join("\n");
  const server = await ServerProcess.initialized({ policy, env: { HOME: home } });
  try {
    assert.doesNotMatch(server.stderr, /refusing to start/);
    await server.waitForStderr(/warning: policy: network\.allowed_endpoints\[0\]\.ports: 443 is listed more than once/, 5000);
    expectStructured(await server.callTool("init_bugtracker", { project_path: project }));
    expectStructured(await server.callTool("add_bug", { title: "From a Python user's policy", project_path: project }));
  } finally {
    await server.close();
    rmSync(home, { recursive: true, force: true });
  }
});

void test("the seed's own audit log where a seed policy puts ours: the start says what it is and how to keep it", async () => {
  const { home } = seedHome();
  const seedLog = join(home, ".mcp-secure", "audit.log");
  mkdirSync(join(home, ".mcp-secure"), { recursive: true });
  // What the seed writes (its rate-limit events, JSON Lines, no hash chain).
  const record = '{"type": "security", "timestamp": "2026-11-22T01:53:38.456155Z", "event_type": "rate_limit_exceeded", "details": {"tool": "init_bugtracker", "limit": 5, "window_seconds": 60.0}}\n';
  writeFileSync(seedLog, record.repeat(3), { mode: 0o644 });
  const refused = ServerProcess.start({ policy: SEED_POLICY, env: { HOME: home } });
  try {
    const { code } = await exitWithin(refused, 5000);
    assert.equal(code, 1);
    assert.match(refused.stderr, /refusing to start: audit log .*\.mcp-secure\/audit\.log holds the Python seed server's audit records/);
    assert.match(refused.stderr, /mv .*audit\.log .*audit\.log\.seed/);
    assert.doesNotMatch(refused.stderr, /modified or damaged/);
    assert.equal(readFileSync(seedLog, "utf8"), record.repeat(3), "the seed's log is left as it was");
  } finally {
    refused.kill();
    refused.cleanup();
  }
  // Moved aside as the message says, the same policy starts.
  renameSync(seedLog, `${seedLog}.seed`);
  const server = await ServerProcess.initialized({ policy: SEED_POLICY, env: { HOME: home } });
  try {
    assert.deepEqual((await server.request("ping")).result, {});
    assert.ok(existsSync(seedLog));
  } finally {
    await server.close();
    rmSync(home, { recursive: true, force: true });
  }
});

void test("a session project that does not exist is said at start", async () => {
  const { home } = seedHome();
  const missing = join(home, "projects", "not-made-yet");
  const server = await ServerProcess.initialized({ policy: SEED_POLICY, env: { HOME: home, MCP_PROJECT_PATH: missing } });
  try {
    await server.waitForStderr(new RegExp(`warning: the session's project ${missing} \\(MCP_PROJECT_PATH\\) does not exist`), 5000);
  } finally {
    await server.close();
    rmSync(home, { recursive: true, force: true });
  }
});
