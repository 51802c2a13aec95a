/**
 * Newline-delimited framing over raw bytes.
 *
 * Incoming chunks are kept as a list and scanned once each, so a message costs time
 * linear in its size however it is split. The line limit is enforced while bytes
 * arrive, before a line is ever buffered whole: once a line passes the limit, its
 * bytes are dropped as they come until the next newline, and memory stays bounded.
 */

import { constants } from "node:buffer";

const LF = 0x0a;
const CR = 0x0d;
/**
 * Chunks of an unfinished line past this many are joined into one. Each chunk costs a
 * Buffer object (~120 bytes of heap), so a line sent one byte per write grew the heap
 * about 120 times its size; joined in runs, each byte is copied once more at most.
 */
const JOIN_CHUNKS = 1024;

/**
 * The highest line limit that can be honoured: every line is decoded into one string
 * before it is parsed, and a longer one cannot be made (Node throws, and the server
 * would end), so a limit above this would admit lines that crash the reader.
 */
export const MAX_LINE_BYTES_LIMIT: number = constants.MAX_STRING_LENGTH;

export interface FramerSink {
  /** A complete line without its terminator (CRLF tolerated). Never empty. */
  line(bytes: Buffer): void;
  /** A line passed the limit; called once per such line, as soon as it passes. */
  oversize(limit: number): void;
}

export class LineFramer {
  private readonly chunks: Buffer[] = [];
  private pending = 0;
  /** Chunks before this index are runs already joined (see JOIN_CHUNKS). */
  private joined = 0;
  private discarding = false;

  constructor(
    private readonly maxLineBytes: number,
    private readonly sink: FramerSink,
  ) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) throw new RangeError("maxLineBytes must be a positive integer");
    if (maxLineBytes > MAX_LINE_BYTES_LIMIT) throw new RangeError(`maxLineBytes must be at most ${MAX_LINE_BYTES_LIMIT} (the longest string)`);
  }

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(LF, start);
      const end = newline === -1 ? chunk.length : newline;
      if (this.discarding) {
        if (newline === -1) return;
        this.discarding = false;
      } else if (this.pending + (end - start) > this.maxLineBytes + 1) {
        // One byte of slack: a trailing CR is stripped and not counted.
        this.reset();
        this.sink.oversize(this.maxLineBytes);
        if (newline === -1) {
          this.discarding = true;
          return;
        }
      } else if (newline === -1) {
        this.chunks.push(start === 0 ? chunk : chunk.subarray(start));
        this.pending += chunk.length - start;
        if (this.chunks.length - this.joined >= JOIN_CHUNKS) this.joinRun();
        return;
      } else {
        this.emit(chunk.subarray(start, end));
      }
      start = end + 1;
    }
  }

  /** End of input: a final line without a newline still counts. */
  end(): void {
    if (!this.discarding && this.pending > 0) this.emit(Buffer.alloc(0));
    this.reset();
    this.discarding = false;
  }

  private emit(tail: Buffer): void {
    let line: Buffer;
    if (this.chunks.length === 0) line = tail;
    else {
      this.chunks.push(tail);
      line = Buffer.concat(this.chunks, this.pending + tail.length);
      this.reset();
    }
    let length = line.length;
    if (length > 0 && line[length - 1] === CR) length -= 1;
    if (length > this.maxLineBytes) {
      this.sink.oversize(this.maxLineBytes);
      return;
    }
    if (length === 0 || isBlank(line, length)) return;
    this.sink.line(length === line.length ? line : line.subarray(0, length));
  }

  private reset(): void {
    this.chunks.length = 0;
    this.pending = 0;
    this.joined = 0;
  }

  /** Joins the chunks that came since the last join into one (only small ones add up to so many). */
  private joinRun(): void {
    const run = Buffer.concat(this.chunks.slice(this.joined));
    this.chunks.length = this.joined;
    this.chunks.push(run);
    this.joined = this.chunks.length;
  }
}

function isBlank(line: Buffer, length: number): boolean {
  // Only the first byte is checked in the common case: a JSON message starts with `{`.
  for (let i = 0; i < length; i++) {
    const byte = line[i];
    if (byte !== 0x20 && byte !== 0x09 && byte !== CR) return false;
  }
  return true;
}
