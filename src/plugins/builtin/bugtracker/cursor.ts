/**
 * Opaque keyset cursors. A cursor holds the sort keys of the last row of a page
 * (never an offset), and a check value bound to the query it came from, so a
 * cursor replayed with other filters, another sort or another project is refused
 * instead of silently returning a wrong page. The keys are bound as SQL
 * parameters, so a forged cursor can only move within the caller's own query.
 */
import { createHash } from "node:crypto";
import type { Sort } from "./model.js";

const VERSION = 1;

/** Sort keys of a row: [id] for created order, [key, id] for the others. */
export type CursorKeys = readonly number[];

export class CursorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CursorError";
  }
}

function keyCount(sort: Sort): number {
  return sort === "created_desc" || sort === "created_asc" ? 1 : 2;
}

function check(payload: string, fingerprint: string): string {
  return createHash("sha256").update(payload).update("\n").update(fingerprint).digest("base64url").slice(0, 16);
}

export function encodeCursor(sort: Sort, keys: CursorKeys, fingerprint: string): string {
  if (keys.length !== keyCount(sort) || !keys.every((key) => Number.isFinite(key))) {
    throw new RangeError(`cursor keys ${JSON.stringify(keys)} do not fit sort ${sort}`);
  }
  const payload = Buffer.from(JSON.stringify({ v: VERSION, s: sort, k: keys }), "utf8").toString("base64url");
  return `${payload}.${check(payload, fingerprint)}`;
}

/** Returns the keys of a cursor made by `encodeCursor` for the same sort and fingerprint. */
export function decodeCursor(cursor: string, sort: Sort, fingerprint: string): CursorKeys {
  const dot = cursor.indexOf(".");
  if (dot <= 0 || dot !== cursor.lastIndexOf(".")) throw new CursorError("the cursor is malformed");
  const payload = cursor.slice(0, dot);
  if (cursor.slice(dot + 1) !== check(payload, fingerprint)) {
    throw new CursorError("the cursor belongs to a different query (other filters, sort or project) or was altered");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    throw new CursorError("the cursor is malformed");
  }
  if (typeof parsed !== "object" || parsed === null) throw new CursorError("the cursor is malformed");
  const { v, s, k } = parsed as { v?: unknown; s?: unknown; k?: unknown };
  if (v !== VERSION) throw new CursorError("the cursor comes from another version of the bug tracker");
  if (s !== sort) throw new CursorError("the cursor was made for another sort order");
  if (!Array.isArray(k) || k.length !== keyCount(sort) || !k.every((key) => typeof key === "number" && Number.isFinite(key))) {
    throw new CursorError("the cursor is malformed");
  }
  const keys = k as number[];
  // Every key but a relevance score is an integer (row id, time in ms, priority rank).
  const integers = sort === "relevance" ? keys.slice(1) : keys;
  if (!integers.every((key) => Number.isSafeInteger(key))) throw new CursorError("the cursor is malformed");
  return keys;
}
