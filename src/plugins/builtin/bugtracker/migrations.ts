/**
 * The database schema as an ordered list of migration steps. `user_version` holds
 * the number of steps applied; `application_id` marks the file as ours, so a
 * database that belongs to something else is refused rather than written into.
 */
import type { SqliteDatabase } from "../../contract.js";
import { describeSchemaDamage, expectedObjects, readSchema, schemaProblems } from "./schema-check.js";

/** "MSLB" (mcp-secure-local bugs) as a 32-bit integer. */
export const APPLICATION_ID = 0x4d534c42;

export interface Migration {
  /** The `user_version` after this step. */
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export type SchemaErrorCode = "SCHEMA_TOO_NEW" | "NOT_OUR_DATABASE" | "SCHEMA_DAMAGED";

export class SchemaError extends Error {
  readonly code: SchemaErrorCode;
  constructor(code: SchemaErrorCode, message: string) {
    super(message);
    this.name = "SchemaError";
    this.code = code;
  }
}

const V1 = /* sql */ `
CREATE TABLE projects (
  id INTEGER PRIMARY KEY,
  project_id TEXT NOT NULL UNIQUE,
  path TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  -- The next BUG-n of this project; bumped in the transaction that uses it, never reused.
  next_number INTEGER NOT NULL DEFAULT 1 CHECK (next_number >= 1),
  created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE bugs (
  -- Rows are never deleted, so rowid order is creation order (the keyset for created_*).
  id INTEGER PRIMARY KEY,
  uid TEXT NOT NULL UNIQUE,
  project INTEGER NOT NULL REFERENCES projects(id),
  number INTEGER NOT NULL CHECK (number >= 1),
  title TEXT NOT NULL,
  description TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('open', 'in_progress', 'resolved', 'closed')),
  -- 0 low, 1 medium, 2 high, 3 critical: an integer so that priority order is index order.
  priority INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 3),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  revision INTEGER NOT NULL DEFAULT 0 CHECK (revision >= 0),
  UNIQUE (project, number)
) STRICT;

-- Secondary indexes end with the rowid, so (project) is (project, id), etc.
CREATE INDEX bugs_project ON bugs (project);
CREATE INDEX bugs_project_status ON bugs (project, status);
CREATE INDEX bugs_project_priority ON bugs (project, priority);
CREATE INDEX bugs_project_status_priority ON bugs (project, status, priority);
CREATE INDEX bugs_project_updated ON bugs (project, updated_at);
CREATE INDEX bugs_status ON bugs (status);
CREATE INDEX bugs_priority ON bugs (priority);
CREATE INDEX bugs_updated ON bugs (updated_at);

CREATE TABLE bug_tags (
  bug INTEGER NOT NULL REFERENCES bugs(id),
  tag TEXT NOT NULL,
  PRIMARY KEY (bug, tag)
) STRICT, WITHOUT ROWID;
CREATE INDEX bug_tags_tag ON bug_tags (tag, bug);

-- Both directions are stored: (a, b, blocks) always comes with (b, a, blocked_by).
CREATE TABLE relations (
  bug INTEGER NOT NULL REFERENCES bugs(id),
  other INTEGER NOT NULL REFERENCES bugs(id),
  kind TEXT NOT NULL CHECK (kind IN ('duplicate_of', 'duplicated_by', 'related_to', 'blocks', 'blocked_by')),
  PRIMARY KEY (bug, other),
  CHECK (bug <> other)
) STRICT, WITHOUT ROWID;

-- One row per change. Rows of one update share its revision number.
CREATE TABLE history (
  id INTEGER PRIMARY KEY,
  bug INTEGER NOT NULL REFERENCES bugs(id),
  revision INTEGER NOT NULL CHECK (revision >= 1),
  at INTEGER NOT NULL,
  field TEXT NOT NULL CHECK (field IN ('status', 'priority', 'tag', 'related', 'note')),
  -- status/priority: old and new value; tag: old = removed tag, new = added tag;
  -- related: old and new relationship towards other_bug (NULL: no link).
  old_value TEXT,
  new_value TEXT,
  other_bug INTEGER REFERENCES bugs(id),
  note TEXT,
  call_id TEXT,
  CHECK ((field = 'note') = (note IS NOT NULL)),
  CHECK ((field = 'related') = (other_bug IS NOT NULL))
) STRICT;
CREATE INDEX history_bug ON history (bug, id);
-- No reverse indexes on relations.other or history.other_bug: they would only serve
-- foreign-key checks on deleting a bug, and bugs are never deleted.

-- Full-text search over titles, descriptions and notes. The index has no copy of
-- the text: it reads it from this view (external content) and triggers keep it in step.
CREATE VIEW bug_search_source AS
  SELECT b.id AS id, b.title AS title, b.description AS description,
    coalesce((SELECT group_concat(h.note, char(10) ORDER BY h.id) FROM history h
              WHERE h.bug = b.id AND h.note IS NOT NULL), '') AS notes
  FROM bugs b;

CREATE VIRTUAL TABLE bug_search USING fts5 (
  title, description, notes,
  content = 'bug_search_source', content_rowid = 'id',
  tokenize = 'porter unicode61 remove_diacritics 2'
);
-- A match in the title weighs more than one in the description or the notes.
INSERT INTO bug_search (bug_search, rank) VALUES ('rank', 'bm25(4.0, 1.0, 1.0)');

CREATE TRIGGER bugs_search_insert AFTER INSERT ON bugs BEGIN
  INSERT INTO bug_search (rowid, title, description, notes) VALUES (new.id, new.title, new.description, '');
END;

CREATE TRIGGER bugs_search_update AFTER UPDATE OF title, description ON bugs BEGIN
  INSERT INTO bug_search (bug_search, rowid, title, description, notes)
    SELECT 'delete', old.id, old.title, old.description, s.notes FROM bug_search_source s WHERE s.id = old.id;
  INSERT INTO bug_search (rowid, title, description, notes)
    SELECT new.id, new.title, new.description, s.notes FROM bug_search_source s WHERE s.id = new.id;
END;

-- Deleting bugs is not a feature; refuse it so the index and the counters stay true.
CREATE TRIGGER bugs_no_delete BEFORE DELETE ON bugs BEGIN
  SELECT RAISE(ABORT, 'bugs are never deleted');
END;

CREATE TRIGGER history_search_note AFTER INSERT ON history WHEN new.note IS NOT NULL BEGIN
  INSERT INTO bug_search (bug_search, rowid, title, description, notes)
    SELECT 'delete', b.id, b.title, b.description,
      coalesce((SELECT group_concat(h.note, char(10) ORDER BY h.id) FROM history h
                WHERE h.bug = b.id AND h.note IS NOT NULL AND h.id <> new.id), '')
    FROM bugs b WHERE b.id = new.bug;
  INSERT INTO bug_search (rowid, title, description, notes)
    SELECT s.id, s.title, s.description, s.notes FROM bug_search_source s WHERE s.id = new.bug;
END;

CREATE TRIGGER history_no_change BEFORE UPDATE ON history BEGIN
  SELECT RAISE(ABORT, 'history is append-only');
END;
CREATE TRIGGER history_no_delete BEFORE DELETE ON history BEGIN
  SELECT RAISE(ABORT, 'history is append-only');
END;
`;

/*
 * update_bug corrects titles and descriptions, and history records each correction as a field
 * of its own. SQLite cannot change a CHECK in place, so the history table is rebuilt: its rows
 * are copied aside and back (same ids, so history order is kept), and its index and triggers,
 * dropped with the table, are made again as they were. No rename: renaming a table rewrites
 * the view and triggers that name it. Nothing references history, so no foreign key is touched.
 */
const V2 = /* sql */ `
CREATE TEMP TABLE history_v1 AS SELECT * FROM history;
DROP TABLE history;

CREATE TABLE history (
  id INTEGER PRIMARY KEY,
  bug INTEGER NOT NULL REFERENCES bugs(id),
  revision INTEGER NOT NULL CHECK (revision >= 1),
  at INTEGER NOT NULL,
  field TEXT NOT NULL CHECK (field IN ('title', 'description', 'status', 'priority', 'tag', 'related', 'note')),
  -- title/description/status/priority: old and new value; tag: old = removed tag, new = added tag;
  -- related: old and new relationship towards other_bug (NULL: no link).
  old_value TEXT,
  new_value TEXT,
  other_bug INTEGER REFERENCES bugs(id),
  note TEXT,
  call_id TEXT,
  CHECK ((field = 'note') = (note IS NOT NULL)),
  CHECK ((field = 'related') = (other_bug IS NOT NULL))
) STRICT;
INSERT INTO history (id, bug, revision, at, field, old_value, new_value, other_bug, note, call_id)
  SELECT id, bug, revision, at, field, old_value, new_value, other_bug, note, call_id FROM history_v1 ORDER BY id;
DROP TABLE history_v1;
CREATE INDEX history_bug ON history (bug, id);

CREATE TRIGGER history_search_note AFTER INSERT ON history WHEN new.note IS NOT NULL BEGIN
  INSERT INTO bug_search (bug_search, rowid, title, description, notes)
    SELECT 'delete', b.id, b.title, b.description,
      coalesce((SELECT group_concat(h.note, char(10) ORDER BY h.id) FROM history h
                WHERE h.bug = b.id AND h.note IS NOT NULL AND h.id <> new.id), '')
    FROM bugs b WHERE b.id = new.bug;
  INSERT INTO bug_search (rowid, title, description, notes)
    SELECT s.id, s.title, s.description, s.notes FROM bug_search_source s WHERE s.id = new.bug;
END;

CREATE TRIGGER history_no_change BEFORE UPDATE ON history BEGIN
  SELECT RAISE(ABORT, 'history is append-only');
END;
CREATE TRIGGER history_no_delete BEFORE DELETE ON history BEGIN
  SELECT RAISE(ABORT, 'history is append-only');
END;
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, description: "projects, bugs, tags, relations, history, full-text search", sql: V1 },
  { version: 2, description: "history records title and description corrections", sql: V2 },
];

export const LATEST_VERSION = MIGRATIONS.length;

function readVersion(db: SqliteDatabase): number {
  return db.pragma("user_version", { simple: true }) as number;
}

function readApplicationId(db: SqliteDatabase): number {
  return db.pragma("application_id", { simple: true }) as number;
}

/**
 * Brings the schema to the latest version, one step per transaction-safe batch,
 * or refuses a database this code cannot read. Safe to run from two processes at
 * once: the version is re-read under the write lock.
 */
export function migrate(db: SqliteDatabase, migrations: readonly Migration[] = MIGRATIONS): number {
  const latest = migrations.length;
  const refuseForeign = (): never => {
    throw new SchemaError(
      "NOT_OUR_DATABASE",
      "the bugtracker database in the state directory belongs to another program (unknown application id or tables); it was left untouched",
    );
  };
  const appId = readApplicationId(db);
  if (appId !== 0 && appId !== APPLICATION_ID) refuseForeign();
  const seen = readVersion(db);
  if (seen > latest) throw tooNew(seen, latest);
  // Before anything reads or upgrades it: a later step would fail on a missing table with
  // SQLite's bare message, and a missing trigger would not fail at all.
  if (appId === APPLICATION_ID) assertSchemaIntact(db, seen);
  if (seen === latest && appId === APPLICATION_ID) return seen;

  const upgrade = db.transaction(() => {
    const current = readVersion(db);
    if (current > latest) throw tooNew(current, latest);
    // We always set the application id with the first version: a versioned file without it is not ours.
    if (current > 0 && readApplicationId(db) !== APPLICATION_ID) refuseForeign();
    if (current === 0) {
      const objects = db.prepare("SELECT count(*) AS n FROM sqlite_schema").get() as { n: number };
      if (objects.n > 0) refuseForeign();
    }
    for (const step of migrations.slice(current)) {
      db.exec(step.sql);
      db.pragma(`user_version = ${step.version}`);
    }
    db.pragma(`application_id = ${APPLICATION_ID}`);
    return readVersion(db);
  });
  return upgrade.immediate();
}

/**
 * Refuses a schema version newer than this code's. `migrate` checks it when a connection
 * opens; the store checks it again in every transaction, since another process (a newer
 * server sharing the database) may migrate it while this connection stays open.
 */
export function assertNotNewer(version: number, latest: number = LATEST_VERSION): void {
  if (version > latest) throw tooNew(version, latest);
}

/**
 * Refuses a database of ours whose tables, columns, indexes or triggers are not those of the
 * version it records (changed outside the server). Never repairs it: it may be the only copy.
 * A version this code does not describe is left to the version checks.
 */
export function assertSchemaIntact(db: SqliteDatabase, version: number): void {
  const expected = expectedObjects(version);
  if (expected === undefined) return;
  const problems = schemaProblems(expected, readSchema(db, expected));
  if (problems.length > 0) throw new SchemaError("SCHEMA_DAMAGED", describeSchemaDamage(version, problems));
}

function tooNew(seen: number, latest: number): SchemaError {
  return new SchemaError(
    "SCHEMA_TOO_NEW",
    `the bugtracker database has schema version ${seen}, newer than this server understands (${latest}); ` +
      "upgrade mcp-secure-local or point it at another state directory (the database was left untouched)",
  );
}
