import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse } from "yaml";
import { runCheckPolicy } from "../../src/security/policy/check-policy.js";
import { loadPolicyFile, loadPolicyText, type PolicyEnv } from "../../src/security/policy/load.js";
import { DEFAULT_WRITE_DENIED_PATHS } from "../../src/security/policy/defaults.js";
import { POLICY_SCHEMA } from "../../src/security/policy/schema.js";

import { ROOT } from "../helpers/project.js";
const EXAMPLE = path.join(ROOT, "policy.yaml");
const POLICIES = path.join(ROOT, "test", "fixtures", "policies");
const SEED = path.join(ROOT, "test", "fixtures", "seed-policy.yaml");

function check(file: string, env: PolicyEnv): { code: number; out: string; err: string } {
  let out = "";
  let err = "";
  const code = runCheckPolicy(
    file,
    env,
    (s) => (out += s),
    (s) => (err += s),
  );
  return { code, out, err };
}

function withEnv(run: (env: PolicyEnv, dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "msl-"));
  try {
    const home = path.join(dir, "home");
    run({ vars: { HOME: home }, home, stateDir: path.join(dir, "state") }, dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void test("the example policy.yaml passes check-policy without warnings", () => {
  withEnv((env) => {
    const result = check(EXAMPLE, env);
    assert.equal(result.code, 0, result.err);
    assert.equal(result.err, "");
    assert.match(result.out, /^# .*policy\.yaml: valid policy\n# sha256: [0-9a-f]{64}\n# warnings: none\n/);
    const loaded = loadPolicyFile(EXAMPLE, env);
    assert.deepEqual(loaded.warnings, []);
    assert.deepEqual(loaded.policy.filesystem.allowed_paths, [
      `${env.home}/projects/**`,
      `${env.stateDir}/workspace/**`,
    ]);
    assert.equal(loaded.policy.audit.log_file, `${env.stateDir}/audit/audit.log`);
  });
});

void test("the example policy's write_denied_paths is the built-in list it says it is", () => {
  withEnv((env) => {
    assert.deepEqual(loadPolicyFile(EXAMPLE, env).policy.filesystem.write_denied_paths, [...DEFAULT_WRITE_DENIED_PATHS]);
  });
});

void test("the example policy documents every key of the schema", () => {
  const text = fs.readFileSync(EXAMPLE, "utf8");
  // Every key the schema defines, at any depth (so a key added later must be documented too).
  const keys = new Set<string>();
  const collect = (schema: unknown): void => {
    if (schema === null || typeof schema !== "object") return;
    const node = schema as { properties?: Record<string, unknown>; items?: unknown };
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      keys.add(key);
      collect(child);
    }
    collect(node.items);
  };
  collect(POLICY_SCHEMA);
  assert.ok(keys.has("write_denied_paths") && keys.has("allowed_schemas") && keys.has("description"));
  for (const key of keys) assert.match(text, new RegExp(`^\\s*#?\\s*(- )?${key}:`, "m"), key);
});

void test("the output is the effective policy as YAML, with its sha256, and loads back to the same hash", () => {
  withEnv((env, dir) => {
    const result = check(SEED, env);
    assert.equal(result.code, 0, result.err);
    const loaded = loadPolicyFile(SEED, env);
    assert.ok(result.out.includes(`# sha256: ${loaded.sha256}\n`));
    for (const warning of loaded.warnings) assert.ok(result.out.includes(`#   - ${warning}\n`), warning);
    assert.deepEqual(parse(result.out), loaded.policy);
    assert.ok(result.out.includes(`${env.home}/projects/**`), "variables are expanded");
    const again = loadPolicyText(result.out, path.join(dir, "effective.yaml"), env);
    assert.equal(again.sha256, loaded.sha256);
  });
});

void test("an invalid policy exits 1 with every error, with positions, on err", () => {
  withEnv((env) => {
    const file = path.join(POLICIES, "invalid-several.yaml");
    const result = check(file, env);
    assert.equal(result.code, 1);
    assert.equal(result.out, "");
    const lines = result.err.trimEnd().split("\n");
    assert.deepEqual(lines, [
      `${file}:4:3: filesystem.denied_path: unknown key (did you mean "denied_paths"?)`,
      `${file}:7:7: filesystem.allowed_paths[0]: unknown variable \${POLICY_TEST_UNSET_VARIABLE}: it is not set (a policy may use \${HOME}, \${STATE_DIR} and variables set in the server's environment)`,
      `${file}:10:7: network.allowed_ranges[0]: invalid CIDR range "10.0.0.0/33": the prefix length must be a number from 0 to 32`,
      `${file}:12:12: tools.timeout: expected a number of seconds greater than 0 and at most 86400, got "thirty"`,
      `${file}: the policy is invalid (4 errors shown)`,
    ]);
  });
});

void test("a missing file exits 1 and says it cannot be read", () => {
  withEnv((env, dir) => {
    const file = path.join(dir, "missing.yaml");
    const result = check(file, env);
    assert.equal(result.code, 1);
    assert.equal(result.out, "");
    assert.equal(result.err, `${file}: cannot read the policy file: no such file\n${file}: the policy cannot be read\n`);
  });
});

void test("a minimal policy passes, and its warnings are printed", () => {
  withEnv((env) => {
    const result = check(path.join(POLICIES, "minimal.yaml"), env);
    assert.equal(result.code, 0);
    assert.match(
      result.out,
      /\n# notes \(what this policy turns off\):\n# {3}- network\.allowed_ranges and network\.allowed_endpoints are empty: no network access\n# {3}- filesystem\.allowed_paths is empty: no file access\n/,
    );
  });
});

void test("check-policy gives the start's warnings about tool entries that match no tool (a deny typo leaves the tool callable)", () => {
  withEnv((env, dir) => {
    const file = path.join(dir, "typos.yaml");
    fs.writeFileSync(
      file,
      'version: "1.0"\ntools:\n  deny: [wirte_file, "exec_*"]\n  allow: [read_file, list_directory, write_file]\n  rate_limits:\n    default: 60\n    add_bugs: 5\n',
    );
    const result = check(file, env);
    assert.equal(result.code, 0, result.err);
    const warnings = result.out.split("\n").filter((line) => line.startsWith("#   - tools."));
    assert.deepEqual(warnings, [
      '#   - tools.deny names "wirte_file", "exec_*", which match no tool of this server: they deny nothing (a typo?)',
      '#   - tools.rate_limits names "add_bugs", which matches no tool of this server: that entry has no effect (a typo?)',
    ]);
    // Against the tools a server has (an extra plugin's), the same entries may be fine.
    let out = "";
    runCheckPolicy(file, env, (s) => (out += s), () => undefined, () => "n/a", () => ["wirte_file", "exec_shell", "add_bugs", "read_file", "list_directory", "write_file"]);
    assert.match(out, /^# sha256: /m);
    assert.doesNotMatch(out, /^# {3}- tools\./m);
  });
});

void test("a seed policy with its database section passes with a warning", () => {
  withEnv((env) => {
    const result = check(path.join(POLICIES, "seed-with-database.yaml"), env);
    assert.equal(result.code, 0, result.err);
    assert.ok(result.out.includes("#   - database: accepted for compatibility with the seed server, but not used by any tool\n"));
    assert.ok(!/^database:/m.test(result.out), "the database section is not part of the effective policy");
  });
});

void test("globs that do not compile are errors, not rules that silently match nothing; every one is named in one run, with the rest", () => {
  withEnv((env, dir) => {
    const file = path.join(dir, "bad-globs.yaml");
    fs.writeFileSync(
      file,
      [
        'version: "1.0"',
        "filesystem:",
        `  allowed_paths: [${JSON.stringify(`${dir}/ok/**`)}, ${JSON.stringify(`${dir}/x/[z-a]/**`)}]`,
        '  denied_paths: ["**/{secrets,private", "**/*.pem"]',
        "  max_read_bytes: 0",
        "tools:",
        '  deny: ["add_{bug"]',
        "",
      ].join("\n"),
    );
    const result = check(file, env);
    assert.equal(result.code, 1, result.out);
    assert.equal(result.out, "");
    // The schema error does not hide the globs, and no glob hides another; each is at its line and column.
    const lines = result.err.trimEnd().split("\n");
    assert.equal(lines.length, 5, result.err);
    assert.ok(lines[0]!.startsWith(`${file}:3:`), lines[0]);
    assert.match(lines[0]!, /:3:\d+: filesystem\.allowed_paths\[1\]: ".*\[z-a\]\/\*\*" is not a valid glob/);
    assert.match(lines[1]!, /:4:18: filesystem\.denied_paths\[0\]: "\*\*\/\{secrets,private" is not a valid glob/);
    assert.match(lines[2]!, /:5:19: filesystem\.max_read_bytes: expected/);
    assert.match(lines[3]!, /:7:10: tools\.deny\[0\]: "add_\{bug" is not a valid glob/);
    assert.equal(lines[4], `${file}: the policy is invalid (4 errors shown)`);
    assert.doesNotMatch(result.err, /\*\.pem/);
  });
});

void test("check-policy's problems reach the terminal with C1 controls and bidi overrides escaped, one problem a line", () => {
  withEnv((env, dir) => {
    const file = path.join(dir, "hostile.yaml");
    // An unknown key spelled with a CSI (C1) and a right-to-left override, which JSON quoting leaves raw.
    fs.writeFileSync(file, 'version: "1.0"\ntools:\n  "x\u009b31m\u202eyek": 1\n  timeout: nope\n');
    const result = check(file, env);
    assert.equal(result.code, 1);
    assert.doesNotMatch(result.err, /[\u0080-\u009f\u202a-\u202e]/, result.err);
    assert.match(result.err, /x\\u009b31m\\u202eyek/);
    assert.ok(result.err.split("\n").length >= 3, "each problem still on its own line");
  });
});
