/**
 * A tool as `tools/list` shows it: its schemas without this server's own keywords (`x-path`,
 * `x-audit`: which arguments the engine guards as paths, which it records as digests). They
 * are the engine's business, and a client that hands schemas to a model provider which
 * refuses unknown keywords (Gemini's function declarations answer 400) could not use the
 * tools. The engine keeps validating against, and hashing into the audit log, the tool's own
 * definition. Schema-aware: a property that is itself named `x-path` is kept.
 */
import type { JsonObject, ToolDefinition } from "../plugins/contract.js";
import { SUBSCHEMA_LIST, SUBSCHEMA_MAP, SUBSCHEMA_ONE } from "./schema-keywords.js";

const SCHEMA_MAPS: ReadonlySet<string> = new Set(SUBSCHEMA_MAP);
const SCHEMA_VALUES: ReadonlySet<string> = new Set(SUBSCHEMA_ONE);
const SCHEMA_ARRAYS: ReadonlySet<string> = new Set(SUBSCHEMA_LIST);

/**
 * Frozen, as the registry's definitions are (what is not remade here is theirs, frozen already):
 * every plugin reads the catalogue, and none may change what the client or another plugin sees.
 */
export function publishedTool(tool: ToolDefinition): ToolDefinition {
  const inputSchema = publishedSchema(tool.inputSchema) as ToolDefinition["inputSchema"];
  if (tool.outputSchema === undefined) return Object.freeze({ ...tool, inputSchema });
  return Object.freeze({ ...tool, inputSchema, outputSchema: publishedSchema(tool.outputSchema) as NonNullable<ToolDefinition["outputSchema"]> });
}

/** The schema without `x-` keywords, at every depth a subschema can sit; other values as they are. */
export function publishedSchema(schema: unknown): unknown {
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) return schema;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(schema as JsonObject)) {
    if (key.startsWith("x-")) continue;
    let kept: unknown = value;
    if (SCHEMA_MAPS.has(key) && typeof value === "object" && value !== null && !Array.isArray(value)) {
      const map: JsonObject = {};
      for (const [name, sub] of Object.entries(value)) define(map, name, publishedSchema(sub));
      kept = Object.freeze(map);
    } else if (SCHEMA_VALUES.has(key)) {
      kept = Array.isArray(value) ? Object.freeze(value.map(publishedSchema)) : publishedSchema(value);
    } else if (SCHEMA_ARRAYS.has(key) && Array.isArray(value)) {
      kept = Object.freeze(value.map(publishedSchema));
    }
    define(out, key, kept);
  }
  return Object.freeze(out);
}

/** An own member even when it is named `__proto__` (an assignment would set the prototype). */
function define(target: JsonObject, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
