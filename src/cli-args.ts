/**
 * Command-line parsing: a pure function from argv and the environment to what to do.
 * Every path the server uses can be moved by a flag or an environment variable.
 */
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { isLogLevel, type LogLevel } from "./util/logger.js";
import { MAX_LINE_BYTES_LIMIT } from "./protocol/framer.js";

export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_PAGE_SIZE = 50;
/** Requests the server runs at once; more wait for a slot, in order. */
export const DEFAULT_MAX_IN_FLIGHT = 256;
/** Memory large results may hold until their responses have been written out (see util/byte-budget.ts). */
export const DEFAULT_MAX_RESULT_MEMORY = 64 * 1024 * 1024;

export interface ServeArgs {
  command: "serve";
  policyFile: string | undefined;
  stateDir: string;
  maxLineBytes: number;
  maxInFlight: number;
  maxResultMemory: number;
  pageSize: number;
  logLevel: LogLevel;
}

export type CliCommand =
  | ServeArgs
  | { command: "help" }
  | { command: "version" }
  | { command: "check-policy"; file: string; stateDir: string }
  | { command: "audit"; sub: "verify" | "tail" | "pubkey"; argv: string[]; stateDir: string; policyFile: string | undefined }
  | { command: "init"; stateDir: string; force: boolean };

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export const USAGE = `Usage:
  mcp-secure-local [--policy FILE] [--state-dir DIR] [options]   serve MCP over stdio
  mcp-secure-local check-policy FILE [--state-dir DIR]            validate a policy, print the effective policy and its SHA-256
  mcp-secure-local audit verify [FILE|DIR] [--pubkey FILE] [--expect-head HASH] [--json]
                                                                  verify the audit log's hash chain and signatures
  mcp-secure-local audit tail [-n N] [-f] [FILE|DIR]              show the last audit entries (-f: then follow)
                                  (without FILE: the audit.log_file of --policy / the default policy, in --state-dir)
  mcp-secure-local audit pubkey                                   print the signing key's public half (PEM), for --pubkey
  mcp-secure-local init [--state-dir DIR] [--force]               create the state directory and an example policy; print client snippets
  mcp-secure-local --version | --help

Options (serve):
  --policy FILE, -p FILE the policy (default: $MCP_SECURE_LOCAL_POLICY, else the built-in default policy)
  --state-dir DIR        where audit log, keys and databases live
                         (default: $MCP_SECURE_LOCAL_STATE_DIR, else $XDG_STATE_HOME/mcp-secure-local,
                          else ~/.local/state/mcp-secure-local)
  --max-line-bytes N     the longest accepted message in bytes (default ${DEFAULT_MAX_LINE_BYTES},
                         at most ${MAX_LINE_BYTES_LIMIT})
  --max-in-flight N      requests run at once; more wait for a slot, in order
                         (default ${DEFAULT_MAX_IN_FLIGHT})
  --max-result-memory N  bytes large results (file reads) may hold until written out; more wait
                         (default ${DEFAULT_MAX_RESULT_MEMORY})
  --page-size N          tools per tools/list page (default ${DEFAULT_PAGE_SIZE})
  --log-level LEVEL      stderr log level: debug, info, notice, warning, error, critical, alert, emergency
                         (default: $MCP_SECURE_LOCAL_LOG_LEVEL, else info)

Environment:
  MCP_PROJECT_PATH       the session's project folder (bug tracker default project; relative to the
                         working directory, or ~/...)
  MCP_SECURE_LOCAL_WEB_SEARCH_URL
                         the results page web_search asks instead of DuckDuckGo Lite's (https, or http
                         to this machine; the network policy must allow it)
`;

export function defaultStateDir(env: NodeJS.ProcessEnv, home: string = homedir()): string {
  const explicit = env.MCP_SECURE_LOCAL_STATE_DIR;
  if (explicit) return cliPath("MCP_SECURE_LOCAL_STATE_DIR", explicit, home);
  const xdg = env.XDG_STATE_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(home, ".local", "state");
  return join(base, "mcp-secure-local");
}

/**
 * The session's project from MCP_PROJECT_PATH, made absolute as the seed did (its
 * Path.resolve): relative to the working directory, where a client that starts the
 * server in the project (Claude Code) puts it; a leading `~/` is the home directory, as
 * in policy paths. Unset or empty: none.
 */
export function projectPathFromEnv(env: NodeJS.ProcessEnv, home: string = homedir()): string | undefined {
  const value = env.MCP_PROJECT_PATH;
  if (!value) return undefined;
  if (value === "~" || value.startsWith("~/")) return join(home, value.slice(1));
  return resolve(value);
}

/**
 * A path from a flag or the environment, made absolute. A leading `~/` is the home directory,
 * as in MCP_PROJECT_PATH and policy paths: a client's configuration passes "~/state" as written
 * (no shell expands it), and resolved as written it would put the audit log and keys in a
 * directory named "~" under whatever the working directory is.
 */
function cliPath(what: string, value: string, home: string): string {
  if (value === "~" || value.startsWith("~/")) return join(home, value.slice(1));
  if (value.startsWith("~")) throw new UsageError(`${what} ${JSON.stringify(value)}: only ~ and ~/ are expanded ("~user" is not); write the full path`);
  return resolve(value);
}

function positiveInt(flag: string, value: string | undefined): number {
  if (value === undefined || !/^[1-9][0-9]*$/.test(value)) throw new UsageError(`${flag} needs a positive whole number`);
  const number = Number(value);
  if (!Number.isSafeInteger(number)) throw new UsageError(`${flag} ${value} is too large (at most ${Number.MAX_SAFE_INTEGER})`);
  return number;
}

/**
 * A flag's value. An empty one is refused too: `--state-dir ""` or `--state-dir=$UNSET`
 * would otherwise resolve to the working directory and quietly put the audit log, keys
 * and databases there.
 */
function needValue(flag: string, value: string | undefined): string {
  if (value === undefined || value === "" || value.startsWith("--")) throw new UsageError(`${flag} needs a value`);
  return value;
}

type CommandName = "serve" | "check-policy" | "audit" | "init";

/**
 * The flags each command takes (besides --help and --version). A flag meant for another
 * command is refused rather than ignored: `init --policy mine.yaml` must not quietly
 * write the example policy somewhere else.
 */
const COMMAND_FLAGS: Readonly<Record<CommandName, readonly string[]>> = {
  serve: ["--policy", "--state-dir", "--max-line-bytes", "--max-in-flight", "--max-result-memory", "--page-size", "--log-level"],
  "check-policy": ["--state-dir"],
  audit: ["--policy", "--state-dir"],
  init: ["--state-dir", "--force"],
};

function misplacedFlag(flag: string, command: CommandName): UsageError {
  const name = command === "serve" ? "serving" : command;
  return new UsageError(`${flag} does not apply to ${name} (its options: ${COMMAND_FLAGS[command].join(", ")})`);
}

export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv, home: string = homedir()): CliCommand {
  const first = argv[0];
  if (first === "--help" || first === "-h" || first === "help") return { command: "help" };
  if (first === "--version" || first === "-v") return { command: "version" };

  let stateDir: string | undefined;
  let policyFile: string | undefined;
  // Read only by the commands that take a policy: init must not fail on it.
  const envPolicy = (): string | undefined =>
    env.MCP_SECURE_LOCAL_POLICY ? cliPath("MCP_SECURE_LOCAL_POLICY", env.MCP_SECURE_LOCAL_POLICY, home) : undefined;
  const rest: string[] = [];
  let maxLineBytes = DEFAULT_MAX_LINE_BYTES;
  let maxInFlight = DEFAULT_MAX_IN_FLIGHT;
  let maxResultMemory = DEFAULT_MAX_RESULT_MEMORY;
  let pageSize = DEFAULT_PAGE_SIZE;
  const envLevel = env.MCP_SECURE_LOCAL_LOG_LEVEL;
  let logLevel: LogLevel = isLogLevel(envLevel) ? envLevel : "info";
  let force = false;

  const command: CommandName = first === "check-policy" || first === "audit" || first === "init" ? first : "serve";
  // Each option is given once: a configuration that passes --policy twice (a wrapper adding its own)
  // would otherwise run on whichever came last, which its reader may not expect.
  const given = new Map<string, string>();
  for (let i = command === "serve" ? 0 : 1; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [named, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    // -p is the seed server's short form of --policy: client configurations written for it keep working.
    const flag = named === "-p" ? "--policy" : named;
    const value = () => needValue(flag, inline ?? argv[++i]);
    // Said before its value is read: the value of a flag that does not apply is beside the point.
    if (!COMMAND_FLAGS[command].includes(flag) && Object.values(COMMAND_FLAGS).some((flags) => flags.includes(flag))) {
      throw misplacedFlag(flag, command);
    }
    if (COMMAND_FLAGS[command].includes(flag)) {
      const earlier = given.get(flag);
      if (earlier !== undefined) throw new UsageError(`${flag} is given twice${earlier === named ? "" : ` (as ${earlier} and ${named})`}; give it once`);
      given.set(flag, named);
    }
    switch (flag) {
      case "--policy":
        policyFile = cliPath(flag, value(), home);
        break;
      case "--state-dir":
        stateDir = cliPath(flag, value(), home);
        break;
      case "--max-line-bytes":
        maxLineBytes = positiveInt(flag, value());
        if (maxLineBytes > MAX_LINE_BYTES_LIMIT) {
          throw new UsageError(`--max-line-bytes may be at most ${MAX_LINE_BYTES_LIMIT}: a message is decoded as one string, and no longer one can be made`);
        }
        break;
      case "--max-in-flight":
        maxInFlight = positiveInt(flag, value());
        break;
      case "--max-result-memory":
        maxResultMemory = positiveInt(flag, value());
        break;
      case "--page-size":
        pageSize = positiveInt(flag, value());
        break;
      case "--log-level": {
        const level = value();
        if (!isLogLevel(level)) throw new UsageError(`--log-level must be one of debug, info, notice, warning, error, critical, alert, emergency`);
        logLevel = level;
        break;
      }
      case "--force":
        force = true;
        break;
      case "--help":
      case "-h":
        // `audit verify --help` is the subcommand's own help.
        if (command === "audit") {
          rest.push(arg);
          break;
        }
        return { command: "help" };
      case "--version":
        return { command: "version" };
      default:
        rest.push(arg);
    }
  }
  const resolvedStateDir = stateDir ?? defaultStateDir(env, home);
  if (resolvedStateDir === "/proc" || resolvedStateDir.startsWith("/proc/")) {
    // Nothing can be stored there: said before anything tries, in words. Only the spelling is
    // seen here (this parser touches no file); a path that leads into /proc through a link
    // fails when the directory is made (util/make-directories.ts), and does not hang.
    throw new UsageError(`the state directory ${resolvedStateDir} is inside /proc; choose a directory on a disk`);
  }

  switch (command) {
    case "check-policy": {
      const file = rest[0];
      // An option it does not know is said as such, not read as the FILE (a misspelt --state-dir).
      const unknown = rest.find((arg) => arg.startsWith("-") && arg !== "-");
      if (unknown !== undefined) {
        throw new UsageError(`unknown option ${unknown} for check-policy (its options: ${COMMAND_FLAGS["check-policy"].join(", ")}; a FILE whose name starts with - is written ./-name)`);
      }
      if (file === undefined || rest.length > 1) throw new UsageError("check-policy needs exactly one FILE");
      return { command: "check-policy", file: resolve(file), stateDir: resolvedStateDir };
    }
    case "audit": {
      const sub = rest[0];
      // `audit --help`: no subcommand to pass it to, so the general help (exit 0), as for the other commands.
      if (sub === "--help" || sub === "-h") return { command: "help" };
      if (sub !== "verify" && sub !== "tail" && sub !== "pubkey") throw new UsageError('audit needs "verify", "tail" or "pubkey"');
      return { command: "audit", sub, argv: rest.slice(1), stateDir: resolvedStateDir, policyFile: policyFile ?? envPolicy() };
    }
    case "init":
      if (rest.length > 0) throw new UsageError(`init takes no argument ${JSON.stringify(rest[0])}`);
      return { command: "init", stateDir: resolvedStateDir, force };
    case "serve":
      if (rest.length > 0) throw new UsageError(`unknown argument ${JSON.stringify(rest[0])}`);
      return { command: "serve", policyFile: policyFile ?? envPolicy(), stateDir: resolvedStateDir, maxLineBytes, maxInFlight, maxResultMemory, pageSize, logLevel };
  }
}
