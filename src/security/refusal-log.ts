/**
 * How the audit log records the refusals no tool's rate limit bounds: calls to a tool that does
 * not exist or that the policy hides, tools/call requests with malformed params, and the rate
 * limit's own refusals. Each costs the client a line; recorded one by one, each would cost the
 * log an entry, and a client could write into the log as fast as it sends lines.
 *
 * So at most `perMinute` of them in any 60 s get an entry of their own (the rate limiter's
 * sliding minute); past that a refusal is counted, and the counts go into one `denied` summary
 * entry (how many, by stage and by known tool, the first and last request ids), written at most
 * once per `intervalMs` (the first at once) unless `maxCounted` refusals wait for it, and before
 * any entry that follows it, so the log keeps the order of events. The log then gains at most
 * `perMinute` + 60 s / `intervalMs` refusal entries a minute, plus one per `maxCounted` refusals
 * in a burst: a client cannot make it grow faster than a small fraction of what it sends.
 *
 * Each refusal is still answered with its own error, and, as before, only once the entry that
 * records it (its own, or the summary that counts it) is durable: a crash cannot leave an
 * answered call off the record, nor a count unwritten. A client past the limit waits for the
 * next summary, at most `intervalMs` (less in a burst), which also slows its flood down. Nothing here ever lets a
 * tool run: these calls are refused whatever is recorded of them.
 */
import type { AuditRecordInput } from "./audit/index.js";
import { createRateLimiter, type RateLimiter } from "./ratelimit.js";

type RequestId = NonNullable<AuditRecordInput["requestId"]>;

export interface RefusalKind {
  /** The engine's stage that refused the call: `access`, `params` or `rate_limit`. */
  stage: string;
  /** The tool, when it is one the server has (never a name the client made up: the summary's keys stay few). */
  tool?: string;
}

export interface RefusalLogOptions {
  /** Refusals recorded one by one in any 60 s. */
  perMinute: number;
  /** The least time between two summaries, in milliseconds, unless `maxCounted` refusals wait for one. */
  intervalMs: number;
  /**
   * Refusals one summary counts at most: when so many wait, it is written at once. A burst is not
   * held for the interval (each held refusal keeps one of the connection's in-flight slots, and
   * a full queue is answered busy, with no record at all), and the log still gains one entry per
   * this many refusals at most.
   */
  maxCounted: number;
  /** Monotonic milliseconds. */
  now: () => number;
  /**
   * Appends an entry synchronously (the log's order is the order of the calls) and resolves once
   * it is durable; rejects when it cannot be written (the caller has reported that).
   */
  write: (entry: AuditRecordInput) => Promise<unknown>;
  /** A request id as the log records it (redacted, a long one cut). */
  recordedId: (id: RequestId) => RequestId;
  /** Runs `run` once after `ms` milliseconds; returns what cancels it. Tests drive their own. */
  schedule?: (run: () => void, ms: number) => () => void;
}

/** The refusals counted since the last summary. */
interface Counted {
  count: number;
  byStage: Map<string, number>;
  byTool: Map<string, number>;
  firstRequestId: RequestId;
  lastRequestId: RequestId;
  /** Settles once their summary is durable, or cannot be. */
  readonly written: Promise<void>;
  readonly settle: () => void;
}

/** The one window the limiter keeps: its name is not a tool's. */
const WINDOW = "refused calls";

export class RefusalLog {
  private readonly window: RateLimiter;
  private readonly schedule: (run: () => void, ms: number) => () => void;
  private counted: Counted | undefined;
  private lastSummaryAt = -Infinity;
  private cancelTimer: (() => void) | undefined;
  private closing = false;

  constructor(private readonly options: RefusalLogOptions) {
    this.window = createRateLimiter({ default: options.perMinute }, [WINDOW], options.now);
    this.schedule = options.schedule ?? timeout;
  }

  /**
   * Records one refusal: its own entry (`entry()`, made only then) while the window allows, else
   * a count in the next summary. Resolves once that entry is durable, or cannot be; never rejects.
   */
  record(kind: RefusalKind, requestId: RequestId, entry: () => AuditRecordInput): Promise<void> {
    if (this.window.take(WINDOW).ok) {
      this.flush();
      return this.options.write(entry()).then(ignore, ignore);
    }
    const counted = (this.counted ??= newCounted(requestId));
    counted.count += 1;
    counted.lastRequestId = requestId;
    increment(counted.byStage, kind.stage);
    if (kind.tool !== undefined) increment(counted.byTool, kind.tool);
    if (counted.count >= this.options.maxCounted) this.flush();
    else this.arm();
    return counted.written;
  }

  /** Writes the summary of the refusals counted so far, if any: before any other entry, so the log stays in order. */
  flush(): void {
    const counted = this.counted;
    if (counted === undefined) return;
    this.counted = undefined;
    this.lastSummaryAt = this.options.now();
    this.options.write(summaryEntry(counted, this.options)).then(counted.settle, counted.settle);
  }

  /** At shutdown: what is counted is written now, and what is counted later at the next turn, not held back. */
  close(): void {
    this.closing = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.flush();
  }

  private arm(): void {
    if (this.cancelTimer !== undefined) return;
    const wait = this.closing ? 0 : Math.max(0, this.lastSummaryAt + this.options.intervalMs - this.options.now());
    this.cancelTimer = this.schedule(() => this.due(), wait);
  }

  private due(): void {
    this.cancelTimer = undefined;
    if (this.counted === undefined) return;
    // A summary written meanwhile (before another entry) starts the interval again.
    if (!this.closing && this.options.now() < this.lastSummaryAt + this.options.intervalMs) this.arm();
    else this.flush();
  }
}

/**
 * The summary entry: a `denied` entry for many calls, with no tool or request id of its own. Its
 * reason says only what holds when it is written: the calls it counts are answered after it is
 * durable, and one its client cancelled, or that a crash caught first, never is.
 */
export function summaryEntry(counted: Omit<Counted, "written" | "settle">, options: Pick<RefusalLogOptions, "perMinute" | "recordedId">): AuditRecordInput {
  const calls = counted.count === 1 ? "1 refused call was" : `${counted.count} refused calls were`;
  const stages = [...counted.byStage].map(([stage, count]) => `${stage} ${count}`).join(", ");
  return {
    event: "denied",
    outcome: "denied",
    reason:
      `${calls} not recorded one by one, past ${options.perMinute} such refusals in 60 s (unknown or hidden tools, malformed calls, rate limits): ` +
      `${stages}. Each was refused; none ran.`,
    data: {
      refusalsNotRecorded: counted.count,
      byStage: Object.fromEntries(counted.byStage),
      ...(counted.byTool.size === 0 ? {} : { byTool: Object.fromEntries(counted.byTool) }),
      firstRequestId: options.recordedId(counted.firstRequestId),
      lastRequestId: options.recordedId(counted.lastRequestId),
    },
  };
}

function newCounted(requestId: RequestId): Counted {
  let settle!: () => void;
  const written = new Promise<void>((resolve) => (settle = resolve));
  return { count: 0, byStage: new Map(), byTool: new Map(), firstRequestId: requestId, lastRequestId: requestId, written, settle };
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function timeout(run: () => void, ms: number): () => void {
  const timer = setTimeout(run, ms);
  return () => clearTimeout(timer);
}

function ignore(): void {
  // The refusal stands whether or not its entry was written; the writer reported a failure.
}
