/**
 * The MCP lifecycle over real pipes: version negotiation, the initialize result
 * (capabilities, serverInfo, instructions), what is allowed before and after
 * initialize, and a second initialize.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ServerProcess, type Message } from "../helpers/server-process.js";
import { TEST_SERVER_ENTRY, exchange, responses } from "../helpers/e2e.js";

const INVALID_REQUEST = -32600;
const METHOD_NOT_FOUND = -32601;
const INVALID_PARAMS = -32602;
const CLIENT_INFO = { name: "msl-lifecycle-test", version: "1.0.0" };

function initializeParams(protocolVersion: unknown, extra: Message = {}): Message {
  return { protocolVersion, capabilities: {}, clientInfo: CLIENT_INFO, ...extra };
}

void describe("version negotiation and the initialize result", { concurrency: true }, () => {
  const cases: Array<{ requested: string; expected: string; params?: Message }> = [
    { requested: "2025-11-25", expected: "2025-11-25" },
    { requested: "2025-06-18", expected: "2025-06-18" },
    { requested: "2099-01-01", expected: "2025-11-25" },
    { requested: "1.0", expected: "2025-11-25" },
    // Lenient about what the client leaves out or adds (RPC-14, LC-1).
    { requested: "2025-03-26", expected: "2025-03-26", params: { clientInfo: undefined, capabilities: { roots: { listChanged: true }, "x-future": { on: true } }, _meta: { "com.example/x": 1 } } },
  ];

  for (const { requested, expected, params } of cases) {
    void test(`initialize with ${requested} is answered with ${expected}`, async () => {
      const server = ServerProcess.start({ entry: TEST_SERVER_ENTRY });
      try {
        // An undefined clientInfo is left out of the JSON line.
        const response = await server.request("initialize", initializeParams(requested, params));
        assert.equal(response.error, undefined, JSON.stringify(response.error));
        const result = response.result;
        assert.equal(result.protocolVersion, expected);
        assert.deepEqual(result.capabilities, { tools: {}, logging: {} });
        const info = result.serverInfo;
        for (const key of ["name", "version", "title", "description"]) {
          assert.equal(typeof info[key], "string", `serverInfo.${key}`);
          assert.ok((info[key] as string).length > 0, `serverInfo.${key} is not empty`);
        }
        assert.equal(info.name, "mcp-secure-local");
        assert.equal(typeof result.instructions, "string");
        assert.ok((result.instructions as string).length > 20, "instructions say how to use the server");

        server.notify("notifications/initialized");
        const list = await server.request("tools/list", {});
        const tools = list.result.tools as Message[];
        assert.ok(tools.length > 0);
        // Task support is not offered, whatever version was negotiated.
        assert.equal(tools.some((tool) => "execution" in tool), false);
        assert.equal("tasks" in result.capabilities, false);
      } finally {
        await server.close();
      }
    });
  }
});

void describe("before, during and after initialize (one session, in order)", () => {
  let server: ServerProcess;

  before(() => {
    server = ServerProcess.start({ entry: TEST_SERVER_ENTRY });
  });

  after(async () => {
    await server.close();
  });

  void test("ping is answered before initialize", async () => {
    const pong = await server.request("ping");
    assert.deepEqual(pong.result, {});
  });

  void test("other requests before initialize get an error, never silence", async () => {
    for (const [method, params] of [
      ["tools/list", {}],
      ["tools/call", { name: "echo", arguments: { text: "too early" } }],
      ["logging/setLevel", { level: "debug" }],
    ] as const) {
      const reply = await server.request(method, params);
      assert.equal(reply.error?.code, INVALID_REQUEST, method);
      assert.match(reply.error.message as string, /initializ/i, method);
    }
    // A 2026-era probe must fail fast so the client falls back to initialize: a method the server
    // does not have is "not found", not "not initialized" (which would invite a retry after it).
    const discover = await server.request("server/discover", {});
    assert.equal(discover.error?.code, METHOD_NOT_FOUND, JSON.stringify(discover));
    assert.match(discover.error.message as string, /^Method not found: server\/discover$/);
  });

  void test("notifications before initialize are not answered", async () => {
    const replies = await exchange(server, () => {
      server.notify("notifications/initialized");
      server.notify("foo/bar");
    });
    assert.deepEqual(responses(replies), []);
  });

  void test("initialize succeeds; a cancel aimed at it changes nothing", async () => {
    const id = "init-1";
    const pending = server.request("initialize", initializeParams("2025-11-25"), id);
    server.notify("notifications/cancelled", { requestId: id, reason: "clients must not do this" });
    const response = await pending;
    assert.equal(response.result?.protocolVersion, "2025-11-25");
  });

  void test("requests between the initialize response and `initialized` are served", async () => {
    const level = await server.request("logging/setLevel", { level: "warning" });
    assert.deepEqual(level.result, {});
    const list = await server.request("tools/list", {});
    assert.ok(Array.isArray(list.result?.tools));
  });

  void test("notifications/initialized gets no reply", async () => {
    const replies = await exchange(server, () => server.notify("notifications/initialized"));
    assert.deepEqual(responses(replies), []);
  });

  void test("a second initialize is refused with -32600 and the session stays usable", async () => {
    const again = await server.request("initialize", initializeParams("2025-06-18"));
    assert.equal(again.error?.code, INVALID_REQUEST);
    assert.deepEqual((await server.request("ping")).result, {});
    const echo = await server.callTool("echo", { text: "still here" });
    assert.equal(echo.result?.content?.[0]?.text, "still here");
  });
});

void describe("a failed initialize", { concurrency: true }, () => {
  void test("a missing protocolVersion gets -32602, and the session is not initialized by it", async () => {
    const server = ServerProcess.start({ entry: TEST_SERVER_ENTRY });
    try {
      const missing = await server.request("initialize", { capabilities: {}, clientInfo: CLIENT_INFO });
      assert.equal(missing.error?.code, INVALID_PARAMS);
      // A refused initialize must not open the session.
      const early = await server.request("tools/list", {});
      assert.equal(early.error?.code, INVALID_REQUEST, "tools/list is still refused after a failed initialize");
      const ok = await server.request("initialize", initializeParams("2025-11-25"));
      assert.equal(ok.result?.protocolVersion, "2025-11-25", `a corrected initialize then succeeds: ${JSON.stringify(ok.error)}`);
    } finally {
      await server.close();
    }
  });

  void test("a non-string protocolVersion gets -32602 listing the supported versions", async () => {
    const server = ServerProcess.start({ entry: TEST_SERVER_ENTRY });
    try {
      const numeric = await server.request("initialize", initializeParams(20251125));
      assert.equal(numeric.error?.code, INVALID_PARAMS);
      assert.ok(Array.isArray(numeric.error?.data?.supported), "the error lists the supported versions");
      assert.ok((numeric.error.data.supported as string[]).includes("2025-11-25"));
    } finally {
      await server.close();
    }
  });
});
