/**
 * A JSON-RPC connection over a byte stream pair: framing in, classification,
 * concurrent request handling with per-request AbortSignals, cancellation, and
 * whole-message writes out. It knows nothing of MCP methods; the session layer
 * supplies the handlers.
 */
import type { Readable, Writable } from "node:stream";
import { BatchReply, type Answered } from "./batch-reply.js";
import { LineFramer } from "./framer.js";
import {
  BATCH_REFUSED,
  classify,
  classifyValue,
  EMPTY_BATCH,
  ErrorCode,
  errorMessage,
  notificationMessage,
  resultMessage,
  RpcError,
  truncate,
  type Message,
  type OutgoingMessage,
  type Params,
  type RequestId,
} from "./jsonrpc.js";
import { MessageWriter, serializeMessage } from "./writer.js";
import { LazyAbort, type CallAbort } from "../util/call-abort.js";
import { KeptUntilSent, SENT_KEEPING_NOTHING, type BudgetHolder } from "../util/byte-budget.js";
import type { Logger } from "../util/logger.js";
import { monotonicMs } from "../util/clock.js";
import { cutAt } from "../util/text.js";

export interface RequestContext {
  readonly id: RequestId;
  readonly method: string;
  /**
   * Aborted when the client cancels the request or the connection shuts down; a
   * handler may abort it too (a deadline), and the response is still sent then.
   */
  readonly abort: CallAbort;
  /** Keeps what the response will carry reserved (util/byte-budget.ts) until it has been written out. */
  readonly holder: BudgetHolder;
}

export type RequestResult = Record<string, unknown>;

export interface ConnectionHandlers {
  /** Returns the result (synchronously when it can) or throws an RpcError. */
  request(method: string, params: Params | undefined, ctx: RequestContext): RequestResult | Promise<RequestResult>;
  notification(method: string, params: Params | undefined): void;
  /** Called right after a response (result or error) for `id` was written. */
  responded?(id: RequestId, method: string): void;
}

export interface ConnectionOptions {
  maxLineBytes: number;
  /**
   * Requests that run at once. More wait, in order, for a slot (ping and notifications such
   * as cancellations never wait). Default: no limit.
   */
  maxInFlight?: number;
  /**
   * Bytes the requests waiting for a slot may hold (default 4 MiB); a request that would pass
   * it is answered at once with a "server busy" error. Reading never stops for those, so stdin
   * closing, pings and cancellations are always seen. Requests read ahead of the event loop's
   * turns (slots free) pause reading past a quarter of it, for 0.1 s at a time, and are
   * refused past four times it.
   */
  maxWaitingBytes?: number;
  logger: Logger;
}

/** A request in flight is its own abort scope: one object per request, not two. */
class InFlight extends LazyAbort implements BudgetHolder {
  cancelled = false;
  reserved = 0;
  /** What the response holds (reserved budget), given back once it has left; made on first use. */
  private kept: KeptUntilSent | undefined;

  constructor(
    readonly id: RequestId,
    readonly method: string,
    readonly batch: BatchReply | undefined,
  ) {
    super();
  }

  hold(release: () => void): void {
    (this.kept ??= new KeptUntilSent()).keep(release);
  }

  /** The writer's `onWritten` for the response: only for a request that holds something (most hold nothing). */
  get onLeft(): (() => void) | undefined {
    return this.kept?.keeping === true ? () => this.leave() : undefined;
  }

  /** The response has left, or never will: what was held for it goes back. */
  leave(): void {
    if (this.kept === undefined) this.kept = SENT_KEEPING_NOTHING;
    else this.kept.sentOut();
  }
}

/** A request read while the in-flight limit held: it starts when a slot frees, in arrival order. */
interface Waiting {
  readonly method: string;
  readonly params: Params | undefined;
  readonly bytes: number;
  readonly batch: BatchReply | undefined;
}

const DEFAULT_MAX_WAITING_BYTES = 4 * 1024 * 1024;
/**
 * Messages one batch may hold. A batch's answers are built in memory as one array, and a line of
 * tiny invalid elements would otherwise multiply into a reply dozens of times its size.
 */
export const MAX_BATCH_MESSAGES = 1000;
/**
 * Requests started in one turn of the event loop, at most, and the time they may take to
 * start; later ones wait for the next turn. A backlog read at once (hundreds of pipelined
 * calls in one chunk) otherwise runs as one chain of microtasks, and the loop hears nothing
 * meanwhile: a SIGTERM was handled only after 500 calls had run, 0.7 s later, and timers,
 * cancellations and stdin's end waited as long. A start is cheap and the work follows it in
 * the same turn, so the count bounds the turn; the time bounds a run of slow starts.
 */
const TURN_STARTS = 64;
const TURN_BUDGET_MS = 10;
/**
 * Reading paused for a backlog resumes after this long even if the backlog is still long, so a
 * ping, a cancellation or stdin's end behind it waits at most about this; the queue may then
 * grow, up to four times its budget, past which requests are refused as busy.
 */
const BACKLOG_PAUSE_MS = 100;
const BACKLOG_HARD_FACTOR = 4;

export class Connection {
  private readonly framer: LineFramer;
  /** No line has been read yet (see onLine: a byte order mark there is ignored). */
  private atStreamStart = true;
  private readonly writer: MessageWriter;
  // Keyed by the id itself: a Map keeps the string "1" and the number 1 apart, as JSON-RPC does.
  private readonly inFlight = new Map<RequestId, InFlight>();
  /** Called when the last request in flight settles (drain waits on it). */
  private idleWaiters: Array<() => void> = [];
  private accepting = true;
  private inputEnded = false;
  private readonly endListeners: Array<(why: "input-end" | "output-closed") => void> = [];
  private readonly maxInFlight: number;
  private readonly maxWaitingBytes: number;
  /** Requests waiting for a slot, by id, in arrival order (a Map keeps insertion order). */
  private readonly waiting = new Map<RequestId, Waiting>();
  private waitingBytes = 0;
  /** Set while requests are refused for a full queue: the operator is told once per episode. */
  private busy = false;
  /** Batches whose array is not written yet. */
  private readonly openBatches = new Set<BatchReply>();
  /** Ids answered inside a batch whose array is not written yet. */
  private readonly unsent = new Set<RequestId>();
  /** JSON-RPC batches are answered (MCP 2025-03-26) rather than refused. */
  private batches = false;
  /** When the first request of this turn of the event loop started (monotonic ms); -1 once the loop has turned. */
  private turnStartedAt = -1;
  /** Requests started in this turn of the event loop. */
  private turnStarts = 0;
  /** When reading was paused for a backlog (monotonic ms); -1 when it is not. */
  private backlogPausedAt = -1;

  constructor(
    private readonly input: Readable,
    output: Writable,
    private readonly handlers: ConnectionHandlers,
    private readonly options: ConnectionOptions,
  ) {
    this.maxInFlight = options.maxInFlight ?? Infinity;
    this.maxWaitingBytes = options.maxWaitingBytes ?? DEFAULT_MAX_WAITING_BYTES;
    this.framer = new LineFramer(options.maxLineBytes, {
      line: (bytes) => this.onLine(bytes),
      oversize: (limit) =>
        this.send(
          errorMessage(undefined, {
            code: ErrorCode.InvalidRequest,
            message: `Invalid Request: message exceeds the ${limit}-byte line limit and was discarded`,
            data: { maxLineBytes: limit },
          }),
        ),
    });
    this.writer = new MessageWriter(output, {
      drain: () => this.resumeReading(),
      closed: (error) => {
        if (error && (error as NodeJS.ErrnoException).code !== "EPIPE") {
          options.logger.warn("stdout closed with an error", { error: error.message });
        }
        this.accepting = false;
        this.emitEnd("output-closed");
      },
    });
  }

  start(): void {
    this.input.on("data", (chunk: Buffer | string) => {
      if (!this.accepting) return;
      this.framer.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
      // Backpressure: stop reading while the client is not draining our output, or while a
      // backlog read ahead waits for the loop's next turns.
      if (this.writer.isCongested) this.input.pause();
      else if (this.backlogged()) {
        this.input.pause();
        if (this.backlogPausedAt < 0) this.backlogPausedAt = monotonicMs();
      }
    });
    const ended = () => {
      if (this.inputEnded) return;
      this.inputEnded = true;
      if (this.accepting) this.framer.end();
      this.emitEnd("input-end");
    };
    this.input.on("end", ended);
    this.input.on("close", ended);
    this.input.on("error", (error: Error) => {
      this.options.logger.warn("stdin error; treating it as end of input", { error: error.message });
      ended();
    });
  }

  /** Called once, when input ends or output closes. */
  onEnd(listener: (why: "input-end" | "output-closed") => void): void {
    this.endListeners.push(listener);
  }

  /** Requests read and not yet answered: running or waiting for a slot. */
  get pendingCount(): number {
    return this.inFlight.size + this.waiting.size;
  }

  /** Requests running now (at most the in-flight limit). */
  get runningCount(): number {
    return this.inFlight.size;
  }

  get outputClosed(): boolean {
    return this.writer.closed;
  }

  /** Cancels a request: a running one's signal fires, a waiting one never starts; no response is sent for it. */
  cancel(id: RequestId, reason: string): boolean {
    const waiting = this.waiting.get(id);
    if (waiting !== undefined) {
      this.unqueue(id, waiting);
      waiting.batch?.skip();
      this.checkIdle();
      return true;
    }
    const entry = this.inFlight.get(id);
    if (!entry || entry.cancelled) return false;
    entry.cancelled = true;
    entry.abort(new CancelledError(reason));
    return true;
  }

  methodOf(id: RequestId): string | undefined {
    return (this.inFlight.get(id) ?? this.waiting.get(id))?.method;
  }

  /** Running, waiting, or answered inside a batch whose array has not been written yet. */
  isInFlight(id: RequestId): boolean {
    return this.inFlight.has(id) || this.waiting.has(id) || this.unsent.has(id);
  }

  /**
   * From now on a line holding a JSON array is a batch: its requests run as usual and their
   * responses leave together as one array. Until then (and in MCP 2025-06-18 and later) a
   * batch is refused as a whole.
   */
  acceptBatches(): void {
    this.batches = true;
  }

  notify(method: string, params?: Record<string, unknown>): void {
    this.send(notificationMessage(method, params));
  }

  /** Stops reading new messages; in-flight requests continue until they settle or are aborted. */
  stopAccepting(): void {
    this.accepting = false;
    this.input.pause();
  }

  /**
   * Aborts every running request (their responses are still written if they complete) and
   * answers every waiting one with an error at once: it never starts.
   */
  abortAll(reason: string): void {
    for (const [id, waiting] of this.waiting) {
      this.unqueue(id, waiting);
      this.answer(
        id,
        waiting.method,
        waiting.batch,
        errorMessage(id, {
          code: ErrorCode.ServerUnavailable,
          message: `Server unavailable: ${reason}; this request was not started`,
          data: { reason: "shutting_down" },
        }),
      );
    }
    for (const entry of this.inFlight.values()) entry.abort(new ShutdownError(reason));
    this.checkIdle();
  }

  /** Resolves when every request read has been answered (running or waiting), or after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.pendingCount === 0) return true;
    let wake!: () => void;
    const all = new Promise<boolean>((resolve) => this.idleWaiters.push((wake = () => resolve(true))));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const settled = await Promise.race([all, timeout]);
    clearTimeout(timer);
    if (!settled) this.idleWaiters = this.idleWaiters.filter((waiter) => waiter !== wake);
    return settled;
  }

  flush(): Promise<void> {
    return this.writer.flush();
  }

  private emitEnd(why: "input-end" | "output-closed"): void {
    const listeners = this.endListeners.splice(0);
    for (const listener of listeners) listener(why);
  }

  private onLine(bytes: Buffer): void {
    if (this.atStreamStart) {
      this.atStreamStart = false;
      // A byte order mark once at the start of the stream (a .NET StreamWriter's default) is
      // ignored, as RFC 8259 lets a parser do: refused, the client's initialize got an error
      // without an id and the client waited for its answer. One before a later message is refused.
      if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
        bytes = bytes.subarray(3);
        if (bytes.length === 0) return;
      }
    }
    const message = classify(bytes);
    if (message.kind === "batch") this.onBatch(message.items, bytes.length);
    else this.onMessage(message, bytes.length, undefined);
  }

  private onBatch(items: unknown[], lineBytes: number): void {
    if (!this.batches || items.length === 0) {
      this.send(errorMessage(undefined, { code: ErrorCode.InvalidRequest, message: this.batches ? EMPTY_BATCH : BATCH_REFUSED }));
      return;
    }
    if (items.length > MAX_BATCH_MESSAGES) {
      this.send(
        errorMessage(undefined, {
          code: ErrorCode.InvalidRequest,
          message:
            `Invalid Request: a batch of ${items.length} messages; a batch may hold at most ${MAX_BATCH_MESSAGES} ` +
            "(send the rest in further batches or one per line); nothing in it was run",
          data: { maxBatchMessages: MAX_BATCH_MESSAGES },
        }),
      );
      return;
    }
    const batch: BatchReply = new BatchReply((texts: readonly string[], answered: readonly Answered[]) => {
      this.openBatches.delete(batch);
      if (texts.length > 0) this.writer.writeBatch(texts, () => batch.leave());
      else batch.leave();
      for (const { id } of answered) this.unsent.delete(id);
      for (const { id, method } of answered) this.handlers.responded?.(id, method);
    });
    // A waiting element is charged its own size, measured only if it has to wait: a share of the
    // line would let one large request among many tiny elements (invalid ones, pings,
    // notifications, none of which wait) hold the whole line while charged a thousandth of it.
    this.openBatches.add(batch);
    for (const item of items) this.onMessage(classifyValue(item), () => elementBytes(item, lineBytes), batch);
    batch.close();
  }

  /**
   * For the end of a shutdown: a batch still waiting for a request that did not settle once
   * aborted sends what it holds (the others' answers and shutdown errors), not nothing.
   * Returns how many were sent so.
   */
  sendOpenBatches(): number {
    let sent = 0;
    for (const batch of [...this.openBatches]) if (batch.sendNow()) sent += 1;
    return sent;
  }

  /** `bytes`: the message's size in the waiting queue's budget (a function when it costs work to know). */
  private onMessage(message: Message, bytes: number | (() => number), batch: BatchReply | undefined): void {
    switch (message.kind) {
      case "invalid": {
        // An id in use by a request read earlier (or earlier in this batch) is left out, as for
        // a well-formed duplicate: with it, that request would get two responses.
        const clash = message.id !== undefined && (this.isInFlight(message.id) || (batch !== undefined && !batch.claim(message.id)));
        this.reply(batch, errorMessage(clash ? undefined : message.id, message.error.toObject()));
        return;
      }
      case "response":
        // We send no requests yet, so every response is to an unknown id: dropped.
        return;
      case "dropped":
        this.options.logger.debug("malformed notification dropped", { method: cutAt(message.method, 100), reason: message.reason });
        return;
      case "notification":
        try {
          this.handlers.notification(message.method, message.params);
        } catch (error) {
          this.options.logger.warn("notification handler failed", { method: message.method, error: describe(error) });
        }
        return;
      case "request":
        this.onRequest(message.id, message.method, message.params, bytes, batch);
        return;
    }
  }

  private onRequest(id: RequestId, method: string, params: Params | undefined, size: number | (() => number), batch: BatchReply | undefined): void {
    const ofThisBatch = batch !== undefined && !batch.claim(id);
    if (ofThisBatch || this.isInFlight(id)) {
      // Answered without the id: with it, the other request would get two responses.
      this.reply(
        batch,
        errorMessage(undefined, {
          code: ErrorCode.InvalidRequest,
          message: `Invalid Request: this id is already in use by ${ofThisBatch ? "another request of this batch" : "a request in flight"}`,
          data: { id },
        }),
      );
      return;
    }
    // Behind the limit, behind others already waiting (order is kept), or past this turn's
    // budget; ping never waits.
    const full = this.inFlight.size >= this.maxInFlight;
    if ((full || this.waiting.size > 0 || this.pastTurnBudget()) && method !== "ping") {
      const bytes = typeof size === "number" ? size : size();
      // Only a queue of requests that wait for a slot is refused when full; with slots free the
      // queue waits only for the loop's next turn, and reading pauses while it is long (backlogged).
      if ((full && this.waitingBytes + bytes > this.maxWaitingBytes) || this.waitingBytes > BACKLOG_HARD_FACTOR * this.maxWaitingBytes) {
        this.refuseBusy(id, batch);
        return;
      }
      this.busy = false;
      this.waiting.set(id, { method, params, bytes, batch });
      this.waitingBytes += bytes;
      batch?.expect();
      return;
    }
    batch?.expect();
    this.run(id, method, params, batch);
  }

  private run(id: RequestId, method: string, params: Params | undefined, batch: BatchReply | undefined): void {
    if (this.turnStartedAt < 0) {
      this.turnStartedAt = monotonicMs();
      setImmediate(() => this.nextTurn());
    }
    this.turnStarts++;
    const entry = new InFlight(id, method, batch);
    let outcome: RequestResult | Promise<RequestResult>;
    try {
      outcome = this.handlers.request(method, params, { id, method, abort: entry, holder: batch ?? entry });
    } catch (error) {
      this.respondError(entry, error);
      return;
    }
    if (!(outcome instanceof Promise)) {
      this.respond(entry, outcome);
      return;
    }
    this.inFlight.set(id, entry);
    // Slots are full now: what waits, waits for a slot, and reading must go on (see backlogged).
    if (this.inFlight.size === this.maxInFlight) this.resumeReading();
    outcome.then(
      (result) => {
        this.settled(entry.id);
        if (!entry.cancelled) this.respond(entry, result);
        else this.unanswered(entry);
      },
      (error: unknown) => {
        this.settled(entry.id);
        if (!entry.cancelled) this.respondError(entry, error);
        else this.unanswered(entry);
      },
    );
  }

  /** A cancelled request gets no response: its place in a batch is given up, and what it held goes back. */
  private unanswered(entry: InFlight): void {
    entry.batch?.skip();
    entry.leave();
  }

  private settled(id: RequestId): void {
    this.inFlight.delete(id);
    if (this.waiting.size > 0) this.startWaiting();
    this.checkIdle();
  }

  private pastTurnBudget(): boolean {
    return this.turnStartedAt >= 0 && (this.turnStarts >= TURN_STARTS || monotonicMs() - this.turnStartedAt > TURN_BUDGET_MS);
  }

  /** The event loop has turned (signals, timers and input were heard): requests that waited for it start. */
  private nextTurn(): void {
    this.turnStartedAt = -1;
    this.turnStarts = 0;
    if (this.waiting.size > 0) this.startWaiting();
    this.resumeReading();
  }

  /**
   * Requests read ahead wait for later turns of the loop, with slots free: past a quarter of the
   * queue's budget reading stops until they are worked down. A queue of requests waiting for a
   * slot never stops reading (pings, cancellations and stdin's end must be seen; it refuses
   * past its budget instead).
   */
  private backlogged(): boolean {
    return this.inFlight.size < this.maxInFlight && this.waitingBytes > this.maxWaitingBytes / 4;
  }

  /** Reading goes on once nothing holds it back: output drained, and a backlog worked down to an eighth (or waiting for slots). */
  private resumeReading(): void {
    if (!this.accepting || this.inputEnded || this.writer.isCongested) return;
    const pausedLong = this.backlogPausedAt >= 0 && monotonicMs() - this.backlogPausedAt > BACKLOG_PAUSE_MS;
    if (this.inFlight.size >= this.maxInFlight || this.waitingBytes <= this.maxWaitingBytes / 8 || pausedLong) {
      this.backlogPausedAt = -1;
      this.input.resume();
    }
  }

  /** Starts waiting requests, oldest first, while slots are free and this turn's budget lasts. */
  private startWaiting(): void {
    // Checked before iterating: a settle calls this for every request, and walking the queue's
    // head each time cost more than the requests themselves on a long backlog.
    if (this.inFlight.size >= this.maxInFlight || this.pastTurnBudget()) return;
    for (const [id, waiting] of this.waiting) {
      if (this.inFlight.size >= this.maxInFlight || this.pastTurnBudget()) break;
      this.unqueue(id, waiting);
      this.run(id, waiting.method, waiting.params, waiting.batch);
    }
  }

  private refuseBusy(id: RequestId, batch: BatchReply | undefined): void {
    if (!this.busy) {
      this.busy = true;
      this.options.logger.warn("requests waiting for a slot fill the queue; refusing new ones until some start", {
        running: this.inFlight.size,
        waiting: this.waiting.size,
        waitingBytes: this.waitingBytes,
      });
    }
    this.reply(
      batch,
      errorMessage(id, {
        code: ErrorCode.ServerUnavailable,
        message:
          `Server busy: ${this.inFlight.size} requests are running and ${this.waiting.size} wait to start, as many as it holds. ` +
          "Send this one again when some have been answered.",
        data: { reason: "busy", maxInFlight: this.maxInFlight, maxWaitingBytes: this.maxWaitingBytes, waitingBytes: this.waitingBytes },
      }),
    );
  }

  private unqueue(id: RequestId, waiting: Waiting): void {
    this.waiting.delete(id);
    this.waitingBytes -= waiting.bytes;
  }

  private checkIdle(): void {
    if (this.pendingCount === 0 && this.idleWaiters.length > 0) {
      // After this tick's response is written: drain() callers then flush it.
      const waiters = this.idleWaiters.splice(0);
      queueMicrotask(() => {
        for (const wake of waiters) wake();
      });
    }
  }

  private respond(entry: InFlight, result: RequestResult): void {
    this.answer(entry.id, entry.method, entry.batch, resultMessage(entry.id, result), entry);
  }

  private respondError(entry: InFlight, error: unknown): void {
    let rpc: RpcError;
    if (error instanceof RpcError) rpc = error;
    else {
      this.options.logger.error("request handler failed", { method: entry.method, error: describe(error) });
      rpc = new RpcError(ErrorCode.InternalError, "Internal error: the server failed to handle this request; see the server log");
    }
    this.answer(entry.id, entry.method, entry.batch, errorMessage(entry.id, rpc.toObject()), entry);
  }

  /** The response to a request; `entry` when it ran (what it holds goes back once the response has left). */
  private answer(id: RequestId, method: string, batch: BatchReply | undefined, message: OutgoingMessage, entry?: InFlight): void {
    if (batch !== undefined) {
      // The client has no answer yet: the id stays taken until the array is written.
      if (!batch.isSent) this.unsent.add(id);
      batch.answer(this.serialize(message), { id, method });
      // Its members reserve through the batch, which gives back once the array has left.
      entry?.leave();
      return;
    }
    const onLeft = entry?.onLeft;
    this.send(message, onLeft);
    // Holding nothing now, it is done: what it reserves later (a wait it did not await) goes back at once.
    if (onLeft === undefined) entry?.leave();
    this.handlers.responded?.(id, method);
  }

  /** An answer to a message that never started (invalid, a duplicate id, the queue full). */
  private reply(batch: BatchReply | undefined, message: OutgoingMessage): void {
    if (batch !== undefined) batch.add(this.serialize(message));
    else this.send(message);
  }

  /** Writes a message; `onWritten` runs once it has left (or never will). */
  private send(message: OutgoingMessage, onWritten?: () => void): void {
    const text = this.writer.closed ? undefined : this.serialize(message);
    if (text !== undefined) this.writer.writeSerialized(text, onWritten);
    else onWritten?.();
  }

  /** A message's text; one that cannot be serialized is replaced by an internal error (or dropped if it has no id). */
  private serialize(message: OutgoingMessage): string | undefined {
    try {
      return serializeMessage(message);
    } catch (error) {
      this.options.logger.error("a message could not be serialized", { error: describe(error) });
      if (!("id" in message) || message.id === undefined) return undefined;
      return serializeMessage(
        errorMessage(message.id, { code: ErrorCode.InternalError, message: "Internal error: the response could not be serialized" }),
      );
    }
  }
}

export class CancelledError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "CancelledError";
  }
}

export class ShutdownError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "ShutdownError";
  }
}

/**
 * A batch element's size as JSON. JSON.parse takes nesting that JSON.stringify cannot (it
 * overflows the stack, past ~10 000 levels), and a throw here ended the process: such an
 * element is charged the whole line, which holds it.
 */
function elementBytes(item: unknown, lineBytes: number): number {
  try {
    return Buffer.byteLength(JSON.stringify(item));
  } catch {
    return lineBytes;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? truncate(`${error.name}: ${error.message}`, 500) : truncate(String(error), 500);
}
