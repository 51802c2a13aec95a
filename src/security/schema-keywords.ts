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

/**
 * Trees the registry copied from a plugin's definition: plain objects and dense arrays of JSON
 * values, frozen. Only for them does JSON's text show every key the walks can see.
 */
const jsonCopies = new WeakSet<object>();

/** Marks a tree as such a copy (the registry's, of each tool's schemas). */
export function markJsonCopy(root: object): void {
  jsonCopies.add(root);
}

/**
 * False only when `key` is surely not a key anywhere in `root`: its JSON text does not name it.
 * Every tool's schemas are checked for the server's keywords at start, and most hold none; a
 * walk in JS over them all got hot enough for V8 to optimize it on a compiler thread, whose
 * memory arena added ~4 MiB to the RSS after start. The native serializer answers the common
 * case; a schema JSON cannot hold (a cycle) is left to the walk. So is any tree the registry did
 * not copy: there a toJSON method, a key JSON leaves out (not enumerable, on an array, holding
 * undefined) or an inherited one can hide from the text what the walks see.
 */
export function mayHoldKey(root: unknown, key: string): boolean {
  if (root === null || typeof root !== "object" || !jsonCopies.has(root)) return true;
  let text: string | undefined;
  try {
    text = JSON.stringify(root);
  } catch {
    return true;
  }
  return text === undefined || text.includes(`${JSON.stringify(key)}:`);
}

/** Whether `key` is an own key of any object inside `root` (iterative, cycle-safe). */
export function hasKeyAnywhere(root: unknown, key: string): boolean {
  const seen = new Set<object>();
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === null || typeof node !== "object" || seen.has(node)) continue;
    seen.add(node);
    if (!Array.isArray(node) && Object.hasOwn(node, key)) return true;
    for (const value of Object.values(node)) stack.push(value);
  }
  return false;
}

/** The subschema a `#`-relative JSON pointer reference names inside `root`, or undefined (any other reference, or none there). */
export function resolveLocalRef(root: object, ref: string): unknown {
  if (ref === "#") return root;
  if (!ref.startsWith("#/")) return undefined;
  let node: unknown = root;
  for (const raw of ref.slice(2).split("/")) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    } catch {
      return undefined;
    }
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, segment)) return undefined;
    node = (node as Record<string, unknown>)[segment];
  }
  return node;
}
