/**
 * The build-time (standalone) tool validators are the run-time ones: same verdicts, same
 * messages, same collected paths; they are used only for the very schema they were made
 * from, and a schema compiled on first use fails closed when it is invalid.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { runInThisContext } from "node:vm";
import {
  createValidatorSet,
  GENERATED_TOOL_VALIDATORS_FILE,
  SchemaCompileError,
  toolCompilerSha256,
  toolSchemaSha256,
  type PrecompiledToolValidators,
  type ValidatorSet,
} from "../../src/security/validation.js";
import type { ValidateFunction } from "ajv";
import type { JsonObject, ToolDefinition } from "../../src/plugins/contract.js";
import { silentLogger } from "../../src/util/logger.js";
import { ROOT } from "../helpers/project.js";
import { BUILTIN_TOOLS, sample, sortPaths, VALID_ARGUMENTS, variants, XPATH_EVERYWHERE } from "../helpers/tool-samples.js";

const compiledRun = import.meta.url.endsWith(".js");
const generatedPath = join(ROOT, "dist", "src", "security", GENERATED_TOOL_VALIDATORS_FILE);
const load = createRequire(import.meta.url);

function setOf(tools: readonly ToolDefinition[], precompiled?: boolean | PrecompiledToolValidators): ValidatorSet {
  const set = createValidatorSet(precompiled === undefined ? {} : { precompiled });
  for (const tool of tools) set.addTool(tool);
  return set;
}

function tool(name: string, inputSchema: JsonObject, outputSchema?: JsonObject): ToolDefinition {
  return { name, title: name, description: name, inputSchema, ...(outputSchema === undefined ? {} : { outputSchema }), annotations: {} };
}

/** Runs the generator (scripts/build-tool-validators.cjs) on these tools and loads its module. */
async function generated(tools: readonly ToolDefinition[]): Promise<PrecompiledToolValidators> {
  const { generate } = load(join(ROOT, "scripts", "build-tool-validators.cjs")) as { generate: (tools: readonly ToolDefinition[]) => Promise<string> };
  const source = await generate(tools);
  // As Node would load the file beside the validation module (its requires resolve from there).
  const wrapper = runInThisContext(`(function (exports, require, module) {\n${source}\n})`) as (e: object, r: NodeJS.Require, m: object) => void;
  const module = { exports: {} as PrecompiledToolValidators };
  wrapper(module.exports, createRequire(generatedPath), module);
  return module.exports;
}

void describe("the build's validators", { skip: !compiledRun && "needs make build" }, () => {
  void it("exist for every built-in schema, made by this compiler from the current schemas", () => {
    assert.ok(existsSync(generatedPath), "dist has the generated validators (make build)");
    const module = load(generatedPath) as PrecompiledToolValidators;
    assert.equal(module.compilerSha256, toolCompilerSha256());
    for (const def of BUILTIN_TOOLS) {
      for (const schema of [def.inputSchema, def.outputSchema]) {
        if (schema !== undefined) assert.ok(Object.hasOwn(module.validators, toolSchemaSha256(schema)), `${def.name}: generated from this very schema`);
      }
    }
  });

  void it("are what a set uses for the built-in tools, made on first use", () => {
    const set = setOf(BUILTIN_TOOLS);
    for (const def of BUILTIN_TOOLS) assert.deepEqual(set.sourceOf(def.name), { input: "precompiled", output: "precompiled" }, def.name);
    set.compileAll();
    for (const def of BUILTIN_TOOLS) assert.deepEqual(set.sourceOf(def.name), { input: "precompiled", output: "precompiled" }, def.name);
    assert.equal(set.sourceOf("nope"), undefined);
  });

  void it("give the same verdicts, messages and paths as the run-time compile, for every built-in tool", () => {
    const precompiled = setOf(BUILTIN_TOOLS);
    const runtime = setOf(BUILTIN_TOOLS, false);
    let inputs = 0;
    let refused = 0;
    for (const def of BUILTIN_TOOLS) {
      const valid = VALID_ARGUMENTS[def.name];
      assert.ok(valid !== undefined && valid.length > 0, `valid arguments for ${def.name}`);
      for (const args of valid) {
        const verdict = precompiled.validateInput(def.name, args);
        assert.equal(verdict.ok, true, `${def.name} ${JSON.stringify(args)}: ${verdict.ok ? "" : verdict.message}`);
        assert.deepEqual(verdict, runtime.validateInput(def.name, args));
        // The built-in tools mark paths at the top level only (project_path, path).
        const properties = (def.inputSchema.properties ?? {}) as Record<string, JsonObject>;
        const expected = Object.entries(properties)
          .filter(([name, schema]) => schema["x-path"] !== undefined && typeof args[name] === "string")
          .map(([name, schema]) => ({ pointer: `/${name}`, value: args[name], access: schema["x-path"] }));
        assert.deepEqual(verdict.ok && verdict.paths, expected, `${def.name}: its paths are collected`);
        for (const variant of [...variants(args), sample(def.inputSchema) as JsonObject]) {
          const a = precompiled.validateInput(def.name, variant);
          assert.deepEqual(a, runtime.validateInput(def.name, variant), `${def.name} ${JSON.stringify(variant).slice(0, 200)}`);
          inputs += 1;
          if (!a.ok) refused += 1;
        }
      }
      const output = sample(def.outputSchema!) as JsonObject;
      assert.deepEqual(precompiled.validateOutput(def.name, output), { ok: true }, `${def.name}: a sample output`);
      assert.deepEqual(runtime.validateOutput(def.name, output), { ok: true });
      for (const variant of variants(output)) {
        assert.deepEqual(precompiled.validateOutput(def.name, variant), runtime.validateOutput(def.name, variant), `${def.name} output ${JSON.stringify(variant).slice(0, 200)}`);
      }
    }
    assert.ok(inputs > 500 && refused > inputs / 2, `${inputs} argument sets, ${refused} refused`);
    // The two sets really used different validators.
    assert.deepEqual(runtime.sourceOf("add_bug"), { input: "compiled", output: "compiled" });
    assert.deepEqual(precompiled.sourceOf("add_bug"), { input: "precompiled", output: "precompiled" });
  });

  void it("are not used for a changed schema (another hash)", () => {
    const addBug = BUILTIN_TOOLS.find((def) => def.name === "add_bug")!;
    const properties = addBug.inputSchema.properties as Record<string, JsonObject>;
    const changed: ToolDefinition = {
      ...addBug,
      inputSchema: { ...addBug.inputSchema, properties: { ...properties, title: { ...properties.title!, maxLength: 3 } } },
    };
    const set = setOf([changed]);
    assert.deepEqual(set.sourceOf("add_bug"), { input: "deferred", output: "precompiled" });
    assert.match(
      (set.validateInput("add_bug", { title: "long" }) as { message: string }).message,
      /arguments\.title must be at most 3 characters long \(got 4\)/,
    );
    assert.deepEqual(set.sourceOf("add_bug"), { input: "compiled", output: "precompiled" });
    assert.equal(set.validateInput("add_bug", { title: "abc" }).ok, true);
  });

  void it("are not used when made by other compiler settings", () => {
    const module = load(generatedPath) as PrecompiledToolValidators;
    const set = setOf(BUILTIN_TOOLS, { compilerSha256: "0".repeat(64), validators: module.validators });
    assert.deepEqual(set.sourceOf("get_bug"), { input: "deferred", output: "deferred" });
    assert.equal(set.validateInput("get_bug", { bug_id: "BUG-1" }).ok, true);
    assert.deepEqual(set.sourceOf("get_bug"), { input: "compiled", output: "compiled" });
  });
});

void describe("generated code", { skip: !compiledRun && "needs make build" }, () => {
  const schema: JsonObject = {
    type: "object",
    $defs: XPATH_EVERYWHERE.$defs,
    properties: {
      ...XPATH_EVERYWHERE.properties,
      when: { type: "string", format: "date-time", formatMinimum: "2020-01-01T00:00:00Z" },
      mail: { type: "string", format: "email" },
      site: { type: "string", format: "uri" },
      id: { type: "string", format: "uuid" },
    },
    additionalProperties: false,
  };
  const output: JsonObject = { type: "object", properties: { at: { type: "string", format: "date" }, n: { type: "integer" } }, required: ["n"] };
  const def = tool("formats", schema, output);

  void it("carries x-path and ajv-formats: same verdicts, messages and paths as the run-time compile", async () => {
    const module = await generated([def]);
    assert.equal(module.compilerSha256, toolCompilerSha256());
    const entry = module.validators[toolSchemaSha256(schema)];
    assert.ok(entry !== undefined && entry.usesFormats, "keyed by the schema's hash; uses formats");
    const precompiled = setOf([def], module);
    const runtime = setOf([def], false);
    const valid: JsonObject = {
      ...XPATH_EVERYWHERE.arguments,
      when: "2024-05-01T10:00:00Z",
      mail: "a@example.com",
      site: "https://example.com/x",
      id: "123e4567-e89b-12d3-a456-426614174000",
    };
    const verdict = precompiled.validateInput("formats", valid);
    assert.equal(verdict.ok, true);
    assert.deepEqual(sortPaths(verdict.ok ? verdict.paths : []), XPATH_EVERYWHERE.paths);
    assert.deepEqual(verdict, runtime.validateInput("formats", valid));
    const broken: JsonObject[] = [
      { ...valid, when: "2019-01-01T00:00:00Z" },
      { ...valid, when: "yesterday" },
      { ...valid, mail: "not an address" },
      { ...valid, site: "no scheme" },
      { ...valid, id: "123" },
      { ...valid, untyped: ["/etc/passwd"] },
      { ...valid, untyped: 1 },
      ...variants(valid),
    ];
    let refused = 0;
    for (const args of broken) {
      const a = precompiled.validateInput("formats", args);
      assert.deepEqual(a, runtime.validateInput("formats", args), JSON.stringify(args).slice(0, 200));
      if (!a.ok) refused += 1;
    }
    assert.ok(refused > 50);
    assert.match((precompiled.validateInput("formats", broken[0]!) as { message: string }).message, /arguments\.when should be >= 2020-01-01T00:00:00Z/);
    assert.match((precompiled.validateInput("formats", broken[2]!) as { message: string }).message, /arguments\.mail must be a valid email/);
    assert.match(
      (precompiled.validateInput("formats", broken[5]!) as { message: string }).message,
      /arguments\.untyped must be a string \(a filesystem path\) \(got an array\)/,
    );
    const outputs: JsonObject[] = [{ n: 1, at: "2024-02-29" }, { n: 1, at: "2023-02-29" }, { at: "2024-01-01" }, { n: "1" }];
    for (const value of outputs) {
      assert.deepEqual(precompiled.validateOutput("formats", value), runtime.validateOutput("formats", value), JSON.stringify(value));
    }
    assert.deepEqual(precompiled.sourceOf("formats"), { input: "precompiled", output: "precompiled" });
  });

  void it("is made lazily, once per set, and only for the tool that is validated", () => {
    const calls: string[] = [];
    const key = toolSchemaSha256(schema);
    const module: PrecompiledToolValidators = {
      compilerSha256: toolCompilerSha256(),
      validators: {
        [key]: {
          usesFormats: false,
          create: () => {
            calls.push("create");
            return Object.assign(() => true, { errors: null }) as unknown as ValidateFunction;
          },
        },
      },
    };
    const set = setOf([def, tool("other", schema)], module);
    assert.deepEqual(calls, []);
    assert.deepEqual(set.validateInput("other", {}), { ok: true, paths: [] });
    assert.deepEqual(calls, ["create"]);
    set.validateInput("other", {});
    assert.deepEqual(calls, ["create"], "made once");
  });

  void it("that cannot be loaded is replaced by Ajv's compile, with a warning", () => {
    const warnings: string[] = [];
    const module: PrecompiledToolValidators = {
      compilerSha256: toolCompilerSha256(),
      validators: {
        [toolSchemaSha256(schema)]: {
          usesFormats: false,
          create: () => {
            throw new Error("Cannot find module 'ajv/dist/runtime/ucs2length'");
          },
        },
      },
    };
    const set = createValidatorSet({ precompiled: module, logger: { ...silentLogger, warn: (message) => warnings.push(message) } });
    set.addTool(tool("t", schema));
    assert.deepEqual(set.validateInput("t", { src: "/a" }), { ok: true, paths: [{ pointer: "/src", value: "/a", access: "read" }] });
    assert.deepEqual(set.sourceOf("t"), { input: "compiled", output: undefined });
    // (Ajv itself also logs the schema's open-ended tuple; only our own warning is checked here.)
    assert.deepEqual(
      warnings.filter((message) => message !== "ajv"),
      ["precompiled tool validator unusable; compiling"],
    );
  });
});

void describe("a schema compiled on first use", () => {
  const broken = tool("broken", { type: "object", properties: { n: { type: "integer", minimum: "zero" } } });
  const fine = tool("fine", { type: "object", properties: { n: { type: "integer" } } });

  void it("is registered without compiling, and an invalid one fails closed at every validation", () => {
    const errors: string[] = [];
    const set = createValidatorSet({ logger: { ...silentLogger, error: (message, data) => errors.push(`${message} ${String(data?.tool)}`) } });
    set.addTool(fine);
    set.addTool(broken);
    assert.ok(set.has("broken"));
    assert.deepEqual(set.sourceOf("broken"), { input: "deferred", output: undefined });
    const first = set.validateInput("broken", { n: 1 });
    assert.equal(first.ok, false);
    const message = first.ok ? "" : first.message;
    assert.match(message, /^The inputSchema of tool "broken" is invalid: .*minimum/);
    assert.deepEqual(set.validateInput("broken", { n: 1 }), first, "every time");
    assert.deepEqual(set.validateInput("broken", {}), first);
    assert.deepEqual(set.validateOutput("broken", {}), { ok: false, message });
    assert.deepEqual(set.sourceOf("broken"), { input: "invalid", output: undefined });
    assert.deepEqual(errors, ["tool schema invalid; the tool is refused broken"], "logged once");
    // Other tools are unaffected.
    assert.deepEqual(set.validateInput("fine", { n: 1 }), { ok: true, paths: [] });
    assert.throws(
      () => set.compileAll(),
      (error: unknown) => error instanceof SchemaCompileError && error.tool === "broken" && error.message === message,
    );
  });

  void it("compileAll compiles every deferred tool and throws for the first invalid one, naming it", () => {
    const set = createValidatorSet();
    set.addTool(fine);
    set.addTool(broken);
    set.addTool(tool("also_broken", { type: "object", requried: ["a"] }));
    assert.throws(
      () => set.compileAll(),
      (error: unknown) =>
        error instanceof SchemaCompileError && error.tool === "broken" && error.code === "TOOL_SCHEMA_INVALID" && /"broken" is invalid/.test(error.message),
    );
    assert.deepEqual(set.sourceOf("fine"), { input: "compiled", output: undefined });
    const message = (set.validateInput("broken", {}) as { message: string }).message;
    assert.throws(() => set.compileAll(), (error: unknown) => error instanceof SchemaCompileError && error.message === message, "the same failure");
    const valid = createValidatorSet();
    valid.addTool(fine);
    valid.compileAll();
    assert.deepEqual(valid.sourceOf("fine"), { input: "compiled", output: undefined });
  });

  void it("an invalid output schema closes the tool's input too", () => {
    const set = createValidatorSet();
    set.addTool(tool("out", { type: "object" }, { type: "object", properties: { a: { type: "nope" } } }));
    const verdict = set.validateInput("out", {});
    assert.equal(verdict.ok, false);
    assert.match(verdict.ok ? "" : verdict.message, /^The outputSchema of tool "out" is invalid/);
    assert.deepEqual(set.sourceOf("out"), { input: "compiled", output: "invalid" });
  });
});
