/**
 * The chain writer: seals entries (seq, id, time, prev, hash) synchronously in call
 * order, then writes them in order with one `write` per batch and makes them durable.
 *
 * - `always`: group commit. Entries written before an fdatasync starts resolve when it
 *   ends; entries written meanwhile wait for the next one (one fdatasync in flight).
 * - `batch`: an entry resolves once written; an fdatasync follows within the interval.
 *   The write is synchronous (a page-cache write costs microseconds, a thread-pool round
 *   trip far more), unless a rotation or an asynchronous write is in flight: then the
 *   entry queues and is written, in order, when that ends. The fdatasync stays async.
 * - Rotation is an item in the same queue: the old file is sealed with a checkpoint and
 *   synced, renamed, and a new file starts with a `rotate` entry linking to it.
 * - Any write, sync or rotation error fails the writer for good: pending and later
 *   entries reject with AuditWriteError, since a chain with a hole must not continue.
 * - Each sync also checks the file: the path still names it, and it holds exactly the bytes
 *   this writer wrote (not removed, replaced, truncated or appended to). In `always` mode
 *   that is before any entry resolves; in `batch` mode within the interval, the same window
 *   in which batch may lose entries to a power loss (a check after every write would cost an
 *   fstat per write, as much as the write itself).
 */
import path from "node:path";
import type { AuditFsync } from "../policy-types.js";
import type { Logger } from "../../util/logger.js";
import { lineBytesBound, sealLineInto, sealedCanonicalJson, type EntryFields } from "./entry.js";
import { LineBuffer } from "./line-buffer.js";
import { jsonString } from "../../util/canonical-json.js";
import { AuditEntryError, AuditWriteError, describeFsError } from "./errors.js";
import { fsyncDirectory, syncWriteOf, writeAll, writeAllSync, type AuditFs, type AuditStats, type SyncWrite } from "./fs-layer.js";
import type { AuditSigner } from "./checkpoint.js";
import { segmentPath, utcDay } from "./segments.js";

export interface AuditReceipt {
  seq: number;
  hash: string;
}

export interface ChainPosition {
  seq: number;
  head: string;
}

export type { EntryFields } from "./entry.js";

export interface AuditTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

/** Real timers that never keep the process alive on their own. */
export const realTimers: AuditTimers = {
  set(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return timer;
  },
  clear(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

export interface ChainWriterOptions {
  fs: AuditFs;
  path: string;
  fd: number;
  logId: string;
  /** The last entry of the chain so far (seq 0 and GENESIS_PREV for a new log). */
  position: ChainPosition;
  /** The active file: its size and, when it holds entries, its first entry's seq and time. */
  file: { bytes: number; firstSeq?: number; firstTs?: string };
  fsync: AuditFsync;
  fsyncIntervalMs: number;
  rotateBytes: number;
  rotateDaily: boolean;
  checkpointEvery: number;
  signer: AuditSigner;
  now: () => Date;
  newId: (time: number) => string;
  logger: Logger;
  timers?: AuditTimers;
}

interface LineItem {
  kind: "line";
  /** Where the line's bytes lie in the writer's LineBuffer (logical positions). */
  start: number;
  end: number;
  hash: string;
  seq: number;
  /** The append's promise, for the entries that have one. */
  resolve?: (receipt: AuditReceipt) => void;
  reject?: (err: Error) => void;
}

interface RotateItem {
  kind: "rotate";
  target: string;
}

type Item = LineItem | RotateItem;

export type WriterState = "open" | "closing" | "closed" | "failed";

export class ChainWriter {
  private readonly fs: AuditFs;
  readonly path: string;
  private fd: number;
  private identity: { dev: number; ino: number } | undefined;
  readonly logId: string;
  private readonly opts: ChainWriterOptions;
  private readonly timers: AuditTimers;
  /**
   * Batch mode's synchronous write, when the layer has one. `always` keeps the async
   * write: its fdatasync is nearly always in flight, and a write racing it could stall
   * the event loop, while the fdatasync dominates the latency anyway.
   */
  private readonly writeSync: SyncWrite | undefined;

  // Sealing state (synchronous, in call order).
  private seq: number;
  private head: string;
  private fileBytes: number;
  /**
   * Bytes of the current file as this writer has written them (its size at open, plus every
   * write since): a file of another size was truncated or appended to by someone else.
   */
  private fileWritten: number;
  private fileFirstSeq: number | undefined;
  private fileFirstTs: string | undefined;
  private sinceCheckpoint = 0;
  /** JSON of `head`, made when the head is (a hex hash needs no escaping). */
  private headJson: string;
  /**
   * `toISOString()` of the last sealing time and its JSON, and its second's
   * "YYYY-MM-DDTHH:MM:SS." (entries come many per millisecond).
   */
  private isoMs = NaN;
  private iso = "";
  private isoJson = "";
  private isoSecond = NaN;
  private isoSecondPrefix = "";

  // I/O state.
  /** The sealed lines' bytes, from sealing until they are written. */
  private readonly lines = new LineBuffer();
  private readonly queue: Item[] = [];
  private kickScheduled = false;
  private writing = false;
  private rotating = false;
  /** The running write or rotation, so that the fd is never closed under it (its number could be reused). */
  private ioInFlight: Promise<void> | undefined;
  private syncInFlight: Promise<void> | undefined;
  private awaitingSync: LineItem[] = [];
  /** The batch being written right now. */
  private inWrite: LineItem[] = [];
  /** The group the running fdatasync will make durable. */
  private inSync: LineItem[] = [];
  private dirty = false;
  private timer: unknown;
  private written: ChainPosition;

  private state: WriterState = "open";
  private failure: AuditWriteError | undefined;
  private closePromise: Promise<ChainPosition | undefined> | undefined;

  constructor(options: ChainWriterOptions) {
    this.opts = options;
    this.fs = options.fs;
    this.path = options.path;
    this.fd = options.fd;
    this.logId = options.logId;
    this.timers = options.timers ?? realTimers;
    this.writeSync = options.fsync === "batch" ? syncWriteOf(options.fs) : undefined;
    this.seq = options.position.seq;
    this.head = options.position.head;
    this.headJson = jsonString(this.head);
    this.written = { ...options.position };
    this.fileBytes = options.file.bytes;
    this.fileWritten = options.file.bytes;
    this.fileFirstSeq = options.file.firstSeq;
    this.fileFirstTs = options.file.firstTs;
  }

  /** Remembers which file the fd is, so that a removed or replaced log is noticed at the next sync. */
  async init(): Promise<void> {
    const st = await this.fs.fstat(this.fd);
    this.identity = { dev: st.dev, ino: st.ino };
  }

  status(): { state: WriterState; error?: string; seq: number; head: string; unwrittenBytes: number } {
    const unwrittenBytes = this.lines.heldBytes;
    return this.failure === undefined
      ? { state: this.state, seq: this.written.seq, head: this.written.head, unwrittenBytes }
      : { state: this.state, error: this.failure.message, seq: this.written.seq, head: this.written.head, unwrittenBytes };
  }

  /**
   * Seals an entry now (so the chain order is the call order) and resolves when it is
   * durable per the fsync mode. Fields JSON cannot carry reject with AuditEntryError
   * and consume no seq.
   */
  append(fields: EntryFields): Promise<AuditReceipt> {
    if (this.state !== "open") return Promise.reject(this.refusal());
    return this.sealPrimary(fields, this.opts.now());
  }

  private refusal(): AuditWriteError {
    if (this.failure !== undefined) return this.failure;
    return new AuditWriteError(`audit log ${this.path} is closed; no further entries can be recorded`, "AUDIT_CLOSED");
  }

  /**
   * Seals a caller's entry (or server_stop), with the rotation due before it and the checkpoint
   * due after it. `audit verify` relies on the rule this makes, so it is exact: counting the
   * entries other than checkpoint and rotate from server_start (itself the first) or from the
   * last checkpoint, the `checkpointEvery`th is followed at once by a checkpoint. Sealing is
   * synchronous, so nothing comes between: appends made meanwhile (group commit, a batch) wait
   * for the write, never for the seal. A rotation seals a checkpoint first, then its `rotate`.
   */
  private sealPrimary(fields: EntryFields, date: Date): Promise<AuditReceipt> {
    if (this.rotationDue(date) && !this.sealOwn(() => this.sealRotation(date))) return Promise.reject(this.refusal());
    let promise: Promise<AuditReceipt>;
    try {
      promise = this.sealLine(fields, date, true);
    } catch (err) {
      this.kick();
      return Promise.reject(new AuditEntryError(`the entry cannot be recorded: ${(err as Error).message}`));
    }
    // The count starts again at server_start, not with the recovery entries a start writes before
    // it: a start that stopped early leaves those for the next start to follow with its own, and
    // verify could not tell which start wrote which.
    this.sinceCheckpoint = fields.event === "server_start" ? 1 : this.sinceCheckpoint + 1;
    if (this.opts.checkpointEvery > 0 && this.sinceCheckpoint >= this.opts.checkpointEvery) {
      // On failure, the writer has failed and rejected this entry's promise too.
      this.sealOwn(() => this.sealCheckpoint(date, false));
    }
    this.scheduleKick();
    return promise;
  }

  /**
   * Seals the log's own entries (a checkpoint, a rotation), or fails the writer when that throws
   * (the signer did): entries must not go on past a checkpoint that is due, which `audit verify`
   * reads as a checkpoint removed, and the entry just sealed is then refused, not left unsigned.
   */
  private sealOwn(seal: () => void): boolean {
    try {
      seal();
      return true;
    } catch (err) {
      this.fail(
        new AuditWriteError(`audit log ${this.path}: a checkpoint cannot be sealed: ${(err as Error).message}`, "AUDIT_WRITE_FAILED", { cause: err }),
      );
      return false;
    }
  }

  /**
   * Batch mode writes synchronously, but not once per entry: the entries sealed while the
   * current microtasks run (a burst of pipelined calls) leave in one write, flushed by a
   * microtask before any of their appends resolves. Other modes start their write at once.
   */
  private scheduleKick(): void {
    if (this.writeSync === undefined) {
      this.kick();
      return;
    }
    if (this.kickScheduled) return;
    this.kickScheduled = true;
    queueMicrotask(() => {
      this.kickScheduled = false;
      this.kick();
    });
  }

  private sealLine(fields: EntryFields, date: Date, wait: true): Promise<AuditReceipt>;
  private sealLine(fields: EntryFields, date: Date, wait: false): undefined;
  private sealLine(fields: EntryFields, date: Date, wait: boolean): Promise<AuditReceipt> | undefined {
    const seq = this.seq + 1;
    const ts = this.isoTime(date);
    const head = { seq, id: this.opts.newId(date.getTime()), ts, tsJson: this.isoJson, prev: this.head, prevJson: this.headJson };
    // Both throw before any state changes: the entry is then simply not recorded.
    const canonical = sealedCanonicalJson(head, fields);
    const start = this.lines.position;
    const buffer = this.lines.reserve(lineBytesBound(canonical));
    const { hash, bytes } = sealLineInto(buffer, this.lines.offsetOf(start), canonical);
    this.lines.commit(bytes);
    this.seq = seq;
    this.head = hash;
    this.headJson = `"${hash}"`;
    this.fileBytes += bytes;
    if (this.fileFirstSeq === undefined) {
      this.fileFirstSeq = seq;
      this.fileFirstTs = ts;
    }
    const item: LineItem = { kind: "line", start, end: start + bytes, hash, seq };
    this.queue.push(item);
    if (!wait) return undefined;
    return new Promise<AuditReceipt>((resolve, reject) => {
      item.resolve = resolve;
      item.reject = reject;
    });
  }

  /**
   * `date.toISOString()`, which costs more than the rest of an entry's time handling:
   * reused within a millisecond, and within a second only the milliseconds are written.
   */
  private isoTime(date: Date): string {
    const ms = date.getTime();
    if (ms === this.isoMs) return this.iso;
    const second = Math.floor(ms / 1000);
    let iso: string;
    if (second === this.isoSecond) {
      const milli = ms - second * 1000;
      iso = `${this.isoSecondPrefix}${milli < 10 ? "00" : milli < 100 ? "0" : ""}${milli}Z`;
    } else {
      iso = date.toISOString(); // throws a RangeError for an invalid date, as before
      this.isoSecond = second;
      this.isoSecondPrefix = iso.slice(0, -4);
    }
    this.isoMs = ms;
    this.iso = iso;
    // Digits, "-", "+", ":", "T", ".", "Z": nothing JSON escapes.
    this.isoJson = `"${iso}"`;
    return iso;
  }

  private sealCheckpoint(date: Date, wait: true): Promise<AuditReceipt>;
  private sealCheckpoint(date: Date, wait: false): undefined;
  private sealCheckpoint(date: Date, wait: boolean): Promise<AuditReceipt> | undefined {
    const checkpoint = this.opts.signer.checkpoint(this.logId, this.seq, this.head);
    this.sinceCheckpoint = 0;
    // Logged when sealed; a log that fails before writing it says so on stderr too.
    this.opts.logger.info("audit checkpoint sealed", { seq: this.seq, head: this.head, key: checkpoint.keyFingerprint });
    const fields: EntryFields = { event: "checkpoint", checkpoint };
    return wait ? this.sealLine(fields, date, true) : this.sealLine(fields, date, false);
  }

  private rotationDue(date: Date): boolean {
    if (this.fileFirstSeq === undefined) return false;
    if (this.opts.rotateBytes > 0 && this.fileBytes >= this.opts.rotateBytes) return true;
    return this.opts.rotateDaily && this.fileFirstTs !== undefined && utcDay(this.isoTime(date)) !== utcDay(this.fileFirstTs);
  }

  private sealRotation(date: Date): void {
    this.sealCheckpoint(date, false);
    const target = segmentPath(this.path, this.fileFirstTs!, this.fileFirstSeq!);
    const previous = { seq: this.seq, head: this.head };
    this.queue.push({ kind: "rotate", target });
    this.fileBytes = 0;
    this.fileFirstSeq = undefined;
    this.fileFirstTs = undefined;
    this.sealLine(
      {
        event: "rotate",
        data: { logId: this.logId, previousFile: path.basename(target), previousSeq: previous.seq, previousHead: previous.head },
      },
      date,
      false,
    );
  }

  /**
   * Writes what is queued, in order: synchronously in batch mode, or by starting the
   * next asynchronous write or rotation. Nothing starts while a write or a rotation runs
   * (a rotation closes and swaps the fd); their ends kick again.
   */
  private kick(): void {
    while (this.failure === undefined && !this.writing && !this.rotating) {
      const first = this.queue[0];
      if (first === undefined) return;
      if (first.kind === "rotate") {
        if (this.syncInFlight !== undefined) return; // the sync's end kicks again
        this.queue.shift();
        this.rotating = true;
        this.ioInFlight = this.rotate(first.target);
        this.ioInFlight.then(
          () => {
            this.rotating = false;
            this.kick();
          },
          (err: unknown) =>
            this.fail(
              // The sync's own checks already say what is wrong with the file.
              err instanceof AuditWriteError
                ? err
                : new AuditWriteError(`audit log ${this.path} cannot be rotated to ${path.basename(first.target)}: ${describeFsError(err)}`, "AUDIT_WRITE_FAILED", {
                    cause: err,
                  }),
            ),
        );
        return;
      }
      let count = 0;
      while (count < this.queue.length && this.queue[count]!.kind === "line") count++;
      const batch = this.queue.splice(0, count) as LineItem[];
      this.inWrite = batch;
      // Lines are sealed one after another, so a run of them is one stretch of bytes.
      const buffer = this.lines.view(batch[0]!.start, batch[count - 1]!.end);
      if (this.writeSync !== undefined) {
        try {
          writeAllSync(this.writeSync, this.fd, buffer);
        } catch (err) {
          this.fail(this.writeFailure(err));
          return;
        }
        this.afterWrite(batch);
        continue;
      }
      this.writing = true;
      this.ioInFlight = writeAll(this.fs, this.fd, buffer);
      this.ioInFlight.then(
        () => {
          this.afterWrite(batch);
          this.kick();
        },
        (err: unknown) => this.fail(this.writeFailure(err)),
      );
      return;
    }
  }

  private writeFailure(err: unknown): AuditWriteError {
    return new AuditWriteError(`audit log ${this.path} cannot be written: ${describeFsError(err)}`, "AUDIT_WRITE_FAILED", { cause: err });
  }

  private afterWrite(batch: LineItem[]): void {
    if (this.failure !== undefined) return;
    this.writing = false;
    this.inWrite = [];
    const last = batch[batch.length - 1]!;
    this.fileWritten += last.end - batch[0]!.start;
    this.lines.release(last.end);
    this.written = { seq: last.seq, head: last.hash };
    if (this.opts.fsync === "always") {
      for (const item of batch) this.awaitingSync.push(item);
      this.syncGroup();
    } else {
      for (const item of batch) item.resolve?.({ seq: item.seq, hash: item.hash });
      this.dirty = true;
      this.scheduleBatchSync();
    }
  }

  /** Group commit: one fdatasync for everything written so far; later writes wait for the next. */
  private syncGroup(): void {
    if (this.failure !== undefined || this.syncInFlight !== undefined || this.awaitingSync.length === 0) return;
    const group = this.awaitingSync;
    this.awaitingSync = [];
    this.inSync = group;
    this.runSync(() => {
      this.inSync = [];
      for (const item of group) item.resolve?.({ seq: item.seq, hash: item.hash });
      this.syncGroup();
    });
  }

  private scheduleBatchSync(): void {
    if (this.timer !== undefined || this.syncInFlight !== undefined || this.failure !== undefined) return;
    this.timer = this.timers.set(() => {
      this.timer = undefined;
      if (this.failure !== undefined || this.syncInFlight !== undefined || this.state === "closed") return;
      this.dirty = false;
      this.runSync(() => {
        if (this.dirty) this.scheduleBatchSync();
      });
    }, this.opts.fsyncIntervalMs);
  }

  private runSync(onDone: () => void): void {
    const sync = this.syncAndCheck();
    this.syncInFlight = sync;
    sync.then(
      () => {
        this.syncInFlight = undefined;
        if (this.failure !== undefined) return;
        onDone();
        this.kick();
      },
      (err: unknown) => {
        this.syncInFlight = undefined;
        this.fail(err instanceof AuditWriteError ? err : new AuditWriteError(String(err)));
      },
    );
  }

  /** fdatasync, and a check that the path still names the open file (it may have been removed or replaced). */
  private async syncAndCheck(): Promise<void> {
    const fd = this.fd;
    const results = await Promise.allSettled([
      this.fs.fdatasync(fd).catch((err: unknown) => {
        throw new AuditWriteError(`audit log ${this.path} cannot be synced to disk: ${describeFsError(err)}`, "AUDIT_WRITE_FAILED", { cause: err });
      }),
      this.checkIdentity(),
      this.checkSize(fd),
    ]);
    // The first problem in this order, whichever finished first: the sync, the path, the size.
    for (const result of results) if (result.status === "rejected") throw result.reason;
  }

  /** The open file still has the bytes this writer wrote, no fewer and no more (writes in flight aside). */
  private async checkSize(fd: number): Promise<void> {
    const before = this.fileWritten;
    let st: AuditStats;
    try {
      st = await this.fs.fstat(fd);
    } catch (err) {
      throw new AuditWriteError(`audit log ${this.path} cannot be checked: ${describeFsError(err)}`, "AUDIT_WRITE_FAILED", { cause: err });
    }
    const inFlight = this.writing && this.inWrite.length > 0 ? this.inWrite[this.inWrite.length - 1]!.end - this.inWrite[0]!.start : 0;
    const problem = fileProblem(st, before, this.fileWritten + inFlight);
    if (problem !== undefined) throw new AuditWriteError(`audit log ${this.path} cannot be written: ${problem}`);
  }

  private async checkIdentity(): Promise<void> {
    if (this.identity === undefined) return;
    let st;
    try {
      st = await this.fs.stat(this.path);
    } catch (err) {
      throw new AuditWriteError(
        `audit log ${this.path} cannot be written: the file is gone (${describeFsError(err)}); entries would go to a deleted file`,
        "AUDIT_WRITE_FAILED",
        { cause: err },
      );
    }
    if (st.dev !== this.identity.dev || st.ino !== this.identity.ino) {
      throw new AuditWriteError(
        `audit log ${this.path} cannot be written: the file was replaced by another one while the server was running`,
      );
    }
  }

  private async rotate(target: string): Promise<void> {
    // The timed sync is cancelled here, so this sync does its checks: a file changed by another
    // process since the last one must fail the log, not be sealed into a segment.
    this.clearTimer();
    await this.syncAndCheck();
    this.dirty = false;
    const synced = this.awaitingSync;
    this.awaitingSync = [];
    for (const item of synced) item.resolve?.({ seq: item.seq, hash: item.hash });
    const exists = await this.fs.lstat(target).then(
      () => true,
      () => false,
    );
    if (exists) throw Object.assign(new Error(`${target} already exists`), { code: "EEXIST" });
    await this.fs.close(this.fd);
    this.fd = -1;
    await this.fs.rename(this.path, target);
    const { fd, notes, tighten } = await this.fs.openLogFile(this.path);
    this.fd = fd;
    this.fileWritten = 0;
    for (const note of notes) this.opts.logger.warn(note);
    if (tighten !== undefined) this.opts.logger.warn(await tighten());
    const st = await this.fs.fstat(fd);
    if (st.size !== 0) throw new Error(`a new ${this.path} appeared during rotation and is not empty`);
    this.identity = { dev: st.dev, ino: st.ino };
    await fsyncDirectory(this.fs, path.dirname(this.path));
    this.opts.logger.info("audit log rotated", { segment: target });
  }

  private clearTimer(): void {
    if (this.timer !== undefined) {
      this.timers.clear(this.timer);
      this.timer = undefined;
    }
  }

  private fail(err: AuditWriteError): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    this.state = "failed";
    this.clearTimer();
    this.opts.logger.error("audit log failed; every further entry is refused", { error: err.message });
    const waiting = [...this.inSync, ...this.awaitingSync, ...this.inWrite, ...this.queue];
    this.inSync = [];
    this.awaitingSync = [];
    this.inWrite = [];
    this.queue.length = 0;
    for (const item of waiting) if (item.kind === "line") item.reject?.(err);
  }

  /** Resolves when everything sealed so far is written and on disk (both modes). */
  async flush(): Promise<void> {
    const lastSealed = this.seq;
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      if (this.syncInFlight !== undefined) await this.syncInFlight.catch(() => undefined);
      else if (this.written.seq < lastSealed) await new Promise<void>((resolve) => setImmediate(resolve));
      else break;
    }
    const group = this.awaitingSync;
    this.awaitingSync = [];
    this.inSync = group;
    const sync = this.syncAndCheck();
    this.syncInFlight = sync;
    try {
      await sync;
    } catch (err) {
      this.syncInFlight = undefined;
      const failure = err instanceof AuditWriteError ? err : new AuditWriteError(String(err));
      this.fail(failure);
      throw failure;
    }
    this.syncInFlight = undefined;
    this.inSync = [];
    this.dirty = false;
    for (const item of group) item.resolve?.({ seq: item.seq, hash: item.hash });
    this.kick();
  }

  /**
   * Writes `server_stop` and a final checkpoint, syncs and closes. Returns the head
   * (the checkpoint's seq and hash), or undefined when the log had failed.
   */
  close(reason?: string): Promise<ChainPosition | undefined> {
    this.closePromise ??= this.doClose(reason);
    return this.closePromise;
  }

  private async doClose(reason: string | undefined): Promise<ChainPosition | undefined> {
    let result: ChainPosition | undefined;
    if (this.state === "open") {
      const date = this.opts.now();
      const stop = this.sealPrimary({ event: "server_stop", reason, data: { logId: this.logId } }, date);
      // Sealing the stop can fail the writer (a checkpoint that cannot be signed): nothing more then.
      let last: Promise<AuditReceipt> | undefined;
      if (this.state === "open") {
        this.state = "closing";
        this.sealOwn(() => {
          last = this.sealCheckpoint(date, true);
        });
      }
      this.kick();
      try {
        await Promise.all([stop, last]);
        await this.flush();
        result = { seq: this.seq, head: this.head };
      } catch {
        result = undefined;
      }
    }
    await this.abort();
    return result;
  }

  /** Closes the file without writing anything more. */
  async abort(): Promise<void> {
    this.clearTimer();
    if (this.syncInFlight !== undefined) await this.syncInFlight.catch(() => undefined);
    if (this.ioInFlight !== undefined) await this.ioInFlight.catch(() => undefined);
    if (this.state !== "failed") this.state = "closed";
    if (this.fd >= 0) {
      const fd = this.fd;
      this.fd = -1;
      await this.fs.close(fd).catch(() => undefined);
    }
  }
}

/**
 * What is wrong with the open log file, if anything: removed (no name left: entries would go
 * to a deleted file), or of a size other than what this writer wrote (between `min` and
 * `max` bytes, writes in flight allowing): truncated or appended to by another process.
 */
function fileProblem(st: AuditStats, min: number, max: number): string | undefined {
  if (st.nlink === 0) return "the file was removed (or replaced) while the server was running; entries would go to a deleted file";
  if (st.size < min || st.size > max) {
    return `the file was changed by another process while the server was running (it holds ${st.size} bytes where the server wrote ${min})`;
  }
  return undefined;
}
