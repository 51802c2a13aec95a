/**
 * The engine's refusals that the rate limit does not count (unknown and hidden tools, malformed
 * params, and the rate limit's own): one entry each up to a limit a minute, then counts in a
 * summary entry, written before any later entry; every call is still answered with its own
 * error, and only once the entry that records it is durable. With a budget of 2 and a timer the
 * test fires by hand.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SecurityEngine, refusalsPerSummary, type CallToolResult } from "../../src/security/engine.js";
import { PluginRegistry } from "../../src/plugins/registry.js";
import type { JsonObject, Plugin } from "../../src/plugins/contract.js";
import { defaultPolicy } from "../../src/security/policy/defaults.js";
import { compilePathPolicy } from "../../src/security/path-guard.js";
import type { AuditRecordInput, AuditSink } from "../../src/security/audit/index.js";
import { LazyAbort } from "../../src/util/call-abort.js";
import { silentLogger } from "../../src/util/logger.js";
import { verifyAudit } from "../../src/security/audit/index.js";
import { formatTailLine } from "../../src/security/audit/tail.js";
import { openTestLog, parse, readLines, tempEnv } from "../fixtures/audit-helpers.js";
import { PassThrough } from "node:stream";
import { Connection } from "../../src/protocol/connection.js";
import { McpSession } from "../../src/protocol/session.js";
import { createLogHub } from "../../src/util/logger.js";

function setup(options: { auditEnabled?: boolean; failing?: boolean; intervalMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "msl-refusals-"));
  const ran: string[] = [];
  const plugin: Plugin = {
    name: "p",
    version: "1.0.0",
    description: "records its calls",
    tools: [
      { name: "target", title: "Target", description: "runs", inputSchema: { type: "object", properties: { n: { type: "integer" } }, additionalProperties: false }, annotations: {} },
      { name: "hidden", title: "Hidden", description: "denied by the policy", inputSchema: { type: "object" }, annotations: {} },
    ],
    execute(tool) {
      ran.push(tool);
      return Promise.resolve({ content: [{ type: "text", text: "ran" }] });
    },
  };
  const entries: AuditRecordInput[] = [];
  const errors: string[] = [];
  const audit: AuditSink = {
    append(entry) {
      if (options.failing) return Promise.reject(new Error("ENOSPC: no space left on device"));
      entries.push(entry);
      return Promise.resolve({ seq: entries.length, hash: "h" } as never);
    },
    status: () => ({ enabled: options.auditEnabled ?? true, ok: true, state: "open", seq: entries.length, head: "h", path: "mem" }),
    close: () => Promise.resolve(undefined),
  };
  const timers: Array<() => void> = [];
  const policy = defaultPolicy(dir);
  policy.tools.deny = ["hidden"];
  policy.tools.rate_limits = { default: 1000, target: 1 };
  const engine = new SecurityEngine({
    policy,
    registry: new PluginRegistry([plugin]),
    audit,
    capabilities: { forCall: () => ({}) as never, execSandbox: () => Promise.reject(new Error("none")), close: () => undefined },
    paths: compilePathPolicy(policy.filesystem, { baseDir: dir, homeDir: dir }),
    logger: { ...silentLogger, error: (message: string) => errors.push(message) },
    session: () => ({ projectPath: undefined, clientName: "t" }),
    refusals: {
      perMinute: 2,
      ...(options.intervalMs === undefined ? {} : { intervalMs: options.intervalMs }),
      schedule: (run) => {
        timers.push(run);
        return () => timers.splice(timers.indexOf(run), 1);
      },
    },
  });
  const call = (name: string, args: JsonObject, requestId: string | number): Promise<CallToolResult> =>
    engine.callTool({ name, arguments: args, requestId, abort: new LazyAbort(), progress: undefined });
  const fireTimers = () => {
    for (const run of timers.splice(0)) run();
  };
  return { engine, entries, errors, ran, call, fireTimers, timers, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const text = (result: CallToolResult) => (result.content[0] as { text: string }).text;
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A promise's state, readable without awaiting it. */
function track<T>(promise: Promise<T>): { settled: boolean; value?: T } {
  const state: { settled: boolean; value?: T } = { settled: false };
  void promise.then((value) => Object.assign(state, { settled: true, value }));
  return state;
}

test("unknown, hidden, malformed and rate-limited calls past the budget are answered only once a summary that counts them is durable", async () => {
  const s = setup();
  try {
    await s.engine.noteUnknownTool("nope", "u1");
    await s.engine.noteInvalidCall(undefined, "p1", 'tools/call needs "name", a non-empty string');
    assert.deepEqual(
      s.entries.map((entry) => entry.requestId),
      ["u1", "p1"],
      "within the budget: an entry each",
    );
    assert.equal((await s.call("target", { n: 1 }, "ok1")).isError, undefined, "an admitted call");
    const held = [
      track(s.engine.noteUnknownTool("made-up-name", "u2")),
      track(s.engine.noteUnknownTool("hidden", "u3")),
      track(s.engine.noteInvalidCall("target", "p2", '"arguments" must be an object when present')),
      track(s.call("target", { n: 2 }, "r1")),
      track(s.call("target", { n: 3 }, "r2")),
    ];
    await tick();
    assert.equal(s.entries.length, 4, "nothing more is written before the summary is due");
    assert.ok(
      held.every((state) => !state.settled),
      "and nothing is answered",
    );
    assert.equal(s.timers.length, 1, "one summary is due");
    s.fireTimers();
    await tick();
    assert.ok(held.every((state) => state.settled));
    const summary = s.entries.at(-1)!;
    assert.equal(summary.event, "denied");
    assert.equal(summary.outcome, "denied");
    assert.equal(summary.tool, undefined);
    assert.deepEqual(summary.data, {
      refusalsNotRecorded: 5,
      byStage: { access: 2, params: 1, rate_limit: 2 },
      // Names the server has only: a made-up name is counted, never kept.
      byTool: { hidden: 1, target: 3 },
      firstRequestId: "u2",
      lastRequestId: "r2",
    });
    assert.match(String(summary.reason), /^5 refused calls were not recorded one by one, past 2 such refusals in 60 s/);
    // Each call still got its own answer.
    assert.match(text(held[3]!.value as CallToolResult), /Rate limit for "target" reached/);
    assert.deepEqual(s.ran, ["target"], "none of them ran");
  } finally {
    s.cleanup();
  }
});

test("refusals the rate limit counts keep an entry each past the budget, after the summary of what came before", async () => {
  const s = setup();
  try {
    await s.engine.noteUnknownTool("a", 1);
    await s.engine.noteUnknownTool("b", 2);
    const held = track(s.engine.noteUnknownTool("c", 3));
    // A schema refusal was counted by the rate limit (target's 1 a minute): recorded as ever, the count first.
    const refused = await s.call("target", { n: "not a number" }, "v1");
    assert.equal(refused.isError, true);
    assert.deepEqual(
      s.entries.map((entry) => entry.data?.refusalsNotRecorded ?? entry.requestId),
      [1, 2, 1, "v1"],
    );
    assert.match(String(s.entries[3]?.reason), /^validation: /);
    await tick();
    assert.equal(held.settled, true, "its summary was written (and made durable) before the next entry");
    s.fireTimers();
    assert.equal(s.entries.length, 4, "the timer finds nothing left to write");
  } finally {
    s.cleanup();
  }
});

test("an admitted call's tool_call follows the summary of the refusals before it", async () => {
  const s = setup();
  try {
    await s.engine.noteInvalidCall(undefined, 1, "p");
    await s.engine.noteInvalidCall(undefined, 2, "p");
    void s.engine.noteInvalidCall(undefined, 3, "p");
    await s.call("target", {}, "run");
    assert.deepEqual(
      s.entries.map((entry) => entry.event + (entry.data?.refusalsNotRecorded === undefined ? "" : "*")),
      ["denied", "denied", "denied*", "tool_call", "tool_result"],
    );
  } finally {
    s.cleanup();
  }
});

test("beginClosing records the count at once, and later counts at the next turn", async () => {
  const s = setup();
  try {
    await s.engine.noteUnknownTool("a", 1);
    await s.engine.noteUnknownTool("b", 2);
    const held = track(s.engine.noteUnknownTool("c", 3));
    s.engine.beginClosing();
    await tick();
    assert.equal(held.settled, true);
    assert.equal(s.entries.at(-1)?.data?.refusalsNotRecorded, 1);
    assert.equal(s.timers.length, 0, "the summary's timer was cancelled");
    void s.engine.noteUnknownTool("d", 4);
    assert.equal(s.timers.length, 1);
    s.engine.beginClosing();
    assert.equal(s.entries.at(-1)?.data?.refusalsNotRecorded, 1, "a second call writes what came since");
    assert.equal(s.entries.length, 4);
  } finally {
    s.cleanup();
  }
});

test("with the audit log failing, held refusals are still answered (they stay refused) and the failure is reported", async () => {
  const s = setup({ failing: true });
  try {
    await s.engine.noteUnknownTool("a", 1);
    await s.engine.noteUnknownTool("b", 2);
    const held = track(s.engine.noteUnknownTool("c", 3));
    s.fireTimers();
    await tick();
    assert.equal(held.settled, true);
    assert.ok(s.errors.some((message) => /audit log write failed/.test(message)));
  } finally {
    s.cleanup();
  }
});

test("with the audit log off nothing is held or counted", async () => {
  const s = setup({ auditEnabled: false });
  try {
    for (let i = 0; i < 5; i++) await s.engine.noteUnknownTool("nope", i);
    const limited = [await s.call("target", {}, 1), await s.call("target", {}, 2), await s.call("target", {}, 3)];
    assert.deepEqual(
      limited.map((result) => result.isError),
      [undefined, true, true],
    );
    assert.equal(s.timers.length, 0);
    assert.equal(s.entries.length, 0);
    s.engine.beginClosing();
  } finally {
    s.cleanup();
  }
});

test("in a real log, summaries are chained entries like any other: `audit verify` passes and `tail` shows their reason", async () => {
  const env = tempEnv();
  const dir = mkdtempSync(join(tmpdir(), "msl-refusals-"));
  try {
    const sink = await openTestLog(env, { checkpoint_every: 3 });
    const policy = defaultPolicy(dir);
    const engine = new SecurityEngine({
      policy,
      registry: new PluginRegistry([]),
      audit: sink,
      capabilities: { forCall: () => ({}) as never, execSandbox: () => Promise.reject(new Error("none")), close: () => undefined },
      paths: compilePathPolicy(policy.filesystem, { baseDir: dir, homeDir: dir }),
      logger: silentLogger,
      session: () => ({ projectPath: undefined, clientName: "t" }),
      refusals: { perMinute: 1 },
    });
    // Past the budget; the first summary is written at the next turn, the second at shutdown.
    const answered = [engine.noteUnknownTool("a", 1), engine.noteUnknownTool("b", "x".repeat(300)), engine.noteInvalidCall(undefined, 3, "p")];
    await Promise.all(answered);
    const last = engine.noteUnknownTool("c", 4);
    engine.beginClosing();
    await last;
    await sink.close();
    const entries = readLines(env.logFile).map(parse);
    const summaries = entries.filter((entry) => entry.data?.refusalsNotRecorded !== undefined);
    assert.deepEqual(
      summaries.map((entry) => entry.data.refusalsNotRecorded),
      [2, 1],
    );
    assert.match(String(summaries[0]!.data.firstRequestId), /^x{32}…sha256:[0-9a-f]{64}$/, "a long id is recorded as any request id is");
    const summary = await verifyAudit(env.logFile);
    assert.equal(summary.ok, true, JSON.stringify(summary.failure));
    const shown = formatTailLine(readLines(env.logFile).find((line) => line.includes("refusalsNotRecorded"))!);
    assert.match(shown, /denied .*2 refused calls were not recorded one by one/);
  } finally {
    env.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("held refusals take in-flight slots: past them the queue fills, and what it cannot hold is answered busy, neither recorded nor counted", async () => {
  // Summaries are due whenever the test fires the timer.
  const s = setup({ intervalMs: 0 });
  const input = new PassThrough();
  const output = new PassThrough();
  const session = new McpSession({
    identity: { name: "n", version: "1", title: "t", description: "d", instructions: "i" },
    tools: s.engine,
    logHub: createLogHub({ stderr: () => undefined }),
    logger: silentLogger,
    pageSize: 50,
    redact: (value) => value,
  });
  // Two slots, and a queue that holds two of these requests.
  const line = (id: number) => `${JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "nope", arguments: {} } })}\n`;
  const connection = new Connection(input, output, session.handlers, { maxLineBytes: 4096, maxInFlight: 2, maxWaitingBytes: 2 * Buffer.byteLength(line(10)), logger: silentLogger });
  session.attach(connection);
  connection.start();
  const received: Array<Record<string, any>> = [];
  let buffer = "";
  output.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("utf8");
    for (let i; (i = buffer.indexOf("\n")) !== -1; buffer = buffer.slice(i + 1)) received.push(JSON.parse(buffer.slice(0, i)) as Record<string, any>);
  });
  try {
    input.write(`${JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "c", version: "1" } } })}\n`);
    const until = async (done: () => boolean, what: string) => {
      for (let i = 0; !done(); i++) {
        if (i > 200) throw new Error(`never: ${what}; received ${JSON.stringify(received)}; entries ${JSON.stringify(s.entries)}`);
        await tick();
      }
    };
    await until(() => received.some((m) => m.id === 0), "initialized");
    // Two within the budget of 2 (an entry each), then ten past it, sent at once.
    await s.engine.noteUnknownTool("a", "own-1");
    await s.engine.noteUnknownTool("b", "own-2");
    input.write(Array.from({ length: 10 }, (_, i) => line(10 + i)).join(""));
    const busyIds = () => received.filter((m) => m.error?.data?.reason === "busy").map((m) => m.id as number);
    await until(() => busyIds().length === 6, "the busy answers");
    const busy = busyIds();
    assert.deepEqual(busy, [14, 15, 16, 17, 18, 19], "two held, two waiting, the rest answered busy at once");
    assert.equal(received.length, 1 + busy.length, "the held ones wait for their summary");
    s.fireTimers();
    await until(() => received.filter((m) => m.id >= 10 && m.id < 14).length === 2, "the held two answered");
    s.fireTimers();
    await until(() => received.filter((m) => m.id >= 10 && m.id < 14).length === 4, "the waiting two answered");
    const counted = s.entries.reduce((sum, entry) => sum + ((entry.data?.refusalsNotRecorded as number | undefined) ?? 0), 0);
    assert.equal(counted, 4, "the held and the waiting ones are counted");
    assert.ok(
      s.entries.every((entry) => !busy.includes(entry.requestId as number)),
      "no busy one is recorded",
    );
  } finally {
    connection.stopAccepting();
    s.cleanup();
  }
});

test("a summary counts at most a quarter of the connection's in-flight slots (64 at the default 256, at least 1)", () => {
  assert.equal(refusalsPerSummary(256), 64);
  assert.equal(refusalsPerSummary(1000), 64);
  assert.equal(refusalsPerSummary(16), 4);
  assert.equal(refusalsPerSummary(3), 1);
  assert.equal(refusalsPerSummary(1), 1);
});
