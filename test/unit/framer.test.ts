import { test } from "node:test";
import assert from "node:assert/strict";
import { LineFramer, MAX_LINE_BYTES_LIMIT } from "../../src/protocol/framer.js";

function collect(max = 64) {
  const lines: string[] = [];
  const oversize: number[] = [];
  const framer = new LineFramer(max, { line: (b) => lines.push(b.toString("utf8")), oversize: (limit) => oversize.push(limit) });
  return { framer, lines, oversize };
}

test("splits lines across and within chunks", () => {
  const { framer, lines } = collect();
  framer.push(Buffer.from('{"a":1}\n{"b"'));
  framer.push(Buffer.from(":2}\n"));
  framer.push(Buffer.from('{"c":3}\n{"d":4}\n'));
  assert.deepEqual(lines, ['{"a":1}', '{"b":2}', '{"c":3}', '{"d":4}']);
});

test("a line split into many one-byte chunks is joined once", () => {
  const { framer, lines } = collect();
  for (const byte of Buffer.from('{"x":"yz"}\n')) framer.push(Buffer.from([byte]));
  assert.deepEqual(lines, ['{"x":"yz"}']);
});

test("tolerates CRLF and skips blank and whitespace-only lines", () => {
  const { framer, lines } = collect();
  framer.push(Buffer.from('\n\r\n  \n{"a":1}\r\n\t\r\n{"b":2}\n'));
  assert.deepEqual(lines, ['{"a":1}', '{"b":2}']);
});

test("multi-byte characters split across chunks stay intact", () => {
  const { framer, lines } = collect();
  const bytes = Buffer.from('{"t":"é😀"}\n');
  framer.push(bytes.subarray(0, 8));
  framer.push(bytes.subarray(8));
  assert.deepEqual(lines, ['{"t":"é😀"}']);
});

test("an over-long line is reported as soon as it passes the limit and discarded without buffering", () => {
  const { framer, lines, oversize } = collect(16);
  framer.push(Buffer.from("x".repeat(20)));
  assert.deepEqual(oversize, [16], "reported before the newline arrives");
  framer.push(Buffer.from("y".repeat(1000)));
  framer.push(Buffer.from('zzz\n{"ok":1}\n'));
  assert.deepEqual(oversize, [16], "reported once per line");
  assert.deepEqual(lines, ['{"ok":1}']);
});

test("an over-long line that arrives whole with its newline is reported once and the next line survives", () => {
  const { framer, lines, oversize } = collect(8);
  framer.push(Buffer.from('123456789012\n{"a":1}\n'));
  assert.deepEqual(oversize, [8]);
  assert.deepEqual(lines, ['{"a":1}']);
});

test("a line of exactly the limit passes, with or without CR", () => {
  const { framer, lines, oversize } = collect(8);
  framer.push(Buffer.from("12345678\n12345678\r\n"));
  assert.deepEqual(lines, ["12345678", "12345678"]);
  assert.deepEqual(oversize, []);
});

test("limit + 1 bytes split across chunks is oversize", () => {
  const { framer, lines, oversize } = collect(8);
  framer.push(Buffer.from("12345"));
  framer.push(Buffer.from("6789\n"));
  assert.deepEqual(oversize, [8]);
  assert.deepEqual(lines, []);
});

test("end() delivers a final line without a newline, but not a discarded one", () => {
  const first = collect();
  first.framer.push(Buffer.from('{"last":true}'));
  first.framer.end();
  assert.deepEqual(first.lines, ['{"last":true}']);
  const second = collect(4);
  second.framer.push(Buffer.from("123456"));
  second.framer.end();
  assert.deepEqual(second.lines, []);
  assert.deepEqual(second.oversize, [4]);
});

test("the limit must be a positive integer", () => {
  assert.throws(() => new LineFramer(0, { line() {}, oversize() {} }), RangeError);
});

test("a limit above the longest string is refused: such a line could not be decoded", () => {
  const sink = { line() {}, oversize() {} };
  assert.throws(() => new LineFramer(MAX_LINE_BYTES_LIMIT + 1, sink), RangeError);
  assert.doesNotThrow(() => new LineFramer(MAX_LINE_BYTES_LIMIT, sink));
});

test("review finding: a line dripped in one-byte chunks is held in few buffers, not one object per byte", () => {
  const lines: number[] = [];
  const framer = new LineFramer(16 * 1024 * 1024, { line: (b) => lines.push(b.length), oversize: () => assert.fail("not oversize") });
  // Each chunk was kept as its own Buffer until the newline: ~120 bytes of heap per byte of line,
  // so a 16 MiB line sent one byte per write took gigabytes, far past the limit the line obeys.
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 1_000_000; i++) framer.push(Buffer.from([0x61]));
  const grown = process.memoryUsage().heapUsed - before;
  framer.push(Buffer.from("\n"));
  assert.deepEqual(lines, [1_000_000]);
  assert.ok(grown < 48 * 1024 * 1024, `heap grew ${Math.round(grown / 1e6)} MB for a 1 MB line`);
});
