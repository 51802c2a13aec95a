/**
 * Start-up: the handshake does not wait for schema compilation, tools wait for it,
 * and an invalid tool schema stops the server before any tool is listed or called.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ServerProcess } from "../helpers/server-process.js";
import { TEST_SERVER_ENTRY, exitWithin } from "../helpers/e2e.js";

test("an invalid tool schema stops the server, naming the tool, before any tool is served", async () => {
  const server = ServerProcess.start({ entry: TEST_SERVER_ENTRY, env: { TESTKIT_BROKEN_SCHEMA: "1" } });
  try {
    const init = await server.request("initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } });
    assert.ok(init.result, "the handshake itself is answered");
    server.send({ jsonrpc: "2.0", id: "list", method: "tools/list" });
    server.send({ jsonrpc: "2.0", id: "call", method: "tools/call", params: { name: "broken_tool", arguments: {} } });
    const { code } = await exitWithin(server, 5000);
    assert.equal(code, 1);
    assert.match(server.stderr, /broken_tool/);
    const served = server.messages.filter((m) => m.id === "list" || m.id === "call");
    for (const message of served) assert.ok(message.error, `no tool was served: ${JSON.stringify(message)}`);
    assert.ok(!server.rawLines.some((line) => line.includes("must never run")));
  } finally {
    server.kill();
    server.cleanup();
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
