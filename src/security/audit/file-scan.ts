/**
 * Reading an audit file by lines: its first line, its last lines (reading backwards
 * from the end only, since a log can be large) and all lines in order (for verify).
 */
import { constants, isUtf8 } from "node:buffer";
import { setTimeout as delay } from "node:timers/promises";
import { AuditReadError } from "./errors.js";
import type { AuditFs } from "./fs-layer.js";

const NL = 0x0a;
const CHUNK = 64 * 1024;
/**
 * The longest line an audit file can hold: the longest string Node can make. The writer's
 * entries are as long as the arguments a policy admits (`limits.max_argument_bytes` goes to
 * 1 GiB, `--max-line-bytes` to this same length), so a smaller bound would call a log the
 * server wrote itself tampered. A longer line is not an entry: reading stops rather than
 * exhausting memory. Lines are gathered in pieces and joined once, so a long line costs
 * its length, not its length squared.
 */
export const MAX_LINE_BYTES: number = constants.MAX_STRING_LENGTH;

export interface TailLine {
  text: string;
  /** Byte offset of the line's first byte. */
  start: number;
}

export interface TailScan {
  /** The last complete (newline-terminated) lines, oldest first, at most as many as asked. */
  lines: TailLine[];
  /** Where the bytes after the last newline begin (the file size when there are none). */
  tornStart: number;
  /** The bytes after the last newline: a line cut short by a crash, or nothing. */
  torn: Buffer;
}

async function readAt(layer: AuditFs, fd: number, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = await layer.read(fd, buffer, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buffer : buffer.subarray(0, done);
}

function countNewlines(buffer: Buffer): number {
  let count = 0;
  for (let i = buffer.indexOf(NL); i >= 0; i = buffer.indexOf(NL, i + 1)) count++;
  return count;
}

/** Reads backwards from `size` until `want` complete lines (and where the first of them starts) are known. */
export async function scanTail(layer: AuditFs, fd: number, size: number, want: number, maxLineBytes = MAX_LINE_BYTES): Promise<TailScan> {
  // The chunks read, oldest first; joined once, when they hold enough lines.
  const chunks: Buffer[] = [];
  let start = size;
  let chunk = CHUNK;
  // Newlines before the last one each end a complete line; one more marks where the first wanted line starts.
  let newlines = 0;
  // Bytes of the oldest line read so far, whose start is not read yet (or of the torn tail, before any newline).
  let open = 0;
  while (start > 0 && newlines <= want) {
    if (open > maxLineBytes) {
      throw new AuditReadError(`a line of more than ${maxLineBytes} bytes ends at byte ${start + open}: this is not an audit log`);
    }
    const take = Math.min(chunk, start);
    start -= take;
    const piece = await readAt(layer, fd, start, take);
    chunks.unshift(piece);
    const found = countNewlines(piece);
    open = found === 0 ? open + piece.length : piece.indexOf(NL);
    newlines += found;
    chunk = Math.min(chunk * 2, 16 * 1024 * 1024);
  }
  const window = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  const lastNl = window.lastIndexOf(NL);
  const torn = lastNl < 0 ? window : window.subarray(lastNl + 1);
  const tornStart = size - torn.length;
  const lines: TailLine[] = [];
  let end = lastNl;
  while (end >= 0 && lines.length < want) {
    const prevNl = end > 0 ? window.lastIndexOf(NL, end - 1) : -1;
    if (prevNl < 0 && start > 0) break; // the window begins mid-line
    // The last chunk read can carry a line just past the bound (which no string can hold).
    if (end - prevNl - 1 > maxLineBytes) {
      throw new AuditReadError(`a line of more than ${maxLineBytes} bytes ends at byte ${start + end}: this is not an audit log`);
    }
    lines.unshift({ text: window.toString("utf8", prevNl + 1, end), start: start + prevNl + 1 });
    end = prevNl;
  }
  return { lines, tornStart, torn: Buffer.from(torn) };
}

/** The first complete line of the file, or undefined when it has no newline at all. */
export async function readFirstLine(layer: AuditFs, fd: number, size: number, maxLineBytes = MAX_LINE_BYTES): Promise<string | undefined> {
  const pieces: Buffer[] = [];
  let position = 0;
  while (position < size) {
    const piece = await readAt(layer, fd, position, Math.min(CHUNK, size - position));
    if (piece.length === 0) break;
    const nl = piece.indexOf(NL);
    if (nl >= 0) return Buffer.concat([...pieces, piece.subarray(0, nl)]).toString("utf8");
    pieces.push(piece);
    position += piece.length;
    if (position > maxLineBytes) throw new AuditReadError(`the first line is longer than ${maxLineBytes} bytes: this is not an audit log`);
  }
  return undefined;
}

export interface ScannedLine {
  text: string;
  /** 1-based line number in the file. */
  lineNo: number;
  /** False for bytes at the end of the file with no newline after them, and for a line too long to read. */
  complete: boolean;
  /**
   * Whether the line's bytes are valid UTF-8. `text` alone cannot tell: decoding turns every
   * invalid sequence into U+FFFD, so bytes such as FF read the same as a U+FFFD written there.
   */
  utf8: boolean;
  /** Set (with `complete` false and `text` only the line's start) for a line longer than the bound: reading stopped there. */
  tooLong?: true;
}

export interface ForEachLineOptions {
  /** A line longer than this stops the reading (reported with `tooLong`). */
  maxLineBytes?: number;
  /**
   * How long to wait for the rest of a line found cut at the end of the file before calling
   * it torn. A log being written grows a write at a time, and a write of more than a page
   * shows to a reader a page at a time: a live log can end mid-line for a moment. Default 0.
   */
  endWaitMs?: number;
}

/** How often the end of a file is read again while waiting for the rest of a line. */
const END_POLL_MS = 10;

/** Calls `onLine` for each line in order; stops early when it returns false, and after a line longer than the bound. */
export async function forEachLine(
  layer: AuditFs,
  fd: number,
  onLine: (line: ScannedLine) => boolean,
  options: ForEachLineOptions = {},
): Promise<void> {
  const maxLineBytes = options.maxLineBytes ?? MAX_LINE_BYTES;
  let waitLeft = options.endWaitMs ?? 0;
  // The start of a line that goes on past the bytes read, in pieces (copies: the read buffer
  // is reused), joined once when its end is found.
  let pieces: Buffer[] = [];
  let pending = 0;
  let position = 0;
  let lineNo = 0;
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  for (;;) {
    const n = await layer.read(fd, buffer, 0, buffer.length, position);
    if (n === 0) {
      if (pending === 0 || waitLeft <= 0) break;
      const wait = Math.min(END_POLL_MS, waitLeft);
      waitLeft -= wait;
      await delay(wait);
      continue;
    }
    position += n;
    const data = buffer.subarray(0, n);
    let from = 0;
    for (let nl = data.indexOf(NL); nl >= 0; nl = data.indexOf(NL, from)) {
      lineNo++;
      if (pending + nl - from > maxLineBytes) return tooLong(onLine, pending > 0 ? pieces[0]! : data.subarray(from), lineNo);
      const bytes = pending > 0 ? Buffer.concat([...pieces, data.subarray(0, nl)]) : data.subarray(from, nl);
      pieces = [];
      pending = 0;
      if (!onLine({ text: bytes.toString("utf8"), lineNo, complete: true, utf8: isUtf8(bytes) })) return;
      from = nl + 1;
    }
    if (from < n) {
      pieces.push(Buffer.from(data.subarray(from)));
      pending += n - from;
    }
    if (pending > maxLineBytes) return tooLong(onLine, pieces[0]!, lineNo + 1);
  }
  if (pending > 0) {
    const bytes = Buffer.concat(pieces);
    onLine({ text: bytes.toString("utf8"), lineNo: lineNo + 1, complete: false, utf8: isUtf8(bytes) });
  }
}

function tooLong(onLine: (line: ScannedLine) => boolean, start: Buffer, lineNo: number): void {
  const head = start.subarray(0, 256);
  onLine({ text: head.toString("utf8"), lineNo, complete: false, utf8: isUtf8(head), tooLong: true });
}

/** A line parsed as a JSON object, or undefined when it is not one (no shape checked beyond that). */
export function parseObjectLine(line: string): Record<string, unknown> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return undefined;
  }
  return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
}
