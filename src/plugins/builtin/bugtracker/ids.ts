/**
 * Identifiers: the human bug id (`BUG-12`, unique per project, never reused), the
 * global ULID of a bug, and the seed-compatible project id.
 */
import { createHash } from "node:crypto";
import path from "node:path";

export type BugRef = { kind: "number"; number: number } | { kind: "uid"; uid: string };

const NUMBER_REF = /^bug-([0-9]{1,9})$/i;
const ULID_REF = /^[0-9A-HJKMNP-TV-Z]{26}$/;

export function formatBugId(number: number): string {
  return `BUG-${number}`;
}

/**
 * Reads `BUG-12` (any case, leading zeros allowed) or a ULID (any case). Returns
 * undefined for anything else so the caller can say what a valid id looks like.
 */
export function parseBugRef(value: string): BugRef | undefined {
  const trimmed = value.trim();
  const numbered = NUMBER_REF.exec(trimmed);
  if (numbered) {
    const number = Number(numbered[1]);
    return number >= 1 ? { kind: "number", number } : undefined;
  }
  const upper = trimmed.toUpperCase();
  // Crockford's alphabet has no I, L, O, U; the first character caps the time at 2^48 ms.
  if (ULID_REF.test(upper) && upper <= "7ZZZZZZZZZZZZZZZZZZZZZZZZZ") return { kind: "uid", uid: upper };
  return undefined;
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** A ULID: 48 bits of milliseconds, then 80 random bits, in Crockford base32. */
export function makeUlid(nowMs: number, random: Uint8Array): string {
  if (!Number.isInteger(nowMs) || nowMs < 0 || nowMs > 2 ** 48 - 1) throw new RangeError(`ULID time ${nowMs} is out of range`);
  if (random.length < 10) throw new RangeError("a ULID needs 10 random bytes");
  let out = "";
  let time = nowMs;
  for (let i = 0; i < 10; i++) {
    out = CROCKFORD.charAt(time % 32) + out;
    time = Math.floor(time / 32);
  }
  // 80 bits = 16 characters of 5 bits, read from the bytes as a bit stream.
  let buffer = 0;
  let bits = 0;
  for (let i = 0; i < 10; i++) {
    buffer = (buffer << 8) | (random[i] ?? 0);
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += CROCKFORD.charAt((buffer >> bits) & 31);
    }
    buffer &= (1 << bits) - 1;
  }
  return out;
}

/** The seed's project id: `<basename>-<first 8 hex of sha256(real path)>`. */
export function projectIdFor(realPath: string): string {
  const base = path.basename(realPath) || "root";
  const digest = createHash("sha256").update(realPath).digest("hex").slice(0, 8);
  return `${base}-${digest}`;
}
