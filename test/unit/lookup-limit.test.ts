/** Name lookups never hold more than their share of libuv's thread pool. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { limitLookups } from "../../src/security/capabilities/lookup-limit.js";

/** A resolver whose answers the test gives, one name at a time. */
function heldResolver() {
  const started: string[] = [];
  const pending = new Map<string, { resolve: (value: string) => void; reject: (error: Error) => void }>();
  const resolve = (hostname: string): Promise<string> => {
    started.push(hostname);
    return new Promise<string>((ok, fail) => pending.set(hostname, { resolve: ok, reject: fail }));
  };
  const answer = (hostname: string, value = `addr-of-${hostname}`) => {
    pending.get(hostname)!.resolve(value);
    pending.delete(hostname);
  };
  const fail = (hostname: string) => {
    pending.get(hostname)!.reject(Object.assign(new Error("getaddrinfo ENOTFOUND"), { code: "ENOTFOUND" }));
    pending.delete(hostname);
  };
  return { started, resolve, answer, fail };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test("at most `max` lookups run at once; the rest start in order as slots free up", async () => {
  const r = heldResolver();
  const lookup = limitLookups(r.resolve, 2);
  const answers = ["a", "b", "c", "d"].map((name) => lookup(name));
  const settling = Promise.allSettled(answers);
  await tick();
  assert.deepEqual(r.started, ["a", "b"], "two hung lookups hold both slots");
  r.answer("b");
  await tick();
  assert.deepEqual(r.started, ["a", "b", "c"]);
  r.fail("a");
  await tick();
  assert.deepEqual(r.started, ["a", "b", "c", "d"], "a failed lookup frees its slot too");
  r.answer("c");
  r.answer("d");
  const settled = await settling;
  assert.deepEqual(
    settled.map((s) => (s.status === "fulfilled" ? s.value : (s.reason as Error).message)),
    ["getaddrinfo ENOTFOUND", "addr-of-b", "addr-of-c", "addr-of-d"],
  );
  // Everything settled: the slots are free again.
  const again = lookup("e");
  await tick();
  assert.deepEqual(r.started.at(-1), "e");
  r.answer("e");
  assert.equal(await again, "addr-of-e");
});

test("calls for a name being looked up (or waiting to be) share one lookup", async () => {
  const r = heldResolver();
  const lookup = limitLookups(r.resolve, 1);
  const first = lookup("busy");
  const waitingA = lookup("later");
  const waitingB = lookup("later");
  const second = lookup("busy");
  await tick();
  assert.deepEqual(r.started, ["busy"]);
  r.answer("busy");
  assert.deepEqual(await Promise.all([first, second]), ["addr-of-busy", "addr-of-busy"]);
  await tick();
  assert.deepEqual(r.started, ["busy", "later"], "one lookup for both callers");
  r.answer("later");
  assert.deepEqual(await Promise.all([waitingA, waitingB]), ["addr-of-later", "addr-of-later"]);
  // Once answered, the next call looks up afresh (nothing is cached).
  const fresh = lookup("busy");
  await tick();
  assert.deepEqual(r.started, ["busy", "later", "busy"]);
  r.answer("busy", "new-addr");
  assert.equal(await fresh, "new-addr");
});

test("a caller whose call ends stops waiting at once; the lookup goes on for the others", async () => {
  const r = heldResolver();
  const lookup = limitLookups(r.resolve, 1);
  const call = new AbortController();
  const abandoned = lookup("slow", call.signal);
  const other = lookup("slow");
  await tick();
  call.abort(new Error("the call timed out"));
  await assert.rejects(abandoned, /the call timed out/);
  r.answer("slow");
  assert.equal(await other, "addr-of-slow");
  await assert.rejects(lookup("x", AbortSignal.abort()), /abort/i);
});

test("a caller whose call has already ended starts no lookup, and leaves no rejection unhandled", async () => {
  const r = heldResolver();
  const lookup = limitLookups(r.resolve, 1);
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    await assert.rejects(lookup("gone", AbortSignal.abort(new Error("the call timed out"))), /the call timed out/);
    await tick();
    // Before, a lookup started for no one, and its failure rejected a promise no one held
    // (an unhandled rejection ends the process).
    for (const name of [...r.started]) r.fail(name);
    await tick();
    assert.deepEqual(unhandled, []);
    assert.deepEqual(r.started, [], "no lookup for a call that has ended");
    const later = lookup("gone");
    await tick();
    r.fail("gone");
    await assert.rejects(later, /ENOTFOUND/);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});

test("a lookup every caller gave up on while it waited for a slot does not run: later calls are not held behind it", async () => {
  const r = heldResolver();
  const lookup = limitLookups(r.resolve, 1);
  const held = lookup("hung");
  // Calls for other names (a wildcard lets them be many) wait, then end.
  const calls = ["a.example.com", "b.example.com"].map(() => new AbortController());
  const abandoned = ["a.example.com", "b.example.com"].map((name, i) => lookup(name, calls[i]!.signal));
  const shared = new AbortController();
  const kept = [lookup("c.example.com", shared.signal), lookup("c.example.com")];
  shared.abort(new Error("the call timed out")); // one of c's two callers still waits
  for (const call of calls) call.abort(new Error("the call timed out"));
  for (const promise of abandoned) await assert.rejects(promise, /the call timed out/);
  await assert.rejects(kept[0]!, /the call timed out/);
  const later = lookup("d.example.com");
  await tick();
  r.answer("hung");
  assert.equal(await held, "addr-of-hung");
  await tick();
  assert.deepEqual(r.started, ["hung", "c.example.com"], "a and b were skipped");
  r.answer("c.example.com");
  assert.equal(await kept[1]!, "addr-of-c.example.com");
  await tick();
  assert.deepEqual(r.started.at(-1), "d.example.com");
  r.answer("d.example.com");
  assert.equal(await later, "addr-of-d.example.com");
});
