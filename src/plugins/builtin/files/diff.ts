/**
 * A unified diff of two texts, by lines, for edit_file to show what it changed (or would).
 * Myers' O((N+M)·D) algorithm on what lies between the common first and last lines: an edit
 * changes a few lines of a long file, so D is small. Past `MAX_DIFFERENCES` the middle is
 * shown as one replacement rather than searched for a shortest script (a bounded cost for a
 * rewrite of the whole file).
 */

/** Lines added plus lines removed beyond which no shortest script is searched for. */
const MAX_DIFFERENCES = 2000;

type Op = { kind: " " | "-" | "+"; line: string };

/**
 * The diff of `before` and `after` as `diff -u` prints it: `---`/`+++` headers naming `label`,
 * hunks with `context` lines around each change, `\ No newline at end of file` where a last line
 * has none. Empty when the texts are equal.
 */
export function unifiedDiff(before: string, after: string, label: string, context = 3): string {
  if (before === after) return "";
  const ops = lineScript(splitLines(before), splitLines(after));
  const out = [`--- ${label}`, `+++ ${label}`];
  for (const hunk of hunks(ops, context)) {
    out.push(`@@ -${range(hunk.oldStart, hunk.oldCount)} +${range(hunk.newStart, hunk.newCount)} @@`);
    for (let i = hunk.from; i < hunk.to; i++) {
      const op = ops[i] as Op;
      const ended = op.line.endsWith("\n");
      out.push(op.kind + (ended ? op.line.slice(0, -1) : op.line));
      if (!ended) out.push("\\ No newline at end of file");
    }
  }
  return `${out.join("\n")}\n`;
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

/** The edit script turning `a` into `b`: common lines kept, the rest removed and added. */
function lineScript(a: readonly string[], b: readonly string[]): Op[] {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const ops: Op[] = [];
  for (let i = 0; i < head; i++) ops.push({ kind: " ", line: a[i] as string });
  const middleA = a.slice(head, a.length - tail);
  const middleB = b.slice(head, b.length - tail);
  const middle = myers(middleA, middleB);
  if (middle !== undefined) ops.push(...removalsFirst(middle));
  else {
    for (const line of middleA) ops.push({ kind: "-", line });
    for (const line of middleB) ops.push({ kind: "+", line });
  }
  for (let i = a.length - tail; i < a.length; i++) ops.push({ kind: " ", line: a[i] as string });
  return ops;
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
    out.push(...added);
  }
  return out;
}

/**
 * A shortest edit script (Myers 1986), or undefined past MAX_DIFFERENCES. Each round's frontier
 * is kept only over the diagonals it can reach (2d+1 of them), so memory grows with D², not with
 * the length of the texts.
 */
function myers(a: readonly string[], b: readonly string[]): Op[] | undefined {
  const n = a.length;
  const m = b.length;
  const limit = Math.min(n + m, MAX_DIFFERENCES);
  const offset = limit + 1;
  const v = new Int32Array(2 * limit + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= limit; d++) {
    trace.push(v.slice(offset - d, offset + d + 1));
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && (v[offset + k - 1] as number) < (v[offset + k + 1] as number)) ? (v[offset + k + 1] as number) : (v[offset + k - 1] as number) + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) return backtrack(a, b, trace, d);
    }
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
  let i = 0;
  let oldLine = 0;
  let newLine = 0;
  // Line numbers before each op, to start a hunk anywhere.
  const oldAt: number[] = [];
  const newAt: number[] = [];
  for (const op of ops) {
    oldAt.push(oldLine);
    newAt.push(newLine);
    if (op.kind !== "+") oldLine++;
    if (op.kind !== "-") newLine++;
  }
  while (i < ops.length) {
    while (i < ops.length && (ops[i] as Op).kind === " ") i++;
    if (i === ops.length) break;
    const from = Math.max(0, i - context);
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
    const oldStart = (oldAt[from] as number) + (oldCount === 0 ? 0 : 1);
    const newStart = (newAt[from] as number) + (newCount === 0 ? 0 : 1);
    out.push({ from, to, oldStart, oldCount, newStart, newCount });
    i = to;
  }
  return out;
}

function range(start: number, count: number): string {
  return count === 1 ? `${start}` : `${start},${count}`;
}
