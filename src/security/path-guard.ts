/**
 * The filesystem path decision: may this path be read or written under the policy?
 *
 * The policy is compiled once (allowed roots resolved to their real paths, deny globs
 * compiled); each check then costs one `realpath` and one `lstat` (two of each for a
 * write). Containment is decided on the real path, by whole components, and the
 * verdict carries that real path: callers must operate on `realPath`, never on the
 * input, so what was checked is what gets opened.
 *
 * Chosen behaviours (documented in the README):
 * - `~` and `~/x` expand to the configured home directory; `~user` is refused.
 * - `$HOME`, `%2e%2e` and full-width dots are literal file names: nothing is decoded.
 * - `file:` URLs are refused with a hint to pass the plain path.
 * - Relative paths resolve against the configured base directory, or are refused.
 * - Paths under `/proc` are refused: its links can point into other mount namespaces
 *   or at deleted files, so their resolution cannot be trusted.
 * - Deny rules match case-insensitively on NFC forms of both the path as given (normalized)
 *   and the real path (a path past ASCII also in Unicode mode and folded as file systems
 *   fold names: see denyMatcher), and a rule denies everything beneath what it matches.
 * - The server's own files (protectedPaths) are matched like deny rules, ignoring case and
 *   Unicode normalization: a case-insensitive file system opens them under any spelling.
 * - Root containment compares real paths byte for byte: on Linux two names that differ
 *   only in Unicode normalization are different files.
 */
// fs.promises is loaded on first use (it costs a cold start ~1.4 ms otherwise).
import { promises as fsp, realpathSync } from "node:fs";
import path from "node:path";
import picomatch from "picomatch";
import { foldName, LONE_SURROGATE_SOURCE } from "../util/text.js";
import type { FilesystemPolicy } from "./policy-types.js";

export const MAX_PATH_BYTES = 4096;
export const MAX_COMPONENT_BYTES = 255;

export type PathAccess = "read" | "write";

export type PathRefusalCode =
  | "PATH_INVALID"
  | "PATH_DENIED"
  | "PATH_OUTSIDE_ROOTS"
  | "PATH_SYMLINK"
  | "PATH_DANGLING_SYMLINK"
  | "PATH_LOOP"
  | "PATH_NOT_DIRECTORY"
  | "PATH_PERMISSION"
  | "PATH_UNRESOLVABLE"
  | "PATH_RACE";

/** Device and inode of a file as seen at check time; compared again after opening. */
export interface FileIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
}

export interface PathAllowed {
  readonly ok: true;
  readonly access: PathAccess;
  /** The canonical path to operate on: no symlinks, no `.`/`..`. */
  readonly realPath: string;
  /** Whether `realPath` existed at check time. */
  readonly exists: boolean;
  /** Set when `exists`. */
  readonly identity?: FileIdentity;
  readonly isDirectory: boolean;
  /**
   * Set when the path was, at check time, neither a regular file nor a directory (a device,
   * FIFO or socket): opening one may itself do something (a watchdog starts, a tape rewinds),
   * so readers and writers refuse it unopened.
   */
  readonly special?: true;
  /** The real parent directory and its identity when it existed (write checks only). */
  readonly parent?: { readonly path: string; readonly identity: FileIdentity };
}

export interface PathRefused {
  readonly ok: false;
  readonly code: PathRefusalCode;
  /** Says what was refused and why; names only the path the caller gave and the rule. */
  readonly reason: string;
}

export type PathVerdict = PathAllowed | PathRefused;

/** The subset of `lstat` results the guard needs (bigint stats: inodes can exceed 2^53). */
export interface PathStat {
  readonly dev: bigint;
  readonly ino: bigint;
  isSymbolicLink(): boolean;
  isDirectory(): boolean;
  /** Absent (test doubles): the file is taken as regular, and the checks after opening decide. */
  isFile?(): boolean;
}

/** The effects the check needs, injectable for tests. */
export interface PathIo {
  realpath(p: string): Promise<string>;
  lstat(p: string): Promise<PathStat>;
}

export const nodePathIo: PathIo = {
  realpath: (p) => fsp.realpath(p),
  lstat: (p) => fsp.lstat(p, { bigint: true }),
};

export interface PathPolicyOptions {
  /** Absolute directory that relative paths resolve against; absent: relative paths are refused. */
  baseDir?: string;
  /** Absolute home directory for `~`; absent: `~` is refused. */
  homeDir?: string;
  /** Resolves allowed roots at compile time (default: native realpath). */
  realpathSync?: (p: string) => string;
  /**
   * The server's own files (audit log, signing key, policy, state directory): never read or
   * written through the guard, whatever `allowed_paths` says. A policy that allows `~/**`
   * would otherwise let a tool rewrite the log it is audited by, read the key that signs it,
   * or widen the policy the next start loads.
   */
  protectedPaths?: readonly ProtectedPath[];
}

/**
 * Something of the server's: the entries of a directory that `names` picks (the audit log's
 * files, whose names grow as it rotates), or one file or directory by path. Compared on
 * names folded by `foldName` (case and Unicode normalization), as deny rules are: where
 * the server's files sit on a case-insensitive file system (macOS, WSL's /mnt/c, FAT,
 * ext4 casefold), `AUDIT/Audit.log` or `POLICY.YAML` opens them; where it does not, the
 * other spellings are refused too (fail closed).
 */
export type ProtectedPath = ProtectedNames | ProtectedFile;

/** Entries of one directory that belong to the server: `names` picks them by file name. */
export interface ProtectedNames {
  /** Absolute directory (resolved through its links at compile time too). */
  readonly dir: string;
  /** Gets a name of the directory folded by `foldName`, so it must compare folded names. */
  readonly names: (foldedName: string) => boolean;
  /** What they are, for the refusal: "the audit log", "the server's state directory". */
  readonly what: string;
}

/**
 * One file or directory (and everything beneath it), at its path and, when that is a
 * symbolic link at compile time, where the link leads: the server opens a policy file or
 * a configured signing key through its link, so a link into a dotfiles repository would
 * otherwise leave the real file in reach.
 */
export interface ProtectedFile {
  /** Absolute path. */
  readonly file: string;
  readonly what: string;
}

interface CompiledProtectedPath {
  /** The directory as given and as resolved (the same when it has no links), folded. */
  readonly dirs: readonly string[];
  readonly names: (name: string) => boolean;
  readonly what: string;
}

interface CompiledRoot {
  /** The entry as written in the policy. */
  readonly entry: string;
  /** The entry's static prefix as written (used only to word refusals on unresolvable paths). */
  readonly lexicalRoot: string;
  readonly realRoot: string;
  /** Tests the path relative to `realRoot`; absent: the whole tree is allowed. */
  readonly matchRest?: (relative: string) => boolean;
}

export interface CompiledDenyRule {
  readonly rule: string;
  /**
   * Names (lower case, ASCII) that every ASCII path the rule matches holds as components: its
   * literal segments (`**\/.config/git/**`: `.config`, `git`). Empty when it has none
   * (`**\/*.pem`). Only a shortcut for walks (`deny-scan.ts`); `test` is the judge.
   */
  readonly names: readonly string[];
  /**
   * For a rule written as an absolute path: the part before its first glob segment, as written
   * and as resolved (`/home/u/work` for `/home/u/work/**`; a plain path itself). Where such a
   * rule points outside the directories a walk covers, the sandbox looks there.
   */
  readonly bases: readonly string[];
  /**
   * Tests an absolute NFC path without its leading slash, and (for a path that is not all
   * ASCII) the same path folded by `foldName`.
   */
  readonly test: (pathWithoutLeadingSlash: string, folded: string | undefined) => boolean;
  /** Why the rule is not a usable glob (compiling it if not done yet); such a rule matches every path. */
  readonly problem: () => string | undefined;
}

export interface CompiledPathPolicy {
  readonly roots: readonly CompiledRoot[];
  readonly deny: readonly CompiledDenyRule[];
  /** Rules that refuse writes only (filesystem.write_denied_paths). */
  readonly writeDeny: readonly CompiledDenyRule[];
  /** The server's own files, refused for reads and writes. */
  readonly protectedPaths: readonly CompiledProtectedPath[];
  readonly baseDir: string | undefined;
  readonly homeDir: string | undefined;
  /** Allowed entries that were dropped (unresolvable roots); the server should log these. */
  readonly warnings: readonly string[];
}

/** A policy that cannot be compiled safely; thrown at startup, never per call. */
export class PathPolicyError extends Error {
  readonly code = "POLICY_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "PathPolicyError";
  }
}

/**
 * `flags` replaces picomatch's own (`i` for nocase), so deny rules pass `DENY_FLAGS`.
 * The `s` flag matters: picomatch writes `**` and its "not empty" lookahead with `.`,
 * which without it does not match a line break, and a Linux file name may hold one, so a
 * path like `/root/a\nb/secrets/key` (or a file named `\nid.pem`) would slip past
 * `**\/secrets/**` (or `**\/*.pem`).
 */
const GLOB_OPTIONS = { dot: true, windows: false, flags: "s" } as const;
const DENY_FLAGS = "is";
/**
 * With `u`, ignoring case is Unicode's simple case folding: `ſ` matches `s` and the Kelvin sign
 * `k`, as a case-insensitive file system (macOS, ext4 casefold) opens `.ſſh/id_rsa` as
 * `.ssh/id_rsa`; without it they stay apart. (`?` then matches a whole character, not half a pair.)
 */
const DENY_FLAGS_UNICODE = "isu";

export function compilePathPolicy(policy: FilesystemPolicy, options: PathPolicyOptions = {}): CompiledPathPolicy {
  const realpath = options.realpathSync ?? ((p: string) => realpathSync.native(p));
  for (const [name, value] of [["baseDir", options.baseDir], ["homeDir", options.homeDir]] as const) {
    if (value !== undefined && (!path.posix.isAbsolute(value) || value.includes("\0"))) {
      throw new PathPolicyError(`path guard option ${name} must be an absolute path, got ${quote(value)}`);
    }
  }
  const warnings: string[] = [];
  const roots: CompiledRoot[] = [];
  // Every entry is compiled before refusing, so one refusal names every entry to fix.
  const problems: string[] = [];
  for (const entry of policy.allowed_paths) {
    try {
      const root = compileRoot(entry, realpath, warnings);
      if (root !== undefined) roots.push(root);
    } catch (error) {
      if (!(error instanceof PathPolicyError)) throw error;
      problems.push(error.message);
    }
  }
  if (problems.length > 0) throw new PathPolicyError(problems.join("\n"));
  const deny = policy.denied_paths.map((rule) => compileDenyRule(rule, realpath, "denied_paths"));
  const writeDeny = (policy.write_denied_paths ?? []).map((rule) => compileDenyRule(rule, realpath, "write_denied_paths"));
  const protectedPaths = (options.protectedPaths ?? []).flatMap((entry) => compileProtectedPath(entry, realpath));
  return { roots, deny, writeDeny, protectedPaths, baseDir: options.baseDir, homeDir: options.homeDir, warnings };
}

function compileProtectedPath(entry: ProtectedPath, realpath: (p: string) => string): CompiledProtectedPath[] {
  if ("dir" in entry) return [compileProtectedNames(entry.dir, entry.names, entry.what, realpath)];
  const file = absoluteProtected(entry.file, "path");
  if (file === "/") throw new PathPolicyError('a protected path must name a file or directory, not "/"');
  const name = foldName(path.posix.basename(file));
  const compiled = [compileProtectedNames(path.posix.dirname(file), (entryName) => entryName === name, entry.what, realpath)];
  // Where its links lead now (a path that does not exist yet resolves to where it will be made).
  const real = resolveRootSync(file, realpath);
  if (real !== undefined && real !== "/" && !compiled[0]!.dirs.some((dir) => path.posix.join(dir, name) === foldName(real))) {
    const realName = foldName(path.posix.basename(real));
    compiled.push(compileProtectedNames(path.posix.dirname(real), (entryName) => entryName === realName, entry.what, realpath));
  }
  return compiled;
}

function compileProtectedNames(
  dir: string,
  names: (name: string) => boolean,
  what: string,
  realpath: (p: string) => string,
): CompiledProtectedPath {
  const lexical = absoluteProtected(dir, "directory");
  // A directory that cannot be resolved yet (made later) is matched as written.
  const dirs = [foldName(lexical), foldName(resolveRootSync(lexical, realpath) ?? lexical)];
  return { dirs: dirs[0] === dirs[1] ? [dirs[0]!] : dirs, names, what };
}

function absoluteProtected(p: string, kind: "path" | "directory"): string {
  if (!path.posix.isAbsolute(p) || p.includes("\0")) throw new PathPolicyError(`a protected ${kind} must be an absolute path, got ${quote(p)}`);
  return stripTrailingSlashes(path.posix.normalize(p)) || "/";
}

/** What protected entry `absolutePath` is, or lies under, compared folded: called on the path as given and as resolved. */
function protectedBy(entries: readonly CompiledProtectedPath[], absolutePath: string): string | undefined {
  if (entries.length === 0) return undefined;
  const folded = foldName(absolutePath);
  for (const entry of entries) {
    for (const dir of entry.dirs) {
      if (folded === dir || !isInside(dir, folded)) continue;
      const rest = folded.slice(dir === "/" ? 1 : dir.length + 1);
      const slash = rest.indexOf("/");
      if (entry.names(slash < 0 ? rest : rest.slice(0, slash))) return entry.what;
    }
  }
  return undefined;
}

function compileRoot(entry: string, realpath: (p: string) => string, warnings: string[]): CompiledRoot | undefined {
  if (typeof entry !== "string" || entry.includes("\0") || !entry.startsWith("/")) {
    throw new PathPolicyError(`filesystem.allowed_paths entry ${quote(entry)} must be an absolute path or glob`);
  }
  // Starting with "/" also rules out negated (`!`) entries.
  const scan = picomatch.scan(entry);
  const base = stripTrailingSlashes(scan.isGlob ? scan.base : entry) || "/";
  const glob = rootGlob(scan);
  const realRoot = resolveRootSync(base, realpath);
  if (realRoot === undefined) {
    warnings.push(`filesystem.allowed_paths entry ${quote(entry)} was dropped: its directory cannot be resolved`);
    return undefined;
  }
  const lexicalRoot = path.posix.normalize(base);
  if (glob === "" || glob === "**") return { entry, lexicalRoot, realRoot };
  let matcher: (relative: string) => boolean;
  try {
    matcher = rootMatcher(glob);
  } catch (error) {
    throw new PathPolicyError(`filesystem.allowed_paths entry ${quote(entry)} ${invalidGlob(error)}`);
  }
  return { entry, lexicalRoot, realRoot, matchRest: (relative) => matcher(relative) };
}

/** The glob part of an allowed entry (what follows its directory); "" when there is none. */
function rootGlob(scan: ReturnType<typeof picomatch.scan>): string {
  return scan.isGlob ? scan.glob.normalize("NFC") : "";
}

/** The matcher of an allowed entry's glob part; throws when it does not compile. */
function rootMatcher(glob: string): (relative: string) => boolean {
  return picomatch(withDirectoryItself(glob), { ...GLOB_OPTIONS, debug: true });
}

/**
 * Why the glob of an allowed_paths entry would not compile ("is not a valid glob (...)"),
 * or undefined. The same compile as the start's, without touching the disk: the policy
 * loader calls it to report each entry at its place in the file, with every other problem.
 */
export function allowedPathGlobProblem(entry: string): string | undefined {
  const glob = rootGlob(picomatch.scan(entry));
  if (glob === "" || glob === "**") return undefined;
  try {
    rootMatcher(glob);
    return undefined;
  } catch (error) {
    return invalidGlob(error);
  }
}

/** Real path of a root, or of its nearest existing parent plus the missing components. */
function resolveRootSync(base: string, realpath: (p: string) => string): string | undefined {
  const components = splitComponents(base);
  for (let keep = components.length; keep >= 0; keep--) {
    try {
      const real = realpath(joinComponents(components.slice(0, keep)));
      const rest = components.slice(keep);
      return rest.includes("..") ? undefined : appendComponents(real, rest);
    } catch (error) {
      if (errnoCode(error) !== "ENOENT") return undefined;
    }
  }
  /* c8 ignore next 2 -- realpath("/") does not fail with ENOENT */
  return undefined;
}

function compileDenyRule(rule: string, realpath: (p: string) => string, key: "denied_paths" | "write_denied_paths"): CompiledDenyRule {
  if (typeof rule !== "string" || rule === "" || rule.includes("\0")) {
    throw new PathPolicyError(`filesystem.${key} entry ${quote(rule)} is not a valid glob`);
  }
  const normalized = denyRuleText(rule);
  const segmentProblem = denyRuleSegmentProblem(normalized);
  if (segmentProblem !== undefined) throw new PathPolicyError(`filesystem.${key} entry ${quote(rule)} ${segmentProblem}`);
  const scan = picomatch.scan(normalized);
  if (scan.negated) throw new PathPolicyError(`filesystem.${key} entry ${quote(rule)} must not be negated`);
  const patterns: string[] = [];
  const bases: string[] = [];
  if (normalized.startsWith("/")) {
    patterns.push(normalized);
    // An absolute rule whose directory is a symlink must also catch the real spelling.
    const base = stripTrailingSlashes(scan.isGlob ? scan.base : normalized);
    if (base !== "") {
      bases.push(base);
      const real = resolveRootSync(base, realpath);
      if (real !== undefined && real !== base) {
        patterns.push(real.normalize("NFC") + normalized.slice(base.length));
        bases.push(real.normalize("NFC"));
      }
    }
  } else {
    patterns.push(anywherePattern(normalized));
  }
  // Compiled on the first check: a start does not pay for regexes that most sessions never use.
  let matcher: DenyTest | undefined;
  let problem: string | undefined;
  const compile = (): DenyTest => {
    try {
      return denyMatcher(patterns);
    } catch (error) {
      // Found only now (the start does not compile deny rules): fail closed, every path is refused.
      problem = `filesystem.${key} entry ${quote(rule)} ${invalidGlob(error)}`;
      return () => true;
    }
  };
  return {
    rule,
    names: requiredNames(patterns),
    bases,
    test: (p, folded) => (matcher ??= compile())(p, folded),
    problem: () => {
      matcher ??= compile();
      return problem;
    },
  };
}

/**
 * The names every path matched by one of `patterns` holds (see CompiledDenyRule.names): the
 * segments that are plain names in all of them. A segment with any character a glob may read
 * otherwise (`*?[]{}()!+@\\`, or past ASCII, where Unicode folding applies) is left out, so
 * the set can only be smaller than the truth, never name what a matched path may lack.
 * A group, class or quoted string may hold a slash (`{x/secrets/q,y}` matches `y`, `[a/b]` one
 * character), so a plain segment counts only when no such syntax comes before it or none after
 * it; and picomatch passes a `|` to its regex as it is, an alternation even outside any group
 * (`a/secrets|b` matches `b`), so a glob holding one has no names at all.
 */
function requiredNames(patterns: readonly string[]): string[] {
  const literal = (glob: string): Set<string> => {
    const names = new Set<string>();
    if (glob.includes("|")) return names;
    let [first, last] = [glob.length, -1];
    for (let index = 0; index < glob.length; index++) {
      if (!GROUP_SYNTAX.has(glob.charAt(index))) continue;
      first = Math.min(first, index);
      last = index;
    }
    let start = 0;
    for (const segment of glob.split("/")) {
      const end = start + segment.length;
      if ((end <= first || start > last) && /^[A-Za-z0-9._ -]+$/.test(segment) && segment !== "." && segment !== "..") names.add(segment.toLowerCase());
      start = end + 1;
    }
    return names;
  };
  const [first, ...rest] = patterns.map(literal);
  return first === undefined ? [] : [...first].filter((name) => rest.every((set) => set.has(name)));
}

/** What opens or closes a stretch of a glob that may span a slash: groups, extglobs, classes, quotes, escapes. */
const GROUP_SYNTAX = new Set(["{", "}", "(", ")", "[", "]", '"', "\\"]);

/** A relative rule (`*.pem`, `secrets/**`) may match anywhere: the broader reading fails closed. */
function anywherePattern(normalized: string): string {
  return normalized.startsWith("**/") || normalized === "**" ? normalized : `**/${normalized}`;
}

/** A compiled deny rule's test: a path in NFC, and the same path folded when it is not all ASCII. */
type DenyTest = (nfc: string, folded: string | undefined) => boolean;

/**
 * One matcher for a deny rule's patterns; throws when one does not compile. A path of ASCII is
 * tested as written (the regex ignores case). A path that is not all ASCII is denied when any
 * reading matches: as written, in Unicode mode (simple case folding: `ſ` is `s`, the Kelvin sign
 * `k`), and folded as a case-insensitive file system folds names (`ß` is `ss`, `ﬁ` is `fi`:
 * ext4 casefold opens `.ßh/id_rsa` as `.ssh/id_rsa`). The glob itself is never rewritten, so
 * its syntax (`?`, classes, escapes) keeps its meaning.
 */
function denyMatcher(patterns: readonly string[]): DenyTest {
  const relative = patterns.flatMap((p) => withDirectoryItself(p.replace(/^\/+/, "")));
  // `debug` makes picomatch throw on a pattern whose regex does not compile (`{a,b`, `[z-a]`);
  // without it, it returns a regex that never matches: a deny rule that silently denies nothing.
  const plain = picomatch(relative, { ...GLOB_OPTIONS, nocase: true, flags: DENY_FLAGS, debug: true });
  // Made on the first path past ASCII: a case-insensitive Unicode regex loads case-folding
  // tables (~6 MiB of the process), which a session of ASCII paths never needs.
  let unicode: ((p: string) => boolean) | undefined;
  const unicodeTest = (p: string): boolean => {
    if (unicode === undefined) {
      try {
        unicode = picomatch(relative, { ...GLOB_OPTIONS, nocase: true, flags: DENY_FLAGS_UNICODE, debug: true });
      } catch {
        // A glob whose translation Unicode mode refuses (`x\-y`): the folded path still meets it.
        unicode = plain;
      }
    }
    return unicode(p);
  };
  return (nfc, folded) => plain(nfc) || (folded !== undefined && (unicodeTest(nfc) || plain(folded) || unicodeTest(folded)));
}

/** Whether a path needs its other readings tested (see denyMatcher): any character past ASCII. */
// eslint-disable-next-line no-control-regex -- the ASCII range, controls included
const NOT_ASCII = /[^\x00-\x7f]/;

/**
 * Why a `denied_paths` / `write_denied_paths` rule, as written, would not compile ("is not
 * a valid glob (...)", "must not be negated"), or undefined. The server compiles deny rules
 * on first use (and refuses every path for one that does not compile); the policy loader
 * calls this to report them at their place in the file. The spelling through a symbolic link,
 * added at compile time, is checked by `denyRuleProblems`.
 */
export function denyRuleGlobProblem(rule: string): string | undefined {
  const normalized = denyRuleText(rule);
  const segmentProblem = denyRuleSegmentProblem(normalized);
  if (segmentProblem !== undefined) return segmentProblem;
  if (picomatch.scan(normalized).negated) return "must not be negated";
  try {
    denyMatcher([normalized.startsWith("/") ? normalized : anywherePattern(normalized)]);
    return undefined;
  } catch (error) {
    return invalidGlob(error);
  }
}

/**
 * A deny rule as it is matched: NFC, without trailing slashes ("**\/.ssh/" means the directory:
 * with the slash picomatch would match nothing), without `.` segments ("./.env", "a/./b") and
 * without empty ones ("**\//.env", "secrets//**"), which picomatch keeps as literal parts that
 * no real path has: such a rule denied nothing.
 */
function denyRuleText(rule: string): string {
  const parts = rule.normalize("NFC").split("/");
  const kept = parts.filter((part, index) => (part !== "." && part !== "") || (index === 0 && (part === "" || parts.length === 1)));
  return stripTrailingSlashes(kept.join("/")) || (rule.startsWith("/") ? "/" : ".");
}

/** Why a deny rule (as denyRuleText reads it) would deny nothing: a `..` segment, or no segment but `.`. */
function denyRuleSegmentProblem(normalized: string): string | undefined {
  if (normalized.includes("/../") || normalized.startsWith("../") || normalized.endsWith("/..") || normalized === "..") return PARENT_SEGMENT;
  if (normalized === ".") return NO_SEGMENT;
  return undefined;
}

/** Why a deny rule with a `..` segment is refused: picomatch reads it literally, so it would deny nothing. */
const PARENT_SEGMENT = 'must not hold a ".." segment, which no real path has (so it would deny nothing); write the path it means';
/** Why "." or "./" is refused: a `.` segment is read as nothing, and nothing is left to deny. */
const NO_SEGMENT = 'names no path (a "." segment is read as nothing, so it would deny nothing); write the path it means';

function invalidGlob(error: unknown): string {
  return `is not a valid glob (${globErrorDetail(error)}); check its brackets and braces`;
}

/**
 * Why picomatch could not compile a glob, in words: for a regex that does not compile, only
 * the reason ("Unterminated group"). The regex is picomatch's translation, not what the owner
 * wrote, and its backslashes would read doubled where messages are escaped (`printable`).
 */
export function globErrorDetail(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return /^Invalid regular expression: \/.*\/[a-z]*: ([^/]+)$/s.exec(message)?.[1] ?? message;
}

/**
 * Compiles every deny rule now and returns why any of them cannot be used. The server
 * compiles deny rules on first use (and a broken one then refuses every path);
 * `check-policy` calls this to report them before a server runs with them.
 */
export function denyRuleProblems(compiled: CompiledPathPolicy): string[] {
  return [...compiled.deny, ...compiled.writeDeny].map((deny) => deny.problem()).filter((problem): problem is string => problem !== undefined);
}

/** `X/**` also names X itself (the seed rejected the directory `secrets` for `**\/secrets/**` only beneath it). */
function withDirectoryItself(glob: string): string[] {
  return glob.endsWith("/**") && glob.length > 3 ? [glob, glob.slice(0, -3)] : [glob];
}

// ---------------------------------------------------------------------------
// The check
// ---------------------------------------------------------------------------

export async function checkPath(
  compiled: CompiledPathPolicy,
  input: unknown,
  access: PathAccess,
  io: PathIo = nodePathIo,
): Promise<PathVerdict> {
  const shaped = toAbsolute(compiled, input);
  if (!shaped.ok) return shaped;
  const { absolute, shown } = shaped;
  const lexical = path.posix.normalize(absolute);

  if (underProc(compiled, lexical)) return procVerdict(shown);
  const lexicalOwn = protectedBy(compiled.protectedPaths, lexical);
  if (lexicalOwn !== undefined) return protectedVerdict(compiled, shown, [lexical], lexicalOwn);
  const lexicalRule = deniedBy(compiled.deny, lexical);
  if (lexicalRule !== undefined) return deniedVerdict(compiled.deny, shown, lexicalRule);
  if (access === "write") {
    const writeRule = deniedBy(compiled.writeDeny, lexical);
    if (writeRule !== undefined) {
      // Refused either way; outside every allowed directory it is said to be outside, since
      // "may be read but not written" would send the model to read what is refused too.
      const underRoot = compiled.roots.some((root) => isInside(root.lexicalRoot, lexical) || isInside(root.realRoot, lexical));
      return underRoot ? writeDeniedVerdict(compiled, shown, writeRule) : outsideVerdict(shown, false);
    }
  }
  if (compiled.roots.length === 0) {
    return refuse("PATH_OUTSIDE_ROOTS", `path ${shown} is refused: the filesystem policy allows no directories`);
  }

  const components = splitComponents(absolute);
  const resolved =
    access === "write" && components.length > 0
      ? await resolveForWrite(components, io)
      : await resolveExisting(components, io);
  if (!resolved.ok) {
    // Say "outside" for paths that never were inside, so errors do not probe the rest of the disk.
    if (!compiled.roots.some((root) => isInside(root.lexicalRoot, lexical) || isInside(root.realRoot, lexical))) {
      return outsideVerdict(shown, false);
    }
    return refuse(resolved.code, resolutionReason(resolved.code, shown));
  }

  if (underProc(compiled, resolved.realPath)) return procVerdict(shown);
  const decision = decideRealPath(compiled, resolved.realPath);
  if (!decision.ok) {
    if (decision.code === "PATH_PROTECTED") return protectedVerdict(compiled, shown, [lexical, resolved.realPath], decision.what);
    return decision.code === "PATH_DENIED"
      ? deniedVerdict(compiled.deny, shown, decision.rule)
      : outsideVerdict(shown, resolved.realPath !== lexical);
  }
  if (access === "write") {
    const writeRule = deniedBy(compiled.writeDeny, resolved.realPath);
    if (writeRule !== undefined) return writeDeniedVerdict(compiled, shown, writeRule);
  }
  if (resolved.dangling) {
    return refuse("PATH_DANGLING_SYMLINK", `path ${shown} goes through a symbolic link whose target does not exist`);
  }
  if (resolved.finalIsSymlink) {
    return refuse("PATH_SYMLINK", `path ${shown} is a symbolic link; writes never follow links, write to the target path itself`);
  }
  return {
    ok: true,
    access,
    realPath: resolved.realPath,
    exists: resolved.identity !== undefined,
    ...(resolved.identity === undefined ? {} : { identity: resolved.identity }),
    isDirectory: resolved.isDirectory,
    ...(resolved.special === true ? { special: true as const } : {}),
    ...(resolved.parent === undefined ? {} : { parent: resolved.parent }),
  };
}

/**
 * The pure part of the decision for a path that is already real (no symlinks, no `..`):
 * inside an allowed root and matching its glob, and not denied. Used by `list` to hide entries.
 */
export function decideRealPath(
  compiled: CompiledPathPolicy,
  realPath: string,
):
  | { ok: true }
  | { ok: false; code: "PATH_DENIED"; rule: string }
  | { ok: false; code: "PATH_PROTECTED"; what: string }
  | { ok: false; code: "PATH_OUTSIDE_ROOTS" } {
  const what = protectedBy(compiled.protectedPaths, realPath);
  if (what !== undefined) return { ok: false, code: "PATH_PROTECTED", what };
  const inside = insideRoots(compiled, realPath);
  const rule = deniedBy(compiled.deny, realPath);
  if (rule !== undefined) return { ok: false, code: "PATH_DENIED", rule };
  return inside ? { ok: true } : { ok: false, code: "PATH_OUTSIDE_ROOTS" };
}

/**
 * `decideRealPath(...).ok` for the entries of a directory it allowed, without trying every deny
 * rule on every ancestor of every entry again: the directory and its ancestors are known not
 * denied, so a rule can refuse an entry only by matching the entry's own path. A listing of
 * 100,000 names spent most of its time there. That holds only for a directory whose own
 * decision is ok, so that is decided here once (the entries of any other are all refused).
 */
export function allowedEntriesOf(compiled: CompiledPathPolicy, dirRealPath: string): (name: string) => boolean {
  if (!decideRealPath(compiled, dirRealPath).ok) return () => false;
  const dir = stripTrailingSlashes(dirRealPath);
  const prefix = splitComponents(dir.normalize("NFC")).join("/");
  // Looked at once for the directory: only a name past ASCII, or such a directory, needs folding.
  const prefixNotAscii = NOT_ASCII.test(prefix);
  const foldedPrefix = prefixNotAscii ? foldName(prefix) : prefix;
  return (name) => {
    const realPath = `${dir}/${name}`;
    if (protectedBy(compiled.protectedPaths, realPath) !== undefined) return false;
    const nfcName = name.normalize("NFC");
    const candidate = prefix === "" ? nfcName : `${prefix}/${nfcName}`;
    const folded = prefixNotAscii || NOT_ASCII.test(nfcName) ? (prefix === "" ? foldName(nfcName) : `${foldedPrefix}/${foldName(nfcName)}`) : undefined;
    for (const deny of compiled.deny) if (deny.test(candidate, folded)) return false;
    return insideRoots(compiled, realPath);
  };
}

function insideRoots(compiled: CompiledPathPolicy, realPath: string): boolean {
  return compiled.roots.some((root) => {
    if (!isInside(root.realRoot, realPath)) return false;
    if (root.matchRest === undefined) return true;
    return root.matchRest(path.posix.relative(root.realRoot, realPath).normalize("NFC"));
  });
}

/**
 * What the deny rules say of a real path inside a writable directory, for the exec sandbox:
 * `denied` (hidden there), `write-denied` (read-only there), or nothing.
 */
export function sandboxRuleFor(compiled: CompiledPathPolicy, realPath: string): "denied" | "write-denied" | undefined {
  if (deniedBy(compiled.deny, realPath) !== undefined) return "denied";
  if (deniedBy(compiled.writeDeny, realPath) !== undefined) return "write-denied";
  return undefined;
}

/** The first deny rule that matches the path or one of its ancestors (a denied directory hides its tree). */
function deniedBy(rules: readonly CompiledDenyRule[], absolutePath: string): string | undefined {
  if (rules.length === 0) return undefined;
  const nfc = absolutePath.normalize("NFC");
  const parts = splitComponents(nfc);
  // "/" has no component to test; a broken rule still refuses it (it refuses every path).
  if (parts.length === 0) return rules.find((deny) => deny.problem() !== undefined)?.rule;
  // Folding keeps every "/" and adds none: its components line up with the path's.
  const foldedParts = NOT_ASCII.test(nfc) ? splitComponents(foldName(nfc)) : undefined;
  for (let end = 1; end <= parts.length; end++) {
    const candidate = parts.slice(0, end).join("/");
    const folded = foldedParts?.slice(0, end).join("/");
    for (const deny of rules) if (deny.test(candidate, folded)) return deny.rule;
  }
  return undefined;
}

const LONE_SURROGATE = new RegExp(LONE_SURROGATE_SOURCE);

type Shaped = { ok: true; absolute: string; shown: string } | PathRefused;

/** Validates the raw input and makes it absolute, without touching the disk. */
function toAbsolute(compiled: CompiledPathPolicy, input: unknown): Shaped {
  if (typeof input !== "string") return refuse("PATH_INVALID", `a path must be a string, got ${describeType(input)}`);
  if (input === "") return refuse("PATH_INVALID", "the path is empty; give a file or directory path");
  const shown = quote(input);
  if (input.includes("\0")) return refuse("PATH_INVALID", `path ${shown} contains a NUL byte`);
  // The file system gets UTF-8, where such a half becomes U+FFFD: a name other than the one checked.
  if (LONE_SURROGATE.test(input)) {
    return refuse("PATH_INVALID", `path ${shown} holds half of a surrogate pair, which is no character; send whole characters`);
  }
  if (/^file:/i.test(input)) {
    return refuse("PATH_INVALID", `path ${shown} is a file: URL; pass the plain filesystem path instead (URLs are not decoded)`);
  }
  let expanded = input;
  if (input === "~" || input.startsWith("~/")) {
    if (compiled.homeDir === undefined) {
      return refuse("PATH_INVALID", `path ${shown} starts with ~ but no home directory is configured; pass an absolute path`);
    }
    expanded = compiled.homeDir + input.slice(1);
  } else if (input.startsWith("~")) {
    return refuse("PATH_INVALID", `path ${shown} uses a ~user form, which is not expanded; pass an absolute path (or prefix ./ for a file literally named so)`);
  }
  let absolute = expanded;
  if (!expanded.startsWith("/")) {
    if (compiled.baseDir === undefined) {
      return refuse("PATH_INVALID", `path ${shown} is relative and no base directory is configured; pass an absolute path`);
    }
    absolute = `${compiled.baseDir}/${expanded}`;
  }
  for (const candidate of [input, absolute]) {
    if (Buffer.byteLength(candidate, "utf8") > MAX_PATH_BYTES) {
      return refuse("PATH_INVALID", `path ${shown} is longer than ${MAX_PATH_BYTES} bytes`);
    }
    if (candidate.split("/").some((part) => Buffer.byteLength(part, "utf8") > MAX_COMPONENT_BYTES)) {
      return refuse("PATH_INVALID", `path ${shown} has a component longer than ${MAX_COMPONENT_BYTES} bytes`);
    }
  }
  return { ok: true, absolute, shown };
}

// ---------------------------------------------------------------------------
// Resolution (the only part with effects, through `io`)
// ---------------------------------------------------------------------------

type ResolutionFailureCode = "PATH_INVALID" | "PATH_LOOP" | "PATH_NOT_DIRECTORY" | "PATH_PERMISSION" | "PATH_UNRESOLVABLE" | "PATH_RACE";

interface Resolved {
  ok: true;
  realPath: string;
  identity: FileIdentity | undefined;
  isDirectory: boolean;
  /** A component exists but cannot be resolved: a symlink to nothing. */
  dangling: boolean;
  finalIsSymlink: boolean;
  special?: true;
  parent?: { path: string; identity: FileIdentity };
}

type Resolution = Resolved | { ok: false; code: ResolutionFailureCode };

/** Resolves every component, following symlinks (reads, and a write's parent directory). */
async function resolveExisting(components: readonly string[], io: PathIo): Promise<Resolution> {
  for (let keep = components.length; keep >= 0; keep--) {
    let real: string;
    try {
      real = await io.realpath(joinComponents(components.slice(0, keep)));
    } catch (error) {
      const code = errnoCode(error);
      if (code === "ENOENT" && keep > 0) continue;
      return { ok: false, code: failureFor(code) };
    }
    const rest = components.slice(keep);
    // Beyond the last existing directory `..` cannot be resolved against the disk.
    if (rest.includes("..")) return { ok: false, code: "PATH_INVALID" };
    const realPath = appendComponents(real, rest);
    const probe = rest.length === 0 ? real : appendComponents(real, rest.slice(0, 1));
    let stat: PathStat | undefined;
    try {
      stat = await io.lstat(probe);
    } catch (error) {
      const code = errnoCode(error);
      if (code !== "ENOENT") return { ok: false, code: failureFor(code) };
    }
    if (rest.length > 0) {
      return { ok: true, realPath, identity: undefined, isDirectory: false, dangling: stat !== undefined, finalIsSymlink: false };
    }
    if (stat === undefined) return { ok: false, code: "PATH_RACE" };
    // realpath returned a path without links; a link there now means it changed under us.
    if (stat.isSymbolicLink()) return { ok: false, code: "PATH_RACE" };
    return {
      ok: true,
      realPath,
      identity: { dev: stat.dev, ino: stat.ino },
      isDirectory: stat.isDirectory(),
      dangling: false,
      finalIsSymlink: false,
      ...(isSpecial(stat) ? { special: true as const } : {}),
    };
  }
  /* c8 ignore next 2 -- realpath("/") does not fail with ENOENT */
  return { ok: false, code: "PATH_UNRESOLVABLE" };
}

/** Resolves the parent directory, then looks at the final component without following it. */
async function resolveForWrite(components: readonly string[], io: PathIo): Promise<Resolution> {
  const last = components[components.length - 1] as string;
  if (last === "..") return { ok: false, code: "PATH_INVALID" };
  const parent = await resolveExisting(components.slice(0, -1), io);
  if (!parent.ok) return parent;
  const realPath = appendComponents(parent.realPath, [last]);
  if (parent.identity === undefined || parent.dangling) {
    return { ...parent, realPath, isDirectory: false, parent: undefined };
  }
  const parentInfo = { path: parent.realPath, identity: parent.identity };
  let stat: PathStat;
  try {
    stat = await io.lstat(realPath);
  } catch (error) {
    const code = errnoCode(error);
    if (code !== "ENOENT") return { ok: false, code: failureFor(code) };
    return { ok: true, realPath, identity: undefined, isDirectory: false, dangling: false, finalIsSymlink: false, parent: parentInfo };
  }
  return {
    ok: true,
    realPath,
    identity: { dev: stat.dev, ino: stat.ino },
    isDirectory: stat.isDirectory(),
    dangling: false,
    finalIsSymlink: stat.isSymbolicLink(),
    ...(isSpecial(stat) ? { special: true as const } : {}),
    parent: parentInfo,
  };
}

/** A device, FIFO or socket (neither a regular file, a directory nor a link). */
function isSpecial(stat: PathStat): boolean {
  return stat.isFile !== undefined && !stat.isFile() && !stat.isDirectory() && !stat.isSymbolicLink();
}

const FAILURE_BY_ERRNO: Readonly<Record<string, ResolutionFailureCode>> = {
  ELOOP: "PATH_LOOP",
  ENOTDIR: "PATH_NOT_DIRECTORY",
  EACCES: "PATH_PERMISSION",
  EPERM: "PATH_PERMISSION",
  ENAMETOOLONG: "PATH_INVALID",
};

function failureFor(errno: string | undefined): ResolutionFailureCode {
  return (errno === undefined ? undefined : FAILURE_BY_ERRNO[errno]) ?? "PATH_UNRESOLVABLE";
}

function resolutionReason(code: ResolutionFailureCode, shown: string): string {
  switch (code) {
    case "PATH_INVALID":
      return `path ${shown} uses '..' after a directory that does not exist (or ends in '..' for a write); remove the '..'`;
    case "PATH_LOOP":
      return `path ${shown} goes through too many symbolic links (a loop?)`;
    case "PATH_NOT_DIRECTORY":
      return `path ${shown} uses a file as if it were a directory`;
    case "PATH_PERMISSION":
      return `path ${shown} cannot be resolved: permission denied by the operating system`;
    case "PATH_RACE":
      return `path ${shown} changed while it was being checked; try again`;
    case "PATH_UNRESOLVABLE":
      return `path ${shown} cannot be resolved`;
  }
}

/** `/proc` holds magic links (other mount namespaces, deleted files): refused unless a root is there. */
function underProc(compiled: CompiledPathPolicy, p: string): boolean {
  return isInside("/proc", p) && !compiled.roots.some((root) => isInside("/proc", root.realRoot));
}

function procVerdict(shown: string): PathRefused {
  return refuse("PATH_OUTSIDE_ROOTS", `path ${shown} leads under /proc, whose links the filesystem policy does not follow`);
}

function deniedVerdict(rules: readonly CompiledDenyRule[], shown: string, rule: string): PathRefused {
  const problem = rules.find((deny) => deny.rule === rule)?.problem();
  if (problem !== undefined) {
    return refuse("PATH_DENIED", `path ${shown} is refused: ${problem}, and until the policy is fixed it refuses every path`);
  }
  return refuse("PATH_DENIED", `path ${shown} is denied by the filesystem policy (rule ${rule})`);
}

/**
 * Names what the server's file is only where the policy would otherwise let the path through
 * a root: elsewhere the refusal is the plain "outside", so a model cannot probe the disk for
 * where the server keeps its log, key or policy.
 */
function protectedVerdict(compiled: CompiledPathPolicy, shown: string, paths: readonly string[], what: string): PathRefused {
  const underRoot = paths.some((p) => compiled.roots.some((root) => isInside(root.lexicalRoot, p) || isInside(root.realRoot, p)));
  if (!underRoot) return outsideVerdict(shown, false);
  return refuse(
    "PATH_DENIED",
    `path ${shown} is refused: it is ${what}, which tools never read or write, whatever filesystem.allowed_paths allows`,
  );
}

function writeDeniedVerdict(compiled: CompiledPathPolicy, shown: string, rule: string): PathRefused {
  const problem = compiled.writeDeny.find((deny) => deny.rule === rule)?.problem();
  if (problem !== undefined) {
    return refuse("PATH_DENIED", `path ${shown} is refused for writing: ${problem}, and until the policy is fixed it refuses every write`);
  }
  return refuse(
    "PATH_DENIED",
    `path ${shown} may be read but not written (filesystem.write_denied_paths rule ${rule}): ` +
      "a write there would make code run without anyone asking (git hooks, shell start-up files, editor tasks, MCP client configurations)",
  );
}

function outsideVerdict(shown: string, throughLink: boolean): PathRefused {
  const how = throughLink ? "resolves (through a symbolic link or '..') to a place" : "is";
  return refuse("PATH_OUTSIDE_ROOTS", `path ${shown} ${how} outside the directories the filesystem policy allows`);
}

function refuse(code: PathRefusalCode, reason: string): PathRefused {
  return { ok: false, code, reason };
}

// ---------------------------------------------------------------------------
// Small path helpers (POSIX only)
// ---------------------------------------------------------------------------

/** Whole-component containment: `/data-evil` is not inside `/data`. */
export function isInside(root: string, candidate: string): boolean {
  if (candidate === root || root === "/") return candidate.startsWith("/");
  return candidate.startsWith(root.endsWith("/") ? root : `${root}/`);
}

/** Components of an absolute path, without empty and `.` parts (`..` is kept). */
function splitComponents(absolute: string): string[] {
  return absolute.split("/").filter((part) => part !== "" && part !== ".");
}

function joinComponents(components: readonly string[]): string {
  return `/${components.join("/")}`;
}

function appendComponents(base: string, rest: readonly string[]): string {
  if (rest.length === 0) return base;
  return base === "/" ? `/${rest.join("/")}` : `${base}/${rest.join("/")}`;
}

function stripTrailingSlashes(p: string): string {
  return p.replace(/\/+$/, "");
}

function errnoCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") return error.code;
  return undefined;
}

function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

/** Quotes a caller-given path for a message: escaped and cut to a readable length. */
export function quote(p: string): string {
  const cut = p.length > 200 ? `${p.slice(0, 200)}…` : p;
  return JSON.stringify(cut);
}
