/**
 * Argument and output validation against each tool's JSON Schema (2020-12 only).
 *
 * `addTool` makes only the cheap structural checks; an invalid structure is refused at
 * once. The validators themselves come from the build when it precompiled that very
 * schema (`make build` generates the built-in tools' validators as Ajv standalone code,
 * keyed by the schema's SHA-256), and otherwise are compiled with Ajv on the tool's first
 * validation. Ajv itself is loaded only then: a server whose tools are all precompiled
 * never loads it (~25 MiB and ~150 ms of a start). A schema that fails that deferred
 * compile fails closed: every validation of the tool is refused, saying why;
 * `compileAll()` compiles every deferred tool at once for callers that want to fail early.
 *
 * Validation also collects every string marked `"x-path": "read" | "write"` so that the
 * engine can check each one against the filesystem policy before the plugin runs. Failure
 * messages are written for a model: they name the field, the rule and what was expected,
 * and they never echo large or secret values.
 */
import { createRequire } from "node:module";
import type { Ajv2020, CodeKeywordDefinition, ErrorObject, ValidateFunction } from "ajv/dist/2020.js";
import type * as Codegen from "ajv/dist/compile/codegen/index.js";
import type { JsonObject, ToolDefinition } from "../plugins/contract.js";
import { canonicalJson, sha256Hex } from "../util/canonical-json.js";
import { silentLogger, type Logger } from "../util/logger.js";
import { truncate } from "../util/text.js";
import { isFlagValueAt, isSensitiveKey, redactString } from "./redaction.js";
import { AUDIT_KEYWORD, auditKeywordProblem } from "./audit-digest.js";
import { hasKeyAnywhere, mayHoldKey, resolveLocalRef, SUBSCHEMA_LIST, SUBSCHEMA_MAP, SUBSCHEMA_ONE } from "./schema-keywords.js";

export type PathAccess = "read" | "write";

/** A string argument marked with `x-path`, found while validating. */
export interface PathArgument {
  /** JSON pointer of the value inside `arguments` (e.g. `/files/0/path`). */
  pointer: string;
  value: string;
  access: PathAccess;
}

export type InputVerdict = { ok: true; paths: PathArgument[] } | { ok: false; message: string };
export type OutputVerdict = { ok: true } | { ok: false; message: string };

/** A tool whose schema cannot be used: thrown by `addTool` and `compileAll`, naming the tool. */
export class SchemaCompileError extends Error {
  readonly code = "TOOL_SCHEMA_INVALID";
  readonly tool: string;
  constructor(tool: string, message: string) {
    super(message);
    this.name = "SchemaCompileError";
    this.tool = tool;
  }
}

/** Called by the `x-path` keyword for each marked string (the build's code calls it too). */
export type PathCollector = (access: PathAccess, pointer: string, value: string) => void;

/** The module `make build` generates (scripts/build-tool-validators.cjs). */
export interface PrecompiledToolValidators {
  /** `toolCompilerSha256()` of the build: code made by other settings is not used. */
  compilerSha256: string;
  /** By `toolSchemaSha256` of the schema each was generated from. */
  validators: Record<string, PrecompiledValidator>;
}

export interface PrecompiledValidator {
  /** Whether the code uses ajv-formats' formats (then `create` needs them). */
  usesFormats: boolean;
  create(formats: Record<string, unknown> | undefined, collect: PathCollector): ValidateFunction;
}

export interface ValidatorSetOptions {
  /** Receives Ajv's own warnings (there should be none in strict mode) and deferred compile failures. */
  logger?: Logger;
  /** Problems listed in one failure message at most (default 3). */
  maxProblems?: number;
  /** Characters in one failure message at most (default 1000). */
  maxMessageLength?: number;
  /**
   * Which precompiled validators to use: the build's (true, the default), none (false:
   * every schema is compiled with Ajv), or the given module (tests).
   */
  precompiled?: boolean | PrecompiledToolValidators;
}

/** Where a schema's validator comes from: the build, Ajv (not yet, or done), or nowhere (invalid). */
export type SchemaSource = "precompiled" | "deferred" | "compiled" | "invalid";

export interface ValidatorSet {
  /**
   * Registers the tool after the structural checks (object root, 2020-12 dialect,
   * `x-path` placement, no duplicate); throws `SchemaCompileError` naming the tool.
   * Compiling a schema without a precompiled validator waits for its first use.
   */
  addTool(def: ToolDefinition): void;
  has(tool: string): boolean;
  validateInput(tool: string, args: JsonObject): InputVerdict;
  /** Tools without an `outputSchema` accept any object. */
  validateOutput(tool: string, value: JsonObject): OutputVerdict;
  /** Compiles every deferred schema now; throws the first `SchemaCompileError` (naming the tool). */
  compileAll(): void;
  /** Where the tool's validators come from (diagnostics and tests); undefined for an unknown tool. */
  sourceOf(tool: string): { input: SchemaSource; output: SchemaSource | undefined } | undefined;
}

const SUPPORTED_DIALECTS = new Set([
  "https://json-schema.org/draft/2020-12/schema",
  "https://json-schema.org/draft/2020-12/schema#",
]);

const PATH_KEYWORD = "x-path";
/** Bump when the keyword's generated code changes, so that older generated code is not used. */
const PATH_KEYWORD_REVISION = 1;
// `"x-audit": "digest"` (see audit-digest.ts) is an annotation to Ajv: it validates nothing.
const AUDIT_KEYWORD_REVISION = 1;

/**
 * Subschemas that Ajv may evaluate only in part for data that validates (`contains`
 * stops at the first matches) or whose success means the data does *not* match
 * (`not`, a failed `if`), or that apply to names rather than values. A path marked
 * there could escape collection, so such schemas are refused.
 */
// contentSchema is never applied by Ajv (an annotation), so a path there would never be collected.
const PATH_FORBIDDEN_IN = new Set(["contains", "not", "if", "propertyNames", "contentSchema"]);

// ---------------------------------------------------------------------------
// The compiler: Ajv, its options and the x-path keyword (shared with the build)
// ---------------------------------------------------------------------------

/** Ajv options of every tool validator; the build generates its code with the same. */
export const TOOL_AJV_OPTIONS = {
  // Unknown keywords, unknown formats and keywords that do not fit the declared type
  // are schema bugs: refuse them. `required` naming a property defined elsewhere
  // (anyOf, then) is legitimate.
  strict: true,
  strictRequired: false,
  // Open-ended tuples (prefixItems plus an items schema) are legitimate; they are only logged.
  strictTuples: "log",
  allowUnionTypes: true,
  allErrors: false,
  // Errors carry the data and parent schema, so messages can say what was sent and allowed.
  // No `loadSchema` and synchronous compile: nothing is ever fetched, and an unresolvable
  // $ref fails the compile.
  verbose: true,
} as const;

/** Identifies the compiler settings; generated code made with other settings is ignored. */
export function toolCompilerSha256(): string {
  return sha256Hex(canonicalJson({ ajv: TOOL_AJV_OPTIONS, formats: "ajv-formats:full", keywords: { [PATH_KEYWORD]: PATH_KEYWORD_REVISION, [AUDIT_KEYWORD]: AUDIT_KEYWORD_REVISION } }));
}

/** The key of a schema's precompiled validator. Throws on a value that is not JSON (e.g. cyclic). */
export function toolSchemaSha256(schema: JsonObject): string {
  return sha256Hex(canonicalJson(schema));
}

/** The file `make build` writes beside this module: the built-in tools' validators as standalone code. */
export const GENERATED_TOOL_VALIDATORS_FILE = "./tool-validators.generated.cjs";

// Paths found by the running validation; validation is synchronous, so one slot suffices.
let collecting: PathArgument[] | undefined;

const collectPath: PathCollector = (access, pointer, value) => {
  collecting?.push({ pointer, value, access });
};

interface AjvModules {
  Ajv2020: typeof Ajv2020;
  addFormats: (ajv: Ajv2020) => unknown;
  codegen: typeof Codegen;
  instancePath: Codegen.Name;
}

let ajvModules: AjvModules | undefined;

/** Whether this process has loaded Ajv for tool schemas (a seam for tests and diagnostics). */
export function ajvLoaded(): boolean {
  return ajvModules !== undefined;
}

/* eslint-disable @typescript-eslint/no-require-imports -- literal requires are what esbuild bundles */
function loadAjv(): AjvModules {
  if (ajvModules === undefined) {
    // In the bundle (where `require` exists), esbuild includes these literal requires; as
    // plain ESM, Node resolves them from node_modules. Both only on this first use.
    const bundled = typeof require === "function";
    const load = bundled ? undefined : createRequire(import.meta.url);
    const ajv = (bundled ? require("ajv/dist/2020.js") : load!("ajv/dist/2020.js")) as { Ajv2020: typeof Ajv2020 };
    const formats = (bundled ? require("ajv-formats") : load!("ajv-formats")) as { default: AjvModules["addFormats"] };
    const codegen = (bundled ? require("ajv/dist/compile/codegen") : load!("ajv/dist/compile/codegen")) as typeof Codegen;
    const names = (bundled ? require("ajv/dist/compile/names") : load!("ajv/dist/compile/names")) as { default: { instancePath: Codegen.Name } };
    ajvModules = { Ajv2020: ajv.Ajv2020, addFormats: formats.default, codegen, instancePath: names.default.instancePath };
  }
  return ajvModules;
}

/** ajv-formats' formats, for generated code that uses them (no Ajv needed). */
function loadFormats(): Record<string, unknown> {
  const formats = (typeof require === "function" ? require("ajv-formats/dist/formats") : createRequire(import.meta.url)("ajv-formats/dist/formats")) as {
    fullFormats: Record<string, unknown>;
  };
  return formats.fullFormats;
}

let generated: PrecompiledToolValidators | null | undefined;

/** The build's validators, or undefined when the file is missing. */
function loadGenerated(): PrecompiledToolValidators | undefined {
  if (generated === undefined) {
    let module: PrecompiledToolValidators | undefined;
    try {
      // In the bundle, esbuild inlines this literal require; as plain ESM, the file is found beside this module.
      module = (typeof require === "function"
        ? require("./tool-validators.generated.cjs")
        : createRequire(import.meta.url)(GENERATED_TOOL_VALIDATORS_FILE)) as PrecompiledToolValidators;
    } catch {
      module = undefined;
    }
    generated = module ?? null;
  }
  return generated ?? undefined;
}
/* eslint-enable @typescript-eslint/no-require-imports */

/**
 * `x-path` as generated code: a marked value must be a string, and is passed to the
 * collector with its JSON pointer and access. Written as a `code` keyword (not a
 * `validate` function) so that standalone code can carry it: there the collector is the
 * `__xpath` parameter of the generated module's `create`.
 */
function pathKeyword({ codegen, instancePath }: AjvModules): CodeKeywordDefinition {
  const { _, strConcat } = codegen;
  return {
    keyword: PATH_KEYWORD,
    schemaType: "string",
    metaSchema: { enum: ["read", "write"] },
    code(cxt) {
      const { gen, data, it } = cxt;
      // "keyword" is the scope Ajv gives keyword functions; `code` is what standalone code refers to.
      const collect = gen.scopeValue("keyword", { ref: collectPath, code: _`__xpath` });
      const access = String(cxt.schema);
      // A value marked as a path that is not a string cannot be checked: refuse it.
      cxt.failResult(_`typeof ${data} !== "string"`, () => {
        gen.code(_`${collect}(${access}, ${strConcat(instancePath, it.errorPath)}, ${data})`);
      });
    },
  };
}

/**
 * An Ajv instance for tool schemas: the options above, ajv-formats and `x-path`.
 * `standalone` (the build) keeps the source, with formats read from `__formats`.
 */
export function createToolAjv(options: { logger?: Logger; standalone?: boolean } = {}): Ajv2020 {
  const modules = loadAjv();
  const log = options.logger ?? silentLogger;
  const ajv = new modules.Ajv2020({
    ...TOOL_AJV_OPTIONS,
    ...(options.standalone === true ? { code: { source: true, formats: modules.codegen._`__formats` } } : {}),
    logger: {
      log: (...args: unknown[]) => log.debug("ajv", { detail: args.map(String).join(" ") }),
      warn: (...args: unknown[]) => log.warn("ajv", { detail: args.map(String).join(" ") }),
      error: (...args: unknown[]) => log.error("ajv", { detail: args.map(String).join(" ") }),
    },
  });
  modules.addFormats(ajv);
  ajv.addKeyword(pathKeyword(modules));
  ajv.addKeyword({ keyword: AUDIT_KEYWORD, schemaType: "string", metaSchema: { enum: ["digest"] } });
  return ajv;
}

// ---------------------------------------------------------------------------
// The set
// ---------------------------------------------------------------------------

type SchemaName = "inputSchema" | "outputSchema";

interface SchemaSlot {
  readonly which: SchemaName;
  readonly schema: JsonObject;
  /**
   * The build's validator for this very schema; undefined until looked up on first use
   * (hashing every schema at registration measurably raised the start's RSS), null if none.
   */
  precompiled: PrecompiledValidator | null | undefined;
  validate: ValidateFunction | undefined;
  /** Set once the validator is made (or its compile failed). */
  source: SchemaSource | undefined;
}

interface ToolEntry {
  readonly input: SchemaSlot;
  readonly output: SchemaSlot | undefined;
  ready: boolean;
  /** A failed deferred compile: the tool fails closed with it, every time. */
  failure: SchemaCompileError | undefined;
}

export function createValidatorSet(options: ValidatorSetOptions = {}): ValidatorSet {
  const log = options.logger ?? silentLogger;
  const maxProblems = options.maxProblems ?? 3;
  const maxLength = options.maxMessageLength ?? 1000;
  const choice = options.precompiled ?? true;
  let available: PrecompiledToolValidators | null | undefined;

  const tools = new Map<string, ToolEntry>();
  let ajv: Ajv2020 | undefined;

  function slot(tool: string, which: SchemaName, schema: JsonObject): SchemaSlot {
    checkStructure(tool, which, schema);
    return { which, schema, precompiled: undefined, validate: undefined, source: undefined };
  }

  function precompiledFor(target: SchemaSlot): PrecompiledValidator | null {
    if (target.precompiled === undefined) {
      if (available === undefined) {
        const module = choice === true ? loadGenerated() : choice === false ? undefined : choice;
        available = module !== undefined && module.compilerSha256 === toolCompilerSha256() ? module : null;
      }
      let key: string | undefined;
      try {
        key = available === null ? undefined : toolSchemaSha256(target.schema);
      } catch {
        key = undefined; // not plain JSON (a cycle): Ajv's compile will say what is wrong
      }
      target.precompiled = available !== null && key !== undefined && Object.hasOwn(available.validators, key) ? available.validators[key]! : null;
    }
    return target.precompiled;
  }

  function make(tool: string, target: SchemaSlot): void {
    if (target.validate !== undefined) return;
    const precompiled = precompiledFor(target);
    if (precompiled !== null) {
      try {
        target.validate = precompiled.create(precompiled.usesFormats ? loadFormats() : undefined, collectPath);
        target.source = "precompiled";
        return;
      } catch (error) {
        // Generated code that cannot be loaded is a build problem; Ajv still gives the same answers.
        log.warn("precompiled tool validator unusable; compiling", { tool, detail: error instanceof Error ? error.message : String(error) });
      }
    }
    ajv ??= createToolAjv({ logger: log });
    try {
      target.validate = ajv.compile(target.schema);
      target.source = "compiled";
    } catch (error) {
      target.source = "invalid";
      const reason = error instanceof Error ? error.message : String(error);
      throw new SchemaCompileError(tool, `The ${target.which} of tool ${JSON.stringify(tool)} is invalid: ${reason}`);
    }
  }

  /** Makes the tool's validators once; returns the failure that closes the tool, if any. */
  function prepare(tool: string, entry: ToolEntry): SchemaCompileError | undefined {
    if (entry.ready || entry.failure !== undefined) return entry.failure;
    try {
      make(tool, entry.input);
      if (entry.output !== undefined) make(tool, entry.output);
      entry.ready = true;
    } catch (error) {
      entry.failure =
        error instanceof SchemaCompileError
          ? error
          : new SchemaCompileError(tool, `The schemas of tool ${JSON.stringify(tool)} could not be compiled: ${error instanceof Error ? error.message : String(error)}`);
      log.error("tool schema invalid; the tool is refused", { tool, detail: entry.failure.message });
    }
    return entry.failure;
  }

  const sourceOfSlot = (target: SchemaSlot): SchemaSource => target.source ?? (precompiledFor(target) === null ? "deferred" : "precompiled");

  return {
    addTool(def) {
      if (tools.has(def.name)) throw new SchemaCompileError(def.name, `The tool ${JSON.stringify(def.name)} is registered twice.`);
      const input = slot(def.name, "inputSchema", def.inputSchema);
      const output = def.outputSchema === undefined ? undefined : slot(def.name, "outputSchema", def.outputSchema);
      tools.set(def.name, { input, output, ready: false, failure: undefined });
    },

    has(tool) {
      return tools.has(tool);
    },

    compileAll() {
      for (const [tool, entry] of tools) {
        const failure = prepare(tool, entry);
        if (failure !== undefined) throw failure;
      }
    },

    sourceOf(tool) {
      const entry = tools.get(tool);
      if (entry === undefined) return undefined;
      return { input: sourceOfSlot(entry.input), output: entry.output === undefined ? undefined : sourceOfSlot(entry.output) };
    },

    validateInput(tool, args) {
      const entry = tools.get(tool);
      if (entry === undefined) return { ok: false, message: `Unknown tool ${quote(tool)}.` };
      const failure = prepare(tool, entry);
      if (failure !== undefined) return { ok: false, message: failure.message };
      const validate = entry.input.validate!;
      const found: PathArgument[] = [];
      collecting = found;
      let valid: boolean;
      try {
        valid = validate(args);
      } catch {
        // E.g. a recursive schema walking absurdly deep data: refuse rather than crash.
        return { ok: false, message: `The arguments for tool ${quote(tool)} could not be validated (too deeply nested?).` };
      } finally {
        collecting = undefined;
      }
      if (!valid) {
        const problems = describeErrors(validate.errors ?? [], args, "arguments", maxProblems);
        return { ok: false, message: bound(`Invalid arguments for tool ${quote(tool)}: ${problems}`, maxLength) };
      }
      return { ok: true, paths: found.length > 1 ? dedupe(found) : found };
    },

    validateOutput(tool, value) {
      const entry = tools.get(tool);
      if (entry === undefined) return { ok: false, message: `Unknown tool ${quote(tool)}.` };
      const failure = prepare(tool, entry);
      if (failure !== undefined) return { ok: false, message: failure.message };
      const validate = entry.output?.validate;
      if (validate === undefined) return { ok: true };
      try {
        if (validate(value)) return { ok: true };
      } catch {
        return { ok: false, message: `The structured output of tool ${quote(tool)} could not be validated (too deeply nested?).` };
      }
      const problems = describeErrors(validate.errors ?? [], value, "structuredContent", maxProblems);
      return { ok: false, message: bound(`Invalid structured output from tool ${quote(tool)}: ${problems}`, maxLength) };
    },
  };
}

/** The checks that need no compiler; they throw `SchemaCompileError` naming the tool and schema. */
function checkStructure(tool: string, which: SchemaName, schema: JsonObject): void {
  const where = `${which} of tool ${JSON.stringify(tool)}`;
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) {
    throw new SchemaCompileError(tool, `The ${where} must be a JSON object.`);
  }
  const dialect = schema.$schema;
  if (dialect !== undefined && (typeof dialect !== "string" || !SUPPORTED_DIALECTS.has(dialect))) {
    throw new SchemaCompileError(
      tool,
      `The ${where} declares the dialect ${JSON.stringify(dialect)}; only JSON Schema 2020-12 ` +
        `("https://json-schema.org/draft/2020-12/schema") is supported.`,
    );
  }
  if (schema.type !== "object") {
    throw new SchemaCompileError(tool, `The ${where} must have "type": "object" at its root.`);
  }
  const misplaced = findMisplacedPathKeyword(schema) ?? (which === "inputSchema" ? auditKeywordProblem(schema) : undefined);
  if (misplaced !== undefined) throw new SchemaCompileError(tool, `The ${where} is invalid: ${misplaced}`);
}

/** The same value can be marked twice (allOf, a failed anyOf branch); report it once. */
function dedupe(paths: PathArgument[]): PathArgument[] {
  const seen = new Set<string>();
  return paths.filter((p) => {
    const key = `${p.access}\u0000${p.pointer}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

// ---------------------------------------------------------------------------
// Static check of where `x-path` may appear
// ---------------------------------------------------------------------------

/**
 * Walks the schema (iteratively, following local `#/...` references) and returns a
 * reason if `x-path` sits where its values might not all be collected.
 */
function findMisplacedPathKeyword(root: JsonObject): string | undefined {
  if (!mayHoldKey(root, PATH_KEYWORD) || !hasKeyAnywhere(root, PATH_KEYWORD)) return undefined;
  const visited = [new Set<object>(), new Set<object>()];
  const stack: { node: unknown; at: string; inside: string | undefined }[] = [{ node: root, at: "#", inside: undefined }];
  while (stack.length > 0) {
    const { node, at, inside } = stack.pop()!;
    if (node === null || typeof node !== "object" || Array.isArray(node)) continue;
    const seen = visited[inside === undefined ? 0 : 1]!;
    if (seen.has(node)) continue;
    seen.add(node);
    const schema = node as Record<string, unknown>;
    if (inside !== undefined && Object.hasOwn(schema, PATH_KEYWORD)) {
      return `"${PATH_KEYWORD}" cannot be used inside "${inside}" (at ${at}): not every value there is checked.`;
    }
    for (const ref of [schema.$ref, schema.$dynamicRef]) {
      if (typeof ref !== "string") continue;
      const target = resolveLocalRef(root, ref);
      if (target !== undefined) stack.push({ node: target, at: ref, inside });
      else if (inside !== undefined) {
        return `cannot tell whether the reference ${JSON.stringify(ref)} inside "${inside}" (at ${at}) uses "${PATH_KEYWORD}"; use a "#/..." reference.`;
      }
    }
    for (const key of SUBSCHEMA_ONE) {
      if (key in schema) stack.push({ node: schema[key], at: `${at}/${key}`, inside: PATH_FORBIDDEN_IN.has(key) ? key : inside });
    }
    for (const key of SUBSCHEMA_LIST) {
      const list = schema[key];
      if (Array.isArray(list)) list.forEach((item, i) => stack.push({ node: item, at: `${at}/${key}/${i}`, inside }));
    }
    for (const key of SUBSCHEMA_MAP) {
      const map = schema[key];
      if (map === null || typeof map !== "object" || Array.isArray(map)) continue;
      for (const [name, sub] of Object.entries(map)) stack.push({ node: sub, at: `${at}/${key}/${escapePointer(name)}`, inside });
    }
  }
  return undefined;
}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, "~0").replace(/\//g, "~1");
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const VALUE_PREVIEW = 40;
const LIST_PREVIEW = 10;

/** Rewords Ajv's errors for a model: at most `max` problems, combinator summaries first. */
function describeErrors(errors: readonly ErrorObject[], data: unknown, rootLabel: string, max: number): string {
  // The detailed property-name error says more than the propertyNames summary.
  const named = errors.some((e) => e.propertyName !== undefined);
  const relevant = errors.filter((e) => !(named && e.keyword === "propertyNames"));
  const ordered = [
    ...relevant.filter((e) => e.keyword === "anyOf" || e.keyword === "oneOf"),
    ...relevant.filter((e) => e.keyword !== "anyOf" && e.keyword !== "oneOf"),
  ];
  const lines: string[] = [];
  for (const error of ordered) {
    const line = describeError(error, data, rootLabel);
    if (!lines.includes(line)) lines.push(line);
  }
  if (lines.length === 0) lines.push(`${rootLabel} is invalid`);
  const shown = lines.slice(0, Math.max(1, max));
  const more = lines.length - shown.length;
  return `${shown.join("; ")}${more > 0 ? ` (and ${more} more ${more === 1 ? "problem" : "problems"})` : ""}.`;
}

function describeError(error: ErrorObject, data: unknown, rootLabel: string): string {
  const at = pathLabel(error.instancePath, data, rootLabel);
  // An error about a property *name* (under propertyNames) has the name as its data.
  const label = error.propertyName === undefined ? at.label : `the property name ${quote(error.propertyName)} in ${at.label}`;
  const params = error.params as Record<string, unknown>;
  const got = () => (error.propertyName === undefined ? ` (got ${preview(error.data, at.hidden)})` : "");
  switch (error.keyword) {
    case "required":
      return `${label} is missing required property ${quote(String(params.missingProperty))}`;
    case "additionalProperties":
    case "unevaluatedProperties": {
      const name = String(params.additionalProperty ?? params.unevaluatedProperty);
      return `${label} has unexpected property ${quote(name)}${allowedHint(name, error.parentSchema)}`;
    }
    case "dependentRequired":
      return `${label} must have property ${quote(String(params.missingProperty))} when ${quote(String(params.property))} is present`;
    case "type":
      return `${label} must be ${typePhrase(String(params.type))}${got()}`;
    case "enum": {
      const allowed = Array.isArray(params.allowedValues) ? params.allowedValues : [];
      return `${label} must be one of ${listValues(allowed)}${got()}`;
    }
    case "const":
      return `${label} must be ${shortJson(params.allowedValue)}${got()}`;
    case "minLength":
    case "maxLength": {
      const length = typeof error.data === "string" ? Array.from(error.data).length : undefined;
      const bound = error.keyword === "minLength" ? "at least" : "at most";
      return `${label} must be ${bound} ${count(params.limit, "character")} long${length === undefined ? "" : ` (got ${length})`}`;
    }
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum":
      return `${label} must be ${comparisonPhrase(String(params.comparison))} ${String(params.limit)}${got()}`;
    case "multipleOf":
      return `${label} must be a multiple of ${String(params.multipleOf)}${got()}`;
    case "minItems":
    case "maxItems": {
      const got = Array.isArray(error.data) ? ` (got ${error.data.length})` : "";
      return `${label} must have ${error.keyword === "minItems" ? "at least" : "at most"} ${count(params.limit, "item")}${got}`;
    }
    case "minProperties":
    case "maxProperties":
      return `${label} must have ${error.keyword === "minProperties" ? "at least" : "at most"} ${count(params.limit, "property", "properties")}`;
    case "uniqueItems":
      return `${label} must not contain duplicates (items ${String(params.j)} and ${String(params.i)} are equal)`;
    case "pattern": {
      // A pattern too long to quote whole says little when cut: the schema's description says it in words.
      const description = (error.parentSchema as { description?: unknown } | undefined)?.description;
      if (String(params.pattern).length > VALUE_PREVIEW && typeof description === "string" && description.length > 0) {
        return `${label} is not in the expected form: ${truncate(description, 300, "...")}${got()}`;
      }
      return `${label} must match the pattern ${shortJson(params.pattern)}${got()}`;
    }
    case "format":
      return `${label} must be a valid ${String(params.format)}${got()}`;
    case "anyOf":
      return `${label} must match one of the allowed forms`;
    case "oneOf":
      return Array.isArray(params.passingSchemas)
        ? `${label} must match exactly one of the allowed forms, but it matches several`
        : `${label} must match exactly one of the allowed forms`;
    case "not":
      return `${label} must not match the excluded form`;
    case "contains":
      return `${label} must contain ${containsPhrase(params)}`;
    case "false schema":
      return `${label} is not allowed`;
    case PATH_KEYWORD:
      return `${label} must be a string (a filesystem path)${got()}`;
    default:
      return `${label} ${error.message ?? "is invalid"}`;
  }
}

/**
 * `/a/0/b c` on `{a:[{...}]}` becomes `arguments.a[0]["b c"]`; `hidden`: the value there is one
 * redaction replaces, under a sensitive key or after a sensitive flag (`["--password", "x"]`), or in one.
 */
function pathLabel(pointer: string, data: unknown, rootLabel: string): { label: string; hidden: boolean } {
  if (pointer === "") return { label: rootLabel, hidden: false };
  let label = rootLabel;
  let node: unknown = data;
  let hidden = false;
  for (const raw of pointer.slice(1).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(node)) {
      label += `[${key}]`;
      hidden ||= isFlagValueAt(node, Number(key));
    } else {
      label += IDENTIFIER.test(key) ? `.${truncate(key, VALUE_PREVIEW, "...")}` : `[${quote(key)}]`;
      hidden ||= isSensitiveKey(key);
    }
    node = node !== null && typeof node === "object" && Object.hasOwn(node, key) ? (node as Record<string, unknown>)[key] : undefined;
  }
  return { label, hidden };
}

/** A short description of a sent value; secrets and long values are never echoed. */
function preview(value: unknown, hidden: boolean): string {
  if (hidden) return "a value that is not shown";
  if (typeof value === "string") return quote(redactString(value).value);
  if (Array.isArray(value)) return "an array";
  if (value === null) return "null";
  if (typeof value === "object") return "an object";
  return truncate(JSON.stringify(value) ?? typeof value, VALUE_PREVIEW, "...");
}

function allowedHint(name: string, parentSchema: unknown): string {
  const schema = parentSchema as { properties?: unknown; patternProperties?: unknown } | undefined;
  const props = schema?.properties;
  const allowed = props !== null && typeof props === "object" ? Object.keys(props) : [];
  if (allowed.length === 0) return schema?.patternProperties === undefined ? " (no properties are allowed)" : "";
  const close = allowed.find((candidate) => isNear(name, candidate));
  const list = allowed.slice(0, LIST_PREVIEW).join(", ") + (allowed.length > LIST_PREVIEW ? ", ..." : "");
  return ` (allowed: ${list}${close === undefined ? "" : `; did you mean ${quote(close)}?`})`;
}

/** Edit distance of at most 2 (1 for very short names): catches the usual typos. */
function isNear(a: string, b: string): boolean {
  const limit = Math.min(a.length, b.length) <= 3 ? 1 : 2;
  if (a === b || a.length > 64 || b.length > 64 || Math.abs(a.length - b.length) > limit) return false;
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost));
    }
    previous = current;
  }
  return previous[b.length]! <= limit;
}

const TYPE_NAMES: Record<string, string> = {
  string: "a string",
  number: "a number",
  integer: "an integer",
  boolean: "a boolean",
  object: "an object",
  array: "an array",
  null: "null",
};

function typePhrase(types: string): string {
  return types
    .split(",")
    .map((t) => TYPE_NAMES[t] ?? t)
    .join(" or ");
}

function comparisonPhrase(comparison: string): string {
  switch (comparison) {
    case ">=":
      return "at least";
    case "<=":
      return "at most";
    case ">":
      return "greater than";
    default:
      return "less than";
  }
}

function containsPhrase(params: Record<string, unknown>): string {
  if (typeof params.maxContains === "number") return `at most ${count(params.maxContains, "matching item")}`;
  return `at least ${count(typeof params.minContains === "number" ? params.minContains : 1, "matching item")}`;
}

function count(n: unknown, singular: string, plural = `${singular}s`): string {
  return `${String(n)} ${n === 1 ? singular : plural}`;
}

function listValues(values: readonly unknown[]): string {
  const shown = values.slice(0, LIST_PREVIEW).map(shortJson).join(", ");
  return values.length > LIST_PREVIEW ? `${shown}, ...` : shown;
}

function shortJson(value: unknown): string {
  if (typeof value === "string") return quote(value);
  return truncate(JSON.stringify(value) ?? String(value), VALUE_PREVIEW, "...");
}

/** A JSON-quoted, length-bounded string (quoting also escapes control characters). */
function quote(value: string): string {
  return JSON.stringify(truncate(value, VALUE_PREVIEW, "..."));
}


function bound(message: string, max: number): string {
  return message.length <= max ? message : `${message.slice(0, Math.max(0, max - 3))}...`;
}
