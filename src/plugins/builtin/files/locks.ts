/**
 * Calls that change the same file run one after another. An edit reads a file, works on it and
 * writes it back: two at once would both read the old text, and the second write would undo
 * the first while both report success. Only this server's own calls are ordered so; another
 * program writing meanwhile is caught (where it can be) by edit_file's re-read.
 */
export class PathLocks {
  /** Per path, the promise the next caller waits for; gone when nobody holds or waits. */
  private readonly tails = new Map<string, Promise<void>>();

  /**
   * Runs `run` holding every path's lock, taken in sorted order so two callers never wait on
   * each other. A call that ends (`signal`: cancelled, timed out) while it waits stops waiting.
   */
  async hold<T>(paths: readonly string[], run: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const releases: Array<() => void> = [];
    try {
      for (const path of [...new Set(paths)].sort()) releases.push(await this.take(path, signal));
      return await run();
    } finally {
      for (const release of releases) release();
    }
  }

  private async take(path: string, signal: AbortSignal | undefined): Promise<() => void> {
    const previous = this.tails.get(path) ?? Promise.resolve();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => held);
    this.tails.set(path, tail);
    const done = (): void => {
      release();
      if (this.tails.get(path) === tail) this.tails.delete(path);
    };
    try {
      await untilReadyOrEnded(previous, signal);
    } catch (error) {
      // Its turn still comes in the chain: passed on at once when it does.
      void previous.then(done);
      throw error;
    }
    return done;
  }
}

/** Resolves with `ready`, or rejects with the signal's reason if it fires first. */
function untilReadyOrEnded(ready: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return ready;
  if (signal.aborted) return Promise.reject(reasonOf(signal));
  return new Promise<void>((resolve, reject) => {
    const ended = (): void => reject(reasonOf(signal));
    signal.addEventListener("abort", ended, { once: true });
    void ready.then(() => {
      signal.removeEventListener("abort", ended);
      resolve();
    });
  });
}

function reasonOf(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error("the call ended while it waited for the file");
}
