import { test } from "node:test";
import assert from "node:assert/strict";
import { BatchReply, type Answered } from "../../src/protocol/batch-reply.js";

function collect(maxChars?: number) {
  const sent: Array<{ texts: string[]; answered: Answered[] }> = [];
  const batch = new BatchReply((texts, answered) => sent.push({ texts: [...texts], answered: [...answered] }), maxChars);
  return { batch, sent };
}

void test("the array is sent once: after the last element is read and the last started request is answered", () => {
  const { batch, sent } = collect();
  batch.expect();
  batch.add('{"jsonrpc":"2.0","error":{"code":-32600,"message":"x"}}');
  batch.answer('{"jsonrpc":"2.0","id":1,"result":{}}', { id: 1, method: "ping" });
  assert.equal(sent.length, 0, "elements may still follow");
  batch.expect();
  batch.close();
  assert.equal(sent.length, 0, "request 2 is still running");
  batch.skip();
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0]!.answered, [{ id: 1, method: "ping" }]);
  assert.equal(sent[0]!.texts.length, 2);
  batch.close();
  assert.equal(sent.length, 1, "never twice");
});

void test("an id is claimed once per batch", () => {
  const { batch } = collect();
  assert.equal(batch.claim(1), true);
  assert.equal(batch.claim("1"), true, "the string and the number are two ids");
  assert.equal(batch.claim(1), false);
});

void test("a response that would push the array past its size is replaced by an error for its id; the array stays within the bound", () => {
  const { batch, sent } = collect(400);
  batch.expect();
  batch.expect();
  batch.answer(`{"jsonrpc":"2.0","id":"small","result":{"t":"${"a".repeat(50)}"}}`, { id: "small", method: "tools/call" });
  batch.answer(`{"jsonrpc":"2.0","id":"big","result":{"t":"${"b".repeat(1000)}"}}`, { id: "big", method: "tools/call" });
  batch.close();
  assert.equal(sent.length, 1);
  const array = JSON.parse(`[${sent[0]!.texts.join(",")}]`) as Array<{ id: string; result?: unknown; error?: { code: number; message: string } }>;
  assert.deepEqual(
    array.map((m) => m.id),
    ["small", "big"],
  );
  assert.equal(array[1]!.error?.code, -32603);
  assert.match(array[1]!.error.message, /larger than 400 characters; send requests with large results on their own line/);
  assert.ok(sent[0]!.texts.join(",").length + 2 <= 400);
  assert.deepEqual(
    sent[0]!.answered.map((a) => a.id),
    ["small", "big"],
    "both still count as answered",
  );
});
