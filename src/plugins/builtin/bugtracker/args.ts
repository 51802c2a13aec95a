/**
 * Reads tool arguments into typed inputs. The engine validates every call against
 * the tool's inputSchema first; this is the same contract checked again at the
 * plugin boundary (a plugin must not trust its caller), with messages that say
 * how to fix the call.
 */
import { ToolError, type JsonObject, type JsonValue } from "../../contract.js";
import { parseBugRef, type BugRef } from "./ids.js";
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
  VISIBLE_PATTERN,
  characterCount,
  isPriority,
  isRelationship,
  isStatus,
  type Priority,
  type Relationship,
  type Sort,
  type Status,
} from "./model.js";

const TAG_RE = new RegExp(TAG_PATTERN, "u");
const SINGLE_LINE_RE = new RegExp(SINGLE_LINE_PATTERN, "u");
const MULTILINE_RE = new RegExp(MULTILINE_PATTERN, "u");
const MULTILINE_NONBLANK_RE = new RegExp(MULTILINE_NONBLANK_PATTERN, "u");
const BUG_REF_RE = new RegExp(BUG_REF_PATTERN, "u");
const VISIBLE_RE = new RegExp(VISIBLE_PATTERN, "u");

function invalid(message: string): ToolError {
  return new ToolError(message, "INVALID_ARGUMENT");
}

function checkKeys(args: JsonObject, allowed: readonly string[]): void {
  for (const key of Object.keys(args)) {
    if (!allowed.includes(key)) throw invalid(`unknown argument "${key}"; this tool takes: ${allowed.join(", ")}`);
  }
}

function optional(args: JsonObject, key: string): JsonValue | undefined {
  const value = args[key];
  // A JSON null is treated as "not given", as clients often send it for optional fields.
  return value === null ? undefined : value;
}

/** Said of a required text with nothing to read in it. */
const NOTHING_VISIBLE =
  "has no visible character: spaces and characters that show nothing on their own (zero-width spaces and joiners, soft hyphens, bidi marks, combining marks without a letter) do not count";

/** A string of at most `max` characters matching `pattern`; `visible`: it must also show something. */
function text(args: JsonObject, key: string, max: number, pattern: RegExp, what: string, visible = false): string | undefined {
  const value = optional(args, key);
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw invalid(`"${key}" must be a string`);
  const length = characterCount(value);
  if (length > max) throw invalid(`"${key}" is ${length} characters long; the limit is ${max}`);
  if (visible && !VISIBLE_RE.test(value)) throw invalid(`"${key}" ${NOTHING_VISIBLE}`);
  if (!pattern.test(value)) throw invalid(`"${key}" ${what}`);
  return value;
}

function choice<T extends string>(args: JsonObject, key: string, values: readonly T[]): T | undefined {
  const value = optional(args, key);
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !(values as readonly string[]).includes(value)) {
    throw invalid(`"${key}" must be one of ${values.join(", ")}`);
  }
  return value as T;
}

function bool(args: JsonObject, key: string): boolean | undefined {
  const value = optional(args, key);
  if (value === undefined) return undefined;
  if (typeof value !== "boolean") throw invalid(`"${key}" must be true or false`);
  return value;
}

function bugRef(args: JsonObject, key: string): BugRef {
  const value = optional(args, key);
  if (value === undefined) throw invalid(`"${key}" is required: pass a bug id such as "BUG-12" (or the bug's 26-character uid)`);
  if (typeof value !== "string" || value.length > LIMITS.bugIdMax || !BUG_REF_RE.test(value.trim())) {
    throw invalid(`"${key}" must be a bug id such as "BUG-12" (or the bug's 26-character uid)`);
  }
  const ref = parseBugRef(value);
  if (ref === undefined) throw invalid(`"${key}" must be a bug id such as "BUG-12" (or the bug's 26-character uid)`);
  return ref;
}

/** Tags are trimmed, lower-cased, de-duplicated and sorted. */
function tagList(args: JsonObject, key: string, max: number): string[] | undefined {
  const value = optional(args, key);
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw invalid(`"${key}" must be an array of strings`);
  if (value.length > max) throw invalid(`"${key}" has ${value.length} items; the limit is ${max}`);
  const tags = new Set<string>();
  for (const item of value) {
    if (typeof item !== "string") throw invalid(`"${key}" must be an array of strings`);
    const tag = item.trim();
    if (tag.length === 0 || tag.length > LIMITS.tagMax || !TAG_RE.test(tag)) {
      throw invalid(
        `tag ${JSON.stringify(item.slice(0, 60))} is not valid: use 1 to ${LIMITS.tagMax} letters, digits and . _ : + - (starting with a letter or digit)`,
      );
    }
    tags.add(tag.toLowerCase());
  }
  return [...tags].sort();
}

function projectPath(args: JsonObject): string | undefined {
  const value = optional(args, "project_path");
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length === 0) throw invalid(`"project_path" must be a non-empty string`);
  if (characterCount(value) > LIMITS.pathMax) throw invalid(`"project_path" is longer than ${LIMITS.pathMax} characters`);
  return value;
}

function limit(args: JsonObject): number {
  const value = optional(args, "limit");
  if (value === undefined) return LIMITS.pageDefault;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > LIMITS.pageMax) {
    throw invalid(`"limit" must be a whole number from 1 to ${LIMITS.pageMax}`);
  }
  return value;
}

// What a text that shows something still broke (the visible character is checked first).
const TITLE_RULE = "must be one line, without control or bidi-override characters or half surrogate pairs";
const TEXT_RULE = "must not contain control characters other than tab and newline, bidi-override characters or half surrogate pairs";

/** A bug's title, trimmed; the same rules when it is reported (add_bug) and when it is corrected (update_bug). */
function title(args: JsonObject): string | undefined {
  return text(args, "title", LIMITS.titleMax, SINGLE_LINE_RE, TITLE_RULE, true)?.trim();
}

/** A bug's description, as given (it may be empty). */
function description(args: JsonObject): string | undefined {
  return text(args, "description", LIMITS.descriptionMax, MULTILINE_RE, TEXT_RULE);
}

// ---------------------------------------------------------------------------
// Per-tool inputs
// ---------------------------------------------------------------------------

export interface InitInput {
  projectPath: string | undefined;
}

export function parseInit(args: JsonObject): InitInput {
  checkKeys(args, ["project_path"]);
  return { projectPath: projectPath(args) };
}

export interface AddInput {
  projectPath: string | undefined;
  title: string;
  description: string;
  priority: Priority;
  tags: string[];
}

export function parseAdd(args: JsonObject): AddInput {
  checkKeys(args, ["title", "description", "priority", "tags", "project_path"]);
  const given = title(args);
  if (given === undefined) throw invalid(`"title" is required: a one-line summary of the bug (1 to ${LIMITS.titleMax} characters)`);
  return {
    projectPath: projectPath(args),
    title: given,
    description: description(args) ?? "",
    priority: choice(args, "priority", PRIORITIES) ?? "medium",
    tags: tagList(args, "tags", LIMITS.tagsMax) ?? [],
  };
}

export interface GetInput {
  projectPath: string | undefined;
  ref: BugRef;
  includeHistory: boolean;
}

export function parseGet(args: JsonObject): GetInput {
  checkKeys(args, ["bug_id", "project_path", "include_history"]);
  return { projectPath: projectPath(args), ref: bugRef(args, "bug_id"), includeHistory: bool(args, "include_history") ?? true };
}

export interface RelatedInput {
  ref: BugRef;
  relationship: Relationship;
}

export interface UpdateInput {
  projectPath: string | undefined;
  ref: BugRef;
  title: string | undefined;
  description: string | undefined;
  status: Status | undefined;
  priority: Priority | undefined;
  tags: string[] | undefined;
  related: RelatedInput[] | undefined;
  note: string | undefined;
}

function relatedList(args: JsonObject): RelatedInput[] | undefined {
  const value = optional(args, "related_bugs");
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw invalid(`"related_bugs" must be an array of {bug_id, relationship}`);
  if (value.length > LIMITS.relatedMax) throw invalid(`"related_bugs" has ${value.length} items; the limit is ${LIMITS.relatedMax}`);
  return value.map((item, index) => {
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      throw invalid(`related_bugs[${index}] must be an object {bug_id, relationship}`);
    }
    checkKeys(item, ["bug_id", "relationship"]);
    const relationship = item.relationship;
    if (!isRelationship(relationship)) throw invalid(`related_bugs[${index}].relationship must be one of ${RELATIONSHIPS.join(", ")}`);
    const ref = bugRef(item, "bug_id");
    return { ref, relationship };
  });
}

export function parseUpdate(args: JsonObject): UpdateInput {
  checkKeys(args, ["bug_id", "title", "description", "status", "priority", "tags", "related_bugs", "note", "project_path"]);
  const input: UpdateInput = {
    projectPath: projectPath(args),
    ref: bugRef(args, "bug_id"),
    title: title(args),
    description: description(args),
    status: choice(args, "status", STATUSES),
    priority: choice(args, "priority", PRIORITIES),
    tags: tagList(args, "tags", LIMITS.tagsMax),
    related: relatedList(args),
    note: text(args, "note", LIMITS.noteMax, MULTILINE_NONBLANK_RE, TEXT_RULE, true)?.trim(),
  };
  const changes = [input.title, input.description, input.status, input.priority, input.tags, input.related, input.note];
  if (changes.every((value) => value === undefined)) {
    throw invalid("nothing to update: pass at least one of title, description, status, priority, tags, related_bugs or note");
  }
  return input;
}

export interface CloseInput {
  projectPath: string | undefined;
  ref: BugRef;
  resolution: string | undefined;
}

export function parseClose(args: JsonObject): CloseInput {
  checkKeys(args, ["bug_id", "resolution", "project_path"]);
  return {
    projectPath: projectPath(args),
    ref: bugRef(args, "bug_id"),
    resolution: text(args, "resolution", LIMITS.noteMax, MULTILINE_NONBLANK_RE, TEXT_RULE, true)?.trim(),
  };
}

export interface ListInput {
  projectPath: string | undefined;
  status: Status | undefined;
  priority: Priority | undefined;
  tags: string[];
  query: string | undefined;
  sort: Sort;
  limit: number;
  cursor: string | undefined;
  includeHistory: boolean;
}

const LIST_KEYS = ["status", "priority", "tags", "query", "sort", "limit", "cursor", "include_history"] as const;

function parseListCommon(args: JsonObject): Omit<ListInput, "projectPath"> {
  const status = choice(args, "status", STATUSES);
  const priority = choice(args, "priority", PRIORITIES);
  const query = optional(args, "query");
  if (query !== undefined && (typeof query !== "string" || characterCount(query) > LIMITS.queryMax)) {
    throw invalid(`"query" must be a string of at most ${LIMITS.queryMax} characters`);
  }
  // SQLite cuts a MATCH expression at a NUL: control characters make no sense in a search anyway.
  // eslint-disable-next-line no-control-regex
  if (typeof query === "string" && /[\u0000-\u001f\u007f]/.test(query)) throw invalid(`"query" must not contain control characters`);
  const cursor = optional(args, "cursor");
  if (cursor !== undefined && (typeof cursor !== "string" || cursor.length === 0 || cursor.length > LIMITS.cursorMax)) {
    throw invalid(`"cursor" must be the next_cursor string of a previous page`);
  }
  const hasQuery = typeof query === "string" && query.trim().length > 0;
  // Newest first by default, also with a query: its first page walks an index whatever the size;
  // relevance must score every match first, so it is asked for explicitly.
  const sort = choice(args, "sort", SORTS) ?? "created_desc";
  if (sort === "relevance" && !hasQuery) throw invalid(`sort "relevance" needs a "query"; without one use created_desc, created_asc, updated_desc or priority`);
  return {
    status: isStatus(status) ? status : undefined,
    priority: isPriority(priority) ? priority : undefined,
    tags: tagList(args, "tags", LIMITS.filterTagsMax) ?? [],
    query: hasQuery ? query : undefined,
    sort,
    limit: limit(args),
    cursor: cursor,
    includeHistory: bool(args, "include_history") ?? false,
  };
}

export function parseList(args: JsonObject): ListInput {
  checkKeys(args, [...LIST_KEYS, "project_path"]);
  return { projectPath: projectPath(args), ...parseListCommon(args) };
}

export type SearchInput = Omit<ListInput, "projectPath">;

export function parseSearch(args: JsonObject): SearchInput {
  checkKeys(args, LIST_KEYS);
  return parseListCommon(args);
}
