/**
 * PathLocks: calls that change one file take turns; different files do not wait for each other;
 * a call that ends while it waits stops waiting, and the turns after it still come.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PathLocks } from "../../src/plugins/builtin/files/locks.js";

function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

void test("one path: holders run one after another, in the order they came; other paths do not wait", async () => {
  const locks = new PathLocks();
  const order: string[] = [];
  const first = gate();
  const a = locks.hold(["/f"], async () => {
    order.push("a starts");
    await first.opened;
    order.push("a ends");
  });
  const b = locks.hold(["/f"], async () => {
    order.push("b runs");
  });
  const other = locks.hold(["/g"], async () => {
    order.push("other runs");
  });
  await other;
  await turn();
  assert.deepEqual(order, ["a starts", "other runs"], "b waits for a; /g does not");
  first.open();
  await Promise.all([a, b]);
  assert.deepEqual(order, ["a starts", "other runs", "a ends", "b runs"]);
});

void test("a call that ends while it waits stops waiting at once; the holder after it still gets its turn", async () => {
  const locks = new PathLocks();
  const first = gate();
  const held = locks.hold(["/f"], () => first.opened);
  const controller = new AbortController();
  let ran = false;
  const waiting = locks.hold(
    ["/f"],
    async () => {
      ran = true;
    },
    controller.signal,
  );
  const after = locks.hold(["/f"], async () => "third");
  controller.abort(new Error("the call was cancelled"));
  await assert.rejects(waiting, /the call was cancelled/);
  first.open();
  await held;
  assert.equal(await after, "third");
  assert.equal(ran, false, "the ended call never ran");
  await assert.rejects(locks.hold(["/f"], async () => undefined, controller.signal), /cancelled/, "an ended call does not wait at all");
});

void test("several paths are taken in one order, so two callers naming them differently cannot wait on each other", async () => {
  const locks = new PathLocks();
  const results = await Promise.all([
    locks.hold(["/b", "/a"], async () => {
      await turn();
      return 1;
    }),
    locks.hold(["/a", "/b", "/a"], async () => {
      await turn();
      return 2;
    }),
  ]);
  assert.deepEqual(results, [1, 2]);
});
