/** The capability factory: compiled once, bound per call, and ending with the call. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCapabilityFactory } from "../../src/security/capabilities/index.js";
import { compilePathPolicy } from "../../src/security/path-guard.js";
import { defaultPolicy } from "../../src/security/policy/defaults.js";
import { CapabilityDeniedError } from "../../src/plugins/contract.js";
import { LazyAbort } from "../../src/util/call-abort.js";

function setup() {
  const state = mkdtempSync(join(tmpdir(), "msl-caps-"));
  mkdirSync(join(state, "workspace"));
  writeFileSync(join(state, "workspace", "a.txt"), "hello");
  const policy = defaultPolicy(state);
  const paths = compilePathPolicy(policy.filesystem, { baseDir: join(state, "workspace"), homeDir: state });
  const factory = createCapabilityFactory({ policy, paths, dataDir: join(state, "data"), execHomeDir: state, env: { PATH: "/usr/bin:/bin" } });
  return { state, factory, cleanup: () => (factory.close(), rmSync(state, { recursive: true, force: true })) };
}

const ended = (error: unknown) => error instanceof CapabilityDeniedError && error.code === "CALL_ENDED";

test("files and databases work during the call and stop when it ends", async () => {
  const s = setup();
  try {
    const scope = new LazyAbort();
    const caps = s.factory.forCall(scope, 5000);
    assert.equal(await caps.fs.readText(join(s.state, "workspace", "a.txt")), "hello");
    assert.ok(caps.storage.openDatabase("probe").open);
    scope.abort(new Error("timed out"));
    await assert.rejects(caps.fs.readText(join(s.state, "workspace", "a.txt")), ended);
    await assert.rejects(caps.fs.writeFile(join(s.state, "workspace", "b.txt"), "late"), ended);
    assert.throws(() => caps.storage.openDatabase("probe"), ended);
  } finally {
    s.cleanup();
  }
});

test("a write under way when its call ends puts nothing in place (the response already said it was stopped)", async () => {
  const s = setup();
  try {
    const scope = new LazyAbort();
    const caps = s.factory.forCall(scope, 5000);
    const workspace = join(s.state, "workspace");
    // Started while the call runs, then the call times out before they reach the disk.
    const replacing = caps.fs.writeFile(join(workspace, "a.txt"), "late replacement");
    const appending = caps.fs.writeFile(join(workspace, "a.txt"), " late append", { append: true });
    const creating = caps.fs.writeFile(join(workspace, "new.txt"), "late new file");
    scope.abort(new Error("timed out"));
    const outcomes = await Promise.allSettled([replacing, appending, creating]);
    for (const outcome of outcomes) assert.ok(outcome.status === "rejected" && ended(outcome.reason), String(outcome.status === "rejected" ? outcome.reason : "written"));
    assert.equal(readFileSync(join(workspace, "a.txt"), "utf8"), "hello");
    assert.deepEqual(readdirSync(workspace), ["a.txt"], "no new file, no temporary left");
  } finally {
    s.cleanup();
  }
});

test("the default policy lets no command run and reaches no network", async () => {
  const s = setup();
  try {
    const caps = s.factory.forCall(new LazyAbort(), 5000);
    await assert.rejects(caps.exec("true", []), (error: unknown) => error instanceof CapabilityDeniedError && error.code === "COMMAND_DENIED");
    await assert.rejects(caps.fetch("http://127.0.0.1:9/"), (error: unknown) => error instanceof CapabilityDeniedError && error.code === "EGRESS_DENIED");
  } finally {
    s.cleanup();
  }
});

test("fetch and exec first used after the call ended are refused", async () => {
  const s = setup();
  try {
    const scope = new LazyAbort();
    const caps = s.factory.forCall(scope, 5000);
    scope.abort(new Error("cancelled"));
    // The abort is checked before the policy: neither reports COMMAND_DENIED or EGRESS_DENIED here.
    await assert.rejects(caps.exec("true", []), (error: unknown) => error instanceof CapabilityDeniedError && error.code === "COMMAND_ABORTED");
    await assert.rejects(caps.fetch("http://127.0.0.1:9/"), /cancelled/);
    await assert.rejects(caps.fs.list(join(s.state, "workspace")), ended);
  } finally {
    s.cleanup();
  }
});

test("a program the tools may rewrite through ctx.fs is refused: commands.allowed names a file, not whatever was written into it", async () => {
  const state = mkdtempSync(join(tmpdir(), "msl-caps-"));
  const workspace = join(state, "workspace");
  mkdirSync(join(workspace, "tools"), { recursive: true });
  mkdirSync(join(workspace, ".local", "bin"), { recursive: true });
  mkdirSync(join(state, "exec-home"));
  // An operator's helper, inside the folder tools may write, and one under a write-denied path.
  const writable = join(workspace, "tools", "fmt");
  const protectedTool = join(workspace, ".local", "bin", "fmt");
  for (const tool of [writable, protectedTool]) {
    copyFileSync(realpathSync("/bin/true"), tool);
    chmodSync(tool, 0o755);
  }
  const base = defaultPolicy(state);
  const policy = { ...base, commands: { ...base.commands, allowed: [writable, protectedTool, "true"] } };
  const paths = compilePathPolicy(policy.filesystem, { baseDir: workspace, homeDir: state });
  const factory = createCapabilityFactory({ policy, paths, dataDir: join(state, "data"), execHomeDir: join(state, "exec-home"), env: { PATH: "/usr/bin:/bin" } });
  try {
    const caps = factory.forCall(new LazyAbort(), 10_000);
    // A write tool replaces the helper's bytes (its mode stays 0755), and exec would run them.
    await caps.fs.writeFile(writable, readFileSync(realpathSync("/bin/echo")));
    await assert.rejects(caps.exec(writable, ["replaced"]), (error: unknown) => {
      assert.ok(error instanceof CapabilityDeniedError, String(error));
      assert.equal(error.code, "COMMAND_DENIED");
      assert.match(error.message, /tools may rewrite .*tools\/fmt \(filesystem\.allowed_paths lets them write there\).*filesystem\.write_denied_paths/);
      return true;
    });
    assert.equal((await caps.exec(protectedTool, [])).exitCode, 0, "a program under write_denied_paths runs");
    assert.equal((await caps.exec("true", [])).exitCode, 0, "a program outside the writable paths runs");
  } finally {
    factory.close();
    rmSync(state, { recursive: true, force: true });
  }
});
