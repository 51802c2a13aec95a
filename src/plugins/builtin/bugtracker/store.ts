/**
 * All SQL of the bug tracker. Statements are prepared once per connection (fixed
 * ones in the constructor, page queries on first use, keyed by their text). The
 * store does not open transactions on its own: callers group a whole tool call in
 * `read` (one snapshot) or `write` (BEGIN IMMEDIATE: the write lock is taken before
 * anything is read, so two processes serialize and no update is lost).
 */
import type { SqliteDatabase } from "../../contract.js";
import { formatBugId, makeUlid } from "./ids.js";
import { RECIPROCAL, priorityOfRank, priorityRank, type Priority, type Relationship, type Sort, type Status } from "./model.js";
import type { CursorKeys } from "./cursor.js";
import { assertNotNewer, assertSchemaIntact } from "./migrations.js";
import type { UpdatePlan } from "./update-plan.js";

// Statements take positional or named parameters; the type comes through the contract's database type.
const prepare = (db: SqliteDatabase, source: string) => db.prepare<unknown[]>(source);
type Statement = ReturnType<typeof prepare>;

export interface ProjectRow {
  id: number;
  project_id: string;
  path: string;
  name: string;
  next_number: number;
  created_at: number;
}

export interface BugRow {
  id: number;
  uid: string;
  project: number;
  number: number;
  title: string;
  description: string;
  status: Status;
  priority: number;
  created_at: number;
  updated_at: number;
  revision: number;
}

export interface PageRow extends BugRow {
  /** bm25 rank (lower is better); only with a full-text query. */
  score?: number;
}

export interface NewBug {
  title: string;
  description: string;
  priority: Priority;
  tags: readonly string[];
}

export interface PageQuery {
  /** A project's row id; absent: every project (global search). */
  project?: number;
  /** Project row ids to leave out (global search only). */
  excludeProjects?: readonly number[];
  status?: Status;
  priority?: Priority;
  /** All of these tags (already normalized). */
  tags: readonly string[];
  /** A MATCH expression from buildFtsQuery. */
  match?: string;
  sort: Sort;
  /** Keys of the last row of the previous page. */
  after?: CursorKeys;
  limit: number;
}

export interface Page {
  rows: PageRow[];
  hasMore: boolean;
}

// --- JSON views ---------------------------------------------------------------

export type ChangeView = { from: string; to: string };
export type RelatedChangeView = { bug_id: string; from?: string; to?: string };
export type ChangesView = {
  title?: ChangeView;
  description?: ChangeView;
  status?: ChangeView;
  priority?: ChangeView;
  tags?: { added: string[]; removed: string[] };
  related_bugs?: RelatedChangeView[];
};
export type HistoryEntryView = { revision: number; at: string; changes: ChangesView; note?: string; call_id?: string };
export type RelatedView = { bug_id: string; relationship: Relationship };
export type BugView = {
  bug_id: string;
  uid: string;
  project_id: string;
  project_path?: string;
  title: string;
  description: string;
  status: Status;
  priority: Priority;
  tags: string[];
  related_bugs: RelatedView[];
  created_at: string;
  updated_at: string;
  revision: number;
  history?: HistoryEntryView[];
  /** Older revisions left out of `history` (see HISTORY_REVISIONS_SHOWN). */
  history_omitted?: number;
};

export interface ViewOptions {
  history: boolean;
  /** Include each bug's project path (global search, where bugs come from several projects). */
  projectPath: boolean;
}

interface HistoryRow {
  bug: number;
  revision: number;
  at: number;
  field: "title" | "description" | "status" | "priority" | "tag" | "related" | "note";
  old_value: string | null;
  new_value: string | null;
  other_number: number | null;
  note: string | null;
  call_id: string | null;
}

export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

export interface StoreOptions {
  now: () => number;
  random: (size: number) => Uint8Array;
}

export class BugStore {
  private readonly db: SqliteDatabase;
  private readonly now: () => number;
  private readonly random: (size: number) => Uint8Array;
  private readonly readTx: (fn: () => unknown) => unknown;
  private readonly writeTx: { immediate: (fn: () => unknown) => unknown };
  private readonly pageStatements = new Map<string, Statement>();
  /** The schema cookie at the last whole-schema check. */
  private checkedSchema: number | undefined;
  private readonly sql: Record<
    | "versions"
    | "projectByPath"
    | "projectById"
    | "allProjects"
    | "insertProject"
    | "bumpNumber"
    | "insertBug"
    | "insertTag"
    | "deleteTag"
    | "bugByNumber"
    | "bugByUid"
    | "bugById"
    | "tagsOf"
    | "relatedOf"
    | "touchBug"
    | "setStatusPriority"
    | "setText"
    | "upsertRelation"
    | "deleteRelation"
    | "insertHistory"
    | "tagsFor"
    | "relatedFor"
    | "historyFor",
    Statement
  >;

  constructor(db: SqliteDatabase, options: StoreOptions) {
    this.db = db;
    this.now = options.now;
    this.random = options.random;
    // Each transaction first checks that no newer server has migrated the database since this
    // connection opened (it would then be read or written by code that does not know its schema),
    // and, whenever SQLite's schema cookie moved (a table, column, index or trigger changed; also
    // on the first transaction), that the schema is still whole: a trigger dropped by another
    // process meanwhile would otherwise go unnoticed, and the search index stop following.
    const checked = (fn: () => unknown) => {
      const versions = this.sql.versions.get() as { user_version: number; schema_version: number };
      assertNotNewer(versions.user_version);
      if (versions.schema_version !== this.checkedSchema) {
        assertSchemaIntact(db, versions.user_version);
        this.checkedSchema = versions.schema_version;
      }
      return fn();
    };
    const readTx = db.transaction(checked);
    this.readTx = (fn) => readTx.deferred(fn);
    this.writeTx = db.transaction(checked);
    const p = (source: string): Statement => prepare(db, source);
    this.sql = {
      versions: p("SELECT user_version, schema_version FROM pragma_user_version, pragma_schema_version"),
      projectByPath: p("SELECT * FROM projects WHERE path = ?"),
      projectById: p("SELECT * FROM projects WHERE id = ?"),
      allProjects: p("SELECT * FROM projects ORDER BY id"),
      insertProject: p(
        "INSERT INTO projects (project_id, path, name, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (path) DO NOTHING",
      ),
      bumpNumber: p("UPDATE projects SET next_number = next_number + 1 WHERE id = ? RETURNING next_number - 1 AS number"),
      insertBug: p(
        `INSERT INTO bugs (uid, project, number, title, description, status, priority, created_at, updated_at, revision)
         VALUES (@uid, @project, @number, @title, @description, 'open', @priority, @now, @now, 0) RETURNING *`,
      ),
      insertTag: p("INSERT INTO bug_tags (bug, tag) VALUES (?, ?)"),
      deleteTag: p("DELETE FROM bug_tags WHERE bug = ? AND tag = ?"),
      bugByNumber: p("SELECT * FROM bugs WHERE project = ? AND number = ?"),
      bugByUid: p("SELECT * FROM bugs WHERE project = ? AND uid = ?"),
      bugById: p("SELECT * FROM bugs WHERE id = ?"),
      tagsOf: p("SELECT tag FROM bug_tags WHERE bug = ? ORDER BY tag"),
      relatedOf: p("SELECT other, kind FROM relations WHERE bug = ?"),
      touchBug: p("UPDATE bugs SET revision = revision + 1, updated_at = ? WHERE id = ? RETURNING revision"),
      setStatusPriority: p("UPDATE bugs SET status = ?, priority = ? WHERE id = ?"),
      // A trigger re-indexes the bug for full-text search when either changes.
      setText: p("UPDATE bugs SET title = ?, description = ? WHERE id = ?"),
      upsertRelation: p(
        "INSERT INTO relations (bug, other, kind) VALUES (?, ?, ?) ON CONFLICT (bug, other) DO UPDATE SET kind = excluded.kind",
      ),
      deleteRelation: p("DELETE FROM relations WHERE bug = ? AND other = ?"),
      insertHistory: p(
        `INSERT INTO history (bug, revision, at, field, old_value, new_value, other_bug, note, call_id)
         VALUES (@bug, @revision, @at, @field, @old, @new, @other, @note, @call)`,
      ),
      tagsFor: p("SELECT bug, tag FROM bug_tags WHERE bug IN (SELECT value FROM json_each(?)) ORDER BY bug, tag"),
      relatedFor: p(
        `SELECT r.bug AS bug, r.kind AS kind, o.number AS number FROM relations r JOIN bugs o ON o.id = r.other
         WHERE r.bug IN (SELECT value FROM json_each(?)) ORDER BY r.bug, o.number`,
      ),
      // The newest HISTORY_REVISIONS_SHOWN revisions of each bug (revisions run 1..bugs.revision).
      historyFor: p(
        `SELECT h.bug, h.revision, h.at, h.field, h.old_value, h.new_value, o.number AS other_number, h.note, h.call_id
         FROM history h JOIN bugs b ON b.id = h.bug LEFT JOIN bugs o ON o.id = h.other_bug
         WHERE h.bug IN (SELECT value FROM json_each(?)) AND h.revision > b.revision - ${HISTORY_REVISIONS_SHOWN} ORDER BY h.bug, h.id`,
      ),
    };
  }

  /** Runs `fn` in one read snapshot. */
  read<T>(fn: () => T): T {
    return this.readTx(fn) as T;
  }

  /** Runs `fn` in one write transaction, taking the write lock first (BEGIN IMMEDIATE). */
  write<T>(fn: () => T): T {
    return this.writeTx.immediate(fn) as T;
  }

  // --- projects -----------------------------------------------------------------

  findProjectByPath(path: string): ProjectRow | undefined {
    return this.sql.projectByPath.get(path) as ProjectRow | undefined;
  }

  allProjects(): ProjectRow[] {
    return this.sql.allProjects.all() as ProjectRow[];
  }

  /** Registers a project (no-op when known). Needs a write transaction. */
  registerProject(path: string, name: string, projectId: string): { project: ProjectRow; created: boolean } {
    const result = this.sql.insertProject.run(projectId, path, name, this.now());
    const project = this.findProjectByPath(path);
    if (project === undefined) throw new Error("project row vanished inside its own transaction");
    return { project, created: result.changes > 0 };
  }

  // --- bugs ---------------------------------------------------------------------

  /** Adds a bug with the project's next number. Needs a write transaction. */
  insertBug(project: ProjectRow, bug: NewBug): BugRow {
    const bumped = this.sql.bumpNumber.get(project.id) as { number: number } | undefined;
    if (bumped === undefined) throw new Error(`project ${project.project_id} vanished inside its own transaction`);
    const now = this.now();
    const row = this.sql.insertBug.get({
      uid: makeUlid(now, this.random(10)),
      project: project.id,
      number: bumped.number,
      title: bug.title,
      description: bug.description,
      priority: priorityRank(bug.priority),
      now,
    }) as BugRow;
    for (const tag of bug.tags) this.sql.insertTag.run(row.id, tag);
    return row;
  }

  findByNumber(project: number, number: number): BugRow | undefined {
    return this.sql.bugByNumber.get(project, number) as BugRow | undefined;
  }

  findByUid(project: number, uid: string): BugRow | undefined {
    return this.sql.bugByUid.get(project, uid) as BugRow | undefined;
  }

  bugById(id: number): BugRow | undefined {
    return this.sql.bugById.get(id) as BugRow | undefined;
  }

  tagsOf(bug: number): string[] {
    return (this.sql.tagsOf.all(bug) as { tag: string }[]).map((row) => row.tag);
  }

  relatedOf(bug: number): Map<number, Relationship> {
    const rows = this.sql.relatedOf.all(bug) as { other: number; kind: Relationship }[];
    return new Map(rows.map((row) => [row.other, row.kind]));
  }

  /**
   * Writes a non-empty plan: one history row per change, the reciprocal side of
   * every link change on the other bug (with its own history row), all under the
   * caller's write transaction. Returns the updated row.
   */
  applyPlan(bug: BugRow, plan: UpdatePlan, callId: string | undefined): BugRow {
    const at = this.now();
    const revision = (this.sql.touchBug.get(at, bug.id) as { revision: number }).revision;
    const history = (field: HistoryRow["field"], old: string | null, next: string | null, other: number | null, note: string | null) =>
      this.sql.insertHistory.run({ bug: bug.id, revision, at, field, old, new: next, other, note, call: callId ?? null });

    if (plan.title !== undefined || plan.description !== undefined) {
      this.sql.setText.run(plan.title?.to ?? bug.title, plan.description?.to ?? bug.description, bug.id);
    }
    if (plan.title !== undefined) history("title", plan.title.from, plan.title.to, null, null);
    if (plan.description !== undefined) history("description", plan.description.from, plan.description.to, null, null);
    const status = plan.status?.to ?? bug.status;
    const priority = plan.priority?.to ?? priorityOfRank(bug.priority);
    if (plan.status !== undefined || plan.priority !== undefined) this.sql.setStatusPriority.run(status, priorityRank(priority), bug.id);
    if (plan.status !== undefined) history("status", plan.status.from, plan.status.to, null, null);
    if (plan.priority !== undefined) history("priority", plan.priority.from, plan.priority.to, null, null);
    for (const tag of plan.tagsRemoved) {
      this.sql.deleteTag.run(bug.id, tag);
      history("tag", tag, null, null, null);
    }
    for (const tag of plan.tagsAdded) {
      this.sql.insertTag.run(bug.id, tag);
      history("tag", null, tag, null, null);
    }
    for (const change of plan.related) {
      const back = { from: change.from && RECIPROCAL[change.from], to: change.to && RECIPROCAL[change.to] };
      if (change.to === undefined) {
        this.sql.deleteRelation.run(bug.id, change.other);
        this.sql.deleteRelation.run(change.other, bug.id);
      } else {
        this.sql.upsertRelation.run(bug.id, change.other, change.to);
        this.sql.upsertRelation.run(change.other, bug.id, RECIPROCAL[change.to]);
      }
      history("related", change.from ?? null, change.to ?? null, change.other, null);
      // The other bug changed too: it gets its own revision and history row.
      const otherRevision = (this.sql.touchBug.get(at, change.other) as { revision: number }).revision;
      this.sql.insertHistory.run({
        bug: change.other,
        revision: otherRevision,
        at,
        field: "related",
        old: back.from ?? null,
        new: back.to ?? null,
        other: bug.id,
        note: null,
        call: callId ?? null,
      });
    }
    if (plan.note !== undefined) history("note", null, null, null, plan.note);
    const updated = this.bugById(bug.id);
    if (updated === undefined) throw new Error("bug row vanished inside its own transaction");
    return updated;
  }

  // --- pages --------------------------------------------------------------------

  /** One page in keyset order: reads at most limit + 1 rows along an index. */
  page(query: PageQuery): Page {
    const { sql, params } = pageSql(query);
    let statement = this.pageStatements.get(sql);
    if (statement === undefined) {
      statement = prepare(this.db, sql);
      this.pageStatements.set(sql, statement);
    }
    const rows = statement.all(params) as PageRow[];
    const hasMore = rows.length > query.limit;
    if (hasMore) rows.length = query.limit;
    return { rows, hasMore };
  }

  /** Number of distinct page statements prepared so far (for tests). */
  get cachedPageStatements(): number {
    return this.pageStatements.size;
  }

  // --- views --------------------------------------------------------------------

  views(rows: readonly BugRow[], projects: ReadonlyMap<number, ProjectRow>, options: ViewOptions): BugView[] {
    if (rows.length === 0) return [];
    const ids = JSON.stringify(rows.map((row) => row.id));
    const tags = groupBy(this.sql.tagsFor.all(ids) as { bug: number; tag: string }[]);
    const related = groupBy(this.sql.relatedFor.all(ids) as { bug: number; kind: Relationship; number: number }[]);
    const history = options.history ? groupBy(this.sql.historyFor.all(ids) as HistoryRow[]) : undefined;
    return rows.map((row) => {
      const project = projects.get(row.project);
      if (project === undefined) throw new Error(`bug ${row.id} belongs to an unknown project row ${row.project}`);
      const view: BugView = {
        bug_id: formatBugId(row.number),
        uid: row.uid,
        project_id: project.project_id,
        title: row.title,
        description: row.description,
        status: row.status,
        priority: priorityOfRank(row.priority),
        tags: (tags.get(row.id) ?? []).map((item) => item.tag),
        related_bugs: (related.get(row.id) ?? []).map((item) => ({ bug_id: formatBugId(item.number), relationship: item.kind })),
        created_at: isoTime(row.created_at),
        updated_at: isoTime(row.updated_at),
        revision: row.revision,
      };
      if (options.projectPath) view.project_path = project.path;
      if (history !== undefined) {
        view.history = historyView(history.get(row.id) ?? []);
        if (row.revision > HISTORY_REVISIONS_SHOWN) view.history_omitted = row.revision - HISTORY_REVISIONS_SHOWN;
      }
      return view;
    });
  }
}

function groupBy<T extends { bug: number }>(rows: readonly T[]): Map<number, T[]> {
  const map = new Map<number, T[]>();
  for (const row of rows) {
    const list = map.get(row.bug);
    if (list === undefined) map.set(row.bug, [row]);
    else list.push(row);
  }
  return map;
}

/**
 * Revisions of a bug's history shown at most, the newest: a bug updated every minute for a day
 * would otherwise answer every get_bug (and a list page with include_history, per bug) with all
 * of them. The older ones stay in the database; `history_omitted` says how many are not shown.
 */
export const HISTORY_REVISIONS_SHOWN = 100;

/** Groups one bug's history rows (in id order) into one entry per revision. */
export function historyView(rows: readonly HistoryRow[]): HistoryEntryView[] {
  const entries: HistoryEntryView[] = [];
  let current: HistoryEntryView | undefined;
  for (const row of rows) {
    if (current === undefined || current.revision !== row.revision) {
      current = { revision: row.revision, at: isoTime(row.at), changes: {} };
      if (row.call_id !== null) current.call_id = row.call_id;
      entries.push(current);
    }
    const changes = current.changes;
    switch (row.field) {
      case "title":
      case "description":
      case "status":
      case "priority":
        changes[row.field] = { from: row.old_value ?? "", to: row.new_value ?? "" };
        break;
      case "tag": {
        changes.tags ??= { added: [], removed: [] };
        if (row.new_value !== null) changes.tags.added.push(row.new_value);
        if (row.old_value !== null) changes.tags.removed.push(row.old_value);
        break;
      }
      case "related": {
        const change: RelatedChangeView = { bug_id: row.other_number === null ? "unknown" : formatBugId(row.other_number) };
        if (row.old_value !== null) change.from = row.old_value;
        if (row.new_value !== null) change.to = row.new_value;
        (changes.related_bugs ??= []).push(change);
        break;
      }
      case "note":
        if (row.note !== null) current.note = row.note;
        break;
    }
  }
  return entries;
}

// --- page SQL -------------------------------------------------------------------

/**
 * Builds the page query. Every variant filters with equality on indexed columns
 * and orders along an index (or FTS5's rowid order), so a page reads about
 * `limit` rows whatever the table size; relevance order is the exception (FTS5
 * ranks every match of the query before the first row).
 */
export function pageSql(query: PageQuery): { sql: string; params: Record<string, string | number> } {
  const params: Record<string, string | number> = { limit: query.limit + 1 };
  const where: string[] = [];
  const fts = query.match !== undefined;
  // With a full-text query the FTS table drives the loop (CROSS JOIN fixes the order).
  const from = fts ? "bug_search f CROSS JOIN bugs b ON b.id = f.rowid" : "bugs b";
  const select = fts ? "b.*, f.rank AS score" : "b.*";
  if (fts) {
    where.push("bug_search MATCH @match");
    params.match = query.match ?? "";
  }
  if (query.project !== undefined) {
    where.push("b.project = @project");
    params.project = query.project;
  }
  if (query.excludeProjects !== undefined && query.excludeProjects.length > 0) {
    where.push("b.project NOT IN (SELECT value FROM json_each(@excluded))");
    params.excluded = JSON.stringify(query.excludeProjects);
  }
  if (query.status !== undefined) {
    where.push("b.status = @status");
    params.status = query.status;
  }
  if (query.priority !== undefined) {
    where.push("b.priority = @priority");
    params.priority = priorityRank(query.priority);
  }
  query.tags.forEach((tag, index) => {
    where.push(`EXISTS (SELECT 1 FROM bug_tags t WHERE t.bug = b.id AND t.tag = @tag${index})`);
    params[`tag${index}`] = tag;
  });

  const id = fts ? "f.rowid" : "b.id";
  const after = query.after;
  const key = (index: number): number => {
    const value = after?.[index];
    if (value === undefined) throw new RangeError("cursor keys do not fit the sort");
    return value;
  };
  let order: string;
  switch (query.sort) {
    case "created_desc":
      order = `${id} DESC`;
      if (after) {
        where.push(`${id} < @k0`);
        params.k0 = key(0);
      }
      break;
    case "created_asc":
      order = `${id} ASC`;
      if (after) {
        where.push(`${id} > @k0`);
        params.k0 = key(0);
      }
      break;
    case "updated_desc":
      order = "b.updated_at DESC, b.id DESC";
      if (after) {
        where.push("(b.updated_at, b.id) < (@k0, @k1)");
        params.k0 = key(0);
        params.k1 = key(1);
      }
      break;
    case "priority":
      order = "b.priority DESC, b.id DESC";
      if (after) {
        where.push("(b.priority, b.id) < (@k0, @k1)");
        params.k0 = key(0);
        params.k1 = key(1);
      }
      break;
    case "relevance":
      if (!fts) throw new RangeError("relevance order needs a full-text query");
      // Best first (bm25 is lower for better matches), newest first among equals.
      order = "f.rank ASC, f.rowid DESC";
      if (after) {
        where.push("(f.rank > @k0 OR (f.rank = @k0 AND f.rowid < @k1))");
        params.k0 = key(0);
        params.k1 = key(1);
      }
      break;
  }
  const sql = `SELECT ${select} FROM ${from}${where.length > 0 ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY ${order} LIMIT @limit`;
  return { sql, params };
}

/** The sort keys of a row, as the cursor stores them. */
export function rowKeys(row: PageRow, sort: Sort): number[] {
  switch (sort) {
    case "created_desc":
    case "created_asc":
      return [row.id];
    case "updated_desc":
      return [row.updated_at, row.id];
    case "priority":
      return [row.priority, row.id];
    case "relevance":
      return [row.score ?? 0, row.id];
  }
}
