/**
 * Hostile and unusual input over real pipes: line endings, invalid UTF-8, lines over
 * the limit (with the server's memory watched), deep nesting, huge numbers, the
 * input that crashed the seed, Unicode round trips, and secrets kept out of the logs.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { ServerProcess, resultText, type Message } from "../helpers/server-process.js";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { TEST_SERVER_ENTRY, auditEntries, auditText, exchange, responses, residentBytes, tempDir } from "../helpers/e2e.js";
import { verifyAudit } from "../../src/security/audit/index.js";

const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const INVALID_PARAMS = -32602;
const MIB = 1024 * 1024;

/** Writes `chunk` `times` times to the server's stdin, waiting for drain when the pipe is full. */
async function pour(server: ServerProcess, chunk: Buffer, times: number, afterEach?: () => void): Promise<void> {
  const stdin = server.child.stdin;
  const died = server.exited.then((exit) => {
    throw new Error(`the server exited while input was being written: ${JSON.stringify(exit)}; stderr:\n${server.stderr.slice(-2000)}`);
  });
  died.catch(() => undefined);
  for (let i = 0; i < times; i++) {
    if (!stdin.write(chunk)) await Promise.race([once(stdin, "drain"), died]);
    afterEach?.();
  }
}

/** A ping whose JSON line (without the newline) is exactly `bytes` long. */
function pingLineOfSize(id: string, bytes: number): string {
  const head = `{"jsonrpc":"2.0","id":"${id}","method":"ping","params":{"_meta":{"pad":"`;
  const tail = `"}}}`;
  const pad = bytes - Buffer.byteLength(head) - Buffer.byteLength(tail);
  assert.ok(pad >= 0);
  return head + "a".repeat(pad) + tail;
}

/** Everything the server wrote from `from` up to (not including) the answer to a fresh ping. */
async function repliesSince(server: ServerProcess, from: number): Promise<Message[]> {
  const pong = await server.request("ping", undefined, `since-${from}-${Date.now()}`, 30_000);
  return server.messages.slice(from, server.messages.indexOf(pong));
}

void describe("robustness (test server, default limits)", () => {
  let server: ServerProcess;

  before(async () => {
    server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY });
  });

  after(async () => {
    await server.close();
  });

  void test("CRLF line endings are accepted and blank lines ignored", async () => {
    const replies = await exchange(server, () => {
      server.child.stdin.write('{"jsonrpc":"2.0","id":"crlf-1","method":"ping"}\r\n');
      server.child.stdin.write("\n\n   \n\r\n\t\n");
      server.child.stdin.write('{"jsonrpc":"2.0","id":"crlf-2","method":"tools/call","params":{"name":"echo","arguments":{"text":"crlf"}}}\r\n');
    });
    const pong = replies.find((m) => m.id === "crlf-1");
    assert.deepEqual(pong?.result, {});
    assert.equal(replies.filter((m) => "error" in m).length, 0, `no errors: ${JSON.stringify(replies)}`);
    const echo = await server.waitFor((m) => m.id === "crlf-2" && "result" in m);
    assert.equal(resultText(echo), "crlf");
  });

  void test("invalid UTF-8 gets -32700 without an id, and the server keeps serving", async () => {
    const invalid = [
      Buffer.from([0xff, 0xfe]),
      Buffer.from([0xc0, 0xaf]), // overlong "/"
      Buffer.from([0xed, 0xa0, 0x80]), // an encoded surrogate
      Buffer.from([0xe2, 0x82]), // truncated sequence
    ];
    for (const bytes of invalid) {
      const line = Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":"utf8","method":"ping","params":{"_meta":{"x":"'), bytes, Buffer.from('"}}}\n')]);
      const replies = responses(await exchange(server, () => server.child.stdin.write(line)));
      assert.equal(replies.length, 1, `one reply for ${bytes.toString("hex")}`);
      assert.equal(replies[0]!.error?.code, PARSE_ERROR);
      assert.equal("id" in replies[0]!, false);
    }
    assert.deepEqual((await server.request("ping")).result, {});
  });

  void test("Unicode and emoji round-trip intact, in text and in ids", async () => {
    const text = "héllo wörld — 日本語 — 🎉 👩‍👩‍👧 — e\u0301 — 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 — العربية — \u{10FFFD}";
    const reply = await server.request("tools/call", { name: "echo", arguments: { text } }, "🆔-ünï");
    assert.equal(reply.id, "🆔-ünï");
    assert.equal(resultText(reply), text);
    const structured = await server.callTool("structured", {});
    assert.equal(structured.result.structuredContent.greeting, "héllo 👋");
  });

  void test('a result holding "\\n" stays one line', async () => {
    const text = "line one\nline two\n\nline four\r\n";
    const before = server.rawLines.length;
    const reply = await server.callTool("echo", { text });
    assert.equal(resultText(reply), "line one\nline two\n\nline four\n", "CR is normalized by the output sanitizer");
    const lines = server.rawLines.slice(before);
    const line = lines.find((raw) => raw.includes("line one"));
    assert.ok(line, "the response is on one line");
    assert.deepEqual(JSON.parse(line), reply);
    assert.equal(server.rawLines.length, server.messages.length, "every stdout line is exactly one message");
  });

  void test("100 000 levels of nesting do not crash the server", async () => {
    const depth = 100_000;
    const deep = "[".repeat(depth) + "]".repeat(depth);
    const deepObject = '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
    const from = server.messages.length;
    server.writeLine(`{"jsonrpc":"2.0","id":"deep-1","method":"tools/call","params":{"name":"echo","arguments":{"text":"x","deep":${deep}}}}`);
    server.writeLine(`{"jsonrpc":"2.0","id":"deep-2","method":"tools/call","params":{"name":"echo","arguments":{"text":"x"},"_meta":${deepObject}}}`);
    server.writeLine(`{"jsonrpc":"2.0","id":"deep-3","method":"ping","params":{"_meta":{"x":${deepObject}}}}`);
    server.writeLine(deep);
    const first = await server.waitFor((m) => m.id === "deep-1", 20_000, "reply to deep-1");
    assert.ok(first.error !== undefined || first.result?.isError === true, `deep arguments are refused: ${JSON.stringify(first).slice(0, 300)}`);
    const second = await server.waitFor((m) => m.id === "deep-2", 20_000, "reply to deep-2");
    assert.ok(second.result !== undefined || second.error !== undefined);
    const third = await server.waitFor((m) => m.id === "deep-3", 20_000, "reply to deep-3");
    assert.ok(third.result !== undefined || third.error !== undefined);
    const replies = await repliesSince(server, from);
    assert.ok(
      replies.some((m) => m.error?.code === INVALID_REQUEST && !("id" in m)),
      "the nested top-level array is refused as a batch",
    );
    assert.equal(server.child.exitCode, null, "still running");
  });

  void test("huge numbers do not crash the server", async () => {
    const digits = "9".repeat(100_000);
    server.writeLine(`{"jsonrpc":"2.0","id":"num-1","method":"tools/call","params":{"name":"echo","arguments":{"text":1e999}}}`);
    server.writeLine(`{"jsonrpc":"2.0","id":"num-2","method":"tools/call","params":{"name":"spy_target","arguments":{"n":${digits}}}}`);
    server.writeLine(`{"jsonrpc":"2.0","id":"num-3","method":"tools/call","params":{"name":"spy_target","arguments":{"n":-1e-999}}}`);
    server.writeLine(`{"jsonrpc":"2.0","id":"num-4","method":"ping","params":{"_meta":{"big":${digits}}}}`);
    for (const id of ["num-1", "num-2"]) {
      const reply = await server.waitFor((m) => m.id === id, 10_000, `reply to ${id}`);
      assert.equal(reply.result?.isError, true, `${id}: ${JSON.stringify(reply).slice(0, 300)}`);
    }
    const zero = await server.waitFor((m) => m.id === "num-3", 10_000, "reply to num-3");
    assert.ok(zero.result !== undefined, "-1e-999 parses as -0, a valid n");
    assert.deepEqual((await server.waitFor((m) => m.id === "num-4")).result, {});

    const from = server.messages.length;
    server.writeLine('{"jsonrpc":"2.0","id":1e400,"method":"ping"}');
    const replies = responses(await repliesSince(server, from));
    assert.equal(replies.length, 1);
    assert.equal(replies[0]!.error?.code, INVALID_REQUEST);
  });

  void test("a call refused for a non-finite number is still recorded in the audit log", async () => {
    // 1e999 parses to Infinity. The refusal above must leave its `denied` entry, as every refusal does.
    await server.request("ping");
    const denied = auditEntries(server.stateDir).filter((e) => e.event === "denied" && (e.requestId === "num-1" || e.requestId === "num-2"));
    assert.deepEqual(
      denied.map((e) => e.requestId).sort(),
      ["num-1", "num-2"],
      `both refusals are audited; server log:\n${server.stderr.slice(-1500)}`,
    );
  });

  void test("tools/call with `name` as an object or array gets -32602 (the seed crashed here)", async () => {
    for (const name of [{}, [], { toString: "echo" }, ["echo"], true]) {
      const reply = await server.request("tools/call", { name, arguments: {} });
      assert.equal(reply.error?.code, INVALID_PARAMS, JSON.stringify(name));
    }
    assert.equal(resultText(await server.callTool("echo", { text: "alive" })), "alive");
  });

  void test("a 20 MiB line (over the 16 MiB default) gets one error and the server keeps serving", async () => {
    const from = server.messages.length;
    await pour(server, Buffer.from('{"jsonrpc":"2.0","id":"huge","method":"tools/call","params":{"name":"echo","arguments":{"text":"'), 1);
    await pour(server, Buffer.alloc(MIB, "a"), 20);
    await pour(server, Buffer.from('"}}}\n'), 1);
    const replies = responses(await repliesSince(server, from));
    assert.equal(replies.length, 1, `one reply: ${JSON.stringify(replies).slice(0, 500)}`);
    assert.equal(replies[0]!.error?.code, INVALID_REQUEST);
    assert.equal("id" in replies[0]!, false);
    assert.match(replies[0]!.error.message as string, /line limit|exceeds/i);
    assert.equal(resultText(await server.callTool("echo", { text: "after the flood" })), "after the flood");
  });
});

void describe("limits under load (--max-line-bytes 1048576, default rate limit)", () => {
  const LIMIT = MIB;
  let server: ServerProcess;

  before(async () => {
    server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, args: ["--max-line-bytes", String(LIMIT)] });
  });

  after(async () => {
    await server.close();
  });

  void test("a line of exactly the limit is served; one byte more is refused", async () => {
    const atLimit = await exchange(server, () => server.writeLine(pingLineOfSize("edge-at", LIMIT)));
    assert.deepEqual(atLimit.find((m) => m.id === "edge-at")?.result, {});

    const withCr = await exchange(server, () => server.child.stdin.write(`${pingLineOfSize("edge-cr", LIMIT)}\r\n`));
    assert.deepEqual(withCr.find((m) => m.id === "edge-cr")?.result, {}, "a trailing CR is not counted");

    const over = responses(await exchange(server, () => server.writeLine(pingLineOfSize("edge-over", LIMIT + 1))));
    assert.equal(over.length, 1);
    assert.equal(over[0]!.error?.code, INVALID_REQUEST);
    assert.equal(over[0]!.error?.data?.maxLineBytes, LIMIT);
    assert.equal(over.some((m) => m.id === "edge-over"), false);
  });

  void test("a 100 MiB line is discarded as it streams: one error, bounded memory, still serving", async (t) => {
    const pid = server.child.pid!;
    const baseline = residentBytes(pid);
    // Without /proc the memory cannot be read; the rest of the test still runs.
    if (baseline === undefined) t.diagnostic("no /proc/<pid>/status on this system: memory not checked");
    let peak = baseline ?? 0;
    const sample = () => {
      const rss = residentBytes(pid);
      if (rss !== undefined && rss > peak) peak = rss;
    };
    const from = server.messages.length;
    await pour(server, Buffer.from('{"jsonrpc":"2.0","id":"flood","method":"tools/call","params":{"name":"echo","arguments":{"text":"'), 1);
    await pour(server, Buffer.alloc(MIB, "b"), 100, sample);
    await pour(server, Buffer.from('"}}}\n'), 1);
    const replies = responses(await repliesSince(server, from));
    sample();
    assert.equal(replies.length, 1, `one error for the whole line: ${JSON.stringify(replies).slice(0, 500)}`);
    assert.equal(replies[0]!.error?.code, INVALID_REQUEST);
    assert.equal("id" in replies[0]!, false);
    if (baseline !== undefined) {
      t.diagnostic(`RSS baseline ${(baseline / MIB).toFixed(1)} MiB, peak ${(peak / MIB).toFixed(1)} MiB`);
      assert.ok(peak < 150 * MIB, `peak RSS ${(peak / MIB).toFixed(1)} MiB (baseline ${(baseline / MIB).toFixed(1)} MiB) stays well below the 100 MiB line`);
    }
    assert.equal(resultText(await server.callTool("echo", { text: "still serving" })), "still serving");
  });

  void test("a flood of 150 calls: every one is answered, the minute's budget passes, the rest are refused", async () => {
    const total = 150;
    const ids = Array.from({ length: total }, (_, i) => `flood-${i}`);
    const lines = ids.map((id) => JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "spy_count", arguments: {} } }));
    server.child.stdin.write(`${lines.join("\n")}\n`);
    const replies = await Promise.all(ids.map((id) => server.waitFor((m) => m.id === id, 60_000, `reply to ${id}`)));
    const passed = replies.filter((m) => m.result !== undefined && m.result.isError !== true);
    const refused = replies.filter((m) => m.result?.isError === true);
    assert.ok(passed.length >= 60, `the minute's budget passes (${passed.length})`);
    assert.ok(refused.length > 0, "calls over the budget are refused");
    assert.equal(passed.length + refused.length, total, "every call got a result, none a protocol error");
    for (const reply of refused) assert.match(resultText(reply), /rate limit/i);
    assert.equal(resultText(await server.callTool("echo", { text: "alive" })), "alive");
  });
});

void describe("secrets stay out of the logs", () => {
  void test("a password argument never reaches stderr (at debug level), the client's log stream or the audit log", async () => {
    const password = "hunter2-secret";
    const token = "abc123secret";
    const server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, args: ["--log-level", "debug"] });
    let audit = "";
    try {
      assert.deepEqual((await server.request("logging/setLevel", { level: "debug" })).result, {});
      const reply = await server.callTool("secret_echo", { password, text: `token=${token}` });
      assert.equal(resultText(reply), `token=${token}`, "the result is the tool's business");
      const invalid = await server.callTool("secret_echo", { password, text: 5 });
      assert.equal(invalid.result?.isError, true);
      audit = auditText(server.stateDir);
    } finally {
      await server.close();
    }
    assert.match(audit, /secret_echo/, "the audit log was read");
    assert.ok(!audit.includes(password), "the password is not in the audit log");
    assert.ok(!audit.includes(token), "the token is not in the audit log");
    assert.match(server.stderr, /secret_echo called/, "the plugin's log line reached stderr");
    assert.ok(!server.stderr.includes(password), "the password is not on stderr");
    assert.ok(!server.stderr.includes(token), "the token is not on stderr");
    const logLines = server.rawLines.filter((line) => line.includes('"notifications/message"'));
    assert.ok(logLines.some((line) => line.includes("secret_echo called")), "the log line reached the client");
    assert.ok(!server.rawLines.some((line) => line.includes(password)), "the password is nowhere on stdout");
    assert.ok(!logLines.some((line) => line.includes(token)), "the token is not in the client's log stream");
  });

  void test("secrets in keys, quoted values, compound names and URLs without a user stay out of the audit log", async () => {
    const secrets = ["pg-hunter2", "two words secret", "redis-pw-9", "p@ss-at-sign", "ghp_" + "k".repeat(36)];
    const texts = [
      `PGPASSWORD=${secrets[0]} psql -h db`,
      `password="${secrets[1]}"`,
      `redis://:${secrets[2]}@cache:6379/0`,
      `postgres://app:${secrets[3]}@db:5432/app`,
    ];
    const server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY });
    let audit = "";
    try {
      for (const text of texts) {
        const reply = await server.callTool("secret_echo", { password: "x", text });
        assert.equal(resultText(reply), text, "the result is the tool's business");
      }
      // Refused for its unexpected property, whose name is the secret: the denied entry keeps the arguments.
      const refused = await server.callTool("secret_echo", { password: "x", text: "t", [secrets[4]!]: 1 });
      assert.equal(refused.result?.isError, true);
      audit = auditText(server.stateDir);
    } finally {
      await server.close();
    }
    assert.match(audit, /"denied"/, "the refusal was recorded");
    for (const secret of secrets) assert.ok(!audit.includes(secret), `${secret} is not in the audit log`);
  });

  void test("a command run through ctx.exec: the argument after --password or --api-key is [REDACTED] in its audit entry, the flags and the rest stay", async () => {
    const secrets = ["hunter2-argv", "xyz-argv-key"];
    const args = ["-u", "root", "--password", secrets[0]!, "--api-key", secrets[1]!, "-p", "3306"];
    const server = await ServerProcess.initialized({
      entry: TEST_SERVER_ENTRY,
      env: { TESTKIT_EXEC: "1" },
      policy: ['version: "1.0"', "commands:", "  allowed: [echo]", "  sandbox: off", ""].join("\n"),
    });
    let entries: Message[] = [];
    let audit = "";
    try {
      const reply = await server.callTool("run_program", { program: "echo", args });
      assert.notEqual(reply.result?.isError, true, JSON.stringify(reply));
      assert.match(JSON.stringify(reply.result), /hunter2-argv/, "the program ran with the real arguments");
      // Refused by its schema (a number in the list): the denied entry keeps the arguments, and its reason does not quote the value.
      const refused = await server.callTool("run_program", { program: "echo", args: ["--password", 987_654_321] });
      assert.equal(refused.result?.isError, true);
      audit = auditText(server.stateDir);
      entries = auditEntries(server.stateDir);
    } finally {
      await server.close();
    }
    const call = entries.find((entry) => entry.event === "tool_call" && entry.tool === "run_program");
    assert.deepEqual(call?.arguments, { program: "echo", args: ["-u", "root", "--password", "[REDACTED]", "--api-key", "[REDACTED]", "-p", "3306"] });
    assert.equal(entries.find((entry) => entry.event === "tool_result" && entry.callId === call?.callId)?.outcome, "ok");
    const denied = entries.find((entry) => entry.event === "denied" && entry.tool === "run_program");
    assert.deepEqual(denied?.arguments, { program: "echo", args: ["--password", "[REDACTED]"] });
    assert.match(String(denied?.reason), /args\[1\] must be a string \(got a value that is not shown\)/);
    for (const secret of [...secrets, "987654321"]) {
      assert.ok(!audit.includes(secret), `${secret} is not in the audit log`);
      assert.ok(!server.stderr.includes(secret), `${secret} is not on stderr`);
    }
  });
});

void test("a byte order mark at the start of the stream (a .NET StreamWriter's) is ignored: the client's initialize is answered; one before a later message is refused", async () => {
  const server = ServerProcess.start();
  try {
    const init = { jsonrpc: "2.0", id: "bom-init", method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "dotnet", version: "1" } } };
    server.child.stdin.write(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`${JSON.stringify(init)}\n`)]));
    const answer = await server.waitFor((m) => m.id === "bom-init");
    assert.equal((answer.result as Message | undefined)?.protocolVersion, "2025-11-25", JSON.stringify(answer));
    server.child.stdin.write(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"jsonrpc":"2.0","id":"bom-2","method":"ping"}\n')]));
    const refused = await server.waitFor((m) => (m.error as Message | undefined)?.code === -32700);
    assert.match(String((refused.error as Message).message), /byte order mark/);
    assert.deepEqual(server.problems, []);
  } finally {
    await server.close();
  }
});

void test("a flood of refused calls the rate limit does not count: each answered with its error, 60 entries of their own, the rest counted, and the log verifies", async () => {
  const stateDir = tempDir("msl-state-");
  const server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, stateDir });
  try {
    const line = (id: string, params: Message) => JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params });
    const unknown = Array.from({ length: 300 }, (_, i) => `u-${i}`);
    const malformed = Array.from({ length: 50 }, (_, i) => `m-${i}`);
    server.child.stdin.write(
      `${[...unknown.map((id) => line(id, { name: `no_such_${id}`, arguments: {} })), ...malformed.map((id) => line(id, { name: "echo", arguments: 5 }))].join("\n")}\n`,
    );
    // Held for their summaries, a second apart at most: liveness only.
    const replies = await Promise.all([...unknown, ...malformed].map((id) => server.waitFor((m) => m.id === id, 30_000, `reply to ${id}`)));
    for (const reply of replies) assert.equal(reply.error?.code, INVALID_PARAMS, JSON.stringify(reply));
    // Refusals counted but not yet recorded when stdin closes are recorded, and answered, at shutdown.
    const late = Array.from({ length: 20 }, (_, i) => `late-${i}`);
    server.child.stdin.write(`${late.map((id) => line(id, { name: "no_such_tool", arguments: {} })).join("\n")}\n`);
    const lateReplies = Promise.all(late.map((id) => server.waitFor((m) => m.id === id, 30_000, `reply to ${id}`)));
    assert.deepEqual(await server.close(10_000), { code: 0, signal: null });
    for (const reply of await lateReplies) assert.equal(reply.error?.code, INVALID_PARAMS);

    const entries = auditEntries(stateDir);
    const sent = new Set([...unknown, ...malformed, ...late]);
    const own = entries.filter((e) => e.event === "denied" && sent.has(e.requestId as string));
    const summaries = entries.filter((e) => e.event === "denied" && e.data?.refusalsNotRecorded !== undefined);
    const counted = summaries.reduce((sum, e) => sum + (e.data.refusalsNotRecorded as number), 0);
    assert.equal(own.length, 60, "as many entries of their own as the minute allows");
    assert.equal(own.length + counted, sent.size, "every refusal is recorded or counted");
    assert.ok(summaries.length < 20, `${summaries.length} summaries`);
    const stop = entries.findIndex((e) => e.event === "server_stop");
    assert.ok(entries.indexOf(summaries.at(-1)!) < stop, "the last count is recorded before server_stop");
    const verified = await verifyAudit(join(stateDir, "audit"));
    assert.equal(verified.ok, true, JSON.stringify(verified.failure));
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});
