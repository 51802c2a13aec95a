/**
 * JSON-RPC 2.0 as MCP narrows it: the envelope rules, error codes and message
 * shapes. Classification is a pure function from one line's bytes to a message or
 * to the error that answers it.
 */
import { isUtf8 } from "node:buffer";
import { cutAt, printable, wellFormed } from "../util/text.js";

export type RequestId = string | number;

export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** In JSON-RPC's range for implementation-defined server errors: shutting down, or too busy (data.reason says which). */
  ServerUnavailable: -32000,
} as const;

export interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

/** An error that becomes a JSON-RPC error response. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = "RpcError";
  }

  toObject(): RpcErrorObject {
    return this.data === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, data: this.data };
  }
}

export type Params = Record<string, unknown>;

/** One message, classified. */
export type Message =
  | { kind: "request"; id: RequestId; method: string; params: Params | undefined }
  /** A malformed notification: never answered (a notification has no one to answer), only logged. */
  | { kind: "dropped"; method: string; reason: string }
  | { kind: "notification"; method: string; params: Params | undefined }
  | { kind: "response"; id: RequestId }
  | { kind: "invalid"; id: RequestId | undefined; error: RpcError };

/** One line: a message, or a top-level JSON array (a JSON-RPC batch), its elements not yet classified (see classifyValue). */
export type Incoming = Message | { kind: "batch"; items: unknown[] };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Ids are strings or integers; integers must survive a round trip through a double. */
function isValidId(id: unknown): id is RequestId {
  return typeof id === "string" || (typeof id === "number" && Number.isSafeInteger(id));
}

const BOM_MESSAGE = "Parse error: the message starts with a byte order mark (U+FEFF, bytes EF BB BF); send each message as UTF-8 JSON without one";

/** Parses and classifies one line. Never throws. */
export function classify(line: Buffer): Incoming {
  const text = line.toString("utf8");
  // Decoding replaces every invalid sequence with U+FFFD, so only a line that holds one needs the full check.
  if (text.includes("\uFFFD") && !isUtf8(line)) {
    return { kind: "invalid", id: undefined, error: new RpcError(ErrorCode.ParseError, "Parse error: the message is not valid UTF-8") };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    // JSON.parse would name the mark as an invisible "unexpected token": say what it is.
    if (text.startsWith("\uFEFF")) return { kind: "invalid", id: undefined, error: new RpcError(ErrorCode.ParseError, BOM_MESSAGE) };
    const detail = error instanceof Error ? error.message : String(error);
    // V8's message quotes the start of the line: its escapes are shown, not sent to drive a terminal.
    return { kind: "invalid", id: undefined, error: new RpcError(ErrorCode.ParseError, `Parse error: ${truncate(printable(wellFormed(detail)), 200)}`) };
  }
  return Array.isArray(value) ? { kind: "batch", items: value } : classifyValue(value);
}

/** The answer to a batch where batches are not accepted (MCP 2025-06-18 and later have none). */
export const BATCH_REFUSED = "Invalid Request: batches are not supported (MCP 2025-11-25 has no JSON-RPC batching); send one message per line";
/** JSON-RPC 2.0 answers an empty batch with one error, not with an empty array. */
export const EMPTY_BATCH = "Invalid Request: an empty batch; a batch needs at least one message";

/** Classifies one message: a whole line's value, or one element of a batch (batches do not nest). */
export function classifyValue(value: unknown): Message {
  if (Array.isArray(value)) return invalid(undefined, "Invalid Request: a batch element must be a JSON object (batches do not nest)");
  if (!isPlainObject(value)) return invalid(undefined, "Invalid Request: a message must be a JSON object");
  const hasId = Object.hasOwn(value, "id");
  const id = value.id;
  const echoId = isValidId(id) ? id : undefined;
  const method = value.method;
  if (!hasId && typeof method === "string" && method.length > 0) {
    // Shaped like a notification: whatever is wrong with it, it gets no answer.
    if (value.jsonrpc !== "2.0") return { kind: "dropped", method, reason: '"jsonrpc" is not "2.0"' };
    if (value.params !== undefined && !isPlainObject(value.params)) return { kind: "dropped", method, reason: '"params" is not an object' };
  }
  const hasMethod = Object.hasOwn(value, "method");
  if (!hasMethod && (Object.hasOwn(value, "result") || Object.hasOwn(value, "error"))) {
    // A response to one of our own requests; never answered, even when malformed (whatever its "jsonrpc").
    return { kind: "response", id: echoId ?? -1 };
  }
  if (value.jsonrpc !== "2.0") return invalid(echoId, 'Invalid Request: "jsonrpc" must be exactly "2.0"');
  if (!hasMethod) return invalid(echoId, 'Invalid Request: a message needs a "method" (or "result"/"error" for a response)');
  if (typeof method !== "string" || method.length === 0) return invalid(echoId, 'Invalid Request: "method" must be a non-empty string');

  const params = value.params;
  if (params !== undefined && !isPlainObject(params)) {
    return invalid(echoId, 'Invalid Request: "params" must be an object when present (MCP uses no positional params)');
  }
  if (!hasId) return { kind: "notification", method, params };
  if (!isValidId(id)) {
    const what = id === null ? "null" : typeof id === "number" ? "a non-integer or unsafe number" : `a ${typeof id}`;
    return invalid(undefined, `Invalid Request: "id" must be a string or an integer, not ${what}`);
  }
  return { kind: "request", id, method, params };
}

function invalid(id: RequestId | undefined, message: string): Message {
  return { kind: "invalid", id, error: new RpcError(ErrorCode.InvalidRequest, message) };
}

/** At most `max` UTF-16 units, an ending "…" included; never splits a surrogate pair. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${cutAt(text, max - 1)}…`;
}

export interface ResultMessage {
  jsonrpc: "2.0";
  id: RequestId;
  result: Record<string, unknown>;
}

export interface ErrorMessage {
  jsonrpc: "2.0";
  id?: RequestId;
  error: RpcErrorObject;
}

export interface NotificationMessage {
  jsonrpc: "2.0";
  method: string;
  params?: Record<string, unknown>;
}

export type OutgoingMessage = ResultMessage | ErrorMessage | NotificationMessage;

export function resultMessage(id: RequestId, result: Record<string, unknown>): ResultMessage {
  return { jsonrpc: "2.0", id, result };
}

/** An error response; the id is left out (not null) when it could not be read, as the 2025-11-25 schema requires. */
export function errorMessage(id: RequestId | undefined, error: RpcErrorObject): ErrorMessage {
  return id === undefined ? { jsonrpc: "2.0", error } : { jsonrpc: "2.0", id, error };
}

export function notificationMessage(method: string, params?: Record<string, unknown>): NotificationMessage {
  return params === undefined ? { jsonrpc: "2.0", method } : { jsonrpc: "2.0", method, params };
}
