/**
 * `make bench`: protocol, engine and audit benchmarks of our server against two
 * reference servers (a hand-written minimal one, the floor; and one on the official
 * SDK), all serving the same `echo {text}` tool over stdio.
 *
 * Everything is measured in one interleaved run: each repetition visits every
 * server in turn (in a rotated order), so noise on this shared machine lands on
 * all of them alike. The report (Markdown) goes to our stdout; progress to stderr.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  BenchError,
  ServerSession,
  callsPerSecond,
  clockTicksPerSecond,
  createTempDir,
  expectEcho,
  expectResult,
  formatNumber,
  formatRatio,
  judgeTarget,
  killAllChildren,
  markdownTable,
  median,
  ratio,
  removeTempDir,
  summarize,
  type PreparedRequest,
  type ServerCommand,
  type Target,
  type TargetVerdict,
} from "./harness.js";
import { runAuditFloorBench } from "./audit-floor.js";

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

interface Config {
  /** Cold-start spawns per server. */
  coldSpawns: number;
  /** Workload sessions per server (each: warm-up, sequential, pipelined, large). */
  sessions: number;
  warmupCalls: number;
  sequentialCalls: number;
  pipelinedCalls: number;
  largeSmallCount: number;
  largeBigCount: number;
}

const FULL: Config = {
  coldSpawns: 15,
  sessions: 5,
  warmupCalls: 200,
  sequentialCalls: 2000,
  pipelinedCalls: 5000,
  largeSmallCount: 3,
  largeBigCount: 2,
};

const QUICK: Config = {
  coldSpawns: 3,
  sessions: 1,
  warmupCalls: 50,
  sequentialCalls: 300,
  pipelinedCalls: 1000,
  largeSmallCount: 1,
  largeBigCount: 1,
};

const MIB = 1024 * 1024;
const SMALL_LARGE_BYTES = 1 * MIB;
const BIG_LARGE_BYTES = 8 * MIB;
const PROTOCOL_VERSION = "2025-11-25";
const HANDSHAKE_TIMEOUT_MS = 20_000;
const CALL_TIMEOUT_MS = 10_000;
const BULK_TIMEOUT_MS = 120_000;

interface Variant {
  key: string;
  label: string;
  script: "minimal" | "sdk" | "ours";
  policy?: string;
  bypassEngine?: boolean;
}

const VARIANTS: readonly Variant[] = [
  { key: "minimal", label: "minimal (floor)", script: "minimal" },
  { key: "sdk", label: "official SDK", script: "sdk" },
  { key: "ours", label: "ours, audit off", script: "ours", policy: "audit-off.yaml" },
  { key: "ours-bypass", label: "ours, engine bypassed", script: "ours", policy: "audit-off.yaml", bypassEngine: true },
  { key: "ours-batch", label: "ours, audit fsync batch", script: "ours", policy: "audit-batch.yaml" },
  { key: "ours-always", label: "ours, audit fsync always", script: "ours", policy: "audit-always.yaml" },
];

interface Options {
  quick: boolean;
  jsonFile: string | undefined;
  bugtracker: boolean;
  strict: boolean;
  servers: readonly Variant[];
}

const USAGE = `usage: node dist/bench/run.js [--quick] [--json FILE] [--no-bugtracker] [--strict] [--servers KEY,KEY...]
  --quick          few repetitions, for a smoke run
  --json FILE      also write the raw samples and verdicts as JSON
  --no-bugtracker  skip the bug tracker benchmark
  --strict         exit 1 when a target fails
  --servers LIST   run only these (${VARIANTS.map((v) => v.key).join(", ")})`;

function parseOptions(argv: readonly string[]): Options {
  const options: Options = { quick: false, jsonFile: undefined, bugtracker: true, strict: false, servers: VARIANTS };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    switch (arg) {
      case "--quick":
        options.quick = true;
        break;
      case "--no-bugtracker":
        options.bugtracker = false;
        break;
      case "--strict":
        options.strict = true;
        break;
      case "--json": {
        const file = argv[++i];
        if (file === undefined || file.startsWith("--")) throw new BenchError("BAD_ARGUMENT", "--json needs a file name");
        options.jsonFile = file;
        break;
      }
      case "--servers": {
        const list = argv[++i];
        if (list === undefined) throw new BenchError("BAD_ARGUMENT", "--servers needs a comma-separated list");
        const keys = list.split(",").map((key) => key.trim());
        const unknown = keys.filter((key) => !VARIANTS.some((v) => v.key === key));
        if (unknown.length > 0) throw new BenchError("BAD_ARGUMENT", `unknown server ${unknown.join(", ")}; known: ${VARIANTS.map((v) => v.key).join(", ")}`);
        options.servers = VARIANTS.filter((v) => keys.includes(v.key));
        break;
      }
      default:
        throw new BenchError("BAD_ARGUMENT", `unknown option ${arg}\n${USAGE}`);
    }
  }
  return options;
}

// ---------------------------------------------------------------------------
// Locations
// ---------------------------------------------------------------------------

const here = path.dirname(fileURLToPath(import.meta.url));

function findRepoRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === "mcp-secure-local") return dir;
    if (path.dirname(dir) === dir) throw new BenchError("BAD_ARGUMENT", `no mcp-secure-local package.json above ${start}`);
  }
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

interface BenchFailure {
  phase: string;
  code: string;
  message: string;
}

interface VariantResult {
  coldStartMs: number[];
  rssAfterStartKiB: number[];
  sequentialMs: number[];
  sequentialP50PerSessionMs: number[];
  pipelinedCallsPerSec: number[];
  largeSmallMs: number[];
  largeBigMs: number[];
  peakRssKiB: number[];
  cpuTicksSequential: number;
  callsSequential: number;
  cpuTicksPipelined: number;
  callsPipelined: number;
  /** stdout lines from the server that were not JSON-RPC responses to us. */
  invalidLines: number;
  failures: BenchFailure[];
  /** Set when the preflight failed: the server is left out of the run. */
  skipped?: string;
}

function emptyResult(): VariantResult {
  return {
    coldStartMs: [],
    rssAfterStartKiB: [],
    sequentialMs: [],
    sequentialP50PerSessionMs: [],
    pipelinedCallsPerSec: [],
    largeSmallMs: [],
    largeBigMs: [],
    peakRssKiB: [],
    cpuTicksSequential: 0,
    callsSequential: 0,
    cpuTicksPipelined: 0,
    callsPipelined: 0,
    invalidLines: 0,
    failures: [],
  };
}

function recordFailure(result: VariantResult, phase: string, error: unknown): void {
  const code = error instanceof BenchError ? error.code : "UNEXPECTED";
  const message = error instanceof Error ? error.message : String(error);
  result.failures.push({ phase, code, message });
}

// ---------------------------------------------------------------------------
// Driving one server
// ---------------------------------------------------------------------------

class Bench {
  constructor(
    private readonly root: string,
    private readonly config: Config,
  ) {}

  private command(variant: Variant, tempDir: string): ServerCommand {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: tempDir, STATE_DIR: tempDir };
    // Same node, same flags, same settings for every server: nothing from the caller's
    // environment (loaders, inspectors, our server's own variables) may change what is measured.
    for (const name of Object.keys(env)) {
      if (name === "NODE_OPTIONS" || name === "BENCH_BYPASS_ENGINE" || name === "XDG_STATE_HOME" || name.startsWith("MCP_")) delete env[name];
    }
    if (variant.bypassEngine === true) env.BENCH_BYPASS_ENGINE = "1";
    // Our server runs as it ships: the launcher, its bundle and code cache (`make build` writes
    // servers/ours.cjs, ours.bundle.cjs and ours.bundle.cache).
    const script = path.join(here, "servers", variant.script === "ours" ? "ours.cjs" : `${variant.script}.js`);
    const args = [script];
    if (variant.policy !== undefined) {
      args.push("--policy", path.join(this.root, "bench", "policies", variant.policy), "--state-dir", tempDir);
    }
    return { file: process.execPath, args, env };
  }

  /** Spawns a server in a fresh temp dir, runs `body`, and always kills it and removes the dir. */
  private async withServer<T>(variant: Variant, result: VariantResult, body: (session: ServerSession) => Promise<T>): Promise<T> {
    const tempDir = createTempDir();
    let session: ServerSession | undefined;
    try {
      session = ServerSession.start(this.command(variant, tempDir));
      return await body(session);
    } finally {
      if (session !== undefined) {
        await session.close();
        result.invalidLines += session.invalidLines;
      }
      removeTempDir(tempDir);
    }
  }

  private async handshake(session: ServerSession): Promise<void> {
    const init = session.prepare("initialize", {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: "msl-bench", version: "1.0.0" },
    });
    expectResult(await this.withExitInfo(session, session.send(init, HANDSHAKE_TIMEOUT_MS)));
    session.notify("notifications/initialized");
  }

  /** Follows tools/list pages until `echo` shows up (a server may paginate its catalog). */
  private async expectEchoTool(session: ServerSession): Promise<void> {
    let cursor: string | undefined;
    for (let page = 0; page < 100; page++) {
      const params = cursor === undefined ? {} : { cursor };
      const list = expectResult(await session.request("tools/list", params, CALL_TIMEOUT_MS)) as
        | { tools?: { name?: string }[]; nextCursor?: unknown }
        | null;
      if (!Array.isArray(list?.tools)) throw new BenchError("BAD_RESPONSE", "tools/list returned no tools array");
      if (list.tools.some((tool) => tool.name === "echo")) return;
      if (typeof list.nextCursor !== "string") break;
      cursor = list.nextCursor;
    }
    throw new BenchError("BAD_RESPONSE", "tools/list does not offer the echo tool");
  }

  // A server that dies during the handshake is reported with its stderr, which says why.
  private async withExitInfo<T>(session: ServerSession, promise: Promise<T>): Promise<T> {
    try {
      return await promise;
    } catch (error) {
      if (error instanceof BenchError && error.code === "TIMEOUT") {
        throw new BenchError("TIMEOUT", `${error.message}; server ${session.describeExit()}`);
      }
      throw error;
    }
  }

  private echo(session: ServerSession, text: string): PreparedRequest {
    return session.prepare("tools/call", { name: "echo", arguments: { text } });
  }

  /** One handshake and one call: a server that cannot do this is left out, with the reason. */
  async preflight(variant: Variant, result: VariantResult): Promise<void> {
    try {
      await this.withServer(variant, result, async (session) => {
        await this.handshake(session);
        await this.expectEchoTool(session);
        expectEcho(await session.send(this.echo(session, "preflight"), CALL_TIMEOUT_MS), "preflight");
      });
    } catch (error) {
      recordFailure(result, "preflight", error);
      result.skipped = error instanceof Error ? error.message : String(error);
    }
  }

  /** Spawn → initialize response; then RSS once the server has answered tools/list. */
  async coldStart(variant: Variant, result: VariantResult): Promise<void> {
    try {
      await this.withServer(variant, result, async (session) => {
        const init = session.prepare("initialize", {
          protocolVersion: PROTOCOL_VERSION,
          capabilities: {},
          clientInfo: { name: "msl-bench", version: "1.0.0" },
        });
        const response = await session.send(init, HANDSHAKE_TIMEOUT_MS);
        const elapsed = performance.now() - session.spawnedAt;
        expectResult(response);
        session.notify("notifications/initialized");
        await this.expectEchoTool(session);
        result.coldStartMs.push(elapsed);
        result.rssAfterStartKiB.push(session.memory().rssKiB);
      });
    } catch (error) {
      recordFailure(result, "cold start", error);
    }
  }

  /** Warm-up, sequential latency, pipelined throughput, large round trips, peak RSS. */
  async workload(variant: Variant, result: VariantResult): Promise<void> {
    const config = this.config;
    let phase = "handshake";
    try {
      await this.withServer(variant, result, async (session) => {
        await this.handshake(session);

        phase = "warm-up";
        for (let i = 0; i < config.warmupCalls; i++) {
          const text = `warm ${i}`;
          expectEcho(await session.send(this.echo(session, text), CALL_TIMEOUT_MS), text);
        }
        const warmBurst = Array.from({ length: Math.min(500, config.pipelinedCalls) }, (_, i) => this.echo(session, `burst ${i}`));
        (await session.sendAll(warmBurst, BULK_TIMEOUT_MS)).forEach((response, i) => expectEcho(response, `burst ${i}`));

        phase = "sequential";
        const latencies: number[] = [];
        const cpuBefore = session.cpuTicks();
        for (let i = 0; i < config.sequentialCalls; i++) {
          const text = `hello ${i}`;
          const request = this.echo(session, text);
          const start = performance.now();
          const response = await session.send(request, CALL_TIMEOUT_MS);
          latencies.push(performance.now() - start);
          expectEcho(response, text);
        }
        const cpuAfter = session.cpuTicks();
        result.sequentialMs.push(...latencies);
        result.sequentialP50PerSessionMs.push(median(latencies));
        result.cpuTicksSequential += cpuAfter - cpuBefore;
        result.callsSequential += config.sequentialCalls;

        phase = "pipelined";
        const texts = Array.from({ length: config.pipelinedCalls }, (_, i) => `pipe ${i}`);
        const requests = texts.map((text) => this.echo(session, text));
        const pipeCpuBefore = session.cpuTicks();
        const start = performance.now();
        const responses = await session.sendAll(requests, BULK_TIMEOUT_MS);
        const elapsed = performance.now() - start;
        const pipeCpuAfter = session.cpuTicks();
        responses.forEach((response, i) => expectEcho(response, texts[i]!));
        result.pipelinedCallsPerSec.push(callsPerSecond(config.pipelinedCalls, elapsed));
        result.cpuTicksPipelined += pipeCpuAfter - pipeCpuBefore;
        result.callsPipelined += config.pipelinedCalls;

        // Large messages last: a server that refuses them has still given every other figure.
        phase = "1 MiB round trip";
        await this.largeRoundTrips(session, SMALL_LARGE_BYTES, config.largeSmallCount, result.largeSmallMs, result, phase);
        phase = "8 MiB round trip";
        await this.largeRoundTrips(session, BIG_LARGE_BYTES, config.largeBigCount, result.largeBigMs, result, phase);

        phase = "peak RSS";
        if (session.isRunning) result.peakRssKiB.push(session.memory().hwmKiB);
      });
    } catch (error) {
      recordFailure(result, phase, error);
    }
  }

  private async largeRoundTrips(
    session: ServerSession,
    bytes: number,
    count: number,
    into: number[],
    result: VariantResult,
    phase: string,
  ): Promise<void> {
    const text = largeText(bytes);
    for (let i = 0; i < count; i++) {
      if (!session.isRunning) return;
      const request = this.echo(session, text);
      try {
        const start = performance.now();
        const response = await session.send(request, BULK_TIMEOUT_MS);
        const elapsed = performance.now() - start;
        expectEcho(response, text);
        into.push(elapsed);
      } catch (error) {
        // A refusal (size limit) is a result, not a crash: note it and stop sending this size.
        recordFailure(result, phase, error);
        return;
      }
    }
  }
}

const largeTexts = new Map<number, string>();

/** Plain ASCII without characters JSON must escape, so the wire size is the text size. */
function largeText(bytes: number): string {
  let text = largeTexts.get(bytes);
  if (text === undefined) {
    const unit = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    text = unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes);
    largeTexts.set(bytes, text);
  }
  return text;
}

/** The order of visits in repetition `round`: rotated, so no server is always first or last. */
function rotated<T>(items: readonly T[], round: number): T[] {
  if (items.length === 0) return [];
  const shift = round % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

// ---------------------------------------------------------------------------
// Figures and targets
// ---------------------------------------------------------------------------

interface Figures {
  coldStartMs?: number;
  coldStartMinMs?: number;
  coldStartMaxMs?: number;
  rssAfterStartMiB?: number;
  peakRssMiB?: number;
  sequentialP50Ms?: number;
  sequentialP99Ms?: number;
  sequentialP50SpreadMs?: [number, number];
  pipelinedCallsPerSec?: number;
  largeSmallMs?: number;
  largeBigMs?: number;
  cpuMsPer1000Sequential?: number;
  cpuMsPer1000Pipelined?: number;
}

function medianOrUndefined(samples: readonly number[]): number | undefined {
  return samples.length === 0 ? undefined : median(samples);
}

function figuresOf(result: VariantResult, ticksPerSecond: number): Figures {
  const figures: Figures = {};
  if (result.coldStartMs.length > 0) {
    const cold = summarize(result.coldStartMs);
    figures.coldStartMs = cold.p50;
    figures.coldStartMinMs = cold.min;
    figures.coldStartMaxMs = cold.max;
  }
  const rss = medianOrUndefined(result.rssAfterStartKiB);
  if (rss !== undefined) figures.rssAfterStartMiB = rss / 1024;
  const peak = medianOrUndefined(result.peakRssKiB);
  if (peak !== undefined) figures.peakRssMiB = peak / 1024;
  if (result.sequentialMs.length > 0) {
    const seq = summarize(result.sequentialMs);
    figures.sequentialP50Ms = seq.p50;
    figures.sequentialP99Ms = seq.p99;
    const perSession = summarize(result.sequentialP50PerSessionMs);
    figures.sequentialP50SpreadMs = [perSession.min, perSession.max];
  }
  figures.pipelinedCallsPerSec = medianOrUndefined(result.pipelinedCallsPerSec);
  figures.largeSmallMs = medianOrUndefined(result.largeSmallMs);
  figures.largeBigMs = medianOrUndefined(result.largeBigMs);
  const cpuMsPer1000 = (ticks: number, calls: number): number | undefined =>
    calls > 0 ? ((ticks / ticksPerSecond) * 1000 * 1000) / calls : undefined;
  figures.cpuMsPer1000Sequential = cpuMsPer1000(result.cpuTicksSequential, result.callsSequential);
  figures.cpuMsPer1000Pipelined = cpuMsPer1000(result.cpuTicksPipelined, result.callsPipelined);
  return figures;
}

interface TargetSpec extends Target {
  subject: string;
  reference: string;
  metric: keyof Figures;
  unit: string;
  digits: number;
}

const TARGETS: readonly TargetSpec[] = [
  { area: "protocol", label: "cold start <= 1.3x minimal", op: "<=", factor: 1.3, subject: "ours", reference: "minimal", metric: "coldStartMs", unit: "ms", digits: 1 },
  { area: "protocol", label: "pipelined throughput >= 3x SDK", op: ">=", factor: 3, subject: "ours", reference: "sdk", metric: "pipelinedCallsPerSec", unit: "calls/s", digits: 0 },
  { area: "protocol", label: "8 MiB round trip <= 1.5x minimal", op: "<=", factor: 1.5, subject: "ours", reference: "minimal", metric: "largeBigMs", unit: "ms", digits: 1 },
  { area: "protocol", label: "RSS after start <= 1.3x minimal", op: "<=", factor: 1.3, subject: "ours", reference: "minimal", metric: "rssAfterStartMiB", unit: "MiB", digits: 1 },
  { area: "engine", label: "sequential p50 <= 1.3x engine bypassed", op: "<=", factor: 1.3, subject: "ours", reference: "ours-bypass", metric: "sequentialP50Ms", unit: "ms", digits: 3 },
  { area: "audit", label: "pipelined throughput (fsync batch) >= 0.7x audit off", op: ">=", factor: 0.7, subject: "ours-batch", reference: "ours", metric: "pipelinedCallsPerSec", unit: "calls/s", digits: 0 },
  { area: "audit", label: "sequential p50 (fsync batch) <= 1.3x audit off", op: "<=", factor: 1.3, subject: "ours-batch", reference: "ours", metric: "sequentialP50Ms", unit: "ms", digits: 3 },
];

/** Shown beside the audit targets, not judged: `always` pays an fsync per call by design. */
const AUDIT_ALWAYS_INFO: readonly { label: string; metric: "pipelinedCallsPerSec" | "sequentialP50Ms"; unit: string; digits: number }[] = [
  { label: "pipelined throughput (fsync always) vs audit off", metric: "pipelinedCallsPerSec", unit: "calls/s", digits: 0 },
  { label: "sequential p50 (fsync always) vs audit off", metric: "sequentialP50Ms", unit: "ms", digits: 3 },
];

function figure(figures: ReadonlyMap<string, Figures>, key: string, metric: keyof Figures): number | undefined {
  const value = figures.get(key)?.[metric];
  return typeof value === "number" ? value : undefined;
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

interface MetricColumn {
  title: string;
  metric: keyof Figures;
  digits: number;
}

function metricTable(
  variants: readonly Variant[],
  figures: ReadonlyMap<string, Figures>,
  columns: readonly MetricColumn[],
  ratioMetric: keyof Figures,
  extra?: (variant: Variant) => string,
  extraTitle?: string,
): string {
  const headers = ["server", ...columns.map((c) => c.title), "vs minimal", "vs SDK", "vs ours (audit off)"];
  if (extraTitle !== undefined) headers.push(extraTitle);
  const rows = variants.map((variant) => {
    const own = figure(figures, variant.key, ratioMetric);
    const row = [
      variant.label,
      ...columns.map((c) => formatNumber(figure(figures, variant.key, c.metric), c.digits)),
      formatRatio(ratio(own, figure(figures, "minimal", ratioMetric))),
      formatRatio(ratio(own, figure(figures, "sdk", ratioMetric))),
      variant.script === "ours" && variant.key !== "ours" ? formatRatio(ratio(own, figure(figures, "ours", ratioMetric))) : "",
    ];
    if (extra !== undefined) row.push(extra(variant));
    return row;
  });
  return markdownTable(headers, rows);
}

interface Verdict {
  spec: TargetSpec;
  value: number | undefined;
  reference: number | undefined;
  verdict: TargetVerdict;
}

function buildReport(
  options: Options,
  config: Config,
  variants: readonly Variant[],
  results: ReadonlyMap<string, VariantResult>,
  figures: ReadonlyMap<string, Figures>,
  verdicts: readonly Verdict[],
  meta: Record<string, string | number>,
): string {
  const out: string[] = [];
  out.push("# mcp-secure-local benchmark", "");
  out.push(`- date: ${String(meta.date)}`);
  out.push(`- cpu: ${String(meta.cpu)} x ${String(meta.cores)} cores; load average at start ${String(meta.loadAverage)}`);
  out.push(`- node: ${String(meta.node)} on ${String(meta.os)}`);
  out.push(
    `- run: ${options.quick ? "QUICK (smoke run; figures are indicative only)" : "full"}; ` +
      `${config.coldSpawns} cold starts and ${config.sessions} workload sessions per server, interleaved; ` +
      `per session ${config.warmupCalls} warm-up calls, ${config.sequentialCalls} sequential, ${config.pipelinedCalls} pipelined, ` +
      `${config.largeSmallCount} x 1 MiB and ${config.largeBigCount} x 8 MiB echoes`,
  );
  out.push("- ratios are this server's value / the reference's value, whichever way is better for the metric", "");

  const skipped = variants.filter((v) => results.get(v.key)?.skipped !== undefined);
  const ran = variants.filter((v) => results.get(v.key)?.skipped === undefined);
  if (skipped.length > 0) {
    out.push("## Servers left out", "");
    for (const v of skipped) {
      const [head, ...tail] = results.get(v.key)!.skipped!.split("\n");
      out.push(`- **${v.label}**: ${head ?? ""}`);
      if (tail.length > 0) out.push("", "  ```", ...tail.map((line) => `  ${line}`), "  ```");
    }
    out.push("");
  }

  out.push("## Cold start: spawn to initialize response (ms, lower is better)", "");
  out.push(
    metricTable(ran, figures, [
      { title: "median", metric: "coldStartMs", digits: 1 },
      { title: "min", metric: "coldStartMinMs", digits: 1 },
      { title: "max", metric: "coldStartMaxMs", digits: 1 },
    ], "coldStartMs"),
    "",
  );

  out.push("## Sequential tools/call latency (ms, lower is better; ratios on p50)", "");
  out.push(
    metricTable(
      ran,
      figures,
      [
        { title: "p50", metric: "sequentialP50Ms", digits: 3 },
        { title: "p99", metric: "sequentialP99Ms", digits: 3 },
      ],
      "sequentialP50Ms",
      (v) => {
        const spread = figures.get(v.key)?.sequentialP50SpreadMs;
        return spread === undefined ? "n/a" : `${spread[0].toFixed(3)}-${spread[1].toFixed(3)}`;
      },
      "p50 range over sessions",
    ),
    "",
  );

  const sections: Array<{ title: string; columns: Parameters<typeof metricTable>[2]; ratioOn: Parameters<typeof metricTable>[3] }> = [
    {
      title: "Pipelined throughput (calls/s, higher is better)",
      columns: [{ title: "median", metric: "pipelinedCallsPerSec", digits: 0 }],
      ratioOn: "pipelinedCallsPerSec",
    },
    {
      title: "Large round trips: echo of 1 MiB and 8 MiB (ms, lower is better; ratios on 8 MiB)",
      columns: [
        { title: "1 MiB median", metric: "largeSmallMs", digits: 1 },
        { title: "8 MiB median", metric: "largeBigMs", digits: 1 },
      ],
      ratioOn: "largeBigMs",
    },
    {
      title: "Memory (MiB, lower is better; ratios on RSS after start)",
      columns: [
        { title: "RSS after start", metric: "rssAfterStartMiB", digits: 1 },
        { title: "peak RSS (VmHWM)", metric: "peakRssMiB", digits: 1 },
      ],
      ratioOn: "rssAfterStartMiB",
    },
    {
      title: "Server CPU per 1000 calls (ms of user+system time, lower is better; ratios on pipelined)",
      columns: [
        { title: "sequential", metric: "cpuMsPer1000Sequential", digits: 1 },
        { title: "pipelined", metric: "cpuMsPer1000Pipelined", digits: 1 },
      ],
      ratioOn: "cpuMsPer1000Pipelined",
    },
  ];
  for (const section of sections) out.push(`## ${section.title}`, "", metricTable(ran, figures, section.columns, section.ratioOn), "");

  out.push("## Targets", "");
  const targetRows = verdicts.map(({ spec, value, reference, verdict }) => [
    spec.area,
    spec.label,
    value === undefined || reference === undefined || verdict.reason !== undefined
      ? verdict.reason ?? "n/a"
      : `${formatRatio(verdict.ratio)} (${formatNumber(value, spec.digits)} vs ${formatNumber(reference, spec.digits)} ${spec.unit})`,
    verdict.pass ? "PASS" : "FAIL",
  ]);
  for (const info of AUDIT_ALWAYS_INFO) {
    const value = figure(figures, "ours-always", info.metric);
    const reference = figure(figures, "ours", info.metric);
    targetRows.push([
      "audit",
      info.label,
      value === undefined || reference === undefined
        ? "no measurement"
        : `${formatRatio(ratio(value, reference))} (${formatNumber(value, info.digits)} vs ${formatNumber(reference, info.digits)} ${info.unit})`,
      "info",
    ]);
  }
  out.push(markdownTable(["area", "target", "measured", "result"], targetRows), "");
  const failed = verdicts.filter((v) => !v.verdict.pass).length;
  out.push(failed === 0 ? "All targets met." : `${failed} of ${verdicts.length} targets not met.`, "");

  const violations = ran.filter((v) => (results.get(v.key)?.invalidLines ?? 0) > 0);
  if (violations.length > 0) {
    out.push("## Protocol violations", "");
    for (const v of violations) out.push(`- ${v.label}: ${results.get(v.key)!.invalidLines} stdout lines that were not JSON-RPC responses`);
    out.push("");
  }

  const withFailures = ran.filter((v) => (results.get(v.key)?.failures.length ?? 0) > 0);
  if (withFailures.length > 0) {
    out.push("## Errors during the run", "");
    for (const v of withFailures) {
      const counts = new Map<string, number>();
      for (const f of results.get(v.key)!.failures) {
        const key = `${f.phase}: ${f.code}: ${firstLine(f.message)}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      for (const [key, count] of counts) out.push(`- ${v.label}: ${key}${count > 1 ? ` (x${count})` : ""}`);
    }
    out.push("");
  }
  return out.join("\n");
}

function firstLine(text: string): string {
  return text.split("\n")[0]!.slice(0, 400);
}

// ---------------------------------------------------------------------------
// Bug tracker benchmark (someone else's module; optional)
// ---------------------------------------------------------------------------

async function bugtrackerSection(): Promise<string> {
  const file = path.join(here, "bugtracker.js");
  if (!existsSync(file)) return "## Bug tracker\n\nSkipped: the bug tracker benchmark (bench/bugtracker.ts) is not built.\n";
  // A computed specifier: the module is optional, so tsc must not require it to exist.
  const loaded = (await import(pathToFileURL(file).href)) as { runBugtrackerBench?: () => Promise<string> };
  if (typeof loaded.runBugtrackerBench !== "function") {
    return "## Bug tracker\n\nSkipped: bench/bugtracker.js does not export runBugtrackerBench().\n";
  }
  return loaded.runBugtrackerBench();
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

async function main(argv: readonly string[]): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(argv);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
  if (fileURLToPath(import.meta.url).endsWith(".ts")) {
    process.stderr.write("bench: run the compiled benchmark (make bench, or node dist/bench/run.js); under a TypeScript loader the servers would not be the ones measured.\n");
    return 2;
  }
  const root = findRepoRoot(here);
  const config = options.quick ? QUICK : FULL;
  const ticksPerSecond = clockTicksPerSecond();
  const bench = new Bench(root, config);
  const startedAt = performance.now();
  const meta = {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.cpus().length,
    loadAverage: os.loadavg().map((l) => l.toFixed(2)).join(" "),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    clockTicksPerSecond: ticksPerSecond,
  };

  const results = new Map<string, VariantResult>(options.servers.map((v) => [v.key, emptyResult()]));
  const result = (v: Variant): VariantResult => results.get(v.key)!;

  progress(`preflight: ${options.servers.map((v) => v.key).join(", ")}`);
  for (const variant of options.servers) {
    await bench.preflight(variant, result(variant));
    if (result(variant).skipped !== undefined) progress(`  ${variant.key} left out: ${firstLine(result(variant).skipped!)}`);
  }
  const running = options.servers.filter((v) => result(v).skipped === undefined);

  for (let round = 0; round < config.coldSpawns; round++) {
    progress(`cold start ${round + 1}/${config.coldSpawns}`);
    for (const variant of rotated(running, round)) await bench.coldStart(variant, result(variant));
  }
  for (let round = 0; round < config.sessions; round++) {
    progress(`workload session ${round + 1}/${config.sessions}`);
    for (const variant of rotated(running, round)) {
      await bench.workload(variant, result(variant));
    }
  }

  const figures = new Map<string, Figures>(options.servers.map((v) => [v.key, figuresOf(result(v), ticksPerSecond)]));
  const verdicts: Verdict[] = TARGETS.map((spec) => {
    const value = figure(figures, spec.subject, spec.metric);
    const reference = figure(figures, spec.reference, spec.metric);
    const verdict = judgeTarget(spec, value, reference);
    const selected = (key: string): boolean => options.servers.some((v) => v.key === key);
    if (!selected(spec.subject) || !selected(spec.reference)) verdict.reason = "not run (left out by --servers)";
    return { spec, value, reference, verdict };
  });

  let report = buildReport(options, config, options.servers, results, figures, verdicts, meta);
  report += `\n_Benchmark took ${((performance.now() - startedAt) / 1000).toFixed(0)} s._\n`;
  process.stdout.write(`${report}\n`);

  progress("audit floor");
  try {
    process.stdout.write(`\n${await runAuditFloorBench(figure(figures, "ours", "pipelinedCallsPerSec"))}\n`);
  } catch (error) {
    process.stdout.write(`\n## Audit floor\n\nFailed: ${error instanceof Error ? error.message : String(error)}\n`);
  }

  if (options.bugtracker) {
    progress("bug tracker benchmark");
    try {
      process.stdout.write(`\n${await bugtrackerSection()}\n`);
    } catch (error) {
      process.stdout.write(`\n## Bug tracker\n\nFailed: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }

  if (options.jsonFile !== undefined) {
    const raw = {
      meta,
      config,
      options: { quick: options.quick, servers: options.servers.map((v) => v.key) },
      variants: Object.fromEntries(options.servers.map((v) => [v.key, { ...v, figures: figures.get(v.key), raw: result(v) }])),
      targets: verdicts.map(({ spec, value, reference, verdict }) => ({ ...spec, value, reference, ...verdict })),
    };
    writeFileSync(options.jsonFile, `${JSON.stringify(raw, null, 1)}\n`);
    progress(`raw results written to ${options.jsonFile}`);
  }

  const failed = verdicts.some((v) => !v.verdict.pass);
  return options.strict && failed ? 1 : 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
} finally {
  killAllChildren();
}
