/**
 * The audit log when things go wrong, through the real server: a SIGKILL in the middle
 * of a load of calls (the restart recovers, the log verifies, every answered call is in
 * it), a log that cannot be opened (the server refuses to start), and a log that
 * disappears while the server runs (every later call is refused and nothing runs).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ServerProcess, resultText, type Message } from "../helpers/server-process.js";
import { exitWithin, tempDir } from "../helpers/e2e.js";
import { cli } from "../helpers/cli.js";


/** Every whole entry of one log file (a torn last line is left out). */
function parseLog(file: string): Message[] {
  const text = readFileSync(file, "utf8");
  const whole = text.slice(0, text.lastIndexOf("\n") + 1);
  return whole
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as Message);
}

const HEAD_LINE = /audit head:? seq=\d+ hash=/;

const LOAD_POLICY = [
  'version: "1.0"',
  "filesystem:",
  "  allowed_paths:",
  '    - "${STATE_DIR}/workspace/**"',
  "tools:",
  "  rate_limits:",
  "    default: 100000",
  "",
].join("\n");

void test("SIGKILL in the middle of a load of calls: the restart recovers, the log verifies, every answered call is in it", async (t) => {
  const root = tempDir("msl-audit-kill-");
  const stateDir = join(root, "state");
  const home = join(root, "home");
  const workspace = join(stateDir, "workspace");
  const logPath = join(stateDir, "audit", "audit.log");
  const IN_FLIGHT = 16;
  const KILL_AFTER = 60;
  mkdirSync(home);
  mkdirSync(workspace, { recursive: true });
  try {
    // The default fsync mode ("always"); rate limits raised so that no call of the load is refused.
    const server = await ServerProcess.initialized({ policy: LOAD_POLICY, stateDir });
    const sent = new Set<string>();
    const answered = (m: Message): boolean => typeof m.id === "string" && sent.has(m.id) && !("method" in m);
    const sendOne = (): void => {
      const n = sent.size;
      const [id, name, args] = n % 2 === 0 ? [`add-${n}`, "add_bug", { title: `load bug ${n}`, project_path: workspace }] : [`search-${n}`, "search_tools", { query: `bug ${n}` }];
      sent.add(id);
      server.send({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } });
    };
    try {
      // Pipelined, and kept full: each answer is replaced by a new call, so calls are
      // always in flight (some written to the log, some not yet) when the kill lands.
      for (let i = 0; i < IN_FLIGHT; i++) sendOne();
      let seen = 0;
      while (seen < KILL_AFTER) {
        await server.waitFor(() => server.messages.filter(answered).length > seen, 20_000, `answer ${seen + 1}`);
        const now = server.messages.filter(answered).length;
        for (let i = seen; i < now; i++) sendOne();
        seen = now;
      }
      server.kill("SIGKILL");
      assert.equal((await exitWithin(server, 5000)).signal, "SIGKILL");
    } finally {
      server.cleanup();
    }
    assert.deepEqual(server.problems, [], "every line written before the kill was a valid message");
    const responses = server.messages.filter((m) => typeof m.id === "string" && sent.has(m.id));
    assert.ok(responses.length >= KILL_AFTER);
    assert.ok(responses.length < sent.size, `the kill came in the middle of the load (${responses.length} of ${sent.size} answered)`);
    for (const response of responses) assert.notEqual(response.result?.isError, true, `${String(response.id)}: ${resultText(response)}`);

    const beforeRestart = parseLog(logPath);
    assert.ok(!beforeRestart.some((e) => e.event === "server_stop"), "the killed server could not close its log");
    assert.ok(existsSync(`${logPath}.lock`), "the killed server left its lock behind");

    // The restart takes over the stale lock, recovers a torn tail if there is one, and continues the chain.
    const restart = await ServerProcess.initialized({ policy: LOAD_POLICY, stateDir });
    let restartStderr = "";
    try {
      const after = await restart.callTool("search_tools", { query: "after the crash" });
      assert.notEqual(after.result?.isError, true, resultText(after));
    } finally {
      const exit = await restart.close();
      restartStderr = restart.stderr;
      assert.deepEqual(exit, { code: 0, signal: null });
    }
    assert.match(restartStderr, HEAD_LINE);

    const verify = await cli(["audit", "verify", "--state-dir", stateDir], home);
    assert.equal(verify.code, 0, `${verify.stdout}\n${verify.stderr}`);
    assert.match(verify.stdout, /^result: INTACT$/m);

    const entries = parseLog(logPath);
    const starts = entries.filter((e) => e.event === "server_start");
    assert.equal(starts.length, 2);
    const restartIndex = entries.indexOf(starts[1]!);
    const recovered = entries.filter((e) => e.event === "recovery");
    t.diagnostic(`${responses.length} of ${sent.size} calls answered before the kill; ${beforeRestart.length} entries; recovery entries: ${recovered.length}`);
    assert.ok(recovered.every((e) => e.data.kind === "torn_tail"), "only a torn tail needs recovering after a kill");
    // The restart links to the last whole entry the killed server wrote.
    assert.ok(entries.slice(0, beforeRestart.length).every((e, i) => e.hash === beforeRestart[i]!.hash), "the entries before the kill are kept as they were");
    const firstNew = entries[beforeRestart.length]!;
    assert.ok(firstNew.event === "server_start" || firstNew.event === "recovery", `the restart writes next: ${String(firstNew.event)}`);
    assert.equal(firstNew.prev, beforeRestart.at(-1)!.hash);
    assert.ok(restartIndex >= beforeRestart.length);

    // The response is sent only once its tool_result is durable: every answer is in the log.
    for (const response of responses) {
      const id = response.id as string;
      const result = entries.find((e) => e.event === "tool_result" && e.requestId === id);
      assert.ok(result, `answered call ${id} has its tool_result`);
      assert.ok(result.seq < starts[1]!.seq, `${id}'s tool_result was written before the kill`);
      assert.equal(result.outcome, "ok");
      const intent = entries.find((e) => e.event === "tool_call" && e.requestId === id);
      assert.ok(intent, `answered call ${id} has its tool_call`);
      assert.equal(intent.callId, result.callId);
      assert.ok(intent.seq < result.seq);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

void test("a torn last line after a kill: verify says torn_tail (exit 1); the restart sets it aside with a recovery entry, then verify exits 0", async () => {
  const root = tempDir("msl-audit-torn-");
  const stateDir = join(root, "state");
  const home = join(root, "home");
  const logPath = join(stateDir, "audit", "audit.log");
  mkdirSync(home);
  // What a write cut short by a power loss leaves: the start of an entry, no newline.
  const torn = '{"v":1,"seq":999,"id":"01J';
  try {
    const server = await ServerProcess.initialized({ stateDir });
    try {
      const answer = await server.callTool("search_tools", { query: "bug" });
      assert.notEqual(answer.result?.isError, true, resultText(answer));
      server.kill("SIGKILL");
      await exitWithin(server, 5000);
    } finally {
      server.cleanup();
    }
    const whole = parseLog(logPath);
    appendFileSync(logPath, torn);

    const before = await cli(["audit", "verify", "--state-dir", stateDir], home);
    assert.equal(before.code, 1, before.stdout);
    assert.match(before.stdout, new RegExp(`^result: TAMPERED at ${logPath}:${whole.length + 1}: torn_tail`, "m"));

    const restart = await ServerProcess.initialized({ stateDir });
    try {
      assert.match(restart.stderr, /torn last line/);
    } finally {
      assert.deepEqual(await restart.close(), { code: 0, signal: null });
    }
    const after = await cli(["audit", "verify", "--state-dir", stateDir], home);
    assert.equal(after.code, 0, after.stdout);
    assert.match(after.stdout, /^recoveries: 1$/m);
    assert.match(after.stdout, new RegExp(`\\(torn_tail\\): .*kept in \\S+ \\(${torn.length} bytes\\)`));

    const entries = parseLog(logPath);
    const recovery = entries[whole.length]!;
    assert.equal(recovery.event, "recovery");
    assert.equal(recovery.prev, whole.at(-1)!.hash, "the chain continues from the last whole entry");
    assert.equal(recovery.data.bytes, torn.length);
    const keptIn = join(stateDir, "audit", recovery.data.keptIn as string);
    assert.equal(readFileSync(keptIn, "utf8"), torn, "the torn bytes are kept, not thrown away");
    assert.equal(entries[whole.length + 1]!.event, "server_start");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

void test("audit tail right after a rotation, and with the active file lost between rotation steps: the last N entries, from the rotated files too", async () => {
  const root = tempDir("msl-audit-tail-");
  const stateDir = join(root, "state");
  const home = join(root, "home");
  const auditDir = join(stateDir, "audit");
  const logPath = join(auditDir, "audit.log");
  mkdirSync(home);
  try {
    const server = await ServerProcess.initialized({ policy: ['version: "1.0"', "audit:", "  rotate_bytes: 2000", ""].join("\n"), stateDir });
    try {
      for (let i = 0; i < 8; i++) {
        const answer = await server.callTool("search_tools", { query: `rotation ${i}` });
        assert.notEqual(answer.result?.isError, true, resultText(answer));
      }
    } finally {
      assert.deepEqual(await server.close(), { code: 0, signal: null });
    }
    const seqOfName = (name: string): number => Number(/-(\d{12})\.log$/.exec(name)![1]);
    const segments = readdirSync(auditDir)
      .filter((name) => /^audit-\d{8}T\d{6}Z-\d{12}\.log$/.test(name))
      .sort((a, b) => seqOfName(a) - seqOfName(b));
    assert.ok(segments.length >= 2, `the log rotated: ${readdirSync(auditDir).join(", ")}`);
    const seqs = [...segments.map((name) => join(auditDir, name)), logPath].flatMap((file) => parseLog(file).map((e) => e.seq as number));
    const inActive = parseLog(logPath).length;
    const shown = (stdout: string): number[] => stdout.split("\n").filter((line) => line.length > 0).map((line) => Number(/#(\d+)/.exec(line)?.[1]));

    const n = inActive + 3;
    const run = await cli(["audit", "tail", "-n", String(n), "--state-dir", stateDir], home);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, "");
    assert.deepEqual(shown(run.stdout), seqs.slice(-n));

    rmSync(logPath);
    const lost = await cli(["audit", "tail", "-n", "4", "--state-dir", stateDir], home);
    assert.equal(lost.code, 0, lost.stderr);
    assert.deepEqual(shown(lost.stdout), seqs.slice(0, -inActive).slice(-4));
    assert.match(lost.stderr, /audit tail: .*audit\.log is missing/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

void test('audit.log_file "/dev/full": the server refuses to start, says why on stderr, writes nothing to stdout', async () => {
  const server = ServerProcess.start({ policy: ['version: "1.0"', "audit:", '  log_file: "/dev/full"', ""].join("\n") });
  try {
    const exit = await exitWithin(server, 10_000);
    assert.equal(exit.code, 1, server.stderr);
    // As root the lock beside it can be made and the file is then refused as not a regular
    // file; as another user /dev refuses the lock. Either way the start is refused, naming it.
    assert.match(server.stderr, /refusing to start: audit (log \/dev\/full is not a regular file|lock \/dev\/full\.lock cannot be created)/);
    assert.deepEqual(server.rawLines, [], "nothing on stdout");
    assert.doesNotMatch(server.stderr, /Waiting for an MCP client/);
    assert.equal(existsSync("/dev/full.lock"), false, "the lock taken while trying is released");
  } finally {
    server.cleanup();
  }
});

void test("the log file removed while the server runs: the next add_bug is refused naming the audit log, and no bug is created", async () => {
  const stateDir = tempDir("msl-state-");
  const workspace = join(stateDir, "workspace");
  const logPath = join(stateDir, "audit", "audit.log");
  try {
    const server = await ServerProcess.initialized({ stateDir });
    let stderr = "";
    try {
      const kept = await server.callTool("add_bug", { title: "kept bug", project_path: workspace });
      assert.notEqual(kept.result?.isError, true, resultText(kept));

      rmSync(logPath);
      const refused = await server.callTool("add_bug", { title: "refused bug", project_path: workspace });
      assert.equal(refused.result?.isError, true, "the call is refused");
      assert.match(resultText(refused), /audit log/);
      assert.match(resultText(refused), /No tool runs without its audit entry/);
      assert.equal(refused.result?.structuredContent, undefined);

      // The failure sticks: a log that lost entries does not quietly resume.
      const later = await server.callTool("search_tools", { query: "bug" });
      assert.equal(later.result?.isError, true);
      assert.match(resultText(later), /audit log/);
    } finally {
      await server.close();
      stderr = server.stderr;
    }
    assert.doesNotMatch(stderr, HEAD_LINE, "no head is printed for a failed log");
    assert.match(stderr, /audit log failed/);

    // A later server (a new log) sees the bug tracker as the refused call left it.
    const check = await ServerProcess.initialized({ stateDir });
    try {
      const list = await check.callTool("list_bugs", { project_path: workspace });
      assert.notEqual(list.result?.isError, true, resultText(list));
      const titles = (list.result.structuredContent.bugs as Message[]).map((bug) => bug.title as string);
      assert.deepEqual(titles, ["kept bug"], "the refused add_bug did not run");
    } finally {
      await check.close();
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});

void test("the audit directory replaced by a file while the server runs: calls are refused; a restart refuses to start", async () => {
  const root = tempDir("msl-audit-dir-");
  const stateDir = join(root, "state");
  const home = join(root, "home");
  const auditDir = join(stateDir, "audit");
  const moved = join(stateDir, "audit-moved");
  mkdirSync(home);
  try {
    const server = await ServerProcess.initialized({ stateDir });
    try {
      const before = await server.callTool("search_tools", { query: "bug" });
      assert.notEqual(before.result?.isError, true, resultText(before));

      renameSync(auditDir, moved);
      writeFileSync(auditDir, "not a directory any more\n");
      const refused = await server.callTool("search_tools", { query: "bug" });
      assert.equal(refused.result?.isError, true, "the call is refused");
      // The model hears the code; the log's path is for the operator, on stderr.
      assert.match(resultText(refused), /audit log cannot be written \(AUDIT_WRITE_FAILED\b/);
      assert.doesNotMatch(resultText(refused), /audit\.log|\//);
      assert.equal(refused.result?.structuredContent, undefined, "no tool output was returned");
    } finally {
      await server.close();
    }
    assert.match(server.stderr, /audit log .*audit\.log/);

    // What was written before the failure still verifies where it was moved to.
    const verify = await cli(["audit", "verify", join(moved, "audit.log")], home);
    assert.equal(verify.code, 0, `${verify.stdout}\n${verify.stderr}`);

    const restart = ServerProcess.start({ stateDir });
    try {
      const exit = await exitWithin(restart, 10_000);
      assert.equal(exit.code, 1, restart.stderr);
      assert.match(restart.stderr, /refusing to start: audit directory .*audit cannot be created/);
      assert.deepEqual(restart.rawLines, []);
    } finally {
      restart.cleanup();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
