/**
 * The shared budget large results reserve before they are made (ctx.reserve): order, the cut to
 * the budget, a holder never waiting on itself, and aborts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ByteBudget, type BudgetHolder } from "../../src/util/byte-budget.js";
import { LazyAbort } from "../../src/util/call-abort.js";

/** A holder whose response "leaves" when the test says. */
function holder(): BudgetHolder & { leave(): void } {
  const releases: (() => void)[] = [];
  let left = false;
  return {
    reserved: 0,
    hold(release) {
      if (left) release();
      else releases.push(release);
    },
    leave() {
      left = true;
      for (const release of releases.splice(0)) release();
    },
  };
}

const settled = async (promise: Promise<void>): Promise<"granted" | "waiting" | "rejected"> => {
  let state: "granted" | "waiting" | "rejected" = "waiting";
  promise.then(
    () => (state = "granted"),
    () => (state = "rejected"),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return state;
};

void test("reservations that fit are granted at once; the rest wait in arrival order until responses leave", async () => {
  const budget = new ByteBudget(100);
  const [a, b, c, d] = [holder(), holder(), holder(), holder()];
  assert.equal(await settled(budget.reserve(60, a)), "granted");
  const second = budget.reserve(50, b);
  const third = budget.reserve(10, c);
  assert.equal(await settled(second), "waiting");
  assert.equal(await settled(third), "waiting", "a small one does not overtake the large one before it");
  assert.deepEqual(budget.status(), { limitBytes: 100, reservedBytes: 60, waiting: 2 });
  a.leave();
  assert.equal(await settled(second), "granted");
  assert.equal(await settled(third), "granted");
  assert.equal(budget.status().reservedBytes, 60);
  assert.equal(await settled(budget.reserve(0, d)), "granted", "nothing to reserve");
  b.leave();
  c.leave();
  assert.deepEqual(budget.status(), { limitBytes: 100, reservedBytes: 0, waiting: 0 });
  a.leave();
  assert.equal(budget.status().reservedBytes, 0, "a release runs once");
});

void test("a reservation larger than the budget is cut to it and runs alone; a holder that holds some is never made to wait", async () => {
  const budget = new ByteBudget(100);
  const [big, small] = [holder(), holder()];
  assert.equal(await settled(budget.reserve(1e9, big)), "granted");
  assert.equal(big.reserved, 100);
  assert.equal(await settled(budget.reserve(50, big)), "granted", "it would otherwise wait for its own response");
  assert.equal(budget.status().reservedBytes, 150);
  const waiting = budget.reserve(1, small);
  assert.equal(await settled(waiting), "waiting");
  big.leave();
  assert.equal(await settled(waiting), "granted");
  assert.throws(() => new ByteBudget(0), RangeError);
});

void test("a wait ends with the call: an abort rejects it with the reason and lets those behind it go", async () => {
  const budget = new ByteBudget(100);
  const [a, b, c] = [holder(), holder(), holder()];
  await budget.reserve(90, a);
  const scope = new LazyAbort();
  const blocked = budget.reserve(100, b, scope);
  const behind = budget.reserve(5, c);
  assert.equal(await settled(behind), "waiting", "behind the large one");
  scope.abort(new Error("cancelled by the client"));
  await assert.rejects(blocked, /cancelled by the client/);
  assert.equal(await settled(behind), "granted", "the one behind fits now");
  assert.equal(b.reserved, 0, "nothing held for the aborted call");
  const aborted = new LazyAbort();
  aborted.abort(new Error("already over"));
  await assert.rejects(budget.reserve(1, holder(), aborted), /already over/);
  assert.equal(budget.status().waiting, 0);
});

void test("review finding: a holder's second wait, queued behind another's, is granted with its first (it would wait for its own response)", async () => {
  // A call that reserves twice at once (Promise.all) while the budget is taken: its two waits
  // queue apart, another call's between them. Once its first is granted it holds, so its second
  // must not wait: the one between waits for this call's response, which waits for the second.
  const budget = new ByteBudget(100);
  const [y, x, z] = [holder(), holder(), holder()];
  await budget.reserve(50, y);
  const first = budget.reserve(60, x);
  const between = budget.reserve(60, z);
  const second = budget.reserve(60, x);
  assert.equal(budget.status().waiting, 3);
  y.leave();
  assert.equal(await settled(first), "granted");
  assert.equal(await settled(second), "granted", "not left behind the one that waits for it");
  assert.equal(await settled(between), "waiting");
  x.leave();
  assert.equal(await settled(between), "granted");
  z.leave();
  assert.deepEqual(budget.status(), { limitBytes: 100, reservedBytes: 0, waiting: 0 });
});

void test("review finding: a reservation of no number (NaN) is refused, not queued where nothing wakes it and everyone waits behind it", async () => {
  const budget = new ByteBudget(100);
  const [a, b] = [holder(), holder()];
  await assert.rejects(budget.reserve(Number.NaN, a), RangeError);
  assert.equal(await settled(budget.reserve(10, b)), "granted", "the budget is free: nothing waits before it");
  b.leave();
  assert.deepEqual(budget.status(), { limitBytes: 100, reservedBytes: 0, waiting: 0 });
});
