import * as crypto from "node:crypto";

/**
 * Canonical JSON: object keys sorted by code unit, no whitespace, `undefined`
 * members dropped (as JSON.stringify does). The same value always yields the same
 * bytes, which is what a hash over it needs. Non-finite numbers are refused rather
 * than turned into `null`, so a hash never silently covers a different value.
 *
 * Written as plain loops with string appends: it runs twice per audited tool call,
 * and the map/filter/join form spent most of its time allocating.
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case "string":
      return jsonString(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("canonical JSON cannot hold a non-finite number");
      // JSON writes a finite number as its ToString (-0 as "0"); String() is that, without the serializer's setup.
      return String(value);
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) {
        let out = "[";
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ",";
          const item: unknown = value[i];
          out += item === undefined ? "null" : canonicalJson(item);
        }
        return `${out}]`;
      }
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record);
      // Keys often arrive in order already (small objects, objects built sorted): checking costs less than sorting.
      if (!isSorted(keys)) keys.sort();
      let out = "{";
      let first = true;
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!;
        const item = record[key];
        if (item === undefined) continue;
        if (!first) out += ",";
        first = false;
        out += memberName(key) + canonicalJson(item);
      }
      return `${out}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot hold a ${typeof value}`);
  }
}

/**
 * `"key":` for an object key. The same few keys come back in every entry (`text`,
 * `path`, `resultSha256`…), so their forms are kept; the cache is bounded, and a key
 * that finds it full is simply rendered each time.
 */
const memberNames = new Map<string, string>();
const MEMBER_NAMES_MAX = 2048;
const MEMBER_NAME_MAX_LENGTH = 64;

function memberName(key: string): string {
  let name = memberNames.get(key);
  if (name === undefined) {
    name = `${jsonString(key)}:`;
    if (key.length <= MEMBER_NAME_MAX_LENGTH && memberNames.size < MEMBER_NAMES_MAX) memberNames.set(key, name);
  }
  return name;
}

/** Code-unit order, the order of the default `sort()` for strings. */
function isSorted(keys: string[]): boolean {
  for (let i = 1; i < keys.length; i++) if (keys[i - 1]! > keys[i]!) return false;
  return true;
}

/**
 * A string JSON.stringify leaves as it is: no control character, quote, backslash or
 * surrogate (a lone one would be escaped; pairs are simply left to the slow path).
 */
// eslint-disable-next-line no-control-regex -- control characters are what JSON escapes.
const VERBATIM = /^[^\x00-\x1f"\\\ud800-\udfff]*$/;

/**
 * JSON.stringify(value) for a string. Most strings need no escape, and checking that
 * with a regular expression costs a fraction of the serializer (about a quarter per
 * character here), which matters for large arguments as much as for short fields.
 */
export function jsonString(value: string): string {
  return VERBATIM.test(value) ? `"${value}"` : JSON.stringify(value);
}

// One-shot hashing (Node ≥ 20.12) skips a Hash object per call; older runtimes use the object.
const oneShot = (crypto as { hash?: (algorithm: string, data: string | Uint8Array, encoding: "hex") => string }).hash;

export function sha256Hex(data: string | Uint8Array): string {
  return oneShot ? oneShot("sha256", data, "hex") : crypto.createHash("sha256").update(data).digest("hex");
}
