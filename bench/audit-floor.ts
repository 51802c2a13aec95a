/**
 * What one audited call costs the audit log, measured in this process with hot caches,
 * beside what the audit targets leave for it. The targets are ratios against the same
 * server with the audit off, so they give the audit a budget per call: at 0.7x the
 * throughput, (1/0.7 - 1) times the audit-off call's time. This shows whether the work
 * the log's format requires (two chained entries and a result digest per call) fits.
 *
 * Run by `make bench` after the server benchmarks (it takes the audit-off pipelined
 * figure from them), or alone: `node dist/bench/audit-floor.js [AUDIT_OFF_CALLS_PER_S]`.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { openAuditLog } from "../src/security/audit/index.js";
import { lineBytesBound, sealLineInto, sealedCanonicalJson, type EntryFields, type SealHead } from "../src/security/audit/entry.js";
import { sha256Hex } from "../src/util/canonical-json.js";
import { serializeOnce } from "../src/util/json-text.js";
import { silentLogger } from "../src/util/logger.js";

const REPS = 7;
const PER_REP = 20_000;
/** Calls in flight at once for the whole-log figure, as the server's default in-flight limit. */
const IN_FLIGHT = 256;
const CALL_ID = "01KBQ3Z8Y6W4J5R2N0H3A7C9D1";
const PREV = "627fc4aaca32d6e01cbd160170d78bb8be4fe45fe875e3a647859c32ecb40909";
const TS = "2026-12-05T14:30:50.123Z";

function progress(message: string): void {
  process.stderr.write(`[audit floor] ${message}\n`);
}

/** The median over REPS of the mean time per iteration, in µs (after one warm-up rep). */
function timed(body: (i: number) => void): number {
  const means: number[] = [];
  for (let rep = 0; rep <= REPS; rep++) {
    const start = performance.now();
    for (let i = 0; i < PER_REP; i++) body(rep * PER_REP + i);
    if (rep > 0) means.push(((performance.now() - start) * 1000) / PER_REP);
  }
  means.sort((a, b) => a - b);
  return means[Math.floor(means.length / 2)]!;
}

function head(seq: number): SealHead {
  return { seq, id: "01KBQ3Z8Y6W4J5R2N0H3A7C9D2", ts: TS, tsJson: `"${TS}"`, prev: PREV, prevJson: `"${PREV}"` };
}

/** The entries the engine records for one call of the benchmark's echo tool. */
function callFields(i: number): EntryFields {
  return { event: "tool_call", tool: "echo", requestId: i, callId: CALL_ID, arguments: { text: `pipe ${i}` } };
}

function resultOf(i: number): Record<string, unknown> {
  return { content: [{ type: "text", text: `pipe ${i}` }] };
}

function resultFields(i: number, digest: Record<string, unknown>): EntryFields {
  return { event: "tool_result", tool: "echo", requestId: i, callId: CALL_ID, outcome: "ok", durationMs: 0.123, data: digest };
}

function digestOf(result: Record<string, unknown>): Record<string, unknown> {
  const text = serializeOnce(result);
  return { resultBytes: Buffer.byteLength(text), resultSha256: sha256Hex(text) };
}

/** The parts, each alone in a tight loop. */
function parts(): Array<{ part: string; us: number }> {
  const buffer = Buffer.allocUnsafe(1 << 20);
  let offset = 0;
  const seal = (fields: EntryFields, seq: number): void => {
    const canonical = sealedCanonicalJson(head(seq), fields);
    if (offset + lineBytesBound(canonical) > buffer.length) offset = 0;
    offset += sealLineInto(buffer, offset, canonical).bytes;
  };
  const line400 = Buffer.alloc(400, 0x61);
  return [
    { part: "tool_call entry: canonical JSON only", us: timed((i) => sealedCanonicalJson(head(i), callFields(i))) },
    { part: "tool_call entry: sealed (JSON, UTF-8, SHA-256, hash)", us: timed((i) => seal(callFields(i), i)) },
    { part: "result digest (JSON of the result, SHA-256)", us: timed((i) => digestOf(resultOf(i))) },
    { part: "tool_result entry: sealed", us: timed((i) => seal(resultFields(i, { resultBytes: 45, resultSha256: PREV }), i)) },
    { part: "one SHA-256 of 400 bytes (node:crypto one-shot)", us: timed(() => sha256Hex(line400)) },
  ];
}

/** The real log (fsync batch, a temp dir): per call a tool_call, a digest and a tool_result, IN_FLIGHT calls at a time. */
async function wholeLog(): Promise<number> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "msl-audit-floor-"));
  try {
    const sink = await openAuditLog({
      policy: {
        enabled: true,
        log_file: path.join(root, "audit.log"),
        log_level: "info",
        fsync: "batch",
        fsync_interval_ms: 100,
        checkpoint_every: 1000,
        rotate_bytes: 0,
        rotate_daily: false,
      },
      stateDir: root,
      serverVersion: "bench",
      policySha256: "a".repeat(64),
      catalogSha256: "b".repeat(64),
      logger: silentLogger,
    });
    const call = async (i: number): Promise<void> => {
      await sink.append(callFields(i));
      await sink.append(resultFields(i, digestOf(resultOf(i))));
    };
    const means: number[] = [];
    for (let rep = 0; rep <= REPS; rep++) {
      const start = performance.now();
      for (let done = 0; done < PER_REP; done += IN_FLIGHT) {
        const batch: Array<Promise<void>> = [];
        for (let i = done; i < Math.min(PER_REP, done + IN_FLIGHT); i++) batch.push(call(rep * PER_REP + i));
        await Promise.all(batch);
      }
      if (rep > 0) means.push(((performance.now() - start) * 1000) / PER_REP);
    }
    await sink.close("bench over");
    means.sort((a, b) => a - b);
    return means[Math.floor(means.length / 2)]!;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** The section, in Markdown. `auditOffCallsPerSec`: the server's pipelined throughput with the audit off, if measured. */
export async function runAuditFloorBench(auditOffCallsPerSec?: number): Promise<string> {
  progress("parts");
  const measured = parts();
  progress("the whole log");
  const whole = await wholeLog();
  const rows = measured.map(({ part, us }) => `| ${part} | ${us.toFixed(2)} |`);
  rows.push(`| **the log, per call** (two entries and the digest through the audit sink, ${IN_FLIGHT} calls at a time, fsync batch) | **${whole.toFixed(2)}** |`);
  let budget = "";
  if (auditOffCallsPerSec !== undefined && auditOffCallsPerSec > 0) {
    const offUs = 1e6 / auditOffCallsPerSec;
    const allowed = offUs * (1 / 0.7 - 1);
    budget =
      `\nWith the audit off, a pipelined call takes ${offUs.toFixed(2)} µs of the server (${Math.round(auditOffCallsPerSec)} calls/s above). ` +
      `Pipelined throughput of at least 0.7x that leaves the audit ${allowed.toFixed(2)} µs per call; ` +
      `the log's own work, hot and with nothing else in the process, takes ${whole.toFixed(2)} µs (${(whole / allowed).toFixed(1)}x the budget).\n`;
  }
  return [
    "## Audit floor: what the log's work costs per call (µs, in process, hot caches)",
    "",
    "| part | µs |",
    "| --- | --- |",
    ...rows,
    budget,
  ].join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const given = process.argv[2] === undefined ? undefined : Number(process.argv[2]);
  runAuditFloorBench(given).then(
    (text) => process.stdout.write(`${text}\n`),
    (error: unknown) => {
      process.stderr.write(`audit floor benchmark failed: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
