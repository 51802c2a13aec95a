/**
 * `mcp-secure-local check-policy FILE`: validates a policy and prints the effective
 * policy as YAML (defaults applied, variables expanded), with its SHA-256 and the
 * warnings as comments, so the output is itself a loadable policy. Errors go to `err`.
 */
import path from "node:path";
import { stringify } from "yaml";
import { auditLogFileConflict } from "../audit/log-file-conflict.js";
import { signingKeyPath } from "../audit/checkpoint.js";
import { compilePathPolicy, denyRuleProblems } from "../path-guard.js";
import type { EffectivePolicy } from "../policy-types.js";
import { loadPolicyFile, PolicyError, type LoadedPolicy, type PolicyEnv } from "./load.js";
import { compileToolAccess, unmatchedToolNames } from "./tool-access.js";
import { builtInToolNames } from "../../plugins/builtin/index.js";
import { printableJson } from "../../util/text.js";
import { sandboxReport } from "../capabilities/sandbox.js";

/**
 * `sandbox`: the exec sandbox line (tests inject one; by default bwrap is probed on this machine).
 * `toolNames`: the tools a server has, for the warnings about entries that name none (the
 * built-in ones by default, as a server on this policy has them).
 */
export function runCheckPolicy(
  file: string,
  env: PolicyEnv,
  out: (s: string) => void,
  rawErr: (s: string) => void,
  sandbox: (policy: EffectivePolicy) => string = (policy) => sandboxReport(policy.commands.sandbox, env.vars.PATH),
  toolNames: () => readonly string[] = builtInToolNames,
): number {
  // Problems quote keys, values and the file name: a C1 control or bidi override among them
  // (JSON quoting leaves those as they are) must not drive the terminal or reorder the line.
  // Escaped as JSON escapes its own, so a quoted value still reads as JSON.
  const err = (text: string): void => rawErr(text.split("\n").map(printableJson).join("\n"));
  let loaded: LoadedPolicy;
  try {
    loaded = loadPolicyFile(file, env);
  } catch (error) {
    if (error instanceof PolicyError) {
      err(`${error.message}\n`);
      const count = error.issues.length;
      const what = error.code === "POLICY_UNREADABLE" ? "cannot be read" : `is invalid (${count} ${count === 1 ? "error" : "errors"} shown)`;
      err(`${file}: the policy ${what}\n`);
    } else {
      // Fail closed: anything unexpected means the policy was not shown to be valid.
      err(`${file}: the policy could not be checked: ${error instanceof Error ? error.message : String(error)}\n`);
    }
    return 1;
  }
  // The loader compiled every glob as written and placed each failure in the file. What it
  // cannot see is compiled here: a deny rule's spelling through a symbolic link in its path.
  const { problems: globs, warnings: pathWarnings } = compileForCheck(loaded.policy);
  const audit = loaded.policy.audit;
  const logConflict = audit.enabled ? auditLogFileConflict(audit.log_file, signingKeyPath(env.stateDir, audit.signing_key), path.resolve(file)) : undefined;
  if (logConflict !== undefined) globs.push(logConflict);
  if (globs.length > 0) {
    for (const problem of globs) err(`${file}: ${problem}\n`);
    err(`${file}: the policy is invalid (${globs.length} ${globs.length === 1 ? "error" : "errors"} shown)\n`);
    return 1;
  }
  // A line break in the file name would end the comment and corrupt the YAML.
  // Each comment stays one line (a line break would end it and corrupt the YAML) and harmless to a
  // terminal: the file name, warnings quoting the policy's values and bwrap's own words are escaped.
  const lines = [`# ${printableJson(file)}: valid policy`, `# sha256: ${loaded.sha256}`];
  // The same warnings a server on this policy gives at start.
  const warnings = [...loaded.warnings, ...pathWarnings, ...unmatchedToolNames(loaded.policy.tools, toolNames())];
  if (warnings.length === 0) {
    lines.push("# warnings: none");
  } else {
    lines.push("# warnings:");
    for (const warning of warnings) lines.push(`#   - ${printableJson(warning)}`);
  }
  if (loaded.notes.length > 0) {
    lines.push("# notes (what this policy turns off):");
    for (const note of loaded.notes) lines.push(`#   - ${printableJson(note)}`);
  }
  lines.push(`# exec sandbox: ${printableJson(sandbox(loaded.policy))}`);
  lines.push("# effective policy (defaults applied, variables expanded):");
  out(`${lines.join("\n")}\n${stringify(loaded.policy, { indent: 2, lineWidth: 0 })}`);
  return 0;
}

/**
 * Path and tool globs that do not compile (a deny rule like that would refuse every path), and
 * what compiling the paths on this machine warns of (an allowed directory that does not exist).
 */
function compileForCheck(policy: EffectivePolicy): { problems: string[]; warnings: readonly string[] } {
  const problems: string[] = [];
  let warnings: readonly string[] = [];
  try {
    const compiled = compilePathPolicy(policy.filesystem);
    problems.push(...denyRuleProblems(compiled));
    warnings = compiled.warnings;
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
  }
  try {
    compileToolAccess(policy.tools);
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
  }
  return { problems, warnings };
}
