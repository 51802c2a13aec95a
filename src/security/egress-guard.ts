/**
 * Egress decisions: may this URL be fetched, may this name be resolved, may this
 * address be connected to. Pure functions over a network policy compiled once.
 *
 * The address check is the one that matters: it runs on the address actually
 * dialled (after DNS), so rebinding, IP-literal encodings and redirects all end up
 * in front of it. The URL and name checks exist to refuse early, before any DNS
 * query or connection leaves the machine.
 */
import { BlockList, isIPv4 } from "node:net";
import { truncate } from "../util/text.js";
import type { NetworkPolicy } from "./policy-types.js";

export type EgressDenialCode = "EGRESS_DENIED" | "EGRESS_INVALID_URL";

export type EgressDenial = { ok: false; code: EgressDenialCode; reason: string };
export type EgressVerdict = { ok: true } | EgressDenial;

/** What a URL names, once parsed and normalized. */
export interface EgressTarget {
  url: URL;
  protocol: "http:" | "https:";
  /** Lower-case host name without a trailing dot, or the canonical IP (no brackets). */
  host: string;
  port: number;
  /** Set when the host is an IP literal (IPv4-mapped IPv6 already turned into IPv4). */
  ip?: string;
}

export type UrlVerdict = { ok: true; target: EgressTarget } | EgressDenial;

/** Thrown by `compileNetworkPolicy` for a policy that cannot be enforced as written. */
export class NetworkPolicyError extends Error {
  readonly code = "POLICY_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "NetworkPolicyError";
  }
}

interface HostPattern {
  /** Exact host, or the suffix after `*.` for a one-label wildcard. */
  value: string;
  wildcard: boolean;
}

interface CompiledEndpoint {
  pattern: HostPattern;
  ports: ReadonlySet<number>;
  /** For an IP-literal host: the canonical address. The owner named it, so it may be special. */
  ip?: string;
}

interface FamilyLists {
  v4: BlockList;
  v6: BlockList;
}

export interface CompiledNetworkPolicy {
  readonly allowedRanges: FamilyLists;
  /** Allowed ranges that lie wholly inside a special-purpose range: the owner's explicit exceptions. */
  readonly explicitSpecial: FamilyLists;
  readonly endpoints: readonly CompiledEndpoint[];
  readonly blockedPorts: ReadonlySet<number>;
  readonly allowDns: boolean;
  readonly dnsAllowlist: readonly HostPattern[];
}

// ---------------------------------------------------------------------------
// Special-purpose ranges
// ---------------------------------------------------------------------------

interface Cidr {
  bytes: Uint8Array;
  prefix: number;
  family: 4 | 6;
}

/**
 * Never reachable through an endpoint name, and reachable at all only when an
 * `allowed_ranges` entry lies inside the range (listing `0.0.0.0/0` does not count).
 * Private RFC 1918 space is here too: a public name that resolves into the LAN is
 * the classic SSRF shape; owners who want LAN hosts list the LAN range.
 * The third field, for translation and tunnel prefixes that carry an IPv4 address, is where:
 * a byte offset, or "rfc6052" when the place depends on the translator's prefix length. See
 * `checkEmbedded`.
 */
const SPECIAL_RANGES: ReadonlyArray<readonly [string, string, Embedding?]> = [
  ["0.0.0.0/8", "unspecified (this network)"],
  ["10.0.0.0/8", "private"],
  ["100.64.0.0/10", "shared address space (CGNAT)"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local (includes the cloud metadata address 169.254.169.254)"],
  ["172.16.0.0/12", "private"],
  ["192.0.0.0/24", "IETF protocol assignments"],
  ["192.168.0.0/16", "private"],
  ["192.0.2.0/24", "documentation (TEST-NET-1)"],
  ["192.88.99.0/24", "6to4 relay anycast (deprecated)"],
  ["198.18.0.0/15", "benchmarking"],
  ["198.51.100.0/24", "documentation (TEST-NET-2)"],
  ["203.0.113.0/24", "documentation (TEST-NET-3)"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved (includes broadcast)"],
  ["::/96", "unspecified, loopback or IPv4-compatible"],
  ["::ffff:0:0:0/96", "IPv4-translated (embeds an IPv4 address)", 12],
  ["64:ff9b::/96", "NAT64 (embeds an IPv4 address)", 12],
  ["100::/64", "discard-only"],
  ["2001:db8::/32", "documentation"],
  ["3fff::/20", "documentation"],
  ["2001:2::/48", "benchmarking"],
  ["5f00::/16", "segment routing (SRv6) SIDs"],
  ["64:ff9b:1::/48", "local NAT64 (embeds an IPv4 address)", "rfc6052"],
  ["2001::/32", "Teredo (embeds an IPv4 address)"],
  ["2002::/16", "6to4 (embeds an IPv4 address)", 2],
  ["fc00::/7", "unique local"],
  ["fe80::/10", "link-local"],
  ["fec0::/10", "site-local (deprecated)"],
  ["ff00::/8", "multicast"],
];

type Embedding = number | "rfc6052";

interface SpecialRange {
  cidr: Cidr;
  label: string;
  /** Where the range's addresses carry an IPv4 address (NAT64, 6to4, SIIT). */
  embedsAt?: Embedding;
}

/**
 * The bytes holding the IPv4 address under a NAT64 prefix of /48, /56, /64 and /96 (RFC 6052,
 * which skips byte 8, the u octet): the lengths a local-use prefix inside 64:ff9b:1::/48 may have.
 */
const RFC6052_LAYOUTS: ReadonlyArray<readonly number[]> = [
  [6, 7, 9, 10],
  [7, 9, 10, 11],
  [9, 10, 11, 12],
  [12, 13, 14, 15],
];

let specialRanges: readonly SpecialRange[] | undefined;

/** The parsed table, made on first use: a start that never checks an address skips it. */
function special(): readonly SpecialRange[] {
  specialRanges ??= SPECIAL_RANGES.map(([text, label, embedsAt]) => {
    const cidr = parseCidr(text);
    if (cidr === undefined) throw new Error(`internal: bad special range ${text}`);
    return embedsAt === undefined ? { cidr, label } : { cidr, label, embedsAt };
  });
  return specialRanges;
}

// ---------------------------------------------------------------------------
// Compilation
// ---------------------------------------------------------------------------

/** Compiles the network policy once; throws `NetworkPolicyError` on an entry it cannot enforce. */
export function compileNetworkPolicy(policy: NetworkPolicy): CompiledNetworkPolicy {
  const allowedRanges = familyLists();
  const explicitSpecial = familyLists();
  for (const entry of policy.allowed_ranges) {
    const cidr = parseCidr(entry);
    if (cidr === undefined) {
      throw new NetworkPolicyError(`network.allowed_ranges: "${entry}" is not a CIDR range (like 10.0.0.0/8 or fd00::/8)`);
    }
    addCidr(allowedRanges, cidr);
    if (special().some((range) => cidrWithin(cidr, range.cidr))) addCidr(explicitSpecial, cidr);
  }

  const endpoints = policy.allowed_endpoints.map((endpoint, index): CompiledEndpoint => {
    const where = `network.allowed_endpoints[${index}]`;
    const ports = new Set<number>();
    for (const port of endpoint.ports) {
      if (!isPort(port)) throw new NetworkPolicyError(`${where}.ports: ${String(port)} is not a port (1-65535)`);
      ports.add(port);
    }
    const ip = normalizeAddress(stripBrackets(endpoint.host));
    if (ip !== undefined) return { pattern: { value: ip.address, wildcard: false }, ports, ip: ip.address };
    const pattern = compileHostPattern(endpoint.host, `${where}.host`);
    // URL parsing reads `127.1`, `0x7f000001` or `127.0.0.1.` as an IPv4 address, and so does
    // every URL naming it: the owner named that address, not a name to resolve.
    const parsed = pattern.wildcard ? undefined : normalizeAddress(pattern.value);
    if (parsed !== undefined) return { pattern: { value: parsed.address, wildcard: false }, ports, ip: parsed.address };
    return { pattern, ports };
  });

  const blockedPorts = new Set<number>();
  for (const port of policy.blocked_ports) {
    if (!isPort(port)) throw new NetworkPolicyError(`network.blocked_ports: ${String(port)} is not a port (1-65535)`);
    blockedPorts.add(port);
  }

  const dnsAllowlist = policy.dns_allowlist.map((host, index) => compileHostPattern(host, `network.dns_allowlist[${index}]`));

  return { allowedRanges, explicitSpecial, endpoints, blockedPorts, allowDns: policy.allow_dns, dnsAllowlist };
}

function familyLists(): FamilyLists {
  return { v4: new BlockList(), v6: new BlockList() };
}

function addCidr(lists: FamilyLists, cidr: Cidr): void {
  // Separate lists per family: a BlockList's IPv6 rules also match IPv4 addresses
  // (through their mapped form), so `::/0` would otherwise allow all of IPv4.
  if (cidr.family === 4) lists.v4.addSubnet(formatAddress(cidr.bytes), cidr.prefix, "ipv4");
  else lists.v6.addSubnet(formatAddress(cidr.bytes), cidr.prefix, "ipv6");
}

function inLists(lists: FamilyLists, address: string, family: 4 | 6): boolean {
  return family === 4 ? lists.v4.check(address, "ipv4") : lists.v6.check(address, "ipv6");
}

function compileHostPattern(raw: string, where: string): HostPattern {
  const wildcard = raw.startsWith("*.");
  const body = wildcard ? raw.slice(2) : raw;
  const host = canonicalHostName(body);
  if (host === undefined || host.includes("*") || host === "") {
    throw new NetworkPolicyError(`${where}: "${raw}" is not a host name (exact, or *.example.com for one label)`);
  }
  return { value: host, wildcard };
}

/** The host name as URL parsing would produce it (lower case, IDNA), without a trailing dot. */
function canonicalHostName(raw: string): string | undefined {
  if (raw === "" || /[/?#@:\s\\]/.test(raw)) return undefined;
  // One trailing dot is the root (an absolute name); an empty label anywhere else makes no DNS
  // name. Re-parsed, `127.0.0.1.` (left of `127.0.0.1..`) would become the IP 127.0.0.1 and match
  // an endpoint naming that IP, while the resolver was sent the name.
  if (stripTrailingDot(raw).split(".").includes("")) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(`http://${raw}/`);
  } catch {
    return undefined;
  }
  return stripTrailingDot(parsed.hostname);
}

function stripTrailingDot(host: string): string {
  return host.endsWith(".") ? host.slice(0, -1) : host;
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

function isPort(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535;
}

function matchesPattern(pattern: HostPattern, host: string): boolean {
  if (!pattern.wildcard) return host === pattern.value;
  const suffix = `.${pattern.value}`;
  if (!host.endsWith(suffix)) return false;
  const label = host.slice(0, -suffix.length);
  return label !== "" && !label.includes(".");
}

// ---------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------

/**
 * May this URL be fetched? Parses with WHATWG URL (which normalizes decimal, octal,
 * hex and short IPv4 forms), refuses other schemes and credentials, and for an IP
 * literal checks the address itself; for a name, whether it may be resolved.
 */
export function checkUrl(compiled: CompiledNetworkPolicy, url: string): UrlVerdict {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Without its query string and fragment, which may hold secrets (an API key), as every message about a URL.
    return deny("EGRESS_INVALID_URL", `"${truncate(url.replace(/[?#][\s\S]*$/, ""), 200)}" is not a valid absolute URL (a port must be 1-65535)`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return deny("EGRESS_DENIED", `scheme "${parsed.protocol.slice(0, -1)}" refused: only http and https are allowed`);
  }
  if (parsed.username !== "" || parsed.password !== "") {
    return deny("EGRESS_DENIED", "URLs with credentials (user:password@) are refused; send credentials in a header instead");
  }
  const port = parsed.port === "" ? (parsed.protocol === "https:" ? 443 : 80) : Number(parsed.port);
  if (!isPort(port)) return deny("EGRESS_INVALID_URL", `port ${parsed.port} is not a port (1-65535)`);
  const rawHost = stripBrackets(parsed.hostname);
  if (rawHost === "") return deny("EGRESS_INVALID_URL", "the URL has no host");

  const ip = normalizeAddress(rawHost);
  if (ip !== undefined) {
    const verdict = checkAddress(compiled, ip.address, port, ip.address);
    if (!verdict.ok) return verdict;
    return { ok: true, target: { url: parsed, protocol: parsed.protocol, host: ip.address, port, ip: ip.address } };
  }
  const host = stripTrailingDot(rawHost);
  if (compiled.blockedPorts.has(port)) return deny("EGRESS_DENIED", `connection to ${host}:${port} refused: port ${port} is in network.blocked_ports`);
  // The name as written: checkHostname takes off the one trailing dot an absolute name may have.
  const verdict = checkHostname(compiled, rawHost, port);
  if (!verdict.ok) return verdict;
  return { ok: true, target: { url: parsed, protocol: parsed.protocol, host, port } };
}

/**
 * May this name be resolved at all? Yes when it is an `allowed_endpoints` host for
 * this port, or when `allow_dns` is on and it matches `dns_allowlist` (an empty list
 * allows no names). An IP literal needs no resolution and is left to `checkAddress`.
 */
export function checkHostname(compiled: CompiledNetworkPolicy, host: string, port: number): EgressVerdict {
  if (normalizeAddress(stripBrackets(host)) !== undefined) return { ok: true };
  const name = canonicalHostName(host);
  if (name === undefined) return deny("EGRESS_INVALID_URL", `"${truncate(host, 200)}" is not a host name (one like api.example.com: no empty labels, none of / ? # @ : \\ or spaces)`);
  if (endpointFor(compiled, name, port) !== undefined) return { ok: true };
  if (!compiled.allowDns) {
    return deny("EGRESS_DENIED", `host ${name} refused: DNS resolution is disabled (network.allow_dns is false) and ${name}:${port} is not in network.allowed_endpoints`);
  }
  if (compiled.dnsAllowlist.some((pattern) => matchesPattern(pattern, name))) return { ok: true };
  return deny("EGRESS_DENIED", `host ${name} refused: not in network.dns_allowlist, and ${name}:${port} is not in network.allowed_endpoints`);
}

/**
 * May we connect to this address (the one actually dialled) on this port, for this
 * host name? Blocked ports first; then the address must be inside `allowed_ranges`,
 * or the host must be an allowed endpoint for this port and the address not
 * special-purpose. Special-purpose addresses pass only through an `allowed_ranges`
 * entry inside their range, or an endpoint that names the address itself.
 */
export function checkAddress(compiled: CompiledNetworkPolicy, address: string, port: number, hostname: string): EgressVerdict {
  const ip = normalizeAddress(address);
  if (ip === undefined) return deny("EGRESS_DENIED", `connection refused: "${truncate(address, 200)}" is not an IP address`);
  const where = ip.family === 6 ? `[${ip.address}]:${port}` : `${ip.address}:${port}`;
  if (!isPort(port)) return deny("EGRESS_INVALID_URL", `connection to ${where} refused: not a valid port`);
  if (compiled.blockedPorts.has(port)) return deny("EGRESS_DENIED", `connection to ${where} refused: port ${port} is in network.blocked_ports`);

  const host = normalizeAddress(stripBrackets(hostname))?.address ?? canonicalHostName(hostname);
  const endpoint = host === undefined ? undefined : endpointFor(compiled, host, port);
  if (endpoint?.ip !== undefined && endpoint.ip === ip.address) return { ok: true };

  const via = host !== undefined && host !== ip.address ? ` (resolved from ${host})` : "";
  const special = specialRange(ip);
  if (special !== undefined) {
    if (inLists(compiled.explicitSpecial, ip.address, ip.family)) return checkEmbedded(compiled, ip.address, special, `${where}${via}`);
    return deny(
      "EGRESS_DENIED",
      `connection to ${where}${via} refused: ${special.label} address; such addresses are reachable only through a network.allowed_ranges entry inside that range or a network.allowed_endpoints entry naming this address and port`,
    );
  }
  if (inLists(compiled.allowedRanges, ip.address, ip.family)) return { ok: true };
  if (endpoint !== undefined && endpoint.ip === undefined) return { ok: true };
  return deny("EGRESS_DENIED", `connection to ${where}${via} refused: address not in network.allowed_ranges`);
}

function endpointFor(compiled: CompiledNetworkPolicy, host: string, port: number): CompiledEndpoint | undefined {
  return compiled.endpoints.find((endpoint) => endpoint.ports.has(port) && matchesPattern(endpoint.pattern, host));
}

/** What an address that cannot be parsed counts as: special, so refused unless explicitly allowed. */
const UNPARSEABLE: SpecialRange = { cidr: { bytes: new Uint8Array(0), prefix: 0, family: 4 }, label: "unparseable" };

function specialRange(ip: { address: string; family: 4 | 6 }): SpecialRange | undefined {
  const bytes = addressBytes(ip.address);
  if (bytes === undefined) return UNPARSEABLE;
  return special().find((range) => range.cidr.family === ip.family && prefixEqual(bytes, range.cidr.bytes, range.cidr.prefix));
}

/**
 * An address of an allowed translation or tunnel prefix (an IPv6-only network lists
 * 64:ff9b::/96 so that DNS64 answers work) reaches the IPv4 address it carries: that address
 * must pass the special-range rule too, or loopback, the LAN and the metadata address are
 * one prefix away (`[64:ff9b::a9fe:a9fe]` is 169.254.169.254 through NAT64).
 */
function checkEmbedded(compiled: CompiledNetworkPolicy, address: string, range: SpecialRange, where: string): EgressVerdict {
  const bytes = addressBytes(address);
  if (range.embedsAt === undefined || bytes === undefined) return { ok: true };
  for (const v4 of embeddedAddresses(bytes, range.embedsAt)) {
    const inner = specialRange({ address: v4, family: 4 });
    if (inner === undefined || inLists(compiled.explicitSpecial, v4, 4)) continue;
    return deny(
      "EGRESS_DENIED",
      `connection to ${where} refused: this ${range.label} address carries ${v4}, a ${inner.label} address; it is reachable only when a network.allowed_ranges entry inside that IPv4 range is listed too, or through a network.allowed_endpoints entry naming this address and port`,
    );
  }
  return { ok: true };
}

/**
 * The IPv4 addresses an address may carry. A local NAT64 address does not say its prefix length
 * (the translator's setting), so it is read in every RFC 6052 layout it is well-formed in (u octet
 * and the bytes after the IPv4 address zero; the /96 layout always): none may be a way around.
 */
function embeddedAddresses(bytes: Uint8Array, embedsAt: Embedding): string[] {
  if (embedsAt !== "rfc6052") return [formatAddress(bytes.subarray(embedsAt, embedsAt + 4))];
  return RFC6052_LAYOUTS.filter((layout) => {
    const last = layout[3] ?? 15;
    return last === 15 || (bytes[8] === 0 && bytes.subarray(last + 1).every((byte) => byte === 0));
  }).map((layout) => formatAddress(Uint8Array.from(layout, (index) => bytes[index] ?? 0)));
}

function deny(code: EgressDenialCode, reason: string): EgressDenial {
  return { ok: false, code, reason };
}


// ---------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------

/**
 * The canonical form of an IP address, or undefined when `input` is not one.
 * IPv4 must be strict dotted decimal (URL parsing has already normalized other
 * forms); IPv6 is compressed per RFC 5952, a zone id is dropped, and an
 * IPv4-mapped address (`::ffff:a.b.c.d`) becomes the IPv4 address it carries.
 */
export function normalizeAddress(input: string): { address: string; family: 4 | 6 } | undefined {
  const bytes = addressBytes(input);
  if (bytes === undefined) return undefined;
  if (bytes.length === 16 && isMapped(bytes)) return { address: formatAddress(bytes.subarray(12)), family: 4 };
  return { address: formatAddress(bytes), family: bytes.length === 4 ? 4 : 6 };
}

function isMapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

function addressBytes(input: string): Uint8Array | undefined {
  if (isIPv4(input)) return parseIPv4(input);
  return parseIPv6(input);
}

function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i] ?? "";
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    bytes[i] = value;
  }
  return bytes;
}

function parseIPv6(input: string): Uint8Array | undefined {
  const zone = input.indexOf("%");
  let text = zone === -1 ? input : input.slice(0, zone);
  if (text === "" || !/^[0-9a-fA-F:.]+$/.test(text)) return undefined;

  let tail: Uint8Array | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".")) {
    tail = parseIPv4(text.slice(lastColon + 1));
    if (tail === undefined) return undefined;
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const toGroups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const groups: number[] = [];
    for (const group of part.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return undefined;
      groups.push(parseInt(group, 16));
    }
    return groups;
  };
  const head = toGroups(halves[0] ?? "");
  const rest = halves.length === 2 ? toGroups(halves[1] ?? "") : [];
  if (head === undefined || rest === undefined) return undefined;
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...new Array<number>(missing).fill(0), ...rest];
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    bytes[i * 2] = group >> 8;
    bytes[i * 2 + 1] = group & 0xff;
  });
  if (tail !== undefined) bytes.set(tail, 12);
  return bytes;
}

function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // RFC 5952: compress the longest run (at least two) of zero groups, the first on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart === -1) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const bytes = addressBytes(addressText);
  if (bytes === undefined || addressText.includes("%")) return undefined;
  const width = bytes.length * 8;
  let prefix = width;
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(prefixText)) return undefined;
    prefix = Number(prefixText);
    if (prefix > width) return undefined;
  }
  // A range written inside ::ffff:0:0/96 means IPv4, which is how addresses are matched.
  if (bytes.length === 16 && isMapped(bytes) && prefix >= 96) {
    return { bytes: maskBytes(bytes.slice(12), prefix - 96), prefix: prefix - 96, family: 4 };
  }
  return { bytes: maskBytes(bytes, prefix), prefix, family: bytes.length === 4 ? 4 : 6 };
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = (out[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

function prefixEqual(a: Uint8Array, b: Uint8Array, prefix: number): boolean {
  if (a.length !== b.length) return false;
  const masked = maskBytes(a, prefix);
  const other = maskBytes(b, prefix);
  return masked.every((byte, i) => byte === other[i]);
}

/** Whether `inner` lies wholly inside `outer`. */
function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.family === outer.family && inner.prefix >= outer.prefix && prefixEqual(inner.bytes, outer.bytes, outer.prefix);
}
