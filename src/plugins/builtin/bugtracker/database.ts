/**
 * Opening the bug database through the storage capability, and turning SQLite's
 * failures into messages a person can act on. A damaged or foreign file is
 * reported and closed, never repaired or replaced: it may be someone's only copy.
 */
import { ToolError, type PluginStorage, type SqliteDatabase } from "../../contract.js";
import { SchemaError, migrate } from "./migrations.js";

export const DATABASE_NAME = "bugtracker";
export const DEFAULT_BUSY_TIMEOUT_MS = 5_000;

/** Opens, configures and migrates the database; closes it again if any step fails. */
export function openBugDatabase(storage: PluginStorage, busyTimeoutMs: number): SqliteDatabase {
  return configureBugDatabase(storage.openDatabase(DATABASE_NAME), busyTimeoutMs);
}

/** Configures and migrates a connection the storage just opened; closes it again if any step fails. */
export function configureBugDatabase(db: SqliteDatabase, busyTimeoutMs: number): SqliteDatabase {
  try {
    // busy_timeout first: every later step may wait for another process's lock.
    db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(busyTimeoutMs))}`);
    db.pragma("foreign_keys = ON");
    // On a file that is not a database, migrate's first read fails (SQLITE_NOTADB) before any write.
    migrate(db);
    // Only now: switching to WAL rewrites the file's header, and a database migrate refused (another
    // program's, damaged, newer) is left as it was found. A new database is made in rollback-journal
    // mode, then switched.
    db.pragma("journal_mode = WAL");
    return db;
  } catch (error) {
    if (db.open) db.close();
    throw error;
  }
}

/**
 * Closes the connection without leaving a write-ahead log behind. Normally SQLite's own
 * close does that, but not when the file was removed or replaced meanwhile: the log then
 * stays at bugtracker.db-wal and would be replayed into the next file opened there. A
 * TRUNCATE checkpoint empties it through the connection's own descriptors (never by
 * name), without waiting for other processes.
 */
export function closeBugDatabase(db: SqliteDatabase): void {
  try {
    db.pragma("busy_timeout = 0");
    db.pragma("wal_checkpoint(TRUNCATE)");
  } catch {
    // Busy or damaged: the plain close below is all that is left to do.
  }
  db.close();
}

/** The storage creates the data folder and the file itself before SQLite opens it. */
const OPENING_CALLS = new Set(["open", "mkdir"]);

/**
 * A file-system failure of the storage while opening the database (before SQLite sees
 * the file): said in words, since the file's state is the operator's to fix.
 */
function openingFailure(error: unknown): ToolError | undefined {
  if (!(error instanceof Error)) return undefined;
  const { code, syscall } = error as { code?: unknown; syscall?: unknown };
  if (typeof code !== "string" || typeof syscall !== "string" || !OPENING_CALLS.has(syscall)) return undefined;
  const file = `data/${DATABASE_NAME}.db in the server's state directory`;
  switch (code) {
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return new ToolError(
        syscall === "mkdir"
          ? `the bug database cannot be created: the server may not write to its state directory (${code}); check its permissions`
          : `the bug database (${file}) is read-only for this server (${code}); give the server's user read and write access to it`,
        "DB_READONLY",
      );
    case "ELOOP":
      return new ToolError(
        `the bug database (${file}) is a symbolic link, which the server does not follow; put the database file itself there`,
        "DB_UNAVAILABLE",
      );
    case "EISDIR":
      return new ToolError(`the bug database (${file}) is a directory, not a file; move it aside to start an empty database`, "DB_UNAVAILABLE");
    case "ENOTDIR":
    case "EEXIST":
      return new ToolError(
        "the bug database cannot be created: data/ in the server's state directory is not a directory; move that file aside",
        "DB_UNAVAILABLE",
      );
    case "ENOSPC":
    case "EDQUOT":
      return new ToolError("the disk holding the bug database is full; free some space and retry", "DB_FULL");
    default:
      return new ToolError(`the bug database (${file}) could not be opened (${code}); check the state directory`, "DB_UNAVAILABLE");
  }
}

function sqliteCode(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && code.startsWith("SQLITE_") ? code : undefined;
}

/**
 * Maps a database failure to a ToolError with a stable code, or returns undefined
 * when the error is not a database condition (a bug of ours: let it crash loudly).
 */
export function databaseFailure(error: unknown, busyTimeoutMs: number): ToolError | undefined {
  if (error instanceof SchemaError) return new ToolError(error.message, error.code);
  const opening = openingFailure(error);
  if (opening !== undefined) return opening;
  const code = sqliteCode(error);
  if (code === undefined) return undefined;
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return new ToolError(
      `the bug database is busy: another process kept it locked for more than ${busyTimeoutMs} ms; retry the call in a moment`,
      "DB_BUSY",
    );
  }
  if (code === "SQLITE_NOTADB" || code.startsWith("SQLITE_CORRUPT")) {
    return new ToolError(
      `the bug database (${DATABASE_NAME}.db in the server's state directory) is damaged or not an SQLite database (${code}). ` +
        "It was left untouched: restore it from a backup, or move it aside to start an empty one.",
      "DB_CORRUPT",
    );
  }
  if (code === "SQLITE_FULL") return new ToolError("the disk holding the bug database is full; free some space and retry", "DB_FULL");
  if (code.startsWith("SQLITE_READONLY")) {
    return new ToolError("the bug database is read-only for this server (file permissions or a read-only disk)", "DB_READONLY");
  }
  if (code.startsWith("SQLITE_IOERR") || code.startsWith("SQLITE_CANTOPEN") || code === "SQLITE_PERM" || code === "SQLITE_AUTH") {
    return new ToolError(`the bug database could not be read or written (${code}); check the state directory`, "DB_UNAVAILABLE");
  }
  return undefined;
}
