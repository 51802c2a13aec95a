/**
 * search_files: a breadth-first walk through `ctx.fs.list` (which leaves out what the policy
 * denies), names matched with a glob, contents read through `ctx.fs.readBytes`. Bounded in
 * every direction (depth, entries looked at, results, bytes per file, lines per file) and
 * stopped by the call's signal; what a bound cut short is said in the result.
 */
import { ToolError, type DirEntry, type JsonObject, type ToolContext } from "../../contract.js";
import { under } from "./paths.js";
import { compileGlob, GlobBudgetError, GlobError, type Glob, type GlobState } from "./glob.js";
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

export interface SearchOutput {
  path: string;
  results: SearchResult[];
  complete: boolean;
  note?: string;
}

/** Bytes looked at for a NUL, the mark of a binary file (as grep and git judge it). */
const BINARY_SNIFF = 8000;
/** Steps one search may spend matching names (a comparison, a state, a class range each): about a second of CPU at worst. */
const GLOB_STEPS = 50_000_000;

export async function searchFiles(args: JsonObject, ctx: ToolContext): Promise<SearchOutput> {
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

  const results: SearchResult[] = [];
  const cut: string[] = [];
  let unreadable = 0;
  const tooLarge: string[] = [];
  let visited = 0;
  let deeper = false;
  // Directories to list: their path relative to the root ("" for the root), their depth, and where the glob stands after it.
  const queue: Array<{ relative: string; depth: number; states: ReadonlySet<GlobState> }> = [{ relative: "", depth: 1, states: glob.start }];
  // Walked by index: shift() moves the whole queue each time, and a wide tree queues tens of thousands.
  walk: for (let head = 0; head < queue.length; head++) {
    const next = queue[head] as (typeof queue)[number];
    throwIfCancelled(ctx);
    let entries: DirEntry[];
    try {
      entries = await ctx.fs.list(under(root, next.relative));
    } catch (error) {
      // The root must be readable; a directory below that cannot be read is counted and passed over.
      if (next.relative === "") throw error;
      // One too large to list is a bound the search met: what lies in it was not searched.
      if ((error as { code?: unknown }).code === "DIRECTORY_TOO_LARGE") tooLarge.push(next.relative);
      else unreadable++;
      continue;
    }
    for (const entry of entries) {
      throwIfCancelled(ctx);
      if (++visited > LIMITS.visitMax) {
        cut.push(`stopped after looking at ${LIMITS.visitMax} entries; search a smaller directory or a narrower pattern`);
        break walk;
      }
      if (!hidden && entry.name.startsWith(".")) continue;
      const relative = next.relative === "" ? entry.name : `${next.relative}/${entry.name}`;
      let states: Set<GlobState>;
      try {
        states = glob.step(next.states, entry.name);
      } catch (error) {
        if (!(error instanceof GlobBudgetError)) throw error;
        cut.push("stopped: matching this pattern costs too much here; use fewer wildcards or search a smaller directory");
        break walk;
      }
      // A directory no match can lie under is not entered.
      if (entry.kind === "directory" && glob.live(states)) {
        if (next.depth < maxDepth) queue.push({ relative, depth: next.depth + 1, states });
        else deeper = true;
      }
      if (!glob.accepts(states)) continue;
      if (needle === undefined) {
        results.push({ path: relative, kind: entry.kind });
      } else {
        if (entry.kind !== "file") continue;
        const found = await grep(under(root, relative), needle, caseSensitive, ctx);
        if (found === undefined) unreadable++;
        if (found === undefined || found.length === 0) continue;
        results.push({ path: relative, kind: entry.kind, matches: found });
      }
      if (results.length >= maxResults) {
        cut.push(`stopped at max_results (${maxResults})`);
        break walk;
      }
    }
  }
  throwIfCancelled(ctx);
  if (tooLarge.length > 0) {
    const named = tooLarge.slice(0, 3).map((dir) => JSON.stringify(dir)).join(", ");
    cut.push(`not searched, too many entries to list: ${named}${tooLarge.length > 3 ? ` and ${tooLarge.length - 3} more` : ""}`);
  }
  if (deeper && cut.length === 0) cut.push(`directories deeper than max_depth (${maxDepth}) were not searched`);
  const notes = [...cut];
  if (unreadable > 0) notes.push(unreadable === 1 ? "1 entry could not be read and was passed over" : `${unreadable} entries could not be read and were passed over`);
  return { path: root, results, complete: cut.length === 0, ...(notes.length > 0 ? { note: notes.join("; ") } : {}) };
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

