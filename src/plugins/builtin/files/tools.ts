/**
 * The files plugin's tool definitions. Every path argument carries `x-path`, so the engine
 * checks it against the filesystem policy before the plugin runs; the plugin then reaches the
 * disk only through `ctx.fs`, which checks again on every use.
 */
import type { JsonObject, ToolDefinition } from "../../contract.js";

export const TOOL_NAMES = [
  "list_allowed_directories",
  "list_directory",
  "read_file",
  "file_info",
  "search_files",
  "write_file",
  "edit_file",
  "move_file",
  "create_directory",
] as const;
export type ToolName = (typeof TOOL_NAMES)[number];

export const LIMITS = {
  pathMax: 4096,
  /** Directories create_directory makes in one call at most. */
  newDirectoriesMax: 64,
  /** read_file's default `length`: enough for most text files, small enough for a model's context. */
  readDefault: 256 * 1024,
  listDefault: 200,
  listMax: 1000,
  searchDefault: 100,
  searchMax: 1000,
  depthDefault: 10,
  depthMax: 32,
  /** Entries search_files looks at, at most, whatever it finds. */
  visitMax: 50_000,
  /** Bytes of one file that search_files reads to look for `contains`. */
  grepBytes: 1024 * 1024,
  /** Matching lines shown per file. */
  linesPerFile: 5,
  lineMax: 400,
  containsMax: 500,
  /** Replacements one edit_file call makes at most. */
  editsMax: 100,
  patternMax: 500,
} as const;

const PATH_RULE = "absolute, ~/..., or relative to the session's project; the filesystem policy must allow it";

const readPath = (what: string): JsonObject => ({
  type: "string",
  minLength: 1,
  maxLength: LIMITS.pathMax,
  "x-path": "read",
  description: `${what} (${PATH_RULE}).`,
});

const writePath = (what: string): JsonObject => ({
  type: "string",
  minLength: 1,
  maxLength: LIMITS.pathMax,
  "x-path": "write",
  description: `${what} (${PATH_RULE} for writing).`,
});

const KINDS = ["file", "directory", "symlink", "other"];

const fileInfoOutput: JsonObject = {
  type: "object",
  properties: {
    path: { type: "string", description: "The real path (symbolic links resolved)." },
    kind: { type: "string", enum: KINDS },
    size: { type: "integer", minimum: 0 },
    modified: { type: "string", description: "Last modification, ISO 8601 UTC." },
    mode: { type: "string", description: "Permission bits, octal." },
  },
  required: ["path", "kind", "size", "modified", "mode"],
  additionalProperties: false,
};

export const TOOLS: readonly ToolDefinition[] = [
  {
    name: "list_allowed_directories",
    title: "List the allowed directories",
    description:
      "The directories the filesystem policy lets the file tools use, each with the policy entry that allows it (a glob there narrows it), " +
      "and where relative paths resolve. Call it first, or when a path is refused as outside the allowed directories. " +
      "What the policy denies inside them is not listed, and is refused when named.",
    inputSchema: { type: "object", properties: {}, additionalProperties: false },
    outputSchema: {
      type: "object",
      properties: {
        directories: {
          type: "array",
          items: {
            type: "object",
            properties: {
              path: { type: "string", description: "The directory (its real path)." },
              pattern: { type: "string", description: "The policy entry that allows it, as written (absolute; ** is everything below)." },
            },
            required: ["path", "pattern"],
            additionalProperties: false,
          },
        },
        relative_to: { type: "string", description: "The directory relative paths resolve against (told when it is allowed)." },
        relative_allowed: { type: "boolean", description: "Whether relative paths land in an allowed directory; when false, give absolute paths." },
      },
      required: ["directories"],
      additionalProperties: false,
    },
    annotations: { title: "List the allowed directories", readOnlyHint: true, openWorldHint: false },
  },
  {
    name: "list_directory",
    title: "List a directory",
    description:
      "List a directory the policy lets you read: each entry's name, kind (file, directory, symlink, other) and, for files, size. " +
      "Entries the policy denies are left out. Sorted by name; page with `offset`. A directory too large to list (about 600,000 entries) is refused.",
    inputSchema: {
      type: "object",
      properties: {
        path: readPath("The directory"),
        offset: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0, description: "Entries to skip (the previous page's next_offset)." },
        limit: { type: "integer", minimum: 1, maximum: LIMITS.listMax, default: LIMITS.listDefault, description: "Entries at most." },
      },
      required: ["path"],
      additionalProperties: false,
    },
    outputSchema: {
      type: "object",
      properties: {
        path: { type: "string" },
        entries: {
          type: "array",
          items: {
            type: "object",
            properties: { name: { type: "string" }, kind: { type: "string", enum: KINDS }, size: { type: "integer", minimum: 0 } },
            required: ["name", "kind"],
            additionalProperties: false,
          },
        },
        total: { type: "integer", minimum: 0 },
        next_offset: { type: "integer", minimum: 0, description: "Present when more entries follow." },
      },
      required: ["path", "entries", "total"],
      additionalProperties: false,
    },
    annotations: { title: "List a directory", readOnlyHint: true, openWorldHint: false },
  },
  {
    name: "read_file",
    title: "Read a file",
    description:
      "Read a file the policy lets you read, as UTF-8 text (default) or base64. Reads `length` bytes from `offset` " +
      `(default: the first ${LIMITS.readDefault / 1024} KiB; the policy caps one read); when more follows, \`next_offset\` says where to go on. ` +
      "A file that is not UTF-8 text is refused in text mode: read it with encoding base64. Text comes back as it is in the file " +
      "(copy old_text for edit_file from it), followed by a bracketed note when it is only a part of the file.",
    inputSchema: {
      type: "object",
      properties: {
        path: readPath("The file"),
        // Past 2^53 a number is no exact offset (1e308 was read as 0): refused by the schema, with its bound.
        offset: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0, description: "Byte offset to start at." },
        length: { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER, default: LIMITS.readDefault, description: "Bytes to read at most." },
        encoding: { type: "string", enum: ["utf8", "base64"], default: "utf8", description: "How the content is returned." },
      },
      required: ["path"],
      additionalProperties: false,
    },
    outputSchema: {
      type: "object",
      properties: {
        path: { type: "string" },
        size: { type: "integer", minimum: 0, description: "The file's size in bytes." },
        offset: { type: "integer", minimum: 0, description: "Where the content starts (moved past a split character in text mode)." },
        bytes: { type: "integer", minimum: 0, description: "Bytes of the file the content holds." },
        encoding: { type: "string", enum: ["utf8", "base64"] },
        content: { type: "string" },
        next_offset: { type: "integer", minimum: 0, description: "Present when the file goes on after this part." },
      },
      required: ["path", "size", "offset", "bytes", "encoding", "content"],
      additionalProperties: false,
    },
    annotations: { title: "Read a file", readOnlyHint: true, openWorldHint: false },
  },
  {
    name: "file_info",
    title: "File information",
    description: "The kind, size, modification time and permissions of a path the policy lets you read.",
    inputSchema: {
      type: "object",
      properties: { path: readPath("The file or directory") },
      required: ["path"],
      additionalProperties: false,
    },
    outputSchema: fileInfoOutput,
    annotations: { title: "File information", readOnlyHint: true, openWorldHint: false },
  },
  {
    name: "search_files",
    title: "Search files",
    description:
      "Find files under a directory by name (`pattern`, a glob matched against the path relative to `path`: `**/*.md`, `notes/*.txt`; " +
      "`*` stays within one directory, `**` crosses them; also ?, [a-z], {a,b}; case-sensitive) and, optionally, by content " +
      "(`contains`: lines holding this text, case-insensitive unless case_sensitive; the first " +
      `${LIMITS.grepBytes / (1024 * 1024)} MiB of each text file is read, less if the policy's read cap is lower). ` +
      "Names starting with a dot are skipped unless include_hidden, or the pattern names one (`.github/*.yml`). Entries the policy denies are neither listed nor entered; " +
      "symbolic links are listed, not followed. A search that nears its time limit returns what it found so far, with complete: false and stopped: time_limit.",
    inputSchema: {
      type: "object",
      properties: {
        path: readPath("The directory to search"),
        pattern: { type: "string", minLength: 1, maxLength: LIMITS.patternMax, default: "**", description: "A glob on the relative path." },
        contains: { type: "string", minLength: 1, maxLength: LIMITS.containsMax, description: "Text a matching file must hold." },
        case_sensitive: { type: "boolean", default: false },
        include_hidden: { type: "boolean", default: false, description: "Also match, and descend into, names that start with a dot." },
        max_depth: { type: "integer", minimum: 1, maximum: LIMITS.depthMax, default: LIMITS.depthDefault, description: "Directory levels to descend." },
        max_results: { type: "integer", minimum: 1, maximum: LIMITS.searchMax, default: LIMITS.searchDefault },
      },
      required: ["path"],
      additionalProperties: false,
    },
    outputSchema: {
      type: "object",
      properties: {
        path: { type: "string" },
        results: {
          type: "array",
          items: {
            type: "object",
            properties: {
              path: { type: "string", description: "Relative to the searched directory." },
              kind: { type: "string", enum: KINDS },
              matches: {
                type: "array",
                items: {
                  type: "object",
                  properties: { line: { type: "integer", minimum: 1 }, text: { type: "string" } },
                  required: ["line", "text"],
                  additionalProperties: false,
                },
              },
            },
            required: ["path", "kind"],
            additionalProperties: false,
          },
        },
        complete: {
          type: "boolean",
          description: "False when a limit (results, depth, entries looked at, the time limit, a directory too large to list) cut the search short.",
        },
        stopped: {
          type: "string",
          enum: ["max_results", "max_entries", "pattern_cost", "time_limit"],
          description: "Why the search stopped before it had looked everywhere; `time_limit`: the call's time was nearly up, and the results found so far are returned.",
        },
        note: { type: "string", description: "What cut the search short, and what it passed over (entries it could not read)." },
      },
      required: ["path", "results", "complete"],
      additionalProperties: false,
    },
    annotations: { title: "Search files", readOnlyHint: true, openWorldHint: false },
  },
  {
    name: "write_file",
    title: "Write a file",
    description:
      "Write UTF-8 text to a file the policy lets you write. `mode`: `create` (the default: fails if the file exists), " +
      "`overwrite` (replaces the file's content, all at once) or `append`. The parent directory must exist (see create_directory).",
    inputSchema: {
      type: "object",
      properties: {
        path: writePath("The file"),
        // The audit log records the content's size and SHA-256, not a second copy of it.
        content: { type: "string", "x-audit": "digest", description: "The text to write." },
        mode: { type: "string", enum: ["create", "overwrite", "append"], default: "create" },
      },
      required: ["path", "content"],
      additionalProperties: false,
    },
    outputSchema: {
      type: "object",
      properties: {
        path: { type: "string" },
        bytes_written: { type: "integer", minimum: 0 },
        size: { type: "integer", minimum: 0, description: "The file's size afterwards." },
        mode: { type: "string", enum: ["create", "overwrite", "append"] },
      },
      required: ["path", "bytes_written", "size", "mode"],
      additionalProperties: false,
    },
    annotations: { title: "Write a file", readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  },
  {
    name: "edit_file",
    title: "Edit a file",
    description:
      "Make exact text replacements in a UTF-8 file the policy lets you write, and see them as a unified diff. Each edit's `old_text` must occur " +
      "exactly once in the file (as the edits before it left it): copy it from read_file, with enough surrounding lines to be unique. " +
      "All edits are made or none; the file is replaced at once, and not at all if another program changes it while the edit runs. " +
      "`dry_run` shows the diff without writing. In a file whose line breaks are all `\\r\\n`, `\\n` in old_text and new_text means `\\r\\n`.",
    inputSchema: {
      type: "object",
      properties: {
        path: writePath("The file"),
        // The audit log records the edits' size and SHA-256, not a copy of the file's text.
        edits: {
          type: "array",
          minItems: 1,
          maxItems: LIMITS.editsMax,
          "x-audit": "digest",
          items: {
            type: "object",
            properties: {
              old_text: { type: "string", minLength: 1, description: "Text to replace, exactly as in the file; must occur once." },
              new_text: { type: "string", description: "The text to put in its place (empty: remove it)." },
            },
            required: ["old_text", "new_text"],
            additionalProperties: false,
          },
          description: "Replacements, made in order.",
        },
        dry_run: { type: "boolean", default: false, description: "Show the diff, write nothing." },
      },
      required: ["path", "edits"],
      additionalProperties: false,
    },
    outputSchema: {
      type: "object",
      properties: {
        path: { type: "string" },
        changed: { type: "boolean", description: "Whether the edits change the text (false: nothing to write)." },
        dry_run: { type: "boolean" },
        edits: { type: "integer", minimum: 1 },
        size: { type: "integer", minimum: 0, description: "The file's size in bytes after the edits." },
        diff: { type: "string", description: "Unified diff of the change (empty when nothing changed)." },
        diff_truncated: { type: "boolean", description: "Present when the diff was cut short." },
      },
      required: ["path", "changed", "dry_run", "edits", "size", "diff"],
      additionalProperties: false,
    },
    annotations: { title: "Edit a file", readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  },
  {
    name: "move_file",
    title: "Move or rename a file",
    description:
      "Move or rename a file, both paths ones the policy lets you write. Never replaces an existing file (fails instead), " +
      "moves only files of the server's own user without execute permission (not directories, links, hard-linked or executable files), " +
      "and stays on one file system (Linux only). The destination's directory must exist (see create_directory).",
    inputSchema: {
      type: "object",
      properties: {
        source: writePath("The file to move"),
        destination: writePath("Its new path, including the file name"),
      },
      required: ["source", "destination"],
      additionalProperties: false,
    },
    outputSchema: {
      type: "object",
      properties: {
        source: { type: "string", description: "The real path the file had." },
        destination: { type: "string", description: "The real path it has now." },
        size: { type: "integer", minimum: 0 },
      },
      required: ["source", "destination", "size"],
      additionalProperties: false,
    },
    annotations: { title: "Move or rename a file", readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  },
  {
    name: "create_directory",
    title: "Create a directory",
    description:
      `Create a directory the policy lets you write, and any missing parents (each checked by the policy; at most ${LIMITS.newDirectoriesMax} at once). ` +
      "An existing directory is fine.",
    inputSchema: {
      type: "object",
      properties: { path: writePath("The directory") },
      required: ["path"],
      additionalProperties: false,
    },
    outputSchema: {
      type: "object",
      properties: {
        path: { type: "string" },
        created: { type: "array", items: { type: "string" }, description: "The directories made, outermost first (empty when it existed)." },
      },
      required: ["path", "created"],
      additionalProperties: false,
    },
    annotations: { title: "Create a directory", readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  },
];
