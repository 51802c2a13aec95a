/**
 * Calls that change the same file run one after another. An edit reads a file, works on it and
 * writes it back: two at once would both read the old text, and the second write would undo
 * the first while both report success. Only this server's own calls are ordered so; another
 * program writing meanwhile is caught (where it can be) by edit_file's re-read.
 */
export class PathLocks {
  /** Per path, the promise the next caller waits for; gone when nobody holds or waits. */
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `run` holding every path's lock, taken in sorted order so two callers never wait on each other. */
  async hold<T>(paths: readonly string[], run: () => Promise<T>): Promise<T> {
    const releases: Array<() => void> = [];
    try {
      for (const path of [...new Set(paths)].sort()) releases.push(await this.take(path));
      return await run();
    } finally {
      for (const release of releases) release();
    }
  }

  private async take(path: string): Promise<() => void> {
    const previous = this.tails.get(path) ?? Promise.resolve();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => held);
    this.tails.set(path, tail);
    await previous;
    return () => {
      release();
      if (this.tails.get(path) === tail) this.tails.delete(path);
    };
  }
}
