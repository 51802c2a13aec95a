/**
 * When a search must stop: a little before the call's deadline, so that what it found is
 * returned (`complete: false`) instead of lost to the dispatcher's timeout, or at once when
 * the call's signal fires (cancelled, shut down). Checked between steps (`reason()`), and
 * raced against each wait (`race()`), so one read that hangs (a stale network mount) does
 * not carry the search past its deadline.
 */

export type StopReason = "time_limit" | "cancelled";

/** Time kept back before the deadline: a tenth of the call's time, at least 50 ms, at most 1 s. */
export function stopMarginMs(budgetMs: number): number {
  return Math.min(1000, Math.max(50, budgetMs / 10));
}

export class SearchStop {
  /** When the search stops, on the clock `now` reads. */
  readonly stopAt: number;
  private readonly stopped: Promise<StopReason>;
  private fire: ((reason: StopReason) => void) | undefined;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly onAbort: () => void;
  private readonly controller = new AbortController();

  /**
   * @param deadline when the dispatcher times the call out, on `now`'s clock (epoch ms: `ctx.deadline`)
   * @param now the clock (tests pass one they move)
   */
  constructor(
    private readonly callSignal: AbortSignal,
    deadline: number,
    private readonly now: () => number = Date.now,
  ) {
    const left = deadline - now();
    this.stopAt = deadline - stopMarginMs(left);
    this.stopped = new Promise<StopReason>((resolve) => {
      this.fire = (reason) => {
        this.controller.abort();
        resolve(reason);
      };
    });
    this.onAbort = () => this.fire?.("cancelled");
    // A signal that has fired already sends no event: the stop is made stopped.
    if (callSignal.aborted) this.onAbort();
    else callSignal.addEventListener("abort", this.onAbort, { once: true });
    // No timer for a call without a deadline (Infinity), nor one too far off for a timer.
    const wait = this.stopAt - now();
    if (Number.isFinite(wait) && wait < 2 ** 31 - 1) {
      // Not unref'd: a search waiting on a read that never ends has only this timer to end it (dispose clears it).
      this.timer = setTimeout(() => this.fire?.("time_limit"), Math.max(0, wait));
    }
  }

  /** Fires when the search stops (the time is up, or the call's signal fired): a listing given it stops reading. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Why the search must stop now, or undefined: cancellation first (it ends the call as cancelled). */
  reason(): StopReason | undefined {
    if (this.callSignal.aborted) return "cancelled";
    if (this.now() < this.stopAt) return undefined;
    // The clock can say so before the timer fires (a busy event loop): `signal` must say it too.
    this.fire?.("time_limit");
    return "time_limit";
  }

  /** Waits for `work`, or for the stop, whichever comes first; `work` left behind may reject (handled here). */
  async race<T>(work: Promise<T>): Promise<{ value: T } | StopReason> {
    const reason = this.reason();
    if (reason !== undefined) {
      // Left behind unlooked at: its failure (a wait or a listing the stop ended) is no fault.
      work.catch(ignore);
      return reason;
    }
    return Promise.race([work.then((value) => ({ value })), this.stopped]);
  }

  /**
   * Clears the timer and the listener, and fires `signal`: what was given it (a wait for room
   * the clock's stop left behind before the timer fired) ends with the search. Call once it is over.
   */
  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.callSignal.removeEventListener("abort", this.onAbort);
    this.fire = undefined;
    this.controller.abort();
  }
}

const ignore = (): void => undefined;
