/**
 * The policy's error type, apart from the schema so that code which only needs to
 * throw or catch it (the built-in default policy) does not load the validator.
 */

export interface PolicyIssue {
  /** 1-based line in the policy file, when the issue has a position. */
  line?: number;
  /** 1-based column in the policy file. */
  column?: number;
  /** The key path (`filesystem.allowed_paths[2]`), or "" for the document itself. */
  key: string;
  message: string;
}

export type PolicyErrorCode = "POLICY_INVALID" | "POLICY_UNREADABLE";

/** At most this many issues are reported; the rest are counted. */
export const MAX_REPORTED_ISSUES = 20;

/** `policy.yaml:12:5: filesystem.denied_path: unknown key (...)`. */
export function formatIssue(source: string, issue: PolicyIssue): string {
  const where = issue.line === undefined ? source : `${source}:${issue.line}:${issue.column ?? 1}`;
  return issue.key === "" ? `${where}: ${issue.message}` : `${where}: ${issue.key}: ${issue.message}`;
}

/**
 * A policy that cannot be used. `message` is the whole report, one issue per line,
 * so that printing it is enough for a person (or a model) to fix the file.
 */
export class PolicyError extends Error {
  readonly code: PolicyErrorCode;
  readonly source: string;
  readonly issues: readonly PolicyIssue[];
  /** The report's lines (`message` is them joined by line breaks), for a log that writes one record per line. */
  readonly lines: readonly string[];
  constructor(code: PolicyErrorCode, source: string, issues: readonly PolicyIssue[]) {
    const shown = issues.slice(0, MAX_REPORTED_ISSUES);
    const lines = shown.map((issue) => formatIssue(source, issue));
    if (issues.length > shown.length) lines.push(`${source}: ... and ${issues.length - shown.length} more errors`);
    super(lines.join("\n"));
    this.name = "PolicyError";
    this.code = code;
    this.source = source;
    this.issues = shown;
    this.lines = lines;
  }
}

