/**
 * The last entries of an audit log, read from the ends of its files only: the active file,
 * then (when it holds fewer than asked, as right after a rotation) its rotated segments,
 * newest first. Rendered one line each for a person: time, seq, event, tool, outcome,
 * duration, reason. Tail does not verify hashes (that is `audit verify`); text from entries
 * is stripped of control characters so that a crafted reason cannot drive the terminal.
 */
import path from "node:path";
import { AuditReadError, describeFsError, errnoOf } from "./errors.js";
import { parseObjectLine, scanTail } from "./file-scan.js";
import { nodeAuditFs, type AuditFs } from "./fs-layer.js";
import { findDirectoryLog, looksLikeEntryLine, probe, READ_FLAGS } from "./log-files.js";
import { segmentsOf } from "./segments.js";
import { printable } from "../../util/text.js";

export interface AuditTail {
  /** The last complete lines, oldest first, across the active file and its segments. */
  lines: string[];
  /** Bytes of an incomplete last line of the active file (a torn write), 0 when none. */
  tornBytes: number;
  /** Things to say beside the lines: the active file missing, segments that cannot be listed. */
  warnings: string[];
}

interface FileTail {
  lines: string[];
  torn: Buffer;
  dev: number;
  ino: number;
}

/** The last `want` complete lines of one file, or "missing" when there is no such file. */
async function readFileTail(layer: AuditFs, file: string, want: number): Promise<FileTail | "missing"> {
  let fd: number;
  try {
    fd = await layer.open(file, READ_FLAGS);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return "missing";
    throw new AuditReadError(`${file} cannot be read: ${describeFsError(err)}`, { cause: err });
  }
  try {
    const st = await layer.fstat(fd);
    if (!st.isFile()) throw new AuditReadError(`${file} is not a regular file`);
    const scan = await scanTail(layer, fd, st.size, want);
    return { lines: scan.lines.map((line) => line.text), torn: scan.torn, dev: st.dev, ino: st.ino };
  } catch (err) {
    if (err instanceof AuditReadError) throw err;
    throw new AuditReadError(`${file} cannot be read: ${describeFsError(err)}`, { cause: err });
  } finally {
    await layer.close(fd).catch(() => undefined);
  }
}

/**
 * The last `count` entries of the log at `target`: its active file (which may be missing
 * while its segments are there), or a directory holding one log, as `audit verify` takes.
 */
export async function readAuditTail(target: string, count: number, layer: AuditFs = nodeAuditFs): Promise<AuditTail> {
  const log = await directoryLog(target, layer);
  const file = log === undefined ? target : path.join(target, log.activeName);
  const active = await readFileTail(layer, file, count);
  // A file named by the user is taken as verify takes it: when no line read is an entry and
  // none of its start is either, it is not an audit log (a directory's log was found by that test).
  if (log === undefined && active !== "missing" && active.lines.length + active.torn.length > 0 && !active.lines.some(looksLikeEntryLine)) {
    if (!(await probe(layer, file)).looksLikeEntry) throw new AuditReadError(`${file} is not an audit log (no line of its start or its end is an audit entry)`);
  }
  const warnings = log?.warnings ?? [];
  const tail: AuditTail = active === "missing" ? { lines: [], tornBytes: 0, warnings } : { lines: active.lines, tornBytes: active.torn.length, warnings };
  if (tail.lines.length >= count) return tail;

  const dir = path.dirname(file);
  const missing = (): AuditReadError => new AuditReadError(`${file} cannot be read: ${describeFsError({ code: "ENOENT" })}`);
  let names: string[];
  try {
    names = await layer.readdir(dir);
  } catch (err) {
    if (active === "missing") throw missing();
    tail.warnings.push(`the rotated files next to ${file} cannot be listed (${describeFsError(err)}); only its own entries are shown`);
    return tail;
  }
  const segments = segmentsOf(file, names).reverse();
  if (active === "missing") {
    if (segments.length === 0) throw missing();
    tail.warnings.push(`${file} is missing (a crash between the steps of a rotation?); the entries shown are from its rotated files`);
  }
  const parts = [tail.lines]; // newest first
  let found = tail.lines.length;
  // Segments made after the active file was read (it rotated meanwhile) hold newer entries than
  // those shown: only segments that start before the oldest entry shown are older.
  const shownFrom = seqOf(tail.lines[0]);
  for (const segment of segments) {
    if (found >= count) break;
    if (shownFrom !== undefined && segment.firstSeq >= shownFrom) continue;
    const older = await readFileTail(layer, path.join(dir, segment.name), count - found);
    if (older === "missing") continue; // removed since the listing
    // The active file itself, rotated while it was being read: its lines are shown already.
    if (active !== "missing" && older.dev === active.dev && older.ino === active.ino) continue;
    // A segment ends with a whole line; bytes after its last newline are shown as they are.
    const own = older.torn.length > 0 ? [...older.lines, older.torn.toString("utf8")] : older.lines;
    const taken = own.slice(Math.max(0, own.length - (count - found)));
    parts.push(taken);
    found += taken.length;
  }
  tail.lines = parts.reverse().flat();
  return tail;
}

/** The log in `target` when it is a directory (as verify and tail take one). */
async function directoryLog(target: string, layer: AuditFs): Promise<Awaited<ReturnType<typeof findDirectoryLog>> | undefined> {
  const directory = await layer.stat(target).then((st) => st.isDirectory(), () => false);
  return directory ? findDirectoryLog(layer, target) : undefined;
}

/** The active file of the log at `target`: the target itself, or the active file of the log in that directory. */
export async function activeFileOf(target: string, layer: AuditFs = nodeAuditFs): Promise<string> {
  const log = await directoryLog(target, layer);
  return log === undefined ? target : path.join(target, log.activeName);
}

/** The seq of an entry's line, when it has one. */
function seqOf(line: string | undefined): number | undefined {
  const seq = line === undefined ? undefined : parseObjectLine(line)?.seq;
  return typeof seq === "number" && Number.isSafeInteger(seq) ? seq : undefined;
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
      return [
        `version ${str(data.serverVersion) ?? "?"}`,
        `policy ${(str(data.policySha256) ?? "?").slice(0, 12)}`,
        // Logs from before the interval was recorded have none to show.
        ...(data.checkpointEvery === undefined ? [] : [`checkpoint every ${str(data.checkpointEvery) ?? "?"}`]),
      ].join(", ");
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
  const entry = parseObjectLine(line);
  if (entry === undefined) return `(unparseable line: ${printable(line.slice(0, 80))}${line.length > 80 ? "…" : ""})`;
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
