/**
 * Runs one tool call in its plugin under a deadline and the call's abort scope.
 * The response never waits on a plugin that ignores its signal: on deadline or
 * cancellation the dispatcher answers at once and lets the plugin's promise go.
 */
import { CapabilityDeniedError, ToolError, type JsonObject, type Plugin, type ToolContext, type ToolOutcome } from "./contract.js";
import type { AbortWatcher, CallAbort } from "../util/call-abort.js";

export type DispatchOutcome =
  | { kind: "ok"; outcome: ToolOutcome }
  | { kind: "tool-error"; outcome: ToolOutcome; reason: string }
  | { kind: "denied"; code: string; reason: string }
  /** `timeoutMs` is the tool's time limit; `beforeStart`: it was used up before the plugin could start, which then never ran. */
  | { kind: "timeout"; timeoutMs: number; beforeStart?: true }
  | { kind: "cancelled"; reason: string }
  | { kind: "crashed"; error: unknown };

export interface DispatchOptions {
  /** The tool's time limit: what a timeout reports. */
  timeoutMs: number;
  /**
   * What is left of that limit (the checks before dispatch used the rest); the deadline's timer
   * and ctx.deadline count this. Default: `timeoutMs`. Nothing left: the plugin is not started.
   */
  leftMs?: number;
  /**
   * The call's abort scope: client cancellation and shutdown abort it, and the deadline
   * aborts it too, so the plugin's signal fires in every case.
   */
  scope: CallAbort;
}

class DeadlineError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`timed out after ${formatSeconds(timeoutMs)}`);
    this.name = "TimeoutError";
  }
}

export function formatSeconds(ms: number): string {
  const seconds = ms / 1000;
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}

/**
 * Settles with the first of: the plugin's outcome, the deadline, an abort. It runs once
 * per call, so its state is one object that is also the abort watcher and the timer's
 * argument, with no Promise.race, event listeners or per-call closures beyond the two
 * the plugin's promise needs: those allocations were a measurable part of a cheap call.
 */
export function dispatch(
  plugin: Plugin,
  tool: string,
  args: JsonObject,
  makeContext: (scope: CallAbort, deadline: number) => ToolContext,
  options: DispatchOptions,
): Promise<DispatchOutcome> {
  const { scope, timeoutMs } = options;
  const leftMs = options.leftMs ?? timeoutMs;
  if (scope.aborted) return Promise.resolve(abortOutcome(scope.reason));
  // Started with no time left, a plugin would be aborted at once, or run past its deadline
  // (Node arms no timer shorter than a millisecond).
  if (!(leftMs >= 1)) return Promise.resolve({ kind: "timeout", timeoutMs, beforeStart: true });
  const outcome = new Promise<DispatchOutcome>(captureResolve);
  // The plugin's view of the timer armed here (ctx.deadline), in epoch milliseconds.
  const deadline = Date.now() + leftMs;
  const run = new DispatchRun(scope, takeCaptured(), timeoutMs, leftMs);
  let running: Promise<ToolOutcome>;
  try {
    running = plugin.execute(tool, args, makeContext(scope, deadline));
  } catch (error) {
    // A plugin that throws instead of rejecting is treated the same.
    run.failed(error);
    return outcome;
  }
  Promise.resolve(running).then(
    (result) => run.settle(resultOutcome(result)),
    (error: unknown) => run.failed(error),
  );
  return outcome;
}

type Resolve = (outcome: DispatchOutcome) => void;

// The Promise executor runs synchronously: it hands its resolve function over through
// this slot, so no executor closure is made per call.
let captured: Resolve | undefined;
const captureResolve = (resolve: Resolve): void => {
  captured = resolve;
};
function takeCaptured(): Resolve {
  const resolve = captured as Resolve;
  captured = undefined;
  return resolve;
}

class DispatchRun implements AbortWatcher {
  private settled = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly scope: CallAbort,
    private readonly resolve: Resolve,
    readonly timeoutMs: number,
    leftMs: number,
  ) {
    // The timer first: a watcher told at once (an aborted scope) settles, and must find it to clear.
    this.timer = setTimeout(deadlinePassed, leftMs, this);
    scope.watch(this);
  }

  abortFired(reason: unknown): void {
    this.settle(abortOutcome(reason));
  }

  deadline(): void {
    this.scope.abort(new DeadlineError(this.timeoutMs));
  }

  failed(error: unknown): void {
    this.settle(this.scope.aborted ? abortOutcome(this.scope.reason) : errorOutcome(error));
  }

  settle(outcome: DispatchOutcome): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.scope.unwatch(this);
    this.resolve(outcome);
  }
}

function deadlinePassed(run: DispatchRun): void {
  run.deadline();
}

function resultOutcome(outcome: ToolOutcome): DispatchOutcome {
  try {
    // Not an outcome object at all (undefined, a string, a list): a bug, not a success with no content.
    if (typeof outcome !== "object" || outcome === null || Array.isArray(outcome)) {
      return { kind: "crashed", error: new TypeError(`the tool resolved with ${outcome === null ? "null" : Array.isArray(outcome) ? "a list" : `a ${typeof outcome}`}, not an outcome object`) };
    }
    // `isError: "yes"` must not pass as a success, nor as an error the tool never meant.
    const { isError } = outcome as { isError?: unknown };
    if (isError !== undefined && typeof isError !== "boolean") {
      return { kind: "crashed", error: new TypeError(`the tool's isError is a ${typeof isError}, not a boolean`) };
    }
    return isError === true ? { kind: "tool-error", outcome, reason: firstText(outcome) } : { kind: "ok", outcome };
  } catch (error) {
    // Content that is not a list, or a getter that throws.
    return { kind: "crashed", error };
  }
}

function abortOutcome(reason: unknown): DispatchOutcome {
  return reason instanceof DeadlineError ? { kind: "timeout", timeoutMs: reason.timeoutMs } : { kind: "cancelled", reason: reasonOf(reason) };
}

function errorOutcome(error: unknown): DispatchOutcome {
  if (error instanceof CapabilityDeniedError) return { kind: "denied", code: error.code, reason: error.message };
  if (error instanceof ToolError) {
    return { kind: "tool-error", outcome: { content: [{ type: "text", text: error.message }], isError: true }, reason: error.message };
  }
  return { kind: "crashed", error };
}

function reasonOf(reason: unknown): string {
  if (reason instanceof Error) return reason.message;
  return typeof reason === "string" ? reason : "cancelled";
}

function firstText(outcome: ToolOutcome): string {
  const block = outcome.content?.find((item) => item.type === "text");
  return block && block.type === "text" ? block.text.slice(0, 500) : "the tool reported an error";
}
