import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { checkArgumentLimits } from "../../src/security/arg-limits.js";
import type { LimitsPolicy } from "../../src/security/policy-types.js";

const LIMITS: LimitsPolicy = { max_argument_bytes: 1000, max_depth: 4, max_string_length: 20, max_array_length: 5 };

function refused(args: unknown, limits: LimitsPolicy = LIMITS, knownBytes?: number): string {
  const verdict = checkArgumentLimits(args, limits, knownBytes);
  assert.equal(verdict.ok, false, "the arguments were accepted");
  return verdict.ok ? "" : verdict.message;
}

void describe("checkArgumentLimits", () => {
  void it("accepts arguments within every limit", () => {
    assert.deepEqual(checkArgumentLimits({ a: "x".repeat(20), list: [1, 2, 3, 4, 5], o: { p: { q: [true, null] } } }, LIMITS), { ok: true });
    assert.deepEqual(checkArgumentLimits({}, LIMITS), { ok: true });
    assert.deepEqual(checkArgumentLimits("plain", LIMITS), { ok: true });
  });

  void it("refuses a string longer than the limit, naming its path", () => {
    assert.equal(
      refused({ title: "x".repeat(21) }),
      "Arguments exceed the server's limits: arguments.title is 21 characters long; at most 20 are allowed.",
    );
    assert.match(refused({ list: ["ok", "y".repeat(30)] }), /arguments\.list\[1\] is 30 characters long/);
    assert.match(refused("z".repeat(30)), /^Arguments exceed the server's limits: arguments is 30 characters long/);
  });

  void it("refuses keys longer than the string limit", () => {
    assert.match(refused({ o: { ["k".repeat(21)]: 1 } }), /a key in arguments\.o is 21 characters long; at most 20 are allowed/);
  });

  void it("refuses arrays longer than the limit", () => {
    assert.equal(
      refused({ tags: [1, 2, 3, 4, 5, 6] }),
      "Arguments exceed the server's limits: arguments.tags has 6 items; at most 5 are allowed.",
    );
  });

  void it("counts depth from the arguments object (depth 1) and refuses deeper nesting", () => {
    assert.deepEqual(checkArgumentLimits({ a: { b: { c: { d: 1 } } } }, LIMITS), { ok: true });
    assert.equal(
      refused({ a: { b: { c: { d: {} } } } }),
      "Arguments exceed the server's limits: arguments.a.b.c.d is nested too deeply (more than 4 levels).",
    );
    assert.match(refused([[[[[]]]]]), /arguments\[0\]\[0\]\[0\]\[0\] is nested too deeply/);
    assert.match(refused({}, { ...LIMITS, max_depth: 0 }), /arguments is nested too deeply \(more than 0 levels\)/);
  });

  void it("handles extreme nesting without recursion", () => {
    let deep: unknown = {};
    for (let i = 0; i < 200_000; i++) deep = { k: deep };
    const message = refused(deep, { ...LIMITS, max_depth: 32, max_argument_bytes: Number.MAX_SAFE_INTEGER });
    assert.match(message, /more than 32 levels/);
    // The path is shortened in the middle rather than 32 segments long.
    assert.match(message, /arguments(\.k){8}\.\.\.(\.k){4} is nested/);
    assert.ok(message.length < 200);
  });

  void it("refuses __proto__ keys at any depth, but accepts constructor and prototype as ordinary words", () => {
    const parsed = JSON.parse('{"a": [{"__proto__": {"polluted": 1}}]}') as unknown;
    assert.match(refused(parsed), /arguments\.a\[0\]\.__proto__ is not allowed: the key "__proto__" is refused anywhere in arguments/);
    assert.match(refused(JSON.parse('{"__proto__": 1}')), /arguments\.__proto__ is not allowed/);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.deepEqual(checkArgumentLimits(JSON.parse('{"constructor": {"prototype": "x"}}'), LIMITS), { ok: true });
  });

  void it("uses the caller's byte count when given, without serializing", () => {
    assert.equal(
      refused({ a: 1 }, LIMITS, 1001),
      "Arguments exceed the server's limits: they are 1001 bytes when serialized; at most 1000 bytes are allowed.",
    );
    assert.deepEqual(checkArgumentLimits({ a: 1 }, LIMITS, 1000), { ok: true });
    // A known size within the limit still lets the other limits apply.
    assert.match(refused({ a: "x".repeat(21) }, LIMITS, 10), /21 characters long/);
  });

  void it("counts the serialized size itself otherwise, matching JSON.stringify for ordinary values", () => {
    const values: unknown[] = [
      { a: "héllo 🙂", b: [1, -2.5, 1e21, true, false, null], c: {}, d: [], e: { f: [{}] } },
      { "ключ": "значение", n: 0, list: [[], [[]]] },
      [],
      {},
    ];
    for (const value of values) {
      const size = Buffer.byteLength(JSON.stringify(value), "utf8");
      const limits = { max_argument_bytes: size, max_depth: 10, max_string_length: 100, max_array_length: 100 };
      assert.deepEqual(checkArgumentLimits(value, limits), { ok: true }, JSON.stringify(value));
      assert.equal(checkArgumentLimits(value, { ...limits, max_argument_bytes: size - 1 }).ok, false, JSON.stringify(value));
    }
  });

  void it("stops early on large arguments", () => {
    const big = { items: Array.from({ length: 50 }, () => "x".repeat(100)) };
    const limits = { max_argument_bytes: 500, max_depth: 4, max_string_length: 1000, max_array_length: 1000 };
    assert.equal(
      refused(big, limits),
      "Arguments exceed the server's limits: they are more than 500 bytes when serialized; at most 500 bytes are allowed.",
    );
  });

  void it("refuses values that are not JSON", () => {
    for (const bad of [undefined, () => 1, Symbol("s"), 1n]) assert.match(refused({ v: bad }), /arguments\.v is not a JSON value/);
    assert.match(refused({ n: NaN }), /arguments\.n is not a finite number/);
    assert.match(refused({ n: Infinity }), /not a finite number/);
    const sparse: unknown[] = [1];
    sparse[2] = 3;
    assert.match(refused(sparse), /arguments\[1\] is not a JSON value/);
  });

  void it("quotes odd keys in paths", () => {
    assert.match(refused({ "a b": { "x/y": "z".repeat(21) } }), /arguments\["a b"\]\["x\/y"\] is 21 characters long/);
    const longKey = "k".repeat(60);
    const limits = { ...LIMITS, max_string_length: 100 };
    assert.match(refused({ [longKey]: "z".repeat(101) }, limits), new RegExp(`arguments\\["${"k".repeat(40)}\\.\\.\\."\\] is 101`));
  });

  void it("fails closed on unusable limits", () => {
    for (const bad of [NaN, -1]) {
      assert.match(refused({}, { ...LIMITS, max_depth: bad }), /limits in the policy are not valid numbers/);
      assert.match(refused({}, { ...LIMITS, max_argument_bytes: bad }), /not valid numbers/);
    }
  });
});
