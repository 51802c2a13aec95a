/**
 * The exec sandbox end to end: the test server (TESTKIT_EXEC=1 adds `run_program`, which calls
 * ctx.exec) on a policy whose writable directory holds the state directory and the policy file,
 * the hardest layout to hide them in. The sandboxed cases are skipped, with the probe's reason,
 * where bubblewrap cannot be used; `required` without bwrap is simulated with TESTKIT_BWRAP
 * naming a file that does not exist, and runs everywhere.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { ServerProcess, resultText, type Message } from "../helpers/server-process.js";
import { TEST_SERVER_ENTRY, expectStructured, expectToolError, tempDir } from "../helpers/e2e.js";
import { findBwrap, probeBwrapSync } from "../../src/security/capabilities/sandbox.js";

const AVAILABLE = probeBwrapSync(findBwrap((process.env.PATH ?? "/usr/bin:/bin").split(":").filter((dir) => path.isAbsolute(dir))));
const SKIP = AVAILABLE.usable ? false : `bubblewrap cannot be used here: ${AVAILABLE.reason}`;

interface Setup {
  root: string;
  state: string;
  policyFile: string;
}

function setUp(sandbox: "auto" | "required"): Setup {
  const root = fs.realpathSync(tempDir("msl-e2e-sandbox-"));
  const state = path.join(root, "state");
  const policyFile = path.join(root, "policy.yaml");
  fs.mkdirSync(path.join(root, "work"));
  fs.writeFileSync(
    policyFile,
    [
      'version: "1.0"',
      "filesystem:",
      `  allowed_paths: ["${root}/**"]`,
      "commands:",
      "  blocked: []",
      "  allowed: [cat, ls, sh, bash, touch, sleep, setsid]",
      "  timeout: 2",
      `  sandbox: ${sandbox}`,
      "",
    ].join("\n"),
  );
  return { root, state, policyFile };
}

/** Starts the server; resolves once its banner is out (printed after the sandbox probe, which follows the handshake). */
async function start(setup: Setup, env: Record<string, string> = {}): Promise<ServerProcess> {
  const server = await ServerProcess.initialized({
    entry: TEST_SERVER_ENTRY,
    stateDir: setup.state,
    args: ["--policy", setup.policyFile],
    env: { TESTKIT_EXEC: "1", ...env },
  });
  for (let i = 0; i < 200 && !server.stderr.includes("Waiting for an MCP client"); i++) await new Promise((resolve) => setTimeout(resolve, 25));
  return server;
}

async function run(server: ServerProcess, program: string, args: string[]): Promise<Message> {
  return expectStructured(await server.callTool("run_program", { program, args }));
}

void describe("exec sandbox, end to end", { skip: SKIP }, () => {
  let setup: Setup;
  let server: ServerProcess;

  before(async () => {
    setup = setUp("auto");
    server = await start(setup);
  });

  after(async () => {
    await server?.close();
    if (setup) fs.rmSync(setup.root, { recursive: true, force: true });
  });

  void test("the banner and security_status say that programs run sandboxed", async () => {
    assert.match(server.stderr, /; exec sandboxed \(bubblewrap \d+\.\d+\.\d+\)\. Waiting for an MCP client/);
    const status = expectStructured(await server.callTool("security_status", {}));
    assert.deepEqual(status.exec, { sandbox: "auto", commands: "sandboxed" });
  });

  void test("the databases' directory is there (and hidden) before the first database: one made during a call is not open to it", async () => {
    const data = path.join(setup.state, "data");
    assert.ok(fs.existsSync(data), "the server made it at the start");
    const created = path.join(data, "made-during-the-call.db");
    const pending = run(server, "sh", ["-c", 'sleep 1; cat "$1"', "sh", created]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    fs.writeFileSync(created, "database\n");
    const result = await pending;
    assert.equal(result.stdout, "", "a database made during the call was read");
    fs.rmSync(created);
  });

  void test("a program cannot read the audit log, its signing key or the policy file", async () => {
    const key = path.join(setup.state, "keys", "audit-ed25519.pem");
    const log = path.join(setup.state, "audit", "audit.log");
    assert.ok(fs.existsSync(key) && fs.existsSync(log), "the server made them");
    for (const file of [key, log, setup.policyFile]) {
      const result = await run(server, "cat", [file]);
      assert.notEqual(result.exitCode, 0, `${file} was read`);
      assert.equal(result.stdout, "");
    }
    const listed = await run(server, "ls", ["-A", path.join(setup.state, "audit"), path.join(setup.state, "keys")]);
    assert.doesNotMatch(listed.stdout, /audit\.log|\.pem/);
  });

  void test("a program cannot open a network connection, not even to this machine", async () => {
    let accepted = 0;
    const listener = net.createServer((socket) => {
      accepted += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    try {
      const port = (listener.address() as net.AddressInfo).port;
      const result = await run(server, "bash", ["-c", `echo hi > /dev/tcp/127.0.0.1/${port} && echo connected`]);
      assert.notEqual(result.exitCode, 0);
      assert.doesNotMatch(result.stdout, /connected/);
      assert.equal(accepted, 0);
    } finally {
      listener.close();
    }
  });

  void test("writes outside the writable directory fail; inside it they work; the state directory stays put", async () => {
    // Beside the writable directory, in /tmp: the program writes into its private /tmp, never the host's.
    const beside = path.join(path.dirname(setup.root), `${path.basename(setup.root)}-beside`);
    await run(server, "touch", [beside]);
    assert.equal(fs.existsSync(beside), false);
    // The host outside /tmp is read-only (removed should the sandbox ever fail to hold).
    const host = `/etc/msl-e2e-sandbox-${process.pid}`;
    try {
      assert.notEqual((await run(server, "touch", [host])).exitCode, 0);
      assert.equal(fs.existsSync(host), false);
    } finally {
      fs.rmSync(host, { force: true });
    }
    assert.notEqual((await run(server, "sh", ["-c", `mv "${setup.state}" "${setup.root}/elsewhere"`])).exitCode, 0);
    assert.ok(fs.existsSync(path.join(setup.state, "keys")));
    assert.equal((await run(server, "touch", [path.join(setup.root, "work", "made")])).exitCode, 0);
    assert.ok(fs.existsSync(path.join(setup.root, "work", "made")));
  });

  void test("a setsid'd descendant dies at the deadline", { timeout: 60_000 }, async () => {
    const token = `${Math.floor(Math.random() * 1e6) + 1000}.5`;
    const result = await run(server, "sh", ["-c", `setsid sleep ${token} </dev/null >/dev/null 2>&1 & exec sleep ${token}`]);
    assert.deepEqual([result.timedOut, result.signal], [true, "SIGKILL"]);
    const alive = (): string[] =>
      fs.readdirSync("/proc").filter((entry) => {
        try {
          return /^\d+$/.test(entry) && fs.readFileSync(`/proc/${entry}/cmdline`, "latin1").includes(token);
        } catch {
          return false;
        }
      });
    for (let i = 0; i < 100 && alive().length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(alive(), []);
  });
});

void describe("exec sandbox without a usable bwrap", () => {
  const roots: string[] = [];
  after(() => {
    for (const root of roots) fs.rmSync(root, { recursive: true, force: true });
  });

  void test("required: every exec call is refused with a typed error, and the operator is told why at start", async () => {
    const setup = setUp("required");
    roots.push(setup.root);
    const server = await start(setup, { TESTKIT_BWRAP: path.join(setup.root, "no-such-bwrap") });
    try {
      assert.match(server.stderr, /exec: every command will be refused: commands\.sandbox is required and no sandbox can be made: bubblewrap is not installed \(.*no-such-bwrap does not exist\)/);
      assert.match(server.stderr, /; exec REFUSED \(no sandbox\)\. Waiting/);
      const marker = path.join(setup.root, "work", "ran");
      const reply = await server.callTool("run_program", { program: "touch", args: [marker] });
      expectToolError(reply, /COMMAND_SANDBOX_UNAVAILABLE|requires a sandbox/, /commands\.sandbox: required/);
      assert.equal(fs.existsSync(marker), false, "nothing ran");
      const status = expectStructured(await server.callTool("security_status", {}));
      assert.deepEqual(status.exec, { sandbox: "required", commands: "refused" });
    } finally {
      await server.close();
    }
  });

  void test("auto: programs run as before, with one warning at start", async () => {
    const setup = setUp("auto");
    roots.push(setup.root);
    const server = await start(setup, { TESTKIT_BWRAP: path.join(setup.root, "no-such-bwrap") });
    try {
      const warnings = server.stderr.split("\n").filter((line) => line.includes("commands run without a sandbox"));
      assert.equal(warnings.length, 1, server.stderr);
      assert.match(server.stderr, /; exec NOT sandboxed\. Waiting/);
      const marker = path.join(setup.root, "work", "ran");
      const reply = await server.callTool("run_program", { program: "touch", args: [marker] });
      assert.equal(expectStructured(reply).exitCode, 0, resultText(reply));
      assert.ok(fs.existsSync(marker));
      assert.deepEqual(expectStructured(await server.callTool("security_status", {})).exec, { sandbox: "auto", commands: "unsandboxed" });
    } finally {
      await server.close();
    }
  });
});
