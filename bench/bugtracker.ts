/**
 * Bug tracker benchmark: per-call latency of add_bug and get_bug through
 * `plugin.execute`, and the cost of a first page (list and search) at 1,000,
 * 10,000 and 100,000 bugs. Pages walk indexes, so the 100k/1k ratio should stay
 * near 1 (target: at most 2x). Bulk data is seeded through the store in large
 * transactions, not through tool calls. Everything lives in temp dirs.
 *
 * Run: `node dist/bench/bugtracker.js` (Markdown on stdout, progress on stderr).
 */
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import type { JsonObject, Plugin } from "../src/plugins/contract.js";
import { createBugtrackerPlugin } from "../src/plugins/builtin/bugtracker/index.js";
import { migrate } from "../src/plugins/builtin/bugtracker/migrations.js";
import { PRIORITIES } from "../src/plugins/builtin/bugtracker/model.js";
import { BugStore } from "../src/plugins/builtin/bugtracker/store.js";
import { createTestContext, type TestContext } from "../test/helpers/plugin-context.js";

const LATENCY_CALLS = 2000;
const LATENCY_WARMUP = 200;
const SIZES = [1_000, 10_000, 100_000] as const;
const PAGE_REPS = 60;
const PAGE_WARMUP = 10;
const SEED_BATCH = 10_000;
/** Bugs whose title holds the rare word, whatever the table size. */
const RARE_MATCHES = 20;

function progress(message: string): void {
  process.stderr.write(`[bugtracker bench] ${message}\n`);
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new Error("no samples");
  return sorted[Math.min(sorted.length - 1, Math.floor(p * (sorted.length - 1)))]!;
}

function summary(samples: number[]): { p50: number; p99: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
}

const ms = (value: number) => (value < 1 ? value.toFixed(3) : value.toFixed(2));

interface Bench {
  tc: TestContext;
  plugin: Plugin;
  project: string;
  call(tool: string, args: JsonObject): Promise<JsonObject>;
  close(): Promise<void>;
}

async function open(): Promise<Bench> {
  const tc = createTestContext();
  const project = tc.makeDir("bench-project");
  const plugin = createBugtrackerPlugin();
  const call = async (tool: string, args: JsonObject) => {
    const outcome = await plugin.execute(tool, args, tc.context({ projectPath: project }));
    if (outcome.isError === true || outcome.structuredContent === undefined) throw new Error(`${tool} failed: ${JSON.stringify(outcome.content)}`);
    return outcome.structuredContent;
  };
  await call("init_bugtracker", {});
  return { tc, plugin, project, call, close: async () => (await plugin.close?.(), tc.cleanup()) };
}

async function timeCall(bench: Bench, tool: string, args: JsonObject): Promise<number> {
  const start = performance.now();
  await bench.call(tool, args);
  return performance.now() - start;
}

async function latency(): Promise<string[]> {
  progress(`add_bug and get_bug latency over ${LATENCY_CALLS} calls`);
  const bench = await open();
  try {
    for (let i = 0; i < LATENCY_WARMUP; i++) await bench.call("add_bug", { title: `warm-up ${i}` });
    const adds: number[] = [];
    for (let i = 0; i < LATENCY_CALLS; i++) {
      adds.push(await timeCall(bench, "add_bug", { title: `bug ${i}`, description: "steps to reproduce", priority: PRIORITIES[i % 4]!, tags: ["bench", `t${i % 7}`] }));
    }
    const total = LATENCY_WARMUP + LATENCY_CALLS;
    const gets: number[] = [];
    for (let i = 0; i < LATENCY_CALLS; i++) gets.push(await timeCall(bench, "get_bug", { bug_id: `BUG-${1 + ((i * 7919) % total)}` }));
    const add = summary(adds);
    const get = summary(gets);
    return [
      `| add_bug | ${ms(add.p50)} | ${ms(add.p99)} |`,
      `| get_bug (with history) | ${ms(get.p50)} | ${ms(get.p99)} |`,
    ];
  } finally {
    await bench.close();
  }
}

/** Seeds `count` bugs through a second connection, in transactions of SEED_BATCH. */
function seed(bench: Bench, count: number): void {
  const db = new Database(bench.tc.databasePath("bugtracker"));
  try {
    migrate(db);
    let tick = Date.UTC(2025, 0, 1);
    let serial = 0;
    const store = new BugStore(db, {
      now: () => (tick += 3),
      random: () => {
        const bytes = new Uint8Array(10);
        new DataView(bytes.buffer).setUint32(6, ++serial);
        return bytes;
      },
    });
    const project = store.write(() => store.findProjectByPath(bench.project));
    if (project === undefined) throw new Error("the bench project is not registered");
    const rareEvery = Math.floor(count / RARE_MATCHES);
    for (let start = 0; start < count; start += SEED_BATCH) {
      store.write(() => {
        for (let i = start; i < Math.min(count, start + SEED_BATCH); i++) {
          const words = [i % 10 === 0 ? "crash" : "glitch", i % rareEvery === 0 ? "zephyr" : "", `item${i}`].join(" ");
          store.insertBug(project, {
            title: `Bug ${i} ${words}`,
            description: `Something about module ${i % 97} and screen ${i % 13}.`,
            priority: PRIORITIES[i % 4]!,
            tags: i % 3 === 0 ? ["ui"] : ["backend"],
          });
        }
      });
    }
    db.pragma("optimize");
  } finally {
    db.close();
  }
}

interface PageCase {
  name: string;
  args: JsonObject;
  /** Whether the ≤ 2x target applies (explicit relevance order over a common word ranks every match). */
  target: boolean;
}

const PAGE_CASES: PageCase[] = [
  { name: "list_bugs, first page (newest first)", args: {}, target: true },
  { name: "list_bugs, status=open, by priority", args: { status: "open", sort: "priority" }, target: true },
  { name: "list_bugs, tags=[ui], updated_desc", args: { tags: ["ui"], sort: "updated_desc" }, target: true },
  { name: `search "zephyr" (${RARE_MATCHES} matches), relevance`, args: { query: "zephyr", sort: "relevance" }, target: true },
  { name: 'search "crash" (10% match), default order (newest first)', args: { query: "crash" }, target: true },
  { name: 'search "crash" (10% match), sort=relevance (opt-in)', args: { query: "crash", sort: "relevance" }, target: false },
];

async function pages(): Promise<{ rows: string[]; verdicts: string[] }> {
  const results = new Map<string, number[]>();
  for (const size of SIZES) {
    const bench = await open();
    try {
      progress(`seeding ${size} bugs`);
      const seeded = performance.now();
      seed(bench, size);
      progress(`seeded ${size} bugs in ${((performance.now() - seeded) / 1000).toFixed(1)} s; timing first pages`);
      for (const { name, args } of PAGE_CASES) {
        for (let i = 0; i < PAGE_WARMUP; i++) await bench.call("list_bugs", args);
        const samples: number[] = [];
        for (let i = 0; i < PAGE_REPS; i++) samples.push(await timeCall(bench, "list_bugs", args));
        const list = results.get(name) ?? [];
        list.push(summary(samples).p50);
        results.set(name, list);
      }
    } finally {
      await bench.close();
    }
  }
  const rows: string[] = [];
  const verdicts: string[] = [];
  for (const { name, target } of PAGE_CASES) {
    const [small, medium, large] = results.get(name) ?? [];
    if (small === undefined || medium === undefined || large === undefined) continue;
    const ratio = large / small;
    const verdict = target ? (ratio <= 2 ? "met" : "**missed**") : "n/a (ranks every match)";
    rows.push(`| ${name} | ${ms(small)} | ${ms(medium)} | ${ms(large)} | ${ratio.toFixed(2)}x | ${verdict} |`);
    if (target) verdicts.push(verdict);
  }
  return { rows, verdicts };
}

export async function runBugtrackerBench(): Promise<string> {
  const started = performance.now();
  const latencyRows = await latency();
  const pageResults = await pages();
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  return [
    "## Bug tracker",
    "",
    `Through \`plugin.execute\` with the test context (real SQLite in a temp dir, WAL). Latency over ${LATENCY_CALLS} calls after ${LATENCY_WARMUP} warm-up calls, in ms:`,
    "",
    "| Tool | p50 | p99 |",
    "|---|---|---|",
    ...latencyRows,
    "",
    `First page (limit 50) at each table size: median of ${PAGE_REPS} calls, in ms. Target: 100k/1k at most 2x.`,
    "",
    "| Query | 1k | 10k | 100k | 100k/1k | Target |",
    "|---|---|---|---|---|---|",
    ...pageResults.rows,
    "",
    `Targets met: ${pageResults.verdicts.filter((verdict) => verdict === "met").length}/${pageResults.verdicts.length}. Relevance order over a common word has to score every match (FTS5 bm25), so it grows with the number of matches; newest-first search and rare words do not. Total bench time ${seconds} s.`,
    "",
  ].join("\n");
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runBugtrackerBench().then(
    (report) => process.stdout.write(report),
    (error: unknown) => {
      process.stderr.write(`bugtracker bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
