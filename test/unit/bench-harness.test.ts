import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  BenchError,
  callsPerSecond,
  judgeTarget,
  median,
  parseProcStatCpuTicks,
  parseProcStatus,
  percentile,
  percentileOfSorted,
  ratio,
  summarize,
  type Target,
} from "../../bench/harness.js";

function benchCode(code: string): (error: unknown) => boolean {
  return (error) => error instanceof BenchError && error.code === code;
}

void describe("percentile", () => {
  void it("interpolates linearly between the two nearest ranks", () => {
    const sorted = [10, 20, 30, 40];
    assert.equal(percentileOfSorted(sorted, 0), 10);
    assert.equal(percentileOfSorted(sorted, 100), 40);
    // rank = 0.5 * 3 = 1.5: halfway between 20 and 30.
    assert.equal(percentileOfSorted(sorted, 50), 25);
    // rank = 0.25 * 3 = 0.75: three quarters of the way from 10 to 20.
    assert.equal(percentileOfSorted(sorted, 25), 17.5);
  });

  void it("gives p99 of 1..100 just below the maximum", () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    // rank = 0.99 * 99 = 98.01: between 99 and 100.
    assert.ok(Math.abs(percentileOfSorted(values, 99) - 99.01) < 1e-9);
  });

  void it("returns the only sample for every p", () => {
    for (const p of [0, 1, 50, 99, 100]) assert.equal(percentileOfSorted([7], p), 7);
  });

  void it("sorts numerically, not as strings, and leaves its input alone", () => {
    const samples = [100, 9, 20, 3];
    assert.equal(percentile(samples, 0), 3);
    assert.equal(percentile(samples, 100), 100);
    assert.equal(percentile(samples, 50), 14.5);
    assert.deepEqual(samples, [100, 9, 20, 3]);
  });

  void it("refuses no samples, a non-finite sample and p outside 0..100", () => {
    assert.throws(() => percentile([], 50), benchCode("NO_SAMPLES"));
    assert.throws(() => percentile([1, Number.NaN], 50), benchCode("BAD_ARGUMENT"));
    assert.throws(() => percentile([1, Number.POSITIVE_INFINITY], 50), benchCode("BAD_ARGUMENT"));
    assert.throws(() => percentile([1, 2], -1), benchCode("BAD_ARGUMENT"));
    assert.throws(() => percentile([1, 2], 100.5), benchCode("BAD_ARGUMENT"));
    assert.throws(() => percentile([1, 2], Number.NaN), benchCode("BAD_ARGUMENT"));
  });
});

void describe("median", () => {
  void it("is the middle sample of an odd count", () => {
    assert.equal(median([5, 1, 3]), 3);
  });

  void it("is the mean of the middle two of an even count", () => {
    assert.equal(median([4, 1, 3, 2]), 2.5);
  });
});

void describe("summarize", () => {
  void it("reports count, extremes, mean, p50 and p99", () => {
    const samples = Array.from({ length: 101 }, (_, i) => 100 - i); // 100..0, unsorted
    const summary = summarize(samples);
    assert.equal(summary.n, 101);
    assert.equal(summary.min, 0);
    assert.equal(summary.max, 100);
    assert.equal(summary.mean, 50);
    assert.equal(summary.p50, 50);
    assert.equal(summary.p99, 99);
  });

  void it("lets one outlier move p99 and the mean but not p50", () => {
    const samples = [...Array.from({ length: 99 }, () => 1), 1000];
    const summary = summarize(samples);
    assert.equal(summary.p50, 1);
    assert.ok(summary.p99 > 1 && summary.p99 < 1000);
    assert.ok(summary.mean > 10);
  });

  void it("refuses no samples", () => {
    assert.throws(() => summarize([]), benchCode("NO_SAMPLES"));
  });
});

void describe("ratio", () => {
  void it("divides value by reference", () => {
    assert.equal(ratio(3, 2), 1.5);
  });

  void it("is NaN when a side is missing, non-finite or the reference is not positive", () => {
    assert.ok(Number.isNaN(ratio(undefined, 2)));
    assert.ok(Number.isNaN(ratio(1, undefined)));
    assert.ok(Number.isNaN(ratio(1, 0)));
    assert.ok(Number.isNaN(ratio(1, -2)));
    assert.ok(Number.isNaN(ratio(Number.NaN, 2)));
    assert.ok(Number.isNaN(ratio(1, Number.POSITIVE_INFINITY)));
  });
});

void describe("callsPerSecond", () => {
  void it("converts a count over milliseconds to a rate per second", () => {
    assert.equal(callsPerSecond(5000, 250), 20000);
  });

  void it("refuses a zero or negative count or duration", () => {
    assert.throws(() => callsPerSecond(0, 10), benchCode("BAD_ARGUMENT"));
    assert.throws(() => callsPerSecond(10, 0), benchCode("BAD_ARGUMENT"));
    assert.throws(() => callsPerSecond(10, -1), benchCode("BAD_ARGUMENT"));
  });
});

void describe("judgeTarget", () => {
  const atMost: Target = { area: "protocol", label: "at most 1.3x", op: "<=", factor: 1.3 };
  const atLeast: Target = { area: "protocol", label: "at least 3x", op: ">=", factor: 3 };

  void it("passes an upper bound at or below the factor and fails above it", () => {
    assert.deepEqual(judgeTarget(atMost, 120, 100), { pass: true, ratio: 1.2 });
    assert.equal(judgeTarget(atMost, 130, 100).pass, true);
    assert.equal(judgeTarget(atMost, 131, 100).pass, false);
  });

  void it("passes a lower bound at or above the factor and fails below it", () => {
    assert.equal(judgeTarget(atLeast, 300, 100).pass, true);
    assert.equal(judgeTarget(atLeast, 299, 100).pass, false);
  });

  void it("fails, with a reason, when a measurement is missing or unusable", () => {
    assert.deepEqual(judgeTarget(atMost, undefined, 100), { pass: false, ratio: Number.NaN, reason: "no measurement" });
    assert.equal(judgeTarget(atLeast, 100, undefined).reason, "no reference measurement");
    assert.equal(judgeTarget(atLeast, Number.NaN, 100).pass, false);
    assert.equal(judgeTarget(atMost, 0, 0).reason, "reference is zero");
    assert.equal(judgeTarget(atLeast, 5, 0).pass, false);
  });
});

void describe("/proc parsers", () => {
  void it("reads VmRSS and VmHWM in KiB from /proc/<pid>/status", () => {
    const status = "Name:\tnode\nVmPeak:\t 1000 kB\nVmHWM:\t   52000 kB\nVmRSS:\t   48000 kB\nThreads:\t11\n";
    assert.deepEqual(parseProcStatus(status), { rssKiB: 48000, hwmKiB: 52000 });
  });

  void it("refuses a status without the memory lines", () => {
    assert.throws(() => parseProcStatus("Name:\tnode\n"), benchCode("PROC_UNREADABLE"));
  });

  void it("sums utime and stime, counting fields after the last ')' of the command name", () => {
    // The command name holds a space and a ')' to show why fields are counted from the end of it.
    const fields = ["S", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "123", "45", "0", "0", "20"];
    const stat = `4242 (node x) y) ${fields.join(" ")}\n`;
    assert.equal(parseProcStatCpuTicks(stat), 168);
  });

  void it("refuses a stat line it cannot read", () => {
    assert.throws(() => parseProcStatCpuTicks("garbage"), benchCode("PROC_UNREADABLE"));
    assert.throws(() => parseProcStatCpuTicks("1 (node) S 1 2"), benchCode("PROC_UNREADABLE"));
  });
});
