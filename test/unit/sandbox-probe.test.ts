import { test } from "node:test";
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import {
  createExecSandbox,
  parseBwrapVersion,
  probeBwrap,
  probeBwrapSync,
  sandboxReport,
  sandboxState,
  type ProbeRun,
  type SandboxAvailability,
} from "../../src/security/capabilities/sandbox.js";
import { compilePathPolicy } from "../../src/security/path-guard.js";
import { CapabilityDeniedError } from "../../src/plugins/contract.js";

const BWRAP = "/opt/bin/bwrap";

/** A fake bwrap: answers --version with `version`, and the trial sandbox with `trial`. */
function fake(version: Partial<ProbeRun>, trial: Partial<ProbeRun> = { status: 0, stdout: "bubblewrap 0.8.0\n" }) {
  const calls: string[][] = [];
  const answer = (args: readonly string[]): ProbeRun => {
    calls.push([...args]);
    const base = { status: 0, stdout: "", stderr: "" };
    return args.length === 1 && args[0] === "--version" ? { ...base, ...version } : { ...base, ...trial };
  };
  return { calls, run: (_file: string, args: readonly string[]) => Promise.resolve(answer(args)), runSync: (_file: string, args: readonly string[]) => answer(args) };
}

function unusable(availability: SandboxAvailability, pattern: RegExp): void {
  assert.equal(availability.usable, false, JSON.stringify(availability));
  if (!availability.usable) assert.match(availability.reason, pattern);
}

test("the version decides the optional options", () => {
  assert.deepEqual(parseBwrapVersion("bubblewrap 0.6.1\n"), { version: "0.6.1", features: { disableUserns: false, argv0: false } });
  assert.deepEqual(parseBwrapVersion("bubblewrap 0.8.0\n"), { version: "0.8.0", features: { disableUserns: true, argv0: false } });
  assert.deepEqual(parseBwrapVersion("bubblewrap 0.11.0\n"), { version: "0.11.0", features: { disableUserns: true, argv0: true } });
  assert.equal(parseBwrapVersion("something else 1.0"), undefined);
});

test("a usable bwrap: --version, then a trial sandbox with the isolation options the calls use", async () => {
  const bwrap = fake({ stdout: "bubblewrap 0.8.0\n" });
  const found = await probeBwrap(BWRAP, bwrap.run, "linux");
  assert.deepEqual(found, { usable: true, bwrap: BWRAP, version: "0.8.0", features: { disableUserns: true, argv0: false } });
  assert.deepEqual(bwrap.calls[0], ["--version"]);
  const trial = bwrap.calls[1]!;
  for (const option of ["--unshare-all", "--disable-userns", "--die-with-parent", "--new-session"]) assert.ok(trial.includes(option), option);
  assert.deepEqual(trial.slice(trial.indexOf("--")), ["--", BWRAP, "--version"]);
  assert.deepEqual(probeBwrapSync(BWRAP, bwrap.runSync, "linux"), found, "the sync probe judges alike");
});

test("an unusable bwrap says why, in words the operator can act on", async () => {
  unusable(await probeBwrap(undefined, fake({}).run, "linux"), /bubblewrap is not installed \(no bwrap on the server's PATH\); install it/);
  unusable(await probeBwrap(BWRAP, fake({}).run, "darwin"), /need Linux namespaces; this system is darwin/);
  unusable(await probeBwrap(BWRAP, fake({ errorCode: "ENOENT", status: null }).run, "linux"), /bubblewrap is not installed \(\/opt\/bin\/bwrap does not exist\)/);
  unusable(await probeBwrap(BWRAP, fake({ errorCode: "EACCES", status: null }).run, "linux"), /cannot be run \(permission denied\)/);
  unusable(await probeBwrap(BWRAP, fake({ timedOut: true, status: null }).run, "linux"), /did not finish within 5 s/);
  unusable(await probeBwrap(BWRAP, fake({ stdout: "not bwrap\n" }).run, "linux"), /did not answer as bubblewrap does/);
  const userns = fake({ stdout: "bubblewrap 0.8.0\n" }, { status: 1, stderr: "bwrap: No permissions to create new namespace, likely because the kernel does not allow non-privileged user namespaces.\n" });
  unusable(await probeBwrap(BWRAP, userns.run, "linux"), /kernel refused bubblewrap its namespaces \(bwrap: No permissions.*\): unprivileged user namespaces are off .*AppArmor/);
  const other = fake({ stdout: "bubblewrap 0.8.0\n" }, { status: 1, stderr: "bwrap: Can't mount proc on /newroot/proc: Device or resource busy\n" });
  unusable(await probeBwrap(BWRAP, other.run, "linux"), /a trial sandbox failed \(\/opt\/bin\/bwrap: bwrap: Can't mount proc/);
});

test("the mode decides what an unusable sandbox means", () => {
  const missing: SandboxAvailability = { usable: false, reason: "not installed" };
  const present: SandboxAvailability = { usable: true, bwrap: BWRAP, version: "0.8.0", features: { disableUserns: true, argv0: false } };
  assert.deepEqual(sandboxState("required", missing), { state: "refused", reason: "not installed" });
  assert.deepEqual(sandboxState("auto", missing), { state: "unsandboxed", reason: "not installed" });
  assert.deepEqual(sandboxState("auto", present), { state: "sandboxed", bwrap: BWRAP, version: "0.8.0" });
  assert.equal(sandboxState("off", present).state, "unsandboxed");
  assert.match(sandboxReport("required", "/usr/bin", () => missing), /^required: no sandbox can be made here: not installed; every exec call will be refused$/);
  assert.match(sandboxReport("auto", "/usr/bin", () => missing), /programs run WITHOUT a sandbox$/);
  assert.match(sandboxReport("auto", "/usr/bin", () => present), /^auto: bubblewrap 0\.8\.0 \(\/opt\/bin\/bwrap\) is usable here; programs run sandboxed$/);
  assert.match(sandboxReport("off", "/usr/bin", () => assert.fail("off never probes")), /^off: /);
});

test("required without a usable bwrap refuses every call with a typed error, probing once; off never probes", async () => {
  let probes = 0;
  const options = { searchPath: ["/usr/bin"], paths: compilePathPolicy({ allowed_paths: [], denied_paths: [], write_denied_paths: [], max_read_bytes: 1, max_write_bytes: 1 }), ownFiles: [], homeDir: "/nonexistent-home" };
  const probe = () => {
    probes += 1;
    return Promise.resolve<SandboxAvailability>({ usable: false, reason: "bubblewrap is not installed" });
  };
  const required = createExecSandbox({ ...options, mode: "required", probe });
  for (let i = 0; i < 2; i++) {
    await assert.rejects(required.plan("/usr/bin/true", "true", [], "/"), (error: unknown) => {
      assert.ok(error instanceof CapabilityDeniedError);
      assert.equal(error.code, "COMMAND_SANDBOX_UNAVAILABLE");
      assert.match(error.message, /command not run: the policy requires a sandbox \(commands\.sandbox: required\) and none can be made here: bubblewrap is not installed/);
      return true;
    });
  }
  assert.deepEqual(await required.state(), { state: "refused", reason: "bubblewrap is not installed" });
  assert.equal(probes, 1);
  assert.deepEqual(await createExecSandbox({ ...options, mode: "auto", probe }).plan("/usr/bin/true", "true", [], "/"), { sandboxed: false });
  const off = createExecSandbox({ ...options, mode: "off", probe: () => assert.fail("off never probes") });
  assert.deepEqual(await off.plan("/usr/bin/true", "true", [], "/"), { sandboxed: false });
  assert.equal((await off.state()).state, "unsandboxed");
});

void test("exclusive: sandboxed calls run one at a time, in order; a failing one passes the turn on; an aborted wait rejects and leaves no listener", async () => {
  const options = { searchPath: ["/usr/bin"], paths: compilePathPolicy({ allowed_paths: [], denied_paths: [], write_denied_paths: [], max_read_bytes: 1, max_write_bytes: 1 }), ownFiles: [], homeDir: "/nonexistent-home" };
  const usable = (): Promise<SandboxAvailability> => Promise.resolve({ usable: true, bwrap: BWRAP, version: "0.8.0", features: { disableUserns: true, argv0: false } });
  const sandbox = createExecSandbox({ ...options, mode: "required", probe: usable });
  const log: string[] = [];
  const gates: Array<() => void> = [];
  const job = (name: string, fail = false) => async () => {
    log.push(`${name} start`);
    await new Promise<void>((resolve) => gates.push(resolve));
    log.push(`${name} end`);
    if (fail) throw new Error(`${name} failed`);
    return name;
  };
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  const first = sandbox.exclusive(undefined, job("a", true));
  const controller = new AbortController();
  const cancelled = sandbox.exclusive(controller.signal, job("b"));
  const third = sandbox.exclusive(undefined, job("c"));
  await tick();
  assert.deepEqual(log, ["a start"]);
  controller.abort(new Error("cancelled by the client"));
  await assert.rejects(cancelled, /cancelled by the client/);
  gates.shift()!();
  await assert.rejects(first, /a failed/);
  await tick();
  assert.deepEqual(log, ["a start", "a end", "c start"], "b never ran; c waited for a, not for b");
  gates.shift()!();
  assert.equal(await third, "c");
  const kept = new AbortController();
  const waitFor = sandbox.exclusive(undefined, job("d"));
  const withSignal = sandbox.exclusive(kept.signal, () => Promise.resolve("e"));
  await tick();
  assert.equal(getEventListeners(kept.signal, "abort").length, 1, "waiting: it listens");
  gates.shift()!();
  assert.equal(await waitFor, "d");
  assert.equal(await withSignal, "e");
  assert.equal(getEventListeners(kept.signal, "abort").length, 0, "its turn came: the listener went (a long-lived signal keeps none)");
});

void test("review finding: exclusive does not make programs wait for one another when they run unsandboxed (auto without a usable bwrap)", async () => {
  const options = { searchPath: ["/usr/bin"], paths: compilePathPolicy({ allowed_paths: [], denied_paths: [], write_denied_paths: [], max_read_bytes: 1, max_write_bytes: 1 }), ownFiles: [], homeDir: "/nonexistent-home" };
  const missing = (): Promise<SandboxAvailability> => Promise.resolve({ usable: false, reason: "bubblewrap is not installed" });
  const sandbox = createExecSandbox({ ...options, mode: "auto", probe: missing });
  let release!: () => void;
  const long = sandbox.exclusive(undefined, () => new Promise<string>((resolve) => (release = () => resolve("long"))));
  // A second call must not wait for a long program (a dev server, a test suite) that nothing needs to be isolated from.
  const quick = sandbox.exclusive(undefined, () => Promise.resolve("quick"));
  const first = await Promise.race([quick, new Promise((resolve) => setTimeout(() => resolve("still waiting"), 200))]);
  release();
  assert.equal(await long, "long");
  assert.equal(first, "quick");
});
