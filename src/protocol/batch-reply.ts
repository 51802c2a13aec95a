/**
 * The responses to one JSON-RPC batch. JSON-RPC 2.0 answers a batch with one array
 * holding a response for each of its requests (none for its notifications), sent once
 * all of them are answered (an array with nothing in it is not sent at all). MCP
 * 2025-03-26 requires receiving batches; later revisions removed them.
 */
import { ErrorCode, errorMessage, type RequestId } from "./jsonrpc.js";
import { serializeMessage } from "./writer.js";
import { KeptUntilSent, type BudgetHolder } from "../util/byte-budget.js";

/**
 * The most UTF-16 units a batch's array may hold: the responses of one batch must fit in one
 * string (V8 caps a string near 2^29 units), where single responses each have their own.
 */
export const DEFAULT_MAX_BATCH_REPLY_CHARS = 256 * 1024 * 1024;

export interface Answered {
  readonly id: RequestId;
  readonly method: string;
}

/**
 * Its requests share one budget holder (util/byte-budget.ts): their answers leave together, in the
 * array, so what they reserved goes back only once the array has been written out (`leave`).
 */
export class BatchReply implements BudgetHolder {
  reserved = 0;
  readonly shared = true;
  private readonly kept = new KeptUntilSent();

  /** The serialized responses, in the order they were made. */
  private readonly texts: string[] = [];
  private readonly answered: Answered[] = [];
  /** Ids of this batch's requests: a second use would make its responses ambiguous. */
  private readonly ids = new Set<RequestId>();
  /** Requests started or waiting, not yet answered (or cancelled). */
  private open = 0;
  /** Elements are still being read: the array cannot be complete yet. */
  private reading = true;
  private sent = false;
  /** UTF-16 units in `texts`, with a comma each. */
  private chars = 0;

  constructor(
    private readonly send: (texts: readonly string[], answered: readonly Answered[]) => void,
    private readonly maxChars = DEFAULT_MAX_BATCH_REPLY_CHARS,
  ) {}

  /** The array was written (or given up on at shutdown): what comes later is not sent. */
  get isSent(): boolean {
    return this.sent;
  }

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
  add(text: string | undefined, id?: RequestId): void {
    if (text === undefined) return;
    if (this.chars + text.length + 1 > this.maxChars) {
      // Too big for the array: the request is answered with why (its effects, if any, are audited).
      const fallback = serializeMessage(
        errorMessage(id, {
          code: ErrorCode.InternalError,
          message:
            `Internal error: this response (${text.length} characters) would make the batch's reply larger than ${this.maxChars} characters; ` +
            "send requests with large results on their own line",
        }),
      );
      if (this.chars + fallback.length + 1 > this.maxChars) return;
      text = fallback;
    }
    this.texts.push(text);
    this.chars += text.length + 1;
  }

  /** The response of a started request (`text` undefined: it could not be serialized and had no id to answer). */
  answer(text: string | undefined, answered: Answered): void {
    this.add(text, answered.id);
    this.answered.push(answered);
    this.settle();
  }

  /** A started request that gets no response (cancelled by the client). */
  skip(): void {
    this.settle();
  }

  hold(release: () => void): void {
    this.kept.keep(release);
  }

  /** The array has been written out, or never will be: what its answers held goes back. */
  leave(): void {
    this.kept.sentOut();
  }

  /** Every element has been read; sends the array now if nothing is still running. */
  close(): void {
    this.reading = false;
    this.finishIfDone();
  }

  /**
   * Sends the array now with what it holds, whatever is still running (a shutdown that cannot
   * wait longer); what settles later is not sent. False when it was sent already.
   */
  sendNow(): boolean {
    if (this.sent) return false;
    this.sent = true;
    this.send(this.texts, this.answered);
    return true;
  }

  private settle(): void {
    this.open -= 1;
    this.finishIfDone();
  }

  private finishIfDone(): void {
    if (this.reading || this.open > 0 || this.sent) return;
    this.sent = true;
    this.send(this.texts, this.answered);
  }
}
