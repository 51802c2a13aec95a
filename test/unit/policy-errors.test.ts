import { test } from "node:test";
import assert from "node:assert/strict";
import { loadPolicyText, PolicyError, type PolicyEnv, type PolicyIssue } from "../../src/security/policy/load.js";
import { MAX_REPORTED_ISSUES } from "../../src/security/policy/schema.js";
import { compileNetworkPolicy } from "../../src/security/egress-guard.js";

const env: PolicyEnv = { vars: { HOME: "/home/tester", WEIRD: "/data/[x]" }, home: "/home/tester", stateDir: "/state" };

/** Loads `lines` (joined with newlines) and returns the PolicyError it must throw. */
function failure(lines: readonly string[]): PolicyError {
  try {
    loadPolicyText(`${lines.join("\n")}\n`, "policy.yaml", env);
  } catch (error) {
    if (error instanceof PolicyError) return error;
    throw error;
  }
  assert.fail("the policy was accepted");
}

function findIssue(error: PolicyError, key: string): PolicyIssue {
  const issue = error.issues.find((candidate) => candidate.key === key);
  assert.ok(issue, `no issue for key "${key}" in:\n${error.message}`);
  return issue;
}

function expectIssue(
  lines: readonly string[],
  expected: { line: number; column: number; key: string; message: RegExp },
): PolicyError {
  const error = failure(lines);
  assert.equal(error.code, "POLICY_INVALID");
  const issue = findIssue(error, expected.key);
  assert.equal(issue.line, expected.line, error.message);
  assert.equal(issue.column, expected.column, error.message);
  assert.match(issue.message, expected.message);
  return error;
}

void test("an unknown nested key points at the key itself and suggests the right one", () => {
  const error = expectIssue(
    ['version: "1.0"', "filesystem:", "  allowed_paths: []", "  denied_path:", '    - "**/.ssh/**"'],
    { line: 4, column: 3, key: "filesystem.denied_path", message: /^unknown key \(did you mean "denied_paths"\?\)$/ },
  );
  assert.equal(error.message, 'policy.yaml:4:3: filesystem.denied_path: unknown key (did you mean "denied_paths"?)');
});

void test("an unknown top-level key lists the known ones when nothing is close", () => {
  expectIssue(['version: "1.0"', "frobnicate: true"], {
    line: 2,
    column: 1,
    key: "frobnicate",
    message:
      /^unknown key \(known keys: version, network, filesystem, commands, tools, limits, audit, server, database\); unknown keys are refused, not ignored as the seed server did: a misspelt key must not weaken a policy$/,
  });
  expectIssue(['version: "1.0"', "netwrk: {}"], { line: 2, column: 1, key: "netwrk", message: /did you mean "network"/ });
});

void test("unknown keys deep inside lists are found too", () => {
  expectIssue(
    ['version: "1.0"', "network:", "  allowed_endpoints:", "    - host: example.com", "      ports: [443]", "      port: 80"],
    { line: 6, column: 7, key: "network.allowed_endpoints[0].port", message: /did you mean "ports"/ },
  );
});

void test("a value of the wrong type says what was expected and what was found", () => {
  expectIssue(['version: "1.0"', "tools:", '  timeout: "thirty"'], {
    line: 3,
    column: 12,
    key: "tools.timeout",
    message: /^expected a number of seconds greater than 0 and at most 86400, got "thirty"$/,
  });
  expectIssue(['version: "1.0"', "filesystem:", '  allowed_paths: "/data/**"'], {
    line: 3,
    column: 18,
    key: "filesystem.allowed_paths",
    message: /^expected a list of path globs, got "\/data\/\*\*"$/,
  });
  expectIssue(['version: "1.0"', "network:", "  blocked_ports: [22, 70000]"], {
    line: 3,
    column: 23,
    key: "network.blocked_ports[1]",
    message: /expected a port number from 1 to 65535, got 70000/,
  });
});

void test("an empty value where a list must hold an entry does not hint at []", () => {
  const error = expectIssue(['version: "1.0"', "network:", "  allowed_endpoints:", "    - host: a.example", "      ports:"], {
    line: 5,
    column: 7,
    key: "network.allowed_endpoints[0].ports",
    message: /^expected a non-empty list of port numbers, got an empty value$/,
  });
  assert.doesNotMatch(error.message, /write \[\]/);
});

void test("an empty list entry says so, without advice about keys", () => {
  for (const [lines, key] of [
    [['version: "1.0"', "network:", "  allowed_endpoints:", "    -", "    - host: a.example", "      ports: [443]"], "network.allowed_endpoints[0]"],
    [['version: "1.0"', "network:", "  blocked_ports:", "    - 22", "    -"], "network.blocked_ports[1]"],
  ] as const) {
    const issue = findIssue(failure(lines), key);
    assert.match(issue.message, /got an empty value \(a - with nothing after it: give it a value or remove it\)$/, key);
  }
});

void test("an unquoted ~ hints at quoting it", () => {
  expectIssue(['version: "1.0"', "filesystem:", "  allowed_paths:", "    - ~"], {
    line: 4,
    column: 7,
    key: "filesystem.allowed_paths[0]",
    message: /write "~" in quotes/,
  });
});

void test("non-finite numbers are refused", () => {
  expectIssue(['version: "1.0"', "limits:", "  max_depth: .inf"], {
    line: 3,
    column: 14,
    key: "limits.max_depth",
    message: /got a non-finite number/,
  });
});

void test("an invalid CIDR is an error, not silently dropped", () => {
  const lines = ['version: "1.0"', "network:", "  allowed_ranges:", '    - "10.0.0.0/8"', '    - "10.0.0.0/33"', '    - "10.1.2.3/8"', '    - "example.com/8"'];
  const error = failure(lines);
  assert.deepEqual(
    error.issues.map((issue) => [issue.line, issue.column, issue.key]),
    [
      [5, 7, "network.allowed_ranges[1]"],
      [6, 7, "network.allowed_ranges[2]"],
      [7, 7, "network.allowed_ranges[3]"],
    ],
  );
  assert.match(findIssue(error, "network.allowed_ranges[1]").message, /prefix length must be a number from 0 to 32/);
  assert.match(findIssue(error, "network.allowed_ranges[2]").message, /did you mean "10\.0\.0\.0\/8"/);
  assert.match(findIssue(error, "network.allowed_ranges[3]").message, /not an IPv4 or IPv6 address/);
});

void test("hosts with a scheme or a path are refused", () => {
  expectIssue(['version: "1.0"', "network:", "  allowed_endpoints:", '    - {host: "https://example.com", ports: [443]}'], {
    line: 4,
    column: 14,
    key: "network.allowed_endpoints[0].host",
    message: /without scheme, port or path/,
  });
});

void test("a host name the egress guard cannot enforce is refused here, not first by the server at start (check-policy said valid)", () => {
  for (const host of ["xn--a", "10.0.0.256", "a.123"]) {
    expectIssue(['version: "1.0"', "network:", "  allowed_endpoints:", `    - {host: "${host}", ports: [443]}`], {
      line: 4,
      column: 14,
      key: "network.allowed_endpoints[0].host",
      message: /expected a host name such as api\.example\.com/,
    });
    expectIssue(['version: "1.0"', "network:", "  allow_dns: true", "  dns_allowlist:", `    - "*.${host}"`], {
      line: 5,
      column: 7,
      key: "network.dns_allowlist[0]",
      message: /expected a name such as api\.example\.com/,
    });
  }
  // What the loader accepts, the guard compiles (IDN, underscores, IPv6 with or without brackets).
  const loaded = loadPolicyText(
    [
      'version: "1.0"',
      "network:",
      "  allow_dns: true",
      '  dns_allowlist: ["*.bücher.example", "_dmarc.example.com", "xn--55qx5d.cn"]',
      "  allowed_endpoints:",
      '    - {host: "Straße.example.", ports: [443]}',
      '    - {host: "[::1]", ports: [8080]}',
      '    - {host: "fd00::1", ports: [8080]}',
      "",
    ].join("\n"),
    "policy.yaml",
    env,
  );
  assert.doesNotThrow(() => compileNetworkPolicy(loaded.policy.network));
});

void test("an endpoint without ports is refused at the endpoint", () => {
  expectIssue(['version: "1.0"', "network:", "  allowed_endpoints:", "    - host: example.com"], {
    line: 4,
    column: 7,
    key: "network.allowed_endpoints[0].ports",
    message: /missing required key/,
  });
});

void test("an unknown ${VAR} is an error naming it", () => {
  expectIssue(['version: "1.0"', "filesystem:", "  allowed_paths:", '    - "${HOME}/ok/**"', '    - "${NO_SUCH_VAR}/projects/**"'], {
    line: 5,
    column: 7,
    key: "filesystem.allowed_paths[1]",
    message: /^unknown variable \$\{NO_SUCH_VAR\}: it is not set/,
  });
  // A deny rule with an unknown variable would silently never match: the seed's fail-open.
  expectIssue(['version: "1.0"', "filesystem:", '  denied_paths: ["${UNSET_SECRET_DIR}/**"]'], {
    line: 3,
    column: 18,
    key: "filesystem.denied_paths[0]",
    message: /unknown variable \$\{UNSET_SECRET_DIR\}/,
  });
  expectIssue(['version: "1.0"', "audit:", '  log_file: "${LOGS}/audit.log"'], {
    line: 3,
    column: 13,
    key: "audit.log_file",
    message: /unknown variable \$\{LOGS\}/,
  });
});

void test("malformed variable references are errors", () => {
  const error = failure([
    'version: "1.0"',
    "filesystem:",
    "  allowed_paths:",
    '    - "${HOME/x/**"',
    '    - "${1BAD}/x"',
    '    - "$HOME/x"',
    '    - "~bob/x"',
    '    - "${WEIRD}/**"',
  ]);
  assert.match(findIssue(error, "filesystem.allowed_paths[0]").message, /without a closing/);
  assert.match(findIssue(error, "filesystem.allowed_paths[1]").message, /not a valid variable name/);
  assert.match(findIssue(error, "filesystem.allowed_paths[2]").message, /write \$\{HOME\}/);
  assert.match(findIssue(error, "filesystem.allowed_paths[3]").message, /~user/);
  assert.match(findIssue(error, "filesystem.allowed_paths[4]").message, /contains a glob character/);
});

void test("an empty variable is an error", () => {
  assert.throws(
    () => loadPolicyText('version: "1.0"\nfilesystem:\n  allowed_paths: ["${EMPTY}/x"]\n', "policy.yaml", { ...env, vars: { EMPTY: "" } }),
    (error: unknown) => error instanceof PolicyError && /variable \$\{EMPTY\} is empty/.test(error.message),
  );
});

void test("a relative path is an error naming the key", () => {
  expectIssue(['version: "1.0"', "filesystem:", "  allowed_paths:", "    - projects/**"], {
    line: 4,
    column: 7,
    key: "filesystem.allowed_paths[0]",
    message: /"projects\/\*\*" is a relative path; write an absolute path/,
  });
  expectIssue(['version: "1.0"', "filesystem:", '  denied_paths: ["*.pem"]'], {
    line: 3,
    column: 18,
    key: "filesystem.denied_paths[0]",
    message: /start it with \/ for an absolute path or with \*\*\/ to match anywhere \(e\.g\. "\*\*\/\*\.pem"\)/,
  });
  expectIssue(['version: "1.0"', "server:", "  project_path: app"], {
    line: 3,
    column: 17,
    key: "server.project_path",
    message: /relative path/,
  });
  expectIssue(['version: "1.0"', "commands:", "  allowed: [./tool]"], {
    line: 3,
    column: 13,
    key: "commands.allowed[0]",
    message: /give a command name \(such as git\) or an absolute path/,
  });
  expectIssue(['version: "1.0"', "filesystem:", '  allowed_paths: ["/data/../etc/**"]'], {
    line: 3,
    column: 19,
    key: "filesystem.allowed_paths[0]",
    message: /contains a "\.\." segment/,
  });
});

void test("a bad version says which versions are supported", () => {
  expectIssue(['version: "2.0"'], {
    line: 1,
    column: 10,
    key: "version",
    message: /^unsupported policy version "2\.0"; supported versions: "1\.0"$/,
  });
  expectIssue(["version: 2"], { line: 1, column: 10, key: "version", message: /unsupported policy version 2;/ });
  expectIssue(["network: {}"], { line: 1, column: 1, key: "version", message: /missing required key \(add version: "1\.0"\)/ });
});

void test("a YAML syntax error gives its position", () => {
  const error = failure(['version: "1.0"', "network:", "  allowed_ranges: [10.0.0.0/8", "filesystem: {}"]);
  assert.equal(error.code, "POLICY_INVALID");
  const first = error.issues[0];
  assert.ok(first);
  assert.match(first.message, /^YAML syntax error: /);
  assert.equal(first.line, 4);
  assert.equal(first.column, 1);
  const tabs = failure(['version: "1.0"', "network:", "\tallow_dns: true"]);
  assert.ok(tabs.issues.some((issue) => issue.line === 3 && /YAML syntax error/.test(issue.message)), tabs.message);
});

void test("a duplicate key is an error at the second occurrence", () => {
  expectIssue(['version: "1.0"', "filesystem:", "  allowed_paths: []", "  denied_paths: []", "  allowed_paths: [/x/**]"], {
    line: 5,
    column: 3,
    key: "filesystem.allowed_paths",
    message: /^duplicate key/,
  });
});

void test("an alias bomb is refused", () => {
  const error = expectIssue(
    [
      'version: "1.0"',
      "x1: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]",
      "x2: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
      "x3: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]",
      "x4: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
      "x5: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]",
      "x6: [*e, *e, *e, *e, *e, *e, *e, *e, *e]",
    ],
    { line: 3, column: 9, key: "x2[0]", message: /aliases expand to too many nodes/ },
  );
  assert.equal(error.issues.length, 1);
});

void test("small, ordinary aliases are fine", () => {
  const { policy } = loadPolicyText(
    'version: "1.0"\nnetwork:\n  allow_dns: true\n  dns_allowlist: &hosts [example.com]\n  allowed_endpoints:\n    - {host: example.com, ports: &https [443]}\n',
    "policy.yaml",
    env,
  );
  assert.deepEqual(policy.network.dns_allowlist, ["example.com"]);
});

void test("an alias without its anchor is an error at the alias", () => {
  expectIssue(['version: "1.0"', "filesystem:", "  allowed_paths: *roots"], {
    line: 3,
    column: 18,
    key: "filesystem.allowed_paths",
    message: /unknown alias \*roots/,
  });
});

void test("several documents, custom tags and non-string keys are refused", () => {
  assert.match(failure(['version: "1.0"', "---", 'version: "1.0"']).message, /more than one YAML document/);
  assert.match(failure(['version: "1.0"', "server:", "  project_path: !!binary L2V0Yw=="]).message, /unsupported YAML tag/);
  assert.match(failure(['version: "1.0"', "? [a, b]", ": 1"]).message, /mapping key must be a plain string/);
});

void test("an empty file or a list at the top is refused", () => {
  assert.match(failure(["# nothing but a comment"]).message, /^policy\.yaml:1:1: the policy is empty/);
  assert.match(failure(["- version"]).message, /expected a mapping of policy sections, got a list of 1/);
});

void test("invalid tool names in rate_limits point at the name", () => {
  expectIssue(['version: "1.0"', "tools:", "  rate_limits:", "    default: 10", '    "bad name": 3'], {
    line: 5,
    column: 5,
    key: 'tools.rate_limits["bad name"]',
    message: /^invalid name "bad name": expected a tool name/,
  });
});


void test("several errors are reported together, in file order", () => {
  const error = failure([
    'version: "1.0"',
    "filesystem:",
    "  denied_path: []",
    "  allowed_paths:",
    '    - "${NOPE}/x/**"',
    "network:",
    '  allowed_ranges: ["1.2.3.4/40"]',
    "tools:",
    "  timeout: -1",
  ]);
  assert.deepEqual(
    error.issues.map((issue) => issue.key),
    ["filesystem.denied_path", "filesystem.allowed_paths[0]", "network.allowed_ranges[0]", "tools.timeout"],
  );
  assert.equal(error.message.split("\n").length, 4);
  for (const line of error.message.split("\n")) assert.match(line, /^policy\.yaml:\d+:\d+: /);
});

void test("the number of reported errors is bounded", () => {
  const lines = ['version: "1.0"', "tools:", "  rate_limits:"];
  for (let index = 0; index < 30; index++) lines.push(`    tool_${index}: -1`);
  const error = failure(lines);
  assert.equal(error.issues.length, MAX_REPORTED_ISSUES);
  const messageLines = error.message.split("\n");
  assert.equal(messageLines.length, MAX_REPORTED_ISSUES + 1);
  assert.equal(messageLines.at(-1), "policy.yaml: ... and 10 more errors");
});

void test("schema, glob, YAML and value errors are reported in one run, each at its place, in file order", () => {
  // Before: a YAML tag error hid everything else, and glob errors showed only once the rest was valid.
  const error = failure([
    'version: "1.0"',
    "filesystem:",
    "  allowed_paths:",
    '    - "/data/ok/**"',
    '    - "/data/{a,b"',
    '    - "${HOME}/[z-a]/**"',
    '  denied_paths: ["**/{secrets,private", "**/*.pem"]',
    '  write_denied_paths: ["**/[z-a]"]',
    "  max_read_bytes: lots",
    "tools:",
    '  allow: ["list_{bugs", "get_bug"]',
    '  deny: ["[z-a]*"]',
    "  rate_limits:",
    "    default: -1",
    "    add_bug: 1.5",
    "  timeout: !!int 2.5",
    "audit:",
    "  log_fil: x",
  ]);
  assert.deepEqual(
    error.issues.map((issue) => [issue.line, issue.column, issue.key]),
    [
      [5, 7, "filesystem.allowed_paths[1]"],
      [6, 7, "filesystem.allowed_paths[2]"],
      [7, 18, "filesystem.denied_paths[0]"],
      [8, 24, "filesystem.write_denied_paths[0]"],
      [9, 19, "filesystem.max_read_bytes"],
      [11, 11, "tools.allow[0]"],
      [12, 10, "tools.deny[0]"],
      [14, 14, "tools.rate_limits.default"],
      [15, 14, "tools.rate_limits.add_bug"],
      [16, 12, "tools.timeout"],
      [18, 3, "audit.log_fil"],
    ],
    error.message,
  );
  assert.match(findIssue(error, "filesystem.allowed_paths[1]").message, /^"\/data\/\{a,b" is not a valid glob \(Unterminated group\); check its brackets and braces$/);
  assert.match(findIssue(error, "filesystem.allowed_paths[2]").message, /^"\$\{HOME\}\/\[z-a\]\/\*\*" is not a valid glob/);
  assert.match(findIssue(error, "filesystem.denied_paths[0]").message, /^"\*\*\/\{secrets,private" is not a valid glob/);
  // The reason in words, not picomatch's regex (whose backslashes would read doubled on stderr).
  assert.match(findIssue(error, "tools.deny[0]").message, /^"\[z-a\]\*" is not a valid glob \(Range out of order in character class\); check/);
  // The value under a tag that failed is not reported a second time by the schema.
  assert.equal(error.issues.filter((issue) => issue.key === "tools.timeout").length, 1);
  assert.equal(error.message.split("\n").length, 11);
  assert.deepEqual(error.lines, error.message.split("\n"));
});

void test("a glob is not compiled where its entry has another problem (one message per entry)", () => {
  const error = failure([
    'version: "1.0"',
    "filesystem:",
    '  allowed_paths: ["relative/{x", "${NOPE}/[z-a]", "/data/{x\\u0001"]',
    '  denied_paths: ["sub/{x"]',
  ]);
  assert.deepEqual(
    error.issues.map((issue) => issue.key),
    ["filesystem.allowed_paths[0]", "filesystem.allowed_paths[1]", "filesystem.allowed_paths[2]", "filesystem.denied_paths[0]"],
  );
  assert.doesNotMatch(error.message, /not a valid glob/);
});

void test("the server's reading leaves deny rules to first use, unless the policy is refused anyway", () => {
  const lines = ['version: "1.0"', "filesystem:", '  denied_paths: ["**/{secrets,private"]'];
  const text = `${lines.join("\n")}\n`;
  // The start does not compile deny rules (the path guard compiles them on first use and fails closed)...
  const loaded = loadPolicyText(text, "policy.yaml", env, { denyGlobs: "when-invalid" });
  assert.deepEqual(loaded.policy.filesystem.denied_paths, ["**/{secrets,private"]);
  // ...check-policy does...
  assert.throws(() => loadPolicyText(text, "policy.yaml", env), /policy\.yaml:3:18: filesystem\.denied_paths\[0\]: .* is not a valid glob/);
  // ...and a refusal names it with the other problems.
  assert.throws(
    () => loadPolicyText(`${text}  max_read_bytes: 0\n`, "policy.yaml", env, { denyGlobs: "when-invalid" }),
    (error: unknown) =>
      error instanceof PolicyError &&
      error.issues.map((issue) => issue.key).join(",") === "filesystem.denied_paths[0],filesystem.max_read_bytes",
  );
});

void test("YAML problems after which the document still reads are reported with the rest of it", () => {
  const error = failure(['version: "1.0"', "tools:", "  timeout: 1", "  timeout: 2", "limits:", "  max_depth: 0"]);
  assert.deepEqual(
    error.issues.map((issue) => [issue.line, issue.key]),
    [
      [4, "tools.timeout"],
      [6, "limits.max_depth"],
    ],
  );
  assert.match(findIssue(error, "tools.timeout").message, /duplicate key/);
  // A syntax error still stops there: what follows it has no reliable meaning.
  const syntax = failure(['version: "1.0"', "tools: [", "limits:", "  max_depth: 0"]);
  assert.ok(syntax.issues.every((issue) => /YAML/.test(issue.message)), syntax.message);
});

void test("a whole number under !!float loads where an integer is expected, as YAML 1.2 reads it; 30.5 stays refused there", () => {
  // Before: `!!float 30` was refused as an unsupported tag (the yaml package's float tags match 30.0, not 30).
  const tagged = loadPolicyText(
    ['version: "1.0"', "tools:", "  timeout: !!float 30", "  rate_limits:", "    default: !!float 60", "    add_bug: !!float +5.", "limits:", "  max_depth: !!float 3e1", ""].join("\n"),
    "policy.yaml",
    env,
  );
  const plain = loadPolicyText(
    ['version: "1.0"', "tools:", "  timeout: 30", "  rate_limits:", "    default: 60", "    add_bug: 5", "limits:", "  max_depth: 30", ""].join("\n"),
    "policy.yaml",
    env,
  );
  assert.equal(tagged.policy.tools.timeout, 30);
  assert.equal(tagged.policy.tools.rate_limits.default, 60);
  assert.equal(tagged.policy.limits.max_depth, 30);
  assert.equal(tagged.sha256, plain.sha256, "the same policy, the same hash");
  assert.equal(loadPolicyText('version: "1.0"\nlimits:\n  max_depth: 30.0\n', "policy.yaml", env).policy.limits.max_depth, 30);
  expectIssue(['version: "1.0"', "limits:", "  max_depth: !!float 30.5"], {
    line: 3,
    column: 22,
    key: "limits.max_depth",
    message: /^expected a nesting depth from 1 to 1000, got 30\.5$/,
  });
  expectIssue(['version: "1.0"', "tools:", "  rate_limits:", "    default: 30.5"], {
    line: 4,
    column: 14,
    key: "tools.rate_limits.default",
    message: /^expected a whole number of calls per minute/,
  });
  // Where a number of seconds is expected, a fraction is fine under the tag too; plain 30 is still an int.
  assert.equal(loadPolicyText('version: "1.0"\ntools:\n  timeout: !!float 2.5\n', "policy.yaml", env).policy.tools.timeout, 2.5);
  assert.equal(loadPolicyText('version: "1.0"\nlimits:\n  max_depth: !!int 30\n', "policy.yaml", env).policy.limits.max_depth, 30);
  expectIssue(['version: "1.0"', "limits:", "  max_depth: !!str 30"], { line: 3, column: 20, key: "limits.max_depth", message: /got "30"$/ });
});

void test("a tag that does not fit its value, or that a policy does not know, is refused with what to do", () => {
  expectIssue(['version: "1.0"', "limits:", "  max_depth: !!int 30.5"], {
    line: 3,
    column: 14,
    key: "limits.max_depth",
    message: /^the value does not fit its tag !!int \(!!int takes a whole number such as 30\): correct the value, or remove the tag$/,
  });
  expectIssue(['version: "1.0"', "audit:", "  enabled: !!bool yes"], { line: 3, column: 12, key: "audit.enabled", message: /its tag !!bool \(!!bool takes true or false\)/ });
  expectIssue(['version: "1.0"', "audit: !!str", "  enabled: true"], { line: 2, column: 8, key: "audit", message: /its tag !!str \(!!str takes a text, not a list or a mapping\)/ });
  expectIssue(['version: "1.0"', "audit:", "  log_file: !secret /x"], {
    line: 3,
    column: 13,
    key: "audit.log_file",
    message: /^unsupported YAML tag !secret: remove it \(a policy takes plain values/,
  });
  expectIssue(['version: "1.0"', "server:", "  project_path: !!binary L2V0Yw=="], { line: 3, column: 17, key: "server.project_path", message: /^unsupported YAML tag !!binary: remove it/ });
  const renamed = failure(["%TAG !! tag:example.com,2000:", "---", 'version: "1.0"', "audit:", "  log_file: !!str /x"]);
  assert.match(findIssue(renamed, "audit.log_file").message, /^unsupported YAML tag !!str \(tag:example\.com,2000:str\): remove it/);
});

void test("no tag, known or not, on any kind of node, crashes the loader", () => {
  const tags = ["!!str", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq", "!!binary", "!!set", "!!omap", "!!pairs", "!!timestamp", "!!merge", "!", "!x", "!<tag:yaml.org,2002:int>", "!<!>", "!e!x", "!!"];
  const values = ["30", "30.5", "", "yes", "~", "[1, 2]", "{a: 1}", '"q"', ".nan", "-.inf", "0x1F"];
  for (const tag of tags) {
    for (const value of values) {
      for (const where of [`limits:\n  max_depth: ${tag} ${value}`, `tools:\n  deny: [${tag} ${value}]`, `audit: ${tag} ${value}`]) {
        const text = `version: "1.0"\n${where}\n`;
        try {
          loadPolicyText(text, "policy.yaml", env);
        } catch (error) {
          assert.ok(error instanceof PolicyError, `${JSON.stringify(text)}: ${String(error)}`);
          for (const line of error.lines) assert.match(line, /^policy\.yaml(:\d+:\d+)?: /);
        }
      }
    }
  }
});

void test("a tag on one list entry is that entry's problem: the other entries of the list are still checked", () => {
  // Before: the tag, which comes before its entry's own range, was placed on the list, and
  // every other entry's problem (under the list) was left out of the report.
  const error = failure([
    'version: "1.0"',
    "filesystem:",
    "  denied_paths:",
    "    - !!binary aGVsbG8=",
    '    - "**/{q"',
    "tools:",
    "  allow: [good, !weird x, 'b{']",
  ]);
  assert.deepEqual(
    error.issues.map((issue) => [issue.line, issue.column, issue.key]),
    [
      [4, 7, "filesystem.denied_paths[0]"],
      [5, 7, "filesystem.denied_paths[1]"],
      [7, 17, "tools.allow[1]"],
      [7, 27, "tools.allow[2]"],
    ],
    error.message,
  );
  assert.match(findIssue(error, "filesystem.denied_paths[1]").message, /is not a valid glob/);
  assert.match(findIssue(error, "tools.allow[1]").message, /^unsupported YAML tag !weird/);
});

void test("a variable whose value a written entry could not hold is an error: a line break, or whitespace in a command", () => {
  // Written out, these values are refused by the schema; through a variable they would make a deny
  // rule or a blocked name that never matches ("curl " blocks nothing), and check-policy's output
  // would not load.
  const vars = { ...env.vars, SECRETS: "/home/tester/secret\n", NET: "curl ", LONG: `/${"x".repeat(5000)}` };
  let error: PolicyError | undefined;
  try {
    loadPolicyText(
      [
        'version: "1.0"',
        "filesystem:",
        '  allowed_paths: ["/home/tester/**"]',
        '  denied_paths: ["${SECRETS}/**"]',
        "commands:",
        '  blocked: ["${NET}"]',
        "audit:",
        '  log_file: "${LONG}"',
        "",
      ].join("\n"),
      "policy.yaml",
      { ...env, vars },
    );
  } catch (caught) {
    if (!(caught instanceof PolicyError)) throw caught;
    error = caught;
  }
  assert.ok(error, "the policy was accepted");
  assert.match(findIssue(error, "filesystem.denied_paths[0]").message, /\$\{SECRETS\} expands to .*control character/);
  assert.match(findIssue(error, "commands.blocked[0]").message, /\$\{NET\} expands to "curl ", which holds whitespace/);
  assert.match(findIssue(error, "audit.log_file").message, /expands to more than 4096 characters/);
});
