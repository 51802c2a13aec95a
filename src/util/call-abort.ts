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
  /**
   * As `onAbort`, for an object that handles the abort itself: the per-call dispatcher
   * watches with its own state object, so it allocates no listener or remover closure.
   */
  watch(watcher: AbortWatcher): void;
  /** Stops watching; a watcher that is not watching is ignored. */
  unwatch(watcher: AbortWatcher): void;
}

export interface AbortWatcher {
  abortFired(reason: unknown): void;
}

type Listener = (reason: unknown) => void;
type Watcher = Listener | AbortWatcher;

const noop = (): void => undefined;

export class LazyAbort implements CallAbort {
  private controller: AbortController | undefined;
  // Most calls have at most one watcher (the dispatcher): it takes a field, not an array.
  private single: Watcher | undefined;
  private more: Watcher[] | undefined;
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
    const watchers = this.more ?? (this.single === undefined ? undefined : [this.single]);
    this.single = undefined;
    this.more = undefined;
    try {
      if (watchers !== undefined) {
        for (const watcher of watchers) {
          // As with an AbortSignal, one failing listener neither stops the others nor the abort.
          try {
            notify(watcher, this.abortReason);
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
    this.add(listener);
    return () => this.remove(listener);
  }

  watch(watcher: AbortWatcher): void {
    if (this.isAborted) watcher.abortFired(this.abortReason);
    else this.add(watcher);
  }

  unwatch(watcher: AbortWatcher): void {
    this.remove(watcher);
  }

  // Registration order is kept: once a second watcher comes, all live in the array.
  private add(watcher: Watcher): void {
    if (this.more !== undefined) this.more.push(watcher);
    else if (this.single === undefined) this.single = watcher;
    else {
      this.more = [this.single, watcher];
      this.single = undefined;
    }
  }

  private remove(watcher: Watcher): void {
    if (this.single === watcher) {
      this.single = undefined;
      return;
    }
    const index = this.more?.indexOf(watcher) ?? -1;
    if (index !== -1) this.more!.splice(index, 1);
  }
}

function notify(watcher: Watcher, reason: unknown): void {
  if (typeof watcher === "function") watcher(reason);
  else watcher.abortFired(reason);
}

/** An abort's reason (or any rejection) as an Error: a call's aborts carry errors; anything else is wrapped. */
export function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
