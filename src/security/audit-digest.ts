/**
 * `"x-audit": "digest"` wherever a tool's input schema puts it: the audit log records such a
 * value (a file's content, a list of edits) as its size and SHA-256 instead of a second copy.
 *
 * The marks are found by walking the arguments along the schema, not by validation: a call
 * refused for another argument is recorded too, and its content must not land in the log
 * whole because validation stopped before reaching it. The walk is conservative: a value is
 * digested when any subschema that may apply to it is marked (every branch of anyOf/oneOf,
 * if/then/else, each pattern that matches a name), so a mark can hide more, never less.
 * Where no walk can tell what a mark covers (`not`, `contains`, `propertyNames`, a reference
 * outside the schema), the schema is refused when the tool registers.
 */
import { canonicalJson, sha256Hex } from "../util/canonical-json.js";
import { REDACTED } from "./redaction.js";
import { hasKeyAnywhere, mayHoldKey, resolveLocalRef } from "./schema-keywords.js";

export const AUDIT_KEYWORD = "x-audit";

type Schema = Record<string, unknown>;
/** What a digested value becomes in the log. */
export interface ValueDigest {
  bytes: number;
  sha256: string;
}

/** Subschemas applying to the same value as their parent. */
const IN_PLACE_ONE = ["if", "then", "else"] as const;
const IN_PLACE_LIST = ["allOf", "anyOf", "oneOf"] as const;
/** Where a mark would cover values no walk can name (or nothing at all). */
const UNSUPPORTED = ["not", "contains", "propertyNames", "contentSchema"] as const;

/** The size and SHA-256 of a value: a string as its UTF-8 text, anything else as its canonical JSON. */
export function valueDigest(value: unknown): ValueDigest {
  const text = typeof value === "string" ? value : canonicalJson(value);
  return { bytes: Buffer.byteLength(text), sha256: sha256Hex(text) };
}

function isSchema(node: unknown): node is Schema {
  return typeof node === "object" && node !== null && !Array.isArray(node);
}

/** A local reference's target when it is a schema. */
function schemaAt(root: Schema, ref: string): Schema | undefined {
  const target = resolveLocalRef(root, ref);
  return isSchema(target) ? target : undefined;
}

/**
 * Why the marks of this input schema cannot all be honoured, or undefined. Only a schema that
 * holds the keyword is walked; one without it has nothing to honour.
 */
export function auditKeywordProblem(root: Schema): string | undefined {
  if (!mayHoldKey(root, AUDIT_KEYWORD) || !hasKeyAnywhere(root, AUDIT_KEYWORD)) return undefined;
  // A subschema is looked at once outside and once inside each unsupported keyword: one shared
  // through $ref can be reached both ways, and seen once, its place inside "not" went unnoticed.
  const seen = new Map<object, Set<string>>();
  const stack: { node: unknown; at: string; inside?: string }[] = [{ node: root, at: "#" }];
  while (stack.length > 0) {
    const { node, at, inside } = stack.pop()!;
    if (!isSchema(node)) continue;
    const places = seen.get(node) ?? new Set<string>();
    if (places.has(inside ?? "")) continue;
    seen.set(node, places.add(inside ?? ""));
    if (Object.hasOwn(node, AUDIT_KEYWORD)) {
      if (node[AUDIT_KEYWORD] !== "digest") return `"${AUDIT_KEYWORD}" at ${at} must be "digest".`;
      if (inside !== undefined) return `"${AUDIT_KEYWORD}" cannot be used inside "${inside}" (at ${at}): no value there can be named for the audit log.`;
    }
    // Below a $id, Ajv reads "#/..." against that subschema, not the root as the walk does; and
    // Ajv follows $recursiveRef, which the walk does not: marks behind either would be missed.
    if (node !== root && Object.hasOwn(node, "$id")) {
      return `"$id" at ${at} makes the "#/..." references under it name parts of that subschema; "${AUDIT_KEYWORD}" needs them read from the root: remove it.`;
    }
    if (Object.hasOwn(node, "$recursiveRef")) return `"$recursiveRef" at ${at} cannot be followed to tell which values "${AUDIT_KEYWORD}" marks; use "$ref".`;
    for (const key of ["$ref", "$dynamicRef"]) {
      const ref = node[key];
      if (typeof ref !== "string") continue;
      const target = schemaAt(root, ref);
      if (target === undefined) {
        return `the reference ${JSON.stringify(ref)} (at ${at}) cannot be followed to tell which values "${AUDIT_KEYWORD}" marks; use a "#/..." reference.`;
      }
      stack.push({ node: target, at: ref, inside });
    }
    for (const key of UNSUPPORTED) if (key in node) stack.push({ node: node[key], at: `${at}/${key}`, inside: inside ?? key });
    for (const [key, sub] of childSchemas(node)) stack.push({ node: sub, at: `${at}/${key}`, inside });
  }
  return undefined;
}

/** Every subschema the walk may use, with its pointer segment (for the placement check). */
function* childSchemas(node: Schema): Generator<[string, unknown]> {
  for (const key of [...IN_PLACE_ONE, "items", "additionalProperties", "unevaluatedProperties", "unevaluatedItems", "additionalItems"]) {
    if (key in node) yield [key, node[key]];
  }
  for (const key of [...IN_PLACE_LIST, "prefixItems"]) {
    const list = node[key];
    if (Array.isArray(list)) for (let i = 0; i < list.length; i++) yield [`${key}/${i}`, list[i]];
  }
  for (const key of ["properties", "patternProperties", "dependentSchemas", "dependencies", "$defs", "definitions"]) {
    const map = node[key];
    if (isSchema(map)) for (const [name, sub] of Object.entries(map)) yield [`${key}/${name}`, sub];
  }
}

/** Records arguments for the audit log: the redacted arguments with every marked value digested. */
export type ArgumentDigester = (original: unknown, redacted: unknown) => unknown;

/** The digester of an input schema, or undefined when it marks nothing. The schema must have passed `auditKeywordProblem`. */
export function argumentDigester(root: Schema): ArgumentDigester | undefined {
  if (!mayHoldKey(root, AUDIT_KEYWORD) || !hasKeyAnywhere(root, AUDIT_KEYWORD)) return undefined;
  const marked = new WeakMap<Schema, boolean>();
  const patterns = new Map<string, RegExp | null>();
  /** Whether a mark can be reached from this schema (subtrees without one are not walked). */
  const holdsMark = (schema: Schema): boolean => {
    let known = marked.get(schema);
    if (known === undefined) {
      // References are followed: a mark behind one counts.
      known = hasKeyAnywhere(withReferences(root, schema), AUDIT_KEYWORD);
      marked.set(schema, known);
    }
    return known;
  };
  const patternOf = (source: string): RegExp | null => {
    let compiled = patterns.get(source);
    if (compiled === undefined) {
      try {
        compiled = new RegExp(source, "u"); // as Ajv reads patterns
      } catch {
        compiled = null; // Ajv refuses the schema, and the engine then records only a digest of the arguments
      }
      patterns.set(source, compiled);
    }
    return compiled;
  };

  /** The schema and every subschema applying to the same value (combinators, references). */
  const inPlace = (schemas: readonly Schema[]): Schema[] => {
    const out: Schema[] = [];
    const seen = new Set<Schema>();
    const stack = [...schemas];
    while (stack.length > 0) {
      const schema = stack.pop()!;
      if (seen.has(schema)) continue;
      seen.add(schema);
      out.push(schema);
      for (const key of ["$ref", "$dynamicRef"]) {
        const ref = schema[key];
        const target = typeof ref === "string" ? schemaAt(root, ref) : undefined;
        if (target !== undefined) stack.push(target);
      }
      for (const key of IN_PLACE_ONE) if (isSchema(schema[key])) stack.push(schema[key]);
      for (const key of IN_PLACE_LIST) {
        const list = schema[key];
        if (Array.isArray(list)) for (const sub of list) if (isSchema(sub)) stack.push(sub);
      }
      // A present name brings its dependent schema along, applying to the same object.
      for (const key of ["dependentSchemas", "dependencies"]) {
        const map = schema[key];
        if (isSchema(map)) for (const sub of Object.values(map)) if (isSchema(sub)) stack.push(sub);
      }
    }
    return out;
  };

  const memberSchemas = (schemas: readonly Schema[], name: string): Schema[] => {
    const out: Schema[] = [];
    for (const schema of schemas) {
      let named = false;
      const properties = schema.properties;
      if (isSchema(properties) && Object.hasOwn(properties, name) && isSchema(properties[name])) {
        out.push(properties[name]);
        named = true;
      }
      const patternProperties = schema.patternProperties;
      if (isSchema(patternProperties)) {
        for (const [source, sub] of Object.entries(patternProperties)) {
          if (isSchema(sub) && patternOf(source)?.test(name) === true) {
            out.push(sub);
            named = true;
          }
        }
      }
      if (!named) for (const key of ["additionalProperties", "unevaluatedProperties"]) if (isSchema(schema[key])) out.push(schema[key]);
    }
    return out;
  };

  const itemSchemas = (schemas: readonly Schema[], index: number): Schema[] => {
    const out: Schema[] = [];
    for (const schema of schemas) {
      const prefix = schema.prefixItems;
      if (Array.isArray(prefix) && index < prefix.length) {
        if (isSchema(prefix[index])) out.push(prefix[index]);
        continue;
      }
      for (const key of ["items", "additionalItems", "unevaluatedItems"]) if (isSchema(schema[key])) out.push(schema[key]);
    }
    return out;
  };

  const walk = (schemas: readonly Schema[], original: unknown, redacted: unknown): unknown => {
    const applying = inPlace(schemas);
    if (applying.some((schema) => schema[AUDIT_KEYWORD] === "digest")) {
      // A secret's key took the whole value: its hash could be guessed back from a short secret.
      return redacted === REDACTED && original !== REDACTED ? redacted : valueDigest(original);
    }
    if (!applying.some(holdsMark) || typeof original !== "object" || original === null) return redacted;
    // Redaction replaced this value whole (a secret's key, the depth cap): nothing of it is left to digest.
    if (typeof redacted !== "object" || redacted === null || Array.isArray(original) !== Array.isArray(redacted)) return redacted;
    if (Array.isArray(original)) {
      const from = redacted as unknown[];
      let out: unknown[] | undefined;
      for (let i = 0; i < from.length && i < original.length; i++) {
        const children = itemSchemas(applying, i);
        if (children.length === 0) continue;
        const value = walk(children, original[i], from[i]);
        if (value !== from[i]) (out ??= [...from])[i] = value;
      }
      return out ?? redacted;
    }
    const source = original as Record<string, unknown>;
    const from = redacted as Record<string, unknown>;
    // Redaction rewrites a name holding a secret ("https://u:pw@host" becomes
    // "https://u:[REDACTED]@host") but keeps one key for each, in order: keys are paired by
    // place, and the schema is read with the name as sent. Looked up by the record's names,
    // a rewritten one was not found, and its marked value stayed whole.
    const names = Object.keys(source);
    const keys = Object.keys(from);
    if (names.length !== keys.length) return valueDigest(original); // not redaction's copy: keep nothing of it
    let out: Record<string, unknown> | undefined;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const children = memberSchemas(applying, names[i]!);
      if (children.length === 0) continue;
      const value = walk(children, source[names[i]!], from[key]);
      if (value !== from[key]) (out ??= { ...from })[key] = value;
    }
    return out ?? redacted;
  };

  return (original, redacted) => walk([root], original, redacted);
}

/** A schema with the local references under it inlined one level deep, for the mark search only. */
function withReferences(root: Schema, schema: Schema): unknown[] {
  const found: unknown[] = [schema];
  const seen = new Set<object>();
  const stack: unknown[] = [schema];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === null || typeof node !== "object" || seen.has(node)) continue;
    seen.add(node);
    if (!Array.isArray(node)) {
      for (const key of ["$ref", "$dynamicRef"]) {
        const ref = (node as Schema)[key];
        const target = typeof ref === "string" ? schemaAt(root, ref) : undefined;
        if (target !== undefined && !seen.has(target)) {
          found.push(target);
          stack.push(target);
        }
      }
    }
    for (const value of Object.values(node)) stack.push(value);
  }
  return found;
}
