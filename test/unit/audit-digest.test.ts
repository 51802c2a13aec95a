/** `"x-audit": "digest"` at any depth of an input schema, and where it cannot be honoured. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { argumentDigester, auditKeywordProblem, valueDigest } from "../../src/security/audit-digest.js";
import { mayHoldKey } from "../../src/security/schema-keywords.js";
import { redact } from "../../src/security/redaction.js";
import type { JsonObject, Plugin, ToolDefinition } from "../../src/plugins/contract.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SecurityEngine, auditedArguments } from "../../src/security/engine.js";
import { PluginRegistry } from "../../src/plugins/registry.js";
import { defaultPolicy } from "../../src/security/policy/defaults.js";
import { compilePathPolicy } from "../../src/security/path-guard.js";
import type { AuditRecordInput } from "../../src/security/audit/index.js";
import { LazyAbort } from "../../src/util/call-abort.js";
import { silentLogger } from "../../src/util/logger.js";

const sha = (text: string) => createHash("sha256").update(text).digest("hex");
const digestOf = (text: string) => ({ bytes: Buffer.byteLength(text), sha256: sha(text) });

function recorded(schema: JsonObject, args: JsonObject): unknown {
  const digester = argumentDigester(schema);
  assert.ok(digester !== undefined, "the schema marks something");
  return digester(args, redact(args).value);
}

test("a value is digested as its UTF-8 text, anything else as its canonical JSON", () => {
  assert.deepEqual(valueDigest("héllo"), digestOf("héllo"));
  assert.deepEqual(valueDigest({ b: 1, a: [true] }), digestOf('{"a":[true],"b":1}'));
});

test("a schema without the keyword has no digester, and no problem", () => {
  const schema = { type: "object", properties: { a: { type: "string" } } };
  assert.equal(argumentDigester(schema), undefined);
  assert.equal(auditKeywordProblem(schema), undefined);
});

test("marks inside objects and arrays are digested where they are; the rest is recorded redacted", () => {
  const schema = {
    type: "object",
    properties: {
      files: {
        type: "array",
        items: { type: "object", properties: { path: { type: "string" }, content: { type: "string", "x-audit": "digest" } } },
      },
      options: { type: "object", properties: { note: { type: "string" }, blob: { "x-audit": "digest" } } },
      token: { type: "string" },
    },
  };
  const args = {
    files: [
      { path: "/a.txt", content: "first" },
      { path: "/b.txt", content: "second" },
    ],
    options: { note: "n", blob: { x: [1, 2] } },
    token: "s3cr3t-value",
  };
  const frozen = JSON.stringify(args);
  assert.deepEqual(recorded(schema, args), {
    files: [
      { path: "/a.txt", content: digestOf("first") },
      { path: "/b.txt", content: digestOf("second") },
    ],
    options: { note: "n", blob: digestOf('{"x":[1,2]}') },
    token: "[REDACTED]",
  });
  assert.equal(JSON.stringify(args), frozen, "the arguments are not changed");
});

test("references, combinators, patterns, additional members and tuple items are followed", () => {
  const schema: JsonObject = {
    type: "object",
    $defs: { secretText: { type: "string", "x-audit": "digest" } },
    properties: {
      viaRef: { $ref: "#/$defs/secretText" },
      either: { anyOf: [{ type: "number" }, { type: "string", "x-audit": "digest" }] },
      byPattern: { type: "object", patternProperties: { "^body_": { "x-audit": "digest" } } },
      rest: { type: "object", properties: { keep: { type: "string" } }, additionalProperties: { "x-audit": "digest" } },
      pair: { type: "array", prefixItems: [{ type: "string" }, { type: "string", "x-audit": "digest" }] },
    },
    allOf: [{ properties: { viaAllOf: { "x-audit": "digest" } } }],
  };
  const args = {
    viaRef: "r",
    either: 5,
    byPattern: { body_1: "b", head: "h" },
    rest: { keep: "k", other: "o" },
    pair: ["name", "value"],
    viaAllOf: "a",
    unmarked: "u",
  };
  assert.deepEqual(recorded(schema, args), {
    viaRef: digestOf("r"),
    // Conservative: a mark in any branch that may apply hides the value.
    either: digestOf("5"),
    byPattern: { body_1: digestOf("b"), head: "h" },
    rest: { keep: "k", other: digestOf("o") },
    pair: ["name", digestOf("value")],
    viaAllOf: digestOf("a"),
    unmarked: "u",
  });
});

test("a marked value a secret's key redacted whole stays redacted (its hash could be guessed back)", () => {
  const schema = { type: "object", properties: { password: { type: "string", "x-audit": "digest" }, body: { type: "string", "x-audit": "digest" } } };
  assert.deepEqual(recorded(schema, { password: "hunter2", body: "text" }), { password: "[REDACTED]", body: digestOf("text") });
});

test("the engine's record of a call digests nested marks, valid arguments or not", () => {
  const tool = {
    name: "bulk_write",
    description: "Writes files.",
    inputSchema: {
      type: "object",
      properties: {
        files: { type: "array", maxItems: 1, items: { type: "object", properties: { content: { type: "string", "x-audit": "digest" } } } },
      },
    },
  } as unknown as ToolDefinition;
  // Two items where one is allowed: refused by validation, recorded all the same without the content.
  const args = { files: [{ content: "private one" }, { content: "private two" }] };
  assert.deepEqual(auditedArguments(tool, args), { files: [{ content: digestOf("private one") }, { content: digestOf("private two") }] });
});

test("a mark no walk can honour is a schema problem, named with its place", () => {
  const problem = (schema: JsonObject) => auditKeywordProblem({ type: "object", ...schema });
  assert.match(problem({ not: { properties: { a: { "x-audit": "digest" } } } }) ?? "", /cannot be used inside "not" \(at #\/not\/properties\/a\)/);
  assert.match(problem({ properties: { list: { contains: { "x-audit": "digest" } } } }) ?? "", /inside "contains"/);
  assert.match(problem({ propertyNames: { "x-audit": "digest" } }) ?? "", /inside "propertyNames"/);
  assert.match(problem({ properties: { a: { "x-audit": "hash" } } }) ?? "", /"x-audit" at #\/properties\/a must be "digest"/);
  assert.match(problem({ properties: { a: { $ref: "https://example.com/s.json" }, b: { "x-audit": "digest" } } }) ?? "", /reference "https:\/\/example\.com\/s\.json" .* cannot be followed/);
  assert.equal(problem({ properties: { a: { items: { "x-audit": "digest" } } } }), undefined);
});

test("a marked value under a key redaction renames (a secret in the name) is digested, not recorded whole", () => {
  const schema = {
    type: "object",
    properties: { files: { type: "object", additionalProperties: { type: "string", "x-audit": "digest" } }, n: { type: "integer" } },
  };
  // Redaction rewrites a name holding a URL password or a JWT: the walk must still find its value.
  const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";
  const args = { n: 1, files: { "https://u:pw@host/a": "private one", [`id-${jwt}`]: "private two", "token=abc": "private three", "10": "ten", plain: "x" } };
  const out = recorded(schema, args) as { files: Record<string, unknown> };
  assert.deepEqual(out.files, {
    "10": digestOf("ten"),
    "https://u:[REDACTED]@host/a": digestOf("private one"),
    "[REDACTED]": digestOf("private two"),
    // A sensitive name took the whole value, as for any key.
    "token=[REDACTED]": "[REDACTED]",
    plain: digestOf("x"),
  });
  // The schema is read with the names as sent: a pattern matches the name before redaction.
  const byPattern = { type: "object", patternProperties: { "^https://": { "x-audit": "digest" } } };
  assert.deepEqual(recorded(byPattern, { "https://u:pw@host/a": "private" }), { "https://u:[REDACTED]@host/a": digestOf("private") });
  // A record that is not redaction's copy of the arguments (a key more or less) keeps nothing of them.
  assert.deepEqual(argumentDigester(schema)!(args, { n: 1, files: { plain: "x" } }), { n: 1, files: valueDigest(args.files) });
});

test("references are read as Ajv reads them, or the schema is refused: a $id below the root, $recursiveRef", () => {
  const problem = (schema: JsonObject) => auditKeywordProblem({ type: "object", ...schema });
  // Under a nested $id, "#/$defs/z" is that subschema's own $defs/z (marked), not the root's (unmarked).
  const nestedId = {
    $defs: { z: { type: "number" } },
    properties: {
      inner: { $id: "https://example.com/inner", type: "object", $defs: { z: { type: "number", "x-audit": "digest" } }, properties: { c: { $ref: "#/$defs/z" } } },
    },
  };
  assert.match(problem(nestedId) ?? "", /"\$id" at #\/properties\/inner/);
  // Ajv follows $recursiveRef (to the root); the walk did not, and the root's marks were missed under it.
  assert.match(problem({ properties: { next: { $recursiveRef: "#" }, body: { "x-audit": "digest" } } }) ?? "", /"\$recursiveRef" at #\/properties\/next/);
  // A $id at the root changes nothing for "#/..." references.
  assert.equal(problem({ $id: "https://example.com/tool", $defs: { z: { "x-audit": "digest" } }, properties: { c: { $ref: "#/$defs/z" } } }), undefined);
});

/** An engine serving these tools (which never run), with an in-memory audit log. */
function engineWith(tools: ToolDefinition[]) {
  const dir = mkdtempSync(join(tmpdir(), "msl-digest-"));
  const entries: AuditRecordInput[] = [];
  const plugin: Plugin = {
    name: "p",
    version: "1.0.0",
    description: "marks content",
    tools,
    execute: () => Promise.resolve({ content: [{ type: "text", text: "ran" }] }),
  };
  const policy = defaultPolicy(dir);
  const engine = new SecurityEngine({
    policy,
    registry: new PluginRegistry([plugin]),
    audit: {
      append(entry) {
        entries.push(entry);
        return Promise.resolve({ seq: entries.length, hash: "h" } as never);
      },
      status: () => ({ enabled: true, ok: true, state: "open", seq: entries.length, head: "h", path: "mem" }) as never,
      close: () => Promise.resolve(undefined),
    },
    capabilities: { forCall: () => ({}) as never, execSandbox: () => Promise.reject(new Error("none")), close: () => undefined },
    paths: compilePathPolicy(policy.filesystem, { baseDir: dir, homeDir: dir }),
    logger: silentLogger,
    session: () => ({ projectPath: undefined, clientName: "t" }),
  });
  const call = (name: string, args: JsonObject) => engine.callTool({ name, arguments: args, requestId: 1, abort: new LazyAbort(), progress: undefined });
  return { engine, entries, call, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const tool = (name: string, inputSchema: JsonObject) => ({ name, title: name, description: "d", inputSchema, annotations: {} }) as unknown as ToolDefinition;

test("a tool whose schema Ajv refuses records its refused calls as a digest: the walk cannot read such a schema", async () => {
  const schemas: JsonObject[] = [
    // A pattern that does not compile: the walk matched nothing with it.
    { type: "object", patternProperties: { "^body(": { type: "string", "x-audit": "digest" } } },
    // Tuple items in the draft-07 spelling, which 2020-12 does not have.
    { type: "object", properties: { pair: { type: "array", items: [{ type: "string" }, { type: "string", "x-audit": "digest" }] } } },
  ];
  const s = engineWith(schemas.map((schema, i) => tool(`t${i}`, schema)));
  try {
    await s.engine.prepare();
    for (const [name, args] of [
      ["t0", { "body(1": "private one" }],
      ["t1", { pair: ["name", "private two"] }],
    ] as const) {
      const result = await s.call(name, args as JsonObject);
      assert.equal(result.isError, true);
      const entry = s.entries.at(-1)!;
      assert.equal(entry.event, "denied");
      assert.equal(entry.arguments, undefined, JSON.stringify(entry));
      assert.equal(JSON.stringify(entry).includes("private"), false, JSON.stringify(entry));
      assert.deepEqual(Object.keys(entry.data ?? {}).sort(), ["argumentBytes", "argumentsSha256"]);
    }
  } finally {
    s.cleanup();
  }
});

test("a mark reached both where it can be honoured and from inside not/contains is still refused, in either order", () => {
  const marked = { $defs: { m: { type: "string", "x-audit": "digest" } } };
  const honoured = { properties: { a: { $ref: "#/$defs/m" } } };
  const underNot = { not: { properties: { b: { $ref: "#/$defs/m" } }, required: ["b"] } };
  // Seen once on the way to "a", the shared subschema was not looked at again from inside "not".
  for (const schema of [{ ...marked, ...honoured, ...underNot }, { ...marked, ...underNot, ...honoured }]) {
    assert.match(auditKeywordProblem({ type: "object", ...schema }) ?? "", /cannot be used inside "not"/);
  }
});

/** The input schema as the registry keeps it: the JSON copy mayHoldKey may read as text. */
function registered(inputSchema: JsonObject): JsonObject {
  const tool = { name: "t", title: "T", description: "d", inputSchema, annotations: {} } as unknown as ToolDefinition;
  const plugin = { name: "p", description: "p", tools: [tool], call: () => Promise.resolve({ content: [] }) } as unknown as Plugin;
  return new PluginRegistry([plugin]).lookup("t")!.tool.inputSchema;
}

test("mayHoldKey: a JSON text check that never misses a key (the walk decides when it may be there)", () => {
  assert.equal(mayHoldKey(registered({ type: "object", properties: { a: { type: "string", description: 'says "x-audit" in text' } } }), "x-audit"), false);
  assert.equal(mayHoldKey({ type: "object", properties: { a: { type: "string" } } }, "x-audit"), true, "a tree the registry did not copy: the walk tells");
  assert.equal(mayHoldKey(registered({ type: "object", properties: { a: { "x-audit": "digest" } } }), "x-audit"), true);
  assert.equal(mayHoldKey(registered({ type: "object", properties: { "x-audit": { type: "string" } } }), "x-audit"), true, "a property of that name: the walk tells");
  const cyclic: Record<string, unknown> = { type: "object" };
  cyclic.self = cyclic;
  assert.equal(mayHoldKey(cyclic, "x-audit"), true, "what JSON cannot hold is left to the walk");
});

test("mayHoldKey never says no where the walks see the key and JSON.stringify does not (toJSON, non-enumerable, array extras)", () => {
  const hidden = (schema: Record<string, unknown>): Record<string, unknown> =>
    Object.defineProperty(schema, "toJSON", { value: () => ({ type: "object" }), enumerable: false });
  const marked = hidden({ type: "object", properties: { secret: { type: "string", "x-audit": "digest" } } });
  assert.equal(mayHoldKey(marked, "x-audit"), true, "a toJSON hides the key from the text");
  const digester = argumentDigester(marked);
  assert.notEqual(digester, undefined, "the marked value must be digested");
  const inNot = hidden({ type: "object", not: { properties: { a: { "x-audit": "digest" } } } });
  assert.match(auditKeywordProblem(inNot) ?? "", /cannot be used inside "not"/);
  const nonEnumerable = Object.defineProperty({ type: "object" }, "x-audit", { value: "digest", enumerable: false });
  assert.equal(mayHoldKey(nonEnumerable, "x-audit"), true, "an own key JSON leaves out");
  const list = Object.assign([{ type: "string" }], { extra: { "x-audit": "digest" } });
  assert.equal(mayHoldKey({ type: "object", anyOf: list }, "x-audit"), true, "an array's named property");
});
