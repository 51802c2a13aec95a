/**
 * JSON-RPC batches over real pipes. MCP 2025-03-26 requires a server to receive them;
 * 2025-06-18 removed them. A session that negotiated 2025-03-26 answers a batch with one
 * array once all of its requests are answered; every other session, and every batch
 * before initialize, gets one -32600. The harness checks each element of an array
 * against the schema and refuses an array in any session but a 2025-03-26 one.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ServerProcess, type Message } from "../helpers/server-process.js";
import { TEST_SERVER_ENTRY, auditEntries, exchange } from "../helpers/e2e.js";

const INVALID_REQUEST = -32600;
const METHOD_NOT_FOUND = -32601;

const request = (id: string, method: string, params?: Message): Message =>
  params === undefined ? { jsonrpc: "2.0", id, method } : { jsonrpc: "2.0", id, method, params };

const byId = (batch: Message[]) => new Map(batch.filter((m) => "id" in m).map((m) => [m.id, m]));

void describe("a session that negotiated 2025-03-26", { concurrency: false }, () => {
  let server: ServerProcess;
  before(async () => {
    server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY }, "2025-03-26");
  });
  after(async () => {
    await server.close();
  });

  void test("answers a batch with one array, sent once its slowest request is answered", async () => {
    const from = server.messages.length;
    server.sendBatch([
      request("b-ping", "ping"),
      request("b-echo", "tools/call", { name: "echo", arguments: { text: "in a batch" } }),
      request("b-slow", "tools/call", { name: "slow", arguments: { ms: 300, tag: "b-slow" } }),
      { jsonrpc: "2.0", method: "notifications/unknown-but-harmless" },
      request("b-none", "no/such/method"),
      7 as unknown as Message,
      { jsonrpc: "1.0", id: "b-old", method: "ping" },
      { jsonrpc: "2.0", id: "b-response", result: {} },
    ]);
    const batch = (await server.waitFor((m) => Array.isArray(m) && server.messages.indexOf(m) >= from, 10_000, "the batch response")) as unknown as Message[];
    const written = server.messages.slice(from);
    assert.equal(written.length, 1, `the batch's answers leave as one line, nothing before it: ${JSON.stringify(written)}`);
    assert.equal(batch.length, 6, "a response for each request and each invalid element; none for the notification or the response");
    const answers = byId(batch);
    assert.deepEqual(answers.get("b-ping")?.result, {});
    assert.equal(answers.get("b-echo")?.result?.content?.[0]?.text, "in a batch");
    assert.equal(answers.get("b-slow")?.result?.content?.[0]?.text, "slow b-slow done", "the array waited for the slow call");
    assert.equal(answers.get("b-none")?.error?.code, METHOD_NOT_FOUND);
    assert.equal(answers.get("b-old")?.error?.code, INVALID_REQUEST);
    const anonymous = batch.filter((m) => !("id" in m));
    assert.equal(anonymous.length, 1);
    assert.equal(anonymous[0]!.error.code, INVALID_REQUEST, "the element 7 is an invalid request without an id");

    // Each batched tool call went through the engine and the audit log like any other.
    const entries = auditEntries(server.stateDir);
    for (const id of ["b-echo", "b-slow"]) {
      assert.ok(entries.some((e) => e.event === "tool_call" && e.requestId === id), `${id} has its tool_call entry`);
      assert.ok(entries.some((e) => e.event === "tool_result" && e.requestId === id && e.outcome === "ok"), `${id} has its outcome entry`);
    }
  });

  void test("a request cancelled inside a batch is left out of the array", async () => {
    const from = server.messages.length;
    server.sendBatch([
      request("c-slow", "tools/call", { name: "slow", arguments: { ms: 60_000, tag: "c-slow" } }),
      request("c-echo", "tools/call", { name: "echo", arguments: { text: "kept" } }),
    ]);
    server.notify("notifications/cancelled", { requestId: "c-slow", reason: "the test changed its mind" });
    const batch = (await server.waitFor((m) => Array.isArray(m) && server.messages.indexOf(m) >= from, 10_000, "the batch response")) as unknown as Message[];
    assert.deepEqual(
      batch.map((m) => m.id),
      ["c-echo"],
    );
    assert.ok(
      server.messages.slice(from).every((m) => Array.isArray(m) || m.id !== "c-slow"),
      "the cancelled call got no response of its own either",
    );
  });

  void test("two requests of one batch with one id: the second is refused without the id", async () => {
    const written = await exchange(server, () => server.sendBatch([request("d-1", "ping"), request("d-1", "ping")]));
    assert.equal(written.length, 1);
    const batch = written[0] as unknown as Message[];
    assert.equal(batch.length, 2);
    assert.deepEqual(batch.find((m) => m.id === "d-1")?.result, {});
    const refused = batch.find((m) => !("id" in m));
    assert.equal(refused?.error?.code, INVALID_REQUEST);
    assert.match(refused?.error?.message, /another request of this batch/);
  });

  void test("a batch of notifications only is answered with nothing; an empty batch with one error", async () => {
    const quiet = await exchange(server, () => server.sendBatch([{ jsonrpc: "2.0", method: "notifications/initialized" }]));
    assert.deepEqual(quiet, [], "nothing to answer, nothing written");
    const empty = await exchange(server, () => server.writeLine("[]"));
    assert.equal(empty.length, 1);
    assert.ok(!Array.isArray(empty[0]), "JSON-RPC answers an empty batch with one error object, not an array");
    assert.equal(empty[0]!.error.code, INVALID_REQUEST);
    assert.match(empty[0]!.error.message, /empty batch/);
    const nested = await exchange(server, () => server.writeLine('[[{"jsonrpc":"2.0","id":"n-1","method":"ping"}]]'));
    assert.equal(nested.length, 1);
    const inner = nested[0] as unknown as Message[];
    assert.equal(inner[0]!.error.code, INVALID_REQUEST);
    assert.match(inner[0]!.error.message, /batches do not nest/);
  });
});

void describe("where batches are refused", { concurrency: true }, () => {
  void test("before initialize a batch is refused as a whole (initialize may not be batched), and initialize then works", async () => {
    const server = ServerProcess.start({ entry: TEST_SERVER_ENTRY });
    try {
      const written = await exchange(server, () =>
        server.sendBatch([request("i-1", "initialize", { protocolVersion: "2025-03-26", capabilities: {}, clientInfo: { name: "t", version: "1" } })]),
      );
      assert.equal(written.length, 1);
      assert.equal(written[0]!.error.code, INVALID_REQUEST);
      assert.equal("id" in written[0]!, false);
      const init = await server.request("initialize", { protocolVersion: "2025-03-26", capabilities: {}, clientInfo: { name: "t", version: "1" } });
      assert.equal(init.result.protocolVersion, "2025-03-26");
    } finally {
      await server.close();
    }
  });

  for (const version of ["2025-11-25", "2025-06-18", "2024-11-05"]) {
    void test(`a ${version} session refuses a batch with one -32600 and runs none of it`, async () => {
      const server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY }, version);
      try {
        const written = await exchange(server, () =>
          server.sendBatch([request("r-1", "tools/call", { name: "echo", arguments: { text: "never" } }), request("r-2", "ping")]),
        );
        assert.equal(written.length, 1);
        assert.equal(written[0]!.error.code, INVALID_REQUEST);
        assert.match(written[0]!.error.message, /batches are not supported/);
        assert.equal(auditEntries(server.stateDir).filter((e) => e.requestId === "r-1").length, 0, "the batched call never reached the engine");
      } finally {
        await server.close();
      }
    });
  }
});
