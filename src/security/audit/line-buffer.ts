/**
 * The bytes of sealed lines that are not yet written. An entry is encoded once, here:
 * its hash is taken over these bytes and the same bytes go to the file, so a line costs
 * one UTF-8 encoding and no per-batch allocation. Positions are logical (they only grow),
 * so that a line keeps its position when the buffer grows or starts over.
 *
 * Bytes are held from `reserve` until `release`: a write (synchronous or in flight)
 * reads a view of them. Growing never moves held bytes out from under such a view: it
 * copies them into a new buffer and leaves the old one to whoever still views it.
 */
export class LineBuffer {
  private buffer: Buffer;
  /** The logical position of `buffer[0]`. */
  private base = 0;
  /** The logical end of the bytes written so far. */
  private end = 0;
  /** The logical start of the bytes not yet released. */
  private held = 0;

  constructor(
    private readonly initialBytes = 64 * 1024,
    /** A buffer grown past this (by a large entry) is dropped once it is empty again. */
    private readonly keepBytes = 1024 * 1024,
  ) {
    this.buffer = Buffer.allocUnsafe(initialBytes);
  }

  /** Bytes reserved and not yet released: sealed lines waiting for (or in) a write. */
  get heldBytes(): number {
    return this.end - this.held;
  }

  /** The logical position the next line starts at. */
  get position(): number {
    return this.end;
  }

  /**
   * Makes room for `bytes` more and returns the buffer to write them into, at
   * `offsetOf(this.position)`. The buffer returned is valid until the next `reserve`.
   */
  reserve(bytes: number): Buffer {
    if (this.end - this.base + bytes <= this.buffer.length) return this.buffer;
    const heldBytes = this.end - this.held;
    // Twice what is needed now: under steady load (a write nearly always in flight, so the
    // buffer seldom empties) each growth then copies the held bytes once per buffer's worth.
    let size = this.initialBytes;
    while (size < 2 * (heldBytes + bytes)) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buffer.copy(next, 0, this.held - this.base, this.end - this.base);
    this.buffer = next;
    this.base = this.held;
    return next;
  }

  /** The physical offset of a logical position in the current buffer. */
  offsetOf(position: number): number {
    return position - this.base;
  }

  /** Marks `bytes` written at the end (after `reserve`). */
  commit(bytes: number): void {
    this.end += bytes;
  }

  /** The held bytes from `start` to `end` (logical), as a view: valid until they are released. */
  view(start: number, end: number): Buffer {
    return this.buffer.subarray(start - this.base, end - this.base);
  }

  /** Everything before `position` is written: its bytes may be reused. */
  release(position: number): void {
    this.held = position;
    if (this.held !== this.end) return;
    // Empty: start over at the beginning, in a buffer of the usual size.
    this.base = this.end;
    if (this.buffer.length > this.keepBytes) this.buffer = Buffer.allocUnsafe(this.initialBytes);
  }
}
