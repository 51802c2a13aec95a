/**
 * The fast paths of sealing an entry against the plain definitions they replace:
 * the entry serializer against canonicalJson (over many generated bodies, odd ones
 * included), canonicalJson and jsonString against the straightforward forms, the
 * ULID factory's monotonic ids, and the writer's cached timestamps and byte accounting.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { decodeTime } from "ulid";
import { canonicalJson, jsonString } from "../../src/util/canonical-json.js";
import { ulidFactory } from "../../src/util/ids.js";
import {
  canonicalEntryJson,
  checkEntryLine,
  lineBytesBound,
  sealLineInto,
  sealedCanonicalJson,
  serializeEntry,
  type AuditEntryBody,
  type EntryFields,
} from "../../src/security/audit/entry.js";
import { openTestLog, parse, readLines, tempEnv } from "../fixtures/audit-helpers.js";
import { prng } from "../helpers/prng.js";

/** canonicalJson as it was first written: the definition the fast paths must match byte for byte. */
function referenceCanonicalJson(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("canonical JSON cannot hold a non-finite number");
      return JSON.stringify(value);
    case "object": {
      if (value === null) return "null";
      // Array.from visits holes (as undefined), which map would skip.
      if (Array.isArray(value)) return `[${Array.from(value as unknown[], (item) => (item === undefined ? "null" : referenceCanonicalJson(item))).join(",")}]`;
      const record = value as Record<string, unknown>;
      const members = Object.keys(record)
        .sort()
        .filter((key) => record[key] !== undefined)
        .map((key) => `${JSON.stringify(key)}:${referenceCanonicalJson(record[key])}`);
      return `{${members.join(",")}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot hold a ${typeof value}`);
  }
}

/** What a call returned, or the class and message of what it threw. */
function outcome(run: () => unknown): unknown {
  try {
    return { value: run() };
  } catch (err) {
    return { threw: (err as Error).constructor.name, message: (err as Error).message };
  }
}

function referenceSerialize(body: unknown): unknown {
  return outcome(() => {
    const canonical = referenceCanonicalJson(body);
    const hash = createHash("sha256").update(canonical, "utf8").digest("hex");
    return { line: `${canonical.slice(0, -1)},"hash":"${hash}"}`, hash };
  });
}


class Gen {
  constructor(readonly rnd: () => number) {}

  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }

  chance(p: number): boolean {
    return this.rnd() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** Strings with whatever JSON must escape, or need not: quotes, controls, DEL, U+2028, astral pairs, lone surrogates. */
  string(): string {
    const pieces = ["a", "Z", "0", " ", "/", '"', "\\", "\n", "\t", "\u0000", "\u001f", "\u007f", "é", "ÿ", "漢", "\u2028", "\u2029", "😀", "\ud800", "\udfff", "\ufeff", "\uffff", "tool_call", "01JD", "-:.TZ"];
    const length = this.chance(0.05) ? 100 + this.int(2000) : this.int(12);
    let out = "";
    for (let i = 0; i < length; i++) out += this.chance(0.6) ? String.fromCharCode(0x20 + this.int(0x5f)) : this.pick(pieces);
    return out;
  }

  number(): number {
    switch (this.int(10)) {
      case 0:
        return this.pick([0, -0, 1e21, 1e-7, 5e-324, Number.MAX_SAFE_INTEGER, Number.MAX_VALUE, -1.5, 0.1 + 0.2]);
      case 1:
        return this.chance(0.5) ? this.pick([NaN, Infinity, -Infinity]) : this.rnd() * 1e6;
      case 2:
        return -this.int(1e9);
      case 3:
        return Math.round(this.rnd() * 1e6) / 1000;
      default:
        return this.int(100000);
    }
  }

  key(): string {
    return this.chance(0.7) ? this.pick(["a", "b", "text", "path", "Z", "_", "10", "2", "0", "", "é", "__proto__", "constructor", "resultSha256", "tool"]) : this.string();
  }

  value(depth = 0): unknown {
    const roll = this.int(depth > 2 ? 6 : 9);
    switch (roll) {
      case 0:
        return this.string();
      case 1:
        return this.number();
      case 2:
        return this.chance(0.5);
      case 3:
        return null;
      case 4:
        return undefined;
      case 5:
        // What JSON cannot carry: rare, so that most bodies serialize.
        return this.chance(0.9) ? this.string() : this.pick<unknown>([10n, () => 1, Symbol("s")]);
      case 6: {
        const items: unknown[] = [];
        const n = this.int(5);
        for (let i = 0; i < n; i++) items.push(this.value(depth + 1));
        if (this.chance(0.1)) items.length += 2; // holes
        return items;
      }
      default:
        return this.object(depth + 1);
    }
  }

  object(depth: number): Record<string, unknown> {
    const record: Record<string, unknown> = this.chance(0.1) ? (Object.create(null) as Record<string, unknown>) : {};
    const n = this.int(6);
    for (let i = 0; i < n; i++) {
      const key = this.key();
      // An own "__proto__" key, as JSON.parse makes one.
      Object.defineProperty(record, key, { value: this.value(depth), enumerable: true, writable: true, configurable: true });
    }
    return record;
  }

  /** A value of the type a writer puts in that field, or (rarely) anything at all. */
  field(key: string): unknown {
    if (this.chance(0.15)) return this.value();
    switch (key) {
      case "v":
        return this.chance(0.9) ? 1 : this.number();
      case "seq":
      case "durationMs":
        return this.number();
      case "requestId":
        return this.chance(0.5) ? this.number() : this.string();
      case "arguments":
        return this.value();
      case "data":
      case "checkpoint":
        return this.object(1);
      case "outcome":
        return this.pick(["ok", "error", "denied", "timeout", "cancelled"]);
      case "prev":
        return createHash("sha256").update(String(this.rnd())).digest("hex");
      default:
        return this.string();
    }
  }
}

const BODY_KEYS = ["v", "seq", "id", "ts", "event", "tool", "requestId", "callId", "arguments", "outcome", "reason", "durationMs", "data", "checkpoint", "prev"];
const FIELD_KEYS = ["event", "tool", "requestId", "callId", "arguments", "outcome", "reason", "durationMs", "data", "checkpoint"];

/** Keys in a random insertion order, each present with probability p; sometimes an odd extra. */
function fill(g: Gen, keys: readonly string[], p: number): Record<string, unknown> {
  const record: Record<string, unknown> = g.chance(0.05) ? (Object.create({ tool: "inherited", hash: "x" }) as Record<string, unknown>) : {};
  const order = keys.filter(() => g.chance(p)).sort(() => g.rnd() - 0.5);
  for (const key of order) record[key] = g.chance(0.05) ? undefined : g.field(key);
  switch (g.int(20)) {
    case 0:
      record.hash = "a".repeat(64); // a body still holding its hash
      break;
    case 1:
      record[g.key()] = g.value();
      break;
    case 2:
      Object.defineProperty(record, "hidden", { value: 1, enumerable: false });
      break;
    case 3:
      (record as Record<symbol, unknown>)[Symbol("s")] = 1;
      break;
    default:
  }
  return record;
}

void test("canonicalEntryJson and serializeEntry equal canonicalJson and its hash for generated bodies, errors included", () => {
  const seed = 20261122;
  const g = new Gen(prng(seed));
  let threw = 0;
  let fallbacks = 0;
  for (let i = 0; i < 6000; i++) {
    const body = fill(g, BODY_KEYS, g.chance(0.5) ? 0.9 : 0.4);
    const expected = outcome(() => referenceCanonicalJson(body));
    assert.deepEqual(outcome(() => canonicalJson(body)), expected, `seed ${seed} case ${i}: canonicalJson`);
    assert.deepEqual(outcome(() => canonicalEntryJson(body as unknown as AuditEntryBody)), expected, `seed ${seed} case ${i}: canonicalEntryJson`);
    assert.deepEqual(outcome(() => serializeEntry(body as unknown as AuditEntryBody)), referenceSerialize(body), `seed ${seed} case ${i}: serializeEntry`);
    if ((expected as { threw?: string }).threw !== undefined) threw++;
    if (Object.keys(body).some((key) => !BODY_KEYS.includes(key))) fallbacks++;
  }
  // The generator reaches both the errors and the generic path.
  assert.ok(threw > 50, `${threw} bodies threw`);
  assert.ok(fallbacks > 50, `${fallbacks} bodies had other keys`);
});

/**
 * The writer's sealing as serializeEntry: the line sealLineInto writes (after some other
 * bytes, in exactly the room lineBytesBound gives it) and its hash.
 */
function sealedAsSerialized(seq: number, id: string, ts: string, fields: EntryFields, prev: string): unknown {
  return outcome(() => {
    const canonical = sealedCanonicalJson({ seq, id, ts, tsJson: JSON.stringify(ts), prev, prevJson: JSON.stringify(prev) }, fields);
    const room = lineBytesBound(canonical);
    const buffer = Buffer.alloc(room + 3, 0x2a);
    const sealed = sealLineInto(buffer, 3, canonical);
    assert.ok(sealed.bytes <= room, "the line fits its room");
    assert.equal(sealed.bytes, Buffer.byteLength(canonical) + 75, "the line's size is counted exactly");
    const text = buffer.toString("utf8", 3, 3 + sealed.bytes);
    assert.ok(text.endsWith("\n"));
    assert.equal(sealed.hash, createHash("sha256").update(canonical).digest("hex"), "the hash over the bytes is the hash of the JSON");
    return { line: text.slice(0, -1), hash: sealed.hash };
  });
}

void test("sealedCanonicalJson and sealLineInto give serializeEntry's line and hash for the writer's spread body, whatever the fields hold", () => {
  const seed = 7;
  const g = new Gen(prng(seed));
  for (let i = 0; i < 6000; i++) {
    // Mostly the fields a caller may give; sometimes a key the writer assigns, which the spread lets override.
    const fields = fill(g, g.chance(0.1) ? BODY_KEYS : FIELD_KEYS, 0.5) as unknown as EntryFields;
    const seq = g.chance(0.9) ? 1 + g.int(1e6) : g.number();
    const id = g.chance(0.9) ? "01JD0000000000000000000000" : g.string();
    const ts = g.chance(0.9) ? new Date(g.int(2 ** 42)).toISOString() : g.string();
    const prev = g.chance(0.9) ? createHash("sha256").update(String(i)).digest("hex") : g.string();
    const body = { v: 1, seq, id, ts, ...fields, prev };
    assert.deepEqual(sealedAsSerialized(seq, id, ts, fields, prev), referenceSerialize(body), `seed ${seed} case ${i}`);
  }
});

void test("bodies shaped like the writer's serialize as before and check as valid lines", () => {
  const callBody: AuditEntryBody = {
    v: 1,
    seq: 42,
    id: "01JD0000000000000000000000",
    ts: "2026-11-22T03:15:00.123Z",
    event: "tool_call",
    tool: "echo",
    requestId: 17,
    callId: "01JE0000000000000000000000",
    arguments: { text: "pipe 17 \u2028 \"quoted\" ünï 😀", nested: { z: [1, 2.5, null, true], a: "x" }, "10": 1, "2": 2 },
    outcome: undefined,
    reason: undefined,
    durationMs: undefined,
    data: undefined,
    prev: "c".repeat(64),
  };
  const resultBody: AuditEntryBody = {
    ...callBody,
    event: "tool_result",
    arguments: undefined,
    outcome: "ok",
    durationMs: 0.123,
    data: { resultBytes: 77, resultSha256: "ab".repeat(32) },
  };
  for (const body of [callBody, resultBody]) {
    const { line, hash } = serializeEntry(body);
    assert.deepEqual({ line, hash }, (referenceSerialize(body) as { value: unknown }).value);
    const check = checkEntryLine(line);
    assert.equal(check.ok, true, check.ok ? "" : check.message);
  }
  // Integer-like keys sort as strings, not as array indices.
  assert.match(canonicalEntryJson(callBody), /"arguments":\{"10":1,"2":2,"nested"/);
});

void test("jsonString is JSON.stringify for every code unit and for generated strings", () => {
  for (let c = 0; c < 0x10000; c++) {
    const s = String.fromCharCode(c);
    assert.equal(jsonString(s), JSON.stringify(s), `U+${c.toString(16)}`);
    assert.equal(jsonString(`ab${s}cd`), JSON.stringify(`ab${s}cd`), `U+${c.toString(16)} inside`);
  }
  const g = new Gen(prng(99));
  for (let i = 0; i < 5000; i++) {
    const s = g.string();
    assert.equal(jsonString(s), JSON.stringify(s));
  }
  assert.equal(jsonString(""), '""');
  assert.equal(jsonString("😀"), '"😀"');
});

void test("canonicalJson matches its plain definition for generated values", () => {
  const g = new Gen(prng(12345));
  for (let i = 0; i < 20000; i++) {
    const value = g.value();
    assert.deepEqual(
      outcome(() => canonicalJson(value)),
      outcome(() => referenceCanonicalJson(value)),
      `case ${i}`,
    );
  }
  assert.equal(canonicalJson(-0), "0");
  assert.equal(canonicalJson(1e21), "1e+21");
  assert.equal(canonicalJson({ b: 1, a: [undefined, "x"], c: undefined }), '{"a":[null,"x"],"b":1}');
  assert.throws(() => canonicalJson({ a: NaN }), /non-finite/);
  assert.throws(() => canonicalJson({ a: 1n }), /bigint/);
});

const ULID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;

void test("ulidFactory: valid, strictly increasing ids, within a millisecond, across carries and when the clock goes back", () => {
  const make = ulidFactory();
  const start = Date.parse("2026-11-22T03:15:00.000Z");
  const times = [start, start, start + 1, start + 1, start - 50, start + 2];
  let previous = "";
  const ids: string[] = [];
  for (const time of times) {
    // 200 ids per time: the last character carries several times.
    for (let i = 0; i < 200; i++) {
      const id = make(time);
      assert.match(id, ULID);
      assert.ok(id > previous, `${id} after ${previous}`);
      previous = id;
      ids.push(id);
    }
  }
  // The time part is the seed, or the last time when the seed is not later.
  assert.equal(decodeTime(ids[0]!), start);
  assert.equal(decodeTime(ids[400]!), start + 1);
  assert.equal(decodeTime(ids[800]!), start + 1, "a clock going back keeps the last time");
  assert.equal(decodeTime(ids[1000]!), start + 2);
  // Within one millisecond the random part counts up by one.
  const tail = (id: string) => id.slice(10);
  const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  const value = (s: string) => [...s].reduce((n, c) => n * 32n + BigInt(crockford.indexOf(c)), 0n);
  for (let i = 1; i < 400; i++) assert.equal(value(tail(ids[i]!)) - value(tail(ids[i - 1]!)), 1n);
  // A new millisecond draws a new random part.
  assert.notEqual(tail(ids[399]!), tail(ids[400]!));
  assert.notEqual(tail(make(start + 3)), tail(make(start + 4)));
  assert.match(ulidFactory()(2 ** 48 - 1), /^7ZZZZZZZZZ/);
  // Without a seed (or with 0 or NaN) it uses the clock.
  const before = Date.now();
  const now = decodeTime(ulidFactory()());
  assert.ok(now >= before && now <= Date.now());
  assert.ok(decodeTime(ulidFactory()(0)) >= before);
  assert.throws(() => ulidFactory()(-5), RangeError);
  assert.throws(() => ulidFactory()(1.5), RangeError);
  assert.throws(() => ulidFactory()(2 ** 48), RangeError);
});

void test("the writer's timestamps are toISOString of its clock, across milliseconds, seconds and days", async () => {
  const env = tempEnv();
  try {
    let clock = new Date("2026-11-22T03:15:00.000Z");
    const sink = await openTestLog(env, { fsync: "batch" }, { now: () => clock });
    const base = Date.parse("2026-11-22T23:59:59.990Z");
    const steps = [0, 0, 1, 9, 10, 99, 100, 999, 1000, 1001, 1500, 10, -2000, 86_400_000, 5, 400 * 86_400_000 * 365, 7];
    const expected: string[] = [];
    for (const step of steps) {
      clock = new Date(base + step);
      expected.push(clock.toISOString());
      await sink.append({ event: "tool_call", tool: "t", requestId: expected.length });
    }
    // Before 1970, and past year 9999 (toISOString's extended years).
    for (const time of [-1, -1000, -999, 253402300799999, 253402300800000, 253402300800001]) {
      clock = new Date(time);
      expected.push(clock.toISOString());
      await sink.append({ event: "tool_call", tool: "t", requestId: expected.length });
    }
    await sink.close();
    const entries = readLines(env.logFile).map(parse).filter((e) => e.event === "tool_call");
    assert.deepEqual(
      entries.map((e) => e.ts),
      expected,
    );
  } finally {
    env.cleanup();
  }
});

void test("rotation by size counts UTF-8 bytes: a file rotates at the first entry that finds it full", async () => {
  const env = tempEnv();
  const rotateBytes = 3000;
  try {
    const sink = await openTestLog(env, { fsync: "batch", rotate_bytes: rotateBytes });
    const pending = [];
    for (let i = 0; i < 60; i++) {
      // Two- to four-byte characters, so that characters and bytes differ a lot.
      pending.push(sink.append({ event: "tool_call", tool: "t", requestId: i, arguments: { text: "ünïcødé 漢字 😀".repeat(1 + (i % 4)) } }));
    }
    await Promise.all(pending);
    await sink.close();
    const segments = fs
      .readdirSync(env.logDir)
      .filter((n) => /^audit-.*\.log$/.test(n))
      .sort();
    assert.ok(segments.length >= 3, segments.join(", "));
    for (const name of segments) {
      const bytes = readLines(path.join(env.logDir, name)).map((line) => Buffer.byteLength(`${line}\n`));
      // The segment ends [..., last entry, checkpoint]: full after the last entry, not before it.
      const beforeLast = bytes.slice(0, -2).reduce((a, b) => a + b, 0);
      const withLast = beforeLast + bytes.at(-2)!;
      assert.ok(beforeLast < rotateBytes, `${name}: ${beforeLast} bytes before its last entry`);
      assert.ok(withLast >= rotateBytes, `${name}: ${withLast} bytes with its last entry`);
    }
  } finally {
    env.cleanup();
  }
});

void test("sealLineInto refuses a room too small for the line instead of hashing and writing a cut one", () => {
  const canonical = sealedCanonicalJson(
    { seq: 1, id: "01JD0000000000000000000000", ts: "2026-11-22T03:15:00.123Z", tsJson: '"2026-11-22T03:15:00.123Z"', prev: "0".repeat(64), prevJson: `"${"0".repeat(64)}"` },
    { event: "tool_call", tool: "t", arguments: { text: "ünïcødé 😀 a}b" } },
  );
  const needed = Buffer.byteLength(canonical) + 75;
  let refused = 0;
  for (let room = 0; room < needed; room++) {
    const buffer = Buffer.alloc(room + 2, 0x2a);
    assert.throws(() => sealLineInto(buffer.subarray(0, room), 0, canonical), RangeError, `room ${room}`);
    refused++;
    assert.deepEqual(buffer.subarray(room), Buffer.from("**"), "nothing is written past the room");
  }
  assert.equal(refused, needed);
  const exact = Buffer.alloc(needed);
  assert.equal(sealLineInto(exact, 0, canonical).bytes, needed, "the exact room is enough");
});

void test("large entries are sealed exactly too: at and past 16,384 UTF-16 units, where the room is counted rather than bounded", () => {
  const prev = createHash("sha256").update("large").digest("hex");
  const ts = "2026-11-22T03:15:00.123Z";
  let counted = 0;
  for (const unit of ["a", "ü", "😀", "\ud800", "€x", '"\\']) {
    for (const size of [16_000, 16_384 - 120, 16_384, 16_385, 40_000]) {
      const text = unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
      const fields: EntryFields = { event: "tool_call", tool: "t", requestId: 1, arguments: { text } };
      const canonical = sealedCanonicalJson({ seq: 1, id: "01JD0000000000000000000000", ts, tsJson: JSON.stringify(ts), prev, prevJson: JSON.stringify(prev) }, fields);
      if (canonical.length > 16_384) {
        counted++;
        assert.equal(lineBytesBound(canonical), Buffer.byteLength(canonical) + 75, "past the threshold the room is the exact size");
      }
      const body = { v: 1, seq: 1, id: "01JD0000000000000000000000", ts, ...fields, prev };
      assert.deepEqual(sealedAsSerialized(1, "01JD0000000000000000000000", ts, fields, prev), referenceSerialize(body), `${JSON.stringify(unit)} x ${size}`);
    }
  }
  assert.ok(counted >= 12, `${counted} entries took the exact count`);
});
