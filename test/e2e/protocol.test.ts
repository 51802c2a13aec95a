/**
 * The MCP 2025-11-25 smoke list (checklist §12) over real pipes: envelopes and error
 * codes, tools/call errors, structured output, cancellation, progress, logging,
 * pagination, tasks, concurrency. One test server (real server + testkit plugin,
 * `--page-size 2`) is shared: every test reads only its own ids and tokens.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import { ServerProcess, resultText, type Message } from "../helpers/server-process.js";
import { TEST_SERVER_ENTRY, exchange, listAllPages, responses, spyCount, waitForAfter } from "../helpers/e2e.js";

const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const METHOD_NOT_FOUND = -32601;
const INVALID_PARAMS = -32602;

void describe("protocol over stdio (shared test server, --page-size 2)", () => {
  let server: ServerProcess;

  before(async () => {
    server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, args: ["--page-size", "2"] });
  });

  after(async () => {
    await server.close();
  });

  /** Sends one raw line and returns the one response it produced (asserting there is exactly one). */
  async function onlyResponseTo(line: string): Promise<Message> {
    const replies = responses(await exchange(server, () => server.writeLine(line)));
    assert.equal(replies.length, 1, `expected one response to ${line.slice(0, 120)}, got ${JSON.stringify(replies)}`);
    return replies[0]!;
  }

  /** Waits until a `slow` call reported its start (progress 0 for its token). */
  function started(token: string): Promise<Message> {
    return server.waitFor((m) => m.method === "notifications/progress" && m.params?.progressToken === token, 10_000, `start of ${token}`);
  }

  void test("ping after initialize answers an empty result", async () => {
    const pong = await server.request("ping");
    assert.deepEqual(pong.result, {});
    const withMeta = await server.request("ping", { _meta: { "com.example/trace": "x" } });
    assert.deepEqual(withMeta.result, {});
  });

  void test("ids are echoed exactly, string and integer kept apart", async () => {
    const asString = await server.request("ping", undefined, "7");
    const asNumber = await server.request("ping", undefined, 7_000_001);
    assert.equal(asString.id, "7");
    assert.equal(typeof asString.id, "string");
    assert.equal(asNumber.id, 7_000_001);
    assert.equal(typeof asNumber.id, "number");
    const negative = await server.request("ping", undefined, -3);
    assert.equal(negative.id, -3);
  });

  void test("a line that is not JSON gets -32700 without an id, and the server goes on", async () => {
    for (const line of ['{"jsonrpc":', "not json", '{"jsonrpc":"2.0","id":"p1","method":"ping"', "{'single':'quotes'}"]) {
      const reply = await onlyResponseTo(line);
      assert.equal(reply.error?.code, PARSE_ERROR, line);
      assert.equal("id" in reply, false, `a parse error has no id (${line})`);
      assert.equal("result" in reply, false);
    }
    assert.deepEqual((await server.request("ping")).result, {});
  });

  void test("bad envelopes get -32600; the id is echoed only when it could be read", async () => {
    const cases: Array<{ line: string; id?: string | number }> = [
      { line: '{"jsonrpc":"1.0","id":"env-1","method":"ping"}', id: "env-1" },
      { line: '{"id":"env-2","method":"ping"}', id: "env-2" },
      { line: '[{"jsonrpc":"2.0","id":"env-3","method":"ping"}]' },
      { line: "[]" },
      { line: '[{"jsonrpc":"2.0","id":"env-4","method":"ping"},{"jsonrpc":"2.0","id":"env-5","method":"ping"}]' },
      { line: '{"jsonrpc":"2.0","id":null,"method":"ping"}' },
      { line: '{"jsonrpc":"2.0","id":1.5,"method":"ping"}' },
      { line: '{"jsonrpc":"2.0","id":true,"method":"ping"}' },
      { line: '{"jsonrpc":"2.0","id":{},"method":"ping"}' },
      { line: '{"jsonrpc":"2.0","id":[1],"method":"ping"}' },
      { line: '{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}' },
      { line: '"a string"' },
      { line: "42" },
      { line: "null" },
      { line: '{"jsonrpc":"2.0","id":"env-6","method":5}', id: "env-6" },
      { line: '{"jsonrpc":"2.0","id":"env-7","method":""}', id: "env-7" },
      { line: '{"jsonrpc":"2.0","id":"env-8"}', id: "env-8" },
      { line: '{"jsonrpc":"2.0","id":"env-9","method":"ping","params":[1,2]}', id: "env-9" },
      { line: '{"jsonrpc":"2.0","id":"env-10","method":"ping","params":"x"}', id: "env-10" },
    ];
    for (const { line, id } of cases) {
      const reply = await onlyResponseTo(line);
      assert.equal(reply.error?.code, INVALID_REQUEST, line);
      assert.equal(typeof reply.error?.message, "string");
      if (id === undefined) assert.equal("id" in reply, false, `no id expected for ${line}`);
      else assert.equal(reply.id, id, line);
    }
    assert.deepEqual((await server.request("ping")).result, {});
  });

  void test("an unknown method gets -32601 with the request's id; undeclared capabilities too", async () => {
    for (const method of ["nope", "resources/list", "prompts/list", "completion/complete", "tasks/get", "tasks/list", "server/discover"]) {
      const reply = await server.request(method, {});
      assert.equal(reply.error?.code, METHOD_NOT_FOUND, method);
      assert.equal("result" in reply, false);
    }
  });

  void test("notifications are never answered, not even unknown or malformed ones", async () => {
    const replies = await exchange(server, () => {
      server.notify("foo/bar");
      server.notify("foo/bar", { anything: [1, 2, 3] });
      server.notify("notifications/initialized");
      server.notify("notifications/cancelled", {});
      server.notify("notifications/cancelled", { requestId: { not: "an id" } });
      server.notify("notifications/progress", { progressToken: "x", progress: 1 });
      server.notify("ping");
      server.notify("tools/call", { name: "spy_target", arguments: {} });
    });
    assert.deepEqual(responses(replies), []);
    assert.equal(await spyCount(server), 0, "a tools/call notification must not run the tool");
  });

  void test("responses from the client are never answered", async () => {
    const replies = await exchange(server, () => {
      server.writeLine('{"jsonrpc":"2.0","id":999,"result":{}}');
      server.writeLine('{"jsonrpc":"2.0","id":"r-1","error":{"code":-1,"message":"x"}}');
      server.writeLine('{"jsonrpc":"2.0","result":{}}');
      server.writeLine('{"jsonrpc":"2.0","id":5,"result":"not an object","error":{}}');
    });
    assert.deepEqual(replies, []);
  });

  void test("an unknown tool gets -32602", async () => {
    const reply = await server.callTool("no_such_tool", {});
    assert.equal(reply.error?.code, INVALID_PARAMS);
    assert.match(reply.error.message as string, /unknown tool/i);
    assert.match(reply.error.message as string, /no_such_tool/);
  });

  void test("a tools/call that breaks the CallToolRequest shape gets -32602", async () => {
    const shapes: Message[] = [
      {},
      { arguments: {} },
      { name: 5 },
      { name: "" },
      { name: null },
      { name: "echo", arguments: [] },
      { name: "echo", arguments: "text" },
      { name: "echo", arguments: null },
    ];
    for (const params of shapes) {
      const reply = await server.request("tools/call", params);
      assert.equal(reply.error?.code, INVALID_PARAMS, JSON.stringify(params));
    }
    const noParams = await server.request("tools/call");
    assert.equal(noParams.error?.code, INVALID_PARAMS);
  });

  void test("schema-invalid arguments give an isError result naming the field; the tool is not reached", async () => {
    const before = await spyCount(server);
    const cases: Array<{ args: Message; field: RegExp }> = [
      { args: { n: "eleven" }, field: /\bn\b/ },
      { args: { n: 11 }, field: /\bn\b/ },
      { args: { n: 2.5 }, field: /\bn\b/ },
      { args: { value: 7 }, field: /\bvalue\b/ },
      { args: { unexpected: true }, field: /unexpected/ },
    ];
    for (const { args, field } of cases) {
      const reply = await server.callTool("spy_target", args);
      assert.equal(reply.error, undefined, "input validation is a tool result, not a protocol error");
      assert.equal(reply.result?.isError, true, JSON.stringify(args));
      assert.match(resultText(reply), field, JSON.stringify(args));
      assert.equal(reply.result.structuredContent, undefined, "no structuredContent on errors");
    }
    const missing = await server.callTool("echo", {});
    assert.equal(missing.result?.isError, true);
    assert.match(resultText(missing), /text/);
    assert.equal(await spyCount(server), before, "spy_target must not have been reached");
  });

  void test("a tool without arguments may be called without `arguments`", async () => {
    const reply = await server.request("tools/call", { name: "spy_count" });
    assert.equal(reply.result?.isError, undefined);
    assert.equal(typeof reply.result?.structuredContent?.count, "number");
  });

  void test("outputSchema tools return conforming structuredContent plus an equal text copy", async () => {
    const tools = (await listAllPages(server)).flat();
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const checked: string[] = [];
    for (const name of ["structured", "spy_count", "slow_status", "search_tools", "list_categories"]) {
      const tool = tools.find((t) => t.name === name);
      assert.ok(tool, `${name} is listed`);
      assert.ok(tool.outputSchema, `${name} declares an outputSchema`);
      const reply = await server.callTool(name, {});
      assert.notEqual(reply.result?.isError, true, `${name}: ${resultText(reply)}`);
      const structured = reply.result.structuredContent;
      assert.equal(typeof structured, "object", `${name} returns structuredContent`);
      const validate = ajv.compile(tool.outputSchema);
      assert.ok(validate(structured), `${name}: ${JSON.stringify(validate.errors)}`);
      const texts = (reply.result.content as Message[]).filter((block) => block.type === "text");
      assert.ok(texts.length >= 1, `${name} has a text block`);
      assert.deepEqual(JSON.parse(texts[0]!.text as string), structured, `${name}: the text copy equals structuredContent`);
      checked.push(name);
    }
    assert.equal(checked.length, 5);
    const structured = await server.callTool("structured", {});
    assert.deepEqual(structured.result.structuredContent, {
      greeting: "héllo 👋",
      items: [1, 2, 3],
      nested: { ok: true, note: "line one\nline two" },
    });
  });

  void test("cancelling an in-flight call: no response for it, and the tool's work is aborted", async () => {
    const token = "cancel-token";
    const id = "cancel-me";
    const from = server.messages.length;
    server.send({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "slow", arguments: { ms: 60_000, tag: id }, _meta: { progressToken: token } } });
    await started(token);
    server.notify("notifications/cancelled", { requestId: id, reason: "the user pressed stop" });
    const status = await server.callTool("slow_status", {});
    assert.ok((status.result.structuredContent.aborted as string[]).includes(id), "the plugin saw its AbortSignal fire");
    assert.ok(!(status.result.structuredContent.finished as string[]).includes(id));
    await server.quietFor(300);
    const answered = server.messages.slice(from).filter((m) => m.id === id);
    assert.deepEqual(answered, [], "a cancelled request gets no response");
  });

  void test("cancelling a call with a long id: stderr's log line keeps only the id's start", async () => {
    const token = "long-id-token";
    const id = `long-${"x".repeat(20_000)}`;
    server.send({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "slow", arguments: { ms: 60_000, tag: "long-id" }, _meta: { progressToken: token } } });
    await started(token);
    server.notify("notifications/cancelled", { requestId: id, reason: "stop" });
    await server.waitForStderr(/request cancelled by the client.*long-x{123}…/, 5000);
    assert.ok(!server.stderr.includes(id), "the whole id is not logged");
  });

  void test("cancelling an unknown or finished request is ignored in silence", async () => {
    const echo = await server.request("tools/call", { name: "echo", arguments: { text: "done" } }, "finished-1");
    assert.equal(resultText(echo), "done");
    const replies = await exchange(server, () => {
      server.notify("notifications/cancelled", { requestId: "never-sent" });
      server.notify("notifications/cancelled", { requestId: 424242, reason: "no such request" });
      server.notify("notifications/cancelled", { requestId: "finished-1" });
    });
    assert.deepEqual(responses(replies), []);
    await server.quietFor(100);
    assert.equal(server.messages.filter((m) => m.id === "finished-1").length, 1, "no second response");
  });

  void test("progress: only with a token, echoed with its type, strictly increasing, none after the response", async () => {
    for (const token of ["progress-string", 4242]) {
      const from = server.messages.length;
      const response = await server.callTool("progress", { steps: 4 }, { _meta: { progressToken: token } });
      assert.match(resultText(response), /progress done/);
      await server.quietFor(250); // the tool tries to report once more after returning
      const responseIndex = server.messages.indexOf(response);
      const updates = server.messages
        .map((m, index) => ({ m, index }))
        .filter(({ m, index }) => index >= from && m.method === "notifications/progress" && m.params?.progressToken === token);
      assert.ok(updates.length >= 1, `progress notifications for ${String(token)}`);
      for (const { m, index } of updates) {
        assert.equal(typeof m.params.progressToken, typeof token, "the token keeps its type");
        assert.ok(index < responseIndex, "no progress after the response");
      }
      const values = updates.map(({ m }) => m.params.progress as number);
      for (let i = 1; i < values.length; i++) assert.ok(values[i]! > values[i - 1]!, `strictly increasing: ${values.join(", ")}`);
      assert.ok(values.every((v) => v <= 4), `the late update after the response was dropped: ${values.join(", ")}`);
    }

    const from = server.messages.length;
    const untracked = await server.callTool("progress", { steps: 2, interval_ms: 0 });
    await server.quietFor(150);
    assert.match(resultText(untracked), /progress done/);
    assert.deepEqual(
      server.messages.slice(from).filter((m) => m.method === "notifications/progress"),
      [],
      "no progress without a token",
    );
  });

  void test("logging/setLevel filters notifications/message; a bad level gets -32602", async () => {
    const logged = (from: number, text: string) =>
      server.messages.slice(from).filter((m) => m.method === "notifications/message" && JSON.stringify(m.params?.data).includes(text));

    assert.deepEqual((await server.request("logging/setLevel", { level: "error" })).result, {});
    let from = server.messages.length;
    await server.callTool("log", { level: "warn", message: "below-threshold-7f3" });
    await server.callTool("log", { level: "error", message: "at-threshold-7f3" });
    assert.deepEqual(logged(from, "below-threshold-7f3"), [], "a warning is filtered at level error");
    const errors = logged(from, "at-threshold-7f3");
    assert.equal(errors.length, 1, "an error passes at level error");
    assert.equal(errors[0]!.params.level, "error");

    assert.deepEqual((await server.request("logging/setLevel", { level: "debug" })).result, {});
    from = server.messages.length;
    await server.callTool("log", { level: "debug", message: "debug-line-7f3" });
    const debug = logged(from, "debug-line-7f3");
    assert.equal(debug.length, 1);
    assert.equal(debug[0]!.params.level, "debug");

    for (const params of [{ level: "verbose" }, { level: "WARNING" }, { level: 3 }, {}]) {
      const reply = await server.request("logging/setLevel", params);
      assert.equal(reply.error?.code, INVALID_PARAMS, JSON.stringify(params));
    }
    // The rejected levels changed nothing: debug still passes.
    from = server.messages.length;
    await server.callTool("log", { level: "debug", message: "still-debug-7f3" });
    assert.equal(logged(from, "still-debug-7f3").length, 1);
    assert.deepEqual((await server.request("logging/setLevel", { level: "warning" })).result, {});
  });

  void test("tools/list pages through every tool once with --page-size 2", async () => {
    const pages = await listAllPages(server);
    assert.ok(pages.length >= 3, `several pages (${pages.length})`);
    pages.forEach((page, index) => {
      if (index < pages.length - 1) assert.equal(page.length, 2, `page ${index} is full`);
      else assert.ok(page.length >= 1 && page.length <= 2);
    });
    const names = pages.flat().map((tool) => tool.name as string);
    assert.equal(new Set(names).size, names.length, `no tool twice: ${names.join(", ")}`);
    for (const expected of ["search_tools", "list_categories", "echo", "slow", "spy_target", "spy_count", "structured", "crash"]) {
      assert.ok(names.includes(expected), `${expected} is listed`);
    }
    // Walking again gives the same order.
    assert.deepEqual((await listAllPages(server)).flat().map((tool) => tool.name), names);
  });

  void test("an invalid, edited or foreign cursor gets -32602", async () => {
    const first = await server.request("tools/list", {});
    const cursor = first.result.nextCursor as string;
    assert.equal(typeof cursor, "string");
    const [offset, signature] = cursor.split(".");
    const edited = `${Number(offset) + 2}.${signature}`;
    for (const bad of ["garbage", "", "0.x", edited, `${cursor}x`, 5, null, { offset: 2 }]) {
      const reply = await server.request("tools/list", { cursor: bad });
      assert.equal(reply.error?.code, INVALID_PARAMS, JSON.stringify(bad));
    }
    // A cursor is scoped to its session.
    const other = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, args: ["--page-size", "2"] });
    try {
      const foreign = await other.request("tools/list", { cursor });
      assert.equal(foreign.error?.code, INVALID_PARAMS);
    } finally {
      await other.close();
    }
    const good = await server.request("tools/list", { cursor });
    assert.ok(Array.isArray(good.result?.tools));
  });

  void test("a `task` on tools/call is ignored: a plain CallToolResult comes back", async () => {
    const reply = await server.callTool("echo", { text: "no tasks here" }, { task: { ttl: 60_000 } });
    assert.equal(resultText(reply), "no tasks here");
    assert.equal(reply.result.task, undefined);
    assert.ok(Array.isArray(reply.result.content));
  });

  void test("requests are answered out of order: a fast call overtakes a slow one", async () => {
    const token = "ooo-token";
    const slowId = "ooo-slow";
    const from = server.messages.length;
    const slow = server.request("tools/call", { name: "slow", arguments: { ms: 60_000, tag: slowId }, _meta: { progressToken: token } }, slowId);
    await started(token);
    const fast = await server.callTool("echo", { text: "fast" });
    assert.equal(resultText(fast), "fast");
    assert.equal(server.messages.slice(from).some((m) => m.id === slowId && !("method" in m)), false, "the slow call is still running");
    const released = await server.callTool("release", { tag: slowId });
    assert.equal(resultText(released), "released");
    const slowReply = await slow;
    assert.equal(slowReply.id, slowId);
    assert.equal(resultText(slowReply), `slow ${slowId} done`);
    assert.ok(server.messages.indexOf(fast) < server.messages.indexOf(slowReply));
  });

  void test("ping is answered during a running tool call", async () => {
    const token = "ping-during-token";
    const slowId = "ping-during";
    const slow = server.request("tools/call", { name: "slow", arguments: { ms: 60_000, tag: slowId }, _meta: { progressToken: token } }, slowId);
    await started(token);
    const pong = await server.request("ping");
    assert.deepEqual(pong.result, {});
    assert.equal(server.messages.some((m) => m.id === slowId && !("method" in m)), false, "the tool call is still running");
    await server.callTool("release", { tag: slowId });
    assert.equal(resultText(await slow), `slow ${slowId} done`);
  });

  void test("a second request with an id still in flight is refused without cross-wiring", async () => {
    const token = "dup-token";
    const id = "dup-id";
    const from = server.messages.length;
    server.send({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "slow", arguments: { ms: 60_000, tag: id }, _meta: { progressToken: token } } });
    await started(token);
    server.send({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "echo", arguments: { text: "duplicate" } } });
    // The refusal carries the id in error.data, not as its id: the call in flight keeps exactly one response.
    const refusal = await waitForAfter(server, from, (m) => m.id === undefined && m.error?.data?.id === id, 10_000, "duplicate-id refusal");
    assert.equal(refusal.error.code, INVALID_REQUEST);
    await server.callTool("release", { tag: id });
    const result = await waitForAfter(server, from, (m) => m.id === id && "result" in m, 10_000, "the first call's result");
    assert.equal(resultText(result), `slow ${id} done`, "the result is the first request's, not the duplicate's");
    await server.quietFor(100);
    const answers = server.messages.slice(from).filter((m) => m.id === id && !("method" in m));
    assert.equal(answers.length, 1, "exactly one response carries the id: the first request's result");
  });

  void test("the server never sent a request to the client, and every line was one message", () => {
    assert.deepEqual(
      server.messages.filter((m) => "method" in m && "id" in m),
      [],
    );
    assert.equal(server.rawLines.length, server.messages.length);
    assert.deepEqual(server.problems, []);
  });
});
