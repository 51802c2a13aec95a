/**
 * Plugin storage: SQLite databases in the state directory. A plugin names a
 * database; it never chooses a path. Files are created 0600 in a 0700 folder.
 *
 * An open connection is handed out again only while its path still names the file it
 * opened. A database removed, moved aside or replaced (a backup restored) while the
 * server runs would otherwise keep taking writes into a file nobody can see any more,
 * lost when the server exits; instead the old connection is closed and the path's
 * current file is opened, as a restart would.
 */
import { closeSync, fstatSync, lstatSync, openSync, constants as fsConstants } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { CapabilityDeniedError, type PluginStorage, type SqliteDatabase } from "../../plugins/contract.js";
import { makeDirectoriesSync } from "../../util/make-directories.js";

const DATABASE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;

// The native addon is loaded on first use, not at start: most sessions never open a database.
const require = createRequire(import.meta.url);
let Database: typeof import("better-sqlite3") | undefined;

export interface StorageHandle extends PluginStorage {
  /** Closes every database opened through this storage. */
  closeAll(): void;
}

interface OpenDatabase {
  db: SqliteDatabase;
  file: string;
  /** The identity of the file the connection opened. */
  dev: number;
  ino: number;
}

/** Whether `file` still names the very file `known` opened (not removed, not replaced). */
function stillNamesIt(known: OpenDatabase): boolean {
  try {
    const stat = lstatSync(known.file);
    return stat.isFile() && stat.dev === known.dev && stat.ino === known.ino;
  } catch {
    return false;
  }
}

/**
 * Closes a connection whose file is no longer at its path. SQLite then neither
 * checkpoints nor removes the write-ahead log, which stays at `<name>.db-wal` and would
 * be replayed into whatever file is opened at the path next: a database restored there
 * would get pages of the old one. A TRUNCATE checkpoint first empties that log (through
 * the connection's own descriptors, never by name); it does not wait for other processes.
 */
function closeDetached(db: SqliteDatabase): void {
  try {
    db.pragma("busy_timeout = 0");
    db.pragma("wal_checkpoint(TRUNCATE)");
  } catch {
    // A damaged or busy database: closing is all that is left to do.
  }
  db.close();
}

export function createPluginStorage(dataDir: string): StorageHandle {
  const open = new Map<string, OpenDatabase>();
  return {
    openDatabase(name: string): SqliteDatabase {
      if (!DATABASE_NAME.test(name)) {
        throw new CapabilityDeniedError("STORAGE_NAME_INVALID", `database name ${JSON.stringify(name)} must match ${String(DATABASE_NAME)}`);
      }
      const existing = open.get(name);
      if (existing?.db.open === true) {
        if (stillNamesIt(existing)) return existing.db;
        closeDetached(existing.db);
      }
      open.delete(name);
      makeDirectoriesSync(dataDir, 0o700);
      const file = join(dataDir, `${name}.db`);
      // Create the file ourselves so its mode is 0600 whatever the umask; never follow a symlink.
      const fd = openSync(file, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_NOFOLLOW, 0o600);
      let identity: { dev: number; ino: number };
      try {
        const stat = fstatSync(fd);
        identity = { dev: stat.dev, ino: stat.ino };
      } finally {
        closeSync(fd);
      }
      Database ??= require("better-sqlite3") as typeof import("better-sqlite3");
      const db = new Database(file);
      open.set(name, { db, file, ...identity });
      return db;
    },
    closeAll(): void {
      for (const entry of open.values()) {
        if (!entry.db.open) continue;
        if (stillNamesIt(entry)) entry.db.close();
        else closeDetached(entry.db);
      }
      open.clear();
    },
  };
}
