import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AuditOpenError, nodeAuditFs, verifyAudit } from "../../src/security/audit/index.js";
import { serializeEntry } from "../../src/security/audit/entry.js";
import { appendCalls, openTestLog, parse, readLines, tempEnv, writeLines } from "../fixtures/audit-helpers.js";

async function makeLog(env: ReturnType<typeof tempEnv>, calls = 5): Promise<void> {
  const sink = await openTestLog(env);
  await appendCalls(sink, calls);
  await sink.close();
}

function tornFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.includes(".torn-"));
}

void test("a torn last line is kept aside unchanged, recorded, and the chain continues from the last whole entry", async () => {
  const env = tempEnv();
  try {
    await makeLog(env);
    const whole = fs.readFileSync(env.logFile);
    const lastWhole = parse(readLines(env.logFile).at(-1)!);
    const torn = Buffer.from('{"arguments":{"path":"/data/9"},"callId":"x","data":{"k":"\u00e9t'); // cut mid-character sequence
    fs.appendFileSync(env.logFile, torn);

    const before = await verifyAudit(env.logFile);
    assert.equal(before.ok, false);
    assert.equal(before.failure?.reason, "torn_tail");
    assert.equal(before.failure?.line, readLines(env.logFile).length + 1);

    const sink = await openTestLog(env);
    await sink.close();
    const kept = tornFiles(env.logDir);
    assert.equal(kept.length, 1);
    const keptPath = path.join(env.logDir, kept[0]!);
    assert.deepEqual(fs.readFileSync(keptPath), torn, "the torn bytes are kept exactly");
    assert.equal(fs.statSync(keptPath).mode & 0o777, 0o600);
    assert.deepEqual(fs.readFileSync(env.logFile).subarray(0, whole.length), whole, "the whole entries are untouched");

    const entries = readLines(env.logFile).map(parse);
    const recovery = entries.find((e) => e.event === "recovery")!;
    assert.ok(recovery, "a recovery entry is written");
    assert.equal(recovery.prev, lastWhole.hash);
    assert.equal(recovery.seq, lastWhole.seq + 1);
    assert.equal(recovery.data.kind, "torn_tail");
    assert.equal(recovery.data.bytes, torn.length);
    assert.equal(recovery.data.sha256, createHash("sha256").update(torn).digest("hex"));
    assert.equal(recovery.data.keptIn, kept[0]);
    assert.equal(recovery.data.truncatedTo, whole.length);

    const after = await verifyAudit(env.logFile);
    assert.equal(after.ok, true, JSON.stringify(after.failure));
    assert.equal(after.recoveries.length, 1);
    assert.equal(after.recoveries[0]!.kind, "torn_tail");
  } finally {
    env.cleanup();
  }
});

void test("torn bytes set aside by a start that stopped before recording them are recorded by the next start", async () => {
  const env = tempEnv();
  try {
    await makeLog(env);
    // What a start leaves when it stops between truncating the log and writing its recovery entry.
    const torn = Buffer.from('{"arguments":{"path":"/data/9"},"ca');
    const pending = path.join(env.logDir, "audit.log.torn-20261205T120000Z.unrecorded");
    fs.writeFileSync(pending, torn, { mode: 0o600 });
    assert.equal((await verifyAudit(env.logDir)).ok, true, "a pending keeper does not break the chain");

    const sink = await openTestLog(env);
    await sink.close();
    assert.deepEqual(tornFiles(env.logDir), ["audit.log.torn-20261205T120000Z"], "renamed once recorded");
    assert.deepEqual(fs.readFileSync(path.join(env.logDir, "audit.log.torn-20261205T120000Z")), torn);
    const recoveries = readLines(env.logFile).map(parse).filter((e) => e.event === "recovery");
    assert.equal(recoveries.length, 1);
    const [recovery] = recoveries;
    assert.equal(recovery?.data.kind, "torn_tail_unrecorded");
    assert.equal(recovery?.data.keptIn, "audit.log.torn-20261205T120000Z");
    assert.equal(recovery?.data.bytes, torn.length);
    assert.equal(recovery?.data.sha256, createHash("sha256").update(torn).digest("hex"));
    assert.equal((await verifyAudit(env.logDir)).ok, true);
  } finally {
    env.cleanup();
  }
});

void test("a torn keeper whose recovery entry is on disk but whose rename was not done is renamed, not recorded twice", async () => {
  const env = tempEnv();
  try {
    await makeLog(env);
    fs.appendFileSync(env.logFile, '{"arguments":{"pa');
    // The start records the torn tail, then fails to give the keeper its final name (as a crash there would).
    const failingRename = { ...nodeAuditFs, rename: () => Promise.reject(Object.assign(new Error("EIO: i/o error"), { code: "EIO" })) };
    await assert.rejects(openTestLog(env, {}, { fs: failingRename }), AuditOpenError);
    const pending = tornFiles(env.logDir);
    assert.equal(pending.length, 1);
    assert.match(pending[0]!, /\.unrecorded$/);
    const last = parse(readLines(env.logFile).at(-1)!);
    assert.equal(last.event, "recovery", "the recovery entry is the chain's last entry");

    const sink = await openTestLog(env);
    await sink.close();
    assert.deepEqual(tornFiles(env.logDir), [pending[0]!.replace(/\.unrecorded$/, "")]);
    const recoveries = readLines(env.logFile).map(parse).filter((e) => e.event === "recovery");
    assert.deepEqual(recoveries.map((e) => e.data.kind), ["torn_tail"], "one entry for the one torn tail");
    assert.equal((await verifyAudit(env.logDir)).ok, true);
  } finally {
    env.cleanup();
  }
});

/** The kinds of the recovery entries that name each keeper, by keeper. */
function recoveriesByKeeper(file: string): Record<string, string[]> {
  const byKeeper: Record<string, string[]> = {};
  for (const entry of readLines(file).map(parse)) {
    if (entry.event === "recovery" && typeof entry.data?.keptIn === "string") (byKeeper[entry.data.keptIn] ??= []).push(entry.data.kind);
  }
  return byKeeper;
}

const failingRename = { ...nodeAuditFs, rename: () => Promise.reject(Object.assign(new Error("EIO: i/o error"), { code: "EIO" })) };

void test("a start that stops before renaming its keepers, when it had two to record, leaves neither to be recorded twice", async () => {
  const env = tempEnv();
  try {
    await makeLog(env);
    fs.appendFileSync(env.logFile, '{"arguments":{"pa');
    const older = "audit.log.torn-20261205T120000Z";
    fs.writeFileSync(path.join(env.logDir, `${older}.unrecorded`), '{"argu', { mode: 0o600 });
    await assert.rejects(openTestLog(env, {}, { fs: failingRename }), AuditOpenError);

    const sink = await openTestLog(env);
    await sink.close();
    const byKeeper = recoveriesByKeeper(env.logFile);
    const kept = tornFiles(env.logDir).sort();
    assert.equal(kept.length, 2);
    assert.ok(kept.every((name) => !name.endsWith(".unrecorded")), kept.join(" "));
    assert.deepEqual(byKeeper[older], ["torn_tail_unrecorded"]);
    const newer = kept.find((name) => name !== older)!;
    assert.deepEqual(byKeeper[newer], ["torn_tail"], "recorded once, not again as unrecorded");
    assert.equal((await verifyAudit(env.logDir)).ok, true);
  } finally {
    env.cleanup();
  }
});

void test("a keeper whose recovery entry was followed by a checkpoint, and not renamed, is renamed, not recorded twice", async () => {
  const env = tempEnv();
  try {
    await makeLog(env);
    fs.appendFileSync(env.logFile, '{"arguments":{"pa');
    // checkpoint_every 1: the writer seals a checkpoint after every entry, the recovery entry included.
    await assert.rejects(openTestLog(env, { checkpoint_every: 1 }, { fs: failingRename }), AuditOpenError);
    assert.equal(parse(readLines(env.logFile).at(-1)!).event, "checkpoint", "the recovery entry is not the last one");

    const sink = await openTestLog(env, { checkpoint_every: 1 });
    await sink.close();
    const [kept] = tornFiles(env.logDir);
    assert.doesNotMatch(kept!, /\.unrecorded$/);
    assert.deepEqual(recoveriesByKeeper(env.logFile), { [kept!]: ["torn_tail"] });
    assert.equal((await verifyAudit(env.logDir)).ok, true);
  } finally {
    env.cleanup();
  }
});

void test("a whole entry cut just before its newline keeps its place: the newline is restored, no seq is used twice", async () => {
  const env = tempEnv();
  try {
    await makeLog(env);
    const lines = readLines(env.logFile);
    const last = lines.pop()!;
    fs.writeFileSync(env.logFile, `${lines.map((l) => `${l}\n`).join("")}${last}`);
    const sink = await openTestLog(env);
    await sink.close();
    assert.deepEqual(tornFiles(env.logDir), [], "nothing is set aside");
    const after = readLines(env.logFile);
    assert.deepEqual(after.slice(0, lines.length + 1), [...lines, last], "every entry is kept, byte for byte, in place");
    const entries = after.map(parse);
    const seqs = entries.map((e) => e.seq as number);
    assert.equal(new Set(seqs).size, seqs.length, "no seq is used twice");
    const recovery = entries.find((e) => e.event === "recovery")!;
    assert.equal(recovery.seq, parse(last).seq + 1);
    assert.equal(recovery.prev, parse(last).hash);
    assert.equal(recovery.data.kind, "newline_restored");
    assert.equal(recovery.data.seq, parse(last).seq);
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.deepEqual(summary.recoveries.map((r) => r.kind), ["newline_restored"]);
  } finally {
    env.cleanup();
  }
});

void test("a whole entry without its newline that does not follow the last one (a copied earlier line) is set aside", async () => {
  const env = tempEnv();
  try {
    await makeLog(env);
    const lines = readLines(env.logFile);
    const earlier = lines[1]!;
    fs.appendFileSync(env.logFile, earlier);
    const sink = await openTestLog(env);
    await sink.close();
    const kept = tornFiles(env.logDir);
    assert.equal(kept.length, 1);
    assert.equal(fs.readFileSync(path.join(env.logDir, kept[0]!), "utf8"), earlier);
    const recovery = readLines(env.logFile).map(parse).find((e) => e.event === "recovery")!;
    assert.equal(recovery.data.kind, "torn_tail");
    assert.equal((await verifyAudit(env.logFile)).ok, true);
  } finally {
    env.cleanup();
  }
});

void test("a log holding only a torn first write starts a fresh chain with a recovery entry", async () => {
  const env = tempEnv();
  try {
    fs.mkdirSync(env.logDir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(env.logFile, '{"data":{"catalogSha256":"', { mode: 0o600 });
    const sink = await openTestLog(env);
    await sink.close();
    const entries = readLines(env.logFile).map(parse);
    assert.equal(entries[0]!.event, "recovery");
    assert.equal(entries[0]!.seq, 1);
    assert.equal(typeof entries[0]!.data.logId, "string");
    assert.equal(entries[1]!.event, "server_start");
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.equal(summary.recoveries.length, 1);
  } finally {
    env.cleanup();
  }
});

function assertTampered(err: unknown): boolean {
  assert.ok(err instanceof AuditOpenError, `expected AuditOpenError, got ${String(err)}`);
  assert.equal(err.code, "AUDIT_TAMPERED");
  assert.match(err.message, /audit verify/);
  return true;
}

void test("a last line that parses but does not verify is tampering, not a torn write: the log refuses to open", async () => {
  const env = tempEnv();
  try {
    await makeLog(env);
    const lines = readLines(env.logFile);
    // Edited in place, newline kept.
    const edited = lines.slice();
    edited[edited.length - 1] = edited.at(-1)!.replace(/"ts":"\d/, '"ts":"1');
    assert.notEqual(edited.at(-1), lines.at(-1));
    writeLines(env.logFile, edited);
    const snapshot = fs.readFileSync(env.logFile);
    await assert.rejects(openTestLog(env), assertTampered);
    assert.deepEqual(fs.readFileSync(env.logFile), snapshot, "a refused log is left untouched");
    assert.equal(tornFiles(env.logDir).length, 0);

    // Edited and its newline removed, to pass as "torn".
    const entry = parse(lines.at(-1)!);
    entry.reason = "forged";
    fs.writeFileSync(env.logFile, `${lines.slice(0, -1).map((l) => `${l}\n`).join("")}${JSON.stringify(entry)}`);
    await assert.rejects(openTestLog(env), assertTampered);

    // A whole last line that is not JSON at all.
    writeLines(env.logFile, [...lines, "garbage"]);
    await assert.rejects(openTestLog(env), assertTampered);

    // A re-hashed last entry is self-consistent, but its first line was edited: also refused.
    const first = parse(lines[0]!);
    first.data.serverVersion = "9.9.9";
    writeLines(env.logFile, [JSON.stringify(first), ...lines.slice(1)]);
    await assert.rejects(openTestLog(env), assertTampered);
    assert.equal(fs.existsSync(`${env.logFile}.lock`), false);
  } finally {
    env.cleanup();
  }
});

void test("a first entry without a log id is refused", async () => {
  const env = tempEnv();
  try {
    await makeLog(env, 1);
    const lines = readLines(env.logFile);
    const { hash: _h, ...body } = parse(lines[0]!);
    delete body.data.logId;
    lines[0] = serializeEntry(body as never).line;
    writeLines(env.logFile, lines);
    await assert.rejects(openTestLog(env), (err: unknown) => err instanceof AuditOpenError && /no log id/.test(err.message));
  } finally {
    env.cleanup();
  }
});

void test("an active file missing after rotation: the chain continues from the newest segment, with a recovery entry", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env, { rotate_bytes: 1200 });
    await appendCalls(sink, 20);
    await sink.close();
    const segments = fs.readdirSync(env.logDir).filter((n) => n.startsWith("audit-")).sort();
    const newest = readLines(path.join(env.logDir, segments.at(-1)!)).map(parse);
    // Simulate a crash between the rename and the first write of the new active file.
    fs.rmSync(env.logFile);
    const activeless = await verifyAudit(env.logDir);
    assert.equal(activeless.ok, true);
    // Not rotated again at its stop: the recovery entry must be the new active file's first.
    const again = await openTestLog(env, { rotate_bytes: 1_000_000 });
    await again.close();
    const active = readLines(env.logFile).map(parse);
    assert.equal(active[0]!.event, "recovery");
    assert.equal(active[0]!.data.kind, "active_missing");
    assert.equal(active[0]!.data.continuedFrom, segments.at(-1));
    assert.equal(active[0]!.prev, newest.at(-1)!.hash);
    const summary = await verifyAudit(env.logDir);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    assert.equal(summary.recoveries.length, 1);
  } finally {
    env.cleanup();
  }
});

/** A log rotated into several segments, its active file then lost: the chain must continue from the newest segment. */
async function segmentsWithoutActiveFile(env: ReturnType<typeof tempEnv>): Promise<string[]> {
  const sink = await openTestLog(env, { rotate_bytes: 1200 });
  await appendCalls(sink, 20);
  await sink.close();
  const segments = fs.readdirSync(env.logDir).filter((n) => n.startsWith("audit-")).sort();
  fs.rmSync(env.logFile);
  return segments;
}

void test("a rotated segment with a damaged end is refused when the chain must continue from it", async () => {
  const env = tempEnv();
  try {
    const segments = await segmentsWithoutActiveFile(env);
    fs.appendFileSync(path.join(env.logDir, segments.at(-1)!), '{"partial":');
    await assert.rejects(openTestLog(env, { rotate_bytes: 1200 }), assertTampered);
  } finally {
    env.cleanup();
  }
});

void test("a FIFO under the newest segment's name is refused at once when the chain must continue from it", { skip: process.platform === "win32" ? "no FIFOs here" : false }, async () => {
  const env = tempEnv();
  let fifo: string | undefined;
  try {
    const segments = await segmentsWithoutActiveFile(env);
    // A name that sorts after every real segment (its first seq is higher).
    fifo = path.join(env.logDir, segments.at(-1)!.replace(/-(\d{12})\.log$/, "-999999999999.log"));
    execFileSync("mkfifo", ["-m", "600", fifo]);
    let timer: NodeJS.Timeout | undefined;
    const opening = openTestLog(env, { rotate_bytes: 1200 });
    const outcome = await Promise.race([
      opening.then(
        () => "opened",
        (error: unknown) => error,
      ),
      new Promise((resolve) => (timer = setTimeout(resolve, 3000, "hung"))),
    ]);
    clearTimeout(timer);
    if (outcome === "hung") {
      // Release the blocked open, so that the failure does not hold the test process open.
      fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      await opening.then((s) => s.close()).catch(() => undefined);
      assert.fail("the start waited on the FIFO");
    }
    assert.ok(outcome instanceof AuditOpenError, String(outcome));
    assert.match(outcome.message, /is not a regular file/);
  } finally {
    env.cleanup();
  }
});

const here = path.dirname(fileURLToPath(import.meta.url));
const compiled = import.meta.url.endsWith(".js");

void test("a writer SIGKILLed under load leaves a log that verifies after recovery, holding every entry it reported durable", async () => {
  const env = tempEnv();
  try {
    const fixture = path.join(here, "..", "fixtures", compiled ? "audit-writer.js" : "audit-writer.ts");
    const args = compiled ? [fixture, env.logFile, env.stateDir] : ["--import", "tsx", fixture, env.logFile, env.stateDir];
    const child = spawn(process.execPath, args, { cwd: path.resolve(here, "..", ".."), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const reported = new Map<number, string>();
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on("exit", (code, signal) => resolve({ code, signal })),
    );
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    await new Promise<void>((resolve, reject) => {
      const guard = setTimeout(() => reject(new Error(`the child reported too little: ${stderr}`)), 60_000);
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString("utf8");
        const lines = stdout.split("\n");
        stdout = lines.pop()!;
        for (const line of lines) {
          const [seq, requestId] = line.split(" ");
          if (requestId !== undefined) reported.set(Number(seq), requestId);
        }
        if (reported.size >= 300 && !child.killed) {
          child.kill("SIGKILL");
          clearTimeout(guard);
          resolve();
        }
      });
      void exited.then(({ code }) => {
        clearTimeout(guard);
        if (reported.size < 300) reject(new Error(`the child exited early (${String(code)}): ${stderr}`));
      });
    });
    const { signal } = await exited;
    assert.equal(signal, "SIGKILL");
    assert.ok(reported.size >= 300);

    // Reopening recovers whatever the kill left (a stale lock, maybe a torn line).
    const sink = await openTestLog(env);
    await sink.close();
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    const bySeq = new Map(readLines(env.logFile).map((line) => {
      const e = parse(line);
      return [e.seq as number, e] as const;
    }));
    for (const [seq, requestId] of reported) {
      const entry = bySeq.get(seq);
      assert.ok(entry, `seq ${seq} was reported durable but is missing`);
      assert.equal(entry.requestId, requestId, `seq ${seq} holds another entry`);
    }
  } finally {
    env.cleanup();
  }
});

void test("a new log's first entry cut only before its newline keeps its place and names the log", async () => {
  const source = tempEnv();
  const env = tempEnv();
  try {
    const sink = await openTestLog(source);
    await sink.close();
    const first = readLines(source.logFile)[0]!;
    assert.equal(parse(first).event, "server_start");
    fs.mkdirSync(env.logDir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(env.logFile, first, { mode: 0o600 });
    const again = await openTestLog(env);
    await again.close();
    assert.deepEqual(tornFiles(env.logDir), []);
    const entries = readLines(env.logFile).map(parse);
    assert.equal(readLines(env.logFile)[0], first, "the entry is kept byte for byte");
    assert.deepEqual(entries.slice(1, 3).map((e) => [e.event, e.seq, e.data?.kind]), [
      ["recovery", 2, "newline_restored"],
      ["server_start", 3, undefined],
    ]);
    assert.equal(entries[2]!.data.genesis, undefined, "the restored entry started the chain");
    assert.ok(entries.every((e) => e.data?.logId === undefined || e.data.logId === parse(first).data.logId), "one log id throughout");
    assert.equal((await verifyAudit(env.logFile)).ok, true);
  } finally {
    source.cleanup();
    env.cleanup();
  }
});

void test("an active file holding only its rotate entry without a newline keeps it: the chain continues from it, not from the segment", async () => {
  const env = tempEnv();
  try {
    const sink = await openTestLog(env, { rotate_bytes: 1200 });
    await appendCalls(sink, 30);
    await sink.close();
    const first = readLines(env.logFile)[0]!;
    assert.equal(parse(first).event, "rotate");
    fs.writeFileSync(env.logFile, first);
    const again = await openTestLog(env); // no rotation now: the restored entry stays in the active file
    await again.close();
    assert.deepEqual(tornFiles(env.logDir), []);
    const entries = readLines(env.logFile).map(parse);
    assert.equal(readLines(env.logFile)[0], first);
    const kinds = entries.filter((e) => e.event === "recovery").map((e) => e.data.kind);
    assert.deepEqual(kinds, ["newline_restored"], "no active_missing: the active file holds the chain's end");
    const summary = await verifyAudit(env.logDir);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
  } finally {
    env.cleanup();
  }
});

void test("a log_file that holds no entry at all (a database, a key, a note) is named as not an audit log, and left as it was", async () => {
  const env = tempEnv();
  try {
    fs.mkdirSync(env.logDir, { recursive: true, mode: 0o700 });
    const sqlite = Buffer.concat([Buffer.from("SQLite format 3\0", "latin1"), Buffer.alloc(4080, 1), Buffer.from("\n\0\0page two\n", "latin1")]);
    const cases: Array<{ content: Buffer; kind?: RegExp }> = [
      { content: sqlite, kind: /\(it is a SQLite database\)/ },
      { content: Buffer.from("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n"), kind: /\(it is a PEM key or certificate\)/ },
      // One line without a line break was taken for a torn write: set aside, and the file emptied.
      { content: Buffer.from("remember the milk") },
      { content: Buffer.from("line one\nline two\n") },
    ];
    for (const { content, kind } of cases) {
      fs.writeFileSync(env.logFile, content, { mode: 0o600 });
      await assert.rejects(openTestLog(env), (err: unknown) => {
        assert.ok(err instanceof AuditOpenError, String(err));
        assert.equal(err.code, "AUDIT_NOT_A_LOG", err.message);
        assert.match(err.message, /is not an audit log/);
        assert.match(err.message, /Point audit\.log_file at a file of its own/);
        if (kind !== undefined) assert.match(err.message, kind);
        return true;
      });
      assert.deepEqual(fs.readFileSync(env.logFile), content, "the file is left as it was");
      assert.deepEqual(tornFiles(env.logDir), [], "nothing was set aside");
    }
  } finally {
    env.cleanup();
  }
});

void test("a log whose lines are entries but do not verify is still tampered, not 'not an audit log'", async () => {
  const env = tempEnv();
  try {
    await makeLog(env);
    const lines = readLines(env.logFile);
    lines[lines.length - 1] = lines.at(-1)!.replace('"seq":', '"seq":1');
    writeLines(env.logFile, lines);
    await assert.rejects(openTestLog(env), assertTampered);
  } finally {
    env.cleanup();
  }
});

void test("a rotated segment that holds no entry is tampered, not 'not an audit log': only audit.log_file can be a file named by mistake", async () => {
  const env = tempEnv();
  try {
    const segments = await segmentsWithoutActiveFile(env);
    const newest = path.join(env.logDir, segments.at(-1)!);
    // Overwritten whole, or reduced to a cut line that is no entry's start: the log's own file, damaged.
    for (const content of ["overwritten\nwith junk\n", "\0\0\0\0"]) {
      fs.writeFileSync(newest, content);
      await assert.rejects(openTestLog(env, { rotate_bytes: 1200 }), (err: unknown) => {
        assertTampered(err);
        assert.doesNotMatch((err as Error).message, /Point audit\.log_file/);
        return true;
      });
      assert.equal(fs.readFileSync(newest, "utf8"), content);
    }
  } finally {
    env.cleanup();
  }
});

void test("a log_file that is not an audit log keeps its mode too (it is tightened to 0600 only once the file is the log)", async () => {
  const env = tempEnv();
  try {
    fs.mkdirSync(env.logDir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(env.logFile, "a note others may read\n", { mode: 0o644 });
    fs.chmodSync(env.logFile, 0o644);
    await assert.rejects(openTestLog(env), (err: unknown) => err instanceof AuditOpenError && err.code === "AUDIT_NOT_A_LOG");
    assert.equal(fs.statSync(env.logFile).mode & 0o777, 0o644);
    // A log with a loose mode is still tightened, as before.
    fs.rmSync(env.logFile);
    await makeLog(env);
    fs.chmodSync(env.logFile, 0o644);
    const sink = await openTestLog(env);
    await sink.close();
    assert.equal(fs.statSync(env.logFile).mode & 0o777, 0o600);
  } finally {
    env.cleanup();
  }
});
