/**
 * One deadline per call: the tool's time limit counts from the call's admission, so what the
 * path checks and the `tool_call` entry spend is gone when the plugin starts. The engine's
 * clock is injected and moved by the path guard's file layer (a slow disk) and by the audit
 * sink, so no test depends on how fast this machine is.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SecurityEngine, type CallToolResult } from "../../src/security/engine.js";
import { PluginRegistry } from "../../src/plugins/registry.js";
import type { JsonObject, Plugin, ToolContext } from "../../src/plugins/contract.js";
import { defaultPolicy } from "../../src/security/policy/defaults.js";
import { compilePathPolicy, nodePathIo, type PathIo } from "../../src/security/path-guard.js";
import type { AuditRecordInput, AuditSink } from "../../src/security/audit/index.js";
import type { CapabilityFactory } from "../../src/security/capabilities/index.js";
import { LazyAbort } from "../../src/util/call-abort.js";
import { silentLogger } from "../../src/util/logger.js";

interface Seen {
  ctx: ToolContext;
  /** Date.now() when the plugin started. */
  at: number;
}

/**
 * An engine over one tool, `work {file?, hang?}`, with a limit of `limitSeconds`. The path
 * guard's first look at the disk moves the clock by `pathMs` (the guard looks several times;
 * the others take no time); recording a `tool_call` moves it by `recordMs`.
 */
function setup(limitSeconds: number, moves: { pathMs?: number; recordMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "msl-deadline-"));
  writeFileSync(join(dir, "a.txt"), "x");
  let clock = 1000;
  const seen: Seen[] = [];
  const caps: number[] = [];
  const plugin: Plugin = {
    name: "p",
    version: "1.0.0",
    description: "records its calls",
    tools: [
      {
        name: "work",
        title: "Work",
        description: "reads a file, or hangs",
        inputSchema: { type: "object", properties: { file: { type: "string", "x-path": "read" }, hang: { type: "boolean" } }, additionalProperties: false },
        annotations: {},
      },
    ],
    execute(_tool, args, ctx) {
      seen.push({ ctx, at: Date.now() });
      void ctx.fs; // makes the call's capabilities, which record their cap
      if (args.hang === true) return new Promise(() => undefined);
      return Promise.resolve({ content: [{ type: "text", text: "done" }] });
    },
  };
  const capabilities: CapabilityFactory = {
    forCall: (_scope, deadlineMs) => {
      caps.push(deadlineMs);
      return { fs: {}, fetch: {}, exec: {}, storage: {} } as never;
    },
    execSandbox: () => Promise.reject(new Error("no commands here")),
    close: () => undefined,
  };
  const entries: AuditRecordInput[] = [];
  const audit: AuditSink = {
    append(entry) {
      entries.push(entry);
      if (entry.event === "tool_call") clock += moves.recordMs ?? 0;
      return Promise.resolve({ seq: entries.length, hash: "h" } as never);
    },
    status: () => ({ enabled: true, ok: true, state: "open", seq: entries.length, head: "h", path: "mem" }),
    close: () => Promise.resolve(undefined),
  };
  let slowLook = moves.pathMs ?? 0;
  const spend = () => {
    clock += slowLook;
    slowLook = 0;
  };
  const slowDisk: PathIo = {
    realpath: (p) => nodePathIo.realpath(p).finally(spend),
    lstat: (p) => nodePathIo.lstat(p).finally(spend),
  };
  const policy = defaultPolicy(dir);
  policy.filesystem.allowed_paths = [`${dir}/**`];
  policy.tools.timeouts = { work: limitSeconds };
  const engine = new SecurityEngine({
    policy,
    registry: new PluginRegistry([plugin]),
    audit,
    capabilities,
    paths: compilePathPolicy(policy.filesystem, { baseDir: dir, homeDir: dir }),
    pathIo: slowDisk,
    logger: silentLogger,
    session: () => ({ projectPath: undefined, clientName: "t" }),
    now: () => clock,
  });
  const call = (args: JsonObject): Promise<CallToolResult> => engine.callTool({ name: "work", arguments: args, requestId: 1, abort: new LazyAbort(), progress: undefined });
  return { call, seen, caps, entries, file: join(dir, "a.txt"), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const text = (result: CallToolResult) => (result.content[0] as { text: string }).text;

test("the plugin gets what the path checks left of the tool's limit: ctx.deadline and the capabilities' cap", async () => {
  const s = setup(7, { pathMs: 5000 });
  try {
    const result = await s.call({ file: s.file });
    assert.equal(result.isError, undefined, text(result));
    const [{ ctx, at }] = s.seen as [Seen];
    assert.deepEqual(s.caps, [2000], "fetch and exec are capped by what is left");
    // The deadline is armed before the plugin starts, so it is at most 2 s after that start.
    assert.ok(ctx.deadline - at <= 2000, `ctx.deadline ${ctx.deadline - at} ms after the start, for 2000 ms left`);
    assert.ok(ctx.deadline - at > 1000, "and not much less");
    const outcome = s.entries.at(-1)!;
    assert.equal(outcome.event, "tool_result");
    assert.equal(outcome.durationMs, 5000, "the recorded duration counts the path checks");
  } finally {
    s.cleanup();
  }
});

test("a call that times out after slow path checks says the tool's limit, and its recorded duration includes the checks", { timeout: 10_000 }, async () => {
  // 0.5 s, of which the checks take 400 ms by the engine's clock.
  const s = setup(0.5, { pathMs: 400 });
  try {
    const result = await s.call({ file: s.file, hang: true });
    assert.equal(result.isError, true);
    assert.match(text(result), /^Tool "work" timed out after 0\.5 s and was stopped/);
    const [{ ctx, at }] = s.seen as [Seen];
    assert.ok(ctx.deadline - at <= 100, `ctx.deadline ${ctx.deadline - at} ms after the start: at most what the checks left`);
    const outcome = s.entries.at(-1)!;
    assert.equal(outcome.outcome, "timeout");
    assert.equal(outcome.reason, "timed out after 0.5 s");
    assert.equal(outcome.durationMs, 400, "by the engine's clock, which only the checks moved");
  } finally {
    s.cleanup();
  }
});

test("path checks that answer only after the limit is up refuse the call: the tool would have no time left", async () => {
  const s = setup(1, { pathMs: 1000 });
  try {
    const result = await s.call({ file: s.file });
    assert.equal(result.isError, true);
    assert.equal(text(result), 'Tool "work" did not run: checking the paths in its arguments took its whole time limit of 1 s (the filesystem is slow). Try again later.');
    assert.equal(s.seen.length, 0, "the tool was not reached");
    assert.deepEqual(
      s.entries.map((entry) => entry.event),
      ["denied"],
      "refused before its tool_call entry",
    );
    const denied = s.entries[0]!;
    assert.equal(denied.outcome, "denied");
    assert.match(String(denied.reason), /^path_guard: Tool "work" did not run: checking the paths/);
    assert.equal(denied.durationMs, 1000);
  } finally {
    s.cleanup();
  }
});

test("a call whose tool_call entry took the rest of its time is answered as timed out without running, and recorded so", async () => {
  const s = setup(2, { pathMs: 100, recordMs: 5000 });
  try {
    const result = await s.call({ file: s.file });
    assert.equal(result.isError, true);
    assert.match(text(result), /^Tool "work" timed out after 2 s before it started: checking and recording the call took its whole time limit .* It did not run/);
    assert.equal(s.seen.length, 0, "the tool was not started");
    assert.deepEqual(
      s.entries.map((entry) => [entry.event, entry.outcome]),
      [
        ["tool_call", undefined],
        ["tool_result", "timeout"],
      ],
    );
    assert.match(String(s.entries[1]!.reason), /^timed out after 2 s before it started/);
    assert.equal(s.entries[1]!.durationMs, 5100);
  } finally {
    s.cleanup();
  }
});

test("a call without paths gets the whole limit", async () => {
  const s = setup(3);
  try {
    await s.call({});
    assert.deepEqual(s.caps, [3000]);
  } finally {
    s.cleanup();
  }
});
