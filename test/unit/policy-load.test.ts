import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  loadPolicyFile,
  loadPolicyText,
  MAX_POLICY_BYTES,
  PolicyError,
  policySha256,
  type PolicyEnv,
} from "../../src/security/policy/load.js";
import { DEFAULT_BLOCKED_COMMANDS, DEFAULT_DENIED_PATHS, DEFAULT_RATE_LIMITS, DEFAULT_WRITE_DENIED_PATHS } from "../../src/security/policy/defaults.js";
import { canonicalJson, sha256Hex } from "../../src/util/canonical-json.js";
import { createRateLimiter } from "../../src/security/ratelimit.js";

import { ROOT } from "../helpers/project.js";
const FIXTURES = path.join(ROOT, "test", "fixtures");
const SEED = path.join(FIXTURES, "seed-policy.yaml");

const HOME = "/home/tester";
const STATE = "/home/tester/.local/state/mcp-secure-local";
const env: PolicyEnv = { vars: { HOME, PROJECTS: "/srv/projects" }, home: HOME, stateDir: STATE };

function load(text: string, e: PolicyEnv = env) {
  return loadPolicyText(text, "policy.yaml", e);
}

function withTempDir(run: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "msl-"));
  try {
    run(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void test("the seed's shipped policy loads unchanged and gives the expected effective values", () => {
  const loaded = loadPolicyFile(SEED, env);
  const { policy } = loaded;
  assert.equal(loaded.source, SEED);
  assert.equal(policy.version, "1.0");
  assert.deepEqual(policy.network.allowed_ranges, [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fe80::/10",
  ]);
  assert.deepEqual(policy.network.allowed_endpoints, [
    { host: "api.duckduckgo.com", ports: [443], description: "DuckDuckGo search API" },
    { host: "html.duckduckgo.com", ports: [443], description: "DuckDuckGo HTML search" },
    { host: "lite.duckduckgo.com", ports: [443], description: "DuckDuckGo Lite" },
  ]);
  assert.deepEqual(policy.network.blocked_ports, [22]);
  assert.equal(policy.network.allow_dns, true);
  assert.deepEqual(policy.network.dns_allowlist, ["api.duckduckgo.com", "html.duckduckgo.com", "lite.duckduckgo.com"]);
  assert.equal(policy.network.timeout, 10);
  assert.equal(policy.network.max_response_bytes, 5 * 1024 * 1024);
  assert.deepEqual(policy.filesystem.allowed_paths, [
    "/home/tester/projects/**",
    "/home/tester/workspace/**",
    "/home/tester/Dev-Space/**",
    "/tmp/mcp-workspace/**",
  ]);
  assert.deepEqual(policy.filesystem.denied_paths, [...DEFAULT_DENIED_PATHS]);
  // The seed had no write-only list: its policy gets the built-in one.
  assert.deepEqual(policy.filesystem.write_denied_paths, [...DEFAULT_WRITE_DENIED_PATHS]);
  assert.deepEqual(policy.commands.blocked, ["curl", "wget", "ssh", "scp", "rsync", "nc", "netcat", "telnet", "ftp", "sftp"]);
  assert.equal(policy.commands.allowed, undefined);
  assert.deepEqual(policy.tools.rate_limits, {
    default: 60,
    filesystem_write: 30,
    command_execute: 10,
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
  assert.equal(policy.tools.allow, undefined);
  assert.deepEqual(policy.tools.deny, []);
  assert.equal(policy.audit.log_file, "/home/tester/.mcp-secure/audit.log");
  assert.equal(policy.audit.log_level, "info");
  assert.deepEqual(policy.audit.include, [
    "timestamp",
    "request_id",
    "tool_name",
    "arguments",
    "result_status",
    "execution_time",
    "security_events",
  ]);
  assert.equal(policy.audit.enabled, true);
  assert.deepEqual(policy.server, {});
  assert.match(loaded.sha256, /^[0-9a-f]{64}$/);
  assert.equal(loaded.sha256, sha256Hex(canonicalJson(policy)));
});

void test("the seed policy's weak spots are reported as warnings", () => {
  const { warnings } = loadPolicyFile(SEED, env);
  assert.ok(warnings.some((w) => w.includes("10.0.0.0/8") && w.includes("private network")), warnings.join("\n"));
  assert.ok(warnings.some((w) => w.includes("127.0.0.0/8") && w.includes("loopback")));
  assert.ok(warnings.some((w) => w.startsWith("commands.blocked leaves shells, interpreters and command runners open") && w.includes("bash")));
  assert.ok(warnings.some((w) => w.startsWith("audit.include")));
});

void test("commands.allowed: an entry the block list also names, and programs that run others through their arguments, are named", () => {
  const builtIn = load('version: "1.0"\ncommands:\n  allowed: [git, rg, sqlite3, ls]\n').warnings;
  assert.ok(
    builtIn.includes("commands.allowed: git can never run: commands.blocked (the built-in list, used when the key is left out) names it too, and blocked wins; write commands.blocked without it"),
    builtIn.join("\n"),
  );
  const runners = builtIn.find((w) => w.startsWith("commands.allowed: rg, sqlite3 run other programs through their own arguments"));
  assert.ok(runners !== undefined && runners.includes("blocked ones included"), builtIn.join("\n"));
  const written = load('version: "1.0"\ncommands:\n  blocked: [curl, sh]\n  allowed: [/usr/bin/sh, curl, ls]\n').warnings;
  assert.ok(written.includes("commands.allowed: /usr/bin/sh, curl can never run: commands.blocked names them too, and blocked wins; write commands.blocked without them"), written.join("\n"));
  assert.ok(!written.some((w) => w.includes("run other programs")), "sh and curl never run, so they are not also named as runners");
  assert.deepEqual(load('version: "1.0"\ncommands:\n  blocked: []\n  allowed: [ls, wc]\n').warnings.filter((w) => w.startsWith("commands.")), []);
});

void test("a minimal policy takes every default, and its allow-lists stay empty", () => {
  const { policy, warnings, notes } = load('version: "1.0"\n');
  assert.deepEqual(policy.network, {
    allowed_ranges: [],
    allowed_endpoints: [],
    blocked_ports: [],
    allow_dns: false,
    dns_allowlist: [],
    max_response_bytes: 5 * 1024 * 1024,
    timeout: 10,
  });
  assert.deepEqual(policy.filesystem, {
    allowed_paths: [],
    denied_paths: [...DEFAULT_DENIED_PATHS],
    write_denied_paths: [...DEFAULT_WRITE_DENIED_PATHS],
    max_read_bytes: 10 * 1024 * 1024,
    max_write_bytes: 10 * 1024 * 1024,
  });
  assert.deepEqual(policy.commands, { blocked: [...DEFAULT_BLOCKED_COMMANDS], timeout: 30, max_output_bytes: 1024 * 1024, sandbox: "auto" });
  assert.deepEqual(policy.tools, { deny: [], rate_limits: { ...DEFAULT_RATE_LIMITS }, timeout: 30, timeouts: {} });
  assert.deepEqual(policy.limits, {
    max_argument_bytes: 1024 * 1024,
    max_depth: 32,
    max_string_length: 100_000,
    max_array_length: 10_000,
  });
  assert.deepEqual(policy.audit, {
    enabled: true,
    log_file: path.join(STATE, "audit", "audit.log"),
    log_level: "info",
    fsync: "always",
    fsync_interval_ms: 100,
    checkpoint_every: 1000,
    rotate_bytes: 64 * 1024 * 1024,
    rotate_daily: false,
  });
  assert.deepEqual(policy.server, {});
  assert.deepEqual(notes, ["network.allowed_ranges and network.allowed_endpoints are empty: no network access", "filesystem.allowed_paths is empty: no file access"]);
  assert.ok(!warnings.some((w) => w.includes("no network access") || w.includes("no file access")), "what is off is a note, not a warning");
});

void test("explicitly empty lists stay empty: nothing is injected", () => {
  const { policy, warnings, notes } = load(
    [
      'version: "1.0"',
      "filesystem:",
      "  allowed_paths: []",
      "  denied_paths: []",
      "  write_denied_paths: []",
      "commands:",
      "  blocked: []",
      "  allowed: []",
      "tools:",
      "  allow: []",
      "  rate_limits: {}",
      "",
    ].join("\n"),
  );
  assert.deepEqual(policy.filesystem.allowed_paths, []);
  assert.deepEqual(policy.filesystem.denied_paths, []);
  assert.deepEqual(policy.filesystem.write_denied_paths, []);
  assert.deepEqual(policy.commands.blocked, []);
  assert.deepEqual(policy.commands.allowed, []);
  assert.deepEqual(policy.tools.allow, []);
  assert.deepEqual(policy.tools.rate_limits, { default: 60 });
  assert.ok(warnings.includes("tools.allow is empty: no tool is exposed"));
  assert.ok(notes.includes("commands.allowed is empty: no command may run"));
});

void test("our own keys are read", () => {
  const { policy } = load(
    [
      'version: "1.0"',
      "network:",
      "  max_response_bytes: 1000",
      "  timeout: 2.5",
      "filesystem:",
      "  max_read_bytes: 11",
      "  max_write_bytes: 12",
      "commands:",
      "  allowed: [git, /usr/bin/rg]",
      "  timeout: 5",
      "  max_output_bytes: 13",
      "  sandbox: required",
      "tools:",
      '  allow: ["*_bug", web_search]',
      "  deny: [search_bugs_global]",
      "  timeouts: {web_search: 7}",
      "limits:",
      "  max_argument_bytes: 14",
      "  max_depth: 4",
      "  max_string_length: 15",
      "  max_array_length: 16",
      "audit:",
      "  enabled: false",
      "  fsync: batch",
      "  fsync_interval_ms: 250",
      "  checkpoint_every: 10",
      "  rotate_bytes: 0",
      "  rotate_daily: true",
      '  signing_key: "~/keys/audit.pem"',
      "  log_level: WARNING",
      "server:",
      '  project_path: "${HOME}/projects/app"',
      "",
    ].join("\n"),
  );
  assert.equal(policy.network.max_response_bytes, 1000);
  assert.equal(policy.network.timeout, 2.5);
  assert.equal(policy.filesystem.max_read_bytes, 11);
  assert.equal(policy.filesystem.max_write_bytes, 12);
  assert.deepEqual(policy.commands.allowed, ["git", "/usr/bin/rg"]);
  assert.equal(policy.commands.timeout, 5);
  assert.equal(policy.commands.max_output_bytes, 13);
  assert.equal(policy.commands.sandbox, "required");
  assert.deepEqual(policy.tools.allow, ["*_bug", "web_search"]);
  assert.deepEqual(policy.tools.deny, ["search_bugs_global"]);
  assert.deepEqual(policy.tools.timeouts, { web_search: 7 });
  assert.deepEqual(policy.limits, { max_argument_bytes: 14, max_depth: 4, max_string_length: 15, max_array_length: 16 });
  assert.equal(policy.audit.enabled, false);
  assert.equal(policy.audit.fsync, "batch");
  assert.equal(policy.audit.fsync_interval_ms, 250);
  assert.equal(policy.audit.checkpoint_every, 10);
  assert.equal(policy.audit.rotate_bytes, 0);
  assert.equal(policy.audit.rotate_daily, true);
  assert.equal(policy.audit.signing_key, "/home/tester/keys/audit.pem");
  assert.equal(policy.audit.log_level, "warning");
  assert.equal(policy.server.project_path, "/home/tester/projects/app");
});

void test("version 1.0 written as a number is accepted and normalised to the string", () => {
  assert.equal(load("version: 1.0\n").policy.version, "1.0");
  assert.equal(load("version: 1.0\n").sha256, load('version: "1.0"\n').sha256);
});

void test("~ and ${HOME} expand to the home directory; HOME falls back to env.home", () => {
  const text = [
    'version: "1.0"',
    "filesystem:",
    "  allowed_paths:",
    "    - ~/a/**",
    '    - "~"',
    '    - "${HOME}/b/**"',
    '    - "${PROJECTS}/c/**"',
    "",
  ].join("\n");
  assert.deepEqual(load(text).policy.filesystem.allowed_paths, [
    "/home/tester/a/**",
    "/home/tester",
    "/home/tester/b/**",
    "/srv/projects/c/**",
  ]);
  // HOME in the variables wins for ${HOME}; ~ always means env.home.
  const other = load(text, { vars: { HOME: "/users/other", PROJECTS: "/p" }, home: HOME, stateDir: STATE });
  assert.deepEqual(other.policy.filesystem.allowed_paths, ["/home/tester/a/**", "/home/tester", "/users/other/b/**", "/p/c/**"]);
  const unset = load(text, { vars: { PROJECTS: "/p" }, home: "/root2", stateDir: STATE });
  assert.deepEqual(unset.policy.filesystem.allowed_paths, ["/root2/a/**", "/root2", "/root2/b/**", "/p/c/**"]);
});

void test("${STATE_DIR} is the state directory, whatever the environment says", () => {
  const text = 'version: "1.0"\nfilesystem:\n  allowed_paths:\n    - "${STATE_DIR}/workspace/**"\naudit:\n  log_file: "${STATE_DIR}/a.log"\n';
  const { policy } = load(text, { vars: { STATE_DIR: "/elsewhere" }, home: HOME, stateDir: "/var/lib/msl" });
  assert.deepEqual(policy.filesystem.allowed_paths, ["/var/lib/msl/workspace/**"]);
  assert.equal(policy.audit.log_file, "/var/lib/msl/a.log");
});

void test("variables also expand in denied paths and commands", () => {
  const { policy } = load(
    'version: "1.0"\nfilesystem:\n  denied_paths: ["${HOME}/private/**", "**/.ssh/**"]\ncommands:\n  blocked: ["${HOME}/bin/tool", curl]\n',
  );
  assert.deepEqual(policy.filesystem.denied_paths, ["/home/tester/private/**", "**/.ssh/**"]);
  const writes = load('version: "1.0"\nfilesystem:\n  allowed_paths: ["${HOME}/p/**"]\n  write_denied_paths: ["${HOME}/p/generated/**"]\n');
  assert.deepEqual(writes.policy.filesystem.write_denied_paths, ["/home/tester/p/generated/**"], "a list given replaces the built-in one");
  const none = load('version: "1.0"\nfilesystem:\n  allowed_paths: ["${HOME}/p/**"]\n  write_denied_paths: []\n');
  assert.ok(none.warnings.some((w) => /write_denied_paths is empty: tools may write git hooks/.test(w)), none.warnings.join(" | "));
  assert.deepEqual(policy.commands.blocked, ["/home/tester/bin/tool", "curl"]);
});

void test("the SHA-256 is stable across key order, formatting and comments", () => {
  const a = load(
    [
      'version: "1.0"',
      "network:",
      "  allow_dns: true",
      "  dns_allowlist: [example.com]",
      "tools:",
      "  rate_limits: {default: 10, add_bug: 5}",
      "",
    ].join("\n"),
  );
  const b = load(
    [
      "# the same policy, written differently",
      "tools:",
      "  rate_limits:",
      "    add_bug: 5",
      "    default: 10",
      "network:",
      "  dns_allowlist:",
      "    - example.com",
      "  allow_dns: true",
      "version: 1.0",
      "",
    ].join("\n"),
  );
  assert.equal(a.sha256, b.sha256);
  assert.equal(a.sha256, policySha256(b.policy));
  const c = load('version: "1.0"\nnetwork:\n  allow_dns: true\n  dns_allowlist: [example.org]\ntools:\n  rate_limits: {default: 10, add_bug: 5}\n');
  assert.notEqual(a.sha256, c.sha256);
});

void test("addresses and host names are normalised", () => {
  const { policy } = load(
    [
      'version: "1.0"',
      "network:",
      '  allowed_ranges: ["192.0.2.7", "2001:db8::1", "203.0.113.0/24"]',
      "  allowed_endpoints:",
      "    - {host: API.Example.COM., ports: [443]}",
      '    - {host: "[::1]", ports: [8080]}',
      "  allow_dns: true",
      '  dns_allowlist: ["*.Example.org"]',
      "",
    ].join("\n"),
  );
  assert.deepEqual(policy.network.allowed_ranges, ["192.0.2.7/32", "2001:db8::1/128", "203.0.113.0/24"]);
  assert.deepEqual(policy.network.allowed_endpoints, [
    { host: "api.example.com", ports: [443] },
    { host: "[::1]", ports: [8080] },
  ]);
  assert.deepEqual(policy.network.dns_allowlist, ["*.example.org"]);
});

void test("a section with no keys is the same as a section left out", () => {
  const empty = load('version: "1.0"\nserver:\n  # project_path: /x\ndatabase:\n');
  assert.equal(empty.sha256, load('version: "1.0"\n').sha256);
  assert.ok(!empty.warnings.some((w) => w.startsWith("database")));
});

void test("the seed's database section is accepted and reported as unused", () => {
  const loaded = loadPolicyFile(path.join(FIXTURES, "policies", "seed-with-database.yaml"), env);
  assert.ok(loaded.warnings.includes("database: accepted for compatibility with the seed server, but not used by any tool"));
  assert.equal((loaded.policy as unknown as Record<string, unknown>).database, undefined);
});

void test("a rate limit key that looks like a misspelt default is warned about", () => {
  const { warnings, policy } = load('version: "1.0"\ntools:\n  rate_limits:\n    defualt: 5\n');
  assert.equal(policy.tools.rate_limits.default, 60);
  assert.ok(warnings.some((w) => w.startsWith("tools.rate_limits.defualt") && w.includes('"default"')));
});

void test("disabling the audit log, a wide-open range and DNS without a list are warned about", () => {
  const { warnings } = load(
    'version: "1.0"\nnetwork:\n  allowed_ranges: ["0.0.0.0/0", "169.254.0.0/17"]\n  allow_dns: true\naudit:\n  enabled: false\n',
  );
  assert.ok(warnings.includes("audit.enabled is false: no audit log is written"));
  assert.ok(warnings.some((w) => w.includes("0.0.0.0/0 allows every IPv4 address")));
  assert.ok(warnings.some((w) => w.includes("169.254.0.0/17 overlaps 169.254.0.0/16") && w.includes("metadata")));
  assert.ok(warnings.some((w) => w.startsWith("network.allow_dns is true but network.dns_allowlist is empty")));
});

void test("an endpoint host that URLs read as another spelling of an IP address is warned about, with the address it is", () => {
  const { warnings } = load(
    [
      'version: "1.0"',
      "network:",
      "  allowed_endpoints:",
      '    - {host: "0177.0.0.1", ports: [8080]}',
      '    - {host: "010.1.2.3", ports: [80]}',
      '    - {host: "0x5db8d822", ports: [443]}',
      '    - {host: "127.0.0.1", ports: [11434]}',
      '    - {host: "[::1]", ports: [8080]}',
      '    - {host: "api.example.com", ports: [443]}',
      "",
    ].join("\n"),
  );
  const endpoints = warnings.filter((w) => w.startsWith("network.allowed_endpoints"));
  assert.deepEqual(endpoints, [
    'network.allowed_endpoints[0].host: "0177.0.0.1" is the IP address 127.0.0.1 as URLs read it (a part with a leading 0 is octal, 0x hex, and fewer than four parts fill the last), which is loopback (services on this machine); write 127.0.0.1 if that is meant',
    'network.allowed_endpoints[1].host: "010.1.2.3" is the IP address 8.1.2.3 as URLs read it (a part with a leading 0 is octal, 0x hex, and fewer than four parts fill the last); write 8.1.2.3 if that is meant',
    'network.allowed_endpoints[2].host: "0x5db8d822" is the IP address 93.184.216.34 as URLs read it (a part with a leading 0 is octal, 0x hex, and fewer than four parts fill the last); write 93.184.216.34 if that is meant',
  ]);
});

void test("a missing file is POLICY_UNREADABLE and names the file", () => {
  withTempDir((dir) => {
    const file = path.join(dir, "nope.yaml");
    assert.throws(
      () => loadPolicyFile(file, env),
      (error: unknown) =>
        error instanceof PolicyError &&
        error.code === "POLICY_UNREADABLE" &&
        error.message === `${file}: cannot read the policy file: no such file`,
    );
  });
});

void test("the seed's YAML 1.1 yes/no/on/off on the true/false keys mean what the seed read, with a warning", () => {
  const loaded = load(['version: "1.0"', "network:", "  allow_dns: yes", "audit:", "  enabled: On", "  rotate_daily: off", ""].join("\n"));
  assert.equal(loaded.policy.network.allow_dns, true);
  assert.equal(loaded.policy.audit.enabled, true);
  assert.equal(loaded.policy.audit.rotate_daily, false);
  assert.ok(loaded.warnings.includes('network.allow_dns: "yes" is read as true, as the seed server\'s YAML 1.1 read it; write true'), loaded.warnings.join("\n"));
  assert.ok(loaded.warnings.some((w) => w.startsWith('audit.rotate_daily: "off" is read as false')));
  // The same policy written with true/false has the same hash: the words change nothing else.
  const plain = load(['version: "1.0"', "network:", "  allow_dns: true", "audit:", "  enabled: true", "  rotate_daily: false", ""].join("\n"));
  assert.equal(loaded.sha256, plain.sha256);
  // Anything else is still refused, and so are these words where no true/false belongs.
  assert.throws(() => load('version: "1.0"\nnetwork:\n  allow_dns: maybe\n'), /network\.allow_dns: expected true or false, got "maybe"/);
  assert.throws(() => load('version: "1.0"\naudit:\n  fsync: yes\n'), /audit\.fsync/);
});

void test("nesting deeper than the parser can follow is one short issue, not a stack overflow message", () => {
  for (const text of [
    `version: "1.0"\ndatabase: ${"[".repeat(5000)}${"]".repeat(5000)}\n`,
    `version: "1.0"\ndatabase: {${"a: {".repeat(3000)}${"}".repeat(3001)}\n`,
  ]) {
    assert.throws(
      () => load(text),
      (error: unknown) => {
        assert.ok(error instanceof PolicyError && error.code === "POLICY_INVALID");
        assert.equal(error.issues.length, 1, error.message);
        const issue = error.issues[0]!;
        assert.match(issue.message, /nests too deeply/);
        assert.doesNotMatch(issue.message, /call stack/);
        assert.ok(issue.key.length < 40, `a short key: ${issue.key.slice(0, 100)}`);
        assert.match(issue.key, /^database[.[].*\.\.\.$/);
        assert.equal(issue.line, 2);
        return true;
      },
    );
  }
});

void test("a directory, an oversized file and invalid UTF-8 are refused", () => {
  withTempDir((dir) => {
    assert.throws(
      () => loadPolicyFile(dir, env),
      (error: unknown) => error instanceof PolicyError && error.code === "POLICY_UNREADABLE" && /not a regular file|directory/.test(error.message),
    );
    const big = path.join(dir, "big.yaml");
    fs.writeFileSync(big, `version: "1.0"\n#${"x".repeat(MAX_POLICY_BYTES)}\n`);
    assert.throws(
      () => loadPolicyFile(big, env),
      (error: unknown) => error instanceof PolicyError && error.code === "POLICY_UNREADABLE" && error.message.includes("larger than"),
    );
    const binary = path.join(dir, "binary.yaml");
    fs.writeFileSync(binary, Buffer.from([0x76, 0x3a, 0x20, 0xff, 0xfe, 0x0a]));
    assert.throws(
      () => loadPolicyFile(binary, env),
      (error: unknown) => error instanceof PolicyError && error.code === "POLICY_INVALID" && error.message.includes("UTF-8"),
    );
  });
});

void test("a policy file on disk loads like the same text", () => {
  withTempDir((dir) => {
    const file = path.join(dir, "policy.yaml");
    const text = 'version: "1.0"\nfilesystem:\n  allowed_paths: ["~/x/**"]\n';
    fs.writeFileSync(file, text);
    const fromFile = loadPolicyFile(file, env);
    assert.equal(fromFile.source, file);
    assert.equal(fromFile.sha256, loadPolicyText(text, "other-name", env).sha256);
  });
});

void test("relative home or state directories are refused", () => {
  assert.throws(
    () => load('version: "1.0"\n', { vars: {}, home: HOME, stateDir: "state" }),
    (error: unknown) => error instanceof PolicyError && error.message.includes("state directory must be an absolute path"),
  );
  assert.throws(
    () => load('version: "1.0"\n', { vars: {}, home: "home", stateDir: STATE }),
    (error: unknown) => error instanceof PolicyError && error.message.includes("home directory must be an absolute path"),
  );
});

void test("review finding: IPv4-mapped ranges are IPv4 ranges, and their warnings show", () => {
  const loaded = loadPolicyText(
    'version: "1.0"\nnetwork:\n  allowed_ranges: ["::ffff:127.0.0.0/104", "::ffff:169.254.0.0/112", "::1/128"]\n',
    "mapped.yaml",
    { vars: {}, home: "/home/x", stateDir: "/var/lib/msl" },
  );
  assert.deepEqual(loaded.policy.network.allowed_ranges, ["127.0.0.0/8", "169.254.0.0/16", "::1/128"]);
  assert.ok(loaded.warnings.some((w) => w.includes("127.0.0.0/8")), loaded.warnings.join("\n"));
  assert.ok(loaded.warnings.some((w) => w.includes("169.254.0.0/16")), loaded.warnings.join("\n"));
});

void test("seed compatibility: << merge keys (read by the seed's PyYAML) combine mappings; written keys win", () => {
  const merged = load(
    [
      'version: "1.0"',
      "network:",
      "  allowed_endpoints:",
      "    - &ddg",
      '      host: "api.duckduckgo.com"',
      "      ports: [443]",
      '      description: "DuckDuckGo search API"',
      "    - <<: *ddg",
      '      host: "html.duckduckgo.com"',
      "",
    ].join("\n"),
  );
  assert.deepEqual(merged.policy.network.allowed_endpoints, [
    { host: "api.duckduckgo.com", ports: [443], description: "DuckDuckGo search API" },
    { host: "html.duckduckgo.com", ports: [443], description: "DuckDuckGo search API" },
  ]);
  // A merge source that is not a mapping is refused, in words.
  assert.throws(
    () => load('version: "1.0"\ntools:\n  timeouts:\n    <<: 5\n'),
    (error: unknown) => error instanceof PolicyError && /a << merge key takes a mapping/.test(error.message),
  );
  // ... at the merge key itself, not at the top of the file (with an anchor elsewhere, not there either).
  for (const [text, line] of [
    ['version: "1.0"\ntools:\n  timeouts:\n    <<: 5\n', 4],
    ['version: "1.0"\nnetwork:\n  allowed_endpoints:\n    - &e {host: a.com, ports: [443]}\n    - <<: *e\ntools:\n  timeouts:\n    <<: [*e, 5]\n', 8],
  ] as const) {
    let issue;
    try {
      load(text);
      assert.fail("the policy was accepted");
    } catch (error) {
      if (!(error instanceof PolicyError)) throw error;
      issue = error.issues.find((candidate) => /merge key/.test(candidate.message));
    }
    assert.equal(issue?.line, line, JSON.stringify(issue));
    assert.equal(issue?.key, 'tools.timeouts["<<"]', JSON.stringify(issue));
  }
});

void test("seed compatibility: a list with every entry commented out is read as left out where that means the same", () => {
  const commented = load(
    [
      'version: "1.0"',
      "network:",
      "  allowed_ranges:",
      '    # - "127.0.0.0/8"',
      "  allowed_endpoints:",
      "  blocked_ports:",
      "  dns_allowlist:",
      "filesystem:",
      "  allowed_paths:",
      "tools:",
      "  deny:",
      "  timeouts:",
      "audit:",
      "  include:",
      "",
    ].join("\n"),
  );
  assert.equal(commented.sha256, load('version: "1.0"\n').sha256);
  assert.deepEqual(commented.policy.network.allowed_ranges, []);
  assert.deepEqual(commented.policy.filesystem.allowed_paths, []);
});

void test("an empty value where left out and [] differ is refused, and the message says what each choice means", () => {
  const cases: [string, string, RegExp][] = [
    ["filesystem", "denied_paths", /remove the key for the built-in deny list, or write \[\] for no deny rule at all/],
    ["filesystem", "write_denied_paths", /remove the key for the built-in list, or write \[\] for no write protection at all/],
    ["commands", "blocked", /remove the key for the built-in block list, or write \[\] for no blocked command/],
    ["commands", "allowed", /remove the key for every command that is not blocked, or write \[\] for no command at all/],
    ["tools", "allow", /remove the key for every tool, or write \[\] for no tool at all/],
    ["tools", "rate_limits", /remove the key for the built-in limits, or write \{\} for 60 calls per minute for every tool/],
  ];
  for (const [section, key, message] of cases) {
    assert.throws(
      () => load(`version: "1.0"\n${section}:\n  ${key}:\n    # - x\n`),
      (error: unknown) =>
        error instanceof PolicyError && error.issues.some((issue) => issue.key === `${section}.${key}` && message.test(issue.message)),
      `${section}.${key}`,
    );
  }
});

void test("seed compatibility: a repeated list entry loads (the seed loaded it) and is named in a warning", () => {
  const loaded = load(
    [
      'version: "1.0"',
      "network:",
      '  allowed_ranges: ["10.0.0.0/8", "10.0.0.0/8"]',
      "  allowed_endpoints:",
      "    - host: a.example",
      "      ports: [443, 443]",
      "  blocked_ports: [22, 22, 23]",
      "  allow_dns: true",
      "  dns_allowlist: [a.example, b.example, A.example]",
      "filesystem:",
      '  allowed_paths: ["/srv/data/**", "/srv/data/**"]',
      '  denied_paths: ["**/.env", "**/secrets/**", "**/.env"]',
      '  write_denied_paths: ["**/.git/**", "**/.git/**"]',
      "commands:",
      "  allowed: [git, git]",
      "  blocked: [rm, rm]",
      "tools:",
      "  allow: [read_file, read_file]",
      "  deny: [web_search, web_search]",
      "audit:",
      "  include: [timestamp, timestamp]",
      "",
    ].join("\n"),
  );
  assert.deepEqual(loaded.policy.network.blocked_ports, [22, 22, 23]);
  for (const expected of [
    'network.allowed_ranges: "10.0.0.0/8" is listed more than once',
    "network.allowed_endpoints[0].ports: 443 is listed more than once",
    "network.blocked_ports: 22 is listed more than once",
    'network.dns_allowlist: "a.example" is listed more than once',
    'audit.include: "timestamp" is listed more than once',
    'filesystem.allowed_paths: "/srv/data/**" is listed more than once',
    'filesystem.denied_paths: "**/.env" is listed more than once',
    'filesystem.write_denied_paths: "**/.git/**" is listed more than once',
    'commands.allowed: "git" is listed more than once',
    'commands.blocked: "rm" is listed more than once',
    'tools.allow: "read_file" is listed more than once',
    'tools.deny: "web_search" is listed more than once',
  ]) {
    assert.ok(loaded.warnings.some((warning) => warning.startsWith(expected)), `${expected}\n${loaded.warnings.join("\n")}`);
  }
  assert.ok(!loaded.warnings.some((warning) => warning.includes("23 is listed")));
});

void test("seed compatibility: audit.log_level takes Python's level names in any case, and an endpoint description may be empty", () => {
  const levels: [string, string][] = [["INFO", "info"], ["Info", "info"], ["Warning", "warning"], ["WARN", "warning"], ["FATAL", "critical"], ["NOTSET", "debug"], ["Debug", "debug"]];
  for (const [written, read] of levels) {
    assert.equal(load(`version: "1.0"\naudit:\n  log_level: ${written}\n`).policy.audit.log_level, read, written);
  }
  assert.throws(() => load('version: "1.0"\naudit:\n  log_level: TRACE\n'), /audit\.log_level: expected a log level .*got "TRACE"/);
  const described = load(
    'version: "1.0"\nnetwork:\n  allowed_endpoints:\n    - host: a.example\n      ports: [443]\n      description: ""\n    - host: b.example\n      ports: [443]\n      description:\n',
  );
  assert.deepEqual(described.policy.network.allowed_endpoints, [
    { host: "a.example", ports: [443], description: "" },
    { host: "b.example", ports: [443] },
  ]);
});

void test("seed compatibility: a rate limit as large as a seed user writes for no limit (1e9) loads", () => {
  const loaded = load('version: "1.0"\ntools:\n  rate_limits:\n    default: 1e9\n    add_bug: 1000000000000\n');
  assert.equal(loaded.policy.tools.rate_limits.default, 1e9);
  assert.equal(loaded.policy.tools.rate_limits.add_bug, 1e12);
  // The limiter takes such a limit as it is: every call passes.
  const limiter = createRateLimiter(loaded.policy.tools.rate_limits, ["add_bug", "get_bug"], () => 0);
  for (let i = 0; i < 1000; i++) assert.deepEqual([limiter.take("add_bug").ok, limiter.take("get_bug").ok], [true, true]);
  assert.throws(() => load('version: "1.0"\ntools:\n  rate_limits:\n    default: .inf\n'), /tools\.rate_limits\.default: expected a whole number of calls per minute/);
  assert.throws(() => load('version: "1.0"\ntools:\n  rate_limits:\n    default: 1.5\n'), /tools\.rate_limits\.default/);
});

test("every YAML policy the README shows loads as it is written", () => {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1] as string);
  assert.ok(blocks.length > 0, "the README shows at least one policy");
  for (const block of blocks) {
    const { policy } = load(block);
    assert.equal(policy.version, "1.0");
  }
  // The private-folder example: its files under the home, nothing else open.
  const { policy } = load(blocks[0] as string);
  assert.deepEqual(policy.commands.allowed, []);
  assert.deepEqual(policy.network.allowed_endpoints, []);
  assert.ok(policy.tools.deny.includes("write_file") && policy.tools.deny.includes("web_search"));
});

test("a policy with classic Mac OS line endings (a lone CR) reads as with LF, as YAML 1.2 and the seed's PyYAML read it", () => {
  const lf = fs.readFileSync(SEED, "utf8");
  assert.ok(lf.includes("\n") && !lf.includes("\r"), "the fixture has LF endings");
  const expected = policySha256(load(lf).policy);
  assert.equal(policySha256(load(lf.replaceAll("\n", "\r")).policy), expected);
  assert.equal(policySha256(load(lf.replaceAll("\n", "\r\n")).policy), expected);
  // Positions in messages count those lines too.
  assert.throws(
    () => load('version: "1.0"\rtools:\r  rate_limits:\r    default: many\r'),
    (error: unknown) => error instanceof PolicyError && /policy\.yaml:4:\d+: tools\.rate_limits\.default/.test(error.message),
  );
});
