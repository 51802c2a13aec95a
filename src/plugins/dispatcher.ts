/**
 * Runs one tool call in its plugin under a deadline and the call's abort scope.
 * The response never waits on a plugin that ignores its signal: on deadline or
 * cancellation the dispatcher answers at once and lets the plugin's promise go.
 */
import { CapabilityDeniedError, ToolError, type JsonObject, type Plugin, type ToolContext, type ToolOutcome } from "./contract.js";
import type { CallAbort } from "../util/call-abort.js";

export type DispatchOutcome =
  | { kind: "ok"; outcome: ToolOutcome }
  | { kind: "tool-error"; outcome: ToolOutcome; reason: string }
  | { kind: "denied"; code: string; reason: string }
  | { kind: "timeout"; timeoutMs: number }
  | { kind: "cancelled"; reason: string }
  | { kind: "crashed"; error: unknown };

export interface DispatchOptions {
  timeoutMs: number;
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
 * Settles with the first of: the plugin's outcome, the deadline, an abort. Written with
 * one promise and plain callbacks (no Promise.race, no event listeners): it runs once
 * per call, and those allocations were a measurable part of a cheap call.
 */
export function dispatch(
  plugin: Plugin,
  tool: string,
  args: JsonObject,
  makeContext: (scope: CallAbort) => ToolContext,
  options: DispatchOptions,
): Promise<DispatchOutcome> {
  const { scope, timeoutMs } = options;
  if (scope.aborted) return Promise.resolve(abortOutcome(scope.reason));
  return new Promise<DispatchOutcome>((resolve) => {
    let settled = false;
    const settle = (outcome: DispatchOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      removeListener();
      resolve(outcome);
    };
    const removeListener = scope.onAbort((reason) => settle(abortOutcome(reason)));
    const timer = setTimeout(() => scope.abort(new DeadlineError(timeoutMs)), timeoutMs);
    let running: Promise<ToolOutcome>;
    try {
      running = plugin.execute(tool, args, makeContext(scope));
    } catch (error) {
      // A plugin that throws instead of rejecting is treated the same.
      settle(scope.aborted ? abortOutcome(scope.reason) : errorOutcome(error));
      return;
    }
    Promise.resolve(running).then(
      (outcome) => settle(resultOutcome(outcome)),
      (error: unknown) => settle(scope.aborted ? abortOutcome(scope.reason) : errorOutcome(error)),
    );
  });
}

function resultOutcome(outcome: ToolOutcome): DispatchOutcome {
  try {
    return outcome.isError === true ? { kind: "tool-error", outcome, reason: firstText(outcome) } : { kind: "ok", outcome };
  } catch (error) {
    // Not an outcome object at all (undefined, or content that is not a list).
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
