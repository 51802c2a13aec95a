/**
 * Size limits on tool arguments that hold whatever a tool's schema says: total size,
 * nesting depth, string length and array length, from the policy's `limits`. One
 * iterative pass (deep nesting cannot overflow the stack) that stops at the first
 * problem. Keys named `__proto__` are refused at any depth: JSON.parse makes them own
 * properties, which turn into prototype changes if any code later merges objects.
 */
import type { LimitsPolicy } from "./policy-types.js";

export type LimitVerdict = { ok: true } | { ok: false; message: string };

type Segment = string | number;

interface Frame {
  node: object;
  depth: number;
  parent: Frame | undefined;
  segment: Segment | undefined;
}

const FORBIDDEN_KEY = "__proto__";

/**
 * Checks `args` against the limits. `knownBytes` is the size of the serialized
 * arguments when the caller already has it (the transport read them); otherwise the
 * size is counted during the walk as UTF-8 bytes of the compact JSON form (string
 * escapes aside).
 */
export function checkArgumentLimits(args: unknown, limits: LimitsPolicy, knownBytes?: number): LimitVerdict {
  const { max_argument_bytes: maxBytes, max_depth: maxDepth, max_string_length: maxString, max_array_length: maxArray } = limits;
  // NaN or a negative limit would let everything through: refuse instead.
  if (!(maxBytes >= 0 && maxDepth >= 0 && maxString >= 0 && maxArray >= 0)) {
    return refuse("the argument limits in the policy are not valid numbers, so no call can be checked");
  }
  if (knownBytes !== undefined && knownBytes > maxBytes) return tooLarge(knownBytes, maxBytes);
  return new LimitWalk(limits, knownBytes === undefined).run(args);
}

const WITHIN_LIMITS: LimitVerdict = Object.freeze({ ok: true });

/** One walk's state, in an object rather than closures: it runs on every call. */
class LimitWalk {
  private bytes = 0;
  // Containers still to walk, last in first out: the bottom one in a field, the rest in
  // an array made on first use (most arguments hold no container below the root).
  private bottom: Frame | undefined;
  private stack: Frame[] | undefined;

  constructor(
    private readonly limits: LimitsPolicy,
    private readonly countBytes: boolean,
  ) {}

  run(args: unknown): LimitVerdict {
    const { max_argument_bytes: maxBytes, max_string_length: maxString, max_array_length: maxArray } = this.limits;
    const countBytes = this.countBytes;
    const first = this.visit(args, undefined, undefined);
    if (first !== undefined) return first;
    for (let frame = this.pop(); frame !== undefined; frame = this.pop()) {
      const node = frame.node;
      if (Array.isArray(node)) {
        if (node.length > maxArray) {
          return refuse(`${render(frame.parent, frame.segment)} has ${node.length} items; at most ${maxArray} are allowed`);
        }
        if (countBytes) this.bytes += node.length === 0 ? 2 : node.length + 1;
        for (let i = 0; i < node.length; i++) {
          const problem = this.visit(node[i], frame, i);
          if (problem !== undefined) return problem;
        }
        continue;
      }
      const keys = Object.keys(node);
      if (countBytes) this.bytes += keys.length === 0 ? 2 : keys.length + 1;
      for (const key of keys) {
        if (key === FORBIDDEN_KEY) {
          return refuse(`${render(frame, key)} is not allowed: the key "__proto__" is refused anywhere in arguments`);
        }
        if (key.length > maxString) {
          return refuse(`a key in ${render(frame.parent, frame.segment)} is ${key.length} characters long; at most ${maxString} are allowed`);
        }
        // Quotes and the colon.
        if (countBytes) this.bytes += Buffer.byteLength(key, "utf8") + 3;
        const problem = this.visit((node as Record<string, unknown>)[key], frame, key);
        if (problem !== undefined) return problem;
      }
    }
    // Brackets and commas are counted when a container is opened; check them too.
    if (countBytes && this.bytes > maxBytes) return tooLarge(this.bytes, maxBytes);
    return WITHIN_LIMITS;
  }

  private push(frame: Frame): void {
    if (this.bottom === undefined && (this.stack === undefined || this.stack.length === 0)) this.bottom = frame;
    else (this.stack ??= []).push(frame);
  }

  private pop(): Frame | undefined {
    if (this.stack !== undefined && this.stack.length > 0) return this.stack.pop();
    const frame = this.bottom;
    this.bottom = undefined;
    return frame;
  }

  /** Checks one value; returns a refusal, or undefined (containers are queued). */
  private visit(value: unknown, parent: Frame | undefined, segment: Segment | undefined): LimitVerdict | undefined {
    const { max_argument_bytes: maxBytes, max_depth: maxDepth, max_string_length: maxString } = this.limits;
    const countBytes = this.countBytes;
    switch (typeof value) {
      case "string":
        if (value.length > maxString) {
          return refuse(`${render(parent, segment)} is ${value.length} characters long; at most ${maxString} are allowed`);
        }
        if (countBytes) this.bytes += Buffer.byteLength(value, "utf8") + 2;
        break;
      case "number":
        if (!Number.isFinite(value)) return refuse(`${render(parent, segment)} is not a finite number`);
        if (countBytes) this.bytes += String(value).length;
        break;
      case "boolean":
        if (countBytes) this.bytes += value ? 4 : 5;
        break;
      case "object": {
        if (value === null) {
          if (countBytes) this.bytes += 4;
          break;
        }
        const depth = (parent?.depth ?? 0) + 1;
        if (depth > maxDepth) {
          return refuse(`${render(parent, segment)} is nested too deeply (more than ${maxDepth} levels)`);
        }
        this.push({ node: value, depth, parent, segment });
        break;
      }
      case "undefined":
      case "bigint":
      case "function":
      case "symbol":
        return refuse(`${render(parent, segment)} is not a JSON value`);
    }
    if (countBytes && this.bytes > maxBytes) return tooLarge(this.bytes, maxBytes, true);
    return undefined;
  }
}

function refuse(reason: string): LimitVerdict {
  return { ok: false, message: `Arguments exceed the server's limits: ${reason}.` };
}

function tooLarge(bytes: number, max: number, partial = false): LimitVerdict {
  const size = partial ? `more than ${max} bytes` : `${bytes} bytes`;
  return refuse(`they are ${size} when serialized; at most ${max} bytes are allowed`);
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const SHOWN_HEAD = 8;
const SHOWN_TAIL = 4;
const KEY_PREVIEW = 40;

/** `arguments.a[0]["b c"]`, shortened in the middle when the path is long. */
function render(parent: Frame | undefined, segment: Segment | undefined): string {
  const segments: Segment[] = segment === undefined ? [] : [segment];
  for (let frame = parent; frame?.segment !== undefined; frame = frame.parent) segments.push(frame.segment);
  segments.reverse();
  const parts = segments.map((s) => {
    if (typeof s === "number") return `[${s}]`;
    const key = s.length > KEY_PREVIEW ? `${s.slice(0, KEY_PREVIEW)}...` : s;
    return IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
  });
  const shown = parts.length > SHOWN_HEAD + SHOWN_TAIL ? [...parts.slice(0, SHOWN_HEAD), "...", ...parts.slice(-SHOWN_TAIL)] : parts;
  return `arguments${shown.join("")}`;
}
