/**
 * A unified diff of two texts, by lines, for edit_file to show what it changed (or would).
 * Only the window from the first to the last changed line (and its context) is split into
 * lines: an edit of one line in a 10 MiB file costs a scan of the file, not an object per
 * line. In the window, Myers' O((N+M)·D) algorithm finds a shortest script; where that would
 * take too long (far-apart changes with thousands of lines between), the lines found once on
 * each side anchor the texts (patience diff) and the gaps between anchors are diffed on their
 * own, all from one budget of steps, so a diff costs at most a bounded time whatever the texts.
 */

/** Lines added plus lines removed beyond which Myers' search of one stretch gives up. */
const MAX_DIFFERENCES = 2000;
/** Steps of the search, across every stretch of one diff, before the rest is shown as replaced. */
const MAX_STEPS = 20_000_000;

type Kind = " " | "-" | "+";
type Op = { kind: Kind; line: string };

export interface DiffText {
  text: string;
  /** The diff was cut at `maxChars`. */
  truncated: boolean;
}

export interface DiffOptions {
  /** Common lines shown around each change (default 3). */
  context?: number;
  /** Characters of diff made at most; the rest is left out and `truncated` set. */
  maxChars?: number;
  /**
   * Where the texts may differ, when the caller knows (edit_file knows what each edit replaced):
   * sorted, apart, and outside them the texts are the same. Each is diffed in its own window,
   * so two edits at the two ends of a long file do not make every line between an object.
   */
  regions?: readonly ChangedRegion[];
}

/** `before..beforeEnd` of the old text became `after..afterEnd` of the new one. */
export interface ChangedRegion {
  before: number;
  beforeEnd: number;
  after: number;
  afterEnd: number;
}

/**
 * The diff of `before` and `after` in `diff -u`'s format: `---`/`+++` headers naming `label`,
 * hunks with `context` lines around each change, `\ No newline at end of file` where a last
 * line has none. Empty when the texts are equal.
 */
export function unifiedDiff(before: string, after: string, label: string, options: DiffOptions = {}): DiffText {
  if (before === after) return { text: "", truncated: false };
  const context = options.context ?? 3;
  const regions = options.regions ?? [{ before: 0, beforeEnd: before.length, after: 0, afterEnd: after.length }];
  const budget: Budget = { steps: MAX_STEPS };
  const out = new Rows(options.maxChars ?? Infinity);
  out.add(`--- ${label}`);
  out.add(`+++ ${label}`);
  const oldLines = new LineCounter(before);
  const newLines = new LineCounter(after);
  for (const window of windows(before, after, regions, context)) {
    const ops = lineScript(splitLines(before.slice(window.fromA, window.toA)), splitLines(after.slice(window.fromB, window.toB)), budget);
    const oldBefore = oldLines.before(window.fromA);
    const newBefore = newLines.before(window.fromB);
    for (const hunk of hunks(ops, context)) {
      if (!out.add(`@@ -${range(hunk.oldStart + oldBefore, hunk.oldCount)} +${range(hunk.newStart + newBefore, hunk.newCount)} @@`)) return out.result();
      for (let i = hunk.from; i < hunk.to; i++) {
        const op = ops[i] as Op;
        const ended = op.line.endsWith("\n");
        if (!out.add(op.kind + (ended ? op.line.slice(0, -1) : op.line)) || (!ended && !out.add("\\ No newline at end of file"))) return out.result();
      }
    }
  }
  return out.result();
}

/** Rows of output up to a number of characters. */
class Rows {
  private readonly rows: string[] = [];
  private chars = 0;
  private cut = false;

  constructor(private readonly maxChars: number) {}

  /** Adds a row if it fits; false (and the output is cut) when it does not. */
  add(row: string): boolean {
    if (this.cut || this.chars + row.length + 1 > this.maxChars) {
      this.cut = true;
      return false;
    }
    this.rows.push(row);
    this.chars += row.length + 1;
    return true;
  }

  result(): DiffText {
    return { text: this.rows.length === 0 ? "" : `${this.rows.join("\n")}\n`, truncated: this.cut };
  }
}

/** Lines before a position, counted onward from the last position asked (positions only grow). */
class LineCounter {
  private at = 0;
  private lines = 0;

  constructor(private readonly text: string) {}

  before(position: number): number {
    for (let nl = this.text.indexOf("\n", this.at); nl !== -1 && nl < position; nl = this.text.indexOf("\n", nl + 1)) {
      this.lines++;
      this.at = nl + 1;
    }
    return this.lines;
  }
}

/** A stretch of whole lines in each text: all differences of some regions, with their context. */
interface Window {
  fromA: number;
  toA: number;
  fromB: number;
  toB: number;
}

/** Each region's window, merged where their context lines would touch (as diff -u merges hunks). */
function windows(a: string, b: string, regions: readonly ChangedRegion[], context: number): Window[] {
  const out: Window[] = [];
  for (const region of regions) {
    const window = regionWindow(a, b, region, context);
    if (window === undefined) continue;
    const last = out[out.length - 1];
    if (last !== undefined && window.fromA <= last.toA) {
      last.toA = window.toA;
      last.toB = window.toB;
    } else out.push(window);
  }
  return out;
}

/**
 * The stretch of whole lines holding a region's differences, with up to `context` common lines
 * on each side, found by comparing characters from both ends: no line is split for it. Before a
 * region the new text is the old shifted by `after - before`, after it by `afterEnd - beforeEnd`.
 */
function regionWindow(a: string, b: string, region: ChangedRegion, context: number): Window | undefined {
  const lengthA = region.beforeEnd - region.before;
  const lengthB = region.afterEnd - region.after;
  const shorter = Math.min(lengthA, lengthB);
  let same = 0;
  while (same < shorter && a.charCodeAt(region.before + same) === b.charCodeAt(region.after + same)) same++;
  if (same === lengthA && same === lengthB) return undefined;
  const shiftBefore = region.after - region.before;
  const shiftAfter = region.afterEnd - region.beforeEnd;
  // The start of the line holding the first difference: a line start in both texts.
  const first = region.before + same;
  let fromA = first === 0 ? 0 : a.lastIndexOf("\n", first - 1) + 1;
  let tail = 0;
  const room = Math.min(region.beforeEnd - fromA, region.afterEnd - (fromA + shiftBefore));
  while (tail < room && a.charCodeAt(region.beforeEnd - 1 - tail) === b.charCodeAt(region.afterEnd - 1 - tail)) tail++;
  let toA = region.beforeEnd - tail;
  // The common end must be whole lines in both texts: it starts after a newline in each (or at the very start).
  const lineStart = (text: string, at: number): boolean => at === 0 || text.charCodeAt(at - 1) === 10;
  // Else the window takes the rest of the line (after toA the texts are the same, shifted).
  if (!(lineStart(a, toA) && lineStart(b, toA + shiftAfter))) {
    const newline = a.indexOf("\n", toA);
    toA = newline === -1 ? a.length : newline + 1;
  }
  for (let i = 0; i < context && fromA > 0; i++) fromA = fromA >= 2 ? a.lastIndexOf("\n", fromA - 2) + 1 : 0;
  for (let i = 0; i < context && toA < a.length; i++) {
    const newline = a.indexOf("\n", toA);
    toA = newline === -1 ? a.length : newline + 1;
  }
  return { fromA, toA, fromB: fromA + shiftBefore, toB: toA + shiftAfter };
}

/** Lines with their terminators, so that a last line losing or gaining its newline is a change. */
function splitLines(text: string): string[] {
  const lines: string[] = [];
  let start = 0;
  while (start < text.length) {
    const end = text.indexOf("\n", start);
    const stop = end === -1 ? text.length : end + 1;
    lines.push(text.slice(start, stop));
    start = stop;
  }
  return lines;
}

interface Budget {
  steps: number;
}

/** The edit script turning `a` into `b`: common lines kept, the rest removed and added. */
function lineScript(a: readonly string[], b: readonly string[], budget: Budget): Op[] {
  const ops: Op[] = [];
  script(a, 0, a.length, b, 0, b.length, budget, ops);
  return removalsFirst(ops);
}

/** Appends the script for a[aFrom..aTo) against b[bFrom..bTo). */
function script(a: readonly string[], aFrom: number, aTo: number, b: readonly string[], bFrom: number, bTo: number, budget: Budget, ops: Op[]): void {
  while (aFrom < aTo && bFrom < bTo && a[aFrom] === b[bFrom]) {
    ops.push({ kind: " ", line: a[aFrom] as string });
    aFrom++;
    bFrom++;
  }
  let tail = 0;
  while (aTo - tail > aFrom && bTo - tail > bFrom && a[aTo - 1 - tail] === b[bTo - 1 - tail]) tail++;
  const middle = myers(a.slice(aFrom, aTo - tail), b.slice(bFrom, bTo - tail), budget);
  if (middle !== undefined) {
    for (const op of middle) ops.push(op);
  } else {
    const anchors = budget.steps > 0 ? uniqueAnchors(a, aFrom, aTo - tail, b, bFrom, bTo - tail) : [];
    if (anchors.length === 0) {
      for (let i = aFrom; i < aTo - tail; i++) ops.push({ kind: "-", line: a[i] as string });
      for (let j = bFrom; j < bTo - tail; j++) ops.push({ kind: "+", line: b[j] as string });
    } else {
      let i = aFrom;
      let j = bFrom;
      for (const [anchorA, anchorB] of anchors) {
        script(a, i, anchorA, b, j, anchorB, budget, ops);
        ops.push({ kind: " ", line: a[anchorA] as string });
        i = anchorA + 1;
        j = anchorB + 1;
      }
      script(a, i, aTo - tail, b, j, bTo - tail, budget, ops);
    }
  }
  for (let i = aTo - tail; i < aTo; i++) ops.push({ kind: " ", line: a[i] as string });
}

/**
 * Lines found exactly once in each stretch, paired, and of those pairs the longest run in the
 * same order on both sides (patience sorting): common lines no shortest script would separate
 * in ordinary text, to split a stretch too long to search whole.
 */
function uniqueAnchors(a: readonly string[], aFrom: number, aTo: number, b: readonly string[], bFrom: number, bTo: number): Array<[number, number]> {
  const counts = new Map<string, { inA: number; atA: number; inB: number; atB: number }>();
  for (let i = aFrom; i < aTo; i++) {
    const seen = counts.get(a[i] as string);
    if (seen === undefined) counts.set(a[i] as string, { inA: 1, atA: i, inB: 0, atB: -1 });
    else seen.inA++;
  }
  for (let j = bFrom; j < bTo; j++) {
    const seen = counts.get(b[j] as string);
    if (seen !== undefined) {
      seen.inB++;
      seen.atB = j;
    }
  }
  const pairs: Array<[number, number]> = [];
  for (let j = bFrom; j < bTo; j++) {
    const seen = counts.get(b[j] as string);
    if (seen !== undefined && seen.inA === 1 && seen.inB === 1) pairs.push([seen.atA, j]);
  }
  // Pairs in b's order; the longest increasing run of their a positions.
  const tops: number[] = [];
  const before: number[] = new Array<number>(pairs.length).fill(-1);
  for (let p = 0; p < pairs.length; p++) {
    const atA = (pairs[p] as [number, number])[0];
    let low = 0;
    let high = tops.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if ((pairs[tops[mid] as number] as [number, number])[0] < atA) low = mid + 1;
      else high = mid;
    }
    if (low > 0) before[p] = tops[low - 1] as number;
    tops[low] = p;
  }
  const run: Array<[number, number]> = [];
  for (let p = tops.length === 0 ? -1 : (tops[tops.length - 1] as number); p !== -1; p = before[p] as number) run.push(pairs[p] as [number, number]);
  return run.reverse();
}

/** Within each run of changes, the removed lines before the added ones, as `diff -u` shows them. */
function removalsFirst(ops: Op[]): Op[] {
  const out: Op[] = [];
  let i = 0;
  while (i < ops.length) {
    if ((ops[i] as Op).kind === " ") {
      out.push(ops[i++] as Op);
      continue;
    }
    const added: Op[] = [];
    while (i < ops.length && (ops[i] as Op).kind !== " ") {
      const op = ops[i++] as Op;
      if (op.kind === "-") out.push(op);
      else added.push(op);
    }
    for (const op of added) out.push(op);
  }
  return out;
}

/**
 * A shortest edit script (Myers 1986), or undefined past MAX_DIFFERENCES or the budget. Each
 * round's frontier is kept only over the diagonals it can reach (2d+1 of them), so the search
 * keeps O(D²) numbers.
 */
function myers(a: readonly string[], b: readonly string[], budget: Budget): Op[] | undefined {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0) {
    return [...a.map((line): Op => ({ kind: "-", line })), ...b.map((line): Op => ({ kind: "+", line }))];
  }
  const limit = Math.min(n + m, MAX_DIFFERENCES);
  const offset = limit + 1;
  const v = new Int32Array(2 * limit + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= limit; d++) {
    trace.push(v.slice(offset - d, offset + d + 1));
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && (v[offset + k - 1] as number) < (v[offset + k + 1] as number)) ? (v[offset + k + 1] as number) : (v[offset + k - 1] as number) + 1;
      let y = x - k;
      const start = x;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      budget.steps -= 1 + x - start;
      v[offset + k] = x;
      if (x >= n && y >= m) return backtrack(a, b, trace, d);
    }
    if (budget.steps <= 0) return undefined;
  }
  return undefined;
}

/** Walks the kept frontiers back from the end to the start, collecting the script in reverse. */
function backtrack(a: readonly string[], b: readonly string[], trace: readonly Int32Array[], last: number): Op[] {
  const ops: Op[] = [];
  let x = a.length;
  let y = b.length;
  for (let d = last; d > 0; d--) {
    // trace[d] holds the frontier before round d, over diagonals -d..d (index k + d).
    const frontier = trace[d] as Int32Array;
    const at = (k: number): number => frontier[k + d] as number;
    const k = x - y;
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const prevX = at(prevK);
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      x--;
      y--;
      ops.push({ kind: " ", line: a[x] as string });
    }
    if (x === prevX) ops.push({ kind: "+", line: b[--y] as string });
    else ops.push({ kind: "-", line: a[--x] as string });
  }
  while (x > 0 && y > 0) {
    x--;
    y--;
    ops.push({ kind: " ", line: a[x] as string });
  }
  return ops.reverse();
}

interface Hunk {
  from: number;
  to: number;
  oldStart: number;
  oldCount: number;
  newStart: number;
  newCount: number;
}

/** The runs of the script that hold changes, each with up to `context` common lines around it; runs this close merge. */
function hunks(ops: readonly Op[], context: number): Hunk[] {
  const out: Hunk[] = [];
  let oldLine = 0;
  let newLine = 0;
  let i = 0;
  while (i < ops.length) {
    // Count the common lines skipped to reach the next change.
    while (i < ops.length && (ops[i] as Op).kind === " ") {
      i++;
      oldLine++;
      newLine++;
    }
    if (i === ops.length) break;
    const from = Math.max(0, i - context);
    const lead = i - from;
    let to = i;
    // Extend over changes and over common runs short enough that their context would touch.
    for (;;) {
      while (to < ops.length && (ops[to] as Op).kind !== " ") to++;
      let common = to;
      while (common < ops.length && (ops[common] as Op).kind === " ") common++;
      if (common < ops.length && common - to <= 2 * context) {
        to = common;
        continue;
      }
      to = Math.min(common, to + context);
      break;
    }
    let oldCount = 0;
    let newCount = 0;
    for (let j = from; j < to; j++) {
      const kind = (ops[j] as Op).kind;
      if (kind !== "+") oldCount++;
      if (kind !== "-") newCount++;
    }
    // The hunk starts `lead` common lines before the change; an empty side names the line before it.
    const oldFirst = oldLine - lead;
    const newFirst = newLine - lead;
    out.push({ from, to, oldStart: oldFirst + (oldCount === 0 ? 0 : 1), oldCount, newStart: newFirst + (newCount === 0 ? 0 : 1), newCount });
    oldLine = oldFirst + oldCount;
    newLine = newFirst + newCount;
    i = to;
  }
  return out;
}

function range(start: number, count: number): string {
  return count === 1 ? `${start}` : `${start},${count}`;
}
