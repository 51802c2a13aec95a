/**
 * search_files: a breadth-first walk through `ctx.fs.list` (which leaves out what the policy
 * denies), names matched with a glob, contents read through `ctx.fs.readBytes`. Bounded in
 * every direction (depth, entries looked at, results, bytes per file, lines per file) and
 * stopped by the call's signal; what a bound cut short is said in the result.
 */
import picomatch from "picomatch";
import { ToolError, type DirEntry, type JsonObject, type ToolContext } from "../../contract.js";
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

export async function searchFiles(args: JsonObject, ctx: ToolContext): Promise<SearchOutput> {
  const pattern = typeof args.pattern === "string" ? args.pattern : "**";
  const hidden = args.include_hidden === true;
  const maxDepth = typeof args.max_depth === "number" ? args.max_depth : LIMITS.depthDefault;
  const maxResults = typeof args.max_results === "number" ? args.max_results : LIMITS.searchDefault;
  const contains = typeof args.contains === "string" ? args.contains : undefined;
  const caseSensitive = args.case_sensitive === true;
  let matches: (relative: string) => boolean;
  try {
    // `s`: a file name may hold a line break, which `*` must still match.
    matches = picomatch(pattern, { dot: hidden, windows: false, flags: "s" });
  } catch (error) {
    throw new ToolError(`pattern ${JSON.stringify(pattern)} is not a valid glob: ${(error as Error).message}`, "INVALID_PATTERN");
  }
  const root = await ctx.fs.resolve(args.path as string, "read");
  const needle = contains === undefined ? undefined : caseSensitive ? contains : contains.toLowerCase();

  const results: SearchResult[] = [];
  const cut: string[] = [];
  let unreadable = 0;
  let visited = 0;
  let deeper = false;
  // Directories to list: their path relative to the root ("" for the root) and their depth.
  const queue: Array<{ relative: string; depth: number }> = [{ relative: "", depth: 1 }];
  walk: for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    if (ctx.signal.aborted) throw ctx.signal.reason instanceof Error ? ctx.signal.reason : new ToolError("the search was cancelled", "CANCELLED");
    let entries: DirEntry[];
    try {
      entries = await ctx.fs.list(join(root, next.relative));
    } catch (error) {
      // The root must be readable; a directory below that cannot be read is counted and passed over.
      if (next.relative === "") throw error;
      unreadable++;
      continue;
    }
    for (const entry of entries) {
      if (++visited > LIMITS.visitMax) {
        cut.push(`stopped after looking at ${LIMITS.visitMax} entries; search a smaller directory or a narrower pattern`);
        break walk;
      }
      if (!hidden && entry.name.startsWith(".")) continue;
      const relative = next.relative === "" ? entry.name : `${next.relative}/${entry.name}`;
      if (entry.kind === "directory") {
        if (next.depth < maxDepth) queue.push({ relative, depth: next.depth + 1 });
        else deeper = true;
      }
      if (!matches(relative)) continue;
      if (needle === undefined) {
        results.push({ path: relative, kind: entry.kind });
      } else {
        if (entry.kind !== "file") continue;
        const found = await grep(join(root, relative), needle, caseSensitive, ctx);
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
  if (deeper && cut.length === 0) cut.push(`directories deeper than max_depth (${maxDepth}) were not searched`);
  const notes = [...cut];
  if (unreadable > 0) notes.push(`${unreadable} entr${unreadable === 1 ? "y" : "ies"} could not be read and were passed over`);
  return { path: root, results, complete: cut.length === 0, ...(notes.length > 0 ? { note: notes.join("; ") } : {}) };
}

/** Matching lines of a text file (empty: none, or binary); undefined when it cannot be read. */
async function grep(file: string, needle: string, caseSensitive: boolean, ctx: ToolContext): Promise<SearchMatch[] | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await ctx.fs.readBytes(file, { length: LIMITS.grepBytes });
  } catch {
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
    if ((caseSensitive ? content : content.toLowerCase()).includes(needle)) found.push({ line, text: clipLine(content) });
    if (end === -1) break;
    start = end + 1;
    line++;
  }
  return found;
}

function clipLine(line: string): string {
  const trimmed = line.replace(/\r$/, "");
  return trimmed.length <= LIMITS.lineMax ? trimmed : `${trimmed.slice(0, LIMITS.lineMax - 1)}\u2026`;
}

function join(root: string, relative: string): string {
  if (relative === "") return root;
  return root.endsWith("/") ? `${root}${relative}` : `${root}/${relative}`;
}
