import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { MessageWriter } from "../../src/protocol/writer.js";
import { resultMessage, notificationMessage } from "../../src/protocol/jsonrpc.js";

/** A Writable that records each chunk the writer hands it. */
function recorder(highWaterMark = 16 * 1024) {
  const chunks: string[] = [];
  let release: (() => void) | undefined;
  let hold = false;
  const output = new Writable({
    highWaterMark,
    decodeStrings: false,
    write(chunk: string | Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      if (hold) release = () => callback();
      else callback();
    },
  });
  return {
    output,
    chunks,
    holdWrites: () => (hold = true),
    releaseWrites: () => {
      hold = false;
      release?.();
    },
  };
}

const tick = () => new Promise((resolve) => process.nextTick(resolve));

void test("messages of one tick leave in one write, each a whole line, in order", async () => {
  const { output, chunks } = recorder();
  const writer = new MessageWriter(output, { drain: () => undefined, closed: () => undefined });
  writer.write(resultMessage(1, { a: 1 }));
  writer.write(notificationMessage("notifications/message", { level: "info" }));
  writer.write(resultMessage("x", {}));
  assert.equal(chunks.length, 0, "nothing is written before the tick ends");
  await tick();
  assert.equal(chunks.length, 1);
  const lines = chunks[0]!.split("\n");
  assert.equal(lines.pop(), "", "the write ends with a newline");
  assert.deepEqual(
    lines.map((line) => JSON.parse(line) as unknown),
    [
      { jsonrpc: "2.0", id: 1, result: { a: 1 } },
      { jsonrpc: "2.0", method: "notifications/message", params: { level: "info" } },
      { jsonrpc: "2.0", id: "x", result: {} },
    ],
  );
  writer.write(resultMessage(2, {}));
  await tick();
  assert.equal(chunks.length, 2, "a later tick is a later write");
});

void test("flush hands over what is pending at once and waits for a congested output to drain", async () => {
  const { output, chunks, holdWrites, releaseWrites } = recorder(8);
  let drained = 0;
  const writer = new MessageWriter(output, { drain: () => (drained += 1), closed: () => undefined });
  holdWrites();
  writer.write(resultMessage(1, { text: "more than eight bytes" }));
  let flushed = false;
  const flushing = writer.flush().then(() => (flushed = true));
  assert.equal(chunks.length, 1, "flush wrote the pending line without waiting for the tick");
  assert.equal(writer.isCongested, true, "a write above the high-water mark is congestion");
  await tick();
  assert.equal(flushed, false, "flush waits while the output holds the write");
  releaseWrites();
  await flushing;
  assert.equal(drained, 1, "the reader is told the output drained");
  assert.equal(writer.isCongested, false);
});

void test("a message that cannot be serialized throws at once and leaves the others intact", async () => {
  const { output, chunks } = recorder();
  const writer = new MessageWriter(output, { drain: () => undefined, closed: () => undefined });
  writer.write(resultMessage(1, {}));
  assert.throws(() => writer.write(resultMessage(2, { big: 1n })), TypeError);
  writer.write(resultMessage(3, {}));
  await tick();
  assert.deepEqual(
    chunks.join("").trimEnd().split("\n").map((line) => (JSON.parse(line) as { id: number }).id),
    [1, 3],
  );
});

void test("after the output closes nothing more is written, and closed is reported once", async () => {
  const { output, chunks } = recorder();
  const closed: Array<Error | undefined> = [];
  const writer = new MessageWriter(output, { drain: () => undefined, closed: (error) => closed.push(error) });
  writer.write(resultMessage(1, {}));
  output.destroy();
  await new Promise((resolve) => setImmediate(resolve));
  writer.write(resultMessage(2, {}));
  await writer.flush();
  await tick();
  assert.equal(writer.closed, true);
  assert.equal(closed.length, 1);
  assert.deepEqual(chunks, [], "the line pending when the output closed was dropped, not written to a closed stream");
});

void test("past the output's high-water mark a write goes out at once, so congestion is known in the same tick", () => {
  const { output, chunks, holdWrites } = recorder(64);
  const writer = new MessageWriter(output, { drain: () => undefined, closed: () => undefined });
  holdWrites();
  writer.write(resultMessage(1, {}));
  assert.equal(chunks.length, 0, "a small message waits for the tick");
  assert.equal(writer.isCongested, false);
  writer.write(resultMessage(2, { text: "x".repeat(100) }));
  assert.equal(chunks.length, 1, "the joined lines left as soon as they passed the mark");
  assert.deepEqual(
    chunks[0]!.trimEnd().split("\n").map((line) => (JSON.parse(line) as { id: number }).id),
    [1, 2],
  );
  assert.equal(writer.isCongested, true, "the reader can pause before its next chunk");
});

void test("flush waits for writes still in the stream's buffer, also below the high-water mark", async () => {
  const { output, chunks, holdWrites, releaseWrites } = recorder(1024 * 1024);
  const writer = new MessageWriter(output, { drain: () => undefined, closed: () => undefined });
  holdWrites();
  writer.write(resultMessage(1, {}));
  let flushed = false;
  const flushing = writer.flush().then(() => (flushed = true));
  assert.equal(chunks.length, 1);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(flushed, false, "the held write is not done yet");
  releaseWrites();
  await flushing;
  assert.equal(flushed, true);
});
