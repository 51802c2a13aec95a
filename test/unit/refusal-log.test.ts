/**
 * The RefusalLog on a hand-driven clock and timer: refusals the rate limit does not count get an
 * entry each up to the limit, then counts in summary entries; every refusal settles only once
 * the entry that records it is durable, and no refusal is ever left uncounted.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { RefusalLog, summaryEntry, type RefusalLogOptions } from "../../src/security/refusal-log.js";
import type { AuditRecordInput } from "../../src/security/audit/index.js";

/** A clock, a timer and an audit sink the test drives; `durable()` makes what was written so far durable. */
function harness(overrides: Partial<RefusalLogOptions> = {}) {
  let time = 0;
  const timers: Array<{ at: number; run: () => void; cancelled: boolean }> = [];
  const written: AuditRecordInput[] = [];
  const pending: Array<() => void> = [];
  let failing = false;
  const log = new RefusalLog({
    perMinute: 3,
    intervalMs: 1000,
    maxCounted: 1_000_000,
    now: () => time,
    write: (entry) => {
      written.push(entry);
      if (failing) return Promise.reject(new Error("ENOSPC"));
      return new Promise<void>((resolve) => pending.push(resolve));
    },
    recordedId: (id) => (typeof id === "string" ? id.slice(0, 8) : id),
    schedule: (run, ms) => {
      const timer = { at: time + ms, run, cancelled: false };
      timers.push(timer);
      return () => (timer.cancelled = true);
    },
    ...overrides,
  });
  const flushMicrotasks = () => new Promise((resolve) => setImmediate(resolve));
  return {
    log,
    written,
    /** Moves the clock, running the timers that come due. */
    advance(ms: number) {
      time += ms;
      for (const timer of timers.splice(0)) {
        if (timer.cancelled) continue;
        if (timer.at <= time) timer.run();
        else timers.push(timer);
      }
    },
    armed: () => timers.filter((timer) => !timer.cancelled).map((timer) => timer.at - time),
    async durable() {
      for (const resolve of pending.splice(0)) resolve();
      await flushMicrotasks();
    },
    fail: () => (failing = true),
    flushMicrotasks,
  };
}

const own = (n: number): AuditRecordInput => ({ event: "denied", outcome: "denied", requestId: n, reason: `access: no such tool (${n})` });

/** Settles a promise's state into a flag the test can read. */
function track(promise: Promise<void>): { settled: boolean } {
  const state = { settled: false };
  void promise.then(() => (state.settled = true));
  return state;
}

test("within the limit each refusal gets its own entry and settles when it is durable", async () => {
  const h = harness();
  const states = [1, 2, 3].map((n) => track(h.log.record({ stage: "access" }, n, () => own(n))));
  assert.deepEqual(
    h.written.map((entry) => entry.requestId),
    [1, 2, 3],
  );
  await h.flushMicrotasks();
  assert.deepEqual(
    states.map((s) => s.settled),
    [false, false, false],
    "not before the entries are durable",
  );
  await h.durable();
  assert.deepEqual(
    states.map((s) => s.settled),
    [true, true, true],
  );
  assert.deepEqual(h.armed(), [], "no summary is due");
});

test("past the limit refusals are counted into one summary, written at once, and settle only when it is durable", async () => {
  const h = harness();
  for (let n = 1; n <= 3; n++) void h.log.record({ stage: "access" }, n, () => own(n));
  let made = 0;
  const counted = [
    h.log.record({ stage: "access" }, "req-4-and-more", () => (made++, own(4))),
    h.log.record({ stage: "rate_limit", tool: "add_bug" }, 5, () => (made++, own(5))),
    h.log.record({ stage: "params" }, 6, () => (made++, own(6))),
    h.log.record({ stage: "rate_limit", tool: "add_bug" }, 7, () => (made++, own(7))),
  ].map(track);
  assert.equal(made, 0, "a counted refusal's own entry is never made");
  assert.equal(h.written.length, 3);
  assert.deepEqual(h.armed(), [0], "the first summary is due at once (the next turn)");
  h.advance(0);
  assert.equal(h.written.length, 4);
  assert.deepEqual(h.written[3], {
    event: "denied",
    outcome: "denied",
    reason:
      "4 refused calls were not recorded one by one, past 3 such refusals in 60 s (unknown or hidden tools, malformed calls, rate limits): " +
      "access 1, rate_limit 2, params 1. Each was refused; none ran.",
    data: {
      refusalsNotRecorded: 4,
      byStage: { access: 1, rate_limit: 2, params: 1 },
      byTool: { add_bug: 2 },
      firstRequestId: "req-4-an",
      lastRequestId: 7,
    },
  });
  await h.flushMicrotasks();
  assert.ok(
    counted.every((s) => !s.settled),
    "held until the summary is durable",
  );
  await h.durable();
  assert.ok(counted.every((s) => s.settled));
});

test("a summary says only what is true when it is written: the calls were refused and none ran, not that they were answered", async () => {
  const h = harness({ perMinute: 0 });
  const counted = [1, 2].map((n) => track(h.log.record({ stage: "access" }, n, () => own(n))));
  h.advance(0);
  const summary = h.written.at(-1)!;
  await h.flushMicrotasks();
  // Each is answered only once the summary is durable (and one its client cancels never is).
  assert.ok(
    counted.every((state) => !state.settled),
    "none answered yet",
  );
  assert.doesNotMatch(String(summary.reason), /answered/);
  assert.match(String(summary.reason), /\. Each was refused; none ran\.$/);
  await h.durable();
});

test("later summaries come at most once an interval; the window frees again after 60 s", async () => {
  const h = harness();
  for (let n = 1; n <= 4; n++) void h.log.record({ stage: "access" }, n, () => own(n));
  h.advance(0);
  assert.equal(h.written.length, 4, "three entries and a summary of one");
  h.advance(100);
  const next = track(h.log.record({ stage: "access" }, 5, () => own(5)));
  void h.log.record({ stage: "access" }, 6, () => own(6));
  assert.deepEqual(h.armed(), [900], "the next summary waits for the interval");
  h.advance(899);
  assert.equal(h.written.length, 4);
  await h.durable();
  assert.equal(next.settled, false, "still held");
  h.advance(1);
  assert.equal(h.written.length, 5);
  assert.equal(h.written[4]?.data?.refusalsNotRecorded, 2);
  await h.durable();
  assert.equal(next.settled, true);
  // A minute after the first three, the window holds room for three more of their own.
  h.advance(60_000);
  void h.log.record({ stage: "params" }, 7, () => own(7));
  assert.equal(h.written.at(-1)?.requestId, 7);
});

test("a summary is written before the next entry of its own, and before any entry flush() is called for", async () => {
  const h = harness({ perMinute: 1 });
  void h.log.record({ stage: "access" }, 1, () => own(1));
  const counted = track(h.log.record({ stage: "access" }, 2, () => own(2)));
  h.log.flush();
  assert.equal(h.written.at(-1)?.data?.refusalsNotRecorded, 1, "written when asked, not at the timer");
  h.log.flush();
  assert.equal(h.written.length, 2, "nothing more to write");
  h.advance(0);
  assert.equal(h.written.length, 2, "the timer finds nothing left");
  await h.durable();
  assert.equal(counted.settled, true);
  // Past the limit again, then the window frees: the count comes first, then the entry.
  void h.log.record({ stage: "access" }, 3, () => own(3));
  h.advance(61_000);
  void h.log.record({ stage: "access" }, 4, () => own(4));
  assert.deepEqual(
    h.written.slice(2).map((entry) => entry.data?.refusalsNotRecorded ?? entry.requestId),
    [1, 4],
  );
});

test("a summary flushed early by another entry does not let the timer write the next one before the interval", () => {
  const h = harness({ perMinute: 0 });
  void h.log.record({ stage: "access" }, 1, () => own(1));
  h.log.flush(); // another entry came: the summary went first, at time 0
  void h.log.record({ stage: "access" }, 2, () => own(2));
  assert.deepEqual(h.armed(), [0], "armed by the first refusal, before the early summary");
  h.advance(0);
  assert.equal(h.written.length, 1, "the timer rearms for the rest of the interval");
  assert.deepEqual(h.armed(), [1000]);
  h.advance(1000);
  assert.equal(h.written.length, 2);
});

test("close() writes what is counted and from then on writes counts at once, cancelling the held timer", () => {
  const h = harness({ perMinute: 0 });
  void h.log.record({ stage: "access" }, 1, () => own(1));
  h.advance(0);
  void h.log.record({ stage: "access" }, 2, () => own(2));
  assert.deepEqual(h.armed(), [1000]);
  h.log.close();
  assert.equal(h.written.length, 2, "the count is written at once");
  assert.deepEqual(h.armed(), [], "the held timer is cancelled");
  void h.log.record({ stage: "params" }, 3, () => own(3));
  assert.deepEqual(h.armed(), [0], "a count made while closing is written at the next turn");
  h.advance(0);
  assert.equal(h.written.length, 3);
  h.log.close();
  assert.equal(h.written.length, 3, "nothing left to write");
});

test("a write that fails still settles every refusal (they stay refused); nothing rejects", async () => {
  const h = harness({ perMinute: 1 });
  h.fail();
  await h.log.record({ stage: "access" }, 1, () => own(1));
  const counted = h.log.record({ stage: "access" }, 2, () => own(2));
  h.advance(0);
  await counted;
  assert.equal(h.written.length, 2);
});

test("under a flood, the entries are bounded and the counts add up: no refusal goes unrecorded", async () => {
  const h = harness({ perMinute: 60 });
  const sent = 200_000;
  // 200 000 refusals over 5 minutes: one every 1.5 ms.
  for (let n = 0; n < sent; n++) {
    void h.log.record({ stage: n % 2 === 0 ? "access" : "params" }, n, () => own(n));
    h.advance(1.5);
  }
  h.log.close();
  await h.durable();
  const summaries = h.written.filter((entry) => entry.data !== undefined);
  const own_ = h.written.length - summaries.length;
  const counted = summaries.reduce((sum, entry) => sum + (entry.data?.refusalsNotRecorded as number), 0);
  assert.equal(own_ + counted, sent, "every refusal has its entry or is counted in one");
  assert.ok(own_ <= 60 * 5, `${own_} entries of their own in 5 minutes`);
  assert.ok(summaries.length <= 5 * 60 + 1, `${summaries.length} summaries in 5 minutes`);
  const byStage = { access: 0, params: 0 };
  for (const entry of summaries) {
    for (const [stage, count] of Object.entries(entry.data?.byStage as Record<string, number>)) byStage[stage as keyof typeof byStage] += count;
  }
  assert.equal(byStage.access + byStage.params, counted);
});

test("summaryEntry: one refusal, and no byTool without a known tool", () => {
  const entry = summaryEntry(
    { count: 1, byStage: new Map([["params", 1]]), byTool: new Map(), firstRequestId: 9, lastRequestId: 9 },
    { perMinute: 60, recordedId: (id) => id },
  );
  assert.match(String(entry.reason), /^1 refused call was not recorded one by one, past 60 such refusals in 60 s/);
  assert.deepEqual(entry.data, { refusalsNotRecorded: 1, byStage: { params: 1 }, firstRequestId: 9, lastRequestId: 9 });
});

test("a burst does not wait for the interval: a summary is written as soon as maxCounted refusals wait for one", async () => {
  const h = harness({ maxCounted: 4 });
  for (let n = 1; n <= 3; n++) void h.log.record({ stage: "access" }, n, () => own(n));
  await h.durable();
  h.advance(10);
  // The window is spent: each 4 counted refusals are written at once, whatever the interval.
  const states = Array.from({ length: 10 }, (_, i) => track(h.log.record({ stage: "params" }, 100 + i, () => own(100 + i))));
  const summaries = () => h.written.filter((entry) => entry.data !== undefined).map((entry) => (entry.data as { refusalsNotRecorded: number }).refusalsNotRecorded);
  assert.deepEqual(summaries(), [4, 4], "no interval waited for between full summaries");
  await h.durable();
  assert.deepEqual(states.map((s) => s.settled), [true, true, true, true, true, true, true, true, false, false], "the last two wait for the next summary");
  h.advance(1000);
  assert.deepEqual(summaries(), [4, 4, 2], "the rest when the interval is up");
  await h.durable();
  assert.equal(states.every((s) => s.settled), true);
});
