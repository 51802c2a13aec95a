/**
 * The bug tracker plugin: the seed's seven tools on one SQLite database opened
 * through the storage capability. Projects are directories checked by the path
 * guard; bugs never cross projects except through search_bugs_global.
 */
import { randomBytes } from "node:crypto";
import { ToolError, type JsonObject, type Plugin, type SqliteDatabase, type ToolContext, type ToolOutcome } from "../../contract.js";
import { DATABASE_NAME, DEFAULT_BUSY_TIMEOUT_MS, closeBugDatabase, configureBugDatabase, databaseFailure } from "./database.js";
import { addBug, closeBug, getBug, initBugtracker, listBugs, searchBugsGlobal, updateBug, type StoreProvider } from "./handlers.js";
import { BugStore } from "./store.js";
import { TOOLS, type ToolName } from "./tools.js";

export interface BugtrackerOptions {
  /** Milliseconds since the epoch; injected so tests and benchmarks control time. */
  now?: () => number;
  /** Random bytes for ULIDs. */
  random?: (size: number) => Uint8Array;
  /** How long a write waits for another process's lock before failing with DB_BUSY. */
  busyTimeoutMs?: number;
}

const HANDLERS: Readonly<Record<ToolName, (args: JsonObject, ctx: ToolContext, storeFor: StoreProvider) => Promise<ToolOutcome>>> = {
  init_bugtracker: initBugtracker,
  add_bug: addBug,
  get_bug: getBug,
  update_bug: updateBug,
  close_bug: closeBug,
  list_bugs: listBugs,
  search_bugs_global: searchBugsGlobal,
};

function isToolName(name: string): name is ToolName {
  return Object.hasOwn(HANDLERS, name);
}

export function createBugtrackerPlugin(options: BugtrackerOptions = {}): Plugin {
  const now = options.now ?? Date.now;
  const random = options.random ?? ((size: number) => randomBytes(size));
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  // One connection (and its prepared statements) while the storage keeps handing out
  // the same one; a failed open is not kept, so the next call reports the problem again.
  let opened: { db: SqliteDatabase; store: BugStore } | undefined;

  const storeFor: StoreProvider = (ctx) => {
    // Asked on every call: the storage gives a new connection once the database file was
    // removed or replaced, and a store on the old one would write where nobody reads.
    const db = ctx.storage.openDatabase(DATABASE_NAME);
    if (opened?.db === db && db.open) return opened.store;
    configureBugDatabase(db, busyTimeoutMs);
    opened = { db, store: new BugStore(db, { now, random }) };
    return opened.store;
  };

  return {
    name: "bugtracker",
    version: "1.0.0",
    description: "A per-project bug tracker (SQLite): report, update, close, list and full-text search bugs.",
    tools: TOOLS,
    async execute(tool: string, args: JsonObject, ctx: ToolContext): Promise<ToolOutcome> {
      if (!isToolName(tool)) throw new ToolError(`unknown tool ${JSON.stringify(tool)} in the bugtracker plugin`, "UNKNOWN_TOOL");
      try {
        return await HANDLERS[tool](args, ctx, storeFor);
      } catch (error) {
        const failure = databaseFailure(error, busyTimeoutMs);
        if (failure === undefined) throw error;
        const data = { code: failure.code, tool };
        if (failure.code === "DB_BUSY") ctx.log.warn(`bugtracker: ${failure.message}`, data);
        else ctx.log.error(`bugtracker: ${failure.message}`, data);
        throw failure;
      }
    },
    close(): void {
      if (opened?.db.open === true) closeBugDatabase(opened.db);
      opened = undefined;
    },
  };
}
