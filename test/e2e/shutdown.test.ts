/**
 * Shutdown over stdio: the server exits promptly and cleanly on stdin EOF, SIGTERM,
 * SIGINT and a closed stdout, also with a tool call in flight, and closes its audit
 * log in order (the in-flight call's outcome, then `server_stop`).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { ServerProcess } from "../helpers/server-process.js";
import { TEST_SERVER_ENTRY, auditEntries, exitWithin, tempDir } from "../helpers/e2e.js";

const PROMPT_EXIT_MS = 2000;

/** Starts a slow (or stubborn) call and resolves once the plugin is running it. */
async function startCall(server: ServerProcess, tool: "slow" | "stubborn", id: string): Promise<void> {
  const token = `${id}-token`;
  server.send({ jsonrpc: "2.0", id, method: "tools/call", params: { name: tool, arguments: { ms: 60_000 }, _meta: { progressToken: token } } });
  await server.waitFor((m) => m.method === "notifications/progress" && m.params?.progressToken === token, 10_000, `start of ${id}`);
}

void test("stdin EOF on an idle session: exit 0 within 2 s", async () => {
  const server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY });
  try {
    assert.deepEqual((await server.request("ping")).result, {});
    server.child.stdin.end();
    const exit = await exitWithin(server, PROMPT_EXIT_MS);
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.match(server.stderr, /shutting down \(stdin closed\)/);
  } finally {
    await server.close();
  }
});

void test("stdin EOF before initialize: exit 0 within 2 s", async () => {
  const server = ServerProcess.start({ entry: TEST_SERVER_ENTRY });
  try {
    assert.deepEqual((await server.request("ping")).result, {});
    server.child.stdin.end();
    assert.deepEqual(await exitWithin(server, PROMPT_EXIT_MS), { code: 0, signal: null });
  } finally {
    await server.close();
  }
});

void test("stdin EOF during a slow call: the call is aborted and the server exits 0 within 2 s", async () => {
  const stateDir = tempDir("msl-state-");
  const server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, stateDir });
  try {
    await startCall(server, "slow", "eof-slow");
    server.child.stdin.end();
    assert.deepEqual(await exitWithin(server, PROMPT_EXIT_MS), { code: 0, signal: null });
    const entries = auditEntries(stateDir);
    const result = entries.find((e) => e.event === "tool_result" && e.requestId === "eof-slow");
    assert.ok(result, "the aborted call's outcome is in the audit log");
    assert.equal(result.outcome, "cancelled");
    const stop = entries.findIndex((e) => e.event === "server_stop");
    assert.ok(stop >= 0, "server_stop is recorded");
    assert.ok(stop > entries.indexOf(result), "server_stop comes after the in-flight call's outcome");
  } finally {
    await server.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

void test("SIGTERM during a call that ignores its signal: exit 0 within 2 s", async () => {
  const stateDir = tempDir("msl-state-");
  const server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, stateDir });
  try {
    await startCall(server, "stubborn", "term-stubborn");
    server.kill("SIGTERM");
    assert.deepEqual(await exitWithin(server, PROMPT_EXIT_MS), { code: 0, signal: null });
    assert.match(server.stderr, /shutting down \(SIGTERM\)/);
    const stop = auditEntries(stateDir).find((e) => e.event === "server_stop");
    assert.ok(stop, "the audit log is closed in order");
    assert.match(String(stop.reason), /SIGTERM/);
  } finally {
    await server.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

void test("SIGINT: exit 0 within 2 s", async () => {
  const server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY });
  try {
    server.kill("SIGINT");
    assert.deepEqual(await exitWithin(server, PROMPT_EXIT_MS), { code: 0, signal: null });
    assert.match(server.stderr, /shutting down \(SIGINT\)/);
  } finally {
    await server.close();
  }
});

void test("SIGHUP (the client's terminal was closed): the call's outcome and server_stop are recorded, exit 0 within 2 s", async () => {
  const stateDir = tempDir("msl-state-");
  const server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, stateDir });
  try {
    await startCall(server, "slow", "hup-slow");
    server.kill("SIGHUP");
    assert.deepEqual(await exitWithin(server, PROMPT_EXIT_MS), { code: 0, signal: null });
    assert.match(server.stderr, /shutting down \(SIGHUP\)/);
    const entries = auditEntries(stateDir);
    assert.equal(entries.find((e) => e.event === "tool_result" && e.requestId === "hup-slow")?.outcome, "cancelled");
    assert.match(String(entries.find((e) => e.event === "server_stop")?.reason), /SIGHUP/);
  } finally {
    await server.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

void test("a promise rejected with nobody to handle it is logged (redacted) and the server goes on serving", async () => {
  const server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY });
  try {
    assert.deepEqual((await server.request("logging/setLevel", { level: "debug" })).result, {});
    const stray = (await server.callTool("stray", { kind: "rejection" })).result as { isError?: boolean };
    assert.notEqual(stray.isError, true);
    await server.waitForStderr(/internal error, ignored \(a promise rejected with nobody to handle it\): Error: stray rejection/, 5000);
    assert.doesNotMatch(server.stderr, /hunter2/, "the stack is redacted like every log line");
    assert.match(server.stderr, /stray rejection[^\n]*\\u000a +at /, "the operator gets the stack");
    // The client hears of it, without the stack and its file paths (no internal details in log messages).
    const told = await server.waitFor((m) => m.method === "notifications/message" && JSON.stringify(m.params).includes("stray rejection"), 5000);
    assert.doesNotMatch(JSON.stringify(told.params), /\bat |\.c?js:\d+/);
    assert.deepEqual((await server.request("ping")).result, {});
    assert.deepEqual((await server.callTool("echo", { text: "still here" })).result, { content: [{ type: "text", text: "still here" }] });
    server.child.stdin.end();
    assert.deepEqual(await exitWithin(server, PROMPT_EXIT_MS), { code: 0, signal: null });
  } finally {
    await server.close();
  }
});

void test("an exception no caller could catch stops the server in order: calls in flight recorded, server_stop, exit 1", async () => {
  const stateDir = tempDir("msl-state-");
  const server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, stateDir });
  try {
    await startCall(server, "slow", "fault-slow");
    server.send({ jsonrpc: "2.0", id: "fault", method: "tools/call", params: { name: "stray", arguments: { kind: "exception" } } });
    assert.deepEqual(await exitWithin(server, PROMPT_EXIT_MS), { code: 1, signal: null });
    assert.match(server.stderr, /internal error, stopping \(an exception no caller could catch\): Error: stray exception/);
    assert.doesNotMatch(server.stderr, /hunter2/);
    assert.match(server.stderr, /audit head: seq=\d+/, "the audit log was closed and its head printed");
    const entries = auditEntries(stateDir);
    assert.equal(entries.find((e) => e.event === "tool_result" && e.requestId === "fault-slow")?.outcome, "cancelled");
    assert.match(String(entries.find((e) => e.event === "server_stop")?.reason), /internal error/);
  } finally {
    await server.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

void test("a closed stdout (EPIPE) ends the session cleanly", async () => {
  const server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY });
  try {
    server.child.stdout.destroy();
    // The next answers hit a closed pipe.
    for (let i = 0; i < 3; i++) server.send({ jsonrpc: "2.0", id: `after-close-${i}`, method: "ping" });
    assert.deepEqual(await exitWithin(server, PROMPT_EXIT_MS), { code: 0, signal: null });
    assert.match(server.stderr, /shutting down \(stdout closed\)/);
    assert.doesNotMatch(server.stderr, /fatal|Unhandled/i);
  } finally {
    await server.close();
  }
});

void test("SIGTERM while the client has stopped reading stdout: exit 0 within 2 s, the audit log closed", async () => {
  const stateDir = tempDir("msl-state-");
  const policy = `version: "1.0"\ntools:\n  rate_limits:\n    default: 1000000\naudit:\n  fsync: batch\n`;
  const server = await ServerProcess.initialized({ policy, stateDir });
  try {
    server.child.stdout.pause();
    // Answers of a few KB each: the pipe and the server's own buffer fill, and stay full.
    for (let i = 0; i < 500; i++) {
      server.send({ jsonrpc: "2.0", id: `fill-${i}`, method: "tools/call", params: { name: "search_tools", arguments: { query: "", detail_level: "full" } } });
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    server.kill("SIGTERM");
    assert.deepEqual(await exitWithin(server, PROMPT_EXIT_MS), { code: 0, signal: null });
    assert.ok(auditEntries(stateDir).some((e) => e.event === "server_stop"), "the audit log is closed in order");
  } finally {
    server.child.stdout.resume();
    await server.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

void test("a closed stderr (EPIPE) is not fatal: the session goes on and ends in order", async () => {
  const stateDir = tempDir("msl-state-");
  // Closed before the server writes its banner: every stderr write of the session fails.
  const server = ServerProcess.start({ entry: TEST_SERVER_ENTRY, stateDir, args: ["--log-level", "debug"] });
  server.child.stderr.destroy();
  try {
    const init = await server.request("initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "msl-test", version: "1" } });
    assert.ok(init.result, "initialize is answered");
    server.notify("notifications/initialized");
    // The crash is logged at error level: a write to the closed stderr.
    const crashed = await server.callTool("crash", {});
    assert.equal(crashed.result?.isError, true);
    assert.deepEqual((await server.request("ping")).result, {});
    server.child.stdin.end();
    assert.deepEqual(await exitWithin(server, PROMPT_EXIT_MS), { code: 0, signal: null });
    assert.ok(auditEntries(stateDir).some((e) => e.event === "server_stop"), "the audit log is closed in order");
  } finally {
    await server.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
});
