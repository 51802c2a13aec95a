/**
 * Loading a policy file: YAML (1.2 core schema; plain files through a fast path, the rest and
 * every error position through `yaml`) → JSON Schema
 * validation → defaults and `${VAR}` / `~` expansion → the effective policy, its
 * SHA-256 and the warnings a person should read.
 *
 * Everything that can be wrong is reported together, each issue with the file, line,
 * column and key it concerns, so one run of `check-policy` is enough to fix a file.
 * Nothing here reads the environment or the clock: the caller passes `PolicyEnv`.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import type { Alias, Document, LineCounter, Node, Scalar, ScalarTag, YAMLMap, YAMLSeq } from "yaml";
import { parseSimpleYaml } from "./yaml-fast-path.js";
import { allowedPathGlobProblem, denyRuleGlobProblem } from "../path-guard.js";
import { followedDenials, toolGlobProblem } from "./tool-access.js";
import type { EffectivePolicy, LimitsPolicy, NetworkEndpoint } from "../policy-types.js";
import { policySha256 } from "./hash.js";
import {
  cidrOverlaps,
  describeSchemaError,
  editDistance,
  LOG_LEVEL_NAMES,
  parseCidr,
  parseIp,
  policyValidator,
  PolicyError,
  SUPPORTED_VERSIONS,
  type KeyPath,
  type PolicyIssue,
  type Segment,
} from "./schema.js";
import {
  DEFAULT_BLOCKED_COMMANDS,
  DEFAULT_DENIED_PATHS,
  DEFAULT_WRITE_DENIED_PATHS,
  DEFAULT_RATE_LIMIT,
  DEFAULT_RATE_LIMITS,
  DEFAULTS,
  defaultAuditLogFile,
  GLOB_SPECIAL,
  SHELLS_AND_INTERPRETERS,
  ARGUMENT_RUNNERS,
  COMMAND_RUNNERS,
} from "./defaults.js";

export { PolicyError, type PolicyIssue, type PolicyErrorCode } from "./schema.js";

/** What the loader may know about the machine; the caller gathers it. */
export interface PolicyEnv {
  /** Variables for `${NAME}` (usually `process.env`). */
  vars: Record<string, string | undefined>;
  /** The home directory, for `~` and for `${HOME}` when `HOME` is unset. */
  home: string;
  /** The server's state directory, for `${STATE_DIR}` and the default audit log. */
  stateDir: string;
}

export interface LoadedPolicy {
  policy: EffectivePolicy;
  /** Where the policy came from (the path as given). */
  source: string;
  /** SHA-256 (hex) of the canonical JSON of `policy`. */
  sha256: string;
  /** Valid but probably not what the owner meant: said at start (as warnings) and by check-policy. */
  warnings: string[];
  /** What the policy leaves off on purpose (no network, no commands): said at start as information. */
  notes: string[];
}

/** A policy is a small file; anything bigger is refused before parsing. */
export const MAX_POLICY_BYTES = 1024 * 1024;
/** Bounds alias expansion, so that nested aliases cannot blow up memory ("billion laughs"). */
export const MAX_ALIAS_COUNT = 100;

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

export interface LoadOptions {
  /**
   * When the deny rules (`denied_paths`, `write_denied_paths`) are compiled to check them:
   * "always" (the default; check-policy), or "when-invalid": the server compiles them on first
   * use, so a start does not pay for their regexes, but a policy that is refused anyway names
   * them too. Allowed paths and tool globs, which every start compiles, are always checked.
   */
  denyGlobs?: "always" | "when-invalid";
}

export function loadPolicyFile(file: string, env: PolicyEnv, options: LoadOptions = {}): LoadedPolicy {
  return loadPolicyText(readPolicyFile(file), file, env, options);
}

export function loadPolicyText(text: string, source: string, env: PolicyEnv, options: LoadOptions = {}): LoadedPolicy {
  checkEnv(env, source);
  const parsed = parseYaml(text, source);
  dropEmptyValues(parsed.value);
  const seedBooleans = readSeedBooleans(parsed.value);
  // YAML, schema, expansion and glob problems are reported together, in the file's order:
  // one run shows everything to fix.
  const schemaIssues = validate(parsed.value, parsed.locator);
  const expansionIssues = checkExpansions(parsed.value, env, parsed.locator);
  // A glob is compiled only when nothing else is wrong with its entry (its message would repeat).
  const flawed = new Set([...schemaIssues, ...expansionIssues].map((issue) => issue.key));
  const issues = [...schemaIssues, ...expansionIssues, ...checkGlobs(parsed.value, env, parsed.locator, flawed, "start")];
  if (options.denyGlobs !== "when-invalid" || issues.length > 0 || parsed.issues.length > 0) {
    issues.push(...checkGlobs(parsed.value, env, parsed.locator, flawed, "deny"));
  }
  if (parsed.issues.length > 0) {
    // What is wrong under a key whose YAML is wrong follows from it: only the YAML issue is shown.
    const underYamlIssue = (key: string): boolean =>
      parsed.issues.some((issue) => issue.key === "" || key === issue.key || key.startsWith(`${issue.key}.`) || key.startsWith(`${issue.key}[`));
    issues.splice(0, issues.length, ...parsed.issues, ...issues.filter((issue) => !underYamlIssue(issue.key)));
  }
  if (issues.length > 0) throw new PolicyError("POLICY_INVALID", source, sortIssues(issues));
  const raw = parsed.value as RawPolicy;
  const policy = buildEffective(raw, env);
  return { policy, source, sha256: policySha256(policy), warnings: [...seedBooleans, ...policyWarnings(policy, raw)], notes: policyNotes(policy) };
}

/** The policy's true/false keys. */
const BOOLEAN_KEYS: readonly (readonly [string, string])[] = [
  ["network", "allow_dns"],
  ["audit", "enabled"],
  ["audit", "rotate_daily"],
];

/** What the seed's YAML 1.1 loader (PyYAML) read as a boolean and YAML 1.2 reads as text. */
const YAML11_BOOLEANS: Readonly<Record<string, boolean>> = Object.fromEntries([
  ...["yes", "Yes", "YES", "on", "On", "ON"].map((word) => [word, true] as const),
  ...["no", "No", "NO", "off", "Off", "OFF"].map((word) => [word, false] as const),
]);

/**
 * A seed policy was read by PyYAML (YAML 1.1), where `allow_dns: yes` is true; YAML 1.2
 * reads it as the text "yes". On the true/false keys only, such a word takes the meaning
 * the seed gave it (so a seed policy loads unchanged), with a warning to write it out.
 * Returns the warnings.
 */
function readSeedBooleans(value: unknown): string[] {
  const warnings: string[] = [];
  if (!isRecord(value)) return warnings;
  for (const [section, key] of BOOLEAN_KEYS) {
    const mapping = value[section];
    if (!isRecord(mapping) || typeof mapping[key] !== "string" || !Object.hasOwn(YAML11_BOOLEANS, mapping[key])) continue;
    const word = mapping[key];
    const meaning = YAML11_BOOLEANS[word] === true;
    mapping[key] = meaning;
    warnings.push(`${section}.${key}: "${word}" is read as ${String(meaning)}, as the seed server's YAML 1.1 read it; write ${String(meaning)}`);
  }
  return warnings;
}

/** Top-level sections; one written with no keys (`server:` and only comments) is left out. */
const SECTIONS = ["network", "filesystem", "commands", "tools", "limits", "audit", "server", "database"];

/**
 * Lists and mappings for which leaving the key out and writing it empty mean the same (nothing
 * allowed, nothing listed). Written with no entries (`allowed_ranges:` with every entry
 * commented out, as a seed user disables them; the seed loaded that), such a key is read as
 * left out. Where the two differ (`EMPTY_VALUE_CHOICES`), an empty value stays an error.
 */
const EMPTY_MEANS_LEFT_OUT: readonly (readonly [string, string])[] = [
  ["network", "allowed_ranges"],
  ["network", "allowed_endpoints"],
  ["network", "blocked_ports"],
  ["network", "dns_allowlist"],
  ["filesystem", "allowed_paths"],
  ["tools", "deny"],
  ["tools", "timeouts"],
  ["audit", "include"],
  ["database", "blocked_keywords"],
  ["database", "blocked_tables"],
  ["database", "allowed_schemas"],
];

/**
 * Keys where left out and empty mean different things: an empty value could mean either, so
 * it is refused, and the message says what each choice does (a bare "write []" would steer
 * the owner of a commented-out deny list to no deny rule at all).
 */
const EMPTY_VALUE_CHOICES: Readonly<Record<string, { leftOut: string; empty: string; emptyText: string }>> = {
  "filesystem.denied_paths": { leftOut: "the built-in deny list", empty: "no deny rule at all", emptyText: "[]" },
  "filesystem.write_denied_paths": { leftOut: "the built-in list", empty: "no write protection at all", emptyText: "[]" },
  "commands.blocked": { leftOut: "the built-in block list", empty: "no blocked command", emptyText: "[]" },
  "commands.allowed": { leftOut: "every command that is not blocked", empty: "no command at all", emptyText: "[]" },
  "tools.allow": { leftOut: "every tool", empty: "no tool at all", emptyText: "[]" },
  "tools.rate_limits": { leftOut: "the built-in limits", empty: "60 calls per minute for every tool", emptyText: "{}" },
};

function dropEmptyValues(value: unknown): void {
  if (!isRecord(value)) return;
  for (const section of SECTIONS) {
    if (Object.hasOwn(value, section) && value[section] === null) delete value[section];
  }
  for (const [section, key] of EMPTY_MEANS_LEFT_OUT) {
    const mapping = value[section];
    if (isRecord(mapping) && Object.hasOwn(mapping, key) && mapping[key] === null) delete mapping[key];
  }
  // An endpoint's `description:` left empty: a note for people, as if not written.
  const endpoints = isRecord(value.network) ? value.network.allowed_endpoints : undefined;
  if (Array.isArray(endpoints)) {
    for (const endpoint of endpoints) {
      if (isRecord(endpoint) && Object.hasOwn(endpoint, "description") && endpoint.description === null) delete endpoint.description;
    }
  }
  // audit.log_level has no effect (seed compatibility only), and the seed took any spelling of
  // Python's level names: a known name in any case is read in lower case.
  const audit = value.audit;
  if (isRecord(audit) && typeof audit.log_level === "string" && LOG_LEVEL_NAMES.includes(audit.log_level.toLowerCase())) {
    audit.log_level = audit.log_level.toLowerCase();
  }
}

export { policySha256 } from "./hash.js";

function readPolicyFile(file: string): string {
  const unreadable = (message: string): PolicyError =>
    new PolicyError("POLICY_UNREADABLE", file, [{ key: "", message: `cannot read the policy file: ${message}` }]);
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO (or a device) to read would otherwise wait for a writer
    // forever; the check below refuses anything that is not a regular file.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (error) {
    throw unreadable(describeFsError(error));
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw unreadable("it is not a regular file");
    if (stat.size > MAX_POLICY_BYTES) throw unreadable(`it is larger than ${MAX_POLICY_BYTES} bytes`);
    // Read one byte past the limit, in case the file grew after fstat.
    const buffer = Buffer.alloc(MAX_POLICY_BYTES + 1);
    let length = 0;
    for (;;) {
      const n = fs.readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > MAX_POLICY_BYTES) throw unreadable(`it is larger than ${MAX_POLICY_BYTES} bytes`);
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(buffer.subarray(0, length));
    } catch {
      throw new PolicyError("POLICY_INVALID", file, [{ key: "", message: "the file is not valid UTF-8 text" }]);
    }
  } catch (error) {
    if (error instanceof PolicyError) throw error;
    throw unreadable(describeFsError(error));
  } finally {
    fs.closeSync(fd);
  }
}

function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "it is a directory";
  return error instanceof Error ? error.message : String(error);
}

function checkEnv(env: PolicyEnv, source: string): void {
  for (const [name, value] of [
    ["state directory", env.stateDir],
    ["home directory", env.home],
  ] as const) {
    if (!path.isAbsolute(value)) {
      throw new PolicyError("POLICY_INVALID", source, [
        { key: "", message: `the ${name} must be an absolute path, got "${value}"` },
      ]);
    }
  }
}

// ---------------------------------------------------------------------------
// YAML
// ---------------------------------------------------------------------------

interface Parsed {
  value: unknown;
  /** Positions for issues; made only when there is an issue to place. */
  locator: () => Locator;
  /**
   * YAML problems after which the document still has a meaning to check (a tag that does not
   * resolve, a repeated key): the load fails, and the rest of the document is checked too.
   */
  issues: PolicyIssue[];
}

/**
 * `!!float 30`: YAML 1.2's core schema reads a whole number under an explicit `!!float` tag as
 * that number (its float pattern has the fraction optional), but the `yaml` package's float
 * tags match only `30.0`, `3e1`, `.inf` and `.nan`, and leave `!!float 30` unresolved. This
 * tag completes them. As a default tag it could also resolve plain scalars, but the core int
 * tag comes first in the schema and takes every plain whole number, so plain `30` stays an int.
 */
const WHOLE_NUMBER_FLOAT: ScalarTag = {
  tag: "tag:yaml.org,2002:float",
  default: true,
  test: /^[-+]?[0-9]+$/,
  resolve: (text: string) => Number.parseFloat(text),
};

/** How `yaml` reads a policy (the fast path's tests hold it to the same reading). */
export const YAML_OPTIONS = {
  prettyErrors: false,
  strict: true,
  uniqueKeys: true,
  stringKeys: true,
  version: "1.2",
  schema: "core",
  // `<<: *anchor` merge keys: PyYAML (the seed's loader) reads them, so a seed policy may share
  // an endpoint's fields that way. A merged key never overrides one written in the mapping.
  merge: true,
  customTags: [WHOLE_NUMBER_FLOAT] as ScalarTag[],
  resolveKnownTags: false,
  // "error": no process.emitWarning from the yaml package, but still the error for a
  // second document ("silent" would drop that one too).
  logLevel: "error",
} as const;

type YamlLibrary = typeof import("yaml");
let yamlLibrary: YamlLibrary | undefined;

/** The `yaml` package, loaded on first use: a plain policy never needs it. */
function yaml(): YamlLibrary {
  // In the bundle esbuild includes this literal require; as plain ESM, Node resolves it from node_modules.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a literal require is what esbuild bundles
  yamlLibrary ??= (typeof require === "function" ? require("yaml") : createRequire(import.meta.url)("yaml")) as YamlLibrary;
  return yamlLibrary;
}

const isAlias = (node: unknown): node is Alias => yaml().isAlias(node);
const isMap = (node: unknown): node is YAMLMap => yaml().isMap(node);
const isScalar = (node: unknown): node is Scalar => yaml().isScalar(node);
const isSeq = (node: unknown): node is YAMLSeq => yaml().isSeq(node);

/** A carriage return not followed by a line feed. */
const LONE_CR = /\r(?!\n)/g;

function parseYaml(written: string, source: string): Parsed {
  // YAML 1.2 (§5.4) and PyYAML, the seed's loader, read a lone CR (classic Mac OS endings) as a line
  // break; the yaml package does not, and reports compact-mapping errors instead. One character for
  // one keeps every offset, so positions in messages stay right.
  const text = written.includes("\r") ? written.replace(LONE_CR, "\n") : written;
  const simple = parseSimpleYaml(text);
  if (simple === undefined) {
    const parsed = parseYamlDocument(text, source);
    return { value: parsed.value, locator: () => parsed.locator, issues: parsed.issues };
  }
  let locator: Locator | undefined;
  return { value: simple, locator: () => (locator ??= parseYamlDocument(text, source).locator), issues: [] };
}

/** YAML errors after which the document is still whole: a tag left unresolved (the value as written), a repeated key. */
const RECOVERABLE_YAML_ERRORS = new Set(["TAG_RESOLVE_FAILED", "DUPLICATE_KEY"]);

function parseYamlDocument(text: string, source: string): { value: unknown; locator: Locator; issues: PolicyIssue[] } {
  const { LineCounter: Lines, parseDocument, visit } = yaml();
  const lineCounter = new Lines();
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { ...YAML_OPTIONS, lineCounter });
  } catch (error) {
    throw new PolicyError("POLICY_INVALID", source, [
      { key: "", message: `the YAML cannot be parsed: ${error instanceof Error ? error.message : String(error)}` },
    ]);
  }
  const locator = new Locator(doc, lineCounter, text);
  const issues: PolicyIssue[] = [];
  let recoverable = true;
  // Warnings (unknown tags, for example) are refused too: a policy must mean exactly what it says.
  for (const error of [...doc.errors, ...doc.warnings]) {
    if (!RECOVERABLE_YAML_ERRORS.has(error.code)) recoverable = false;
    const offset = error.pos[0];
    if (TOO_DEEP.test(error.message)) {
      // The parser ran out of stack: one issue, with the key path cut short (it is as long as the nesting).
      const keyPath = locator.pathAtOffset(offset);
      issues.push({
        ...locator.position(offset),
        key: keyPath.length > MAX_SHOWN_DEPTH ? `${formatKey(keyPath.slice(0, MAX_SHOWN_DEPTH))}...` : formatKey(keyPath),
        message: "the YAML nests too deeply to be read (a policy is a few levels deep); remove the extra levels of nesting",
      });
      break;
    }
    issues.push({
      ...locator.position(offset),
      key: formatKey(locator.pathAtOffset(offset)),
      message: yamlMessage(error.code, error.message, text.slice(error.pos[0], error.pos[1])),
    });
  }
  if (recoverable) {
    visit(doc, {
      Alias(_key, alias) {
        if (alias.resolve(doc) === undefined) {
          recoverable = false;
          const offset = alias.range?.[0] ?? 0;
          issues.push({
            ...locator.position(offset),
            key: formatKey(locator.pathAtOffset(offset)),
            message: `unknown alias *${alias.source}: an anchor &${alias.source} must come before it`,
          });
        }
      },
    });
  }
  if (issues.length > 0 && !recoverable) throw new PolicyError("POLICY_INVALID", source, sortIssues(issues));
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    const badMerge = /merge sources/i.test(text);
    // Placed at the merge key at fault, not at an alias elsewhere (or the top of the file).
    const offset = (badMerge ? badMergeOffset(doc) : undefined) ?? firstAliasOffset(doc) ?? 0;
    let message = `the YAML cannot be converted: ${text}`;
    if (/alias count/i.test(text)) {
      message = `aliases expand to too many nodes (the limit is ${MAX_ALIAS_COUNT}); write the values out instead of nesting aliases`;
    } else if (badMerge) {
      message = "a << merge key takes a mapping, an alias of one (<<: *name) or a list of them";
    }
    throw new PolicyError("POLICY_INVALID", source, sortIssues([
      ...issues,
      { ...locator.position(offset), key: formatKey(locator.pathAtOffset(offset)), message },
    ]));
  }
  if (value === null || value === undefined) {
    throw new PolicyError("POLICY_INVALID", source, sortIssues([
      ...issues,
      { line: 1, column: 1, key: "", message: 'the policy is empty: expected a mapping with at least version: "1.0"' },
    ]));
  }
  return { value, locator, issues };
}

/** How the parser reports nesting deeper than the JavaScript stack allows. */
const TOO_DEEP = /maximum call stack size exceeded/i;
/** Key path segments shown for an issue deep inside nested values. */
const MAX_SHOWN_DEPTH = 4;

function firstAliasOffset(doc: Document.Parsed): number | undefined {
  let offset: number | undefined;
  const { visit } = yaml();
  visit(doc, {
    Alias(_key, alias) {
      offset = alias.range?.[0];
      return visit.BREAK;
    },
  });
  return offset;
}

/** Where the first `<<` key stands whose value is not a mapping, an alias of one, or a list of them. */
function badMergeOffset(doc: Document.Parsed): number | undefined {
  const { isAlias: aliasNode, isMap: mapNode, isPair, isScalar: scalarNode, isSeq: seqNode, visit } = yaml();
  const isSource = (node: unknown): boolean => mapNode(node) || (aliasNode(node) && mapNode(node.resolve(doc)));
  let offset: number | undefined;
  visit(doc, {
    Pair(_key, pair) {
      if (!isPair(pair) || !scalarNode(pair.key) || pair.key.type !== "PLAIN" || pair.key.value !== "<<") return undefined;
      const value = pair.value;
      if (isSource(value) || (seqNode(value) && value.items.every(isSource))) return undefined;
      offset = offsetOf(pair.key);
      return visit.BREAK;
    },
  });
  return offset;
}

/** What each YAML 1.2 core tag takes, for a value it does not fit. */
const CORE_TAGS: Readonly<Record<string, string>> = {
  "tag:yaml.org,2002:str": "!!str takes a text, not a list or a mapping",
  "tag:yaml.org,2002:int": "!!int takes a whole number such as 30",
  "tag:yaml.org,2002:float": "!!float takes a number such as 30 or 0.5",
  "tag:yaml.org,2002:bool": "!!bool takes true or false",
  "tag:yaml.org,2002:null": "!!null takes an empty value, ~ or null",
  "tag:yaml.org,2002:map": "!!map takes a mapping",
  "tag:yaml.org,2002:seq": "!!seq takes a list",
};

/** `tag` is the tag's text in the file (`!!int`, `!foo`) for a tag error. */
function yamlMessage(code: string, message: string, tag: string): string {
  switch (code) {
    case "DUPLICATE_KEY":
      return "duplicate key: a key may appear only once in a mapping";
    case "MULTIPLE_DOCS":
      return "the file holds more than one YAML document (---); a policy is a single document";
    case "TAG_RESOLVE_FAILED": {
      // A core tag failed on the value it tags (`!!int 30.5`, `!!bool yes`, `!!str` on a mapping);
      // any other tag (`!foo`, `!!binary`, `!!timestamp`, a %TAG handle) is not one a policy knows.
      const resolved = /^Unresolved tag: (.*)$/.exec(message)?.[1];
      let shown = tag.startsWith("!") ? tag : (resolved ?? "a tag");
      // `!!` itself renamed by a %TAG directive: say what it became.
      if (shown.startsWith("!!") && resolved !== undefined && !resolved.startsWith("tag:yaml.org,2002:")) shown += ` (${resolved})`;
      const fits = resolved === undefined ? undefined : CORE_TAGS[resolved];
      if (fits !== undefined) return `the value does not fit its tag ${shown} (${fits}): correct the value, or remove the tag`;
      return `unsupported YAML tag ${shown}: remove it (a policy takes plain values: text, numbers, true or false, lists and mappings, and the tags !!str, !!int, !!float, !!bool, !!null, !!seq, !!map)`;
    }
    case "NON_STRING_KEY":
      return "a mapping key must be a plain string";
    default:
      return `YAML syntax error: ${message}`;
  }
}

/** Maps key paths (from Ajv or from the loader) back to positions in the YAML source. */
class Locator {
  constructor(
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
    private readonly text: string,
  ) {}

  /** The source text of the scalar at `keyPath`, if there is one there. */
  scalarSource(keyPath: KeyPath): string | undefined {
    let node: unknown = this.doc.contents;
    for (const segment of keyPath) {
      node = this.deref(node);
      if (isMap(node)) node = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment))?.value;
      else if (isSeq(node) && typeof segment === "number") node = node.items[segment];
      else return undefined;
    }
    if (!isScalar(node) || node.range == null) return undefined;
    return this.text.slice(node.range[0], node.range[1]);
  }

  position(offset: number): { line: number; column: number } {
    const { line, col } = this.lines.linePos(offset);
    return { line, column: col };
  }

  /** Where the key (`target: "key"`) or the value at `keyPath` starts; the nearest known node otherwise. */
  locate(keyPath: KeyPath, target: "key" | "value"): { line: number; column: number } {
    let node: unknown = this.doc.contents;
    let best = offsetOf(node) ?? 0;
    let keyOffset: number | undefined;
    for (const segment of keyPath) {
      node = this.deref(node);
      keyOffset = undefined;
      if (isMap(node)) {
        const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment));
        if (pair === undefined) return this.position(best);
        keyOffset = offsetOf(pair.key);
        best = keyOffset ?? best;
        node = pair.value;
        const valueOffset = offsetOf(node);
        // An empty value (`key:`) has no text of its own: the key marks it better.
        if (valueOffset !== undefined && !(isScalar(node) && node.value === null)) best = valueOffset;
      } else if (isSeq(node) && typeof segment === "number") {
        node = node.items[segment];
        const valueOffset = offsetOf(node);
        if (valueOffset === undefined) return this.position(best);
        best = valueOffset;
      } else {
        return this.position(best);
      }
    }
    if (target === "key" && keyOffset !== undefined) return this.position(keyOffset);
    return this.position(best);
  }

  /** The key path of the innermost node that contains `offset`. */
  pathAtOffset(offset: number): Segment[] {
    const result: Segment[] = [];
    let node: unknown = this.doc.contents;
    for (let depth = 0; depth < 1000; depth++) {
      if (isMap(node)) {
        const pair = node.items.find((item) => {
          const start = offsetOf(item.key);
          const end = endOf(item.value) ?? endOf(item.key);
          return start !== undefined && end !== undefined && start <= offset && offset <= end;
        });
        if (pair === undefined || !isScalar(pair.key)) return result;
        result.push(String(pair.key.value));
        const keyEnd = endOf(pair.key);
        if (keyEnd !== undefined && offset < keyEnd) return result;
        node = pair.value;
      } else if (isSeq(node)) {
        let index = node.items.findIndex((item) => {
          const start = offsetOf(item);
          const end = endOf(item);
          return start !== undefined && end !== undefined && start <= offset && offset <= end;
        });
        // An entry's tag or anchor comes before the entry's own range (`- !!binary x`): a place
        // between two entries belongs to the next one. Named as the list, a problem with one
        // entry would hide the others' (what lies under a YAML issue is not reported).
        if (index < 0) index = node.items.findIndex((item) => (offsetOf(item) ?? -1) > offset);
        if (index < 0) return result;
        result.push(index);
        node = node.items[index];
      } else {
        return result;
      }
    }
    return result;
  }

  private deref(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) : node;
  }
}

function offsetOf(node: unknown): number | undefined {
  return (node as Node | null | undefined)?.range?.[0] ?? undefined;
}

function endOf(node: unknown): number | undefined {
  return (node as Node | null | undefined)?.range?.[1] ?? undefined;
}

/** `network.allowed_ranges[2]`, `tools.rate_limits["bug.add"]`. */
export function formatKey(keyPath: KeyPath): string {
  let out = "";
  for (const segment of keyPath) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

function sortIssues(issues: PolicyIssue[]): PolicyIssue[] {
  const seen = new Set<string>();
  const unique = issues.filter((issue) => {
    const id = `${issue.line}:${issue.column}:${issue.key}:${issue.message}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
  return unique.sort(
    (a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? Infinity) - (b.column ?? Infinity),
  );
}

// ---------------------------------------------------------------------------
// Schema validation
// ---------------------------------------------------------------------------

function validate(value: unknown, locator: () => Locator): PolicyIssue[] {
  const validator = policyValidator();
  if (validator(value)) return [];
  const issues: PolicyIssue[] = [];
  for (const error of validator.errors ?? []) {
    const issue = describeSchemaError(error, value);
    if (issue === undefined) continue;
    const choices = error.keyword === "type" && error.data === null ? EMPTY_VALUE_CHOICES[formatKey(issue.path)] : undefined;
    if (choices !== undefined) {
      const expected = (error.parentSchema as { description?: string } | undefined)?.description ?? "a value";
      issue.message = `expected ${expected}, got an empty value: remove the key for ${choices.leftOut}, or write ${choices.emptyText} for ${choices.empty}`;
    }
    if (error.keyword === "type" && error.data === null && locator().scalarSource(issue.path) === "~") {
      issue.message += ' (a bare ~ is an empty value in YAML: write "~" in quotes for the home directory)';
    }
    issues.push({ ...locator().locate(issue.path, issue.target), key: formatKey(issue.path), message: issue.message });
  }
  return issues;
}

// ---------------------------------------------------------------------------
// The effective policy
// ---------------------------------------------------------------------------

/** The file's shape after schema validation (every section optional). */
interface RawPolicy {
  version: string | number;
  network?: {
    allowed_ranges?: string[];
    allowed_endpoints?: NetworkEndpoint[];
    blocked_ports?: number[];
    allow_dns?: boolean;
    dns_allowlist?: string[];
    max_response_bytes?: number;
    timeout?: number;
  };
  filesystem?: {
    allowed_paths?: string[];
    denied_paths?: string[];
    write_denied_paths?: string[];
    max_read_bytes?: number;
    max_write_bytes?: number;
  };
  commands?: { blocked?: string[]; allowed?: string[]; timeout?: number; max_output_bytes?: number; sandbox?: "auto" | "required" | "off" };
  tools?: {
    allow?: string[];
    deny?: string[];
    rate_limits?: Record<string, number>;
    timeout?: number;
    timeouts?: Record<string, number>;
  };
  limits?: Partial<LimitsPolicy>;
  audit?: {
    enabled?: boolean;
    log_file?: string;
    log_level?: string;
    include?: string[];
    fsync?: "always" | "batch";
    fsync_interval_ms?: number;
    checkpoint_every?: number;
    rotate_bytes?: number;
    rotate_daily?: boolean;
    signing_key?: string;
  };
  server?: { project_path?: string };
  database?: Record<string, unknown>;
}

/** How an expanded string must look. */
type PathKind =
  | "allowed-glob" // absolute glob
  | "denied-glob" // absolute glob, or `**/...` (anywhere)
  | "file" // absolute path, not a glob
  | "command"; // bare name, or absolute path

/** Builds the effective policy from a document that passed `validate` and `checkExpansions`. */
function buildEffective(raw: RawPolicy, env: PolicyEnv): EffectivePolicy {
  const expand = (value: string, kind: PathKind): string => expandValue(value, kind, env).value;
  const expandAll = (values: readonly string[] | undefined, kind: PathKind): string[] | undefined =>
    values?.map((value) => expand(value, kind));

  const network = raw.network ?? {};
  const filesystem = raw.filesystem ?? {};
  const commands = raw.commands ?? {};
  const tools = raw.tools ?? {};
  const audit = raw.audit ?? {};

  const allowedCommands = expandAll(commands.allowed, "command");
  const allow = tools.allow === undefined ? undefined : [...tools.allow];
  const logFile =
    audit.log_file === undefined
      ? defaultAuditLogFile(env.stateDir)
      : expand(audit.log_file, "file");
  const signingKey =
    audit.signing_key === undefined
      ? undefined
      : expand(audit.signing_key, "file");
  const projectPath =
    raw.server?.project_path === undefined
      ? undefined
      : expand(raw.server.project_path, "file");

  const policy: EffectivePolicy = {
    version: SUPPORTED_VERSIONS[0] ?? "1.0",
    network: {
      allowed_ranges: (network.allowed_ranges ?? []).map((range) => {
        const parsed = parseCidr(range);
        return parsed.ok ? parsed.normalized : range; // invalid ones were reported by the schema
      }),
      allowed_endpoints: (network.allowed_endpoints ?? []).map((endpoint) => {
        const copy: NetworkEndpoint = { host: normalizeHost(endpoint.host), ports: [...endpoint.ports] };
        if (endpoint.description !== undefined) copy.description = endpoint.description;
        return copy;
      }),
      blocked_ports: [...(network.blocked_ports ?? [])],
      allow_dns: network.allow_dns ?? false,
      dns_allowlist: (network.dns_allowlist ?? []).map(normalizeHost),
      max_response_bytes: network.max_response_bytes ?? DEFAULTS.network.max_response_bytes,
      timeout: network.timeout ?? DEFAULTS.network.timeout,
    },
    filesystem: {
      allowed_paths: expandAll(filesystem.allowed_paths, "allowed-glob") ?? [],
      // Absent: the built-in deny list. An explicit [] stays empty (the owner said so).
      denied_paths: expandAll(filesystem.denied_paths, "denied-glob") ?? [
        ...DEFAULT_DENIED_PATHS,
      ],
      write_denied_paths: expandAll(filesystem.write_denied_paths, "denied-glob") ?? [...DEFAULT_WRITE_DENIED_PATHS],
      max_read_bytes: filesystem.max_read_bytes ?? DEFAULTS.filesystem.max_read_bytes,
      max_write_bytes: filesystem.max_write_bytes ?? DEFAULTS.filesystem.max_write_bytes,
    },
    commands: {
      blocked: expandAll(commands.blocked, "command") ?? [...DEFAULT_BLOCKED_COMMANDS],
      ...(allowedCommands === undefined ? {} : { allowed: allowedCommands }),
      timeout: commands.timeout ?? DEFAULTS.commands.timeout,
      max_output_bytes: commands.max_output_bytes ?? DEFAULTS.commands.max_output_bytes,
      sandbox: commands.sandbox ?? DEFAULTS.commands.sandbox,
    },
    tools: {
      ...(allow === undefined ? {} : { allow }),
      deny: [...(tools.deny ?? [])],
      rate_limits:
        tools.rate_limits === undefined
          ? { ...DEFAULT_RATE_LIMITS, default: DEFAULT_RATE_LIMIT }
          : { ...tools.rate_limits, default: tools.rate_limits.default ?? DEFAULT_RATE_LIMIT },
      timeout: tools.timeout ?? DEFAULTS.tools.timeout,
      timeouts: { ...(tools.timeouts ?? {}) },
    },
    limits: { ...DEFAULTS.limits, ...raw.limits },
    audit: {
      enabled: audit.enabled ?? DEFAULTS.audit.enabled,
      log_file: logFile,
      log_level: normalizeLogLevel(audit.log_level),
      fsync: audit.fsync ?? DEFAULTS.audit.fsync,
      fsync_interval_ms: audit.fsync_interval_ms ?? DEFAULTS.audit.fsync_interval_ms,
      checkpoint_every: audit.checkpoint_every ?? DEFAULTS.audit.checkpoint_every,
      rotate_bytes: audit.rotate_bytes ?? DEFAULTS.audit.rotate_bytes,
      rotate_daily: audit.rotate_daily ?? DEFAULTS.audit.rotate_daily,
      ...(signingKey === undefined ? {} : { signing_key: signingKey }),
      ...(audit.include === undefined ? {} : { include: [...audit.include] }),
    },
    server: projectPath === undefined ? {} : { project_path: projectPath },
  };
  return policy;
}

/** Where the strings that get expanded live, and how each must look once expanded. */
const EXPANDED_FIELDS: readonly { keyPath: readonly string[]; kind: PathKind; list: boolean }[] = [
  { keyPath: ["filesystem", "allowed_paths"], kind: "allowed-glob", list: true },
  { keyPath: ["filesystem", "denied_paths"], kind: "denied-glob", list: true },
  { keyPath: ["filesystem", "write_denied_paths"], kind: "denied-glob", list: true },
  { keyPath: ["commands", "blocked"], kind: "command", list: true },
  { keyPath: ["commands", "allowed"], kind: "command", list: true },
  { keyPath: ["audit", "log_file"], kind: "file", list: false },
  { keyPath: ["audit", "signing_key"], kind: "file", list: false },
  { keyPath: ["server", "project_path"], kind: "file", list: false },
];

/**
 * Expands every expandable string the document holds, whatever else is wrong with
 * it (values of the wrong type are the schema's to report), and reports each
 * variable or path problem at its position.
 */
function checkExpansions(value: unknown, env: PolicyEnv, locator: () => Locator): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  const check = (text: string, keyPath: KeyPath, kind: PathKind): void => {
    for (const message of expandValue(text, kind, env).problems) {
      issues.push({ ...locator().locate(keyPath, "value"), key: formatKey(keyPath), message });
    }
  };
  for (const field of EXPANDED_FIELDS) {
    let current: unknown = value;
    for (const segment of field.keyPath) {
      current = isRecord(current) ? current[segment] : undefined;
    }
    if (field.list && Array.isArray(current)) {
      current.forEach((item: unknown, index) => {
        if (typeof item === "string") check(item, [...field.keyPath, index], field.kind);
      });
    } else if (!field.list && typeof current === "string") {
      check(current, field.keyPath, field.kind);
    }
  }
  return issues;
}

/**
 * Compiles the globs of the document as the server will, each entry that is otherwise sound
 * (`flawed`: keys already reported), and reports each one that does not compile at its place:
 * "start" the ones every start compiles (allowed paths, tool globs), "deny" the deny rules.
 */
function checkGlobs(value: unknown, env: PolicyEnv, locator: () => Locator, flawed: ReadonlySet<string>, which: "start" | "deny"): PolicyIssue[] {
  const fields: readonly { keyPath: readonly [string, string]; problem: (entry: string) => string | undefined }[] =
    which === "start"
      ? [
          { keyPath: ["filesystem", "allowed_paths"], problem: (entry) => allowedPathGlobProblem(expandValue(entry, "allowed-glob", env).value) },
          { keyPath: ["tools", "allow"], problem: (entry) => toolGlobProblem(entry, "allow") },
          { keyPath: ["tools", "deny"], problem: (entry) => toolGlobProblem(entry, "deny") },
        ]
      : [
          { keyPath: ["filesystem", "denied_paths"], problem: (entry) => denyRuleGlobProblem(expandValue(entry, "denied-glob", env).value) },
          { keyPath: ["filesystem", "write_denied_paths"], problem: (entry) => denyRuleGlobProblem(expandValue(entry, "denied-glob", env).value) },
        ];
  const issues: PolicyIssue[] = [];
  for (const { keyPath, problem } of fields) {
    const section = isRecord(value) ? value[keyPath[0]] : undefined;
    const entries = isRecord(section) ? section[keyPath[1]] : undefined;
    if (!Array.isArray(entries)) continue;
    entries.forEach((entry: unknown, index) => {
      const entryPath = [...keyPath, index];
      const key = formatKey(entryPath);
      if (typeof entry !== "string" || flawed.has(key)) return;
      const found = problem(entry);
      if (found !== undefined) issues.push({ ...locator().locate(entryPath, "value"), key, message: `${JSON.stringify(entry)} ${found}` });
    });
  }
  return issues;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Host names compare case-insensitively; a trailing dot names the same host. */
function normalizeHost(host: string): string {
  const lower = host.toLowerCase();
  return lower.endsWith(".") && lower.length > 1 ? lower.slice(0, -1) : lower;
}

/** Python's names for our levels. */
const PYTHON_LOG_LEVELS: Readonly<Record<string, string>> = { warn: "warning", fatal: "critical", notset: "debug" };

/** The seed wrote Python names ("INFO", "WARNING", "FATAL"); the effective policy holds ours. */
function normalizeLogLevel(level: string | undefined): string {
  if (level === undefined) return DEFAULTS.audit.log_level;
  const lower = level.toLowerCase();
  const ours = Object.hasOwn(PYTHON_LOG_LEVELS, lower) ? (PYTHON_LOG_LEVELS[lower] as string) : lower;
  return LOG_LEVEL_NAMES.includes(ours) ? ours : DEFAULTS.audit.log_level;
}

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// eslint-disable-next-line no-control-regex -- the characters the schema's path and command patterns refuse
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/**
 * Expands a leading `~` and every `${NAME}` (`${STATE_DIR}` is the state directory;
 * `${HOME}` falls back to the home directory), then checks the result's shape.
 * Anything that cannot be expanded exactly is an issue: a half-expanded deny rule
 * would silently never match.
 */
function expandValue(value: string, kind: PathKind, env: PolicyEnv): { value: string; problems: string[] } {
  const isGlob = kind === "allowed-glob" || kind === "denied-glob";
  const problems: string[] = [];
  const insert = (name: string, inserted: string): string => {
    // The schema checked what is written, not what a variable brings: a value it would refuse
    // written out (a line break, "curl " for a command) would make a rule that never matches.
    if (CONTROL_CHARACTER.test(inserted)) {
      problems.push(`${name} expands to ${JSON.stringify(inserted)}, which holds a control character (a line break?); no path or command name holds one`);
    } else if (kind === "command" && /\s/.test(inserted)) {
      problems.push(`${name} expands to ${JSON.stringify(inserted)}, which holds whitespace; a command name or path holds none`);
    }
    if (isGlob && GLOB_SPECIAL.test(inserted)) {
      problems.push(
        `${name} expands to "${inserted}", which contains a glob character (* ? [ ] { } ( ) | \\) and cannot be used in a glob`,
      );
    }
    return inserted;
  };

  let rest = value;
  let out = "";
  if (rest === "~" || rest.startsWith("~/")) {
    out = insert("~", env.home.replace(/\/+$/, "") || "/");
    rest = rest.slice(1);
    if (out === "/" && rest.startsWith("/")) out = "";
  } else if (rest.startsWith("~")) {
    problems.push('only "~" and "~/" are expanded at the start of a path ("~user" is not supported)');
  }

  const bare = /\$([A-Za-z_][A-Za-z0-9_]*)/.exec(rest.replace(/\$\{[^}]*\}/g, ""));
  if (bare !== null) problems.push(`"$${bare[1]}" is not expanded: write \${${bare[1]}}`);

  for (;;) {
    const start = rest.indexOf("${");
    if (start < 0) break;
    const end = rest.indexOf("}", start + 2);
    if (end < 0) {
      problems.push('"${" without a closing "}"');
      break;
    }
    out += rest.slice(0, start);
    const name = rest.slice(start + 2, end);
    rest = rest.slice(end + 1);
    if (!VARIABLE_NAME.test(name)) {
      problems.push(`"\${${name}}" is not a valid variable name`);
      continue;
    }
    const resolved = lookupVariable(name, env);
    if (resolved === undefined) {
      problems.push(
        `unknown variable \${${name}}: it is not set (a policy may use \${HOME}, \${STATE_DIR} and variables set in the server's environment)`,
      );
    } else if (resolved === "") {
      problems.push(`variable \${${name}} is empty`);
    } else {
      out += insert(`\${${name}}`, resolved);
    }
  }
  out += rest;

  if (problems.length === 0) {
    const shapeProblem = checkShape(out, kind);
    if (shapeProblem !== undefined) problems.push(shapeProblem);
  }
  return { value: out, problems };
}

function lookupVariable(name: string, env: PolicyEnv): string | undefined {
  if (name === "STATE_DIR") return env.stateDir;
  const value = env.vars[name];
  if (name === "HOME" && (value === undefined || value === "")) return env.home;
  return value;
}

/** The schema's longest path or command, held by the expanded value too. */
const MAX_EXPANDED_LENGTH = 4096;

function checkShape(expanded: string, kind: PathKind): string | undefined {
  if (expanded.length > MAX_EXPANDED_LENGTH) return `the value expands to more than ${MAX_EXPANDED_LENGTH} characters, longer than any path the policy takes`;
  if (expanded.split(/[/\\]/).includes("..")) {
    return `"${expanded}" contains a ".." segment; write the path without it`;
  }
  switch (kind) {
    case "allowed-glob":
    case "file":
      return path.isAbsolute(expanded)
        ? undefined
        : `"${expanded}" is a relative path; write an absolute path (you may start it with ~/, \${HOME} or \${STATE_DIR})`;
    case "denied-glob":
      return path.isAbsolute(expanded) || expanded.startsWith("**")
        ? undefined
        : `"${expanded}" is a relative pattern; start it with / for an absolute path or with **/ to match anywhere (e.g. "**/${expanded}")`;
    case "command":
      return !/[/\\]/.test(expanded) || path.isAbsolute(expanded)
        ? undefined
        : `"${expanded}" is a relative path; give a command name (such as git) or an absolute path`;
    default: {
      const unreachable: never = kind;
      return unreachable;
    }
  }
}

// ---------------------------------------------------------------------------
// Warnings
// ---------------------------------------------------------------------------

/** Ranges that reach this machine or the local network: requests there are server-side request forgery. */
const LOCAL_NETWORKS: readonly { range: string; what: string }[] = [
  { range: "127.0.0.0/8", what: "loopback (services on this machine)" },
  { range: "::1/128", what: "loopback (services on this machine)" },
  { range: "10.0.0.0/8", what: "a private network" },
  { range: "172.16.0.0/12", what: "a private network" },
  { range: "192.168.0.0/16", what: "a private network" },
  { range: "169.254.0.0/16", what: "link-local (with the cloud metadata address 169.254.169.254)" },
  { range: "fc00::/7", what: "a private IPv6 network" },
  { range: "fe80::/10", what: "link-local" },
];

/** The IPv4 address a host that is not written as one names all the same (`127.1`, `0x7f000001`), if it does. */
function ipSpelledOtherwise(host: string): string | undefined {
  if (parseIp(host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host) !== undefined) return undefined;
  let hostname: string;
  try {
    hostname = new URL(`http://${host}/`).hostname;
  } catch {
    return undefined;
  }
  return parseIp(hostname)?.family === 4 ? hostname : undefined;
}

/** `key: VALUE is listed more than once` for each value that repeats (as normalized). */
function repeatedEntries(key: string, values: readonly (string | number)[]): string[] {
  const seen = new Set<string | number>();
  const repeated = new Set<string | number>();
  for (const value of values) (seen.has(value) ? repeated : seen).add(value);
  return [...repeated].map((value) => `${key}: ${JSON.stringify(value)} is listed more than once (the repeat has no effect; a slip for another value?)`);
}

/**
 * What the policy turns off: the safe choices, made on purpose more often than not (the
 * built-in policy makes two), so they are information, not warnings; a person reading
 * check-policy still sees why a tool can do nothing.
 */
export function policyNotes(policy: EffectivePolicy): string[] {
  const notes: string[] = [];
  const { network, filesystem, commands } = policy;
  if (network.allowed_ranges.length === 0 && network.allowed_endpoints.length === 0) {
    notes.push("network.allowed_ranges and network.allowed_endpoints are empty: no network access");
  }
  if (filesystem.allowed_paths.length === 0) notes.push("filesystem.allowed_paths is empty: no file access");
  if (commands.allowed !== undefined && commands.allowed.length === 0) notes.push("commands.allowed is empty: no command may run");
  return notes;
}

/** Things that are valid but probably not what the owner meant. */
export function policyWarnings(policy: EffectivePolicy, raw?: { database?: unknown; audit?: { include?: unknown } }): string[] {
  const warnings: string[] = [];
  const { network, filesystem, commands, tools, audit } = policy;

  for (const text of network.allowed_ranges) {
    const parsed = parseCidr(text);
    if (!parsed.ok) continue;
    if (parsed.cidr.prefix === 0) {
      warnings.push(`network.allowed_ranges: ${text} allows every IPv${parsed.cidr.family} address`);
      continue;
    }
    for (const local of LOCAL_NETWORKS) {
      const localRange = parseCidr(local.range);
      if (localRange.ok && cidrOverlaps(parsed.cidr, localRange.cidr)) {
        const relation = parsed.normalized === local.range ? "is" : `overlaps ${local.range},`;
        warnings.push(`network.allowed_ranges: ${parsed.normalized} ${relation} ${local.what}; tools may reach it`);
      }
    }
  }
  // A repeated entry changes nothing, so it does not stop a policy (the seed loaded it); it may be a
  // slip for another value, so it is named.
  warnings.push(
    ...repeatedEntries("network.allowed_ranges", network.allowed_ranges),
    ...network.allowed_endpoints.flatMap((endpoint, index) =>
      repeatedEntries(`network.allowed_endpoints[${index}].ports`, endpoint.ports),
    ),
    ...repeatedEntries("network.blocked_ports", network.blocked_ports),
    ...repeatedEntries("network.dns_allowlist", network.dns_allowlist),
    ...repeatedEntries("audit.include", audit.include ?? []),
    ...repeatedEntries("filesystem.allowed_paths", filesystem.allowed_paths),
    ...repeatedEntries("filesystem.denied_paths", filesystem.denied_paths),
    ...repeatedEntries("filesystem.write_denied_paths", filesystem.write_denied_paths),
    ...repeatedEntries("commands.allowed", commands.allowed ?? []),
    ...repeatedEntries("commands.blocked", commands.blocked),
    ...repeatedEntries("tools.allow", tools.allow ?? []),
    ...repeatedEntries("tools.deny", tools.deny),
  );
  if (network.allow_dns && network.dns_allowlist.length === 0) {
    warnings.push("network.allow_dns is true but network.dns_allowlist is empty: no host name can be resolved");
  }
  network.allowed_endpoints.forEach((endpoint, index) => {
    // The egress guard reads such a host as URLs do (it must: a URL naming it reaches that address), so a
    // zero-padded 010.1.2.3 allows 8.1.2.3, and 0177.0.0.1 loopback, while the policy seems to say otherwise.
    const address = ipSpelledOtherwise(endpoint.host);
    if (address === undefined) return;
    const local = LOCAL_NETWORKS.find((network) => {
      const range = parseCidr(network.range);
      const own = parseCidr(address);
      return range.ok && own.ok && cidrOverlaps(range.cidr, own.cidr);
    });
    warnings.push(
      `network.allowed_endpoints[${index}].host: "${endpoint.host}" is the IP address ${address} as URLs read it (a part with a leading 0 is octal, 0x hex, ` +
        `and fewer than four parts fill the last)${local === undefined ? "" : `, which is ${local.what}`}; write ${address} if that is meant`,
    );
  });
  for (const endpoint of network.allowed_endpoints) {
    if (network.blocked_ports.some((port) => endpoint.ports.includes(port))) {
      warnings.push(`network.allowed_endpoints: ${endpoint.host} lists a port that network.blocked_ports blocks`);
    }
  }

  if (filesystem.denied_paths.length === 0 && filesystem.allowed_paths.length > 0) {
    warnings.push(
      "filesystem.denied_paths is empty: nothing inside the allowed paths is protected (.ssh, .aws, .env and keys included)",
    );
  }
  if (filesystem.write_denied_paths.length === 0 && filesystem.allowed_paths.length > 0) {
    warnings.push(
      "filesystem.write_denied_paths is empty: tools may write git hooks, shell start-up files, editor tasks and MCP client configurations inside the allowed paths",
    );
  }

  if (commands.allowed === undefined) {
    const blocked = new Set(commands.blocked.map((name) => path.basename(name).toLowerCase()));
    const open = [...SHELLS_AND_INTERPRETERS, ...COMMAND_RUNNERS].filter((name) => !blocked.has(name));
    if (open.length > 0) {
      warnings.push(
        `commands.blocked leaves shells, interpreters and command runners open (${open.join(", ")}): any blocked command can run through them; prefer listing exactly what may run in commands.allowed`,
      );
    }
  } else if (commands.allowed.length > 0) {
    // Blocked wins: an allowed entry the block list also names never runs (the built-in list names git and make).
    const blockedNames = new Set(commands.blocked.filter((entry) => !entry.includes("/")).map((entry) => entry.toLowerCase()));
    const never = commands.allowed.filter((entry) => blockedNames.has(path.basename(entry).toLowerCase()) || commands.blocked.includes(entry));
    if (never.length > 0) {
      const builtIn = commands.blocked.length === DEFAULT_BLOCKED_COMMANDS.length && commands.blocked.every((entry, index) => entry === DEFAULT_BLOCKED_COMMANDS[index]);
      warnings.push(
        `commands.allowed: ${never.join(", ")} can never run: commands.blocked${builtIn ? " (the built-in list, used when the key is left out)" : ""} names ${never.length === 1 ? "it" : "them"} too, and blocked wins; write commands.blocked without ${never.length === 1 ? "it" : "them"}`,
      );
    }
    const runners = new Set([...SHELLS_AND_INTERPRETERS, ...COMMAND_RUNNERS, ...ARGUMENT_RUNNERS]);
    const open = commands.allowed.filter((entry) => !never.includes(entry) && runners.has(path.basename(entry).toLowerCase()));
    if (open.length > 0) {
      warnings.push(
        `commands.allowed: ${open.join(", ")} ${open.length === 1 ? "runs" : "run"} other programs through ${open.length === 1 ? "its" : "their"} own arguments, configuration or input (git -c core.pager=CMD, rg --pre CMD, sqlite3 .shell, python3 -c, find -exec): whoever picks the arguments can run any command, blocked ones included`,
      );
    }
  }

  if (tools.allow !== undefined && tools.allow.length === 0) warnings.push("tools.allow is empty: no tool is exposed");
  warnings.push(...followedDenials(tools));
  for (const name of Object.keys(tools.rate_limits)) {
    if (name !== "default" && editDistance(name.toLowerCase(), "default") <= 2) {
      warnings.push(`tools.rate_limits.${name}: read as the limit of a tool named "${name}"; did you mean "default"?`);
    }
  }

  if (!audit.enabled) warnings.push("audit.enabled is false: no audit log is written");
  if (raw?.audit?.include !== undefined) {
    warnings.push("audit.include is kept for compatibility with the seed server: every field is always recorded");
  }
  if (raw?.database !== undefined) {
    warnings.push("database: accepted for compatibility with the seed server, but not used by any tool");
  }
  return warnings;
}
