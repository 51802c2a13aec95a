/**
 * Ajv is loaded only for a schema without a precompiled validator, and only when that
 * tool is validated. Its own file: Node runs each test file in a process of its own, so
 * nothing else has loaded Ajv here (this file imports nothing that does).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { ajvLoaded, createValidatorSet } from "../../src/security/validation.js";
import type { JsonObject } from "../../src/plugins/contract.js";
import { BUILTIN_TOOLS, sample, VALID_ARGUMENTS, variants } from "../helpers/tool-samples.js";

const compiledRun = import.meta.url.endsWith(".js");

/** Ajv's compiler modules in Node's module cache (the generated code's small runtime helpers do not count). */
function ajvInCache(): string[] {
  return Object.keys(createRequire(import.meta.url).cache).filter((file) => /[\\/]ajv[\\/]dist[\\/](core|2020|ajv)\.js$|[\\/]ajv-formats[\\/]dist[\\/]index\.js$/.test(file));
}

test("built-in tools validate without loading Ajv; another tool loads it on its first validation", { skip: !compiledRun && "needs make build" }, () => {
  assert.equal(ajvLoaded(), false);
  assert.deepEqual(ajvInCache(), []);

  const set = createValidatorSet();
  for (const def of BUILTIN_TOOLS) set.addTool(def);
  for (const def of BUILTIN_TOOLS) {
    for (const args of VALID_ARGUMENTS[def.name] ?? []) {
      assert.equal(set.validateInput(def.name, args).ok, true, def.name);
      for (const variant of variants(args).slice(0, 20)) set.validateInput(def.name, variant);
    }
    const output = sample(def.outputSchema!) as JsonObject;
    assert.deepEqual(set.validateOutput(def.name, output), { ok: true });
    assert.equal(set.validateOutput(def.name, { ...output, unexpected: 1 }).ok, false);
  }
  set.compileAll();
  assert.equal(ajvLoaded(), false, "no Ajv for precompiled tools");
  assert.deepEqual(ajvInCache(), []);

  const other = createValidatorSet();
  other.addTool({ name: "plugin_tool", title: "t", description: "t", inputSchema: { type: "object", properties: { n: { type: "integer" } } }, annotations: {} });
  assert.equal(ajvLoaded(), false, "registering compiles nothing");
  assert.equal(other.validateInput("plugin_tool", { n: "1" }).ok, false);
  assert.equal(ajvLoaded(), true);
  assert.notDeepEqual(ajvInCache(), []);
});
