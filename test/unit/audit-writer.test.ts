import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import {
  auditHeadLine,
  nullAuditSink,
  openAuditLog,
  verifyAudit,
  AuditEntryError,
  AuditOpenError,
  AuditWriteError,
} from "../../src/security/audit/index.js";
import { GENESIS_PREV } from "../../src/security/audit/entry.js";
import { signerFromPrivateKey, type AuditSigner } from "../../src/security/audit/checkpoint.js";
import { ChainWriter } from "../../src/security/audit/writer.js";
import { ulidFactory } from "../../src/util/ids.js";
import { silentLogger } from "../../src/util/logger.js";
import { nodeAuditFs, syncWriteOf, type AuditFs } from "../../src/security/audit/fs-layer.js";
import {
  appendCalls,
  instrumentedFs,
  manualTimers,
  openOptions,
  openTestLog,
  parse,
  readLines,
  tempEnv,
  waitFor,
} from "../fixtures/audit-helpers.js";

void test("a new log: genesis server_start, modes 0600/0700, close writes server_stop and a final checkpoint", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env);
    const status = sink.status();
    assert.equal(status.ok, true);
    assert.equal(status.seq, 1);
    assert.equal(status.path, env.logFile);
    assert.equal(fs.statSync(env.logFile).mode & 0o777, 0o600);
    assert.equal(fs.statSync(env.logDir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(env.stateDir, "keys")).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(env.stateDir, "keys", "audit-ed25519.pem")).mode & 0o777, 0o600);

    const receipt = await sink.append({ event: "tool_call", tool: "fs_read", requestId: 7, callId: "c1", arguments: { path: "/a" }, outcome: "ok", durationMs: 2 });
    assert.equal(receipt.seq, 2);
    const head = await sink.close("test over");
    assert.ok(head);
    assert.equal(head.seq, 4);

    const entries = readLines(env.logFile).map(parse);
    assert.deepEqual(
      entries.map((e) => e.event),
      ["server_start", "tool_call", "server_stop", "checkpoint"],
    );
    const [start, call, stop, checkpoint] = entries;
    assert.equal(start!.prev, GENESIS_PREV);
    assert.equal(start!.v, 1);
    assert.equal(start!.seq, 1);
    assert.equal(start!.data.genesis, true);
    assert.equal(start!.data.serverVersion, "0.1.0-test");
    assert.equal(start!.data.policySha256, "a".repeat(64));
    assert.equal(start!.data.catalogSha256, "b".repeat(64));
    assert.equal(typeof start!.data.logId, "string");
    assert.match(start!.id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.match(start!.ts, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.equal(call!.prev, start!.hash);
    assert.equal(call!.requestId, 7);
    assert.equal(call!.callId, "c1");
    assert.deepEqual(call!.arguments, { path: "/a" });
    assert.equal(call!.hash, receipt.hash);
    assert.equal(stop!.reason, "test over");
    assert.equal(checkpoint!.checkpoint.seq, 3);
    assert.equal(checkpoint!.checkpoint.head, stop!.hash);
    assert.equal(head.head, checkpoint!.hash);
    assert.equal(auditHeadLine(head), `audit head: seq=4 hash=${checkpoint!.hash}`);
    // The lock is released at close.
    assert.equal(fs.existsSync(`${env.logFile}.lock`), false);
    // Appending after close is refused.
    await assert.rejects(sink.append({ event: "tool_call" }), (err: unknown) => err instanceof AuditWriteError && err.code === "AUDIT_CLOSED");
    assert.equal(await sink.close(), head, "close is idempotent");
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
  } finally {
    env.cleanup();
  }
});

/** A layer that notes, in order, the log file's creation, each directory fsync and each fdatasync. */
function durabilityTrace(): { layer: AuditFs; events: string[] } {
  const events: string[] = [];
  const opened = new Map<number, string>();
  const layer: AuditFs = {
    ...nodeAuditFs,
    async openLogFile(file) {
      const result = await nodeAuditFs.openLogFile(file);
      events.push(`create-or-open ${file}`);
      return result;
    },
    async open(file, flags, mode) {
      const fd = await nodeAuditFs.open(file, flags, mode);
      opened.set(fd, file);
      return fd;
    },
    async close(fd) {
      opened.delete(fd);
      return nodeAuditFs.close(fd);
    },
    async fsync(fd) {
      await nodeAuditFs.fsync(fd);
      const file = opened.get(fd);
      if (file !== undefined && fs.statSync(file).isDirectory()) events.push(`fsync-dir ${file}`);
    },
    async fdatasync(fd) {
      await nodeAuditFs.fdatasync(fd);
      events.push("fdatasync");
    },
  };
  return { layer, events };
}

void test("a new log file's name is durable before its first entry counts as written: its directory (and a directory made now, in its parent) is synced", async () => {
  const env = tempEnv();
  try {
    const { layer, events } = durabilityTrace();
    const sink = await openTestLog(env, { fsync: "always" }, { fs: layer });
    const created = events.indexOf(`create-or-open ${env.logFile}`);
    const firstSync = events.indexOf("fdatasync");
    assert.ok(created >= 0 && firstSync > created, events.join("\n"));
    const before = events.slice(created, firstSync);
    assert.ok(before.includes(`fsync-dir ${env.logDir}`), `the log's directory is synced before the first entry is durable:\n${events.join("\n")}`);
    assert.ok(before.includes(`fsync-dir ${path.dirname(env.logDir)}`), `the new directory's parent is synced too:\n${events.join("\n")}`);
    await sink.close();
    // A log that already holds entries is not new: no directory sync at its start.
    events.length = 0;
    const again = await openTestLog(env, { fsync: "always" }, { fs: layer });
    await again.close();
    assert.deepEqual(events.filter((e) => e.startsWith("fsync-dir")), []);
    // An active file found missing (as a crash between rotation steps leaves it) is made anew: synced the same way.
    fs.rmSync(env.logFile);
    events.length = 0;
    const recreated = await openTestLog(env, { fsync: "always" }, { fs: layer });
    await recreated.close();
    assert.ok(events.indexOf(`fsync-dir ${env.logDir}`) > events.indexOf(`create-or-open ${env.logFile}`), events.join("\n"));
    assert.ok(!events.includes(`fsync-dir ${path.dirname(env.logDir)}`), "the directory was there already");
  } finally {
    env.cleanup();
  }
});

void test("a restart continues the chain from the last entry (no second genesis)", async () => {
  const env = tempEnv();
  try {
    const first = await openTestLog(env);
    await appendCalls(first, 3);
    const head1 = await first.close();
    const logId = first.status().logId;
    const second = await openTestLog(env);
    assert.equal(second.status().logId, logId);
    await appendCalls(second, 2);
    await second.close();
    const entries = readLines(env.logFile).map(parse);
    const restart = entries.findIndex((e, i) => i > 0 && e.event === "server_start");
    assert.equal(entries[restart]!.prev, head1!.head);
    assert.equal(entries[restart]!.seq, head1!.seq + 1);
    assert.equal(entries[restart]!.data.genesis, undefined);
    assert.equal(entries.filter((e) => e.prev === GENESIS_PREV).length, 1);
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.equal(summary.entries, entries.length);
  } finally {
    env.cleanup();
  }
});

void test("group commit: many concurrent appends keep call order, all land, share fsyncs, one fsync in flight", async () => {
  const env = tempEnv();
  try {
    const layer = instrumentedFs();
    const sink = await openTestLog(env, { fsync: "always" }, { fs: layer });
    const syncsBefore = layer.stats.syncs;
    const n = 400;
    const order: number[] = [];
    const pending = [];
    for (let i = 0; i < n; i++) {
      pending.push(
        sink.append({ event: "tool_call", requestId: i }).then((receipt) => {
          // Resolved means durable: the entry lies within bytes covered by a completed fsync.
          const durable = fs.readFileSync(env.logFile).subarray(0, layer.stats.durableBytes).toString("utf8");
          assert.ok(durable.includes(receipt.hash), `seq ${receipt.seq} resolved before an fsync covered it`);
          order.push(i);
          return receipt;
        }),
      );
    }
    const receipts = await Promise.all(pending);
    assert.deepEqual(
      receipts.map((r) => r.seq),
      Array.from({ length: n }, (_, i) => i + 2),
      "seq follows the call order",
    );
    const syncs = layer.stats.syncs - syncsBefore;
    assert.ok(syncs >= 1 && syncs < n, `expected fewer fsyncs than entries, got ${syncs}`);
    assert.equal(layer.stats.maxSyncsInFlight, 1);
    await sink.close();
    const entries = readLines(env.logFile).map(parse).filter((e) => e.event === "tool_call");
    assert.deepEqual(
      entries.map((e) => e.requestId),
      Array.from({ length: n }, (_, i) => i),
    );
    assert.equal((await verifyAudit(env.logFile)).ok, true);
  } finally {
    env.cleanup();
  }
});

void test("group commit: entries written while an fsync runs wait for the next fsync", async () => {
  const env = tempEnv();
  try {
    const layer = instrumentedFs();
    const sink = await openTestLog(env, { fsync: "always" }, { fs: layer });
    layer.holdSyncs = true;
    let firstDone = false;
    let secondDone = false;
    const first = sink.append({ event: "tool_call", requestId: "a" }).then(() => (firstDone = true));
    await waitFor(() => layer.held.length === 1, "the first fsync to start");
    const second = sink.append({ event: "tool_call", requestId: "b" }).then(() => (secondDone = true));
    // The second entry gets written while the first fsync is held, but must not resolve with it.
    await waitFor(() => fs.readFileSync(env.logFile, "utf8").includes('"requestId":"b"'), "the second entry to be written");
    layer.held.shift()!();
    await first;
    assert.equal(firstDone, true);
    assert.equal(secondDone, false, "resolved without its own fsync");
    await waitFor(() => layer.held.length === 1, "the second fsync to start");
    layer.holdSyncs = false;
    layer.held.shift()!();
    await second;
    assert.equal(secondDone, true);
    assert.equal(layer.stats.maxSyncsInFlight, 1);
    await sink.close();
  } finally {
    env.cleanup();
  }
});

void test("batch mode: appends resolve after the write; the fsync comes from the timer and at close", async () => {
  const env = tempEnv();
  try {
    const layer = instrumentedFs();
    const timers = manualTimers();
    const sink = await openTestLog(env, { fsync: "batch", fsync_interval_ms: 60_000 }, { fs: layer, timers });
    const syncsAfterOpen = layer.stats.syncs;
    const receipts = await appendCalls(sink, 50);
    assert.equal(receipts.length, 50);
    assert.equal(layer.stats.syncs, syncsAfterOpen, "batch mode must not fsync per entry");
    const text = fs.readFileSync(env.logFile, "utf8");
    for (const r of receipts) assert.ok(text.includes(r.hash), `seq ${r.seq} resolved before it was written`);
    assert.equal(timers.pending.size, 1, "one sync is scheduled");
    timers.fireAll();
    await waitFor(() => layer.stats.syncs === syncsAfterOpen + 1, "the timed fsync");
    assert.equal(timers.pending.size, 0, "nothing new to sync, nothing scheduled");
    await sink.append({ event: "tool_call" });
    assert.equal(timers.pending.size, 1);
    await sink.close();
    assert.ok(layer.stats.syncs >= syncsAfterOpen + 2, "close syncs");
    assert.equal(timers.pending.size, 0, "close clears the timer");
    assert.equal((await verifyAudit(env.logFile)).ok, true);
  } finally {
    env.cleanup();
  }
});

void test("batch mode with real timers syncs on its own", async () => {
  const env = tempEnv();
  try {
    const layer = instrumentedFs();
    const sink = await openTestLog(env, { fsync: "batch", fsync_interval_ms: 1 }, { fs: layer });
    const before = layer.stats.syncs;
    await appendCalls(sink, 5);
    await waitFor(() => layer.stats.syncs > before, "the batch fsync");
    await sink.close();
  } finally {
    env.cleanup();
  }
});

void test("a checkpoint every checkpoint_every entries, signed over the entry before it", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env, { checkpoint_every: 5 });
    await appendCalls(sink, 12);
    await sink.close();
    const entries = readLines(env.logFile).map(parse);
    const checkpoints = entries.filter((e) => e.event === "checkpoint");
    // server_start + 12 calls + server_stop = 14 primary entries: checkpoints after the 5th and 10th, plus the final one.
    assert.equal(checkpoints.length, 3);
    for (const cp of checkpoints) {
      const before = entries.find((e) => e.seq === cp.seq - 1)!;
      assert.equal(cp.checkpoint.seq, before.seq);
      assert.equal(cp.checkpoint.head, before.hash);
    }
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true);
    assert.equal(summary.checkpoints, 3);
    assert.equal(summary.unsealedEntries, 0);
  } finally {
    env.cleanup();
  }
});

void test("server_start records checkpointEvery; the count to the next checkpoint starts at it, not at the recovery entries before it", async () => {
  const env = tempEnv();
  try {
    const first = await openTestLog(env, { checkpoint_every: 3 });
    await first.close();
    fs.appendFileSync(env.logFile, '{"seq":'); // a torn line: the next start writes a recovery entry before its server_start
    const second = await openTestLog(env, { checkpoint_every: 3 });
    await appendCalls(second, 3);
    await second.close();
    const entries = readLines(env.logFile).map(parse);
    assert.deepEqual(entries.filter((e) => e.event === "server_start").map((e) => e.data.checkpointEvery), [3, 3]);
    const restart = entries.findIndex((e) => e.event === "recovery");
    // server_start is the 1st, so the checkpoint follows the 2nd call (counting the recovery, it came after the 1st).
    assert.deepEqual(
      entries.slice(restart).map((e) => e.event),
      ["recovery", "server_start", "tool_call", "tool_call", "checkpoint", "tool_call", "server_stop", "checkpoint"],
    );
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
  } finally {
    env.cleanup();
  }
});

void test("a checkpoint that cannot be signed fails the log: the entry that made it due is refused, none follows it unsigned", async () => {
  // The periodic checkpoint, a rotation's, and the final one at close.
  for (const due of ["interval", "rotation", "close"] as const) {
    const env = tempEnv();
    try {
      fs.mkdirSync(env.logDir, { recursive: true, mode: 0o700 });
      const real = signerFromPrivateKey(generateKeyPairSync("ed25519").privateKey);
      let broken = false;
      const signer: AuditSigner = {
        publicKey: real.publicKey,
        fingerprint: real.fingerprint,
        checkpoint(logId, seq, head) {
          if (broken) throw new Error("the signing key is unusable");
          return real.checkpoint(logId, seq, head);
        },
        startSeal: (logId, seq, head, data) => real.startSeal(logId, seq, head, data),
      };
      const { fd } = await nodeAuditFs.openLogFile(env.logFile);
      const makeId = ulidFactory();
      const checkpointEvery = due === "interval" ? 2 : 100;
      const writer = new ChainWriter({
        fs: nodeAuditFs,
        path: env.logFile,
        fd,
        logId: "log-1",
        position: { seq: 0, head: GENESIS_PREV },
        file: { bytes: 0 },
        fsync: "always",
        fsyncIntervalMs: 10,
        rotateBytes: due === "rotation" ? 1 : 0,
        rotateDaily: false,
        checkpointEvery,
        signer,
        now: () => new Date(),
        newId: (time) => makeId(time),
        logger: silentLogger,
      });
      await writer.init();
      await writer.append({ event: "server_start", data: { logId: "log-1", keyFingerprint: signer.fingerprint, checkpointEvery } });
      broken = true;
      if (due === "close") {
        assert.equal(await writer.close(), undefined, due);
      } else {
        // The 2nd entry makes a checkpoint due (after it, or before it for the rotation), and it cannot be sealed.
        await assert.rejects(writer.append({ event: "tool_call", tool: "t" }), AuditWriteError, due);
        broken = false;
        await assert.rejects(writer.append({ event: "tool_call", tool: "t" }), AuditWriteError, due);
        assert.equal(writer.status().state, "failed", due);
        assert.equal(await writer.close(), undefined, due);
      }
      assert.equal(writer.status().state, "failed", due);
      const events = readLines(env.logFile).map((l) => parse(l).event);
      // At close the server_stop may already be on its way to the file when the checkpoint fails.
      assert.deepEqual(events.slice(0, 1), ["server_start"], due);
      assert.ok(events.length === 1 || (due === "close" && events.join() === "server_start,server_stop"), `${due}: ${events.join()}`);
      const summary = await verifyAudit(env.logFile);
      assert.equal(summary.ok, true, `${due}: ${JSON.stringify(summary.failure)}`);
    } finally {
      env.cleanup();
    }
  }
});

void test("rotation by size: segments named by first time and seq, linked by rotate entries, verified as a DIR", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env, { rotate_bytes: 1500 });
    await appendCalls(sink, 40);
    await sink.close();
    const names = fs.readdirSync(env.logDir).sort();
    const segments = names.filter((n) => /^audit-\d{8}T\d{6}Z-\d{12}\.log$/.test(n));
    assert.ok(segments.length >= 3, `expected several segments, got ${names.join(", ")}`);
    assert.ok(names.includes("audit.log"));
    for (const name of segments) {
      assert.equal(fs.statSync(path.join(env.logDir, name)).mode & 0o777, 0o600);
      const lines = readLines(path.join(env.logDir, name)).map(parse);
      assert.equal(Number(name.slice(-16, -4)), lines[0]!.seq, "the name carries the first seq");
      assert.equal(lines.at(-1)!.event, "checkpoint", "a rotated segment ends sealed");
    }
    const active = readLines(env.logFile).map(parse);
    assert.equal(active[0]!.event, "rotate");
    const last = segments.at(-1)!;
    assert.equal(active[0]!.data.previousFile, last);
    assert.equal(active[0]!.prev, readLines(path.join(env.logDir, last)).map(parse).at(-1)!.hash);
    const summary = await verifyAudit(env.logDir);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.equal(summary.files.length, segments.length + 1);
    assert.equal(summary.firstSeq, 1);
    // Verifying the active file also takes in its segments.
    assert.equal((await verifyAudit(env.logFile)).entries, summary.entries);
    // Reopening continues the chain (rotating first when the active file is already full).
    const again = await openTestLog(env, { rotate_bytes: 1500 });
    assert.ok(again.status().seq > summary.lastSeq!);
    await again.close();
    const after = await verifyAudit(env.logDir);
    assert.equal(after.ok, true, JSON.stringify(after.failure));
    assert.ok(after.entries > summary.entries);
  } finally {
    env.cleanup();
  }
});

void test("rotation when the UTC day changes", async () => {
  const env = tempEnv();
  try {
    let now = new Date("2026-11-22T23:59:58.000Z");
    const sink = await openTestLog(env, { rotate_daily: true }, { now: () => now });
    await appendCalls(sink, 2);
    now = new Date("2026-11-23T00:00:01.000Z");
    await appendCalls(sink, 2);
    await sink.close();
    const names = fs.readdirSync(env.logDir).filter((n) => n.startsWith("audit-"));
    assert.deepEqual(names, ["audit-20261122T235958Z-000000000001.log"]);
    const active = readLines(env.logFile).map(parse);
    assert.equal(active[0]!.event, "rotate");
    assert.ok(active.every((e) => e.ts.startsWith("2026-11-23")));
    // A restart on a later day rotates before writing.
    now = new Date("2026-11-24T08:00:00.000Z");
    const next = await openTestLog(env, { rotate_daily: true }, { now: () => now });
    await next.close();
    assert.equal(fs.readdirSync(env.logDir).filter((n) => n.startsWith("audit-")).length, 2);
    assert.equal((await verifyAudit(env.logDir)).ok, true);
  } finally {
    env.cleanup();
  }
});

void test("entries the log cannot record are refused without harming the chain", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env);
    const bad: unknown[] = [
      { event: "server_start" },
      { event: "checkpoint" },
      { event: "Tool Call" },
      { event: "" },
      { event: "tool_call", outcome: "maybe" },
      { event: "tool_call", durationMs: -1 },
      { event: "tool_call", durationMs: Number.NaN },
      { event: "tool_call", tool: 3 },
      { event: "tool_call", requestId: {} },
      { event: "tool_call", callId: 1 },
      { event: "tool_call", reason: 1 },
      { event: "tool_call", data: [] },
      { event: "tool_call", arguments: { n: 10n } },
      { event: "tool_call", arguments: { x: Number.POSITIVE_INFINITY } },
      null,
    ];
    for (const entry of bad) {
      await assert.rejects(sink.append(entry as never), AuditEntryError, JSON.stringify(entry, (_k, v: unknown) => (typeof v === "bigint" ? "bigint" : v)));
    }
    assert.equal(sink.status().ok, true);
    const receipt = await sink.append({ event: "tool_call" });
    assert.equal(receipt.seq, 2, "refused entries consume no seq");
    await sink.close();
    assert.equal((await verifyAudit(env.logFile)).ok, true);
  } finally {
    env.cleanup();
  }
});

void test("one writer per log: a second open is refused while the first runs; a stale lock is taken over", async () => {
  const env = tempEnv();
  try {
    const first = await openTestLog(env);
    await assert.rejects(openTestLog(env), (err: unknown) => err instanceof AuditOpenError && err.code === "AUDIT_LOCKED");
    await first.close();
    // A lock left by a process that no longer exists.
    fs.writeFileSync(`${env.logFile}.lock`, "2147483646\n");
    const second = await openTestLog(env);
    await second.close();
    // A lock that holds no pid is not guessed at.
    fs.writeFileSync(`${env.logFile}.lock`, "");
    await assert.rejects(openTestLog(env), (err: unknown) => err instanceof AuditOpenError && err.code === "AUDIT_LOCKED" && /holds no process id/.test(err.message));
    fs.unlinkSync(`${env.logFile}.lock`);
    assert.equal((await verifyAudit(env.logFile)).ok, true);
  } finally {
    env.cleanup();
  }
});

void test("a symlinked log path is refused, and so is a non-regular file", async () => {
  const env = tempEnv();
  try {
    fs.mkdirSync(env.logDir, { recursive: true });
    const real = path.join(env.root, "elsewhere.log");
    fs.writeFileSync(real, "");
    fs.symlinkSync(real, env.logFile);
    await assert.rejects(openTestLog(env), (err: unknown) => err instanceof AuditOpenError && /symbolic link/.test(err.message));
    assert.equal(fs.readFileSync(real, "utf8"), "", "nothing was written through the link");
    assert.equal(fs.existsSync(`${env.logFile}.lock`), false, "the lock is released on failure");
    fs.unlinkSync(env.logFile);
    fs.mkdirSync(env.logFile);
    await assert.rejects(openTestLog(env), AuditOpenError);
  } finally {
    env.cleanup();
  }
});

void test("a log file with a loose mode is tightened to 0600", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env);
    await sink.close();
    fs.chmodSync(env.logFile, 0o644);
    const again = await openTestLog(env);
    assert.equal(fs.statSync(env.logFile).mode & 0o777, 0o600);
    await again.close();
  } finally {
    env.cleanup();
  }
});

void test("a relative log_file is placed under the state directory", async () => {
  const env = tempEnv();
  try {
    const sink = await openAuditLog(openOptions(env, { log_file: "audit/audit.log" }));
    assert.equal(sink.status().path, path.join(env.stateDir, "audit", "audit.log"));
    await sink.close();
  } finally {
    env.cleanup();
  }
});

void test("openAuditLog with enabled: false writes nothing and returns the null sink", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env, { enabled: false });
    assert.equal(sink.status().enabled, false);
    await sink.append({ event: "tool_call" });
    await sink.close();
    assert.equal(fs.existsSync(env.logDir), false);
    assert.equal(fs.existsSync(env.stateDir), false);
  } finally {
    env.cleanup();
  }
});

void test("nullAuditSink checks entries and records nothing", async () => {
  const sink = nullAuditSink();
  assert.deepEqual(await sink.append({ event: "tool_call" }), { seq: 0, hash: "" });
  await assert.rejects(sink.append({ event: "rotate" }), AuditEntryError);
  assert.equal(sink.status().enabled, false);
  assert.equal(sink.status().ok, true);
  assert.equal(await sink.close(), undefined);
  assert.equal(sink.status().state, "closed");
});

/** A layer over the real one that counts synchronous and asynchronous writes and can hold renames (rotations). */
function countingFs() {
  const stats = { syncWrites: 0, asyncWrites: 0, syncs: 0, badFds: 0, writesWhileRotating: 0 };
  const gate = { hold: false, held: [] as Array<() => void>, rotating: false };
  // Only writes to the log file count (the lock file gets its pid through `write` too).
  const logFds = new Set<number>();
  const layer: AuditFs = {
    ...nodeAuditFs,
    writeSync(fd, buffer, offset, length) {
      stats.syncWrites++;
      if (fd < 0) stats.badFds++;
      if (gate.rotating) stats.writesWhileRotating++;
      return nodeAuditFs.writeSync!(fd, buffer, offset, length);
    },
    write(fd, buffer, offset, length) {
      if (logFds.has(fd)) stats.asyncWrites++;
      return nodeAuditFs.write(fd, buffer, offset, length);
    },
    fdatasync(fd) {
      stats.syncs++;
      return nodeAuditFs.fdatasync(fd);
    },
    async rename(from, to) {
      // From here until the new file is open the old fd is closed: no write may run.
      gate.rotating = true;
      if (gate.hold) await new Promise<void>((resolve) => gate.held.push(resolve));
      await nodeAuditFs.rename(from, to);
    },
    async openLogFile(file) {
      const opened = await nodeAuditFs.openLogFile(file);
      logFds.add(opened.fd);
      gate.rotating = false;
      return opened;
    },
  };
  return { layer, stats, gate };
}

void test("batch mode writes synchronously, coalescing a burst: each entry is in the file before its append resolves, in call order", async () => {
  const env = tempEnv();
  try {
    const { layer, stats } = countingFs();
    const timers = manualTimers();
    const sink = await openTestLog(env, { fsync: "batch", fsync_interval_ms: 60_000 }, { fs: layer, timers });
    const syncsAfterOpen = stats.syncs;
    const pending: Array<Promise<{ seq: number }>> = [];
    const writesBefore = stats.syncWrites;
    for (let i = 0; i < 100; i++) {
      const promise = sink.append({ event: "tool_call", requestId: `r${i}` });
      // When an append resolves, its line is in the file (the page cache), as the last line or before it.
      pending.push(
        promise.then((receipt) => {
          const lines = readLines(env.logFile).map(parse);
          assert.ok(lines.some((line) => line.requestId === `r${i}` && line.seq === receipt.seq), `entry ${i} was not written before its append resolved`);
          return receipt;
        }),
      );
    }
    const receipts = await Promise.all(pending);
    assert.equal(stats.syncWrites - writesBefore, 1, "the burst of 100 appends left in one synchronous write");
    assert.deepEqual(
      receipts.map((r) => r.seq),
      Array.from({ length: 100 }, (_, i) => i + 2),
    );
    assert.equal(stats.asyncWrites, 0, "batch mode with a synchronous write never uses the thread pool to write");
    assert.equal(stats.syncs, syncsAfterOpen, "no fdatasync per entry");
    assert.equal(timers.pending.size, 1, "the fdatasync is left to the timer");
    timers.fireAll();
    await waitFor(() => stats.syncs === syncsAfterOpen + 1, "the timed fdatasync");
    await sink.close();
    const entries = readLines(env.logFile).map(parse).filter((e) => e.event === "tool_call");
    assert.deepEqual(
      entries.map((e) => e.requestId),
      Array.from({ length: 100 }, (_, i) => `r${i}`),
    );
    assert.equal((await verifyAudit(env.logFile)).ok, true);
  } finally {
    env.cleanup();
  }
});

void test("always mode keeps asynchronous writes (its fdatasync is nearly always in flight)", async () => {
  const env = tempEnv();
  try {
    const { layer, stats } = countingFs();
    const sink = await openTestLog(env, { fsync: "always" }, { fs: layer });
    await appendCalls(sink, 10);
    assert.equal(stats.syncWrites, 0);
    assert.ok(stats.asyncWrites >= 1);
    await sink.close();
    assert.equal((await verifyAudit(env.logFile)).ok, true);
  } finally {
    env.cleanup();
  }
});

void test("batch mode: entries appended during a rotation queue, are written after it in call order, never to the closed fd", async () => {
  const env = tempEnv();
  try {
    const { layer, stats, gate } = countingFs();
    const sink = await openTestLog(env, { fsync: "batch", fsync_interval_ms: 60_000, rotate_bytes: 1500 }, { fs: layer, timers: manualTimers() });
    gate.hold = true;
    const pending: Array<Promise<{ seq: number; hash: string }>> = [];
    let i = 0;
    // Past rotate_bytes after ~6 entries; 20 at most (appended while no rotation holds yet).
    while (gate.held.length === 0 && i < 20) {
      pending.push(sink.append({ event: "tool_call", requestId: i++, arguments: { pad: "x".repeat(100) } }));
      await new Promise((resolve) => setImmediate(resolve));
    }
    // The rotation's steps go through the thread pool: on a loaded machine they take a while to
    // reach the (held) rename. Waited for by its own signal, not by a count of event-loop turns.
    for (let waited = 0; gate.held.length === 0; waited += 5) {
      assert.ok(waited < 10_000, "a rotation should have started");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const writesAtHold = stats.syncWrites;
    const during = [];
    for (let k = 0; k < 20; k++) during.push(sink.append({ event: "tool_call", requestId: `during-${k}` }));
    assert.equal(stats.syncWrites, writesAtHold, "nothing is written while the rotation runs");
    assert.ok(!fs.readFileSync(env.logFile, "utf8").includes("during-"));
    gate.hold = false;
    for (const release of gate.held.splice(0)) release();
    const receipts = await Promise.all([...pending, ...during]);
    for (let k = 1; k < receipts.length; k++) assert.ok(receipts[k]!.seq > receipts[k - 1]!.seq, "seq follows the call order");
    assert.equal(stats.badFds, 0);
    assert.equal(stats.writesWhileRotating, 0);
    assert.equal(stats.asyncWrites, 0);
    await sink.close();
    const summary = await verifyAudit(env.logDir);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.ok(summary.files.length >= 2, "the log rotated");
    assert.equal(readLines(env.logFile).map(parse)[0]!.event, "rotate");
    // Across all files, in chain order, the calls appear in the order they were made.
    const all = fs
      .readdirSync(env.logDir)
      .filter((n) => n.endsWith(".log"))
      .flatMap((n) => readLines(path.join(env.logDir, n)).map(parse))
      .sort((a, b) => (a.seq as number) - (b.seq as number));
    assert.deepEqual(
      all.filter((e) => e.event === "tool_call").map((e) => e.requestId as unknown),
      [...Array.from({ length: i }, (_, k) => k), ...Array.from({ length: 20 }, (_, k) => `during-${k}`)],
    );
  } finally {
    env.cleanup();
  }
});

void test("syncWriteOf: the default layer's synchronous write, unless a layer replaced write alone", async () => {
  assert.equal(typeof syncWriteOf(nodeAuditFs), "function");
  const replacedWrite: AuditFs = { ...nodeAuditFs, write: () => Promise.resolve(0) };
  assert.equal(syncWriteOf(replacedWrite), undefined, "an injected write must not be bypassed");
  const both: AuditFs = { ...replacedWrite, writeSync: () => 0 };
  assert.equal(typeof syncWriteOf(both), "function");
  const withoutSync: AuditFs = { ...nodeAuditFs, writeSync: undefined };
  assert.equal(syncWriteOf(withoutSync), undefined);

  // Without a synchronous write, batch mode falls back to the asynchronous one and still works.
  const env = tempEnv();
  try {
    let asyncWrites = 0;
    const layer: AuditFs = {
      ...withoutSync,
      write(fd, buffer, offset, length) {
        asyncWrites++;
        return nodeAuditFs.write(fd, buffer, offset, length);
      },
    };
    const sink = await openTestLog(env, { fsync: "batch" }, { fs: layer });
    await appendCalls(sink, 5);
    assert.ok(asyncWrites >= 1);
    await sink.close();
    assert.equal((await verifyAudit(env.logFile)).ok, true);
  } finally {
    env.cleanup();
  }
});
