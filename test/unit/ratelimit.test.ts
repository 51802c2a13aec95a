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

void describe("sliding minute", () => {
  void it("allows the limit in a burst, then refuses until the first call's second has left the minute", () => {
    const c = clock();
    const limiter = createRateLimiter({ default: 60 }, ["t"], c.now);
    for (let i = 0; i < 60; i++) assert.deepEqual(limiter.take("t"), { ok: true }, `call ${i + 1}`);
    assert.deepEqual(limiter.take("t"), { ok: false, reason: "rate", retryAfterMs: 61_000, limit: 60 });
    c.advance(30_400);
    assert.deepEqual(refusal(limiter.take("t")).retryAfterMs, 30_600);
    c.advance(30_599);
    assert.equal(limiter.take("t").ok, false, "a millisecond early");
    c.advance(1);
    for (let i = 0; i < 60; i++) assert.equal(limiter.take("t").ok, true, `after the minute, call ${i + 1}`);
    assert.equal(limiter.take("t").ok, false);
  });

  void it("never lets any 60 s hold more than the limit (a token bucket let a rolling minute see twice the limit)", () => {
    const c = clock(0);
    const limit = 6;
    const limiter = createRateLimiter({ default: limit }, ["t"], c.now);
    const granted: number[] = [];
    // A client retrying every 250 ms for five minutes.
    for (let t = 0; t < 300_000; t += 250) {
      c.set(t);
      if (limiter.take("t").ok) granted.push(t);
    }
    for (const at of granted) {
      const inMinute = granted.filter((g) => g > at - 60_000 && g <= at).length;
      assert.ok(inMinute <= limit, `${inMinute} calls in the minute ending at ${at} ms`);
    }
    assert.ok(granted.length >= 4 * limit, `the limit is reached each minute (${granted.length} calls in 5 minutes)`);
  });

  void it("frees calls second by second as they leave the minute", () => {
    const c = clock(0);
    const limiter = createRateLimiter({ default: 3 }, ["t"], c.now);
    assert.equal(limiter.take("t").ok, true); // second 0
    c.set(10_000);
    assert.equal(limiter.take("t").ok, true); // second 10
    assert.equal(limiter.take("t").ok, true);
    assert.equal(refusal(limiter.take("t")).retryAfterMs, 51_000, "second 0 leaves the window at 61 s");
    c.set(61_000);
    assert.equal(limiter.take("t").ok, true);
    assert.equal(refusal(limiter.take("t")).retryAfterMs, 10_000, "second 10 leaves at 71 s");
    c.set(3_600_000); // an hour idle gives back just the limit
    for (let i = 0; i < 3; i++) assert.equal(limiter.take("t").ok, true);
    assert.equal(limiter.take("t").ok, false);
  });

  void it("edit_file and move_file count against write_file's limit when they have none of their own", () => {
    const limiter = createRateLimiter({ default: 60, write_file: 2, move_file: 5 }, ["write_file", "edit_file", "move_file", "read_file"], clock().now);
    assert.deepEqual(
      ["write_file", "edit_file", "move_file", "read_file"].map((tool) => limiter.limitOf(tool)),
      [2, 2, 5, 60],
    );
    assert.equal(createRateLimiter({ default: 7 }, ["edit_file"], clock().now).limitOf("edit_file"), 7);
    // One window: two calls a minute, whichever of the three tools makes them; move_file counts on its own.
    assert.equal(limiter.take("write_file").ok, true);
    assert.equal(limiter.take("edit_file").ok, true);
    const refused = limiter.take("write_file");
    assert.equal(rateLimitMessage("write_file", refusal(refused)).includes("counted together with edit_file"), true);
    assert.match(rateLimitMessage("edit_file", refusal(limiter.take("edit_file"))), /\(2 calls per minute, counted together with write_file\)/);
    assert.equal(limiter.take("move_file").ok, true);
    // With write_file not served (denied), edit_file still takes its limit, in a window of its own.
    const alone = createRateLimiter({ default: 60, write_file: 1 }, ["edit_file"], clock().now);
    assert.equal(alone.take("edit_file").ok, true);
    assert.equal(alone.take("edit_file").ok, false);
  });

  void it("uses per-tool limits, the default otherwise, and keeps windows independent", () => {
    const c = clock();
    const limiter = createRateLimiter({ default: 2, slow: 1 }, ["slow", "fast"], c.now);
    assert.equal(limiter.limitOf("slow"), 1);
    assert.equal(limiter.limitOf("fast"), 2);
    assert.equal(limiter.take("slow").ok, true);
    assert.deepEqual(limiter.take("slow"), { ok: false, reason: "rate", retryAfterMs: 61_000, limit: 1 });
    assert.equal(limiter.take("fast").ok, true);
    assert.equal(limiter.take("fast").ok, true);
    assert.equal(limiter.take("fast").ok, false);
  });

  void it("takes a limit as large as a seed policy's 'no limit' in constant memory", () => {
    const c = clock();
    const limiter = createRateLimiter({ default: 1e12 }, ["t"], c.now);
    for (let i = 0; i < 100_000; i++) assert.equal(limiter.take("t").ok, true);
  });

  void it("refuses a limit that is not a whole number", () => {
    assert.throws(() => createRateLimiter({ default: 0.5 }, ["t"]), (e: unknown) => e instanceof RateLimitConfigError && /whole number/.test(e.message));
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

  void it("frees nothing when the injected clock goes backwards", () => {
    const c = clock(100_000);
    const limiter = createRateLimiter({ default: 1 }, ["t"], c.now);
    assert.equal(limiter.take("t").ok, true);
    c.set(0);
    assert.equal(limiter.take("t").ok, false);
    c.set(100_000 + 30_000);
    assert.equal(refusal(limiter.take("t")).retryAfterMs, 31_000);
  });

  void it("uses performance.now by default", () => {
    const limiter = createRateLimiter({ default: 1 }, ["t"]);
    assert.equal(limiter.take("t").ok, true);
    const verdict = refusal(limiter.take("t"));
    assert.ok(verdict.retryAfterMs > 0 && verdict.retryAfterMs <= 61_000);
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
