/**
 * Property-based fuzzing of the JSON-RPC layer over real pipes. Thousands of generated
 * lines (valid requests, broken envelopes, notifications, cancellations, duplicate and
 * reused ids, batches, random and invalid bytes, deep nesting, huge numbers, long
 * strings), written in random chunks, each with the answer JSON-RPC 2.0 and MCP require
 * of it: a request whose id can be read is answered exactly once with that id (a second
 * request with an id in flight gets an error without the id instead), notifications and
 * responses never, a line that is not JSON with -32700 and any other unusable message
 * with -32600 (no id when it cannot be read), in line order; the server never crashes,
 * and every stdout line is one valid message. Runs are seeded: the seed is in the suite
 * name and in every failure, FUZZ_SEED=<n> replays a run and FUZZ_LINES=<n> sets its
 * size. The last suite pins the deviations the fuzzer found (fixed), each with its input.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { isUtf8 } from "node:buffer";
import { randomInt } from "node:crypto";
import { once } from "node:events";
import { setImmediate as nextTick, setTimeout as sleep } from "node:timers/promises";
import { ServerProcess, type Message } from "../helpers/server-process.js";
import { TEST_SERVER_ENTRY, exchange, responses } from "../helpers/e2e.js";
import { assertServerMessage } from "../helpers/mcp-schema.js";

const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const METHOD_NOT_FOUND = -32601;
const INVALID_PARAMS = -32602;

/** A rate limit no run reaches: refusals are then about the call itself. */
const POLICY = 'version: "1.0"\ntools:\n  rate_limits:\n    default: 1000000\n';
const SEED = readInteger("FUZZ_SEED", randomInt(2 ** 31));
const TOTAL_LINES = readInteger("FUZZ_LINES", 5000);
const REPLAY = `seed ${SEED}; replay with FUZZ_SEED=${SEED}`;
/** Tools that run for minutes with valid arguments (`stubborn` even ignores cancellation): never called. */
const LONG_RUNNING = new Set(["slow", "stubborn", "progress"]);
/** Tools that stop the server by design (`stray` with kind "exception" throws outside every caller): never called. */
const STOPS_THE_SERVER = new Set(["stray"]);
const KNOWN_METHODS = new Set(["initialize", "ping", "tools/list", "tools/call", "logging/setLevel"]);
const LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];
const SENTINEL = "fuzz-sentinel-";
const DUPLICATE_TAG = "(id of an earlier request of the round)";

function readInteger(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, not ${JSON.stringify(text)}`);
  return value;
}

// ---------------------------------------------------------------------------------------
// Randomness and JSON text

/** mulberry32: small, fast and good enough to drive a fuzzer; one seed, one run. */
class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  weighted<T>(table: ReadonlyArray<readonly [number, T]>): T {
    let total = 0;
    for (const [weight] of table) total += weight;
    let roll = this.next() * total;
    for (const [weight, item] of table) {
      if (roll < weight) return item;
      roll -= weight;
    }
    return table[table.length - 1]![1];
  }

  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}

/** JSON text written as is (huge numbers, deep nesting): no expectation depends on its value. */
class Raw {
  constructor(readonly text: string) {}
}

/** An object written with its members in this order; a repeated name is kept (JSON.parse keeps the last). */
class Members {
  constructor(readonly members: ReadonlyArray<readonly [string, unknown]>) {}
}

/** Writes values as JSON text in random but equivalent forms: spacing, escapes, number spellings. */
class JsonWriter {
  constructor(private readonly rng: Rng) {}

  write(value: unknown): string {
    return this.space() + this.value(value) + this.space();
  }

  private value(value: unknown): string {
    if (value === null) return "null";
    if (value instanceof Raw) return value.text;
    if (value instanceof Members) {
      const parts = value.members.map(([name, item]) => `${this.space()}${this.string(name)}${this.space()}:${this.space()}${this.value(item)}${this.space()}`);
      return `{${parts.join(",") || this.space()}}`;
    }
    if (Array.isArray(value)) {
      const parts = value.map((item) => `${this.space()}${this.value(item)}${this.space()}`);
      return `[${parts.join(",") || this.space()}]`;
    }
    switch (typeof value) {
      case "boolean":
        return String(value);
      case "number":
        return this.number(value);
      case "string":
        return this.string(value);
      default:
        throw new Error(`the fuzzer cannot write ${typeof value}`);
    }
  }

  /** JSON whitespace, now and then: never a line feed. */
  private space(): string {
    return this.rng.chance(0.04) ? this.rng.pick([" ", "\t", "\r", "  ", " \r\t "]) : "";
  }

  private number(value: number): string {
    if (!Number.isFinite(value)) throw new Error("JSON has no non-finite numbers: use Raw");
    if (Object.is(value, -0)) return "-0";
    if (Number.isSafeInteger(value) && this.rng.chance(0.25)) {
      return `${value}${this.rng.pick([".0", "e0", "E+0", ".000e0", "E-0"])}`;
    }
    return JSON.stringify(value);
  }

  private string(text: string): string {
    let out = '"';
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
        const low = text.charCodeAt(i + 1);
        if (low >= 0xdc00 && low <= 0xdfff && this.rng.chance(0.7)) {
          out += text.slice(i, i + 2);
          i++;
          continue;
        }
      }
      if (code === 0x22) out += this.rng.chance(0.8) ? '\\"' : this.escape(code);
      else if (code === 0x5c) out += this.rng.chance(0.8) ? "\\\\" : this.escape(code);
      else if (code < 0x20 || (code >= 0xd800 && code <= 0xdfff)) out += SHORT_ESCAPES.get(code) !== undefined && this.rng.chance(0.5) ? SHORT_ESCAPES.get(code)! : this.escape(code);
      else if (code === 0x2f && this.rng.chance(0.3)) out += "\\/";
      else out += this.rng.chance(0.02) ? this.escape(code) : text[i]!;
    }
    return `${out}"`;
  }

  private escape(code: number): string {
    const hex = code.toString(16).padStart(4, "0");
    return `\\u${this.rng.chance(0.5) ? hex : hex.toUpperCase()}`;
  }
}

const SHORT_ESCAPES = new Map<number, string>([
  [0x08, "\\b"],
  [0x09, "\\t"],
  [0x0a, "\\n"],
  [0x0c, "\\f"],
  [0x0d, "\\r"],
]);

const ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_./:#@";
const JSON_CHARS = '"\\/{}[],:';
const UNICODE = ["é", "ß", "日", "本", "\u0301", "\u00a0", "\u2028", "\u2029", "\ufeff", "\ufffd", "\u202e", "\u200b", "\u0085", "\u007f"];
const ASTRAL = ["😀", "𝔘", "\u{10fffd}", "👩‍👩‍👧", "🎉"];
const LONE_SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d"];

type RequestId = string | number;

/** JSON-RPC as MCP narrows it: an id is a string or an integer (one a double holds exactly). */
function isValidId(value: unknown): value is RequestId {
  return typeof value === "string" || (typeof value === "number" && Number.isSafeInteger(value));
}

/** A map key for an id that keeps "1" and 1 apart (and, as JSON does, -0 and 0 together). */
function keyOf(id: RequestId): string {
  return typeof id === "number" ? `n${id}` : `s${id}`;
}

// ---------------------------------------------------------------------------------------
// Lines and what each must produce

/** What the server must write for one line (results of tools are about the tool, not the envelope). */
type Answer = "result" | "error" | number;

type Expect =
  | { kind: "nothing" }
  /** One error response without an id, with this code. */
  | { kind: "anonymous"; code: number }
  /** One response with this id (an error without the id instead when the id is in flight). */
  | { kind: "reply"; id: RequestId; method: string; answer: Answer; cancellable: boolean }
  /** A well-formed notifications/cancelled: nothing, and perhaps no response for its target. */
  | { kind: "cancel"; target: unknown };

interface Line {
  text: Buffer;
  crlf: boolean;
  what: string;
  expect: Expect;
  round: number;
  index: number;
}

type Draft = Pick<Line, "what" | "expect"> & { text: string | Buffer };

interface Call {
  method: string;
  params?: unknown;
  answer: Answer;
  what: string;
}

interface IdRecord {
  id: RequestId;
  /** Lines that carry the id in a request or an envelope the server reads it from. */
  count: number;
  /** A well-formed cancellation may have suppressed a response: only upper bounds hold. */
  weak: boolean;
  lines: Line[];
}

interface ToolInfo {
  name: string;
  properties: Record<string, Record<string, unknown>>;
}

const NOTHING: Expect = { kind: "nothing" };

/**
 * What a line that is not a JSON object must produce, from the JSON and UTF-8 rules alone:
 * nothing for a blank line, -32700 for bytes that are not UTF-8 JSON, -32600 for JSON that
 * is not an object. Undefined for an object (its fields decide; the generator tries again).
 */
function predictNonObject(effective: Buffer): Expect | undefined {
  if (effective.every((byte) => byte === 0x20 || byte === 0x09 || byte === 0x0d)) return NOTHING;
  if (!isUtf8(effective)) return { kind: "anonymous", code: PARSE_ERROR };
  let value: unknown;
  try {
    value = JSON.parse(effective.toString("utf8"));
  } catch {
    return { kind: "anonymous", code: PARSE_ERROR };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return { kind: "anonymous", code: INVALID_REQUEST };
  return undefined;
}

/** The bytes the server parses: the line without its terminator, a CRLF's CR or one trailing CR. */
function effectiveBytes(text: Buffer, crlf: boolean): Buffer {
  if (!crlf && text.length > 0 && text[text.length - 1] === 0x0d) return text.subarray(0, text.length - 1);
  return text;
}

function show(line: Line): string {
  const text = isUtf8(line.text) ? JSON.stringify(line.text.toString("utf8").slice(0, 300)) : `hex ${line.text.subarray(0, 150).toString("hex")}`;
  const size = line.text.length > 300 ? ` (${line.text.length} bytes)` : "";
  return `round ${line.round} line ${line.index} [${line.what}]${line.crlf ? " +CRLF" : ""}: ${text}${size}`;
}

function brief(message: Message | undefined): string {
  return message === undefined ? "nothing" : JSON.stringify(message).slice(0, 300);
}

// ---------------------------------------------------------------------------------------
// The generator

class Fuzzer {
  readonly records = new Map<string, IdRecord>();
  private readonly json: JsonWriter;
  private seq = 0;
  private round = 0;
  private lines: Line[] = [];
  /** Ids of this round's lines, by key: was any of them a request a cancellation could suppress? */
  private roundIds = new Map<string, { id: RequestId; cancellable: boolean }>();
  /** This round's requests that the server answers asynchronously (candidates for a duplicate in flight). */
  private roundAsync: RequestId[] = [];
  /** Ids a cancellation named before any request used them. */
  private reserved: RequestId[] = [];
  /** Ids of earlier rounds whose every request was answered. */
  private readonly settled: RequestId[] = [];
  private readonly settledKeys = new Set<string>();
  private readonly allToolNames: Set<string>;

  constructor(
    private readonly rng: Rng,
    private readonly tools: readonly ToolInfo[],
    allToolNames: readonly string[],
    private readonly cursors: readonly string[],
  ) {
    this.json = new JsonWriter(rng);
    this.allToolNames = new Set(allToolNames);
  }

  /** Generates one round of lines (the first round opens with fixed edge cases). */
  nextRound(size: number): Line[] {
    this.round += 1;
    this.lines = [];
    this.roundIds = new Map();
    this.roundAsync = [];
    this.reserved = [];
    if (this.round === 1) for (const draft of this.edgeCases()) this.add(draft);
    while (this.lines.length < size) this.add(this.draft());
    for (const line of this.lines) {
      if (line.expect.kind !== "reply") continue;
      const record = this.records.get(keyOf(line.expect.id))!;
      if (!record.weak && !this.settledKeys.has(keyOf(record.id))) {
        this.settledKeys.add(keyOf(record.id));
        this.settled.push(record.id);
      }
    }
    return this.lines;
  }

  private add(draft: Draft): void {
    const text = typeof draft.text === "string" ? Buffer.from(draft.text, "utf8") : draft.text;
    assert.equal(text.includes(0x0a), false, `generator bug: a line feed inside ${draft.what}`);
    assert.ok(text.length < 512 * 1024, `generator bug: ${draft.what} is ${text.length} bytes`);
    const line: Line = { ...draft, text, crlf: this.rng.chance(0.15), round: this.round, index: this.lines.length };
    this.lines.push(line);
    const expect = line.expect;
    if (expect.kind === "reply") {
      const key = keyOf(expect.id);
      let record = this.records.get(key);
      if (record === undefined) this.records.set(key, (record = { id: expect.id, count: 0, weak: false, lines: [] }));
      record.count += 1;
      record.lines.push(line);
      const seen = this.roundIds.get(key);
      this.roundIds.set(key, { id: expect.id, cancellable: expect.cancellable || (seen?.cancellable ?? false) });
      if (expect.answer === "result" && (expect.method === "tools/call" || expect.method === "tools/list")) this.roundAsync.push(expect.id);
    } else if (expect.kind === "cancel" && isValidId(expect.target)) {
      const key = keyOf(expect.target);
      // Only a request already read can be cancelled; one of an earlier round is answered by now.
      if (this.roundIds.get(key)?.cancellable) this.records.get(key)!.weak = true;
    }
  }

  private draft(): Draft {
    const make = this.rng.weighted<() => Draft>([
      [30, () => this.request()],
      [4, () => this.duplicate()],
      [1, () => this.reuse()],
      [4, () => this.notification()],
      [4, () => this.malformedNotification()],
      [5, () => this.cancel()],
      [3, () => this.responseShaped()],
      [8, () => this.malformedWithId()],
      [5, () => this.malformedWithoutId()],
      [3, () => this.batch()],
      [2, () => this.nonObject()],
      [7, () => this.predicted("mutated request", () => this.mutate(this.requestText()))],
      [5, () => this.predicted("random bytes", () => this.randomBytes())],
      [2, () => this.predicted("invalid UTF-8", () => this.invalidUtf8())],
      [2, () => this.predicted("syntax error", () => this.syntaxError())],
      [3, () => this.deep()],
      [1, () => this.predicted("blank", () => Buffer.from(this.rng.pick(["", " ", "\t", " \t ", "\r", "\t\r", "   "])))],
    ]);
    return make();
  }

  // -- ids and values ---------------------------------------------------------------------

  /** A new id, unique in the run: integers of several sizes and signs, digit strings, any strings. */
  private freshId(): RequestId {
    const n = ++this.seq;
    switch (this.rng.int(0, 5)) {
      case 0:
        return 1_000_000 + n;
      case 1:
        return -(1_000_000 + n);
      case 2:
        return Number.MAX_SAFE_INTEGER - n;
      case 3:
        return String(1_000_000 + n);
      default:
        // The text after the last "#" is the sequence number: unique whatever comes before it.
        return `${this.rng.chance(0.01) ? this.longString() : this.string(12)}#${n}`;
    }
  }

  private string(max = 16, wellFormed = false): string {
    const length = this.rng.int(0, max);
    let text = "";
    while (text.length < length) text += this.char(wellFormed);
    return text;
  }

  private nonEmptyString(max = 16): string {
    const text = this.string(max);
    return text === "" ? this.rng.pick(ASCII.split("")) : text;
  }

  private char(wellFormed: boolean): string {
    const pool = this.rng.weighted<readonly string[] | string>([
      [60, ASCII],
      [8, JSON_CHARS],
      [6, "control"],
      [10, UNICODE],
      [8, ASTRAL],
      [wellFormed ? 0 : 5, LONE_SURROGATES],
    ]);
    if (pool === "control") return String.fromCharCode(this.rng.int(0, 0x1f));
    return typeof pool === "string" ? pool[this.rng.int(0, pool.length - 1)]! : this.rng.pick(pool);
  }

  /** About 1 KiB to 150 KiB of JSON text (a repeated random chunk). */
  private longString(): string {
    const chunk = this.string(40) || "x";
    const bytes = Math.ceil(Buffer.byteLength(JSON.stringify(chunk)) * 1.3);
    return chunk.repeat(Math.ceil(this.rng.int(1024, 150 * 1024) / bytes));
  }

  private number(): number {
    return this.rng.pick([0, -0, 1, -1, this.rng.int(-1e6, 1e6), this.rng.next() * 1e6, 1e308, -1e308, 5e-324, 2 ** 53, 2 ** 53 + 2, 0.1, 1e21, -1.5e-7]);
  }

  /** Numbers beyond a double, or with thousands of digits. */
  private hugeNumber(): Raw {
    const digits = (count: number) => `${this.rng.int(1, 9)}${"0123456789".repeat(Math.ceil(count / 10)).slice(0, count - 1)}`;
    return new Raw(
      this.rng.pick([
        "1e999",
        "-1e999",
        "1e-999",
        "-0.0",
        "123456789012345678901234567890",
        `${digits(this.rng.int(20, 5000))}`,
        `-${digits(this.rng.int(20, 5000))}`,
        `0.${digits(this.rng.int(20, 2000))}e-400`,
        `${digits(30)}E+${this.rng.int(300, 99999)}`,
      ]),
    );
  }

  private value(depth = 0): unknown {
    switch (this.rng.int(0, depth >= 3 ? 4 : 6)) {
      case 0:
        return null;
      case 1:
        return this.rng.chance(0.5);
      case 2:
        return this.number();
      case 3:
        return this.string();
      case 4:
        return this.rng.chance(0.1) ? this.hugeNumber() : this.rng.chance(0.02) ? this.longString() : this.string(4);
      case 5:
        return Array.from({ length: this.rng.int(0, 4) }, () => this.value(depth + 1));
      default:
        return this.object(depth + 1);
    }
  }

  private object(depth = 0, size = 4): Members {
    return new Members(Array.from({ length: this.rng.int(0, size) }, () => [this.key(), this.value(depth)] as const));
  }

  private key(): string {
    return this.rng.chance(0.3)
      ? this.rng.pick(["__proto__", "constructor", "prototype", "toString", "valueOf", "hasOwnProperty", "_meta", "", "id", "method", "jsonrpc", "params", "text", "name", "arguments", "progressToken", "requestId"])
      : this.string(10);
  }

  /** Something that is not a JSON object, for where an object is required. */
  private nonObject(): Draft;
  private nonObject(asValue: true): unknown;
  private nonObject(asValue?: true): unknown {
    const value = this.rng.pick<() => unknown>([
      () => null,
      () => this.rng.chance(0.5),
      () => this.number(),
      () => this.string(),
      () => this.hugeNumber(),
      () => [],
      () => [this.value(2)],
      () => new Raw(this.deepText("array", this.depth())),
    ])();
    if (asValue) return value;
    return { text: this.json.write(value), what: "JSON that is not an object", expect: { kind: "anonymous", code: INVALID_REQUEST } };
  }

  private depth(): number {
    return this.rng.weighted([
      [5, this.rng.int(1, 100)],
      [3, this.rng.int(100, 5000)],
      [2, this.rng.int(5000, 30_000)],
    ]);
  }

  private deepText(kind: "array" | "object", depth: number): string {
    return kind === "array" ? "[".repeat(depth) + "]".repeat(depth) : '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
  }

  /**
   * An envelope: the fields in random order, now and then an earlier duplicate of one
   * (JSON.parse keeps the last) or an extra member no rule is about.
   */
  private envelope(fields: Array<readonly [string, unknown]>): Members {
    const members: Array<readonly [string, unknown]> = [];
    for (const [name, value] of this.rng.shuffle(fields)) {
      if (this.rng.chance(0.04)) members.push([name, this.decoy(name)]);
      members.push([name, value]);
    }
    if (this.rng.chance(0.1)) {
      const extra = this.rng.pick(["extra", "_meta", "ID", "Method", "JSONRPC", "Params", "", "__proto__", "x-trace"]);
      members.splice(this.rng.int(0, members.length), 0, [extra, this.value(1)]);
    }
    return new Members(members);
  }

  private decoy(name: string): unknown {
    switch (name) {
      case "jsonrpc":
        return this.badJsonrpc();
      case "id":
        return this.rng.chance(0.5) ? this.freshId() : this.rng.pick(INVALID_IDS);
      default:
        return this.value(1);
    }
  }

  private badJsonrpc(): unknown {
    return this.rng.pick<unknown>(["1.0", "2", 2, 2.5, "2.0 ", " 2.0", "2.00", "", null, true, new Members([]), ["2.0"], "２.０", "2.0\u0000", "2.0\ufeff"]);
  }

  // -- requests -----------------------------------------------------------------------------

  private request(forcedId?: RequestId): Draft {
    const id = forcedId ?? (this.reserved.length > 0 && this.rng.chance(0.5) ? this.reserved.shift()! : this.freshId());
    const call = this.rng.weighted<() => Call>([
      [6, () => this.ping()],
      [4, () => this.list()],
      [12, () => this.callTool()],
      [4, () => this.callBadTool()],
      [4, () => this.setLevel()],
      [4, () => this.unknownMethod()],
      [1, () => ({ method: "initialize", params: this.initializeParams(), answer: "error", what: "initialize again" })],
      [1, () => this.requestShapedCancel()],
    ])();
    const fields: Array<readonly [string, unknown]> = [
      ["jsonrpc", "2.0"],
      ["id", id],
      ["method", call.method],
    ];
    if (call.params !== undefined) fields.push(["params", call.params]);
    return {
      text: this.json.write(this.envelope(fields)),
      what: call.what,
      expect: { kind: "reply", id, method: call.method, answer: call.answer, cancellable: call.method !== "ping" },
    };
  }

  /** The text of a valid request (for mutations): its id is fresh and never registered. */
  private requestText(): string {
    const saved = this.reserved;
    this.reserved = [];
    try {
      return this.request().text as string;
    } finally {
      this.reserved = saved;
    }
  }

  private ping(): Call {
    const params = this.rng.pick<() => unknown>([
      () => undefined,
      () => new Members([]),
      () => new Members([["_meta", this.object(1)]]),
      () => this.object(),
    ])();
    return { method: "ping", params, answer: "result", what: "ping" };
  }

  private list(): Call {
    const roll = this.rng.int(0, 9);
    if (roll < 3) return { method: "tools/list", params: this.rng.chance(0.5) ? undefined : new Members([]), answer: "result", what: "tools/list" };
    if (roll < 6 && this.cursors.length > 0) {
      return { method: "tools/list", params: new Members([["cursor", this.rng.pick(this.cursors)]]), answer: "result", what: "tools/list with a real cursor" };
    }
    return { method: "tools/list", params: new Members([["cursor", this.badCursor()]]), answer: INVALID_PARAMS, what: "tools/list with an invalid cursor" };
  }

  private badCursor(): unknown {
    const real = this.cursors.length > 0 ? this.rng.pick(this.cursors) : "5.AAAAAAAAAAAAAAAAAAAAAA";
    const candidates: unknown[] = [null, 0, 5, true, new Members([]), [real], "", this.string(30), `${real}=`, ` ${real}`, real.toUpperCase(), `${real.slice(0, -1)}`, `0${real}`, `99999.${real.split(".")[1] ?? ""}`];
    const at = this.rng.int(0, real.length - 1);
    const swapped = real[at] === "A" ? "B" : "A";
    candidates.push(real.slice(0, at) + swapped + real.slice(at + 1));
    const bad = this.rng.pick(candidates);
    return typeof bad === "string" && this.cursors.includes(bad) ? `x${bad}` : bad;
  }

  private callTool(): Call {
    const tool = this.rng.pick(this.tools);
    const roll = this.rng.int(0, 9);
    const members: Array<readonly [string, unknown]> = [["name", tool.name]];
    let answer: Answer = "result";
    let what = `tools/call ${tool.name}`;
    if (roll === 0) what += " (no arguments)";
    else if (roll === 1) members.push(["arguments", new Members([])]);
    else if (roll <= 4) members.push(["arguments", this.guidedArguments(tool)]);
    else if (roll === 5) members.push(["arguments", this.object()]);
    else if (roll === 6) {
      members.push(["arguments", new Members([[this.key(), this.rng.chance(0.5) ? new Raw(this.deepText(this.rng.pick(["array", "object"]), this.depth())) : this.hugeNumber()]])]);
      what += " (deep or huge arguments)";
    } else if (roll === 7) {
      members.push(["arguments", new Members([["text", this.longString()]])]);
      what += " (long text)";
    } else if (roll >= 8) {
      members.push(["arguments", this.nonObject(true)]);
      answer = INVALID_PARAMS;
      what += " (arguments not an object)";
    }
    if (this.rng.chance(0.1)) members.push(["_meta", new Members([["progressToken", this.rng.chance(0.5) ? this.string(8) : this.rng.int(-5, 1e6)]])]);
    return { method: "tools/call", params: new Members(this.rng.shuffle(members)), answer, what };
  }

  /** Arguments named after the tool's schema, with values of the right type more often than not. */
  private guidedArguments(tool: ToolInfo): Members {
    const members: Array<readonly [string, unknown]> = [];
    for (const [name, schema] of Object.entries(tool.properties)) {
      if (this.rng.chance(0.3)) continue;
      const options = Array.isArray(schema.enum) ? (schema.enum as unknown[]) : undefined;
      let value: unknown;
      if (options !== undefined && this.rng.chance(0.7)) value = this.rng.pick(options);
      else if (schema.type === "string") value = this.rng.chance(0.8) ? this.string(30) : this.value(1);
      else if (schema.type === "integer") value = this.rng.chance(0.7) ? this.rng.int(-2, 12) : this.value(1);
      else if (schema.type === "array") value = Array.from({ length: this.rng.int(0, 3) }, () => this.string(8));
      else value = this.value(1);
      members.push([name, value]);
    }
    if (this.rng.chance(0.15)) members.push([this.key(), this.value(1)]);
    return new Members(members);
  }

  private callBadTool(): Call {
    const members: Array<readonly [string, unknown]> = [];
    const roll = this.rng.int(0, 6);
    let what = "tools/call of an unknown tool";
    if (roll === 0) return { method: "tools/call", params: undefined, answer: INVALID_PARAMS, what: "tools/call without params" };
    if (roll === 1) what = "tools/call without a name";
    else if (roll === 2) members.push(["name", ""]);
    else if (roll === 3) {
      members.push(["name", this.rng.pick<unknown>([1, null, true, new Members([]), [this.rng.pick(this.tools).name], new Members([["toString", "echo"]])])]);
      what = "tools/call with a name that is not a string";
    } else members.push(["name", this.unknownToolName()]);
    if (this.rng.chance(0.5)) members.push(["arguments", this.rng.chance(0.5) ? this.object() : this.value()]);
    return { method: "tools/call", params: new Members(members), answer: INVALID_PARAMS, what };
  }

  private unknownToolName(): string {
    for (;;) {
      const real = this.rng.pick(this.tools).name;
      const name = this.rng.pick<() => string>([
        () => `${real} `,
        () => ` ${real}`,
        () => real.toUpperCase(),
        () => `${real}\u0000`,
        () => `${real}/`,
        () => real.slice(0, -1),
        () => `${real}\u200b`,
        () => `../${real}`,
        () => `${real}😀`,
        () => this.nonEmptyString(),
        () => this.longString(),
        () => "a".repeat(99) + "😀",
      ])();
      if (!this.allToolNames.has(name)) return name;
    }
  }

  private setLevel(): Call {
    const roll = this.rng.int(0, 9);
    if (roll < 5) return { method: "logging/setLevel", params: new Members([["level", this.rng.pick(LOG_LEVELS)]]), answer: "result", what: "logging/setLevel" };
    if (roll === 5) return { method: "logging/setLevel", params: undefined, answer: INVALID_PARAMS, what: "logging/setLevel without params" };
    let level: unknown;
    do {
      level = this.rng.pick<unknown>(["warn", "WARNING", "Debug", "", " info", "info ", "fatal", "trace", 0, 3, null, true, ["debug"], new Members([]), this.string(8)]);
    } while (typeof level === "string" && LOG_LEVELS.includes(level));
    return { method: "logging/setLevel", params: new Members(roll === 6 ? [] : [["level", level]]), answer: INVALID_PARAMS, what: "logging/setLevel with an invalid level" };
  }

  private unknownMethod(): Call {
    let method: string;
    do {
      method = this.rng.pick<() => string>([
        () =>
          this.rng.pick([
            "Ping",
            "ping ",
            " ping",
            "PING",
            "ping\u0000",
            "tools/list ",
            "tools/List",
            "tools/call/",
            "tools",
            "logging/setlevel",
            "resources/list",
            "resources/read",
            "prompts/list",
            "completion/complete",
            "sampling/createMessage",
            "roots/list",
            "elicitation/create",
            "tasks/get",
            "rpc.discover",
            "__proto__",
            "constructor",
            "toString",
            "hasOwnProperty",
            "notifications/initialized",
            "tools/call\u200b",
          ]),
        () => this.nonEmptyString(),
        () => this.nonEmptyString(120),
        () => (this.rng.chance(0.1) ? this.longString() : this.nonEmptyString(3)),
      ])();
    } while (KNOWN_METHODS.has(method));
    return { method, params: this.rng.chance(0.5) ? undefined : this.object(), answer: METHOD_NOT_FOUND, what: "an unknown method" };
  }

  private initializeParams(): unknown {
    return this.rng.chance(0.5)
      ? new Members([
          ["protocolVersion", this.rng.pick(["2025-11-25", "2024-11-05", "1999-01-01", 7])],
          ["capabilities", new Members([])],
          ["clientInfo", new Members([["name", this.string()], ["version", "1"]])],
        ])
      : this.rng.pick([undefined, this.object()]);
  }

  /** notifications/cancelled sent as a request (with an id): an unknown method, and it cancels nothing. */
  private requestShapedCancel(): Call {
    const target = this.earlierId() ?? this.freshId();
    return { method: "notifications/cancelled", params: new Members([["requestId", target]]), answer: METHOD_NOT_FOUND, what: "notifications/cancelled sent with an id" };
  }

  private earlierId(): RequestId | undefined {
    if (this.roundIds.size === 0) return undefined;
    return this.rng.pick([...this.roundIds.values()]).id;
  }

  /** A request with the id of one of this round's requests that may still be in flight. */
  private duplicate(): Draft {
    if (this.roundAsync.length === 0) return this.request();
    const draft = this.request(this.rng.pick(this.roundAsync));
    return { ...draft, what: `${draft.what} ${DUPLICATE_TAG}` };
  }

  /** A request with the id of an earlier round's request, answered by now. */
  private reuse(): Draft {
    if (this.settled.length === 0) return this.request();
    const draft = this.request(this.rng.pick(this.settled));
    return { ...draft, what: `${draft.what} (id of an answered request)` };
  }

  // -- notifications ------------------------------------------------------------------------

  private notificationMethod(): string {
    for (;;) {
      const method = this.rng.chance(0.5)
        ? this.rng.pick(["notifications/initialized", "notifications/progress", "notifications/roots/list_changed", "notifications/message", "ping", "tools/call", "initialize", "tools/list", "notifications/x"])
        : this.nonEmptyString(24);
      if (method !== "notifications/cancelled") return method;
    }
  }

  private notification(): Draft {
    const method = this.notificationMethod();
    const fields: Array<readonly [string, unknown]> = [
      ["jsonrpc", "2.0"],
      ["method", method],
    ];
    if (this.rng.chance(0.6)) fields.push(["params", method === "tools/call" ? new Members([["name", "spy_target"]]) : this.object()]);
    return { text: this.json.write(this.envelope(fields)), what: "a notification", expect: NOTHING };
  }

  /** A message shaped as a notification (a method, no id) that breaks a rule: dropped, never answered. */
  private malformedNotification(): Draft {
    const cancel = this.rng.chance(0.3);
    const method = cancel ? "notifications/cancelled" : this.notificationMethod();
    const fields: Array<readonly [string, unknown]> = [["method", method]];
    const badJsonrpc = this.rng.chance(0.6);
    if (badJsonrpc) {
      if (this.rng.chance(0.7)) fields.push(["jsonrpc", this.badJsonrpc()]);
    } else fields.push(["jsonrpc", "2.0"]);
    if (!badJsonrpc || this.rng.chance(0.4)) fields.push(["params", this.rng.pick<unknown>([null, [], [this.earlierId() ?? 1], "params", 7, true])]);
    else if (cancel) fields.push(["params", new Members([["requestId", this.earlierId() ?? this.freshId()]])]);
    return { text: this.json.write(this.envelope(fields)), what: `a malformed notification${cancel ? " (cancel)" : ""}`, expect: NOTHING };
  }

  private cancel(): Draft {
    const target = this.rng.weighted<() => unknown>([
      [30, () => this.earlierId() ?? this.freshId()],
      [15, () => {
        const id = this.freshId();
        this.reserved.push(id);
        return id;
      }],
      [10, () => {
        const id = this.earlierId();
        if (typeof id === "number") return String(id);
        return typeof id === "string" && /^-?[0-9]{1,15}$/.test(id) ? Number(id) : this.freshId();
      }],
      [10, () => (this.settled.length > 0 ? this.rng.pick(this.settled) : this.freshId())],
      [15, () => this.rng.pick(INVALID_IDS)],
      [5, () => undefined],
      [15, () => this.freshId()],
    ])();
    const fields: Array<readonly [string, unknown]> = [
      ["jsonrpc", "2.0"],
      ["method", "notifications/cancelled"],
    ];
    const params: Array<readonly [string, unknown]> = [];
    if (target !== undefined) params.push(["requestId", target]);
    if (this.rng.chance(0.5)) params.push(["reason", this.rng.chance(0.8) ? this.string(40) : this.value(1)]);
    if (params.length > 0 || this.rng.chance(0.5)) fields.push(["params", new Members(params)]);
    return { text: this.json.write(this.envelope(fields)), what: "notifications/cancelled", expect: { kind: "cancel", target } };
  }

  /** A response (as if to a request of the server's): never answered, whatever its id or its "jsonrpc". */
  private responseShaped(): Draft {
    const fields: Array<readonly [string, unknown]> = [];
    const jsonrpc = this.rng.int(0, 9);
    if (jsonrpc < 7) fields.push(["jsonrpc", "2.0"]);
    else if (jsonrpc < 9) fields.push(["jsonrpc", this.badJsonrpc()]); // else none at all
    const id = this.rng.pick<() => unknown>([() => this.freshId(), () => this.earlierId() ?? this.freshId(), () => null, () => this.rng.pick(INVALID_IDS), () => undefined])();
    if (id !== undefined) fields.push(["id", id]);
    const error = new Members([
      ["code", this.rng.pick([-32603, -1, 0, 1.5, "x"])],
      ["message", this.string()],
    ]);
    const shape = this.rng.int(0, 2);
    if (shape !== 1) fields.push(["result", this.rng.chance(0.7) ? this.object() : this.value()]);
    if (shape !== 0) fields.push(["error", this.rng.chance(0.7) ? error : this.value()]);
    return { text: this.json.write(this.envelope(fields)), what: "a response", expect: NOTHING };
  }

  // -- broken envelopes -----------------------------------------------------------------------

  /** An envelope the server can read the id of, that breaks a rule: -32600 (or another error) with the id. */
  private malformedWithId(): Draft {
    const id = this.freshId();
    const faults = { jsonrpc: this.rng.chance(0.4), method: this.rng.chance(0.4), params: this.rng.chance(0.4) };
    if (!faults.jsonrpc && !faults.method && !faults.params) faults[this.rng.pick(["jsonrpc", "method", "params"] as const)] = true;
    const fields: Array<readonly [string, unknown]> = [["id", id]];
    let definite = false;
    const why: string[] = [];
    if (!faults.jsonrpc) fields.push(["jsonrpc", "2.0"]);
    else {
      definite = true;
      why.push("jsonrpc");
      if (this.rng.chance(0.7)) fields.push(["jsonrpc", this.badJsonrpc()]);
    }
    if (!faults.method) fields.push(["method", this.rng.chance(0.5) ? this.rng.pick([...KNOWN_METHODS]) : this.nonEmptyString()]);
    else {
      why.push("method");
      const method = this.rng.pick<unknown>([undefined, 1, null, true, new Members([]), ["ping"], ""]);
      // A method "" is a string: JSON-RPC leaves open whether that is -32600 or -32601.
      if (method !== "") definite = true;
      if (method !== undefined) fields.push(["method", method]);
    }
    if (faults.params) {
      why.push("params");
      const params = this.rng.pick<unknown>([null, "params", 7, true, [], [1, 2], [new Members([])]]);
      // Positional params are valid JSON-RPC (-32602 from the method would do); other non-objects are not.
      if (!Array.isArray(params)) definite = true;
      fields.push(["params", params]);
    } else if (this.rng.chance(0.4)) fields.push(["params", this.object()]);
    return {
      text: this.json.write(this.envelope(fields)),
      what: `a broken envelope (${why.join(", ")}) with a valid id`,
      expect: { kind: "reply", id, method: "", answer: definite ? INVALID_REQUEST : "error", cancellable: false },
    };
  }

  /** An envelope whose id cannot be used: -32600 without an id, whatever else is wrong. */
  private malformedWithoutId(): Draft {
    const fields: Array<readonly [string, unknown]> = [["id", this.rng.pick(INVALID_IDS)]];
    const jsonrpc = this.rng.int(0, 9);
    if (jsonrpc < 7) fields.push(["jsonrpc", "2.0"]);
    else if (jsonrpc < 9) fields.push(["jsonrpc", this.badJsonrpc()]);
    const method = this.rng.int(0, 9);
    if (method < 7) fields.push(["method", this.rng.chance(0.5) ? this.rng.pick([...KNOWN_METHODS]) : this.nonEmptyString()]);
    else if (method < 9) fields.push(["method", this.rng.pick<unknown>([1, null, "", ["ping"]])]);
    if (this.rng.chance(0.3)) fields.push(["params", this.rng.chance(0.5) ? this.object() : this.nonObject(true)]);
    return { text: this.json.write(this.envelope(fields)), what: "an envelope with an unusable id", expect: { kind: "anonymous", code: INVALID_REQUEST } };
  }

  /** A top-level array: one -32600 for all of it; the requests inside are never run or answered. */
  private batch(): Draft {
    if (this.rng.chance(0.15)) return { text: this.deepText("array", this.depth()), what: "a deep array", expect: { kind: "anonymous", code: INVALID_REQUEST } };
    const items = Array.from({ length: this.rng.int(0, 4) }, () =>
      this.rng.pick<() => unknown>([
        () =>
          this.envelope([
            ["jsonrpc", "2.0"],
            ["id", this.freshId()],
            ["method", this.rng.pick(["ping", "tools/list", "tools/call"])],
          ]),
        () => this.envelope([["jsonrpc", "2.0"], ["method", "notifications/cancelled"], ["params", new Members([["requestId", this.earlierId() ?? 1]])]]),
        () => this.value(1),
        () => [this.envelope([["jsonrpc", "2.0"], ["id", this.freshId()], ["method", "ping"]])],
      ])(),
    );
    return { text: this.json.write(items), what: "a batch", expect: { kind: "anonymous", code: INVALID_REQUEST } };
  }

  // -- bytes that are not a JSON object ---------------------------------------------------------

  /** A line whose outcome follows from the JSON and UTF-8 rules alone (see predictNonObject). */
  private predicted(what: string, make: () => Buffer): Draft {
    for (let attempt = 0; attempt < 20; attempt++) {
      const text = make();
      // The terminator is chosen later; predict for both (a trailing CR is stripped either way).
      const expect = predictNonObject(effectiveBytes(text, false));
      const withCrlf = predictNonObject(effectiveBytes(text, true));
      if (expect !== undefined && withCrlf !== undefined && JSON.stringify(expect) === JSON.stringify(withCrlf)) return { text, what, expect };
    }
    return { text: "{", what: `${what} (fallback)`, expect: { kind: "anonymous", code: PARSE_ERROR } };
  }

  private mutate(text: string): Buffer {
    let bytes = Buffer.from(text, "utf8");
    for (let ops = this.rng.int(1, 3); ops > 0; ops--) {
      const at = this.rng.int(0, bytes.length);
      switch (this.rng.int(0, 4)) {
        case 0:
          bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(Math.min(bytes.length, at + this.rng.int(1, 8)))]);
          break;
        case 1:
          bytes = Buffer.concat([bytes.subarray(0, at), this.randomBytes(this.rng.int(1, 4)), bytes.subarray(at)]);
          break;
        case 2:
          bytes = Buffer.from(bytes);
          if (at < bytes.length) bytes[at] = this.randomByte();
          break;
        case 3:
          bytes = bytes.subarray(0, at);
          break;
        default:
          bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at, at + this.rng.int(1, 20)), bytes.subarray(at)]);
      }
    }
    return bytes;
  }

  private randomByte(): number {
    const byte = this.rng.weighted<() => number>([
      [40, () => this.rng.int(0x20, 0x7e)],
      [15, () => JSON_CHARS.charCodeAt(this.rng.int(0, JSON_CHARS.length - 1))],
      [10, () => this.rng.int(0x80, 0xff)],
      [5, () => 0x00],
      [5, () => 0x0d],
      [5, () => this.rng.pick([0x20, 0x09])],
      [10, () => this.rng.int(0x30, 0x39)],
      [5, () => this.rng.int(0x01, 0x1f)],
    ])();
    return byte === 0x0a ? 0x0b : byte;
  }

  private randomBytes(length = this.rng.int(1, 300)): Buffer {
    const bytes = Buffer.alloc(length);
    for (let i = 0; i < length; i++) bytes[i] = this.randomByte();
    return bytes;
  }

  private invalidUtf8(): Buffer {
    const text = Buffer.from(this.requestText(), "utf8");
    const bad = Buffer.from(
      this.rng.pick([[0xff], [0xfe], [0xc0, 0xaf], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80], [0xbf], [0xe0, 0x80, 0x80], [0xf0, 0x8f, 0xbf, 0xbf]]),
    );
    const at = this.rng.int(0, text.length);
    return Buffer.concat([text.subarray(0, at), bad, text.subarray(at)]);
  }

  private syntaxError(): Buffer {
    const text = this.requestText();
    const quote = text.indexOf('"', this.rng.int(0, text.length - 1));
    const edits: Array<() => string> = [
      () => `${text} x`,
      () => text + text,
      () => `${text},`,
      () => `${text}]`,
      () => `/* c */${text}`,
      () => text.replace(/}\s*$/, ",}"),
      () => (quote === -1 ? `${text}'` : `${text.slice(0, quote)}'${text.slice(quote + 1)}`),
      () => text.replace('"jsonrpc"', "jsonrpc"),
      () => text.replace('"2.0"', this.rng.pick(["NaN", "Infinity", "0x2", "02.0", "2.", ".2", "+2", "undefined"])),
      () => `\ufeff${text}`,
      () => text.replace('"', "\u201c"),
    ];
    return Buffer.from(this.rng.pick(edits)(), "utf8");
  }

  /** Deep nesting where a message is, in its params, in its arguments and in its id. */
  private deep(): Draft {
    const depth = this.depth();
    const id = this.freshId();
    const deepValue = () => new Raw(this.deepText(this.rng.pick(["array", "object"]), depth));
    const request = (method: string, params: unknown, answer: Answer, what: string): Draft => ({
      text: this.json.write(this.envelope([["jsonrpc", "2.0"], ["id", id], ["method", method], ["params", params]])),
      what: `${what} (depth ${depth})`,
      expect: { kind: "reply", id, method, answer, cancellable: method !== "ping" },
    });
    switch (this.rng.int(0, 6)) {
      case 0:
        return { text: this.deepText("array", depth), what: `a deep array (depth ${depth})`, expect: { kind: "anonymous", code: INVALID_REQUEST } };
      case 1:
        return { text: this.deepText("object", depth), what: `a deep object (depth ${depth})`, expect: { kind: "anonymous", code: INVALID_REQUEST } };
      case 2:
        return request("ping", new Members([["_meta", new Members([["deep", deepValue()]])]]), "result", "ping with deep _meta");
      case 3: {
        const tool = this.rng.pick(this.tools).name;
        return request("tools/call", new Members([["name", tool], ["arguments", new Members([["x", deepValue()]])]]), "result", `tools/call ${tool} with deep arguments`);
      }
      case 4:
        return request("no/such/method", new Members([["x", deepValue()]]), METHOD_NOT_FOUND, "an unknown method with deep params");
      case 5:
        return {
          text: this.json.write(this.envelope([["jsonrpc", "2.0"], ["id", deepValue()], ["method", "ping"]])),
          what: `a deep id (depth ${depth})`,
          expect: { kind: "anonymous", code: INVALID_REQUEST },
        };
      default:
        return { text: "[".repeat(depth), what: `unbalanced nesting (depth ${depth})`, expect: { kind: "anonymous", code: PARSE_ERROR } };
    }
  }

  /** Fixed edges, once per run: ids at the limits of a double, the empty string id, -0, minimal bad messages. */
  private edgeCases(): Draft[] {
    const reply = (id: RequestId, text: string, what: string): Draft => ({ text, what, expect: { kind: "reply", id, method: "ping", answer: "result", cancellable: false } });
    const anonymous = (text: string, what: string, code = INVALID_REQUEST): Draft => ({ text, what, expect: { kind: "anonymous", code } });
    return [
      reply(0, '{"jsonrpc":"2.0","id":-0,"method":"ping"}', "id -0 (echoed as 0)"),
      reply(Number.MAX_SAFE_INTEGER, `{"jsonrpc":"2.0","id":${Number.MAX_SAFE_INTEGER},"method":"ping"}`, "the largest safe integer id"),
      reply(-Number.MAX_SAFE_INTEGER, `{"jsonrpc":"2.0","id":${-Number.MAX_SAFE_INTEGER},"method":"ping"}`, "the smallest safe integer id"),
      reply("", '{"jsonrpc":"2.0","id":"","method":"ping"}', "the empty string id"),
      anonymous('{"jsonrpc":"2.0","id":9007199254740992,"method":"ping"}', "an id one past the safe integers"),
      anonymous('{"jsonrpc":"2.0","id":1e400,"method":"ping"}', "an id beyond a double"),
      anonymous('{"jsonrpc":"2.0","id":null,"method":"ping"}', "a null id"),
      anonymous("[]", "an empty batch"),
      anonymous('[{"jsonrpc":"2.0","id":"in-a-batch","method":"ping"}]', "a batch of one"),
      anonymous("{}", "an empty object"),
      anonymous("null", "null"),
      anonymous('""', "a string"),
      anonymous("0", "a number"),
      anonymous("{", "an open brace", PARSE_ERROR),
      { text: "", what: "an empty line", expect: NOTHING },
      { text: " \t", what: "a blank line", expect: NOTHING },
    ];
  }
}

/** Ids a request may not have: the server cannot answer with them. */
const INVALID_IDS: readonly unknown[] = [
  null,
  true,
  false,
  1.5,
  -2.5,
  1e-7,
  new Raw("1e400"),
  new Raw("-1e400"),
  new Raw("9007199254740992"),
  new Raw("-9007199254740993"),
  new Raw("1000000000000000000000000000000"),
  new Members([]),
  new Members([["id", 1]]),
  [],
  [1],
];

// ---------------------------------------------------------------------------------------
// What the server wrote

function isDuplicateError(message: Message): boolean {
  // The server's answer to a request whose id is in flight: -32600 without an id, the id in `data`.
  const data = message.error?.data as Record<string, unknown> | undefined;
  return message.error?.code === INVALID_REQUEST && typeof data === "object" && data !== null && isValidId(data.id);
}

function isHelperId(id: unknown): boolean {
  return (typeof id === "number" && id >= 1 && id < 1000) || (typeof id === "string" && id.startsWith(SENTINEL));
}

/** Responses sorted by what they answer, read incrementally from `ServerProcess.messages`. */
class Tally {
  private scanned = 0;
  readonly replies = new Map<string, Message[]>();
  readonly duplicates = new Map<string, number>();
  readonly anonymous: Array<{ index: number; message: Message }> = [];

  update(messages: readonly Message[]): void {
    for (; this.scanned < messages.length; this.scanned++) {
      const message = messages[this.scanned]!;
      if ("method" in message) continue; // the server's own notifications
      if (isValidId(message.id)) {
        const key = keyOf(message.id);
        const list = this.replies.get(key) ?? [];
        list.push(message);
        this.replies.set(key, list);
      } else if (isDuplicateError(message)) {
        const key = keyOf(message.error.data.id as RequestId);
        this.duplicates.set(key, (this.duplicates.get(key) ?? 0) + 1);
      } else {
        this.anonymous.push({ index: this.scanned, message });
      }
    }
  }

  counts(key: string): { replies: number; duplicates: number } {
    return { replies: this.replies.get(key)?.length ?? 0, duplicates: this.duplicates.get(key) ?? 0 };
  }
}

function answerProblem(line: Line, response: Message): string | undefined {
  const expect = line.expect;
  if (expect.kind !== "reply") return undefined;
  const ok =
    expect.answer === "result" ? "result" in response : expect.answer === "error" ? "error" in response : response.error?.code === expect.answer;
  if (!ok) return `${show(line)}\n  expected ${expect.answer === "result" || expect.answer === "error" ? `a ${expect.answer}` : `error ${expect.answer}`}, got ${brief(response)}`;
  if ("result" in response && KNOWN_METHODS.has(expect.method)) {
    try {
      assertServerMessage(response, () => expect.method);
    } catch (error) {
      return `${show(line)}\n  ${(error as Error).message.slice(0, 500)}`;
    }
  }
  return undefined;
}

/** Writes `data` to the server's stdin in random pieces, now and then letting a piece go alone. */
async function pour(server: ServerProcess, rng: Rng, data: Buffer): Promise<void> {
  const stdin = server.child.stdin;
  const died = server.exited.then((exit) => {
    throw new Error(`the server exited while input was written: ${JSON.stringify(exit)} (${REPLAY}); stderr:\n${server.stderr.slice(-2000)}`);
  });
  died.catch(() => undefined);
  let offset = 0;
  while (offset < data.length) {
    const size = rng.weighted<() => number>([
      [3, () => rng.int(1, 16)],
      [4, () => rng.int(17, 4096)],
      [3, () => rng.int(4097, 65536)],
    ])();
    const piece = data.subarray(offset, offset + size);
    offset += piece.length;
    if (!stdin.write(piece)) await Promise.race([once(stdin, "drain"), died]);
    else if (rng.chance(0.1)) await nextTick();
  }
}

// ---------------------------------------------------------------------------------------

void describe(`fuzzing the JSON-RPC layer over stdio (${REPLAY})`, () => {
  let server: ServerProcess;
  let fuzzer: Fuzzer;
  const tally = new Tally();
  const pourRng = new Rng(SEED ^ 0x5bd1e995);

  before(async () => {
    server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, policy: POLICY, args: ["--page-size", "5", "--max-in-flight", "64"] });
    const tools: Message[] = [];
    const cursors: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await server.request("tools/list", cursor === undefined ? {} : { cursor });
      tools.push(...(page.result.tools as Message[]));
      cursor = page.result.nextCursor as string | undefined;
      if (cursor !== undefined) cursors.push(cursor);
    } while (cursor !== undefined);
    assert.ok(cursors.length >= 2, "--page-size 5 makes several pages");
    const callable = tools
      .filter((tool) => !LONG_RUNNING.has(tool.name as string) && !STOPS_THE_SERVER.has(tool.name as string))
      .map((tool) => ({ name: tool.name as string, properties: (tool.inputSchema?.properties ?? {}) as ToolInfo["properties"] }));
    assert.ok(callable.some((tool) => tool.name === "echo"), "the testkit's tools are listed");
    fuzzer = new Fuzzer(new Rng(SEED), callable, tools.map((tool) => tool.name as string), cursors);
  });

  after(() => {
    if (server.child.exitCode === null && server.child.signalCode === null) server.kill();
    server.cleanup();
  });

  void test(`${TOTAL_LINES} generated lines: each request answered once with its id, the rest as JSON-RPC requires`, async (t) => {
    t.diagnostic(REPLAY);
    let written = 0;
    let roundNumber = 0;
    const kinds = new Map<string, number>();
    while (written < TOTAL_LINES) {
      roundNumber += 1;
      const lines = fuzzer.nextRound(Math.min(TOTAL_LINES - written, 150 + (roundNumber % 4) * 50));
      written += lines.length;
      for (const line of lines) {
        const kind = line.what.replace(/ \(.*$/, "").replace(/^tools\/call [a-z_]+$/, "tools/call of a tool");
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
      const start = server.messages.length;
      await pour(server, pourRng, Buffer.concat(lines.flatMap((line) => [line.text, Buffer.from(line.crlf ? "\r\n" : "\n")])));
      // Envelope errors, notifications and pings are handled as their line is read: everything they
      // produce lies before the answer to a ping written after them.
      const pong = await server.request("ping", undefined, `${SENTINEL}${roundNumber}`, 30_000);
      const end = server.messages.indexOf(pong);
      tally.update(server.messages);
      const failures: string[] = [];

      // 1. Errors without an id, one per line that needs one, in line order.
      const expected = lines.filter((line) => line.expect.kind === "anonymous");
      const actual = tally.anonymous.filter((entry) => entry.index >= start && entry.index < end);
      for (let i = 0; i < Math.max(expected.length, actual.length); i++) {
        const line = expected[i];
        const got = actual[i]?.message;
        const code = line?.expect.kind === "anonymous" ? line.expect.code : undefined;
        if (line === undefined || got?.error?.code !== code) {
          // The culprit is this line or one since the last error that matched: show them all.
          const from = i === 0 ? 0 : expected[i - 1]!.index + 1;
          const suspects = lines.slice(from, (line?.index ?? lines.length - 1) + 1).slice(-8);
          failures.push(
            `error without an id #${i} of round ${roundNumber}: expected ${line ? `${String(code)} for ${show(line)}` : "none"}, got ${brief(got)}\n` +
              `  lines since the last matching error:\n  ${suspects.map(show).join("\n  ")}`,
          );
          break;
        }
      }

      // 2. Every request answered: a response with its id, or (a second request with an id in flight) an error without it.
      const keys = new Set(lines.flatMap((line) => (line.expect.kind === "reply" ? [keyOf(line.expect.id)] : [])));
      const deadline = Date.now() + 20_000;
      for (;;) {
        tally.update(server.messages);
        const missing = [...keys].filter((key) => {
          const record = fuzzer.records.get(key)!;
          const { replies, duplicates } = tally.counts(key);
          return !record.weak && replies + duplicates < record.count;
        });
        if (missing.length === 0) break;
        if (Date.now() > deadline || server.child.exitCode !== null) {
          for (const key of missing.slice(0, 5)) {
            const record = fuzzer.records.get(key)!;
            failures.push(`no answer (${JSON.stringify(tally.counts(key))} of ${record.count}) for ${record.lines.map(show).join("\n  and ")}`);
          }
          break;
        }
        await sleep(10);
      }

      // 3. Each answer is the right kind, and a result conforms to the method's result type.
      for (const line of lines) {
        if (line.expect.kind !== "reply") continue;
        const key = keyOf(line.expect.id);
        if (fuzzer.records.get(key)!.count !== 1) continue; // several requests with the id: only the counts are checked
        const response = tally.replies.get(key)?.[0];
        const problem = response && answerProblem(line, response);
        if (problem) failures.push(problem);
      }

      // 4. Nothing answered that must not be, and no request answered twice.
      for (const key of keys) {
        const record = fuzzer.records.get(key)!;
        const { replies, duplicates } = tally.counts(key);
        if (replies + duplicates > record.count) failures.push(`${replies} responses and ${duplicates} duplicate-id errors for ${record.count} request(s): ${record.lines.map(show).join("\n  and ")}`);
      }
      for (const [key, list] of tally.replies) {
        if (!fuzzer.records.has(key) && !isHelperId(list[0]!.id)) failures.push(`a response to a line that must not be answered: ${brief(list[0])}`);
      }
      for (const key of tally.duplicates.keys()) if (!fuzzer.records.has(key)) failures.push(`a duplicate-id error for an id never sent: ${key}`);
      failures.push(...server.problems);
      assert.deepEqual(failures.slice(0, 10), [], `round ${roundNumber} (${REPLAY})`);
    }
    t.diagnostic([...kinds].sort((a, b) => b[1] - a[1]).map(([kind, count]) => `${kind} ×${count}`).join(", "));
  });

  void test("the server is still serving, exits 0, and answered no request twice", async (t) => {
    assert.deepEqual((await server.request("ping", undefined, `${SENTINEL}final`)).result, {}, REPLAY);
    const exit = await server.close(10_000);
    assert.deepEqual(exit, { code: 0, signal: null }, `${REPLAY}; stderr:\n${server.stderr.slice(-2000)}`);
    const stdout = server.child.stdout;
    if (!stdout.readableEnded && !stdout.destroyed) await once(stdout, "close");
    tally.update(server.messages);
    const failures: string[] = [];
    for (const [key, record] of fuzzer.records) {
      const { replies, duplicates } = tally.counts(key);
      const exact = replies >= 1 && replies + duplicates === record.count;
      // A cancelled request gets no response; its other requests still get one answer each at most.
      const bounded = replies + duplicates <= record.count && duplicates < record.count;
      if (record.weak ? !bounded : !exact) {
        failures.push(`${record.weak ? "(cancelled) " : ""}${replies} responses and ${duplicates} duplicate-id errors for ${record.count} request(s): ${record.lines.map(show).join("\n  and ")}`);
      }
    }
    assert.deepEqual(failures.slice(0, 10), [], REPLAY);
    assert.deepEqual(server.problems, [], REPLAY);

    // The counts above hold whether or not a duplicate or a cancellation took effect; these show they do.
    // Both are timing-dependent one by one, but the lines of a round are mostly read together, so
    // over a run they take effect dozens of times (~100 duplicates, ~10 cancellations per 3000 lines).
    let duplicates = 0;
    for (const count of tally.duplicates.values()) duplicates += count;
    const records = [...fuzzer.records.values()];
    const sentAsDuplicates = records.filter((record) => record.lines.some((line) => line.what.endsWith(DUPLICATE_TAG))).length;
    const cancelled = records.filter((record) => record.weak);
    const suppressed = cancelled.filter((record) => {
      const { replies, duplicates } = tally.counts(keyOf(record.id));
      return replies + duplicates < record.count;
    }).length;
    t.diagnostic(
      `${records.length} ids; ${sentAsDuplicates} reused by a later request of their round, ${duplicates} answered as in flight; ` +
        `${cancelled.length} cancelled after they were sent, ${suppressed} of them left without a response`,
    );
    if (sentAsDuplicates >= 20) assert.ok(duplicates > 0, `no request was refused as a duplicate of one in flight (${REPLAY})`);
    if (cancelled.length >= 20) assert.ok(suppressed > 0, `no cancellation took effect (${REPLAY})`);
  });
});

// ---------------------------------------------------------------------------------------

/** A string with an unpaired surrogate cannot be encoded as UTF-8; strict JSON parsers refuse its escape. */
function hasLoneSurrogate(text: string): boolean {
  return /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}

function strings(value: unknown, out: string[] = []): string[] {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const item of value) strings(item, out);
  else if (typeof value === "object" && value !== null) {
    for (const [name, item] of Object.entries(value)) {
      out.push(name);
      strings(item, out);
    }
  }
  return out;
}

void describe(`deviations the fuzzer found, fixed (${REPLAY})`, () => {
  let server: ServerProcess;

  before(async () => {
    server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, policy: POLICY });
  });

  after(async () => {
    await server.close();
  });

  void test(
    "a broken envelope that reuses the id of a request in flight does not give that request a second response",
    async () => {
      const variants: Array<(id: string) => Record<string, unknown>> = [
        (id) => ({ jsonrpc: "2.0", id, method: "ping", params: "x" }),
        (id) => ({ jsonrpc: "1.0", id, method: "ping" }),
        (id) => ({ jsonrpc: "2.0", id }),
        (id) => ({ jsonrpc: "2.0", id, method: 7 }),
      ];
      for (const [i, variant] of variants.entries()) {
        const id = `in-flight-${i}`;
        server.send({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "slow", arguments: { ms: 100 } } });
        server.writeLine(JSON.stringify(variant(id)));
        await server.waitFor((m) => m.id === id && "result" in m, 10_000, `the slow call ${id}`);
        const answers = server.messages.filter((m) => m.id === id && !("method" in m));
        assert.equal(answers.length, 1, `one response for ${id}, got ${JSON.stringify(answers)}`);
      }
    },
  );

  void test(
    "a message shaped as a response is never answered, whatever its jsonrpc member",

    async () => {
      const lines = ['{"id":"response-1","result":{}}', '{"jsonrpc":"1.0","id":"response-2","error":{"code":-1,"message":"x"}}', '{"jsonrpc":null,"id":3000,"result":null}'];
      const replies = responses(await exchange(server, () => lines.forEach((line) => server.writeLine(line))));
      assert.deepEqual(replies, []);
    },
  );

  void test(
    "well-formed input gets well-formed output: no unpaired surrogate in any string the server writes",

    async () => {
      const rng = new Rng(SEED);
      const emoji = () => rng.pick(ASTRAL);
      const name = () => "a".repeat(rng.int(90, 100)) + emoji().repeat(rng.int(1, 10));
      const lines = [
        JSON.stringify({ jsonrpc: "2.0", id: "lone-1", method: `${"a".repeat(99)}😀` }),
        JSON.stringify({ jsonrpc: "2.0", id: "lone-2", method: "tools/call", params: { name: `${"a".repeat(99)}😀` } }),
        "😀",
      ];
      for (let i = 0; i < 100; i++) {
        lines.push(
          rng.pick([
            () => JSON.stringify({ jsonrpc: "2.0", id: `lone-r${i}`, method: name() }),
            () => JSON.stringify({ jsonrpc: "2.0", id: `lone-r${i}`, method: "tools/call", params: { name: name() } }),
            () => emoji().repeat(rng.int(1, 120)),
            () => `{"jsonrpc":"2.0","id":"lone-r${i}","method":"${name()}`,
          ])(),
        );
      }
      const replies = responses(await exchange(server, () => lines.forEach((line) => server.writeLine(line))));
      const broken = replies.filter((m) => strings(m).some(hasLoneSurrogate));
      assert.deepEqual(broken.slice(0, 3), [], `${broken.length} of ${replies.length} responses hold an unpaired surrogate`);
    },
  );
});
