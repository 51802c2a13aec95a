/**
 * A budget of bytes shared by the calls in flight: the memory their results will take until
 * their responses have left. A call that means to return a large result (a file's content)
 * reserves its size first and waits, in arrival order, while others hold the budget; what it
 * holds goes back when its response has been written out (or will never be). Without it, a
 * client asking for 30 reads of 10 MiB at once made the server hold ~2.4 GiB, and 256 (the
 * in-flight limit) would exhaust the heap.
 *
 * - A reservation larger than the whole budget is cut to the budget: it runs alone, not never.
 * - A holder that already holds part of the budget is never made to wait for more (it would wait
 *   for its own release, which comes only after its response): one call's may overdraw; a shared
 *   one (a batch's, whose members are many) gets what fits now or is refused, since batches
 *   that overdrew would together hold the budget many times over.
 * - A wait ends early when the call is aborted (cancelled, timed out, shut down): the reservation
 *   then rejects with the abort's reason, and nothing is held.
 */
import { asError, type CallAbort } from "./call-abort.js";

/** Where a call's reservations are kept until its response has left. */
export interface BudgetHolder {
  /** Keeps `release` until the response has left, then calls it (at once when that has happened already). */
  hold(release: () => void): void;
  /** Bytes this holder has reserved so far (kept by the budget). */
  reserved: number;
  /**
   * Several calls reserve through it (a batch's, whose answers leave together): it may not overdraw
   * past the budget, where one call's second reservation may (waiting could only be for itself).
   */
  readonly shared?: boolean;
}

/** A reservation a shared holder cannot have: what it holds already and this would pass the budget. */
export class BudgetExceededError extends Error {
  readonly code = "RESULT_MEMORY_EXCEEDED";
  constructor(message: string) {
    super(message);
    this.name = "BudgetExceededError";
  }
}

/**
 * The releases kept for one response (a request's, or a batch's array) until it has left the
 * process; one kept after that goes back at once. What a BudgetHolder's `hold` keeps.
 */
export class KeptUntilSent {
  private releases: (() => void)[] | undefined;
  private sent = false;

  /** Whether anything is kept (a response that keeps nothing needs no word when it leaves). */
  get keeping(): boolean {
    return this.releases !== undefined;
  }

  keep(release: () => void): void {
    if (this.sent) release();
    else (this.releases ??= []).push(release);
  }

  /** The response has left, or never will: what was kept goes back, once. */
  sentOut(): void {
    if (this.sent) return;
    this.sent = true;
    const releases = this.releases;
    this.releases = undefined;
    if (releases !== undefined) for (const release of releases) release();
  }
}

/** Shared by every response that left keeping nothing (made per request only when one keeps something). */
export const SENT_KEEPING_NOTHING = new KeptUntilSent();
SENT_KEEPING_NOTHING.sentOut();

interface Waiter {
  readonly bytes: number;
  readonly holder: BudgetHolder;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  readonly scope: CallAbort | undefined;
  readonly onAbort: ((reason: unknown) => void) | undefined;
  removeAbort: (() => void) | undefined;
}

export interface BudgetStatus {
  readonly limitBytes: number;
  readonly reservedBytes: number;
  readonly waiting: number;
}

export class ByteBudget {
  private used = 0;
  private readonly queue: Waiter[] = [];

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`a byte budget must be a positive integer, got ${limit}`);
  }

  status(): BudgetStatus {
    return { limitBytes: this.limit, reservedBytes: this.used, waiting: this.queue.length };
  }

  /**
   * Reserves `bytes` (cut to the budget) for `holder`: resolves once they are, at once when they
   * fit and nobody waits before, or when `holder` holds some already. Rejects when `scope` aborts first.
   */
  reserve(bytes: number, holder: BudgetHolder, scope?: CallAbort): Promise<void> {
    // NaN would compare false with everything: queued, never woken, and holding up all behind it.
    if (typeof bytes !== "number" || Number.isNaN(bytes)) return Promise.reject(new RangeError(`a reservation needs a number of bytes, got ${String(bytes)}`));
    const amount = Math.min(Math.max(0, Math.ceil(bytes)), this.limit);
    if (amount === 0) return Promise.resolve();
    if (scope?.aborted === true) return Promise.reject(asError(scope.reason));
    if (this.overdraws(holder, amount)) return Promise.reject(this.exceeded(holder, amount));
    if (this.mayNotWait(holder, amount)) return Promise.reject(this.inUse(holder, amount));
    if (holder.reserved > 0 || (this.queue.length === 0 && this.used + amount <= this.limit)) {
      this.grant(amount, holder);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        bytes: amount,
        holder,
        resolve,
        reject,
        scope,
        onAbort: scope === undefined ? undefined : (reason) => this.drop(waiter, reason),
        removeAbort: undefined,
      };
      if (scope !== undefined) waiter.removeAbort = scope.onAbort(waiter.onAbort!);
      this.queue.push(waiter);
    });
  }

  private grant(amount: number, holder: BudgetHolder): void {
    this.used += amount;
    holder.reserved += amount;
    let released = false;
    holder.hold(() => {
      if (released) return;
      released = true;
      this.used -= amount;
      holder.reserved -= amount;
      this.wake();
    });
  }

  /**
   * Grants waiting reservations in order while the first fits (a large one is not overtaken by
   * small ones), and anywhere in the line those of a holder that holds some by now: a call that
   * waited twice at once (its second wait queued behind another's) would otherwise wait for its
   * own response, and the one between them for it.
   */
  /** A shared holder (a batch) that holds some already and would pass the budget with `amount` more. */
  private overdraws(holder: BudgetHolder, amount: number): boolean {
    return holder.shared === true && holder.reserved > 0 && holder.reserved + amount > this.limit;
  }

  /**
   * A shared holder that holds some already and for which `amount` does not fit now: it may not
   * wait (what it holds goes back only when all its members are done, so two batches each waiting
   * for the other's room would wait until their deadlines), and it may not overdraw (each open
   * batch could then hold the whole budget on top of the others').
   */
  private mayNotWait(holder: BudgetHolder, amount: number): boolean {
    return holder.shared === true && holder.reserved > 0 && this.used + amount > this.limit;
  }

  private inUse(holder: BudgetHolder, amount: number): BudgetExceededError {
    return new BudgetExceededError(
      `this batch's results hold ${holder.reserved} bytes and the server's result memory (${this.limit} bytes, --max-result-memory) ` +
        `is in use by other calls (${this.used - holder.reserved} bytes), too much for ${amount} more; send large reads on their own line, not in a batch`,
    );
  }

  private exceeded(holder: BudgetHolder, amount: number): BudgetExceededError {
    return new BudgetExceededError(
      `this batch's results already hold ${holder.reserved} bytes and ${amount} more would pass the server's result memory ` +
        `(${this.limit} bytes, --max-result-memory); send large reads on their own line, not in a batch`,
    );
  }

  private wake(): void {
    let index = 0;
    while (index < this.queue.length) {
      const waiter = this.queue[index]!;
      if (waiter.holder.reserved === 0 && (index > 0 || this.used + waiter.bytes > this.limit)) {
        index += 1;
        continue;
      }
      this.queue.splice(index, 1);
      waiter.removeAbort?.();
      if (this.overdraws(waiter.holder, waiter.bytes)) {
        waiter.reject(this.exceeded(waiter.holder, waiter.bytes));
        continue;
      }
      if (this.mayNotWait(waiter.holder, waiter.bytes)) {
        waiter.reject(this.inUse(waiter.holder, waiter.bytes));
        continue;
      }
      this.grant(waiter.bytes, waiter.holder);
      waiter.resolve();
      // What was granted may let the new first go, or holds for a holder waiting further on.
      index = 0;
    }
  }

  private drop(waiter: Waiter, reason: unknown): void {
    const index = this.queue.indexOf(waiter);
    if (index < 0) return;
    this.queue.splice(index, 1);
    waiter.reject(asError(reason));
    // The first in line may have been what blocked the others.
    if (index === 0) this.wake();
  }
}
