/**
 * Writes whole messages: one `JSON.stringify` plus a newline each, never split, so
 * lines never interleave. The messages of one tick are joined and leave in one write
 * (a burst of small responses costs one stream write, not one buffered chunk each). It
 * reports congestion so the reader can stop reading while the client is slow to drain
 * (backpressure end to end), and it turns a closed stdout (EPIPE) into an orderly
 * `closed` event instead of a crash.
 *
 * While the output is congested, lines wait here and go on `drain`, a high-water mark's
 * worth at a time: the stream is never handed more. Handed everything, it buffered every
 * response of a slow client and flushed them in one writev, which Node refuses past 2 GiB
 * (ENOBUFS): 30 parallel reads of a 10 MiB file ended the session.
 *
 * A line may come with `onWritten`, called once the stream has written it out (or never will:
 * the output is gone): the memory a large response holds is then free, and a call's reserved
 * budget goes back (util/byte-budget.ts).
 */
import type { Writable } from "node:stream";
import type { OutgoingMessage } from "./jsonrpc.js";
import { jsonTextOf } from "../util/json-text.js";

export interface WriterEvents {
  /** The output accepts more again after congestion. */
  drain(): void;
  /** The output is gone (EPIPE, closed, or another write error). */
  closed(error: Error | undefined): void;
}

export class MessageWriter {
  private congested = false;
  private isClosed = false;
  /** Whole lines written this tick, not yet handed to the stream. */
  private pending = "";
  /** The `onWritten` callbacks of the pending lines (made only when a line has one). */
  private pendingDone: (() => void)[] | undefined;
  /** Whole lines held while the output is congested, oldest first. */
  private held: string[] = [];
  /** The `onWritten` callbacks of held lines, by index in `held` (made only when one has one). */
  private heldDone: Map<number, () => void> | undefined;
  /** Callbacks handed to the stream with a write and not yet called. */
  private readonly inStream = new Set<() => void>();
  /** Called once the held lines are all handed to the stream (flush waits on it). */
  private onHeldEmpty: (() => void)[] = [];

  constructor(
    private readonly output: Writable,
    private readonly events: WriterEvents,
  ) {
    output.on("drain", () => {
      if (!this.congested) return;
      this.congested = false;
      this.writeHeld();
      if (!this.congested) this.events.drain();
    });
    output.on("error", (error: Error) => this.close(error));
    output.on("close", () => this.close(undefined));
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** True while the output's buffer is above its high-water mark (lines are then held here). */
  get isCongested(): boolean {
    return this.congested;
  }

  /**
   * Serializes and writes one message. Throws only when the message cannot be
   * serialized (the caller answers with an internal error instead).
   */
  write(message: OutgoingMessage): void {
    if (this.isClosed) return;
    this.enqueue(serializeMessage(message) + "\n");
  }

  /** Writes one message already serialized by serializeMessage; `onWritten` as above. */
  writeSerialized(text: string, onWritten?: () => void): void {
    if (this.isClosed) {
      onWritten?.();
      return;
    }
    this.enqueue(text + "\n", onWritten);
  }

  /**
   * Writes a batch response: the given messages, each already serialized (serializeMessage),
   * as one JSON array on one line.
   */
  writeBatch(serialized: readonly string[], onWritten?: () => void): void {
    if (this.isClosed) {
      onWritten?.();
      return;
    }
    this.enqueue(`[${serialized.join(",")}]\n`, onWritten);
  }

  private enqueue(line: string, onWritten?: () => void): void {
    if (this.congested) {
      if (onWritten !== undefined) (this.heldDone ??= new Map()).set(this.held.length, onWritten);
      this.held.push(line);
      return;
    }
    if (onWritten !== undefined) (this.pendingDone ??= []).push(onWritten);
    if (this.pending === "") {
      this.pending = line;
      process.nextTick(this.writePending);
    } else {
      this.pending += line;
    }
    // Past the output's high-water mark the lines go now: congestion is then known in this
    // tick, so the reader pauses before it takes the next chunk, and the joined text stays small.
    if (this.pending.length + this.output.writableLength >= this.output.writableHighWaterMark) this.writePending();
  }

  private readonly writePending = (): void => {
    const text = this.pending;
    if (text === "") return;
    this.pending = "";
    const done = this.pendingDone;
    this.pendingDone = undefined;
    if (this.isClosed) {
      if (done !== undefined) for (const callback of done) callback();
      return;
    }
    if (!this.output.write(text, this.streamCallback(done))) this.congested = true;
  };

  /** The stream's write callback for these `onWritten`s: each is called once, on success or error (the output is gone then). */
  private streamCallback(done: readonly (() => void)[] | undefined): ((error?: Error | null) => void) | undefined {
    if (done === undefined || done.length === 0) return undefined;
    const all = (): void => {
      if (!this.inStream.delete(all)) return;
      for (const callback of done) callback();
    };
    this.inStream.add(all);
    return all;
  }

  /** Hands held lines to the stream, joined up to its high-water mark per write, until it is congested again. */
  private writeHeld(): void {
    const limit = this.output.writableHighWaterMark;
    const heldDone = this.heldDone;
    let next = 0;
    while (next < this.held.length && !this.congested && !this.isClosed) {
      const first = next;
      let text = this.held[next++]!;
      while (next < this.held.length && text.length + this.held[next]!.length <= limit) text += this.held[next++];
      let done: (() => void)[] | undefined;
      if (heldDone !== undefined) {
        for (let i = first; i < next; i++) {
          const callback = heldDone.get(i);
          if (callback !== undefined) (done ??= []).push(callback);
        }
      }
      if (!this.output.write(text, this.streamCallback(done))) this.congested = true;
    }
    if (heldDone !== undefined) {
      // What is still held moves to the front: its callbacks' indexes move with it.
      let moved: Map<number, () => void> | undefined;
      for (const [index, callback] of heldDone) if (index >= next) (moved ??= new Map()).set(index - next, callback);
      this.heldDone = moved;
    }
    this.held = next === this.held.length ? [] : this.held.slice(next);
    if (this.held.length === 0) for (const resolve of this.onHeldEmpty.splice(0)) resolve();
  }

  /** Resolves once everything written so far has been handed to the OS (or the output is gone). */
  async flush(): Promise<void> {
    this.writePending();
    if (this.held.length > 0 && !this.isClosed) await new Promise<void>((resolve) => this.onHeldEmpty.push(resolve));
    if (this.isClosed || this.output.writableLength === 0) return;
    return new Promise((resolve) => {
      const done = () => {
        this.output.off("close", done);
        resolve();
      };
      this.output.on("close", done);
      // Writes complete in order: an empty one's callback runs once all before it are done.
      this.output.write("", done);
    });
  }

  private close(error: Error | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    // Nothing held can be written any more: a flush waiting on it is over, and what waited for
    // a line to leave (a reserved budget) waits no longer.
    this.held = [];
    const waiting = [...(this.pendingDone ?? []), ...(this.heldDone?.values() ?? [])];
    const streamed = [...this.inStream];
    this.pending = "";
    this.pendingDone = undefined;
    this.heldDone = undefined;
    for (const callback of waiting) callback();
    // Each runs its lines' callbacks once, whether or not the stream calls it too.
    for (const all of streamed) all();
    for (const resolve of this.onHeldEmpty.splice(0)) resolve();
    this.events.closed(error);
  }
}

/**
 * JSON.stringify(message), reusing a result's text when an earlier layer already made it
 * (see util/json-text.ts). A response is `{ jsonrpc, id, result }` in that order, so the
 * two forms are the same bytes.
 */
export function serializeMessage(message: OutgoingMessage): string {
  if ("result" in message) {
    const text = jsonTextOf(message.result);
    if (text !== undefined) return `{"jsonrpc":"2.0","id":${JSON.stringify(message.id)},"result":${text}}`;
  }
  return JSON.stringify(message);
}
