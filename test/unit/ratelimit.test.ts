import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createRateLimiter, RateLimitConfigError, rateLimitMessage, type RateRefusal, type RateVerdict } from "../../src/security/ratelimit.js";

/** A hand-driven monotonic clock in milliseconds. */
function clock(start = 1000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms), set: (ms: number) => (t = ms) };
}

function refusal(verdict: RateVerdict): RateRefusal {
  if (verdict.ok) assert.fail("the call was allowed");
  return verdict;
}

void describe("token buckets", () => {
  void it("allows a full minute's budget in a burst, then refuses with the wait for one token", () => {
    const c = clock();
    const limiter = createRateLimiter({ default: 60 }, ["t"], c.now);
    for (let i = 0; i < 60; i++) assert.deepEqual(limiter.take("t"), { ok: true }, `call ${i + 1}`);
    assert.deepEqual(limiter.take("t"), { ok: false, reason: "rate", retryAfterMs: 1000, limit: 60 });
    c.advance(400);
    assert.deepEqual(refusal(limiter.take("t")).retryAfterMs, 600);
    c.advance(600);
    assert.deepEqual(limiter.take("t"), { ok: true });
    assert.equal(limiter.take("t").ok, false);
  });

  void it("refills continuously and never above the capacity", () => {
    const c = clock();
    const limiter = createRateLimiter({ default: 6 }, ["t"], c.now);
    for (let i = 0; i < 6; i++) limiter.take("t");
    c.advance(30_000); // half a minute: 3 tokens back
    for (let i = 0; i < 3; i++) assert.equal(limiter.take("t").ok, true);
    assert.equal(limiter.take("t").ok, false);
    c.advance(3_600_000); // an hour idle still gives only a full bucket
    for (let i = 0; i < 6; i++) assert.equal(limiter.take("t").ok, true);
    assert.equal(limiter.take("t").ok, false);
  });

  void it("uses per-tool limits, the default otherwise, and keeps buckets independent", () => {
    const c = clock();
    const limiter = createRateLimiter({ default: 2, slow: 1 }, ["slow", "fast"], c.now);
    assert.equal(limiter.limitOf("slow"), 1);
    assert.equal(limiter.limitOf("fast"), 2);
    assert.equal(limiter.take("slow").ok, true);
    assert.deepEqual(limiter.take("slow"), { ok: false, reason: "rate", retryAfterMs: 60_000, limit: 1 });
    assert.equal(limiter.take("fast").ok, true);
    assert.equal(limiter.take("fast").ok, true);
    assert.equal(limiter.take("fast").ok, false);
  });

  void it("allows one call for a limit below one per minute, then refills slowly", () => {
    const c = clock();
    const limiter = createRateLimiter({ default: 0.5 }, ["t"], c.now);
    assert.equal(limiter.take("t").ok, true);
    assert.equal(refusal(limiter.take("t")).retryAfterMs, 120_000);
    c.advance(120_000);
    assert.equal(limiter.take("t").ok, true);
  });

  void it("treats a limit of 0 as disabled: always refused, retrying never helps", () => {
    const c = clock();
    const limiter = createRateLimiter({ default: 60, off: 0 }, ["off"], c.now);
    const verdict = refusal(limiter.take("off"));
    assert.deepEqual(verdict, { ok: false, reason: "disabled", retryAfterMs: Infinity, limit: 0 });
    c.advance(3_600_000);
    assert.equal(limiter.take("off").ok, false);
  });

  void it("has no bucket for unknown names, whatever they are", () => {
    const limiter = createRateLimiter({ default: 60 }, ["t"], clock().now);
    for (const name of ["nope", "constructor", "__proto__", "toString", "x".repeat(10_000)]) {
      assert.deepEqual(limiter.take(name), { ok: false, reason: "unknown", retryAfterMs: Infinity, limit: 0 }, name.slice(0, 20));
      assert.equal(limiter.limitOf(name), undefined);
    }
  });

  void it("reads only own keys of the limits: a tool named like an Object method gets the default", () => {
    const limiter = createRateLimiter({ default: 3 }, ["constructor", "toString"], clock().now);
    assert.equal(limiter.limitOf("constructor"), 3);
    assert.equal(limiter.limitOf("toString"), 3);
  });

  void it("does not mint tokens when the injected clock goes backwards", () => {
    const c = clock(100_000);
    const limiter = createRateLimiter({ default: 1 }, ["t"], c.now);
    assert.equal(limiter.take("t").ok, true);
    c.set(0);
    assert.equal(limiter.take("t").ok, false);
    c.set(100_000 + 30_000);
    assert.equal(refusal(limiter.take("t")).retryAfterMs, 30_000);
  });

  void it("uses performance.now by default", () => {
    const limiter = createRateLimiter({ default: 1 }, ["t"]);
    assert.equal(limiter.take("t").ok, true);
    const verdict = refusal(limiter.take("t"));
    assert.ok(verdict.retryAfterMs > 0 && verdict.retryAfterMs <= 60_000);
  });

  void it("refuses unusable limits at creation", () => {
    for (const bad of [-1, NaN, Infinity, "10" as unknown as number]) {
      assert.throws(
        () => createRateLimiter({ default: 60, t: bad }, ["t"]),
        (e: unknown) => e instanceof RateLimitConfigError && e.code === "RATE_LIMIT_INVALID" && /tool "t"/.test(e.message),
      );
    }
    assert.throws(() => createRateLimiter({ default: NaN }, []), (e: unknown) => e instanceof RateLimitConfigError && /default/.test(e.message));
  });
});

void describe("rateLimitMessage", () => {
  void it("says the limit and when to retry, rounded up to a tenth of a second", () => {
    assert.equal(
      rateLimitMessage("add_bug", { ok: false, reason: "rate", retryAfterMs: 1150, limit: 60 }),
      'Rate limit for "add_bug" reached (60 calls per minute). Retry in 1.2 s.',
    );
    assert.equal(
      rateLimitMessage("t", { ok: false, reason: "rate", retryAfterMs: 1, limit: 1 }),
      'Rate limit for "t" reached (1 call per minute). Retry in 0.1 s.',
    );
    assert.equal(
      rateLimitMessage("t", { ok: false, reason: "rate", retryAfterMs: 60_000, limit: 1 }),
      'Rate limit for "t" reached (1 call per minute). Retry in 60.0 s.',
    );
  });

  void it("says plainly that a disabled or unknown tool will not pass", () => {
    assert.match(rateLimitMessage("off", { ok: false, reason: "disabled", retryAfterMs: Infinity, limit: 0 }), /"off" is disabled .*retrying will not help/);
    assert.match(rateLimitMessage("nope", { ok: false, reason: "unknown", retryAfterMs: Infinity, limit: 0 }), /"nope" .*not a known tool/);
  });

  void it("quotes and shortens hostile tool names", () => {
    const text = rateLimitMessage(`${"x".repeat(500)}"\n`, { ok: false, reason: "unknown", retryAfterMs: Infinity, limit: 0 });
    assert.ok(text.length < 200);
    assert.doesNotMatch(text, /\n/);
  });
});
