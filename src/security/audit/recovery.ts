/**
 * What the writer finds when it opens a log: where the chain ends, and whether a crash
 * left a torn last line. Only the file's first and last lines are read.
 *
 * - Bytes after the last newline that do not parse as JSON are a torn write: they are
 *   copied unchanged to `<log>.torn-<time>`, the log is truncated to its last whole line,
 *   and the caller records a `recovery` entry.
 * - A whole valid entry that lacks only its newline and follows the last whole entry gets
 *   its newline back (`completeTornEntry`), and the caller records that in a `recovery` entry.
 * - A last line that parses but does not verify (hash, shape, exact form) is not a crash
 *   artifact: opening fails (AUDIT_TAMPERED) instead of building on it.
 */
import { constants as C } from "node:fs";
import path from "node:path";
import { sha256Hex } from "../../util/canonical-json.js";
import { checkEntryLine, type AuditEntry } from "./entry.js";
import { AuditOpenError, AuditReadError, describeFsError, errnoOf } from "./errors.js";
import { readFirstLine, scanTail } from "./file-scan.js";
import { fsyncDirectory, O_NOFOLLOW, writeAll, type AuditFs } from "./fs-layer.js";
import { probeOpen } from "./log-files.js";
import { segmentsOf, tornPath, UNRECORDED_SUFFIX, unrecordedKeepers } from "./segments.js";

export interface ChainEnd {
  /** The first entry of the file. */
  first: AuditEntry;
  /** The last whole entry of the file. */
  last: AuditEntry;
}

export interface ActiveInspection {
  /** Size of the file up to its last whole line. */
  wholeBytes: number;
  /** Present when the file holds at least one whole entry. */
  end?: ChainEnd;
  /** Bytes after the last newline (a torn write), if any. */
  torn?: Buffer;
  /** The torn bytes as an entry, when they are one whole valid entry that lacks only its newline. */
  tornEntry?: AuditEntry;
}

function tampered(file: string, what: string, problem: string): AuditOpenError {
  return new AuditOpenError(
    "AUDIT_TAMPERED",
    `audit log ${file}: ${what} does not verify (${problem}); the log was modified or damaged, so the server will not build on it. ` +
      `Run \`mcp-secure-local audit verify ${file}\` to locate the first broken entry, and move the log aside to start a new chain.`,
  );
}

function verified(file: string, what: string, line: string): AuditEntry {
  const check = checkEntryLine(line);
  if (!check.ok) throw tampered(file, what, `${check.problem}: ${check.message}`);
  return check.entry;
}

/** scanTail for the start: a read failure is an AuditOpenError naming the log. */
async function scanLogTail(layer: AuditFs, fd: number, file: string, end: number, lines: number): ReturnType<typeof scanTail> {
  try {
    return await scanTail(layer, fd, end, lines);
  } catch (err) {
    if (err instanceof AuditReadError) throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit log ${file}: ${err.message}`);
    throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit log ${file} cannot be read: ${describeFsError(err)}`, { cause: err });
  }
}

/**
 * Reads the first and last whole entries and any torn tail of an open log file. A file that holds
 * no entry at all (audit.log_file naming a database, a key, a note) is AUDIT_NOT_A_LOG, not a
 * damaged log, and a single line of it is not taken for a torn write to be set aside.
 */
export async function inspectLogFile(layer: AuditFs, fd: number, file: string): Promise<ActiveInspection> {
  let inspection: ActiveInspection;
  try {
    inspection = await inspectEntries(layer, fd, file);
  } catch (err) {
    if (err instanceof AuditOpenError && (err.code === "AUDIT_TAMPERED" || err.code === "AUDIT_OPEN_FAILED")) await refuseOtherFile(layer, fd, file);
    throw err;
  }
  if (inspection.end === undefined && inspection.torn !== undefined && inspection.tornEntry === undefined) await refuseOtherFile(layer, fd, file);
  return inspection;
}

async function refuseOtherFile(layer: AuditFs, fd: number, file: string): Promise<void> {
  // Unreadable now: the error being reported already says what is wrong.
  const info = await probeOpen(layer, fd).catch(() => undefined);
  if (info === undefined || info.empty || info.looksLikeEntry) return;
  throw new AuditOpenError(
    "AUDIT_NOT_A_LOG",
    `audit log ${file} is not an audit log${info.kind === undefined ? "" : ` (it is ${info.kind})`}: no line of its start or its end is an audit entry, ` +
      `so the server will neither write into it nor set its content aside. Point audit.log_file at a file of its own (a new name starts a new log); ` +
      `if this is a log damaged beyond reading, move it aside.`,
  );
}

async function inspectEntries(layer: AuditFs, fd: number, file: string): Promise<ActiveInspection> {
  const { size } = await layer.fstat(fd);
  if (size === 0) return { wholeBytes: 0 };
  const scan = await scanLogTail(layer, fd, file, size, 1);
  let torn: Buffer | undefined;
  let tornEntry: AuditEntry | undefined;
  if (scan.torn.length > 0) {
    const text = scan.torn.toString("utf8");
    let parses = false;
    try {
      JSON.parse(text);
      parses = true;
    } catch {
      parses = false;
    }
    // A cut write leaves a prefix, which does not parse; what parses is a whole entry without
    // its newline (a write cut just before it), which must verify like any other line.
    if (parses) tornEntry = verified(file, "the last line (which has no line break)", text);
    torn = scan.torn;
  }
  const tornPart = torn === undefined ? {} : tornEntry === undefined ? { torn } : { torn, tornEntry };
  const lastLine = scan.lines[0];
  if (lastLine === undefined) return { wholeBytes: scan.tornStart, ...tornPart };
  const last = verified(file, `the last entry (at byte ${lastLine.start})`, lastLine.text);
  const firstLine = lastLine.start === 0 ? lastLine.text : await readFirstLine(layer, fd, size);
  const first = verified(file, "the first entry", firstLine ?? "");
  if (first.seq > last.seq) throw tampered(file, "the first entry", `its seq ${first.seq} is after the last entry's ${last.seq}`);
  const end = { first, last };
  return { wholeBytes: scan.tornStart, end, ...tornPart };
}

/**
 * Restores the newline of a torn entry that is whole and continues the chain (the caller
 * has checked that its seq and prev follow the chain's end): it is the log's next entry,
 * cut off only before its newline, so it keeps its place rather than being set aside
 * (which would give its seq to the recovery entry).
 */
export async function completeTornEntry(layer: AuditFs, fd: number, activePath: string): Promise<void> {
  try {
    await writeAll(layer, fd, Buffer.from("\n"));
    await layer.fsync(fd);
  } catch (err) {
    throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit log ${activePath}: the line break of its last entry cannot be restored: ${describeFsError(err)}`, {
      cause: err,
    });
  }
}

/**
 * Copies torn bytes to a new sibling file (0600, synced) under its unrecorded name, and
 * returns the name it is to have once recorded (see UNRECORDED_SUFFIX).
 */
export async function keepTornBytes(layer: AuditFs, activePath: string, bytes: Buffer, ts: string): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const target = tornPath(activePath, ts, attempt);
    // The recorded name must be free too: the rename that gives it would replace a keeper.
    if (await layer.lstat(target).then(() => true, () => false)) continue;
    let fd: number;
    try {
      fd = await layer.open(target + UNRECORDED_SUFFIX, C.O_WRONLY | C.O_CREAT | C.O_EXCL | O_NOFOLLOW, 0o600);
    } catch (err) {
      if (errnoOf(err) === "EEXIST") continue;
      throw err;
    }
    try {
      await writeAll(layer, fd, bytes);
      await layer.fsync(fd);
    } finally {
      await layer.close(fd);
    }
    await fsyncDirectory(layer, path.dirname(activePath));
    return target;
  }
  throw new Error(`no free name for the torn bytes next to ${activePath}`);
}

export interface TornRecovery {
  bytes: number;
  sha256: string;
  keptIn: string;
  truncatedTo: number;
}

/** Keeps the torn tail aside, then truncates the log to its last whole line (in that order, so nothing is lost). */
export async function setTornTailAside(
  layer: AuditFs,
  fd: number,
  activePath: string,
  inspection: ActiveInspection & { torn: Buffer },
  ts: string,
): Promise<TornRecovery> {
  try {
    const keptIn = await keepTornBytes(layer, activePath, inspection.torn, ts);
    await layer.ftruncate(fd, inspection.wholeBytes);
    await layer.fsync(fd);
    return { bytes: inspection.torn.length, sha256: sha256Hex(inspection.torn), keptIn, truncatedTo: inspection.wholeBytes };
  } catch (err) {
    throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit log ${activePath} has a torn last line that cannot be set aside: ${describeFsError(err)}`, {
      cause: err,
    });
  }
}

/** A torn-line keeper an earlier start set aside but did not record, with what its entry says of it. */
export interface UnrecordedKeeper {
  /** Its path now (with UNRECORDED_SUFFIX). */
  pending: string;
  /** The name it gets once recorded (what `keptIn` says). */
  keptIn: string;
  bytes: number;
  sha256: string;
}

/** The active log's keepers left unrecorded by a start that stopped before their `recovery` entry. */
export async function findUnrecordedKeepers(layer: AuditFs, activePath: string): Promise<UnrecordedKeeper[]> {
  const dir = path.dirname(activePath);
  let names: string[];
  try {
    names = await layer.readdir(dir);
  } catch (err) {
    throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit directory ${dir} cannot be listed: ${describeFsError(err)}`, { cause: err });
  }
  const found: UnrecordedKeeper[] = [];
  for (const name of unrecordedKeepers(activePath, names)) {
    const pending = path.join(dir, name);
    const bytes = await readKeeper(layer, pending);
    found.push({ pending, keptIn: pending.slice(0, -UNRECORDED_SUFFIX.length), bytes: bytes.length, sha256: sha256Hex(bytes) });
  }
  return found;
}

/** A keeper's bytes; O_NONBLOCK and O_NOFOLLOW: a FIFO or a link under its name is refused, never waited on. */
async function readKeeper(layer: AuditFs, file: string): Promise<Buffer> {
  let fd: number;
  try {
    fd = await layer.open(file, C.O_RDONLY | O_NOFOLLOW | (C.O_NONBLOCK ?? 0));
  } catch (err) {
    throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit torn-line keeper ${file} cannot be opened: ${describeFsError(err)}`, { cause: err });
  }
  try {
    const st = await layer.fstat(fd);
    if (!st.isFile()) {
      throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit torn-line keeper ${file} is not a regular file; move it out of the log's directory`);
    }
    const bytes = Buffer.alloc(st.size);
    let done = 0;
    while (done < bytes.length) {
      const n = await layer.read(fd, bytes, done, bytes.length - done, done);
      if (n === 0) break;
      done += n;
    }
    return bytes.subarray(0, done);
  } catch (err) {
    if (err instanceof AuditOpenError) throw err;
    throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit torn-line keeper ${file} cannot be read: ${describeFsError(err)}`, { cause: err });
  } finally {
    await layer.close(fd).catch(() => undefined);
  }
}

/**
 * The keepers (final names) that the log's last whole entries record: openAuditLog makes each
 * keeper's `recovery` entry durable and then renames the keeper before it writes anything
 * else, so a start that stopped in between left that entry last, or just before the one
 * checkpoint the writer may seal after an entry. A line that does not verify names nothing:
 * its keeper is then recorded again rather than left unrecorded.
 */
export async function keepersRecordedAtEnd(layer: AuditFs, fd: number, file: string, wholeBytes: number): Promise<Set<string>> {
  const named = new Set<string>();
  if (wholeBytes === 0) return named;
  const scan = await scanLogTail(layer, fd, file, wholeBytes, 2);
  for (const line of scan.lines) {
    const check = checkEntryLine(line.text);
    if (check.ok) addKeptIn(named, check.entry);
  }
  return named;
}

/** Adds the keeper a `recovery` entry names, if it names one. */
export function addKeptIn(named: Set<string>, entry: AuditEntry): void {
  const keptIn = entry.event === "recovery" ? entry.data?.keptIn : undefined;
  if (typeof keptIn === "string") named.add(keptIn);
}

/** Gives recorded keepers their final names (their `recovery` entries are on disk). */
export async function markKeepersRecorded(layer: AuditFs, activePath: string, keptIn: readonly string[]): Promise<void> {
  if (keptIn.length === 0) return;
  for (const file of keptIn) await layer.rename(file + UNRECORDED_SUFFIX, file);
  await fsyncDirectory(layer, path.dirname(activePath));
}

/** The chain end in the newest rotated segment, for an active file that is missing or empty. */
export async function newestSegmentEnd(layer: AuditFs, activePath: string): Promise<(ChainEnd & { file: string }) | undefined> {
  let names: string[];
  try {
    names = await layer.readdir(path.dirname(activePath));
  } catch (err) {
    throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit directory ${path.dirname(activePath)} cannot be listed: ${describeFsError(err)}`, { cause: err });
  }
  const newest = segmentsOf(activePath, names).at(-1);
  if (newest === undefined) return undefined;
  const file = path.join(path.dirname(activePath), newest.name);
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO under a segment's name must not hang the start (it is refused below).
    fd = await layer.open(file, C.O_RDONLY | O_NOFOLLOW | (C.O_NONBLOCK ?? 0));
  } catch (err) {
    throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit segment ${file} cannot be opened: ${describeFsError(err)}`, { cause: err });
  }
  try {
    if (!(await layer.fstat(fd)).isFile()) {
      throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit segment ${file} is not a regular file; refusing to continue the chain from it`);
    }
    // Not inspectLogFile: only audit.log_file can be another file named by mistake. A segment is
    // a file the log itself renamed, so one holding no entry is the log damaged (AUDIT_TAMPERED),
    // never AUDIT_NOT_A_LOG, whose advice is to start a new log elsewhere.
    const inspection = await inspectEntries(layer, fd, file);
    if (inspection.torn !== undefined) throw tampered(file, "the rotated segment's end", "it ends with an incomplete line");
    if (inspection.end === undefined) throw tampered(file, "the rotated segment", "it holds no entry");
    return { ...inspection.end, file };
  } finally {
    await layer.close(fd).catch(() => undefined);
  }
}
