/**
 * `audit tail --follow`: the entries appended to a log from now on, as they come, across
 * rotations. Polls (a stat and a read every interval) rather than watching: file-change
 * events are not delivered the same on every platform and file system, and a missed one
 * would hide entries.
 *
 * A rotation renames the active file to a segment and starts a new active file. When the
 * name holds another file, the old one is read to its end, then every segment that starts
 * past the last entry seen (several rotations can fall between two looks), then the new
 * active file from its start; an entry seen twice on the way (a file rotated while it is
 * being taken up) is handed on once, by its seq, which only grows within a chain (a new
 * chain, begun when the log was moved aside, is told by its first entry). A file cut shorter (the
 * next start's recovery removes a torn last line) is followed from its new end. Lines are
 * handed on whole; a write in progress waits for its newline.
 */
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AuditReadError, describeFsError, errnoOf } from "./errors.js";
import { nodeAuditFs, type AuditFs } from "./fs-layer.js";
import { READ_FLAGS } from "./log-files.js";
import { segmentsOf } from "./segments.js";
import { GENESIS_PREV } from "./entry.js";
import { parseObjectLine, scanTail } from "./file-scan.js";

export interface FollowOptions {
  signal: AbortSignal;
  /** Between two looks at the file (default 250 ms). */
  intervalMs?: number;
}

/** Longest line held while waiting for its newline; longer ones are reported, not shown. */
export const MAX_FOLLOW_LINE_BYTES = 64 * 1024 * 1024;
const CHUNK_BYTES = 1024 * 1024;
const NEWLINE = 0x0a;
/**
 * The start of an incomplete line that is read back at each look to see that the file still
 * holds it. Entries differ from their first bytes (seq, id, time), so this much tells a line
 * that grew from one written over it.
 */
const HELD_CHECK_BYTES = 4096;
const NOTHING = Buffer.alloc(0);

interface Open {
  /** The name it was opened by (for errors). */
  file: string;
  fd: number;
  dev: number;
  ino: number;
  offset: number;
}

/** What the follower hands on: a whole line, or a note about one it could not show. */
export type FollowEvent = { kind: "line"; text: string } | { kind: "note"; text: string };

export class LogFollower {
  private open: Open | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes of an overlong line are being skipped up to its newline. */
  private skipping = 0;
  /** Where the incomplete line held (pending or skipped) starts in the open file, and its first bytes. */
  private heldFrom = 0;
  private heldHead: Buffer = NOTHING;
  /** The highest seq handed on (or shown before following began). */
  private lastSeq = -1;
  /** The hash of the first entry of the chain being followed, once seen. */
  private chainStart: string | undefined;

  private constructor(
    readonly file: string,
    private readonly layer: AuditFs,
    private readonly maxLineBytes: number,
  ) {}

  /**
   * Starts at the file's current end, an incomplete last line held (or, if it does not exist
   * yet, at the start of the file that will appear): what is there now is for the caller to
   * show (see readAuditTail).
   */
  static async start(file: string, options: { layer?: AuditFs; maxLineBytes?: number } = {}): Promise<LogFollower> {
    const layer = options.layer ?? nodeAuditFs;
    const follower = new LogFollower(file, layer, options.maxLineBytes ?? MAX_FOLLOW_LINE_BYTES);
    follower.open = await follower.openFile();
    if (follower.open !== undefined) {
      // From the start of a torn last line, not past it: held like one read later, so that a
      // restart's recovery writing over it is seen, rather than read on from the middle of its entries.
      const open = follower.open;
      try {
        open.offset = (await scanTail(layer, open.fd, (await layer.fstat(open.fd)).size, 0)).tornStart;
      } catch (err) {
        await follower.close();
        if (err instanceof AuditReadError) throw err;
        throw new AuditReadError(`${file} cannot be read: ${describeFsError(err)}`, { cause: err });
      }
    }
    return follower;
  }

  /** The lines the tail printed before following: their entries are not handed on again. */
  shown(lines: readonly string[]): void {
    for (const line of lines) this.see(line);
  }

  /** Hands on every event until the signal fires; then closes the file. */
  async run(emit: (event: FollowEvent) => void, options: FollowOptions): Promise<void> {
    const interval = options.intervalMs ?? 250;
    try {
      while (!options.signal.aborted) {
        await this.poll(emit);
        try {
          await sleep(interval, undefined, { signal: options.signal });
        } catch {
          break; // aborted
        }
      }
    } finally {
      await this.close();
    }
  }

  /** One look: new bytes of the open file, then whether the name now holds another file. */
  async poll(emit: (event: FollowEvent) => void): Promise<void> {
    if (this.open === undefined) {
      // No file yet, or the name was free (between a rotation's two steps) at the last look.
      await this.takeUpActiveFile(emit);
      if (this.open === undefined) return;
    }
    await this.readNew(this.open, emit);
    let current;
    try {
      current = await this.layer.stat(this.file);
    } catch (err) {
      // Between the two steps of a rotation the name is briefly free: look again next time.
      if (errnoOf(err) === "ENOENT") return;
      throw new AuditReadError(`${this.file} cannot be read: ${describeFsError(err)}`, { cause: err });
    }
    if (current.dev === this.open.dev && current.ino === this.open.ino) return;
    // Rotated: what the old file got before the switch, then what came after it.
    await this.readNew(this.open, emit);
    this.flushTorn(emit);
    await this.close();
    await this.takeUpActiveFile(emit);
  }

  /**
   * Opens the file now under the name, hands on every segment that starts past the last
   * entry seen, then the new file from its start. The file is opened before the segments
   * are listed, so every file rotated away before it was made is among them. When the
   * name is free (a rotation between its steps), the segments are still read and the
   * next look tries the name again.
   */
  private async takeUpActiveFile(emit: (event: FollowEvent) => void): Promise<void> {
    const next = await this.openFile();
    try {
      await this.readSegmentsAfterLastSeen(emit);
    } catch (err) {
      if (next !== undefined) await this.layer.close(next.fd).catch(() => undefined);
      throw err;
    }
    this.open = next;
    if (next !== undefined) await this.readNew(next, emit);
  }

  /** Segments that start past the last entry seen, oldest first, each read whole. */
  private async readSegmentsAfterLastSeen(emit: (event: FollowEvent) => void): Promise<void> {
    const dir = path.dirname(this.file);
    let names: string[];
    try {
      names = await this.layer.readdir(dir);
    } catch (err) {
      throw new AuditReadError(`the rotated files next to ${this.file} cannot be listed: ${describeFsError(err)}`, { cause: err });
    }
    for (const segment of segmentsOf(this.file, names)) {
      if (segment.firstSeq <= this.lastSeq) continue;
      // Gone since the listing: nothing to read (a segment is never deleted by the server).
      const open = await this.openRegular(path.join(dir, segment.name));
      if (open === undefined) continue;
      try {
        await this.readNew(open, emit);
        this.flushTorn(emit);
      } finally {
        await this.layer.close(open.fd).catch(() => undefined);
      }
    }
  }

  async close(): Promise<void> {
    const open = this.open;
    this.open = undefined;
    if (open !== undefined) await this.layer.close(open.fd).catch(() => undefined);
  }

  private openFile(): Promise<Open | undefined> {
    return this.openRegular(this.file);
  }

  /**
   * Opens a file of the log at its start; undefined when there is none. Anything but a regular
   * file (a directory or device under a log file's name) is reported, as an unreadable one is.
   */
  private async openRegular(file: string): Promise<Open | undefined> {
    let fd: number;
    try {
      fd = await this.layer.open(file, READ_FLAGS);
    } catch (err) {
      if (errnoOf(err) === "ENOENT") return undefined;
      throw new AuditReadError(`${file} cannot be read: ${describeFsError(err)}`, { cause: err });
    }
    try {
      const st = await this.layer.fstat(fd);
      if (!st.isFile()) throw new AuditReadError(`${file} is not a regular file`);
      return { file, fd, dev: st.dev, ino: st.ino, offset: 0 };
    } catch (err) {
      await this.layer.close(fd).catch(() => undefined);
      if (err instanceof AuditReadError) throw err;
      throw new AuditReadError(`${file} cannot be read: ${describeFsError(err)}`, { cause: err });
    }
  }

  /** readNew, its file system errors (EIO, EISDIR, ...) reported as the file's: audit tail exits 2 with them. */
  private async readNew(open: Open, emit: (event: FollowEvent) => void): Promise<void> {
    try {
      await this.readNewBytes(open, emit);
    } catch (err) {
      if (err instanceof AuditReadError) throw err;
      throw new AuditReadError(`${open.file} cannot be read: ${describeFsError(err)}`, { cause: err });
    }
  }

  private async readNewBytes(open: Open, emit: (event: FollowEvent) => void): Promise<void> {
    const { size } = await this.layer.fstat(open.fd);
    if (size < open.offset) {
      // Cut shorter: a torn last line was removed. What was held of it is gone with it.
      emit({ kind: "note", text: `the file was cut to ${size} bytes (a torn last line removed by recovery?); following from there` });
      open.offset = size;
      this.dropHeld();
    } else if (this.holding && !(await this.stillHeld(open))) {
      // Cut and written past the old end between two looks (a restart's recovery removes a torn
      // line, then records itself and the start): the new lines begin where the torn one did.
      // Read on from the old end, the torn bytes would be joined to the middle of a new entry.
      emit({ kind: "note", text: `the incomplete line at byte ${this.heldFrom} was replaced (a torn last line removed by recovery?); following from there` });
      open.offset = this.heldFrom;
      this.dropHeld();
    }
    while (open.offset < size) {
      const buffer = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, size - open.offset));
      const n = await this.layer.read(open.fd, buffer, 0, buffer.length, open.offset);
      if (n === 0) break;
      this.take(buffer.subarray(0, n), open.offset, emit);
      open.offset += n;
    }
  }

  /** An incomplete line is held (or being skipped). */
  private get holding(): boolean {
    return this.pendingBytes > 0 || this.skipping > 0;
  }

  /** Whether the open file still holds, where the held line started, the bytes read of it. */
  private async stillHeld(open: Open): Promise<boolean> {
    const head = this.heldHead;
    const buffer = Buffer.allocUnsafe(head.length);
    let got = 0;
    while (got < head.length) {
      const n = await this.layer.read(open.fd, buffer, got, head.length - got, this.heldFrom + got);
      if (n === 0) break;
      got += n;
    }
    return got === head.length && buffer.equals(head);
  }

  private dropHeld(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.skipping = 0;
    this.heldHead = NOTHING;
  }

  /** Splits bytes (read at file offset `at`) into whole lines, holding the part after the last newline. */
  private take(bytes: Buffer, at: number, emit: (event: FollowEvent) => void): void {
    let start = 0;
    for (let newline = bytes.indexOf(NEWLINE); newline !== -1; newline = bytes.indexOf(NEWLINE, start)) {
      const part = bytes.subarray(start, newline);
      start = newline + 1;
      this.heldHead = NOTHING;
      if (this.skipping > 0) {
        emit({ kind: "note", text: `an entry of ${this.skipping + part.length} bytes, longer than follow shows (see audit tail or verify)` });
        this.skipping = 0;
        continue;
      }
      const line = this.pendingBytes === 0 ? part : Buffer.concat([...this.pending, part]);
      this.pending = [];
      this.pendingBytes = 0;
      if (line.length > 0) this.emitLine(line.toString("utf8"), emit);
    }
    const rest = bytes.subarray(start);
    if (rest.length === 0) return;
    if (!this.holding) this.heldFrom = at + start;
    if (this.heldHead.length < HELD_CHECK_BYTES) {
      this.heldHead = Buffer.concat([this.heldHead, rest.subarray(0, HELD_CHECK_BYTES - this.heldHead.length)]);
    }
    if (this.skipping > 0) {
      this.skipping += rest.length;
    } else if (this.pendingBytes + rest.length > this.maxLineBytes) {
      this.skipping = this.pendingBytes + rest.length;
      this.pending = [];
      this.pendingBytes = 0;
    } else {
      // Copied: the chunk's buffer is not kept whole for the sake of a short tail.
      this.pending.push(Buffer.from(rest));
      this.pendingBytes += rest.length;
    }
  }

  private emitLine(text: string, emit: (event: FollowEvent) => void): void {
    const seen = this.see(text);
    if (seen === "again") return;
    if (seen === "new-chain") emit({ kind: "note", text: "a new chain starts here (the log was moved aside or removed and a server started afresh)" });
    emit({ kind: "line", text });
  }

  /**
   * Records a line's entry as seen: "again" when it was (its seq is not past the last one), "new-chain"
   * when its seqs start over. The first entry of a new chain (the log moved aside and a server
   * started afresh) is told from a second look at this chain's own first entry by its hash.
   * A line without a seq is always "new".
   */
  private see(text: string): "new" | "again" | "new-chain" {
    const entry = parseObjectLine(text);
    const seq = entry?.seq;
    if (typeof seq !== "number" || !Number.isSafeInteger(seq)) return "new";
    const chainStart = entry?.prev === GENESIS_PREV && typeof entry.hash === "string" ? entry.hash : undefined;
    let seen: "new" | "new-chain" = "new";
    if (chainStart !== undefined && chainStart !== this.chainStart) {
      if (seq <= this.lastSeq) seen = "new-chain";
      this.chainStart = chainStart;
    } else if (seq <= this.lastSeq) return "again";
    this.lastSeq = seq;
    return seen;
  }

  /** At a rotation, bytes after the old file's last newline will never be completed. */
  private flushTorn(emit: (event: FollowEvent) => void): void {
    const torn = this.pendingBytes + this.skipping;
    if (torn > 0) emit({ kind: "note", text: `the rotated file ended with an incomplete line of ${torn} bytes` });
    this.dropHeld();
  }
}
