import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse } from "yaml";
import { runCheckPolicy } from "../../src/security/policy/check-policy.js";

function check(text: string, sandbox?: Parameters<typeof runCheckPolicy>[4]): { code: number; out: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "msl-"));
  try {
    const file = path.join(dir, "policy.yaml");
    fs.writeFileSync(file, text);
    let out = "";
    const env = { vars: { HOME: dir, PATH: process.env.PATH }, home: dir, stateDir: path.join(dir, "state") };
    const code = runCheckPolicy(file, env, (s) => (out += s), () => undefined, sandbox);
    return { code, out };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void test("check-policy reports the exec sandbox setting and what it means here, as a comment the YAML keeps", () => {
  const seen: string[] = [];
  const { code, out } = check('version: "1.0"\ncommands:\n  sandbox: required\n', (policy) => {
    seen.push(policy.commands.sandbox);
    return "required: no sandbox can be made here: bubblewrap is not installed; every exec call will be refused";
  });
  assert.equal(code, 0);
  assert.deepEqual(seen, ["required"]);
  const lines = out.split("\n");
  const at = lines.indexOf("# exec sandbox: required: no sandbox can be made here: bubblewrap is not installed; every exec call will be refused");
  assert.ok(at > lines.indexOf("# warnings: none") && at < lines.indexOf("# effective policy (defaults applied, variables expanded):"), out);
  assert.equal((parse(out) as { commands: { sandbox: string } }).commands.sandbox, "required");
});

void test("by default check-policy probes bwrap on this machine", () => {
  const { code, out } = check('version: "1.0"\n');
  assert.equal(code, 0);
  assert.match(out, /^# exec sandbox: auto: (bubblewrap \d+\.\d+\.\d+ \(.*\) is usable here; programs run sandboxed|no sandbox can be made here: .*; programs run WITHOUT a sandbox)$/m);
  assert.match(check('version: "1.0"\ncommands:\n  sandbox: off\n').out, /^# exec sandbox: off: programs run without a sandbox \(commands\.sandbox: off\)$/m);
});

void test("a sandbox report with a line break or terminal controls (bwrap's own words) stays one harmless comment line", () => {
  const { code, out } = check('version: "1.0"\n', () => "auto: no sandbox can be made here: bwrap: \u001b[31msetting up uid map\nversion: evil\u202e");
  assert.equal(code, 0);
  assert.match(out, /^# exec sandbox: auto: no sandbox can be made here: bwrap: \\u001b\[31msetting up uid map\\u000aversion: evil\\u202e$/m);
  assert.equal((parse(out) as { version: string }).version, "1.0", "the output is still the policy, not changed by the report");
});
