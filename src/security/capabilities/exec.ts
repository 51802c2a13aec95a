/**
 * `ctx.exec`: runs a checked executable with an argv array (never a shell), in its
 * own session and process group, with a scrubbed environment, capped output and a
 * deadline. When the deadline or the call's signal fires, the whole group is killed;
 * when the main process exits, whatever it left running in its group is killed too,
 * and on Linux so is anything left in its session (a descendant that moved to a group
 * of its own), so a call leaves no processes behind. (A descendant that starts its own
 * session escapes both; the bubblewrap sandbox, `sandbox.ts`, contains that too.)
 *
 * Under the sandbox the server starts bwrap, which starts the program as PID 1 of a PID namespace
 * of its own: when it ends, every process in the namespace is killed. At the deadline the program
 * (whose pid bwrap reports on an extra pipe) is killed first, so the bwrap the server started
 * reaps it and no zombie is left for a PID 1 that may never reap it; the group kill follows.
 */
import { spawn } from "node:child_process";
import { constants as fsConstants, promises as fs, readFileSync } from "node:fs";
import { CapabilityDeniedError, ToolError, type ExecOptions, type ExecResult, type GuardedExec } from "../../plugins/contract.js";
import { checkCommand, checkExecEnv, EXEC_HEADER_BYTES, type CommandIo, type CompiledCommandPolicy } from "../command-guard.js";
import type { ExecSandbox } from "./sandbox.js";

export interface ExecLimits {
  /** Deadline per process; a call may ask for less, never more. */
  timeoutMs: number;
  /** stdout and stderr bytes kept, together; a call may ask for less, never more. */
  maxOutputBytes: number;
}

export interface GuardedExecOptions {
  /** HOME for children and their working directory when the call names none: a directory the server owns. */
  homeDir: string;
  /**
   * Checks a requested working directory against the filesystem policy and returns
   * its real path (throwing `CapabilityDeniedError` to refuse). Absent: a call that
   * names a working directory is refused.
   */
  checkCwd?: (cwd: string) => Promise<string>;
  /** The call's signal (cancellation, deadline, shutdown): kills the process group. */
  signal?: AbortSignal;
  /** File-system access for the command check; defaults to Node's. */
  io?: CommandIo;
  /**
   * Whether tools may rewrite a file through `ctx.fs`: a program (or `#!` interpreter) they may
   * rewrite is refused. Absent: not checked.
   */
  isRewritable?: (file: string) => Promise<boolean>;
  /** Runs programs under bubblewrap (as `commands.sandbox` says). Absent: never sandboxed. */
  sandbox?: ExecSandbox;
  /**
   * Told bubblewrap's own message when a sandbox could not be set up (for the operator: it may
   * name the server's paths, so the call's result does not carry it).
   */
  onSandboxFailure?: (program: string, message: string) => void;
}

/** The command check's file-system questions, answered by Node. */
export const nodeCommandIo: CommandIo = {
  realpath: (file) => fs.realpath(file),
  async identity(file) {
    try {
      const stats = await fs.stat(file, { bigint: true });
      return `${stats.dev}:${stats.ino}`;
    } catch {
      return undefined;
    }
  },
  async head(file) {
    let handle: fs.FileHandle | undefined;
    try {
      handle = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
      const buffer = Buffer.alloc(EXEC_HEADER_BYTES);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      return buffer.subarray(0, bytesRead).toString("latin1");
    } catch {
      return undefined;
    } finally {
      await handle?.close();
    }
  },
  async isExecutableFile(file) {
    try {
      const stats = await fs.stat(file);
      if (!stats.isFile()) return false;
      await fs.access(file, fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  },
};

export function createGuardedExec(compiled: CompiledCommandPolicy, limits: ExecLimits, options: GuardedExecOptions): GuardedExec {
  const baseIo = options.io ?? nodeCommandIo;
  const io: CommandIo = options.isRewritable === undefined ? baseIo : { ...baseIo, rewritable: options.isRewritable };

  return async (file, args, request: ExecOptions = {}) => {
    throwIfAborted(options.signal);
    const verdict = await checkCommand(compiled, file, args, io);
    if (!verdict.ok) throw new CapabilityDeniedError(verdict.code, verdict.reason);
    const extra = checkExecEnv(request.env);
    if (!extra.ok) throw new CapabilityDeniedError(extra.code, extra.reason);
    const cwd = await workingDirectory(request.cwd);
    const timeoutMs = capped(request.timeoutMs, limits.timeoutMs, "timeoutMs");
    const maxOutputBytes = capped(request.maxOutputBytes, limits.maxOutputBytes, "maxOutputBytes");
    const input = request.input === undefined ? undefined : toBuffer(request.input);
    // Scrubbed: nothing of the server's own environment (tokens, keys) reaches the child.
    const env: Record<string, string> = { LANG: "C.UTF-8", ...extra.env, PATH: compiled.pathValue, HOME: options.homeDir };
    const spec: RunSpec = { cwd, env, input, timeoutMs, maxOutputBytes, signal: options.signal, sandboxed: false };
    const sandbox = options.sandbox;
    if (sandbox === undefined) return run(verdict.path, verdict.argv0, verdict.argv0, args, spec);
    return sandbox.exclusive(options.signal, () => runPlanned(sandbox, verdict, args, cwd, spec));
  };

  async function runPlanned(sandbox: ExecSandbox, verdict: { path: string; argv0: string }, args: readonly string[], cwd: string, spec: RunSpec): Promise<ExecResult> {
    const plan = await sandbox.plan(verdict.path, verdict.argv0, args, cwd);
    throwIfAborted(options.signal);
    if (!plan.sandboxed) return run(verdict.path, verdict.argv0, verdict.argv0, args, spec);
    const result = await run(plan.file, plan.file, verdict.argv0, plan.args, { ...spec, sandboxed: true });
    const setupFailure = sandboxSetupFailure(result);
    if (setupFailure === undefined) return result;
    options.onSandboxFailure?.(verdict.argv0, setupFailure);
    throw new ToolError(
      `the sandbox could not be set up to run ${verdict.argv0}, so it did not run; the server's log says why (tell the machine's owner)`,
      "COMMAND_SANDBOX_FAILED",
    );
  }

  async function workingDirectory(requested: string | undefined): Promise<string> {
    if (requested === undefined) return options.homeDir;
    if (options.checkCwd === undefined) {
      throw new CapabilityDeniedError("COMMAND_DENIED", "a working directory was given but this server does not allow choosing one; omit cwd");
    }
    const checked = await options.checkCwd(requested);
    let isDirectory = false;
    try {
      isDirectory = (await fs.stat(checked)).isDirectory();
    } catch {
      isDirectory = false;
    }
    if (!isDirectory) throw new ToolError(`working directory ${requested} does not exist or is not a directory`, "COMMAND_BAD_CWD");
    return checked;
  }
}

/**
 * bubblewrap's own error, when the result is one: it exits 1 with a `bwrap: ...` line before
 * the program starts (a mount it cannot make, a path gone since the plan). A program printing
 * such a line itself and exiting 1 only hides its own output.
 */
export function sandboxSetupFailure(result: ExecResult): string | undefined {
  if (result.exitCode !== 1 || result.timedOut || result.stdout !== "" || !result.stderr.startsWith("bwrap: ")) return undefined;
  return result.stderr.slice(0, 1000).trimEnd();
}

interface RunSpec {
  cwd: string;
  env: Record<string, string>;
  input: Buffer | undefined;
  timeoutMs: number;
  maxOutputBytes: number;
  signal: AbortSignal | undefined;
  /** `executable` is bwrap: it reports the program's pid on fd 3 (`--info-fd 3`). */
  sandboxed: boolean;
}

/**
 * How long the output pipes may still drain after the main process exited (and its group was
 * killed). Whatever holds them open after that is outside the group, a descendant that started
 * its own session: the call neither waits for it nor reports its own end as a timeout.
 */
const EXIT_DRAIN_MS = 200;

/** Time the bwrap the server started gets to reap the killed program before it is killed itself. */
const SANDBOX_REAP_MS = 500;

/** `name`: the program as the caller named it, for messages (under the sandbox `executable` is bwrap). */
function run(executable: string, argv0: string, name: string, args: readonly string[], spec: RunSpec): Promise<ExecResult> {
  return new Promise<ExecResult>((resolve, reject) => {
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(executable, spec.sandboxed ? ["--info-fd", "3", ...args] : args, {
        argv0,
        cwd: spec.cwd,
        env: spec.env,
        shell: false,
        // Its own process group (and session), so the whole tree can be signalled at once.
        detached: true,
        stdio: [spec.input === undefined ? "ignore" : "pipe", "pipe", "pipe", ...(spec.sandboxed ? ["pipe" as const] : [])],
        windowsHide: true,
      });
    } catch (error) {
      // Node throws (rather than emitting "error") for most exec failures: E2BIG, ENOEXEC, ETXTBSY, ...
      reject(startFailure(name, error));
      return;
    }

    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let remaining = spec.maxOutputBytes;
    let truncated = false;
    let timedOut = false;
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let drain: NodeJS.Timeout | undefined;
    let settled = false;
    /** Under the sandbox: the host pid of the program (PID 1 of its namespace), once bwrap reported it. */
    let sandboxProgram: number | undefined;
    let info = "";
    let reapTimer: NodeJS.Timeout | undefined;

    const killGroup = (): void => {
      if (child.pid === undefined) return;
      if (spec.sandboxed && exited === undefined && sandboxProgram !== undefined && isChildOf(sandboxProgram, child.pid)) {
        // Its end ends the namespace; bwrap reaps it and exits. The group kill follows if it does not.
        try {
          process.kill(sandboxProgram, "SIGKILL");
        } catch {
          // ESRCH: gone already.
        }
        sandboxProgram = undefined;
        reapTimer = setTimeout(killGroup, SANDBOX_REAP_MS);
        return;
      }
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // ESRCH: the group is already gone.
      }
      // In the background: the call's result does not wait for the sweep.
      killSession(child.pid);
    };
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      // Keep reading past the cap (discarding) so the child never blocks on a full pipe.
      if (remaining <= 0) {
        truncated = true;
        return;
      }
      const kept = chunk.byteLength > remaining ? chunk.subarray(0, remaining) : chunk;
      if (kept.byteLength < chunk.byteLength) truncated = true;
      remaining -= kept.byteLength;
      into.push(kept);
    };
    const settle = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(drain);
      clearTimeout(reapTimer);
      spec.signal?.removeEventListener("abort", onAbort);
      // bwrap reports the killed program as exit 137; the caller killed it, so it reads as the kill it was.
      const killed = spec.sandboxed && timedOut;
      resolve({
        exitCode: killed ? null : code,
        signal: killed ? "SIGKILL" : signal,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
        truncated,
        timedOut,
      });
    };
    /** The main process is gone: stop waiting for pipes that something outside the group holds. */
    const finishAfterExit = (): void => {
      if (settled || exited === undefined) return;
      child.stdout?.destroy();
      child.stderr?.destroy();
      settle(exited.code, exited.signal);
    };
    const stop = (): void => {
      if (settled) return;
      // After the exit the group is already killed (and its id may belong to someone else by now);
      // the immediate lets one more poll phase read what is already in the pipes.
      if (exited !== undefined) return void setImmediate(finishAfterExit);
      timedOut = true;
      killGroup();
    };
    const onAbort = (): void => stop();
    const timer = setTimeout(stop, spec.timeoutMs);

    child.stdout?.on("data", collect(stdout));
    child.stderr?.on("data", collect(stderr));
    const infoPipe = spec.sandboxed ? child.stdio[3] : undefined;
    if (infoPipe !== undefined && infoPipe !== null) {
      infoPipe.on("error", () => undefined);
      infoPipe.on("data", (chunk: Buffer) => {
        if (info.length > 4096) return;
        info += chunk.toString("utf8");
        const match = /"child-pid"\s*:\s*(\d+)/.exec(info);
        if (match !== null && sandboxProgram === undefined) sandboxProgram = Number(match[1]);
      });
    }
    child.on("error", (error: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(drain);
      clearTimeout(reapTimer);
      spec.signal?.removeEventListener("abort", onAbort);
      killGroup();
      reject(startFailure(name, error));
    });
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      clearTimeout(reapTimer);
      // Leave nothing behind: background children of the main process die with it.
      killGroup();
      // Normally "close" follows at once. The immediate lets one more poll phase read what is
      // already in the pipes, however late the timer itself ran.
      drain = setTimeout(() => setImmediate(finishAfterExit), EXIT_DRAIN_MS);
    });
    child.on("close", (code: number | null, signal: NodeJS.Signals | null) => settle(exited?.code ?? code, exited?.signal ?? signal));

    if (child.stdin) {
      // A child that exits without reading its input closes the pipe: not our error.
      child.stdin.on("error", () => undefined);
      child.stdin.end(spec.input);
    }
    if (spec.signal !== undefined) {
      if (spec.signal.aborted) stop();
      else spec.signal.addEventListener("abort", onAbort, { once: true });
    }
  });
}

/**
 * Sessions whose leftovers are still to be killed, with the scans each may still take. Descendants
 * that moved to a process group of their own (setpgid: `timeout`, a shell with job control,
 * Python's `process_group=0`) stay in the session, where the group kill does not reach them.
 * Linux only (read from /proc). One scan at a time serves every pending session, so many execs
 * ending together cost one walk of /proc, not one each.
 */
const pendingSweeps = new Map<number, number>();
let sweeping = false;
/** Scans per session: more than one for members forked while the previous scan was killing. */
const SWEEP_ROUNDS = 3;

/** Kills what is left in the session `sid` leads, soon. Best effort: never throws. */
function killSession(sid: number): void {
  if (process.platform !== "linux") return;
  pendingSweeps.set(sid, SWEEP_ROUNDS);
  if (sweeping) return;
  sweeping = true;
  void sweep().finally(() => {
    sweeping = false;
  });
}

async function sweep(): Promise<void> {
  // Sessions added while a scan runs are taken by the next one: the loop ends only with none pending.
  while (pendingSweeps.size > 0) {
    const scanned = new Set(pendingSweeps.keys());
    const groups = await groupsBySession(scanned);
    for (const sid of scanned) {
      const left = groups.get(sid);
      const rounds = pendingSweeps.get(sid) ?? 0;
      if (left === undefined || rounds <= 1) pendingSweeps.delete(sid);
      else pendingSweeps.set(sid, rounds - 1);
      for (const group of left ?? []) {
        try {
          process.kill(-group, "SIGKILL");
        } catch {
          // ESRCH: gone meanwhile.
        }
      }
    }
  }
}

/** The process groups of live (not zombie) processes in the given sessions, read from /proc/<pid>/stat. */
async function groupsBySession(sessions: ReadonlySet<number>): Promise<Map<number, Set<number>>> {
  const found = new Map<number, Set<number>>();
  let entries: string[];
  try {
    entries = await fs.readdir("/proc");
  } catch {
    return found;
  }
  await Promise.all(
    entries.map(async (entry) => {
      if (!/^[0-9]+$/.test(entry)) return;
      let stat: string;
      try {
        stat = await fs.readFile(`/proc/${entry}/stat`, "latin1");
      } catch {
        return; // Exited meanwhile.
      }
      // "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses, so split after the last ")".
      const [state, , pgrp, session] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const sid = Number(session);
      const group = Number(pgrp);
      // Never kill(-1) or kill(-0): a group id is a positive pid.
      if (state === "Z" || !sessions.has(sid) || !Number.isInteger(group) || group <= 1) return;
      const groups = found.get(sid) ?? new Set<number>();
      groups.add(group);
      found.set(sid, groups);
    }),
  );
  return found;
}

/**
 * Whether `pid` is still a child of `parent` (Linux, from /proc): the program bwrap reported is killed
 * only while it is, so a pid reused since by another process is never signalled.
 */
function isChildOf(pid: number, parent: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === parent;
  } catch {
    return false;
  }
}

/** Why a program could not be started, in words the caller can act on. */
function startFailure(argv0: string, error: unknown): ToolError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const hint = code === undefined ? undefined : START_FAILURE_HINTS[code];
  const what = code ?? (error instanceof Error ? error.message : String(error));
  return new ToolError(`could not start ${argv0}: ${hint === undefined ? what : `${hint} (${what})`}`, "COMMAND_FAILED");
}

const START_FAILURE_HINTS: Readonly<Record<string, string>> = {
  E2BIG: "its arguments are longer than the system accepts; pass less at once, or pass data as input",
  ENOEXEC: "the system cannot run this file",
  EACCES: "permission denied",
  ETXTBSY: "the file is being written; try again",
  ENOENT: "the program, its interpreter or the working directory does not exist",
};

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CapabilityDeniedError("COMMAND_ABORTED", "command not started: the call was cancelled or reached its deadline");
}

function capped(requested: number | undefined, ceiling: number, name: string): number {
  if (requested === undefined) return ceiling;
  if (typeof requested !== "number" || !Number.isInteger(requested) || requested < 1) {
    throw new CapabilityDeniedError("COMMAND_INVALID", `${name} must be a positive integer`);
  }
  return Math.min(requested, ceiling);
}

function toBuffer(input: string | Uint8Array): Buffer {
  if (typeof input === "string") return Buffer.from(input, "utf8");
  if (input instanceof Uint8Array) return Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  throw new CapabilityDeniedError("COMMAND_INVALID", "input must be a string or a Uint8Array");
}
