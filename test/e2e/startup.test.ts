/**
 * Start-up: the handshake does not wait for the tool schemas, tools wait for them; a
 * schema of the wrong shape stops the server at start, and a schema Ajv refuses fails
 * that tool's calls closed while the other tools keep working.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ServerProcess } from "../helpers/server-process.js";
import { SERVER_ENTRY } from "../helpers/project.js";
import { TEST_SERVER_ENTRY, exitWithin } from "../helpers/e2e.js";

const INIT = { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } };

test("a tool schema of the wrong shape stops the server at start, naming the tool, before any tool is served", async () => {
  const server = ServerProcess.start({ entry: TEST_SERVER_ENTRY, env: { TESTKIT_BROKEN_SCHEMA: "shape" } });
  try {
    server.send({ jsonrpc: "2.0", id: "init", method: "initialize", params: INIT });
    server.send({ jsonrpc: "2.0", id: "call", method: "tools/call", params: { name: "broken_tool", arguments: {} } });
    const { code } = await exitWithin(server, 5000);
    assert.equal(code, 1);
    assert.match(server.stderr, /broken_tool.*"type": "object"/);
    assert.ok(!server.messages.some((m) => m.id === "call" && m.result), "no tool was served");
    assert.ok(!server.rawLines.some((line) => line.includes("must never run")));
  } finally {
    server.kill();
    server.cleanup();
  }
});

test("a tool schema Ajv refuses fails that tool's calls closed, says why, and the server keeps serving", async () => {
  const server = ServerProcess.start({ entry: TEST_SERVER_ENTRY, env: { TESTKIT_BROKEN_SCHEMA: "ajv" } });
  try {
    await server.request("initialize", INIT);
    for (let attempt = 0; attempt < 2; attempt++) {
      const call = await server.callTool("broken_tool", { n: 1 });
      assert.equal(call.result.isError, true);
      assert.match(call.result.content[0].text, /broken_tool.*invalid/s);
    }
    assert.ok(!server.rawLines.some((line) => line.includes("must never run")), "the plugin was never reached");
    assert.match(server.stderr, /broken_tool/, "the operator sees which schema is broken");
    const other = await server.callTool("search_tools", { query: "bug" });
    assert.equal(other.result.isError, undefined);
  } finally {
    await server.close();
  }
});

test("tools/list sent right behind initialize waits for the schemas and lists every tool", async () => {
  const server = ServerProcess.start();
  try {
    server.send({ jsonrpc: "2.0", id: "init", method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } } });
    const list = await server.request("tools/list");
    assert.ok(list.result.tools.length >= 9);
    const call = await server.callTool("search_tools", { query: "bug" });
    assert.equal(call.result.isError, undefined);
  } finally {
    await server.close();
  }
});

test("a tools entry naming no tool (deny, allow, rate limit, timeout) is a warning at start; what the policy turns off is info; the server serves on", async () => {
  const policy =
    'version: "1.0"\ntools:\n  deny: [wirte_file]\n  rate_limits:\n    default: 600\n    add_bugs: 5\n    echo: 100\n  timeouts:\n    get_bugg: 3\n';
  const server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, policy });
  try {
    // stderr is another pipe than stdout: what was written before the handshake's answer may arrive after it.
    await server.waitForStderr(/warning: policy: tools\.deny names "wirte_file", which matches no tool of this server: it denies nothing \(a typo\?\)/, 5000);
    await server.waitForStderr(/warning: policy: tools\.rate_limits names "add_bugs", which matches no tool of this server: that entry has no effect/, 5000);
    await server.waitForStderr(/warning: policy: tools\.timeouts names "get_bugg", which/, 5000);
    assert.doesNotMatch(server.stderr, /names [^\n]*echo/, "a real tool's entry is not named");
    assert.match(server.stderr, /info: policy: network\.allowed_ranges and network\.allowed_endpoints are empty: no network access/);
    assert.deepEqual((await server.request("ping")).result, {});
  } finally {
    await server.close();
  }
});

test("where programs may run, a descriptor the parent leaves open (no close-on-exec) is closed at start, so no program run for a tool gets it", async (t) => {
  if (process.platform !== "linux") {
    t.skip("descriptors are told apart through /proc/self/fdinfo (Linux)");
    return;
  }
  const stateDir = mkdtempSync(join(tmpdir(), "msl-fds-"));
  // fd 40 of the server: one end of a socket pair, open across exec as a parent's extra descriptor
  // is (Node marks its lowest descriptors close-on-exec at start itself, so a high one is used).
  const FD = 40;
  const stdio: Array<"pipe" | "ignore"> = ["pipe", "pipe", "pipe", ...Array.from({ length: FD - 3 }, () => "ignore" as const), "pipe"];
  // Programs may run (only then are descriptors closed: a parent may watch one to learn when its child ends).
  const policy = join(stateDir, "policy-exec.yaml");
  writeFileSync(policy, 'version: "1.0"\ncommands:\n  allowed: ["true"]\n');
  const child = spawn(process.execPath, [SERVER_ENTRY, "--state-dir", stateDir, "--policy", policy], { stdio });
  try {
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const extra = (child.stdio as unknown as Socket[])[FD]!;
    const closedByChild = new Promise<boolean>((resolve) => {
      extra.once("end", () => resolve(true));
      extra.once("close", () => resolve(true));
      setTimeout(() => resolve(false), 10_000).unref();
    });
    extra.resume();
    assert.equal(await closedByChild, true, `the server closed its copy while running; stderr:\n${stderr}`);
    for (const start = Date.now(); !stderr.includes("Waiting for an MCP client") && Date.now() - start < 10_000; ) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(child.exitCode, null, "and it is still serving");
    assert.match(stderr, /closed \d+ file descriptor\(s\) inherited from the parent \((\d+, )*40(, \d+)*\)/);
  } finally {
    child.kill("SIGKILL");
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test("a deny rule that does not compile is named on stderr after the handshake (it refuses every path until fixed), and the server serves on", async () => {
  const policy = ['version: "1.0"', "filesystem:", '  denied_paths: ["**/{secrets,private"]', '  write_denied_paths: ["**/[z-a]"]', ""].join("\n");
  const server = await ServerProcess.initialized({ policy });
  try {
    await server.waitForStderr(
      /error: policy: filesystem\.denied_paths entry "\*\*\/\{secrets,private" is not a valid glob[^\n]*: until it is fixed, tools are refused every file access; check-policy names/,
      5000,
    );
    await server.waitForStderr(/error: policy: filesystem\.write_denied_paths entry "\*\*\/\[z-a\]" is not a valid glob[^\n]*: until it is fixed, tools are refused every write/, 5000);
    const read = await server.callTool("list_directory", { path: "/" });
    assert.equal(read.result.isError, true);
    assert.match(read.result.content[0].text, /is not a valid glob/);
  } finally {
    await server.close();
  }
});
