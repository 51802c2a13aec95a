/**
 * Plugin storage: SQLite databases in the state directory. A plugin names a
 * database; it never chooses a path. Files are created 0600 in a 0700 folder.
 */
import { closeSync, mkdirSync, openSync, constants as fsConstants } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { CapabilityDeniedError, type PluginStorage, type SqliteDatabase } from "../../plugins/contract.js";

const DATABASE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;

// The native addon is loaded on first use, not at start: most sessions never open a database.
const require = createRequire(import.meta.url);
let Database: typeof import("better-sqlite3") | undefined;

export interface StorageHandle extends PluginStorage {
  /** Closes every database opened through this storage. */
  closeAll(): void;
}

export function createPluginStorage(dataDir: string): StorageHandle {
  const open = new Map<string, SqliteDatabase>();
  return {
    openDatabase(name: string): SqliteDatabase {
      if (!DATABASE_NAME.test(name)) {
        throw new CapabilityDeniedError("STORAGE_NAME_INVALID", `database name ${JSON.stringify(name)} must match ${String(DATABASE_NAME)}`);
      }
      const existing = open.get(name);
      if (existing?.open) return existing;
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      const file = join(dataDir, `${name}.db`);
      // Create the file ourselves so its mode is 0600 whatever the umask; never follow a symlink.
      const fd = openSync(file, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_NOFOLLOW, 0o600);
      closeSync(fd);
      Database ??= require("better-sqlite3") as typeof import("better-sqlite3");
      const db = new Database(file);
      open.set(name, db);
      return db;
    },
    closeAll(): void {
      for (const db of open.values()) {
        if (db.open) db.close();
      }
      open.clear();
    },
  };
}
