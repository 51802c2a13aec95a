/**
 * edit_file: exact replacements in a text file, all or none, shown as a unified diff. Each
 * `old_text` must occur exactly once in the text as the edits before it left it, so an edit
 * never lands somewhere the model did not mean; a miss or an ambiguity says where to look.
 * The file is read whole and written back at once (ctx.fs replaces it atomically), and only
 * if it is still what was read: a change made meanwhile is not overwritten. The caller holds
 * the file's lock (PathLocks) across all of it.
 */
import { CapabilityDeniedError, ToolError, type JsonObject, type ToolContext } from "../../contract.js";
import { unifiedDiff, type ChangedRegion, type DiffText } from "./diff.js";
import { quoted } from "./paths.js";
import { decodeTextPart } from "./text.js";

interface Edit {
  old_text: string;
  new_text: string;
}

/** Characters of diff returned at most; a longer one is cut (the edit is made all the same). */
const DIFF_MAX = 64 * 1024;
/** Occurrences of an ambiguous old_text counted at most, for the message. */
const OCCURRENCES_COUNTED = 1000;
/**
 * Characters the edits may scan and copy in one call: each edit searches the whole text and
 * makes a new one, so 100 edits of a 10 MiB file would hold the server for seconds.
 */
const EDIT_WORK_MAX = 256 * 1024 * 1024;
/** A surrogate without its other half: written to disk as U+FFFD, a match of it would split a character. */
export const HALF_A_PAIR = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** Characters the "matches when spaces are ignored" hint may compare. */
const HINT_WORK_MAX = 50_000_000;

export async function editFile(args: JsonObject, ctx: ToolContext): Promise<JsonObject> {
  const path = args.path as string;
  const edits = args.edits as unknown as readonly Edit[];
  const dryRun = args.dry_run === true;
  edits.forEach((edit, index) => {
    if (HALF_A_PAIR.test(edit.old_text) || HALF_A_PAIR.test(edit.new_text)) {
      throw new ToolError(`edit ${index + 1}: old_text or new_text holds half of a surrogate pair, which is no character; send whole characters`, "EDIT_INVALID_TEXT");
    }
  });
  const isDirectory = (): ToolError => new ToolError(`${quoted(path)} is a directory; edit_file edits a file`, "PATH_IS_DIRECTORY");
  // The file is held whole, with its edited copy and a second read before the write: room for it
  // first, so many edits of large files at once wait rather than fill the heap. A missing file or
  // a directory is refused before any wait.
  const sized = await ctx.fs.stat(path);
  if (sized.kind === "directory") throw isDirectory();
  // The write refuses a name ending in "/" (a directory's): refused here, so a dry run says what the edit would meet.
  if (/\/\.?$/.test(path)) {
    throw new ToolError(`${quoted(path)} ends with "/", which names a directory, but it is a file; name it without the trailing "/"`, "FS_INVALID_ARGUMENT");
  }
  if (sized.size > ctx.fs.limits.maxReadBytes) throw tooLarge(path, sized.size, ctx.fs.limits.maxReadBytes);
  const room = sized.size;
  await ctx.reserve(room);
  const { bytes, info } = await ctx.fs.read(path).catch((error: unknown) => {
    throw error instanceof ToolError && error.code === "PATH_IS_DIRECTORY" ? isDirectory() : error;
  });
  // A file that grew since the stat: room for the rest before working on it.
  if (bytes.byteLength > room) await ctx.reserve(bytes.byteLength - room);
  if (bytes.byteLength < info.size) throw tooLarge(path, info.size, bytes.byteLength);
  const part = decodeTextPart(bytes, false, false);
  if (!part.ok) {
    throw new ToolError(
      `${quoted(path)} is not UTF-8 text (${part.reason === "nul" ? "it holds NUL bytes" : "invalid UTF-8"}); edit_file edits text files only`,
      "FILE_NOT_TEXT",
    );
  }
  const before = part.text;
  if (before.length * edits.length > EDIT_WORK_MAX) {
    const most = Math.max(1, Math.floor(EDIT_WORK_MAX / Math.max(1, before.length)));
    throw new ToolError(`${edits.length} edits of a file this size (${info.size} bytes) cost too much at once; send at most ${most} edits per call`, "EDIT_TOO_COSTLY");
  }
  const crlf = usesCrlf(before);
  let after = before;
  let regions: ChangedRegion[] = [];
  edits.forEach((edit, index) => {
    const made = applyEdit(after, edit, index, crlf);
    after = made.text;
    regions = withReplacement(regions, made.at, made.removed, made.added);
  });
  const changed = after !== before;
  // Before anything is written: whatever happens to the diff, the outcome reported is the real one.
  let diff: DiffText;
  try {
    diff = unifiedDiff(before, after, diffLabel(info.path), { maxChars: DIFF_MAX, regions });
  } catch (error) {
    ctx.log.warn("edit_file: the diff could not be made", { error: error instanceof Error ? error.message : String(error) });
    diff = { text: "(the diff could not be made; the edits are as reported)\n", truncated: false };
  }
  const size = Buffer.byteLength(after, "utf8");
  if (changed && dryRun && size > ctx.fs.limits.maxWriteBytes) {
    // What the write would meet: a dry run that passes must not be followed by a refusal.
    throw new CapabilityDeniedError(
      "FS_WRITE_TOO_LARGE",
      `the edited file would have ${size} bytes, more than one write may take under the policy (filesystem.max_write_bytes: ${ctx.fs.limits.maxWriteBytes}); ` +
        "the edits cannot be made as they are",
    );
  }
  if (changed && !dryRun) {
    // Not lost: a change another program made since the read (this server's own calls hold the lock).
    const now = await ctx.fs.read(path);
    if (now.bytes.byteLength < now.info.size || Buffer.compare(now.bytes, bytes) !== 0) {
      throw new ToolError(`${quoted(path)} changed while it was being edited; nothing was written: read it again and redo the edits`, "EDIT_CONFLICT");
    }
    await ctx.fs.writeFile(path, after);
  }
  return {
    path: info.path,
    changed,
    dry_run: dryRun,
    edits: edits.length,
    size,
    diff: diff.truncated ? `${diff.text}… (diff cut at ${DIFF_MAX} characters)\n` : diff.text,
    ...(diff.truncated ? { diff_truncated: true } : {}),
  };
}

/**
 * The path as the diff's headers name it: quoted where it holds a control character (as git
 * quotes such names), so a line break in a file name cannot add lines of its own to the diff.
 */
function diffLabel(path: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what is looked for.
  return /[\u0000-\u001f\u007f]/.test(path) ? JSON.stringify(path) : path;
}

function tooLarge(path: string, size: number, most: number): ToolError {
  return new ToolError(
    `${quoted(path)} has ${size} bytes, more than one read may take under the policy (${most}); ` +
      "edit_file reads a file whole: read the part you need with read_file and write the file with write_file, or raise filesystem.max_read_bytes",
    "FILE_TOO_LARGE",
  );
}

/** Every line break of the text is \r\n (and there is one): edits are made in that form. */
function usesCrlf(text: string): boolean {
  const lf = text.indexOf("\n");
  return lf > 0 && !/(^|[^\r])\n/.test(text);
}

/**
 * The regions after one more replacement of `removed` characters at `at` (in the text as the
 * edits so far left it) by `added` ones: where the new text may differ from the file's, as
 * ranges of both, so the diff looks only there. Regions the replacement touches merge with it.
 */
export function withReplacement(regions: readonly ChangedRegion[], at: number, removed: number, added: number): ChangedRegion[] {
  const end = at + removed;
  const delta = added - removed;
  const out: ChangedRegion[] = [];
  const touched: ChangedRegion[] = [];
  const later: ChangedRegion[] = [];
  // How much longer the text has grown before `at`, from the regions wholly before it.
  let shift = 0;
  for (const region of regions) {
    if (region.afterEnd < at) {
      out.push(region);
      shift += region.afterEnd - region.after - (region.beforeEnd - region.before);
    } else if (region.after > end) later.push({ ...region, after: region.after + delta, afterEnd: region.afterEnd + delta });
    else touched.push(region);
  }
  const first = touched[0];
  const last = touched[touched.length - 1];
  const touchedShift = touched.reduce((sum, region) => sum + (region.afterEnd - region.after) - (region.beforeEnd - region.before), 0);
  const start = first !== undefined && first.after <= at ? first : undefined;
  const stop = last !== undefined && last.afterEnd >= end ? last : undefined;
  out.push({
    before: start !== undefined ? start.before : at - shift,
    beforeEnd: stop !== undefined ? stop.beforeEnd : end - shift - touchedShift,
    after: start !== undefined ? start.after : at,
    afterEnd: (stop !== undefined ? stop.afterEnd : end) + delta,
  });
  out.push(...later);
  return out;
}

/** One edit on the text as the edits before it left it: the new text, and what it replaced where. */
function applyEdit(text: string, edit: Edit, index: number, crlf: boolean): { text: string; at: number; removed: number; added: number } {
  let oldText = edit.old_text;
  let newText = edit.new_text;
  let at = -1;
  // A model writes "\n"; a file from Windows has "\r\n". In such a file the edit is made in the
  // file's own line endings (an old_text "\nb" would otherwise match the second half of a "\r\n").
  if (crlf && oldText.includes("\n")) {
    at = text.indexOf(toCrlf(oldText));
    if (at !== -1) oldText = toCrlf(oldText);
  }
  if (at === -1) at = text.indexOf(oldText);
  if (crlf) newText = toCrlf(newText);
  else if (!text.includes("\r") && text.includes("\n")) {
    // A file of "\n" line breaks keeps them: a "\r\n" a model sends (copied from a Windows
    // editor, say) is read as "\n", in old_text as in new_text. A file of one line has no kind
    // to keep: the "\r\n" sent stays.
    if (at === -1 && oldText.includes("\r\n")) {
      at = text.indexOf(toLf(oldText));
      if (at !== -1) oldText = toLf(oldText);
    }
    newText = toLf(newText);
  } else if (at === -1 && oldText.includes("\n") && text.includes("\r\n")) {
    // Mixed line endings: the "\r\n" form where the exact one is not found.
    at = text.indexOf(toCrlf(oldText));
    if (at !== -1) {
      oldText = toCrlf(oldText);
      newText = toCrlf(newText);
    }
  }
  const which = `edit ${index + 1}`;
  if (at === -1) {
    const loose = looseMatchLine(text, oldText);
    throw new ToolError(
      text.length === 0
        ? `${which}: the file is empty, so no old_text is in it; write its content with write_file`
        : loose === undefined
          ? `${which}: old_text is not in the file${index > 0 ? " (as the edits before it left it)" : ""}; copy it exactly from read_file`
          : `${which}: old_text is not in the file exactly, but matches at line ${loose} when leading and trailing spaces are ignored; copy it exactly, indentation included`,
      "EDIT_NOT_FOUND",
    );
  }
  // Half of a "\r\n" would leave a lone \r or \n, a line break of another kind.
  if ((oldText.startsWith("\n") && text.charCodeAt(at - 1) === 13) || (oldText.endsWith("\r") && text.charCodeAt(at + oldText.length) === 10)) {
    throw new ToolError(`${which}: old_text starts or ends inside a \\r\\n line break; include the whole \\r\\n or leave it out`, "EDIT_SPLITS_LINE_BREAK");
  }
  if (text.indexOf(oldText, at + 1) !== -1) {
    const { lines, count } = occurrences(text, oldText);
    const times = count === OCCURRENCES_COUNTED ? `at least ${OCCURRENCES_COUNTED}` : `${count}`;
    throw new ToolError(
      `${which}: old_text occurs ${times} times (line${lines.length === 1 ? "" : "s"} ${lines.slice(0, 5).join(", ")}${lines.length > 5 ? ", ..." : ""}); ` +
        "include more of the surrounding text so it occurs once",
      "EDIT_AMBIGUOUS",
    );
  }
  return { text: text.slice(0, at) + newText + text.slice(at + oldText.length), at, removed: oldText.length, added: newText.length };
}

function toCrlf(text: string): string {
  return text.replace(/\r?\n/g, "\r\n");
}

function toLf(text: string): string {
  return text.replace(/\r\n/g, "\n");
}

/** How often `needle` occurs (overlapping ones too, up to OCCURRENCES_COUNTED) and on which lines, each line once. */
function occurrences(text: string, needle: string): { count: number; lines: number[] } {
  const lines: number[] = [];
  let count = 0;
  let line = 1;
  let scanned = 0;
  for (let at = text.indexOf(needle); at !== -1 && count < OCCURRENCES_COUNTED; at = text.indexOf(needle, at + 1)) {
    for (let nl = text.indexOf("\n", scanned); nl !== -1 && nl < at; nl = text.indexOf("\n", nl + 1)) {
      line++;
      scanned = nl + 1;
    }
    count++;
    if (lines[lines.length - 1] !== line) lines.push(line);
  }
  return { count, lines };
}

/** Where `needle`'s lines match the text's when each line's surrounding spaces are ignored (the first such line), if anywhere. */
function looseMatchLine(text: string, needle: string): number | undefined {
  const wanted = needle.split(/\r?\n/).map((line) => line.trim());
  while (wanted.length > 1 && wanted[wanted.length - 1] === "") wanted.pop();
  if (wanted.every((line) => line === "")) return undefined;
  // Bounded: a huge file and a long old_text do not make the hint cost more than the edit.
  if (text.length * wanted.length > HINT_WORK_MAX) return undefined;
  // Line by line through the text, never splitting it whole (a file of 10 million empty lines).
  const lineAt = (start: number): { text: string; next: number } => {
    const end = text.indexOf("\n", start);
    const stop = end === -1 ? text.length : end;
    return { text: text.slice(start, stop).replace(/\r$/, "").trim(), next: end === -1 ? -1 : end + 1 };
  };
  for (let start = 0, number = 1; start !== -1; number++) {
    const line = lineAt(start);
    if (lineMatches(line.text, wanted[0] as string, 0, wanted.length)) {
      let i = 1;
      for (let at = line.next; i < wanted.length && at !== -1; i++) {
        const following = lineAt(at);
        if (!lineMatches(following.text, wanted[i] as string, i, wanted.length)) break;
        at = following.next;
      }
      if (i === wanted.length) return number;
    }
    start = line.next;
  }
  return undefined;
}

/** A first or last wanted line may be part of a line (old_text need not start or end at a line's edge). */
function lineMatches(line: string, wanted: string, index: number, count: number): boolean {
  if (count === 1) return line.includes(wanted);
  if (index === 0) return line.endsWith(wanted);
  if (index === count - 1) return line.startsWith(wanted);
  return line === wanted;
}
