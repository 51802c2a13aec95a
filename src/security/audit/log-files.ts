/**
 * Which files hold an audit log: a file is one when a line of its start is an entry, and a
 * directory holds one log, found by its segments' names and its active file's content.
 * Shared by `audit verify` and `audit tail`, so that both take the same targets.
 */
import { constants as C } from "node:fs";
import path from "node:path";
import { AuditReadError, describeFsError, errnoOf } from "./errors.js";
import { parseObjectLine } from "./file-scan.js";
import { O_NOFOLLOW, type AuditFs } from "./fs-layer.js";
import { ANY_SEGMENT, isSideFile } from "./segments.js";

/**
 * How the audit commands open a file to read. O_NONBLOCK: opening a FIFO would otherwise
 * wait for a writer, for ever (a FIFO named like a segment would hang verify and tail);
 * on a regular file the flag changes nothing.
 */
export const READ_FLAGS = C.O_RDONLY | O_NOFOLLOW | (C.O_NONBLOCK ?? 0);

/** Opens a regular file to read; AuditReadError for anything else (a FIFO, a device, a directory, a link). */
export async function openForRead(layer: AuditFs, file: string): Promise<number> {
  let fd: number;
  try {
    fd = await layer.open(file, READ_FLAGS);
  } catch (err) {
    throw new AuditReadError(`${file} cannot be read: ${describeFsError(err)}`, { cause: err });
  }
  let regular: boolean;
  try {
    regular = (await layer.fstat(fd)).isFile();
  } catch (err) {
    await layer.close(fd).catch(() => undefined);
    throw new AuditReadError(`${file} cannot be read: ${describeFsError(err)}`, { cause: err });
  }
  if (!regular) {
    await layer.close(fd).catch(() => undefined);
    // A device such as /dev/zero would be read for ever; no writer makes anything but a file.
    throw new AuditReadError(`${file} is not a regular file (a FIFO, a device or a directory): not an audit log`);
  }
  return fd;
}

/** A directory's names, sorted; AuditReadError when it cannot be listed. */
export async function listDirectory(layer: AuditFs, dir: string): Promise<string[]> {
  try {
    return (await layer.readdir(dir)).sort();
  } catch (err) {
    throw new AuditReadError(`${dir} cannot be listed: ${describeFsError(err)}`, { cause: err });
  }
}

/** How many bytes of a file's start `probe` reads to decide whether it is an audit log. */
const PROBE_BYTES = 64 * 1024;

/**
 * Whether a file looks like an audit log: some line among its first ones, or its last ones,
 * parses as an entry. Not only the first line: a log whose first line was damaged (a cut, a
 * BOM, a long line of junk) is a tampered log, to be reported as such, not skipped as "not an
 * audit log".
 */
export async function probe(layer: AuditFs, file: string): Promise<LogProbe> {
  const fd = await openForRead(layer, file);
  try {
    return await probeOpen(layer, fd);
  } catch (err) {
    if (err instanceof AuditReadError) throw err;
    throw new AuditReadError(`${file} cannot be read: ${describeFsError(err)}`, { cause: err });
  } finally {
    await layer.close(fd).catch(() => undefined);
  }
}

export interface LogProbe {
  empty: boolean;
  looksLikeEntry: boolean;
  /** What the file's first bytes show it to be, when that is something well known and not a log ("a SQLite database"). */
  kind?: string;
}

/** `probe` of a file open for reading. */
export async function probeOpen(layer: AuditFs, fd: number): Promise<LogProbe> {
  const { size } = await layer.fstat(fd);
  if (size === 0) return { empty: true, looksLikeEntry: false };
  const head = Buffer.alloc(Math.min(size, PROBE_BYTES));
  let got = 0;
  while (got < head.length) {
    const n = await layer.read(fd, head, got, head.length - got, got);
    if (n === 0) break;
    got += n;
  }
  const lines = head.toString("utf8", 0, got).split("\n");
  // The last piece may be cut by the probe's window (or be a torn line): judge it by its start.
  const cut = lines.pop() ?? "";
  if (lines.some(looksLikeEntryLine)) return { empty: false, looksLikeEntry: true };
  // A write cut after its first byte leaves "{" alone.
  if (lines.length === 0 && (cut === "{" || cut.startsWith('{"'))) return { empty: false, looksLikeEntry: true };
  // The start alone would let a long line of junk put over (or before) a log's first entries
  // pass the log off as "not an audit log" (exit 2) rather than tampered: its end is looked at too.
  if (size > got && (await endHasEntry(layer, fd, size))) return { empty: false, looksLikeEntry: true };
  const kind = kindOf(head.subarray(0, got));
  return kind === undefined ? { empty: false, looksLikeEntry: false } : { empty: false, looksLikeEntry: false, kind };
}

/** Files an audit.log_file is likely to name by mistake, by their first bytes. */
function kindOf(head: Buffer): string | undefined {
  if (head.subarray(0, 16).toString("latin1") === "SQLite format 3\0") return "a SQLite database";
  if (head.subarray(0, 11).toString("latin1") === "-----BEGIN ") return "a PEM key or certificate";
  return undefined;
}

/** Whether a whole line among the last PROBE_BYTES of the file is shaped like an entry. */
async function endHasEntry(layer: AuditFs, fd: number, size: number): Promise<boolean> {
  const from = Math.max(0, size - PROBE_BYTES);
  const tail = Buffer.alloc(size - from);
  let got = 0;
  while (got < tail.length) {
    const n = await layer.read(fd, tail, got, tail.length - got, from + got);
    if (n === 0) break;
    got += n;
  }
  const lines = tail.toString("utf8", 0, got).split("\n");
  lines.pop(); // after the last newline: a torn line, or nothing
  if (from > 0) lines.shift(); // cut by the window's start
  return lines.some(looksLikeEntryLine);
}

/** Whether a line is shaped like an entry (an object with v, seq and hash); nothing is checked beyond that. */
export function looksLikeEntryLine(line: string): boolean {
  const parsed = parseObjectLine(line);
  return parsed !== undefined && "v" in parsed && "hash" in parsed && "seq" in parsed;
}

/** How many skipped files a directory's listing names one by one. */
const MAX_SKIPPED_LISTED = 10;

/** The active file's name for a segment's name: `audit-20261122T031500Z-000000001234.log` → `audit.log`. */
function activeNameOf(segmentName: string): string {
  return segmentName.replace(/-\d{8}T\d{6}Z-\d{12,}(\.[^.]+)?$/, "$1");
}

/**
 * The one log in `dir`: its active file's name (which may be missing while its segments
 * are there), the directory's names, and a warning for every file left out. Throws
 * AuditReadError when the directory holds no log, or several.
 */
export async function findDirectoryLog(layer: AuditFs, dir: string): Promise<{ activeName: string; names: string[]; warnings: string[] }> {
  return retryOnVanished(() => findOnce(layer, dir));
}

/** How many times a look at a directory is taken again when a file listed in it was gone when opened. */
const VANISHED_RETRIES = 3;

/**
 * Runs `look` again when it failed on a file that vanished (ENOENT) after the directory was
 * listed: a running server rotating its log renames the active file, then starts a new one,
 * so for a moment a listed name is gone and the next listing is whole again. A path that is
 * really missing fails the same way every time, and its error is thrown.
 */
export async function retryOnVanished<T>(look: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await look();
    } catch (err) {
      if (attempt >= VANISHED_RETRIES || !(err instanceof AuditReadError) || errnoOf(err.cause) !== "ENOENT") throw err;
    }
  }
}

async function findOnce(layer: AuditFs, dir: string): Promise<{ activeName: string; names: string[]; warnings: string[] }> {
  const names = await listDirectory(layer, dir);
  const warnings: string[] = [];
  const actives = new Set<string>();
  const unusable: string[] = [];
  for (const name of names) {
    if (isSideFile(name)) continue;
    if (ANY_SEGMENT.test(name)) {
      actives.add(activeNameOf(name));
      continue;
    }
    const fst = await layer.lstat(path.join(dir, name)).catch(() => undefined);
    // A directory holds no entries (the key directory sits beside a log_file placed in
    // the state directory): saying so would only be noise. A link or a device is said.
    if (fst?.isDirectory() === true) continue;
    if (fst === undefined || !fst.isFile()) {
      unusable.push(name);
      continue;
    }
    const info = await probe(layer, path.join(dir, name));
    if (info.looksLikeEntry) actives.add(name);
    else warnings.push(`${name} is ${info.empty ? "empty" : "not an audit log"}; skipped`);
  }
  // A log's own active file is judged with its chain; anything else is said, never skipped silently.
  for (const name of unusable) if (!actives.has(name)) warnings.push(`${name} is not a regular file (a link, a device…); skipped`);
  // One line each for a few; a directory of thousands of other files is said in one more line.
  if (warnings.length > MAX_SKIPPED_LISTED) {
    const more = warnings.length - MAX_SKIPPED_LISTED;
    warnings.splice(MAX_SKIPPED_LISTED, more, `${more} more files in ${dir} are not audit logs; skipped`);
  }
  if (actives.size === 0) throw new AuditReadError(`${dir} holds no audit log`);
  if (actives.size > 1) {
    const sorted = [...actives].sort();
    throw new AuditReadError(
      `${dir} holds ${actives.size} audit logs (${sorted.join(", ")}); name one by its active file, e.g. \`${path.join(dir, sorted[0]!)}\``,
    );
  }
  return { activeName: [...actives][0]!, names, warnings };
}
