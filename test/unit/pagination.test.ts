import { test } from "node:test";
import assert from "node:assert/strict";
import { CursorCodec, paginate } from "../../src/protocol/pagination.js";
import { ErrorCode, RpcError } from "../../src/protocol/jsonrpc.js";

const items = Array.from({ length: 7 }, (_, i) => i);

test("walking the cursors returns every item exactly once", () => {
  const codec = new CursorCodec("tools/list");
  const seen: number[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = paginate(items, cursor, 3, codec);
    seen.push(...page.items);
    cursor = page.nextCursor;
    pages += 1;
  } while (cursor !== undefined);
  assert.deepEqual(seen, items);
  assert.equal(pages, 3);
});

test("the last page has no nextCursor; an exact fit has none either", () => {
  const codec = new CursorCodec("t");
  assert.equal(paginate(items, undefined, 7, codec).nextCursor, undefined);
  assert.equal(paginate([], undefined, 3, codec).nextCursor, undefined);
});

const isInvalidParams = (error: unknown) => error instanceof RpcError && error.code === ErrorCode.InvalidParams;

test("garbage, edited and foreign cursors are -32602", () => {
  const codec = new CursorCodec("t");
  const other = new CursorCodec("t");
  const good = paginate(items, undefined, 3, codec).nextCursor!;
  for (const bad of ["garbage", "", "3.", ".abc", good.replace(/^3/, "4"), `${good}x`, 3, null, "9".repeat(200)]) {
    assert.throws(() => paginate(items, bad, 3, codec), isInvalidParams, String(bad));
  }
  assert.throws(() => paginate(items, good, 3, other), isInvalidParams, "a cursor from another session");
  assert.throws(() => paginate([1], codec.encode(5), 3, codec), isInvalidParams, "past the end");
});
