/**
 * Command decisions: may this executable run with these arguments, and may these
 * variables be added to its environment. Argv only: there is no shell anywhere, so
 * metacharacters in arguments are plain bytes and need no filtering.
 *
 * The executable is identified by what it really is, not by how it was named: the
 * name is looked up on the policy's PATH and every symlink is resolved, so an alias
 * (`/usr/bin/nc -> nc.openbsd`, a `mycurl` symlink) is judged as its target. Effects
 * (stat, realpath) come in through `CommandIo`, so the decision itself stays pure.
 *
 * A blocklist of names is a weak control: a copy or hard link under another name, or
 * any program that runs other programs (shells, interpreters with `-c`/`-e`, `env`,
 * `xargs`, `find -exec`, `git -c core.sshCommand=...`), runs what it likes. Whether
 * those may run is a policy decision: list them in `commands.blocked`, or better, name
 * exactly what may run in `commands.allowed`.
 */
import * as path from "node:path";
import type { CommandsPolicy } from "./policy-types.js";

/** The file-system questions the decision needs; the capability passes Node's, tests a fake. */
export interface CommandIo {
  /** The canonical path with every symlink resolved; rejects when it does not exist. */
  realpath(file: string): Promise<string>;
  /** Whether `file` (following symlinks) is a regular file this process may execute. */
  isExecutableFile(file: string): Promise<boolean>;
  /** `dev:ino` of the file (following symlinks), to see hard-linked copies; absent: not compared. */
  identity?: (file: string) => Promise<string | undefined>;
  /** The first bytes of the file (for a `#!` line); absent: interpreters are not checked. */
  head?: (file: string) => Promise<string | undefined>;
}

export interface CompiledCommandPolicy {
  /** Blocked names, lower case (matched case-insensitively, so `CURL` on a case-insensitive disk is caught). */
  readonly blockedNames: ReadonlySet<string>;
  readonly blockedPaths: readonly string[];
  /** Every blocked entry as written (paths normalized), for finding the programs they name. */
  readonly blocked: readonly string[];
  /** Absent: any executable that is not blocked. */
  readonly allowed?: readonly string[];
  /** The absolute directories of the PATH, in order; relative entries are dropped. */
  readonly searchPath: readonly string[];
  /** The PATH children get: `searchPath` joined. */
  readonly pathValue: string;
}

export type CommandDenialCode = "COMMAND_DENIED" | "COMMAND_NOT_FOUND" | "COMMAND_INVALID";
export type CommandDenial = { ok: false; code: CommandDenialCode; reason: string };
/** `path`: the real path to spawn; `argv0`: the name it was called by (multi-call binaries dispatch on it). */
export type CommandVerdict = { ok: true; path: string; argv0: string } | CommandDenial;

export type EnvVerdict = { ok: true; env: Record<string, string> } | { ok: false; code: "COMMAND_ENV_DENIED"; reason: string };

/** Thrown by `compileCommandPolicy` for an entry it cannot enforce. */
export class CommandPolicyError extends Error {
  readonly code = "POLICY_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "CommandPolicyError";
  }
}

/**
 * Programs that run other programs or inline code. Not blocked by this module on its
 * own; offered for the default policy, which should list them in `commands.blocked`.
 */
export const INDIRECT_EXECUTION_COMMANDS: readonly string[] = [
  "sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "busybox",
  "env", "xargs", "nohup", "nice", "timeout", "setsid", "stdbuf", "sudo", "su", "doas", "pkexec",
  "python", "python3", "perl", "ruby", "node", "php", "lua", "tclsh", "osascript", "pwsh",
];

const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
/**
 * The only variables a call may add (exact names, or prefixes ending in `_`): locale,
 * time zone, terminal and colour settings. Anything else can point a program at code or
 * configuration of the caller's choosing (XDG_CONFIG_HOME, GIT_*, EDITOR, PAGER,
 * OPENSSL_CONF, JAVA_TOOL_OPTIONS, ...), and names like that are too many to deny one by one.
 */
const ALLOWED_ENV_PREFIXES = ["LANG", "LANGUAGE", "LC_", "TZ", "TERM", "COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "CLICOLOR", "MSL_"];
/**
 * Variables a caller may not set: the loader (LD_*, DYLD_*), what the guard itself
 * fixes (PATH, HOME), and the ones that make a shell or an interpreter run code or
 * load modules from elsewhere.
 */
const DENIED_ENV_PREFIXES = ["LD_", "DYLD_", "BASH_FUNC_"];
const DENIED_ENV_NAMES: ReadonlySet<string> = new Set([
  "PATH", "HOME", "NODE_OPTIONS", "NODE_PATH", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "IFS", "PS4",
  "PROMPT_COMMAND", "GCONV_PATH", "LOCPATH", "HOSTALIASES", "PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME",
  "PERL5OPT", "PERL5LIB", "PERLLIB", "RUBYOPT", "RUBYLIB", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_EXEC_PATH",
  "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT",
]);

/** Compiles `commands` once; `env.PATH` is the search path for bare names (the server's, usually). */
export function compileCommandPolicy(policy: CommandsPolicy, env: { PATH: string }): CompiledCommandPolicy {
  const blockedNames = new Set<string>();
  const blockedPaths: string[] = [];
  const blocked: string[] = [];
  policy.blocked.forEach((entry, index) => {
    const kind = entryKind(entry, `commands.blocked[${index}]`);
    if (kind === "name") blockedNames.add(entry.toLowerCase());
    else blockedPaths.push(path.normalize(entry));
    blocked.push(kind === "name" ? entry : path.normalize(entry));
  });
  const allowed = policy.allowed?.map((entry, index) => {
    const kind = entryKind(entry, `commands.allowed[${index}]`);
    return kind === "name" ? entry : path.normalize(entry);
  });
  const searchPath: string[] = [];
  for (const dir of env.PATH.split(path.delimiter)) {
    // "", "." and other relative entries would make lookup depend on the working directory.
    if (dir === "" || !path.isAbsolute(dir) || dir.includes("\0")) continue;
    const normalized = path.normalize(dir);
    if (!searchPath.includes(normalized)) searchPath.push(normalized);
  }
  return {
    blockedNames,
    blockedPaths,
    blocked,
    ...(allowed === undefined ? {} : { allowed }),
    searchPath,
    pathValue: searchPath.join(path.delimiter),
  };
}

function entryKind(entry: unknown, where: string): "name" | "path" {
  if (typeof entry !== "string" || entry === "" || entry.includes("\0")) {
    throw new CommandPolicyError(`${where}: must be a non-empty executable name or absolute path`);
  }
  if (!entry.includes("/")) return "name";
  if (path.isAbsolute(entry)) return "path";
  throw new CommandPolicyError(`${where}: "${entry}" is a relative path; use a bare name (looked up on PATH) or an absolute path`);
}

/**
 * May `file` run with `args`? Resolves `file` (a bare name on the policy's PATH, or
 * an absolute path; relative paths are refused) to its real path, then checks it
 * against `commands.blocked` (by the given name, the found path, the real path and
 * the real path of every blocked entry) and, when present, `commands.allowed`.
 */
export function checkCommand(
  compiled: CompiledCommandPolicy,
  file: string,
  args: readonly string[],
  io: CommandIo,
): Promise<CommandVerdict> {
  return checkProgram(compiled, file, args, io, 0);
}

/**
 * How many `#!` interpreters deep a script may go. Linux follows a script whose interpreter
 * is itself a script up to 4 levels (then fails with ELOOP); every level is checked.
 */
const MAX_INTERPRETER_DEPTH = 4;

/** `checkCommand` for a program `depth` interpreters below the command that was asked for. */
async function checkProgram(
  compiled: CompiledCommandPolicy,
  file: string,
  args: readonly string[],
  io: CommandIo,
  depth: number,
): Promise<CommandVerdict> {
  if (typeof file !== "string" || file === "") return deny("COMMAND_INVALID", "the command must be a non-empty string");
  if (file.includes("\0")) return deny("COMMAND_INVALID", "the command contains a NUL byte");
  if (!Array.isArray(args)) return deny("COMMAND_INVALID", "arguments must be an array of strings");
  for (const [index, arg] of args.entries()) {
    if (typeof arg !== "string") return deny("COMMAND_INVALID", `argument ${index} is not a string`);
    if (arg.includes("\0")) return deny("COMMAND_INVALID", `argument ${index} contains a NUL byte`);
  }

  const located = await locate(compiled, file, io);
  if (!located.ok) return located;
  const found = located.path;
  let real: string;
  try {
    real = await io.realpath(found);
  } catch {
    return deny("COMMAND_NOT_FOUND", `${file}: cannot resolve ${found}`);
  }

  const names = [path.basename(file), path.basename(found), path.basename(real)];
  const byName = names.find((name) => compiled.blockedNames.has(name.toLowerCase()));
  if (byName !== undefined) return deny("COMMAND_DENIED", `${file} refused: "${byName.toLowerCase()}" is in commands.blocked`);
  const byPath = compiled.blockedPaths.find((entry) => entry === found || entry === real);
  if (byPath !== undefined) return deny("COMMAND_DENIED", `${file} refused: ${byPath} is in commands.blocked`);

  // The same program under another name: compare real paths (symlinks) and device/inode (hard links)
  // with every blocked entry's.
  const blockedReal = await Promise.all(compiled.blocked.map((entry) => resolveEntry(compiled, entry, io)));
  const alias = await sameProgramAs(compiled.blocked, blockedReal, real, io);
  if (alias !== undefined) {
    return deny("COMMAND_DENIED", `${file} refused: it is the same program as "${alias}" (${real}), which is in commands.blocked`);
  }
  // A script runs its `#!` interpreter (through `env` too), which may itself be a script that runs
  // another: each one in the chain is checked like the command, and one that cannot be checked
  // (or is refused for any reason) refuses the script.
  const shebang = await shebangProgram(real, io);
  if (shebang !== undefined) {
    const refusal = await checkInterpreter(compiled, file, shebang, io, depth);
    if (refusal !== undefined) return refusal;
  }

  if (compiled.allowed !== undefined) {
    const allowedReal = await Promise.all(compiled.allowed.map((entry) => resolveEntry(compiled, entry, io)));
    // Real path and name both: a multi-call binary (busybox) is one file that acts on the name it is called by.
    const permitted = allowedReal.some((entry) => entry !== undefined && entry.real === real && path.basename(entry.found) === path.basename(found));
    if (!permitted) {
      return deny("COMMAND_DENIED", `${file} refused: not in commands.allowed (allowed: ${compiled.allowed.join(", ") || "nothing"})`);
    }
  }
  return { ok: true, path: real, argv0: file };
}

async function locate(compiled: CompiledCommandPolicy, file: string, io: CommandIo): Promise<{ ok: true; path: string } | CommandDenial> {
  if (file.includes("/")) {
    if (!path.isAbsolute(file)) {
      return deny("COMMAND_DENIED", `${file} refused: relative paths are not allowed; give a name found on PATH or an absolute path`);
    }
    const normalized = path.normalize(file);
    if (await io.isExecutableFile(normalized)) return { ok: true, path: normalized };
    return deny("COMMAND_NOT_FOUND", `${file}: no executable file at that path`);
  }
  const found = await searchPath(compiled, file, io);
  if (found !== undefined) return { ok: true, path: found };
  return deny("COMMAND_NOT_FOUND", `${file}: not found on PATH (${compiled.pathValue || "empty"})`);
}

async function searchPath(compiled: CompiledCommandPolicy, name: string, io: CommandIo): Promise<string | undefined> {
  for (const dir of compiled.searchPath) {
    const candidate = path.join(dir, name);
    if (await io.isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/** Where a policy entry points today, or undefined when it is not installed. */
async function sameProgramAs(
  blocked: readonly string[],
  resolved: ReadonlyArray<{ found: string; real: string } | undefined>,
  real: string,
  io: CommandIo,
): Promise<string | undefined> {
  const byReal = blocked.find((_entry, index) => resolved[index]?.real === real);
  if (byReal !== undefined || io.identity === undefined) return byReal;
  const identity = await io.identity(real);
  if (identity === undefined) return undefined;
  const identities = await Promise.all(resolved.map((entry) => (entry === undefined ? Promise.resolve(undefined) : io.identity!(entry.real))));
  return blocked.find((_entry, index) => identities[index] === identity);
}

async function checkInterpreter(
  compiled: CompiledCommandPolicy,
  file: string,
  shebang: Shebang,
  io: CommandIo,
  depth: number,
): Promise<CommandDenial | undefined> {
  const { program, viaEnv } = shebang;
  if (!viaEnv && !path.isAbsolute(program)) {
    // The kernel does not search PATH for an interpreter: it opens this name in the working directory.
    return deny("COMMAND_DENIED", `${file} refused: its #! interpreter "${program}" is not an absolute path, so what runs depends on the working directory`);
  }
  if (depth >= MAX_INTERPRETER_DEPTH) {
    return deny("COMMAND_DENIED", `${file} refused: its #! interpreters are scripts more than ${MAX_INTERPRETER_DEPTH} levels deep`);
  }
  const verdict = await checkProgram(compiled, program, [], io, depth + 1);
  if (verdict.ok) return undefined;
  return deny("COMMAND_DENIED", `${file} refused: it is a script run by ${program}, and ${verdict.reason.replace(/^.*? refused: /, "")}`);
}

interface Shebang {
  /** The interpreter, or the program `env` is asked to find (on the PATH children get, which is the policy's). */
  program: string;
  viaEnv: boolean;
}

/** GNU and BSD `env` options that take the next word as their argument. */
const ENV_OPTIONS_WITH_ARGUMENT: ReadonlySet<string> = new Set(["-u", "--unset", "-C", "--chdir", "-P"]);

/** The program a `#!` line runs: the interpreter, or what `env` is asked to find. */
async function shebangProgram(real: string, io: CommandIo): Promise<Shebang | undefined> {
  const head = await io.head?.(real);
  if (head === undefined || !head.startsWith("#!")) return undefined;
  const words = head.slice(2).split("\n", 1)[0]!.trim().split(/\s+/).filter((word) => word.length > 0);
  const [interpreter, ...rest] = words;
  if (interpreter === undefined) return undefined;
  // A relative `env` is opened in the working directory like any relative interpreter: not a PATH search.
  if (!path.isAbsolute(interpreter) || path.basename(interpreter) !== "env") return { program: interpreter, viaEnv: false };
  // `#!/usr/bin/env [-S] [-i] [-u NAME] [NAME=value ...] program`: the first word that is neither
  // an option (nor an option's argument) nor an assignment. None: `env` itself is what runs.
  for (let i = 0; i < rest.length; i++) {
    const word = rest[i]!;
    if (word === "--") return { program: rest[i + 1] ?? interpreter, viaEnv: rest[i + 1] !== undefined };
    if (ENV_OPTIONS_WITH_ARGUMENT.has(word)) {
      i++;
      continue;
    }
    if (!word.startsWith("-") && !word.includes("=")) return { program: word, viaEnv: true };
  }
  return { program: interpreter, viaEnv: false };
}

async function resolveEntry(compiled: CompiledCommandPolicy, entry: string, io: CommandIo): Promise<{ found: string; real: string } | undefined> {
  try {
    const found = path.isAbsolute(entry) ? entry : await searchPath(compiled, entry, io);
    if (found === undefined) return undefined;
    return { found, real: await io.realpath(found) };
  } catch {
    return undefined;
  }
}

/**
 * May these variables be added to a child's scrubbed environment? Names must be
 * identifiers and not on the denied list; values may not contain NUL.
 */
export function checkExecEnv(env: Record<string, string> | undefined): EnvVerdict {
  const out: Record<string, string> = {};
  if (env === undefined) return { ok: true, env: out };
  if (typeof env !== "object" || env === null || Array.isArray(env)) {
    return { ok: false, code: "COMMAND_ENV_DENIED", reason: "env must be an object of string values" };
  }
  for (const [name, value] of Object.entries(env)) {
    if (!NAME_PATTERN.test(name)) {
      return { ok: false, code: "COMMAND_ENV_DENIED", reason: `environment variable name "${name.slice(0, 60)}" is not a valid identifier` };
    }
    const upper = name.toUpperCase();
    if (
      DENIED_ENV_NAMES.has(upper) ||
      DENIED_ENV_PREFIXES.some((prefix) => upper.startsWith(prefix)) ||
      !ALLOWED_ENV_PREFIXES.some((prefix) => upper === prefix || (prefix.endsWith("_") && upper.startsWith(prefix)))
    ) {
      return { ok: false, code: "COMMAND_ENV_DENIED", reason: `environment variable ${name} may not be set: it can change which code runs` };
    }
    if (typeof value !== "string" || value.includes("\0")) {
      return { ok: false, code: "COMMAND_ENV_DENIED", reason: `environment variable ${name} must be a string without NUL bytes` };
    }
    out[name] = value;
  }
  return { ok: true, env: out };
}

function deny(code: CommandDenialCode, reason: string): CommandDenial {
  return { ok: false, code, reason };
}
