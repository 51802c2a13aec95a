import { test } from "node:test";
import assert from "node:assert/strict";
import { dispatch, formatSeconds } from "../../src/plugins/dispatcher.js";
import { LazyAbort, type CallAbort } from "../../src/util/call-abort.js";
import { CapabilityDeniedError, ToolError, type Plugin, type ToolContext } from "../../src/plugins/contract.js";

function plugin(run: (signal: AbortSignal) => Promise<unknown>): Plugin {
  return {
    name: "p",
    version: "1",
    description: "d",
    tools: [],
    execute: async (_tool, _args, ctx) => (await run(ctx.signal)) as never,
  };
}
const ctx = (scope: CallAbort) => ({ signal: scope.signal }) as unknown as ToolContext;
const never = () => new LazyAbort();

test("ok and isError outcomes", async () => {
  const ok = await dispatch(plugin(async () => ({ content: [{ type: "text", text: "hi" }] })), "t", {}, ctx, { timeoutMs: 1000, scope: never() });
  assert.equal(ok.kind, "ok");
  const failed = await dispatch(plugin(async () => ({ content: [{ type: "text", text: "bad input" }], isError: true })), "t", {}, ctx, {
    timeoutMs: 1000,
    scope: never(),
  });
  assert.deepEqual(failed.kind === "tool-error" && failed.reason, "bad input");
});

test("ToolError, CapabilityDeniedError and crashes are told apart", async () => {
  const toolError = await dispatch(plugin(() => Promise.reject(new ToolError("fix it"))), "t", {}, ctx, { timeoutMs: 1000, scope: never() });
  assert.equal(toolError.kind, "tool-error");
  const denied = await dispatch(plugin(() => Promise.reject(new CapabilityDeniedError("PATH_DENIED", "no"))), "t", {}, ctx, {
    timeoutMs: 1000,
    scope: never(),
  });
  assert.deepEqual(denied, { kind: "denied", code: "PATH_DENIED", reason: "no" });
  const crashed = await dispatch(plugin(() => Promise.reject(new TypeError("boom"))), "t", {}, ctx, { timeoutMs: 1000, scope: never() });
  assert.equal(crashed.kind, "crashed");
});

test("a plugin that ignores its signal cannot hold back the deadline", async () => {
  let sawAbort = false;
  const outcome = await dispatch(
    plugin((signal) => {
      signal.addEventListener("abort", () => (sawAbort = true));
      return new Promise(() => undefined); // never settles
    }),
    "t",
    {},
    ctx,
    { timeoutMs: 50, scope: never() },
  );
  assert.deepEqual(outcome, { kind: "timeout", timeoutMs: 50 });
  assert.ok(sawAbort, "the plugin's signal fired");
});

test("the caller's signal cancels, also when already aborted", async () => {
  const controller = new AbortController();
  const pending = dispatch(plugin(() => new Promise(() => undefined)), "t", {}, ctx, { timeoutMs: 5000, scope: LazyAbort.following(controller.signal) });
  controller.abort(new Error("client cancelled"));
  assert.deepEqual(await pending, { kind: "cancelled", reason: "client cancelled" });
  const again = await dispatch(plugin(async () => ({})), "t", {}, ctx, { timeoutMs: 5000, scope: LazyAbort.following(controller.signal) });
  assert.equal(again.kind, "cancelled");
});

test("a rejection after the deadline is swallowed, not unhandled", async () => {
  const outcome = await dispatch(
    plugin(
      (signal) =>
        new Promise((_, reject) => {
          signal.addEventListener("abort", () => setTimeout(() => reject(new Error("late")), 5));
        }),
    ),
    "t",
    {},
    ctx,
    { timeoutMs: 20, scope: never() },
  );
  assert.equal(outcome.kind, "timeout");
  await new Promise((resolve) => setTimeout(resolve, 20));
});

test("formatSeconds", () => {
  assert.equal(formatSeconds(30_000), "30 s");
  assert.equal(formatSeconds(1500), "1.5 s");
});

test("one scope serves the deadline and cancellation; the plugin's signal is made only when read", async () => {
  const scope = new LazyAbort();
  let seen: AbortSignal | undefined;
  const outcome = await dispatch(
    plugin((signal) => {
      seen = signal;
      return new Promise(() => undefined);
    }),
    "t",
    {},
    ctx,
    { timeoutMs: 30, scope },
  );
  assert.deepEqual(outcome, { kind: "timeout", timeoutMs: 30 });
  assert.equal(seen, scope.signal, "the plugin got the scope's own signal");
  assert.ok(scope.aborted && seen?.aborted, "the deadline aborted the scope and the plugin's signal");

  const second = new LazyAbort();
  const pending = dispatch(plugin(() => new Promise(() => undefined)), "t", {}, ctx, { timeoutMs: 5000, scope: second });
  second.abort(new Error("client cancelled"));
  assert.deepEqual(await pending, { kind: "cancelled", reason: "client cancelled" });
});

test("a plugin that returns no outcome object, or throws synchronously, is a crash", async () => {
  const empty = await dispatch({ ...plugin(async () => undefined) }, "t", {}, ctx, { timeoutMs: 1000, scope: never() });
  assert.equal(empty.kind, "crashed");
  const throwing: Plugin = { ...plugin(async () => ({})), execute: () => { throw new TypeError("sync boom"); } };
  const thrown = await dispatch(throwing, "t", {}, ctx, { timeoutMs: 1000, scope: never() });
  assert.equal(thrown.kind === "crashed" && (thrown.error as Error).message, "sync boom");
});

test("LazyAbort: listeners run once, removers work, a late signal is already aborted", () => {
  const scope = new LazyAbort();
  const heard: unknown[] = [];
  const remove = scope.onAbort((reason) => heard.push(["removed", reason]));
  scope.onAbort((reason) => heard.push(reason));
  remove();
  scope.abort("first");
  scope.abort("second");
  assert.deepEqual([...heard], ["first"]);
  assert.equal(scope.signal.aborted, true);
  assert.equal(scope.signal.reason, "first");
  scope.onAbort((reason) => heard.push(["late", reason]));
  assert.deepEqual([...heard], ["first", ["late", "first"]]);

  const bare = new LazyAbort();
  bare.abort(undefined);
  assert.ok(bare.reason instanceof DOMException && bare.reason.name === "AbortError");

  const outer = new AbortController();
  const following = LazyAbort.following(outer.signal);
  assert.equal(following.aborted, false);
  outer.abort("gone");
  assert.equal(following.reason, "gone");
});

test("LazyAbort: a throwing listener stops neither the other listeners nor the signal; the error is reported", async () => {
  const reported: unknown[] = [];
  process.setUncaughtExceptionCaptureCallback((error) => reported.push(error));
  try {
    const scope = new LazyAbort();
    const early = scope.signal;
    const heard: string[] = [];
    scope.onAbort(() => {
      throw new Error("listener bug");
    });
    scope.onAbort(() => heard.push("second"));
    scope.abort("stop");
    assert.deepEqual(heard, ["second"]);
    assert.equal(early.aborted, true, "a signal made before the abort fires too");
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal((reported[0] as Error | undefined)?.message, "listener bug");
  } finally {
    process.setUncaughtExceptionCaptureCallback(null);
  }
});

test("LazyAbort: watchers and listeners are told in the order they came, removed ones are not, late ones at once", () => {
  const scope = new LazyAbort();
  const heard: string[] = [];
  const watcher = (name: string) => ({ abortFired: (reason: unknown) => heard.push(`${name}:${String(reason)}`) });
  const first = watcher("first");
  const gone = watcher("gone");
  scope.watch(first);
  scope.unwatch(gone); // never watched: ignored
  scope.watch(gone);
  const removeListener = scope.onAbort((reason) => heard.push(`removed:${String(reason)}`));
  scope.onAbort((reason) => heard.push(`listener:${String(reason)}`));
  scope.unwatch(gone);
  removeListener();
  scope.watch(watcher("last"));
  scope.abort("why");
  scope.abort("again");
  assert.deepEqual(heard, ["first:why", "listener:why", "last:why"]);
  scope.watch(watcher("late"));
  assert.deepEqual(heard.at(-1), "late:why");

  // One watcher removed before another comes: the field is reused, nothing is told twice.
  const single = new LazyAbort();
  const told: string[] = [];
  const a = { abortFired: () => told.push("a") };
  single.watch(a);
  single.unwatch(a);
  single.watch({ abortFired: () => told.push("b") });
  single.abort(undefined);
  assert.deepEqual(told, ["b"]);
});

test("a call that settles stops watching its scope and clears its deadline", async () => {
  const scope = new LazyAbort();
  const outcome = await dispatch(plugin(async () => ({ content: [] })), "t", {}, ctx, { timeoutMs: 60_000, scope });
  assert.equal(outcome.kind, "ok");
  const heard: unknown[] = [];
  scope.onAbort((reason) => heard.push(reason));
  scope.abort("after");
  // Only the listener added after the call: the finished call's watcher is gone. (A live
  // 60 s timer would also keep this test process from ending.)
  assert.deepEqual(heard, ["after"]);
});

test("the context's deadline is when the call's timer ends, in epoch milliseconds", async () => {
  let seen: number | undefined;
  const before = Date.now();
  const outcome = await dispatch(
    { ...plugin(async () => ({ content: [] })), execute: async (_tool, _args, context) => ((seen = context.deadline), { content: [] }) },
    "t",
    {},
    (scope, deadline) => ({ signal: scope.signal, deadline }) as unknown as ToolContext,
    { timeoutMs: 5000, scope: never() },
  );
  const after = Date.now();
  assert.equal(outcome.kind, "ok");
  assert.ok(seen !== undefined && seen >= before + 5000 && seen <= after + 5000, `deadline ${String(seen)} within [${before + 5000}, ${after + 5000}]`);
});

test("the deadline's timer counts what is left of the limit; a timeout reports the limit; nothing left: the plugin is not started", async () => {
  let seenDeadline = 0;
  let startedAt = 0;
  const outcome = await dispatch(
    plugin(() => new Promise(() => undefined)),
    "t",
    {},
    (scope, deadline) => {
      seenDeadline = deadline;
      startedAt = Date.now();
      return ctx(scope);
    },
    { timeoutMs: 30_000, leftMs: 20, scope: never() },
  );
  assert.deepEqual(outcome, { kind: "timeout", timeoutMs: 30_000 });
  assert.ok(seenDeadline - startedAt <= 20, `ctx.deadline ${seenDeadline - startedAt} ms after the start`);

  let started = false;
  for (const leftMs of [0, -5, 0.5, Number.NaN]) {
    const none = await dispatch(
      plugin(async () => {
        started = true;
        return {};
      }),
      "t",
      {},
      ctx,
      { timeoutMs: 1000, leftMs, scope: never() },
    );
    assert.deepEqual(none, { kind: "timeout", timeoutMs: 1000, beforeStart: true }, String(leftMs));
  }
  assert.equal(started, false);
  // A cancelled call is still cancelled, not timed out, whatever time is left.
  const scope = new LazyAbort();
  scope.abort(new Error("client cancelled"));
  assert.deepEqual(await dispatch(plugin(async () => ({})), "t", {}, ctx, { timeoutMs: 1000, leftMs: 0, scope }), { kind: "cancelled", reason: "client cancelled" });
});
