/**
 * The unified diff edit_file shows: the form `diff -u` prints, a script that turns the old text
 * into the new one, and a shortest one (checked against a longest common subsequence).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { unifiedDiff as diffOf, type ChangedRegion } from "../../src/plugins/builtin/files/diff.js";
import { withReplacement } from "../../src/plugins/builtin/files/edit.js";

/** The diff's text (these tests do not cut it). */
function unifiedDiff(before: string, after: string, label: string): string {
  return diffOf(before, after, label).text;
}

const LETTERS = "abcdefghij".split("");

function lines(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

/** Applies a unified diff as patch(1) would, checking every context and removed line against the old text. */
function applyDiff(before: string, diff: string): string {
  if (diff === "") return before;
  const old = lines(before);
  const out: string[] = [];
  const rows = diff.split("\n").slice(2, -1);
  let at = 0;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i] as string;
    const header = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@$/.exec(row);
    if (header !== null) {
      const start = Number(header[1]);
      const count = header[2] === undefined ? 1 : Number(header[2]);
      const until = count === 0 ? start : start - 1;
      while (at < until) out.push(old[at++] as string);
      continue;
    }
    const noNewline = rows[i + 1] === "\\ No newline at end of file";
    const text = row.slice(1) + (noNewline ? "" : "\n");
    if (noNewline) i++;
    if (row[0] === "+") out.push(text);
    else {
      assert.equal(old[at], text, `line ${at + 1} of the old text`);
      if (row[0] === " ") out.push(text);
      at++;
    }
  }
  while (at < old.length) out.push(old[at++] as string);
  return out.join("");
}

function lcsLength(a: readonly string[], b: readonly string[]): number {
  const row = new Array<number>(b.length + 1).fill(0);
  for (const x of a) {
    let diagonal = 0;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number;
      row[j] = x === b[j - 1] ? diagonal + 1 : Math.max(above, row[j - 1] as number);
      diagonal = above;
    }
  }
  return row[b.length] as number;
}

/** A small deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32;
  };
}

void describe("unifiedDiff", () => {
  test("one changed line, with three lines of context each side, as diff -u prints it", () => {
    const before = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
    const after = "a\nb\nc\nd\nE\nf\ng\nh\ni\nj\n";
    assert.equal(unifiedDiff(before, after, "/x/f.txt"), "--- /x/f.txt\n+++ /x/f.txt\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n");
  });

  test("changes far apart make separate hunks (as diff -u splits them); near ones share one", () => {
    const before = Array.from({ length: 20 }, (_, i) => `${i + 1}\n`).join("");
    const after = before.replace("1\n", "0\n1\n").replace("\n11\n", "\nX\n").replace("20\n", "");
    const diff = unifiedDiff(before, after, "f");
    assert.deepEqual(diff.split("\n").filter((row) => row.startsWith("@@")), ["@@ -1,3 +1,4 @@", "@@ -8,7 +9,7 @@", "@@ -17,4 +18,3 @@"]);
    const near = unifiedDiff("a\nb\nc\nd\ne\nf\ng\nh\n", "A\nb\nc\nd\ne\nf\ng\nH\n", "f");
    assert.deepEqual(near.split("\n").filter((row) => row.startsWith("@@")), ["@@ -1,8 +1,8 @@"]);
  });

  test("a last line without a newline is marked; gaining one is a change; empty files", () => {
    assert.equal(unifiedDiff("a\nb", "a\nb\n", "f"), "--- f\n+++ f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n");
    assert.equal(unifiedDiff("", "x\n", "f"), "--- f\n+++ f\n@@ -0,0 +1 @@\n+x\n");
    assert.equal(unifiedDiff("x\n", "", "f"), "--- f\n+++ f\n@@ -1 +0,0 @@\n-x\n");
    assert.equal(unifiedDiff("same\n", "same\n", "f"), "");
  });

  test("random texts: the diff turns the old text into the new one, with as few changed lines as possible", () => {
    const next = random(7);
    const text = (length: number): string => {
      let out = "";
      for (let i = 0; i < length; i++) out += `${LETTERS[Math.floor(next() * 4)]}${next() < 0.1 ? "" : "\n"}`;
      return out;
    };
    for (let round = 0; round < 400; round++) {
      const before = text(Math.floor(next() * 30));
      const after = next() < 0.5 ? text(Math.floor(next() * 30)) : before.replace(/b/g, () => (next() < 0.3 ? "z\n" : "b"));
      const diff = unifiedDiff(before, after, "f");
      assert.equal(applyDiff(before, diff), after, `round ${round}: ${JSON.stringify([before, after])}`);
      const changed = diff.split("\n").slice(2).filter((row) => row.startsWith("+") || row.startsWith("-")).length;
      const [a, b] = [lines(before), lines(after)];
      assert.equal(changed, a.length + b.length - 2 * lcsLength(a, b), `round ${round}: not a shortest script`);
    }
  });

  test("random texts with long common parts: still exact, and numbered from the files' start", () => {
    const next = random(11);
    for (let round = 0; round < 200; round++) {
      const head = Array.from({ length: Math.floor(next() * 40) }, (_, i) => `head ${i}\n`).join("");
      const tail = Array.from({ length: Math.floor(next() * 40) }, (_, i) => `tail ${i}\n`).join("");
      const middle = (): string => Array.from({ length: Math.floor(next() * 6) }, () => `${LETTERS[Math.floor(next() * 3)]}\n`).join("");
      const end = next() < 0.2 ? "no newline" : "";
      const before = head + middle() + tail + end;
      const after = head + middle() + tail + (next() < 0.5 ? end : "");
      const diff = unifiedDiff(before, after, "f");
      assert.equal(applyDiff(before, diff), after, `round ${round}`);
      const changed = diff.split("\n").slice(2).filter((row) => row.startsWith("+") || row.startsWith("-")).length;
      const [a, b] = [lines(before), lines(after)];
      assert.equal(changed, a.length + b.length - 2 * lcsLength(a, b), `round ${round}: not a shortest script`);
    }
  });

  test("one changed line of a long file: only its window is diffed, numbered where it is", () => {
    const before = Array.from({ length: 200_000 }, (_, i) => `row ${i}\n`).join("");
    const after = before.replace("row 150000\n", "ROW 150000\n");
    assert.equal(
      unifiedDiff(before, after, "f"),
      "--- f\n+++ f\n@@ -149998,7 +149998,7 @@\n row 149997\n row 149998\n row 149999\n-row 150000\n+ROW 150000\n row 150001\n row 150002\n row 150003\n",
    );
  });

  test("changes far apart in a long file, with a large insertion between: small hunks where the changes are", () => {
    const rows = Array.from({ length: 200_000 }, (_, i) => `row ${i}\n`);
    const inserted = Array.from({ length: 2100 }, (_, i) => `new ${i}\n`);
    const before = rows.join("");
    const after = ["FIRST\n", ...rows.slice(1, 100_000), ...inserted, ...rows.slice(100_000, -1), "LAST\n"].join("");
    const diff = unifiedDiff(before, after, "f");
    assert.equal(applyDiff(before, diff), after);
    const removed = diff.split("\n").filter((row) => row.startsWith("-") && !row.startsWith("---"));
    assert.deepEqual(removed, ["-row 0", "-row 199999"], "only the two changed lines are shown removed");
  });

  test("a diff longer than maxChars is cut at a row and said to be", () => {
    const before = Array.from({ length: 1000 }, (_, i) => `old ${i}\n`).join("");
    const after = Array.from({ length: 1000 }, (_, i) => `new ${i}\n`).join("");
    const cut = diffOf(before, after, "f", { maxChars: 200 });
    assert.equal(cut.truncated, true);
    assert.ok(cut.text.length <= 200 && cut.text.endsWith("\n"), cut.text);
    assert.equal(diffOf("a\n", "b\n", "f", { maxChars: 200 }).truncated, false);
  });

  test("edits tracked as regions: outside them the texts are the same, and the diff made from them is exact", () => {
    const next = random(23);
    for (let round = 0; round < 500; round++) {
      const before = Array.from({ length: 5 + Math.floor(next() * 60) }, () => `${LETTERS[Math.floor(next() * 4)]}${next() < 0.5 ? "\n" : ""}`).join("");
      let after = before;
      let regions: ChangedRegion[] = [];
      for (let edit = 0, count = 1 + Math.floor(next() * 6); edit < count; edit++) {
        const at = Math.floor(next() * (after.length + 1));
        const removed = Math.min(after.length - at, Math.floor(next() * 4));
        const added = Array.from({ length: Math.floor(next() * 4) }, () => (next() < 0.3 ? "\n" : LETTERS[Math.floor(next() * 4)])).join("");
        after = after.slice(0, at) + added + after.slice(at + removed);
        regions = withReplacement(regions, at, removed, added.length);
      }
      let [oldAt, newAt] = [0, 0];
      for (const region of regions) {
        assert.ok(region.before >= oldAt && region.after >= newAt && region.beforeEnd >= region.before && region.afterEnd >= region.after, `round ${round}: sorted`);
        assert.equal(before.slice(oldAt, region.before), after.slice(newAt, region.after), `round ${round}: same between regions`);
        [oldAt, newAt] = [region.beforeEnd, region.afterEnd];
      }
      assert.equal(before.slice(oldAt), after.slice(newAt), `round ${round}: same after the last region`);
      const diff = diffOf(before, after, "f", { regions }).text;
      assert.equal(applyDiff(before, diff), after, `round ${round}: ${JSON.stringify([before, after, regions])}`);
    }
  });

  test("two edits at the two ends of a long file: two small windows, not every line between", () => {
    const before = `HEAD\n${"\n".repeat(2_000_000)}TAIL\n`;
    const after = `H\n${"\n".repeat(2_000_000)}T\n`;
    const regions = withReplacement(withReplacement([], 0, 4, 1), after.length - 2, 4, 1);
    const started = process.memoryUsage().heapUsed;
    const diff = diffOf(before, after, "f", { regions }).text;
    assert.ok(process.memoryUsage().heapUsed - started < 64 * 1024 * 1024, "no object per line");
    assert.equal(diff, "--- f\n+++ f\n@@ -1,4 +1,4 @@\n-HEAD\n+H\n \n \n \n@@ -1999999,4 +1999999,4 @@\n \n \n \n-TAIL\n+T\n");
  });

  test("a rewrite past the search bound is one replacement, still correct", () => {
    const before = Array.from({ length: 3000 }, (_, i) => `old ${i}\n`).join("");
    const after = Array.from({ length: 3000 }, (_, i) => `new ${i}\n`).join("");
    const diff = unifiedDiff(before, after, "f");
    assert.equal(applyDiff(before, diff), after);
    assert.ok(diff.startsWith("--- f\n+++ f\n@@ -1,3000 +1,3000 @@\n-old 0\n"));
  });
});
