/**
 * Writes whole messages: one `JSON.stringify` plus a newline, one `write` each, so
 * lines never interleave. It reports congestion so the reader can stop reading
 * while the client is slow to drain (backpressure end to end), and it turns a
 * closed stdout (EPIPE) into an orderly `closed` event instead of a crash.
 */
import type { Writable } from "node:stream";
import type { OutgoingMessage } from "./jsonrpc.js";

export interface WriterEvents {
  /** The output accepts more again after congestion. */
  drain(): void;
  /** The output is gone (EPIPE, closed, or another write error). */
  closed(error: Error | undefined): void;
}

export class MessageWriter {
  private congested = false;
  private isClosed = false;
  private corked = false;

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
    const line = JSON.stringify(message) + "\n";
    // Messages written in the same tick leave in one system call (writev); each is still one whole write.
    if (!this.corked) {
      this.corked = true;
      this.output.cork();
      process.nextTick(this.uncork);
    }
    if (!this.output.write(line)) this.congested = true;
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.output.uncork();
  };

  /** Resolves once everything written so far has been handed to the OS. */
  flush(): Promise<void> {
    if (this.isClosed || !this.output.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.output.off("drain", done);
        this.output.off("close", done);
        resolve();
      };
      this.output.on("drain", done);
      this.output.on("close", done);
    });
  }

  private close(error: Error | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.events.closed(error);
  }
}
