import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { forEachLine, readFirstLine, scanTail, type ScannedLine } from "../../src/security/audit/file-scan.js";
import { AuditReadError } from "../../src/security/audit/errors.js";
import { nodeAuditFs } from "../../src/security/audit/fs-layer.js";

/** Runs `body` on a temp file holding `content`, open for reading. */
async function withFile<T>(content: Buffer | string, body: (fd: number, size: number) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "msl-scan-"));
  const file = path.join(dir, "audit.log");
  fs.writeFileSync(file, content);
  const fd = fs.openSync(file, "r");
  try {
    return await body(fd, fs.fstatSync(fd).size);
  } finally {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function allLines(fd: number, maxLineBytes?: number): Promise<ScannedLine[]> {
  const lines: ScannedLine[] = [];
  await forEachLine(nodeAuditFs, fd, (line) => (lines.push(line), true), maxLineBytes === undefined ? {} : { maxLineBytes });
  return lines;
}

void test("forEachLine: lines across read buffers come whole, with their numbers; the torn end and an over-long line are marked", async () => {
  // Lines longer than the 1 MiB read buffer, spanning two and three reads.
  const long = "a".repeat(1024 * 1024 + 17);
  const longer = "b".repeat(2 * 1024 * 1024 + 5);
  const lines = await withFile(`x\n${long}\n${longer}\ny\ntorn`, (fd) => allLines(fd));
  assert.deepEqual(
    lines.map((l) => [l.lineNo, l.text.length, l.complete, l.tooLong]),
    [
      [1, 1, true, undefined],
      [2, long.length, true, undefined],
      [3, longer.length, true, undefined],
      [4, 1, true, undefined],
      [5, 4, false, undefined],
    ],
  );
  assert.equal(lines[2]!.text, longer);

  // With a bound: a line past it stops the reading, marked too long (not "torn"), ended or not.
  for (const content of [`x\n${"c".repeat(3000)}\ny\n`, `x\n${"c".repeat(3000)}`, `x\n${"c".repeat(3 * 1024 * 1024)}\ny\n`]) {
    const bounded = await withFile(content, (fd) => allLines(fd, 2048));
    assert.equal(bounded.length, 2);
    assert.deepEqual([bounded[1]!.lineNo, bounded[1]!.complete, bounded[1]!.tooLong, bounded[1]!.text], [2, false, true, "c".repeat(256)]);
  }
  // Up to the bound is fine.
  const atBound = await withFile(`${"d".repeat(2048)}\n`, (fd) => allLines(fd, 2048));
  assert.deepEqual(atBound.map((l) => [l.complete, l.text.length]), [[true, 2048]]);
});

void test("scanTail and readFirstLine: the bound is per line (not per line asked for), and long lines are read whole", async () => {
  const long = "e".repeat(3 * 1024 * 1024);
  const tail = await withFile(`first\n${long}\nlast\n`, (fd, size) => scanTail(nodeAuditFs, fd, size, 3));
  assert.deepEqual(tail.lines.map((l) => l.text.length), [5, long.length, 4]);
  assert.equal(tail.lines[1]!.start, 6);
  assert.equal(await withFile(`${long}\nnext\n`, (fd, size) => readFirstLine(nodeAuditFs, fd, size)), long);

  // A torn end or a line longer than the bound is refused when reading would have to go past it,
  // however many lines were asked for.
  const noBreak = Buffer.alloc(200_000, 0x66);
  for (const want of [1, 20, 1000]) {
    await assert.rejects(
      withFile(noBreak, (fd, size) => scanTail(nodeAuditFs, fd, size, want, 100_000)),
      (err: unknown) => err instanceof AuditReadError && /a line of more than 100000 bytes/.test(err.message),
      `want ${want}`,
    );
  }
  await assert.rejects(
    withFile(`${"g".repeat(300_000)}\nok\n`, (fd, size) => scanTail(nodeAuditFs, fd, size, 5, 100_000)),
    (err: unknown) => err instanceof AuditReadError && /a line of more than 100000 bytes/.test(err.message),
  );
  // Enough lines found before the long one: it is never read.
  const after = await withFile(`${"g".repeat(300_000)}\nok\n`, (fd, size) => scanTail(nodeAuditFs, fd, size, 1, 100_000));
  assert.deepEqual(after.lines.map((l) => l.text), ["ok"]);
  await assert.rejects(
    withFile(`${"h".repeat(300_000)}\n`, (fd, size) => readFirstLine(nodeAuditFs, fd, size, 100_000)),
    (err: unknown) => err instanceof AuditReadError && /the first line is longer than 100000 bytes/.test(err.message),
  );
});
