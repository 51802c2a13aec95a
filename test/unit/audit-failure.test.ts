import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { AuditOpenError, AuditWriteError, verifyAudit } from "../../src/security/audit/index.js";
import { nodeAuditFs, type AuditFs } from "../../src/security/audit/fs-layer.js";
import { describeFsError } from "../../src/security/audit/errors.js";
import { errno, instrumentedFs, manualTimers, openTestLog, parse, readLines, tempEnv, waitFor } from "../fixtures/audit-helpers.js";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const hasDevFull = fs.existsSync("/dev/full");

function isWriteFailure(pattern: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof AuditWriteError, `expected AuditWriteError, got ${String(err)}`);
    assert.equal(err.code, "AUDIT_WRITE_FAILED");
    assert.match(err.message, pattern);
    return true;
  };
}

void test("a write that fails (ENOSPC) rejects, fails the log for good, and status says why", async () => {
  const env = tempEnv();
  try {
    const layer = instrumentedFs();
    const sink = await openTestLog(env, {}, { fs: layer });
    await sink.append({ event: "tool_call", requestId: "before" });
    layer.failWritesWith = errno("ENOSPC", "no space left on device, write");
    const pending = [sink.append({ event: "tool_call", requestId: 1 }), sink.append({ event: "tool_call", requestId: 2 })];
    const expected = new RegExp(`audit log ${env.logFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} cannot be written: ENOSPC \\(no space left on device\\)`);
    const settled = await Promise.allSettled(pending);
    for (const result of settled) {
      assert.equal(result.status, "rejected");
      if (result.status === "rejected") isWriteFailure(expected)(result.reason);
    }
    const status = sink.status();
    assert.equal(status.ok, false);
    assert.equal(status.state, "failed");
    assert.match(status.error ?? "", /ENOSPC/);
    // The disk has room again, yet the chain must not continue with a hole.
    layer.failWritesWith = undefined;
    await assert.rejects(sink.append({ event: "tool_call", requestId: 3 }), isWriteFailure(/ENOSPC/));
    assert.equal(await sink.close(), undefined, "a failed log has no head to report");
    assert.equal(sink.status().state, "failed");
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true, "what did reach the file still verifies");
  } finally {
    env.cleanup();
  }
});

void test("an fsync that fails (EIO) rejects the waiting entries and fails the log", async () => {
  const env = tempEnv();
  try {
    const layer = instrumentedFs();
    const sink = await openTestLog(env, { fsync: "always" }, { fs: layer });
    layer.failSyncsWith = errno("EIO", "i/o error, fdatasync");
    await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/cannot be synced to disk: EIO \(input\/output error\)/));
    layer.failSyncsWith = undefined;
    await assert.rejects(sink.append({ event: "tool_call" }), AuditWriteError);
    assert.equal(sink.status().ok, false);
    await sink.close();
  } finally {
    env.cleanup();
  }
});

void test("batch mode: a failed write rejects; a failed timed sync fails every later append", async () => {
  const env = tempEnv();
  try {
    const layer = instrumentedFs();
    const timers = manualTimers();
    const sink = await openTestLog(env, { fsync: "batch", fsync_interval_ms: 10 }, { fs: layer, timers });
    await sink.append({ event: "tool_call" });
    layer.failSyncsWith = errno("EIO", "i/o error, fdatasync");
    timers.fireAll();
    await waitFor(() => !sink.status().ok, "the failed sync to fail the log");
    await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/EIO/));
    await sink.close();
  } finally {
    env.cleanup();
  }
  const env2 = tempEnv();
  try {
    const layer = instrumentedFs();
    const sink = await openTestLog(env2, { fsync: "batch" }, { fs: layer });
    layer.failWritesWith = errno("EDQUOT", "quota");
    await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/EDQUOT \(disk quota exceeded\)/));
    await sink.close();
  } finally {
    env2.cleanup();
  }
});

void test("real /dev/full: the first write at open fails with ENOSPC and the server may not start", { skip: hasDevFull ? false : "no /dev/full on this system" }, async () => {
  const env = tempEnv();
  try {
    // The log path is an ordinary new file; only the descriptor written to is /dev/full.
    const layer = {
      ...nodeAuditFs,
      openLogFile: () => Promise.resolve({ fd: fs.openSync("/dev/full", "r+"), notes: [] as string[] }),
    };
    await assert.rejects(openTestLog(env, {}, { fs: layer }), (err: unknown) => {
      assert.ok(err instanceof AuditOpenError);
      assert.equal(err.code, "AUDIT_OPEN_FAILED");
      assert.match(err.message, /cannot be written: ENOSPC \(no space left on device\)/);
      return true;
    });
    assert.equal(fs.existsSync(`${env.logFile}.lock`), false, "the lock is released");
  } finally {
    env.cleanup();
  }
});

void test("real /dev/full after start: appends reject with the kernel's ENOSPC", { skip: hasDevFull ? false : "no /dev/full on this system" }, async () => {
  const env = tempEnv();
  const full = hasDevFull ? fs.openSync("/dev/full", "w") : -1;
  try {
    let redirect = false;
    const layer = {
      ...nodeAuditFs,
      write: (fd: number, buffer: Buffer, offset: number, length: number) => nodeAuditFs.write(redirect ? full : fd, buffer, offset, length),
    };
    const sink = await openTestLog(env, {}, { fs: layer });
    await sink.append({ event: "tool_call" });
    redirect = true;
    await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/ENOSPC \(no space left on device\)/));
    redirect = false;
    await assert.rejects(sink.append({ event: "tool_call" }), AuditWriteError);
    await sink.close();
  } finally {
    if (full >= 0) fs.closeSync(full);
    env.cleanup();
  }
});

void test(
  "a read-only audit directory: open fails with a clear error",
  { skip: isRoot ? "running as root, where chmod does not stop writes (the replaced-directory test covers the real failure)" : false },
  async () => {
    const env = tempEnv();
    try {
      fs.mkdirSync(env.logDir, { recursive: true, mode: 0o700 });
      fs.chmodSync(env.logDir, 0o500);
      await assert.rejects(openTestLog(env), (err: unknown) => err instanceof AuditOpenError && /EACCES \(permission denied\)/.test(err.message));
    } finally {
      env.cleanup();
    }
  },
);

void test("the audit directory path is a file: open fails with a clear error", async () => {
  const env = tempEnv();
  try {
    fs.writeFileSync(env.logDir, "not a directory");
    await assert.rejects(openTestLog(env), (err: unknown) => {
      assert.ok(err instanceof AuditOpenError);
      assert.match(err.message, new RegExp(`audit directory ${env.logDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} cannot be created`));
      return true;
    });
  } finally {
    env.cleanup();
  }
});

void test("the log file removed after start: the next append fails instead of writing to a deleted file", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env, { fsync: "always" });
    await sink.append({ event: "tool_call" });
    fs.unlinkSync(env.logFile);
    await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/the file is gone \(ENOENT/));
    assert.equal(sink.status().ok, false);
    await sink.close();
  } finally {
    env.cleanup();
  }
});

void test("the directory replaced by a file after start: appends fail", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env, { fsync: "always" });
    await sink.append({ event: "tool_call" });
    fs.renameSync(env.logDir, `${env.logDir}.moved`);
    fs.writeFileSync(env.logDir, "a file where the directory was");
    await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/the file is gone \(ENOTDIR/));
    await sink.close();
  } finally {
    fs.rmSync(`${env.logDir}.moved`, { recursive: true, force: true });
    env.cleanup();
  }
});

void test("the log file replaced by another file after start: appends fail", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env, { fsync: "always" });
    fs.renameSync(env.logFile, `${env.logFile}.old`);
    fs.writeFileSync(env.logFile, "");
    await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/replaced by another one/));
    await sink.close();
  } finally {
    env.cleanup();
  }
});

void test("a rotation that cannot complete fails the log (fail closed)", async () => {
  const env = tempEnv();
  try {
    const layer = { ...nodeAuditFs, rename: () => Promise.reject(errno("EXDEV", "cross-device link")) };
    const sink = await openTestLog(env, { rotate_bytes: 200 }, { fs: layer });
    await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/cannot be rotated to audit-\d{8}T\d{6}Z-\d{12}\.log: EXDEV/));
    assert.equal(sink.status().ok, false);
    await sink.close();
  } finally {
    env.cleanup();
  }
});

void test("describeFsError names the code and says what it means", () => {
  assert.equal(describeFsError(errno("ENOSPC", "x")), "ENOSPC (no space left on device)");
  assert.equal(describeFsError(errno("EWHATEVER", "odd")), "EWHATEVER: odd");
  assert.equal(describeFsError(new Error("plain")), "plain");
  assert.equal(describeFsError("text"), "text");
});

/**
 * Batch mode's synchronous write, with failures injected: `fail` throws (from call
 * `failAfter` + 1 on, when set), `limit` makes writes short, `zero` makes no progress.
 */
function syncFaultyFs() {
  const control: { fail?: NodeJS.ErrnoException | undefined; failAfter?: number; limit?: number | undefined; zero?: boolean; calls: number } = {
    calls: 0,
  };
  const layer: AuditFs = {
    ...nodeAuditFs,
    writeSync(fd, buffer, offset, length) {
      control.calls++;
      if (control.fail !== undefined && control.calls > (control.failAfter ?? 0)) throw control.fail;
      if (control.zero === true) return 0;
      return nodeAuditFs.writeSync!(fd, buffer, offset, Math.min(length, control.limit ?? length));
    },
  };
  return { layer, control };
}

void test("batch mode, synchronous write: ENOSPC rejects the entry and every later one, and the log stays failed", async () => {
  const env = tempEnv();
  try {
    const { layer, control } = syncFaultyFs();
    const sink = await openTestLog(env, { fsync: "batch", fsync_interval_ms: 60_000 }, { fs: layer, timers: manualTimers() });
    await sink.append({ event: "tool_call", requestId: "before" });
    control.fail = errno("ENOSPC", "no space left on device, write");
    const pending = [sink.append({ event: "tool_call", requestId: 1 }), sink.append({ event: "tool_call", requestId: 2 })];
    const settled = await Promise.allSettled(pending);
    for (const result of settled) {
      assert.equal(result.status, "rejected");
      if (result.status === "rejected") isWriteFailure(/cannot be written: ENOSPC \(no space left on device\)/)(result.reason);
    }
    assert.equal(sink.status().state, "failed");
    const callsAtFailure = control.calls;
    control.fail = undefined;
    await assert.rejects(sink.append({ event: "tool_call", requestId: 3 }), isWriteFailure(/ENOSPC/));
    assert.equal(control.calls, callsAtFailure, "a failed log writes nothing more");
    assert.equal(await sink.close(), undefined);
    assert.equal((await verifyAudit(env.logFile)).ok, true, "what did reach the file still verifies");
  } finally {
    env.cleanup();
  }
});

void test("batch mode, synchronous write: EIO after a partial line fails closed; the next open sets the torn tail aside", async () => {
  const env = tempEnv();
  try {
    const { layer, control } = syncFaultyFs();
    const sink = await openTestLog(env, { fsync: "batch" }, { fs: layer });
    await sink.append({ event: "tool_call" });
    // The first call writes 10 bytes, the next fails: a torn line is left behind.
    control.limit = 10;
    control.failAfter = control.calls + 1;
    control.fail = errno("EIO", "i/o error, write");
    await assert.rejects(sink.append({ event: "tool_call", requestId: "torn" }), isWriteFailure(/cannot be written: EIO \(input\/output error\)/));
    assert.equal(sink.status().ok, false);
    await sink.close();
    assert.ok(!fs.readFileSync(env.logFile, "utf8").endsWith("\n"), "the failed write left a partial line");
    const again = await openTestLog(env, { fsync: "batch" });
    await again.close();
    const entries = readLines(env.logFile).map(parse);
    assert.ok(entries.some((e) => e.event === "recovery" && e.data.kind === "torn_tail"));
    assert.equal((await verifyAudit(env.logFile)).ok, true);
  } finally {
    env.cleanup();
  }
});

void test("batch mode, synchronous write: short writes are continued; a write that makes no progress fails", async () => {
  const env = tempEnv();
  try {
    const { layer, control } = syncFaultyFs();
    control.limit = 7;
    const sink = await openTestLog(env, { fsync: "batch" }, { fs: layer });
    for (let i = 0; i < 5; i++) await sink.append({ event: "tool_call", requestId: i });
    assert.ok(control.calls > 6 * 10, "each line took many short writes");
    control.zero = true;
    await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/cannot be written: EIO/));
    await sink.close();
    const calls = readLines(env.logFile)
      .map(parse)
      .filter((e) => e.event === "tool_call");
    assert.deepEqual(
      calls.map((e) => e.requestId as unknown),
      [0, 1, 2, 3, 4],
    );
    assert.equal((await verifyAudit(env.logFile)).ok, true);
  } finally {
    env.cleanup();
  }
});

void test("batch mode: a log removed after start is noticed at the timed sync, and later appends fail", async () => {
  const env = tempEnv();
  try {
    const timers = manualTimers();
    const sink = await openTestLog(env, { fsync: "batch", fsync_interval_ms: 60_000 }, { timers });
    await sink.append({ event: "tool_call" });
    fs.unlinkSync(env.logFile);
    // The write itself succeeds (into the unlinked file); the check runs with the fdatasync.
    await sink.append({ event: "tool_call" });
    timers.fireAll();
    await waitFor(() => !sink.status().ok, "the timed sync to notice the removal");
    assert.match(sink.status().error ?? "", /the file is gone \(ENOENT/);
    await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/the file is gone/));
    await sink.close();
  } finally {
    env.cleanup();
  }
});

for (const fsync of ["batch", "always"] as const) {
  void test(`${fsync} mode: a log truncated or appended to by another process is noticed at the next sync, and calls are refused from then on`, async () => {
    for (const change of ["truncate", "append"] as const) {
      const env = tempEnv();
      try {
        const timers = manualTimers();
        const sink = await openTestLog(env, { fsync, fsync_interval_ms: 60_000 }, { timers });
        await sink.append({ event: "tool_call" });
        if (change === "truncate") fs.truncateSync(env.logFile, 0);
        else fs.appendFileSync(env.logFile, '{"forged":true}\n');
        if (fsync === "always") {
          // The sync that must cover the next entry notices, before the entry counts as written.
          await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/changed by another process/), change);
        } else {
          await sink.append({ event: "tool_call" });
          timers.fireAll();
          await waitFor(() => !sink.status().ok, "the timed sync to notice the change");
        }
        assert.match(sink.status().error ?? "", /changed by another process/, change);
        await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/changed by another process/));
        assert.equal(await sink.close(), undefined, "no head is given for a broken log");
      } finally {
        env.cleanup();
      }
    }
  });
}

void test("a log truncated or appended to by another process just before a rotation is noticed by the rotation's sync, not sealed into a segment", async () => {
  for (const fsync of ["batch", "always"] as const) {
    for (const change of ["truncate", "append"] as const) {
      const env = tempEnv();
      try {
        const timers = manualTimers();
        const sink = await openTestLog(env, { fsync, fsync_interval_ms: 60_000, rotate_bytes: 1 }, { timers });
        // The file holds server_start: the next append rotates it first (the rotation cancels the timed sync).
        if (change === "truncate") fs.truncateSync(env.logFile, 10);
        else fs.appendFileSync(env.logFile, '{"forged":true}\n');
        await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/changed by another process/), `${fsync}, ${change}`);
        assert.deepEqual(
          fs.readdirSync(env.logDir).filter((n) => n.startsWith("audit-")),
          [],
          `${fsync}, ${change}: the changed file is not rotated into a segment`,
        );
        await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/changed by another process/));
        await sink.close();
      } finally {
        env.cleanup();
      }
    }
  }
});

void test("batch mode: the timed sync also notices a log moved away and replaced (the path names another file)", async () => {
  const env = tempEnv();
  try {
    const timers = manualTimers();
    const sink = await openTestLog(env, { fsync: "batch", fsync_interval_ms: 60_000 }, { timers });
    await sink.append({ event: "tool_call" });
    // Moved away (its entries are kept there, under another name) and a new file put in its place.
    fs.renameSync(env.logFile, `${env.logFile}.moved`);
    fs.writeFileSync(env.logFile, "");
    await sink.append({ event: "tool_call" });
    timers.fireAll();
    await waitFor(() => !sink.status().ok, "the timed sync to notice the replacement");
    assert.match(sink.status().error ?? "", /replaced by another one/);
    await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/replaced/));
    await sink.close();
  } finally {
    env.cleanup();
  }
});

void test("real /dev/full, batch mode (synchronous write): open fails, and appends after start reject with ENOSPC", { skip: hasDevFull ? false : "no /dev/full on this system" }, async () => {
  const env = tempEnv();
  try {
    const atOpen: AuditFs = {
      ...nodeAuditFs,
      openLogFile: () => Promise.resolve({ fd: fs.openSync("/dev/full", "r+"), notes: [] as string[] }),
    };
    await assert.rejects(openTestLog(env, { fsync: "batch" }, { fs: atOpen }), (err: unknown) => {
      assert.ok(err instanceof AuditOpenError);
      assert.match(err.message, /cannot be written: ENOSPC \(no space left on device\)/);
      return true;
    });
    assert.equal(fs.existsSync(`${env.logFile}.lock`), false, "the lock is released");
  } finally {
    env.cleanup();
  }
  const env2 = tempEnv();
  const full = hasDevFull ? fs.openSync("/dev/full", "w") : -1;
  try {
    let redirect = false;
    const layer: AuditFs = {
      ...nodeAuditFs,
      writeSync: (fd, buffer, offset, length) => nodeAuditFs.writeSync!(redirect ? full : fd, buffer, offset, length),
    };
    const sink = await openTestLog(env2, { fsync: "batch" }, { fs: layer });
    await sink.append({ event: "tool_call" });
    redirect = true;
    await assert.rejects(sink.append({ event: "tool_call" }), isWriteFailure(/ENOSPC \(no space left on device\)/));
    redirect = false;
    await assert.rejects(sink.append({ event: "tool_call" }), AuditWriteError);
    await sink.close();
  } finally {
    if (full >= 0) fs.closeSync(full);
    env2.cleanup();
  }
});
