/**
 * The files plugin: list, read, look up, search, write and make directories, on the
 * machine's own files, within what the filesystem policy allows. Everything goes through
 * `ctx.fs`, which applies the policy (allowed and denied paths, the server's own files,
 * write-denied names, size caps) on every use and verifies what it opened; this plugin adds
 * paging, text decoding and the search walk.
 */
import { dirname } from "node:path";
import {
  structured,
  ToolError,
  type ContentBlock,
  type FileInfo,
  type JsonObject,
  type Plugin,
  type ToolContext,
  type ToolOutcome,
} from "../../contract.js";
import { quoted, under } from "./paths.js";
import { editFile, HALF_A_PAIR } from "./edit.js";
import { PathLocks } from "./locks.js";
import { searchFiles } from "./search.js";
import { decodeTextPart } from "./text.js";
import { LIMITS, TOOL_NAMES, TOOLS, type ToolName } from "./tools.js";

type Handler = (args: JsonObject, ctx: ToolContext, locks: PathLocks) => Promise<ToolOutcome>;

const HANDLERS: Readonly<Record<ToolName, Handler>> = {
  list_allowed_directories: listAllowedDirectories,
  list_directory: listDirectory,
  read_file: readFile,
  file_info: fileInfo,
  search_files: async (args, ctx) => structured((await searchFiles(args, ctx)) as unknown as JsonObject),
  write_file: writeFile,
  edit_file: async (args, ctx, locks) => structured(await holding(locks, ctx, [args.path as string], () => editFile(args, ctx))),
  move_file: moveFile,
  create_directory: createDirectory,
};

export function createFilesPlugin(): Plugin {
  // Calls that change one file run one after another (see locks.ts).
  const locks = new PathLocks();
  return {
    name: "files",
    version: "1.0.0",
    description: "The machine's own files, within the filesystem policy: where they may be, list, read, search, write, edit, move, make directories.",
    tools: TOOLS,
    async execute(tool: string, args: JsonObject, ctx: ToolContext): Promise<ToolOutcome> {
      if (!(TOOL_NAMES as readonly string[]).includes(tool)) throw new ToolError(`the files plugin has no tool "${tool}"`, "UNKNOWN_TOOL");
      return HANDLERS[tool as ToolName](args, ctx, locks);
    },
  };
}

async function listDirectory(args: JsonObject, ctx: ToolContext): Promise<ToolOutcome> {
  const path = args.path as string;
  const offset = integer(args.offset, 0);
  const limit = integer(args.limit, LIMITS.listDefault);
  const root = await ctx.fs.resolve(path, "read");
  const all = await ctx.fs.list(path);
  const page = all.slice(offset, offset + limit);
  const entries = await Promise.all(
    page.map(async (entry): Promise<JsonObject> => {
      if (entry.kind !== "file") return { name: entry.name, kind: entry.kind };
      // Sizes are a courtesy: a file that went away or turned special meanwhile is listed without one.
      const size = await ctx.fs.stat(under(root, entry.name)).then((info) => info.size, () => undefined);
      return size === undefined ? { name: entry.name, kind: entry.kind } : { name: entry.name, kind: entry.kind, size };
    }),
  );
  const next = offset + page.length;
  return structured({ path: root, entries, total: all.length, ...(next < all.length ? { next_offset: next } : {}) });
}

/**
 * Reads asking for more than this are sized by the file first (one stat); smaller ones reserve what
 * they ask. Low enough that the default read (256 KiB) of a small file takes only its size: a batch of
 * hundreds of them would otherwise pass the budget on room it never uses.
 */
const SIZE_FIRST_BYTES = 32 * 1024;

async function readFile(args: JsonObject, ctx: ToolContext): Promise<ToolOutcome> {
  const path = args.path as string;
  const offset = integer(args.offset, 0);
  const length = integer(args.length, LIMITS.readDefault);
  const encoding = args.encoding === "base64" ? "base64" : "utf8";
  // The content goes into the response (twice: the text and structuredContent) and stays until it
  // is written out: room for it first, so many large reads at once wait rather than fill the heap.
  let most = Math.min(length, ctx.fs.limits.maxReadBytes);
  if (most > SIZE_FIRST_BYTES) {
    // Room for what the file holds, and a missing file refused before waiting for room. The read
    // below still measures what it returns on its own.
    const info = await ctx.fs.stat(path);
    if (info.kind === "directory") throw new ToolError(`${quoted(path)} is a directory; use list_directory`, "PATH_IS_DIRECTORY");
    most = Math.min(most, Math.max(0, info.size - offset));
  }
  const room = (n: number): number => (encoding === "base64" ? Math.ceil(n / 3) * 4 : n);
  await ctx.reserve(room(most));
  // One open gives both the bytes and the size they are measured against: a stat before the
  // read could see another file, or a log before it grew, and misplace next_offset. Read even
  // past the end: the read is what refuses special files and hard links, whatever their size.
  const { bytes, info } = await ctx.fs.read(path, { offset, length }).catch((error: unknown) => {
    throw error instanceof ToolError && error.code === "PATH_IS_DIRECTORY" ? new ToolError(`${quoted(path)} is a directory; use list_directory`, error.code) : error;
  });
  // A file that grew (or was replaced) since the stat gave more than the room taken: the rest now.
  if (bytes.byteLength > most) await ctx.reserve(room(bytes.byteLength) - room(most));
  const end = offset + bytes.byteLength;
  if (encoding === "base64") {
    const content = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
    return structured({ path: info.path, size: info.size, offset, bytes: bytes.byteLength, encoding, content, ...(end < info.size ? { next_offset: end } : {}) });
  }
  const part = decodeTextPart(bytes, offset > 0, end < info.size);
  if (!part.ok) {
    throw new ToolError(
      part.reason === "too_short"
        ? `${quoted(path)}: ${length} byte(s) from offset ${offset} do not hold a whole character; ask for at least ${part.need}`
        : `${quoted(path)} is not UTF-8 text (${part.reason === "nul" ? "it holds NUL bytes" : "invalid UTF-8"}); read it with encoding "base64"`,
      part.reason === "too_short" ? "FS_INVALID_ARGUMENT" : "FILE_NOT_TEXT",
    );
  }
  const start = offset + part.skipped;
  const stop = start + part.bytes;
  return {
    structuredContent: {
      path: info.path,
      size: info.size,
      offset: start,
      bytes: part.bytes,
      encoding,
      content: part.text,
      ...(stop < info.size ? { next_offset: stop } : {}),
    },
    // The text as it is, not inside JSON (where every line break and quote would be escaped, and a
    // model copying old_text for edit_file would have to undo that), then where it lies in the file.
    content: [{ type: "text", text: part.text }, ...readNote(info.path, info.size, start, stop)],
  };
}

/** What the text block alone does not say: that the file goes on (and where to read on), or began earlier, or is empty. */
function readNote(path: string, size: number, start: number, stop: number): ContentBlock[] {
  if (size === 0) return [{ type: "text", text: `[read_file: ${path} is empty]` }];
  if (start > size) return [{ type: "text", text: `[read_file: ${path} has ${size} bytes; offset ${start} is past its end]` }];
  if (start === 0 && stop >= size) return [];
  const more = stop < size ? `; the file goes on: read on with offset ${stop}` : "; the file ends here";
  return [{ type: "text", text: `[read_file: ${path}, bytes ${start} to ${stop} of ${size}${more}]` }];
}

async function listAllowedDirectories(_args: JsonObject, ctx: ToolContext): Promise<ToolOutcome> {
  const { directories, base } = ctx.fs.allowedDirectories();
  // Whether a relative path can pass at all: a model told "no" names absolute paths from the start.
  const baseAllowed = base === undefined ? undefined : await ctx.fs.resolve(base, "read").then(() => true, () => false);
  return structured({
    directories: directories.map(({ path, pattern }) => ({ path, pattern })),
    // Where relative paths go is told only where they may go: a directory outside the policy stays unnamed.
    ...(base === undefined ? {} : baseAllowed === true ? { relative_to: base, relative_allowed: true } : { relative_allowed: false }),
  });
}

async function fileInfo(args: JsonObject, ctx: ToolContext): Promise<ToolOutcome> {
  return structured(describe(await ctx.fs.stat(args.path as string)));
}

async function writeFile(args: JsonObject, ctx: ToolContext, locks: PathLocks): Promise<ToolOutcome> {
  const mode = args.mode === "overwrite" || args.mode === "append" ? args.mode : "create";
  const content = args.content as string;
  const path = args.path as string;
  // Encoded as UTF-8 it would become U+FFFD: the file would hold other text than the content sent.
  if (HALF_A_PAIR.test(content)) {
    throw new ToolError("content holds half of a surrogate pair, which is no character (a cut emoji?); send whole characters", "WRITE_INVALID_TEXT");
  }
  let info: FileInfo;
  try {
    const options = mode === "create" ? { exclusive: true } : mode === "append" ? { append: true } : {};
    info = await holding(locks, ctx, [path], () => ctx.fs.writeFile(path, content, options));
  } catch (error) {
    if (error instanceof ToolError && error.code === "PATH_EXISTS" && mode === "create") {
      throw new ToolError(`${quoted(args.path as string)} already exists; pass mode "overwrite" to replace it or "append" to add to it`, "PATH_EXISTS");
    }
    if (error instanceof ToolError && error.code === "PATH_NOT_FOUND") {
      throw new ToolError(`the directory ${quoted(dirname(args.path as string))} does not exist; make it with create_directory first`, "PATH_NOT_FOUND");
    }
    throw error;
  }
  return structured({ path: info.path, bytes_written: Buffer.byteLength(content, "utf8"), size: info.size, mode });
}

async function moveFile(args: JsonObject, ctx: ToolContext, locks: PathLocks): Promise<ToolOutcome> {
  const source = await ctx.fs.resolve(args.source as string, "write");
  // A missing destination directory is said by ctx.fs ("create that directory first").
  const moved = await holding(locks, ctx, [args.source as string, args.destination as string], () =>
    ctx.fs.move(args.source as string, args.destination as string),
  );
  return structured({ source, destination: moved.path, size: moved.size });
}

/** Runs `change` holding the locks of the files it changes, named by their real paths (checked for writing). */
async function holding<T>(locks: PathLocks, ctx: ToolContext, paths: readonly string[], change: () => Promise<T>): Promise<T> {
  const real = await Promise.all(paths.map((path) => ctx.fs.resolve(path, "write")));
  return locks.hold(real, change, ctx.signal);
}

async function createDirectory(args: JsonObject, ctx: ToolContext): Promise<ToolOutcome> {
  const target = await ctx.fs.resolve(args.path as string, "write");
  const created: string[] = [];
  try {
    await makeDirectory(target, ctx, created, 0);
  } catch (error) {
    // What was made before the failure stays made: said, so the model does not think nothing changed.
    if (!(error instanceof ToolError) || created.length === 0) throw error;
    const made = created.map((dir) => quoted(dir)).join(", ");
    throw new ToolError(`${error.message} (made before that, and left in place: ${made})`, error.code);
  }
  return structured({ path: target, created });
}

/** Makes `dir`, its missing parents first; each `mkdir` is checked by the policy on its own. */
async function makeDirectory(dir: string, ctx: ToolContext, created: string[], depth: number): Promise<void> {
  const missingParent = await makeOne(dir, ctx, created);
  if (missingParent === undefined) return;
  const parent = dirname(dir);
  if (parent === dir) throw missingParent;
  // Each try is a policy check of the whole path: bounded, so a deep path cannot tie the server up.
  if (depth >= LIMITS.newDirectoriesMax) {
    throw new ToolError(`more than ${LIMITS.newDirectoriesMax} directories would be made at once; make the upper ones first`, "FS_INVALID_ARGUMENT");
  }
  // The parent is missing: make it, then this one.
  await makeDirectory(parent, ctx, created, depth + 1);
  const still = await makeOne(dir, ctx, created);
  if (still !== undefined) throw still;
}

/**
 * One `mkdir`. A directory already there is fine, made before or by another call meanwhile (two
 * create_directory calls at once for one path both succeed); a missing parent is returned for
 * the caller to make; anything else is thrown.
 */
async function makeOne(dir: string, ctx: ToolContext, created: string[]): Promise<ToolError | undefined> {
  try {
    created.push((await ctx.fs.mkdir(dir)).path);
    return undefined;
  } catch (error) {
    if (!(error instanceof ToolError)) throw error;
    if (error.code === "PATH_NOT_FOUND") return error;
    if (error.code !== "PATH_EXISTS") throw error;
    const info = await ctx.fs.stat(dir);
    if (info.kind !== "directory") throw new ToolError(`${quoted(dir)} exists and is not a directory`, "PATH_NOT_DIRECTORY");
    return undefined;
  }
}

function describe(info: FileInfo): JsonObject {
  return {
    path: info.path,
    kind: info.kind,
    size: info.size,
    modified: new Date(info.mtimeMs).toISOString(),
    mode: `0${(info.mode & 0o7777).toString(8).padStart(3, "0")}`,
  };
}

function integer(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isSafeInteger(value) ? value : fallback;
}
