/**
 * The responses to one JSON-RPC batch. JSON-RPC 2.0 answers a batch with one array
 * holding a response for each of its requests (none for its notifications), sent once
 * all of them are answered (an array with nothing in it is not sent at all). MCP
 * 2025-03-26 requires receiving batches; later revisions removed them.
 */
import type { RequestId } from "./jsonrpc.js";

export interface Answered {
  readonly id: RequestId;
  readonly method: string;
}

export class BatchReply {
  /** The serialized responses, in the order they were made. */
  private readonly texts: string[] = [];
  private readonly answered: Answered[] = [];
  /** Ids of this batch's requests: a second use would make its responses ambiguous. */
  private readonly ids = new Set<RequestId>();
  /** Requests started or waiting, not yet answered (or cancelled). */
  private open = 0;
  /** Elements are still being read: the array cannot be complete yet. */
  private reading = true;

  constructor(private readonly send: (texts: readonly string[], answered: readonly Answered[]) => void) {}

  /** Claims an id for one of this batch's requests; false when another element already has it. */
  claim(id: RequestId): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    return true;
  }

  /** A request of this batch was started or queued: the array waits for its response. */
  expect(): void {
    this.open += 1;
  }

  /** A response that answers no started request (an invalid element, a refusal). */
  add(text: string | undefined): void {
    if (text !== undefined) this.texts.push(text);
  }

  /** The response of a started request (`text` undefined: it could not be serialized and had no id to answer). */
  answer(text: string | undefined, answered: Answered): void {
    this.add(text);
    this.answered.push(answered);
    this.settle();
  }

  /** A started request that gets no response (cancelled by the client). */
  skip(): void {
    this.settle();
  }

  /** Every element has been read; sends the array now if nothing is still running. */
  close(): void {
    this.reading = false;
    this.finishIfDone();
  }

  private settle(): void {
    this.open -= 1;
    this.finishIfDone();
  }

  private finishIfDone(): void {
    if (this.reading || this.open > 0) return;
    // Once only: a late call finds the batch sent.
    this.reading = true;
    this.send(this.texts, this.answered);
  }
}
