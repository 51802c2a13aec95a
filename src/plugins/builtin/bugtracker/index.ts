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

/**
 * SQLite waits for another process's lock inside the call that needs it, and better-sqlite3
 * is synchronous: a wait of the whole busy timeout would stop the server (no ping, no other
 * call answered) for that long. SQLite waits at most this long at a time; the call waits the
 * rest of its busy timeout asleep between tries, and the server goes on serving meanwhile.
 */
const BUSY_SLICE_MS = 20;
const RETRY_FIRST_MS = 10;
const RETRY_MAX_MS = 200;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * While the database is busy, one call at a time retries; the others wait behind it in
 * arrival order. Each retry may hold the thread for a slice inside SQLite, so calls retrying
 * each on its own timer held it for one slice per waiting call per interval: with 150 of
 * them the server stopped answering (a ping waited 2.9 s). Once the call holding the turn
 * gets through, the next one tries at once.
 */
class RetryTurns {
  private tail: Promise<void> = Promise.resolve();
  private holders = 0;

  /** Whether some call holds or waits for the turn: the database was found busy and still may be. */
  get busy(): boolean {
    return this.holders > 0;
  }

  /**
   * Resolves with the function that passes the turn on, and whether the call had to wait for
   * it; or with undefined when the signal fires or `timeoutMs` passes first.
   */
  take(signal: AbortSignal, timeoutMs: number): Promise<{ release: () => void; waited: boolean } | undefined> {
    const previous = this.tail;
    const waited = this.holders > 0;
    this.holders++;
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = () => {
        this.holders--;
        resolve();
      };
    });
    this.tail = previous.then(() => mine);
    return new Promise((resolve) => {
      let settled = false;
      const finish = (got: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        if (got) {
          resolve({ release: once(release), waited });
        } else {
          // Given up: the turn is passed on as soon as it comes.
          void previous.then(release);
          resolve(undefined);
        }
      };
      const onAbort = (): void => finish(false);
      const timer = setTimeout(() => finish(false), Math.max(0, timeoutMs));
      signal.addEventListener("abort", onAbort, { once: true });
      void previous.then(() => finish(true));
    });
  }
}

function once(fn: () => void): () => void {
  let called = false;
  return () => {
    if (called) return;
    called = true;
    fn();
  };
}

/** Logs a database failure for the operator and gives it back, to be thrown to the client. */
function report(failure: ToolError, tool: string, ctx: ToolContext): ToolError {
  const data = { code: failure.code, tool };
  if (failure.code === "DB_BUSY") ctx.log.warn(`bugtracker: ${failure.message}`, data);
  else ctx.log.error(`bugtracker: ${failure.message}`, data);
  return failure;
}

function isToolName(name: string): name is ToolName {
  return Object.hasOwn(HANDLERS, name);
}

export function createBugtrackerPlugin(options: BugtrackerOptions = {}): Plugin {
  const now = options.now ?? Date.now;
  const random = options.random ?? ((size: number) => randomBytes(size));
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  // One connection (and its prepared statements) while the storage keeps handing out
  // the same one; a failed open is not kept, so the next call reports the problem again.
  let opened: { db: SqliteDatabase; store: BugStore; busyMs: number } | undefined;
  const turns = new RetryTurns();
  const slice = Math.min(busyTimeoutMs, BUSY_SLICE_MS);

  /** The store, its connection waiting at most `busyMs` inside SQLite for another process's lock. */
  const storeFor = (ctx: ToolContext, busyMs: number): BugStore => {
    // Asked on every call: the storage gives a new connection once the database file was
    // removed or replaced, and a store on the old one would write where nobody reads.
    const db = ctx.storage.openDatabase(DATABASE_NAME);
    if (opened?.db !== db || !db.open) {
      configureBugDatabase(db, slice);
      opened = { db, store: new BugStore(db, { now, random }), busyMs: slice };
    }
    if (opened.busyMs !== busyMs) {
      db.pragma(`busy_timeout = ${busyMs}`);
      opened.busyMs = busyMs;
    }
    return opened.store;
  };

  return {
    name: "bugtracker",
    version: "1.0.0",
    description: "A per-project bug tracker (SQLite): report, update, close, list and full-text search bugs.",
    tools: TOOLS,
    async execute(tool: string, args: JsonObject, ctx: ToolContext): Promise<ToolOutcome> {
      if (!isToolName(tool)) throw new ToolError(`unknown tool ${JSON.stringify(tool)} in the bugtracker plugin`, "UNKNOWN_TOOL");
      const deadline = performance.now() + busyTimeoutMs;
      let turn: { release: () => void; waited: boolean } | undefined;
      try {
        for (let wait = RETRY_FIRST_MS; ; wait = Math.min(wait * 2, RETRY_MAX_MS)) {
          // While other calls wait for the lock, a new one only looks (no wait inside SQLite, which
          // holds the thread) and, finding it still taken, queues behind them. Decided when the
          // handler asks for the store, right before its transaction, not before its path check.
          const waiting = (context: ToolContext): BugStore => storeFor(context, turn === undefined && turns.busy ? 0 : slice);
          try {
            return await HANDLERS[tool](args, ctx, waiting);
          } catch (error) {
            const failure = databaseFailure(error, busyTimeoutMs);
            if (failure === undefined) throw error;
            // A busy database refused the call's one transaction before it began (BEGIN
            // IMMEDIATE, or opening): nothing was written, so the whole call is tried again.
            if (failure.code === "DB_BUSY" && deadline - performance.now() > 0 && !ctx.signal.aborted) {
              if (turn === undefined) {
                turn = await turns.take(ctx.signal, deadline - performance.now());
                // Another call held the turn until it got through: the lock was just free, try at once.
                if (turn?.waited === true && !ctx.signal.aborted) continue;
              }
              const left = deadline - performance.now();
              if (turn !== undefined && left > 0 && !ctx.signal.aborted) {
                await sleep(Math.min(wait, left), ctx.signal);
                if (!ctx.signal.aborted) continue;
              }
            }
            // Cancelled while waiting: not a lock held past the timeout, and nothing to warn about.
            if (failure.code === "DB_BUSY" && ctx.signal.aborted) {
              throw new ToolError("the call was cancelled while it waited for the bug database's lock; nothing was written", "CANCELLED");
            }
            throw report(failure, tool, ctx);
          }
        }
      } finally {
        turn?.release();
      }
    },
    close(): void {
      if (opened?.db.open === true) closeBugDatabase(opened.db);
      opened = undefined;
    },
  };
}
