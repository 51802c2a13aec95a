import { test } from "node:test";
import assert from "node:assert/strict";
import { createStatusPlugin, SECURITY_STATUS, type SecurityStatus } from "../../src/plugins/builtin/status.js";
import { ToolError, type JsonObject, type ToolContext } from "../../src/plugins/contract.js";
import { PluginRegistry } from "../../src/plugins/registry.js";
import { schemaValidator } from "../helpers/plugin-context.js";

// The tool reads nothing of its context.
const ctx = {} as unknown as ToolContext;
const matchesOutputSchema = schemaValidator(SECURITY_STATUS.outputSchema as JsonObject);

const HEAD = "a".repeat(64);

test("security_status returns what the server reports, read afresh at every call", async () => {
  let seq = 7;
  const plugin = createStatusPlugin(
    (): SecurityStatus => ({
      server: { name: "mcp-secure-local", version: "9.9.9" },
      policy: { sha256: "b".repeat(64), builtIn: true },
      audit: { enabled: true, ok: true, logId: "log-1", seq: seq++, head: HEAD, keyFingerprint: "c".repeat(64), fsync: "batch" },
      exec: { sandbox: "auto", commands: "sandboxed" },
    }),
  );
  new PluginRegistry([plugin]); // a well-formed plugin: name, complete definitions
  const first = await plugin.execute("security_status", {}, ctx);
  const second = await plugin.execute("security_status", {}, ctx);
  assert.deepEqual((first.structuredContent as { audit: { seq: number } }).audit.seq, 7);
  assert.deepEqual((second.structuredContent as { audit: { seq: number } }).audit.seq, 8);
  assert.deepEqual((first.structuredContent as { policy: unknown }).policy, { sha256: "b".repeat(64), builtIn: true });
  assert.deepEqual((first.structuredContent as { exec: unknown }).exec, { sandbox: "auto", commands: "sandboxed" });
  assert.ok(matchesOutputSchema(first.structuredContent), JSON.stringify(matchesOutputSchema.errors));
  await assert.rejects(plugin.execute("nope", {}, ctx), ToolError);
});

test("security_status is read-only, takes no arguments and describes a log without hashes when the audit is off", async () => {
  assert.equal(SECURITY_STATUS.annotations?.readOnlyHint, true);
  assert.deepEqual(SECURITY_STATUS.inputSchema, { type: "object", additionalProperties: false });
  const plugin = createStatusPlugin(() => ({ server: { name: "s", version: "1" }, policy: { sha256: HEAD, builtIn: false }, audit: { enabled: false }, exec: { sandbox: "required", commands: "refused" } }));
  const outcome = await plugin.execute("security_status", {}, ctx);
  assert.deepEqual((outcome.structuredContent as { audit: unknown }).audit, { enabled: false });
  assert.ok(matchesOutputSchema(outcome.structuredContent), JSON.stringify(matchesOutputSchema.errors));
});
