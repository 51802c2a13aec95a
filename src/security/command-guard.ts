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
import { endianness } from "node:os";
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
  /**
   * The first `EXEC_HEADER_BYTES` bytes of the file as latin1 (how the kernel will run it: native,
   * `#!` interpreter, or neither); undefined when unreadable. Absent: formats are not checked.
   */
  head?: (file: string) => Promise<string | undefined>;
  /**
   * Whether tools may rewrite the file through `ctx.fs` (the filesystem policy allows writing it).
   * A program or interpreter they may rewrite runs whatever was last written there, so it is
   * refused. Absent: not asked.
   */
  rewritable?: (file: string) => Promise<boolean>;
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
 * Locale variables, whose values glibc and gettext turn into directories: `LC_ALL=/dir` loads
 * locale data from there, `LANGUAGE=../../../tmp/x` message catalogs (every translated message, and
 * the printf formats among them, of the caller's choosing). Their values may not hold a "/".
 */
const LOCALE_NAMES = /^(LANG|LANGUAGE|LC_[A-Z_]+)$/;
/** The allowed names as a refusal states them: `LC_*` for a prefix. */
const ALLOWED_ENV_TEXT = ALLOWED_ENV_PREFIXES.map((prefix) => (prefix.endsWith("_") ? `${prefix}*` : prefix)).join(", ");
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
  // Named in both lists: say which one wins, or the operator looks for a typo in `allowed`.
  const alsoAllowed = (entry: string): string =>
    compiled.allowed?.some((allowed) => allowed === entry || path.basename(allowed).toLowerCase() === entry.toLowerCase()) === true
      ? " (commands.allowed names it too, but blocked wins)"
      : "";
  if (byName !== undefined) return deny("COMMAND_DENIED", `${file} refused: "${byName.toLowerCase()}" is in commands.blocked${alsoAllowed(byName)}`);
  const byPath = compiled.blockedPaths.find((entry) => entry === found || entry === real);
  if (byPath !== undefined) return deny("COMMAND_DENIED", `${file} refused: ${byPath} is in commands.blocked${alsoAllowed(byPath)}`);

  // The same program under another name: compare real paths (symlinks) and device/inode (hard links)
  // with every blocked entry's.
  const blockedReal = await Promise.all(compiled.blocked.map((entry) => resolveEntry(compiled, entry, io)));
  const alias = await sameProgramAs(compiled.blocked, blockedReal, real, io);
  if (alias !== undefined) {
    return deny("COMMAND_DENIED", `${file} refused: it is the same program as "${alias}" (${real}), which is in commands.blocked`);
  }
  // A script runs its `#!` interpreter (through `env` too), which may itself be a script that runs
  // another: each one in the chain is checked like the command, and one that cannot be checked
  // (or is refused for any reason) refuses the script. A file that is neither a native executable
  // nor a script the kernel accepts fails with ENOEXEC, and then Node (like execvp) runs it with
  // /bin/sh, a shell the policy never sees: refused.
  const format = await programFormat(real, io);
  if (format.kind === "foreign") {
    return deny(
      "COMMAND_DENIED",
      `${file} refused: ${format.why}, so the system would run it with /bin/sh (or a binfmt_misc handler), which this check cannot judge${format.advice === undefined ? "" : `; ${format.advice}`}`,
    );
  }
  if (format.kind === "script") {
    const refusal = await checkInterpreter(compiled, file, format.shebang, io, depth);
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
  // Allowed or not blocked names a file, not its bytes: a file the tools may write is whatever they wrote last.
  if (io.rewritable !== undefined && (await io.rewritable(real))) {
    return deny(
      "COMMAND_DENIED",
      `${file} refused: tools may rewrite ${real} (filesystem.allowed_paths lets them write there), so it runs whatever was written last; move it elsewhere or cover it with filesystem.write_denied_paths`,
    );
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
  // The directories are not named: the message reaches the model, and a PATH tells it the user's
  // name, home and tooling (the operator knows the PATH the client started the server with).
  const where = compiled.searchPath.length === 0 ? "the server's PATH is empty" : `in none of the ${compiled.searchPath.length} directories of the server's PATH`;
  return deny("COMMAND_NOT_FOUND", `${file}: not found on PATH (${where}); allowed programs may also be given by absolute path`);
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
  if (shebang.unjudgeable !== undefined) return deny("COMMAND_DENIED", `${file} refused: ${shebang.unjudgeable}`);
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
  /** Set when the line makes `env` look elsewhere than the policy's PATH: why it cannot be judged. */
  unjudgeable?: string;
}

/**
 * How much of a file Linux reads to decide how to run it (BINPRM_BUF_SIZE): a `#!` line must end
 * within it. `CommandIo.head` reads this much.
 */
export const EXEC_HEADER_BYTES = 256;

/** The first bytes of a Mach-O file (thin and universal, either byte order): what macOS runs itself. */
const MACH_O_MAGIC: readonly string[] = ["\xfe\xed\xfa\xce", "\xfe\xed\xfa\xcf", "\xce\xfa\xed\xfe", "\xcf\xfa\xed\xfe", "\xca\xfe\xba\xbe", "\xca\xfe\xba\xbf"];

/**
 * ELF machines (e_machine) this machine's kernel runs, by Node's `process.arch`, 32-bit compat
 * included. Another arch: the machine is not compared.
 */
const ELF_MACHINES: Readonly<Record<string, readonly number[]>> = {
  x64: [62, 3],
  ia32: [3],
  arm64: [183, 40],
  arm: [40],
  riscv64: [243],
  ppc64: [21, 20],
  s390x: [22],
  loong64: [258],
};

type ProgramFormat = { kind: "native" | "unread" } | { kind: "script"; shebang: Shebang } | { kind: "foreign"; why: string; advice?: string };

const ADD_A_SHEBANG = "start it with a #! line naming its interpreter";

/** How the kernel runs this file: itself, through a `#!` interpreter, or not at all (ENOEXEC). */
async function programFormat(real: string, io: CommandIo): Promise<ProgramFormat> {
  const head = await io.head?.(real);
  // Unreadable: the kernel still runs a native executable, but no interpreter (nor /bin/sh) could read a script.
  if (head === undefined) return { kind: "unread" };
  if (head.startsWith("#!")) {
    const line = parseShebangLine(head);
    if ("invalid" in line) return { kind: "foreign", why: `its #! line ${line.invalid}`, advice: ADD_A_SHEBANG };
    return { kind: "script", shebang: interpreterOf(line.interpreter, line.argument) };
  }
  if (process.platform === "darwin" && MACH_O_MAGIC.some((magic) => head.startsWith(magic))) return { kind: "native" };
  if (head.startsWith("\x7fELF")) {
    const problem = elfHeaderProblem(Buffer.from(head, "latin1"));
    return problem === undefined ? { kind: "native" } : { kind: "foreign", why: `it starts like an ELF executable, but ${problem}` };
  }
  return { kind: "foreign", why: head.length === 0 ? "it is an empty file" : "it is neither a native executable nor a #! script", advice: ADD_A_SHEBANG };
}

/**
 * What in an ELF header makes Linux refuse the file (ENOEXEC) before anything of it runs: the
 * checks of fs/binfmt_elf.c that the first 64 bytes can answer (class, byte order, type, machine,
 * program header size and count). Undefined: the header looks runnable. Not a loader: a file
 * that passes may still fail later, but a text file behind an ELF magic number does not pass.
 */
function elfHeaderProblem(header: Buffer): string | undefined {
  if (header.length < 64) return "its header is cut short";
  const elfClass = header[4];
  if (elfClass !== 1 && elfClass !== 2) return `its class (${elfClass}) is neither 32- nor 64-bit`;
  const nativeOrder = endianness() === "LE" ? 1 : 2;
  if (header[5] !== nativeOrder) return "its byte order is not this machine's";
  if (header[6] !== 1) return "its ELF version is not 1";
  const read16 = (offset: number): number => (nativeOrder === 1 ? header.readUInt16LE(offset) : header.readUInt16BE(offset));
  const type = read16(16);
  if (type !== 2 && type !== 3) return `it is not an executable or shared object (type ${type})`;
  const machine = read16(18);
  const machines = ELF_MACHINES[process.arch];
  if (machines !== undefined && !machines.includes(machine)) return `it is for another machine (e_machine ${machine})`;
  const [phentsize, phnum] = elfClass === 2 ? [read16(54), read16(56)] : [read16(42), read16(44)];
  if (phentsize !== (elfClass === 2 ? 56 : 32)) return "its program header size is wrong";
  // The kernel reads at most one page of program headers (ELF_MIN_ALIGN, 4 KiB at the least).
  if (phnum === 0 || phentsize * phnum > 4096) return `its program header count (${phnum}) is out of range`;
  return undefined;
}

/**
 * A `#!` line read exactly as Linux reads it (fs/binfmt_script.c): within the first 256 bytes
 * (zero-filled past the end of the file), words separated by spaces and tabs only (a carriage
 * return is part of the name), the interpreter ending at a space, tab or NUL, and the rest of the
 * line, trimmed, as ONE argument. A line the kernel rejects is reported as invalid: ENOEXEC.
 */
function parseShebangLine(head: string): { interpreter: string; argument: string | undefined } | { invalid: string } {
  const buf = head.length >= EXEC_HEADER_BYTES ? head.slice(0, EXEC_HEADER_BYTES) : head + "\0".repeat(EXEC_HEADER_BYTES - head.length);
  const last = EXEC_HEADER_BYTES - 1;
  const spaceOrTab = (i: number): boolean => buf[i] === " " || buf[i] === "\t";
  const nextNonSpaceOrTab = (from: number, to: number): number => {
    for (let i = from; i <= to; i++) if (!spaceOrTab(i)) return i;
    return -1;
  };
  const nextTerminator = (from: number, to: number): number => {
    for (let i = from; i <= to; i++) if (spaceOrTab(i) || buf[i] === "\0") return i;
    return -1;
  };
  // The kernel looks for the newline with strnchr, which stops at a NUL.
  let end = buf.indexOf("\n");
  const nul = buf.indexOf("\0");
  if (nul !== -1 && nul < end) end = -1;
  if (end === -1) {
    const first = nextNonSpaceOrTab(2, last);
    if (first === -1) return { invalid: "names no interpreter" };
    if (nextTerminator(first, last) === -1) return { invalid: `does not end within the first ${EXEC_HEADER_BYTES} bytes` };
    end = last;
  }
  while (spaceOrTab(end - 1)) end--;
  const name = nextNonSpaceOrTab(2, end);
  if (name === -1 || name === end) return { invalid: "names no interpreter" };
  const separator = nextTerminator(name, end);
  const argumentStart = separator !== -1 && buf[separator] !== "\0" ? nextNonSpaceOrTab(separator, end) : -1;
  const interpreter = buf.slice(name, separator === -1 ? end : separator);
  const argument = argumentStart === -1 ? undefined : buf.slice(argumentStart, end).split("\0", 1)[0]!;
  return { interpreter, argument };
}

/** `env` short options that take an argument (attached, or the next word). */
const ENV_SHORT_OPTIONS_WITH_ARGUMENT = "uC";
/**
 * `env` options after which the program it finds is not the one the policy's PATH names: `-i`
 * empties the environment (execvp then searches a built-in path), BSD `-P` names another path,
 * and `-a` (`--argv0`) calls it by another name, which a multi-call binary acts on.
 */
const ENV_UNJUDGEABLE_SHORT: Readonly<Record<string, string>> = { i: "with an emptied environment (-i)", P: "with another search path (-P)", a: "with another argv[0] (-a)" };
/** GNU `env` long options; getopt also takes any unambiguous prefix (`--split`). */
const ENV_LONG_OPTIONS: readonly string[] = [
  "--ignore-environment", "--null", "--unset", "--chdir", "--split-string", "--argv0", "--block-signal", "--default-signal",
  "--ignore-signal", "--list-signal-handling", "--debug", "--help", "--version",
];

/** The program a `#!` line runs: the interpreter, or what `env` is asked to find. */
function interpreterOf(interpreter: string, argument: string | undefined): Shebang {
  // A relative `env` is opened in the working directory like any relative interpreter: not a PATH search.
  if (!path.isAbsolute(interpreter) || path.basename(interpreter) !== "env") return { program: interpreter, viaEnv: false };
  // Linux passes the rest of the line as one argument, which `env -S` (and the BSD kernels) split into
  // words; reading every word on its own finds the program either way. `env [-S] [-u NAME]
  // [NAME=value ...] program`: the first word that is neither an option (nor an option's argument)
  // nor an assignment. None: `env` itself is what runs.
  const words = splitWords(argument ?? "");
  const unjudgeable = (why: string): Shebang => ({
    program: interpreter,
    viaEnv: false,
    unjudgeable: `its #! line runs env ${why}, so which program runs cannot be judged`,
  });
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (word === "--") return words[i + 1] === undefined ? { program: interpreter, viaEnv: false } : { program: words[i + 1]!, viaEnv: true };
    if (word === "-") return unjudgeable("with an emptied environment (-)");
    if (word.startsWith("--")) {
      const [name, attached] = splitOnce(word, "=");
      const option = ENV_LONG_OPTIONS.includes(name) ? name : onlyOne(ENV_LONG_OPTIONS.filter((candidate) => candidate.startsWith(name)));
      const value = (): string | undefined => attached ?? words[++i];
      if (option === "--ignore-environment") return unjudgeable(`with an emptied environment (${word})`);
      if (option === "--argv0") return unjudgeable(`with another argv[0] (${word})`);
      // `--split-string=words`: the value holds words of their own; without `=` they are the next words anyway.
      if (option === "--split-string" && attached !== undefined) words.splice(i + 1, 0, ...splitWords(attached));
      if (option === "--unset" && value() === "PATH") return unjudgeable("with PATH unset");
      if (option === "--chdir") value();
      continue;
    }
    if (word.startsWith("-")) {
      // A cluster of short options (`-vS`, `-vu NAME`): one that takes an argument ends it, with the
      // rest of the word as its argument, or the next word when nothing is left. `-S` splits its
      // argument into further words: `-Ssh` names sh.
      for (let j = 1; j < word.length; j++) {
        const option = word[j]!;
        const why = ENV_UNJUDGEABLE_SHORT[option];
        if (why !== undefined) return unjudgeable(why);
        if (option === "S") {
          if (j + 1 < word.length) words.splice(i + 1, 0, word.slice(j + 1));
          break;
        }
        if (ENV_SHORT_OPTIONS_WITH_ARGUMENT.includes(option)) {
          const value = j + 1 < word.length ? word.slice(j + 1) : words[++i];
          if (option === "u" && value === "PATH") return unjudgeable("with PATH unset");
          break;
        }
      }
      continue;
    }
    if (word.includes("=")) {
      if (word.startsWith("PATH=")) return unjudgeable("with its own PATH");
      continue;
    }
    return { program: word, viaEnv: true };
  }
  return { program: interpreter, viaEnv: false };
}

function splitWords(text: string): string[] {
  return text.split(/[ \t\n\v\f\r]+/).filter((word) => word.length > 0);
}

function onlyOne(candidates: readonly string[]): string | undefined {
  return candidates.length === 1 ? candidates[0] : undefined;
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at === -1 ? [text, undefined] : [text.slice(0, at), text.slice(at + separator.length)];
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
      return {
        ok: false,
        code: "COMMAND_ENV_DENIED",
        reason: `environment variable ${name} may not be set: a call may add only ${ALLOWED_ENV_TEXT} (others can change which code runs; PATH and HOME are the server's)`,
      };
    }
    if (typeof value !== "string" || value.includes("\0")) {
      return { ok: false, code: "COMMAND_ENV_DENIED", reason: `environment variable ${name} must be a string without NUL bytes` };
    }
    if (LOCALE_NAMES.test(upper) && value.includes("/")) {
      return {
        ok: false,
        code: "COMMAND_ENV_DENIED",
        reason: `environment variable ${name} must name a locale, not a path: "${value.slice(0, 60)}" contains "/"`,
      };
    }
    out[name] = value;
  }
  return { ok: true, env: out };
}

function deny(code: CommandDenialCode, reason: string): CommandDenial {
  return { ok: false, code, reason };
}
