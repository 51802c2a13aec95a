import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CapabilityDeniedError, ToolError } from "../../src/plugins/contract.js";
import { compileCommandPolicy } from "../../src/security/command-guard.js";
import { DEFAULT_BLOCKED_COMMANDS } from "../../src/security/policy/defaults.js";
import { createGuardedExec, type GuardedExecOptions } from "../../src/security/capabilities/exec.js";
import type { CommandsPolicy } from "../../src/security/policy-types.js";

let root = "";
let home = "";
let bin = "";
let PATH = "";

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "msl-"));
  home = path.join(root, "home");
  bin = path.join(root, "bin");
  fs.mkdirSync(home);
  fs.mkdirSync(bin);
  // An alias of echo under another name, in a directory on the policy's PATH.
  fs.symlinkSync(fs.realpathSync("/bin/echo"), path.join(bin, "myecho"));
  PATH = `${bin}:/usr/bin:/bin`;
});

after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function guardedExec(overrides: Partial<CommandsPolicy> = {}, options: Partial<GuardedExecOptions> = {}, limits = { timeoutMs: 20_000, maxOutputBytes: 100_000 }) {
  const compiled = compileCommandPolicy({ blocked: [], timeout: 20, max_output_bytes: 100_000, sandbox: "off", ...overrides }, { PATH });
  return createGuardedExec(compiled, limits, { homeDir: home, ...options });
}

async function refused(promise: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof CapabilityDeniedError, `expected CapabilityDeniedError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    return true;
  });
}

/** Alive means signalable and not a zombie waiting for a parent that may never reap it. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** SIGKILL is delivered asynchronously: give the kernel a moment, then decide. */
async function waitUntilDead(pid: number): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (!isAlive(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return false;
}

function pidsFrom(stdout: string): number[] {
  return stdout
    .trim()
    .split(/\s+/)
    .map((word) => Number(word));
}

void describe("command checks", () => {
  void test("arguments are argv, never shell text", async () => {
    const exec = guardedExec();
    const args = ["$(id)", "`whoami`", "; rm -rf /", "a|b", "$HOME", "*"];
    const result = await exec("echo", args);
    assert.equal(result.stdout, `${args.join(" ")}\n`);
    assert.deepEqual({ exitCode: result.exitCode, signal: result.signal, timedOut: result.timedOut, truncated: result.truncated }, {
      exitCode: 0,
      signal: null,
      timedOut: false,
      truncated: false,
    });
  });

  void test("a blocked name is refused, also through a symlink alias on PATH", async () => {
    const exec = guardedExec({ blocked: ["echo"] });
    await refused(exec("echo", ["hi"]), "COMMAND_DENIED", /echo refused: "echo" is in commands\.blocked/);
    await refused(exec("myecho", ["hi"]), "COMMAND_DENIED", /"echo" is in commands\.blocked/);
    await refused(exec(path.join(bin, "myecho"), ["hi"]), "COMMAND_DENIED", /"echo" is in commands\.blocked/);
    await refused(exec("./myecho", []), "COMMAND_DENIED", /relative paths are not allowed/);
    await refused(exec("no-such-command-msl", []), "COMMAND_NOT_FOUND", /not found on PATH/);
  });

  void test("commands.allowed is enforced", async () => {
    const exec = guardedExec({ allowed: ["echo"] });
    assert.equal((await exec("echo", ["ok"])).stdout, "ok\n");
    await refused(exec("ls", []), "COMMAND_DENIED", /ls refused: not in commands\.allowed/);
    await refused(exec("myecho", ["x"]), "COMMAND_DENIED", /not in commands\.allowed/);
  });

  void test("arguments with NUL bytes are refused", async () => {
    await refused(guardedExec()("echo", ["a\0b"]), "COMMAND_INVALID", /NUL/);
  });
});

void describe("environment", () => {
  void test("the child gets a scrubbed environment: no parent secrets, fixed PATH, LANG and HOME", async () => {
    process.env.SECRET_TOKEN = "msl-test-secret-value";
    try {
      const result = await guardedExec()("env", [], { env: { MSL_EXTRA_SETTING: "on" } });
      // Node itself passes NODE_V8_COVERAGE to every child when coverage is on (c8): not ours to scrub.
      const lines = result.stdout.trim().split("\n").filter((line) => !line.startsWith("NODE_V8_COVERAGE=")).sort();
      assert.deepEqual(lines, [`MSL_EXTRA_SETTING=on`, `HOME=${home}`, "LANG=C.UTF-8", `PATH=${PATH}`].sort());
      assert.ok(!result.stdout.includes("msl-test-secret-value"));
    } finally {
      delete process.env.SECRET_TOKEN;
    }
  });

  void test("loader and interpreter hooks in options.env are refused", async () => {
    const exec = guardedExec();
    await refused(exec("env", [], { env: { LD_PRELOAD: "/tmp/evil.so" } }), "COMMAND_ENV_DENIED", /LD_PRELOAD may not be set/);
    await refused(exec("env", [], { env: { NODE_OPTIONS: "--require /tmp/x.js" } }), "COMMAND_ENV_DENIED", /NODE_OPTIONS/);
    await refused(exec("env", [], { env: { PATH: "/tmp" } }), "COMMAND_ENV_DENIED", /PATH may not be set/);
    await refused(exec("env", [], { env: { "BAD-NAME": "1" } }), "COMMAND_ENV_DENIED", /not a valid identifier/);
    // gettext would read every message catalog from a directory of the caller's choosing.
    await refused(exec("ls", ["/nonexistent"], { env: { LANGUAGE: `../../../../../../..${root}/catalogs` } }), "COMMAND_ENV_DENIED", /LANGUAGE must name a locale, not a path/);
  });
});

void describe("working directory and input", () => {
  void test("the default working directory is the safe HOME; a requested one goes through checkCwd", async () => {
    assert.equal((await guardedExec()("pwd", [])).stdout, `${fs.realpathSync(home)}\n`);
    await refused(guardedExec()("pwd", [], { cwd: root }), "COMMAND_DENIED", /omit cwd/);

    const project = path.join(root, "project");
    fs.mkdirSync(project, { recursive: true });
    const asked: string[] = [];
    const checkCwd = (cwd: string): Promise<string> => {
      asked.push(cwd);
      if (cwd !== project) return Promise.reject(new CapabilityDeniedError("PATH_DENIED", `${cwd} is outside the allowed roots`));
      return fs.promises.realpath(cwd);
    };
    const exec = guardedExec({}, { checkCwd });
    assert.equal((await exec("pwd", [], { cwd: project })).stdout, `${fs.realpathSync(project)}\n`);
    await refused(exec("pwd", [], { cwd: "/etc" }), "PATH_DENIED", /outside the allowed roots/);
    assert.deepEqual(asked, [project, "/etc"]);
  });

  void test("stdin comes from input, or is empty", async () => {
    const exec = guardedExec();
    assert.equal((await exec("cat", [], { input: "line one\nline two\n" })).stdout, "line one\nline two\n");
    assert.equal((await exec("cat", [], { input: new TextEncoder().encode("bytes") })).stdout, "bytes");
    assert.equal((await exec("cat", [])).stdout, "");
  });

  void test("exit codes and stderr are reported", async () => {
    const result = await guardedExec()("ls", [path.join(root, "does-not-exist")]);
    assert.notEqual(result.exitCode, 0);
    assert.match(result.stderr, /does-not-exist/);
  });
});

void describe("limits", () => {
  void test("output over the cap is truncated and flagged; the process still completes", async () => {
    const exec = guardedExec({}, {}, { timeoutMs: 20_000, maxOutputBytes: 1000 });
    const result = await exec("seq", ["1", "100000"]);
    assert.equal(result.truncated, true);
    assert.equal(Buffer.byteLength(result.stdout), 1000);
    assert.ok(result.stdout.startsWith("1\n2\n3\n"));
    assert.equal(result.exitCode, 0);
    const smaller = await guardedExec()("seq", ["1", "100"], { maxOutputBytes: 10 });
    assert.equal(smaller.stdout, "1\n2\n3\n4\n5\n");
    assert.equal(smaller.truncated, true);
    const under = await guardedExec()("seq", ["1", "3"]);
    assert.equal(under.truncated, false);
  });

  // The test timeouts only turn a hang (children surviving until they end on their own) into a failure.
  void test("a timeout (the policy's, whatever the call asks for) kills the whole process group", { timeout: 60_000 }, async () => {
    const exec = guardedExec({}, {}, { timeoutMs: 500, maxOutputBytes: 10_000 });
    // Prints the background sleep's pid and its own (which becomes the foreground sleep). The
    // background one does not hold the output pipes, so only the group kill can end it early.
    const result = await exec("sh", ["-c", "sleep 300 >/dev/null 2>&1 & echo $!; echo $$; exec sleep 300"], { timeoutMs: 600_000 });
    assert.equal(result.timedOut, true);
    assert.equal(result.signal, "SIGKILL");
    const pids = pidsFrom(result.stdout);
    assert.equal(pids.length, 2);
    for (const pid of pids) {
      assert.ok(Number.isInteger(pid) && pid > 1);
      assert.ok(await waitUntilDead(pid), `process ${pid} is still running`);
    }
  });

  void test("background children do not outlive a normal exit", { timeout: 60_000 }, async () => {
    const exec = guardedExec({}, {}, { timeoutMs: 120_000, maxOutputBytes: 10_000 });
    const result = await exec("sh", ["-c", "sleep 300 & echo $!"]);
    assert.equal(result.timedOut, false, "the background child holding stdout did not keep the call open");
    assert.equal(result.exitCode, 0);
    const [pid] = pidsFrom(result.stdout);
    assert.ok(pid !== undefined && (await waitUntilDead(pid)), "the background child was killed with its group");
  });

  void test("the call's signal kills the group; an already-aborted signal starts nothing", { timeout: 60_000 }, async () => {
    const controller = new AbortController();
    const marker = path.join(root, "started.pid");
    const exec = guardedExec({}, { signal: controller.signal });
    const pending = exec("sh", ["-c", `echo $$ > '${marker}'; exec sleep 300`]);
    while (!fs.existsSync(marker) || fs.readFileSync(marker, "utf8").trim() === "") await new Promise((resolve) => setTimeout(resolve, 10));
    const pid = Number(fs.readFileSync(marker, "utf8").trim());
    controller.abort();
    const result = await pending;
    assert.equal(result.timedOut, true);
    assert.equal(result.signal, "SIGKILL");
    assert.ok(await waitUntilDead(pid));

    fs.rmSync(marker);
    await refused(exec("sh", ["-c", `echo started > '${marker}'`]), "COMMAND_ABORTED", /cancelled/);
    assert.equal(fs.existsSync(marker), false);
  });
});

void describe("review findings: descendants outside the group, and programs that cannot start", () => {
  /** Runs `script` under sh; it starts a descendant in its own session that writes its pid to a marker and sleeps. */
  function escapeeScript(marker: string, rest: string): string {
    return `setsid sh -c 'echo $$ > "${marker}"; exec sleep 60' </dev/null & while [ ! -s "${marker}" ]; do sleep 0.05; done; ${rest}`;
  }

  async function killEscapee(marker: string): Promise<boolean> {
    const pid = Number(fs.readFileSync(marker, "utf8").trim());
    assert.ok(Number.isInteger(pid) && pid > 1);
    const wasAlive = isAlive(pid);
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
    return wasAlive;
  }

  const HAS_SETSID = ["/usr/bin", "/bin"].some((dir) => fs.existsSync(path.join(dir, "setsid")));

  void test("a timed-out call returns at its deadline even when a descendant in its own session holds the output pipes", { timeout: 40_000 }, async (t) => {
    if (!HAS_SETSID) return t.skip("setsid is not installed");
    const marker = path.join(root, "escapee-timeout.pid");
    const exec = guardedExec({}, {}, { timeoutMs: 1500, maxOutputBytes: 10_000 });
    const started = Date.now();
    const result = await exec("sh", ["-c", escapeeScript(marker, "exec sleep 300")]);
    const elapsed = Date.now() - started;
    assert.ok(await killEscapee(marker), "the descendant escaped the group (the case under test)");
    assert.equal(result.timedOut, true);
    assert.equal(result.signal, "SIGKILL");
    assert.ok(elapsed < 15_000, `returned after ${elapsed} ms: it waited for the escaped descendant`);
  });

  void test("a command that exits on its own is not reported as timed out because an escaped descendant holds its output", { timeout: 40_000 }, async (t) => {
    if (!HAS_SETSID) return t.skip("setsid is not installed");
    const marker = path.join(root, "escapee-exit.pid");
    const exec = guardedExec({}, {}, { timeoutMs: 20_000, maxOutputBytes: 10_000 });
    const started = Date.now();
    const result = await exec("sh", ["-c", escapeeScript(marker, "echo done")]);
    const elapsed = Date.now() - started;
    assert.ok(await killEscapee(marker), "the descendant escaped the group (the case under test)");
    assert.deepEqual({ exitCode: result.exitCode, timedOut: result.timedOut, stdout: result.stdout }, { exitCode: 0, timedOut: false, stdout: "done\n" });
    assert.ok(elapsed < 10_000, `returned after ${elapsed} ms: it waited for the escaped descendant`);
  });

  // `timeout` moves itself to a process group of its own (setpgid), still in the call's session.
  // The script waits until it has, so the group kill cannot catch it by being early.
  const ownGroup = (rest: string): string =>
    `timeout 300 sleep 300 >/dev/null 2>&1 & echo $!; until [ "$(cut -d' ' -f5 /proc/$!/stat)" = "$!" ]; do sleep 0.05; done; ${rest}`;

  void test("a descendant in a process group of its own (same session) dies at the deadline too", { timeout: 60_000 }, async (t) => {
    if (process.platform !== "linux") return t.skip("the session sweep reads /proc");
    const result = await guardedExec({}, {}, { timeoutMs: 1500, maxOutputBytes: 10_000 })("sh", ["-c", ownGroup("exec sleep 300")]);
    assert.equal(result.timedOut, true);
    const [pid] = pidsFrom(result.stdout);
    assert.ok(pid !== undefined && pid > 1);
    assert.ok(await waitUntilDead(pid), `process ${pid} (its own group, the call's session) is still running`);
  });

  void test("a descendant in a process group of its own (same session) does not outlive a normal exit", { timeout: 60_000 }, async (t) => {
    if (process.platform !== "linux") return t.skip("the session sweep reads /proc");
    const result = await guardedExec({}, {}, { timeoutMs: 20_000, maxOutputBytes: 10_000 })("sh", ["-c", ownGroup("echo done")]);
    assert.equal(result.exitCode, 0);
    const [pid] = pidsFrom(result.stdout);
    assert.ok(pid !== undefined && pid > 1);
    assert.ok(await waitUntilDead(pid), `process ${pid} (its own group, the call's session) is still running`);
  });

  void test("calls ending together each get their session swept", { timeout: 60_000 }, async (t) => {
    if (process.platform !== "linux") return t.skip("the session sweep reads /proc");
    const exec = guardedExec({}, {}, { timeoutMs: 20_000, maxOutputBytes: 10_000 });
    const results = await Promise.all(Array.from({ length: 6 }, () => exec("sh", ["-c", ownGroup("echo done")])));
    for (const result of results) {
      const [pid] = pidsFrom(result.stdout);
      assert.ok(pid !== undefined && pid > 1);
      assert.ok(await waitUntilDead(pid), `process ${pid} (its own group, the call's session) is still running`);
    }
  });

  void test("a program the system refuses to start is a COMMAND_FAILED tool error that says why", async () => {
    // One argument past the kernel's per-string limit (128 KiB): execve fails with E2BIG.
    await assert.rejects(guardedExec()("echo", ["x".repeat(200_000)]), (error: unknown) => {
      assert.ok(error instanceof ToolError, `expected ToolError, got ${String(error)}`);
      assert.equal(error.code, "COMMAND_FAILED");
      assert.match(error.message, /could not start echo: its arguments are longer than the system accepts.*\(E2BIG\)/);
      return true;
    });
  });
});

void describe("review findings: hard-linked copies and #! interpreters of blocked programs", () => {
  void test("a hard link to a blocked program is blocked", async () => {
    const tool = path.join(bin, "blocked-tool");
    fs.writeFileSync(tool, "#!/bin/echo\n", { mode: 0o755 });
    fs.linkSync(tool, path.join(bin, "innocent-name"));
    await refused(guardedExec({ blocked: [tool] })("innocent-name", []), "COMMAND_DENIED", /same program as/);
  });

  void test("a script whose #! interpreter is blocked is blocked, also through env", async () => {
    const direct = path.join(bin, "direct-script");
    fs.writeFileSync(direct, "#!/bin/sh\necho hi\n", { mode: 0o755 });
    const viaEnv = path.join(bin, "env-script");
    fs.writeFileSync(viaEnv, "#!/usr/bin/env -S sh -e\necho hi\n", { mode: 0o755 });
    await refused(guardedExec({ blocked: ["sh"] })("direct-script", []), "COMMAND_DENIED", /script run by \/bin\/sh/);
    await refused(guardedExec({ blocked: ["sh"] })("env-script", []), "COMMAND_DENIED", /script run by sh/);
    const ran = await guardedExec({ blocked: ["python3"] })("direct-script", []);
    assert.equal(ran.stdout, "hi\n", "an unblocked interpreter still runs its script");
  });

  void test("a script whose interpreter is a script run by a blocked program is blocked (the kernel follows the chain)", async () => {
    const inner = path.join(bin, "inner-script");
    fs.writeFileSync(inner, "#!/bin/sh\necho inner ran\n", { mode: 0o755 });
    const outer = path.join(bin, "outer-script");
    fs.writeFileSync(outer, `#!${inner}\nignored\n`, { mode: 0o755 });
    // Same base name as its interpreter: no exemption for that either.
    fs.mkdirSync(path.join(bin, "other"));
    const twin = path.join(bin, "other", "inner-script");
    fs.writeFileSync(twin, `#!${inner}\n`, { mode: 0o755 });
    const exec = guardedExec({ blocked: ["sh"] });
    await refused(exec("outer-script", []), "COMMAND_DENIED", /script run by .*inner-script, and it is a script run by \/bin\/sh/);
    await refused(exec(twin, []), "COMMAND_DENIED", /script run by \/bin\/sh/);
    const ran = await guardedExec({ blocked: ["python3"] })("outer-script", []);
    assert.equal(ran.stdout, "inner ran\n", "a chain of unblocked interpreters still runs");
  });

  void test("a script whose interpreter the check cannot judge is refused", async () => {
    // The kernel opens a relative interpreter in the working directory, which may be anything.
    const relative = path.join(bin, "relative-script");
    fs.writeFileSync(relative, "#!myecho\n", { mode: 0o755 });
    await refused(guardedExec()("relative-script", []), "COMMAND_DENIED", /interpreter "myecho" is not an absolute path/);
    // A chain deeper than the kernel follows.
    let previous = "/bin/echo";
    for (let level = 0; level < 6; level++) {
      const next = path.join(bin, `deep-${level}`);
      fs.writeFileSync(next, `#!${previous}\n`, { mode: 0o755 });
      previous = next;
    }
    await refused(guardedExec()(previous, []), "COMMAND_DENIED", /more than 4 levels deep/);
    // `env` options that take an argument are skipped: the program is the word after them.
    const viaEnv = path.join(bin, "env-unset-script");
    fs.writeFileSync(viaEnv, "#!/usr/bin/env -u FOO sh\necho hi\n", { mode: 0o755 });
    await refused(guardedExec({ blocked: ["sh"] })("env-unset-script", []), "COMMAND_DENIED", /script run by sh/);
  });

  void test("a file that is neither native nor a #! script the kernel accepts is refused: it would run through /bin/sh", async () => {
    const exec = guardedExec({ blocked: ["sh"] });
    const marker = path.join(root, "ran-through-sh");
    // Without a #! line, execve fails with ENOEXEC and Node (like execvp) hands the file to /bin/sh.
    const bare = path.join(bin, "bare-script");
    fs.writeFileSync(bare, `touch '${marker}'\n`, { mode: 0o755 });
    await refused(exec("bare-script", []), "COMMAND_DENIED", /bare-script refused: it is neither a native executable nor a #! script, so the system would run it with \/bin\/sh/);
    const empty = path.join(bin, "empty-script");
    fs.writeFileSync(empty, "", { mode: 0o755 });
    await refused(exec("empty-script", []), "COMMAND_DENIED", /it is an empty file/);
    // A #! line that does not end within the kernel's 256 bytes is ENOEXEC too: here its first 254
    // bytes name /bin/echo, which a check of those bytes alone would let through.
    const long = path.join(bin, "long-line-script");
    fs.writeFileSync(long, `#!${"/".repeat(246)}bin/echo${"x".repeat(10)}\ntouch '${marker}'\n`, { mode: 0o755 });
    await refused(exec("long-line-script", []), "COMMAND_DENIED", /its #! line does not end within the first 256 bytes/);
    const nameless = path.join(bin, "nameless-script");
    fs.writeFileSync(nameless, `#!   \ntouch '${marker}'\n`, { mode: 0o755 });
    await refused(exec("nameless-script", []), "COMMAND_DENIED", /its #! line names no interpreter/);
    // An ELF magic number is not enough: a text file behind one, or an executable for another
    // machine, is ENOEXEC as well.
    const fakeElf = path.join(bin, "fake-elf");
    fs.writeFileSync(fakeElf, `\x7fELF\ntouch '${marker}'\n`, { mode: 0o755 });
    await refused(exec("fake-elf", []), "COMMAND_DENIED", /it starts like an ELF executable, but its header is cut short, so the system would run it with \/bin\/sh/);
    const foreign = Buffer.from(fs.readFileSync(fs.realpathSync("/bin/echo")).subarray(0, 64));
    const otherMachine = foreign.readUInt16LE(18) === 183 ? 62 : 183;
    foreign.writeUInt16LE(otherMachine, 18);
    fs.writeFileSync(path.join(bin, "foreign-elf"), Buffer.concat([foreign, Buffer.from(`\ntouch '${marker}'\n`)]), { mode: 0o755 });
    await refused(exec("foreign-elf", []), "COMMAND_DENIED", new RegExp(`it is for another machine \\(e_machine ${otherMachine}\\)`));
    assert.equal(fs.existsSync(marker), false, "nothing ran through /bin/sh");
    // A native executable and a well-formed script still run.
    assert.equal((await exec("echo", ["native"])).stdout, "native\n");
    const fine = path.join(bin, "fine-script");
    fs.writeFileSync(fine, "#!/bin/echo  with   spaces  \n", { mode: 0o755 });
    assert.equal((await exec("fine-script", [])).stdout, `with   spaces ${fine}\n`, "the kernel passes the rest of the line as one argument");
  });

  void test("env in a #! line is read as env reads it: -Ssh and --split-string name a program; a PATH of its own is refused", async () => {
    const exec = guardedExec({ blocked: ["sh"] });
    const cases: Array<[string, RegExp]> = [
      ["#!/usr/bin/env -Ssh\necho hi\n", /script run by sh, and "sh" is in commands\.blocked/],
      ["#!/usr/bin/env -vS sh\necho hi\n", /script run by sh/],
      ["#!/usr/bin/env --split-string=sh\necho hi\n", /script run by sh/],
      ["#!/usr/bin/env --split=sh\necho hi\n", /script run by sh/],
      [`#!/usr/bin/env -S PATH=${bin}:/usr/bin:/bin myecho\n`, /its #! line runs env with its own PATH, so which program runs cannot be judged/],
      ["#!/usr/bin/env -S -i myecho\n", /runs env with an emptied environment \(-i\)/],
      ["#!/usr/bin/env -S - myecho\n", /runs env with an emptied environment/],
      ["#!/usr/bin/env -S -u PATH myecho\n", /runs env with PATH unset/],
      ["#!/usr/bin/env -S --unset=PATH myecho\n", /runs env with PATH unset/],
      ["#!/usr/bin/env -S -a ls myecho\n", /runs env with another argv\[0\]/],
    ];
    for (const [index, [text, pattern]] of cases.entries()) {
      const script = path.join(bin, `env-case-${index}`);
      fs.writeFileSync(script, text, { mode: 0o755 });
      await refused(exec(script, []), "COMMAND_DENIED", pattern);
    }
    const fine = path.join(bin, "env-fine");
    fs.writeFileSync(fine, "#!/usr/bin/env -S -u FOO myecho from-env\n", { mode: 0o755 });
    assert.equal((await exec(fine, [])).stdout, `from-env ${fine}\n`);
  });

  void test("a program or #! interpreter the tools may rewrite is refused", async () => {
    const interpreter = path.join(bin, "rewritable-interpreter");
    fs.copyFileSync(fs.realpathSync("/bin/echo"), interpreter);
    fs.chmodSync(interpreter, 0o755);
    const script = path.join(bin, "script-with-rewritable-interpreter");
    fs.writeFileSync(script, `#!${interpreter}\n`, { mode: 0o755 });
    const asked: string[] = [];
    const isRewritable = (file: string): Promise<boolean> => {
      asked.push(file);
      return Promise.resolve(file === fs.realpathSync(interpreter));
    };
    const exec = guardedExec({}, { isRewritable });
    await refused(exec(interpreter, []), "COMMAND_DENIED", /tools may rewrite .*rewritable-interpreter/);
    await refused(exec(script, []), "COMMAND_DENIED", /it is a script run by .*rewritable-interpreter, and tools may rewrite/);
    assert.equal((await exec("echo", ["ok"])).stdout, "ok\n");
    assert.ok(asked.includes(fs.realpathSync("/bin/echo")), "asked about the real path");
  });

  void test("the default block list refuses wrappers that run the command line they are given", async (t) => {
    const exec = guardedExec({ blocked: [...DEFAULT_BLOCKED_COMMANDS] });
    const lock = path.join(root, "lock");
    const wrappers: Array<[string, string[]]> = [
      ["flock", [lock, "bash", "-c", "echo ran"]],
      ["taskset", ["1", "bash", "-c", "echo ran"]],
      ["setpriv", ["bash", "-c", "echo ran"]],
    ];
    let checked = 0;
    for (const [wrapper, args] of wrappers) {
      // Only where the wrapper is installed (util-linux): elsewhere there is nothing to run.
      if (!["/usr/bin", "/bin"].some((dir) => fs.existsSync(path.join(dir, wrapper)))) continue;
      await refused(exec(wrapper, args), "COMMAND_DENIED", new RegExp(`"${wrapper}" is in commands.blocked`));
      checked += 1;
    }
    if (checked === 0) t.skip("none of flock, taskset, setpriv is installed here");
  });
});

void describe("a sandbox that cannot be set up", () => {
  /** A stand-in for bwrap: writes `stderr`, exits with `code`, never runs the program. */
  function fakeSandbox(stderr: string, code: number): GuardedExecOptions["sandbox"] {
    const script = path.join(root, `fake-bwrap-${code}-${stderr.length}`);
    // The text in a file of its own: no shell quoting to get wrong ("Can't").
    fs.writeFileSync(`${script}.txt`, `${stderr}\n`);
    fs.writeFileSync(script, `#!/bin/sh\ncat '${script}.txt' >&2\nexit ${code}\n`, { mode: 0o755 });
    return {
      mode: "required",
      state: () => Promise.resolve({ state: "sandboxed", bwrap: script, version: "test" }),
      plan: () => Promise.resolve({ sandboxed: true, file: script, args: [] }),
      exclusive: (_signal, work) => work(),
    };
  }

  test("bubblewrap's own error goes to the operator, not to the model (it names the server's paths)", async () => {
    const told: string[] = [];
    const message = "bwrap: Can't mkdir /home/owner/.local/state/mcp-secure-local/exec-home/x: Permission denied";
    const exec = guardedExec({}, { sandbox: fakeSandbox(message, 1), onSandboxFailure: (program, text) => told.push(`${program}: ${text}`) });
    await assert.rejects(exec("myecho", ["hi"]), (error: unknown) => {
      assert.ok(error instanceof ToolError);
      assert.equal(error.code, "COMMAND_SANDBOX_FAILED");
      assert.doesNotMatch(error.message, /\/home\/owner|exec-home/);
      assert.match(error.message, /the server's log says why/);
      return true;
    });
    assert.deepEqual(told, [`myecho: ${message}`]);
  });

  test("a program that fails on its own is a result as before, whatever it printed", async () => {
    const exec = guardedExec({}, { sandbox: fakeSandbox("myecho: cannot open file", 1), onSandboxFailure: () => assert.fail("not a sandbox failure") });
    const result = await exec("myecho", ["hi"]);
    assert.deepEqual([result.exitCode, result.stderr], [1, "myecho: cannot open file\n"]);
    const other = guardedExec({}, { sandbox: fakeSandbox("bwrap: lookalike", 2) });
    assert.equal((await other("myecho", [])).exitCode, 2, "bubblewrap fails with 1 only");
  });
});
