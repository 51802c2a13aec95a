/**
 * What tools/list shows of a tool's schemas: the server's own `x-` keywords left out at every
 * depth a subschema can sit, everything else (property names included) as it is.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { publishedSchema, publishedTool } from "../../src/security/published-schema.js";
import type { ToolDefinition } from "../../src/plugins/contract.js";

test("x- keywords are left out of every subschema; a property named x-path, enums and defaults are kept", () => {
  const schema = JSON.parse(`{
    "type": "object",
    "x-audit": "digest",
    "properties": {
      "path": { "type": "string", "x-path": "read" },
      "x-path": { "type": "string", "description": "a property of that name" },
      "__proto__": { "type": "string", "x-path": "write" },
      "paths": { "type": "array", "items": { "type": "string", "x-path": "write" } },
      "pair": { "type": "array", "prefixItems": [{ "type": "string", "x-path": "read" }] },
      "either": { "anyOf": [{ "type": "string", "x-path": "read" }, { "type": "null" }] },
      "mode": { "enum": ["x-path", "read"], "default": { "x-path": "kept: data, not a schema" } }
    },
    "additionalProperties": { "x-path": "read", "type": "string" },
    "$defs": { "p": { "type": "string", "x-path": "read" } },
    "required": ["path"]
  }`);
  const published = publishedSchema(schema) as Record<string, any>;
  const expected: unknown = JSON.parse(`{
    "type": "object",
    "properties": {
      "path": { "type": "string" },
      "x-path": { "type": "string", "description": "a property of that name" },
      "__proto__": { "type": "string" },
      "paths": { "type": "array", "items": { "type": "string" } },
      "pair": { "type": "array", "prefixItems": [{ "type": "string" }] },
      "either": { "anyOf": [{ "type": "string" }, { "type": "null" }] },
      "mode": { "enum": ["x-path", "read"], "default": { "x-path": "kept: data, not a schema" } }
    },
    "additionalProperties": { "type": "string" },
    "$defs": { "p": { "type": "string" } },
    "required": ["path"]
  }`);
  assert.deepEqual(JSON.parse(JSON.stringify(published)), expected);
  assert.equal(Object.getPrototypeOf(published.properties), Object.prototype, "a property named __proto__ stays a property");
  assert.ok(Object.hasOwn(published.properties, "__proto__"));
  assert.equal(schema.properties.path["x-path"], "read", "the tool's own schema is untouched");
  assert.ok(Object.isFrozen(published) && Object.isFrozen(published.properties) && Object.isFrozen(published.properties.either.anyOf), "frozen: plugins read it through ctx.catalog");
});

test("publishedTool keeps the rest of the definition and strips both schemas", () => {
  const tool: ToolDefinition = {
    name: "t",
    title: "T",
    description: "d",
    inputSchema: { type: "object", properties: { p: { type: "string", "x-path": "read" } } },
    outputSchema: { type: "object", "x-audit": "digest" },
    annotations: { readOnlyHint: true },
  };
  const published = publishedTool(tool);
  assert.deepEqual(published, { name: "t", title: "T", description: "d", inputSchema: { type: "object", properties: { p: { type: "string" } } }, outputSchema: { type: "object" }, annotations: { readOnlyHint: true } });
  assert.equal(publishedTool({ name: "u", title: "U", description: "d", inputSchema: { type: "object" }, annotations: {} }).outputSchema, undefined);
});

test("x- keywords under dependencies (the engine reads schemas there too) are left out; a property list there is kept", () => {
  const schema = JSON.parse(`{
    "type": "object",
    "properties": { "a": { "type": "string" }, "b": { "type": "string" } },
    "dependencies": { "a": { "properties": { "b": { "type": "string", "x-path": "read" } } }, "b": ["a"] }
  }`);
  assert.deepEqual(JSON.parse(JSON.stringify(publishedSchema(schema))), {
    type: "object",
    properties: { a: { type: "string" }, b: { type: "string" } },
    dependencies: { a: { properties: { b: { type: "string" } } }, b: ["a"] },
  });
});
