/** Command-line parsing: a pure function of argv and the environment. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseArgs, projectPathFromEnv, UsageError } from "../../src/cli-args.js";

const env = { HOME: "/home/tester" };
const usage = (pattern: RegExp) => (error: unknown) => error instanceof UsageError && pattern.test(error.message);

void describe("flag values", () => {
  void test("a path flag given with an empty value is a usage error, not the working directory", () => {
    for (const flag of ["--state-dir", "--policy"]) {
      assert.throws(() => parseArgs([`${flag}=`], env), usage(new RegExp(`^${flag} needs a value$`)), `${flag}=`);
      assert.throws(() => parseArgs([flag, ""], env), usage(new RegExp(`^${flag} needs a value$`)), `${flag} ""`);
    }
    assert.throws(() => parseArgs(["check-policy", "p.yaml", "--state-dir="], env), usage(/--state-dir needs a value/));
    // check-policy takes no --policy: that is said first, whatever the value.
    assert.throws(() => parseArgs(["check-policy", "p.yaml", "--policy="], env), usage(/--policy does not apply to check-policy/));
    assert.throws(() => parseArgs(["init", "--state-dir="], env), usage(/--state-dir needs a value/));
  });

  void test("values given inline or as the next argument mean the same", () => {
    const inline = parseArgs(["--state-dir=/tmp/s", "--policy=/tmp/p.yaml", "--page-size=7"], env);
    const separate = parseArgs(["--state-dir", "/tmp/s", "--policy", "/tmp/p.yaml", "--page-size", "7"], env);
    assert.deepEqual(inline, separate);
    assert.equal(inline.command === "serve" && inline.stateDir, "/tmp/s");
    // The seed server's -p: a client configuration written for it starts this one on the same policy.
    assert.deepEqual(parseArgs(["--state-dir", "/tmp/s", "-p", "/tmp/p.yaml", "--page-size", "7"], env), separate);
    assert.throws(() => parseArgs(["init", "-p", "mine.yaml"], env), usage(/--policy does not apply to init/));
  });
});

void describe("flags and commands", () => {
  void test("an option given twice is refused, not settled by whichever came last", () => {
    assert.throws(() => parseArgs(["--policy", "/a.yaml", "--policy", "/b.yaml"], env), usage(/^--policy is given twice; give it once$/));
    // The seed's -p is --policy under another spelling: both spellings are named.
    assert.throws(() => parseArgs(["-p", "/a.yaml", "--policy=/b.yaml"], env), usage(/^--policy is given twice \(as -p and --policy\); give it once$/));
    assert.throws(() => parseArgs(["audit", "tail", "--state-dir", "/s", "--state-dir=/t"], env), usage(/^--state-dir is given twice/));
    assert.throws(() => parseArgs(["init", "--force", "--force"], env), usage(/^--force is given twice/));
    assert.throws(() => parseArgs(["--page-size", "5", "--log-level", "debug", "--page-size", "5"], env), usage(/^--page-size is given twice/));
    // Options of the audit subcommands are theirs to read; each of the server's once is fine.
    assert.equal(parseArgs(["--policy", "/a.yaml", "--state-dir", "/s"], env).command, "serve");
  });

  void test("a flag meant for another command is refused, naming the command's own options", () => {
    assert.throws(() => parseArgs(["init", "--policy", "mine.yaml"], env), usage(/^--policy does not apply to init \(its options: --state-dir, --force\)$/));
    assert.throws(() => parseArgs(["check-policy", "p.yaml", "--force"], env), usage(/--force does not apply to check-policy/));
    // Said before the value is judged: the value of a flag that does not apply is beside the point.
    assert.throws(() => parseArgs(["init", "--max-line-bytes", "9999999999"], env), usage(/^--max-line-bytes does not apply to init/));
    assert.throws(() => parseArgs(["check-policy", "--policy", "p.yaml"], env), usage(/--policy does not apply to check-policy/));
    assert.throws(() => parseArgs(["audit", "verify", "--max-line-bytes", "5"], env), usage(/--max-line-bytes does not apply to audit/));
    assert.throws(() => parseArgs(["--force"], env), usage(/--force does not apply to serving \(its options: --policy, --state-dir/));
  });

  void test("each command takes its own flags", () => {
    assert.equal(parseArgs(["init", "--state-dir", "/tmp/s", "--force"], env).command, "init");
    assert.equal(parseArgs(["check-policy", "p.yaml", "--state-dir", "/tmp/s"], env).command, "check-policy");
    const audit = parseArgs(["audit", "tail", "-n", "5", "--policy", "/tmp/p.yaml", "--state-dir", "/tmp/s"], env);
    assert.deepEqual(audit, { command: "audit", sub: "tail", argv: ["-n", "5"], stateDir: "/tmp/s", policyFile: "/tmp/p.yaml" });
    // The audit commands' own flags pass through to them.
    const verify = parseArgs(["audit", "verify", "--json", "--pubkey", "k.pem", "--help"], env);
    assert.deepEqual(verify.command === "audit" && verify.argv, ["--json", "--pubkey", "k.pem", "--help"]);
    const serve = parseArgs(["--policy", "/tmp/p.yaml", "--max-in-flight", "3", "--log-level", "debug"], env);
    assert.equal(serve.command === "serve" && serve.maxInFlight, 3);
    const memory = parseArgs(["--max-result-memory=1048576"], env);
    assert.equal(memory.command === "serve" && memory.maxResultMemory, 1048576);
    assert.equal((parseArgs([], env) as { maxResultMemory: number }).maxResultMemory, 64 * 1024 * 1024);
    assert.throws(() => parseArgs(["--max-result-memory", "0"], env), /--max-result-memory needs a positive whole number/);
    assert.throws(() => parseArgs(["--max-result-memory", "99999999999999999999"], env), /--max-result-memory 99999999999999999999 is too large/);
    assert.throws(() => parseArgs(["check-policy", "p.yaml", "--max-result-memory", "5"], env), /does not apply to check-policy/);
  });

  void test("check-policy refuses an unknown option rather than reading it as the FILE", () => {
    // A misspelt --state-dir would otherwise be "no such file" (exit 1) or "needs exactly one FILE".
    assert.throws(() => parseArgs(["check-policy", "--stat-dir=/tmp/s"], env), usage(/^unknown option --stat-dir=\/tmp\/s for check-policy \(its options: --state-dir;/));
    assert.throws(() => parseArgs(["check-policy", "p.yaml", "--json"], env), usage(/^unknown option --json for check-policy/));
    assert.throws(() => parseArgs(["check-policy", "-x", "p.yaml"], env), usage(/^unknown option -x for check-policy/));
    // A file whose name starts with a dash is named through a directory.
    const dashed = parseArgs(["check-policy", "./-p.yaml"], env);
    assert.equal(dashed.command === "check-policy" && dashed.file.endsWith("/-p.yaml"), true);
  });

  void test("--help and --version win wherever they stand", () => {
    assert.deepEqual(parseArgs(["init", "--help"], env), { command: "help" });
    assert.deepEqual(parseArgs(["check-policy", "--version"], env), { command: "version" });
    // `audit --help` (no subcommand yet) is the help, as `init --help` is, not a usage error.
    assert.deepEqual(parseArgs(["audit", "--help"], env), { command: "help" });
    assert.deepEqual(parseArgs(["audit", "-h"], env), { command: "help" });
    // A subcommand's --help stays its own.
    const verify = parseArgs(["audit", "verify", "--help"], env);
    assert.deepEqual(verify.command === "audit" && verify.argv, ["--help"]);
  });
});

void describe("~ in the state directory and the policy", () => {
  void test("a leading ~/ is the home directory, not a directory named ~ under the working directory", () => {
    // A client's configuration passes "~/..." as written (no shell expands it), in args and env alike.
    const flags = parseArgs(["--state-dir", "~/state", "--policy=~/p.yaml"], env, "/home/tester");
    assert.equal(flags.command === "serve" && flags.stateDir, "/home/tester/state");
    assert.equal(flags.command === "serve" && flags.policyFile, "/home/tester/p.yaml");
    const fromEnv = parseArgs([], { ...env, MCP_SECURE_LOCAL_STATE_DIR: "~/s", MCP_SECURE_LOCAL_POLICY: "~/q.yaml" }, "/home/tester");
    assert.equal(fromEnv.command === "serve" && fromEnv.stateDir, "/home/tester/s");
    assert.equal(fromEnv.command === "serve" && fromEnv.policyFile, "/home/tester/q.yaml");
    const init = parseArgs(["init", "--state-dir=~"], env, "/home/tester");
    assert.equal(init.command === "init" && init.stateDir, "/home/tester");
    // ~user is not expanded: said, rather than made a directory named "~bob".
    assert.throws(() => parseArgs(["init", "--state-dir", "~bob/state"], env, "/home/tester"), usage(/--state-dir "~bob\/state": only ~ and ~\/ are expanded/));
    assert.throws(() => parseArgs([], { ...env, MCP_SECURE_LOCAL_STATE_DIR: "~bob" }, "/home/tester"), usage(/MCP_SECURE_LOCAL_STATE_DIR "~bob"/));
  });
});

void describe("MCP_PROJECT_PATH", () => {
  void test("is made absolute: relative to the working directory, ~/ in the home directory", () => {
    assert.equal(projectPathFromEnv({ MCP_PROJECT_PATH: "/srv/app" }, "/home/tester"), "/srv/app");
    assert.equal(projectPathFromEnv({ MCP_PROJECT_PATH: "." }, "/home/tester"), process.cwd());
    assert.equal(projectPathFromEnv({ MCP_PROJECT_PATH: "sub/app" }, "/home/tester"), `${process.cwd()}/sub/app`);
    assert.equal(projectPathFromEnv({ MCP_PROJECT_PATH: "~/projects/app" }, "/home/tester"), "/home/tester/projects/app");
    assert.equal(projectPathFromEnv({ MCP_PROJECT_PATH: "~" }, "/home/tester"), "/home/tester");
    assert.equal(projectPathFromEnv({ MCP_PROJECT_PATH: "" }, "/home/tester"), undefined);
    assert.equal(projectPathFromEnv({}, "/home/tester"), undefined);
  });
});

void describe("the state directory", () => {
  void test("inside /proc is a usage error (creating folders there never returns)", () => {
    for (const dir of ["/proc/self", "/proc", "/proc/1/cwd/x"]) {
      assert.throws(() => parseArgs(["--state-dir", dir], env), usage(/is inside \/proc; choose a directory on a disk/), dir);
      assert.throws(() => parseArgs(["init"], { ...env, MCP_SECURE_LOCAL_STATE_DIR: dir }), usage(/inside \/proc/), dir);
    }
    assert.equal(parseArgs(["--state-dir", "/processes/x"], env).command, "serve");
    assert.equal(parseArgs(["--state-dir", "/dev/shm/msl"], env).command, "serve");
  });
});
