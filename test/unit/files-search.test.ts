/**
 * search_files' reading: several guarded reads at once with results in the walk's order, a stop
 * before the call's deadline that keeps what was found, and progress. Clocks and deadlines are
 * injected (a clock that moves when a file is read), so nothing here depends on how fast the
 * machine is; where a real timer is the point (a read that never ends), only the outcome is checked.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { ToolError, type GuardedFs, type ProgressUpdate, type ToolContext } from "../../src/plugins/contract.js";
import { OrderedQueue } from "../../src/plugins/builtin/files/ordered.js";
import { PROGRESS_EVERY_MS, READS_IN_FLIGHT, searchFiles, type SearchOutput } from "../../src/plugins/builtin/files/search.js";
import { SearchStop, stopMarginMs } from "../../src/plugins/builtin/files/stop.js";
import { createTestContext, type TestContext } from "../helpers/plugin-context.js";

const FILES = 40;
let harness: TestContext;
let dir = "";

before(() => {
  harness = createTestContext();
  dir = harness.makeDir("tree");
  // Two levels, so the walk lists several directories between reads; every third file holds the needle.
  for (let i = 0; i < FILES; i++) {
    const sub = path.join(dir, i < FILES / 2 ? "a" : "b");
    fs.mkdirSync(sub, { recursive: true });
    fs.writeFileSync(path.join(sub, `f${String(i).padStart(2, "0")}.txt`), i % 3 === 0 ? `line one\nthe NEEDLE ${i}\n` : "nothing\n");
  }
  fs.writeFileSync(path.join(dir, "top.txt"), "needle at the top\n");
});

after(() => harness.cleanup());

/** A context whose reads are wrapped by `wrap` (the real read is `read`). */
function withReads(wrap: (file: string, read: () => Promise<Uint8Array>) => Promise<Uint8Array>, extra: Partial<ToolContext> = {}): ToolContext {
  const base = harness.context();
  const fsWrapped: GuardedFs = { ...base.fs, readBytes: (file, options) => wrap(file, () => base.fs.readBytes(file, options)) };
  return { ...base, fs: fsWrapped, ...extra };
}

const paths = (output: SearchOutput): string[] => output.results.map((result) => result.path);

void describe("OrderedQueue", () => {
  test("hands outcomes back in the order added, whatever order the work ends in", async () => {
    const queue = new OrderedQueue<string>(3, 4);
    const release: Array<(value: string) => void> = [];
    for (let i = 0; i < 3; i++) queue.start(() => new Promise<string>((resolve) => release.push(resolve)));
    assert.equal(queue.full, true, "three running fill a concurrency of three");
    // Work starts in the next microtask.
    await new Promise((resolve) => setImmediate(resolve));
    release[2]?.("c");
    release[1]?.("b");
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(queue.ready, false, "the oldest is still running");
    release[0]?.("a");
    const taken: string[] = [];
    while (taken.length < 3) {
      await queue.waitOldest();
      taken.push(queue.take());
    }
    assert.deepEqual(taken, ["a", "b", "c"]);
  });

  test("holds at most `capacity` outcomes, values put in included; a failure is thrown at its turn", async () => {
    const queue = new OrderedQueue<number>(1, 2);
    queue.start(() => Promise.reject(new Error("unreadable")));
    queue.put(2);
    assert.equal(queue.full, true);
    await queue.waitOldest();
    assert.throws(() => queue.take(), /unreadable/);
    assert.equal(queue.take(), 2);
    assert.equal(queue.size, 0);
  });
});

void describe("search_files reads several files at once", () => {
  test("the results and their order are those of reading one file after another, while up to READS_IN_FLIGHT reads run", async () => {
    let running = 0;
    let most = 0;
    let started = 0;
    // Later reads end first: each waits less than the one before it.
    const racing = withReads(async (_file, read) => {
      running++;
      most = Math.max(most, running);
      const wait = Math.max(0, 20 - started++);
      await new Promise((resolve) => setTimeout(resolve, wait));
      running--;
      return read();
    });
    const sequential = await searchFiles({ path: dir, contains: "needle" }, harness.context(), { concurrency: 1 });
    const concurrent = await searchFiles({ path: dir, contains: "needle" }, racing);
    assert.deepEqual(concurrent, sequential);
    assert.deepEqual(paths(concurrent).slice(0, 3), ["top.txt", "a/f00.txt", "a/f03.txt"]);
    assert.equal(concurrent.results.length, 1 + Math.ceil(FILES / 3));
    assert.equal(concurrent.complete, true);
    assert.equal(most, READS_IN_FLIGHT, "the reads overlapped, never more than the bound");
  });

  test("max_results keeps the first matches in the walk's order, and says so", async () => {
    const sequential = await searchFiles({ path: dir, contains: "needle", max_results: 4 }, harness.context(), { concurrency: 1 });
    const concurrent = await searchFiles({ path: dir, contains: "needle", max_results: 4 }, harness.context(), { concurrency: 16 });
    assert.deepEqual(concurrent, sequential);
    assert.deepEqual(paths(concurrent), ["top.txt", "a/f00.txt", "a/f03.txt", "a/f06.txt"]);
    assert.equal(concurrent.stopped, "max_results");
    assert.equal(concurrent.complete, false);
  });

  test("files that cannot be read are counted the same way", async () => {
    const failing = withReads((file, read) => (/f0[0-4]\.txt$/.test(file) ? Promise.reject(new ToolError("gone", "PATH_NOT_FOUND")) : read()));
    const found = await searchFiles({ path: dir, contains: "needle" }, failing);
    assert.equal(found.note, "5 entries could not be read and were passed over");
    assert.ok(!paths(found).includes("a/f00.txt") && !paths(found).includes("a/f03.txt"));
    assert.equal(found.complete, true);
  });
});

void describe("search_files takes room for its reads", () => {
  test("once, before the first read, for the reads it runs at once; a name-only search takes none", async () => {
    harness.reservations.length = 0;
    await searchFiles({ path: dir, pattern: "**/*.txt" }, harness.context());
    assert.deepEqual(harness.reservations, [], "no file is read");
    const found = await searchFiles({ path: dir, contains: "needle" }, harness.context());
    assert.equal(found.complete, true);
    assert.deepEqual(harness.reservations, [READS_IN_FLIGHT * 1024 * 1024], "one MiB per read in flight, once");
    harness.reservations.length = 0;
    await searchFiles({ path: dir, contains: "needle" }, harness.context(), { concurrency: 2 });
    assert.deepEqual(harness.reservations, [2 * 1024 * 1024]);
  });

  test("waiting for room that never comes stops it near the deadline, saying why; a cancelled wait ends it as cancelled", async () => {
    const starved = (extra: Partial<ToolContext>): ToolContext => ({ ...harness.context(), reserve: () => new Promise<void>(() => undefined), ...extra });
    const found = await searchFiles({ path: dir, contains: "needle" }, starved({ deadline: Date.now() + 300 }));
    assert.deepEqual([found.results, found.complete, found.stopped], [[], false, "time_limit"]);
    assert.match(found.note ?? "", /waiting for memory to read files in: other calls' large results hold it/);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new ToolError("the call was cancelled", "CANCELLED")), 20);
    await assert.rejects(searchFiles({ path: dir, contains: "needle" }, starved({ signal: controller.signal })), { code: "CANCELLED" });
  });
});

void describe("review finding: a search that stops waiting for room withdraws its wait", () => {
  test("the wait it gives up at its deadline ends with it, not granted to a call already answered", async () => {
    const strays: unknown[] = [];
    const onStray = (reason: unknown): void => void strays.push(reason);
    process.on("unhandledRejection", onStray);
    try {
      let given: AbortSignal | undefined;
      // As the engine waits: until the room comes (never here) or the signal given fires.
      const reserve = (_bytes: number, signal?: AbortSignal): Promise<void> => {
        given = signal;
        return new Promise<void>((_resolve, reject) => signal?.addEventListener("abort", () => reject(signal.reason as Error), { once: true }));
      };
      const found = await searchFiles({ path: dir, contains: "needle" }, { ...harness.context(), reserve, deadline: Date.now() + 300 });
      assert.equal(found.stopped, "time_limit");
      assert.equal(given?.aborted, true, "the wait was given a signal that has fired by the time the search returned");
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(strays, []);
    } finally {
      process.off("unhandledRejection", onStray);
    }
  });

  test("work raced once the stop is reached is left behind without an unhandled rejection; dispose ends what was given the signal", async () => {
    const strays: unknown[] = [];
    const onStray = (reason: unknown): void => void strays.push(reason);
    process.on("unhandledRejection", onStray);
    try {
      const start = Date.now();
      let now = start;
      // Past the stop by the clock, before its timer has fired (the timer waits on the real clock).
      const stop = new SearchStop(new AbortController().signal, start + 10_000, () => now);
      now = start + 60_000;
      assert.equal(await stop.race(Promise.reject(new Error("left behind"))), "time_limit");
      const waited = new Promise<void>((_resolve, reject) => stop.signal.addEventListener("abort", () => reject(new Error("withdrawn")), { once: true }));
      assert.equal(await stop.race(waited), "time_limit");
      stop.dispose();
      assert.equal(stop.signal.aborted, true, "a wait given the signal does not outlive the search");
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(strays.map(String), []);
    } finally {
      process.off("unhandledRejection", onStray);
    }
  });
});

void describe("search_files stops before the call's deadline", () => {
  test("the margin: a tenth of the time, at least 50 ms, at most 1 s", () => {
    assert.equal(stopMarginMs(200), 50);
    assert.equal(stopMarginMs(3000), 300);
    assert.equal(stopMarginMs(30_000), 1000);
  });

  test("near the deadline it returns what it found, complete: false and stopped: time_limit", async () => {
    // Each read takes 1 s of the injected clock; the call has 10 s, so it stops at 9 s (a 1 s margin).
    let clock = 0;
    const slow = withReads(
      (_file, read) => {
        clock += 1000;
        return read();
      },
      { deadline: 10_000 },
    );
    const found = await searchFiles({ path: dir, contains: "needle" }, slow, { concurrency: 1, now: () => clock });
    assert.equal(found.complete, false);
    assert.equal(found.stopped, "time_limit");
    assert.match(found.note ?? "", /^stopped near the call's time limit after looking at \d+ entries and reading \d+ files; search a smaller directory/);
    // Reads of top.txt, then a/f00 … a/f07 were started before 9 s: the matches among them, in order.
    assert.deepEqual(paths(found), ["top.txt", "a/f00.txt", "a/f03.txt", "a/f06.txt"]);
  });

  test("with reads in flight, what it returns is the start of the full result, in order", async () => {
    let clock = 0;
    const slow = withReads(
      (_file, read) => {
        clock += 1000;
        return read();
      },
      { deadline: 20_000 },
    );
    const full = paths(await searchFiles({ path: dir, contains: "needle" }, harness.context()));
    const found = await searchFiles({ path: dir, contains: "needle" }, slow, { now: () => clock });
    assert.equal(found.stopped, "time_limit");
    assert.ok(found.results.length > 0 && found.results.length < full.length, `${found.results.length} of ${full.length}`);
    assert.deepEqual(paths(found), full.slice(0, found.results.length));
  });

  test("a read that never ends does not carry it past the deadline: the timer stops it with what came before", async () => {
    const hanging = withReads((file, read) => (file.endsWith("a/f03.txt") ? new Promise<Uint8Array>(() => undefined) : read()), { deadline: Date.now() + 400 });
    const found = await searchFiles({ path: dir, contains: "needle" }, hanging);
    assert.equal(found.stopped, "time_limit");
    assert.deepEqual(paths(found), ["top.txt", "a/f00.txt"]);
  });

  test("a listing that never ends is stopped the same way", async () => {
    const base = harness.context();
    const hanging: ToolContext = {
      ...base,
      deadline: Date.now() + 300,
      fs: { ...base.fs, list: (target, options) => (target.endsWith("/b") ? new Promise(() => undefined) : base.fs.list(target, options)) },
    };
    const found = await searchFiles({ path: dir, pattern: "**/*.txt" }, hanging);
    assert.equal(found.stopped, "time_limit");
    assert.equal(found.results.length, 1 + FILES / 2, "top.txt and everything in a/");
  });

  test("cancellation still ends it at once as cancelled, even while a read hangs", async () => {
    const controller = new AbortController();
    const hanging = withReads(
      (file, read) => {
        if (!file.endsWith("a/f03.txt")) return read();
        setImmediate(() => controller.abort(new ToolError("the call was cancelled", "CANCELLED")));
        return new Promise<Uint8Array>(() => undefined);
      },
      { signal: controller.signal },
    );
    await assert.rejects(searchFiles({ path: dir, contains: "needle" }, hanging), { code: "CANCELLED" });
  });

  test("a call already past its stop point returns at once, empty and stopped", async () => {
    const found = await searchFiles({ path: dir, contains: "needle" }, harness.context({ deadline: 1000 }), { now: () => 1000 });
    assert.deepEqual(found.results, []);
    assert.equal(found.stopped, "time_limit");
  });

  test("SearchStop made for a call already cancelled is stopped at once, its signal included", () => {
    const stop = new SearchStop(AbortSignal.abort(), Date.now() + 60_000);
    try {
      assert.equal(stop.reason(), "cancelled");
      assert.equal(stop.signal.aborted, true, "a listing given the signal does not start reading");
    } finally {
      stop.dispose();
    }
  });

  test("SearchStop's signal fires when its clock says the time is up, before its timer has", () => {
    let clock = 0;
    const stop = new SearchStop(new AbortController().signal, 10_000, () => clock);
    try {
      assert.equal(stop.reason(), undefined);
      assert.equal(stop.signal.aborted, false);
      clock = stop.stopAt; // the event loop was busy: the timer has not run
      assert.equal(stop.reason(), "time_limit");
      assert.equal(stop.signal.aborted, true, "a listing given the signal stops too");
    } finally {
      stop.dispose();
    }
  });

  test("SearchStop's signal fires when the time is up (a listing given it stops reading)", async () => {
    const stop = new SearchStop(new AbortController().signal, Date.now() + 60);
    try {
      assert.equal(await stop.race(new Promise(() => undefined)), "time_limit");
      assert.equal(stop.signal.aborted, true);
    } finally {
      stop.dispose();
    }
  });
});

void describe("search_files reports progress", () => {
  test("entries looked at, files read and matches, at most every PROGRESS_EVERY_MS of its clock", async () => {
    const updates: ProgressUpdate[] = [];
    let clock = 0;
    const step = PROGRESS_EVERY_MS / 2;
    const reporting = withReads(
      (_file, read) => {
        clock += step;
        return read();
      },
      { progress: (update) => updates.push(update) },
    );
    const found = await searchFiles({ path: dir, contains: "needle" }, reporting, { concurrency: 1, now: () => clock });
    assert.equal(found.complete, true);
    // 41 reads of half an interval each: about one report per two reads.
    assert.ok(updates.length >= 15 && updates.length <= 21, `${updates.length} updates`);
    for (let i = 1; i < updates.length; i++) assert.ok((updates[i]?.progress ?? 0) > (updates[i - 1]?.progress ?? 0), "strictly increasing");
    assert.match(updates.at(-1)?.message ?? "", /^\d+ entries looked at, \d+ files read, \d+ found$/);
    assert.equal(updates[0]?.total, undefined, "the total is not known in advance");
  });

  test("none while the clock has not moved an interval", async () => {
    const updates: ProgressUpdate[] = [];
    const quiet: ToolContext = { ...harness.context(), progress: (update) => updates.push(update) };
    await searchFiles({ path: dir, pattern: "**" }, quiet, { now: () => 0 });
    assert.deepEqual(updates, []);
  });
});
