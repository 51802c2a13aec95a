/**
 * The built-in status plugin: `security_status` tells the model (and so the transcript)
 * which policy is in force and where the audit log's chain stands. A head quoted in a
 * conversation is a copy of the log's state kept outside the machine's log file: an
 * auditor checks it later with `audit verify --expect-head`, and a log rewritten since
 * no longer holds it. The plugin reads what the server hands it; it touches nothing.
 */
import { structured, ToolError, type JsonObject, type Plugin, type ToolDefinition, type ToolOutcome } from "../contract.js";

/** What the server reports; read afresh at every call. */
export interface SecurityStatus {
  server: { name: string; version: string };
  policy: { sha256: string; builtIn: boolean };
  audit:
    | { enabled: false }
    | {
        enabled: true;
        /** False once a write failed: every call is refused until the operator fixes the log. */
        ok: boolean;
        logId: string;
        /** The newest entry written (this call's own `tool_call` entry, or one after it). */
        seq: number;
        head: string;
        keyFingerprint: string;
        fsync: string;
      };
  /**
   * How `ctx.exec` runs programs: the policy's `commands.sandbox`, and what that means on this
   * machine: `sandboxed` (bubblewrap), `unsandboxed` (`off`, or `auto` where bwrap cannot be used),
   * `refused` (`required` where it cannot), `none` (`commands.allowed: []`: no program may run).
   */
  exec: { sandbox: "auto" | "required" | "off"; commands: "sandboxed" | "unsandboxed" | "refused" | "none" };
}

/** A SHA-256 in hex; the server makes these values, so no pattern is checked on them. */
const HASH = { type: "string", description: "SHA-256, hex" };

export const SECURITY_STATUS: ToolDefinition = {
  name: "security_status",
  title: "Security status",
  description:
    "Report this server's security state: its version, the SHA-256 of the policy in force (and whether it is the built-in default), " +
    "the audit log's head: the sequence number and hash of its newest entry, the log id and the signing key's fingerprint, " +
    "and whether programs that tools run are sandboxed (no network, the server's files hidden). " +
    "Quote the head when a record of what was done matters: the owner can later check with `mcp-secure-local audit verify --expect-head <head>` " +
    "that the log still holds it.",
  inputSchema: { type: "object", additionalProperties: false },
  outputSchema: {
    type: "object",
    properties: {
      server: {
        type: "object",
        properties: { name: { type: "string" }, version: { type: "string" } },
        required: ["name", "version"],
        additionalProperties: false,
      },
      policy: {
        type: "object",
        properties: { sha256: HASH, builtIn: { type: "boolean" } },
        required: ["sha256", "builtIn"],
        additionalProperties: false,
      },
      audit: {
        type: "object",
        properties: {
          enabled: { type: "boolean" },
          ok: { type: "boolean" },
          logId: { type: "string" },
          seq: { type: "integer", minimum: 0 },
          head: HASH,
          keyFingerprint: HASH,
          fsync: { type: "string", enum: ["always", "batch"] },
        },
        required: ["enabled"],
        additionalProperties: false,
      },
      exec: {
        type: "object",
        properties: {
          sandbox: { type: "string", enum: ["auto", "required", "off"] },
          commands: { type: "string", enum: ["sandboxed", "unsandboxed", "refused", "none"] },
        },
        required: ["sandbox", "commands"],
        additionalProperties: false,
      },
    },
    required: ["server", "policy", "audit", "exec"],
    additionalProperties: false,
  },
  annotations: { title: "Security status", readOnlyHint: true, idempotentHint: false, openWorldHint: false },
};

export const STATUS_VERSION = "1.0.0";

/** `read` may wait (for the exec sandbox's probe, at the start). */
export function createStatusPlugin(read: () => SecurityStatus | Promise<SecurityStatus>): Plugin {
  return {
    name: "status",
    version: STATUS_VERSION,
    description: "The server's security state: the policy in force, the audit log's head and the exec sandbox.",
    tools: [SECURITY_STATUS],
    async execute(tool: string): Promise<ToolOutcome> {
      if (tool !== SECURITY_STATUS.name) throw new ToolError(`status has no tool "${tool}"`);
      return structured((await read()) as unknown as JsonObject);
    },
  };
}
