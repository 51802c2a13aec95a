import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { runAuditPubkey, runAuditTail, runAuditVerify, type AuditCliIo } from "../../src/security/audit/cli.js";
import { formatTailLine, readAuditTail } from "../../src/security/audit/tail.js";
import { printable } from "../../src/util/text.js";
import { nodeAuditFs, type AuditFs } from "../../src/security/audit/fs-layer.js";
import { segmentsOf } from "../../src/security/audit/segments.js";
import { appendCalls, errno, openTestLog, parse, readLines, rewrite, tempEnv, writeLines, type TempEnv } from "../fixtures/audit-helpers.js";

function capture(defaultLogPath: string): AuditCliIo & { stdout: string; stderr: string } {
  const io = {
    stdout: "",
    stderr: "",
    defaultLogPath,
    out(text: string) {
      io.stdout += text;
    },
    err(text: string) {
      io.stderr += text;
    },
  };
  return io;
}

async function sample(env: TempEnv): Promise<void> {
  const sink = await openTestLog(env, { checkpoint_every: 5 });
  await appendCalls(sink, 30);
  await sink.append({ event: "denied", tool: "exec", requestId: "r-x", outcome: "denied", reason: "command rm is blocked", durationMs: 0.4 });
  await sink.close("done");
}

void test("audit verify: 0 for an intact log, with a readable summary (default path, FILE and DIR)", async () => {
  const env = tempEnv();
  try {
    await sample(env);
    const n = readLines(env.logFile).length;
    const io = capture(env.logFile);
    assert.equal(await runAuditVerify([], io), 0, io.stderr);
    assert.match(io.stdout, /^audit log: .*audit\.log\n/);
    assert.match(io.stdout, new RegExp(`entries: ${n} \\(seq 1\\.\\.${n}\\)`));
    assert.match(io.stdout, new RegExp(`head: [0-9a-f]{64} \\(seq ${n}\\)`));
    assert.match(io.stdout, /signing key: [0-9a-f]{64} \(not pinned/);
    assert.match(io.stdout, new RegExp(`checkpoints: \\d+, the last at seq ${n}\n`));
    assert.match(io.stdout, /\ncheckpoint interval: after every 5 entries, at rotation and at shutdown \(as the last server_start records it/);
    assert.match(io.stdout, /recoveries: 0\n/);
    assert.match(io.stdout, /result: INTACT\n$/);
    const dirIo = capture("/nonexistent");
    assert.equal(await runAuditVerify([env.logDir], dirIo), 0);
    assert.equal(await runAuditVerify(["--help"], capture(env.logFile)), 0);
  } finally {
    env.cleanup();
  }
});

void test("audit verify: 1 for a tampered log, naming the first broken entry", async () => {
  const env = tempEnv();
  try {
    await sample(env);
    const lines = readLines(env.logFile);
    lines[9] = lines[9]!.replace('"outcome":"ok"', '"outcome":"error"');
    writeLines(env.logFile, lines);
    const io = capture(env.logFile);
    assert.equal(await runAuditVerify([], io), 1);
    assert.match(io.stdout, new RegExp(`result: TAMPERED at ${env.logFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:10 \\(seq 10\\): hash_mismatch: `));
    const json = capture(env.logFile);
    assert.equal(await runAuditVerify(["--json"], json), 1);
    const summary = JSON.parse(json.stdout);
    assert.equal(summary.ok, false);
    assert.deepEqual([summary.failure.line, summary.failure.seq, summary.failure.reason], [10, 10, "hash_mismatch"]);
  } finally {
    env.cleanup();
  }
});

void test("audit verify: 1 for a checkpoint removed where its interval made it due (missing_checkpoint)", async () => {
  const env = tempEnv();
  try {
    await sample(env);
    const lines = readLines(env.logFile);
    const cp = lines.findIndex((l) => parse(l).event === "checkpoint");
    const seq = parse(lines[cp]!).seq as number;
    writeLines(env.logFile, rewrite([...lines.slice(0, cp), ...lines.slice(cp + 1)], cp));
    const io = capture(env.logFile);
    assert.equal(await runAuditVerify([], io), 1);
    assert.match(io.stdout, new RegExp(`:${cp + 1} \\(seq ${seq}\\): missing_checkpoint: .*checkpoint_every 5 .*was due here, at seq ${seq}\\b`));
    const json = capture(env.logFile);
    assert.equal(await runAuditVerify(["--json"], json), 1);
    const summary = JSON.parse(json.stdout);
    assert.deepEqual([summary.failure.line, summary.failure.seq, summary.failure.reason], [cp + 1, seq, "missing_checkpoint"]);
  } finally {
    env.cleanup();
  }
});

void test("audit pubkey: prints the signing key's public half, which --pubkey then pins; a missing or wrong key exits 2", async () => {
  const env = tempEnv();
  try {
    await sample(env);
    const keyFile = path.join(env.stateDir, "keys", "audit-ed25519.pem");
    const io = Object.assign(capture(env.logFile), { keyFile });
    assert.equal(await runAuditPubkey([], io), 0, io.stderr);
    assert.match(io.stdout, /^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n$/);
    assert.doesNotMatch(io.stdout, /PRIVATE/);
    const fingerprint = /^fingerprint ([0-9a-f]{64}) /.exec(io.stderr)?.[1];
    assert.ok(fingerprint !== undefined, io.stderr);
    const pub = path.join(env.root, "audit.pub");
    fs.writeFileSync(pub, io.stdout);
    const pinned = capture(env.logFile);
    assert.equal(await runAuditVerify(["--pubkey", pub], pinned), 0, pinned.stdout);
    assert.match(pinned.stdout, new RegExp(`signing key: ${fingerprint} \\(pinned\\)`));

    const missing = Object.assign(capture(env.logFile), { keyFile: path.join(env.root, "none.pem") });
    assert.equal(await runAuditPubkey([], missing), 2);
    assert.match(missing.stderr, /no signing key at .*none\.pem: it does not exist yet/);
    const rsa = path.join(env.root, "rsa.pem");
    fs.writeFileSync(rsa, generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs8", format: "pem" }));
    const wrong = Object.assign(capture(env.logFile), { keyFile: rsa });
    assert.equal(await runAuditPubkey([], wrong), 2);
    assert.match(wrong.stderr, /is not an Ed25519 private key in PEM: the key is rsa/);
    assert.equal(wrong.stdout, "");
    const usage = Object.assign(capture(env.logFile), { keyFile });
    assert.equal(await runAuditPubkey(["extra"], usage), 2);
    assert.match(usage.stderr, /unexpected argument extra\nusage: mcp-secure-local audit pubkey/);
  } finally {
    env.cleanup();
  }
});

void test("audit verify: --pubkey pins the signer; --expect-head catches a cut end", async () => {
  const env = tempEnv();
  try {
    await sample(env);
    const own = path.join(env.root, "own.pub");
    fs.writeFileSync(own, createPublicKey(fs.readFileSync(path.join(env.stateDir, "keys", "audit-ed25519.pem"))).export({ type: "spki", format: "pem" }));
    const other = path.join(env.root, "other.pub");
    fs.writeFileSync(other, generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }));
    const ok = capture(env.logFile);
    assert.equal(await runAuditVerify(["--pubkey", own], ok), 0);
    assert.match(ok.stdout, /signing key: [0-9a-f]{64} \(pinned\)/);
    const bad = capture(env.logFile);
    assert.equal(await runAuditVerify([`--pubkey=${other}`], bad), 1);
    assert.match(bad.stdout, /key_mismatch/);
    const missing = capture(env.logFile);
    assert.equal(await runAuditVerify(["--pubkey", path.join(env.root, "nope.pub")], missing), 2);
    assert.match(missing.stderr, /key file .* cannot be read/);

    const head = parse(readLines(env.logFile).at(-1)!).hash;
    assert.equal(await runAuditVerify(["--expect-head", head], capture(env.logFile)), 0);
    writeLines(env.logFile, readLines(env.logFile).slice(0, -2));
    const cut = capture(env.logFile);
    assert.equal(await runAuditVerify(["--expect-head", `hash=${head}`], cut), 1);
    assert.match(cut.stdout, /truncated/);
  } finally {
    env.cleanup();
  }
});

void test("audit verify: 2 when the path is unreadable, not an audit log, or the usage is wrong", async () => {
  const env = tempEnv();
  try {
    const missing = capture(path.join(env.root, "nothing.log"));
    assert.equal(await runAuditVerify([], missing), 2);
    assert.match(missing.stderr, /cannot be read: ENOENT/);
    const missingJson = capture(path.join(env.root, "nothing.log"));
    assert.equal(await runAuditVerify(["--json"], missingJson), 2);
    assert.equal(JSON.parse(missingJson.stdout).ok, false);

    const notLog = path.join(env.root, "notes.log");
    fs.writeFileSync(notLog, "just text\n");
    const io = capture(env.logFile);
    assert.equal(await runAuditVerify([notLog], io), 2);
    assert.match(io.stderr, /not an audit log/);

    for (const argv of [["--bogus"], ["a", "b"], ["--pubkey"], ["--json=yes"]]) {
      const usage = capture(env.logFile);
      assert.equal(await runAuditVerify(argv, usage), 2, argv.join(" "));
      assert.match(usage.stderr, /usage: mcp-secure-local audit verify/);
    }
  } finally {
    env.cleanup();
  }
});

void test("audit tail: the last N entries, one readable line each", async () => {
  const env = tempEnv();
  try {
    await sample(env);
    const all = readLines(env.logFile).map(parse);
    const io = capture(env.logFile);
    assert.equal(await runAuditTail([], io), 0, io.stderr);
    const lines = io.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 20);
    const n = all.length;
    assert.match(lines.at(-1)!, new RegExp(`^${all.at(-1)!.ts.replace(/\./g, "\\.")}\\s+#${n}\\s+checkpoint\\s`));

    const three = capture(env.logFile);
    assert.equal(await runAuditTail(["-n", "3"], three), 0);
    const shown = three.stdout.trimEnd().split("\n");
    assert.equal(shown.length, 3);
    assert.match(shown[0]!, new RegExp(`#${n - 2}\\s+denied\\s+exec\\s+denied\\s+0ms\\s+command rm is blocked$`));
    assert.match(shown[1]!, new RegExp(`#${n - 1}\\s+server_stop\\s+-\\s+-\\s+-\\s+done$`));
    assert.match(shown[2]!, new RegExp(`#${n}\\s+checkpoint .*signed head of #${n - 1}`));
    assert.equal(await runAuditTail(["-n3", env.logFile], capture("/nonexistent")), 0);

    const call = capture(env.logFile);
    assert.equal(await runAuditTail(["--lines=30"], call), 0);
    assert.equal(call.stdout.trimEnd().split("\n").length, 30);
    assert.match(call.stdout, /#\d+\s+tool_call\s+fs_read\s+ok\s+\dms\n/);
  } finally {
    env.cleanup();
  }
});

void test("audit tail: torn and unparseable lines are shown as such; bad input gives 2", async () => {
  const env = tempEnv();
  try {
    await sample(env);
    fs.appendFileSync(env.logFile, "garbage line\n{\"seq\":");
    const io = capture(env.logFile);
    assert.equal(await runAuditTail(["-n", "2"], io), 0);
    assert.match(io.stdout, /\(unparseable line: garbage line\)/);
    assert.match(io.stdout, /\(an incomplete last line of 7 bytes/);

    for (const argv of [["-n", "0"], ["-n", "x"], ["--what"], ["a", "b"]]) {
      assert.equal(await runAuditTail(argv, capture(env.logFile)), 2, argv.join(" "));
    }
    const missing = capture(path.join(env.root, "none.log"));
    assert.equal(await runAuditTail([], missing), 2);
    assert.match(missing.stderr, /cannot be read/);
    // A directory is taken as verify takes it: the one log in it, or 2 when it holds none.
    const byDir = capture("/nonexistent");
    assert.equal(await runAuditTail(["-n", "2", env.logDir], byDir), 0, byDir.stderr);
    assert.equal(byDir.stdout, io.stdout, "the directory's log is the file's");
    const emptyDir = path.join(env.root, "nothing-here");
    fs.mkdirSync(emptyDir);
    const noLog = capture("/nonexistent");
    assert.equal(await runAuditTail([emptyDir], noLog), 2);
    assert.match(noLog.stderr, /holds no audit log/);
    const empty = path.join(env.root, "empty.log");
    fs.writeFileSync(empty, "");
    const quiet = capture(empty);
    assert.equal(await runAuditTail([], quiet), 0);
    assert.match(quiet.stderr, /holds no entries/);
    assert.equal(await runAuditTail(["-h"], capture(env.logFile)), 0);
  } finally {
    env.cleanup();
  }
});

void test("tail reads only the end of a large file", async () => {
  const env = tempEnv();
  try {
    fs.mkdirSync(env.logDir, { recursive: true });
    // Shaped like an entry (v, seq, hash), as tail asks of a file before showing it.
    const line = JSON.stringify({ v: 1, seq: 1, event: "tool_call", arguments: { pad: "x".repeat(900) }, hash: "0".repeat(64) });
    fs.writeFileSync(env.logFile, `${line}\n`.repeat(8000)); // about 7 MB
    let bytesRead = 0;
    const counting = {
      ...nodeAuditFs,
      read: async (fd: number, buffer: Buffer, offset: number, length: number, position: number) => {
        const n = await nodeAuditFs.read(fd, buffer, offset, length, position);
        bytesRead += n;
        return n;
      },
    };
    const tail = await readAuditTail(env.logFile, 5, counting);
    assert.equal(tail.lines.length, 5);
    assert.ok(bytesRead <= 128 * 1024, `read ${bytesRead} bytes for 5 lines`);
  } finally {
    env.cleanup();
  }
});

/** A log rotated several times by size; its files oldest first and the seqs of all its entries in order. */
async function rotated(env: TempEnv): Promise<{ files: string[]; seqs: number[] }> {
  const sink = await openTestLog(env, { rotate_bytes: 1500 });
  await appendCalls(sink, 40);
  await sink.close();
  const segments = segmentsOf(env.logFile, fs.readdirSync(env.logDir)).map((s) => path.join(env.logDir, s.name));
  assert.ok(segments.length >= 3, `several segments: ${segments.join(", ")}`);
  const files = [...segments, env.logFile];
  return { files, seqs: files.flatMap((file) => readLines(file).map((line) => parse(line).seq as number)) };
}

function shownSeqs(stdout: string): number[] {
  return stdout
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => Number(/#(\d+)/.exec(line)?.[1]));
}

void test("audit tail after a rotation: the entries the active file lacks come from its segments, newest first, shown in order", async () => {
  const env = tempEnv();
  try {
    const { files, seqs } = await rotated(env);
    const inActive = readLines(env.logFile).length;
    const lastSegment = readLines(files.at(-2)!).length;
    assert.ok(inActive < 20, `the active file holds few entries (${inActive}) right after the rotation`);
    // Within the active file, reaching into one segment, across several, and more than there are.
    for (const n of [inActive, inActive + 1, inActive + lastSegment + 3, seqs.length, seqs.length + 50]) {
      const io = capture(env.logFile);
      assert.equal(await runAuditTail(["-n", String(n)], io), 0, io.stderr);
      assert.equal(io.stderr, "", `n=${n}`);
      assert.deepEqual(shownSeqs(io.stdout), seqs.slice(-n), `n=${n}`);
    }
    const tail = await readAuditTail(env.logFile, 20);
    assert.equal(tail.lines.length, 20);
    assert.deepEqual(tail.warnings, []);
    assert.deepEqual(await readAuditTail(env.logDir, 20), tail, "a directory holding the log reads as its active file");
  } finally {
    env.cleanup();
  }
});

void test("audit tail with the active file missing (a crash between rotation steps): the segments' last entries, and a note on stderr", async () => {
  const env = tempEnv();
  try {
    const { files, seqs } = await rotated(env);
    const inActive = readLines(env.logFile).length;
    fs.unlinkSync(env.logFile);
    const before = seqs.slice(0, -inActive);
    const io = capture(env.logFile);
    assert.equal(await runAuditTail(["-n", "5"], io), 0, io.stderr);
    assert.deepEqual(shownSeqs(io.stdout), before.slice(-5));
    assert.match(io.stderr, new RegExp(`^audit tail: ${env.logFile.replace(/[.]/g, "\\.")} is missing .*rotated files\n$`));
    const all = capture(env.logFile);
    assert.equal(await runAuditTail(["-n", "100000"], all), 0);
    assert.deepEqual(shownSeqs(all.stdout), before);
    // The directory's log is found by its segments' names.
    const byDir = capture("/nonexistent");
    assert.equal(await runAuditTail(["-n", "5", env.logDir], byDir), 0, byDir.stderr);
    assert.deepEqual(shownSeqs(byDir.stdout), before.slice(-5));
    assert.match(byDir.stderr, /is missing .*rotated files/);
    // Without any segment either, nothing is there to show.
    for (const file of files.slice(0, -1)) fs.unlinkSync(file);
    const none = capture(env.logFile);
    assert.equal(await runAuditTail([], none), 2);
    assert.match(none.stderr, /cannot be read: ENOENT/);
  } finally {
    env.cleanup();
  }
});

void test("audit tail lists and opens segments only as far back as it needs", async () => {
  const env = tempEnv();
  try {
    const { files } = await rotated(env);
    const inActive = readLines(env.logFile).length;
    const opened: string[] = [];
    let listings = 0;
    const counting: AuditFs = {
      ...nodeAuditFs,
      open: (p, flags, mode) => {
        opened.push(path.basename(p));
        return nodeAuditFs.open(p, flags, mode);
      },
      readdir: (p) => {
        listings++;
        return nodeAuditFs.readdir(p);
      },
    };
    await readAuditTail(env.logFile, inActive, counting);
    assert.deepEqual([opened, listings], [["audit.log"], 0]);
    opened.length = 0;
    await readAuditTail(env.logFile, inActive + 1, counting);
    assert.deepEqual([opened, listings], [["audit.log", path.basename(files.at(-2)!)], 1]);
    // A directory that cannot be listed: the active file's entries, and a warning.
    const unlisted: AuditFs = { ...nodeAuditFs, readdir: () => Promise.reject(errno("EACCES", "permission denied")) };
    const tail = await readAuditTail(env.logFile, inActive + 1, unlisted);
    assert.equal(tail.lines.length, inActive);
    assert.match(tail.warnings.join(), /cannot be listed \(EACCES/);
  } finally {
    env.cleanup();
  }
});

void test("audit tail: the active file rotated while it was read is not shown twice", async () => {
  const env = tempEnv();
  try {
    const { seqs } = await rotated(env);
    // The active file under the name of its own (newest) segment too: one file, two names.
    fs.linkSync(env.logFile, path.join(env.logDir, "audit-20991231T000000Z-999999999999.log"));
    const io = capture(env.logFile);
    assert.equal(await runAuditTail(["-n", String(seqs.length + 10)], io), 0, io.stderr);
    assert.deepEqual(shownSeqs(io.stdout), seqs);
  } finally {
    env.cleanup();
  }
});

void test("formatting strips control characters from entry text", () => {
  const line = JSON.stringify({ ts: "2026-11-22T00:00:00.000Z", seq: 4, event: "denied", tool: "x\u001b[2J", outcome: "denied", reason: "bad\u0007\nthing" });
  const shown = formatTailLine(line);
  assert.ok([...shown].every((ch) => ch.charCodeAt(0) >= 0x20), "no control characters remain");
  assert.match(shown, /\\u001b\[2J/);
  assert.equal(printable("a\u2028b\u009bc"), "a\\u2028b\\u009bc");
  // A tool named with the text \u001b (no ESC in it) is shown otherwise than one holding ESC.
  const literal = formatTailLine(JSON.stringify({ ts: "2026-11-22T00:00:00.000Z", seq: 5, event: "denied", tool: "x\\u001b[2J", outcome: "denied" }));
  assert.match(literal, / x\\\\u001b\[2J /);
  assert.match(formatTailLine("[1,2]"), /unparseable line/);
  assert.match(formatTailLine(JSON.stringify({ seq: 2, event: "rotate", data: { previousFile: "audit-x.log" } })), /continues from audit-x\.log/);
  assert.match(formatTailLine(JSON.stringify({ seq: 3, event: "recovery", reason: "torn", data: { keptIn: "a.torn" } })), /torn; kept in a\.torn/);
  assert.match(formatTailLine(JSON.stringify({ seq: 1, event: "server_start", data: { serverVersion: "1.2.3", policySha256: "ab".repeat(32) } })), /version 1\.2\.3, policy abababababab$/);
  assert.match(
    formatTailLine(JSON.stringify({ seq: 1, event: "server_start", data: { serverVersion: "1.2.3", policySha256: "ab".repeat(32), checkpointEvery: 4 } })),
    /version 1\.2\.3, policy abababababab, checkpoint every 4$/,
  );
});

void test("audit tail keeps seq order when the log rotates while it reads: segments newer than the entries shown are left out", async () => {
  const env = tempEnv();
  try {
    const { seqs } = await rotated(env);
    const inActive = readLines(env.logFile).length;
    // What a listing taken after two rotations shows: a segment holding entries newer than those read.
    const activeLines = readLines(env.logFile);
    const newer = path.join(env.logDir, "audit-20991231T235959Z-000000999999.log");
    fs.writeFileSync(newer, `${activeLines.map((line) => line.replace(/"seq":(\d+)/, (_, n: string) => `"seq":${Number(n) + 500}`)).join("\n")}\n`);
    const tail = await readAuditTail(env.logFile, inActive + 3);
    const shown = tail.lines.map((line) => JSON.parse(line) as { seq: number }).map((e) => e.seq);
    assert.deepEqual(shown, seqs.slice(-(inActive + 3)), "the newer segment's entries are not shown before the active file's");
  } finally {
    env.cleanup();
  }
});

/** Opens and closes a FIFO's writing end, so that a reader stuck in open(2) is let go (and a hang ends as a failure). */
function releaseFifo(fifo: string): void {
  try {
    fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
  } catch {
    // no reader waiting (ENXIO): nothing to release
  }
}

void test("a FIFO or a device where a file is expected gives 2 at once, never a wait for a writer", { timeout: 20_000 }, async () => {
  const env = tempEnv();
  const fifos: string[] = [];
  const mkfifo = (file: string): string => {
    execFileSync("mkfifo", [file]);
    fifos.push(file);
    return file;
  };
  // A hang is turned into a failure: after 5 s the FIFOs are opened for writing, which lets
  // a reader blocked in open(2) go on (and the test fail on the wait it measured).
  const within = async <T>(what: string, run: Promise<T>): Promise<T> => {
    const started = Date.now();
    const timer = setTimeout(() => fifos.forEach(releaseFifo), 5_000);
    try {
      return await run;
    } finally {
      clearTimeout(timer);
      assert.ok(Date.now() - started < 5_000, `${what} waited on a FIFO`);
    }
  };
  try {
    await rotated(env);
    // A FIFO named like the oldest segment: verify reads every segment, tail reaches it with -n large.
    const fifo = mkfifo(path.join(env.logDir, "audit-20200101T000000Z-000000000000.log"));
    for (const target of [env.logDir, env.logFile]) {
      const io = capture("/nonexistent");
      assert.equal(await within(`verify ${target}`, runAuditVerify([target], io)), 2, io.stdout);
      assert.match(io.stderr, /audit-20200101T000000Z-000000000000\.log is not a regular file/);
    }
    const tail = capture(env.logFile);
    assert.equal(await within("tail", runAuditTail(["-n", "1000"], tail)), 2, tail.stdout);
    assert.match(tail.stderr, /is not a regular file/);
    fs.rmSync(fifo);

    const alone = mkfifo(path.join(env.root, "fifo.log"));
    const tailFifo = capture(alone);
    assert.equal(await within("tail FIFO", runAuditTail([], tailFifo)), 2);
    assert.match(tailFifo.stderr, /is not a regular file/);

    // --pubkey: a FIFO is not waited on, an endless device is not read.
    const keyFifo = mkfifo(path.join(env.root, "key.pem"));
    for (const key of [keyFifo, "/dev/zero"]) {
      const io = capture(env.logFile);
      assert.equal(await within(`--pubkey ${key}`, runAuditVerify(["--pubkey", key], io)), 2);
      assert.match(io.stderr, /the key file .* cannot be read: it is not a regular file/);
    }
    const huge = path.join(env.root, "huge.pem");
    fs.writeFileSync(huge, Buffer.alloc(1024 * 1024, 0x41));
    const io = capture(env.logFile);
    assert.equal(await runAuditVerify(["--pubkey", huge], io), 2);
    assert.match(io.stderr, /holds 1048576 bytes, more than a PEM key/);
  } finally {
    fifos.forEach(releaseFifo);
    env.cleanup();
  }
});

void test("file names with control characters reach the terminal escaped, in verify's and tail's errors too", async () => {
  const env = tempEnv();
  try {
    await sample(env);
    // Anyone who can write in the log's directory chooses its names: a second log whose name
    // sets the terminal's title makes both commands refuse the directory, naming both files.
    const evil = "x\u001b]2;PWNED\u0007.log";
    fs.copyFileSync(env.logFile, path.join(env.logDir, evil));
    fs.copyFileSync(env.logFile, path.join(env.logDir, "y\\u001b.log"));
    const verify = capture("/nonexistent");
    assert.equal(await runAuditVerify([env.logDir], verify), 2);
    const tail = capture("/nonexistent");
    assert.equal(await runAuditTail([env.logDir], tail), 2);
    for (const [what, text] of [["verify", verify.stderr], ["tail", tail.stderr]] as const) {
      assert.match(text, /holds 3 audit logs/, what);
      assert.ok(text.includes("x\\u001b]2;PWNED\\u0007.log"), `${what}: ${text}`);
      // A name that holds the text \u001b itself reads differently from one that holds ESC.
      assert.ok(text.includes("y\\\\u001b.log"), `${what}: ${text}`);
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(text.replace(/\n/g, ""), /[\u0000-\u001f\u007f-\u009f]/, what);
    }
  } finally {
    env.cleanup();
  }
});

void test("audit tail on a file that is not an audit log gives 2, as verify does; a log whose end is damaged is still shown", async () => {
  const env = tempEnv();
  try {
    fs.mkdirSync(env.logDir, { recursive: true });
    for (const [name, content] of [
      ["notes.txt", "just text\nmore\n"],
      ["rpc.jsonl", '{"jsonrpc":"2.0","id":1,"method":"ping"}\n{"jsonrpc":"2.0","id":1,"result":{}}\n'],
    ] as const) {
      const file = path.join(env.logDir, name);
      fs.writeFileSync(file, content);
      const io = capture(file);
      assert.equal(await runAuditTail([], io), 2, io.stdout);
      assert.equal(io.stdout, "");
      assert.match(io.stderr, /is not an audit log/);
      assert.equal(await runAuditVerify([file], capture(file)), 2);
    }
    await sample(env);
    fs.appendFileSync(env.logFile, "garbage one\ngarbage two\n");
    const damaged = capture(env.logFile);
    assert.equal(await runAuditTail(["-n", "2"], damaged), 0, damaged.stderr);
    assert.match(damaged.stdout, /\(unparseable line: garbage one\)\n\(unparseable line: garbage two\)\n$/);
  } finally {
    env.cleanup();
  }
});

void test("audit tail of a directory whose log is between the two steps of a rotation: the entries, not 'cannot be read'", async () => {
  const env = tempEnv();
  try {
    const { files, seqs } = await rotated(env);
    const newest = files.at(-2)!;
    const activeText = fs.readFileSync(env.logFile);
    fs.rmSync(env.logFile);
    fs.renameSync(newest, env.logFile);
    let rotatedNow = false;
    const layer: AuditFs = {
      ...nodeAuditFs,
      async open(file, flags, mode) {
        if (file === env.logFile && !rotatedNow) {
          // Listed, then renamed to a segment before the look at its content; the new file follows.
          rotatedNow = true;
          fs.renameSync(env.logFile, newest);
          const gone = nodeAuditFs.open(file, flags, mode);
          await gone.catch(() => fs.writeFileSync(env.logFile, activeText));
          return gone;
        }
        return nodeAuditFs.open(file, flags, mode);
      },
    };
    const tail = await readAuditTail(env.logDir, 1000, layer);
    assert.ok(rotatedNow);
    assert.deepEqual(tail.lines.map((l) => parse(l).seq as number), seqs);
  } finally {
    env.cleanup();
  }
});
