import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { canonicalJson } from "../../src/util/canonical-json.js";
import {
  checkEntryLine,
  entryShapeProblem,
  GENESIS_PREV,
  isSystemEvent,
  logIdOf,
  serializeEntry,
  type AuditEntry,
  type AuditEntryBody,
} from "../../src/security/audit/entry.js";
import { entryFieldsOf } from "../../src/security/audit/index.js";
import { AuditEntryError } from "../../src/security/audit/errors.js";
import { compactUtc, isSideFile, lockPath, segmentPath, segmentsOf, tornPath, utcDay } from "../../src/security/audit/segments.js";

function body(overrides: Partial<AuditEntryBody> = {}): AuditEntryBody {
  return {
    v: 1,
    seq: 1,
    id: "01JD0000000000000000000000",
    ts: "2026-11-22T03:15:00.000Z",
    event: "tool_call",
    tool: "fs_read",
    arguments: { z: 1, a: [true, null, "x"] },
    prev: GENESIS_PREV,
    ...overrides,
  };
}

void test("the hash is SHA-256 over the canonical JSON of every field but the hash, and the line is checked byte for byte", () => {
  const b = body();
  const { line, hash } = serializeEntry(b);
  assert.equal(hash, createHash("sha256").update(canonicalJson(b)).digest("hex"));
  assert.ok(line.endsWith(`,"hash":"${hash}"}`));
  assert.ok(!line.includes("\n"));
  const parsed = JSON.parse(line) as AuditEntry;
  assert.equal(parsed.hash, hash);
  const check = checkEntryLine(line);
  assert.equal(check.ok, true);
  // Every field is covered: changing any one changes the hash.
  for (const change of [{ seq: 2 }, { ts: "2026-11-22T03:15:00.001Z" }, { event: "denied" }, { prev: "1".repeat(64) }, { arguments: { z: 2 } }]) {
    assert.notEqual(serializeEntry(body(change)).hash, hash, JSON.stringify(change));
  }
});

void test("checkEntryLine names what is wrong", () => {
  const { line } = serializeEntry(body());
  const cases: Array<[string, string]> = [
    ["{nope", "unparseable"],
    ["[1,2]", "unparseable"],
    ["42", "unparseable"],
    [line.replace('"fs_read"', '"fs_wipe"'), "hash_mismatch"],
    [line.replace('{"arguments"', '{ "arguments"'), "not_canonical"],
    [line.replace('"v":1', '"v":2'), "bad_entry"],
  ];
  for (const [text, problem] of cases) {
    const check = checkEntryLine(text);
    assert.equal(check.ok, false, text);
    if (!check.ok) assert.equal(check.problem, problem, `${text}: ${check.message}`);
  }
  // Duplicate keys parse (the last wins) but the bytes are not the writer's.
  const dup = line.replace('"tool":"fs_read"', '"tool":"evil","tool":"fs_read"');
  const check = checkEntryLine(dup);
  assert.equal(check.ok, false);
  if (!check.ok) assert.equal(check.problem, "not_canonical");
  // A number too large for a double is refused rather than hashed as Infinity.
  const huge = checkEntryLine(line.replace('"z":1', '"z":1e999'));
  assert.equal(huge.ok, false);
});

void test("entryShapeProblem checks each field", () => {
  const good = JSON.parse(serializeEntry(body()).line) as Record<string, unknown>;
  assert.equal(entryShapeProblem(good), undefined);
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ extra: 1 }, /unknown field "extra"/],
    [{ v: undefined }, /unsupported format version/],
    [{ seq: 0 }, /seq/],
    [{ seq: 1.5 }, /seq/],
    [{ id: "short" }, /ULID/],
    [{ ts: "yesterday" }, /ISO 8601/],
    [{ ts: "2026-11-22T03:15:00+01:00" }, /ISO 8601/],
    [{ event: "" }, /event/],
    [{ prev: "x" }, /prev/],
    [{ hash: 5 }, /hash/],
    [{ tool: 1 }, /tool/],
    [{ requestId: true }, /requestId/],
    [{ callId: 2 }, /callId/],
    [{ outcome: "fine" }, /outcome/],
    [{ reason: [] }, /reason/],
    [{ durationMs: -3 }, /durationMs/],
    [{ data: [1] }, /data/],
    [{ event: "checkpoint" }, /no checkpoint field/],
    [{ checkpoint: {} }, /only a checkpoint entry/],
  ];
  for (const [change, pattern] of bad) {
    const record = { ...good, ...change };
    for (const key of Object.keys(change)) if (change[key] === undefined) delete record[key];
    assert.match(entryShapeProblem(record) ?? "(none)", pattern, JSON.stringify(change));
  }
  const cp = { logId: "L", seq: 1, head: "a".repeat(64), signature: "s", publicKey: "k", keyFingerprint: "b".repeat(64) };
  const withCp = (c: unknown) => entryShapeProblem({ ...good, event: "checkpoint", checkpoint: c });
  assert.equal(withCp(cp), undefined);
  assert.match(withCp(null) ?? "", /not an object/);
  assert.match(withCp({ ...cp, extra: 1 }) ?? "", /checkpoint has fields/);
  assert.match(withCp({ ...cp, logId: "" }) ?? "", /logId/);
  assert.match(withCp({ ...cp, seq: -1 }) ?? "", /seq/);
  assert.match(withCp({ ...cp, head: "x" }) ?? "", /head/);
  assert.match(withCp({ ...cp, signature: 1 }) ?? "", /signature/);
  assert.match(withCp({ ...cp, keyFingerprint: "x" }) ?? "", /keyFingerprint/);
});

void test("system events and log ids", () => {
  assert.equal(isSystemEvent("checkpoint"), true);
  assert.equal(isSystemEvent("tool_call"), false);
  const entry = (e: Partial<AuditEntry>): AuditEntry => ({ ...(body() as AuditEntry), hash: "0".repeat(64), ...e });
  assert.equal(logIdOf(entry({ event: "server_start", data: { logId: "L1" } })), "L1");
  assert.equal(logIdOf(entry({ event: "tool_call", data: { logId: "caller data" } })), undefined, "callers' data is not trusted for it");
  assert.equal(logIdOf(entry({ event: "server_start", data: { logId: 5 } })), undefined);
  assert.equal(
    logIdOf(entry({ event: "checkpoint", checkpoint: { logId: "L2", seq: 1, head: "", signature: "", publicKey: "", keyFingerprint: "" } })),
    "L2",
  );
});

void test("entryFieldsOf keeps only known fields", () => {
  const fields = entryFieldsOf({ event: "tool_call", tool: "t", extra: "dropped" } as never);
  assert.equal((fields as unknown as Record<string, unknown>).extra, undefined);
  assert.equal(fields.tool, "t");
  assert.throws(() => entryFieldsOf({ event: "recovery" }), AuditEntryError);
});

void test("segment, torn and lock names", () => {
  assert.equal(compactUtc("2026-11-22T03:15:07.123Z"), "20261122T031507Z");
  assert.equal(utcDay("2026-11-22T23:59:59.999Z"), "2026-11-22");
  const seg = segmentPath("/x/audit.log", "2026-11-22T03:15:07.123Z", 1234);
  assert.equal(seg, "/x/audit-20261122T031507Z-000000001234.log");
  assert.equal(segmentPath("/x/trail", "2026-11-22T03:15:07.123Z", 1), "/x/trail-20261122T031507Z-000000000001");
  assert.equal(tornPath("/x/audit.log", "2026-11-22T03:15:07.123Z", 0), "/x/audit.log.torn-20261122T031507Z");
  assert.equal(tornPath("/x/audit.log", "2026-11-22T03:15:07.123Z", 2), "/x/audit.log.torn-20261122T031507Z-2");
  assert.equal(lockPath("/x/audit.log"), "/x/audit.log.lock");
  assert.equal(isSideFile("audit.log.lock"), true);
  assert.equal(isSideFile("audit.log.torn-20261122T031507Z-2"), true);
  assert.equal(isSideFile(".hidden"), true);
  assert.equal(isSideFile("audit.log"), false);
  const found = segmentsOf("/x/audit.log", [
    "audit-20261123T000000Z-000000000200.log",
    "audit-20261122T000000Z-000000000001.log",
    "other-20261122T000000Z-000000000005.log",
    "audit.log",
    "audit-20261122T000000Z-000000000001.jsonl",
  ]);
  assert.deepEqual(found, [
    { name: "audit-20261122T000000Z-000000000001.log", firstSeq: 1 },
    { name: "audit-20261123T000000Z-000000000200.log", firstSeq: 200 },
  ]);
  // Names sort chronologically as plain strings.
  const names = [segmentPath("/x/a.log", "2026-11-23T00:00:00.000Z", 99), segmentPath("/x/a.log", "2026-11-22T00:00:00.000Z", 1)];
  assert.deepEqual([...names].sort(), names.reverse());
});
