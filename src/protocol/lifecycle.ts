/**
 * The MCP lifecycle: version negotiation and the session's state. Pure functions
 * and a small state holder; the session layer calls them.
 */
import { ErrorCode, RpcError } from "./jsonrpc.js";
import { printable, truncate, wellFormed } from "../util/text.js";

/** Newest first: the first entry is what an unknown version is answered with. */
export const SUPPORTED_PROTOCOL_VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"] as const;
export type ProtocolVersion = (typeof SUPPORTED_PROTOCOL_VERSIONS)[number];
export const LATEST_PROTOCOL_VERSION: ProtocolVersion = SUPPORTED_PROTOCOL_VERSIONS[0];

/**
 * Echoes a supported version; answers anything else with the latest (a counter-offer,
 * not an error: the client decides whether to go on). Only a missing or non-string
 * version is an invalid request.
 */
export function negotiateProtocolVersion(requested: unknown): ProtocolVersion {
  if (typeof requested !== "string") {
    throw new RpcError(ErrorCode.InvalidParams, 'Invalid params: "protocolVersion" must be a string', {
      supported: [...SUPPORTED_PROTOCOL_VERSIONS],
      requested: shownVersion(requested),
    });
  }
  return (SUPPORTED_PROTOCOL_VERSIONS as readonly string[]).includes(requested) ? (requested as ProtocolVersion) : LATEST_PROTOCOL_VERSION;
}

/** A non-string version as the refusal echoes it: a scalar as sent, an object or array (maybe too large or deep to send back) by its kind. */
function shownVersion(requested: unknown): unknown {
  if (requested === undefined) return null;
  if (typeof requested !== "object" || requested === null) return requested;
  return Array.isArray(requested) ? "an array" : "an object";
}

export type LifecycleState = "awaiting-initialize" | "ready" | "closing";

/** Which methods may run in which state. `ping` always; the rest only once initialized. */
export function checkLifecycle(state: LifecycleState, method: string): RpcError | undefined {
  if (method === "ping") return undefined;
  if (state === "closing") return new RpcError(ErrorCode.InvalidRequest, "Invalid Request: the server is shutting down");
  if (method === "initialize") {
    return state === "awaiting-initialize"
      ? undefined
      : new RpcError(ErrorCode.InvalidRequest, "Invalid Request: the session is already initialized; initialize may be sent only once");
  }
  if (state === "awaiting-initialize") {
    // The method is the client's: shown as -32601 shows it (escapes visible, no lone surrogate).
    return new RpcError(ErrorCode.InvalidRequest, `Invalid Request: server not initialized; send "initialize" before "${printable(wellFormed(truncate(method, 100)))}"`);
  }
  return undefined;
}
