import { test } from "node:test";
import assert from "node:assert/strict";
import {
  cidrContains,
  cidrOverlaps,
  formatIssue,
  isDnsPattern,
  isHost,
  parseCidr,
  parseIp,
  PolicyError,
  policyValidator,
} from "../../src/security/policy/schema.js";

function cidr(text: string) {
  const parsed = parseCidr(text);
  assert.ok(parsed.ok, text);
  return parsed.cidr;
}

void test("CIDR ranges parse, and a bare address is a single host", () => {
  assert.deepEqual(parseCidr("10.0.0.0/8"), { ok: true, cidr: { family: 4, base: 0x0a000000n, prefix: 8 }, normalized: "10.0.0.0/8" });
  assert.equal((parseCidr("192.0.2.1") as { normalized: string }).normalized, "192.0.2.1/32");
  assert.equal((parseCidr("::1") as { normalized: string }).normalized, "::1/128");
  for (const good of ["0.0.0.0/0", "::/0", "fe80::/10", "::ffff:10.0.0.0/104", "2001:db8::/32", "1:2:3:4:5:6:7:8/128"]) {
    assert.ok(parseCidr(good).ok, good);
  }
});

void test("invalid CIDR ranges are refused with a reason", () => {
  const reasons: Record<string, RegExp> = {
    "10.0.0.0/33": /prefix length/,
    "10.0.0.0/": /prefix length/,
    "10.0.0.0/08": /prefix length/,
    "::/129": /prefix length/,
    "256.0.0.0/8": /not an IPv4 or IPv6 address/,
    "010.0.0.0/8": /not an IPv4 or IPv6 address/,
    "10.0.0/8": /not an IPv4 or IPv6 address/,
    "fe80::1%eth0/64": /not an IPv4 or IPv6 address/,
    "example.com/8": /not an IPv4 or IPv6 address/,
    "10.0.0.1/8": /did you mean "10\.0\.0\.0\/8"/,
    "2001:db8::1/32": /did you mean "2001:db8::\/32"/,
  };
  for (const [text, reason] of Object.entries(reasons)) {
    const parsed = parseCidr(text);
    assert.equal(parsed.ok, false, text);
    if (!parsed.ok) assert.match(parsed.reason, reason, text);
  }
});

void test("IPv6 addresses with an embedded IPv4 part parse to the right value", () => {
  assert.deepEqual(parseIp("::ffff:1.2.3.4"), { family: 6, value: 0xffff01020304n });
  assert.deepEqual(parseIp("::1.2.3.4"), { family: 6, value: 0x01020304n });
  assert.deepEqual(parseIp("1:2:3:4:5:6:1.2.3.4"), { family: 6, value: 0x00010002000300040005000601020304n });
  assert.equal(parseIp("1.2.3.4")?.family, 4);
  assert.equal(parseIp("nope"), undefined);
});

void test("containment and overlap", () => {
  assert.ok(cidrContains(cidr("10.0.0.0/8"), { family: 4, value: 0x0a010203n }));
  assert.ok(!cidrContains(cidr("10.0.0.0/8"), { family: 4, value: 0x0b000000n }));
  assert.ok(!cidrContains(cidr("::/0"), { family: 4, value: 1n }));
  assert.ok(cidrOverlaps(cidr("0.0.0.0/0"), cidr("192.168.0.0/16")));
  assert.ok(cidrOverlaps(cidr("192.168.1.0/24"), cidr("192.168.0.0/16")));
  assert.ok(!cidrOverlaps(cidr("192.169.0.0/16"), cidr("192.168.0.0/16")));
});

void test("hosts and DNS patterns", () => {
  for (const good of ["example.com", "api.example.com.", "localhost", "xn--bcher-kva.de", "bücher.de", "10.0.0.1", "::1", "[::1]"]) {
    assert.ok(isHost(good), good);
  }
  for (const bad of ["https://example.com", "example.com:443", "example.com/path", "a b", "", "-bad.com", "*.example.com"]) {
    assert.ok(!isHost(bad), bad);
  }
  assert.ok(isDnsPattern("*.example.com"));
  assert.ok(isDnsPattern("example.com"));
  assert.ok(!isDnsPattern("*example.com"));
  assert.ok(!isDnsPattern("*.*.example.com"));
  assert.ok(!isDnsPattern("a.*.example.com"));
});

void test("the compiled schema accepts a full policy and refuses unknown keys everywhere", () => {
  const validate = policyValidator();
  assert.ok(validate({ version: "1.0", network: { allowed_ranges: ["10.0.0.0/8"] }, tools: { rate_limits: { default: 1, any_tool: 2 } } }));
  assert.ok(!validate({ version: "1.0", extra: 1 }));
  assert.ok(!validate({ version: "1.0", audit: { extra: 1 } }));
  assert.ok(!validate({ version: "1.0", network: { allowed_endpoints: [{ host: "a.example", ports: [1], extra: 1 }] } }));
  assert.ok(!validate({ version: "1.0", tools: { rate_limits: { __proto__x: 1, "no spaces": 1 } } }));
  assert.equal(policyValidator(), validate);
});

void test("issues format as file:line:column: key: message", () => {
  assert.equal(formatIssue("p.yaml", { line: 3, column: 5, key: "a.b", message: "bad" }), "p.yaml:3:5: a.b: bad");
  assert.equal(formatIssue("p.yaml", { key: "", message: "bad" }), "p.yaml: bad");
  const error = new PolicyError("POLICY_UNREADABLE", "p.yaml", [{ key: "", message: "gone" }]);
  assert.equal(error.message, "p.yaml: gone");
  assert.equal(error.code, "POLICY_UNREADABLE");
  assert.equal(error.name, "PolicyError");
});
