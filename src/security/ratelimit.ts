/**
 * Per-tool rate limits: one token bucket per known tool, on a monotonic clock.
 *
 * A bucket holds at most the tool's per-minute limit and refills continuously at
 * limit/60 tokens per second, so a full minute's budget may be spent in a burst and
 * then comes back smoothly. Buckets exist only for the tools named at creation: a name
 * a client invents is never a key, so hostile names cannot grow memory.
 */
import { monotonicMs } from "../util/clock.js";

export type RateVerdict = { ok: true } | RateRefusal;

export interface RateRefusal {
  ok: false;
  /**
   * `rate`: the bucket is empty, retry after `retryAfterMs`. `disabled`: the tool's
   * limit is 0, so no call will ever pass (`retryAfterMs` is Infinity). `unknown`: the
   * tool has no bucket (it does not exist), also Infinity.
   */
  reason: "rate" | "disabled" | "unknown";
  retryAfterMs: number;
  /** The tool's limit in calls per minute (0 for disabled and unknown tools). */
  limit: number;
}

export interface RateLimiter {
  /** Takes one call from the tool's bucket, or says when one will be available. */
  take(tool: string): RateVerdict;
  /** The tool's limit in calls per minute, or undefined for a tool without a bucket. */
  limitOf(tool: string): number | undefined;
}

/** A limit in the policy that cannot be used; thrown at creation so the start fails. */
export class RateLimitConfigError extends Error {
  readonly code = "RATE_LIMIT_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "RateLimitConfigError";
  }
}

interface Bucket {
  /** Calls per minute as configured. */
  limit: number;
  capacity: number;
  /** Tokens per millisecond. */
  rate: number;
  tokens: number;
  updatedAt: number;
}

/** Shared: a granted call is the common case and needs no verdict object of its own. */
const GRANTED: RateVerdict = Object.freeze({ ok: true });

// Refill arithmetic in floating point can leave 0.9999999 where 1 was meant.
const EPSILON = 1e-9;

export function createRateLimiter(
  limits: { default: number } & Record<string, number>,
  toolNames: readonly string[],
  now: () => number = monotonicMs,
): RateLimiter {
  const buckets = new Map<string, Bucket>();
  const start = now();
  checkLimit("default", limits.default);
  for (const tool of toolNames) {
    // Own keys only: a tool called "constructor" must not read Object.prototype.
    const limit = checkLimit(`tool ${JSON.stringify(tool)}`, Object.hasOwn(limits, tool) ? limits[tool] : limits.default);
    // A limit below one call per minute still allows one call, then refills slowly.
    const capacity = limit === 0 ? 0 : Math.max(1, limit);
    buckets.set(tool, { limit, capacity, rate: limit / 60_000, tokens: capacity, updatedAt: start });
  }

  return {
    take(tool) {
      const bucket = buckets.get(tool);
      if (bucket === undefined) return { ok: false, reason: "unknown", retryAfterMs: Infinity, limit: 0 };
      if (bucket.limit === 0) return { ok: false, reason: "disabled", retryAfterMs: Infinity, limit: 0 };
      const at = now();
      // A monotonic clock never goes back; if an injected one does, it must not mint tokens.
      const elapsed = Math.max(0, at - bucket.updatedAt);
      bucket.tokens = Math.min(bucket.capacity, bucket.tokens + elapsed * bucket.rate);
      bucket.updatedAt = Math.max(at, bucket.updatedAt);
      if (bucket.tokens >= 1 - EPSILON) {
        bucket.tokens = Math.max(0, bucket.tokens - 1);
        return GRANTED;
      }
      return { ok: false, reason: "rate", retryAfterMs: Math.max(1, Math.ceil((1 - bucket.tokens) / bucket.rate - EPSILON)), limit: bucket.limit };
    },
    limitOf(tool) {
      return buckets.get(tool)?.limit;
    },
  };
}

function checkLimit(what: string, limit: unknown): number {
  if (typeof limit !== "number" || !Number.isFinite(limit) || limit < 0) {
    throw new RateLimitConfigError(`The rate limit for ${what} must be a number of calls per minute (0 or more); got ${String(limit)}.`);
  }
  return limit;
}

/** The text for the model, e.g. `Rate limit for "add_bug" reached (60 calls per minute). Retry in 1.2 s.` */
export function rateLimitMessage(tool: string, verdict: RateRefusal): string {
  const name = JSON.stringify(tool.length > 64 ? `${tool.slice(0, 64)}...` : tool);
  switch (verdict.reason) {
    case "disabled":
      return `Tool ${name} is disabled by the rate-limit policy (0 calls per minute); retrying will not help.`;
    case "unknown":
      return `Tool ${name} has no rate limit because it is not a known tool; the call is refused.`;
    case "rate": {
      const calls = verdict.limit === 1 ? "1 call" : `${verdict.limit} calls`;
      const seconds = Math.max(0.1, Math.ceil(verdict.retryAfterMs / 100) / 10);
      return `Rate limit for ${name} reached (${calls} per minute). Retry in ${seconds.toFixed(1)} s.`;
    }
  }
}
