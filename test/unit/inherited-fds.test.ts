import { test } from "node:test";
import assert from "node:assert/strict";
import { closeInheritedFds, inheritedToClose, type FdTable } from "../../src/util/inherited-fds.js";

const CLOEXEC = 0o2000000;

void test("only descriptors above stderr, without close-on-exec and not kept, are chosen", () => {
  const entries = [
    { fd: 0, flags: 0 },
    { fd: 2, flags: 1 },
    { fd: 3, flags: 0o100002 },
    { fd: 4, flags: CLOEXEC | 0o2 },
    { fd: 5, flags: undefined },
    { fd: 7, flags: 1 },
  ];
  assert.deepEqual(inheritedToClose(entries, new Set()), [3, 7]);
  assert.deepEqual(inheritedToClose(entries, new Set([7])), [3]);
});

function table(flags: Record<number, number | undefined>, failing: number[] = []): FdTable & { closed: number[] } {
  const closed: number[] = [];
  return {
    closed,
    list: () => Object.keys(flags).map(Number),
    flags: (fd) => flags[fd],
    close(fd) {
      if (failing.includes(fd)) throw Object.assign(new Error("EBADF"), { code: "EBADF" });
      closed.push(fd);
    },
  };
}

void test("closeInheritedFds closes what it chose, keeps Node's IPC channel, and skips a descriptor already gone", () => {
  const t = table({ 0: 0, 1: 1, 2: 1, 3: 0, 4: 0, 9: CLOEXEC, 11: 0 }, [11]);
  assert.deepEqual(closeInheritedFds({ NODE_CHANNEL_FD: "4" }, t), [3]);
  assert.deepEqual(t.closed, [3]);
  const none: FdTable = { list: () => undefined, flags: () => 0, close: () => assert.fail("nothing to close without a listing") };
  assert.deepEqual(closeInheritedFds({}, none), []);
});
