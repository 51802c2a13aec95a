import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { seedAuditLogProblem } from "../../src/security/seed-audit-log.js";

function withDir(run: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "msl-seedlog-"));
  try {
    run(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void test("each of the seed's record kinds is recognised, and the message says how to keep the file", () => {
  withDir((dir) => {
    const file = join(dir, "audit log.log");
    for (const type of ["request", "response", "security"]) {
      writeFileSync(file, `{"type": "${type}", "timestamp": "2026-11-22T01:53:38.456155Z", "tool_name": "add_bug"}\n{"type": "response"}\n`);
      const problem = seedAuditLogProblem(file);
      assert.ok(problem !== undefined, type);
      assert.match(problem, new RegExp(`holds the Python seed server's audit records \\(its first line is a seed "${type}" record\\)`));
      // A path with a space is quoted for the shell.
      assert.ok(problem.includes(`mv '${file}' '${file}.seed'`), problem);
      assert.match(problem, /or set audit\.log_file in the policy to another file/);
    }
    // A line without its line break (the seed flushed, then stopped) is still the seed's.
    writeFileSync(file, '{"type": "security", "timestamp": "2026-11-22T01:53:38Z"}');
    assert.ok(seedAuditLogProblem(file) !== undefined);
  });
});

void test("anything else is left to the audit log to judge", () => {
  withDir((dir) => {
    const file = join(dir, "audit.log");
    assert.equal(seedAuditLogProblem(file), undefined, "no file");
    writeFileSync(file, "");
    assert.equal(seedAuditLogProblem(file), undefined, "empty (the seed created it and wrote nothing)");
    for (const text of [
      '{"seq":1,"type":"security","timestamp":"2026-01-01T00:00:00Z","hash":"00"}\n',
      '{"type":"other","timestamp":"2026-01-01T00:00:00Z"}\n',
      '{"type":"request"}\n',
      "[1,2]\n",
      "null\n",
      "not json\n",
      "\n",
    ]) {
      writeFileSync(file, text);
      assert.equal(seedAuditLogProblem(file), undefined, text);
    }
    const directory = join(dir, "a-directory");
    mkdirSync(directory);
    assert.equal(seedAuditLogProblem(directory), undefined, "a directory");
    const link = join(dir, "link.log");
    writeFileSync(join(dir, "target.log"), '{"type": "security", "timestamp": "x"}\n');
    symlinkSync(join(dir, "target.log"), link);
    assert.equal(seedAuditLogProblem(link), undefined, "a symbolic link is not followed");
    const fifo = join(dir, "fifo.log");
    execFileSync("mkfifo", [fifo]);
    assert.equal(seedAuditLogProblem(fifo), undefined, "a FIFO does not hold the start");
  });
});
