import { test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import {
  checkCommand,
  checkExecEnv,
  CommandPolicyError,
  compileCommandPolicy,
  INDIRECT_EXECUTION_COMMANDS,
  type CommandIo,
  type CommandVerdict,
} from "../../src/security/command-guard.js";
import type { CommandsPolicy } from "../../src/security/policy-types.js";

type Node = { kind: "file"; executable: boolean } | { kind: "link"; target: string } | { kind: "dir" };

/** An in-memory file system: enough for PATH lookup and symlink resolution, with no disk involved. */
function fakeIo(entries: Record<string, Node>): CommandIo {
  const resolve = (file: string, depth = 0): string | undefined => {
    if (depth > 40) return undefined;
    const parts = path.normalize(file).split("/").filter(Boolean);
    let current = "/";
    for (const [index, part] of parts.entries()) {
      const next = path.join(current, part);
      const node = entries[next];
      if (node === undefined) return undefined;
      if (node.kind === "link") {
        const target = path.isAbsolute(node.target) ? node.target : path.join(current, node.target);
        const resolved = resolve(path.join(target, ...parts.slice(index + 1)), depth + 1);
        return resolved;
      }
      current = next;
    }
    return current;
  };
  return {
    realpath(file) {
      const real = resolve(file);
      if (real === undefined) return Promise.reject(Object.assign(new Error(`ENOENT ${file}`), { code: "ENOENT" }));
      return Promise.resolve(real);
    },
    isExecutableFile(file) {
      const real = resolve(file);
      const node = real === undefined ? undefined : entries[real];
      return Promise.resolve(node?.kind === "file" && node.executable);
    },
  };
}

const exe: Node = { kind: "file", executable: true };
const fs = fakeIo({
  "/usr": { kind: "dir" },
  "/usr/bin": { kind: "dir" },
  "/bin": { kind: "link", target: "usr/bin" },
  "/etc": { kind: "dir" },
  "/etc/alternatives": { kind: "dir" },
  "/etc/alternatives/nc": { kind: "link", target: "/bin/nc.openbsd" },
  "/usr/bin/nc": { kind: "link", target: "/etc/alternatives/nc" },
  "/usr/bin/nc.openbsd": exe,
  "/usr/bin/curl": exe,
  "/usr/bin/CURL": exe,
  "/usr/bin/scp": exe,
  "/usr/bin/scpi-helper": exe,
  "/usr/bin/grep": exe,
  "/usr/bin/git": exe,
  "/usr/bin/ls": exe,
  "/usr/bin/readme.txt": { kind: "file", executable: false },
  "/usr/bin/python3": { kind: "link", target: "python3.11" },
  "/usr/bin/python3.11": exe,
  "/opt": { kind: "dir" },
  "/opt/box": { kind: "dir" },
  "/opt/box/busybox": exe,
  "/opt/box/sh": { kind: "link", target: "busybox" },
  "/opt/box/ls": { kind: "link", target: "busybox" },
  "/home": { kind: "dir" },
  "/home/u": { kind: "dir" },
  "/home/u/bin": { kind: "dir" },
  "/home/u/bin/mycurl": { kind: "link", target: "/usr/bin/curl" },
  "/home/u/bin/fetcher": { kind: "link", target: "../../../bin/curl" },
  "/home/u/tool": exe,
  "/usr/lib": { kind: "dir" },
  "/usr/lib/R": { kind: "dir" },
  "/usr/lib/R/exec": exe,
  "/usr/bin/Rscript": { kind: "link", target: "/usr/lib/R/exec" },
  "/usr/bin/rs-alias": { kind: "link", target: "/usr/lib/R/exec" },
});

const SEED_BLOCKED = ["curl", "wget", "ssh", "scp", "rsync", "nc", "netcat", "telnet", "ftp", "sftp"];

function commands(overrides: Partial<CommandsPolicy> = {}): CommandsPolicy {
  return { blocked: SEED_BLOCKED, timeout: 30, max_output_bytes: 100_000, sandbox: "off", ...overrides };
}

function denied(verdict: CommandVerdict, code: string, pattern: RegExp): void {
  assert.equal(verdict.ok, false, "expected a refusal");
  if (verdict.ok) return;
  assert.equal(verdict.code, code);
  assert.match(verdict.reason, pattern);
}

const PATH = "/home/u/bin:/usr/bin:/bin";

void test("blocked names match exactly, never as substrings (the seed blocked `grep scpi`)", async () => {
  const compiled = compileCommandPolicy(commands(), { PATH });
  denied(await checkCommand(compiled, "curl", ["https://example.com"], fs), "COMMAND_DENIED", /curl refused: "curl" is in commands\.blocked/);
  denied(await checkCommand(compiled, "scp", [], fs), "COMMAND_DENIED", /"scp" is in commands\.blocked/);
  denied(await checkCommand(compiled, "CURL", [], fs), "COMMAND_DENIED", /"curl" is in commands\.blocked/);
  assert.deepEqual(await checkCommand(compiled, "grep", ["scpi", "file.txt"], fs), { ok: true, path: "/usr/bin/grep", argv0: "grep" });
  assert.equal((await checkCommand(compiled, "scpi-helper", [], fs)).ok, true);
  assert.equal((await checkCommand(compiled, "ls", ["nc", "curl"], fs)).ok, true, "blocked names in arguments are just data");
});

void test("aliases are judged by their real path: nc -> /etc/alternatives/nc -> nc.openbsd", async () => {
  const compiled = compileCommandPolicy(commands(), { PATH });
  denied(await checkCommand(compiled, "nc", [], fs), "COMMAND_DENIED", /"nc" is in commands\.blocked/);
  denied(await checkCommand(compiled, "nc.openbsd", [], fs), "COMMAND_DENIED", /same program as "nc" \(\/usr\/bin\/nc\.openbsd\)/);
  denied(await checkCommand(compiled, "/usr/bin/nc.openbsd", [], fs), "COMMAND_DENIED", /same program as "nc"/);
  denied(await checkCommand(compiled, "/bin/nc", [], fs), "COMMAND_DENIED", /"nc" is in commands\.blocked/);
  denied(await checkCommand(compiled, "mycurl", [], fs), "COMMAND_DENIED", /"curl" is in commands\.blocked/);
  denied(await checkCommand(compiled, "/home/u/bin/fetcher", [], fs), "COMMAND_DENIED", /"curl" is in commands\.blocked/);
  // Found on PATH by its name as written, not lower-cased.
  const mixedCase = compileCommandPolicy(commands({ blocked: ["Rscript"] }), { PATH });
  denied(await checkCommand(mixedCase, "rs-alias", [], fs), "COMMAND_DENIED", /same program as "Rscript"/);
});

void test("blocked absolute paths match the found path and the real path", async () => {
  const compiled = compileCommandPolicy(commands({ blocked: ["/usr/bin/python3"] }), { PATH });
  denied(await checkCommand(compiled, "python3", [], fs), "COMMAND_DENIED", /\/usr\/bin\/python3 is in commands\.blocked/);
  denied(await checkCommand(compiled, "python3.11", [], fs), "COMMAND_DENIED", /same program as "\/usr\/bin\/python3"/);
  assert.equal((await checkCommand(compiled, "git", [], fs)).ok, true);
});

void test("the verdict names the real path to spawn and the name it was called by", async () => {
  const compiled = compileCommandPolicy(commands({ blocked: [] }), { PATH });
  assert.deepEqual(await checkCommand(compiled, "python3", ["-V"], fs), { ok: true, path: "/usr/bin/python3.11", argv0: "python3" });
  assert.deepEqual(await checkCommand(compiled, "/bin/git", [], fs), { ok: true, path: "/usr/bin/git", argv0: "/bin/git" });
});

void test("relative paths are refused; bare names come from the absolute PATH entries only", async () => {
  const compiled = compileCommandPolicy(commands(), { PATH: `.:bin::${PATH}:/usr/bin` });
  assert.deepEqual(compiled.searchPath, ["/home/u/bin", "/usr/bin", "/bin"]);
  assert.equal(compiled.pathValue, "/home/u/bin:/usr/bin:/bin");
  denied(await checkCommand(compiled, "./tool", [], fs), "COMMAND_DENIED", /relative paths are not allowed/);
  denied(await checkCommand(compiled, "u/tool", [], fs), "COMMAND_DENIED", /relative paths are not allowed/);
  denied(await checkCommand(compiled, "../bin/ls", [], fs), "COMMAND_DENIED", /relative paths are not allowed/);
  denied(await checkCommand(compiled, "tool", [], fs), "COMMAND_NOT_FOUND", /^tool: not found on PATH \(in none of the 3 directories of the server's PATH\)/);
  const notFound = await checkCommand(compiled, "tool", [], fs);
  assert.ok(!notFound.ok && !notFound.reason.includes("/home/u"), "the PATH's directories are not named to the model");
  assert.equal((await checkCommand(compiled, "/home/u/tool", [], fs)).ok, true);
  denied(await checkCommand(compiled, "readme.txt", [], fs), "COMMAND_NOT_FOUND", /not found on PATH/);
  denied(await checkCommand(compiled, "/usr/bin/readme.txt", [], fs), "COMMAND_NOT_FOUND", /no executable file/);
  denied(await checkCommand(compiled, "/usr/bin", [], fs), "COMMAND_NOT_FOUND", /no executable file/);
  const empty = compileCommandPolicy(commands(), { PATH: "" });
  denied(await checkCommand(empty, "ls", [], fs), "COMMAND_NOT_FOUND", /not found on PATH \(the server's PATH is empty\)/);
});

void test("commands.allowed admits exactly the listed programs, by real path and name", async () => {
  const compiled = compileCommandPolicy(commands({ allowed: ["git", "/usr/bin/python3", "ls", "missing-tool"] }), { PATH: `${PATH}:/opt/box` });
  assert.equal((await checkCommand(compiled, "git", ["status"], fs)).ok, true);
  assert.equal((await checkCommand(compiled, "/bin/git", [], fs)).ok, true, "another path to the same file");
  assert.equal((await checkCommand(compiled, "python3", [], fs)).ok, true);
  denied(await checkCommand(compiled, "python3.11", [], fs), "COMMAND_DENIED", /not in commands\.allowed/);
  denied(await checkCommand(compiled, "grep", [], fs), "COMMAND_DENIED", /grep refused: not in commands\.allowed \(allowed: git, \/usr\/bin\/python3, ls, missing-tool\)/);
  denied(await checkCommand(compiled, "curl", [], fs), "COMMAND_DENIED", /in commands\.blocked/);
  // A multi-call binary is one file acting on its name: allowing `ls` must not allow `sh`.
  const busybox = compileCommandPolicy(commands({ blocked: [], allowed: ["/opt/box/ls"] }), { PATH: "/opt/box" });
  assert.equal((await checkCommand(busybox, "ls", [], fs)).ok, true);
  denied(await checkCommand(busybox, "sh", [], fs), "COMMAND_DENIED", /not in commands\.allowed/);
  const nothing = compileCommandPolicy(commands({ blocked: [], allowed: [] }), { PATH });
  denied(await checkCommand(nothing, "ls", [], fs), "COMMAND_DENIED", /allowed: nothing/);
});

void test("a program named by both lists is refused with a word on which list wins", async () => {
  const compiled = compileCommandPolicy(commands({ blocked: ["git", "/usr/bin/ls"], allowed: ["git", "/usr/bin/ls", "grep"] }), { PATH });
  denied(await checkCommand(compiled, "git", [], fs), "COMMAND_DENIED", /"git" is in commands\.blocked \(commands\.allowed names it too, but blocked wins\)/);
  denied(await checkCommand(compiled, "ls", [], fs), "COMMAND_DENIED", /\/usr\/bin\/ls is in commands\.blocked \(commands\.allowed names it too/);
  denied(await checkCommand(compileCommandPolicy(commands(), { PATH }), "curl", [], fs), "COMMAND_DENIED", /"curl" is in commands\.blocked$/);
});

void test("NUL bytes and non-strings in the command or its arguments are refused", async () => {
  const compiled = compileCommandPolicy(commands(), { PATH });
  denied(await checkCommand(compiled, "ls", ["a\0b"], fs), "COMMAND_INVALID", /argument 0 contains a NUL byte/);
  denied(await checkCommand(compiled, "ls\0curl", [], fs), "COMMAND_INVALID", /NUL/);
  denied(await checkCommand(compiled, "", [], fs), "COMMAND_INVALID", /non-empty/);
  denied(await checkCommand(compiled, "ls", ["ok", 5 as unknown as string], fs), "COMMAND_INVALID", /argument 1 is not a string/);
  denied(await checkCommand(compiled, "ls", "-la" as unknown as string[], fs), "COMMAND_INVALID", /array/);
});

void test("compileCommandPolicy refuses entries it cannot enforce", () => {
  for (const blocked of [["bin/curl"], [""], ["./nc"]]) {
    assert.throws(() => compileCommandPolicy(commands({ blocked }), { PATH }), (error: unknown) => error instanceof CommandPolicyError && error.code === "POLICY_INVALID");
  }
  assert.throws(() => compileCommandPolicy(commands({ allowed: ["tools/git"] }), { PATH }), CommandPolicyError);
});

void test("checkExecEnv admits only locale, time zone, terminal and MSL_ variables; everything else is refused", () => {
  assert.deepEqual(checkExecEnv(undefined), { ok: true, env: {} });
  assert.deepEqual(checkExecEnv({ LC_ALL: "C", TZ: "UTC", TERM: "dumb", MSL_MODE: "1" }), { ok: true, env: { LC_ALL: "C", TZ: "UTC", TERM: "dumb", MSL_MODE: "1" } });
  for (const name of [
    "LD_PRELOAD", "ld_library_path", "DYLD_INSERT_LIBRARIES", "NODE_OPTIONS", "PATH", "HOME", "BASH_ENV", "PYTHONPATH", "GIT_SSH_COMMAND",
    "XDG_CONFIG_HOME", "GIT_PROXY_COMMAND", "GIT_AUTHOR_NAME", "EDITOR", "PAGER", "OPENSSL_CONF", "JAVA_TOOL_OPTIONS", "GLIBC_TUNABLES", "lang_x", "TZDIR",
  ]) {
    const verdict = checkExecEnv({ [name]: "x" });
    assert.equal(verdict.ok, false, name);
    if (!verdict.ok) assert.match(verdict.reason, /may not be set/);
  }
  for (const name of ["A-B", "1A", "BASH_FUNC_x%%", "", "A B"]) {
    const verdict = checkExecEnv({ [name]: "x" });
    assert.equal(verdict.ok, false, name);
    if (!verdict.ok) assert.match(verdict.reason, /not a valid identifier/);
  }
  const unknown = checkExecEnv({ GIT_AUTHOR_NAME: "x" });
  assert.equal(unknown.ok, false);
  if (!unknown.ok) {
    assert.equal(
      unknown.reason,
      "environment variable GIT_AUTHOR_NAME may not be set: a call may add only LANG, LANGUAGE, LC_*, TZ, TERM, COLUMNS, LINES, NO_COLOR, FORCE_COLOR, CLICOLOR, MSL_* (others can change which code runs; PATH and HOME are the server's)",
    );
  }
  // A locale name that is a path makes glibc load locale data or message catalogs from there.
  for (const [name, value] of [["LANGUAGE", "../../../../tmp/x"], ["LC_ALL", "/tmp/locale"], ["LANG", "en_US/../../x"], ["lc_messages", "a/b"]]) {
    const verdict = checkExecEnv({ [name!]: value! });
    assert.equal(verdict.ok, false, name);
    if (!verdict.ok) assert.match(verdict.reason, /must name a locale, not a path/);
  }
  assert.equal(checkExecEnv({ LANG: "en_US.UTF-8", LANGUAGE: "de_DE:en", LC_ALL: "sr_RS@latin", TZ: "Europe/Paris" }).ok, true);
  const nul = checkExecEnv({ A: "x\0y" });
  assert.equal(nul.ok, false);
});

void test("the list of shells and interpreters for the default policy names the usual suspects", () => {
  for (const name of ["sh", "bash", "python3", "perl", "node", "env", "xargs"]) assert.ok(INDIRECT_EXECUTION_COMMANDS.includes(name), name);
});
