import { test } from "node:test";
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, sign } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { AuditOpenError, AuditReadError, verifyAudit, type AuditVerifySummary } from "../../src/security/audit/index.js";
import { checkpointMessage, fingerprintOfRaw, rawPublicKey, startRecordDigest, startSealMessage } from "../../src/security/audit/checkpoint.js";
import { nodeAuditFs, type AuditFs } from "../../src/security/audit/fs-layer.js";
import { appendCalls, openTestLog, parse, readLines, rechain, rewrite, tempEnv, writeLines, type TempEnv } from "../fixtures/audit-helpers.js";
import { serializeEntry } from "../../src/security/audit/entry.js";

/** A closed log: server_start, 12 calls, server_stop, with checkpoints every 4 primary entries. */
async function sampleLog(env: TempEnv): Promise<string[]> {
  const sink = await openTestLog(env, { checkpoint_every: 4 });
  await appendCalls(sink, 12);
  await sink.close();
  return readLines(env.logFile);
}

function publicPem(env: TempEnv): string {
  const pem = fs.readFileSync(path.join(env.stateDir, "keys", "audit-ed25519.pem"), "utf8");
  return createPublicKey(pem).export({ type: "spki", format: "pem" }).toString();
}

function assertFailure(summary: AuditVerifySummary, expected: { line: number; reason: string; seq?: number; file?: string }): void {
  assert.equal(summary.ok, false, "verification should fail");
  assert.ok(summary.failure);
  assert.equal(summary.failure.reason, expected.reason, summary.failure.message);
  assert.equal(summary.failure.line, expected.line, `${summary.failure.reason}: ${summary.failure.message}`);
  if (expected.seq !== undefined) assert.equal(summary.failure.seq, expected.seq);
  if (expected.file !== undefined) assert.equal(summary.failure.file, expected.file);
  assert.ok(summary.failure.message.length > 10);
}

/** Index (0-based) of the first line with this event after `from`. */
function indexOf(lines: string[], event: string, from = 0): number {
  const i = lines.findIndex((l, idx) => idx >= from && parse(l).event === event);
  assert.ok(i >= 0, `no ${event} after line ${from}`);
  return i;
}

void test("an intact log verifies, with a full summary", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    const entries = lines.map(parse);
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.equal(summary.entries, lines.length);
    assert.equal(summary.firstSeq, 1);
    assert.equal(summary.lastSeq, entries.at(-1)!.seq);
    assert.equal(summary.firstTs, entries[0]!.ts);
    assert.equal(summary.lastTs, entries.at(-1)!.ts);
    assert.equal(summary.head, entries.at(-1)!.hash);
    assert.equal(summary.logId, entries[0]!.data.logId);
    assert.equal(summary.keyFingerprint, entries[0]!.data.keyFingerprint);
    assert.deepEqual(summary.keyFingerprints, [entries[0]!.data.keyFingerprint]);
    assert.equal(summary.checkpoints, entries.filter((e) => e.event === "checkpoint").length);
    assert.equal(summary.unsealedEntries, 0);
    assert.deepEqual(summary.recoveries, []);
    assert.deepEqual(summary.warnings, []);
    assert.equal(summary.failure, undefined);
    const pinned = await verifyAudit(env.logFile, { pubkeyPem: publicPem(env), expectHead: entries.at(-1)!.hash });
    assert.equal(pinned.ok, true);
    assert.equal(pinned.pinnedKeyFingerprint, entries[0]!.data.keyFingerprint);
    // The private key file also pins (its public half is used).
    const byPrivate = await verifyAudit(env.logFile, { pubkeyPem: fs.readFileSync(path.join(env.stateDir, "keys", "audit-ed25519.pem"), "utf8") });
    assert.equal(byPrivate.ok, true);
  } finally {
    env.cleanup();
  }
});

void test("a deleted entry: seq gap at the entry after it", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    const removed = lines.splice(5, 1);
    writeLines(env.logFile, lines);
    assertFailure(await verifyAudit(env.logFile), { line: 6, reason: "seq_gap", seq: parse(removed[0]!).seq + 1 });
  } finally {
    env.cleanup();
  }
});

void test("an edited entry: hash mismatch at that entry; edited and re-hashed: broken link at the next", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    const edited = lines.slice();
    edited[3] = edited[3]!.replace('"tool":"fs_read"', '"tool":"fs_wipe"');
    assert.notEqual(edited[3], lines[3]);
    writeLines(env.logFile, edited);
    assertFailure(await verifyAudit(env.logFile), { line: 4, reason: "hash_mismatch", seq: 4 });

    const rehashed = lines.slice();
    rehashed[3] = rechain([lines[2]!, rehashed[3]!.replace('"tool":"fs_read"', '"tool":"fs_wipe"')], 1)[1]!;
    writeLines(env.logFile, rehashed);
    assertFailure(await verifyAudit(env.logFile), { line: 5, reason: "broken_link", seq: 5 });
  } finally {
    env.cleanup();
  }
});

void test("a rewritten chain (every later hash recomputed) is caught by the next checkpoint", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    const forged = lines.slice();
    forged[2] = forged[2]!.replace('"outcome":"ok"', '"outcome":"denied"');
    const rewritten = rechain(forged, 2);
    writeLines(env.logFile, rewritten);
    const cp = indexOf(rewritten, "checkpoint", 2);
    assertFailure(await verifyAudit(env.logFile), { line: cp + 1, reason: "bad_checkpoint" });

    // Also moving the checkpoint's head along: its signature no longer matches.
    const moved = rewritten.slice();
    const entry = parse(moved[cp]!);
    entry.checkpoint.head = entry.prev;
    moved[cp] = JSON.stringify(entry);
    const fixed = rechain(moved, cp);
    writeLines(env.logFile, fixed);
    assertFailure(await verifyAudit(env.logFile), { line: cp + 1, reason: "bad_signature" });
  } finally {
    env.cleanup();
  }
});

void test("a forged checkpoint signature fails; a checkpoint re-signed by another key fails (its server announced another key)", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    const cp = indexOf(lines, "checkpoint");
    const entry = parse(lines[cp]!);
    const sig = Buffer.from(entry.checkpoint.signature, "base64");
    sig[0] = sig[0]! ^ 0xff;
    entry.checkpoint.signature = sig.toString("base64");
    const forged = lines.slice();
    forged[cp] = JSON.stringify(entry);
    writeLines(env.logFile, rechain(forged, cp));
    assertFailure(await verifyAudit(env.logFile), { line: cp + 1, reason: "bad_signature", seq: entry.seq });

    // An attacker's own key, with a valid signature of its own, on the final checkpoint.
    const { privateKey } = generateKeyPairSync("ed25519");
    const raw = rawPublicKey(privateKey);
    const last = lines.length - 1;
    const resigned = parse(lines[last]!);
    const c = resigned.checkpoint;
    c.publicKey = raw.toString("base64");
    c.keyFingerprint = fingerprintOfRaw(raw);
    c.signature = sign(null, Buffer.from(checkpointMessage(c.logId, c.seq, c.head)), privateKey).toString("base64");
    const swapped = lines.slice();
    swapped[last] = JSON.stringify(resigned);
    writeLines(env.logFile, rechain(swapped, last));
    // Even without a pin: the server that wrote this part announced its key at its start, and
    // a server signs with that key until it stops.
    const unpinned = await verifyAudit(env.logFile);
    assertFailure(unpinned, { line: last + 1, reason: "key_mismatch", seq: resigned.seq });
    assert.match(unpinned.failure!.message, /announced key [0-9a-f]{64} at its start \(seq 1\) and did not restart since/);
    assertFailure(await verifyAudit(env.logFile, { pubkeyPem: publicPem(env) }), { line: last + 1, reason: "key_mismatch" });

    // A fingerprint that does not belong to the key.
    const lying = parse(lines[cp]!);
    lying.checkpoint.keyFingerprint = "f".repeat(64);
    const lied = lines.slice();
    lied[cp] = JSON.stringify(lying);
    writeLines(env.logFile, rechain(lied, cp));
    assertFailure(await verifyAudit(env.logFile), { line: cp + 1, reason: "bad_checkpoint" });
  } finally {
    env.cleanup();
  }
});

void test("a pinned key that did not sign the log fails at the first signature: the server_start's seal", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    const other = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    const start = indexOf(lines, "server_start");
    assertFailure(await verifyAudit(env.logFile, { pubkeyPem: other }), { line: start + 1, reason: "key_mismatch" });
    // A log written before starts were sealed: its first checkpoint.
    const unsealed = lines.map((line) => {
      const entry = parse(line);
      if (entry.event !== "server_start") return line;
      delete entry.data.continues;
      return JSON.stringify(entry);
    });
    writeLines(env.logFile, rewrite(unsealed, 0, keyPem(env)));
    assertFailure(await verifyAudit(env.logFile, { pubkeyPem: other }), { line: indexOf(lines, "checkpoint") + 1, reason: "key_mismatch" });
  } finally {
    env.cleanup();
  }
});

void test("reordered entries fail at the first displaced one; duplicated or inserted ones at the repeat", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    // Lines 2 and 3 (seq 2 and 3) are tool calls.
    assert.equal(parse(lines[1]!).event, "tool_call");
    assert.equal(parse(lines[2]!).event, "tool_call");
    const swapped = lines.slice();
    [swapped[1], swapped[2]] = [swapped[2]!, swapped[1]!];
    writeLines(env.logFile, swapped);
    assertFailure(await verifyAudit(env.logFile), { line: 2, reason: "seq_gap", seq: 3 });

    const duplicated = lines.slice();
    duplicated.splice(2, 0, lines[1]!);
    writeLines(env.logFile, duplicated);
    assertFailure(await verifyAudit(env.logFile), { line: 3, reason: "seq_order", seq: 2 });

    // A well-formed forged entry that links correctly: the original successor then repeats its seq.
    const body = parse(lines[1]!);
    const forged = rechain([lines[1]!, JSON.stringify({ ...body, seq: 3, requestId: "forged" })], 1)[1]!;
    const inserted = lines.slice();
    inserted.splice(2, 0, forged);
    writeLines(env.logFile, inserted);
    assertFailure(await verifyAudit(env.logFile), { line: 4, reason: "seq_order", seq: 3 });

    const garbage = lines.slice();
    garbage.splice(2, 0, "not json");
    writeLines(env.logFile, garbage);
    assertFailure(await verifyAudit(env.logFile), { line: 3, reason: "unparseable" });
  } finally {
    env.cleanup();
  }
});

void test("a rotated segment whose end was cut is not said to be a torn write the next start sets aside (a start refuses it)", async () => {
  const env = tempEnv();
  try {
    const { segments } = await rotatedLog(env);
    const newest = segments.at(-1)!;
    const bytes = fs.readFileSync(newest);
    fs.writeFileSync(newest, bytes.subarray(0, bytes.length - 30));
    const lines = bytes.toString("utf8").split("\n").length - 1;
    for (const target of [env.logDir, newest]) {
      const summary = await verifyAudit(target);
      assertFailure(summary, { line: lines, reason: "torn_tail", file: newest });
      assert.doesNotMatch(summary.failure!.message, /starting the server keeps such a line aside/);
      assert.match(summary.failure!.message, /rotated segment/);
    }
    // The server, with the active file gone, continues from the newest segment: it refuses this one.
    fs.rmSync(env.logFile);
    await assert.rejects(openTestLog(env, { rotate_bytes: 1200 }), (err: unknown) => err instanceof AuditOpenError && err.code === "AUDIT_TAMPERED");
    // The active file's own cut end is still the torn write a start recovers.
    const sink = await openTestLog(env, { log_file: path.join(env.root, "other.log") });
    await sink.close();
    const other = fs.readFileSync(path.join(env.root, "other.log"));
    fs.writeFileSync(path.join(env.root, "other.log"), other.subarray(0, other.length - 30));
    assert.match((await verifyAudit(path.join(env.root, "other.log"))).failure!.message, /starting the server keeps such a line aside/);
  } finally {
    env.cleanup();
  }
});

void test("truncation: a cut line is a torn tail; whole entries cut off the end are caught by the expected head", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    const full = fs.readFileSync(env.logFile);
    fs.writeFileSync(env.logFile, full.subarray(0, full.length - 40));
    assertFailure(await verifyAudit(env.logFile), { line: lines.length, reason: "torn_tail" });

    const kept = lines.slice(0, -3);
    writeLines(env.logFile, kept);
    const head = parse(lines.at(-1)!).hash;
    const shortened = await verifyAudit(env.logFile);
    assert.equal(shortened.ok, true, "a chain cut at an entry boundary is self-consistent");
    const lastCheckpoint = kept.map(parse).findLastIndex((e) => e.event === "checkpoint");
    assert.equal(shortened.unsealedEntries, kept.length - 1 - lastCheckpoint);
    assertFailure(await verifyAudit(env.logFile, { expectHead: head }), { line: lines.length - 3, reason: "truncated" });

    writeLines(env.logFile, lines.slice(3));
    assertFailure(await verifyAudit(env.logFile), { line: 1, reason: "missing_start", seq: 4 });
  } finally {
    env.cleanup();
  }
});

void test("form and shape: reformatting, unknown fields, foreign log ids", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    const spaced = lines.slice();
    spaced[2] = JSON.stringify(parse(lines[2]!), null, 0).replace('{"', '{ "');
    writeLines(env.logFile, spaced);
    assertFailure(await verifyAudit(env.logFile), { line: 3, reason: "not_canonical", seq: 3 });

    const extra = lines.slice();
    extra[2] = JSON.stringify({ ...parse(lines[2]!), sneaky: true });
    writeLines(env.logFile, rechain(extra, 2));
    assertFailure(await verifyAudit(env.logFile), { line: 3, reason: "bad_entry", seq: 3 });

    const stop = indexOf(lines, "server_stop");
    const foreign = lines.slice();
    const e = parse(foreign[stop]!);
    e.data.logId = "another-log";
    foreign[stop] = JSON.stringify(e);
    writeLines(env.logFile, rechain(foreign, stop));
    assertFailure(await verifyAudit(env.logFile), { line: stop + 1, reason: "log_id_mismatch" });
  } finally {
    env.cleanup();
  }
});

void test("rotated logs: a deleted middle segment and a deleted first segment are detected", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env, { rotate_bytes: 1200 });
    await appendCalls(sink, 30);
    await sink.close();
    const segments = fs.readdirSync(env.logDir).filter((n) => n.startsWith("audit-")).sort();
    assert.ok(segments.length >= 3);
    const intact = await verifyAudit(env.logDir);
    assert.equal(intact.ok, true);

    // Verifying one segment alone is allowed, with a note that earlier files were not checked.
    const single = await verifyAudit(path.join(env.logDir, segments[1]!));
    assert.equal(single.ok, true);
    assert.ok(single.warnings.some((w) => /verification starts at seq/.test(w)));
    const firstOnly = await verifyAudit(path.join(env.logDir, segments[0]!));
    assert.equal(firstOnly.ok, true);
    assert.ok(firstOnly.warnings.some((w) => /only the segment .* was checked, not the files after it/.test(w)), firstOnly.warnings.join(" | "));

    const middle = path.join(env.logDir, segments[1]!);
    const saved = fs.readFileSync(middle);
    fs.rmSync(middle);
    assertFailure(await verifyAudit(env.logDir), { line: 1, reason: "seq_gap", file: path.join(env.logDir, segments[2]!) });
    assertFailure(await verifyAudit(env.logFile), { line: 1, reason: "seq_gap" });
    fs.writeFileSync(middle, saved);

    fs.rmSync(path.join(env.logDir, segments[0]!));
    assertFailure(await verifyAudit(env.logDir), { line: 1, reason: "missing_start", file: middle });
  } finally {
    env.cleanup();
  }
});

void test("a crashed log (no final checkpoint): unsealed entries are counted; a pinned key then has nothing to check", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env);
    await appendCalls(sink, 3);
    // No close: as after a crash.
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true);
    assert.equal(summary.checkpoints, 0);
    assert.equal(summary.unsealedEntries, 4);
    const pinned = await verifyAudit(env.logFile, { pubkeyPem: publicPem(env) });
    assertFailure(pinned, { line: 4, reason: "no_checkpoint" });
    await sink.close();
    const closed = await verifyAudit(env.logFile, { pubkeyPem: publicPem(env) });
    assert.equal(closed.ok, true);
  } finally {
    env.cleanup();
  }
});

void test("time running backwards is a warning, not a failure", async () => {
  const env = tempEnv();
  try {
    let now = new Date("2026-11-22T10:00:00.000Z");
    const sink = await openTestLog(env, {}, { now: () => now });
    await appendCalls(sink, 1);
    now = new Date("2026-11-22T09:00:00.000Z");
    await appendCalls(sink, 1);
    await sink.close();
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true);
    assert.ok(summary.warnings.some((w) => /time goes backwards at seq 3/.test(w)));
  } finally {
    env.cleanup();
  }
});

void test("paths that are not audit logs are unreadable (AuditReadError), not tampered", async () => {
  const env = tempEnv();
  try {
    fs.mkdirSync(env.logDir, { recursive: true });
    const text = path.join(env.logDir, "notes.txt");
    fs.writeFileSync(text, "hello\nworld\n");
    await assert.rejects(verifyAudit(text), AuditReadError);
    const empty = path.join(env.logDir, "empty.log");
    fs.writeFileSync(empty, "");
    await assert.rejects(verifyAudit(empty), AuditReadError);
    await assert.rejects(verifyAudit(path.join(env.root, "missing.log")), AuditReadError);
    await assert.rejects(verifyAudit(env.logDir), AuditReadError, "a directory without audit logs");
    await assert.rejects(verifyAudit(text, { pubkeyPem: "not a key" }), AuditReadError);
    await assert.rejects(verifyAudit(text, { expectHead: "abc" }), AuditReadError);

    // Unrelated .log files and links next to a real log are skipped with a warning; a
    // directory (the key directory beside a log in the state directory) silently.
    fs.writeFileSync(path.join(env.logDir, "server.log"), "plain text\n");
    fs.mkdirSync(path.join(env.logDir, "keys"));
    fs.symlinkSync(path.join(env.root, "nowhere"), path.join(env.logDir, "old.log"));
    await sampleLog(env);
    const summary = await verifyAudit(env.logDir);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.ok(summary.warnings.some((w) => /server\.log is not an audit log; skipped/.test(w)));
    assert.ok(summary.warnings.some((w) => /empty\.log is empty; skipped/.test(w)));
    assert.ok(summary.warnings.some((w) => /old\.log is not a regular file \(a link, a device…\); skipped/.test(w)), summary.warnings.join(" | "));
    assert.ok(!summary.warnings.some((w) => /keys/.test(w)), summary.warnings.join(" | "));
  } finally {
    env.cleanup();
  }
});

/** A rotated log whose active file is `name` in the env's log dir; returns its path and its segments. */
async function rotatedLog(env: TempEnv, name = "audit.log"): Promise<{ active: string; segments: string[] }> {
  const active = path.join(env.logDir, name);
  const sink = await openTestLog(env, { rotate_bytes: 1200, log_file: active });
  await appendCalls(sink, 30);
  await sink.close();
  const segments = fs
    .readdirSync(env.logDir)
    .filter((n) => n !== name && !n.endsWith(".lock"))
    .sort()
    .map((n) => path.join(env.logDir, n));
  assert.ok(segments.length >= 2, `rotated: ${segments.join(", ")}`);
  return { active, segments };
}

void test("a directory's active file is checked whatever its name: an edit in `auditlog` (no extension) fails", async () => {
  const env = tempEnv();
  try {
    const { active } = await rotatedLog(env, "auditlog");
    assert.equal((await verifyAudit(env.logDir)).ok, true);
    const lines = readLines(active);
    const i = indexOf(lines, "tool_call", 1);
    const edited = parse(lines[i]!);
    edited.tool = "other";
    lines[i] = JSON.stringify(edited);
    writeLines(active, lines);
    assertFailure(await verifyAudit(env.logDir), { line: i + 1, reason: "hash_mismatch", file: active });
    assertFailure(await verifyAudit(active), { line: i + 1, reason: "hash_mismatch", file: active });
  } finally {
    env.cleanup();
  }
});

void test("an active file that is missing, hidden, emptied or a symlink is said: its segments verify, with a warning", async () => {
  const env = tempEnv();
  try {
    const { active, segments } = await rotatedLog(env);
    const saved = fs.readFileSync(active);
    const cases: Array<[string, () => void]> = [
      ["missing", () => fs.rmSync(active)],
      ["hidden", () => fs.renameSync(active, path.join(env.logDir, ".audit.log"))],
      ["empty", () => fs.writeFileSync(active, "")],
      ["a symbolic link", () => {
        fs.writeFileSync(path.join(env.root, "elsewhere.log"), saved);
        fs.rmSync(active);
        fs.symlinkSync(path.join(env.root, "elsewhere.log"), active);
      }],
    ];
    for (const [what, damage] of cases) {
      damage();
      for (const target of [env.logDir, active]) {
        const summary = await verifyAudit(target);
        assert.equal(summary.ok, true, `${what}, ${target}: ${JSON.stringify(summary.failure)}`);
        assert.deepEqual(summary.files.map((f) => f.path), segments, `${what}: the segments were checked`);
        assert.ok(
          summary.warnings.some((w) => /the active file audit\.log .*: the chain ends with the last rotated segment/.test(w)),
          `${what}, ${target}: ${summary.warnings.join(" | ")}`,
        );
      }
      fs.rmSync(active, { force: true });
      fs.rmSync(path.join(env.logDir, ".audit.log"), { force: true });
      fs.writeFileSync(active, saved);
    }
  } finally {
    env.cleanup();
  }
});

void test("two logs in one directory are not merged into one (false) tampering: verify asks for one of them", async () => {
  const env = tempEnv();
  try {
    for (const name of ["a.log", "b.log"]) {
      const sink = await openTestLog(env, { log_file: path.join(env.logDir, name) });
      await appendCalls(sink, 3);
      await sink.close();
    }
    await assert.rejects(verifyAudit(env.logDir), (err: unknown) => err instanceof AuditReadError && /holds 2 audit logs \(a\.log, b\.log\)/.test(err.message));
    for (const name of ["a.log", "b.log"]) assert.equal((await verifyAudit(path.join(env.logDir, name))).ok, true, name);
  } finally {
    env.cleanup();
  }
});

void test("a damaged first line is tampering at line 1 (not 'not an audit log'): a cut character, a BOM, a long line of junk", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    for (const [what, first] of [
      ["a cut character", lines[0]!.slice(1)],
      ["a BOM", `\ufeff${lines[0]!}`],
      // Longer than the window of the file's start that is looked at to tell a log from another file.
      ["70 KB of junk", "x".repeat(70_000)],
      ["junk put before it", `${"y".repeat(70_000)}\n${lines[0]!}`],
    ] as const) {
      writeLines(env.logFile, [first, ...lines.slice(1)]);
      for (const target of [env.logFile, env.logDir]) {
        assertFailure(await verifyAudit(target), { line: 1, reason: "unparseable", file: env.logFile });
      }
      assert.ok(what.length > 0);
    }
  } finally {
    env.cleanup();
  }
});

void test("a segment whose first seq was edited is blamed itself (files are ordered by their names, not their content)", async () => {
  const env = tempEnv();
  try {
    const { segments } = await rotatedLog(env);
    const second = segments[1]!;
    const lines = readLines(second);
    const first = parse(lines[0]!);
    first.seq = 9999;
    lines[0] = JSON.stringify(first);
    writeLines(second, lines);
    const summary = await verifyAudit(env.logDir);
    assert.equal(summary.ok, false);
    assert.equal(summary.failure?.file, second, JSON.stringify(summary.failure));
    assert.equal(summary.failure?.line, 1);
  } finally {
    env.cleanup();
  }
});

void test("bytes that are not UTF-8 in place of a U+FFFD the writer wrote are tampering (the decoded text alone reads the same)", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env, { checkpoint_every: 4 });
    await appendCalls(sink, 2);
    // A client's argument holding U+FFFD (a replacement character is ordinary text).
    await sink.append({ event: "tool_call", tool: "fs_read", requestId: "r", arguments: { path: "a\ufffdb" }, outcome: "ok", durationMs: 1 });
    await appendCalls(sink, 2, 2);
    await sink.close();
    const original = fs.readFileSync(env.logFile);
    const at = original.indexOf(Buffer.from("a\ufffdb"));
    assert.ok(at > 0);
    const line = original.subarray(0, at).toString("latin1").split("\n").length;
    const seq = parse(readLines(env.logFile)[line - 1]!).seq as number;
    assert.equal((await verifyAudit(env.logFile)).ok, true);
    // Each decodes to one U+FFFD: a lone byte that never starts or continues a character, a
    // lead byte without its continuation, sequences cut short.
    for (const bytes of [[0xff], [0x80], [0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98]]) {
      fs.writeFileSync(env.logFile, Buffer.concat([original.subarray(0, at + 1), Buffer.from(bytes), original.subarray(at + 4)]));
      assertFailure(await verifyAudit(env.logFile), { line, reason: "not_canonical", seq });
    }
  } finally {
    env.cleanup();
  }
});

void test("an entry longer than 64 MiB (arguments a policy admits) verifies: the bound on a line is what the writer can make", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env, { checkpoint_every: 4 });
    await appendCalls(sink, 2);
    // limits.max_argument_bytes goes to 1 GiB and --max-line-bytes to 512 MiB: such a call is recorded whole.
    await sink.append({ event: "tool_call", tool: "fs_write", requestId: "big", arguments: { content: "x".repeat(65 * 1024 * 1024) }, outcome: "ok", durationMs: 1 });
    await appendCalls(sink, 2, 2);
    await sink.close();
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.equal(summary.entries, readLines(env.logFile).length);
  } finally {
    env.cleanup();
  }
});

void test("a running server's log read mid-write (its end cut for a moment) is not called torn; a torn end still is", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    const text = lines.map((line) => `${line}\n`).join("");
    const cut = text.length - 100;
    // The reader reaches the end while the writer's last write is half in the file (a write
    // of more than a page shows a page at a time); the rest arrives just after.
    fs.writeFileSync(env.logFile, text.slice(0, cut));
    let completed = false;
    const layer: AuditFs = {
      ...nodeAuditFs,
      async read(fd, buffer, offset, length, position) {
        const n = await nodeAuditFs.read(fd, buffer, offset, length, position);
        if (n === 0 && !completed) {
          completed = true;
          setTimeout(() => fs.appendFileSync(env.logFile, text.slice(cut)), 5);
        }
        return n;
      },
    };
    const live = await verifyAudit(env.logFile, { fs: layer });
    assert.equal(live.ok, true, JSON.stringify(live.failure));
    assert.equal(live.entries, lines.length);

    // A line that stays cut is torn, after a short wait only.
    fs.writeFileSync(env.logFile, text.slice(0, cut));
    const started = Date.now();
    assertFailure(await verifyAudit(env.logFile), { line: lines.length, reason: "torn_tail" });
    assert.ok(Date.now() - started < 2_000, "the wait for the rest of a line is short");
  } finally {
    env.cleanup();
  }
});

void test("warnings past the cap are counted, not dropped without a trace; a directory of many other files is said in a few lines", async () => {
  const env = tempEnv();
  try {
    // A clock stepped back: every entry after the step warns, and the cap is reached.
    let now = Date.parse("2026-11-22T10:00:00.000Z");
    const sink = await openTestLog(env, {}, { now: () => new Date(now) });
    await appendCalls(sink, 1);
    for (let i = 0; i < 30; i++) {
      now -= 1000;
      await appendCalls(sink, 1);
    }
    await sink.close();
    for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(env.logDir, `notes-${String(i).padStart(2, "0")}.txt`), "text\n");
    const summary = await verifyAudit(env.logDir);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    const skipped = summary.warnings.filter((w) => /skipped$/.test(w));
    assert.equal(skipped.length, 11, skipped.join(" | "));
    assert.match(skipped.at(-1)!, /^30 more files in .* are not audit logs; skipped$/);
    const times = summary.warnings.filter((w) => /time goes backwards/.test(w));
    assert.equal(times.length, 20, "the first 20 warnings of the chain are kept, whatever the directory held");
    // 30 entries warn (and the server_stop and final checkpoint after them): 12 more.
    assert.match(summary.warnings.at(-1)!, /^12 more warnings were left out/);
  } finally {
    env.cleanup();
  }
});

void test("the signing key changes at a restart (a new key file): intact, reported; a checkpoint of the old key after the new start fails", async () => {
  const env = tempEnv();
  try {
    const first = await openTestLog(env, { checkpoint_every: 3 });
    await appendCalls(first, 4);
    await first.close();
    const keyFile = path.join(env.root, "other-key.pem");
    const { privateKey } = generateKeyPairSync("ed25519");
    fs.writeFileSync(keyFile, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    const second = await openTestLog(env, { checkpoint_every: 3, signing_key: keyFile });
    await appendCalls(second, 4);
    await second.close();
    const lines = readLines(env.logFile);
    const starts = lines.map(parse).filter((e) => e.event === "server_start");
    assert.equal(starts.length, 2);
    const [oldKey, newKey] = starts.map((e) => e.data.keyFingerprint as string);
    assert.notEqual(oldKey, newKey);

    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.deepEqual(summary.keyFingerprints, [oldKey, newKey]);
    assert.equal(summary.keyFingerprint, newKey);
    assert.ok(summary.warnings.some((w) => w.includes(`from ${oldKey} to ${newKey}), at a restart`)), summary.warnings.join(" | "));
    // Pinned to either key, the other key's checkpoints fail.
    assert.equal((await verifyAudit(env.logFile, { pubkeyPem: publicPem(env) })).failure?.reason, "key_mismatch");

    // The old key's checkpoint moved past the second start (re-linked, re-signed by the old key's
    // owner): the second server announced the new key.
    const cp = indexOf(lines, "checkpoint", lines.findIndex((l) => parse(l).seq === starts[1]!.seq));
    const oldPem = fs.readFileSync(path.join(env.stateDir, "keys", "audit-ed25519.pem"), "utf8");
    const entry = parse(lines[cp]!);
    const raw = rawPublicKey(createPublicKey(oldPem));
    entry.checkpoint.publicKey = raw.toString("base64");
    entry.checkpoint.keyFingerprint = fingerprintOfRaw(raw);
    entry.checkpoint.signature = sign(null, Buffer.from(checkpointMessage(entry.checkpoint.logId, entry.checkpoint.seq, entry.checkpoint.head)), oldPem).toString("base64");
    const moved = lines.slice();
    moved[cp] = JSON.stringify(entry);
    assertFailure(await verifyAfter(env, rechain(moved, cp)), { line: cp + 1, reason: "key_mismatch", seq: entry.seq });
  } finally {
    env.cleanup();
  }
});

void test("a restart with a new key that rotates before its first entry (a new day) is intact: the rotation's checkpoint is the new server's", async () => {
  const env = tempEnv();
  try {
    let now = new Date("2026-11-22T18:00:00.000Z");
    const first = await openTestLog(env, { checkpoint_every: 3, rotate_daily: true }, { now: () => now });
    await appendCalls(first, 4);
    await first.close();
    const keyFile = path.join(env.root, "other-key.pem");
    fs.writeFileSync(keyFile, generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    now = new Date("2026-11-23T08:00:00.000Z");
    const second = await openTestLog(env, { checkpoint_every: 3, rotate_daily: true, signing_key: keyFile }, { now: () => now });
    await appendCalls(second, 4);
    await second.close();
    const segments = fs.readdirSync(env.logDir).filter((n) => n.startsWith("audit-"));
    assert.equal(segments.length, 1, "the restart on a new day rotated before writing");
    const segmentLines = readLines(path.join(env.logDir, segments[0]!)).map(parse);
    const newKey = readLines(env.logFile).map(parse).find((e) => e.event === "server_start")!.data.keyFingerprint as string;
    assert.equal(segmentLines.at(-1)!.checkpoint.keyFingerprint, newKey, "the segment is sealed by the new start's key");

    const summary = await verifyAudit(env.logDir);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.ok(summary.warnings.some((w) => w.includes(`to ${newKey}), at a restart`)), summary.warnings.join(" | "));

    // That checkpoint followed by anything but the rotation and the new start is still re-signed.
    const seg = path.join(env.logDir, segments[0]!);
    const active = readLines(env.logFile);
    const rotate = parse(active[0]!);
    assert.equal(rotate.event, "rotate");
    const forged = JSON.parse(active[0]!);
    forged.event = "tool_call";
    delete forged.data;
    fs.writeFileSync(env.logFile, [rechain([JSON.stringify(forged), ...active.slice(1)], 0)[0]!, ...active.slice(1)].map((l) => `${l}\n`).join(""));
    assertFailure(await verifyAudit(env.logDir), { line: segmentLines.length, reason: "key_mismatch", file: seg });
    // ... and so is the rotation followed by a start that announces another key.
    const start = active.findIndex((l) => parse(l).event === "server_start");
    const announced = parse(active[start]!);
    announced.data.keyFingerprint = "c".repeat(64);
    const relinked = rechain([...active.slice(0, start), JSON.stringify(announced), ...active.slice(start + 1)], start);
    writeLines(env.logFile, relinked);
    assertFailure(await verifyAudit(env.logDir), { line: segmentLines.length, reason: "key_mismatch", file: seg });
  } finally {
    env.cleanup();
  }
});

void test("an entry added after a server_stop while no server ran fails, though the next start sealed it (pinned key and kept head)", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    const head = parse(lines.at(-1)!).hash as string;
    const last = parse(lines.at(-1)!);
    // Someone without the key appends a call after the stopped server's final checkpoint ...
    const forged = serializeEntry({
      v: 1,
      seq: last.seq + 1,
      id: "01ARZ3NDEKTSV4RRFFQ69G5FAV",
      ts: last.ts,
      event: "tool_call",
      tool: "write_file",
      arguments: { path: "/data/alibi.txt" },
      outcome: "ok",
      prev: last.hash,
    }).line;
    fs.appendFileSync(env.logFile, `${forged}\n`);
    // ... and the next start builds on it and signs a head that covers it.
    const next = await openTestLog(env, { checkpoint_every: 4 });
    await appendCalls(next, 2);
    await next.close();
    const summary = await verifyAudit(env.logFile, { pubkeyPem: publicPem(env), expectHead: head });
    assertFailure(summary, { line: lines.length + 1, reason: "after_stop", seq: last.seq + 1 });
    // What a start writes before its server_start (a rotation's checkpoint and rotate entry, recovery entries) is not that.
    const env2 = tempEnv();
    try {
      let now = new Date("2026-11-22T18:00:00.000Z");
      for (let day = 0; day < 2; day++) {
        const sink = await openTestLog(env2, { checkpoint_every: 3, rotate_daily: true }, { now: () => now });
        await appendCalls(sink, 4);
        await sink.close();
        now = new Date("2026-11-23T08:00:00.000Z");
      }
      fs.appendFileSync(env2.logFile, '{"v":1,"seq":');
      await (await openTestLog(env2, { checkpoint_every: 3, rotate_daily: true }, { now: () => now })).close();
      const intact = await verifyAudit(env2.logDir);
      assert.equal(intact.ok, true, JSON.stringify(intact.failure));
      assert.equal(intact.recoveries.length, 1);
    } finally {
      env2.cleanup();
    }
  } finally {
    env.cleanup();
  }
});

async function verifyAfter(env: TempEnv, lines: string[]): Promise<AuditVerifySummary> {
  writeLines(env.logFile, lines);
  return verifyAudit(env.logFile);
}

void test("a new key's checkpoint among the recovery entries a restart writes before its server_start is the new server's: intact", async () => {
  const env = tempEnv();
  try {
    const first = await openTestLog(env, { checkpoint_every: 1 });
    await appendCalls(first, 2);
    await first.close();
    fs.appendFileSync(env.logFile, '{"seq":'); // a torn line: the next start records a recovery first
    const keyFile = path.join(env.root, "other-key.pem");
    fs.writeFileSync(keyFile, generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    const second = await openTestLog(env, { checkpoint_every: 1, signing_key: keyFile });
    await appendCalls(second, 1);
    await second.close();
    const events = readLines(env.logFile).map((l) => parse(l).event as string);
    const recovery = events.indexOf("recovery");
    assert.deepEqual(events.slice(recovery, recovery + 3), ["recovery", "checkpoint", "server_start"]);
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.equal(summary.keyFingerprints.length, 2);
  } finally {
    env.cleanup();
  }
});

void test("entries cut off just after a checkpoint: intact in every other way, so the open end is said (it was silent)", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    assert.equal(parse(lines.at(-2)!).event, "server_stop", "a closed log ends with server_stop and its checkpoint");
    // Cut after the last checkpoint before the stop: no unsigned tail is left to warn about.
    const cp = lines.findLastIndex((l, i) => i < lines.length - 2 && parse(l).event === "checkpoint");
    const cut = lines.slice(0, cp + 1);
    writeLines(env.logFile, cut);
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.equal(summary.unsealedEntries, 0);
    const last = parse(cut.at(-2)!);
    assert.ok(
      summary.warnings.some((w) => w.startsWith(`the log ends at seq ${last.seq} (${last.event}) without a server_stop`) && /--expect-head/.test(w)),
      summary.warnings.join(" | "),
    );
    // The expected head then names the cut.
    assertFailure(await verifyAudit(env.logFile, { expectHead: parse(lines.at(-1)!).hash }), { line: cut.length, reason: "truncated" });
  } finally {
    env.cleanup();
  }
});

void test("a log that rotates while verify reads it is verified as one chain, not as a gap or a missing file (a running server's log)", async () => {
  const env = tempEnv();
  try {
    const { active, segments } = await rotatedLog(env);
    const newest = segments.at(-1)!;
    const activeText = fs.readFileSync(active);
    const moments = [
      "while a segment is read",
      "as verify opens the active file",
      "between the rename and the new file, at the first look at the directory",
      "between the rename and the new file, as verify opens the active file",
    ] as const;
    for (const moment of moments) {
      // Before: the newest segment's entries are still in the active file.
      fs.rmSync(active);
      fs.renameSync(newest, active);
      let rotated = false;
      let segmentRead = false;
      const opened = new Map<number, string>();
      const layer: AuditFs = {
        ...nodeAuditFs,
        async open(file, flags, mode) {
          const verifying = segmentRead; // the probes of the directory's files come before any segment is read
          if (file === active && !rotated && moment.startsWith("between") && verifying === moment.endsWith("active file")) {
            // The server has renamed the active file and not yet made the new one: the open fails.
            rotated = true;
            fs.renameSync(active, newest);
            const gone = nodeAuditFs.open(file, flags, mode);
            await gone.catch(() => fs.writeFileSync(active, activeText));
            return gone;
          }
          const fd = await nodeAuditFs.open(file, flags, mode);
          opened.set(fd, file);
          if (moment === "as verify opens the active file" && file === active && verifying && !rotated) {
            rotated = true;
            fs.renameSync(active, newest);
            fs.writeFileSync(active, activeText);
          }
          return fd;
        },
        async read(fd, buffer, offset, length, position) {
          if (opened.get(fd) !== active) {
            segmentRead = true;
            if (moment === "while a segment is read" && !rotated) {
              rotated = true;
              fs.renameSync(active, newest);
              fs.writeFileSync(active, activeText);
            }
          }
          return nodeAuditFs.read(fd, buffer, offset, length, position);
        },
      };
      const summary = await verifyAudit(env.logDir, { fs: layer });
      assert.ok(rotated, moment);
      assert.equal(summary.ok, true, `${moment}: ${JSON.stringify(summary.failure)}`);
      if (moment === "as verify opens the active file") {
        // The file opened is checked as it was (renamed since), once: the log as at the open.
        assert.deepEqual(summary.files.map((f) => f.path), [...segments.slice(0, -1), active], moment);
        assert.equal(summary.lastSeq, parse(readLines(newest).at(-1)!).seq, moment);
      } else {
        // The segment rotated out meanwhile is checked before the new active file.
        assert.deepEqual(summary.files.map((f) => f.path), [...segments, active], moment);
        assert.equal(summary.lastSeq, parse(readLines(active).at(-1)!).seq, moment);
      }
    }
  } finally {
    env.cleanup();
  }
});

/**
 * A session of `calls` calls (checkpoint_every `every`) whose end a crash cut just after its
 * last call: its server_stop, and the checkpoint after the last call if one was due, never
 * reached the file (a batch written in part).
 */
async function crashedSession(env: TempEnv, every: number, calls: number): Promise<string[]> {
  const sink = await openTestLog(env, { checkpoint_every: every });
  await appendCalls(sink, calls);
  await sink.close();
  const lines = readLines(env.logFile);
  const cut = lines.slice(0, lines.findLastIndex((l) => parse(l).event === "tool_call") + 1);
  writeLines(env.logFile, cut);
  return cut;
}

function keyPem(env: TempEnv): string {
  return fs.readFileSync(path.join(env.stateDir, "keys", "audit-ed25519.pem"), "utf8");
}

/** Copies of the entry at `at` (a tool_call), inserted after it, with requestIds of their own. */
function withForgedCalls(lines: string[], at: number, count: number): string[] {
  const forged = Array.from({ length: count }, (_, i) => JSON.stringify({ ...parse(lines[at]!), requestId: `forged-${i}` }));
  return rewrite([...lines.slice(0, at + 1), ...forged, ...lines.slice(at + 1)], at + 1);
}

void test("a tail rewritten past the checkpoint interval without the key fails with missing_checkpoint where the checkpoint was due", async () => {
  const env = tempEnv();
  try {
    // checkpoint_every 4: server_start c0 c1 c2 CP c3 c4 c5 c6 CP c7 c8 (c8 the last line: 2 entries unsealed).
    const lines = await crashedSession(env, 4, 9);
    const events = lines.map((l) => parse(l).event as string);
    assert.deepEqual(events.slice(-3), ["checkpoint", "tool_call", "tool_call"]);
    const last = lines.length - 1;

    // Two forged calls: 4 unsealed entries, as many as a crash before the due checkpoint leaves. Not provable.
    const two = await verifyAfter(env, withForgedCalls(lines, last, 2));
    assert.equal(two.ok, true, JSON.stringify(two.failure));
    assert.equal(two.checkpointEvery, 4);

    // Three: the 5th entry without a checkpoint, which the server never writes.
    const three = withForgedCalls(lines, last, 3);
    const due = parse(three[last + 3]!);
    const summary = await verifyAfter(env, three);
    assertFailure(summary, { line: last + 4, reason: "missing_checkpoint", seq: due.seq });
    assert.match(summary.failure!.message, new RegExp(`checkpoint_every 4 .* one over seq ${due.seq - 1} was due here, at seq ${due.seq}\\b`));
    assert.match(summary.failure!.message, /without the signing key/);

    // A restart after the forged tail (a crash as the excuse) continues from it: still caught, where it was due.
    const restarted = await openTestLog(env, { checkpoint_every: 4 });
    await appendCalls(restarted, 2);
    await restarted.close();
    assertFailure(await verifyAudit(env.logFile), { line: last + 4, reason: "missing_checkpoint", seq: due.seq });
  } finally {
    env.cleanup();
  }
});

void test("a checkpoint removed (the chain re-hashed after it) fails at the entry that took its place", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env); // checkpoint_every 4
    const cp = indexOf(lines, "checkpoint", indexOf(lines, "checkpoint") + 1);
    const removed = rewrite([...lines.slice(0, cp), ...lines.slice(cp + 1)], cp);
    const summary = await verifyAfter(env, removed);
    assertFailure(summary, { line: cp + 1, reason: "missing_checkpoint", seq: parse(lines[cp]!).seq });
    assert.match(summary.failure!.message, new RegExp(`after its checkpoint at seq ${parse(lines[indexOf(lines, "checkpoint")]!).seq}`));
    // Even re-signed by the key's holder the position is wrong: the server never writes this log.
    assertFailure(await verifyAfter(env, rewrite(removed, cp, keyPem(env))), { line: cp + 1, reason: "missing_checkpoint" });
  } finally {
    env.cleanup();
  }
});

void test("a log whose server_start records no checkpointEvery (written before servers did) verifies as before: no interval is checked", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    // What an older server wrote: the same log without the field (re-signed with its key).
    const start = parse(lines[0]!);
    assert.equal(start.data.checkpointEvery, 4);
    delete start.data.checkpointEvery;
    const old = rewrite([JSON.stringify(start), ...lines.slice(1)], 0, keyPem(env));
    const summary = await verifyAfter(env, old);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.equal(summary.checkpointEvery, undefined);
    assert.deepEqual(summary.warnings, []);
    assert.equal("checkpointEvery" in summary, false);

    // A checkpoint removed: nothing says it was due (as before), where the same log with the field fails.
    const cp = indexOf(old, "checkpoint");
    const removed = await verifyAfter(env, rewrite([...old.slice(0, cp), ...old.slice(cp + 1)], cp, keyPem(env)));
    assert.equal(removed.ok, true, JSON.stringify(removed.failure));
    const withField = await verifyAfter(env, rewrite([...lines.slice(0, cp), ...lines.slice(cp + 1)], cp, keyPem(env)));
    assertFailure(withField, { line: cp + 1, reason: "missing_checkpoint" });

    // Its unsealed end is said as before, with nothing about an interval.
    const cut = old.slice(0, indexOf(old, "server_stop"));
    const crashed = await verifyAfter(env, cut);
    assert.equal(crashed.ok, true, JSON.stringify(crashed.failure));
    assert.equal(crashed.warnings[0], `${crashed.unsealedEntries} entries after the last checkpoint are not covered by a signature yet`);
  } finally {
    env.cleanup();
  }
});

void test("a crash with the most entries a server leaves unsealed, then a restart (with and without a recovery entry): intact", async () => {
  for (const torn of [false, true]) {
    const env = tempEnv();
    try {
      // checkpoint_every 3: server_start c0 c1 CP c2 c3 c4, cut there: its checkpoint was due next.
      const lines = await crashedSession(env, 3, 5);
      assert.deepEqual(lines.slice(-4).map((l) => parse(l).event), ["checkpoint", "tool_call", "tool_call", "tool_call"]);
      if (torn) fs.appendFileSync(env.logFile, '{"seq":'); // the next start records a recovery first
      const sink = await openTestLog(env, { checkpoint_every: 3 });
      await appendCalls(sink, 4);
      await sink.close();
      const after = readLines(env.logFile).map((l) => parse(l).event as string);
      assert.deepEqual(after.slice(lines.length, lines.length + 2), torn ? ["recovery", "server_start"] : ["server_start", "tool_call"]);
      const summary = await verifyAudit(env.logFile);
      assert.equal(summary.ok, true, `torn ${torn}: ${JSON.stringify(summary.failure)}`);
      assert.equal(summary.recoveries.length, torn ? 1 : 0);
      assert.equal(summary.checkpointEvery, 3);
    } finally {
      env.cleanup();
    }
  }
});

void test("a server's session of many concurrent calls, a small checkpoint_every, rotations and a restart verifies (both fsync modes)", async () => {
  for (const fsync of ["always", "batch"] as const) {
    const env = tempEnv();
    try {
      const policy = { fsync, checkpoint_every: 3, rotate_bytes: 4000, fsync_interval_ms: 1 };
      const first = await openTestLog(env, policy);
      for (let round = 0; round < 4; round++) await appendCalls(first, 40, round * 40);
      await first.close();
      fs.appendFileSync(env.logFile, '{"seq":');
      const second = await openTestLog(env, policy);
      await Promise.all([appendCalls(second, 25), appendCalls(second, 25, 25)]);
      await second.close();
      const summary = await verifyAudit(env.logDir);
      assert.equal(summary.ok, true, `${fsync}: ${JSON.stringify(summary.failure)}`);
      assert.ok(summary.files.length > 3, `${fsync}: rotations happened (${summary.files.length} files)`);
      assert.equal(summary.recoveries.length, 1);
      assert.equal(summary.checkpointEvery, 3);
      // Every 3rd entry of each session is sealed at once, and rotations add theirs.
      assert.ok(summary.checkpoints >= Math.floor(212 / 3), `${fsync}: ${summary.checkpoints} checkpoints`);
    } finally {
      env.cleanup();
    }
  }
});

void test("the warning about unsealed entries at the end says they are within the interval, and which precede the last start", async () => {
  const env = tempEnv();
  try {
    // checkpoint_every 3: server_start c0 c1 CP c2 c3, cut there.
    const lines = await crashedSession(env, 3, 4);
    const crashed = await verifyAudit(env.logFile);
    assert.equal(crashed.ok, true, JSON.stringify(crashed.failure));
    assert.equal(
      crashed.warnings[0],
      "2 entries after the last checkpoint are not covered by a signature yet: all written by the server started at seq 1, " +
        "within its interval (it seals a checkpoint after every 3 entries; 2 counted so far, the next after 1 more)",
    );
    // A restart that crashed right after its server_start: 2 earlier entries and its own.
    const sink = await openTestLog(env, { checkpoint_every: 3 });
    await sink.close();
    const start = parse(readLines(env.logFile)[lines.length]!);
    assert.equal(start.event, "server_start");
    writeLines(env.logFile, [...lines, JSON.stringify(start)]);
    const again = await verifyAudit(env.logFile);
    assert.equal(again.ok, true, JSON.stringify(again.failure));
    assert.equal(
      again.warnings[0],
      `3 entries after the last checkpoint are not covered by a signature yet: 1 written by the server started at seq ${start.seq}, ` +
        "within its interval (it seals a checkpoint after every 3 entries; 1 counted so far, the next after 2 more); " +
        "the 2 before them precede its server_start (the end of a server that did not stop in order, or this start's recovery entries)",
    );
  } finally {
    env.cleanup();
  }
});

/** An entry appended by hand to `after` (the last line of the log): linked and hashed, never signed. */
function forgedAfter(after: string, fields: Record<string, unknown>): string {
  const last = parse(after);
  return serializeEntry({ v: 1, seq: last.seq + 1, id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", ts: last.ts, prev: last.hash, ...fields } as never).line;
}

void test("every server_start is sealed: it signs, with the key it announces, the end of the chain it took up", async () => {
  const env = tempEnv();
  try {
    const first = await openTestLog(env, { checkpoint_every: 4 });
    await appendCalls(first, 2);
    await first.close();
    const stopped = readLines(env.logFile);
    const second = await openTestLog(env, { checkpoint_every: 4 });
    await appendCalls(second, 1);
    await second.close();
    const starts = readLines(env.logFile).map(parse).filter((entry) => entry.event === "server_start");
    assert.equal(starts.length, 2);
    const [genesis, restart] = starts as [Record<string, any>, Record<string, any>];
    assert.deepEqual([genesis.data.continues.seq, genesis.data.continues.head], [0, "0".repeat(64)], "a new log: the genesis");
    assert.deepEqual([restart.data.continues.seq, restart.data.continues.head], [parse(stopped.at(-1)!).seq, parse(stopped.at(-1)!).hash], "the stopped server's last entry");
    assert.equal(restart.data.continues.keyFingerprint, restart.data.keyFingerprint);
    const summary = await verifyAudit(env.logFile, { pubkeyPem: publicPem(env) });
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.deepEqual(summary.warnings, []);
  } finally {
    env.cleanup();
  }
});

void test("review finding: a forged session after a stop (its own server_start, then calls) fails at its server_start, though the next start sealed over it", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    const genesisStart = parse(lines[indexOf(lines, "server_start")]!);
    const forge = async (start: Record<string, unknown>): Promise<AuditVerifySummary> => {
      writeLines(env.logFile, lines);
      // A restart copied from the real one (or without its seal), then fewer calls than the checkpoint interval:
      // it looks like a session that crashed before its first checkpoint.
      const forgedStart = forgedAfter(lines.at(-1)!, start);
      const call = forgedAfter(forgedStart, { event: "tool_call", tool: "write_file", arguments: { path: "/data/alibi.txt" } });
      fs.appendFileSync(env.logFile, `${forgedStart}\n${call}\n`);
      const next = await openTestLog(env, { checkpoint_every: 4 });
      await appendCalls(next, 2);
      await next.close();
      return verifyAudit(env.logFile, { pubkeyPem: publicPem(env) });
    };
    const copied = await forge({ event: "server_start", data: genesisStart.data });
    assertFailure(copied, { line: lines.length + 1, reason: "bad_start", seq: parse(lines.at(-1)!).seq + 1 });
    assert.match(copied.failure!.message, /lies between the end of the chain .* and its server_start/);
    const { continues: _seal, ...unsealed } = genesisStart.data as Record<string, unknown>;
    const bare = await forge({ event: "server_start", data: unsealed });
    assertFailure(bare, { line: lines.length + 1, reason: "bad_start" });
    assert.match(bare.failure!.message, /no signed seal/);
    // Sealed with a key of the forger's own: refused with the key pinned, and said without it.
    const forgerKey = generateKeyPairSync("ed25519");
    const raw = rawPublicKey(forgerKey.publicKey);
    const last = parse(lines.at(-1)!);
    const seal = {
      logId: genesisStart.data.logId,
      seq: last.seq,
      head: last.hash,
      publicKey: raw.toString("base64"),
      keyFingerprint: fingerprintOfRaw(raw),
      signature: sign(null, Buffer.from(startSealMessage(genesisStart.data.logId as string, last.seq as number, last.hash as string, startRecordDigest({ ...unsealed, keyFingerprint: fingerprintOfRaw(raw) }))), forgerKey.privateKey).toString("base64"),
    };
    const ownKey = await forge({ event: "server_start", data: { ...unsealed, keyFingerprint: seal.keyFingerprint, continues: seal } });
    assertFailure(ownKey, { line: lines.length + 1, reason: "key_mismatch" });
    const unpinned = await verifyAudit(env.logFile);
    assert.equal(unpinned.ok, true, JSON.stringify(unpinned.failure));
    assert.ok(unpinned.warnings.some((warning) => warning.includes(`the signing key changes at seq ${last.seq + 1}`)), unpinned.warnings.join("\n"));
  } finally {
    env.cleanup();
  }
});

void test("an entry slipped in before a start, after the stopped server's checkpoint, is said; one rewritten under the start's seal fails", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    // A recovery entry (allowed between a stop and a start) appended by hand: the next start takes up the chain after it.
    fs.appendFileSync(env.logFile, `${forgedAfter(lines.at(-1)!, { event: "recovery", reason: "nothing happened", data: { kind: "torn_tail" } })}\n`);
    const next = await openTestLog(env, { checkpoint_every: 4 });
    await next.close();
    const summary = await verifyAudit(env.logFile, { pubkeyPem: publicPem(env) });
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    const stop = parse(lines[indexOf(lines, "server_stop")]!).seq as number;
    assert.ok(
      summary.warnings.some((warning) => warning.startsWith(`seq ${stop + 2} was written after the server_stop at seq ${stop}`)),
      summary.warnings.join("\n"),
    );
    // The entry the start signed, re-hashed with the chain after it (no key needed for that): the seal no longer matches.
    const all = readLines(env.logFile);
    const at = lines.length; // the slipped-in entry
    const edited = parse(all[at]!);
    edited.reason = "something else";
    const rewritten = rechain([...all.slice(0, at), JSON.stringify(edited), ...all.slice(at + 1)], at);
    writeLines(env.logFile, rewritten);
    const failed = await verifyAudit(env.logFile);
    assertFailure(failed, { line: at + 2, reason: "bad_start" });
    assert.match(failed.failure!.message, /is not the one the starting server found there and signed/);
  } finally {
    env.cleanup();
  }
});

void test("a checkpoint's signature is no start seal: a forged restart carrying a copied checkpoint body fails at its server_start", async () => {
  const env = tempEnv();
  try {
    const lines = await sampleLog(env);
    const genesisStart = parse(lines[indexOf(lines, "server_start")]!);
    // The stopped server's final checkpoint signs (logId, seq, head) of its server_stop: were a seal the same
    // message, it would seal a restart taken up at the server_stop, its checkpoint being a start's own entry.
    const finalCheckpoint = parse(lines.at(-1)!).checkpoint as Record<string, unknown>;
    const forgedStart = forgedAfter(lines.at(-1)!, { event: "server_start", data: { ...genesisStart.data, continues: finalCheckpoint } });
    const call = forgedAfter(forgedStart, { event: "tool_call", tool: "write_file", arguments: { path: "/data/alibi.txt" } });
    fs.appendFileSync(env.logFile, `${forgedStart}\n${call}\n`);
    const next = await openTestLog(env, { checkpoint_every: 4 });
    await appendCalls(next, 2);
    await next.close();
    assertFailure(await verifyAudit(env.logFile, { pubkeyPem: publicPem(env) }), { line: lines.length + 1, reason: "bad_signature" });
    const unpinned = await verifyAudit(env.logFile);
    assertFailure(unpinned, { line: lines.length + 1, reason: "bad_signature" });
    assert.match(unpinned.failure!.message, /^the server_start's seal: its signature does not verify with key [0-9a-f]{64}$/);
  } finally {
    env.cleanup();
  }
});

void test("a copy of the genesis start's seal fails far into a log too, where the entries after the genesis are no longer kept in memory", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env, { checkpoint_every: 1000 });
    await appendCalls(sink, 2100);
    await sink.close();
    const lines = readLines(env.logFile);
    const genesisStart = parse(lines[indexOf(lines, "server_start")]!);
    const forgedStart = forgedAfter(lines.at(-1)!, { event: "server_start", data: genesisStart.data });
    const call = forgedAfter(forgedStart, { event: "tool_call", tool: "write_file", arguments: { path: "/data/alibi.txt" } });
    fs.appendFileSync(env.logFile, `${forgedStart}\n${call}\n`);
    const next = await openTestLog(env, { checkpoint_every: 1000 });
    await next.close();
    const summary = await verifyAudit(env.logFile, { pubkeyPem: publicPem(env) });
    assertFailure(summary, { line: lines.length + 1, reason: "bad_start" });
  } finally {
    env.cleanup();
  }
});

void test("a copied seal that names an entry before the files verified (one segment alone) fails where entries of another session lie before it", async () => {
  const env = tempEnv();
  try {
    const { segments } = await rotatedLog(env);
    const genesisStart = parse(readLines(segments[0]!)[0]!);
    assert.equal(genesisStart.event, "server_start");
    const segment = segments[1]!;
    const lines = readLines(segment);
    assert.ok(lines.some((line) => parse(line).event === "tool_call"));
    const forgedStart = forgedAfter(lines.at(-1)!, { event: "server_start", data: genesisStart.data });
    fs.appendFileSync(segment, `${forgedStart}\n`);
    assertFailure(await verifyAudit(segment), { line: lines.length + 1, reason: "bad_start" });
  } finally {
    env.cleanup();
  }
});

void test("entries after a recovery entry but before any server_start fail: only a starting server writes recovery entries", async () => {
  const env = tempEnv();
  try {
    // A server that crashed (no server_stop) after a checkpoint; a forger appends a recovery entry, which ends the
    // running server's checkpoint interval as a restart would, then more calls than the interval allows.
    const sink = await openTestLog(env, { checkpoint_every: 4 });
    await appendCalls(sink, 3);
    const lines = readLines(env.logFile);
    await sink.close();
    writeLines(env.logFile, lines);
    assert.equal(parse(lines.at(-1)!).event, "checkpoint");
    const forged = [forgedAfter(lines.at(-1)!, { event: "recovery", reason: "nothing", data: { kind: "torn_tail" } })];
    for (let i = 0; i < 6; i++) forged.push(forgedAfter(forged.at(-1)!, { event: "tool_call", tool: "write_file", arguments: { path: `/data/${i}` } }));
    fs.appendFileSync(env.logFile, forged.map((line) => `${line}\n`).join(""));
    const next = await openTestLog(env, { checkpoint_every: 4 });
    await next.close();
    assertFailure(await verifyAudit(env.logFile, { pubkeyPem: publicPem(env) }), { line: lines.length + 2, reason: "bad_start", seq: parse(lines.at(-1)!).seq + 2 });
  } finally {
    env.cleanup();
  }
});

void test("a start's seal covers what the start records: the last start rewritten with checkpointEvery 0, to let unsigned calls run on, fails", async () => {
  const env = tempEnv();
  try {
    // A session that crashed before its first checkpoint; a forger rewrites its server_start to record no
    // interval and appends more calls than the real interval allows. The next real start seals over them.
    const lines = await crashedSession(env, 4, 2);
    const start = indexOf(lines, "server_start");
    const edited = parse(lines[start]!);
    edited.data.checkpointEvery = 0;
    const forged = [...lines.slice(0, start), JSON.stringify(edited), ...lines.slice(start + 1)];
    for (let i = 0; i < 6; i++) forged.push(forgedAfter(forged.at(-1)!, { event: "tool_call", tool: "write_file", arguments: { path: `/data/${i}` } }));
    writeLines(env.logFile, rechain(forged, start));
    const next = await openTestLog(env, { checkpoint_every: 4 });
    await next.close();
    assertFailure(await verifyAudit(env.logFile, { pubkeyPem: publicPem(env) }), { line: start + 1, reason: "bad_signature" });
  } finally {
    env.cleanup();
  }
});
