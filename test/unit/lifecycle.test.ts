import { test } from "node:test";
import assert from "node:assert/strict";
import { checkLifecycle, LATEST_PROTOCOL_VERSION, negotiateProtocolVersion, SUPPORTED_PROTOCOL_VERSIONS } from "../../src/protocol/lifecycle.js";
import { ErrorCode, RpcError } from "../../src/protocol/jsonrpc.js";

test("supported versions are echoed; others get the latest as a counter-offer", () => {
  for (const version of SUPPORTED_PROTOCOL_VERSIONS) assert.equal(negotiateProtocolVersion(version), version);
  assert.equal(negotiateProtocolVersion("2099-01-01"), LATEST_PROTOCOL_VERSION);
  assert.equal(LATEST_PROTOCOL_VERSION, "2025-11-25");
});

test("a missing or non-string version is -32602 with the supported list", () => {
  for (const bad of [undefined, 20251125, null, { v: 1 }]) {
    assert.throws(
      () => negotiateProtocolVersion(bad),
      (error: unknown) => error instanceof RpcError && error.code === ErrorCode.InvalidParams && Array.isArray((error.data as { supported: unknown }).supported),
    );
  }
});

test("ping is always allowed; other methods wait for initialize; initialize only once", () => {
  assert.equal(checkLifecycle("awaiting-initialize", "ping"), undefined);
  assert.equal(checkLifecycle("awaiting-initialize", "initialize"), undefined);
  assert.equal(checkLifecycle("awaiting-initialize", "tools/list")?.code, ErrorCode.InvalidRequest);
  assert.match(checkLifecycle("awaiting-initialize", "tools/list")!.message, /not initialized/);
  // The method is the client's, of any length: the message quotes its start.
  const long = checkLifecycle("awaiting-initialize", `tools/${"x".repeat(100_000)}`)!.message;
  assert.ok(long.length < 300, `${long.length} characters`);
  assert.match(long, /before "tools\/x+…"$/);
  assert.equal(checkLifecycle("ready", "tools/list"), undefined);
  assert.equal(checkLifecycle("ready", "initialize")?.code, ErrorCode.InvalidRequest);
  assert.equal(checkLifecycle("closing", "tools/call")?.code, ErrorCode.InvalidRequest);
  assert.equal(checkLifecycle("closing", "ping"), undefined);
});

test("review finding: the not-initialized error shows the method's escapes, bidi controls and lone surrogates harmlessly, as -32601 does", () => {
  const message = checkLifecycle("awaiting-initialize", "tools/\u001b]0;title\u0007\u202e\ud800x")!.message;
  // Quoted raw, the escape drove a terminal that showed it, and the lone surrogate's \ud800 escape
  // made strict JSON parsers (serde_json, for one) refuse the whole response.
  // eslint-disable-next-line no-control-regex
  assert.equal(/[\u0000-\u001f\u202e]/.test(message), false, JSON.stringify(message));
  assert.equal(/[\ud800-\udfff]/.test(message), false, JSON.stringify(message));
  assert.match(message, /before "tools\/\\u001b\]0;title\\u0007\\u202e\uFFFDx"$/);
});

test("review finding: a non-string version is echoed only when it is a scalar, so the -32602 can always be sent, and stays small", () => {
  const refusal = (value: unknown): RpcError => {
    try {
      negotiateProtocolVersion(value);
    } catch (error) {
      if (error instanceof RpcError) return error;
    }
    throw new Error("not refused");
  };
  assert.equal((refusal(20251125).data as { requested: unknown }).requested, 20251125);
  assert.equal((refusal(undefined).data as { requested: unknown }).requested, null);
  // Echoed whole, 100 000 levels of nesting made the error unserializable (JSON.stringify overflows
  // the stack): the client got -32603 "could not be serialized", and a megabyte came back a megabyte.
  const deep = JSON.parse(`${"[".repeat(100_000)}${"]".repeat(100_000)}`) as unknown;
  for (const value of [deep, { a: "x".repeat(1_000_000) }]) {
    const text = JSON.stringify(refusal(value).toObject());
    assert.ok(text.length < 1000, `${text.length} characters`);
  }
  assert.equal((refusal(deep).data as { requested: unknown }).requested, "an array");
  assert.equal((refusal({ v: 1 }).data as { requested: unknown }).requested, "an object");
});
