/**
 * `audit tail --follow`: the follower on hand-made files (partial writes, rotation, a file
 * cut shorter, a file that appears later, an overlong line), and the command on a real log
 * that rotates while it is followed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { LogFollower, type FollowEvent } from "../../src/security/audit/follow.js";
import { runAuditTail, type AuditCliIo } from "../../src/security/audit/cli.js";
import { appendCalls, openTestLog, parse, readLines, tempEnv, waitFor } from "../fixtures/audit-helpers.js";
import { segmentsOf } from "../../src/security/audit/segments.js";
import { AuditReadError } from "../../src/security/audit/errors.js";
import { nodeAuditFs, type AuditFs } from "../../src/security/audit/fs-layer.js";

const entry = (seq: number) => JSON.stringify({ seq, event: "tool_call", tool: "t" });

function collector() {
  const events: FollowEvent[] = [];
  const emit = (event: FollowEvent) => events.push(event);
  const lines = () => events.filter((e) => e.kind === "line").map((e) => e.text);
  const notes = () => events.filter((e) => e.kind === "note").map((e) => e.text);
  return { events, emit, lines, notes };
}

void test("the follower hands on whole lines appended after its start, waiting for a line's newline", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "msl-follow-"));
  const file = path.join(dir, "audit.log");
  try {
    fs.writeFileSync(file, `${entry(1)}\n${entry(2)}\n`);
    const follower = await LogFollower.start(file);
    const c = collector();
    await follower.poll(c.emit);
    assert.deepEqual(c.events, [], "what was there at the start is the tail's to show");
    fs.appendFileSync(file, `${entry(3)}\n${entry(4).slice(0, 10)}`);
    await follower.poll(c.emit);
    assert.deepEqual(c.lines(), [entry(3)], "a line still being written waits");
    fs.appendFileSync(file, `${entry(4).slice(10)}\n`);
    await follower.poll(c.emit);
    assert.deepEqual(c.lines(), [entry(3), entry(4)]);

    // A rotation: the old file gets its last entry, is renamed, and a new file starts.
    fs.appendFileSync(file, `${entry(5)}\n`);
    fs.renameSync(file, `${file}.1`);
    await follower.poll(c.emit);
    fs.appendFileSync(`${file}.1`, `${entry(6)}\n`);
    fs.writeFileSync(file, `${entry(7)}\n`);
    await follower.poll(c.emit);
    assert.deepEqual(c.lines().slice(2), [entry(5), entry(6), entry(7)], "the old file to its end, then the new one from its start");

    // Cut shorter (recovery removes a torn last line): followed from the new end.
    fs.appendFileSync(file, `${entry(8)}\n{"seq":9,"ev`);
    await follower.poll(c.emit);
    fs.truncateSync(file, Buffer.byteLength(`${entry(7)}\n${entry(8)}\n`) - 1);
    await follower.poll(c.emit);
    assert.match(c.notes().at(-1)!, /cut to \d+ bytes/);
    fs.appendFileSync(file, `\n${entry(10)}\n`);
    await follower.poll(c.emit);
    assert.deepEqual(c.lines().slice(5), [entry(8), entry(10)], "the half line that was cut away never shows");
    await follower.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

void test("a torn line cut away and written over between two looks is not joined to the new entries (a restart's recovery)", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "msl-follow-"));
  const file = path.join(dir, "audit.log");
  try {
    fs.writeFileSync(file, `${entry(1)}\n`);
    const follower = await LogFollower.start(file);
    const c = collector();
    // A writer dies mid-line; the follower holds the torn bytes, waiting for their newline.
    fs.appendFileSync(file, `${entry(2)}\n{"seq":3,"event":"tool_result","digest":"ab`);
    await follower.poll(c.emit);
    // The next start cuts the torn line away and records itself, past the old end, before the next look.
    const recovery = JSON.stringify({ seq: 3, event: "recovery", reason: "a torn last line was set aside" });
    fs.truncateSync(file, Buffer.byteLength(`${entry(1)}\n${entry(2)}\n`));
    fs.appendFileSync(file, `${recovery}\n${entry(4)}\n`);
    await follower.poll(c.emit);
    assert.deepEqual(c.lines(), [entry(2), recovery, entry(4)], "the new entries whole, no line made of the torn bytes and the end of another");
    assert.match(c.notes().at(-1)!, /incomplete line at byte \d+ was replaced/);
    // A line that only grows is still completed as before.
    fs.appendFileSync(file, entry(5).slice(0, 8));
    await follower.poll(c.emit);
    fs.appendFileSync(file, `${entry(5).slice(8)}\n`);
    await follower.poll(c.emit);
    assert.deepEqual(c.lines().at(-1), entry(5));
    assert.equal(c.notes().length, 1);
    await follower.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

void test("a torn line already there when following starts is held too: a restart's recovery over it shows whole entries, none lost", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "msl-follow-"));
  const file = path.join(dir, "audit.log");
  try {
    // A server died mid-line before `audit tail -f` started (the tail reports the incomplete line).
    fs.writeFileSync(file, `${entry(1)}\n${entry(2)}\n{"seq":3,"event":"tool_res`);
    const follower = await LogFollower.start(file);
    follower.shown([entry(1), entry(2)]);
    const c = collector();
    await follower.poll(c.emit);
    // The next start cuts the torn line away and writes past the old end before the next look.
    const recovery = JSON.stringify({ seq: 3, event: "recovery", reason: "a torn last line was set aside" });
    fs.truncateSync(file, Buffer.byteLength(`${entry(1)}\n${entry(2)}\n`));
    fs.appendFileSync(file, `${recovery}\n${entry(4)}\n`);
    await follower.poll(c.emit);
    assert.deepEqual(c.lines(), [recovery, entry(4)], "the recovery entry whole, not its end glued from the old end of the file");
    assert.match(c.notes().at(-1)!, /incomplete line at byte \d+ was replaced/);
    // A torn line there at the start that is then completed is handed on whole.
    fs.appendFileSync(file, entry(5).slice(0, 8));
    const later = await LogFollower.start(file);
    fs.appendFileSync(file, `${entry(5).slice(8)}\n`);
    const d = collector();
    await later.poll(d.emit);
    assert.deepEqual(d.lines(), [entry(5)]);
    await follower.close();
    await later.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

void test("a new chain (the log moved aside, a server started afresh) is followed though its seqs start over; its first entry is not shown twice", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "msl-follow-"));
  const file = path.join(dir, "audit.log");
  const genesis = JSON.stringify({ seq: 1, event: "server_start", prev: "0".repeat(64), hash: "a".repeat(64) });
  const second = JSON.stringify({ seq: 2, event: "tool_call", prev: "a".repeat(64), hash: "b".repeat(64) });
  try {
    fs.writeFileSync(file, `${entry(1)}\n${entry(2)}\n${entry(3)}\n`);
    const follower = await LogFollower.start(file);
    follower.shown([entry(2), entry(3)]);
    const c = collector();
    fs.renameSync(file, path.join(dir, "moved-aside.log"));
    await follower.poll(c.emit);
    fs.writeFileSync(file, `${genesis}\n${second}\n`);
    await follower.poll(c.emit);
    assert.deepEqual(c.lines(), [genesis, second]);
    assert.match(c.notes().join("\n"), /a new chain starts here/);
    await follower.close();

    // The tail showed the new chain's first entries, and the follower reads them again.
    fs.rmSync(file);
    const again = await LogFollower.start(file);
    const d = collector();
    fs.writeFileSync(file, `${genesis}\n${second}\n`);
    again.shown([genesis, second]);
    await again.poll(d.emit);
    fs.appendFileSync(file, `${JSON.stringify({ seq: 3, event: "tool_result", prev: "b".repeat(64), hash: "c".repeat(64) })}\n`);
    await again.poll(d.emit);
    assert.deepEqual(d.lines().map((line) => (JSON.parse(line) as { seq: number }).seq), [3]);
    assert.deepEqual(d.notes(), []);
    await again.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

void test("a read that fails mid-follow, or a directory named like a segment, is an AuditReadError naming the file (audit tail exits 2)", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "msl-follow-"));
  const file = path.join(dir, "audit.log");
  try {
    fs.writeFileSync(file, `${entry(1)}\n`);
    let failReads = false;
    const layer: AuditFs = {
      ...nodeAuditFs,
      read: (...args: Parameters<AuditFs["read"]>) =>
        failReads ? Promise.reject(Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" })) : nodeAuditFs.read(...args),
    };
    const follower = await LogFollower.start(file, { layer });
    const c = collector();
    fs.appendFileSync(file, `${entry(2)}\n`);
    failReads = true;
    await assert.rejects(follower.poll(c.emit), (err: unknown) => err instanceof AuditReadError && err.message.startsWith(`${file} cannot be read`));
    await follower.close();

    const again = await LogFollower.start(file);
    fs.renameSync(file, path.join(dir, "audit-20261205T000000Z-000000000001.log"));
    fs.mkdirSync(path.join(dir, "audit-20261205T000001Z-000000000003.log"));
    fs.writeFileSync(file, `${entry(4)}\n`);
    await assert.rejects(again.poll(c.emit), (err: unknown) => err instanceof AuditReadError && /000000000003\.log is not a regular file/.test(err.message));
    await again.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

void test("a log that does not exist yet is followed from the start of the file that appears; an overlong line is reported, not held", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "msl-follow-"));
  const file = path.join(dir, "audit.log");
  try {
    const follower = await LogFollower.start(file, { maxLineBytes: 100 });
    const c = collector();
    await follower.poll(c.emit);
    assert.deepEqual(c.events, []);
    fs.writeFileSync(file, `${entry(1)}\n${"x".repeat(150)}`);
    await follower.poll(c.emit);
    assert.deepEqual(c.lines(), [entry(1)]);
    fs.appendFileSync(file, `${"y".repeat(50)}\n${entry(2)}\n`);
    await follower.poll(c.emit);
    assert.deepEqual(c.lines(), [entry(1), entry(2)]);
    assert.deepEqual(c.notes(), ["an entry of 200 bytes, longer than follow shows (see audit tail or verify)"]);
    await follower.close();

    fs.mkdirSync(path.join(dir, "a-directory"));
    await assert.rejects(LogFollower.start(path.join(dir, "a-directory")), /is not a regular file/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

void test("audit tail -f: the last entries, then each new entry once, in order, across rotations, until stopped", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env, { rotate_bytes: 2000, checkpoint_every: 1000 });
    await appendCalls(sink, 5);
    const stop = new AbortController();
    const io: AuditCliIo & { stdout: string; stderr: string } = {
      stdout: "",
      stderr: "",
      defaultLogPath: env.logFile,
      signal: stop.signal,
      followIntervalMs: 10,
      out(text: string) {
        io.stdout += text;
      },
      err(text: string) {
        io.stderr += text;
      },
    };
    const shown = () => io.stdout.split("\n").filter((line) => /#\d+/.test(line)).map((line) => Number(/#(\d+)/.exec(line)![1]));
    const running = runAuditTail(["-f", "-n", "3", env.logDir], io);
    // A failed assertion must not leave the follower running (the test would never end).
    const stopped = running.catch(() => undefined);
    try {
      await waitFor(() => shown().length >= 3, "the tail");
      await appendCalls(sink, 40, 5);
      const rotations = segmentsOf(env.logFile, fs.readdirSync(env.logDir)).length;
      assert.ok(rotations >= 2, `the log rotated while followed (${rotations} segments)`);
      const all = [...segmentsOf(env.logFile, fs.readdirSync(env.logDir)).map((s) => path.join(env.logDir, s.name)), env.logFile].flatMap((file) =>
        readLines(file).map((line) => parse(line).seq as number),
      );
      await waitFor(() => shown().at(-1) === all.at(-1), "the newest entry", 10_000);
      const firstShown = shown()[0]!;
      assert.deepEqual(shown(), all.slice(all.indexOf(firstShown)), `every entry from the tail on, once each, in order:\n${io.stdout}`);
      assert.ok(io.stdout.includes("rotate"), "the rotate entries that start each new file are shown");
    } finally {
      stop.abort();
      await stopped;
    }
    assert.equal(await running, 0);
    assert.equal(io.stderr, "");
    await sink.close();
  } finally {
    env.cleanup();
  }
});
