/**
 * A bounded queue of outcomes handed back in the order they were added, while the work
 * behind them runs at the same time. search_files reads files through it: each guarded read
 * is a handful of syscalls that mostly wait on the thread pool, so one read after another
 * left the CPU idle, yet the results must come out in the walk's order whatever read ends first.
 *
 * Two bounds: `concurrency` pieces of work run at once, and `capacity` outcomes (running or
 * finished, not yet taken) are held at most, so a slow read at the head cannot let finished
 * ones behind it pile up without limit.
 */
interface Slot<T> {
  settled: boolean;
  value?: T;
  failed?: boolean;
  error?: unknown;
  /** Settles (never rejects) when the work does; absent for a value put in as it is. */
  done?: Promise<void>;
}

export class OrderedQueue<T> {
  private readonly slots: Array<Slot<T>> = [];
  private running = 0;

  constructor(
    private readonly concurrency: number,
    private readonly capacity: number,
  ) {
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new RangeError("concurrency must be a positive integer");
    if (!Number.isSafeInteger(capacity) || capacity < concurrency) throw new RangeError("capacity must be an integer no smaller than concurrency");
  }

  /** True when nothing more may be added until the oldest outcome is taken. */
  get full(): boolean {
    return this.running >= this.concurrency || this.slots.length >= this.capacity;
  }

  get size(): number {
    return this.slots.length;
  }

  /** Queues a value that needs no work, behind the work added before it. */
  put(value: T): void {
    this.slots.push({ settled: true, value });
  }

  /**
   * Starts `work` (in the next microtask). A rejection is kept and thrown when its turn comes to be taken, never
   * left unhandled (work nobody takes any more, after a stop, may still fail).
   */
  start(work: () => Promise<T>): void {
    const slot: Slot<T> = { settled: false };
    this.running++;
    // A synchronous throw is kept like a rejection.
    slot.done = Promise.resolve()
      .then(work)
      .then(
        (value) => {
          slot.value = value;
        },
        (error: unknown) => {
          slot.failed = true;
          slot.error = error;
        },
      )
      .finally(() => {
        slot.settled = true;
        this.running--;
      });
    this.slots.push(slot);
  }

  /** Whether the oldest outcome can be taken without waiting. */
  get ready(): boolean {
    return this.slots[0]?.settled === true;
  }

  /** Settles when the oldest outcome is ready (at once when there is none, or it is). */
  waitOldest(): Promise<void> {
    return this.slots[0]?.done ?? Promise.resolve();
  }

  /** Takes the oldest outcome, which must be ready: its value, or its work's error thrown. */
  take(): T {
    const slot = this.slots[0];
    if (slot === undefined || !slot.settled) throw new Error("OrderedQueue.take: the oldest outcome is not ready");
    // Short: at most `capacity` slots, so shifting costs little.
    this.slots.shift();
    if (slot.failed === true) throw slot.error;
    return slot.value as T;
  }
}
