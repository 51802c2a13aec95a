/**
 * The Python seed server's audit log, found where this server's log is to be written.
 *
 * A seed policy loads unchanged, so its `audit.log_file` (`${HOME}/.mcp-secure/audit.log`)
 * names the file the seed wrote: JSON Lines records (`{"type": "security", "timestamp": ...}`)
 * with no hash chain. This server's log is a hash chain and cannot continue such a file, and
 * the audit module would refuse it as a damaged log ("the log was modified"), which it is not.
 * Looked at before the log is opened, it is named for what it is, with the way out.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { shellWords } from "../util/text.js";

/** The seed's record kinds (its `audit.py`: request, response, security). */
const SEED_RECORD_TYPES = new Set(["request", "response", "security"]);
/** A seed record is a few hundred bytes; the first line is looked for in this much. */
const HEAD_BYTES = 64 * 1024;

/**
 * Why `file` cannot be this server's audit log because it holds the seed's records, or
 * undefined (no such file, empty, or anything else: the audit module judges those).
 */
export function seedAuditLogProblem(file: string): string | undefined {
  const first = firstLine(file);
  if (first === undefined) return undefined;
  let record: unknown;
  try {
    record = JSON.parse(first);
  } catch {
    return undefined;
  }
  if (record === null || typeof record !== "object" || Array.isArray(record)) return undefined;
  const { type, timestamp } = record as Record<string, unknown>;
  // Our entries carry seq and hash; the seed's never do.
  if (typeof type !== "string" || !SEED_RECORD_TYPES.has(type) || typeof timestamp !== "string" || "seq" in record || "hash" in record) {
    return undefined;
  }
  return (
    `audit log ${file} holds the Python seed server's audit records (its first line is a seed "${type}" record), ` +
    `not a hash-chained log this server can continue. Keep it by moving it aside (${shellWords(["mv", file, `${file}.seed`])}), ` +
    `or set audit.log_file in the policy to another file; then start again`
  );
}

/** The file's first line (without its line break), if it is a regular file with one. */
function firstLine(file: string): string | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO must not hold the start; O_NOFOLLOW: a link is the audit module's to judge.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    if (!fstatSync(fd).isFile()) return undefined;
    const buffer = Buffer.alloc(HEAD_BYTES);
    const length = readSync(fd, buffer, 0, HEAD_BYTES, 0);
    if (length === 0) return undefined;
    const text = buffer.subarray(0, length).toString("utf8");
    const end = text.indexOf("\n");
    return (end < 0 ? text : text.slice(0, end)).trim();
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}
