/**
 * The exec sandbox's effects: whether bubblewrap can be used here (probed once: installed? may it
 * make namespaces?), and, per call, what the program may see and touch, read from the policy and
 * the disk. The bwrap command line itself is `sandbox-argv.ts`'s pure `bwrapArgv`.
 *
 * `commands.sandbox` decides what happens without a usable bwrap: `required` refuses every exec
 * call (fail closed), `auto` runs the program as before (the server says so once, at start),
 * `off` never sandboxes.
 */
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants as fsConstants, promises as fsp, realpathSync, statSync, type Dirent } from "node:fs";
import * as path from "node:path";
import { CapabilityDeniedError } from "../../plugins/contract.js";
import { sandboxRuleFor, type CompiledPathPolicy, type ProtectedPath } from "../path-guard.js";
import { DenyScanner, type ScanDir } from "../deny-scan.js";
import { foldName } from "../../util/text.js";
import { baseMountArgs, bwrapArgv, isolationArgs, SandboxLayoutError, type BwrapFeatures, type HiddenPath, type SandboxLayout, type SandboxMode } from "./sandbox-argv.js";
import { asError } from "../../util/call-abort.js";

export type SandboxAvailability =
  | { readonly usable: true; readonly bwrap: string; readonly version: string; readonly features: BwrapFeatures }
  | { readonly usable: false; readonly reason: string };

/** How exec calls run now: sandboxed, unsandboxed (`off`, or `auto` without bwrap), or refused (`required` without bwrap). */
export type SandboxState =
  | { readonly state: "sandboxed"; readonly bwrap: string; readonly version: string }
  | { readonly state: "unsandboxed"; readonly reason: string }
  | { readonly state: "refused"; readonly reason: string };

/** One run of bwrap as the probe sees it. */
export interface ProbeRun {
  /** The spawn error's code (ENOENT, EACCES, ...), when it did not start. */
  readonly errorCode?: string;
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut?: boolean;
}

export type ProbeRunner = (file: string, args: readonly string[]) => Promise<ProbeRun>;
export type SyncProbeRunner = (file: string, args: readonly string[]) => ProbeRun;

const PROBE_TIMEOUT_MS = 5000;
/** Directories made private (empty tmpfs) in every sandbox, where they exist as directories. */
const PRIVATE_DIRS = ["/tmp", "/var/tmp", "/run", "/var/run"];

// ---------------------------------------------------------------------------
// The probe
// ---------------------------------------------------------------------------

/** The first `bwrap` on the search path that is an executable file, or undefined. */
export function findBwrap(searchPath: readonly string[]): string | undefined {
  for (const dir of searchPath) {
    const candidate = path.join(dir, "bwrap");
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** `bubblewrap 0.8.0` → its version and what this command line may use of it. */
export function parseBwrapVersion(stdout: string): { version: string; features: BwrapFeatures } | undefined {
  const match = /^bubblewrap (\d+)\.(\d+)(?:\.(\d+))?/m.exec(stdout);
  if (match === null) return undefined;
  const [major, minor, patch] = [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
  const atLeast = (a: number, b: number): boolean => major > a || (major === a && minor >= b);
  return { version: `${major}.${minor}.${patch}`, features: { disableUserns: atLeast(0, 8), argv0: atLeast(0, 9) } };
}

/**
 * The probe's steps: `bwrap --version`, then a trial sandbox with the very isolation options the
 * calls use. A generator, so that the server (async) and check-policy (sync) share one judgement.
 */
function* probeSteps(bwrap: string): Generator<readonly string[], SandboxAvailability, ProbeRun> {
  const versionRun = yield ["--version"];
  const startProblem = notStarted(bwrap, versionRun);
  if (startProblem !== undefined) return { usable: false, reason: startProblem };
  const parsed = parseBwrapVersion(versionRun.stdout);
  if (versionRun.status !== 0 || parsed === undefined) {
    return { usable: false, reason: `${bwrap} --version did not answer as bubblewrap does (${firstLine(versionRun.stderr || versionRun.stdout) || `exit ${String(versionRun.status)}`})` };
  }
  const trial = yield [...isolationArgs(parsed.features), ...baseMountArgs(), "--tmpfs", "/tmp", "--", bwrap, "--version"];
  const trialProblem = notStarted(bwrap, trial) ?? trialFailure(bwrap, trial);
  if (trialProblem !== undefined) return { usable: false, reason: trialProblem };
  return { usable: true, bwrap, version: parsed.version, features: parsed.features };
}

/** Probes `bwrap` (undefined: none was found on PATH). */
export async function probeBwrap(bwrap: string | undefined, run: ProbeRunner = nodeProbeRunner, platform = process.platform): Promise<SandboxAvailability> {
  const early = beforeProbe(bwrap, platform);
  if (early !== undefined) return early;
  const steps = probeSteps(bwrap!);
  let step = steps.next();
  while (step.done !== true) step = steps.next(await run(bwrap!, step.value));
  return step.value;
}

/** The same probe, synchronously (for check-policy). */
export function probeBwrapSync(bwrap: string | undefined, run: SyncProbeRunner = nodeProbeRunnerSync, platform = process.platform): SandboxAvailability {
  const early = beforeProbe(bwrap, platform);
  if (early !== undefined) return early;
  const steps = probeSteps(bwrap!);
  let step = steps.next();
  while (step.done !== true) step = steps.next(run(bwrap!, step.value));
  return step.value;
}

function beforeProbe(bwrap: string | undefined, platform: NodeJS.Platform): SandboxAvailability | undefined {
  if (platform !== "linux") return { usable: false, reason: `bubblewrap sandboxes need Linux namespaces; this system is ${platform}` };
  if (bwrap === undefined) {
    return { usable: false, reason: "bubblewrap is not installed (no bwrap on the server's PATH); install it (apt-get install bubblewrap, dnf install bubblewrap, pacman -S bubblewrap)" };
  }
  return undefined;
}

function notStarted(bwrap: string, run: ProbeRun): string | undefined {
  if (run.errorCode === "ENOENT") return `bubblewrap is not installed (${bwrap} does not exist); install it (apt-get install bubblewrap, dnf install bubblewrap, pacman -S bubblewrap)`;
  if (run.errorCode === "EACCES") return `${bwrap} cannot be run (permission denied)`;
  if (run.errorCode !== undefined) return `${bwrap} could not be started (${run.errorCode})`;
  if (run.timedOut === true) return `${bwrap} did not finish within ${PROBE_TIMEOUT_MS / 1000} s`;
  return undefined;
}

/** Why the trial sandbox failed, in terms the operator can act on. */
function trialFailure(bwrap: string, run: ProbeRun): string | undefined {
  if (run.status === 0 && parseBwrapVersion(run.stdout) !== undefined) return undefined;
  const said = firstLine(run.stderr) || `exit ${String(run.status)}`;
  if (/namespace|uid map|unshare|Operation not permitted/i.test(run.stderr)) {
    return (
      `the kernel refused bubblewrap its namespaces (${said}): unprivileged user namespaces are off ` +
      "(sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces above 0), restricted by AppArmor " +
      "(Ubuntu 23.10 and later: kernel.apparmor_restrict_unprivileged_userns=1 needs an AppArmor profile for bwrap), " +
      "or refused by a container's seccomp profile or missing privileges; run the server where they are allowed"
    );
  }
  return `a trial sandbox failed (${bwrap}: ${said})`;
}

function firstLine(text: string): string {
  return (text.split("\n").find((line) => line.trim() !== "") ?? "").trim().slice(0, 300);
}

export const nodeProbeRunner: ProbeRunner = (file, args) =>
  new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"], env: { PATH: "/usr/bin:/bin" }, timeout: PROBE_TIMEOUT_MS, killSignal: "SIGKILL" });
    } catch (error) {
      resolve({ errorCode: (error as NodeJS.ErrnoException).code ?? "EINVAL", status: null, stdout, stderr });
      return;
    }
    child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.on("error", (error: NodeJS.ErrnoException) => resolve({ errorCode: error.code ?? "EINVAL", status: null, stdout, stderr }));
    child.on("close", (status, signal) => {
      if (signal === "SIGKILL" && status === null) timedOut = true;
      resolve({ status, stdout, stderr, timedOut });
    });
  });

export const nodeProbeRunnerSync: SyncProbeRunner = (file, args) => {
  const result = spawnSync(file, args, { encoding: "utf8", env: { PATH: "/usr/bin:/bin" }, timeout: PROBE_TIMEOUT_MS, killSignal: "SIGKILL" });
  const error: NodeJS.ErrnoException | undefined = result.error;
  const errorCode = error?.code;
  if (errorCode === "ETIMEDOUT") return { status: null, stdout: result.stdout ?? "", stderr: result.stderr ?? "", timedOut: true };
  return { ...(errorCode === undefined ? {} : { errorCode }), status: result.status, stdout: result.stdout ?? "", stderr: result.stderr ?? "" };
};

/** What a probe means under a mode: the state exec calls run in. */
export function sandboxState(mode: SandboxMode, availability: SandboxAvailability | undefined): SandboxState {
  if (mode === "off") return { state: "unsandboxed", reason: "commands.sandbox is off" };
  if (availability === undefined) return { state: "unsandboxed", reason: "not probed" };
  if (availability.usable) return { state: "sandboxed", bwrap: availability.bwrap, version: availability.version };
  return mode === "required" ? { state: "refused", reason: availability.reason } : { state: "unsandboxed", reason: availability.reason };
}

// ---------------------------------------------------------------------------
// Per call: the layout
// ---------------------------------------------------------------------------

export interface ExecSandboxOptions {
  mode: SandboxMode;
  /** bwrap to use; absent: the first on `searchPath`. Tests point it at a file that does not exist. */
  bwrapPath?: string;
  searchPath: readonly string[];
  paths: CompiledPathPolicy;
  /** The server's own files (the path guard's `protectedPaths`): hidden from every program. */
  ownFiles: readonly ProtectedPath[];
  /** HOME of the programs (exec-home/): writable, although it is one of the server's entries. */
  homeDir: string;
  /** The probe (an effect); tests inject one. */
  probe?: (bwrap: string | undefined) => Promise<SandboxAvailability>;
  /** Directories made private where they exist (default /tmp, /var/tmp, /run, /var/run); tests that keep their files in /tmp pass fewer. */
  privateDirs?: readonly string[];
  /**
   * The user's home (the server's HOME): its entries that denied_paths refuses (~/.ssh, ~/.aws,
   * ~/.gnupg, ~/.env, ...) are hidden too, although the host is otherwise readable.
   */
  userHome?: string;
  /** How much a call's walks may look at and the sandbox may narrow (defaults MAX_SCAN_ENTRIES, MAX_NARROWINGS); tests lower them. */
  limits?: { readonly scanEntries?: number; readonly narrowings?: number };
}

export type SpawnPlan = { readonly sandboxed: false } | { readonly sandboxed: true; readonly file: string; readonly args: readonly string[] };

export interface ExecSandbox {
  readonly mode: SandboxMode;
  /** How calls run; probes once (never with `off`). */
  state(): Promise<SandboxState>;
  /**
   * How to start a program the command guard allowed: as before, or through bwrap. Throws
   * `CapabilityDeniedError` when it must not run (`required` without a usable bwrap, a layout
   * that cannot be made safely).
   */
  plan(program: string, argv0: string, args: readonly string[], cwd: string): Promise<SpawnPlan>;
  /**
   * Runs `work` (a call's plan and its program) when no other call's is running: sandboxed programs
   * run one at a time. A program may rename what lies in a writable directory, and one doing so
   * while another call's walk looks for denied files could move one out of its sight (a deep
   * directory is no mount point, so it can be renamed). Rejects when `signal` aborts the wait.
   * Programs that run unsandboxed (`off`, `auto` without a usable bwrap) do not wait.
   */
  exclusive<T>(signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T>;
}

export function createExecSandbox(options: ExecSandboxOptions): ExecSandbox {
  const probe = options.probe ?? ((bwrap: string | undefined) => probeBwrap(bwrap));
  let availability: Promise<SandboxAvailability> | undefined;
  const available = (): Promise<SandboxAvailability> => (availability ??= probe(options.bwrapPath ?? findBwrap(options.searchPath)));
  // Where the policy file and the key led at the start: hidden there too, as the path guard refuses them there.
  const startReal = new Map<string, string>();
  for (const entry of options.ownFiles) {
    const file = "file" in entry ? entry.file : entry.dir;
    try {
      startReal.set(file, realpathSync.native(file));
    } catch {
      // Made later (or never): resolved at each call.
    }
  }

  let last: Promise<void> = Promise.resolve();
  return {
    mode: options.mode,
    async exclusive(signal, work) {
      // Unsandboxed programs (off, or auto without a usable bwrap) have no walk to protect: they need not wait.
      if (options.mode === "off" || (options.mode === "auto" && !(await available()).usable)) return work();
      const previous = last;
      let release!: () => void;
      last = new Promise<void>((resolve) => (release = resolve));
      try {
        await untilAborted(previous, signal);
      } catch (error) {
        // Never run: the turn passes on when the one before ends.
        void previous.then(release);
        throw error;
      }
      try {
        return await work();
      } finally {
        release();
      }
    },
    async state() {
      return options.mode === "off" ? sandboxState("off", undefined) : sandboxState(options.mode, await available());
    },
    async plan(program, argv0, args, cwd) {
      if (options.mode === "off") return { sandboxed: false };
      const found = await available();
      const state = sandboxState(options.mode, found);
      if (state.state === "refused") {
        throw new CapabilityDeniedError(
          "COMMAND_SANDBOX_UNAVAILABLE",
          `command not run: the policy requires a sandbox (commands.sandbox: required) and none can be made here: ${state.reason}`,
        );
      }
      if (!found.usable) return { sandboxed: false };
      try {
        const layout = await gatherLayout(options, startReal, cwd);
        return { sandboxed: true, file: found.bwrap, args: bwrapArgv(layout, { program, argv0, args }, found.features) };
      } catch (error) {
        if (error instanceof SandboxLayoutError) throw new CapabilityDeniedError(error.code, `command not run: the sandbox cannot be set up: ${error.message}`);
        throw error;
      }
    },
  };
}

async function gatherLayout(options: ExecSandboxOptions, startReal: ReadonlyMap<string, string>, cwd: string): Promise<SandboxLayout> {
  const home = await fsp.realpath(options.homeDir);
  const realCwd = await fsp.realpath(cwd);
  const privateDirs = (await Promise.all((options.privateDirs ?? PRIVATE_DIRS).map(async (dir) => ((await kindOf(dir)) === "directory" ? dir : undefined)))).filter(
    (dir): dir is string => dir !== undefined,
  );

  // The allowed directories: whole trees that the guard lets tools write are writable.
  const writable: string[] = [];
  const readOnly: string[] = [];
  const readOnlyDirs: string[] = [];
  const concealed: HiddenPath[] = [];
  const partial: string[] = [];
  for (const root of options.paths.roots) {
    if ((await kindOf(root.realRoot)) !== "directory") continue; // bwrap cannot bind what is not there
    if (root.matchRest === undefined && sandboxRuleFor(options.paths, root.realRoot) === undefined) writable.push(root.realRoot);
    else partial.push(root.realRoot);
  }
  // An allowed directory that is not writable is visible anyway (the host is read-only), but
  // under a private directory only when bound again; never inside a writable one (that would narrow it).
  readOnly.push(...partial.filter((p) => !writable.some((w) => isInside(w, p))));
  // Every allowed directory is walked whole: a program may read all of it (a writable one it may
  // also write), so what the guard refuses there is refused at every depth (`packages/api/.env`).
  const scanner = new DenyScanner(options.paths);
  const budget = { entries: 0, max: options.limits?.scanEntries ?? MAX_SCAN_ENTRIES };
  const maxNarrowings = options.limits?.narrowings ?? MAX_NARROWINGS;
  const writableRoots = outermost(writable);
  const inWritable = (entry: string): boolean => writableRoots.some((w) => isInside(w, entry));
  const realHome = options.userHome === undefined ? undefined : await realOf(options.userHome);
  const userHome = realHome === "/" ? undefined : realHome;
  // An entry tools may only read that spans the home (`~/**/*.md`) is looked at as the home is, at its
  // first levels: walked whole, every home would pass the limit and refuse every call.
  const readRoots = outermost(partial.filter((p) => !inWritable(p) && !(userHome !== undefined && isInside(p, userHome))));
  const walked = [...writableRoots, ...readRoots];
  const inWalked = (p: string): boolean => walked.some((w) => isInside(w, p));
  // What a denied link leads to is hidden unless it holds what the call needs (the allowed directories,
  // HOME or the working directory). A link in a writable directory may be a program's, planted for a
  // later call (`x/.env -> /usr/lib`, which would leave every later call unable to run): what it leads
  // to is hidden only in the home or an allowed directory. One elsewhere (the home's first levels, an
  // allowed directory programs may only read) is the user's: a `~/.ssh` leading to a key volume hides it.
  const linkHideable = (target: string): boolean => ![...walked, home, realCwd].some((needed) => isInside(target, needed));
  const plantedLinkHideable = (target: string): boolean =>
    (inWalked(target) || (userHome !== undefined && isInside(userHome, target))) && linkHideable(target);
  for (const root of writableRoots) {
    await scanTree(options.paths, scanner, root, { readOnly, readOnlyDirs, concealed, writableAt: inWritable, linkHideable: plantedLinkHideable }, budget);
  }
  for (const root of readRoots) await scanTree(options.paths, scanner, root, { concealed, skip: inWritable, linkHideable }, budget);
  // The host stays readable (programs need it), but not the secrets the policy denies in the user's
  // home: a program allowed to read files would otherwise hand ~/.ssh/id_ed25519 to the model.
  // Its first level and that of its dot-directories only: a whole home is too large to walk per call.
  if (userHome !== undefined && !inWalked(userHome)) {
    const goInto = (depth: number, name: string): boolean => depth === 1 && name.startsWith(".");
    await scanTree(options.paths, scanner, userHome, { concealed, skip: inWalked, goInto, linkHideable }, budget);
  }
  // A rule written as an absolute path points at a place of its own (`~/work/client/**`, `/etc/app/token`):
  // what it denies there is hidden too, wherever that is (with its directory's entries, not deeper).
  for (const base of new Set(options.paths.deny.flatMap((rule) => rule.bases))) {
    if (base === "/" || inWalked(base) || privateDirs.some((dir) => isInside(dir, base))) continue;
    const kind = await kindOf(base);
    if (kind === undefined || kind === "symlink") continue;
    if (sandboxRuleFor(options.paths, base) === "denied") concealed.push({ path: base, kind: kind === "directory" ? "directory" : "file" });
    else if (kind === "directory") await scanTree(options.paths, scanner, base, { concealed, skip: inWalked, goInto: () => false }, budget);
  }
  // Counted once each: several links may lead to one place.
  const narrowings = new Set([...readOnly, ...concealed.map((entry) => entry.path)]).size;
  if (narrowings > maxNarrowings) {
    throw new SandboxLayoutError(
      `${narrowings} paths in the allowed directories would have to be hidden or made read-only, more than the ${maxNarrowings} ` +
        "a sandbox is set up with; allow narrower directories, or deny whole directories rather than the files in them",
    );
  }
  // A private directory the policy lets tools write stays the host's (bwrapArgv): its sockets are covered instead.
  for (const dir of privateDirs) if (writable.some((w) => isInside(w, dir))) await concealSockets(dir, concealed);

  const { hidden, ownDirs } = await ownFilesNow(options.ownFiles, startReal, home);
  return { privateDirs, writable, readOnly, readOnlyDirs: readOnlyDirs.filter((dir) => pinWorthy(options.paths, writable, dir)), concealed, hidden, ownDirs, home, cwd: realCwd };
}

/**
 * Whether a read-only directory deep in a dot-directory of a writable one should pin that
 * dot-directory (sandbox-argv's pins): only when the policy refuses writes there because of where it
 * lies (`.config/Code/User`), not whatever holds it (`.venv/src/pkg/.git`, a checkout pip made). A
 * program may make a `.git` anywhere in a writable directory (`packages/api/.git` pins nothing
 * either), and a pin would make the whole virtualenv, cache or plugin directory read-only.
 */
function pinWorthy(paths: CompiledPathPolicy, writable: readonly string[], dir: string): boolean {
  const roots = writable.filter((w) => w !== dir && isInside(w, dir));
  if (roots.length === 0) return false;
  const root = roots.reduce((a, b) => (b.length > a.length ? b : a));
  const parts = dir.slice(root === "/" ? 1 : root.length + 1).split("/");
  if (parts.length <= 2 || !parts[0]!.startsWith(".")) return true;
  // The same entries under a plain directory in place of the dot-directory.
  const elsewhere = path.join(root, "msl-pin-probe", ...parts.slice(1));
  return sandboxRuleFor(paths, elsewhere) !== "write-denied";
}

/** `promise`, or a rejection with the signal's reason once it aborts first. */
function untilAborted(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(asError(signal.reason));
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(asError(signal.reason));
    signal.addEventListener("abort", onAbort, { once: true });
    void promise.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}

/** The most entries one call's walks look at, and the most paths a sandbox hides or makes read-only. */
const MAX_SCAN_ENTRIES = 1_000_000;
/** bwrap's set-up time grows with the square of its mounts (0.8.0: 250 take 0.1 s, 1,000 take 1.3 s, 2,000 take 5.3 s). */
const MAX_NARROWINGS = 1024;
/** Directories read at once by a walk. */
const SCAN_CONCURRENCY = 8;

interface ScanInto {
  /** Present for a writable directory: what write_denied_paths names goes here (read-only). */
  readOnly?: string[];
  /**
   * With `readOnly`: whether a path lies in a writable directory. What a write-denied link leads to
   * is made read-only only there: elsewhere the host is read-only already, and a read-only bind of
   * a path in a private directory would show the host's (a socket there, /run/docker.sock or an
   * ssh-agent's, can be connected to through a read-only mount).
   */
  writableAt?: (p: string) => boolean;
  /** With `readOnly`: the directories among them (a deep one pins its dot-directory, see sandbox-argv's pins). */
  readOnlyDirs?: string[];
  /** Whether what a denied symbolic link leads to may be hidden (see gatherLayout). */
  linkHideable?: (target: string) => boolean;
  /** What denied_paths names (hidden). */
  concealed: HiddenPath[];
  /** Entries walked elsewhere. */
  skip?: (entry: string) => boolean;
  /** Whether to look inside the directory `name` found `depth` levels down (1: the root's own entries); default: all. */
  goInto?: (depth: number, name: string) => boolean;
}

/**
 * Walks `root` for what the policy denies: entries denied_paths refuses are hidden (and not gone
 * into), and with `readOnly` those write_denied_paths refuses are made read-only (and gone into
 * for denied ones only). The root's own entries are judged with their ancestors (the root may lie in
 * a denied tree), deeper ones with the scanner, which tests each path once. A symbolic link is not
 * followed; where the policy refuses the link's own path, what it leads to is hidden (or made
 * read-only) instead, since a mount at the link would land there anyway. A walk past
 * MAX_SCAN_ENTRIES (all of a call's walks together) refuses the call: a tree not looked at whole
 * could hide a denied file the program would then read.
 */
async function scanTree(paths: CompiledPathPolicy, scanner: DenyScanner, root: string, into: ScanInto, budget: { entries: number; readonly max: number }): Promise<void> {
  interface Job {
    dir: ScanDir;
    depth: number;
    withWriteDeny: boolean;
  }
  const visit = async ({ dir, depth, withWriteDeny }: Job, queue: Job[]): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await fsp.readdir(dir.path, { withFileTypes: true });
    } catch (error) {
      unlooked(dir.path, error, into);
      return;
    }
    budget.entries += entries.length;
    if (budget.entries > budget.max) {
      throw new SandboxLayoutError(
        `the directories checked for denied paths before each program runs (the allowed ones, and your home's first levels) hold more than ` +
          `${budget.max} entries (${root} among them); allow narrower directories, or deny large trees the programs need not see`,
      );
    }
    // Node reads a name that is not UTF-8 with U+FFFD in place of its bytes: a path that names
    // nothing on the disk, so it can be neither hidden nor walked (bwrap's arguments are UTF-8 too).
    const undecodable = entries.some((dirent) => dirent.name.includes("\uFFFD")) ? await undecodableNames(dir.path) : undefined;
    const kinds: Array<Awaited<ReturnType<typeof direntKind>>> = [];
    try {
      for (const dirent of entries) kinds.push(await direntKind(dirent, path.join(dir.path, dirent.name)));
    } catch (error) {
      // An entry whose kind cannot be told (a directory the server may list but not enter, on a
      // file system that does not give kinds): the directory is not looked at whole.
      unlooked(dir.path, error, into);
      return;
    }
    for (const [index, dirent] of entries.entries()) {
      const entry = path.join(dir.path, dirent.name);
      if (into.skip?.(entry) === true) continue;
      const kind = kinds[index];
      if (kind === undefined) continue;
      let rule = depth === 1 ? sandboxRuleFor(paths, entry) : scanner.judge(dir, dirent.name, withWriteDeny);
      if (rule === "write-denied" && (!withWriteDeny || into.readOnly === undefined)) rule = undefined;
      if (kind === "symlink") {
        // A mount would follow the link, so what it leads to is what is hidden or made read-only:
        // the guard refuses `~/.ssh/id_ed25519` whether `~/.ssh` is a directory or a link to one.
        if (rule !== undefined) linkTargets.push({ link: entry, rule });
        continue;
      }
      const goInto = kind === "directory" && rule !== "denied" && (into.goInto?.(depth, dirent.name) ?? true);
      if (undecodable?.has(dirent.name) === true && (rule !== undefined || goInto)) {
        throw new SandboxLayoutError(
          `${dir.path} holds a name that is not UTF-8, which the sandbox can neither hide nor look into (${JSON.stringify(dirent.name)}); rename it`,
        );
      }
      if (rule === "denied") {
        into.concealed.push({ path: entry, kind: kind === "directory" ? "directory" : "file" });
        continue;
      }
      if (rule === "write-denied") {
        into.readOnly!.push(entry);
        if (kind === "directory") into.readOnlyDirs?.push(entry);
      }
      if (goInto) queue.push({ dir: scanner.descend(dir, dirent.name), depth: depth + 1, withWriteDeny: withWriteDeny && rule === undefined });
    }
  };
  const linkTargets: Array<{ link: string; rule: "denied" | "write-denied" }> = [];
  await drain([{ dir: scanner.root(root), depth: 1, withWriteDeny: into.readOnly !== undefined }], visit, SCAN_CONCURRENCY);
  for (const { link, rule } of linkTargets) {
    const target = await realOf(link);
    if (target === undefined || target === "/") continue; // dangling: nothing to read through it
    const kind = await kindOf(target);
    if (kind === undefined || kind === "symlink") continue;
    if (rule === "denied") {
      if (into.linkHideable?.(target) !== false) into.concealed.push({ path: target, kind: kind === "directory" ? "directory" : "file" });
    } else if (into.writableAt?.(target) === true) into.readOnly?.push(target);
  }
}

/** Runs `work` on each job and on the jobs it adds, `concurrency` at a time; rejects with the first failure. */
function drain<T>(jobs: T[], work: (job: T, queue: T[]) => Promise<void>, concurrency: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let active = 0;
    let failed = false;
    const pump = (): void => {
      while (!failed && active < concurrency && jobs.length > 0) {
        const job = jobs.pop()!;
        active++;
        work(job, jobs).then(
          () => {
            active--;
            pump();
          },
          (error: unknown) => {
            failed = true;
            reject(error instanceof Error ? error : new Error(String(error)));
          },
        );
      }
      if (!failed && active === 0 && jobs.length === 0) resolve();
    };
    pump();
  });
}

/**
 * A directory the walk cannot read: gone meanwhile (nothing to hide), or refused to the server's
 * user (`EACCES`: a mode without read, or without search). That user is the program's: in a
 * writable directory it may restore the mode (`chmod 700`) and open what the walk did not see,
 * and a directory it may search but not list still opens by name. So it is hidden whole.
 * Anything else (too many open files) refuses the call.
 */
function unlooked(dir: string, error: unknown, into: ScanInto): void {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT" || code === "ENOTDIR") return;
  if (code === "EACCES" || code === "EPERM") {
    into.concealed.push({ path: dir, kind: "directory" });
    return;
  }
  throw new SandboxLayoutError(`${dir} cannot be checked for denied paths (${code ?? String(error)}), so no program runs until it can`);
}

/** The names of `dir` (as Node decodes them) whose bytes are not UTF-8. */
async function undecodableNames(dir: string): Promise<Set<string>> {
  const found = new Set<string>();
  let raw: Buffer[];
  try {
    raw = await fsp.readdir(dir, { encoding: "buffer" });
  } catch (error) {
    throw new SandboxLayoutError(`${dir} cannot be checked for denied paths (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  for (const name of raw) {
    const decoded = name.toString("utf8");
    if (!Buffer.from(decoded, "utf8").equals(name)) found.add(decoded);
  }
  return found;
}

/** A directory entry's kind from readdir, or from lstat where the file system does not say (undefined: gone; throws when lstat fails otherwise). */
async function direntKind(dirent: Dirent, full: string): Promise<"directory" | "file" | "symlink" | undefined> {
  if (dirent.isSymbolicLink()) return "symlink";
  if (dirent.isDirectory()) return "directory";
  if (dirent.isFile() || dirent.isFIFO() || dirent.isSocket() || dirent.isCharacterDevice() || dirent.isBlockDevice()) return "file";
  try {
    const stats = await fsp.lstat(full);
    if (stats.isSymbolicLink()) return "symlink";
    return stats.isDirectory() ? "directory" : "file";
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** The paths not inside another of them. */
function outermost(paths: readonly string[]): string[] {
  const unique = [...new Set(paths)];
  return unique.filter((p) => !unique.some((other) => other !== p && isInside(other, p)));
}

/** How deep below a kept private directory sockets are looked for, and how many entries at most. */
const SOCKET_SCAN_DEPTH = 3;
const SOCKET_SCAN_ENTRIES = 10_000;

/**
 * The Unix sockets in a private directory that stays the host's (`/tmp/**` allowed): each covered
 * with /dev/null. A read-only mount does not stop `connect()`, and the network namespace does not
 * reach sockets with a path: the X server's (`/tmp/.X11-unix/X0`: keystrokes into the user's
 * terminals), ssh-agent's (`/tmp/ssh-XXXX/agent.N`), tmux's (`/tmp/tmux-UID/default`: commands in
 * the user's sessions) would all be a way out. They sit at most a few levels deep; a socket made
 * during the call, or deeper, is not covered (the README says so).
 */
async function concealSockets(dir: string, concealed: HiddenPath[]): Promise<void> {
  let budget = SOCKET_SCAN_ENTRIES;
  const visit = async (current: string, depth: number): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await fsp.readdir(current, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (--budget < 0) return;
      const full = path.join(current, entry.name);
      if (entry.isSocket()) concealed.push({ path: full, kind: "file" });
      else if (entry.isDirectory() && depth < SOCKET_SCAN_DEPTH) await visit(full, depth + 1);
    }
  };
  await visit(dir, 1);
}

/**
 * The server's own files as they are now: each `{file}` at its path and where it led at the start
 * and leads now; each `{dir, names}` directory's matching entries, or the whole directory when it
 * holds nothing else (a dedicated log directory: then files the server makes during the call, a
 * rotated segment, are hidden too). HOME (exec-home/) is one of the state entries but is the program's.
 */
async function ownFilesNow(
  ownFiles: readonly ProtectedPath[],
  startReal: ReadonlyMap<string, string>,
  home: string,
): Promise<{ hidden: HiddenPath[]; ownDirs: string[] }> {
  const hidden: HiddenPath[] = [];
  const ownDirs: string[] = [];
  const hide = async (p: string): Promise<void> => {
    const real = await realOf(p);
    if (real === undefined || real === home || real === "/") return;
    const kind = await kindOf(real);
    if (kind === "directory" || kind === "file") hidden.push({ path: real, kind });
  };
  for (const entry of ownFiles) {
    if ("file" in entry) {
      for (const candidate of new Set([entry.file, startReal.get(entry.file) ?? entry.file])) await hide(candidate);
      continue;
    }
    for (const candidate of new Set([entry.dir, startReal.get(entry.dir) ?? entry.dir])) {
      const dir = await realOf(candidate);
      if (dir === undefined || (await kindOf(dir)) !== "directory") continue;
      let names: string[];
      try {
        names = await fsp.readdir(dir);
      } catch {
        continue;
      }
      const ours = names.filter((name) => entry.names(foldName(name)));
      if (names.length > 0 && ours.length === names.length && !isInside(dir, home) && dir !== "/") {
        hidden.push({ path: dir, kind: "directory" });
        continue;
      }
      ownDirs.push(dir);
      for (const name of ours) await hide(path.join(dir, name));
    }
  }
  return { hidden, ownDirs };
}

async function realOf(p: string): Promise<string | undefined> {
  try {
    return await fsp.realpath(p);
  } catch {
    return undefined;
  }
}

async function kindOf(p: string): Promise<"directory" | "file" | "symlink" | undefined> {
  try {
    const stats = await fsp.lstat(p);
    if (stats.isSymbolicLink()) return "symlink";
    return stats.isDirectory() ? "directory" : "file";
  } catch {
    return undefined;
  }
}

function isInside(root: string, candidate: string): boolean {
  if (root === "/" || candidate === root) return true;
  return candidate.startsWith(`${root}/`);
}

/**
 * check-policy's line on the sandbox: the setting, and what it means on this machine (bwrap
 * probed now, on the PATH given). One line: the reason is bwrap's own words, kept to one line.
 */
export function sandboxReport(mode: SandboxMode, pathValue: string | undefined, probe: (bwrap: string | undefined) => SandboxAvailability = probeBwrapSync): string {
  if (mode === "off") return "off: programs run without a sandbox (commands.sandbox: off)";
  const searchPath = (pathValue ?? "/usr/local/bin:/usr/bin:/bin").split(":").filter((dir) => path.isAbsolute(dir));
  const found = probe(findBwrap(searchPath));
  const state = sandboxState(mode, found);
  const oneLine = (text: string): string => text.replace(/[\r\n]+/g, " ");
  if (found.usable) return `${mode}: bubblewrap ${found.version} (${oneLine(found.bwrap)}) is usable here; programs run sandboxed`;
  return state.state === "refused"
    ? `${mode}: no sandbox can be made here: ${oneLine(found.reason)}; every exec call will be refused`
    : `${mode}: no sandbox can be made here: ${oneLine(found.reason)}; programs run WITHOUT a sandbox`;
}
