/**
 * The bug tracker's tool definitions: names and arguments as in the seed, with
 * real constraints (the engine validates every call against them before the
 * plugin runs), honest annotations, and output schemas for structuredContent.
 */
import type { JsonObject, ToolDefinition } from "../../contract.js";
import {
  BUG_REF_PATTERN,
  LIMITS,
  MULTILINE_NONBLANK_PATTERN,
  MULTILINE_PATTERN,
  PRIORITIES,
  RELATIONSHIPS,
  SINGLE_LINE_PATTERN,
  SORTS,
  STATUSES,
  TAG_PATTERN,
} from "./model.js";

export const TOOL_NAMES = ["init_bugtracker", "add_bug", "get_bug", "update_bug", "close_bug", "list_bugs", "search_bugs_global"] as const;
export type ToolName = (typeof TOOL_NAMES)[number];

// --- input pieces ---------------------------------------------------------------

const projectPath: JsonObject = {
  type: "string",
  minLength: 1,
  maxLength: LIMITS.pathMax,
  "x-path": "read",
  description:
    "Path of the project directory (must be allowed by the policy): absolute, ~/..., or relative to the session's project. Default: the session's project (MCP_PROJECT_PATH or server.project_path).",
};

const bugId: JsonObject = {
  type: "string",
  minLength: 1,
  maxLength: LIMITS.bugIdMax,
  pattern: BUG_REF_PATTERN,
  description: 'The bug: "BUG-12" (case-insensitive) or its 26-character uid.',
};

const status: JsonObject = { type: "string", enum: [...STATUSES] };
const priority: JsonObject = { type: "string", enum: [...PRIORITIES] };

function tagArray(maxItems: number, description: string): JsonObject {
  return {
    type: "array",
    maxItems,
    items: { type: "string", minLength: 1, maxLength: LIMITS.tagMax, pattern: TAG_PATTERN },
    description,
  };
}

/** What the text patterns allow, in words: a refused value is explained with it. */
const MULTILINE_RULE = "no control characters but tabs and line breaks, no bidirectional overrides, no half surrogate pairs";
const VISIBLE_RULE = "at least one visible character (spaces, zero-width characters, soft hyphens and combining marks alone do not count)";

const note = (description: string): JsonObject => ({
  type: "string",
  minLength: 1,
  maxLength: LIMITS.noteMax,
  pattern: MULTILINE_NONBLANK_PATTERN,
  description: `${description} Needs ${VISIBLE_RULE}; ${MULTILINE_RULE}.`,
});

// The same rules when a bug is reported (add_bug) and when it is corrected (update_bug).
const title = (about: string): JsonObject => ({
  type: "string",
  minLength: 1,
  maxLength: LIMITS.titleMax,
  pattern: SINGLE_LINE_PATTERN,
  description: `${about}: ${VISIBLE_RULE}; no line breaks, control characters, bidirectional overrides or half surrogate pairs.`,
});
const description = (about: string): JsonObject => ({
  type: "string",
  maxLength: LIMITS.descriptionMax,
  pattern: MULTILINE_PATTERN,
  description: `${about}; ${MULTILINE_RULE}.`,
});

const listFilters: Record<string, JsonObject> = {
  status: { ...status, description: "Only bugs with this status." },
  priority: { ...priority, description: "Only bugs with this priority." },
  tags: tagArray(LIMITS.filterTagsMax, "Only bugs that have all of these tags (case-insensitive)."),
  query: {
    type: "string",
    maxLength: LIMITS.queryMax,
    description:
      "Full-text search in titles, descriptions and notes. Every word must match (English stemming: 'crash' finds 'crashes'); a trailing * searches a prefix. Operators and punctuation are plain text.",
  },
  sort: {
    type: "string",
    enum: [...SORTS],
    description: "created_desc (default), created_asc, updated_desc, priority (critical first), relevance (best match first; needs a query, and costs more on large trackers).",
  },
  limit: { type: "integer", minimum: 1, maximum: LIMITS.pageMax, description: `Bugs per page (default ${LIMITS.pageDefault}).` },
  cursor: {
    type: "string",
    minLength: 1,
    maxLength: LIMITS.cursorMax,
    description: "next_cursor from the previous page, with the same other arguments.",
  },
  include_history: { type: "boolean", description: "Include each bug's change history (default false)." },
};

function input(properties: Record<string, JsonObject>, required: string[] = []): JsonObject {
  const schema: JsonObject = { type: "object", properties, additionalProperties: false };
  if (required.length > 0) schema.required = required;
  return schema;
}

// --- output pieces --------------------------------------------------------------

const str: JsonObject = { type: "string" };
const change: JsonObject = { type: "object", required: ["from", "to"], properties: { from: str, to: str }, additionalProperties: false };

const changes: JsonObject = {
  type: "object",
  properties: {
    title: change,
    description: change,
    status: change,
    priority: change,
    tags: {
      type: "object",
      required: ["added", "removed"],
      properties: { added: { type: "array", items: str }, removed: { type: "array", items: str } },
      additionalProperties: false,
    },
    related_bugs: {
      type: "array",
      items: {
        type: "object",
        required: ["bug_id"],
        properties: { bug_id: str, from: { type: "string", enum: [...RELATIONSHIPS] }, to: { type: "string", enum: [...RELATIONSHIPS] } },
        additionalProperties: false,
      },
    },
  },
  additionalProperties: false,
};

const historyEntry: JsonObject = {
  type: "object",
  required: ["revision", "at", "changes"],
  properties: {
    revision: { type: "integer", minimum: 1 },
    at: { type: "string", description: "ISO 8601 time (UTC)." },
    changes,
    note: str,
    call_id: { type: "string", description: "The call that made the change, as in the audit log." },
  },
  additionalProperties: false,
};

const bug: JsonObject = {
  type: "object",
  required: ["bug_id", "uid", "project_id", "title", "description", "status", "priority", "tags", "related_bugs", "created_at", "updated_at", "revision"],
  properties: {
    bug_id: { type: "string", description: "BUG-n, unique within the project and never reused." },
    uid: { type: "string", description: "A ULID, unique across projects." },
    project_id: str,
    project_path: str,
    title: str,
    description: str,
    status,
    priority,
    tags: { type: "array", items: str },
    related_bugs: {
      type: "array",
      items: {
        type: "object",
        required: ["bug_id", "relationship"],
        properties: { bug_id: str, relationship: { type: "string", enum: [...RELATIONSHIPS] } },
        additionalProperties: false,
      },
    },
    created_at: str,
    updated_at: str,
    revision: { type: "integer", minimum: 0, description: "Number of updates so far." },
    history: { type: "array", items: historyEntry, description: "The newest 100 revisions at most, oldest first." },
    history_omitted: { type: "integer", minimum: 1, description: "Older revisions not shown (present only when some are left out)." },
  },
  additionalProperties: false,
};

function output(properties: Record<string, JsonObject>, required: string[]): JsonObject {
  return { type: "object", required, properties, additionalProperties: false };
}

const pageOutput = (extra: Record<string, JsonObject>, extraRequired: string[]): JsonObject =>
  output(
    {
      ...extra,
      bugs: { type: "array", items: bug },
      count: { type: "integer", minimum: 0, description: "Bugs on this page." },
      has_more: { type: "boolean" },
      next_cursor: { type: "string", description: "Pass as cursor to get the next page; absent on the last page." },
    },
    [...extraRequired, "bugs", "count", "has_more"],
  );

// --- the tools ------------------------------------------------------------------

const closedWorld = { openWorldHint: false } as const;

export const TOOLS: readonly ToolDefinition[] = [
  {
    name: "init_bugtracker",
    title: "Start tracking bugs for a project",
    description:
      "Registers a project directory with the bug tracker (idempotent) and returns its project_id. Bugs are stored in the server's own database, nothing is written into the project.",
    inputSchema: input({ project_path: projectPath }),
    outputSchema: output(
      {
        status: { type: "string", enum: ["ready"] },
        project_id: str,
        project_path: str,
        created: { type: "boolean", description: "true when this call registered the project." },
        bug_count: { type: "integer", minimum: 0 },
        next_bug_id: str,
      },
      ["status", "project_id", "project_path", "created", "bug_count", "next_bug_id"],
    ),
    annotations: { title: "Start tracking bugs", readOnlyHint: false, destructiveHint: false, idempotentHint: true, ...closedWorld },
  },
  {
    name: "add_bug",
    title: "Report a bug",
    description: "Creates an open bug in the project and returns it with its id (BUG-n).",
    inputSchema: input(
      {
        title: title("One-line summary"),
        description: description("Details, steps to reproduce"),
        priority: { ...priority, default: "medium" },
        tags: tagArray(LIMITS.tagsMax, "Labels (letters, digits and . _ : + -), stored lower-case."),
        project_path: projectPath,
      },
      ["title"],
    ),
    outputSchema: output({ message: str, bug }, ["message", "bug"]),
    annotations: { title: "Report a bug", readOnlyHint: false, destructiveHint: false, idempotentHint: false, ...closedWorld },
  },
  {
    name: "get_bug",
    title: "Show a bug",
    description: "Returns one bug of the project, with its history unless include_history is false.",
    inputSchema: input(
      { bug_id: bugId, project_path: projectPath, include_history: { type: "boolean", description: "Include the change history (default true)." } },
      ["bug_id"],
    ),
    outputSchema: output({ bug }, ["bug"]),
    annotations: { title: "Show a bug", readOnlyHint: true, destructiveHint: false, idempotentHint: true, ...closedWorld },
  },
  {
    name: "update_bug",
    title: "Update a bug",
    description:
      "Changes a bug's title, description, status, priority, tags (replaces the set) or related bugs (replaces the set; the other bug gets the reciprocal link), and/or adds a note. " +
      "Status moves: open -> in_progress/resolved/closed; in_progress -> open/resolved/closed; resolved -> closed/open; closed -> open. " +
      "Only real changes are recorded in the history.",
    inputSchema: input(
      {
        bug_id: bugId,
        title: title("A corrected one-line summary"),
        description: description("A corrected description (replaces the current one; may be empty)"),
        status,
        priority,
        tags: tagArray(LIMITS.tagsMax, "The new full set of tags (replaces the current one)."),
        related_bugs: {
          type: "array",
          maxItems: LIMITS.relatedMax,
          description: "The new full set of links from this bug (replaces the current one); each bug must exist in the same project.",
          items: {
            type: "object",
            required: ["bug_id", "relationship"],
            properties: { bug_id: bugId, relationship: { type: "string", enum: [...RELATIONSHIPS] } },
            additionalProperties: false,
          },
        },
        note: note("A comment to add to the history (searchable)."),
        project_path: projectPath,
      },
      ["bug_id"],
    ),
    outputSchema: output(
      {
        message: str,
        changed: { type: "boolean", description: "false when the bug already had every value given." },
        changes,
        bug,
      },
      ["message", "changed", "bug"],
    ),
    // Nothing is lost: every change (including removed tags and links) stays in the history.
    annotations: { title: "Update a bug", readOnlyHint: false, destructiveHint: false, idempotentHint: false, ...closedWorld },
  },
  {
    name: "close_bug",
    title: "Close a bug",
    description: "Closes a bug (from any other status); the resolution is recorded as a note. Closing a closed bug is an error.",
    inputSchema: input({ bug_id: bugId, resolution: note("How the bug was resolved."), project_path: projectPath }, ["bug_id"]),
    outputSchema: output({ message: str, bug }, ["message", "bug"]),
    annotations: { title: "Close a bug", readOnlyHint: false, destructiveHint: false, idempotentHint: true, ...closedWorld },
  },
  {
    name: "list_bugs",
    title: "List a project's bugs",
    description:
      "Lists the project's bugs, newest first by default, with filters (status, priority, all-of tags), full-text search (query) and pages (limit, cursor). " +
      "A project with no bugs yet gives an empty list.",
    inputSchema: input({ ...listFilters, project_path: projectPath }),
    outputSchema: pageOutput(
      {
        project_id: str,
        project_path: str,
        note: { type: "string", description: "Present when no bug has been reported in the project yet (the list is then empty)." },
      },
      ["project_id", "project_path"],
    ),
    annotations: { title: "List bugs", readOnlyHint: true, destructiveHint: false, idempotentHint: true, ...closedWorld },
  },
  {
    name: "search_bugs_global",
    title: "Search bugs in all projects",
    description:
      "Like list_bugs, across every registered project that the policy still allows (others are left out and counted). Each bug carries its project_id and project_path.",
    inputSchema: input(listFilters),
    outputSchema: pageOutput(
      { excluded_projects: { type: "integer", minimum: 0, description: "Registered projects left out because the policy denies them." } },
      ["excluded_projects"],
    ),
    annotations: { title: "Search all projects", readOnlyHint: true, destructiveHint: false, idempotentHint: true, ...closedWorld },
  },
];
