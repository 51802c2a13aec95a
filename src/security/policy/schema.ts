/**
 * What a valid policy file is: its JSON Schema (draft 2020-12), the string formats
 * that schema uses (CIDR ranges, host names), and how an invalid policy is reported
 * (the error type, and schema errors turned into words).
 *
 * Every leaf carries a `description` phrased as what is expected ("a port number
 * from 1 to 65535"): the loader turns Ajv's errors into "expected <description>,
 * got <value>", so the schema is also the source of the error wording.
 */
import { createRequire } from "node:module";
import { isIPv4, isIPv6 } from "node:net";
import type { ErrorObject, ValidateFunction } from "ajv";
import type { FormatDefinition } from "ajv/dist/types/index.js";
import { canonicalJson, sha256Hex } from "../../util/canonical-json.js";

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

export { formatIssue, MAX_REPORTED_ISSUES, PolicyError, type PolicyErrorCode, type PolicyIssue } from "./errors.js";

export type Segment = string | number;
export type KeyPath = readonly Segment[];

// ---------------------------------------------------------------------------
// Addresses and host names
// ---------------------------------------------------------------------------

export interface IpAddress {
  family: 4 | 6;
  /** The address as an unsigned integer of 32 or 128 bits. */
  value: bigint;
}

export interface Cidr {
  family: 4 | 6;
  base: bigint;
  prefix: number;
}

/** A dotted quad without leading zeros (which some parsers read as octal). */
function parseIpv4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

function parseIpv6(text: string): bigint | undefined {
  // Zone ids (`fe80::1%eth0`) name an interface, not an address range: refused.
  if (text.includes("%") || !isIPv6(text)) return undefined;
  let groupsText = text;
  const embedded: bigint[] = [];
  const lastColon = text.lastIndexOf(":");
  const last = text.slice(lastColon + 1);
  if (last.includes(".")) {
    // A trailing dotted quad (`::ffff:10.0.0.1`) stands for the last two groups.
    const v4 = parseIpv4(last);
    if (v4 === undefined) return undefined;
    embedded.push((v4 >> 16n) & 0xffffn, v4 & 0xffffn);
    groupsText = text.slice(0, lastColon + 1);
    if (!groupsText.endsWith("::")) groupsText = groupsText.slice(0, -1);
  }
  const halves = groupsText.split("::");
  if (halves.length > 2) return undefined;
  const toGroups = (part: string | undefined): bigint[] =>
    part === undefined || part === "" ? [] : part.split(":").map((group) => BigInt(`0x${group}`));
  const head = toGroups(halves[0]);
  let groups: bigint[];
  if (halves.length === 2) {
    const rest = [...toGroups(halves[1]), ...embedded];
    const fill = 8 - head.length - rest.length;
    if (fill < 0) return undefined;
    groups = [...head, ...Array<bigint>(fill).fill(0n), ...rest];
  } else {
    groups = [...head, ...embedded];
  }
  if (groups.length !== 8) return undefined;
  return groups.reduce((acc, group) => (acc << 16n) | group, 0n);
}

export function parseIp(text: string): IpAddress | undefined {
  if (isIPv4(text)) {
    const value = parseIpv4(text);
    return value === undefined ? undefined : { family: 4, value };
  }
  const value = parseIpv6(text);
  return value === undefined ? undefined : { family: 6, value };
}

function formatIp(family: 4 | 6, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join(".");
  const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((shift) => (value >> shift) & 0xffffn);
  // The longest run of two or more zero groups becomes "::".
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0n) length++;
    if (length > bestLength) {
      bestStart = start;
      bestLength = length;
    }
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/**
 * Parses `address/prefix` (a bare address is a single host). Host bits below the
 * prefix are an error rather than silently cleared: `10.0.0.1/8` is probably a typo,
 * and the message offers the range it would have meant.
 */
export function parseCidr(text: string): { ok: true; cidr: Cidr; normalized: string } | { ok: false; reason: string } {
  const slash = text.indexOf("/");
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const address = parseIp(addressText);
  if (address === undefined) {
    return { ok: false, reason: `"${addressText}" is not an IPv4 or IPv6 address` };
  }
  const bits = address.family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > bits) {
      return { ok: false, reason: `the prefix length must be a number from 0 to ${bits}` };
    }
    prefix = Number(prefixText);
  }
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((address.value & hostMask) !== 0n) {
    const base = address.value & ~hostMask;
    return {
      ok: false,
      reason: `host bits are set below the /${prefix} prefix (did you mean "${formatIp(address.family, base)}/${prefix}"?)`,
    };
  }
  // An IPv4-mapped IPv6 range (::ffff:a.b.c.d/96 and longer) is an IPv4 range, which is how the egress
  // guard matches it: written as IPv4, the warnings about loopback and private ranges see it too.
  const MAPPED = 0xffffn << 32n;
  if (address.family === 6 && prefix >= 96 && address.value >> 32n === MAPPED >> 32n) {
    const base = address.value & 0xffffffffn;
    const v4prefix = prefix - 96;
    return { ok: true, cidr: { family: 4, base, prefix: v4prefix }, normalized: `${formatIp(4, base)}/${v4prefix}` };
  }
  return {
    ok: true,
    cidr: { family: address.family, base: address.value, prefix },
    normalized: slash < 0 ? `${text}/${bits}` : text,
  };
}

export function cidrContains(range: Cidr, address: IpAddress): boolean {
  if (range.family !== address.family) return false;
  const bits = range.family === 4 ? 32 : 128;
  const shift = BigInt(bits - range.prefix);
  return address.value >> shift === range.base >> shift;
}

/** Whether two ranges share at least one address (one contains the other's base). */
export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, { family: b.family, value: b.base }) || cidrContains(b, { family: a.family, value: a.base });
}

const LABEL = /^[\p{L}\p{N}_]([\p{L}\p{N}\p{M}_-]{0,61}[\p{L}\p{N}\p{M}_])?$/u;

/** A DNS name (letters, digits, `-`, `_` in labels of up to 63; IDN allowed), optional trailing dot. */
export function isHostName(text: string): boolean {
  const name = text.endsWith(".") ? text.slice(0, -1) : text;
  if (name.length === 0 || name.length > 253) return false;
  if (!name.split(".").every((label) => LABEL.test(label))) return false;
  // A name URL parsing refuses (bad punycode, a last label read as an IPv4 number out of range)
  // is one the egress guard cannot match: the server would refuse to start on it.
  return URL.canParse(`http://${name}/`);
}

/** An endpoint host: a DNS name or an IP literal (IPv6 with or without brackets). */
export function isHost(text: string): boolean {
  const unbracketed = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  return isHostName(text) || parseIp(unbracketed) !== undefined;
}

/** A DNS allowlist entry: an exact name, or `*.example.com` for one extra label. */
export function isDnsPattern(text: string): boolean {
  return text.startsWith("*.") ? isHostName(text.slice(2)) : isHostName(text);
}

// ---------------------------------------------------------------------------
// The schema
// ---------------------------------------------------------------------------

export const SUPPORTED_VERSIONS: readonly string[] = ["1.0"];

const GIB = 1024 * 1024 * 1024;

/** MCP tool names (letters, digits, `_`, `-`, `.`; 1 to 128). `__proto__` is no name. */
export const TOOL_NAME_PATTERN = "^(?!__proto__$)[A-Za-z0-9_.-]{1,128}$";
/** Tool names plus the wildcards `*`, `?`, `[...]` and `{a,b}`; no negation. */
const TOOL_GLOB_PATTERN = "^[A-Za-z0-9_.*?\\[\\]{},-]{1,256}$";
/** A path or glob may hold anything but control characters (NUL included). */
const PATH_PATTERN = "^[^\\u0000-\\u001f\\u007f]+$";
/** A command name or path: no whitespace or control characters. */
const COMMAND_PATTERN = "^[^\\s\\u0000-\\u001f\\u007f]+$";

type Schema = Record<string, unknown>;

function section(description: string, properties: Record<string, Schema>, required: string[] = []): Schema {
  const schema: Schema = { type: "object", description, additionalProperties: false, properties };
  if (required.length > 0) schema.required = required;
  return schema;
}

function list(description: string, items: Schema, extra: Schema = {}): Schema {
  return { type: "array", description, maxItems: 10_000, items, ...extra };
}

function integer(description: string, minimum: number, maximum: number): Schema {
  return { type: "integer", description, minimum, maximum };
}

function seconds(description: string, maximum: number): Schema {
  return { type: "number", description, exclusiveMinimum: 0, maximum };
}

function pathString(description: string): Schema {
  return { type: "string", description, minLength: 1, maxLength: 4096, pattern: PATH_PATTERN };
}

const port = integer("a port number from 1 to 65535", 1, 65535);
const bytes = (what: string): Schema => integer(`${what} in bytes, from 1 to ${GIB} (1 GiB)`, 1, GIB);
const boolean = (description: string): Schema => ({ type: "boolean", description });
// No upper bound below what counts exactly: past the server's throughput any limit means "no limit",
// which is how seed users wrote it (the seed study ran with `default: 1e9`).
const rateLimit = integer("a whole number of calls per minute, 0 or more", 0, Number.MAX_SAFE_INTEGER);
const toolSeconds = seconds("a number of seconds greater than 0 and at most 86400", 86_400);
const plainString = (description: string, maxLength = 1000): Schema => ({
  type: "string",
  description,
  minLength: 1,
  maxLength,
});

export const AUDIT_INCLUDE_FIELDS: readonly string[] = [
  "timestamp",
  "request_id",
  "tool_name",
  "arguments",
  "result_status",
  "execution_time",
  "security_events",
];

/**
 * Accepted `audit.log_level` values (the loader lower-cases them first): ours, and every level
 * name of Python's logging, which the seed's policies were written with (`FATAL` is `critical`,
 * `NOTSET`, which passes everything, is `debug`).
 */
export const LOG_LEVEL_NAMES: readonly string[] = ["debug", "info", "notice", "warning", "warn", "error", "critical", "fatal", "notset"];

export const POLICY_SCHEMA: Schema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: "https://mcp-secure-local.invalid/policy.schema.json",
  ...section(
    "a mapping of policy sections",
    {
      version: {
        description: `the policy format version ${SUPPORTED_VERSIONS.map((v) => `"${v}"`).join(", ")}`,
        enum: [...SUPPORTED_VERSIONS, 1],
      },
      network: section("a mapping of network settings", {
        allowed_ranges: list(
          "a list of CIDR ranges",
          { type: "string", description: "a CIDR range such as 10.0.0.0/8 or ::1/128", format: "cidr" },
        ),
        allowed_endpoints: list(
          "a list of endpoints (host and ports)",
          section(
            "an endpoint with host and ports",
            {
              host: { type: "string", description: "a host name or IP address such as api.example.com", format: "host" },
              ports: list("a non-empty list of port numbers", port, { minItems: 1 }),
              // A note for people, so an empty one (as the seed took) changes nothing.
              description: { type: "string", description: "a text describing the endpoint", maxLength: 1000 },
            },
            ["host", "ports"],
          ),
        ),
        blocked_ports: list("a list of port numbers", port),
        allow_dns: boolean("true or false"),
        dns_allowlist: list(
          "a list of host names",
          {
            type: "string",
            description: "a host name such as api.example.com, or *.example.com for one label",
            format: "dns-pattern",
          },
        ),
        max_response_bytes: bytes("a response size"),
        timeout: seconds("a number of seconds greater than 0 and at most 3600", 3600),
      }),
      filesystem: section("a mapping of filesystem settings", {
        allowed_paths: list("a list of path globs", pathString("an absolute path glob such as ${HOME}/projects/**")),
        denied_paths: list("a list of path globs", pathString("a path glob such as **/.ssh/** or ${HOME}/private/**")),
        write_denied_paths: list("a list of path globs", pathString("a path glob such as **/.git/** or **/.vscode/**")),
        max_read_bytes: bytes("a read size"),
        max_write_bytes: bytes("a write size"),
      }),
      commands: section("a mapping of command settings", {
        blocked: list("a list of command names", {
          type: "string",
          description: "a command name such as curl, or an absolute path",
          maxLength: 4096,
          pattern: COMMAND_PATTERN,
        }),
        allowed: list("a list of command names", {
          type: "string",
          description: "a command name such as git, or an absolute path",
          maxLength: 4096,
          pattern: COMMAND_PATTERN,
        }),
        timeout: seconds("a number of seconds greater than 0 and at most 86400", 86_400),
        max_output_bytes: bytes("an output size"),
        sandbox: { type: "string", description: '"auto", "required" or "off"', enum: ["auto", "required", "off"] },
      }),
      tools: section("a mapping of tool settings", {
        allow: list("a list of tool names or globs", {
          type: "string",
          description: "a tool name or glob (letters, digits, _ - . and the wildcards * ? [] {})",
          pattern: TOOL_GLOB_PATTERN,
        }),
        deny: list("a list of tool names or globs", {
          type: "string",
          description: "a tool name or glob (letters, digits, _ - . and the wildcards * ? [] {})",
          pattern: TOOL_GLOB_PATTERN,
        }),
        rate_limits: {
          type: "object",
          description: "a mapping of tool names to calls per minute, with a default",
          maxProperties: 10_000,
          propertyNames: {
            type: "string",
            description: "a tool name (letters, digits, _ - ., at most 128)",
            pattern: TOOL_NAME_PATTERN,
          },
          properties: { default: rateLimit },
          additionalProperties: rateLimit,
        },
        timeout: toolSeconds,
        timeouts: {
          type: "object",
          description: "a mapping of tool names to seconds",
          maxProperties: 10_000,
          propertyNames: {
            type: "string",
            description: "a tool name (letters, digits, _ - ., at most 128)",
            pattern: TOOL_NAME_PATTERN,
          },
          additionalProperties: toolSeconds,
        },
      }),
      limits: section("a mapping of argument limits", {
        max_argument_bytes: bytes("an argument size"),
        max_depth: integer("a nesting depth from 1 to 1000", 1, 1000),
        max_string_length: integer("a string length from 1 to 1073741824", 1, GIB),
        max_array_length: integer("an array length from 1 to 100000000", 1, 100_000_000),
      }),
      audit: section("a mapping of audit settings", {
        enabled: boolean("true or false"),
        log_file: pathString("an absolute file path such as ${STATE_DIR}/audit/audit.log"),
        log_level: {
          type: "string",
          description: "a log level (debug, info, notice, warning, error, critical)",
          enum: [...LOG_LEVEL_NAMES],
        },
        include: list(
          "a list of audit field names",
          { type: "string", description: `one of ${AUDIT_INCLUDE_FIELDS.join(", ")}`, enum: [...AUDIT_INCLUDE_FIELDS] },
        ),
        fsync: { type: "string", description: '"always" or "batch"', enum: ["always", "batch"] },
        fsync_interval_ms: integer("a number of milliseconds from 1 to 60000", 1, 60_000),
        checkpoint_every: integer("a number of entries from 1 to 10000000", 1, 10_000_000),
        rotate_bytes: integer("a file size in bytes (0: never rotate by size)", 0, 2 ** 40),
        rotate_daily: boolean("true or false"),
        signing_key: pathString("an absolute path to an Ed25519 private key (PEM)"),
      }),
      server: section("a mapping of server settings", {
        project_path: pathString("an absolute directory path"),
      }),
      // The seed's commented-out example: accepted and checked so that a seed user's
      // file still loads, but no tool reads it.
      database: section("a mapping of database settings", {
        blocked_keywords: list("a list of SQL keywords", plainString("a SQL keyword", 100)),
        blocked_tables: list("a list of table names", plainString("a table name", 256)),
        query_timeout: seconds("a number of seconds greater than 0 and at most 86400", 86_400),
        max_rows: integer("a number of rows from 1 to 100000000", 1, 100_000_000),
        max_query_length: integer("a number of characters from 1 to 100000000", 1, 100_000_000),
        allowed_schemas: list("a list of schema names", plainString("a schema name", 256)),
      }),
    },
    ["version"],
  ),
};

/** Explains why a string fails one of the formats above (for error messages). */
export function explainFormat(format: string, value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  switch (format) {
    case "cidr": {
      const parsed = parseCidr(value);
      return parsed.ok ? undefined : `invalid CIDR range "${value}": ${parsed.reason}`;
    }
    case "host":
      return `invalid host "${value}": expected a host name such as api.example.com or an IP address, without scheme, port or path`;
    case "dns-pattern":
      return `invalid host name "${value}": expected a name such as api.example.com, or *.example.com for one label`;
    default:
      return undefined;
  }
}

/** The policy's own formats, shared by the run-time compile and the build-time (standalone) validator. */
export const POLICY_FORMATS: Record<string, FormatDefinition<string>> = {
  cidr: { type: "string", validate: (value: string) => parseCidr(value).ok },
  host: { type: "string", validate: isHost },
  "dns-pattern": { type: "string", validate: isDnsPattern },
};

/** Ajv options of the policy validator; the build script uses the same. */
export const POLICY_AJV_OPTIONS = { strict: true, allErrors: true, verbose: true, logger: false } as const;

/** The file `make build` writes beside this module: the policy validator as standalone code. */
export const GENERATED_VALIDATOR_FILE = "./policy-validator.generated.cjs";

interface GeneratedValidator {
  schemaSha256: string;
  create(formats: Record<string, FormatDefinition<string>>): ValidateFunction;
}

let compiled: ValidateFunction | undefined;
let compiledFrom: "precompiled" | "compiled" | undefined;

/**
 * The validator, made once. Compiling the policy schema with Ajv costs ~100 ms of a
 * start, so `make build` generates it ahead of time; it is used only when it was made
 * from this very schema (its SHA-256 is checked), otherwise the schema is compiled here.
 */
export function policyValidator(): ValidateFunction {
  if (compiled === undefined) {
    const generated = loadGenerated();
    if (generated !== undefined && generated.schemaSha256 === policySchemaSha256()) {
      compiled = generated.create(POLICY_FORMATS);
      compiledFrom = "precompiled";
    } else {
      compiled = compilePolicyValidator();
      compiledFrom = "compiled";
    }
  }
  return compiled;
}

/** Which validator `policyValidator()` uses (for tests and diagnostics). */
export function policyValidatorSource(): "precompiled" | "compiled" | undefined {
  return compiledFrom;
}

export function policySchemaSha256(): string {
  return sha256Hex(canonicalJson(POLICY_SCHEMA));
}

/** Compiles the schema with Ajv (loaded only here: a precompiled start never loads it). */
export function compilePolicyValidator(): ValidateFunction {
  const load = createRequire(import.meta.url);
  const { Ajv2020 } = load("ajv/dist/2020.js") as typeof import("ajv/dist/2020.js");
  // `logger: false`: Ajv must never write to the console (stdout is the protocol's).
  const ajv = new Ajv2020({ ...POLICY_AJV_OPTIONS });
  for (const [name, format] of Object.entries(POLICY_FORMATS)) ajv.addFormat(name, format);
  return ajv.compile(POLICY_SCHEMA);
}

function loadGenerated(): GeneratedValidator | undefined {
  try {
    // In the bundle, esbuild inlines this literal require; as plain ESM, the file is found beside this module.
    if (typeof require === "function") {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- the literal require is what esbuild bundles
      return require("./policy-validator.generated.cjs") as GeneratedValidator;
    }
    return createRequire(import.meta.url)(GENERATED_VALIDATOR_FILE) as GeneratedValidator;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// Error messages
// ---------------------------------------------------------------------------

/** A schema error as the loader reports it: where (a key path) and what, in words. */
export interface SchemaIssue {
  path: Segment[];
  target: "key" | "value";
  message: string;
}

/** A JSON pointer into `root` as key path segments (numbers for list indexes). */
function decodePointer(pointer: string, root: unknown): Segment[] {
  if (pointer === "") return [];
  const segments: Segment[] = [];
  let current: unknown = root;
  for (const raw of pointer.slice(1).split("/")) {
    const text = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    const segment: Segment = Array.isArray(current) ? Number(text) : text;
    segments.push(segment);
    current = current !== null && typeof current === "object" ? (current as Record<string, unknown>)[text] : undefined;
  }
  return segments;
}

/** Turns one Ajv error into a message that says what was expected and what was found. */
export function describeSchemaError(error: ErrorObject, root: unknown): SchemaIssue | undefined {
  const base = decodePointer(error.instancePath, root);
  const parentSchema = error.parentSchema as
    | { description?: string; properties?: Record<string, unknown>; minItems?: number }
    | undefined;
  const expected = parentSchema?.description;
  const params = error.params as Record<string, unknown>;
  if (error.propertyName !== undefined) {
    // The inner error of `propertyNames`: point at the offending key itself.
    return {
      path: [...base, error.propertyName],
      target: "key",
      message: `invalid name "${error.propertyName}": expected ${expected ?? "a valid name"}`,
    };
  }
  switch (error.keyword) {
    case "propertyNames":
      return undefined; // reported by its inner error, above
    case "additionalProperties": {
      const key = String(params.additionalProperty);
      const known = Object.keys(parentSchema?.properties ?? {});
      return { path: [...base, key], target: "key", message: unknownKeyMessage(key, known) };
    }
    case "required": {
      const missing = String(params.missingProperty);
      const hint = missing === "version" ? ` (add version: "${SUPPORTED_VERSIONS[0]}")` : "";
      return { path: [...base, missing], target: "value", message: `missing required key${hint}` };
    }
    case "enum":
      if (base.length === 1 && base[0] === "version") {
        return {
          path: base,
          target: "value",
          message: `unsupported policy version ${describeValue(error.data)}; supported versions: ${SUPPORTED_VERSIONS.map((v) => `"${v}"`).join(", ")}`,
        };
      }
      break;
    case "format": {
      const explained = explainFormat(String(params.format), error.data);
      if (explained !== undefined) return { path: base, target: "value", message: explained };
      break;
    }
    default:
      break;
  }
  if (expected === undefined) return { path: base, target: "value", message: error.message ?? "invalid value" };
  let hint = "";
  if (error.keyword === "type" && error.data === null) {
    if (typeof base[base.length - 1] === "number") {
      // A list entry (`-` with nothing after it): there is no key to remove, and [] or {} would not do.
      hint = " (a - with nothing after it: give it a value or remove it)";
    } else if (params.type === "array" && (parentSchema?.minItems ?? 0) === 0) {
      // Not where a list must hold an entry (an endpoint's ports): [] would be refused too.
      hint = " (write [] for an empty list)";
    } else if (params.type === "object") {
      hint = " (remove the key, or write {} for an empty mapping)";
    }
  }
  return { path: base, target: "value", message: `expected ${expected}, got ${describeValue(error.data)}${hint}` };
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return "an empty value";
  if (typeof value === "string") {
    const shown = value.length > 80 ? `${value.slice(0, 77)}...` : value;
    return JSON.stringify(shown);
  }
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "a non-finite number";
  if (typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return value.length === 0 ? "an empty list" : `a list of ${value.length}`;
  return "a mapping";
}

function unknownKeyMessage(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const close =
    best !== undefined && (bestDistance <= Math.max(2, Math.floor(key.length / 3)) || (key.length >= 3 && best.startsWith(key)));
  if (close) return `unknown key (did you mean "${best}"?)`;
  // Not a slip for a known key: perhaps one the seed server let through, since it ignored them all.
  const why = "unknown keys are refused, not ignored as the seed server did: a misspelt key must not weaken a policy";
  return known.length > 0 ? `unknown key (known keys: ${known.join(", ")}); ${why}` : `unknown key; ${why}`;
}

/** Levenshtein distance, for "did you mean". */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
