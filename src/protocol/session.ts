/**
 * One MCP session over a connection: the lifecycle, the methods a tools server
 * answers (initialize, ping, tools/list, tools/call, logging/setLevel) and the
 * notifications it takes (initialized, cancelled). Tool calls go to the security
 * engine; nothing here runs a tool.
 */
import { Connection, type RequestContext, type RequestResult } from "./connection.js";
import { ErrorCode, RpcError, type Params, type RequestId } from "./jsonrpc.js";
import { checkLifecycle, negotiateProtocolVersion, type LifecycleState, type ProtocolVersion } from "./lifecycle.js";
import { CursorCodec, paginate } from "./pagination.js";
import { ProgressReporter, readProgressToken } from "./progress.js";
import type { ToolService } from "../security/engine.js";
import { sanitizeJson, sanitizeText } from "../security/sanitize.js";
import type { JsonObject } from "../plugins/contract.js";
import { cutAt, printable, truncate, wellFormed } from "../util/text.js";
import { monotonicMs } from "../util/clock.js";
import { isLogLevel, levelRank, type LogHub, type LogLevel, type LogRecord, type Logger } from "../util/logger.js";

export interface ServerIdentity {
  name: string;
  version: string;
  title: string;
  description: string;
  instructions: string;
}

export interface SessionOptions {
  identity: ServerIdentity;
  tools: ToolService;
  logHub: LogHub;
  logger: Logger;
  /** Tools per `tools/list` page. */
  pageSize: number;
  /** Redacts log data before it reaches the client. */
  redact: (value: unknown) => unknown;
  /** Client log notifications per second at most (the rest are counted and summarized). */
  maxLogNotificationsPerSecond?: number;
  /** Called once the initialize response has been written. */
  onInitialized?: () => void;
}

export interface ClientInfo {
  name: string | undefined;
  version: string | undefined;
  protocolVersion: ProtocolVersion | undefined;
}

/** The requests this server answers (besides these: -32601). */
const SERVED_METHODS: ReadonlySet<string> = new Set(["ping", "initialize", "tools/list", "tools/call", "logging/setLevel"]);

export class McpSession {
  private state: LifecycleState = "awaiting-initialize";
  /** A failed initialize (bad params) leaves the session waiting for a good one. */
  private initializeSucceeded = false;
  private clientLogLevel: LogLevel = "warning";
  private readonly cursors = new CursorCodec("tools/list");
  // Keyed by the id itself: a Map keeps the string "1" and the number 1 apart, as JSON-RPC does.
  private readonly progress = new Map<RequestId, ProgressReporter>();
  private unsubscribeLog: (() => void) | undefined;
  private logWindowStart = -Infinity;
  private logWindowCount = 0;
  private logDropped = 0;
  readonly client: ClientInfo = { name: undefined, version: undefined, protocolVersion: undefined };
  private connection!: Connection;

  constructor(private readonly options: SessionOptions) {}

  attach(connection: Connection): void {
    this.connection = connection;
  }

  get lifecycle(): LifecycleState {
    return this.state;
  }

  /** Stops serving: later requests are refused; log forwarding ends. */
  beginClosing(): void {
    this.state = "closing";
    this.unsubscribeLog?.();
    this.unsubscribeLog = undefined;
    for (const reporter of this.progress.values()) reporter.finish();
    this.progress.clear();
  }

  readonly handlers = {
    request: (method: string, params: Params | undefined, ctx: RequestContext): RequestResult | Promise<RequestResult> => {
      // A method the server does not have is -32601 in every state: a 2026-era client probes with
      // server/discover before initialize, and "not initialized" would tell it to retry after.
      if (!SERVED_METHODS.has(method)) throw new RpcError(ErrorCode.MethodNotFound, `Method not found: ${shownName(method)}`);
      const refusal = checkLifecycle(this.state, method);
      if (refusal) throw refusal;
      switch (method) {
        case "ping":
          return {};
        case "initialize":
          return this.initialize(params);
        case "tools/list":
          return this.listTools(params);
        case "tools/call":
          return this.callTool(params, ctx);
        case "logging/setLevel":
          return this.setLogLevel(params);
        default:
          throw new RpcError(ErrorCode.MethodNotFound, `Method not found: ${shownName(method)}`);
      }
    },
    notification: (method: string, params: Params | undefined): void => {
      if (method === "notifications/cancelled") this.onCancelled(params);
      // notifications/initialized needs no action: requests are served from the initialize response on.
      // Unknown notifications are ignored, as JSON-RPC requires.
    },
    responded: (id: RequestId, method: string): void => {
      if (method === "initialize" && this.state === "awaiting-initialize" && this.initializeSucceeded) {
        this.state = "ready";
        // 2025-03-26 requires receiving batches (after initialize, which may not be in one); later revisions have none.
        if (this.client.protocolVersion === "2025-03-26") this.connection.acceptBatches();
        this.options.onInitialized?.();
      }
      if (method === "tools/call") this.finishProgress(id);
    },
  };

  private initialize(params: Params | undefined): RequestResult {
    const protocolVersion = negotiateProtocolVersion(params?.protocolVersion);
    this.initializeSucceeded = true;
    const clientInfo = params?.clientInfo as Record<string, unknown> | undefined;
    this.client.name = typeof clientInfo?.name === "string" ? clientInfo.name.slice(0, 200) : undefined;
    this.client.version = typeof clientInfo?.version === "string" ? cutAt(clientInfo.version, 100) : undefined;
    this.client.protocolVersion = protocolVersion;
    if (this.client.name === undefined) this.options.logger.notice("initialize without clientInfo.name; going on");
    this.unsubscribeLog = this.options.logHub.subscribe((record) => this.forwardLog(record));
    const { identity } = this.options;
    return {
      protocolVersion,
      capabilities: { tools: {}, logging: {} },
      serverInfo: { name: identity.name, version: identity.version, title: identity.title, description: identity.description },
      instructions: identity.instructions,
    };
  }

  private async listTools(params: Params | undefined): Promise<RequestResult> {
    await this.options.tools.whenReady();
    const page = paginate(this.options.tools.listTools(), params?.cursor, this.options.pageSize, this.cursors);
    const result: RequestResult = { tools: page.items };
    if (page.nextCursor !== undefined) result.nextCursor = page.nextCursor;
    return result;
  }

  /** Not async: a call's promise is the engine's own, with no wrapper around it when the tools are ready. */
  private callTool(params: Params | undefined, ctx: RequestContext): Promise<RequestResult> {
    const name = params?.name;
    if (typeof name !== "string" || name.length === 0) return this.refuseCall(undefined, 'tools/call needs "name", a non-empty string', ctx);
    const args = params?.arguments;
    if (args !== undefined && (typeof args !== "object" || args === null || Array.isArray(args))) {
      return this.refuseCall(name, '"arguments" must be an object when present', ctx);
    }
    const { tools } = this.options;
    if (!tools.isReady()) return tools.whenReady().then(() => this.startCall(name, args as JsonObject | undefined, params, ctx));
    return this.startCall(name, args as JsonObject | undefined, params, ctx);
  }

  /** -32602 for malformed params, answered once the refusal is on record (like an unknown tool's). */
  private refuseCall(name: string | undefined, problem: string, ctx: RequestContext): Promise<RequestResult> {
    const refusal = new RpcError(ErrorCode.InvalidParams, `Invalid params: ${problem}`);
    const { tools } = this.options;
    if (tools.noteInvalidCall === undefined) return Promise.reject(refusal);
    const note = (): Promise<void> | void => tools.noteInvalidCall!(name, ctx.id, problem);
    return (tools.isReady() ? Promise.resolve(note()) : tools.whenReady().then(note)).then(() => {
      throw refusal;
    });
  }

  private startCall(name: string, args: JsonObject | undefined, params: Params | undefined, ctx: RequestContext): Promise<RequestResult> {
    const { tools } = this.options;
    if (!tools.hasTool(name)) {
      const refusal = new RpcError(ErrorCode.InvalidParams, `Unknown tool: ${shownName(name)}. Call tools/list to see the tools available.`);
      // Answered once its `denied` entry is recorded: a crash must not leave an answered call out of the log.
      const noted = tools.noteUnknownTool?.(name, ctx.id);
      if (noted === undefined) throw refusal;
      return noted.then(() => {
        throw refusal;
      });
    }
    const token = readProgressToken(params);
    let reporter: ProgressReporter | undefined;
    if (token !== undefined) {
      const progress = new ProgressReporter(token, (progressParams) => this.connection.notify("notifications/progress", progressParams));
      reporter = progress;
      this.progress.set(ctx.id, progress);
      // A cancelled call gets no response, so its reporter is finished and dropped here.
      ctx.abort.onAbort(() => this.finishProgress(ctx.id));
    }
    const call = tools.callTool({
      name,
      arguments: args ?? {},
      requestId: ctx.id,
      abort: ctx.abort,
      progress: reporter,
      holder: ctx.holder,
    }) as unknown as Promise<RequestResult>;
    if (reporter === undefined) return call;
    // Nothing for this token may follow the response: stop before it is written.
    return call.then((result) => {
      reporter.finish();
      return result;
    });
  }

  private setLogLevel(params: Params | undefined): RequestResult {
    const level = params?.level;
    if (!isLogLevel(level)) {
      throw new RpcError(
        ErrorCode.InvalidParams,
        "Invalid params: level must be one of debug, info, notice, warning, error, critical, alert, emergency",
      );
    }
    this.clientLogLevel = level;
    return {};
  }

  private onCancelled(params: Params | undefined): void {
    const requestId = params?.requestId;
    if (typeof requestId !== "string" && !(typeof requestId === "number" && Number.isSafeInteger(requestId))) return;
    // initialize cannot be cancelled; unknown or finished ids are ignored.
    if (this.connection.methodOf(requestId) === "initialize") return;
    const reason = typeof params?.reason === "string" ? params.reason.slice(0, 200) : "cancelled by the client";
    if (this.connection.cancel(requestId, reason)) {
      this.finishProgress(requestId);
      // The id is the client's, of any length: the log line keeps its start.
      this.options.logger.info("request cancelled by the client", { requestId: typeof requestId === "string" ? truncate(requestId, 128) : requestId, reason });
    }
  }

  private finishProgress(id: RequestId): void {
    this.progress.get(id)?.finish();
    this.progress.delete(id);
  }

  private forwardLog(record: LogRecord): void {
    if (this.state === "closing" || this.connection.outputClosed) return;
    if (levelRank(record.level) < levelRank(this.clientLogLevel)) return;
    // Elapsed time, not the wall clock: a clock stepped back would hold the window open, and
    // every log notification would be dropped until the clock caught up again.
    const now = monotonicMs();
    const perSecond = this.options.maxLogNotificationsPerSecond ?? 20;
    if (now - this.logWindowStart >= 1000) {
      if (this.logDropped > 0) {
        this.connection.notify("notifications/message", {
          // Never below the level the client set (what was dropped was at least that level).
          level: levelRank(this.clientLogLevel) > levelRank("warning") ? this.clientLogLevel : "warning",
          logger: "mcp-secure-local",
          data: { message: `${this.logDropped} log messages were dropped by the rate limit` },
        });
      }
      this.logWindowStart = now;
      this.logWindowCount = 0;
      this.logDropped = 0;
    }
    if (this.logWindowCount >= perSecond) {
      this.logDropped += 1;
      return;
    }
    this.logWindowCount += 1;
    // Log texts carry plugin and OS error messages, which carry whatever the data held: they are
    // sanitized like tool results before they reach the client (a terminal, a chat UI, a model).
    const data: Record<string, unknown> = { message: sanitizeText(record.message) };
    if (record.data !== undefined) data.details = sanitizeDetails(this.options.redact(record.data));
    this.connection.notify("notifications/message", { level: record.level, logger: record.logger, data });
  }
}

/** Redacted log details, sanitized; details that are not plain JSON are left out rather than sent raw. */
function sanitizeDetails(details: unknown): unknown {
  try {
    return sanitizeJson(details, "details");
  } catch {
    return "(details left out: not plain JSON)";
  }
}

/**
 * A name the client sent, as an error message shows it: cut, a lone surrogate as U+FFFD, and
 * escape sequences, bidi overrides and line breaks as visible `\uXXXX`, since a client may show
 * the message on a terminal or to a reviewer as it is.
 */
function shownName(name: string): string {
  return printable(wellFormed(cutAt(name, 100)));
}
