/**
 * Per-tool rate limits: at most `limit` calls in any 60 seconds, per known tool, on a
 * monotonic clock (the seed's sliding minute, which its policies were written for).
 *
 * Calls are counted per whole second in a ring of 61 one-second slots, so memory and
 * time per call stay constant whatever the limit (a seed policy writes 1e9 for "no
 * limit"). The 61 slots always cover the 60 s before now, so a window never holds more
 * than the limit; the price is that a refused call may wait up to a second longer than
 * an exact count would say. (A token bucket, used before, let a rolling minute see up to
 * twice the limit: a full burst, then the refill.) Windows exist only for the tools named
 * at creation: a name a client invents is never a key, so hostile names cannot grow memory.
 */
import { monotonicMs } from "../util/clock.js";
import { followedTool } from "./policy/tool-access.js";

export type RateVerdict = { ok: true } | RateRefusal;

export interface RateRefusal {
  ok: false;
  /**
   * `rate`: the last minute holds the limit, retry after `retryAfterMs`. `disabled`: the tool's
   * limit is 0, so no call will ever pass (`retryAfterMs` is Infinity). `unknown`: the
   * tool has no window (it does not exist), also Infinity.
   */
  reason: "rate" | "disabled" | "unknown";
  retryAfterMs: number;
  /** The tool whose calls count in the same window (a tool following it, see FOLLOWS). */
  sharedWith?: string;
  /** The tool's limit in calls per minute (0 for disabled and unknown tools). */
  limit: number;
}

export interface RateLimiter {
  /** Counts one call for the tool, or says when one will be allowed. */
  take(tool: string): RateVerdict;
  /** The tool's limit in calls per minute, or undefined for an unknown tool. */
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

/** One-second slots in a window: 60 s, plus the second now runs in. */
const SLOTS = 61;
const SLOT_MS = 1000;

interface Window {
  /** Calls per minute as configured. */
  limit: number;
  /** Granted calls per slot, indexed by slot number modulo SLOTS. */
  counts: Float64Array;
  /** The newest slot the window has reached (slot numbers count seconds since creation). */
  newest: number;
  /** Granted calls in slots newest-60 .. newest. */
  total: number;
}

/** Shared: a granted call is the common case and needs no verdict object of its own. */
const GRANTED: RateVerdict = Object.freeze({ ok: true });

function newWindow(tool: string, limit: number | undefined): Window {
  return { limit: checkLimit(`tool ${JSON.stringify(tool)}`, limit), counts: new Float64Array(SLOTS), newest: 0, total: 0 };
}

export function createRateLimiter(
  limits: { default: number } & Record<string, number>,
  toolNames: readonly string[],
  now: () => number = monotonicMs,
): RateLimiter {
  const windows = new Map<string, Window>();
  const start = now();
  checkLimit("default", limits.default);
  /** Per tool sharing a window, the others in it (a follower: the tool it follows; that tool: its followers). */
  const sharedWith = new Map<string, string>();
  for (const tool of toolNames) {
    // Own keys only: a tool called "constructor" must not read Object.prototype.
    if (Object.hasOwn(limits, tool)) windows.set(tool, newWindow(tool, limits[tool]));
  }
  for (const tool of toolNames) {
    if (windows.has(tool)) continue;
    // A tool that changes files as another does, with no limit of its own, counts against that
    // one's limit: `write_file: 2` means two writes a minute, whichever of the tools makes them.
    const followed = followedTool(tool);
    if (followed !== undefined && Object.hasOwn(limits, followed)) {
      // Only served tools have windows: a followed tool not served leaves the follower its limit, alone.
      const shared = windows.get(followed);
      if (shared !== undefined) {
        sharedWith.set(tool, followed);
        const followers = sharedWith.get(followed);
        sharedWith.set(followed, followers === undefined ? tool : `${followers}, ${tool}`);
      }
      windows.set(tool, shared ?? newWindow(tool, limits[followed]));
      continue;
    }
    windows.set(tool, newWindow(tool, limits.default));
  }

  return {
    take(tool) {
      const window = windows.get(tool);
      if (window === undefined) return { ok: false, reason: "unknown", retryAfterMs: Infinity, limit: 0 };
      if (window.limit === 0) return { ok: false, reason: "disabled", retryAfterMs: Infinity, limit: 0 };
      const at = now() - start;
      // A monotonic clock never goes back; if an injected one does, the newest slot stands.
      advance(window, Math.max(window.newest, Math.floor(at / SLOT_MS)));
      if (window.total < window.limit) {
        window.counts[window.newest % SLOTS]! += 1;
        window.total += 1;
        return GRANTED;
      }
      const shared = sharedWith.get(tool);
      return shared === undefined
        ? { ok: false, reason: "rate", retryAfterMs: retryAfter(window, at), limit: window.limit }
        : { ok: false, reason: "rate", retryAfterMs: retryAfter(window, at), limit: window.limit, sharedWith: shared };
    },
    limitOf(tool) {
      return windows.get(tool)?.limit;
    },
  };
}

/** Moves the window's newest slot to `slot`, dropping the counts of slots that leave it. */
function advance(window: Window, slot: number): void {
  const steps = Math.min(slot - window.newest, SLOTS);
  for (let k = 1; k <= steps; k++) {
    const index = (window.newest + k) % SLOTS;
    window.total -= window.counts[index]!;
    window.counts[index] = 0;
  }
  window.newest = slot;
}

/** Milliseconds until enough of the oldest slots have left the window for one more call. */
function retryAfter(window: Window, at: number): number {
  let remaining = window.total;
  for (let slot = window.newest - (SLOTS - 1); slot <= window.newest; slot++) {
    remaining -= window.counts[((slot % SLOTS) + SLOTS) % SLOTS]!;
    // Slot `slot` leaves the window when slot + SLOTS begins.
    if (remaining < window.limit) return Math.max(1, Math.ceil((slot + SLOTS) * SLOT_MS - at));
  }
  /* c8 ignore next -- the loop ends once the whole window is dropped, and remaining is then 0 */
  return SLOTS * SLOT_MS;
}

function checkLimit(what: string, limit: unknown): number {
  if (typeof limit !== "number" || !Number.isSafeInteger(limit) || limit < 0) {
    throw new RateLimitConfigError(`The rate limit for ${what} must be a whole number of calls per minute (0 or more); got ${String(limit)}.`);
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
      const together = verdict.sharedWith === undefined ? "" : `, counted together with ${verdict.sharedWith}`;
      return `Rate limit for ${name} reached (${calls} per minute${together}). Retry in ${seconds.toFixed(1)} s.`;
    }
  }
}
