/**
 * The audit entry: its shape, how it is hashed and serialized, and how one line is
 * checked on its own. Pure functions only; files are handled elsewhere.
 *
 * An entry's `hash` is SHA-256 (hex) over the canonical JSON of every other field.
 * The line written is that same canonical JSON with `,"hash":"…"` added just before
 * the closing brace, so a line is checked byte for byte: any edit, even whitespace or
 * a duplicated key, is caught.
 */
import { canonicalJson, sha256Hex } from "../../util/canonical-json.js";

export const AUDIT_FORMAT_VERSION = 1;

/** `prev` of the first entry of a new log. */
export const GENESIS_PREV = "0".repeat(64);

export const AUDIT_OUTCOMES = ["ok", "error", "denied", "timeout", "cancelled"] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** Events only the log itself writes; callers may not forge them. */
export const SYSTEM_EVENTS = ["server_start", "server_stop", "checkpoint", "rotate", "recovery"] as const;
export type SystemEvent = (typeof SYSTEM_EVENTS)[number];

export function isSystemEvent(event: string): event is SystemEvent {
  return (SYSTEM_EVENTS as readonly string[]).includes(event);
}

/** What a checkpoint entry carries: a signature over (log id, seq, head). */
export interface CheckpointBody {
  logId: string;
  /** The seq of the entry just before the checkpoint. */
  seq: number;
  /** The hash of that entry (equal to the checkpoint entry's `prev`). */
  head: string;
  /** Ed25519 signature, base64. */
  signature: string;
  /** The raw 32-byte Ed25519 public key, base64. */
  publicKey: string;
  /** SHA-256 (hex) of the raw public key. */
  keyFingerprint: string;
}

/** The fields of an entry other than those the writer assigns (v, seq, id, ts, prev, hash). */
export interface EntryFields {
  event: string;
  tool?: string;
  requestId?: string | number;
  callId?: string;
  arguments?: unknown;
  outcome?: AuditOutcome;
  reason?: string;
  durationMs?: number;
  data?: Record<string, unknown>;
  checkpoint?: CheckpointBody;
}

export interface AuditEntry extends EntryFields {
  v: 1;
  seq: number;
  id: string;
  ts: string;
  prev: string;
  hash: string;
}

export type AuditEntryBody = Omit<AuditEntry, "hash">;

const ALLOWED_KEYS = new Set([
  "v",
  "seq",
  "id",
  "ts",
  "event",
  "tool",
  "requestId",
  "callId",
  "arguments",
  "outcome",
  "reason",
  "durationMs",
  "data",
  "checkpoint",
  "prev",
  "hash",
]);

const HEX64 = /^[0-9a-f]{64}$/;
const ULID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

export function isHash(value: unknown): value is string {
  return typeof value === "string" && HEX64.test(value);
}

/**
 * Hashes a body and renders its line (without the newline). Throws a TypeError when
 * the body holds something JSON cannot carry (a bigint, a function, a non-finite number).
 */
export function serializeEntry(body: AuditEntryBody): { line: string; hash: string } {
  const canonical = canonicalJson(body);
  const hash = sha256Hex(canonical);
  return { line: `${canonical.slice(0, -1)},"hash":"${hash}"}`, hash };
}

/** Why a single line does not hold a valid entry. */
export type LineProblem = "unparseable" | "bad_entry" | "hash_mismatch" | "not_canonical";

export type LineCheck =
  | { ok: true; entry: AuditEntry }
  | { ok: false; problem: LineProblem; message: string; parsed?: Record<string, unknown> };

/** Parses a line (without its newline) and checks its shape, its hash and its exact form. */
export function checkEntryLine(line: string): LineCheck {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return { ok: false, problem: "unparseable", message: "the line is not valid JSON" };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { ok: false, problem: "unparseable", message: "the line is not a JSON object" };
  }
  const record = parsed as Record<string, unknown>;
  const shapeProblem = entryShapeProblem(record);
  if (shapeProblem !== undefined) return { ok: false, problem: "bad_entry", message: shapeProblem, parsed: record };
  const { hash, ...body } = record;
  let expected: { line: string; hash: string };
  try {
    expected = serializeEntry(body as AuditEntryBody);
  } catch (err) {
    return { ok: false, problem: "bad_entry", message: `the entry cannot be hashed: ${(err as Error).message}`, parsed: record };
  }
  if (expected.hash !== hash) {
    return {
      ok: false,
      problem: "hash_mismatch",
      message: `the stored hash ${String(hash)} does not match the entry's content (${expected.hash}): the entry was edited`,
      parsed: record,
    };
  }
  if (expected.line !== line) {
    return {
      ok: false,
      problem: "not_canonical",
      message: "the line's bytes differ from the form the writer produces (reformatted, or a key was duplicated)",
      parsed: record,
    };
  }
  return { ok: true, entry: record as unknown as AuditEntry };
}

/** A description of the first shape problem, or undefined when the shape is right. */
export function entryShapeProblem(record: Record<string, unknown>): string | undefined {
  for (const key of Object.keys(record)) {
    if (!ALLOWED_KEYS.has(key)) return `unknown field "${key}"`;
  }
  if (record.v !== AUDIT_FORMAT_VERSION) return `unsupported format version ${JSON.stringify(record.v) ?? "(missing)"}`;
  if (typeof record.seq !== "number" || !Number.isSafeInteger(record.seq) || record.seq < 1) return "seq is not a positive integer";
  if (typeof record.id !== "string" || !ULID_RE.test(record.id)) return "id is not a ULID";
  if (typeof record.ts !== "string" || !ISO_UTC.test(record.ts) || Number.isNaN(Date.parse(record.ts))) {
    return "ts is not an ISO 8601 UTC time";
  }
  if (typeof record.event !== "string" || record.event.length === 0) return "event is missing";
  if (!isHash(record.prev)) return "prev is not a SHA-256 hex hash";
  if (!isHash(record.hash)) return "hash is not a SHA-256 hex hash";
  if (record.tool !== undefined && typeof record.tool !== "string") return "tool is not a string";
  if (record.requestId !== undefined && typeof record.requestId !== "string" && typeof record.requestId !== "number") {
    return "requestId is neither a string nor a number";
  }
  if (record.callId !== undefined && typeof record.callId !== "string") return "callId is not a string";
  if (record.outcome !== undefined && !(AUDIT_OUTCOMES as readonly unknown[]).includes(record.outcome)) {
    return "outcome is not one of ok, error, denied, timeout, cancelled";
  }
  if (record.reason !== undefined && typeof record.reason !== "string") return "reason is not a string";
  if (record.durationMs !== undefined && (typeof record.durationMs !== "number" || record.durationMs < 0)) {
    return "durationMs is not a non-negative number";
  }
  if (record.data !== undefined && (typeof record.data !== "object" || record.data === null || Array.isArray(record.data))) {
    return "data is not an object";
  }
  if ((record.event === "checkpoint") !== (record.checkpoint !== undefined)) {
    return record.event === "checkpoint" ? "a checkpoint entry has no checkpoint field" : "only a checkpoint entry may have a checkpoint field";
  }
  if (record.checkpoint !== undefined) return checkpointShapeProblem(record.checkpoint);
  return undefined;
}

function checkpointShapeProblem(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "checkpoint is not an object";
  const cp = value as Record<string, unknown>;
  const keys = Object.keys(cp).sort().join(",");
  if (keys !== "head,keyFingerprint,logId,publicKey,seq,signature") return `checkpoint has fields ${keys}`;
  if (typeof cp.logId !== "string" || cp.logId.length === 0) return "checkpoint.logId is missing";
  if (typeof cp.seq !== "number" || !Number.isSafeInteger(cp.seq) || cp.seq < 0) return "checkpoint.seq is not an integer";
  if (!isHash(cp.head)) return "checkpoint.head is not a hash";
  if (typeof cp.signature !== "string" || typeof cp.publicKey !== "string") return "checkpoint signature or key is not a string";
  if (!isHash(cp.keyFingerprint)) return "checkpoint.keyFingerprint is not a hash";
  return undefined;
}

/** The log id a system entry carries in `data.logId`, if any. */
export function logIdOf(entry: AuditEntry): string | undefined {
  if (entry.checkpoint !== undefined) return entry.checkpoint.logId;
  if (!isSystemEvent(entry.event)) return undefined;
  const value = entry.data?.logId;
  return typeof value === "string" ? value : undefined;
}
