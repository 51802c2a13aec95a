import { test } from "node:test";
import assert from "node:assert/strict";
import {
  DEFAULT_DENIED_PATHS,
  DEFAULT_WRITE_DENIED_PATHS,
  defaultPolicy,
  defaultPolicySource,
  PRIVILEGE_COMMANDS,
  SEED_BLOCKED_COMMANDS,
  SHELLS_AND_INTERPRETERS,
  COMMAND_RUNNERS,
} from "../../src/security/policy/defaults.js";
import { loadPolicyText, PolicyError, policySha256, policyWarnings } from "../../src/security/policy/load.js";
import { canonicalJson } from "../../src/util/canonical-json.js";

const STATE = "/var/lib/msl-test";

void test("the built-in default allows no network egress at all", () => {
  const { network } = defaultPolicy(STATE);
  assert.deepEqual(network.allowed_ranges, []);
  assert.deepEqual(network.allowed_endpoints, []);
  assert.equal(network.allow_dns, false);
  assert.deepEqual(network.dns_allowlist, []);
  assert.equal(network.timeout, 10);
  assert.equal(network.max_response_bytes, 5 * 1024 * 1024);
});

void test("the built-in default allows files only in the state directory's workspace, with the seed's deny list", () => {
  const { filesystem } = defaultPolicy(STATE);
  assert.deepEqual(filesystem.allowed_paths, [`${STATE}/workspace/**`]);
  assert.deepEqual(filesystem.denied_paths, [
    "**/.ssh/**",
    "**/.aws/**",
    "**/.gnupg/**",
    "**/*.pem",
    "**/*.key",
    "**/.env",
    "**/.env.*",
    "**/secrets/**",
    "**/.git/config",
  ]);
  assert.deepEqual(filesystem.denied_paths, [...DEFAULT_DENIED_PATHS]);
  assert.deepEqual(filesystem.write_denied_paths, [...DEFAULT_WRITE_DENIED_PATHS]);
  assert.ok(filesystem.write_denied_paths.includes("**/.git/**") && filesystem.write_denied_paths.includes("**/.vscode/**"));
  assert.equal(filesystem.max_read_bytes, 10 * 1024 * 1024);
  assert.equal(filesystem.max_write_bytes, 10 * 1024 * 1024);
  assert.deepEqual(defaultPolicy("/var/lib/x/").filesystem.allowed_paths, ["/var/lib/x/workspace/**"]);
});

void test("the built-in default allows no command, and blocks the seed's commands, shells, interpreters, runners and privilege tools", () => {
  const { commands } = defaultPolicy(STATE);
  for (const name of [...SEED_BLOCKED_COMMANDS, ...SHELLS_AND_INTERPRETERS, ...PRIVILEGE_COMMANDS, ...COMMAND_RUNNERS]) {
    assert.ok(commands.blocked.includes(name), name);
  }
  for (const name of ["curl", "bash", "sh", "python3", "node", "pwsh", "osascript", "sudo", "su", "doas"]) {
    assert.ok(commands.blocked.includes(name), name);
  }
  for (const name of ["env", "xargs", "find", "awk", "setsid", "ld-linux-x86-64.so.2", "git"]) assert.ok(commands.blocked.includes(name), name);
  // Wrappers that run the command line they are given (`flock lock bash -c ...` ran bash).
  for (const name of ["flock", "taskset", "setpriv", "nsenter", "runuser", "strace", "time", "ed"]) assert.ok(commands.blocked.includes(name), name);
  assert.deepEqual(commands.allowed, [], "no built-in tool runs a command: nothing may run");
  assert.equal(commands.timeout, 30);
  assert.equal(commands.max_output_bytes, 1024 * 1024);
});

void test("the built-in default has rate limits, timeouts, limits and the audit log on", () => {
  const policy = defaultPolicy(STATE);
  assert.equal(policy.version, "1.0");
  assert.deepEqual(policy.tools.rate_limits, {
    default: 60,
    web_search: 20,
    init_bugtracker: 5,
    add_bug: 60,
    get_bug: 120,
    update_bug: 60,
    close_bug: 60,
    list_bugs: 60,
    search_bugs_global: 30,
  });
  assert.equal(policy.tools.timeout, 30);
  assert.deepEqual(policy.tools.timeouts, {});
  assert.equal(policy.tools.allow, undefined);
  assert.deepEqual(policy.tools.deny, []);
  assert.deepEqual(policy.limits, { max_argument_bytes: 1024 * 1024, max_depth: 32, max_string_length: 100_000, max_array_length: 10_000 });
  assert.deepEqual(policy.audit, {
    enabled: true,
    log_file: `${STATE}/audit/audit.log`,
    log_level: "info",
    fsync: "always",
    fsync_interval_ms: 100,
    checkpoint_every: 1000,
    rotate_bytes: 64 * 1024 * 1024,
    rotate_daily: false,
  });
  assert.deepEqual(policy.server, {});
  assert.equal(defaultPolicySource(), "built-in default policy");
});

void test("each call returns a fresh object: callers cannot change the next default", () => {
  const first = defaultPolicy(STATE);
  first.filesystem.denied_paths.length = 0;
  first.commands.blocked.push("x");
  first.tools.rate_limits.default = 1;
  const second = defaultPolicy(STATE);
  assert.deepEqual(second.filesystem.denied_paths, [...DEFAULT_DENIED_PATHS]);
  assert.ok(!second.commands.blocked.includes("x"));
  assert.equal(second.tools.rate_limits.default, 60);
});

void test("the built-in default is what the same policy written as YAML loads to", () => {
  const policy = defaultPolicy(STATE);
  const text = [
    'version: "1.0"',
    "filesystem:",
    '  allowed_paths: ["${STATE_DIR}/workspace/**"]',
    "commands:",
    "  allowed: []",
    "",
  ].join("\n");
  const loaded = loadPolicyText(text, "same.yaml", { vars: {}, home: "/home/x", stateDir: STATE });
  assert.equal(canonicalJson(loaded.policy), canonicalJson(policy));
  assert.equal(loaded.sha256, policySha256(policy));
  // Nothing worth a warning; what it turns off (no network, no commands) is intended, and said as notes.
  assert.deepEqual(policyWarnings(policy), []);
  assert.deepEqual(loaded.notes, [
    "network.allowed_ranges and network.allowed_endpoints are empty: no network access",
    "commands.allowed is empty: no command may run",
  ]);
});

void test("a relative or glob-like state directory is refused", () => {
  assert.throws(() => defaultPolicy("state"), (error: unknown) => error instanceof PolicyError && error.code === "POLICY_INVALID");
  assert.throws(
    () => defaultPolicy("/tmp/a[1]"),
    (error: unknown) => error instanceof PolicyError && error.message.includes("glob character"),
  );
});
