/**
 * A value's JSON text, kept beside the value when one layer has serialized it and a
 * later one needs the same text: an audited tool result is serialized for its digest,
 * and the response that carries it reuses that text instead of serializing it again
 * (for a large result, a whole serialization saved). The digest then also covers exactly
 * the bytes the client receives.
 *
 * Kept in a WeakMap, so the value itself is unchanged (nothing a client, a schema or a
 * test sees) and the text lives as long as the value. Only large texts are kept: a WeakMap
 * entry costs more than serializing a small value again (which gives the same text).
 * Only for values that are final: a value changed after `serializeOnce` would be sent as
 * it was.
 */
const texts = new WeakMap<object, string>();

/** Texts shorter than this are made again when needed rather than kept. */
export const KEEP_TEXT_MIN_LENGTH = 16 * 1024;

/** JSON.stringify(value), remembered for `jsonTextOf` when it is large. */
export function serializeOnce(value: object): string {
  const text = JSON.stringify(value);
  if (text.length >= KEEP_TEXT_MIN_LENGTH) texts.set(value, text);
  else texts.delete(value); // a text kept from before would be stale
  return text;
}

/** The text `serializeOnce` kept for this value, if it kept one. */
export function jsonTextOf(value: unknown): string | undefined {
  return typeof value === "object" && value !== null ? texts.get(value) : undefined;
}

/**
 * JSON.stringify's text of a parsed JSON value, also for one nested deeper than JSON.stringify's
 * recursion can go (it throws a RangeError there): that one is written with a stack instead.
 */
export function jsonTextAnyDepth(value: object): string {
  try {
    return JSON.stringify(value);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    return jsonTextWithoutRecursion(value);
  }
}

/** A literal piece of JSON text on the serializer's stack, as opposed to a value still to write. */
class JsonToken {
  constructor(readonly text: string) {}
}

/**
 * JSON.stringify's text of a parsed JSON value, written with a stack instead of recursion,
 * so that arguments nested deeper than JSON.stringify can go still get their true digest.
 */
export function jsonTextWithoutRecursion(value: unknown): string {
  let out = "";
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (item instanceof JsonToken) {
      out += item.text;
    } else if (Array.isArray(item)) {
      out += "[";
      stack.push(new JsonToken("]"));
      for (let i = item.length - 1; i >= 0; i--) {
        stack.push(item[i] === undefined ? null : item[i]);
        if (i > 0) stack.push(new JsonToken(","));
      }
    } else if (typeof item === "object" && item !== null) {
      out += "{";
      stack.push(new JsonToken("}"));
      const record = item as Record<string, unknown>;
      const keys = Object.keys(record).filter((key) => record[key] !== undefined);
      for (let i = keys.length - 1; i >= 0; i--) {
        stack.push(record[keys[i]!], new JsonToken(`${JSON.stringify(keys[i])}:`));
        if (i > 0) stack.push(new JsonToken(","));
      }
    } else {
      out += JSON.stringify(item) ?? "null";
    }
  }
  return out;
}
