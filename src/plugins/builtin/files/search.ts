/**
 * search_files: a breadth-first walk through `ctx.fs.list` (which leaves out what the policy
 * denies), names matched with a glob, contents read through `ctx.fs.readBytes`, several at a
 * time, their outcomes taken in the walk's order (so the results are the ones, in the order,
 * that reading one file after another gives). Bounded in every direction (depth, entries
 * looked at, results, bytes per file, lines per file) and stopped by the call's signal; what a
 * bound cut short is said in the result.
 */
import { ToolError, type DirEntry, type JsonObject, type ToolContext } from "../../contract.js";
import { under } from "./paths.js";
import { compileGlob, GlobBudgetError, GlobError, type Glob, type GlobState } from "./glob.js";
import { OrderedQueue } from "./ordered.js";
import { SearchStop } from "./stop.js";
import { LIMITS } from "./tools.js";

export interface SearchMatch {
  line: number;
  text: string;
}

export interface SearchResult {
  path: string;
  kind: DirEntry["kind"];
  matches?: SearchMatch[];
}

/** Why the walk ended before it had looked at everything it could reach. */
export type SearchStopped = "max_results" | "max_entries" | "pattern_cost" | "time_limit";

export interface SearchOutput {
  path: string;
  results: SearchResult[];
  complete: boolean;
  /** Set when the walk stopped early; `complete: false` without it means parts were passed over (depth, a huge directory). */
  stopped?: SearchStopped;
  note?: string;
}

/** Bytes looked at for a NUL, the mark of a binary file (as grep and git judge it). */
const BINARY_SNIFF = 8000;
/** Steps one search may spend matching names (a comparison, a state, a class range each): about a second of CPU at worst. */
const GLOB_STEPS = 50_000_000;
/**
 * Guarded reads in flight at once. Each is about six syscalls run one after another on libuv's
 * thread pool (4 threads by default); a few per thread keep it busy. More buys little, holds
 * more memory (a read may hold up to 1 MiB) and crowds out other calls' file access.
 */
export const READS_IN_FLIGHT = 8;
/** Outcomes held at most while the oldest read is still running (each is at most a few lines of text). */
const OUTCOMES_HELD = 64;
/** Progress goes out at most this often (by the search's clock); the session coalesces further. */
export const PROGRESS_EVERY_MS = 250;

export interface SearchOptions {
  /** Guarded reads in flight at once (default READS_IN_FLIGHT). */
  concurrency?: number;
  /** The clock `ctx.deadline` is read on (default Date.now; tests move their own). */
  now?: () => number;
}

/** What one entry or directory adds to the result, taken in the walk's order. */
type Step =
  | { kind: "found"; result: SearchResult }
  | { kind: "no-match" }
  | { kind: "unreadable" }
  | { kind: "too-large"; relative: string };

const NO_MATCH: Step = { kind: "no-match" };
const UNREADABLE: Step = { kind: "unreadable" };

export async function searchFiles(args: JsonObject, ctx: ToolContext, options: SearchOptions = {}): Promise<SearchOutput> {
  const pattern = typeof args.pattern === "string" ? args.pattern : "**";
  // A pattern that names a dot entry (`.github/*.yml`, `**/.env.example`) asks for hidden names.
  const hidden = args.include_hidden === true || (typeof args.pattern === "string" && /(^|[/{,])\./.test(args.pattern));
  const maxDepth = typeof args.max_depth === "number" ? args.max_depth : LIMITS.depthDefault;
  const maxResults = typeof args.max_results === "number" ? args.max_results : LIMITS.searchDefault;
  const contains = typeof args.contains === "string" ? args.contains : undefined;
  const caseSensitive = args.case_sensitive === true;
  let glob: Glob;
  try {
    glob = compileGlob(pattern, { steps: 0, max: GLOB_STEPS });
  } catch (error) {
    if (!(error instanceof GlobError)) throw error;
    throw new ToolError(`pattern ${JSON.stringify(pattern)} is not a valid glob: ${error.message}`, "INVALID_PATTERN");
  }
  const root = await ctx.fs.resolve(args.path as string, "read");
  const needle = contains === undefined ? undefined : caseSensitive ? contains : contains.toLowerCase();

  const now = options.now ?? Date.now;
  const stop = new SearchStop(ctx.signal, ctx.deadline, now);
  try {
    return await walk(root, glob, { hidden, maxDepth, maxResults, needle, caseSensitive }, ctx, stop, options.concurrency ?? READS_IN_FLIGHT, now);
  } finally {
    stop.dispose();
  }
}

interface WalkSettings {
  hidden: boolean;
  maxDepth: number;
  maxResults: number;
  needle: string | undefined;
  caseSensitive: boolean;
}

async function walk(root: string, glob: Glob, settings: WalkSettings, ctx: ToolContext, stop: SearchStop, concurrency: number, now: () => number): Promise<SearchOutput> {
  const { hidden, maxDepth, maxResults, needle, caseSensitive } = settings;
  const results: SearchResult[] = [];
  let unreadable = 0;
  const tooLarge: string[] = [];
  let visited = 0;
  let filesRead = 0;
  let deeper = false;
  const pending = new OrderedQueue<Step>(concurrency, Math.max(OUTCOMES_HELD, concurrency));
  /** Why the walk ended early, and what to tell the model about it. */
  let stopped: { reason: SearchStopped; note: string } | undefined;
  /** A bound the walk itself met; it holds only if what lay before it in the walk did not reach max_results. */
  let walkCut: { reason: SearchStopped; note: string } | undefined;
  const atMaxResults = (): boolean => stopped?.reason === "max_results";

  /** Applies the outcomes that are ready, oldest first; true once max_results is reached. */
  const takeReady = (): boolean => {
    while (!atMaxResults() && pending.ready) {
      const step = pending.take();
      if (step.kind === "found") {
        results.push(step.result);
        if (results.length >= maxResults) stopped = { reason: "max_results", note: `stopped at max_results (${maxResults})` };
      } else if (step.kind === "unreadable") unreadable++;
      else if (step.kind === "too-large") tooLarge.push(step.relative);
    }
    return atMaxResults();
  };
  /** Stops for the time limit, keeping what is ready; a cancelled call throws instead. */
  const timeUp = (why: "time_limit" | "cancelled"): true => {
    if (why === "cancelled") throwIfCancelled(ctx);
    if (!takeReady()) {
      stopped = {
        reason: "time_limit",
        note:
          `stopped near the call's time limit after looking at ${visited} entries` +
          (needle === undefined ? "" : ` and reading ${filesRead} files`) +
          "; search a smaller directory or a narrower pattern (the operator can raise tools.timeouts.search_files)",
      };
    }
    return true;
  };
  /** Takes outcomes until there is room for one more (or, with "all", until none is left); true when the walk must end. */
  const drain = async (until: "room" | "all"): Promise<boolean> => {
    for (;;) {
      if (takeReady()) return true;
      if (pending.size === 0 || (until === "room" && !pending.full)) return false;
      const waited = await stop.race(pending.waitOldest());
      if (typeof waited === "string") return timeUp(waited);
    }
  };
  let lastReport = now();
  const report = (): void => {
    const at = now();
    if (at - lastReport < PROGRESS_EVERY_MS) return;
    lastReport = at;
    const read = needle === undefined ? "" : `, ${filesRead} files read`;
    ctx.progress({ progress: visited, message: `${visited} entries looked at${read}, ${results.length} found` });
  };
  const countRead = (): void => {
    filesRead++;
  };
  /**
   * Room for the reads in flight (each holds up to a file's first MiB and its text), taken before
   * the first: many content searches at once wait rather than fill the heap. Kept until the
   * response has left, like a result's room.
   */
  let roomTaken = false;
  const takeRoom = async (): Promise<boolean> => {
    if (roomTaken) return true;
    let taken: { value: void } | string;
    try {
      // Given the stop's signal: a wait the search gives up leaves the line with it.
      taken = await stop.race(ctx.reserve(concurrency * Math.min(LIMITS.grepBytes, ctx.fs.limits.maxReadBytes), stop.signal));
    } catch (error) {
      // The wait ended by the stop may reject before the race sees the stop.
      if (!stop.signal.aborted) throw error;
      taken = "stopped";
    }
    if (typeof taken !== "string") return (roomTaken = true);
    throwIfCancelled(ctx);
    if (!takeReady()) {
      stopped = {
        reason: "time_limit",
        note: "stopped near the call's time limit, still waiting for memory to read files in: other calls' large results hold it; search again when they are done",
      };
    }
    return false;
  };

  // Directories to list: their path relative to the root ("" for the root), their depth, and where the glob stands after it.
  const queue: Array<{ relative: string; depth: number; states: ReadonlySet<GlobState> }> = [{ relative: "", depth: 1, states: glob.start }];
  // Walked by index: shift() moves the whole queue each time, and a wide tree queues tens of thousands.
  walk: for (let head = 0; head < queue.length; head++) {
    const next = queue[head] as (typeof queue)[number];
    let entries: DirEntry[];
    try {
      const listed = await stop.race(ctx.fs.list(under(root, next.relative), { signal: stop.signal }));
      if (typeof listed === "string") {
        timeUp(listed);
        break walk;
      }
      entries = listed.value;
    } catch (error) {
      // The root must be readable; a directory below that cannot be read is counted and passed over.
      if (next.relative === "") throw error;
      throwIfCancelled(ctx);
      if (pending.full && (await drain("room"))) break walk;
      // One too large to list is a bound the search met: what lies in it was not searched.
      pending.put((error as { code?: unknown }).code === "DIRECTORY_TOO_LARGE" ? { kind: "too-large", relative: next.relative } : UNREADABLE);
      if (takeReady()) break walk;
      continue;
    }
    for (const entry of entries) {
      const why = stop.reason();
      if (why !== undefined && timeUp(why)) break walk;
      if (++visited > LIMITS.visitMax) {
        walkCut = { reason: "max_entries", note: `stopped after looking at ${LIMITS.visitMax} entries; search a smaller directory or a narrower pattern` };
        break walk;
      }
      report();
      if (!hidden && entry.name.startsWith(".")) continue;
      const relative = next.relative === "" ? entry.name : `${next.relative}/${entry.name}`;
      let states: Set<GlobState>;
      try {
        states = glob.step(next.states, entry.name);
      } catch (error) {
        if (!(error instanceof GlobBudgetError)) throw error;
        walkCut = { reason: "pattern_cost", note: "stopped: matching this pattern costs too much here; use fewer wildcards or search a smaller directory" };
        break walk;
      }
      // A directory no match can lie under is not entered.
      if (entry.kind === "directory" && glob.live(states)) {
        if (next.depth < maxDepth) queue.push({ relative, depth: next.depth + 1, states });
        else deeper = true;
      }
      if (!glob.accepts(states)) continue;
      if (needle !== undefined && entry.kind !== "file") continue;
      if (pending.full && (await drain("room"))) break walk;
      if (needle === undefined) {
        pending.put({ kind: "found", result: { path: relative, kind: entry.kind } });
      } else {
        if (!(await takeRoom())) break walk;
        const file = under(root, relative);
        pending.start(() => grepStep(file, relative, needle, caseSensitive, ctx).finally(countRead));
      }
      if (takeReady()) break walk;
    }
  }
  // What the walk queued comes before any bound it met: max_results reached there is the cut instead.
  if (stopped === undefined) await drain("all");
  throwIfCancelled(ctx);
  stopped ??= walkCut;
  // Reads left running after a stop end on their own (at most `concurrency`); their outcomes are not used.
  const cut = stopped === undefined ? [] : [stopped.note];
  if (tooLarge.length > 0) {
    const named = tooLarge.slice(0, 3).map((dir) => JSON.stringify(dir)).join(", ");
    cut.push(`not searched, too many entries to list: ${named}${tooLarge.length > 3 ? ` and ${tooLarge.length - 3} more` : ""}`);
  }
  if (deeper && cut.length === 0) cut.push(`directories deeper than max_depth (${maxDepth}) were not searched`);
  const notes = [...cut];
  if (unreadable > 0) notes.push(unreadable === 1 ? "1 entry could not be read and was passed over" : `${unreadable} entries could not be read and were passed over`);
  return {
    path: root,
    results,
    complete: cut.length === 0,
    ...(stopped === undefined ? {} : { stopped: stopped.reason }),
    ...(notes.length > 0 ? { note: notes.join("; ") } : {}),
  };
}

/** One file's outcome for the walk. */
async function grepStep(file: string, relative: string, needle: string, caseSensitive: boolean, ctx: ToolContext): Promise<Step> {
  const found = await grep(file, needle, caseSensitive, ctx);
  if (found === undefined) return UNREADABLE;
  return found.length === 0 ? NO_MATCH : { kind: "found", result: { path: relative, kind: "file", matches: found } };
}

/** Matching lines of a text file (empty: none, or binary); undefined when it cannot be read. */
async function grep(file: string, needle: string, caseSensitive: boolean, ctx: ToolContext): Promise<SearchMatch[] | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await ctx.fs.readBytes(file, { length: LIMITS.grepBytes });
  } catch {
    // A cancelled call is not an unreadable file.
    throwIfCancelled(ctx);
    return undefined;
  }
  if (bytes.subarray(0, BINARY_SNIFF).includes(0)) return [];
  const text = new TextDecoder("utf-8").decode(bytes);
  const found: SearchMatch[] = [];
  let line = 1;
  let start = 0;
  while (start <= text.length && found.length < LIMITS.linesPerFile) {
    const end = text.indexOf("\n", start);
    const stop = end === -1 ? text.length : end;
    const content = text.slice(start, stop);
    const at = (caseSensitive ? content : content.toLowerCase()).indexOf(needle);
    if (at !== -1) found.push({ line, text: clipLine(content, at, needle.length) });
    if (end === -1) break;
    start = end + 1;
    line++;
  }
  return found;
}

/** The line, or the part of it around the match when it is long (a match far along must show). */
function clipLine(line: string, at: number, needleLength: number): string {
  const trimmed = line.replace(/\r$/, "");
  if (trimmed.length <= LIMITS.lineMax) return trimmed;
  const room = LIMITS.lineMax - 2;
  let start = Math.max(0, Math.min(at - Math.floor((room - needleLength) / 2), trimmed.length - room));
  // Not between the two halves of a surrogate pair, at either end.
  if (isLowSurrogate(trimmed.charCodeAt(start))) start++;
  let end = Math.min(trimmed.length, start + room);
  if (isLowSurrogate(trimmed.charCodeAt(end))) end--;
  return `${start > 0 ? "\u2026" : ""}${trimmed.slice(start, end)}${end < trimmed.length ? "\u2026" : ""}`;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

function throwIfCancelled(ctx: ToolContext): void {
  if (ctx.signal.aborted) throw ctx.signal.reason instanceof Error ? ctx.signal.reason : new ToolError("the search was cancelled", "CANCELLED");
}

