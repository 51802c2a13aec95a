import { test } from "node:test";
import assert from "node:assert/strict";
import { classify, classifyValue, ErrorCode, errorMessage, RpcError } from "../../src/protocol/jsonrpc.js";

const line = (text: string) => Buffer.from(text, "utf8");

test("a valid request, notification and response are classified", () => {
  assert.deepEqual(classify(line('{"jsonrpc":"2.0","id":1,"method":"ping"}')), { kind: "request", id: 1, method: "ping", params: undefined });
  assert.deepEqual(classify(line('{"jsonrpc":"2.0","id":"a","method":"x","params":{"k":1}}')), {
    kind: "request",
    id: "a",
    method: "x",
    params: { k: 1 },
  });
  assert.equal(classify(line('{"jsonrpc":"2.0","method":"notifications/initialized"}')).kind, "notification");
  assert.equal(classify(line('{"jsonrpc":"2.0","id":99,"result":{}}')).kind, "response");
  assert.equal(classify(line('{"jsonrpc":"2.0","id":99,"error":{"code":1,"message":"x"}}')).kind, "response");
});

function expectInvalid(text: string, code: number, id?: string | number) {
  const message = classify(line(text));
  assert.equal(message.kind, "invalid", text);
  if (message.kind !== "invalid") return;
  assert.equal(message.error.code, code, text);
  assert.equal(message.id, id, text);
}

test("unparseable JSON and invalid UTF-8 are parse errors with no id", () => {
  expectInvalid('{"jsonrpc":', ErrorCode.ParseError);
  expectInvalid("not json", ErrorCode.ParseError);
  const bad = classify(Buffer.from([0x7b, 0xff, 0x7d]));
  assert.equal(bad.kind, "invalid");
  if (bad.kind === "invalid") {
    assert.equal(bad.error.code, ErrorCode.ParseError);
    assert.match(bad.error.message, /UTF-8/);
  }
});

test("a message that starts with a byte order mark is a parse error that names the mark", () => {
  const bom = classify(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping"}')]));
  assert.equal(bom.kind, "invalid");
  if (bom.kind === "invalid") {
    assert.equal(bom.error.code, ErrorCode.ParseError);
    assert.match(bom.error.message, /starts with a byte order mark \(U\+FEFF, bytes EF BB BF\)/);
    assert.doesNotMatch(bom.error.message, /\uFEFF/, "the invisible character itself is not in the message");
  }
});

test("a real U+FFFD is valid text; an invalid byte inside a JSON string is still a parse error", () => {
  const withReplacementChar = classify(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"t":"\uFFFD"}}', "utf8"));
  assert.equal(withReplacementChar.kind, "request");
  const hidden = Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":2,"method":"ping","params":{"t":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}}')]);
  const bad = classify(hidden);
  assert.equal(bad.kind === "invalid" && bad.error.code, ErrorCode.ParseError);
});

test("envelope violations are invalid requests, echoing a readable id", () => {
  expectInvalid('"text"', ErrorCode.InvalidRequest);
  expectInvalid("null", ErrorCode.InvalidRequest);
  expectInvalid('{"jsonrpc":"1.0","id":3,"method":"ping"}', ErrorCode.InvalidRequest, 3);
  expectInvalid('{"id":4,"method":"ping"}', ErrorCode.InvalidRequest, 4);
  expectInvalid('{"jsonrpc":"2.0","id":5,"method":7}', ErrorCode.InvalidRequest, 5);
  expectInvalid('{"jsonrpc":"2.0","id":6,"method":""}', ErrorCode.InvalidRequest, 6);
  expectInvalid('{"jsonrpc":"2.0","id":7,"method":"x","params":[1,2]}', ErrorCode.InvalidRequest, 7);
  expectInvalid('{"jsonrpc":"2.0","id":8,"method":"x","params":null}', ErrorCode.InvalidRequest, 8);
  expectInvalid('{"jsonrpc":"2.0","id":9}', ErrorCode.InvalidRequest, 9);
});

test("null, fractional, boolean, object and unsafe ids are invalid requests without an id", () => {
  for (const id of ["null", "1.5", "true", "{}", "[]", "123456789012345678901234567890"]) {
    expectInvalid(`{"jsonrpc":"2.0","id":${id},"method":"ping"}`, ErrorCode.InvalidRequest);
  }
});

test("deep nesting and huge numbers do not throw", () => {
  const deep = `{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}}`;
  assert.equal(classify(line(deep)).kind, "request");
  assert.equal(classify(line('{"jsonrpc":"2.0","id":1,"method":"x","params":{"n":1e400}}')).kind, "request");
});

test("a response without a readable id is still a response (never answered)", () => {
  assert.equal(classifyValue({ jsonrpc: "2.0", id: null, result: {} }).kind, "response");
});

test("error messages omit the id when unknown and RpcError carries data only when given", () => {
  assert.deepEqual(errorMessage(undefined, { code: -1, message: "m" }), { jsonrpc: "2.0", error: { code: -1, message: "m" } });
  assert.deepEqual(errorMessage(0, { code: -1, message: "m" }), { jsonrpc: "2.0", id: 0, error: { code: -1, message: "m" } });
  assert.deepEqual(new RpcError(-2, "x").toObject(), { code: -2, message: "x" });
  assert.deepEqual(new RpcError(-2, "x", { a: 1 }).toObject(), { code: -2, message: "x", data: { a: 1 } });
});

test("malformed notifications are dropped, never answered", () => {
  assert.equal(classifyValue({ jsonrpc: "1.0", method: "notifications/x" }).kind, "dropped");
  assert.equal(classifyValue({ jsonrpc: "2.0", method: "notifications/cancelled", params: [] }).kind, "dropped");
  assert.equal(classifyValue({ jsonrpc: "2.0", method: "notifications/cancelled", params: null }).kind, "dropped");
  assert.equal(classifyValue({ jsonrpc: "2.0", id: 1, method: "x", params: [] }).kind, "invalid", "a request still gets its error");
});

test("a message shaped as a response is a response whatever its jsonrpc member (never answered)", () => {
  assert.equal(classifyValue({ id: "B", result: {} }).kind, "response");
  assert.equal(classifyValue({ jsonrpc: "1.0", id: 1, error: { code: -1, message: "x" } }).kind, "response");
  assert.equal(classifyValue({ jsonrpc: null, id: 3000, result: null }).kind, "response");
  // With a method it is a request again, and a bad jsonrpc is refused.
  const request = classifyValue({ jsonrpc: "1.0", id: 1, method: "ping", result: {} });
  assert.equal(request.kind === "invalid" && request.error.code, -32600);
});

test("a parse error never quotes half of a surrogate pair", () => {
  const parsed = classify(line("😀"));
  assert.equal(parsed.kind, "invalid");
  const message = parsed.kind === "invalid" ? parsed.error.message : "";
  assert.doesNotMatch(message, /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
});

test("a top-level array is a batch for the connection to accept or refuse; its elements are classified one by one and do not nest", () => {
  const batch = classify(line('[{"jsonrpc":"2.0","id":1,"method":"ping"},7]'));
  assert.equal(batch.kind, "batch");
  if (batch.kind !== "batch") return;
  assert.deepEqual(classifyValue(batch.items[0]), { kind: "request", id: 1, method: "ping", params: undefined });
  const seven = classifyValue(batch.items[1]);
  assert.equal(seven.kind, "invalid");
  const nested = classifyValue([{ jsonrpc: "2.0", id: 2, method: "ping" }]);
  assert.equal(nested.kind, "invalid");
  if (nested.kind === "invalid") {
    assert.equal(nested.error.code, ErrorCode.InvalidRequest);
    assert.equal(nested.id, undefined);
    assert.match(nested.error.message, /batches do not nest/);
  }
  assert.deepEqual(classify(line("[]")), { kind: "batch", items: [] });
});

test("review finding: a parse error quotes the line's control characters and bidi overrides as visible escapes", () => {
  // V8's message quotes the start of the line: raw, an ESC sequence there reached the client's terminal.
  const parsed = classify(Buffer.from("\u001b[2J\u001b]0;title\u0007 \u202e x", "utf8"));
  assert.equal(parsed.kind, "invalid");
  const message = parsed.kind === "invalid" ? parsed.error.message : "";
  assert.equal(parsed.kind === "invalid" && parsed.error.code, ErrorCode.ParseError);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(message, /[\u0000-\u001f\u202e]/);
  assert.match(message, /\\u001b\[2J\\u001b\]0;title\\u0007/);
});
