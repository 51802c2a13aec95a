/**
 * Writes whole messages: one `JSON.stringify` plus a newline each, never split, so
 * lines never interleave. The messages of one tick are joined and leave in one write
 * (a burst of small responses costs one stream write, not one buffered chunk each). It
 * reports congestion so the reader can stop reading while the client is slow to drain
 * (backpressure end to end), and it turns a closed stdout (EPIPE) into an orderly
 * `closed` event instead of a crash.
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

  constructor(
    private readonly output: Writable,
    private readonly events: WriterEvents,
  ) {
    output.on("drain", () => {
      if (!this.congested) return;
      this.congested = false;
      this.events.drain();
    });
    output.on("error", (error: Error) => this.close(error));
    output.on("close", () => this.close(undefined));
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** True while the output's buffer is above its high-water mark. */
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

  /** Writes one message already serialized by serializeMessage. */
  writeSerialized(text: string): void {
    if (this.isClosed) return;
    this.enqueue(text + "\n");
  }

  /**
   * Writes a batch response: the given messages, each already serialized (serializeMessage),
   * as one JSON array on one line.
   */
  writeBatch(serialized: readonly string[]): void {
    if (this.isClosed) return;
    this.enqueue(`[${serialized.join(",")}]\n`);
  }

  private enqueue(line: string): void {
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
    if (this.isClosed) return;
    if (!this.output.write(text)) this.congested = true;
  };

  /** Resolves once everything written so far has been handed to the OS (or the output is gone). */
  flush(): Promise<void> {
    this.writePending();
    if (this.isClosed || this.output.writableLength === 0) return Promise.resolve();
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
