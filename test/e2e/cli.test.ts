/**
 * The command line as a person meets it, through the built `dist/src/main.js`:
 * --version, --help, usage errors, check-policy, init, and a server that refuses an
 * invalid policy. Each run gets a private HOME and a minimal environment.
 */
import { execFileSync, spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ServerProcess } from "../helpers/server-process.js";
import { ROOT, SERVER_ENTRY } from "../helpers/project.js";
import { exitWithin, tempDir } from "../helpers/e2e.js";
import { cli } from "../helpers/cli.js";


const SHA_LINE = /^# sha256: ([0-9a-f]{64})$/m;

// An unknown key on line 5, column 3, after a valid start.
const BAD_POLICY = ['version: "1.0"', "network:", "  allowed_ranges: []", "audit:", "  log_fil: /tmp/x.log", ""].join("\n");

void describe("the command line", () => {
  let root = "";
  let home = "";
  const packageVersion = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

  before(() => {
    root = tempDir("msl-cli-e2e-");
    home = join(root, "home");
    mkdirSync(home);
  });

  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  void test("--version prints the name and package version on stdout, exit 0", async () => {
    const run = await cli(["--version"], home);
    assert.equal(run.code, 0);
    assert.equal(run.stdout, `mcp-secure-local ${packageVersion}\n`);
    assert.equal(run.stderr, "");
  });

  void test("--help prints the usage on stdout, exit 0", async () => {
    const run = await cli(["--help"], home);
    assert.equal(run.code, 0);
    assert.equal(run.stderr, "");
    assert.match(run.stdout, /^Usage:/);
    for (const command of ["check-policy FILE", "audit verify", "audit tail [-n N] [-f]", "init", "--policy FILE", "--state-dir DIR"]) {
      assert.ok(run.stdout.includes(command), `the usage mentions ${command}`);
    }
  });

  void test("an unknown flag: exit 2, the flag and the usage on stderr, nothing on stdout", async () => {
    const run = await cli(["--frobnicate"], home);
    assert.equal(run.code, 2);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, /unknown argument "--frobnicate"/);
    assert.match(run.stderr, /Usage:/);
  });

  void test("a flag with a bad value is a usage error (exit 2), not a server start", async () => {
    const run = await cli(["--page-size", "0"], home);
    assert.equal(run.code, 2);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, /--page-size needs a positive whole number/);
  });

  void test("--max-line-bytes above the longest string is a usage error: such a line would crash the reader", async () => {
    const run = await cli(["--max-line-bytes", "1000000000"], home);
    assert.equal(run.code, 2);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, /--max-line-bytes may be at most \d+/);
  });

  void test("check-policy policy.yaml: exit 0, the sha256 and an effective policy that checks again to the same hash", async () => {
    const stateDir = join(root, "check-state");
    const run = await cli(["check-policy", join(ROOT, "policy.yaml"), "--state-dir", stateDir], home);
    assert.equal(run.code, 0, run.stderr);
    const sha = SHA_LINE.exec(run.stdout)?.[1];
    assert.ok(sha, `the hash is printed: ${run.stdout.slice(0, 300)}`);
    assert.match(run.stdout, /^version: "1\.0"$/m);
    assert.ok(run.stdout.includes(`${stateDir}/workspace/**`), "${STATE_DIR} is expanded in the effective policy");

    // The output is itself a policy, and the same one.
    const effective = join(root, "effective.yaml");
    writeFileSync(effective, run.stdout);
    const again = await cli(["check-policy", effective, "--state-dir", stateDir], home);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(SHA_LINE.exec(again.stdout)?.[1], sha);
  });

  void test("check-policy on an invalid file: exit 1, file:line:col and the key on stderr, nothing on stdout", async () => {
    const file = join(root, "bad-policy.yaml");
    writeFileSync(file, BAD_POLICY);
    const run = await cli(["check-policy", file], home);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.ok(run.stderr.includes(`${file}:5:3: audit.log_fil: unknown key`), run.stderr);
    assert.match(run.stderr, /the policy is invalid/);
  });

  void test("check-policy on broken YAML: exit 1 with file:line:col", async () => {
    const file = join(root, "broken.yaml");
    writeFileSync(file, 'version: "1.0"\nnetwork:\n  allowed_ranges: [\n');
    const run = await cli(["check-policy", file], home);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, new RegExp(`^${file}:\\d+:\\d+: `, "m"));
  });

  void test("check-policy on a missing file: exit 1, said plainly", async () => {
    const file = join(root, "no-such-policy.yaml");
    const run = await cli(["check-policy", file], home);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.ok(run.stderr.includes(file), run.stderr);
    assert.match(run.stderr, /cannot be read/);
  });

  void test("check-policy and the server on a FIFO: refused at once, not waiting for a writer", async () => {
    const fifo = join(root, "policy-fifo.yaml");
    execFileSync("mkfifo", [fifo]);
    const run = await cli(["check-policy", fifo], home, 5_000);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /cannot read the policy file: it is not a regular file/);
    const serve = await cli(["--policy", fifo, "--state-dir", join(root, "fifo-state")], home, 5_000);
    assert.equal(serve.code, 1);
    assert.match(serve.stderr, /refusing to start: .*it is not a regular file/);
  });

  void test("a state directory or audit log reached through a link into /proc: exit 1 with the reason, not a start that never ends", async () => {
    // Only the spelling /proc/... is refused as a usage error; through a link (/dev/fd is one) the
    // folder is tried and fails, where Node's own recursive mkdir retried it forever.
    const link = join(root, "proc-link");
    symlinkSync("/proc/self", link);
    const serve = await cli(["--state-dir", join(link, "state")], home, 10_000);
    assert.equal(serve.code, 1, serve.stderr);
    assert.match(serve.stderr, /cannot create the state directory .*proc-link\/state: ENOENT/);
    const init = await cli(["init", "--state-dir", join(link, "state")], home, 10_000);
    assert.equal(init.code, 1, init.stderr);
    assert.match(init.stderr, /init: cannot create the state directory .*proc-link\/state/);
    const policy = join(root, "audit-under-proc.yaml");
    writeFileSync(policy, ['version: "1.0"', "audit:", `  log_file: ${JSON.stringify(join(link, "audit", "audit.log"))}`, ""].join("\n"));
    const audit = await cli(["--policy", policy, "--state-dir", join(root, "audit-proc-state")], home, 10_000);
    assert.equal(audit.code, 1, audit.stderr);
    assert.match(audit.stderr, /refusing to start: .*proc-link\/audit/);
  });

  void test("init --state-dir: writes the example policy and the workspace, prints a client snippet that points at them", async () => {
    const stateDir = join(root, "init-state");
    const run = await cli(["init", "--state-dir", stateDir], home);
    assert.equal(run.code, 0, run.stderr);
    const policyFile = join(stateDir, "policy.yaml");
    assert.equal(readFileSync(policyFile, "utf8"), readFileSync(join(ROOT, "policy.yaml"), "utf8"));
    assert.ok(statSync(join(stateDir, "workspace")).isDirectory());
    assert.equal(statSync(stateDir).mode & 0o077, 0, "the state directory is private");

    type Snippet = Record<string, Record<string, { type?: string; command: string; args: string[] }> | undefined>;
    const snippets = [...run.stdout.matchAll(/^\{[\s\S]*?^\}$/gm)].map((match) => JSON.parse(match[0]) as Snippet);
    assert.equal(snippets.length, 2, `two JSON snippets are printed: ${run.stdout}`);
    const [desktop, vscode] = snippets as [Snippet, Snippet];
    for (const entry of [desktop.mcpServers!["secure-local"]!, vscode.servers!["secure-local"]!]) {
      assert.equal(entry.command, process.execPath);
      assert.deepEqual(entry.args, [SERVER_ENTRY, "--policy", policyFile, "--state-dir", stateDir]);
    }
    assert.equal(vscode.servers!["secure-local"]!.type, "stdio", "VS Code's shape: servers, the transport named");
    assert.ok(!existsSync(join(home, ".local")), "nothing is written under HOME");
    assert.match(run.stdout, /add "env": \{"MCP_PROJECT_PATH": "\/path\/to\/project"\} to the entry/);

    // The written policy is valid for that state directory.
    const check = await cli(["check-policy", policyFile, "--state-dir", stateDir], home);
    assert.equal(check.code, 0, check.stderr);

    // A second init keeps an edited policy.
    writeFileSync(policyFile, `${readFileSync(policyFile, "utf8")}# edited\n`);
    const second = await cli(["init", "--state-dir", stateDir], home);
    assert.equal(second.code, 0);
    assert.match(second.stderr, /exists; keeping it/);
    assert.match(readFileSync(policyFile, "utf8"), /# edited\n$/);
  });

  void test("a reader that closes stdout early does not crash the command, and its exit code stands", async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
        const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home };
        if (process.env.NODE_V8_COVERAGE) env.NODE_V8_COVERAGE = process.env.NODE_V8_COVERAGE;
        const child = spawn(process.execPath, [SERVER_ENTRY, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
        // Gone before the command writes its first line, as `| head -0` or a closed pager.
        child.stdout.destroy();
        let stderr = "";
        child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
        const timer = setTimeout(() => (child.kill("SIGKILL"), reject(new Error(`${args.join(" ")} hung`))), 15_000);
        child.once("close", (code) => (clearTimeout(timer), resolve({ code, stderr })));
      });
    const valid = await run(["check-policy", join(ROOT, "policy.yaml"), "--state-dir", join(root, "pipe-state")]);
    assert.deepEqual(valid, { code: 0, stderr: "" });
    const init = await run(["init", "--state-dir", join(root, "pipe-state")]);
    assert.deepEqual(init, { code: 0, stderr: "" });
    const help = await run(["--help"]);
    assert.deepEqual(help, { code: 0, stderr: "" });
  });

  void test("init prints commands a shell reads back exactly, with the state directory for check-policy", async () => {
    const stateDir = join(root, "my state's dir");
    const run = await cli(["init", "--state-dir", stateDir], home);
    assert.equal(run.code, 0, run.stderr);
    const policyFile = join(stateDir, "policy.yaml");
    const words = (command: string) =>
      execFileSync("sh", ["-c", `for word in ${command}; do printf '%s\\0' "$word"; done`], { encoding: "utf8" }).split("\0").slice(0, -1);

    const check = /check it with: (.*)$/m.exec(run.stdout)?.[1];
    assert.ok(check, run.stdout);
    // Absolute, like the client snippet: it runs as printed, with or without the command on PATH.
    assert.deepEqual(words(check), [process.execPath, SERVER_ENTRY, "check-policy", policyFile, "--state-dir", stateDir]);
    const claude = /^Claude Code: (.*)$/m.exec(run.stdout)?.[1];
    assert.ok(claude, run.stdout);
    assert.deepEqual(words(claude), ["claude", "mcp", "add", "secure-local", "--", process.execPath, SERVER_ENTRY, "--policy", policyFile, "--state-dir", stateDir]);

    // Checked as the hint says, the policy's ${STATE_DIR} is this state directory.
    const checked = await cli(words(check).slice(2), home);
    assert.equal(checked.code, 0, checked.stderr);
    assert.ok(checked.stdout.includes(`${stateDir}/workspace/**`), checked.stdout);
  });

  void test("init where it cannot write: exit 1 with the reason on stderr, no stack trace", async () => {
    const file = join(root, "a-file");
    writeFileSync(file, "");
    const overFile = await cli(["init", "--state-dir", file], home);
    assert.equal(overFile.code, 1);
    assert.match(overFile.stderr, new RegExp(`init: cannot create the state directory ${file}: a file is in the way`));
    assert.doesNotMatch(overFile.stderr, /fatal|\n\s+at /);

    const policyDir = join(root, "policy-is-a-dir");
    mkdirSync(join(policyDir, "policy.yaml"), { recursive: true });
    const overDir = await cli(["init", "--state-dir", policyDir, "--force"], home);
    assert.equal(overDir.code, 1);
    assert.match(overDir.stderr, /init: cannot write .*policy\.yaml: it is a directory/);
    assert.doesNotMatch(overDir.stderr, /fatal|\n\s+at /);
    assert.deepEqual(readdirSync(policyDir).sort(), ["policy.yaml", "workspace"], "no temporary file is left behind");
  });

  void test("init never writes through a symbolic link at policy.yaml", async () => {
    const outside = join(root, "outside");
    mkdirSync(outside);
    // A dangling link: without --force it counts as an existing policy and is kept.
    const dangling = join(root, "dangling-state");
    mkdirSync(dangling);
    symlinkSync(join(outside, "created-through-link.yaml"), join(dangling, "policy.yaml"));
    const kept = await cli(["init", "--state-dir", dangling], home);
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.stderr, /exists; keeping it/);
    assert.equal(existsSync(join(outside, "created-through-link.yaml")), false, "nothing was created at the link's target");

    // With --force the link itself is replaced by the example policy; its target stays as it was.
    const linked = join(root, "linked-state");
    mkdirSync(linked);
    const target = join(outside, "my-dotfiles-policy.yaml");
    writeFileSync(target, "# mine\n");
    symlinkSync(target, join(linked, "policy.yaml"));
    const forced = await cli(["init", "--state-dir", linked, "--force"], home);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(readFileSync(target, "utf8"), "# mine\n", "the link's target is untouched");
    assert.ok(lstatSync(join(linked, "policy.yaml")).isFile(), "policy.yaml is now a regular file");
    assert.equal(readFileSync(join(linked, "policy.yaml"), "utf8"), readFileSync(join(ROOT, "policy.yaml"), "utf8"));
    assert.equal(statSync(join(linked, "policy.yaml")).mode & 0o777, 0o600);
  });

  void test("audit.log_file naming the signing key stops the server and fails check-policy, saying so (not 'damaged log')", async () => {
    const policy = ['version: "1.0"', "audit:", '  log_file: "${STATE_DIR}/keys/audit-ed25519.pem"', ""].join("\n");
    const server = ServerProcess.start({ policy });
    try {
      const exit = await exitWithin(server, 10_000);
      assert.equal(exit.code, 1, server.stderr);
      assert.deepEqual(server.rawLines, [], "nothing on stdout");
      assert.match(server.stderr, /refusing to start: .*audit\.log_file .*audit-ed25519\.pem is the audit signing key/);
    } finally {
      server.cleanup();
    }
    const file = join(root, "log-is-key.yaml");
    writeFileSync(file, policy);
    const checked = await cli(["check-policy", file, "--state-dir", join(root, "state-log-is-key")], home);
    assert.equal(checked.code, 1, checked.stdout);
    assert.match(checked.stderr, /log-is-key\.yaml: audit\.log_file .* is the audit signing key/);
  });

  void test("a glob that does not compile stops the server (a deny entry must never deny nothing); check-policy says so too", async () => {
    const policy = ['version: "1.0"', "tools:", '  deny: ["add_{bug"]', ""].join("\n");
    const server = ServerProcess.start({ policy });
    try {
      const exit = await exitWithin(server, 10_000);
      assert.equal(exit.code, 1, server.stderr);
      assert.deepEqual(server.rawLines, [], "nothing on stdout");
      assert.match(server.stderr, /refusing to start: .*policy\.yaml:3:10: tools\.deny\[0\]: "add_\{bug" is not a valid glob/);
    } finally {
      server.cleanup();
    }
    const file = join(root, "bad-glob.yaml");
    writeFileSync(file, ['version: "1.0"', "filesystem:", '  denied_paths: ["**/{secrets,private"]', ""].join("\n"));
    const checked = await cli(["check-policy", file, "--state-dir", join(root, "state-bad-glob")], home);
    assert.equal(checked.code, 1, checked.stdout);
    assert.equal(checked.stdout, "");
    assert.match(checked.stderr, /bad-glob\.yaml:3:18: filesystem\.denied_paths\[0\]: "\*\*\/\{secrets,private" is not a valid glob/);
  });

  void test("a refused start names every problem of the policy, one line each: schema, YAML and glob errors together", async () => {
    const policy = [
      'version: "1.0"',
      "filesystem:",
      '  denied_paths: ["**/{secrets,private"]',
      "  max_read_bytes: 0",
      "tools:",
      '  deny: ["add_{bug"]',
      "  timeout: !!int 2.5",
      "",
    ].join("\n");
    const server = ServerProcess.start({ policy });
    try {
      const exit = await exitWithin(server, 10_000);
      assert.equal(exit.code, 1, server.stderr);
      assert.deepEqual(server.rawLines, [], "nothing on stdout");
      const refusals = server.stderr.split("\n").filter((line) => line.includes("refusing to start: "));
      assert.deepEqual(
        refusals.map((line) => /policy\.yaml:(\d+:\d+: [\w.[\]]+):/.exec(line)?.[1]),
        ["3:18: filesystem.denied_paths[0]", "4:19: filesystem.max_read_bytes", "6:10: tools.deny[0]", "7:12: tools.timeout"],
        server.stderr,
      );
      assert.doesNotMatch(server.stderr, /\\u000a/, "each problem is a record of its own, not an escaped line break");
    } finally {
      server.cleanup();
    }
  });

  void test("audit tail -f shows a live server's calls as they are made, and ends with exit 0 on Ctrl-C", async () => {
    const server = await ServerProcess.initialized();
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home };
    if (process.env.NODE_V8_COVERAGE) env.NODE_V8_COVERAGE = process.env.NODE_V8_COVERAGE;
    const follower = spawn(process.execPath, [SERVER_ENTRY, "audit", "tail", "-f", "-n", "1", join(server.stateDir, "audit")], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    follower.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    follower.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => follower.once("close", (code) => resolve(code)));
    const until = async (check: () => boolean, what: string) => {
      for (const start = Date.now(); !check(); await new Promise((resolve) => setTimeout(resolve, 20))) {
        if (Date.now() - start > 10_000) throw new Error(`timed out waiting for ${what}; stdout:\n${stdout}\nstderr:\n${stderr}`);
      }
    };
    try {
      await until(() => /server_start/.test(stdout), "the tail");
      const reply = await server.callTool("security_status", {});
      assert.equal(reply.result?.isError, undefined, JSON.stringify(reply));
      await until(() => /#\d+\s+tool_result\s+security_status\s+ok/.test(stdout), "the call's outcome entry");
      assert.match(stdout, /#\d+\s+tool_call\s+security_status\s/, "its intent entry before it");
      follower.kill("SIGINT");
      assert.equal(await exited, 0, stderr);
      assert.equal(stderr, "");
      assert.equal((stdout.match(/server_start/g) ?? []).length, 1, "each entry once");
    } finally {
      follower.kill("SIGKILL");
      await server.close();
    }
  });

  void test("the server with an invalid policy: exit 1, the error on stderr, nothing on stdout, no audit log", async () => {
    const server = ServerProcess.start({ policy: BAD_POLICY });
    try {
      const exit = await exitWithin(server, 10_000);
      assert.equal(exit.code, 1, server.stderr);
      assert.deepEqual(server.rawLines, [], "nothing on stdout");
      assert.match(server.stderr, /refusing to start: .*policy\.yaml:5:3: audit\.log_fil: unknown key/);
      assert.doesNotMatch(server.stderr, /Waiting for an MCP client/);
      assert.equal(existsSync(join(server.stateDir, "audit")), false, "no audit log was started");
    } finally {
      server.cleanup();
    }
  });
});
