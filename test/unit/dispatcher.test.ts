import { test } from "node:test";
import assert from "node:assert/strict";
import { dispatch, formatSeconds } from "../../src/plugins/dispatcher.js";
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
const ctx = (signal: AbortSignal) => ({ signal }) as unknown as ToolContext;
const never = () => new AbortController().signal;

test("ok and isError outcomes", async () => {
  const ok = await dispatch(plugin(async () => ({ content: [{ type: "text", text: "hi" }] })), "t", {}, ctx, { timeoutMs: 1000, signal: never() });
  assert.equal(ok.kind, "ok");
  const failed = await dispatch(plugin(async () => ({ content: [{ type: "text", text: "bad input" }], isError: true })), "t", {}, ctx, {
    timeoutMs: 1000,
    signal: never(),
  });
  assert.deepEqual(failed.kind === "tool-error" && failed.reason, "bad input");
});

test("ToolError, CapabilityDeniedError and crashes are told apart", async () => {
  const toolError = await dispatch(plugin(() => Promise.reject(new ToolError("fix it"))), "t", {}, ctx, { timeoutMs: 1000, signal: never() });
  assert.equal(toolError.kind, "tool-error");
  const denied = await dispatch(plugin(() => Promise.reject(new CapabilityDeniedError("PATH_DENIED", "no"))), "t", {}, ctx, {
    timeoutMs: 1000,
    signal: never(),
  });
  assert.deepEqual(denied, { kind: "denied", code: "PATH_DENIED", reason: "no" });
  const crashed = await dispatch(plugin(() => Promise.reject(new TypeError("boom"))), "t", {}, ctx, { timeoutMs: 1000, signal: never() });
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
    { timeoutMs: 50, signal: never() },
  );
  assert.deepEqual(outcome, { kind: "timeout", timeoutMs: 50 });
  assert.ok(sawAbort, "the plugin's signal fired");
});

test("the caller's signal cancels, also when already aborted", async () => {
  const controller = new AbortController();
  const pending = dispatch(plugin(() => new Promise(() => undefined)), "t", {}, ctx, { timeoutMs: 5000, signal: controller.signal });
  controller.abort(new Error("client cancelled"));
  assert.deepEqual(await pending, { kind: "cancelled", reason: "client cancelled" });
  const again = await dispatch(plugin(async () => ({})), "t", {}, ctx, { timeoutMs: 5000, signal: controller.signal });
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
    { timeoutMs: 20, signal: never() },
  );
  assert.equal(outcome.kind, "timeout");
  await new Promise((resolve) => setTimeout(resolve, 20));
});

test("formatSeconds", () => {
  assert.equal(formatSeconds(30_000), "30 s");
  assert.equal(formatSeconds(1500), "1.5 s");
});

test("with the caller's abort, one signal serves the deadline and cancellation", async () => {
  const controller = new AbortController();
  let seen: AbortSignal | undefined;
  const outcome = await dispatch(
    plugin((signal) => {
      seen = signal;
      return new Promise(() => undefined);
    }),
    "t",
    {},
    ctx,
    { timeoutMs: 30, signal: controller.signal, abort: (reason) => controller.abort(reason) },
  );
  assert.deepEqual(outcome, { kind: "timeout", timeoutMs: 30 });
  assert.equal(seen, controller.signal, "the plugin got the caller's own signal");
  assert.ok(controller.signal.aborted);

  const second = new AbortController();
  const pending = dispatch(plugin(() => new Promise(() => undefined)), "t", {}, ctx, {
    timeoutMs: 5000,
    signal: second.signal,
    abort: (reason) => second.abort(reason),
  });
  second.abort(new Error("client cancelled"));
  assert.deepEqual(await pending, { kind: "cancelled", reason: "client cancelled" });
});
