/**
 * What the bug database's schema must hold at each version, and how a database differs
 * from it. A table, column, index or trigger dropped outside the server otherwise shows up
 * as SQLite's "no such table" on some call (an internal error to the client), or not at all:
 * without its triggers the search index and the append-only history silently stop holding.
 *
 * Names, kinds and columns are compared, not the SQL text: that text keeps the comments of
 * the migration that wrote it, and editing a comment must not make old databases "damaged".
 * What the migrations add beyond this list (an operator's own index or table, SQLite's
 * autoindexes and the FTS5 shadow tables) is not looked at.
 */
import type { SqliteDatabase } from "../../contract.js";

export interface SchemaObject {
  readonly type: "table" | "view" | "index" | "trigger";
  readonly name: string;
  /** The table an index or trigger belongs to (for a table or view: its own name). */
  readonly table: string;
  /** A table's columns (virtual tables too); not checked for views, which fail to describe once a table they read is gone. */
  readonly columns?: readonly string[];
}

const table = (name: string, columns: readonly string[]): SchemaObject => ({ type: "table", name, table: name, columns });
const on = (type: "index" | "trigger", table: string, names: readonly string[]): SchemaObject[] =>
  names.map((name) => ({ type, name, table }));

/** Version 1's objects. Version 2 rebuilt `history` with the same columns, index and triggers. */
const V1_OBJECTS: readonly SchemaObject[] = [
  table("projects", ["id", "project_id", "path", "name", "next_number", "created_at"]),
  table("bugs", ["id", "uid", "project", "number", "title", "description", "status", "priority", "created_at", "updated_at", "revision"]),
  table("bug_tags", ["bug", "tag"]),
  table("relations", ["bug", "other", "kind"]),
  table("history", ["id", "bug", "revision", "at", "field", "old_value", "new_value", "other_bug", "note", "call_id"]),
  table("bug_search", ["title", "description", "notes"]),
  { type: "view", name: "bug_search_source", table: "bug_search_source" },
  ...on("index", "bugs", [
    "bugs_project",
    "bugs_project_status",
    "bugs_project_priority",
    "bugs_project_status_priority",
    "bugs_project_updated",
    "bugs_status",
    "bugs_priority",
    "bugs_updated",
  ]),
  ...on("index", "bug_tags", ["bug_tags_tag"]),
  ...on("index", "history", ["history_bug"]),
  ...on("trigger", "bugs", ["bugs_search_insert", "bugs_search_update", "bugs_no_delete"]),
  ...on("trigger", "history", ["history_search_note", "history_no_change", "history_no_delete"]),
];

/** Index v - 1: the objects at schema version v. A test checks each against what the migrations make. */
const OBJECTS_BY_VERSION: readonly (readonly SchemaObject[])[] = [V1_OBJECTS, V1_OBJECTS];

/** The objects schema version `version` holds, or undefined for a version this code does not describe. */
export function expectedObjects(version: number): readonly SchemaObject[] | undefined {
  return Number.isInteger(version) && version >= 1 ? OBJECTS_BY_VERSION[version - 1] : undefined;
}

/**
 * What a database holds: each named object's kind and table, and the columns of the tables asked
 * about. Names are keys as `folded` makes them, tables and columns folded too.
 */
export interface ActualSchema {
  /** Tables, views and indexes, which share one namespace. */
  readonly objects: ReadonlyMap<string, { type: string; table: string }>;
  /** Triggers: SQLite keeps their names apart (a trigger may be named like a table), so they are looked up apart. */
  readonly triggers: ReadonlyMap<string, { type: string; table: string }>;
  /** Columns per table; a string when SQLite could not describe the table (its message). */
  readonly columns: ReadonlyMap<string, readonly string[] | string>;
}

/**
 * A name as SQLite compares names: ASCII letters without case (`BUGS_STATUS` is `bugs_status`).
 * sqlite_schema keeps the spelling an object was made with, so one made again by hand in other
 * case is the same object to SQLite, and must not be reported missing.
 */
function folded(name: string): string {
  return name.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

export type SchemaProblem =
  | { kind: "missing"; type: SchemaObject["type"]; name: string }
  | { kind: "missing-column"; table: string; column: string }
  | { kind: "wrong-type"; name: string; expected: SchemaObject["type"]; actual: string }
  | { kind: "wrong-table"; type: SchemaObject["type"]; name: string; expected: string; actual: string }
  | { kind: "unreadable"; name: string; reason: string };

/** Reads the objects and the columns of the expected tables (one pass over sqlite_schema, one pragma per table). */
export function readSchema(db: SqliteDatabase, expected: readonly SchemaObject[]): ActualSchema {
  const rows = db.prepare("SELECT type, name, tbl_name AS tbl FROM main.sqlite_schema").all() as { type: string; name: string; tbl: string }[];
  const objects = new Map<string, { type: string; table: string }>();
  const triggers = new Map<string, { type: string; table: string }>();
  for (const row of rows) (row.type === "trigger" ? triggers : objects).set(folded(row.name), { type: row.type, table: folded(row.tbl) });
  const columns = new Map<string, readonly string[] | string>();
  const describe = db.prepare("SELECT name FROM main.pragma_table_info(?)");
  for (const object of expected) {
    if (object.columns === undefined || objects.get(folded(object.name))?.type !== "table") continue;
    try {
      columns.set(object.name, (describe.all(object.name) as { name: string }[]).map((row) => folded(row.name)));
    } catch (error) {
      // A virtual table whose module cannot open it (its shadow tables damaged) says so here.
      // Only SQLITE_ERROR: busy, I/O and corruption keep their own reports.
      if ((error as { code?: unknown }).code !== "SQLITE_ERROR") throw error;
      columns.set(object.name, (error as Error).message);
    }
  }
  return { objects, triggers, columns };
}

/**
 * How `actual` falls short of `expected`, in the order `expected` lists objects. The indexes
 * and triggers of a missing table are not listed: dropping a table drops them with it.
 */
export function schemaProblems(expected: readonly SchemaObject[], actual: ActualSchema): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  const absent = new Set<string>();
  const attached = (object: SchemaObject) => object.type === "index" || object.type === "trigger";
  for (const object of expected.filter((item) => !attached(item))) {
    const problem = presence(object, actual);
    if (problem !== undefined) {
      problems.push(problem);
      absent.add(object.name);
      continue;
    }
    if (object.columns === undefined) continue;
    const columns = actual.columns.get(object.name) ?? [];
    if (typeof columns === "string") problems.push({ kind: "unreadable", name: object.name, reason: columns });
    else for (const column of object.columns) if (!columns.includes(folded(column))) problems.push({ kind: "missing-column", table: object.name, column });
  }
  for (const object of expected.filter((item) => attached(item) && !absent.has(item.table))) {
    const found = lookUp(object, actual);
    const problem = presence(object, actual);
    if (problem !== undefined) problems.push(problem);
    else if (found !== undefined && found.table !== folded(object.table)) {
      problems.push({ kind: "wrong-table", type: object.type, name: object.name, expected: object.table, actual: found.table });
    }
  }
  return problems;
}

/** What the database holds under this object's name, in its kind's namespace. */
function lookUp(object: SchemaObject, actual: ActualSchema): { type: string; table: string } | undefined {
  return (object.type === "trigger" ? actual.triggers : actual.objects).get(folded(object.name));
}

/** Whether an object of this name and kind exists. */
function presence(object: SchemaObject, actual: ActualSchema): SchemaProblem | undefined {
  const found = lookUp(object, actual);
  if (found === undefined) return { kind: "missing", type: object.type, name: object.name };
  if (found.type !== object.type) return { kind: "wrong-type", name: object.name, expected: object.type, actual: found.type };
  return undefined;
}

/** Problems named in a message; the rest are counted. */
const PROBLEMS_SHOWN = 5;

function problemText(problem: SchemaProblem): string {
  switch (problem.kind) {
    case "missing":
      return `${problem.type} \`${problem.name}\` is missing`;
    case "missing-column":
      return `column \`${problem.column}\` of table \`${problem.table}\` is missing`;
    case "wrong-type":
      return `\`${problem.name}\` is a ${problem.actual}, not a ${problem.expected}`;
    case "wrong-table":
      return `${problem.type} \`${problem.name}\` is on table \`${problem.actual}\`, not \`${problem.expected}\``;
    case "unreadable":
      return `table \`${problem.name}\` cannot be read (${problem.reason})`;
  }
}

/** The operator's message: what is wrong, that the file was left as it is, and what to do. */
export function describeSchemaDamage(version: number, problems: readonly SchemaProblem[]): string {
  const shown = problems.slice(0, PROBLEMS_SHOWN).map(problemText);
  const more = problems.length - shown.length;
  return (
    `the bug database (bugtracker.db in the server's state directory) was changed outside the server and no longer has ` +
    `the schema of its version ${version}: ${shown.join("; ")}${more > 0 ? ` (and ${more} more)` : ""}. ` +
    "It was left untouched (the server does not repair it): restore it from a backup, or move it aside to start an empty one."
  );
}
