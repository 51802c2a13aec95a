/**
 * Progress notifications for one request: only with a client token, strictly
 * increasing, coalesced to a bounded rate, and never after the request finished.
 */
import type { ProgressUpdate } from "../plugins/contract.js";
import { redactString } from "../security/redaction.js";
import { sanitizeText } from "../security/sanitize.js";
import { monotonicMs } from "../util/clock.js";

export type ProgressToken = string | number;

export function readProgressToken(params: Record<string, unknown> | undefined): ProgressToken | undefined {
  const meta = params?._meta;
  if (typeof meta !== "object" || meta === null) return undefined;
  const token = (meta as Record<string, unknown>).progressToken;
  return typeof token === "string" || (typeof token === "number" && Number.isSafeInteger(token)) ? token : undefined;
}

export class ProgressReporter {
  private last = -Infinity;
  private finished = false;
  private lastSentAt = -Infinity;
  private pending: ProgressUpdate | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly token: ProgressToken,
    private readonly send: (params: Record<string, unknown>) => void,
    private readonly minIntervalMs = 50,
    private readonly now: () => number = monotonicMs,
  ) {}

  report(update: ProgressUpdate): void {
    if (this.finished || !Number.isFinite(update.progress) || update.progress <= this.last) return;
    if (update.total !== undefined && !Number.isFinite(update.total)) return;
    this.last = update.progress;
    const wait = this.lastSentAt + this.minIntervalMs - this.now();
    if (wait <= 0) {
      // A coalesced update whose timer is late (a busy loop) is older than this one: it must not follow it.
      this.cancelPending();
      this.emit(update);
      return;
    }
    // Coalesce: keep the newest update and send it when the interval has passed.
    this.pending = update;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      const next = this.pending;
      this.pending = undefined;
      if (next && !this.finished) this.emit(next);
    }, wait);
  }

  /** After this, nothing more is sent for the token. */
  finish(): void {
    this.finished = true;
    this.cancelPending();
  }

  private cancelPending(): void {
    this.pending = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private emit(update: ProgressUpdate): void {
    this.lastSentAt = this.now();
    const params: Record<string, unknown> = { progressToken: this.token, progress: update.progress };
    if (update.total !== undefined) params.total = update.total;
    // The message goes to the client like tool output: sanitized, redacted, a string or nothing.
    if (typeof update.message === "string") params.message = sanitizeText(redactString(update.message.slice(0, 1000)).value);
    this.send(params);
  }
}
