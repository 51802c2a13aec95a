import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { Connection, MAX_BATCH_MESSAGES, type ConnectionHandlers, type RequestResult } from "../../src/protocol/connection.js";
import { ErrorCode, RpcError, type RequestId } from "../../src/protocol/jsonrpc.js";
import { ByteBudget, type BudgetHolder } from "../../src/util/byte-budget.js";
import { silentLogger } from "../../src/util/logger.js";

interface Written {
  id?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

/** Every message written to `output`, parsed, in order (filled as the connection writes). */
function messagesOf(output: PassThrough): Written[] {
  const messages: Written[] = [];
  let text = "";
  output.on("data", (chunk: Buffer) => {
    text += chunk.toString("utf8");
    for (let newline = text.indexOf("\n"); newline !== -1; newline = text.indexOf("\n")) {
      messages.push(JSON.parse(text.slice(0, newline)) as Written);
      text = text.slice(newline + 1);
    }
  });
  return messages;
}

/** A connection whose requests settle only when the test says so. */
function setup(maxInFlight: number, maxWaitingBytes?: number, maxLineBytes = 1024) {
  const input = new PassThrough();
  const output = new PassThrough();
  const responses: unknown[] = messagesOf(output);
  const waiting = new Map<RequestId, (result: RequestResult) => void>();
  const handled: RequestId[] = [];
  const respondedIds: RequestId[] = [];
  const handlers: ConnectionHandlers = {
    request: (method, _params, ctx) => {
      if (method === "ping") return {};
      handled.push(ctx.id);
      return new Promise<RequestResult>((resolve) => waiting.set(ctx.id, resolve));
    },
    notification: () => undefined,
    responded: (id) => respondedIds.push(id),
  };
  const connection = new Connection(input, output, handlers, { maxLineBytes, maxInFlight, maxWaitingBytes, logger: silentLogger });
  connection.start();
  const send = (ids: number[]) => input.write(ids.map((id) => `${JSON.stringify({ jsonrpc: "2.0", id, method: "slow" })}\n`).join(""));
  const answer = (ids: RequestId[]) => {
    for (const id of ids) waiting.get(id)!({ id });
  };
  const sendBatch = (items: unknown[]) => input.write(`${JSON.stringify(items)}\n`);
  return { input, connection, handled, responses, send, sendBatch, answer, respondedIds };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

void test("past the in-flight limit requests wait in order and start as slots free; ping never waits", async () => {
  const { input, connection, handled, responses, send, answer } = setup(4);
  send(range(1, 6));
  await settle();
  assert.deepEqual(handled, range(1, 4), "four run, two wait");
  assert.equal(connection.runningCount, 4);
  assert.equal(connection.pendingCount, 6);
  assert.equal(connection.isInFlight(6), true, "a waiting request counts as in flight for the client");
  assert.equal(connection.methodOf(6), "slow");

  input.write(`${JSON.stringify({ jsonrpc: "2.0", id: "p", method: "ping" })}\n`);
  await settle();
  assert.deepEqual(responses, [{ jsonrpc: "2.0", id: "p", result: {} }], "ping is answered at once, past the waiting ones");

  answer([2]);
  await settle();
  assert.deepEqual(handled, range(1, 5), "the freed slot took the oldest waiting request");
  send([7]);
  await settle();
  assert.deepEqual(handled, range(1, 5), "a new request waits behind the one already waiting");
  answer([1, 3, 4, 5]);
  await settle();
  assert.deepEqual(handled, range(1, 7));
  answer([6, 7]);
  await settle();
  assert.equal(connection.pendingCount, 0);
  const ids = responses.map((r) => (r as { id: unknown }).id);
  assert.deepEqual(ids.slice(1).sort(), range(1, 7).sort(), "every request answered once");
});

void test("a waiting request that is cancelled never starts and gets no response; a duplicate id of a waiting one is refused", async () => {
  const { connection, handled, responses, send, answer, input } = setup(1);
  send([1, 2, 3]);
  await settle();
  assert.equal(connection.cancel(2, "not needed"), true);
  input.write(`${JSON.stringify({ jsonrpc: "2.0", id: 3, method: "slow" })}\n`);
  await settle();
  const duplicate = responses.at(-1) as { id?: unknown; error?: { code: number } };
  assert.equal(duplicate.id, undefined);
  assert.equal(duplicate.error?.code, -32600);
  answer([1]);
  await settle();
  answer([3]);
  await settle();
  assert.deepEqual(handled, [1, 3], "the cancelled request never ran");
  assert.deepEqual(
    responses.map((r) => (r as { id?: unknown }).id),
    [undefined, 1, 3],
  );
});

void test("a request that would overfill the queue is refused as busy at once; reading never stops for the queue", async () => {
  const { input, connection, handled, responses, send, answer } = setup(1, 200);
  send([1]);
  await settle();
  send(range(2, 6)); // about 40 bytes each: 200 bytes wait, as many as the queue holds
  await settle();
  send([7]);
  input.write(`${JSON.stringify({ jsonrpc: "2.0", id: "p", method: "ping" })}\n`);
  await settle();
  assert.equal(input.isPaused(), false);
  const busy = responses as Array<{ id: unknown; result?: unknown; error?: { code: number; message: string; data?: unknown } }>;
  assert.deepEqual(
    busy.map((r) => [r.id, r.error?.code]),
    [
      [7, -32000],
      ["p", undefined],
    ],
    "request 7 refused at once, the ping still answered",
  );
  assert.match(busy[0]!.error!.message, /Server busy: 1 requests are running and 5 wait/);
  const data = busy[0]!.error!.data as { waitingBytes: number };
  assert.deepEqual(data, { reason: "busy", maxInFlight: 1, maxWaitingBytes: 200, waitingBytes: data.waitingBytes });
  assert.ok(data.waitingBytes > 150 && data.waitingBytes <= 200, `${data.waitingBytes} bytes wait`);
  assert.equal(connection.cancel(6, "not needed"), true);
  send([8]);
  await settle();
  assert.equal(connection.pendingCount, 6, "the cancelled request's room took request 8");
  answer([1]);
  await settle();
  assert.deepEqual(handled, [1, 2]);
});

void test("at shutdown, waiting requests are answered with an error at once and running ones are aborted", async () => {
  const { connection, responses, send } = setup(2);
  send(range(1, 4));
  await settle();
  connection.abortAll("the server is shutting down (SIGTERM)");
  await settle();
  const refused = responses as Array<{ id: number; error?: { code: number; message: string } }>;
  assert.deepEqual(
    refused.map((r) => [r.id, r.error?.code]),
    [
      [3, -32000],
      [4, -32000],
    ],
  );
  assert.match(refused[0]!.error!.message, /shutting down \(SIGTERM\); this request was not started/);
  assert.deepEqual((refused[0] as { error: { data?: unknown } }).error.data, { reason: "shutting_down" });
  assert.equal(connection.pendingCount, 2, "the running ones settle when their handlers do");
});

void test("without a limit, any number of requests run at once (started a turn's share at a time)", async () => {
  const { connection, send } = setup(Infinity);
  send(range(1, 500));
  await settle();
  assert.ok(connection.runningCount < 500, "not all in the first turn of the event loop");
  for (let turn = 0; turn < 50 && connection.runningCount < 500; turn++) await settle();
  assert.equal(connection.runningCount, 500);
});

void test("a broken message that reuses the id of a request read earlier is refused without the id", async () => {
  const { input, responses, answer } = setup(1);
  input.write(`${JSON.stringify({ jsonrpc: "2.0", id: "A", method: "slow" })}\n${JSON.stringify({ jsonrpc: "2.0", id: "B", method: "slow" })}\n`);
  await settle();
  // "A" runs and "B" waits: a broken envelope with either id must not answer it early.
  input.write(`${JSON.stringify({ jsonrpc: "1.0", id: "A", method: "ping" })}\n${JSON.stringify({ jsonrpc: "2.0", id: "B", params: [] })}\n`);
  input.write(`${JSON.stringify({ jsonrpc: "1.0", id: "C", method: "ping" })}\n`);
  await settle();
  const refusals = responses as Array<{ id?: unknown; error?: { code: number } }>;
  assert.deepEqual(
    refusals.map((r) => [r.id, r.error?.code]),
    [
      [undefined, -32600],
      [undefined, -32600],
      ["C", -32600],
    ],
    "an id not in use is kept",
  );
  answer(["A"]);
  await settle();
  answer(["B"]);
  await settle();
  assert.deepEqual(
    responses.slice(3).map((r) => (r as { id: unknown }).id),
    ["A", "B"],
    "each request answered once",
  );
});

void test('the ids 1 and "1" are two requests: each is cancelled and answered on its own', async () => {
  const { input, connection, handled, responses, answer } = setup(1);
  input.write(`${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "slow" })}\n${JSON.stringify({ jsonrpc: "2.0", id: "1", method: "slow" })}\n`);
  await settle();
  assert.equal(connection.pendingCount, 2, "not refused as a duplicate");
  assert.equal(connection.cancel("1", "not needed"), true);
  assert.equal(connection.isInFlight(1), true, "the number id is untouched");
  answer([1]);
  await settle();
  assert.deepEqual(handled, [1]);
  assert.deepEqual(responses, [{ jsonrpc: "2.0", id: 1, result: { id: 1 } }]);
});

const slow = (id: RequestId) => ({ jsonrpc: "2.0", id, method: "slow" });

void test("a batch is refused as a whole until batches are accepted, then answered with one array", async () => {
  const { connection, handled, responses, sendBatch, answer, respondedIds } = setup(10);
  sendBatch([slow(1)]);
  await settle();
  assert.deepEqual(handled, [], "nothing of a refused batch runs");
  assert.equal(responses.length, 1);
  assert.equal((responses[0] as { error: { code: number } }).error.code, -32600);
  assert.equal("id" in (responses[0] as object), false);

  connection.acceptBatches();
  sendBatch([slow(2), { jsonrpc: "2.0", id: "p", method: "ping" }, slow(3)]);
  await settle();
  assert.deepEqual(handled, [2, 3]);
  assert.equal(responses.length, 1, "the ping's answer waits for the rest of its batch");
  answer([3]);
  await settle();
  assert.equal(responses.length, 1);
  assert.deepEqual(respondedIds, [], "responded is told only once the array is written");
  answer([2]);
  await settle();
  assert.equal(responses.length, 2);
  assert.deepEqual(responses[1], [
    { jsonrpc: "2.0", id: "p", result: {} },
    { jsonrpc: "2.0", id: 3, result: { id: 3 } },
    { jsonrpc: "2.0", id: 2, result: { id: 2 } },
  ]);
  assert.deepEqual(respondedIds, ["p", 3, 2]);
});

void test("a batch's requests wait for slots like any others; cancelled ones are left out; shutdown answers the waiting ones in the array", async () => {
  const { connection, handled, responses, sendBatch, answer } = setup(1);
  connection.acceptBatches();
  sendBatch([slow(1), slow(2), slow(3), slow(4)]);
  await settle();
  assert.deepEqual(handled, [1]);
  assert.equal(connection.pendingCount, 4);
  assert.equal(connection.cancel(2, "not needed"), true, "a waiting batched request can be cancelled");
  answer([1]);
  await settle();
  assert.deepEqual(handled, [1, 3], "the slot went to the next waiting one, past the cancelled one");
  connection.abortAll("the server is shutting down");
  await settle();
  assert.equal(responses.length, 0, "request 3 is still running: the array waits for it");
  answer([3]);
  await settle();
  assert.equal(responses.length, 1);
  const batch = responses[0] as Array<{ id: number; result?: unknown; error?: { code: number; data: { reason: string } } }>;
  assert.deepEqual(
    batch.map((m) => m.id),
    [1, 4, 3],
  );
  assert.equal(batch[1]!.error!.code, -32000);
  assert.equal(batch[1]!.error!.data.reason, "shutting_down");
  assert.equal(connection.pendingCount, 0);
});

void test("a batch whose requests are all cancelled writes nothing", async () => {
  const { connection, responses, sendBatch, answer, respondedIds } = setup(10);
  connection.acceptBatches();
  sendBatch([slow("x"), { jsonrpc: "2.0", method: "notifications/whatever" }]);
  await settle();
  assert.equal(connection.cancel("x", "never mind"), true);
  answer(["x"]);
  await settle();
  assert.deepEqual(responses, []);
  assert.deepEqual(respondedIds, []);
  assert.equal(await connection.drain(100), true, "nothing is left pending");
});

void test("a request that reuses the id of a request in flight, from inside a batch, is refused without the id", async () => {
  const { connection, responses, send, sendBatch, answer } = setup(10);
  connection.acceptBatches();
  send([5]);
  await settle();
  sendBatch([slow(5), { jsonrpc: "2.0", id: 6, method: "ping" }]);
  await settle();
  assert.equal(responses.length, 1);
  const batch = responses[0] as Array<{ id?: number; error?: { message: string } }>;
  assert.equal(batch.length, 2);
  assert.match(batch.find((m) => m.id === undefined)!.error!.message, /a request in flight/);
  answer([5]);
  await settle();
  assert.deepEqual(responses[1], { jsonrpc: "2.0", id: 5, result: { id: 5 } }, "the first request 5 is answered once, on its own");
});

void test("a batch of more messages than a batch may hold is refused whole, with nothing run", async () => {
  const { connection, handled, responses, sendBatch } = setup(10, undefined, 1024 * 1024);
  connection.acceptBatches();
  sendBatch(Array.from({ length: MAX_BATCH_MESSAGES + 1 }, (_, i) => slow(i)));
  await settle();
  assert.deepEqual(handled, []);
  assert.equal(responses.length, 1);
  const refusal = responses[0] as { id?: unknown; error: { code: number; message: string; data: { maxBatchMessages: number } } };
  assert.equal(refusal.error.code, -32600);
  assert.equal(refusal.error.data.maxBatchMessages, MAX_BATCH_MESSAGES);
  assert.equal("id" in refusal, false);
  sendBatch(Array.from({ length: MAX_BATCH_MESSAGES }, (_, i) => ({ jsonrpc: "2.0", id: `p${i}`, method: "ping" })));
  await settle();
  assert.equal((responses[1] as unknown[]).length, MAX_BATCH_MESSAGES, "a batch at the bound is answered");
});

void test("a batched request that waits is charged its own size, not its share of the line", async () => {
  const { connection, handled, responses, send, sendBatch } = setup(1, 4096, 1024 * 1024);
  connection.acceptBatches();
  send([1]);
  await settle();
  // One request of 8 KB among 999 one-byte invalid elements: a thousandth of the line is 8 bytes.
  sendBatch([{ ...slow(2), params: { blob: "x".repeat(8000) } }, ...Array<number>(999).fill(0)]);
  await settle();
  assert.deepEqual(handled, [1]);
  assert.equal(connection.pendingCount, 1, "the large request did not join the queue");
  const batch = responses[0] as Array<{ id?: RequestId; error: { code: number; data?: { reason?: string } } }>;
  assert.equal(batch.length, 1000);
  const refusal = batch.find((m) => m.id === 2)!;
  assert.equal(refusal.error.code, -32000);
  assert.equal(refusal.error.data?.reason, "busy");
  // Small batched requests still wait, each for its own size.
  sendBatch([slow(3), slow(4)]);
  await settle();
  assert.equal(connection.pendingCount, 3);
});

void test("an id answered inside a batch stays taken until the batch's array is written", async () => {
  const { input, connection, responses, sendBatch, answer } = setup(10);
  connection.acceptBatches();
  sendBatch([{ jsonrpc: "2.0", id: "p", method: "ping" }, slow(1)]);
  await settle();
  assert.equal(responses.length, 0, "the ping's answer waits in the array");
  assert.equal(connection.isInFlight("p"), true);
  input.write(`${JSON.stringify({ jsonrpc: "2.0", id: "p", method: "ping" })}\n`);
  await settle();
  assert.equal(responses.length, 1);
  const refusal = responses[0] as { id?: unknown; error: { code: number; message: string } };
  assert.equal("id" in refusal, false, "refused without the id: the client's 'p' already has an answer coming");
  assert.match(refusal.error.message, /already in use/);
  answer([1]);
  await settle();
  assert.deepEqual(
    (responses[1] as Array<{ id: unknown }>).map((m) => m.id),
    ["p", 1],
  );
  assert.equal(connection.isInFlight("p"), false, "free again once the array is out");
});

void test("at the end of a shutdown a batch still waiting for a call that never settled sends what it holds, once", async () => {
  const { connection, responses, sendBatch, answer } = setup(1);
  connection.acceptBatches();
  sendBatch([slow(1), { jsonrpc: "2.0", id: "p", method: "ping" }, slow(2)]);
  await settle();
  connection.abortAll("the server is shutting down");
  await settle();
  assert.equal(responses.length, 0, "call 1 ignores its abort: the array waits");
  assert.equal(connection.sendOpenBatches(), 1);
  await settle();
  assert.equal(responses.length, 1);
  const batch = responses[0] as Array<{ id: unknown; error?: { data: { reason: string } } }>;
  assert.deepEqual(
    batch.map((m) => m.id),
    ["p", 2],
  );
  assert.equal(batch[1]!.error!.data.reason, "shutting_down");
  assert.equal(connection.sendOpenBatches(), 0, "nothing left to send");
  answer([1]);
  await settle();
  assert.equal(responses.length, 1, "a call that settles after is not sent in a second array");
  assert.equal(connection.isInFlight(1), false, "nor is its id left taken");
});

/** A started connection with 256 slots, on fresh pipes, and the messages it writes. */
function started(request: ConnectionHandlers["request"], maxWaitingBytes?: number) {
  const input = new PassThrough();
  const output = new PassThrough();
  const written = messagesOf(output);
  const connection = new Connection(input, output, { request, notification: () => undefined }, { maxLineBytes: 1024, maxInFlight: 256, maxWaitingBytes, logger: silentLogger });
  connection.start();
  return { input, connection, written };
}

/** Requests 1..count of method "quick", one per line. */
function quickRequests(count: number): string {
  return range(1, count)
    .map((id) => `${JSON.stringify({ jsonrpc: "2.0", id, method: "quick" })}\n`)
    .join("");
}

/** Writes the text in chunks of 64 KiB, as a pipe delivers them. */
function writeInChunks(input: PassThrough, text: string): void {
  const all = Buffer.from(text);
  for (let at = 0; at < all.length; at += 65_536) input.write(all.subarray(at, at + 65_536));
}

/** Settles the event loop until `done`, at most `turns` times. */
async function settleUntil(done: () => boolean, turns: number): Promise<void> {
  for (let turn = 0; turn < turns && !done(); turn++) await settle();
}

void test("a backlog read at once is worked off over several turns of the event loop, so signals, timers and input are heard meanwhile", async () => {
  let handled = 0;
  // Each request settles in microtasks only, as a call with nothing to wait for does.
  const { input, connection } = started(async () => {
    handled++;
    await Promise.resolve();
    return {};
  });
  let seenByTimer = -1;
  input.write(quickRequests(300));
  // Queued once the chunk is being read: it runs at the loop's next turn, not after the whole backlog.
  setImmediate(() => (seenByTimer = handled));
  while (connection.pendingCount > 0 || handled < 300) await settle();
  assert.ok(seenByTimer > 0 && seenByTimer < 300, `the loop turned while the backlog ran (${seenByTimer} of 300 handled by then)`);
  assert.equal(handled, 300, "every request ran");
});

void test("a long backlog read at once is neither refused as busy nor reordered: reading pauses while it waits for the loop's turns", async () => {
  // A small queue: 20,000 requests of ~45 bytes are 900 KB, far past it.
  const { input, written } = started(async () => {
    await Promise.resolve();
    return {};
  }, 64 * 1024);
  const count = 20_000;
  writeInChunks(input, quickRequests(count));
  await settleUntil(() => written.length >= count, 100_000);
  assert.deepEqual(written.filter((message) => message.error !== undefined), [], "nothing refused as busy");
  assert.deepEqual(written.map((message) => message.id), range(1, count), "answered in the order sent");
});

void test("a ping behind a long backlog of quick requests is read within the backlog pause, not after the whole backlog", async () => {
  // Answered at once, without a promise: slots never fill, the queue only waits for turns.
  const { input, written } = started((method) => {
    if (method === "ping") return {};
    const until = performance.now() + 0.2;
    while (performance.now() < until);
    return {};
  }, 64 * 1024);
  // Each request takes 0.2 ms and the stream is read a 64 KiB chunk (~1,450 requests) per 0.1 s
  // at most, so the ping, in the last chunk, comes about a third of the way through; kept waiting
  // for the backlog to drain, it came after 93% of them.
  const count = 10_000;
  writeInChunks(input, `${quickRequests(count)}${JSON.stringify({ jsonrpc: "2.0", id: "ping", method: "ping" })}\n`);
  await settleUntil(() => written.length >= count + 1, 1_000_000);
  const ids = written.map((message) => message.id);
  const pingAt = ids.indexOf("ping");
  assert.ok(pingAt >= 0 && pingAt < count * 0.7, `the ping was answered after ${pingAt} of ${count} requests`);
  assert.equal(ids.length, count + 1);
});

void test("a backlog read ahead is refused as busy past four times the queue's budget, so its memory stays bounded", async () => {
  const { input, written } = started(() => ({}), 400);
  // One chunk: its lines are all read at once, past any pause, 64 start and the rest queue.
  input.write(quickRequests(200));
  await settleUntil(() => written.length >= 200, 1000);
  assert.equal(written.length, 200, "every request answered");
  const errors = written.flatMap((message) => (message.error === undefined ? [] : [message.error]));
  assert.ok(errors.length > 0 && errors.length < 136, `some refused once 1600 bytes waited (${errors.length})`);
  assert.match(errors[0]!.message, /wait to start, as many as it holds/);
});

void test("what a request holds goes back once its response has left the process, or when it will get none (cancelled)", async () => {
  const input = new PassThrough();
  // An output nobody reads until the test says: the response sits in the stream meanwhile.
  const output = new PassThrough({ highWaterMark: 16 });
  const released: RequestId[] = [];
  const finish = new Map<RequestId, (result: RequestResult) => void>();
  const handlers: ConnectionHandlers = {
    request: (_method, _params, ctx) => {
      ctx.holder.hold(() => released.push(ctx.id));
      return new Promise<RequestResult>((resolve) => finish.set(ctx.id, resolve));
    },
    notification: () => undefined,
  };
  const connection = new Connection(input, output, handlers, { maxLineBytes: 4096, maxInFlight: 8, logger: silentLogger });
  connection.start();
  input.write(['{"jsonrpc":"2.0","id":1,"method":"read"}', '{"jsonrpc":"2.0","id":2,"method":"read"}', ""].join("\n"));
  await settle();
  finish.get(1)!({ content: "x".repeat(5000) });
  await settle();
  assert.deepEqual(released, [], "written to the stream, not yet read out of it");
  const chunks: Buffer[] = [];
  output.on("data", (chunk: Buffer) => chunks.push(chunk));
  await settle();
  await settle();
  assert.deepEqual(released, [1], "read out: given back");
  assert.match(Buffer.concat(chunks).toString(), /"id":1/);
  assert.equal(connection.cancel(2, "the client cancelled it"), true);
  await settle();
  finish.get(2)!({ late: true });
  await settle();
  assert.deepEqual(released, [1, 2], "a cancelled request gets no response and holds nothing");
  assert.doesNotMatch(Buffer.concat(chunks).toString(), /"id":2/);
});

void test("review finding: what a request reserves after its response has gone (a wait it did not await) goes back at once, not never", async () => {
  const input = new PassThrough();
  const output = new PassThrough();
  const messages = messagesOf(output);
  const budget = new ByteBudget(100);
  const other: BudgetHolder & { leave?: () => void } = {
    reserved: 0,
    hold(release) {
      other.leave = release;
    },
  };
  await budget.reserve(80, other);
  let late: Promise<void> | undefined;
  const handlers: ConnectionHandlers = {
    // A tool that reserves alongside its read and fails before the reservation is granted.
    request: (_method, _params, ctx) => {
      late = budget.reserve(50, ctx.holder);
      late.catch(() => undefined);
      return Promise.reject(new RpcError(ErrorCode.InvalidParams, "the read failed"));
    },
    notification: () => undefined,
  };
  const connection = new Connection(input, output, handlers, { maxLineBytes: 4096, logger: silentLogger });
  connection.start();
  input.write('{"jsonrpc":"2.0","id":1,"method":"read"}\n');
  await settle();
  await settle();
  assert.equal(messages.length, 1, "answered");
  other.leave!();
  await late;
  assert.deepEqual(budget.status(), { limitBytes: 100, reservedBytes: 0, waiting: 0 }, "its response has left: nothing stays held");
});

void test(
  "review finding: a batch's answers keep what they reserved until its array has been written out",
  {},
  async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const messages = messagesOf(output);
    const budget = new ByteBudget(100);
    const finish = new Map<RequestId, () => void>();
    const handlers: ConnectionHandlers = {
      request: async (method, _params, ctx) => {
        if (method === "read") await budget.reserve(60, ctx.holder);
        await new Promise<void>((resolve) => finish.set(ctx.id, resolve));
        return { content: "x".repeat(method === "read" ? 60 : 1) };
      },
      notification: () => undefined,
    };
    const connection = new Connection(input, output, handlers, { maxLineBytes: 4096, logger: silentLogger });
    connection.acceptBatches();
    connection.start();
    input.write(`${JSON.stringify([{ jsonrpc: "2.0", id: 1, method: "read" }, { jsonrpc: "2.0", id: 2, method: "slow" }])}\n`);
    await settle();
    finish.get(1)!();
    await settle();
    assert.equal(messages.length, 0, "the array waits for its second answer");
    assert.equal(budget.status().reservedBytes, 60, "the first answer's text is still held, in the array to come");
    finish.get(2)!();
    await settle();
    await settle();
    assert.equal(messages.length, 1, "the array");
    assert.equal(budget.status().reservedBytes, 0, "written out: given back");
    // A batch is one holder: its members never wait on each other, and together they may not pass the budget.
    const refused: string[] = [];
    handlers.request = async (_method, _params, ctx) => {
      await budget.reserve(60, ctx.holder).catch((error: Error) => {
        refused.push(`${String(ctx.id)}: ${error.name}`);
      });
      return {};
    };
    input.write(`${JSON.stringify([{ jsonrpc: "2.0", id: 3, method: "read" }, { jsonrpc: "2.0", id: 4, method: "read" }])}\n`);
    await settle();
    await settle();
    assert.deepEqual(refused, ["4: BudgetExceededError"]);
    assert.equal(messages.length, 2, "the second array, answered in full");
    assert.equal(budget.status().reservedBytes, 0);
  },
);

void test("review finding: open batches together stay within the result budget (each batch held up to the whole budget on top of the others)", async () => {
  const input = new PassThrough();
  const output = new PassThrough();
  const messages = messagesOf(output);
  const budget = new ByteBudget(100);
  const finish: (() => void)[] = [];
  const outcomes: string[] = [];
  let peak = 0;
  const handlers: ConnectionHandlers = {
    request: async (_method, params, ctx) => {
      const bytes = (params as { bytes: number }).bytes;
      await budget.reserve(bytes, ctx.holder).then(
        () => outcomes.push(`${String(ctx.id)}: ok`),
        (error: Error) => outcomes.push(`${String(ctx.id)}: ${error.name}`),
      );
      peak = Math.max(peak, budget.status().reservedBytes);
      await new Promise<void>((resolve) => finish.push(resolve));
      return {};
    },
    notification: () => undefined,
  };
  const connection = new Connection(input, output, handlers, { maxLineBytes: 4096, logger: silentLogger });
  connection.acceptBatches();
  connection.start();
  const read = (id: number, bytes: number) => ({ jsonrpc: "2.0", id, method: "read", params: { bytes } });
  // Each batch's first read is small, so both batches hold some; their second reads are large.
  input.write(`${JSON.stringify([read(3, 10), read(4, 80)])}\n`);
  input.write(`${JSON.stringify([read(5, 10), read(6, 80)])}\n`);
  await settle();
  await settle();
  assert.ok(peak <= 100, `the open batches held ${peak} bytes of a budget of 100`);
  assert.deepEqual(outcomes.sort(), ["3: ok", "4: ok", "5: ok", "6: BudgetExceededError"]);
  for (const resolve of finish.splice(0)) resolve();
  await settle();
  await settle();
  assert.equal(messages.length, 2, "both arrays");
  assert.deepEqual(budget.status(), { limitBytes: 100, reservedBytes: 0, waiting: 0 });
});

void test("review finding: a batched request too deeply nested to measure waits charged the whole line; it no longer ends the process", async () => {
  const { input, connection, handled, responses, answer } = setup(1, undefined, 1024 * 1024);
  connection.acceptBatches();
  input.write(`${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "slow" })}\n`);
  await settle();
  // JSON.parse takes 100 000 levels; JSON.stringify, which measured a waiting element, overflowed the stack.
  const depth = 100_000;
  const deep = `{"jsonrpc":"2.0","id":2,"method":"slow","params":{"x":${"[".repeat(depth)}${"]".repeat(depth)}}}`;
  input.write(`[${deep}]\n`);
  await settle();
  assert.deepEqual(handled, [1]);
  assert.equal(connection.pendingCount, 2, "the deep request waits for the slot");
  answer([1]);
  await settle();
  assert.deepEqual(handled, [1, 2]);
  answer([2]);
  await settle();
  assert.deepEqual(responses.at(-1), [{ jsonrpc: "2.0", id: 2, result: { id: 2 } }]);
});
