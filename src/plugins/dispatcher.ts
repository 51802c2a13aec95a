/**
 * Runs one tool call in its plugin under a deadline and the caller's AbortSignal.
 * The response never waits on a plugin that ignores its signal: on deadline or
 * cancellation the dispatcher answers at once and lets the plugin's promise go.
 */
import { CapabilityDeniedError, ToolError, type JsonObject, type Plugin, type ToolContext, type ToolOutcome } from "./contract.js";

export type DispatchOutcome =
  | { kind: "ok"; outcome: ToolOutcome }
  | { kind: "tool-error"; outcome: ToolOutcome; reason: string }
  | { kind: "denied"; code: string; reason: string }
  | { kind: "timeout"; timeoutMs: number }
  | { kind: "cancelled"; reason: string }
  | { kind: "crashed"; error: unknown };

export interface DispatchOptions {
  timeoutMs: number;
  /** The caller's signal: client cancellation or shutdown. */
  signal: AbortSignal;
  /**
   * Aborts the caller's signal. When given, the deadline fires that same signal, so a
   * call costs one AbortController instead of two linked ones (they are not cheap).
   */
  abort?: (reason: unknown) => void;
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

export async function dispatch(
  plugin: Plugin,
  tool: string,
  args: JsonObject,
  makeContext: (signal: AbortSignal) => ToolContext,
  options: DispatchOptions,
): Promise<DispatchOutcome> {
  if (options.signal.aborted) return { kind: "cancelled", reason: reasonOf(options.signal.reason) };
  let signal: AbortSignal;
  let abort: (reason: unknown) => void;
  let unlink: (() => void) | undefined;
  if (options.abort) {
    signal = options.signal;
    abort = options.abort;
  } else {
    const controller = new AbortController();
    const outer = options.signal;
    const forward = () => controller.abort(outer.reason);
    outer.addEventListener("abort", forward, { once: true });
    unlink = () => outer.removeEventListener("abort", forward);
    signal = controller.signal;
    abort = (reason) => controller.abort(reason);
  }

  let settleAbort!: (outcome: DispatchOutcome) => void;
  const aborted = new Promise<DispatchOutcome>((resolve) => (settleAbort = resolve));
  signal.addEventListener(
    "abort",
    () => {
      const reason: unknown = signal.reason;
      settleAbort(reason instanceof DeadlineError ? { kind: "timeout", timeoutMs: reason.timeoutMs } : { kind: "cancelled", reason: reasonOf(reason) });
    },
    { once: true },
  );
  const timer = setTimeout(() => abort(new DeadlineError(options.timeoutMs)), options.timeoutMs);

  const running = (async (): Promise<DispatchOutcome> => {
    try {
      const outcome = await plugin.execute(tool, args, makeContext(signal));
      if (outcome.isError === true) return { kind: "tool-error", outcome, reason: firstText(outcome) };
      return { kind: "ok", outcome };
    } catch (error) {
      if (signal.aborted) return aborted;
      if (error instanceof CapabilityDeniedError) return { kind: "denied", code: error.code, reason: error.message };
      if (error instanceof ToolError) {
        return { kind: "tool-error", outcome: { content: [{ type: "text", text: error.message }], isError: true }, reason: error.message };
      }
      return { kind: "crashed", error };
    }
  })();

  try {
    return await Promise.race([running, aborted]);
  } finally {
    clearTimeout(timer);
    unlink?.();
  }
}

function reasonOf(reason: unknown): string {
  if (reason instanceof Error) return reason.message;
  return typeof reason === "string" ? reason : "cancelled";
}

function firstText(outcome: ToolOutcome): string {
  const block = outcome.content?.find((item) => item.type === "text");
  return block && block.type === "text" ? block.text.slice(0, 500) : "the tool reported an error";
}
