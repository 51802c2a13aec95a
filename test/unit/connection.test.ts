import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { Connection, type ConnectionHandlers, type RequestResult } from "../../src/protocol/connection.js";
import type { RequestId } from "../../src/protocol/jsonrpc.js";
import { silentLogger } from "../../src/util/logger.js";

/** A connection whose requests settle only when the test says so. */
function setup(maxInFlight: number) {
  const input = new PassThrough();
  const output = new PassThrough();
  const responses: unknown[] = [];
  let text = "";
  output.on("data", (chunk: Buffer) => {
    text += chunk.toString("utf8");
    let newline: number;
    while ((newline = text.indexOf("\n")) !== -1) {
      responses.push(JSON.parse(text.slice(0, newline)));
      text = text.slice(newline + 1);
    }
  });
  const waiting = new Map<RequestId, (result: RequestResult) => void>();
  const handled: RequestId[] = [];
  const handlers: ConnectionHandlers = {
    request: (_method, _params, ctx) => {
      handled.push(ctx.id);
      return new Promise<RequestResult>((resolve) => waiting.set(ctx.id, resolve));
    },
    notification: () => undefined,
  };
  const connection = new Connection(input, output, handlers, { maxLineBytes: 1024, maxInFlight, logger: silentLogger });
  connection.start();
  const send = (ids: number[]) => input.write(ids.map((id) => `${JSON.stringify({ jsonrpc: "2.0", id, method: "slow" })}\n`).join(""));
  const answer = (ids: number[]) => {
    for (const id of ids) waiting.get(id)!({ id });
  };
  return { input, connection, handled, responses, send, answer };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

void test("at the in-flight limit reading stops, and starts again when half are answered", async () => {
  const { input, connection, handled, responses, send, answer } = setup(4);
  send(range(1, 6)); // one chunk: all of it is handled, then reading stops
  await settle();
  assert.deepEqual(handled, range(1, 6));
  assert.equal(connection.pendingCount, 6);
  assert.equal(input.isPaused(), true, "six in flight, four allowed: reading stopped");

  send(range(7, 8));
  await settle();
  assert.deepEqual(handled, range(1, 6), "nothing more is read while the limit holds");

  answer([1, 2, 3]);
  await settle();
  assert.equal(connection.pendingCount, 3);
  assert.equal(input.isPaused(), true, "three left: more than half the limit");
  assert.equal(responses.length, 3, "answers still go out while reading is stopped");

  answer([4]);
  await settle();
  assert.deepEqual(handled, range(1, 8), "two left: reading started again and the waiting requests were handled");
  answer([5, 6, 7, 8]);
  await settle();
  assert.equal(responses.length, 8);
  assert.equal(connection.pendingCount, 0);
});

void test("without a limit, any number of requests may be in flight", async () => {
  const { input, connection, send } = setup(Infinity);
  send(range(1, 500));
  await settle();
  assert.equal(connection.pendingCount, 500);
  assert.equal(input.isPaused(), false);
});
