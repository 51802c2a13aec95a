/**
 * Reading an audit file by lines: its first line, its last lines (reading backwards
 * from the end only, since a log can be large) and all lines in order (for verify).
 */
import { isUtf8 } from "node:buffer";
import { AuditReadError } from "./errors.js";
import type { AuditFs } from "./fs-layer.js";

const NL = 0x0a;
const CHUNK = 64 * 1024;
/** A line longer than this is not something the writer produces; stop rather than exhaust memory. */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;

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

/** Reads backwards from `size` until `want` complete lines (and where the first of them starts) are known. */
export async function scanTail(layer: AuditFs, fd: number, size: number, want: number): Promise<TailScan> {
  let start = size;
  let window = Buffer.alloc(0);
  let chunk = CHUNK;
  for (;;) {
    const lastNl = window.lastIndexOf(NL);
    // Newlines before the last one each end a complete line; one more marks where the first wanted line starts.
    let newlines = 0;
    if (lastNl >= 0) {
      for (let i = lastNl; i >= 0 && newlines <= want; i = i > 0 ? window.lastIndexOf(NL, i - 1) : -1) newlines++;
    }
    if (start === 0 || newlines > want) break;
    if (size - start > MAX_LINE_BYTES * Math.max(1, want)) {
      throw new AuditReadError(`no line break in the last ${size - start} bytes: this is not an audit log`);
    }
    const take = Math.min(chunk, start);
    start -= take;
    window = Buffer.concat([await readAt(layer, fd, start, take), window]);
    chunk = Math.min(chunk * 2, 16 * 1024 * 1024);
  }
  const lastNl = window.lastIndexOf(NL);
  const torn = lastNl < 0 ? window : window.subarray(lastNl + 1);
  const tornStart = size - torn.length;
  const lines: TailLine[] = [];
  let end = lastNl;
  while (end >= 0 && lines.length < want) {
    const prevNl = end > 0 ? window.lastIndexOf(NL, end - 1) : -1;
    if (prevNl < 0 && start > 0) break; // the window begins mid-line
    lines.unshift({ text: window.toString("utf8", prevNl + 1, end), start: start + prevNl + 1 });
    end = prevNl;
  }
  return { lines, tornStart, torn: Buffer.from(torn) };
}

/** The first complete line of the file, or undefined when it has no newline at all. */
export async function readFirstLine(layer: AuditFs, fd: number, size: number): Promise<string | undefined> {
  let window = Buffer.alloc(0);
  let position = 0;
  while (position < size) {
    const piece = await readAt(layer, fd, position, Math.min(CHUNK, size - position));
    if (piece.length === 0) break;
    const nl = piece.indexOf(NL);
    if (nl >= 0) return Buffer.concat([window, piece.subarray(0, nl)]).toString("utf8");
    window = Buffer.concat([window, piece]);
    position += piece.length;
    if (window.length > MAX_LINE_BYTES) throw new AuditReadError(`the first line is longer than ${MAX_LINE_BYTES} bytes: this is not an audit log`);
  }
  return undefined;
}

export interface ScannedLine {
  text: string;
  /** 1-based line number in the file. */
  lineNo: number;
  /** False for bytes at the end of the file with no newline after them. */
  complete: boolean;
  /**
   * Whether the line's bytes are valid UTF-8. `text` alone cannot tell: decoding turns every
   * invalid sequence into U+FFFD, so bytes such as FF read the same as a U+FFFD written there.
   */
  utf8: boolean;
}

/** Calls `onLine` for each line in order; stops early when it returns false. */
export async function forEachLine(
  layer: AuditFs,
  fd: number,
  onLine: (line: ScannedLine) => boolean,
): Promise<void> {
  let carry = Buffer.alloc(0);
  let position = 0;
  let lineNo = 0;
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  for (;;) {
    const n = await layer.read(fd, buffer, 0, buffer.length, position);
    if (n === 0) break;
    position += n;
    const data = carry.length > 0 ? Buffer.concat([carry, buffer.subarray(0, n)]) : buffer.subarray(0, n);
    let from = 0;
    for (let nl = data.indexOf(NL, from); nl >= 0; nl = data.indexOf(NL, from)) {
      lineNo++;
      const bytes = data.subarray(from, nl);
      if (!onLine({ text: bytes.toString("utf8"), lineNo, complete: true, utf8: isUtf8(bytes) })) return;
      from = nl + 1;
    }
    carry = Buffer.from(data.subarray(from));
    if (carry.length > MAX_LINE_BYTES) {
      onLine({ text: carry.toString("utf8", 0, 256), lineNo: lineNo + 1, complete: false, utf8: isUtf8(carry.subarray(0, 256)) });
      return;
    }
  }
  if (carry.length > 0) onLine({ text: carry.toString("utf8"), lineNo: lineNo + 1, complete: false, utf8: isUtf8(carry) });
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
