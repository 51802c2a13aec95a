/** A plugin's progress reports end with its part of the call, not when the response is written. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SecurityEngine } from "../../src/security/engine.js";
import { PluginRegistry } from "../../src/plugins/registry.js";
import type { Plugin, ProgressUpdate, ToolContext } from "../../src/plugins/contract.js";
import { defaultPolicy } from "../../src/security/policy/defaults.js";
import { compilePathPolicy } from "../../src/security/path-guard.js";
import type { AuditRecordInput, AuditSink } from "../../src/security/audit/index.js";
import type { CapabilityFactory } from "../../src/security/capabilities/index.js";
import { LazyAbort } from "../../src/util/call-abort.js";
import { silentLogger } from "../../src/util/logger.js";

test("a report the plugin makes after its result (a timer it left) is dropped, though the response waits for the audit entry", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msl-progress-"));
  try {
    let leftover: ToolContext | undefined;
    const plugin: Plugin = {
      name: "p",
      version: "1.0.0",
      description: "reports, returns, and reports again",
      tools: [{ name: "work", title: "Work", description: "works", inputSchema: { type: "object" }, annotations: {} }],
      execute(_tool, _args, ctx) {
        leftover = ctx;
        ctx.progress({ progress: 1, total: 2 });
        return Promise.resolve({ content: [{ type: "text", text: "done" }] });
      },
    };
    // The outcome's entry is held until the test lets it go: meanwhile the leftover timer reports.
    let release: () => void = () => undefined;
    const entries: AuditRecordInput[] = [];
    const audit: AuditSink = {
      append(entry) {
        entries.push(entry);
        const receipt = { seq: entries.length, hash: "h" } as never;
        if (entry.event !== "tool_result") return Promise.resolve(receipt);
        return new Promise((resolve) => {
          release = () => resolve(receipt);
        });
      },
      status: () => ({ enabled: true, ok: true, state: "open", seq: entries.length, head: "h", path: "mem" }),
      close: () => Promise.resolve(undefined),
    };
    const capabilities: CapabilityFactory = {
      forCall: () => ({ fs: {}, fetch: {}, exec: {}, storage: {} }) as never,
      execSandbox: () => Promise.reject(new Error("no commands here")),
      close: () => undefined,
    };
    const policy = defaultPolicy(dir);
    const engine = new SecurityEngine({
      policy,
      registry: new PluginRegistry([plugin]),
      audit,
      capabilities,
      paths: compilePathPolicy(policy.filesystem, { baseDir: dir, homeDir: dir }),
      logger: silentLogger,
      session: () => ({ projectPath: undefined, clientName: "t" }),
    });
    const reports: ProgressUpdate[] = [];
    let finished = false;
    // As the session's reporter: nothing is sent once finished.
    const sink = {
      report: (update: ProgressUpdate) => {
        if (!finished) reports.push(update);
      },
      finish: () => {
        finished = true;
      },
    };
    const answered = engine.callTool({ name: "work", arguments: {}, requestId: 1, abort: new LazyAbort(), progress: sink });
    while (!entries.some((entry) => entry.event === "tool_result")) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(finished, true, "finished while the outcome's entry is still being written");
    leftover!.progress({ progress: 2, total: 2 });
    release();
    const result = await answered;
    assert.equal(result.isError, undefined);
    assert.deepEqual(reports, [{ progress: 1, total: 2 }], "only the report made while the plugin worked");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
