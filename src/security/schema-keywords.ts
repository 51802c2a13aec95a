/**
 * Where a JSON Schema holds subschemas, by the shape of the keyword's value. Shared by the walks
 * that must reach every subschema: where `x-path` may sit (validation.ts) and what `tools/list`
 * shows without the server's own keywords (published-schema.ts).
 */

/** Keywords whose value is one subschema (`items` in older drafts may be an array of them). */
export const SUBSCHEMA_ONE: readonly string[] = [
  "additionalProperties",
  "items",
  "additionalItems",
  "contains",
  "not",
  "if",
  "then",
  "else",
  "propertyNames",
  "unevaluatedProperties",
  "unevaluatedItems",
  "contentSchema",
];

/** Keywords whose value is an array of subschemas. */
export const SUBSCHEMA_LIST: readonly string[] = ["allOf", "anyOf", "oneOf", "prefixItems"];

/**
 * Keywords whose value maps names to subschemas. `dependencies` (the draft 2019 spelling, still
 * accepted by Ajv) may map a name to a list of names instead of a schema.
 */
export const SUBSCHEMA_MAP: readonly string[] = ["properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"];
