/**
 * The writer's lock (`<log>.lock`): who holds it, when it is stale, and that taking over a
 * stale one has exactly one winner. Races are forced with a layer over the real one whose
 * calls can be held at a chosen point; other processes are real child processes, or hosts
 * that report a given identity (a pid, a start time, a boot id).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { AuditOpenError } from "../../src/security/audit/errors.js";
import { nodeAuditFs, type AuditFs } from "../../src/security/audit/fs-layer.js";
import { acquireLock, DEBRIS_AGE_MS, DEBRIS_SWEEP_AGE_MS, formatLockText, LEASE_MS, nodeLockHost, parseLockText, type AuditLock, type LockHost } from "../../src/security/audit/lock.js";
import { nodeProcessHost, parseProcStat, type ProcessIdentity } from "../../src/security/audit/process-identity.js";
import { isSideFile } from "../../src/security/audit/segments.js";
import { verifyAudit } from "../../src/security/audit/verify.js";
import { silentLogger, type Logger } from "../../src/util/logger.js";
import { errno, openTestLog, tempEnv, waitFor, type TempEnv } from "../fixtures/audit-helpers.js";

const BOOT = "6f1c2a4e-0000-4000-8000-000000000001";

/** Sets a file's mtime `ms` into the past (a lease not refreshed for that long). */
function age(file: string, ms: number): void {
  const then = (Date.now() - ms) / 1000;
  fs.utimesSync(file, then, then);
}

interface LockEnv extends TempEnv {
  lock: string;
  /** The names in the log directory, sorted. */
  names(): string[];
  write(text: string, ageMs?: number): void;
  holder(): number | undefined;
}

function lockEnv(): LockEnv {
  const env = tempEnv();
  fs.mkdirSync(env.logDir, { recursive: true, mode: 0o700 });
  const lock = `${env.logFile}.lock`;
  return {
    ...env,
    lock,
    names: () => fs.readdirSync(env.logDir).sort(),
    write(text, ageMs = 0) {
      fs.writeFileSync(lock, text);
      if (ageMs > 0) {
        const then = new Date(Date.now() - ageMs);
        fs.utimesSync(lock, then, then);
      }
    },
    holder: () => parseLockText(fs.readFileSync(lock))?.pid,
  };
}

function refused(code: "AUDIT_LOCKED" | "AUDIT_OPEN_FAILED", message: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof AuditOpenError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  };
}

/** A host that is process `self` and sees the processes in `live` (pid → start time) running. */
function fakeHost(self: ProcessIdentity, live: Record<number, string>, now: () => number = () => Date.now()): LockHost {
  return {
    self: async () => self,
    isAlive: (pid) => live[pid] !== undefined,
    statOf: async (pid) => (live[pid] === undefined ? undefined : { startTime: live[pid], exited: false }),
    now,
  };
}

const A: ProcessIdentity = { pid: 1001, startTime: "100", bootId: BOOT };
const B: ProcessIdentity = { pid: 1002, startTime: "200", bootId: BOOT };
const LIVE = { 1001: "100", 1002: "200" };
/** A lock left by process 3001, which is not running. */
const STALE = formatLockText({ pid: 3001, startTime: "50", bootId: BOOT }, "0123456789abcdef");

type Op = "open" | "rename" | "link";

/** A layer over the real one that can hold one call of `op` on a matching path until released. */
function pausable(base: AuditFs = nodeAuditFs) {
  const armed: Array<{ op: Op; match: (p: string) => boolean; hit: () => void; wait: Promise<void> }> = [];
  const calls: string[] = [];
  const gate = async (op: Op, p: string): Promise<void> => {
    calls.push(`${op} ${path.basename(p)}`);
    const i = armed.findIndex((a) => a.op === op && a.match(p));
    if (i < 0) return;
    const [a] = armed.splice(i, 1);
    a!.hit();
    await a!.wait;
  };
  const layer: AuditFs = {
    ...base,
    open: async (p, flags, mode) => {
      await gate("open", p);
      return base.open(p, flags, mode);
    },
    rename: async (from, to) => {
      await gate("rename", from);
      return base.rename(from, to);
    },
    link: async (from, to) => {
      await gate("link", to);
      return base.link(from, to);
    },
  };
  return {
    layer,
    calls,
    /** Holds the next `op` on a path matching `match`; `reached` resolves once it is held. */
    pauseAt(op: Op, match: (p: string) => boolean): { reached: Promise<void>; release(): void } {
      let hit!: () => void;
      let release!: () => void;
      const reached = new Promise<void>((resolve) => (hit = resolve));
      const wait = new Promise<void>((resolve) => (release = resolve));
      armed.push({ op, match, hit, wait });
      return { reached, release };
    },
  };
}

void test("two starters on one stale lock: the one that judged it stale first but moves it last finds the winner's lock, puts it back and is refused", async () => {
  const env = lockEnv();
  try {
    env.write(STALE);
    const a = pausable();
    // A has read the stale lock and judged it; it is held just before moving it aside.
    const held = a.pauseAt("rename", (p) => p === env.lock);
    const first = acquireLock(a.layer, env.logFile, fakeHost(A, LIVE));
    await held.reached;
    const b = await acquireLock(nodeAuditFs, env.logFile, fakeHost(B, LIVE));
    assert.match(b.tookOver ?? "", /process 3001 is not running/);
    const ino = fs.statSync(env.lock).ino;
    held.release();
    await assert.rejects(first, refused("AUDIT_LOCKED", /in use by process 1002/));
    assert.equal(env.holder(), 1002, "the winner's lock is in place");
    assert.equal(fs.statSync(env.lock).ino, ino, "the very file the winner linked (A moved it aside and put it back)");
    assert.ok(a.calls.includes("rename audit.log.lock"), "A did move the winner's lock aside");
    assert.deepEqual(env.names(), ["audit.log.lock"], "no temp or moved-aside file is left");
    await b.release();
    assert.deepEqual(env.names(), []);
  } finally {
    env.cleanup();
  }
});

void test("two starters on one stale lock: the one that moved it aside is held before removing it, the other links into the gap and wins", async () => {
  const env = lockEnv();
  try {
    env.write(STALE);
    const a = pausable();
    // A has moved the stale lock aside and is held before reading it back.
    const held = a.pauseAt("open", (p) => /\.lock\.stale-/.test(p));
    const first = acquireLock(a.layer, env.logFile, fakeHost(A, LIVE));
    await held.reached;
    assert.equal(fs.existsSync(env.lock), false);
    const b = await acquireLock(nodeAuditFs, env.logFile, fakeHost(B, LIVE));
    assert.equal(b.tookOver, undefined, "B found no lock at all");
    held.release();
    await assert.rejects(first, refused("AUDIT_LOCKED", /in use by process 1002/));
    assert.equal(env.holder(), 1002);
    assert.deepEqual(env.names(), ["audit.log.lock"]);
    await b.release();
  } finally {
    env.cleanup();
  }
});

void test("two starters on one stale lock, both held after judging it: exactly one wins", async () => {
  const env = lockEnv();
  try {
    env.write(STALE);
    const a = pausable();
    const b = pausable();
    const heldA = a.pauseAt("rename", (p) => p === env.lock);
    const heldB = b.pauseAt("rename", (p) => p === env.lock);
    const first = acquireLock(a.layer, env.logFile, fakeHost(A, LIVE));
    const second = acquireLock(b.layer, env.logFile, fakeHost(B, LIVE));
    await Promise.all([heldA.reached, heldB.reached]);
    heldB.release();
    heldA.release();
    const results = await Promise.allSettled([first, second]);
    const won = results.filter((r) => r.status === "fulfilled");
    assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
    const lost = results.find((r) => r.status === "rejected");
    assert.ok(lost !== undefined && refused("AUDIT_LOCKED", /in use by process 100[12]/)(lost.reason));
    assert.deepEqual(env.names(), ["audit.log.lock"]);
    await (won[0] as PromiseFulfilledResult<AuditLock>).value.release();
  } finally {
    env.cleanup();
  }
});

void test("two starters on one stale lock with random delays in every file operation: always exactly one winner", async () => {
  const env = lockEnv();
  let seed = 7;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const jittery = (): AuditFs => {
    // Mostly none, sometimes long: then one starter's whole takeover fits between the other's judging and its move.
    const delay = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, random() < 0.25 ? 6 : 0));
    const later = <T>(run: () => Promise<T>): Promise<T> => delay().then(run);
    const layer: AuditFs = {
      ...nodeAuditFs,
      open: (p, flags, mode) => later(() => nodeAuditFs.open(p, flags, mode)),
      read: (fd, buffer, offset, length, position) => later(() => nodeAuditFs.read(fd, buffer, offset, length, position)),
      fstat: (fd) => later(() => nodeAuditFs.fstat(fd)),
      rename: (from, to) => later(() => nodeAuditFs.rename(from, to)),
      link: (from, to) => later(() => nodeAuditFs.link(from, to)),
      unlink: (p) => later(() => nodeAuditFs.unlink(p)),
    };
    return layer;
  };
  try {
    for (let round = 0; round < 40; round++) {
      env.write(STALE);
      const results = await Promise.allSettled([
        acquireLock(jittery(), env.logFile, fakeHost(A, LIVE)),
        acquireLock(jittery(), env.logFile, fakeHost(B, LIVE)),
      ]);
      const won = results.filter((r): r is PromiseFulfilledResult<AuditLock> => r.status === "fulfilled");
      assert.equal(won.length, 1, `round ${round}: ${results.map((r) => (r.status === "rejected" ? String(r.reason) : "won")).join("; ")}`);
      assert.deepEqual(env.names(), ["audit.log.lock"], `round ${round}`);
      await won[0]!.value.release();
      assert.deepEqual(env.names(), [], `round ${round}`);
    }
  } finally {
    env.cleanup();
  }
});

void test("the lock appears with its whole content: written to a temp file, fsynced, then linked in place", async () => {
  const env = lockEnv();
  try {
    const events: string[] = [];
    const paths = new Map<number, string>();
    const recording: AuditFs = {
      ...nodeAuditFs,
      async open(p, flags, mode) {
        const fd = await nodeAuditFs.open(p, flags, mode);
        paths.set(fd, path.basename(p));
        if ((flags & fs.constants.O_CREAT) !== 0) events.push(`create ${path.basename(p)}`);
        return fd;
      },
      async write(fd, buffer, offset, length) {
        events.push(`write ${paths.get(fd)}`);
        return nodeAuditFs.write(fd, buffer, offset, length);
      },
      async fsync(fd) {
        events.push(`fsync ${paths.get(fd)}`);
        return nodeAuditFs.fsync(fd);
      },
      async link(from, to) {
        events.push(`link ${path.basename(from)} -> ${path.basename(to)}: ${JSON.stringify(fs.readFileSync(from, "utf8"))}`);
        return nodeAuditFs.link(from, to);
      },
    };
    const lock = await acquireLock(recording, env.logFile);
    const text = fs.readFileSync(env.lock, "utf8");
    const self = await nodeProcessHost.self();
    assert.deepEqual(
      { ...parseLockText(Buffer.from(text)), nonce: undefined },
      { ...self, nonce: undefined },
      "pid, start time and boot id of this process",
    );
    assert.ok(!events.some((e) => e.startsWith("create audit.log.lock") || e.startsWith("write audit.log.lock")), events.join("\n"));
    const temp = /^create (\.audit\.log\.lock\.new-\S+)$/.exec(events[0] ?? "")?.[1];
    assert.ok(temp !== undefined && isSideFile(temp), events.join("\n"));
    assert.deepEqual(events, [`create ${temp}`, `write ${temp}`, `fsync ${temp}`, `link ${temp} -> audit.log.lock: ${JSON.stringify(text)}`]);
    assert.deepEqual(env.names(), ["audit.log.lock"], "the temp file is gone");
    assert.equal(fs.statSync(env.lock).mode & 0o777, 0o600);
    await lock.release();
    assert.deepEqual(env.names(), []);
  } finally {
    env.cleanup();
  }
});

void test("a lock of this process's pid: taken over when another start time or another boot wrote it, or when this process does not hold it", async (t) => {
  const self = await nodeProcessHost.self();
  if (self.startTime === undefined) return t.skip("no /proc: start times and boot ids are not known here");
  const env = lockEnv();
  try {
    // The container case: the server is always PID 1, and the last one was killed.
    env.write(formatLockText({ ...self, startTime: String(Number(self.startTime) + 1) }, "aa"));
    let lock = await acquireLock(nodeAuditFs, env.logFile);
    assert.match(lock.tookOver ?? "", /an earlier process with this process's pid/);
    await lock.release();

    // Another boot: its pid means nothing here, so its lease decides (fresh: refused; not refreshed: taken over).
    env.write(formatLockText({ ...self, bootId: BOOT }, "bb"));
    await assert.rejects(acquireLock(nodeAuditFs, env.logFile), refused("AUDIT_LOCKED", /another boot .*refreshed the lock/));
    age(env.lock, LEASE_MS + 5000);
    lock = await acquireLock(nodeAuditFs, env.logFile);
    assert.match(lock.tookOver ?? "", /another boot .*has not refreshed it for 3\d s/);
    await lock.release();

    // This very process wrote it but does not hold it (a release that never ran).
    env.write(formatLockText(self, "cc"));
    lock = await acquireLock(nodeAuditFs, env.logFile);
    assert.match(lock.tookOver ?? "", /names this process/);
    await lock.release();
    assert.deepEqual(env.names(), []);
  } finally {
    env.cleanup();
  }
});

void test("a lock this process holds is refused, by the same path and by another path to the same file", async () => {
  const env = lockEnv();
  try {
    const lock = await acquireLock(nodeAuditFs, env.logFile);
    const text = fs.readFileSync(env.lock, "utf8");
    await assert.rejects(acquireLock(nodeAuditFs, env.logFile), refused("AUDIT_LOCKED", /in use by this process/));
    const alias = path.join(env.root, "alias");
    fs.symlinkSync(env.logDir, alias);
    await assert.rejects(acquireLock(nodeAuditFs, path.join(alias, "audit.log")), refused("AUDIT_LOCKED", /in use by this process/));
    assert.equal(fs.readFileSync(env.lock, "utf8"), text, "the lock is untouched");
    assert.deepEqual(env.names(), ["audit.log.lock"]);
    await lock.release();
    await lock.release();
    assert.deepEqual(env.names(), []);
    const again = await acquireLock(nodeAuditFs, env.logFile);
    await again.release();
  } finally {
    env.cleanup();
  }
});

function sleeper(): Promise<ChildProcess & { pid: number }> {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("spawn", () => resolve(child as ChildProcess & { pid: number }));
  });
}

void test("another live process's lock is refused; its pid reused by a process that started later is taken over; a dead one's is taken over", async (t) => {
  const self = await nodeProcessHost.self();
  const env = lockEnv();
  const child = await sleeper();
  try {
    const stat = await nodeProcessHost.statOf(child.pid);
    env.write(`${child.pid}\n`); // as older versions wrote it: pid only
    await assert.rejects(acquireLock(nodeAuditFs, env.logFile), refused("AUDIT_LOCKED", new RegExp(`in use by process ${child.pid}; .*delete ${env.lock.replace(/[.]/g, "\\.")}`)));
    if (stat !== undefined && self.startTime !== undefined) {
      env.write(formatLockText({ pid: child.pid, startTime: stat.startTime, bootId: self.bootId! }, "dd"));
      await assert.rejects(acquireLock(nodeAuditFs, env.logFile), refused("AUDIT_LOCKED", new RegExp(`in use by process ${child.pid}`)));
      // The same pid, but the process that wrote the lock started at another time: the pid was reused.
      env.write(formatLockText({ pid: child.pid, startTime: String(Number(stat.startTime) - 7), bootId: self.bootId! }, "ee"));
      const lock = await acquireLock(nodeAuditFs, env.logFile);
      assert.match(lock.tookOver ?? "", new RegExp(`pid ${child.pid} now belongs to another process`));
      await lock.release();
    } else {
      t.diagnostic("no /proc: the start-time cases are not run here");
    }
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    env.write(`${child.pid}\n`);
    const lock = await acquireLock(nodeAuditFs, env.logFile);
    assert.match(lock.tookOver ?? "", new RegExp(`process ${child.pid} is not running`));
    await lock.release();
  } finally {
    child.kill("SIGKILL");
    env.cleanup();
  }
});

void test("without /proc: liveness by pid alone", async () => {
  const env = lockEnv();
  try {
    const host = fakeHost({ pid: 1001 }, { 1001: "?", 1002: "?" });
    env.write(formatLockText({ pid: 1002, startTime: "1", bootId: BOOT }, "ff"));
    await assert.rejects(acquireLock(nodeAuditFs, env.logFile, host), refused("AUDIT_LOCKED", /in use by process 1002/), "start times are not compared");
    env.write("3001\n");
    let lock = await acquireLock(nodeAuditFs, env.logFile, host);
    assert.match(lock.tookOver ?? "", /process 3001 is not running/);
    await lock.release();
    env.write("1001\n");
    lock = await acquireLock(nodeAuditFs, env.logFile, host);
    assert.match(lock.tookOver ?? "", /names this process \(1001\)/);
    assert.equal(fs.readFileSync(env.lock, "utf8"), `1001\nnonce=${parseLockText(fs.readFileSync(env.lock))!.nonce}\n`);
    await lock.release();
  } finally {
    env.cleanup();
  }
});

void test("a lock with no process id: refused while fresh (a writer may be mid-way), taken over as debris once old", async () => {
  const env = lockEnv();
  try {
    for (const text of ["", "12", "garbage\n", "1234\nstart=soon\n"]) {
      env.write(text);
      await assert.rejects(acquireLock(nodeAuditFs, env.logFile), refused("AUDIT_LOCKED", /holds no process id .*Try again in a few seconds; if no server is running, delete/));
      assert.equal(fs.readFileSync(env.lock, "utf8"), text, "a fresh one is left alone");
      env.write(text, DEBRIS_AGE_MS + 2000);
      const lock = await acquireLock(nodeAuditFs, env.logFile);
      assert.match(lock.tookOver ?? "", /held no process id and was \d+ s old/);
      assert.equal(env.holder(), process.pid);
      await lock.release();
      assert.deepEqual(env.names(), []);
    }
    // The age is the host's clock against the file's mtime (a second past the line: the two clocks'
    // granularity differs, and exactly at it the test failed once in a while).
    env.write("");
    const later = { ...nodeLockHost, now: () => Date.now() + DEBRIS_AGE_MS + 1000 };
    const lock = await acquireLock(nodeAuditFs, env.logFile, later);
    await lock.release();
  } finally {
    env.cleanup();
  }
});

void test("a lock path that is a symlink (even dangling), a directory or unreadable is refused and left alone", async () => {
  const env = lockEnv();
  try {
    const target = path.join(env.root, "target");
    fs.symlinkSync(target, env.lock);
    await assert.rejects(acquireLock(nodeAuditFs, env.logFile), refused("AUDIT_OPEN_FAILED", /not a regular file/));
    assert.equal(fs.existsSync(target), false, "nothing was created through the link");
    fs.writeFileSync(target, STALE);
    await assert.rejects(acquireLock(nodeAuditFs, env.logFile), refused("AUDIT_OPEN_FAILED", /not a regular file/));
    assert.equal(fs.lstatSync(env.lock).isSymbolicLink(), true);
    fs.unlinkSync(env.lock);
    fs.mkdirSync(env.lock);
    await assert.rejects(acquireLock(nodeAuditFs, env.logFile), refused("AUDIT_OPEN_FAILED", /not a regular file/));
    fs.rmdirSync(env.lock);
    env.write(STALE, DEBRIS_AGE_MS * 10);
    const unreadable: AuditFs = {
      ...nodeAuditFs,
      open: (p, flags, mode) => (p === env.lock ? Promise.reject(errno("EACCES", "permission denied")) : nodeAuditFs.open(p, flags, mode)),
    };
    await assert.rejects(acquireLock(unreadable, env.logFile), refused("AUDIT_LOCKED", /cannot be read: EACCES .*another user's server may hold it/));
    assert.equal(fs.readFileSync(env.lock, "utf8"), STALE);
    assert.deepEqual(env.names(), ["audit.log.lock"], "no temp file is left");
  } finally {
    env.cleanup();
  }
});

void test("release removes only this process's own lock", async () => {
  const env = lockEnv();
  try {
    const lock = await acquireLock(nodeAuditFs, env.logFile, fakeHost(A, LIVE));
    // Someone deleted the lock by hand and another process took the log.
    fs.unlinkSync(env.lock);
    const other = formatLockText(B, "0000");
    env.write(other);
    await lock.release();
    assert.equal(fs.readFileSync(env.lock, "utf8"), other, "the other process's lock is left in place");
    assert.deepEqual(env.names(), ["audit.log.lock"]);
    fs.unlinkSync(env.lock);
    // A lock gone by the time of release is no error.
    const gone = await acquireLock(nodeAuditFs, env.logFile, fakeHost(A, LIVE));
    fs.unlinkSync(env.lock);
    await gone.release();
    assert.deepEqual(env.names(), []);
  } finally {
    env.cleanup();
  }
});

void test("where the filesystem has no hard links the lock is created in place, and still excludes", async () => {
  const env = lockEnv();
  try {
    const noLinks: AuditFs = { ...nodeAuditFs, link: () => Promise.reject(errno("EPERM", "operation not permitted")) };
    const lock = await acquireLock(noLinks, env.logFile, fakeHost(A, LIVE));
    assert.equal(env.holder(), 1001);
    // Another process (by another path: this one refuses a path it holds before looking).
    const alias = path.join(env.root, "alias");
    fs.symlinkSync(env.logDir, alias);
    await assert.rejects(acquireLock(noLinks, path.join(alias, "audit.log"), fakeHost(B, LIVE)), refused("AUDIT_LOCKED", /in use by process 1001/));
    assert.deepEqual(env.names(), ["audit.log.lock"]);
    await lock.release();
    assert.deepEqual(env.names(), []);
    const broken: AuditFs = { ...nodeAuditFs, link: () => Promise.reject(errno("EIO", "input/output error")) };
    await assert.rejects(acquireLock(broken, env.logFile), refused("AUDIT_OPEN_FAILED", /audit lock .* cannot be created: EIO/));
    assert.deepEqual(env.names(), [], "the temp file is removed");
  } finally {
    env.cleanup();
  }
});

void test("openAuditLog says when it took over a stale lock", async () => {
  const env = lockEnv();
  try {
    env.write("2147483646\n");
    const warnings: Array<{ message: string; data?: Record<string, unknown> }> = [];
    const logger: Logger = {
      ...silentLogger,
      warn(message, data) {
        warnings.push({ message, ...(data === undefined ? {} : { data }) });
      },
      child: () => logger,
    };
    const sink = await openTestLog(env, {}, { logger });
    await sink.close();
    assert.deepEqual(warnings, [{ message: "took over a stale audit lock", data: { lock: env.lock, reason: "process 2147483646 is not running" } }]);
  } finally {
    env.cleanup();
  }
});

void test("lock text: pid first (what older versions read), then key=value lines; anything cut short or garbled names no process", () => {
  const text = formatLockText({ pid: 42, startTime: "123456", bootId: BOOT }, "abc");
  assert.equal(text, `42\nstart=123456\nboot=${BOOT}\nnonce=abc\n`);
  assert.deepEqual(parseLockText(Buffer.from(text)), { pid: 42, startTime: "123456", bootId: BOOT, nonce: "abc" });
  assert.deepEqual(parseLockText(Buffer.from("2147483646\n")), { pid: 2147483646 });
  assert.deepEqual(parseLockText(Buffer.from("7\nlater=field\n")), { pid: 7 }, "a later version's field is ignored");
  for (const bad of ["", "\n", "42", "42\nstart=1", "0\n", "-1\n", "4294967296\n", " 42\n", "42\nstart=x\n", "42\nboot=../x\n", "42\nnoequals\n", `${"9\n".repeat(600)}`]) {
    assert.equal(parseLockText(Buffer.from(bad)), undefined, JSON.stringify(bad));
  }
});

void test("/proc/<pid>/stat: state and start time, counted from the last parenthesis of the command name", async () => {
  const rest = Array.from({ length: 50 }, (_, i) => String(i + 4)); // fields 4..53
  rest[22 - 4] = "987654";
  assert.deepEqual(parseProcStat(`77 (a) b (c)) S ${rest.join(" ")}\n`), { startTime: "987654", exited: false });
  assert.deepEqual(parseProcStat(`77 (z) Z ${rest.join(" ")}`), { startTime: "987654", exited: true });
  assert.equal(parseProcStat("77 (x S 1 2"), undefined);
  assert.equal(parseProcStat("77 (x) S 1 2"), undefined);
  const self = await nodeProcessHost.self();
  if (self.startTime !== undefined) {
    assert.match(self.bootId ?? "", /^[0-9a-f-]{36}$/);
    assert.deepEqual(await nodeProcessHost.statOf(process.pid), { startTime: self.startTime, exited: false });
  }
  assert.equal(await nodeProcessHost.statOf(2 ** 31 - 2), undefined);
});

void test("what a crash in the middle of taking the lock can leave is a side file to verify", async () => {
  assert.equal(isSideFile("audit.log.lock.stale-4242-1a2b3c4d5e6f"), true);
  assert.equal(isSideFile(".audit.log.lock.new-4242-1a2b3c4d5e6f"), true);
  assert.equal(isSideFile("audit.log.stale-4242-1a2b3c4d5e6f"), false);
  const env = lockEnv();
  try {
    const sink = await openTestLog(env);
    await sink.close();
    fs.writeFileSync(`${env.lock}.stale-4242-1a2b3c4d5e6f`, STALE);
    fs.writeFileSync(path.join(env.logDir, ".audit.log.lock.new-4242-1a2b3c4d5e6f"), STALE);
    const summary = await verifyAudit(env.logDir);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.deepEqual(summary.warnings, [], "verify passes over them without a word");
  } finally {
    env.cleanup();
  }
});

void test("taking the lock removes what crashed acquires left once it is old, and nothing else", async () => {
  const env = lockEnv();
  try {
    const aged = (name: string, ageMs: number): string => {
      const where = path.join(env.logDir, name);
      fs.writeFileSync(where, STALE);
      const then = new Date(Date.now() - ageMs);
      fs.utimesSync(where, then, then);
      return name;
    };
    const old = DEBRIS_SWEEP_AGE_MS + 60_000;
    const swept = [aged(".audit.log.lock.new-4242-1a2b3c4d5e6f", old), aged("audit.log.lock.stale-4242-0a0b0c0d0e0f", old)];
    const kept = [
      aged(".audit.log.lock.new-4243-1a2b3c4d5e6f", 1000), // an acquire in progress
      aged("audit.log.lock.stale-4243-0a0b0c0d0e0f", 1000), // a judging in progress
      aged("other.log.lock.stale-4242-0a0b0c0d0e0f", old), // another log's
      aged("audit.log.lock.stale-notes", old), // not a name the lock makes
      aged("audit.log.torn-20261205T101010Z", old), // recovery's evidence
    ];
    fs.symlinkSync(path.join(env.root, "target"), path.join(env.logDir, ".audit.log.lock.new-4244-1a2b3c4d5e6f"));
    const then = new Date(Date.now() - old);
    fs.lutimesSync(path.join(env.logDir, ".audit.log.lock.new-4244-1a2b3c4d5e6f"), then, then);
    kept.push(".audit.log.lock.new-4244-1a2b3c4d5e6f"); // not a regular file: not ours to remove
    const lock = await acquireLock(nodeAuditFs, env.logFile, fakeHost(A, LIVE));
    try {
      const names = env.names();
      for (const name of swept) assert.ok(!names.includes(name), `${name} was removed: ${names.join(", ")}`);
      for (const name of kept) assert.ok(names.includes(name), `${name} was kept: ${names.join(", ")}`);
    } finally {
      await lock.release();
    }
  } finally {
    env.cleanup();
  }
});

void test("a lock from another PID namespace (a sibling container, same pid) is judged by its lease, never by its pid", async () => {
  const env = lockEnv();
  try {
    const here: ProcessIdentity = { pid: 1, startTime: "100", bootId: BOOT, pidNs: "4026531836" };
    const there: ProcessIdentity = { pid: 1, startTime: "90", bootId: BOOT, pidNs: "4026532999" };
    env.write(formatLockText(there, "0011223344556677"));
    // Its pid 1 is "this process" here and its start time differs: by pid it would look stale.
    await assert.rejects(acquireLock(nodeAuditFs, env.logFile, fakeHost(here, { 1: "100" })), refused("AUDIT_LOCKED", /another PID namespace .*refreshed the lock/));
    assert.equal(parseLockText(fs.readFileSync(env.lock))?.pidNs, "4026532999", "the sibling's lock is untouched");
    age(env.lock, LEASE_MS + 1000);
    const lock = await acquireLock(nodeAuditFs, env.logFile, fakeHost(here, { 1: "100" }));
    assert.match(lock.tookOver ?? "", /another PID namespace .*has not refreshed it/);
    assert.equal(parseLockText(fs.readFileSync(env.lock))?.pidNs, "4026531836", "the lock now names this namespace");
    await lock.release();
    assert.deepEqual(env.names(), []);
  } finally {
    env.cleanup();
  }
});

void test("a held lock keeps its lease fresh: its mtime is refreshed while held, and no longer after release", async () => {
  const env = lockEnv();
  try {
    const lock = await acquireLock(nodeAuditFs, env.logFile, nodeLockHost, { refreshMs: 20 });
    age(env.lock, 60_000);
    await waitFor(() => Date.now() - fs.statSync(env.lock).mtimeMs < 10_000, "the lease to be refreshed");
    await lock.release();
    assert.deepEqual(env.names(), []);
    // A lock taken over from under this one (another file at the path) is not touched by its refresh.
    const again = await acquireLock(nodeAuditFs, env.logFile, nodeLockHost, { refreshMs: 20 });
    const mine = fs.statSync(env.lock).ino;
    fs.renameSync(env.lock, `${env.lock}.elsewhere`);
    env.write(STALE);
    age(env.lock, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.ok(Date.now() - fs.statSync(env.lock).mtimeMs > 50_000, "the other file's mtime is left alone");
    assert.ok(Date.now() - fs.statSync(`${env.lock}.elsewhere`).mtimeMs < 10_000, "the refresh follows its own file");
    assert.notEqual(fs.statSync(env.lock).ino, mine);
    fs.rmSync(`${env.lock}.elsewhere`);
    await again.release();
  } finally {
    env.cleanup();
  }
});

void test("a release that finds its lock moved aside by a starter judging it looks again, so a clean stop leaves no lock", async () => {
  const env = lockEnv();
  try {
    env.write(STALE);
    const a = pausable();
    const judged = a.pauseAt("rename", (p) => p === env.lock);
    const first = acquireLock(a.layer, env.logFile, fakeHost(A, LIVE));
    const outcome = first.then(
      () => undefined,
      (err: unknown) => err,
    ); // A is refused while B's release runs: observed from the start
    await judged.reached;
    // B takes the stale lock over and holds it; A then moves B's lock aside and is held before putting it back.
    const putBack = a.pauseAt("link", (p) => p === env.lock); // A's next link to the lock path is its putting back
    let sawGone = false;
    const bLayer: AuditFs = {
      ...nodeAuditFs,
      rename: async (from, to) => {
        try {
          await nodeAuditFs.rename(from, to);
        } catch (err) {
          if (!sawGone && from === env.lock && (err as NodeJS.ErrnoException).code === "ENOENT") {
            // B's release found nothing: let A put B's lock back now, before B looks again.
            sawGone = true;
            putBack.release();
            await waitFor(() => fs.existsSync(env.lock), "A to put the lock back");
          }
          throw err;
        }
      },
    };
    const b = await acquireLock(bLayer, env.logFile, fakeHost(B, LIVE));
    judged.release();
    await putBack.reached;
    assert.equal(fs.existsSync(env.lock), false, "B's lock is moved aside");
    await b.release();
    assert.ok(sawGone, "the release did find the lock gone once");
    assert.ok(refused("AUDIT_LOCKED", /in use by process 1002/)(await outcome));
    assert.deepEqual(env.names(), [], "no lock is left behind");
  } finally {
    env.cleanup();
  }
});
