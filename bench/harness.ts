/**
 * The benchmark's machinery: statistics (pure), /proc readers, and a JSON-RPC
 * client that drives one server child over its stdin/stdout pipes.
 *
 * Every child spawned here is tracked and killed when the benchmark ends, fails
 * or is interrupted: a benchmark must never leave servers behind.
 */
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

export type BenchErrorCode =
  | "NO_SAMPLES"
  | "BAD_ARGUMENT"
  | "SPAWN_FAILED"
  | "SERVER_EXITED"
  | "TIMEOUT"
  | "RPC_ERROR"
  | "BAD_RESPONSE"
  | "PROC_UNREADABLE";

export class BenchError extends Error {
  readonly code: BenchErrorCode;
  constructor(code: BenchErrorCode, message: string) {
    super(message);
    this.name = "BenchError";
    this.code = code;
  }
}

// ---------------------------------------------------------------------------
// Statistics (pure)
// ---------------------------------------------------------------------------

function checkSamples(samples: readonly number[]): void {
  if (samples.length === 0) throw new BenchError("NO_SAMPLES", "no samples to summarize");
  for (const value of samples) {
    if (!Number.isFinite(value)) throw new BenchError("BAD_ARGUMENT", `sample ${String(value)} is not a finite number`);
  }
}

/**
 * The p-th percentile (0..100) of samples already sorted ascending, interpolated
 * linearly between the two nearest ranks (the common "type 7" definition), so
 * p50 of an even count is the mean of the middle two.
 */
export function percentileOfSorted(sorted: readonly number[], p: number): number {
  checkSamples(sorted);
  if (!Number.isFinite(p) || p < 0 || p > 100) throw new BenchError("BAD_ARGUMENT", `percentile ${p} is outside 0..100`);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const lowValue = sorted[low]!;
  const highValue = sorted[high]!;
  return lowValue + (highValue - lowValue) * (rank - low);
}

export function sortedCopy(samples: readonly number[]): number[] {
  return [...samples].sort((a, b) => a - b);
}

export function percentile(samples: readonly number[], p: number): number {
  checkSamples(samples);
  return percentileOfSorted(sortedCopy(samples), p);
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

export interface Summary {
  n: number;
  min: number;
  max: number;
  mean: number;
  p50: number;
  p99: number;
}

export function summarize(samples: readonly number[]): Summary {
  checkSamples(samples);
  const sorted = sortedCopy(samples);
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    n: sorted.length,
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
    mean: sum / sorted.length,
    p50: percentileOfSorted(sorted, 50),
    p99: percentileOfSorted(sorted, 99),
  };
}

/** value / reference, or NaN when either is missing or the reference is not positive. */
export function ratio(value: number | undefined, reference: number | undefined): number {
  if (value === undefined || reference === undefined) return Number.NaN;
  if (!Number.isFinite(value) || !Number.isFinite(reference) || reference <= 0) return Number.NaN;
  return value / reference;
}

/** Calls per second for `count` calls that took `elapsedMs` in all. */
export function callsPerSecond(count: number, elapsedMs: number): number {
  if (!(count > 0) || !(elapsedMs > 0)) throw new BenchError("BAD_ARGUMENT", `cannot rate ${count} calls in ${elapsedMs} ms`);
  return (count * 1000) / elapsedMs;
}

export interface Target {
  area: string;
  label: string;
  /** "<=": the measured value may be at most factor × reference; ">=": at least. */
  op: "<=" | ">=";
  factor: number;
}

export interface TargetVerdict {
  pass: boolean;
  ratio: number;
  /** Why the verdict is FAIL without a ratio (missing data), if so. */
  reason?: string;
}

/** Judges one target. Missing or unusable data fails: a target nobody measured is not met. */
export function judgeTarget(target: Target, value: number | undefined, reference: number | undefined): TargetVerdict {
  if (value === undefined || !Number.isFinite(value)) return { pass: false, ratio: Number.NaN, reason: "no measurement" };
  if (reference === undefined || !Number.isFinite(reference)) return { pass: false, ratio: Number.NaN, reason: "no reference measurement" };
  const r = ratio(value, reference);
  if (Number.isNaN(r)) return { pass: false, ratio: r, reason: "reference is zero" };
  const pass = target.op === "<=" ? r <= target.factor : r >= target.factor;
  return { pass, ratio: r };
}

// ---------------------------------------------------------------------------
// Formatting (pure)
// ---------------------------------------------------------------------------

export function formatNumber(value: number | undefined, digits = 2): string {
  if (value === undefined || !Number.isFinite(value)) return "n/a";
  return value.toFixed(digits);
}

export function formatRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : "n/a";
}

/** A Markdown table; cells are padded so the raw text lines up too. */
export function markdownTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length), 3));
  const line = (cells: readonly string[]): string =>
    `| ${widths.map((w, i) => (cells[i] ?? "").padEnd(w)).join(" | ")} |`;
  return [line(headers), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...rows.map(line)].join("\n");
}

// ---------------------------------------------------------------------------
// /proc readers (parsers are pure; the readers are the effect at the edge)
// ---------------------------------------------------------------------------

export interface ProcMemory {
  /** Resident set size now, in KiB. */
  rssKiB: number;
  /** Peak resident set size ("high water mark"), in KiB. */
  hwmKiB: number;
}

export function parseProcStatus(text: string): ProcMemory {
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s*(\\d+)\\s*kB\\s*$`, "m").exec(text);
    if (match === null) throw new BenchError("PROC_UNREADABLE", `/proc status has no ${name} line`);
    return Number(match[1]);
  };
  return { rssKiB: field("VmRSS"), hwmKiB: field("VmHWM") };
}

/**
 * utime + stime, in clock ticks, from /proc/<pid>/stat. The command name (field 2)
 * may hold spaces and parentheses, so fields are counted after the last ')'.
 */
export function parseProcStatCpuTicks(text: string): number {
  const close = text.lastIndexOf(")");
  if (close === -1) throw new BenchError("PROC_UNREADABLE", "/proc stat has no command name");
  // After ") " come field 3 (state) onwards; utime is field 14, stime field 15.
  const fields = text.slice(close + 2).trim().split(/\s+/);
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isInteger(utime) || !Number.isInteger(stime)) throw new BenchError("PROC_UNREADABLE", "/proc stat has no utime/stime");
  return utime + stime;
}

export function readProcMemory(pid: number): ProcMemory {
  return parseProcStatus(readFileSync(`/proc/${pid}/status`, "utf8"));
}

export function readProcCpuTicks(pid: number): number {
  return parseProcStatCpuTicks(readFileSync(`/proc/${pid}/stat`, "utf8"));
}

/** Clock ticks per second for /proc/<pid>/stat (usually 100). */
export function clockTicksPerSecond(): number {
  try {
    const value = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    if (Number.isInteger(value) && value > 0) return value;
  } catch {
    // Fall through to the Linux default.
  }
  return 100;
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

const liveChildren = new Set<ChildProcessWithoutNullStreams>();
const liveTempDirs = new Set<string>();
let reaperInstalled = false;

/** A fresh private temp dir for one server; removed by `removeTempDir` or, at the latest, at exit. */
export function createTempDir(): string {
  installReaper();
  const dir = mkdtempSync(path.join(os.tmpdir(), "msl-bench-"));
  liveTempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  liveTempDirs.delete(dir);
}

/** SIGKILLs every child still running. Safe to call more than once. */
export function killAllChildren(): void {
  for (const child of liveChildren) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
  liveChildren.clear();
}

function installReaper(): void {
  if (reaperInstalled) return;
  reaperInstalled = true;
  process.on("exit", () => {
    killAllChildren();
    for (const dir of liveTempDirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // Best effort on the way out.
      }
    }
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      killAllChildren();
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  }
}

export interface ServerCommand {
  /** Executable (the running node, for every server here). */
  file: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
}

const STDERR_TAIL_BYTES = 8192;

export interface RpcResponse {
  id: number;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

interface Pending {
  resolve(response: RpcResponse): void;
  reject(error: Error): void;
}

/** A request serialized ahead of time, so timings leave out the client's own JSON.stringify. */
export interface PreparedRequest {
  readonly id: number;
  readonly line: string;
}

/**
 * One server child and a JSON-RPC client over its pipes (newline-delimited JSON).
 * Responses are matched to requests by id; lines that are not JSON objects, and
 * messages from the server that are not responses, are counted, never dropped silently.
 */
export class ServerSession {
  readonly child: ChildProcessWithoutNullStreams;
  readonly pid: number;
  /** performance.now() just before spawn. */
  readonly spawnedAt: number;
  /** stdout lines that were not JSON objects (a protocol violation by the server). */
  invalidLines = 0;
  /** Server-initiated messages (notifications or requests), ignored by the benchmark. */
  serverMessages = 0;

  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private partial: Buffer[] = [];
  private stderrTail = "";
  private exitInfo: string | undefined;
  private readonly exited: Promise<void>;

  private constructor(command: ServerCommand) {
    installReaper();
    this.spawnedAt = performance.now();
    this.child = spawn(command.file, [...command.args], { env: command.env, stdio: ["pipe", "pipe", "pipe"] });
    // Listeners go on before anything can throw, so a failed spawn is an exit, not a crash.
    this.exited = new Promise((resolve) => {
      this.child.once("error", (error) => {
        this.markExited(`failed to run: ${error.message}`);
        resolve();
      });
      this.child.once("exit", (code, signal) => {
        this.markExited(signal === null ? `exited with code ${String(code)}` : `killed by ${signal}`);
        resolve();
      });
    });
    this.child.stdout.on("data", (chunk: Buffer) => this.onData(chunk));
    this.child.stderr.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString("utf8")).slice(-STDERR_TAIL_BYTES);
    });
    // A server that dies mid-write must not crash the benchmark with EPIPE.
    this.child.stdin.on("error", () => undefined);
    if (this.child.pid === undefined) {
      throw new BenchError("SPAWN_FAILED", `could not spawn ${command.file} ${command.args.join(" ")}`);
    }
    this.pid = this.child.pid;
    liveChildren.add(this.child);
  }

  static start(command: ServerCommand): ServerSession {
    return new ServerSession(command);
  }

  get isRunning(): boolean {
    return this.exitInfo === undefined;
  }

  /** The last few KiB the server wrote to stderr, for error reports. */
  get stderr(): string {
    return this.stderrTail;
  }

  prepare(method: string, params?: unknown): PreparedRequest {
    const id = this.nextId++;
    const message = params === undefined ? { jsonrpc: "2.0", id, method } : { jsonrpc: "2.0", id, method, params };
    return { id, line: `${JSON.stringify(message)}\n` };
  }

  /** Sends a prepared request and resolves with its response (errors included; see `expectResult`). */
  send(request: PreparedRequest, timeoutMs: number): Promise<RpcResponse> {
    const response = this.register(request.id);
    this.write(request.line);
    return this.withTimeout(response, timeoutMs, `response to request ${request.id}`);
  }

  /** Writes every request in one go (the pipelined case) and resolves when all are answered. */
  sendAll(requests: readonly PreparedRequest[], timeoutMs: number): Promise<RpcResponse[]> {
    const responses = requests.map((request) => this.register(request.id));
    this.write(requests.map((request) => request.line).join(""));
    return this.withTimeout(Promise.all(responses), timeoutMs, `${requests.length} pipelined responses`);
  }

  request(method: string, params: unknown, timeoutMs: number): Promise<RpcResponse> {
    return this.send(this.prepare(method, params), timeoutMs);
  }

  notify(method: string, params?: unknown): void {
    const message = params === undefined ? { jsonrpc: "2.0", method } : { jsonrpc: "2.0", method, params };
    this.write(`${JSON.stringify(message)}\n`);
  }

  memory(): ProcMemory {
    return readProcMemory(this.pid);
  }

  cpuTicks(): number {
    return readProcCpuTicks(this.pid);
  }

  /** Closes stdin (the polite way to stop a stdio server), then kills it if it lingers. */
  async close(graceMs = 3000): Promise<void> {
    if (this.isRunning) {
      this.child.stdin.end();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
    }
    this.kill();
    await this.exited;
  }

  kill(): void {
    if (this.isRunning) this.child.kill("SIGKILL");
    liveChildren.delete(this.child);
  }

  describeExit(): string {
    const tail = this.stderrTail.trim().split("\n").slice(-5).join("\n");
    return `${this.exitInfo ?? "still running"}${tail === "" ? "" : `; stderr tail:\n${tail}`}`;
  }

  private write(text: string): void {
    if (!this.isRunning) throw new BenchError("SERVER_EXITED", `server ${this.describeExit()}`);
    this.child.stdin.write(text);
  }

  private register(id: number): Promise<RpcResponse> {
    if (!this.isRunning) return Promise.reject(new BenchError("SERVER_EXITED", `server ${this.describeExit()}`));
    return new Promise<RpcResponse>((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  private withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new BenchError("TIMEOUT", `no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  private markExited(info: string): void {
    if (this.exitInfo !== undefined) return;
    this.exitInfo = info;
    liveChildren.delete(this.child);
    const error = new BenchError("SERVER_EXITED", `server ${this.describeExit()}`);
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }

  // Splits stdout on '\n' without re-copying the buffered part for every chunk,
  // so an 8 MiB response costs one concatenation, not one per chunk.
  private onData(chunk: Buffer): void {
    let start = 0;
    let newline = chunk.indexOf(10);
    while (newline !== -1) {
      const piece = chunk.subarray(start, newline);
      const line = this.partial.length === 0 ? piece : Buffer.concat([...this.partial, piece]);
      this.partial = [];
      this.onLine(line.toString("utf8"));
      start = newline + 1;
      newline = chunk.indexOf(10, start);
    }
    if (start < chunk.length) this.partial.push(chunk.subarray(start));
  }

  private onLine(line: string): void {
    if (line.trim() === "") return;
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.invalidLines++;
      return;
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      this.invalidLines++;
      return;
    }
    const record = message as Record<string, unknown>;
    if (typeof record.method === "string") {
      this.serverMessages++;
      return;
    }
    const id = record.id;
    const waiter = typeof id === "number" ? this.pending.get(id) : undefined;
    if (waiter === undefined || typeof id !== "number") {
      this.invalidLines++;
      return;
    }
    this.pending.delete(id);
    waiter.resolve(record as unknown as RpcResponse);
  }
}

/** The result of a response, or a typed error carrying the server's JSON-RPC error. */
export function expectResult(response: RpcResponse): unknown {
  if (response.error !== undefined) {
    throw new BenchError("RPC_ERROR", `JSON-RPC error ${response.error.code}: ${String(response.error.message).slice(0, 300)}`);
  }
  if (!("result" in response)) throw new BenchError("BAD_RESPONSE", `response ${response.id} has neither result nor error`);
  return response.result;
}

/** Checks a tools/call result is a successful echo of `expected`. */
export function expectEcho(response: RpcResponse, expected: string): void {
  const result = expectResult(response) as { content?: unknown; isError?: unknown } | null;
  const first = Array.isArray(result?.content) ? (result.content[0] as { type?: unknown; text?: unknown } | undefined) : undefined;
  if (result?.isError === true) {
    const message = typeof first?.text === "string" ? first.text.slice(0, 300) : "(no text)";
    throw new BenchError("RPC_ERROR", `tool error: ${message}`);
  }
  if (first?.type !== "text" || first.text !== expected) {
    throw new BenchError("BAD_RESPONSE", `response ${response.id} is not the echo of the ${expected.length}-character text sent`);
  }
}
