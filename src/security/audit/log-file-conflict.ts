/**
 * Why `audit.log_file` cannot be the log: it names the signing key or the policy file. The log
 * is opened for appending and its first line judged: a start on either refused it as a damaged
 * log ("modified or damaged"), which sent the operator to the wrong place. Pure but for a stat
 * of what exists (a link or a hard link to the key is the key).
 */
import { realpathSync, statSync } from "node:fs";
import path from "node:path";

export function auditLogFileConflict(logFile: string, keyFile: string, policyFile: string | undefined): string | undefined {
  if (sameFile(logFile, keyFile)) {
    return `audit.log_file ${logFile} is the audit signing key (${keyFile}); the log would be written into it: name another file`;
  }
  if (policyFile !== undefined && sameFile(logFile, policyFile)) {
    return `audit.log_file ${logFile} is the policy file this server runs on; the log would be written into it: name another file`;
  }
  return undefined;
}

function sameFile(a: string, b: string): boolean {
  if (path.resolve(a) === path.resolve(b)) return true;
  try {
    const left = statSync(a);
    const right = statSync(b);
    return left.dev === right.dev && left.ino === right.ino;
  } catch {
    // One of them does not exist yet (a first start makes the key): the same name once links in
    // the directories above are followed (a state directory reached through a link and by its real path).
    return realSpelling(a) === realSpelling(b);
  }
}

/** The path with its longest existing ancestor replaced by that ancestor's real path. */
function realSpelling(file: string): string {
  const rest: string[] = [];
  let at = path.resolve(file);
  for (;;) {
    try {
      return path.join(realpathSync(at), ...rest.reverse());
    } catch {
      const parent = path.dirname(at);
      if (parent === at) return path.resolve(file);
      rest.push(path.basename(at));
      at = parent;
    }
  }
}
