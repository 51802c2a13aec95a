import { XPATH_EVERYWHERE, sortPaths } from "../helpers/tool-samples.js";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createValidatorSet, SchemaCompileError, type ValidatorSet } from "../../src/security/validation.js";
import type { JsonObject, ToolDefinition } from "../../src/plugins/contract.js";
import { silentLogger } from "../../src/util/logger.js";

function tool(name: string, inputSchema: JsonObject, outputSchema?: JsonObject): ToolDefinition {
  return outputSchema === undefined
    ? { name, title: name, description: name, inputSchema, annotations: {} }
    : { name, title: name, description: name, inputSchema, outputSchema, annotations: {} };
}

function withTool(inputSchema: JsonObject, outputSchema?: JsonObject): ValidatorSet {
  const set = createValidatorSet();
  set.addTool(tool("t", inputSchema, outputSchema));
  return set;
}

/**
 * The error for a schema refused by `addTool` (structure), or with `deferred`, by Ajv's
 * compile, which waits for the first validation: then `compileAll` throws it, and the
 * tool's validations fail closed with the same message.
 */
function compileError(inputSchema: unknown, name = "broken", deferred = false): SchemaCompileError {
  const set = createValidatorSet();
  try {
    set.addTool(tool(name, inputSchema as JsonObject));
    if (deferred) {
      const verdict = set.validateInput(name, {});
      set.compileAll();
      assert.fail(`compileAll accepted the schema (validation: ${JSON.stringify(verdict)})`);
    }
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    assert.equal(deferred, set.has(name), deferred ? "registered, compiled later" : "refused at registration");
    if (deferred) assert.deepEqual(set.validateInput(name, {}), { ok: false, message: (error as Error).message });
    assert.ok(error instanceof SchemaCompileError, `expected SchemaCompileError, got ${String(error)}`);
    assert.equal(error.code, "TOOL_SCHEMA_INVALID");
    assert.equal(error.tool, name);
    assert.match(error.message, new RegExp(`"${name}"`));
    return error;
  }
  assert.fail("the schema was accepted");
}

function message(set: ValidatorSet, args: unknown, name = "t"): string {
  const verdict = set.validateInput(name, args as JsonObject);
  assert.equal(verdict.ok, false, "the arguments were accepted");
  return verdict.ok ? "" : verdict.message;
}

const BUG_SCHEMA: JsonObject = {
  type: "object",
  properties: {
    title: { type: "string", minLength: 1, maxLength: 5 },
    description: { type: "string" },
    priority: { enum: ["low", "medium", "high", "critical"] },
  },
  required: ["title"],
  additionalProperties: false,
};

void describe("schema compilation", () => {
  void it("accepts a 2020-12 object schema, with or without $schema", () => {
    const set = createValidatorSet();
    set.addTool(tool("a", BUG_SCHEMA));
    set.addTool(tool("b", { $schema: "https://json-schema.org/draft/2020-12/schema", type: "object" }));
    set.addTool(tool("c", { $schema: "https://json-schema.org/draft/2020-12/schema#", type: "object" }));
    assert.ok(set.has("a") && set.has("b") && set.has("c"));
    assert.equal(set.has("d"), false);
  });

  void it("refuses other dialects with a clear error", () => {
    const error = compileError({ $schema: "http://json-schema.org/draft-07/schema#", type: "object" });
    assert.match(error.message, /draft-07/);
    assert.match(error.message, /only JSON Schema 2020-12/);
    assert.match(compileError({ $schema: 7, type: "object" }).message, /only JSON Schema 2020-12/);
  });

  void it("requires an object schema with type object at the root", () => {
    assert.match(compileError({ type: "array" }).message, /"type": "object" at its root/);
    assert.match(compileError({ type: ["object", "null"] }).message, /at its root/);
    assert.match(compileError([]).message, /must be a JSON object/);
    assert.match(compileError(null).message, /must be a JSON object/);
  });

  void it("meta-validates and applies strict mode", () => {
    assert.match(compileError({ type: "object", properties: { a: { type: "strin" } } }, "broken", true).message, /schema is invalid/);
    assert.match(compileError({ type: "object", requried: ["a"] }, "broken", true).message, /unknown keyword/);
    assert.match(compileError({ type: "object", properties: { a: { type: "string", format: "nope" } } }, "broken", true).message, /unknown format/);
    assert.match(compileError({ type: "object", properties: { a: { type: "string", pattern: "(" } } }, "broken", true).message, /regular expression/i);
    // strictTypes: a keyword that does not fit the declared type is a schema bug.
    assert.match(compileError({ type: "object", properties: { n: { minimum: 1 } } }, "broken", true).message, /strictTypes/);
  });

  void it("accepts open-ended tuples and passes Ajv's warning to the logger", () => {
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (msg: string, data?: Record<string, unknown>) => warnings.push(`${msg} ${String(data?.detail)}`) };
    const set = createValidatorSet({ logger });
    set.addTool(tool("t", { type: "object", properties: { t: { type: "array", prefixItems: [{ type: "string" }], items: { type: "integer" } } } }));
    assert.equal(set.validateInput("t", { t: ["a", 1, 2] }).ok, true);
    assert.equal(set.validateInput("t", { t: ["a", "b"] }).ok, false);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /prefixItems/);
  });

  void it("allows required properties that are defined elsewhere (anyOf, then)", () => {
    const set = withTool({
      type: "object",
      properties: { a: { type: "string" }, b: { type: "string" } },
      anyOf: [{ required: ["a"] }, { required: ["b"] }],
    });
    assert.equal(set.validateInput("t", { b: "x" }).ok, true);
    assert.equal(set.validateInput("t", {}).ok, false);
  });

  void it("never loads remote references", () => {
    assert.match(compileError({ type: "object", properties: { a: { $ref: "https://example.com/x.json" } } }, "broken", true).message, /resolve reference/);
  });

  void it("refuses an x-path value other than read or write", () => {
    assert.match(compileError({ type: "object", properties: { a: { type: "string", "x-path": "exec" } } }, "broken", true).message, /x-path/);
  });

  void it("refuses x-path where its values might not all be collected", () => {
    for (const keyword of ["contains", "not", "if", "propertyNames"]) {
      const schema = { type: "object", properties: { a: { type: "array", [keyword]: { type: "string", "x-path": "read" } } } };
      assert.match(compileError(schema).message, new RegExp(`inside "${keyword}"`), keyword);
    }
    // Also through a local reference, and nested further down.
    const viaRef = {
      type: "object",
      $defs: { p: { type: "object", properties: { f: { type: "string", "x-path": "write" } } } },
      properties: { a: { type: "array", contains: { $ref: "#/$defs/p" } } },
    };
    assert.match(compileError(viaRef).message, /inside "contains"/);
  });

  void it("refuses x-path inside not although a toJSON method hides it from the schema's JSON text", () => {
    const schema = { type: "object", properties: { a: { type: "array", not: { type: "string", "x-path": "read" } } } };
    Object.defineProperty(schema, "toJSON", { value: () => ({ type: "object" }), enumerable: false });
    assert.match(compileError(schema).message, /inside "not"/);
  });

  void it("refuses a reference it cannot follow inside such a place when the schema uses x-path", () => {
    const schema = {
      type: "object",
      $defs: { p: { $id: "p.json", type: "string" } },
      properties: { a: { type: "string", "x-path": "read" }, b: { not: { $ref: "p.json" } } },
    };
    assert.match(compileError(schema).message, /cannot tell whether the reference "p.json"/);
    // A malformed pointer cannot be followed either.
    const bad = { type: "object", properties: { a: { type: "string", "x-path": "read" }, b: { not: { $ref: "#/%E0%A4%A" } } } };
    assert.match(compileError(bad).message, /cannot tell/);
    // Without x-path there is nothing to protect, so the same shape is fine.
    const plain = { type: "object", $defs: { p: { $id: "p.json", type: "string" } }, properties: { b: { not: { $ref: "p.json" } } } };
    const set = withTool(plain);
    assert.equal(set.validateInput("t", { b: 1 }).ok, true);
    assert.equal(set.validateInput("t", { b: "s" }).ok, false);
  });

  void it("accepts x-path in ordinary places, recursive references included", () => {
    const set = withTool({
      type: "object",
      $defs: {
        node: {
          type: "object",
          properties: { path: { type: "string", "x-path": "read" }, children: { type: "array", items: { $ref: "#/$defs/node" } } },
        },
      },
      properties: { root: { $ref: "#/$defs/node" }, self: { $ref: "#" } },
    });
    const verdict = set.validateInput("t", { root: { path: "/a", children: [{ path: "/b", children: [{ path: "/c" }] }] } });
    assert.deepEqual(verdict.ok && verdict.paths.map((p) => p.value), ["/a", "/b", "/c"]);
  });

  void it("names the tool and the schema when a tool is added twice or its output schema is bad", () => {
    const set = createValidatorSet();
    set.addTool(tool("dup", BUG_SCHEMA));
    assert.throws(() => set.addTool(tool("dup", BUG_SCHEMA)), (e: unknown) => e instanceof SchemaCompileError && /registered twice/.test(e.message));
    assert.throws(
      () => set.addTool(tool("out", BUG_SCHEMA, { type: "array" })),
      (e: unknown) => e instanceof SchemaCompileError && e.tool === "out" && /outputSchema/.test(e.message),
    );
    assert.equal(set.has("out"), false);
  });

  void it("fails cleanly on a cyclic schema object", () => {
    // A cyclic schema makes Ajv recurse without end; the start must still fail cleanly.
    const cyclic: Record<string, unknown> = { type: "object" };
    cyclic.properties = { self: cyclic };
    assert.match(compileError(cyclic, "broken", true).message, /is invalid/);
  });
});

void describe("argument validation", () => {
  const set = withTool(BUG_SCHEMA);

  void it("accepts valid arguments with no paths", () => {
    assert.deepEqual(set.validateInput("t", { title: "bug" }), { ok: true, paths: [] });
  });

  void it("refuses an unknown tool", () => {
    assert.deepEqual(set.validateInput("nope", {}), { ok: false, message: 'Unknown tool "nope".' });
    assert.deepEqual(set.validateOutput("nope", {}), { ok: false, message: 'Unknown tool "nope".' });
  });

  void it("names the field, the rule and the allowed values", () => {
    const bugs = createValidatorSet();
    bugs.addTool(tool("add_bug", BUG_SCHEMA));
    assert.equal(
      message(bugs, { title: "x", priority: "bogus" }, "add_bug"),
      'Invalid arguments for tool "add_bug": arguments.priority must be one of "low", "medium", "high", "critical" (got "bogus").',
    );
    assert.equal(message(bugs, {}, "add_bug"), 'Invalid arguments for tool "add_bug": arguments is missing required property "title".');
  });

  void it("lists allowed properties and suggests a near name", () => {
    assert.match(message(set, { title: "x", titel: "y" }), /unexpected property "titel" \(allowed: title, description, priority; did you mean "title"\?\)/);
    const far = message(set, { title: "x", zzzzzz: 1 });
    assert.match(far, /unexpected property "zzzzzz" \(allowed: title, description, priority\)\.$/);
    const closed = withTool({ type: "object", additionalProperties: false });
    assert.match(message(closed, { a: 1 }), /unexpected property "a" \(no properties are allowed\)/);
    const patterned = withTool({ type: "object", patternProperties: { "^x": { type: "string" } }, additionalProperties: false });
    assert.match(message(patterned, { a: 1 }), /unexpected property "a"\.$/);
    const many = withTool({
      type: "object",
      properties: Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`p${i}`, { type: "string" }])),
      additionalProperties: false,
    });
    assert.match(message(many, { q: 1 }), /allowed: p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, \.\.\.\)/);
  });

  void it("words each rule for a model", () => {
    const rich = withTool({
      type: "object",
      properties: {
        s: { type: "string", minLength: 2, maxLength: 3 },
        n: { type: "integer", minimum: 1, exclusiveMaximum: 10, multipleOf: 2 },
        x: { type: "number", exclusiveMinimum: 0, maximum: 5 },
        u: { type: ["string", "null"] },
        tags: { type: "array", items: { type: "string" }, uniqueItems: true, minItems: 1, maxItems: 2 },
        d: { type: "string", format: "date" },
        p: { type: "string", pattern: "^[a-z]+$" },
        // A pattern too long to quote whole is explained by the description, where there is one.
        lp: { type: "string", pattern: `^(?:${"[a-z]".repeat(10)}|[0-9]{26})$`, description: "Ten letters or a 26-digit number." },
        lq: { type: "string", pattern: `^(?:${"[a-z]".repeat(10)}|[0-9]{26})$` },
        c: { const: 42 },
        m: { type: "object", minProperties: 1, maxProperties: 1 },
        no: { not: { type: "string" } },
        f: false,
        ct: { type: "array", contains: { type: "string" }, maxContains: 1 },
        ct2: { type: "array", contains: { type: "string" }, minContains: 2 },
        pn: { type: "object", propertyNames: { pattern: "^[a-z]+$" } },
        tup: { type: "array", prefixItems: [{ type: "string" }], items: false, minItems: 1 },
        cond: {
          type: "object",
          properties: { kind: { type: "string" }, size: { type: "integer" } },
          if: { properties: { kind: { const: "big" } } },
          then: { required: ["size"] },
        },
        dep: { type: "object", dependentRequired: { a: ["b"] } },
      },
    });
    const cases: [unknown, RegExp][] = [
      [{ s: "a" }, /arguments\.s must be at least 2 characters long \(got 1\)/],
      [{ s: "abcd" }, /arguments\.s must be at most 3 characters long \(got 4\)/],
      [{ s: 5 }, /arguments\.s must be a string \(got 5\)/],
      [{ n: 0 }, /arguments\.n must be at least 1 \(got 0\)/],
      [{ n: 12 }, /arguments\.n must be less than 10 \(got 12\)/],
      [{ n: 3 }, /arguments\.n must be a multiple of 2 \(got 3\)/],
      [{ n: 1.5 }, /arguments\.n must be an integer \(got 1\.5\)/],
      [{ x: 0 }, /arguments\.x must be greater than 0 \(got 0\)/],
      [{ x: 6 }, /arguments\.x must be at most 5 \(got 6\)/],
      [{ u: true }, /arguments\.u must be a string or null \(got true\)/],
      [{ tags: [] }, /arguments\.tags must have at least 1 item \(got 0\)/],
      [{ tags: ["a", "b", "c"] }, /arguments\.tags must have at most 2 items \(got 3\)/],
      [{ tags: ["a", "a"] }, /arguments\.tags must not contain duplicates \(items 1 and 0 are equal\)/],
      [{ tags: ["a", 1] }, /arguments\.tags\[1\] must be a string \(got 1\)/],
      [{ d: "2020-13-45" }, /arguments\.d must be a valid date \(got "2020-13-45"\)/],
      [{ p: "ABC" }, /arguments\.p must match the pattern "\^\[a-z\]\+\$" \(got "ABC"\)/],
      [{ lp: "ABC" }, /arguments\.lp is not in the expected form: Ten letters or a 26-digit number\. \(got "ABC"\)/],
      [{ lq: "ABC" }, /arguments\.lq must match the pattern "\^\(\?:\[a-z\].*\.\.\." \(got "ABC"\)/],
      [{ c: 1 }, /arguments\.c must be 42 \(got 1\)/],
      [{ m: {} }, /arguments\.m must have at least 1 property/],
      [{ m: { a: 1, b: 2 } }, /arguments\.m must have at most 1 property/],
      [{ no: "s" }, /arguments\.no must not match the excluded form/],
      [{ f: 1 }, /arguments\.f is not allowed/],
      [{ ct: ["a", "b"] }, /arguments\.ct must contain at most 1 matching item\./],
      [{ ct2: ["a"] }, /arguments\.ct2 must contain at least 2 matching items/],
      [{ ct2: [1] }, /arguments\.ct2 must contain at least 2 matching items/],
      [{ pn: { AB: 1 } }, /the property name "AB" in arguments\.pn must match the pattern "\^\[a-z\]\+\$"\.$/],
      [{ tup: ["a", "b"] }, /arguments\.tup must NOT have more than 1 item/],
      [{ cond: { kind: "big" } }, /arguments\.cond is missing required property "size"\.$/],
      [{ dep: { a: 1 } }, /arguments\.dep must have property "b" when "a" is present/],
      [[], /arguments must be an object \(got an array\)/],
      [{ s: null }, /arguments\.s must be a string \(got null\)/],
      [{ s: {} }, /arguments\.s must be a string \(got an object\)/],
    ];
    for (const [args, expected] of cases) assert.match(message(rich, args), expected, JSON.stringify(args));
  });

  void it("treats unevaluatedProperties like additionalProperties and shortens long enums", () => {
    const set2 = withTool({
      type: "object",
      allOf: [{ properties: { a: { type: "string" } } }],
      properties: { level: { enum: Array.from({ length: 12 }, (_, i) => `l${i}`) } },
      unevaluatedProperties: false,
    });
    assert.equal(set2.validateInput("t", { a: "x" }).ok, true);
    assert.match(message(set2, { b: 1 }), /arguments has unexpected property "b" \(allowed: level\)/);
    assert.match(message(set2, { level: "x" }), /must be one of "l0", "l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9", \.\.\. \(got "x"\)/);
  });

  void it("puts the combinator summary first and bounds the number of problems", () => {
    const set2 = withTool({
      type: "object",
      properties: {
        one: { oneOf: [{ type: "string" }, { type: "integer" }] },
        two: { oneOf: [{ type: "number" }, { type: "integer" }] },
        any: { anyOf: [{ type: "string" }, { type: "integer" }, { type: "boolean" }, { type: "null" }] },
      },
    });
    assert.equal(
      message(set2, { one: true }),
      'Invalid arguments for tool "t": arguments.one must match exactly one of the allowed forms; arguments.one must be a string (got true); arguments.one must be an integer (got true).',
    );
    assert.match(message(set2, { two: 1 }), /arguments\.two must match exactly one of the allowed forms, but it matches several/);
    assert.match(message(set2, { any: {} }), /^[^;]*must match one of the allowed forms; [^;]*; [^;]* \(and 2 more problems\)\.$/);
    const three = createValidatorSet({ maxProblems: 2 });
    three.addTool(tool("t", { type: "object", properties: { any: { anyOf: [{ type: "string" }, { type: "integer" }] } } }));
    assert.match(message(three, { any: {} }), / \(and 1 more problem\)\.$/);
    const one = createValidatorSet({ maxProblems: 1 });
    one.addTool(tool("t", { type: "object", properties: { any: { anyOf: [{ type: "string" }, { type: "integer" }] } } }));
    assert.match(message(one, { any: {} }), /allowed forms \(and 2 more problems\)\.$/);
  });

  void it("keeps messages short and never echoes huge values", () => {
    const huge = "x".repeat(100_000);
    const set2 = withTool({ type: "object", properties: { p: { type: "string", pattern: "^y" }, [huge]: { type: "string" } } });
    const text = message(set2, { p: huge });
    assert.ok(text.length < 300, `message of ${text.length} characters`);
    assert.match(text, /\(got "x{40}\.\.\."\)/);
    // A huge unexpected key is truncated too.
    const closed = withTool({ type: "object", properties: { a: { type: "string" } }, additionalProperties: false });
    assert.ok(message(closed, { [huge]: 1 }).length < 300);
    // A hard cap on the whole message.
    const capped = createValidatorSet({ maxMessageLength: 60 });
    capped.addTool(tool("t", BUG_SCHEMA));
    const short = message(capped, { title: "x", priority: "bogus" });
    assert.equal(short.length, 60);
    assert.ok(short.endsWith("..."));
  });

  void it("never echoes secrets: sensitive keys are hidden and secret patterns redacted", () => {
    const set2 = withTool({ type: "object", properties: { password: { type: "string", pattern: "^x" }, q: { type: "string", pattern: "^x" } } });
    const hidden = message(set2, { password: "hunter2" });
    assert.match(hidden, /arguments\.password must match the pattern "\^x" \(got a value that is not shown\)/);
    assert.doesNotMatch(hidden, /hunter2/);
    const token = `ghp_${"a".repeat(36)}`;
    const redacted = message(set2, { q: token });
    assert.doesNotMatch(redacted, /a{36}/);
    assert.match(redacted, /ghp_\[REDACTED\]/);
  });

  void it("never echoes the argument after a sensitive flag (the audit entry holds [REDACTED] there), nor anything in it", () => {
    const set2 = withTool({
      type: "object",
      properties: { args: { type: "array", items: { type: ["string", "object"], pattern: "^[^;]*$", properties: { a: { type: "string", pattern: "^x" } } } } },
    });
    const hidden = message(set2, { args: ["-u", "root", "--password", "hun;ter2"] });
    assert.match(hidden, /arguments\.args\[3\] must match the pattern "\^\[\^;\]\*\$" \(got a value that is not shown\)/);
    assert.doesNotMatch(hidden, /hun;ter2/);
    const inside = message(set2, { args: ["--token", { a: "secret" }] });
    assert.match(inside, /arguments\.args\[1\]\.a must match the pattern "\^x" \(got a value that is not shown\)/);
    assert.doesNotMatch(inside, /secret/);
    // Not after a sensitive flag: shown as before.
    assert.match(message(set2, { args: ["-p", "hun;ter2"] }), /\(got "hun;ter2"\)/);
  });

  void it("never echoes a value nested under a sensitive key (only the last key was looked at)", () => {
    const set2 = withTool({ type: "object", properties: { password: { type: "array", items: { type: "string", pattern: "^x" } } } });
    const hidden = message(set2, { password: ["hunter2"] });
    assert.match(hidden, /arguments\.password\[0\] must match the pattern "\^x" \(got a value that is not shown\)/);
    assert.doesNotMatch(hidden, /hunter2/);
  });

  void it("writes paths with array indexes and quoted odd keys", () => {
    const set2 = withTool({
      type: "object",
      properties: { list: { type: "array", items: { type: "object", properties: { "we/ird~": { type: "string" } } } } },
    });
    assert.match(message(set2, { list: [{ "we/ird~": 1 }] }), /arguments\.list\[0\]\["we\/ird~"\] must be a string \(got 1\)/);
  });

  void it("does not let __proto__ pollute anything or slip past additionalProperties", () => {
    const parsed = JSON.parse('{"title": "x", "__proto__": {"polluted": 1}}') as JsonObject;
    assert.match(message(set, parsed), /unexpected property "__proto__"/);
    assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    // An open schema accepts the key as data, still without pollution.
    const open = withTool({ type: "object", properties: { constructor: { type: "string" }, prototype: { type: "string" } } });
    const verdict = open.validateInput("t", JSON.parse('{"__proto__": {"polluted": 1}, "constructor": "c", "prototype": "p"}'));
    assert.equal(verdict.ok, true);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.match(message(open, { constructor: 1 }), /arguments\.constructor must be a string/);
  });

  void it("refuses instead of crashing when data is too deep for a recursive schema", () => {
    const recursive: JsonObject = {
      type: "object",
      $defs: { node: { type: "object", properties: { next: { $ref: "#/$defs/node" } } } },
      properties: { next: { $ref: "#/$defs/node" } },
    };
    const set2 = withTool(recursive, recursive);
    let deep: JsonObject = {};
    for (let i = 0; i < 200_000; i++) deep = { next: deep };
    assert.deepEqual(set2.validateInput("t", deep), {
      ok: false,
      message: 'The arguments for tool "t" could not be validated (too deeply nested?).',
    });
    assert.deepEqual(set2.validateOutput("t", deep), {
      ok: false,
      message: 'The structured output of tool "t" could not be validated (too deeply nested?).',
    });
    // The set still works afterwards.
    assert.deepEqual(set2.validateInput("t", { next: {} }), { ok: true, paths: [] });
  });

  void it("does not mutate the arguments", () => {
    const set2 = withTool({ type: "object", properties: { a: { type: "string", default: "d" } } });
    const args: JsonObject = {};
    assert.equal(set2.validateInput("t", args).ok, true);
    assert.deepEqual(args, {});
  });
});

void describe("x-path collection", () => {
  void it("collects marked values with their pointer and access, inside arrays, objects, refs and combinators", () => {
    const set = withTool({ type: "object", $defs: XPATH_EVERYWHERE.$defs, properties: XPATH_EVERYWHERE.properties, additionalProperties: false });
    const verdict = set.validateInput("t", XPATH_EVERYWHERE.arguments);
    assert.equal(verdict.ok, true);
    // A value marked twice with the same access is kept once; with both accesses, once per access.
    assert.deepEqual(sortPaths(verdict.ok ? verdict.paths : []), XPATH_EVERYWHERE.paths);
  });

  void it("keeps a value marked both read and write twice, once per access", () => {
    const set = withTool({ type: "object", properties: { p: { allOf: [{ type: "string", "x-path": "read" }, { "x-path": "write" }] } } });
    const verdict = set.validateInput("t", { p: "/x" });
    assert.deepEqual(verdict.ok && verdict.paths.map((p) => p.access).sort(), ["read", "write"]);
  });

  void it("refuses a marked value that is not a string", () => {
    const set = withTool({ type: "object", properties: { p: { "x-path": "read" } } });
    assert.match(message(set, { p: ["/etc/passwd"] }), /arguments\.p must be a string \(a filesystem path\) \(got an array\)/);
    assert.deepEqual(set.validateInput("t", { p: "/ok" }), { ok: true, paths: [{ pointer: "/p", value: "/ok", access: "read" }] });
  });

  void it("does not leak paths from one call into the next", () => {
    const set = withTool({ type: "object", properties: { p: { type: "string", "x-path": "read" }, n: { type: "integer" } } });
    assert.equal(set.validateInput("t", { p: "/a", n: "bad" }).ok, false);
    assert.deepEqual(set.validateInput("t", { n: 1 }), { ok: true, paths: [] });
  });

  void it("compiles once: many calls reuse the compiled validator", () => {
    const set = withTool({ type: "object", properties: { p: { type: "string", "x-path": "read" } } });
    for (let i = 0; i < 1000; i++) {
      const verdict = set.validateInput("t", { p: `/f${i}` });
      assert.ok(verdict.ok && verdict.paths[0]?.value === `/f${i}`);
    }
  });
});

void describe("output validation", () => {
  const output: JsonObject = {
    type: "object",
    properties: { count: { type: "integer" }, path: { type: "string", "x-path": "read" } },
    required: ["count"],
  };

  void it("accepts anything from a tool without an output schema", () => {
    assert.deepEqual(withTool(BUG_SCHEMA).validateOutput("t", { whatever: [1, 2] }), { ok: true });
  });

  void it("checks structuredContent against the output schema", () => {
    const set = withTool(BUG_SCHEMA, output);
    assert.deepEqual(set.validateOutput("t", { count: 1, path: "/x" }), { ok: true });
    assert.deepEqual(set.validateOutput("t", { count: "1" }), {
      ok: false,
      message: 'Invalid structured output from tool "t": structuredContent.count must be an integer (got "1").',
    });
  });
});

void describe("x-audit placement", () => {
  void it('a mark the audit log could not honour refuses the tool at registration', () => {
  const error = compileError({ type: "object", properties: { list: { type: "array", contains: { "x-audit": "digest" } } } }, "marks");
  assert.match(error.message, /The inputSchema of tool "marks" is invalid: "x-audit" cannot be used inside "contains"/);
  // Where it can be honoured, at any depth, the tool registers.
  const set = createValidatorSet();
  set.addTool(tool("nested", { type: "object", properties: { files: { type: "array", items: { type: "object", properties: { c: { type: "string", "x-audit": "digest" } } } } } }));
  assert.equal(set.validateInput("nested", { files: [{ c: "x" }] }).ok, true);
});
});
