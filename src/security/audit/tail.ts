/**
 * The last entries of an audit file, read from its end only, rendered one line each for
 * a person: time, seq, event, tool, outcome, duration, reason. Tail does not verify
 * hashes (that is `audit verify`); text from entries is stripped of control characters
 * so that a crafted reason cannot drive the terminal.
 */
import { constants as C } from "node:fs";
import { AuditReadError, describeFsError } from "./errors.js";
import { scanTail } from "./file-scan.js";
import { nodeAuditFs, O_NOFOLLOW, type AuditFs } from "./fs-layer.js";

export interface AuditTail {
  /** The last complete lines, oldest first. */
  lines: string[];
  /** Bytes of an incomplete last line (a torn write), 0 when none. */
  tornBytes: number;
}

export async function readAuditTail(file: string, count: number, layer: AuditFs = nodeAuditFs): Promise<AuditTail> {
  let fd: number;
  try {
    fd = await layer.open(file, C.O_RDONLY | O_NOFOLLOW);
  } catch (err) {
    throw new AuditReadError(`${file} cannot be read: ${describeFsError(err)}`, { cause: err });
  }
  try {
    const st = await layer.fstat(fd);
    if (!st.isFile()) throw new AuditReadError(`${file} is not a regular file`);
    const scan = await scanTail(layer, fd, st.size, count);
    return { lines: scan.lines.map((line) => line.text), tornBytes: scan.torn.length };
  } catch (err) {
    if (err instanceof AuditReadError) throw err;
    throw new AuditReadError(`${file} cannot be read: ${describeFsError(err)}`, { cause: err });
  } finally {
    await layer.close(fd).catch(() => undefined);
  }
}

/** Replaces control characters (C0, DEL, C1, line and paragraph separators) with a visible escape. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : typeof value === "number" ? String(value) : undefined;
}

/** What the last column says for the log's own events, which carry their details in `data`. */
function detail(entry: Record<string, unknown>): string | undefined {
  const data = typeof entry.data === "object" && entry.data !== null ? (entry.data as Record<string, unknown>) : {};
  const reason = str(entry.reason);
  switch (entry.event) {
    case "server_start":
      return `version ${str(data.serverVersion) ?? "?"}, policy ${(str(data.policySha256) ?? "?").slice(0, 12)}`;
    case "rotate":
      return `continues from ${str(data.previousFile) ?? "?"}`;
    case "recovery":
      return [reason, str(data.keptIn) === undefined ? undefined : `kept in ${str(data.keptIn)}`].filter((x) => x !== undefined).join("; ");
    case "checkpoint": {
      const cp = typeof entry.checkpoint === "object" && entry.checkpoint !== null ? (entry.checkpoint as Record<string, unknown>) : {};
      return `signed head of #${str(cp.seq) ?? "?"} (key ${(str(cp.keyFingerprint) ?? "?").slice(0, 16)})`;
    }
    default:
      return reason;
  }
}

/** One entry line as `time  #seq  event  tool  outcome  duration  reason`. */
export function formatTailLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new TypeError("not an object");
    entry = parsed as Record<string, unknown>;
  } catch {
    return `(unparseable line: ${printable(line.slice(0, 80))}${line.length > 80 ? "…" : ""})`;
  }
  const duration = typeof entry.durationMs === "number" ? `${Math.round(entry.durationMs)}ms` : "-";
  const columns = [
    (str(entry.ts) ?? "-").padEnd(24),
    `#${str(entry.seq) ?? "?"}`.padStart(8),
    (str(entry.event) ?? "-").padEnd(12),
    (str(entry.tool) ?? "-").padEnd(16),
    (str(entry.outcome) ?? "-").padEnd(9),
    duration.padStart(7),
  ];
  const text = detail(entry);
  if (text !== undefined && text.length > 0) columns.push(text);
  return printable(columns.join("  ").trimEnd());
}
