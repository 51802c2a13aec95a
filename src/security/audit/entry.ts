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
  return sealed(canonicalEntryJson(body));
}

/**
 * The members the writer assigns. `tsJson` and `prevJson` must be JSON.stringify of
 * `ts` and `prev`: the writer makes those strings (an ISO time, a hex hash), knows they
 * need no escape, and so spares them the check every other string gets.
 */
export interface SealHead {
  seq: number;
  id: string;
  ts: string;
  tsJson: string;
  prev: string;
  prevJson: string;
}

/** What a line adds to the canonical JSON: `,"hash":"<64 hex>"}` and the newline, less the closing brace it replaces. */
const LINE_EXTRA_BYTES = ',"hash":"'.length + 64 + '"}\n'.length - 1;
const CLOSING_BRACE = 0x7d;

/**
 * Exactly `canonicalJson({ v: AUDIT_FORMAT_VERSION, seq, id, ts, ...fields, prev })`,
 * without building that object. Throws a TypeError for what JSON cannot carry.
 */
export function sealedCanonicalJson(head: SealHead, fields: EntryFields): string {
  const record = fields as unknown as Record<string, unknown>;
  const present = presentKeys(record);
  // A key the writer assigns would take part in the spread's overriding: leave that to the spread.
  if (present < 0 || (present & WRITER_KEYS) !== 0) {
    return canonicalEntryJson({ v: AUDIT_FORMAT_VERSION, seq: head.seq, id: head.id, ts: head.ts, ...fields, prev: head.prev });
  }
  return members(present, record, AUDIT_FORMAT_VERSION, head.seq, head.id, head.ts, head.prev, head.tsJson, head.prevJson);
}

/** The most bytes the line of this canonical JSON can take, newline included. */
export function lineBytesBound(canonical: string): number {
  // UTF-8 takes at most 3 bytes per UTF-16 unit; counting exactly costs a pass over the
  // string, worth it only where 3x would reserve far too much.
  return (canonical.length <= 16_384 ? canonical.length * 3 : Buffer.byteLength(canonical, "utf8")) + LINE_EXTRA_BYTES;
}

/**
 * Writes an entry's line at `offset` (serializeEntry's line: the canonical JSON with
 * `,"hash":"…"` before its closing brace, then a newline) and returns its hash and size.
 * The JSON is encoded once: the hash is taken over the bytes just written, which are the
 * bytes that go to the file. The buffer must have `lineBytesBound(canonical)` bytes there.
 */
export function sealLineInto(buffer: Buffer, offset: number, canonical: string): { hash: string; bytes: number } {
  const length = buffer.write(canonical, offset, "utf8");
  const brace = offset + length - 1;
  // A write stops short only where the next character does not fit (under 4 bytes left), and
  // the hash needs more room than that after the JSON: with less, the room was miscounted,
  // and a cut line is refused rather than hashed and written.
  if (buffer.length - (offset + length) < LINE_EXTRA_BYTES || buffer[brace] !== CLOSING_BRACE) {
    throw new RangeError("the entry does not fit the room reserved for its line");
  }
  const hash = sha256Hex(new Uint8Array(buffer.buffer, buffer.byteOffset + offset, length));
  const tail = buffer.write(`,"hash":"${hash}"}\n`, brace, "latin1");
  return { hash, bytes: length - 1 + tail };
}

function sealed(canonical: string): { line: string; hash: string } {
  const hash = sha256Hex(canonical);
  return { line: `${canonical.slice(0, -1)},"hash":"${hash}"}`, hash };
}

/**
 * Exactly `canonicalJson(body)`, faster: the keys of a body are a known set, so they are
 * emitted in their sorted order without collecting and sorting them, and only the
 * free-form values (arguments, data, checkpoint) take the generic walk. A body with
 * any other own key (a file being verified may hold anything) takes the generic path;
 * values are encoded by the same function, so odd types, dropped undefined members and
 * the TypeErrors for what JSON cannot carry come out the same.
 */
export function canonicalEntryJson(body: AuditEntryBody): string {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return canonicalJson(body);
  const record = body as unknown as Record<string, unknown>;
  const present = presentKeys(record);
  if (present < 0) return canonicalJson(body);
  return members(
    present,
    record,
    (present & K_V) === 0 ? undefined : record.v,
    (present & K_SEQ) === 0 ? undefined : record.seq,
    (present & K_ID) === 0 ? undefined : record.id,
    (present & K_TS) === 0 ? undefined : record.ts,
    (present & K_PREV) === 0 ? undefined : record.prev,
  );
}

// One bit per body key, numbered in canonical (code-unit sorted) order.
const K_ARGUMENTS = 1 << 0;
const K_CALL_ID = 1 << 1;
const K_CHECKPOINT = 1 << 2;
const K_DATA = 1 << 3;
const K_DURATION_MS = 1 << 4;
const K_EVENT = 1 << 5;
const K_ID = 1 << 6;
const K_OUTCOME = 1 << 7;
const K_PREV = 1 << 8;
const K_REASON = 1 << 9;
const K_REQUEST_ID = 1 << 10;
const K_SEQ = 1 << 11;
const K_TOOL = 1 << 12;
const K_TS = 1 << 13;
const K_V = 1 << 14;
const WRITER_KEYS = K_V | K_SEQ | K_ID | K_TS | K_PREV;

/**
 * The body keys among the record's own enumerable keys (the keys canonicalJson sees,
 * so an inherited member is never read), or -1 when it has any other key.
 */
function presentKeys(record: Record<string, unknown>): number {
  const keys = Object.keys(record);
  let present = 0;
  for (let i = 0; i < keys.length; i++) {
    const bit = bodyKeyBit(keys[i]!);
    if (bit === 0) return -1;
    present |= bit;
  }
  return present;
}

function bodyKeyBit(key: string): number {
  switch (key) {
    case "v":
      return K_V;
    case "seq":
      return K_SEQ;
    case "id":
      return K_ID;
    case "ts":
      return K_TS;
    case "event":
      return K_EVENT;
    case "tool":
      return K_TOOL;
    case "requestId":
      return K_REQUEST_ID;
    case "callId":
      return K_CALL_ID;
    case "arguments":
      return K_ARGUMENTS;
    case "outcome":
      return K_OUTCOME;
    case "reason":
      return K_REASON;
    case "durationMs":
      return K_DURATION_MS;
    case "data":
      return K_DATA;
    case "checkpoint":
      return K_CHECKPOINT;
    case "prev":
      return K_PREV;
    default:
      return 0;
  }
}

/**
 * The object, its members in sorted order. `present` says which of the record's own
 * members to read; the writer-assigned ones come as arguments (undefined: absent), `ts`
 * and `prev` possibly already as JSON.
 */
function members(
  present: number,
  record: Record<string, unknown>,
  v: unknown,
  seq: unknown,
  id: unknown,
  ts: unknown,
  prev: unknown,
  tsJson?: string,
  prevJson?: string,
): string {
  let out = "{";
  if ((present & K_ARGUMENTS) !== 0) out = member(out, ',"arguments":', record.arguments);
  if ((present & K_CALL_ID) !== 0) out = member(out, ',"callId":', record.callId);
  if ((present & K_CHECKPOINT) !== 0) out = member(out, ',"checkpoint":', record.checkpoint);
  if ((present & K_DATA) !== 0) out = member(out, ',"data":', record.data);
  if ((present & K_DURATION_MS) !== 0) out = member(out, ',"durationMs":', record.durationMs);
  if ((present & K_EVENT) !== 0) out = member(out, ',"event":', record.event);
  out = member(out, ',"id":', id);
  if ((present & K_OUTCOME) !== 0) out = member(out, ',"outcome":', record.outcome);
  out = prevJson === undefined ? member(out, ',"prev":', prev) : memberJson(out, ',"prev":', prevJson);
  if ((present & K_REASON) !== 0) out = member(out, ',"reason":', record.reason);
  if ((present & K_REQUEST_ID) !== 0) out = member(out, ',"requestId":', record.requestId);
  out = member(out, ',"seq":', seq);
  if ((present & K_TOOL) !== 0) out = member(out, ',"tool":', record.tool);
  out = tsJson === undefined ? member(out, ',"ts":', ts) : memberJson(out, ',"ts":', tsJson);
  out = member(out, ',"v":', v);
  return `${out}}`;
}

/**
 * One member; `key` is `,"name":`, its comma dropped when the member opens the object.
 * Undefined is dropped, as canonicalJson drops it.
 */
function member(out: string, key: string, value: unknown): string {
  return value === undefined ? out : memberJson(out, key, canonicalJson(value));
}

function memberJson(out: string, key: string, json: string): string {
  return out.length === 1 ? out + key.slice(1) + json : out + key + json;
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

export function checkpointShapeProblem(value: unknown): string | undefined {
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
