/**
 * The plugin contract: the only module a plugin imports.
 *
 * A plugin declares its tools and executes them. It never touches `fs`, `net` or
 * `child_process`: everything with an effect on the machine arrives through the
 * `ToolContext` that the security engine builds for each call, and every one of
 * those capabilities applies the owner's policy on every use.
 */

export type JsonPrimitive = null | boolean | number | string;
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Hints for the client. Untrusted by design: the engine never authorizes on them. */
export interface ToolAnnotations {
  title?: string;
  readOnlyHint?: boolean;
  destructiveHint?: boolean;
  idempotentHint?: boolean;
  openWorldHint?: boolean;
}

/**
 * A tool as the plugin declares it. `inputSchema` is JSON Schema 2020-12 with a root
 * `type: "object"`. String properties that hold filesystem paths carry the keyword
 * `"x-path": "read" | "write"`; the engine checks every such value (also inside arrays
 * and nested objects) against the filesystem policy before the plugin runs.
 */
export interface ToolDefinition {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly inputSchema: JsonObject;
  readonly outputSchema?: JsonObject;
  readonly annotations: ToolAnnotations;
}

/** Hints for the client about one content block (MCP `Annotations`). */
export interface ContentAnnotations {
  audience?: Array<"user" | "assistant">;
  /** 0 (least important) to 1 (most). */
  priority?: number;
  /** ISO 8601. */
  lastModified?: string;
}

interface BlockExtras {
  annotations?: ContentAnnotations;
  _meta?: JsonObject;
}

/** The contents of an embedded resource: text, or base64 `blob` for binary data. */
export type ResourceContents =
  | { uri: string; mimeType?: string; text: string; _meta?: JsonObject }
  | { uri: string; mimeType?: string; blob: string; _meta?: JsonObject };

/**
 * The content blocks of MCP 2025-11-25. The engine checks every block a plugin returns
 * against this shape (a malformed one fails the call as an internal error), sanitizes
 * the text in it and sends only the fields listed here. `data` and `blob` are base64.
 */
/** An icon a client may show beside a resource link (MCP 2025-11-25 `Icon`). */
export interface Icon {
  src: string;
  mimeType?: string;
  sizes?: string[];
  theme?: "dark" | "light";
}

export type ContentBlock =
  | ({ type: "text"; text: string } & BlockExtras)
  | ({ type: "image"; data: string; mimeType: string } & BlockExtras)
  | ({ type: "audio"; data: string; mimeType: string } & BlockExtras)
  | ({ type: "resource_link"; uri: string; name: string; title?: string; mimeType?: string; description?: string; size?: number; icons?: Icon[] } & BlockExtras)
  | ({ type: "resource"; resource: ResourceContents } & BlockExtras);

/**
 * What `execute` returns. A tool with an `outputSchema` returns `structuredContent`
 * (the dispatcher validates it and adds the text copy when `content` is absent).
 * A tool failure the model can act on is `isError: true` with a text that says how
 * to fix the call; `throw new ToolError(...)` is the same thing, shorter.
 */
export interface ToolOutcome {
  content?: ContentBlock[];
  structuredContent?: JsonObject;
  isError?: boolean;
}

/** A failure the model can fix: its message is shown to the model as is. */
export class ToolError extends Error {
  readonly code: string;
  constructor(message: string, code = "TOOL_ERROR") {
    super(message);
    this.name = "ToolError";
    this.code = code;
  }
}

/**
 * Thrown by a capability when the policy refuses an operation. `code` is stable
 * (PATH_DENIED, PATH_OUTSIDE_ROOTS, EGRESS_DENIED, COMMAND_DENIED, ...); `message`
 * says what was refused and why, without leaking anything the policy protects.
 */
export class CapabilityDeniedError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "CapabilityDeniedError";
    this.code = code;
  }
}

export interface ProgressUpdate {
  progress: number;
  total?: number;
  message?: string;
}

export interface PluginLogger {
  debug(message: string, data?: JsonObject): void;
  info(message: string, data?: JsonObject): void;
  warn(message: string, data?: JsonObject): void;
  error(message: string, data?: JsonObject): void;
}

// ---------------------------------------------------------------------------
// Guarded capabilities
// ---------------------------------------------------------------------------

export type FileKind = "file" | "directory" | "symlink" | "other";

export interface FileInfo {
  /** The canonical real path that was checked and opened. */
  path: string;
  kind: FileKind;
  size: number;
  mtimeMs: number;
  mode: number;
}

export interface DirEntry {
  name: string;
  kind: FileKind;
}

export interface ReadOptions {
  /** Byte offset to start at (default 0). */
  offset?: number;
  /** Bytes to read at most; capped by the policy's read limit. */
  length?: number;
}

export interface ListOptions {
  /** Stops the listing when it fires (a call's signal: a huge directory is not read on after the call ends). */
  signal?: AbortSignal;
}

/** One read: the bytes and the file they came from, both from the same open descriptor. */
export interface FileRead {
  bytes: Uint8Array;
  /** The file as the descriptor saw it when the read began (its size bounds the bytes read). */
  info: FileInfo;
}

export interface WriteOptions {
  /** Fail if the file exists (default false). */
  exclusive?: boolean;
  /** Append instead of replacing (default false). */
  append?: boolean;
  /**
   * When it fires, the write changes nothing more: a replacement is not put in place, a write in
   * place is not begun (ctx.fs passes the call's own signal: a call that ended changes nothing).
   */
  signal?: AbortSignal;
}

export interface MoveOptions {
  /** When it fires, the move changes nothing more: it is undone if the new name was already made. */
  signal?: AbortSignal;
}

/** The policy's per-operation byte limits, so a tool can tell in advance (a dry run) what a write would meet. */
export interface FsByteLimits {
  /** Bytes one read returns at most (`filesystem.max_read_bytes`). */
  readonly maxReadBytes: number;
  /** Bytes one write accepts at most (`filesystem.max_write_bytes`). */
  readonly maxWriteBytes: number;
}

/** Where the policy lets tools work: what a model needs to know to name a path that passes. */
export interface AllowedDirectories {
  /** Each `filesystem.allowed_paths` entry in force: its directory (real path) and the entry as written (a glob may narrow it). */
  readonly directories: readonly { readonly path: string; readonly pattern: string }[];
  /** Where relative paths resolve (the session's project, else the server's working directory). */
  readonly base?: string;
}

/** Filesystem access, checked against `filesystem.allowed_paths` / `denied_paths` on every call. */
export interface GuardedFs {
  readonly limits: FsByteLimits;
  /** The policy's allowed directories (nothing the policy denies inside them is listed: deny rules are not shown). */
  allowedDirectories(): AllowedDirectories;
  /** Checks a path for the given access and returns its canonical real path. */
  resolve(path: string, access: "read" | "write"): Promise<string>;
  stat(path: string): Promise<FileInfo>;
  readBytes(path: string, options?: ReadOptions): Promise<Uint8Array>;
  /** Like readBytes, with the file's size and times from the same open (a stat, then a read, may see two files). */
  read(path: string, options?: ReadOptions): Promise<FileRead>;
  readText(path: string, options?: ReadOptions): Promise<string>;
  list(path: string, options?: ListOptions): Promise<DirEntry[]>;
  writeFile(path: string, data: string | Uint8Array, options?: WriteOptions): Promise<FileInfo>;
  mkdir(path: string): Promise<FileInfo>;
  /**
   * Gives a file a new name (both paths checked for writing); never replaces an existing file, never crosses file systems.
   * When `signal` fires before the old name is removed, the move is undone (ctx.fs passes the call's own signal).
   */
  move(from: string, to: string, options?: MoveOptions): Promise<FileInfo>;
}

export interface FetchRequest {
  method?: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** Response bytes at most; capped by the policy. */
  maxBytes?: number;
  /** Whole-exchange time limit; capped by the policy and by the call's deadline. */
  timeoutMs?: number;
  /** Redirects to follow at most (each hop is checked again); default 5, at most 20. */
  maxRedirects?: number;
}

export interface FetchResponse {
  status: number;
  /** The final URL after redirects. */
  url: string;
  headers: Record<string, string>;
  body: Uint8Array;
  text(): string;
}

/** HTTP(S) egress, checked against the network policy on the address actually connected to. */
export type GuardedFetch = (url: string, request?: FetchRequest) => Promise<FetchResponse>;

export interface ExecOptions {
  cwd?: string;
  /** Extra variables on top of the scrubbed minimal environment. */
  env?: Record<string, string>;
  input?: string | Uint8Array;
  timeoutMs?: number;
  maxOutputBytes?: number;
}

export interface ExecResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timedOut: boolean;
}

/** Process execution: argv only (never a shell), checked against `commands`. */
export type GuardedExec = (file: string, args: readonly string[], options?: ExecOptions) => Promise<ExecResult>;

/** The subset of a better-sqlite3 database a plugin receives. */
export type SqliteDatabase = import("better-sqlite3").Database;

export interface PluginStorage {
  /**
   * Opens (creating with mode 0600) the plugin's SQLite database `name` in the state
   * directory. The name is a plain identifier; the plugin never chooses a path.
   */
  openDatabase(name: string): SqliteDatabase;
}

/** A read-only view of the tools this session may see (denied tools are absent). */
export interface CatalogEntry {
  plugin: string;
  version: string;
  description: string;
  tools: readonly ToolDefinition[];
}

export interface ToolCatalog {
  entries(): readonly CatalogEntry[];
}

export interface SessionInfo {
  /** The session's project folder (MCP_PROJECT_PATH or the policy), if any. */
  projectPath: string | undefined;
  clientName: string | undefined;
}

/** Everything a tool call may use. Built fresh for every call by the engine. */
export interface ToolContext {
  /** Fires on cancellation, on the call's deadline and at shutdown. */
  readonly signal: AbortSignal;
  /** A unique id of this call (a ULID), the same one the audit log records. */
  readonly callId: string;
  /**
   * When the call's time is up, in epoch milliseconds (compare with `Date.now()`): then the
   * dispatcher answers with a timeout, aborts `signal`, and whatever the plugin would have
   * returned is lost. A tool that can end early with part of a result (a search) stops a
   * little before it and says so. The tool's `tools.timeouts` entry or `tools.timeout`,
   * counted from the call's admission: the engine's checks (a path on a slow disk) and its
   * audit entry have spent part of it by dispatch. The dispatcher's own timer is monotonic: a
   * wall clock set back meanwhile makes this read later than the real end, so keep a margin.
   */
  readonly deadline: number;
  /** Reports progress; ignored when the client asked for none. */
  progress(update: ProgressUpdate): void;
  /**
   * Reserves memory for a large result before making it (a file's content: the bytes it will
   * read), or for a large working set (a whole file to edit, reads in flight): resolves once the server can carry it, which may mean waiting for other calls'
   * responses to leave; the reservation is given back when this call's response has. Rejects
   * when the call ends first, or `signal` fires first: a tool that stops waiting and returns
   * (a search near its deadline) passes one, or its wait stays in line after its answer.
   * Calls that return small results need not reserve.
   */
  reserve(bytes: number, signal?: AbortSignal): Promise<void>;
  readonly log: PluginLogger;
  readonly fs: GuardedFs;
  readonly fetch: GuardedFetch;
  readonly exec: GuardedExec;
  readonly storage: PluginStorage;
  readonly catalog: ToolCatalog;
  readonly session: SessionInfo;
}

export interface Plugin {
  readonly name: string;
  readonly version: string;
  readonly description: string;
  readonly tools: readonly ToolDefinition[];
  execute(tool: string, args: JsonObject, ctx: ToolContext): Promise<ToolOutcome>;
  close?(): Promise<void> | void;
}

// ---------------------------------------------------------------------------
// Helpers for plugin authors
// ---------------------------------------------------------------------------

/** A successful structured result; the dispatcher adds the text copy. */
export function structured(value: JsonObject): ToolOutcome {
  return { structuredContent: value };
}

/** A successful plain-text result. */
export function text(value: string): ToolOutcome {
  return { content: [{ type: "text", text: value }] };
}

/** A tool-level failure with a message that tells the model how to fix the call. */
export function failure(message: string): ToolOutcome {
  return { content: [{ type: "text", text: message }], isError: true };
}

/** The recommended schema for a tool without arguments. */
export const NO_ARGUMENTS: JsonObject = { type: "object", additionalProperties: false };
