/**
 * Which tools a session may see and call: `tools.allow` (absent: every tool; empty:
 * none) minus `tools.deny`, which always wins. Entries are exact names or globs.
 */
import picomatch from "picomatch";
import type { ToolsPolicy } from "../policy-types.js";
import { globErrorDetail } from "../path-guard.js";

export type ToolAccess = (toolName: string) => boolean;

/** A `tools.allow` / `tools.deny` entry that is not a usable glob; thrown at start. */
export class ToolAccessPolicyError extends Error {
  readonly code = "POLICY_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "ToolAccessPolicyError";
  }
}

// `nonegate`: a leading "!" would turn an allow entry into "everything but", which
// widens instead of narrowing. Tool names hold no "/", so `*` spans the whole name.
// `debug`: picomatch throws on a pattern whose regex does not compile (`exec_{a`, `[z-a]*`)
// instead of returning one that never matches, which would make a deny entry deny nothing.
const BASE_OPTIONS: picomatch.PicomatchOptions = { nonegate: true, dot: true, debug: true };

/** A tool glob's test, or why it does not compile ("is not a valid glob (...)"). */
function compileGlob(pattern: string, key: "allow" | "deny"): { test: (name: string) => boolean } | { problem: string } {
  try {
    // Deny matches regardless of case: denying "exec_*" must also catch "Exec_shell".
    return { test: picomatch(pattern, { ...BASE_OPTIONS, nocase: key === "deny" }) };
  } catch (error) {
    return { problem: `is not a valid glob (${globErrorDetail(error)}); check its brackets and braces` };
  }
}

/** Why `pattern`, a `tools.allow` or `tools.deny` entry, is not a usable glob, or undefined (for the policy loader). */
export function toolGlobProblem(pattern: string, key: "allow" | "deny"): string | undefined {
  const compiled = compileGlob(pattern, key);
  return "problem" in compiled ? compiled.problem : undefined;
}

function matcher(patterns: readonly string[], key: "allow" | "deny", problems: string[]): (name: string) => boolean {
  const tests: ((name: string) => boolean)[] = [];
  patterns.forEach((pattern, index) => {
    const compiled = compileGlob(pattern, key);
    if ("test" in compiled) tests.push(compiled.test);
    else problems.push(`tools.${key}[${index}] ${JSON.stringify(pattern)} ${compiled.problem}`);
  });
  return (name) => tests.some((test) => test(name));
}

/**
 * Tools that change files as another tool does, added after it: they follow its `tools.deny`
 * (unless `tools.allow` names them exactly) and its `tools.rate_limits` entry (unless they have
 * their own). A policy written as `deny: [write_file, create_directory]` to keep a folder
 * read-only must not gain a write tool when the server adds one.
 */
export const FOLLOWS: Readonly<Record<string, string>> = { edit_file: "write_file", move_file: "write_file" };

/** The tool whose settings `toolName` follows, if any. */
export function followedTool(toolName: string): string | undefined {
  return Object.hasOwn(FOLLOWS, toolName) ? FOLLOWS[toolName] : undefined;
}

/** Whether a tool is denied because the tool it follows is, and `tools.allow` does not name it exactly. */
function followerDenial(tools: Pick<ToolsPolicy, "allow">, denied: (name: string) => boolean): (toolName: string) => boolean {
  const named = new Set(tools.allow ?? []);
  return (toolName) => {
    const followed = followedTool(toolName);
    return followed !== undefined && denied(followed) && !named.has(toolName);
  };
}

export function compileToolAccess(tools: Pick<ToolsPolicy, "allow" | "deny">): ToolAccess {
  // Every entry is compiled before refusing, so one refusal names every entry to fix.
  const problems: string[] = [];
  const denied = matcher(tools.deny, "deny", problems);
  const allowed = tools.allow === undefined ? () => true : matcher(tools.allow, "allow", problems);
  if (problems.length > 0) throw new ToolAccessPolicyError(problems.join("\n"));
  const deniedWith = followerDenial(tools, denied);
  return (toolName) => typeof toolName === "string" && toolName !== "" && !denied(toolName) && !deniedWith(toolName) && allowed(toolName);
}

/**
 * Tools denied only because they follow a denied tool (FOLLOWS), said at start and by
 * check-policy: a policy that allows them by a glob, or never thought of them, hears why they
 * are gone and how to keep them.
 */
export function followedDenials(tools: Pick<ToolsPolicy, "allow" | "deny">): string[] {
  // An entry that is not a glob is refused elsewhere, with its own message.
  const denied = matcher(tools.deny, "deny", []);
  const allowed = tools.allow === undefined ? () => true : matcher(tools.allow, "allow", []);
  const deniedWith = followerDenial(tools, denied);
  return Object.entries(FOLLOWS)
    .filter(([tool]) => deniedWith(tool) && !denied(tool) && allowed(tool))
    .map(([tool, followed]) => `tools.deny matches ${followed}, so ${tool} is denied too (it changes files as ${followed} does); name ${tool} in tools.allow to keep it`);
}

/**
 * Entries of the tools policy that name no tool the server has: a typo in `tools.deny`
 * (`wirte_file`) leaves the tool callable, one in `tools.allow` leaves a wanted tool out, and
 * one in `tools.rate_limits` / `tools.timeouts` (`add_bugs`) leaves that tool on the default.
 * Said at start and by check-policy. Pure: the names of every registered tool in, warnings out.
 */
export function unmatchedToolNames(tools: Pick<ToolsPolicy, "allow" | "deny" | "rate_limits" | "timeouts">, toolNames: readonly string[]): string[] {
  const known = new Set(toolNames);
  const warnings: string[] = [];
  /** `effect`: what one such entry, then several, do. */
  const say = (key: string, unmatched: readonly string[], effect: readonly [string, string]) => {
    if (unmatched.length === 0) return;
    const names = unmatched.map((name) => JSON.stringify(name)).join(", ");
    const one = unmatched.length === 1;
    warnings.push(`tools.${key} names ${names}, which ${one ? "matches" : "match"} no tool of this server: ${effect[one ? 0 : 1]} (a typo?)`);
  };
  for (const [key, patterns] of [["deny", tools.deny], ["allow", tools.allow ?? []]] as const) {
    // An entry that is not a glob is refused elsewhere, with its own message.
    const unmatched = [...new Set(patterns)].filter((pattern) => {
      const compiled = compileGlob(pattern, key);
      return "test" in compiled && !toolNames.some((name) => compiled.test(name));
    });
    say(key, unmatched, key === "deny" ? ["it denies nothing", "they deny nothing"] : ["it allows nothing", "they allow nothing"]);
  }
  for (const [key, settings] of [["rate_limits", tools.rate_limits], ["timeouts", tools.timeouts]] as const) {
    const unmatched = Object.keys(settings).filter((name) => name !== "default" && !known.has(name));
    say(key, unmatched, ["that entry has no effect", "those entries have no effect"]);
  }
  return warnings;
}
