import { test } from "node:test";
import assert from "node:assert/strict";
import { ProgressReporter, readProgressToken } from "../../src/protocol/progress.js";

test("reads string and integer tokens only", () => {
  assert.equal(readProgressToken({ _meta: { progressToken: "t" } }), "t");
  assert.equal(readProgressToken({ _meta: { progressToken: 7 } }), 7);
  assert.equal(readProgressToken({ _meta: { progressToken: 1.5 } }), undefined);
  assert.equal(readProgressToken({ _meta: {} }), undefined);
  assert.equal(readProgressToken({}), undefined);
  assert.equal(readProgressToken(undefined), undefined);
});

test("progress strictly increases, echoes the token, and stops after finish", () => {
  const sent: Record<string, unknown>[] = [];
  let clock = 0;
  const reporter = new ProgressReporter(42, (p) => sent.push(p), 0, () => clock);
  reporter.report({ progress: 1, total: 10, message: "a" });
  clock += 1;
  reporter.report({ progress: 1 });
  reporter.report({ progress: 0.5 });
  reporter.report({ progress: Number.NaN });
  reporter.report({ progress: 2 });
  reporter.finish();
  reporter.report({ progress: 3 });
  assert.deepEqual(sent, [{ progressToken: 42, progress: 1, total: 10, message: "a" }, { progressToken: 42, progress: 2 }]);
});

test("fast updates are coalesced to the newest, and none is sent after finish", async () => {
  const sent: Record<string, unknown>[] = [];
  const reporter = new ProgressReporter("t", (p) => sent.push(p), 30);
  for (let i = 1; i <= 50; i++) reporter.report({ progress: i });
  await new Promise((resolve) => setTimeout(resolve, 80));
  assert.deepEqual(
    sent.map((p) => p.progress),
    [1, 50],
  );
  reporter.report({ progress: 51 });
  reporter.report({ progress: 52 });
  reporter.finish();
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.ok(!sent.some((p) => p.progress === 52), "the pending update is dropped at finish");
});

test("review finding: an update sent at once while a coalesced one waits for a late timer is not followed by the older one", async () => {
  const sent: number[] = [];
  let clock = 0;
  const reporter = new ProgressReporter("t", (p) => sent.push(p.progress as number), 20, () => clock);
  reporter.report({ progress: 1 });
  clock = 5;
  reporter.report({ progress: 2 }); // coalesced: its timer is due at 20
  // The loop is busy past 20 (the timer is late) and the tool reports again meanwhile: sent at once.
  clock = 30;
  reporter.report({ progress: 3 });
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(sent, [1, 3], "progress must strictly increase: the pending 2 must not follow 3");
});
