/**
 * One part of a file as UTF-8 text: a part may start or end inside a character (reads go by
 * bytes), so a start inside one moves past it and an end inside one leaves it for the next
 * read, and a file that is not text is said to be so rather than shown as replacement marks.
 */

export type TextPart =
  | { ok: true; text: string; /** Continuation bytes skipped at the start. */ skipped: number; /** Bytes the text holds. */ bytes: number }
  | { ok: false; reason: "invalid" | "nul" }
  | { ok: false; reason: "too_short"; /** Bytes from the part's start that would hold its first character. */ need: number };

/**
 * `fromMiddle`: the part does not start at the file's start (a leading partial character is
 * skipped); `more`: the file goes on after it (a trailing partial character is left out).
 */
export function decodeTextPart(bytes: Uint8Array, fromMiddle: boolean, more: boolean): TextPart {
  let skipped = 0;
  // At most three continuation bytes can precede a character's start.
  if (fromMiddle) while (skipped < 3 && skipped < bytes.byteLength && ((bytes[skipped] as number) & 0xc0) === 0x80) skipped++;
  const body = bytes.subarray(skipped);
  const held = more ? partialTail(body) : 0;
  const whole = body.subarray(0, body.byteLength - held);
  if (whole.byteLength === 0 && body.byteLength > 0) return { ok: false, reason: "too_short", need: skipped + sequenceLength(body[0] as number) };
  let text: string;
  try {
    // ignoreBOM: a byte order mark stays in the text, so byte counts stay true.
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(whole);
  } catch {
    return { ok: false, reason: "invalid" };
  }
  if (text.includes("\u0000")) return { ok: false, reason: "nul" };
  return { ok: true, text, skipped, bytes: whole.byteLength };
}

/** The bytes of the UTF-8 sequence a lead byte starts. */
function sequenceLength(lead: number): number {
  return lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
}

/** Bytes at the end that begin a character the part does not hold whole (0 when it ends on a boundary). */
function partialTail(bytes: Uint8Array): number {
  const length = bytes.byteLength;
  for (let back = 1; back <= Math.min(4, length); back++) {
    const byte = bytes[length - back] as number;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const need = sequenceLength(byte);
    return need > back ? back : 0;
  }
  return 0;
}
