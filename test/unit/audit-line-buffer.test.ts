/**
 * The audit writer's LineBuffer: bytes keep their logical positions while the buffer
 * grows, held bytes are never overwritten or moved under a view, and an emptied buffer
 * starts over (at its usual size after a large entry).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { LineBuffer } from "../../src/security/audit/line-buffer.js";

/** Writes `text` at the end, as the writer does: reserve, write at the offset, commit. Returns its logical start. */
function put(lines: LineBuffer, text: string): number {
  const start = lines.position;
  const buffer = lines.reserve(Buffer.byteLength(text));
  const written = buffer.write(text, lines.offsetOf(start), "utf8");
  assert.equal(written, Buffer.byteLength(text), "reserve made room for the whole text");
  lines.commit(written);
  return start;
}

void test("lines keep their positions and bytes across growth; views of held bytes stay intact", () => {
  const lines = new LineBuffer(16, 1024);
  const texts = ["alpha\n", "bravo-bravo\n", "ünïcødé 😀\n", "x".repeat(40) + "\n", "delta\n"];
  const starts: number[] = [];
  const views: Buffer[] = [];
  for (const text of texts) {
    starts.push(put(lines, text));
    // A view taken now (as a write in flight holds one) must still read the same bytes later.
    views.push(lines.view(starts.at(-1)!, lines.position));
  }
  let expected = 0;
  texts.forEach((text, i) => {
    assert.equal(starts[i], expected, `text ${i} starts where the one before ended`);
    expected += Buffer.byteLength(text);
    assert.equal(views[i]!.toString("utf8"), text, `the view of text ${i} was not overwritten`);
  });
  assert.equal(lines.view(0, lines.position).toString("utf8"), texts.join(""), "all held bytes are one stretch");
});

void test("released bytes are reused: an emptied buffer starts over without growing", () => {
  const lines = new LineBuffer(64, 1024);
  const first = lines.reserve(10);
  for (let round = 0; round < 100; round++) {
    const start = put(lines, "0123456789");
    assert.equal(lines.offsetOf(start), 0, `round ${round} writes at the buffer's start`);
    lines.release(lines.position);
  }
  assert.equal(lines.reserve(10), first, "no new buffer was needed");
});

void test("growth copies only the bytes still held; partly released bytes are not kept", () => {
  const lines = new LineBuffer(32, 1024);
  put(lines, "a".repeat(20));
  const keep = put(lines, "kept\n");
  lines.release(keep); // the first 20 bytes are written; "kept\n" is not
  const big = put(lines, "b".repeat(100));
  assert.equal(lines.view(keep, big).toString(), "kept\n", "the held line moved with the growth");
  assert.equal(lines.view(big, lines.position).toString(), "b".repeat(100));
  assert.equal(lines.offsetOf(keep), 0, "only held bytes were copied: the kept line is now at the start");
});

void test("a buffer grown past keepBytes by a large line is dropped once empty", () => {
  const lines = new LineBuffer(64, 256);
  const small = lines.reserve(1);
  put(lines, "y".repeat(1000));
  const grown = lines.reserve(1);
  assert.ok(grown.length >= 1000 && grown !== small);
  lines.release(lines.position);
  const after = lines.reserve(1);
  assert.equal(after.length, 64, "back to the usual size");
  // Not dropped while something is still held.
  put(lines, "z".repeat(1000));
  put(lines, "held");
  const beforeRelease = lines.reserve(1);
  lines.release(lines.position - 4);
  assert.equal(lines.reserve(1), beforeRelease, "kept while bytes are held");
});

void test("bytes a write still reads are never reused: releasing earlier bytes does not let new lines overwrite a held view", () => {
  const lines = new LineBuffer(64, 1024);
  put(lines, "a".repeat(30)); // written and released below
  const inFlightStart = put(lines, "in-flight\n");
  const inFlight = lines.view(inFlightStart, lines.position); // a write of this stretch is running
  lines.release(inFlightStart); // the bytes before it are done
  // These would fit if the buffer were compacted in place over the released bytes.
  for (let i = 0; i < 10; i++) put(lines, `n${i}-${"x".repeat(20)}\n`);
  assert.equal(inFlight.toString(), "in-flight\n", "the view the write reads is intact");
  assert.equal(lines.heldBytes, lines.position - inFlightStart, "everything from the in-flight line on is held");
});

void test("heldBytes counts what is sealed and not yet released", () => {
  const lines = new LineBuffer(64, 1024);
  assert.equal(lines.heldBytes, 0);
  put(lines, "12345");
  put(lines, "678");
  assert.equal(lines.heldBytes, 8);
  lines.release(5);
  assert.equal(lines.heldBytes, 3);
  lines.release(lines.position);
  assert.equal(lines.heldBytes, 0);
});
