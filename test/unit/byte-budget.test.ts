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

/** A batch's holder: several calls reserve through it (see BatchReply). */
function sharedHolder(): BudgetHolder & { leave(): void } {
  return Object.assign(holder(), { shared: true as const });
}

void test("review finding: open batches together stay within the budget (each may not take the whole budget on top of the others)", async () => {
  // Two batches whose first reads were small: before the fix each batch's later members were
  // granted at once as long as that batch alone stayed within the budget, so N open batches held
  // N times the budget (128 batches of two base64 reads: 8 GiB past a 64 MiB budget).
  const budget = new ByteBudget(100);
  const [a, b] = [sharedHolder(), sharedHolder()];
  assert.equal(await settled(budget.reserve(10, a)), "granted");
  assert.equal(await settled(budget.reserve(10, b)), "granted");
  assert.equal(await settled(budget.reserve(80, a)), "granted", "fits: 100 of 100");
  const over = budget.reserve(80, b);
  // It may not wait either: its batch holds what another batch's member could be waiting for.
  await assert.rejects(over, (error: Error) => error.name === "BudgetExceededError" && /in use/.test(error.message));
  assert.ok(budget.status().reservedBytes <= 100, `${budget.status().reservedBytes} bytes held past a budget of 100`);
  assert.equal(budget.status().waiting, 0);
  a.leave();
  b.leave();
  assert.deepEqual(budget.status(), { limitBytes: 100, reservedBytes: 0, waiting: 0 });
});

void test("review finding: a batch's member queued before its batch held anything does not overdraw once a batch-mate is granted", async () => {
  const budget = new ByteBudget(100);
  const [single, batch] = [holder(), sharedHolder()];
  await budget.reserve(60, single);
  const first = budget.reserve(40, batch);
  const second = budget.reserve(40, batch);
  const secondRefused = assert.rejects(second, (error: Error) => error.name === "BudgetExceededError" && /in use by other calls/.test(error.message));
  assert.equal(await settled(first), "granted", "fits beside the single call");
  // The second may not wait now (its batch holds) and does not fit: refused, not granted past the budget.
  await secondRefused;
  assert.equal(budget.status().reservedBytes, 100);
  single.leave();
  batch.leave();
  assert.deepEqual(budget.status(), { limitBytes: 100, reservedBytes: 0, waiting: 0 });
  // Where it fits once its batch-mate is granted, it is granted with it.
  const [other, next] = [holder(), sharedHolder()];
  await budget.reserve(90, other);
  const [a, b] = [budget.reserve(20, next), budget.reserve(20, next)];
  assert.equal(budget.status().waiting, 2);
  other.leave();
  assert.equal(await settled(a), "granted");
  assert.equal(await settled(b), "granted");
  next.leave();
  assert.deepEqual(budget.status(), { limitBytes: 100, reservedBytes: 0, waiting: 0 });
});

void test("a batch's members never wait on their own batch: one past the budget with what the batch holds is refused with a message the model can act on", async () => {
  const budget = new ByteBudget(100);
  const batch = sharedHolder();
  assert.equal(await settled(budget.reserve(70, batch)), "granted");
  await assert.rejects(budget.reserve(40, batch), (error: Error) => error.name === "BudgetExceededError" && /on their own line/.test(error.message));
  assert.equal(await settled(budget.reserve(30, batch)), "granted", "what still fits is granted at once");
  batch.leave();
  assert.deepEqual(budget.status(), { limitBytes: 100, reservedBytes: 0, waiting: 0 });
});
