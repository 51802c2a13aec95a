/**
 * Which tools a session may see and call: `tools.allow` (absent: every tool; empty:
 * none) minus `tools.deny`, which always wins. Entries are exact names or globs.
 */
import picomatch from "picomatch";
import type { ToolsPolicy } from "../policy-types.js";

export type ToolAccess = (toolName: string) => boolean;

// `nonegate`: a leading "!" would turn an allow entry into "everything but", which
// widens instead of narrowing. Tool names hold no "/", so `*` spans the whole name.
const BASE_OPTIONS: picomatch.PicomatchOptions = { nonegate: true, dot: true };

function matcher(patterns: readonly string[], nocase: boolean): (name: string) => boolean {
  if (patterns.length === 0) return () => false;
  return picomatch([...patterns], { ...BASE_OPTIONS, nocase });
}

export function compileToolAccess(tools: Pick<ToolsPolicy, "allow" | "deny">): ToolAccess {
  // Deny matches regardless of case: denying "exec_*" must also catch "Exec_shell".
  const denied = matcher(tools.deny, true);
  const allowed = tools.allow === undefined ? () => true : matcher(tools.allow, false);
  return (toolName) => typeof toolName === "string" && toolName !== "" && !denied(toolName) && allowed(toolName);
}
