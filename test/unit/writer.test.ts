import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { MessageWriter, serializeMessage } from "../../src/protocol/writer.js";
import { errorMessage, resultMessage, notificationMessage } from "../../src/protocol/jsonrpc.js";
import { KEEP_TEXT_MIN_LENGTH, jsonTextOf, serializeOnce } from "../../src/util/json-text.js";

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

void test("a result serialized once is sent as that text: the same bytes as serializing the message", () => {
  const pad = "p".repeat(KEEP_TEXT_MIN_LENGTH);
  const results: Record<string, unknown>[] = [
    { content: [{ type: "text", text: pad }] },
    { content: [{ type: "text", text: `quote " backslash \\ nl \n \u2028 ünï 😀 \ud800 ${pad}` }], structuredContent: { n: -0, big: 1e21, list: [null, true] } },
    { content: [], isError: true, _meta: { pad } },
  ];
  for (const id of [1, 0, -7, 2 ** 53 - 1, "a", "", 'quo"te', "\u0000"]) {
    for (const result of results) {
      const expected = JSON.stringify(resultMessage(id, result));
      const text = serializeOnce(result);
      assert.equal(text, JSON.stringify(result));
      assert.equal(jsonTextOf(result), text, "a large text is kept");
      assert.equal(serializeMessage(resultMessage(id, result)), expected, `id ${JSON.stringify(id)}`);
    }
  }
  // A small one is not kept (serializing it again is cheaper than keeping it) and is sent the same.
  const small = { content: [{ type: "text", text: "plain" }] };
  assert.equal(serializeOnce(small), JSON.stringify(small));
  assert.equal(jsonTextOf(small), undefined);
  assert.equal(serializeMessage(resultMessage(5, small)), JSON.stringify(resultMessage(5, small)));
  // Values never serialized once, errors and notifications take JSON.stringify as before.
  assert.equal(jsonTextOf({ a: 1 }), undefined);
  assert.equal(jsonTextOf("text"), undefined);
  assert.equal(jsonTextOf(null), undefined);
  const fresh = { b: [1, 2] };
  assert.equal(serializeMessage(resultMessage(3, fresh)), JSON.stringify(resultMessage(3, fresh)));
  const error = errorMessage(4, { code: -32601, message: "Method not found" });
  assert.equal(serializeMessage(error), JSON.stringify(error));
  const note = notificationMessage("notifications/progress", { progress: 1 });
  assert.equal(serializeMessage(note), JSON.stringify(note));
});

void test("the writer sends a remembered result text, not a fresh serialization", async () => {
  const { output, chunks } = recorder();
  const writer = new MessageWriter(output, { drain: () => undefined, closed: () => undefined });
  const once = `once ${"o".repeat(KEEP_TEXT_MIN_LENGTH)}`;
  const result = { content: [{ type: "text", text: once }] };
  serializeOnce(result);
  // What the text says is what goes out: a later change to the object is not re-serialized
  // (the contract: only final values are serialized once).
  (result.content[0] as { text: string }).text = "changed";
  writer.write(resultMessage(9, result));
  await tick();
  assert.equal(chunks.join(""), `{"jsonrpc":"2.0","id":9,"result":{"content":[{"type":"text","text":"${once}"}]}}\n`);
});

void test("serializeOnce keeps a text from KEEP_TEXT_MIN_LENGTH units on, and forgets one that shrank below it", () => {
  // {"t":"…"} is 8 units around the text.
  const below = { t: "b".repeat(KEEP_TEXT_MIN_LENGTH - 9) };
  const at = { t: "a".repeat(KEEP_TEXT_MIN_LENGTH - 8) };
  assert.equal(serializeOnce(below).length, KEEP_TEXT_MIN_LENGTH - 1);
  assert.equal(jsonTextOf(below), undefined, "one unit short: not kept");
  assert.equal(serializeOnce(at).length, KEEP_TEXT_MIN_LENGTH);
  assert.equal(jsonTextOf(at), JSON.stringify(at), "at the threshold: kept");
  // Serialized again after a change that made it small: the old text must not be sent.
  at.t = "small now";
  assert.equal(serializeOnce(at), '{"t":"small now"}');
  assert.equal(jsonTextOf(at), undefined);
  assert.equal(serializeMessage(resultMessage(1, at)), '{"jsonrpc":"2.0","id":1,"result":{"t":"small now"}}');
});

void test("review finding: while the output is congested lines wait in the writer, and the stream never holds much more than its mark", async () => {
  const { output, chunks, holdWrites, releaseWrites } = recorder(1024);
  let drained = 0;
  const writer = new MessageWriter(output, { drain: () => (drained += 1), closed: () => undefined });
  holdWrites();
  const big = "y".repeat(3000);
  for (let id = 1; id <= 40; id++) writer.write(resultMessage(id, { big }));
  await tick();
  // One write went to the stream (it passed the mark); 39 responses wait here, not in the stream.
  assert.equal(chunks.length, 1);
  assert.ok(output.writableLength < 2 * 3100, `the stream holds ${output.writableLength} characters`);
  assert.equal(writer.isCongested, true);
  let flushed = false;
  const flushing = writer.flush().then(() => (flushed = true));
  // Each drain hands over what fits the mark (here one line), and congestion comes back until the last.
  for (let round = 0; round < 100 && !flushed; round++) {
    assert.ok(output.writableLength < 2 * 3100, `the stream holds ${output.writableLength} characters`);
    releaseWrites();
    holdWrites();
    await tick();
    await new Promise((resolve) => setImmediate(resolve));
  }
  releaseWrites();
  await flushing;
  const ids = chunks.join("").trimEnd().split("\n").map((line) => (JSON.parse(line) as { id: number }).id);
  assert.deepEqual(ids, Array.from({ length: 40 }, (_, k) => k + 1), "every response, whole and in order");
  assert.ok(drained >= 1, "the reader hears once all held lines are handed over");
  assert.equal(writer.isCongested, false);
  // Small lines held together leave joined up to the mark, not one write each.
  holdWrites();
  writer.write(resultMessage(100, { big }));
  await tick();
  for (let id = 101; id <= 120; id++) writer.write(resultMessage(id, {}));
  const before = chunks.length;
  releaseWrites();
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(chunks.length - before <= 2, `20 small held lines took ${chunks.length - before} writes`);
});

void test("onWritten runs once the stream has written the line out: at once when it flows, after the drain when held, at close when never", async () => {
  const { output, holdWrites, releaseWrites } = recorder(1024);
  const writer = new MessageWriter(output, { drain: () => undefined, closed: () => undefined });
  const done: string[] = [];
  const text = (id: number, size = 10): string => serializeMessage(resultMessage(id, { pad: "z".repeat(size) }));
  writer.writeSerialized(text(1), () => done.push("flowing"));
  assert.equal(done.length, 0, "not before the stream has it");
  await writer.flush();
  await new Promise((resolve) => setImmediate(resolve)); // a stream calls back on a later tick
  assert.deepEqual(done, ["flowing"]);
  // Congested: the first big line sits in the stream, the others are held here.
  holdWrites();
  writer.writeSerialized(text(2, 3000), () => done.push("in stream"));
  await tick();
  assert.equal(writer.isCongested, true);
  writer.writeSerialized(text(3, 3000), () => done.push("held a"));
  writer.writeSerialized(text(4), () => done.push("held b"));
  writer.writeSerialized(text(5));
  await tick();
  assert.deepEqual(done, ["flowing"], "nothing written out yet");
  releaseWrites();
  holdWrites();
  await tick();
  assert.deepEqual(done.slice(0, 2), ["flowing", "in stream"], "the line in the stream first");
  releaseWrites();
  await writer.flush();
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(done, ["flowing", "in stream", "held a", "held b"], "each once, in order");
  // Closed with lines in the stream, held and pending: every callback runs, once.
  holdWrites();
  writer.writeSerialized(text(6, 3000), () => done.push("stream at close"));
  await tick();
  writer.writeSerialized(text(7), () => done.push("held at close"));
  output.destroy();
  await new Promise((resolve) => setImmediate(resolve));
  writer.writeSerialized(text(8), () => done.push("after close"));
  assert.deepEqual(done.slice(4).sort(), ["after close", "held at close", "stream at close"]);
  releaseWrites();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(done.length, 7, "none twice");
});
