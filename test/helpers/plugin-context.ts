/**
 * A ToolContext for plugin unit tests, with real effects confined to temp dirs:
 *
 * - `fs`: a small guarded filesystem over allowed roots (default: a fresh temp root).
 *   Paths must be absolute; the real path must lie inside an allowed root and outside
 *   every denied one, else CapabilityDeniedError (PATH_OUTSIDE_ROOTS / PATH_DENIED).
 * - `storage`: real SQLite files (better-sqlite3) in a temp state directory, created
 *   0600 and cached by name, like the server's storage capability.
 * - `fetch` and `exec`: always refused (CapabilityDeniedError), so a test never
 *   reaches the network or starts a process by accident.
 * - `progress`: no-op; `log`: collected in `logs`.
 * - `deadline`: none (Infinity) unless a test gives one.
 *
 * `invokeTool` calls a plugin the way the dispatcher does (ToolError and
 * CapabilityDeniedError become isError results), checks a successful result
 * against the tool's outputSchema, and hands back the parts.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import type { ValidateFunction } from "ajv";
import Database from "better-sqlite3";
import { ulid } from "ulid";
import {
  CapabilityDeniedError,
  ToolError,
  type DirEntry,
  type FileInfo,
  type FileKind,
  type GuardedFs,
  type JsonObject,
  type Plugin,
  type PluginStorage,
  type SqliteDatabase,
  type ToolContext,
} from "../../src/plugins/contract.js";

export interface LogEntry {
  level: "debug" | "info" | "warn" | "error";
  message: string;
  data?: JsonObject;
}

export interface TestContextOptions {
  /** Directories the fs capability allows (default: the temp root). */
  allowedRoots?: string[];
  /** Paths refused even inside an allowed root. */
  deniedPaths?: string[];
  /** The session's project (`ctx.session.projectPath`). */
  projectPath?: string;
  clientName?: string;
  /** Use this state directory instead of a fresh one (e.g. two "servers" sharing a database). */
  stateDir?: string;
}

export interface TestContext {
  /** A context for one call (a fresh one per access would also be fine; see `context`). */
  readonly ctx: ToolContext;
  /** The temp root (real path); removed by cleanup. */
  readonly root: string;
  /** The state directory holding the databases. */
  readonly stateDir: string;
  readonly logs: LogEntry[];
  /** What calls reserved with ctx.reserve, in order (granted at once here). */
  readonly reservations: number[];
  /** A new context (new callId) sharing this one's storage, fs and logs. */
  context(overrides?: { projectPath?: string | undefined; signal?: AbortSignal; deadline?: number }): ToolContext;
  /** Where `storage.openDatabase(name)` keeps its file. */
  databasePath(name: string): string;
  /** Makes a directory under the root and returns its real path. */
  makeDir(relative: string): string;
  /** Closes databases and removes the temp root (and the state dir if it made it). */
  cleanup(): void;
}

const DATABASE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;

function kindOf(stats: fs.Stats): FileKind {
  if (stats.isFile()) return "file";
  if (stats.isDirectory()) return "directory";
  if (stats.isSymbolicLink()) return "symlink";
  return "other";
}

function inside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative));
}

function createGuardedFs(allowed: readonly string[], denied: readonly string[]): GuardedFs {
  const real = (target: string, access: "read" | "write"): string => {
    if (!path.isAbsolute(target)) throw new CapabilityDeniedError("PATH_INVALID", `path ${JSON.stringify(target)} must be absolute`);
    let resolved: string;
    try {
      resolved = fs.realpathSync(target);
    } catch (error) {
      // A file about to be written may not exist yet: check its parent instead.
      if (access === "read" || (error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      resolved = path.join(fs.realpathSync(path.dirname(target)), path.basename(target));
    }
    if (denied.some((root) => inside(resolved, root))) throw new CapabilityDeniedError("PATH_DENIED", `path ${target} is denied by the policy`);
    if (!allowed.some((root) => inside(resolved, root))) {
      throw new CapabilityDeniedError("PATH_OUTSIDE_ROOTS", `path ${target} is outside the allowed paths`);
    }
    return resolved;
  };
  const info = (resolved: string): FileInfo => {
    const stats = fs.statSync(resolved);
    return { path: resolved, kind: kindOf(stats), size: stats.size, mtimeMs: stats.mtimeMs, mode: stats.mode & 0o7777 };
  };
  // Like the server's capability: a missing path is a ToolError with a stable code, not a raw errno.
  const typed = <T>(target: string, run: () => T): Promise<T> =>
    Promise.resolve().then(() => {
      try {
        return run();
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT") throw new ToolError(`path ${target} does not exist`, "PATH_NOT_FOUND");
        if (code === "ENOTDIR") throw new ToolError(`path ${target} is not a directory`, "PATH_NOT_DIRECTORY");
        throw error;
      }
    });
  return {
    limits: { maxReadBytes: Number.MAX_SAFE_INTEGER, maxWriteBytes: Number.MAX_SAFE_INTEGER },
    allowedDirectories: () => ({ directories: allowed.map((root) => ({ path: root, pattern: `${root}/**` })) }),
    resolve: (target, access) => typed(target, () => real(target, access)),
    stat: (target) => typed(target, () => info(real(target, "read"))),
    readBytes: (target, options) =>
      Promise.resolve().then(() => {
        const data = fs.readFileSync(real(target, "read"));
        const start = options?.offset ?? 0;
        return new Uint8Array(data.subarray(start, options?.length === undefined ? undefined : start + options.length));
      }),
    read: (target, options) =>
      typed(target, () => {
        const resolved = real(target, "read");
        if (fs.statSync(resolved).isDirectory()) throw new ToolError(`path ${target} is a directory; only files can be read`, "PATH_IS_DIRECTORY");
        const data = fs.readFileSync(resolved);
        const start = options?.offset ?? 0;
        const bytes = new Uint8Array(data.subarray(start, options?.length === undefined ? undefined : start + options.length));
        return { bytes, info: info(resolved) };
      }),
    readText: (target, options) =>
      Promise.resolve().then(() => {
        const data = fs.readFileSync(real(target, "read"));
        const start = options?.offset ?? 0;
        return data.subarray(start, options?.length === undefined ? undefined : start + options.length).toString("utf8");
      }),
    list: (target) =>
      Promise.resolve().then((): DirEntry[] =>
        fs.readdirSync(real(target, "read"), { withFileTypes: true }).map((entry) => ({
          name: entry.name,
          kind: entry.isFile() ? "file" : entry.isDirectory() ? "directory" : entry.isSymbolicLink() ? "symlink" : "other",
        })),
      ),
    writeFile: (target, data, options) =>
      Promise.resolve().then(() => {
        const resolved = real(target, "write");
        const flag = options?.exclusive === true ? "wx" : options?.append === true ? "a" : "w";
        fs.writeFileSync(resolved, data, { flag, mode: 0o600 });
        return info(resolved);
      }),
    move: (from, to) =>
      typed(from, () => {
        const source = real(from, "write");
        const destination = real(to, "write");
        if (fs.existsSync(destination)) throw new ToolError(`path ${to} already exists; a move never replaces a file`, "PATH_EXISTS");
        fs.renameSync(source, destination);
        return info(destination);
      }),
    mkdir: (target) =>
      Promise.resolve().then(() => {
        const resolved = real(target, "write");
        fs.mkdirSync(resolved, { recursive: true, mode: 0o700 });
        return info(resolved);
      }),
  };
}

function createStorage(stateDir: string, opened: Map<string, SqliteDatabase>): PluginStorage {
  return {
    openDatabase(name: string): SqliteDatabase {
      if (!DATABASE_NAME.test(name)) throw new CapabilityDeniedError("STORAGE_NAME_INVALID", `database name ${JSON.stringify(name)} is not valid`);
      const existing = opened.get(name);
      if (existing?.open === true) return existing;
      fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      const file = path.join(stateDir, `${name}.db`);
      fs.closeSync(fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600));
      const db = new Database(file);
      opened.set(name, db);
      return db;
    },
  };
}

export function createTestContext(options: TestContextOptions = {}): TestContext {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "msl-")));
  const stateDir = options.stateDir ?? path.join(root, ".state");
  const allowed = (options.allowedRoots ?? [root]).map((dir) => fs.realpathSync(dir));
  const denied = (options.deniedPaths ?? []).map((dir) => (fs.existsSync(dir) ? fs.realpathSync(dir) : path.resolve(dir)));
  const guardedFs = createGuardedFs(allowed, denied);
  const databases = new Map<string, SqliteDatabase>();
  const storage = createStorage(stateDir, databases);
  const logs: LogEntry[] = [];
  const log = (level: LogEntry["level"]) => (message: string, data?: JsonObject) => {
    logs.push(data === undefined ? { level, message } : { level, message, data });
  };
  const session = { projectPath: options.projectPath, clientName: options.clientName ?? "plugin-test" };
  const reservations: number[] = [];

  const context = (overrides: { projectPath?: string | undefined; signal?: AbortSignal; deadline?: number } = {}): ToolContext => ({
    signal: overrides.signal ?? new AbortController().signal,
    callId: ulid(),
    deadline: overrides.deadline ?? Number.POSITIVE_INFINITY,
    progress: () => {},
    reserve: (bytes) => {
      reservations.push(bytes);
      return Promise.resolve();
    },
    log: { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
    fs: guardedFs,
    fetch: () => Promise.reject(new CapabilityDeniedError("EGRESS_DENIED", "the test context has no network")),
    exec: () => Promise.reject(new CapabilityDeniedError("COMMAND_DENIED", "the test context runs no commands")),
    storage,
    catalog: { entries: () => [] },
    session: "projectPath" in overrides ? { ...session, projectPath: overrides.projectPath } : session,
  });

  return {
    ctx: context(),
    root,
    stateDir,
    logs,
    reservations,
    context,
    databasePath: (name) => path.join(stateDir, `${name}.db`),
    makeDir(relative) {
      const dir = path.join(root, relative);
      fs.mkdirSync(dir, { recursive: true });
      return fs.realpathSync(dir);
    },
    cleanup() {
      for (const db of databases.values()) if (db.open) db.close();
      databases.clear();
      // A state directory passed in belongs to the caller; ours lives under the root.
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

export interface ToolCallResult {
  isError: boolean;
  /** The first text block (error message), if any. */
  text: string | undefined;
  /** Every text block the tool returned itself (none when it left the text copy to the engine). */
  texts: string[];
  structured: JsonObject | undefined;
  /** The ToolError / CapabilityDeniedError code when the call failed with one. */
  code: string | undefined;
}

// Strict, like a careful engine: a schema mistake fails the test rather than passing silently.
const ajv = new Ajv2020({ strict: true, allErrors: true, logger: false });
ajv.addKeyword({ keyword: "x-path", schemaType: "string" });
ajv.addKeyword({ keyword: "x-audit", schemaType: "string", metaSchema: { enum: ["digest"] } });
const validators = new WeakMap<object, ValidateFunction>();

/** Compiles (once) a tool schema with the same dialect the engine uses (JSON Schema 2020-12). */
export function schemaValidator(schema: JsonObject): ValidateFunction {
  let validate = validators.get(schema);
  if (validate === undefined) {
    validate = ajv.compile(schema);
    validators.set(schema, validate);
  }
  return validate;
}

/**
 * Calls a plugin tool as the dispatcher would; other exceptions propagate (a crash
 * is a test failure), and so does a successful result that breaks its outputSchema.
 */
export async function invokeTool(plugin: Plugin, tool: string, args: JsonObject, ctx: ToolContext): Promise<ToolCallResult> {
  try {
    const outcome = await plugin.execute(tool, args, ctx);
    const first = outcome.content?.find((block) => block.type === "text");
    const definition = plugin.tools.find((item) => item.name === tool);
    if (outcome.isError !== true && definition?.outputSchema !== undefined) {
      const validate = schemaValidator(definition.outputSchema);
      if (outcome.structuredContent === undefined || !validate(outcome.structuredContent)) {
        throw new Error(`${tool} returned a result that breaks its outputSchema: ${ajv.errorsText(validate.errors)}`);
      }
    }
    return {
      isError: outcome.isError === true,
      text: first?.type === "text" ? first.text : undefined,
      texts: (outcome.content ?? []).flatMap((block) => (block.type === "text" ? [block.text] : [])),
      structured: outcome.structuredContent,
      code: undefined,
    };
  } catch (error) {
    if (error instanceof ToolError || error instanceof CapabilityDeniedError) {
      return { isError: true, text: error.message, texts: [error.message], structured: undefined, code: error.code };
    }
    throw error;
  }
}
