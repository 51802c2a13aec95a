/**
 * The security engine: the only way from a `tools/call` to a plugin.
 *
 * Every call goes through `callTool`, whose stages run in this order and each of
 * which can refuse the call before the plugin is reached:
 *
 *   1. the tool is known and allowed by the policy
 *   2. rate limit (at most N calls per tool in any 60 s)
 *   3. argument limits (size, depth, string and array length)
 *   4. argument validation against the tool's JSON Schema (collects `x-path` values)
 *   5. path guard on every `x-path` argument
 *   6. redaction of the arguments, then the chained audit entry (`tool_call`), durable first
 *   7. dispatch to the plugin under the caller's AbortSignal and the call's deadline: the tool's
 *      time limit counts from admission, so the path checks and the audit entry spend it too
 *   8. output check: structured content against the output schema, text copy, sanitizing
 *   9. the audit entry of the outcome (`tool_result`), durable before the response
 *
 * A refusal at stages 1–5 is recorded as a `denied` entry and answered with an
 * `isError` result that tells the model why and how to fix the call. If the audit log
 * cannot be written, the call is refused (before the plugin) or its result withheld
 * (after it): nothing runs, and nothing is answered, without its audit entry.
 *
 * The rate limit bounds the entries of every call it counts. The refusals it does not count
 * (stage 1, malformed params, and its own) are recorded by a RefusalLog: one by one up to a
 * number a minute, past it as counts in summary entries (refusal-log.ts).
 */
import type {
  CatalogEntry,
  ContentBlock,
  GuardedExec,
  GuardedFetch,
  GuardedFs,
  JsonObject,
  PluginLogger,
  PluginStorage,
  ProgressUpdate,
  SessionInfo,
  ToolCatalog,
  ToolContext,
  ToolDefinition,
} from "../plugins/contract.js";
import { ToolError } from "../plugins/contract.js";
import { dispatch, formatSeconds, type DispatchOutcome } from "../plugins/dispatcher.js";
import type { PluginRegistry, RegisteredTool } from "../plugins/registry.js";
import type { Logger } from "../util/logger.js";
import { canonicalJson, sha256Hex } from "../util/canonical-json.js";
import { newUlid as ulid } from "../util/ids.js";
import type { EffectivePolicy } from "./policy-types.js";
import type { AuditRecordInput, AuditSink } from "./audit/index.js";
import { checkArgumentLimits } from "./arg-limits.js";
import { checkPath, nodePathIo, type CompiledPathPolicy, type PathIo, type PathVerdict } from "./path-guard.js";
import { createRateLimiter, rateLimitMessage, type RateLimiter } from "./ratelimit.js";
import { argumentDigester, type ArgumentDigester } from "./audit-digest.js";
import { RefusalLog, type RefusalLogOptions } from "./refusal-log.js";
import { redact, redactString } from "./redaction.js";
import { OutputShapeError, sanitizeContent, sanitizeJson, sanitizeText } from "./sanitize.js";
import type { PathArgument, ValidatorSet } from "./validation.js";
import { compileToolAccess } from "./policy/tool-access.js";
import type { CallCapabilities, CapabilityFactory } from "./capabilities/index.js";
import { LazyAbort, type CallAbort } from "../util/call-abort.js";
import { monotonicMs } from "../util/clock.js";
import { jsonTextAnyDepth, serializeOnce } from "../util/json-text.js";
import { cutAt } from "../util/text.js";
import { BudgetExceededError, type BudgetHolder, type ByteBudget } from "../util/byte-budget.js";
import { publishedTool } from "./published-schema.js";

export type RequestId = string | number;

/** A call's progress: reported while the plugin works, finished when its part is over. */
export interface ProgressSink {
  report(update: ProgressUpdate): void;
  /** After this, nothing more is sent (idempotent). */
  finish(): void;
}

export interface ToolCall {
  name: string;
  arguments: JsonObject;
  requestId: RequestId;
  /** The call's abort scope: cancellation and shutdown abort it; the deadline aborts it too. */
  abort: CallAbort;
  /** Where the plugin's progress reports go (the session's reporter for the client's token), if anywhere. */
  progress: ProgressSink | undefined;
  /** Keeps what the call reserves (ctx.reserve) until its response has left; absent: given back at once. */
  holder?: BudgetHolder;
}

export interface CallToolResult {
  content: ContentBlock[];
  structuredContent?: JsonObject;
  isError?: boolean;
}

/** What the protocol layer needs from the engine. */
export interface ToolService {
  /** Resolves when tools may be listed and called (schemas compiled); rejects if they never may. */
  whenReady(): Promise<void>;
  /** True once `whenReady()` has resolved: callers may skip waiting on it. */
  isReady(): boolean;
  listTools(): readonly ToolDefinition[];
  hasTool(name: string): boolean;
  callTool(call: ToolCall): Promise<CallToolResult>;
  /**
   * Records a call to an unknown or hidden tool, which the protocol layer answers with -32602
   * once this settles (the refusal is on record before it is answered: its own entry, or a
   * count in a summary entry, see refusal-log.ts).
   */
  noteUnknownTool?(name: string, requestId: RequestId): Promise<void> | void;
  /**
   * Records a tools/call refused for its params (no tool name, arguments that are not an
   * object), answered with -32602 once this settles: a malformed call is a call too.
   */
  noteInvalidCall?(name: string | undefined, requestId: RequestId, problem: string): Promise<void> | void;
}

export interface EngineOptions {
  policy: EffectivePolicy;
  registry: PluginRegistry;
  audit: AuditSink;
  capabilities: CapabilityFactory;
  paths: CompiledPathPolicy;
  /** The file layer the path guard looks through (tests inject one that hangs). */
  pathIo?: PathIo;
  logger: Logger;
  session: () => SessionInfo;
  /** Monotonic milliseconds. */
  now?: () => number;
  /** Benchmarks only: skip every stage but dispatch. Never reachable from the CLI. */
  unsafeBypass?: boolean;
  /** The memory large results may hold until their responses have left (ctx.reserve); absent: no limit. */
  resultBudget?: ByteBudget;
  /** How refusals the rate limit does not count are recorded; tests set their own (defaults: REFUSALS_RECORDED_PER_MINUTE, a summary a second). */
  refusals?: Partial<Pick<RefusalLogOptions, "perMinute" | "intervalMs" | "maxCounted" | "schedule">>;
}

type Refusal = { stage: string; code: string; message: string };

/** Request ids up to this length are recorded as sent; longer ones by their start and a digest. */
const MAX_RECORDED_ID_LENGTH = 128;

/** Bytes of JSON a refused call's arguments may take and still be recorded as they are (redacted); larger ones as a digest. */
const REFUSED_ARGUMENTS_KEPT_MAX = 8 * 1024;

/**
 * Refusals the rate limit does not count that get an entry each, in any 60 s (server-wide); past
 * it they are counted into summary entries (refusal-log.ts). As many as a tool's default rate
 * limit allows calls: a client that does not misbehave stays well below it.
 */
export const REFUSALS_RECORDED_PER_MINUTE = 60;
/** The least time between two summaries: the longest a refusal past the limit waits for its answer. */
const REFUSAL_SUMMARY_INTERVAL_MS = 1000;
/**
 * Refusals one summary counts at most (written at once when so many wait): a quarter of the
 * default in-flight limit, so a burst of refusals held for their summary never fills the slots.
 */
const REFUSALS_PER_SUMMARY = 64;

/** REFUSALS_PER_SUMMARY for a connection running `maxInFlight` requests at once: at most a quarter of them, at least 1. */
export function refusalsPerSummary(maxInFlight: number): number {
  return Math.max(1, Math.min(REFUSALS_PER_SUMMARY, Math.floor(maxInFlight / 4)));
}

/** Refusals at these stages are not counted by the rate limit: the RefusalLog bounds their entries. */
const UNCOUNTED_STAGES: ReadonlySet<string> = new Set(["access", "rate_limit"]);

/**
 * A request id as the audit log records it. The client chooses its ids, and JSON-RPC sets no
 * length: recorded whole, an id of 16 MiB would be 16 MiB of log for every call, refused ones
 * too (bounding the number of entries does not bound their size). A long id keeps its start,
 * to be read, and its SHA-256, to be matched with the client's own records.
 */
function recordedRequestId(id: RequestId): RequestId {
  if (typeof id === "number") return id;
  // A client chooses its ids: one may carry a token like any argument.
  const redacted = redactString(id).value;
  if (redacted.length <= MAX_RECORDED_ID_LENGTH) return redacted;
  return `${cutAt(redacted, 32)}…sha256:${sha256Hex(redacted)}`;
}

/** The SHA-256 of the tool catalogue as clients see it; recorded at start in the audit log. */
export function catalogSha256(tools: readonly ToolDefinition[]): string {
  return sha256Hex(canonicalJson(tools));
}

/** The registered tools the policy allows, in registration order. */
export function allowedTools(registry: PluginRegistry, tools: EffectivePolicy["tools"]): RegisteredTool[] {
  const isAllowed = compileToolAccess(tools);
  return registry.tools().filter((entry) => isAllowed(entry.tool.name));
}

export class SecurityEngine implements ToolService {
  private readonly allowed = new Map<string, RegisteredTool>();
  private readonly listed: readonly ToolDefinition[];
  private published: readonly ToolDefinition[] | undefined;
  private validators: ValidatorSet | undefined;
  private ready: Promise<void> | undefined;
  private readonly limiter: RateLimiter;
  private readonly catalog: ToolCatalog;
  private readonly now: () => number;
  private readonly auditing: boolean;
  /** Present when auditing. */
  private readonly refusals: RefusalLog | undefined;
  private readonly pluginLoggers = new Map<string, PluginLogger>();

  constructor(private readonly options: EngineOptions) {
    this.auditing = options.audit.status().enabled;
    this.now = options.now ?? monotonicMs;
    this.refusals = this.auditing
      ? new RefusalLog({
          perMinute: REFUSALS_RECORDED_PER_MINUTE,
          intervalMs: REFUSAL_SUMMARY_INTERVAL_MS,
          maxCounted: REFUSALS_PER_SUMMARY,
          ...options.refusals,
          now: this.now,
          write: (entry) => this.record(entry),
          recordedId: recordedRequestId,
        })
      : undefined;
    for (const entry of allowedTools(options.registry, options.policy.tools)) this.allowed.set(entry.tool.name, entry);
    this.listed = Object.freeze([...this.allowed.values()].map((entry) => entry.tool));
    this.limiter = createRateLimiter(options.policy.tools.rate_limits, [...this.allowed.keys()], options.now);
    // The tools as tools/list shows them (made from the registry's frozen definitions, not the
    // plugins' own `tools` arrays), in frozen entries: every plugin reads this catalogue, and
    // none may change what another one sees. Made on first read, as the list is.
    let entries: readonly CatalogEntry[] | undefined;
    const catalogEntries = (): readonly CatalogEntry[] => {
      const shown = new Map(this.listTools().map((tool) => [tool.name, tool]));
      return Object.freeze(
        options.registry
          .plugins()
          .map((plugin) =>
            Object.freeze({
              plugin: plugin.name,
              version: plugin.version,
              description: plugin.description,
              tools: Object.freeze(this.listed.filter((tool) => this.allowed.get(tool.name)?.plugin === plugin).map((tool) => shown.get(tool.name)!)),
            }),
          )
          .filter((entry) => entry.tools.length > 0),
      );
    };
    this.catalog = { entries: () => (entries ??= catalogEntries()) };
  }

  /**
   * Registers every tool's schemas, once (idempotent): the structural checks run here and
   * a tool that fails them rejects with its name, which stops the server before any tool
   * is served. Validators come precompiled from the build for the built-in tools; any other
   * schema is compiled by Ajv on the tool's first call, and one that does not compile fails
   * that tool's calls closed. The server starts this right after the handshake, off its
   * path (the validation module is a chunk of its own); tools wait for it.
   */
  prepare(): Promise<void> {
    if (this.ready === undefined) {
      this.ready = this.registerSchemas();
      this.ready.catch(() => undefined); // observed by prepare()/whenReady() callers, never unhandled
    }
    return this.ready;
  }

  private async registerSchemas(): Promise<void> {
    const { createValidatorSet } = await import("./validation.js");
    const validators = createValidatorSet({ logger: this.options.logger });
    for (const tool of this.listed) validators.addTool(tool);
    this.validators = validators;
  }

  whenReady(): Promise<void> {
    return this.prepare();
  }

  isReady(): boolean {
    return this.validators !== undefined;
  }

  /** The tools as `tools/list` shows them (see published-schema.ts), made on the first list. */
  listTools(): readonly ToolDefinition[] {
    return (this.published ??= Object.freeze(this.listed.map(publishedTool)));
  }

  /** How many tools the policy lets the client see. */
  get toolCount(): number {
    return this.listed.length;
  }

  hasTool(name: string): boolean {
    return this.allowed.has(name);
  }

  /**
   * Not async itself: the checks before dispatch are synchronous unless a path needs the
   * filesystem, so a call pays for no promise it does not need (the per-call cost matters
   * with many small calls in flight).
   */
  callTool(call: ToolCall): Promise<CallToolResult> {
    try {
      return this.startCall(call);
    } catch (error) {
      // Callers get a rejection, never a synchronous throw, whatever fails before the first await.
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private startCall(call: ToolCall): Promise<CallToolResult> {
    if (this.validators === undefined) return this.prepare().then(() => this.callTool(call));
    // The call's clock starts here: its deadline counts from now, and so does its recorded duration.
    const started = this.now();
    // The call's id is for the audit log; without it, only a plugin that reads ctx.callId makes one.
    const callId = this.auditing ? ulid() : undefined;
    const entry = this.allowed.get(call.name);
    if (entry === undefined) {
      return this.refuse(call, callId, started, refusalOf("access", "TOOL_NOT_ALLOWED", `Tool "${call.name}" is not available in this session.`));
    }
    if (this.options.unsafeBypass) return this.run(entry, call, callId, started).then((outcome) => this.finish(entry, pluginDone(call, outcome)));

    // Stages 1–5: admission. Nothing below runs unless every check passed.
    const admission = this.admit(entry, call, started);
    if (admission instanceof Promise) {
      return admission.then((refusal) => (refusal ? this.refuse(call, callId, started, refusal) : this.admitted(entry, call, callId, started)));
    }
    return admission ? this.refuse(call, callId, started, admission) : this.admitted(entry, call, callId, started);
  }

  private async refuse(call: ToolCall, callId: string | undefined, started: number, refusal: Refusal): Promise<CallToolResult> {
    if (this.auditing) {
      const entry = (): AuditRecordInput => ({
        event: "denied",
        tool: call.name,
        requestId: call.requestId,
        callId,
        ...this.recordedArguments(call, refusal.stage),
        outcome: "denied",
        reason: `${refusal.stage}: ${refusal.message}`,
        durationMs: this.since(started),
      });
      if (UNCOUNTED_STAGES.has(refusal.stage)) {
        await (this.refusals as RefusalLog).record({ stage: refusal.stage, ...this.knownTool(call.name) }, call.requestId, entry);
      } else {
        await this.record(entry()).catch(
          () => undefined, // already refused; the audit failure is reported by record()
        );
      }
    }
    return errorResult(refusal.message);
  }

  private admitted(entry: RegisteredTool, call: ToolCall, callId: string | undefined, started: number): Promise<CallToolResult> {
    if (this.auditing) return this.admittedAudited(entry, call, callId, started);
    // With the audit log off nothing is recorded or redacted: stages 7–8 alone, as a plain
    // promise chain (an async function's suspended state is a measurable part of a cheap call).
    return this.run(entry, call, callId, started).then((outcome) => this.finishOrInternal(entry, pluginDone(call, outcome)));
  }

  private async admittedAudited(entry: RegisteredTool, call: ToolCall, callId: string | undefined, started: number): Promise<CallToolResult> {
    // Stage 6: intent before effect.
    try {
      await this.record({ event: "tool_call", tool: call.name, requestId: call.requestId, callId, arguments: auditedArguments(entry.tool, call.arguments) });
    } catch (error) {
      return errorResult(`The call was refused: ${auditFailure(error)} No tool runs without its audit entry.`);
    }

    // Stages 7–8.
    const outcome = pluginDone(call, await this.run(entry, call, callId, started));
    let result = this.finishOrInternal(entry, outcome);
    let digest: Record<string, unknown>;
    try {
      digest = resultDigest(result);
    } catch (error) {
      // A result JSON cannot carry, or one too large for one string: the client could not be
      // sent it either. The call still ends in an answer and a recorded outcome.
      result = this.internal(entry.tool.name, `its result cannot be sent: ${describeError(error)}`);
      digest = resultDigest(result);
    }

    // Stage 9: the outcome is durable before the response.
    const { label, reason } = describeOutcome(outcome, result);
    try {
      await this.record({
        event: "tool_result",
        tool: call.name,
        requestId: call.requestId,
        callId,
        outcome: label,
        ...(reason === undefined ? {} : { reason }),
        durationMs: this.since(started),
        data: digest,
      });
    } catch (error) {
      return errorResult(`The tool ran, but ${auditFailure(error)} Its result is withheld.`);
    }
    return result;
  }

  /** Stages 1–5. Returns the first refusal, or undefined when the call may run; a promise only when paths are checked. */
  private admit(entry: RegisteredTool, call: ToolCall, started: number): Refusal | undefined | Promise<Refusal | undefined> {
    const name = entry.tool.name;
    const rate = this.limiter.take(name);
    if (!rate.ok) return refusalOf("rate_limit", "RATE_LIMITED", rateLimitMessage(name, rate));

    const limits = checkArgumentLimits(call.arguments, this.options.policy.limits);
    if (!limits.ok) return refusalOf("limits", "ARGUMENTS_TOO_LARGE", `Invalid arguments for tool "${name}": ${limits.message}`);

    const validation = (this.validators as ValidatorSet).validateInput(name, call.arguments);
    if (!validation.ok) return refusalOf("validation", "ARGUMENTS_INVALID", validation.message);
    return validation.paths.length === 0 ? undefined : this.checkPaths(name, validation.paths, this.timeoutMsOf(entry), started, call.abort);
  }

  /**
   * Stage 5. The checks look at the disk, which can hang (a stale network mount): they spend
   * the call's own time (the tool's limit, counted from `started`), and a guard that has not
   * decided when it is up refuses the call, as do checks that took all of it: the tool would
   * have none left. A call cancelled (or aborted by shutdown) meanwhile is refused at once,
   * not held to that deadline.
   */
  private async checkPaths(name: string, paths: readonly PathArgument[], timeoutMs: number, started: number, abort: CallAbort): Promise<Refusal | undefined> {
    const io = this.options.pathIo ?? nodePathIo;
    const expires = started + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<"expired">((resolve) => {
      timer = setTimeout(resolve, Math.max(0, expires - this.now()), "expired");
    });
    let unwatch: (() => void) | undefined;
    const aborted = new Promise<"aborted">((resolve) => {
      unwatch = abort.onAbort(() => resolve("aborted"));
    });
    try {
      for (const path of paths) {
        const verdict: PathVerdict | "expired" | "aborted" = await Promise.race([checkPath(this.options.paths, path.value, path.access, io), expired, aborted]);
        if (verdict === "aborted") {
          return refusalOf("cancelled", "CANCELLED", `Tool "${name}" was cancelled before its arguments were checked (${describeError(abort.reason)}); it did not run.`);
        }
        if (verdict === "expired") {
          return refusalOf(
            "path_guard",
            "PATH_CHECK_TIMEOUT",
            `Argument ${pointerToField(path.pointer)} could not be checked within ${formatSeconds(timeoutMs)}: the filesystem did not answer. The call was refused; try again later.`,
          );
        }
        if (!verdict.ok) return refusalOf("path_guard", verdict.code, `Argument ${pointerToField(path.pointer)} was refused: ${verdict.reason}`);
      }
      // Each check answered, but the last ones late (a slow disk): the timer had not fired yet.
      if (this.now() >= expires) {
        return refusalOf(
          "path_guard",
          "PATH_CHECK_TIMEOUT",
          `Tool "${name}" did not run: checking the paths in its arguments took its whole time limit of ${formatSeconds(timeoutMs)} (the filesystem is slow). Try again later.`,
        );
      }
      return undefined;
    } finally {
      clearTimeout(timer);
      unwatch?.();
    }
  }

  /** The tool's deadline: its own `tools.timeouts` entry, else `tools.timeout`. */
  private timeoutMsOf(entry: RegisteredTool): number {
    const { timeouts, timeout } = this.options.policy.tools;
    const seconds = Object.hasOwn(timeouts, entry.tool.name) ? (timeouts[entry.tool.name] as number) : timeout;
    return Math.max(1, Math.round(seconds * 1000));
  }

  /**
   * Stage 7, with what is left of the call's time: admission and its audit entry spent the
   * rest. A timeout still reports the tool's limit, the time the client waited.
   */
  private run(entry: RegisteredTool, call: ToolCall, callId: string | undefined, started: number): Promise<DispatchOutcome> {
    const timeoutMs = this.timeoutMsOf(entry);
    // Whole milliseconds, as timers count them.
    const leftMs = Math.floor(started + timeoutMs - this.now());
    return dispatch(entry.plugin, entry.tool.name, call.arguments, (scope, deadline) => this.contextFor(entry, call, callId, scope, leftMs, deadline), {
      timeoutMs,
      leftMs,
      scope: call.abort,
    });
  }

  private contextFor(entry: RegisteredTool, call: ToolCall, callId: string | undefined, scope: CallAbort, leftMs: number, deadline: number): ToolContext {
    let logger = this.pluginLoggers.get(entry.plugin.name);
    if (logger === undefined) {
      logger = pluginLogger(this.options.logger.child(entry.plugin.name));
      this.pluginLoggers.set(entry.plugin.name, logger);
    }
    return new CallContext(
      scope,
      callId,
      call.progress,
      logger,
      this.catalog,
      this.options.capabilities,
      leftMs,
      deadline,
      this.options.session,
      this.options.resultBudget,
      call.holder,
    );
  }

  /** Stage 8, where a result that cannot be checked or sent (a cycle, a BigInt) is an internal error, still audited. */
  private finishOrInternal(entry: RegisteredTool, outcome: DispatchOutcome): CallToolResult {
    try {
      return this.finish(entry, outcome);
    } catch (error) {
      return this.internal(entry.tool.name, `its result cannot be sent: ${describeError(error)}`);
    }
  }

  /** Stage 8: turns a dispatch outcome into the client's result. */
  private finish(entry: RegisteredTool, outcome: DispatchOutcome): CallToolResult {
    const name = entry.tool.name;
    switch (outcome.kind) {
      case "ok": {
        const { structuredContent, content } = outcome.outcome;
        // Sanitize first, then validate: what is sent is what conforms.
        const clean = structuredContent === undefined ? undefined : sanitizeStructured(structuredContent);
        if (entry.tool.outputSchema) {
          if (clean === undefined) return this.internal(name, "the tool returned no structured content");
          const check = (this.validators as ValidatorSet).validateOutput(name, clean);
          if (!check.ok) return this.internal(name, `its structured content does not match its output schema: ${check.message}`);
        }
        const result: CallToolResult = {
          content: content !== undefined ? sanitizeContent(content) : clean === undefined ? [] : [{ type: "text", text: JSON.stringify(clean) }],
        };
        if (clean !== undefined) result.structuredContent = clean;
        return result;
      }
      case "tool-error":
        // No structuredContent on errors: some clients validate it against the success schema.
        return { content: sanitizeContent(outcome.outcome.content ?? [{ type: "text", text: outcome.reason }]), isError: true };
      case "denied":
        return errorResult(`Refused by the security policy (${outcome.code}): ${outcome.reason}`);
      case "timeout":
        if (outcome.beforeStart) {
          return errorResult(
            `Tool "${name}" timed out after ${formatSeconds(outcome.timeoutMs)} before it started: checking and recording the call took its whole time limit (the disk is slow). It did not run; try again later.`,
          );
        }
        return errorResult(`Tool "${name}" timed out after ${formatSeconds(outcome.timeoutMs)} and was stopped. Try a smaller request.`);
      case "cancelled":
        return errorResult(`Tool "${name}" was cancelled: ${outcome.reason}.`);
      case "crashed":
        return this.internal(name, describeError(outcome.error));
    }
  }

  private internal(tool: string, detail: string): CallToolResult {
    const ref = ulid();
    this.options.logger.error(`tool "${tool}" failed`, { ref, detail: redactString(detail).value });
    return errorResult(`Tool "${tool}" failed with an internal error (ref ${ref}). This is not caused by your arguments; the operator can find the details in the server log.`);
  }

  /**
   * What a refusal records of the arguments. Calls refused for their rate or their size
   * keep only a digest: a client must not be able to fill the log with what it was
   * refused for. Other refusals keep the redacted arguments, as admitted calls do, when
   * they are small: a call refused by its schema may carry anything (a property the schema
   * does not know, of any size), and such calls still pass the rate limit, ~1 MiB each.
   * A tool whose input schema Ajv refused keeps only a digest too: the schema says where its
   * `x-audit` marks are, and one Ajv cannot read (a pattern that does not compile, tuple
   * `items`) cannot be trusted to say it.
   */
  private recordedArguments(call: ToolCall, stage: string | undefined): Pick<AuditRecordInput, "arguments" | "data"> {
    if (!this.auditing) return {};
    const args = call.arguments;
    // Nested past the stack the limits refuse it for depth, but it parsed: the digest must still
    // cover what was sent, not an empty text.
    const text = jsonTextAnyDepth(args);
    const argumentBytes = Buffer.byteLength(text);
    if (stage === "rate_limit" || stage === "limits" || argumentBytes > REFUSED_ARGUMENTS_KEPT_MAX || this.validators?.sourceOf(call.name)?.input === "invalid") {
      return { data: { argumentBytes, argumentsSha256: sha256Hex(text) } };
    }
    return { arguments: auditedArguments(this.allowed.get(call.name)?.tool, args) };
  }

  /**
   * Records a call to a tool that does not exist or that the policy hides (answered -32602 by
   * the protocol layer). Resolves once the `denied` entry is durable, as every other refusal
   * is before its answer; also when it cannot be written (nothing ran, and record() logged it).
   */
  noteUnknownTool(name: string, requestId: RequestId): Promise<void> {
    return this.noteRefusedCall(name, requestId, "access", this.registryHas(name) ? "the policy does not expose this tool" : "no such tool");
  }

  noteInvalidCall(name: string | undefined, requestId: RequestId, problem: string): Promise<void> {
    return this.noteRefusedCall(name, requestId, "params", problem);
  }

  /**
   * Stops holding refusals back for their summary (see refusal-log.ts): what is counted is
   * recorded now, what is counted later at once. Called when the server begins to shut down,
   * and again before the audit log closes, so that no count is left out of it.
   */
  beginClosing(): void {
    this.refusals?.close();
  }

  /**
   * A `denied` entry for a call refused before the engine's stages (its own, or a count in a
   * summary: see refusal-log.ts); settles when durable, or when it cannot be.
   */
  private noteRefusedCall(name: string | undefined, requestId: RequestId, stage: string, problem: string): Promise<void> {
    if (this.refusals === undefined) return Promise.resolve();
    return this.refusals.record({ stage, ...(name === undefined ? {} : this.knownTool(name)) }, requestId, () => ({
      event: "denied",
      // The client's text, like an argument: a token pasted as a tool name is not kept.
      // Redacted whole, then cut: cut first, a key at the cut would be kept in part.
      ...(name === undefined ? {} : { tool: cutAt(redactString(name).value, 100) }),
      requestId,
      outcome: "denied",
      reason: `${stage}: ${problem}`,
    }));
  }

  private registryHas(name: string): boolean {
    return this.options.registry.lookup(name) !== undefined;
  }

  /** The name as a summary may count it: only a tool the server has, never a name the client made up. */
  private knownTool(name: string): { tool?: string } {
    return this.registryHas(name) ? { tool: name } : {};
  }

  private async record(entry: AuditRecordInput): Promise<void> {
    // Refusals counted before this entry are recorded before it: the log keeps the order of events.
    this.refusals?.flush();
    // Reasons carry plugin and OS error texts: they are redacted like arguments.
    if (entry.reason !== undefined) entry.reason = redactString(entry.reason).value;
    if (entry.requestId !== undefined) entry.requestId = recordedRequestId(entry.requestId);
    try {
      await this.options.audit.append(entry);
    } catch (error) {
      this.options.logger.error("audit log write failed; refusing calls until it is fixed", { error: describeError(error) });
      throw error;
    }
  }

  private since(started: number): number {
    return Math.round((this.now() - started) * 1000) / 1000;
  }
}

/**
 * The plugin's part of a call is over (its result is in, or the call ended): a report it makes
 * later (a timer it left running) would tell of work after its result, and reach the client
 * before the response while the outcome's audit entry is written. Finished here, not when the
 * response is written.
 */
function pluginDone(call: ToolCall, outcome: DispatchOutcome): DispatchOutcome {
  call.progress?.finish();
  return outcome;
}

/**
 * What a plugin receives for one call. The capabilities and the session are made on
 * first use: most calls touch neither, and every call otherwise paid for their closures.
 */
class CallContext implements ToolContext {
  private capabilities: CallCapabilities | undefined;
  private sessionInfo: SessionInfo | undefined;

  constructor(
    private readonly scope: CallAbort,
    private id: string | undefined,
    /** Finished when the plugin's part is over (see pluginDone). */
    private readonly progressSink: ProgressSink | undefined,
    readonly log: PluginLogger,
    readonly catalog: ToolCatalog,
    private readonly capabilityFactory: CapabilityFactory,
    /** What was left of the call's time limit when it was dispatched: the capabilities cap their own timeouts with it. */
    private readonly timeoutMs: number,
    readonly deadline: number,
    private readonly makeSession: () => SessionInfo,
    // Two fields, not one object: a context is made for every call, and most never reserve.
    private readonly budget: ByteBudget | undefined,
    private holder: BudgetHolder | undefined,
  ) {}

  reserve(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.budget === undefined) return Promise.resolve();
    const holder = (this.holder ??= releasedAtOnce());
    const reserving = signal === undefined ? this.budget.reserve(bytes, holder, this.scope) : reserveUntil(this.budget, bytes, holder, this.scope, signal);
    return reserving.catch((error: unknown) => {
      // A batch past the budget: the model can act on it (send the read on its own line).
      throw error instanceof BudgetExceededError ? new ToolError(error.message, error.code) : error;
    });
  }

  get callId(): string {
    return (this.id ??= ulid());
  }

  /** Made on first read: most plugins never look at it. */
  get signal(): AbortSignal {
    return this.scope.signal;
  }

  progress(update: ProgressUpdate): void {
    this.progressSink?.report(update);
  }

  private get caps(): CallCapabilities {
    return (this.capabilities ??= this.capabilityFactory.forCall(this.scope, this.timeoutMs));
  }

  get fs(): GuardedFs {
    return this.caps.fs;
  }

  get fetch(): GuardedFetch {
    return this.caps.fetch;
  }

  get exec(): GuardedExec {
    return this.caps.exec;
  }

  get storage(): PluginStorage {
    return this.caps.storage;
  }

  get session(): SessionInfo {
    return (this.sessionInfo ??= this.makeSession());
  }
}

function refusalOf(stage: string, code: string, message: string): Refusal {
  return { stage, code, message };
}

function errorResult(message: string): CallToolResult {
  return { content: [{ type: "text", text: sanitizeText(message) }], isError: true };
}

/**
 * What the model is told of an audit failure: the error's code and the system error under it
 * (`AUDIT_WRITE_FAILED, ENOSPC`), not its message, which names the log's path in the state
 * directory; record() has put the whole message in the operator's log.
 */
function auditFailure(error: unknown): string {
  const codeOf = (value: unknown): string | undefined => {
    const code = typeof value === "object" && value !== null ? (value as { code?: unknown }).code : undefined;
    return typeof code === "string" && /^[A-Z][A-Z0-9_]{0,63}$/.test(code) ? code : undefined;
  };
  const code = codeOf(error) ?? "AUDIT_WRITE_FAILED";
  const errno = error instanceof Error ? codeOf(error.cause) : undefined;
  return `the audit log cannot be written (${errno === undefined ? code : `${code}, ${errno}`}); the server log says why.`;
}

/**
 * A short text for anything a plugin threw. Never throws itself: a plugin may throw a
 * value without a string form (`Object.create(null)`, an object whose `toString` throws)
 * or an Error whose message is not a string, and the call must still end in an answer
 * and an audited outcome.
 */
function describeError(error: unknown): string {
  try {
    const text: unknown = error instanceof Error ? error.message : error;
    return (typeof text === "string" ? text : String(text)).slice(0, 500);
  } catch {
    try {
      return `${Object.prototype.toString.call(error)} without a text form`;
    } catch {
      return "a value without a text form";
    }
  }
}

/** `/items/0/path` → `arguments.items[0].path`, the form a model reads best. */
export function pointerToField(pointer: string): string {
  if (pointer === "" || pointer === "/") return "arguments";
  let field = "arguments";
  for (const raw of pointer.split("/").slice(1)) {
    const part = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    field += /^\d+$/.test(part) ? `[${part}]` : `.${part}`;
  }
  return field;
}

function describeOutcome(outcome: DispatchOutcome, result: CallToolResult): { label: NonNullable<AuditRecordInput["outcome"]>; reason: string | undefined } {
  switch (outcome.kind) {
    case "ok":
      return result.isError ? { label: "error", reason: "invalid tool output" } : { label: "ok", reason: undefined };
    case "tool-error":
      return { label: "error", reason: outcome.reason };
    case "denied":
      return { label: "denied", reason: `${outcome.code}: ${outcome.reason}` };
    case "timeout":
      return { label: "timeout", reason: `timed out after ${formatSeconds(outcome.timeoutMs)}${outcome.beforeStart ? " before it started (checking and recording the call took the time)" : ""}` };
    case "cancelled":
      return { label: "cancelled", reason: outcome.reason };
    case "crashed":
      return { label: "error", reason: `internal error: ${describeError(outcome.error)}` };
  }
}

/** Each tool definition's digester (null: it marks nothing), made once per definition. */
const digesters = new WeakMap<ToolDefinition, ArgumentDigester | null>();

function digesterOf(tool: ToolDefinition): ArgumentDigester | null {
  let digester = digesters.get(tool);
  if (digester === undefined) {
    digester = argumentDigester(tool.inputSchema) ?? null;
    digesters.set(tool, digester);
  }
  return digester;
}

/**
 * The arguments as the audit log records them: redacted, and the values the tool's schema marks
 * `"x-audit": "digest"` (a file's content), at any depth, as their size and SHA-256, which prove
 * what was passed without keeping a second copy of it in the log (see audit-digest.ts).
 */
export function auditedArguments(tool: ToolDefinition | undefined, args: JsonObject): unknown {
  const redacted = redact(args).value;
  const digester = tool === undefined ? null : digesterOf(tool);
  return digester === null ? redacted : digester(args, redacted);
}

/**
 * The audit log keeps a digest of the result, not the result: it proves what was returned
 * without holding it. The text hashed is the one the response sends (serialized once).
 */
function resultDigest(result: CallToolResult): Record<string, unknown> {
  const text = serializeOnce(result);
  return { resultBytes: Buffer.byteLength(text), resultSha256: sha256Hex(text) };
}

/** Structured content: a plain JSON object, sanitized (see `sanitizeJson`); anything else throws. */
function sanitizeStructured(value: unknown): JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new OutputShapeError(`structuredContent must be a JSON object, not ${value === null ? "null" : Array.isArray(value) ? "a list" : `a ${typeof value}`}`);
  }
  return sanitizeJson(value, "structuredContent") as JsonObject;
}

function pluginLogger(logger: Logger): PluginLogger {
  const clean = (data: JsonObject | undefined) => (data === undefined ? undefined : (redact(data).value as Record<string, unknown>));
  const text = (message: string) => redactString(String(message)).value;
  return {
    debug: (message, data) => logger.debug(text(message), clean(data)),
    info: (message, data) => logger.info(text(message), clean(data)),
    warn: (message, data) => logger.warn(text(message), clean(data)),
    error: (message, data) => logger.error(text(message), clean(data)),
  };
}

/**
 * A reservation whose wait also ends when `signal` fires: it waits in a scope that follows the
 * call's and the signal, and stops following both once it is settled.
 */
function reserveUntil(budget: ByteBudget, bytes: number, holder: BudgetHolder, call: CallAbort, signal: AbortSignal): Promise<void> {
  const scope = new LazyAbort();
  const follow = (): void => scope.abort(signal.reason);
  const unfollowCall = call.onAbort((reason) => scope.abort(reason));
  if (signal.aborted) follow();
  else signal.addEventListener("abort", follow, { once: true });
  const reserving = budget.reserve(bytes, holder, scope);
  const done = (): void => {
    unfollowCall();
    signal.removeEventListener("abort", follow);
  };
  reserving.then(done, done);
  return reserving;
}

/** For a caller that keeps nothing until a response leaves (tests, benchmarks): what is reserved goes back at once. */
function releasedAtOnce(): BudgetHolder {
  return {
    reserved: 0,
    hold(release) {
      release();
    },
  };
}
