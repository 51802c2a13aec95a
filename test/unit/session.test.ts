/**
 * The connection and the MCP session over in-memory streams, with a stub tool
 * service: lifecycle, concurrency, cancellation, progress, logging and shutdown hooks.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { Connection } from "../../src/protocol/connection.js";
import { McpSession } from "../../src/protocol/session.js";
import type { CallToolResult, ToolCall, ToolService } from "../../src/security/engine.js";
import type { ToolDefinition } from "../../src/plugins/contract.js";
import { createLogHub, silentLogger } from "../../src/util/logger.js";

type Msg = Record<string, any>;

const tool = (name: string): ToolDefinition => ({
  name,
  title: name,
  description: `the ${name} tool`,
  inputSchema: { type: "object" },
  annotations: { readOnlyHint: true },
});

class StubTools implements ToolService {
  readonly calls: ToolCall[] = [];
  readonly aborted: string[] = [];
  constructor(readonly tools = [tool("fast"), tool("slow"), tool("progress"), tool("a"), tool("b"), tool("c")]) {}
  whenReady() {
    return this.gate ?? Promise.resolve();
  }
  /** Tests hold the tools "not ready" with this gate; open, calls wait on nothing. */
  gate: Promise<void> | undefined;
  isReady() {
    return this.gate === undefined;
  }
  listTools() {
    return this.tools;
  }
  hasTool(name: string) {
    return this.tools.some((t) => t.name === name);
  }
  async callTool(call: ToolCall): Promise<CallToolResult> {
    this.calls.push(call);
    if (call.name === "slow") {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5000);
        call.abort.onAbort(() => {
          clearTimeout(timer);
          this.aborted.push(String(call.requestId));
          resolve();
        });
      });
      return { content: [{ type: "text", text: "slow done" }] };
    }
    if (call.name === "progress") {
      call.progress?.report({ progress: 1, total: 2 });
      await new Promise((resolve) => setTimeout(resolve, 60));
      call.progress?.report({ progress: 2, total: 2 });
      return { content: [{ type: "text", text: "progressed" }] };
    }
    return { content: [{ type: "text", text: `${call.name}:${JSON.stringify(call.arguments)}` }] };
  }
}

function setup(tools = new StubTools(), pageSize = 50) {
  const input = new PassThrough();
  const output = new PassThrough();
  const hub = createLogHub({ stderr: () => undefined });
  const session = new McpSession({
    identity: { name: "n", version: "1", title: "t", description: "d", instructions: "i" },
    tools,
    logHub: hub,
    logger: silentLogger,
    pageSize,
    redact: (value) => value,
  });
  const connection = new Connection(input, output, session.handlers, { maxLineBytes: 1024, logger: silentLogger });
  session.attach(connection);
  connection.start();
  const received: Msg[] = [];
  let buffer = "";
  const waiters: Array<[(m: Msg) => boolean, (m: Msg) => void]> = [];
  output.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("utf8");
    let i: number;
    while ((i = buffer.indexOf("\n")) !== -1) {
      const message = JSON.parse(buffer.slice(0, i)) as Msg;
      buffer = buffer.slice(i + 1);
      received.push(message);
      const index = waiters.findIndex(([match]) => match(message));
      if (index !== -1) waiters.splice(index, 1)[0]![1](message);
    }
  });
  const send = (message: Msg | string) => input.write(`${typeof message === "string" ? message : JSON.stringify(message)}\n`);
  const waitFor = (match: (m: Msg) => boolean) =>
    new Promise<Msg>((resolve, reject) => {
      const seen = received.find(match);
      if (seen) return resolve(seen);
      const timer = setTimeout(() => reject(new Error("timeout")), 3000);
      waiters.push([match, (m) => (clearTimeout(timer), resolve(m))]);
    });
  const request = (id: number | string, method: string, params?: Msg) => {
    send(params === undefined ? { jsonrpc: "2.0", id, method } : { jsonrpc: "2.0", id, method, params });
    return waitFor((m) => m.id === id);
  };
  const init = () => request(0, "initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "c", version: "1" } });
  const settle = (ms = 30) => new Promise((resolve) => setTimeout(resolve, ms));
  return { input, output, session, connection, hub, received, send, request, waitFor, init, settle, tools };
}

test("ping works before initialize; other requests are refused until then", async () => {
  const s = setup();
  assert.deepEqual((await s.request(1, "ping")).result, {});
  const early = await s.request(2, "tools/list");
  assert.equal(early.error.code, -32600);
  const init = await s.init();
  assert.equal(init.result.protocolVersion, "2025-11-25");
  assert.deepEqual(init.result.capabilities, { tools: {}, logging: {} });
  assert.equal((await s.request(3, "tools/list")).result.tools.length, 6);
});

test("a request pipelined right behind initialize is served (gated on the response, not on initialized)", async () => {
  const s = setup();
  s.input.write(
    `${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "c", version: "1" } } })}\n` +
      `${JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" })}\n`,
  );
  assert.equal((await s.waitFor((m) => m.id === 1)).result.protocolVersion, "2025-06-18");
  assert.ok((await s.waitFor((m) => m.id === 2)).result.tools);
});

test("a second initialize is -32600 and the session stays usable", async () => {
  const s = setup();
  await s.init();
  assert.equal((await s.request(5, "initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "c", version: "1" } })).error.code, -32600);
  assert.deepEqual((await s.request(6, "ping")).result, {});
});

test("unknown methods are -32601 with the id; notifications and responses get no answer", async () => {
  const s = setup();
  await s.init();
  assert.equal((await s.request("x", "resources/list")).error.code, -32601);
  const before = s.received.length;
  s.send({ jsonrpc: "2.0", method: "foo/bar" });
  s.send({ jsonrpc: "2.0", id: 999, result: {} });
  s.send({ jsonrpc: "2.0", method: "notifications/initialized" });
  await s.settle();
  assert.equal(s.received.length, before);
});

test("tools/call param shape errors and unknown tools are -32602; missing arguments mean {}", async () => {
  const s = setup();
  await s.init();
  assert.equal((await s.request(1, "tools/call", {})).error.code, -32602);
  assert.equal((await s.request(2, "tools/call", { name: 5 })).error.code, -32602);
  assert.equal((await s.request(3, "tools/call", { name: "fast", arguments: [] })).error.code, -32602);
  assert.equal((await s.request(4, "tools/call", { name: "fast", arguments: "x" })).error.code, -32602);
  const unknown = await s.request(5, "tools/call", { name: "nope" });
  assert.equal(unknown.error.code, -32602);
  assert.match(unknown.error.message, /Unknown tool: nope/);
  // The client's text comes back harmless: escapes and overrides visible, a lone surrogate replaced.
  const hostile = await s.request(8, "tools/call", { name: "x\u001b[31my\u202e\ud800z" });
  assert.equal(hostile.error.message, "Unknown tool: x\\u001b[31my\\u202e\ufffdz. Call tools/list to see the tools available.");
  const method = await s.request(9, "no\u001b]52;c;aGk=\u0007method");
  assert.equal(method.error.message, "Method not found: no\\u001b]52;c;aGk=\\u0007method");
  assert.equal((await s.request(6, "tools/call", { name: "fast" })).result.content[0].text, "fast:{}");
  assert.equal((await s.request(7, "tools/call", { name: "fast", arguments: { a: 1 }, task: { ttl: 1000 } })).result.content[0].text, 'fast:{"a":1}');
});

test("an unknown tool's -32602 is sent only once the engine has recorded the call (no answer without its entry)", async () => {
  let record: () => void = () => undefined;
  const noted: string[] = [];
  class RecordingTools extends StubTools {
    noteUnknownTool(name: string): Promise<void> {
      noted.push(name);
      return new Promise<void>((resolve) => (record = resolve));
    }
  }
  const s = setup(new RecordingTools());
  await s.init();
  s.send({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "nope" } });
  await s.settle();
  assert.deepEqual(noted, ["nope"]);
  assert.equal(s.received.find((m) => m.id === 1), undefined, "no answer while the denied entry is being written");
  record();
  const answer = await s.waitFor((m) => m.id === 1);
  assert.equal(answer.error.code, -32602);
  assert.match(answer.error.message, /Unknown tool: nope/);
});

test("a tools/call with malformed params is answered -32602 only once the engine has recorded it", async () => {
  let record: () => void = () => undefined;
  const noted: Array<[string | undefined, string]> = [];
  class RecordingTools extends StubTools {
    noteInvalidCall(name: string | undefined, _id: unknown, problem: string): Promise<void> {
      noted.push([name, problem]);
      return new Promise<void>((resolve) => (record = resolve));
    }
  }
  const s = setup(new RecordingTools());
  await s.init();
  s.send({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "fast", arguments: [] } });
  await s.settle();
  assert.deepEqual(noted, [["fast", '"arguments" must be an object when present']]);
  assert.equal(s.received.find((m) => m.id === 1), undefined, "no answer while the denied entry is being written");
  record();
  const answer = await s.waitFor((m) => m.id === 1);
  assert.equal(answer.error.code, -32602);
  assert.match(answer.error.message, /"arguments" must be an object/);
  const nameless = s.request(2, "tools/call", { name: 5 });
  await s.settle();
  record();
  assert.equal((await nameless).error.code, -32602);
  assert.deepEqual(noted[1], [undefined, 'tools/call needs "name", a non-empty string']);
});

test("requests run concurrently: ping and a fast call answer while a slow call runs", async () => {
  const s = setup();
  await s.init();
  s.send({ jsonrpc: "2.0", id: "slow", method: "tools/call", params: { name: "slow" } });
  assert.deepEqual((await s.request("p", "ping")).result, {});
  assert.ok((await s.request("f", "tools/call", { name: "fast" })).result);
  assert.ok(!s.received.some((m) => m.id === "slow"), "the slow call has not answered yet");
  s.connection.abortAll("test over");
});

test("notifications/cancelled aborts the call and suppresses its response; unknown ids are ignored", async () => {
  const s = setup();
  await s.init();
  s.send({ jsonrpc: "2.0", id: 10, method: "tools/call", params: { name: "slow" } });
  await s.settle();
  s.send({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 10, reason: "user" } });
  s.send({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 12345 } });
  s.send({ jsonrpc: "2.0", method: "notifications/cancelled", params: {} });
  await s.settle(80);
  assert.deepEqual(s.tools.aborted, ["10"]);
  assert.ok(!s.received.some((m) => m.id === 10), "no response for the cancelled call");
  assert.deepEqual((await s.request(11, "ping")).result, {}, "still serving");
});

test("a duplicate in-flight id is refused without cross-wiring", async () => {
  const s = setup();
  await s.init();
  s.send({ jsonrpc: "2.0", id: 20, method: "tools/call", params: { name: "slow" } });
  await s.settle();
  s.send({ jsonrpc: "2.0", id: 20, method: "ping" });
  const dup = await s.waitFor((m) => m.error?.data?.id === 20);
  assert.equal(dup.error.code, -32600);
  assert.equal(dup.id, undefined, "answered without the id, so the call in flight keeps one response");
  s.connection.abortAll("done");
  const slow = await s.waitFor((m) => m.id === 20 && m.result);
  assert.equal(slow.result.content[0].text, "slow done");
  await s.settle();
  assert.equal(s.received.filter((m) => m.id === 20).length, 1, "exactly one response carries id 20");
});

test("progress is sent only with a token, increases, and never after the response", async () => {
  const s = setup();
  await s.init();
  await s.request(30, "tools/call", { name: "progress" });
  assert.ok(!s.received.some((m) => m.method === "notifications/progress"), "no token, no progress");
  const response = await s.request(31, "tools/call", { name: "progress", _meta: { progressToken: "tok" } });
  assert.equal(response.result.content[0].text, "progressed");
  await s.settle(80);
  const responseIndex = s.received.indexOf(response);
  const progress = s.received.map((m, i) => [m, i] as const).filter(([m]) => m.method === "notifications/progress");
  assert.ok(progress.length >= 1);
  for (const [m, i] of progress) {
    assert.equal(m.params.progressToken, "tok");
    assert.ok(i < responseIndex, "progress before the response");
  }
});

test("logging/setLevel filters notifications/message; an invalid level is -32602", async () => {
  const s = setup();
  await s.init();
  const log = s.hub.logger("t");
  assert.equal((await s.request(40, "logging/setLevel", { level: "verbose" })).error.code, -32602);
  assert.deepEqual((await s.request(41, "logging/setLevel", { level: "error" })).result, {});
  log.warn("not sent");
  log.error("sent", { a: 1 });
  const message = await s.waitFor((m) => m.method === "notifications/message");
  assert.equal(message.params.level, "error");
  assert.equal(message.params.data.message, "sent");
  assert.ok(!s.received.some((m) => m.params?.data?.message === "not sent"));
});

test("log notifications are sanitized like tool results: no escapes, controls, bidi or tag characters reach the client", async () => {
  const s = setup();
  await s.init();
  const log = s.hub.logger("plugin");
  const tag = [..."evil"].map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0))).join("");
  log.error(`file \u001b]52;c;ZXZpbA==\u0007read\u202E failed${tag}`, { "path\u001b[8m": `x\u0000y${tag}`, list: ["\u001b[2Jz"] });
  const message = await s.waitFor((m) => m.method === "notifications/message");
  assert.equal(message.params.data.message, "file read failed");
  assert.deepEqual(message.params.data.details, { path: "xy", list: ["z"] });
});

test("the log notification rate window follows elapsed time, not the wall clock", async (t) => {
  const s = setup();
  await s.init();
  const log = s.hub.logger("t");
  const wall = Date.now();
  t.mock.method(Date, "now", () => wall);
  for (let i = 0; i < 21; i++) log.error(`burst ${i}`); // the 21st passes the 20 a second: dropped
  // The wall clock is stepped back an hour (an NTP correction, a suspended laptop's resync).
  t.mock.method(Date, "now", () => wall - 3_600_000);
  await s.settle(1100);
  log.error("after a second");
  const after = await s.waitFor((m) => m.params?.data?.message === "after a second");
  assert.equal(after.method, "notifications/message");
  assert.ok(s.received.some((m) => m.params?.data?.message === "1 log messages were dropped by the rate limit"));
});

test("tools/list pages with opaque cursors; a bad cursor is -32602", async () => {
  const s = setup(new StubTools(), 4);
  await s.init();
  const first = await s.request(50, "tools/list");
  assert.equal(first.result.tools.length, 4);
  const second = await s.request(51, "tools/list", { cursor: first.result.nextCursor });
  assert.equal(second.result.tools.length, 2);
  assert.equal(second.result.nextCursor, undefined);
  assert.equal((await s.request(52, "tools/list", { cursor: "nope" })).error.code, -32602);
});

test("an over-long line gets one error and the connection keeps serving", async () => {
  const s = setup();
  s.send("x".repeat(5000));
  const error = await s.waitFor((m) => m.error?.code === -32600);
  assert.equal(error.id, undefined);
  assert.deepEqual((await s.request(60, "ping")).result, {});
});

test("stdin end is reported once", async () => {
  const s = setup();
  const ended = new Promise((resolve) => s.connection.onEnd(resolve));
  s.input.end();
  assert.equal(await ended, "input-end");
});

test("calls wait for the tools to be ready; one cancelled while waiting gets no response and leaves no progress behind", async () => {
  const tools = new StubTools();
  let open!: () => void;
  tools.gate = new Promise<void>((resolve) => (open = resolve));
  const s = setup(tools);
  await s.init();
  s.send({ jsonrpc: "2.0", id: "w1", method: "tools/call", params: { name: "fast", _meta: { progressToken: "pt" } } });
  s.send({ jsonrpc: "2.0", id: "w2", method: "tools/call", params: { name: "fast" } });
  await s.settle();
  assert.equal(s.received.filter((m) => m.id === "w1" || m.id === "w2").length, 0, "nothing answered before ready");
  s.send({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: "w1" } });
  await s.settle();
  tools.gate = undefined;
  open();
  const served = await s.waitFor((m) => m.id === "w2");
  assert.ok(served.result);
  await s.settle();
  assert.ok(!s.received.some((m) => m.id === "w1"), "no response for the call cancelled while waiting");
  assert.ok(!s.received.some((m) => m.method === "notifications/progress"), "no progress for it either");
  assert.equal((s.session as unknown as { progress: Map<string, unknown> }).progress.size, 0, "its reporter was dropped");
});

test("a tool service that throws synchronously gets exactly one -32603 with the request's id", async () => {
  const tools = new StubTools();
  tools.callTool = () => {
    throw new TypeError("sync failure");
  };
  const s = setup(tools);
  await s.init();
  const answer = await s.request("boom", "tools/call", { name: "fast" });
  assert.equal(answer.error.code, -32603);
  await s.settle();
  assert.equal(s.received.filter((m) => m.id === "boom").length, 1);
});

test("drain: at once when idle, after the last response otherwise, false on a timeout that a later drain survives", async () => {
  const s = setup();
  await s.init();
  assert.equal(await s.connection.drain(10), true, "idle");
  s.send({ jsonrpc: "2.0", id: "d1", method: "tools/call", params: { name: "slow" } });
  await s.settle();
  assert.equal(await s.connection.drain(20), false, "the slow call is still running");
  const drained = s.connection.drain(3000);
  s.connection.abortAll("test");
  assert.equal(await drained, true);
  await s.connection.flush();
  await s.settle();
  assert.ok(s.received.some((m) => m.id === "d1"), "the response was handed to the writer before drain resolved");
  assert.equal(await s.connection.drain(10), true, "idle again");
});

test("review finding: the rate limit's summary respects logging/setLevel (it was sent as warning to a client that asked for error)", async () => {
  const s = setup();
  await s.init();
  assert.deepEqual((await s.request(42, "logging/setLevel", { level: "error" })).result, {});
  const log = s.hub.logger("t");
  for (let i = 0; i < 21; i++) log.error(`burst ${i}`); // the 21st is dropped
  await s.settle(1100);
  log.error("after a second");
  await s.waitFor((m) => m.params?.data?.message === "after a second");
  const summary = s.received.find((m) => m.params?.data?.message === "1 log messages were dropped by the rate limit");
  assert.ok(summary, "the drop is reported");
  assert.equal(summary.params.level, "error", "no message below the level the client set");
});
