/**
 * Arguments and structured outputs for the built-in tools, valid and broken, for the
 * validation tests: hand-written valid arguments (patterns make them hard to derive),
 * outputs derived from the output schemas, and variants that break them field by field.
 * Imports nothing that loads Ajv.
 */
import type { JsonObject, JsonValue, ToolDefinition } from "../../src/plugins/contract.js";
import { createDiscoveryPlugin } from "../../src/plugins/builtin/discovery.js";
import { TOOLS } from "../../src/plugins/builtin/bugtracker/tools.js";
import { SECURITY_STATUS } from "../../src/plugins/builtin/status.js";
import { WEB_SEARCH } from "../../src/plugins/builtin/websearch/index.js";
import { TOOLS as FILE_TOOLS } from "../../src/plugins/builtin/files/tools.js";

export const BUILTIN_TOOLS: readonly ToolDefinition[] = [...createDiscoveryPlugin().tools, ...TOOLS, ...FILE_TOOLS, WEB_SEARCH, SECURITY_STATUS];

/** Valid arguments for every built-in tool (each must pass). */
export const VALID_ARGUMENTS: Readonly<Record<string, readonly JsonObject[]>> = {
  search_tools: [{}, { query: "create bug", category: "bugtracker", intent: "file a bug", detail_level: "full", include_unavailable: true, limit: 5 }],
  list_categories: [{}],
  init_bugtracker: [{}, { project_path: "/work/project" }],
  add_bug: [
    { title: "Crash" },
    { title: "Crash on save", description: "Steps:\n1. save\n\tcrash", priority: "high", tags: ["ui", "v1.2", "a:b+c"], project_path: "/p" },
  ],
  get_bug: [{ bug_id: "BUG-12" }, { bug_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", include_history: false, project_path: "/p" }],
  update_bug: [
    {
      bug_id: "bug-7",
      title: "Crash on save",
      description: "",
      status: "resolved",
      priority: "critical",
      tags: [],
      related_bugs: [{ bug_id: "BUG-2", relationship: "blocks" }, { bug_id: "BUG-3", relationship: "duplicate_of" }],
      note: "fixed in 1.2",
      project_path: "/p",
    },
  ],
  close_bug: [{ bug_id: "BUG-1" }, { bug_id: "BUG-1", resolution: "done", project_path: "/p" }],
  list_bugs: [
    {},
    { status: "open", priority: "low", tags: ["a"], query: "crash*", sort: "relevance", limit: 10, cursor: "abc", include_history: true, project_path: "/p" },
  ],
  search_bugs_global: [{}, { query: "x", limit: 1, sort: "priority", status: "closed" }],
  list_directory: [{ path: "/data" }, { path: "~/notes", offset: 200, limit: 1000 }],
  read_file: [{ path: "a.txt" }, { path: "/data/scan.pdf", offset: 0, length: 4096, encoding: "base64" }],
  list_allowed_directories: [{}],
  file_info: [{ path: "/data" }],
  search_files: [
    { path: "." },
    { path: "/data", pattern: "**/*.md", contains: "TODO", case_sensitive: true, include_hidden: true, max_depth: 32, max_results: 1000 },
  ],
  write_file: [{ path: "out.txt", content: "" }, { path: "/data/log.txt", content: "line\n", mode: "append" }],
  edit_file: [
    { path: "a.txt", edits: [{ old_text: "x", new_text: "" }] },
    { path: "/data/notes.md", edits: [{ old_text: "TODO", new_text: "DONE" }, { old_text: "a\nb", new_text: "c" }], dry_run: true },
  ],
  move_file: [{ source: "a.txt", destination: "b.txt" }],
  create_directory: [{ path: "/data/a/b" }],
  web_search: [{ query: "mcp" }, { query: "model context protocol", max_results: 20 }, { query: "x".repeat(500), max_results: 1 }],
  security_status: [{}],
};

/** A value that the schema accepts, when it has no pattern or format (output schemas here have none). */
export function sample(schema: JsonObject): JsonValue {
  if (Array.isArray(schema.enum)) return schema.enum[0]!;
  switch (schema.type) {
    case "string":
      return "s";
    case "integer":
    case "number":
      return typeof schema.minimum === "number" ? schema.minimum : 0;
    case "boolean":
      return true;
    case "array":
      return schema.items === undefined ? [] : [sample(schema.items as JsonObject)];
    case "object": {
      const out: JsonObject = {};
      const properties = (schema.properties ?? {}) as Record<string, JsonObject>;
      for (const [name, sub] of Object.entries(properties)) out[name] = sample(sub);
      return out;
    }
    default:
      return null;
  }
}

/** Values that break most fields one way or another. */
const WRONG: readonly JsonValue[] = [null, 0, -1, 1.5, 1e12, true, "", " ", "x".repeat(300), "BUG-0", "a\u0000b", [], ["x"], [1], {}, { a: 1 }];

/** `base` with one thing wrong: each value replaced by each wrong value, each key removed, one key added. */
export function variants(base: JsonObject): JsonObject[] {
  const out: JsonObject[] = [];
  const walk = (path: (string | number)[], value: JsonValue): void => {
    for (const wrong of WRONG) out.push(replaced(base, path, wrong));
    if (Array.isArray(value)) value.forEach((item, i) => walk([...path, i], item));
    else if (value !== null && typeof value === "object") {
      for (const [key, item] of Object.entries(value)) {
        walk([...path, key], item);
        out.push(replaced(base, [...path, key], undefined));
      }
      out.push(replaced(base, [...path, "unexpected"], 1));
    }
  };
  walk([], base);
  return out.filter((v): v is JsonObject => v !== null && typeof v === "object" && !Array.isArray(v));
}

/** A deep copy of `root` with the value at `path` replaced (undefined: removed). */
function replaced(root: JsonObject, path: (string | number)[], value: JsonValue | undefined): JsonObject {
  if (path.length === 0) return value as JsonObject;
  const copy = structuredClone(root);
  let node: JsonValue = copy;
  for (const segment of path.slice(0, -1)) node = (node as Record<string | number, JsonValue>)[segment]!;
  const last = path[path.length - 1]!;
  if (value === undefined) {
    if (Array.isArray(node)) node.splice(Number(last), 1);
    else delete (node as JsonObject)[last];
  } else (node as Record<string | number, JsonValue>)[last] = value;
  return copy;
}

/**
 * A schema that marks `x-path` in every place collection must reach (refs, arrays, combinators,
 * additional and pattern properties, tuples, an odd key, an untyped value), arguments for it,
 * and the paths collected from them, sorted by pointer then access. Shared by the run-time and
 * the build-time (generated code) tests, so both prove the same collection.
 */
export const XPATH_EVERYWHERE = {
  $defs: { out: { type: "string", "x-path": "write" } } as JsonObject,
  properties: {
    src: { type: "string", "x-path": "read" },
    files: { type: "array", items: { type: "object", properties: { path: { $ref: "#/$defs/out" } } } },
    either: { anyOf: [{ type: "string", "x-path": "read" }, { type: "integer" }] },
    "a/b~c": { type: "string", "x-path": "read" },
    extra: { type: "object", additionalProperties: { type: "string", "x-path": "write" } },
    pat: { type: "object", patternProperties: { "^f": { type: "string", "x-path": "read" } } },
    tuple: { type: "array", prefixItems: [{ type: "string", "x-path": "read" }], items: { type: "string" } },
    same: { allOf: [{ type: "string", "x-path": "read" }, { "x-path": "read" }] },
    both: { allOf: [{ type: "string", "x-path": "read" }, { "x-path": "write" }] },
    untyped: { "x-path": "read" },
    label: { type: "string" },
  } as JsonObject,
  arguments: {
    src: "/in",
    files: [{ path: "/o1" }, { path: "/o2" }],
    either: "/e",
    "a/b~c": "/odd",
    extra: { k: "/x" },
    pat: { f1: "/f", g: "not a path" },
    tuple: ["/t", "not a path"],
    same: "/same",
    both: "/both",
    untyped: "/u",
    label: "not a path",
  } as JsonObject,
  paths: [
    { pointer: "/a~1b~0c", value: "/odd", access: "read" },
    { pointer: "/both", value: "/both", access: "read" },
    { pointer: "/both", value: "/both", access: "write" },
    { pointer: "/either", value: "/e", access: "read" },
    { pointer: "/extra/k", value: "/x", access: "write" },
    { pointer: "/files/0/path", value: "/o1", access: "write" },
    { pointer: "/files/1/path", value: "/o2", access: "write" },
    { pointer: "/pat/f1", value: "/f", access: "read" },
    { pointer: "/same", value: "/same", access: "read" },
    { pointer: "/src", value: "/in", access: "read" },
    { pointer: "/tuple/0", value: "/t", access: "read" },
    { pointer: "/untyped", value: "/u", access: "read" },
  ],
};

/** Collected paths in XPATH_EVERYWHERE's order. */
export function sortPaths<T extends { pointer: string; access: string }>(paths: readonly T[]): T[] {
  return [...paths].sort((a, b) => a.pointer.localeCompare(b.pointer) || a.access.localeCompare(b.access));
}
