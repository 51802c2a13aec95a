/**
 * The abort state of one request, with the AbortSignal made only when someone asks
 * for it. An AbortController costs a few microseconds to make and to listen on, and
 * most calls are never aborted and run plugins that never read their signal: the
 * connection, the dispatcher and the deadline listen here instead, with plain
 * callbacks, and a plugin that reads `ctx.signal` gets a real signal that is already
 * aborted if the call was.
 */
export interface CallAbort {
  readonly aborted: boolean;
  /** Why the call was aborted (undefined until it is). */
  readonly reason: unknown;
  /** An AbortSignal that fires with this call; made on first use. */
  readonly signal: AbortSignal;
  /** Aborts the call once; later calls are ignored. */
  abort(reason: unknown): void;
  /** Calls `listener` once when the call is aborted (at once if it already is); returns its remover. */
  onAbort(listener: (reason: unknown) => void): () => void;
}

type Listener = (reason: unknown) => void;

const noop = (): void => undefined;

export class LazyAbort implements CallAbort {
  private controller: AbortController | undefined;
  private listeners: Listener[] | undefined;
  private isAborted = false;
  private abortReason: unknown = undefined;

  /** A LazyAbort that follows an existing signal for its whole life (tests and callers that only have a signal). */
  static following(signal: AbortSignal): LazyAbort {
    const scope = new LazyAbort();
    if (signal.aborted) scope.abort(signal.reason);
    else signal.addEventListener("abort", () => scope.abort(signal.reason), { once: true });
    return scope;
  }

  get aborted(): boolean {
    return this.isAborted;
  }

  get reason(): unknown {
    return this.abortReason;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.isAborted) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.isAborted) return;
    this.isAborted = true;
    // An AbortSignal aborted without a reason carries an AbortError; keep that contract.
    this.abortReason = reason === undefined ? new DOMException("This operation was aborted", "AbortError") : reason;
    const listeners = this.listeners;
    this.listeners = undefined;
    try {
      if (listeners !== undefined) {
        for (const listener of listeners) {
          // As with an AbortSignal, one failing listener neither stops the others nor the abort.
          try {
            listener(this.abortReason);
          } catch (error) {
            queueMicrotask(() => {
              throw error;
            });
          }
        }
      }
    } finally {
      this.controller?.abort(this.abortReason);
    }
  }

  onAbort(listener: Listener): () => void {
    if (this.isAborted) {
      listener(this.abortReason);
      return noop;
    }
    (this.listeners ??= []).push(listener);
    return () => {
      const index = this.listeners?.indexOf(listener) ?? -1;
      if (index !== -1) this.listeners!.splice(index, 1);
    };
  }
}
