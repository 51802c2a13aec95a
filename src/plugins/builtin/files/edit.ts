/**
 * edit_file: exact replacements in a text file, all or none, shown as a unified diff. Each
 * `old_text` must occur exactly once in the text as the edits before it left it, so an edit
 * never lands somewhere the model did not mean; a miss or an ambiguity says where to look.
 * The file is read whole and written back at once (ctx.fs replaces it atomically), and only
 * if it is still what was read: a change made meanwhile is not overwritten.
 */
import { ToolError, type JsonObject, type ToolContext } from "../../contract.js";
import { unifiedDiff } from "./diff.js";
import { quoted } from "./paths.js";
import { decodeTextPart } from "./text.js";

export interface Edit {
  old_text: string;
  new_text: string;
}

/** Occurrences of an ambiguous old_text counted at most, for the message. */
const OCCURRENCES_COUNTED = 1000;

/** Characters of diff returned at most; a longer one is cut (the edit is made all the same). */
export const DIFF_MAX = 64 * 1024;

export async function editFile(args: JsonObject, ctx: ToolContext): Promise<JsonObject> {
  const path = args.path as string;
  const edits = args.edits as unknown as readonly Edit[];
  const dryRun = args.dry_run === true;
  const { bytes, info } = await ctx.fs.read(path);
  if (bytes.byteLength < info.size) {
    throw new ToolError(
      `${quoted(path)} has ${info.size} bytes, more than one read may take under the policy (${bytes.byteLength}); edit_file reads a file whole`,
      "FILE_TOO_LARGE",
    );
  }
  const part = decodeTextPart(bytes, false, false);
  if (!part.ok) throw new ToolError(`${quoted(path)} is not UTF-8 text; edit_file edits text files only`, "FILE_NOT_TEXT");
  const before = part.text;
  let after = before;
  edits.forEach((edit, index) => {
    after = applyEdit(after, edit, index);
  });
  const changed = after !== before;
  if (changed && !dryRun) {
    // Not lost: a change someone made since the read (an editor saving, another call).
    const now = await ctx.fs.read(path);
    if (!sameBytes(now.bytes, bytes) || now.bytes.byteLength < now.info.size) {
      throw new ToolError(`${quoted(path)} changed while it was being edited; nothing was written: read it again and redo the edits`, "EDIT_CONFLICT");
    }
    await ctx.fs.writeFile(path, after);
  }
  const diff = unifiedDiff(before, after, info.path);
  const cut = diff.length > DIFF_MAX;
  return {
    path: info.path,
    changed,
    dry_run: dryRun,
    edits: edits.length,
    size: Buffer.byteLength(after, "utf8"),
    diff: cut ? `${diff.slice(0, DIFF_MAX)}\n… (diff cut at ${DIFF_MAX} characters)\n` : diff,
    ...(cut ? { diff_truncated: true } : {}),
  };
}

/** One edit on the text as the edits before it left it. */
export function applyEdit(text: string, edit: Edit, index: number): string {
  let oldText = edit.old_text;
  let newText = edit.new_text;
  let at = text.indexOf(oldText);
  // A model writes "\n"; a file from Windows has "\r\n": the same lines, so the edit is made in the file's own line endings.
  if (at === -1 && text.includes("\r\n") && oldText.includes("\n")) {
    const crlf = toCrlf(oldText);
    at = text.indexOf(crlf);
    if (at !== -1) {
      oldText = crlf;
      newText = toCrlf(newText);
    }
  }
  const which = `edit ${index + 1}`;
  if (at === -1) {
    const loose = looseMatchLine(text, oldText);
    throw new ToolError(
      loose === undefined
        ? `${which}: old_text is not in the file${index > 0 ? " (as the edits before it left it)" : ""}; copy it exactly from read_file`
        : `${which}: old_text is not in the file exactly, but matches at line ${loose} when leading and trailing spaces are ignored; copy it exactly, indentation included`,
      "EDIT_NOT_FOUND",
    );
  }
  if (text.indexOf(oldText, at + 1) !== -1) {
    const lines = occurrenceLines(text, oldText, OCCURRENCES_COUNTED);
    const times = lines.length === OCCURRENCES_COUNTED ? `at least ${OCCURRENCES_COUNTED}` : `${lines.length}`;
    throw new ToolError(
      `${which}: old_text occurs ${times} times (lines ${lines.slice(0, 5).join(", ")}${lines.length > 5 ? ", ..." : ""}); ` +
        "include more of the surrounding text so it occurs once",
      "EDIT_AMBIGUOUS",
    );
  }
  return text.slice(0, at) + newText + text.slice(at + oldText.length);
}

function toCrlf(text: string): string {
  return text.replace(/\r?\n/g, "\r\n");
}

/** The line numbers where `needle` starts (overlapping occurrences counted), the first `most` of them. */
function occurrenceLines(text: string, needle: string, most: number): number[] {
  const lines: number[] = [];
  let line = 1;
  let scanned = 0;
  for (let at = text.indexOf(needle); at !== -1 && lines.length < most; at = text.indexOf(needle, at + 1)) {
    for (let nl = text.indexOf("\n", scanned); nl !== -1 && nl < at; nl = text.indexOf("\n", nl + 1)) {
      line++;
      scanned = nl + 1;
    }
    lines.push(line);
  }
  return lines;
}

/** Where `needle`'s lines match the text's when each line's surrounding spaces are ignored (the first such line), if anywhere. */
function looseMatchLine(text: string, needle: string): number | undefined {
  const wanted = needle.split(/\r?\n/).map((line) => line.trim());
  while (wanted.length > 1 && wanted[wanted.length - 1] === "") wanted.pop();
  if (wanted.every((line) => line === "")) return undefined;
  const lines = text.split(/\r?\n/).map((line) => line.trim());
  // Bounded: a huge file and a long old_text do not make the hint cost more than the edit.
  if (lines.length * wanted.length > 20_000_000) return undefined;
  for (let start = 0; start + wanted.length <= lines.length; start++) {
    let i = 0;
    while (i < wanted.length && lineMatches(lines[start + i] as string, wanted[i] as string, i, wanted.length)) i++;
    if (i === wanted.length) return start + 1;
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

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}
