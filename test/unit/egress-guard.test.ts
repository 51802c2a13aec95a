import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkAddress,
  checkHostname,
  checkUrl,
  compileNetworkPolicy,
  NetworkPolicyError,
  normalizeAddress,
  type CompiledNetworkPolicy,
} from "../../src/security/egress-guard.js";
import type { NetworkPolicy } from "../../src/security/policy-types.js";

function policy(overrides: Partial<NetworkPolicy> = {}): NetworkPolicy {
  return {
    allowed_ranges: [],
    allowed_endpoints: [],
    blocked_ports: [],
    allow_dns: false,
    dns_allowlist: [],
    max_response_bytes: 1_000_000,
    timeout: 10,
    ...overrides,
  };
}

function compile(overrides: Partial<NetworkPolicy> = {}): CompiledNetworkPolicy {
  return compileNetworkPolicy(policy(overrides));
}

function denied(verdict: { ok: boolean; reason?: string; code?: string }, pattern: RegExp, code = "EGRESS_DENIED"): void {
  assert.equal(verdict.ok, false, "expected a refusal");
  assert.equal(verdict.code, code);
  assert.match(verdict.reason ?? "", pattern);
}

/** The seed's shipped network section, unchanged. */
const seed = policy({
  allowed_ranges: ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fe80::/10"],
  allowed_endpoints: [
    { host: "api.duckduckgo.com", ports: [443] },
    { host: "html.duckduckgo.com", ports: [443] },
  ],
  blocked_ports: [22],
  allow_dns: true,
  dns_allowlist: ["api.duckduckgo.com", "html.duckduckgo.com"],
});

void test("normalizeAddress canonicalizes IPv4, IPv6 and IPv4-mapped IPv6", () => {
  assert.deepEqual(normalizeAddress("127.0.0.1"), { address: "127.0.0.1", family: 4 });
  assert.deepEqual(normalizeAddress("::ffff:127.0.0.1"), { address: "127.0.0.1", family: 4 });
  assert.deepEqual(normalizeAddress("::FFFF:7f00:1"), { address: "127.0.0.1", family: 4 });
  assert.deepEqual(normalizeAddress("0:0:0:0:0:ffff:a00:5"), { address: "10.0.0.5", family: 4 });
  assert.deepEqual(normalizeAddress("2001:DB8:0:0:0:0:0:1"), { address: "2001:db8::1", family: 6 });
  assert.deepEqual(normalizeAddress("fe80::1%eth0"), { address: "fe80::1", family: 6 });
  assert.deepEqual(normalizeAddress("::"), { address: "::", family: 6 });
  assert.deepEqual(normalizeAddress("1:0:0:2:0:0:0:3"), { address: "1:0:0:2::3", family: 6 });
  for (const bad of ["", "localhost", "127.1", "0127.0.0.1", "256.0.0.1", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "::1.2.3"]) {
    assert.equal(normalizeAddress(bad), undefined, bad);
  }
});

void test("an empty policy allows no egress at all", () => {
  const compiled = compile();
  denied(checkUrl(compiled, "https://example.com/"), /DNS resolution is disabled/);
  denied(checkUrl(compiled, "http://93.184.216.34/"), /93\.184\.216\.34:80 refused: address not in network\.allowed_ranges/);
  denied(checkUrl(compiled, "http://[2606:2800:220:1::1]/"), /\[2606:2800:220:1::1\]:80 refused: address not in network\.allowed_ranges/);
  denied(checkAddress(compiled, "8.8.8.8", 443, "dns.google"), /resolved from dns\.google/);
});

void test("checkUrl refuses other schemes, credentials and malformed URLs without throwing", () => {
  const compiled = compile({ allowed_ranges: ["0.0.0.0/0"] });
  denied(checkUrl(compiled, "file:///etc/passwd"), /scheme "file" refused/);
  denied(checkUrl(compiled, "ftp://8.8.8.8/"), /scheme "ftp" refused/);
  denied(checkUrl(compiled, "gopher://8.8.8.8:70/"), /only http and https/);
  denied(checkUrl(compiled, "http://user:pass@8.8.8.8/"), /credentials/);
  denied(checkUrl(compiled, "http://8.8.8.8@127.0.0.1/"), /credentials/);
  denied(checkUrl(compiled, "http://8.8.8.8:99999/"), /not a valid absolute URL/, "EGRESS_INVALID_URL");
  denied(checkUrl(compiled, "http://8.8.8.8:0/"), /port 0/, "EGRESS_INVALID_URL");
  denied(checkUrl(compiled, "not a url"), /not a valid absolute URL/, "EGRESS_INVALID_URL");
  denied(checkUrl(compiled, "/relative/path"), /not a valid absolute URL/, "EGRESS_INVALID_URL");
  const ok = checkUrl(compiled, "http://8.8.8.8:8080/x");
  assert.ok(ok.ok);
  assert.deepEqual({ host: ok.target.host, port: ok.target.port, ip: ok.target.ip }, { host: "8.8.8.8", port: 8080, ip: "8.8.8.8" });
  const https = checkUrl(compiled, "https://8.8.8.8/");
  assert.ok(https.ok);
  assert.equal(https.target.port, 443);
});

void test("IP literals in every encoding are normalized and refused when loopback is not allowed", () => {
  const compiled = compile({ allowed_ranges: ["0.0.0.0/0", "::/0"] });
  for (const url of [
    "http://127.0.0.1/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/",
  ]) {
    denied(checkUrl(compiled, url), /connection to 127\.0\.0\.1:80 refused: loopback address/, "EGRESS_DENIED");
  }
  denied(checkUrl(compiled, "http://[::1]/"), /\[::1\]:80 refused: unspecified, loopback/);
  denied(checkUrl(compiled, "http://[::]/"), /\[::\]:80 refused/);
  denied(checkUrl(compiled, "http://0.0.0.0/"), /unspecified/);
  denied(checkUrl(compiled, "http://0/"), /0\.0\.0\.0:80 refused/);
});

void test("special-purpose addresses are refused even when a wide range covers them", () => {
  const compiled = compile({ allowed_ranges: ["0.0.0.0/0", "::/0"] });
  const cases: Array<[string, RegExp]> = [
    ["169.254.169.254", /metadata/],
    ["100.64.1.1", /CGNAT/],
    ["198.18.0.1", /benchmarking/],
    ["224.0.0.1", /multicast/],
    ["240.0.0.1", /reserved/],
    ["255.255.255.255", /reserved/],
    ["10.1.2.3", /private/],
    ["172.20.0.1", /private/],
    ["192.168.1.1", /private/],
    ["fd00::1", /unique local/],
    ["fe80::1", /link-local/],
    ["ff02::1", /multicast/],
    ["64:ff9b::7f00:1", /NAT64/],
    ["192.0.2.1", /documentation/],
    ["198.51.100.1", /documentation/],
    ["203.0.113.9", /documentation/],
    ["192.88.99.1", /6to4 relay/],
    ["100::1", /discard/],
    ["2001:db8::1", /documentation/],
    ["3fff:fff::1", /documentation/],
    ["2001:2::1", /benchmarking/],
    ["5f00:1:2::1", /segment routing/],
    ["::ffff:0:7f00:1", /IPv4-translated/],
    ["2002:7f00:1::1", /6to4/],
    ["2001:0:4136:e378::1", /Teredo/],
    ["::7f00:1", /IPv4-compatible/],
  ];
  for (const [address, label] of cases) denied(checkAddress(compiled, address, 80, address), label);
  assert.deepEqual(checkAddress(compiled, "93.184.216.34", 80, "93.184.216.34"), { ok: true });
  assert.deepEqual(checkAddress(compiled, "2606:2800:220:1::1", 443, "example.com"), { ok: true });
  // The neighbours of the IPv6 ranges stay ordinary (global) addresses.
  for (const address of ["3fff:1000::1", "2001:3::1", "5eff::1", "6000::1"]) {
    assert.deepEqual(checkAddress(compiled, address, 443, address), { ok: true }, address);
  }
});

void test("a special range is reachable when allowed_ranges explicitly lists a range inside it", () => {
  const compiled = compile({ allowed_ranges: ["127.0.0.1/32", "10.0.0.0/8", "169.254.169.254/32", "::1/128"] });
  assert.deepEqual(checkAddress(compiled, "127.0.0.1", 8080, "127.0.0.1"), { ok: true });
  assert.deepEqual(checkAddress(compiled, "::ffff:127.0.0.1", 8080, "127.0.0.1"), { ok: true });
  assert.deepEqual(checkAddress(compiled, "10.200.0.1", 80, "intranet.example"), { ok: true });
  assert.deepEqual(checkAddress(compiled, "169.254.169.254", 80, "169.254.169.254"), { ok: true });
  assert.deepEqual(checkAddress(compiled, "::1", 80, "::1"), { ok: true });
  denied(checkAddress(compiled, "127.0.0.2", 80, "127.0.0.2"), /loopback/);
  denied(checkAddress(compiled, "169.254.169.253", 80, "169.254.169.253"), /link-local/);
});

void test("an allowed NAT64 or 6to4 prefix does not reach the special IPv4 addresses it carries", () => {
  // An IPv6-only host behind DNS64 must list 64:ff9b::/96: every IPv4 destination resolves into it.
  const compiled = compile({
    allowed_ranges: ["64:ff9b::/96", "2002::/16", "::ffff:0:0:0/96", "10.1.0.0/16"],
    allowed_endpoints: [{ host: "64:ff9b::7f00:1", ports: [11434] }],
  });
  assert.deepEqual(checkAddress(compiled, "64:ff9b::5db8:d822", 443, "api.example.com"), { ok: true }, "93.184.216.34 through NAT64");
  assert.deepEqual(checkAddress(compiled, "2002:5db8:d822::1", 443, "2002:5db8:d822::1"), { ok: true });
  assert.deepEqual(checkAddress(compiled, "::ffff:0:5db8:d822", 443, "::ffff:0:5db8:d822"), { ok: true });
  const cases: Array<[string, RegExp]> = [
    ["64:ff9b::a9fe:a9fe", /\[64:ff9b::a9fe:a9fe\]:80 refused: this NAT64 .* address carries 169\.254\.169\.254, a link-local .*metadata/],
    ["64:ff9b::7f00:1", /carries 127\.0\.0\.1, a loopback address/],
    ["64:ff9b::a00:5", /carries 10\.0\.0\.5, a private address/],
    ["64:ff9b::6440:1", /carries 100\.64\.0\.1, a shared address space/],
    ["2002:7f00:1::", /this 6to4 .* address carries 127\.0\.0\.1, a loopback address/],
    ["2002:c0a8:101::1", /carries 192\.168\.1\.1, a private address/],
    ["::ffff:0:a9fe:a9fe", /this IPv4-translated .* carries 169\.254\.169\.254/],
  ];
  for (const [address, pattern] of cases) denied(checkAddress(compiled, address, 80, address), pattern);
  denied(checkUrl(compiled, "http://[64:ff9b::169.254.169.254]/latest/meta-data/"), /carries 169\.254\.169\.254/);
  // An IPv4 range listed inside the special range allows it through the prefix too, and an
  // endpoint naming the IPv6 address itself is the owner's explicit choice.
  assert.deepEqual(checkAddress(compiled, "64:ff9b::a01:203", 80, "64:ff9b::a01:203"), { ok: true }, "10.1.2.3 is in the listed 10.1.0.0/16");
  assert.deepEqual(checkAddress(compiled, "64:ff9b::7f00:1", 11434, "64:ff9b::7f00:1"), { ok: true });
  denied(checkAddress(compiled, "64:ff9b::7f00:1", 11435, "64:ff9b::7f00:1"), /carries 127\.0\.0\.1/);
});

void test("an allowed local-use NAT64 prefix (64:ff9b:1::/48) does not reach the special IPv4 addresses it carries, whatever its length", () => {
  // RFC 8215: the translator picks the prefix length (/48 to /96), so the IPv4 address sits where RFC 6052 puts it for that length.
  const compiled = compile({ allowed_ranges: ["64:ff9b:1::/48"] });
  assert.deepEqual(checkAddress(compiled, "64:ff9b:1::5db8:d822", 443, "api.example.com"), { ok: true }, "93.184.216.34 in the /96 layout");
  assert.deepEqual(checkAddress(compiled, "64:ff9b:1:abcd:5d:b8d8:2200:0", 443, "api.example.com"), { ok: true }, "93.184.216.34 in the /64 layout");
  const cases: Array<[string, RegExp]> = [
    ["64:ff9b:1::a9fe:a9fe", /this local NAT64 .* address carries 169\.254\.169\.254, a link-local/],
    ["64:ff9b:1:abcd::7f00:1", /carries 127\.0\.0\.1, a loopback address/],
    ["64:ff9b:1:abcd:a9:fea9:fe00:0", /carries 169\.254\.169\.254/],
    ["64:ff9b:1:ab0a:0:102::", /carries 10\.0\.1\.2, a private address/],
    ["64:ff9b:1:a9fe:a9:fe00::", /carries 169\.254\.169\.254/],
  ];
  for (const [address, pattern] of cases) denied(checkAddress(compiled, address, 80, address), pattern);
  denied(checkUrl(compiled, "http://[64:ff9b:1::169.254.169.254]/latest/meta-data/"), /carries 169\.254\.169\.254/);
});

void test("IPv6 ranges never cover IPv4 addresses, and mapped ranges count as IPv4", () => {
  const v6only = compile({ allowed_ranges: ["::/0"] });
  denied(checkAddress(v6only, "93.184.216.34", 80, "93.184.216.34"), /not in network\.allowed_ranges/);
  const mapped = compile({ allowed_ranges: ["::ffff:93.184.216.0/120"] });
  assert.deepEqual(checkAddress(mapped, "93.184.216.34", 80, "93.184.216.34"), { ok: true });
  assert.deepEqual(checkAddress(mapped, "::ffff:93.184.216.34", 80, "x"), { ok: true });
  denied(checkAddress(mapped, "93.184.217.34", 80, "93.184.217.34"), /not in network\.allowed_ranges/);
});

void test("blocked ports are refused first, even inside an allowed range or endpoint", () => {
  const compiled = compile({
    allowed_ranges: ["127.0.0.1/32"],
    allowed_endpoints: [{ host: "git.example.com", ports: [22] }],
    blocked_ports: [22, 6379],
    allow_dns: true,
    dns_allowlist: ["git.example.com"],
  });
  denied(checkAddress(compiled, "127.0.0.1", 6379, "127.0.0.1"), /127\.0\.0\.1:6379 refused: port 6379 is in network\.blocked_ports/);
  denied(checkAddress(compiled, "93.184.216.34", 22, "git.example.com"), /port 22 is in network\.blocked_ports/);
  denied(checkUrl(compiled, "http://git.example.com:22/"), /git\.example\.com:22 refused: port 22/);
  denied(checkUrl(compiled, "http://127.0.0.1:6379/"), /port 6379/);
  assert.ok(checkUrl(compiled, "http://127.0.0.1:8080/").ok);
});

void test("an endpoint name allows its ports on non-special addresses only", () => {
  const compiled = compile({ allowed_endpoints: [{ host: "api.example.com", ports: [443] }] });
  assert.ok(checkUrl(compiled, "https://api.example.com/v1").ok);
  assert.ok(checkUrl(compiled, "https://API.Example.COM./v1").ok, "case and a trailing dot do not matter");
  assert.deepEqual(checkAddress(compiled, "93.184.216.34", 443, "api.example.com"), { ok: true });
  denied(checkAddress(compiled, "93.184.216.34", 80, "api.example.com"), /not in network\.allowed_ranges/);
  denied(checkAddress(compiled, "127.0.0.1", 443, "api.example.com"), /127\.0\.0\.1:443 \(resolved from api\.example\.com\) refused: loopback/);
  denied(checkAddress(compiled, "169.254.169.254", 443, "api.example.com"), /metadata/);
  denied(checkAddress(compiled, "10.0.0.5", 443, "api.example.com"), /private/);
  denied(checkUrl(compiled, "http://api.example.com/"), /DNS resolution is disabled/);
  denied(checkUrl(compiled, "https://other.example.com/"), /other\.example\.com refused/);
});

void test("an endpoint that names an IP address allows exactly that address and port", () => {
  const compiled = compile({ allowed_endpoints: [{ host: "127.0.0.1", ports: [11434] }, { host: "[::1]", ports: [8080] }] });
  assert.ok(checkUrl(compiled, "http://127.0.0.1:11434/api").ok);
  assert.ok(checkUrl(compiled, "http://2130706433:11434/api").ok, "another encoding of the same address");
  assert.ok(checkUrl(compiled, "http://[::1]:8080/").ok);
  denied(checkUrl(compiled, "http://127.0.0.1:11435/"), /loopback/);
  denied(checkUrl(compiled, "http://127.0.0.2:11434/"), /loopback/);
  // A name with an empty label is no name, even when it would re-parse as the endpoint's IP: it
  // would be sent to the resolver as the name "127.0.0.1.".
  denied(checkUrl(compiled, "http://127.0.0.1..:11434/api"), /"127\.0\.0\.1\.\." is not a host name \(one like api\.example\.com: no empty labels/, "EGRESS_INVALID_URL");
  // A name that resolves to the address is not the endpoint: names must be allowed themselves.
  denied(checkAddress(compiled, "127.0.0.1", 11434, "evil.example"), /resolved from evil\.example/);
});

void test("an endpoint host that URL parsing reads as an IP address (127.1, 0x7f000001, a trailing dot) names that address", () => {
  // The policy schema takes these as host names; every URL that reaches them is the IP literal.
  for (const host of ["127.1", "0x7f000001", "127.0.0.1.", "0177.0.0.1"]) {
    const compiled = compile({ allowed_endpoints: [{ host, ports: [11434] }] });
    assert.deepEqual(checkUrl(compiled, "http://127.0.0.1:11434/api").ok, true, host);
    assert.deepEqual(checkAddress(compiled, "127.0.0.1", 11434, "127.0.0.1"), { ok: true }, host);
    denied(checkUrl(compiled, "http://127.0.0.1:11435/"), /loopback/);
    denied(checkUrl(compiled, "http://127.0.0.2:11434/"), /loopback/);
    denied(checkAddress(compiled, "127.0.0.1", 11434, "evil.example"), /resolved from evil\.example/);
  }
});

void test("checkHostname follows allow_dns and the dns_allowlist (exact, or one label under *.)", () => {
  const compiled = compile({
    allow_dns: true,
    dns_allowlist: ["api.example.com", "*.cdn.example.net", "bücher.example"],
    allowed_endpoints: [{ host: "*.svc.example.org", ports: [443] }],
  });
  assert.deepEqual(checkHostname(compiled, "api.example.com", 443), { ok: true });
  assert.deepEqual(checkHostname(compiled, "a.cdn.example.net", 80), { ok: true });
  assert.deepEqual(checkHostname(compiled, "xn--bcher-kva.example", 80), { ok: true });
  assert.deepEqual(checkHostname(compiled, "x.svc.example.org", 443), { ok: true });
  denied(checkHostname(compiled, "a.b.cdn.example.net", 80), /not in network\.dns_allowlist/);
  denied(checkHostname(compiled, "cdn.example.net", 80), /not in network\.dns_allowlist/);
  denied(checkHostname(compiled, "evilapi.example.com", 80), /not in network\.dns_allowlist/);
  denied(checkHostname(compiled, "api.example.com.evil.test", 80), /not in network\.dns_allowlist/);
  denied(checkHostname(compiled, "x.svc.example.org", 80), /not in network\.dns_allowlist/);
  assert.deepEqual(checkHostname(compiled, "api.example.com.", 443), { ok: true }, "one trailing dot: an absolute name");
  for (const name of ["api.example.com..", "api..example.com", ".api.example.com", "a..cdn.example.net", "."]) {
    denied(checkHostname(compiled, name, 443), /is not a host name/, "EGRESS_INVALID_URL");
  }
  denied(checkUrl(compiled, "http://api.example.com../"), /is not a host name/, "EGRESS_INVALID_URL");
  assert.ok(checkUrl(compiled, "http://api.example.com./").ok);
  assert.deepEqual(checkHostname(compiled, "127.0.0.1", 80), { ok: true }, "IP literals are not resolved; checkAddress decides");

  const noDns = compile({ allow_dns: false, dns_allowlist: ["api.example.com"], allowed_endpoints: [{ host: "x.example", ports: [443] }] });
  denied(checkHostname(noDns, "api.example.com", 443), /network\.allow_dns is false/);
  assert.deepEqual(checkHostname(noDns, "x.example", 443), { ok: true });
  const emptyList = compile({ allow_dns: true });
  denied(checkHostname(emptyList, "example.com", 443), /not in network\.dns_allowlist/);
});

void test("localhost gets no special treatment", () => {
  const compiled = compile({ allowed_ranges: ["0.0.0.0/0"], allow_dns: true, dns_allowlist: ["example.com"] });
  denied(checkUrl(compiled, "http://localhost:6379/"), /host localhost refused: not in network\.dns_allowlist/);
  const listed = compile({ allow_dns: true, dns_allowlist: ["localhost"] });
  assert.ok(checkUrl(listed, "http://localhost:6379/").ok, "the name may be resolved...");
  denied(checkAddress(listed, "127.0.0.1", 6379, "localhost"), /loopback/, "EGRESS_DENIED");
});

void test("the seed policy: what it lists is allowed; metadata and public space are not", () => {
  const compiled = compileNetworkPolicy(seed);
  assert.ok(checkUrl(compiled, "http://10.0.0.5:8080/").ok, "the seed explicitly lists 10/8");
  assert.ok(checkUrl(compiled, "https://api.duckduckgo.com/?q=x").ok);
  denied(checkUrl(compiled, "http://169.254.169.254/latest/meta-data/"), /metadata/);
  denied(checkUrl(compiled, "http://127.0.0.1:22/"), /port 22/);
  denied(checkUrl(compiled, "http://8.8.8.8/"), /not in network\.allowed_ranges/);
  denied(checkAddress(compiled, "8.8.8.8", 443, "lite.duckduckgo.com"), /not in network\.allowed_ranges/);
});

void test("compileNetworkPolicy refuses entries it cannot enforce", () => {
  const bad: Array<Partial<NetworkPolicy>> = [
    { allowed_ranges: ["10.0.0.0/33"] },
    { allowed_ranges: ["10.0.0/8"] },
    { allowed_ranges: ["example.com"] },
    { allowed_ranges: ["fe80::1%eth0/64"] },
    { allowed_endpoints: [{ host: "a.example", ports: [0] }] },
    { allowed_endpoints: [{ host: "a.example", ports: [70000] }] },
    { allowed_endpoints: [{ host: "http://a.example/", ports: [80] }] },
    { blocked_ports: [-1] },
    { dns_allowlist: ["*.*.example.com"] },
    { dns_allowlist: ["a b"] },
  ];
  for (const overrides of bad) {
    assert.throws(() => compile(overrides), (error: unknown) => error instanceof NetworkPolicyError && error.code === "POLICY_INVALID", JSON.stringify(overrides));
  }
  assert.doesNotThrow(() => compile({ allowed_ranges: ["10.1.2.3/8", "192.0.2.1", "2001:db8::/32"] }));
});
