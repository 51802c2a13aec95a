/**
 * Backpressure end to end, through the built server over real pipes:
 * - a client that stops reading stdout makes the server stop reading stdin (it does not keep
 *   serving into an unbounded buffer), and once the client reads again every request gets
 *   exactly one intact response;
 * - past the in-flight limit, calls wait their turn (never more than the limit run at once),
 *   ping gets through meanwhile, and stdin closing behind a backlog still ends the server in time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ServerProcess, type Message } from "../helpers/server-process.js";
import { TEST_SERVER_ENTRY, tempDir } from "../helpers/e2e.js";

const FAST = `version: "1.0"
tools:
  rate_limits:
    default: 1000000
audit:
  enabled: false
`;

const DURABLE = `version: "1.0"
tools:
  rate_limits:
    default: 1000000
audit:
  fsync: always
`;

async function settled(read: () => number, quietMs: number, maxMs: number): Promise<number> {
  let last = read();
  for (let waited = 0; waited < maxMs; waited += quietMs) {
    await new Promise((resolve) => setTimeout(resolve, quietMs));
    const now = read();
    if (now === last) return now;
    last = now;
  }
  return last;
}

/** Sends `total` search_tools calls whose answers list every tool with its schemas (a few KB each). */
function flood(server: ServerProcess, total: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < total; i++) {
    const id = server.newId();
    ids.push(id);
    server.send({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "search_tools", arguments: { query: "", detail_level: "full" } } });
  }
  return ids;
}

async function expectAllAnswered(server: ServerProcess, ids: number[]): Promise<void> {
  const responses = await Promise.all(ids.map((id) => server.waitFor((m) => m.id === id && !("method" in m), 60_000, `response ${id}`)));
  for (const response of responses) {
    const result = response.result as Message | undefined;
    assert.equal(result?.isError, undefined, JSON.stringify(response).slice(0, 300));
    assert.ok(Array.isArray((result?.structuredContent as Message | undefined)?.results));
  }
  const wanted = new Set(ids);
  assert.equal(server.messages.filter((m) => wanted.has(m.id as number)).length, ids.length, "exactly one response per request");
}

void test("a client that stops reading: the server stops reading too, then answers every request once, intact", async () => {
  const server = await ServerProcess.initialized({ policy: FAST });
  try {
    server.child.stdout.pause();
    const ids = flood(server, 3000); // ~450 KB of requests, a few MB of answers
    // The server's unread input backs up into this process's stdin buffer.
    const backlog = await settled(() => server.child.stdin.writableLength, 300, 5000);
    assert.ok(backlog > 100_000, `the server stopped reading while its output was not read (${backlog} bytes left unread)`);
    server.child.stdout.resume();
    await expectAllAnswered(server, ids);
    assert.equal(server.child.stdin.writableLength, 0);
  } finally {
    server.child.stdout.resume();
    const { code } = await server.close(10_000);
    assert.equal(code, 0);
  }
});

void test("past the in-flight limit calls wait their turn: never more than the limit run, ping gets through, all are answered", async () => {
  const server = await ServerProcess.initialized({ policy: DURABLE, args: ["--max-in-flight", "8"] });
  const log = join(server.stateDir, "audit", "audit.log");
  const count = (event: string) => readFileSync(log, "utf8").split("\n").filter((line) => line.includes(`"event":"${event}"`)).length;
  try {
    // Each call waits for its audit entry's fsync (twice), so calls pile up behind the limit.
    const ids = flood(server, 1000);
    const ping = await server.request("ping", undefined, "ping-during-flood", 10_000);
    assert.deepEqual(ping.result, {});
    const answeredBeforePing = server.messages.findIndex((m) => m.id === "ping-during-flood");
    assert.ok(answeredBeforePing < 500, `ping was answered before most of the calls (after ${answeredBeforePing} messages)`);
    let most = 0;
    for (let sample = 0; sample < 20 && count("tool_result") < ids.length; sample++) {
      // The log is read as a prefix: the calls it shows started, less those it shows ended, were running then.
      const text = readFileSync(log, "utf8");
      const running = text.split('"event":"tool_call"').length - text.split('"event":"tool_result"').length;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(most <= 8, `at most 8 calls ran at once (saw ${most})`);
    await expectAllAnswered(server, ids);
    assert.equal(count("tool_call"), ids.length);
  } finally {
    const { code } = await server.close(10_000);
    assert.equal(code, 0);
  }
});

void test("stdin closed behind a backlog of calls: the server answers every one (run, aborted or not started) and exits within 2 s", async () => {
  const server = await ServerProcess.initialized({ policy: DURABLE, args: ["--max-in-flight", "8"] });
  try {
    const ids = flood(server, 2000);
    server.child.stdin.end();
    const started = Date.now();
    const exit = await server.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(Date.now() - started < 2000, `exited ${Date.now() - started} ms after stdin closed`);
    const wanted = new Set(ids);
    const answers = server.messages.filter((m) => wanted.has(m.id as number));
    assert.equal(new Set(answers.map((m) => m.id)).size, answers.length, "no request answered twice");
    const notStarted = answers.filter((m) => (m.error as Message | undefined)?.code === -32000);
    assert.ok(notStarted.length > 0, "calls still waiting at the deadline were told they never started");
    assert.equal(answers.length, ids.length, "every request got an answer");
  } finally {
    await server.close(10_000);
  }
});

void test("a queue filled past its bytes: the rest are refused as busy, and ping, cancellation and stdin closing are still seen", async () => {
  const server = await ServerProcess.initialized({ entry: TEST_SERVER_ENTRY, policy: FAST, args: ["--max-in-flight", "2"] });
  try {
    server.send({ jsonrpc: "2.0", id: "slow-1", method: "tools/call", params: { name: "slow", arguments: { ms: 60_000 } } });
    server.send({ jsonrpc: "2.0", id: "slow-2", method: "tools/call", params: { name: "slow", arguments: { ms: 60_000 } } });
    // 250 calls of 20 KB wait behind the two slow ones: more than the 4 MiB the queue holds.
    const text = "x".repeat(20_000);
    const ids: number[] = [];
    for (let i = 0; i < 250; i++) {
      const id = server.newId();
      ids.push(id);
      server.send({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "echo", arguments: { text } } });
    }
    const ping = await server.request("ping", undefined, "ping-behind-the-queue", 5_000);
    assert.deepEqual(ping.result, {});
    const busy = await server.waitFor((m) => (m.error as Message | undefined)?.data?.reason === "busy", 5_000, "a busy refusal");
    assert.equal((busy.error as Message).code, -32000);

    server.notify("notifications/cancelled", { requestId: "slow-1", reason: "not needed" });
    server.notify("notifications/cancelled", { requestId: "slow-2", reason: "not needed" });
    // With both slots free the waiting calls run; every call is answered once, run or refused.
    const answers = await Promise.all(ids.map((id) => server.waitFor((m) => m.id === id && !("method" in m), 20_000, `response ${id}`)));
    const served = answers.filter((m) => m.result !== undefined).length;
    assert.ok(served > 150 && served < 250, `some calls ran and the rest were refused (${served} ran)`);
    assert.equal(server.messages.filter((m) => m.id === "slow-1" || m.id === "slow-2").length, 0, "cancelled calls get no response");

    // Closing stdin behind another full queue still ends the server in time.
    server.send({ jsonrpc: "2.0", id: "slow-3", method: "tools/call", params: { name: "slow", arguments: { ms: 60_000 } } });
    server.send({ jsonrpc: "2.0", id: "slow-4", method: "tools/call", params: { name: "slow", arguments: { ms: 60_000 } } });
    for (let i = 0; i < 250; i++) server.send({ jsonrpc: "2.0", id: `late-${i}`, method: "tools/call", params: { name: "echo", arguments: { text } } });
    server.child.stdin.end();
    const closedAt = Date.now();
    assert.deepEqual(await server.exited, { code: 0, signal: null });
    assert.ok(Date.now() - closedAt < 2000, `exited ${Date.now() - closedAt} ms after stdin closed`);
  } finally {
    await server.close(10_000);
  }
});

/** The server's peak resident memory so far (VmHWM), in MiB. */
function peakMiB(server: ServerProcess): number {
  const status = readFileSync(`/proc/${server.child.pid!}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

void test("many large reads at once, to a client that reads slowly: what their results hold waits on --max-result-memory", { timeout: 120_000 }, async () => {
  const dir = tempDir("msl-reads-");
  const file = join(dir, "scan.bin");
  writeFileSync(file, Buffer.alloc(2 * 1024 * 1024, 0x5a));
  const policy = `version: "1.0"\nfilesystem:\n  allowed_paths: ["${dir}/**"]\n  max_read_bytes: 4194304\naudit:\n  enabled: false\n`;
  /** 24 base64 reads of the whole file sent while stdout is not read, then read: the peak memory and every answer. */
  const run = async (maxResultMemory: number): Promise<number> => {
    const server = await ServerProcess.initialized({ policy, args: ["--max-result-memory", String(maxResultMemory)] });
    try {
      server.child.stdout.pause();
      const ids: number[] = [];
      for (let i = 0; i < 24; i++) {
        const id = server.newId();
        ids.push(id);
        server.send({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "read_file", arguments: { path: file, length: 4194304, encoding: "base64" } } });
      }
      await new Promise((resolve) => setTimeout(resolve, 1500));
      server.child.stdout.resume();
      const answers = await Promise.all(ids.map((id) => server.waitFor((m) => m.id === id, 60_000, `read ${id}`)));
      for (const answer of answers) assert.equal(((answer.result as Message).structuredContent as Message).bytes, 2 * 1024 * 1024);
      assert.deepEqual(server.problems, []);
      return peakMiB(server);
    } finally {
      server.child.stdout.resume();
      await server.close(10_000);
    }
  };
  try {
    const bounded = await run(3 * 1024 * 1024); // one read's result at a time
    const unbounded = await run(1024 * 1024 * 1024);
    assert.ok(bounded + 100 < unbounded, `peak ${bounded.toFixed(0)} MiB with the budget, ${unbounded.toFixed(0)} MiB without`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
