/**
 * The writer under writes that read their bytes late (as the thread pool does) and write
 * short: entries of every size (tiny, past the exact-count threshold, past the line
 * buffer's keep size), non-ASCII, astral and lone-surrogate text, sealed while writes are
 * in flight, with checkpoints and a rotation. The chain must verify, every entry must hold
 * what was appended, in order, and nothing may stay held once everything is written.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { nodeAuditFs, verifyAudit, type AuditFs } from "../../src/security/audit/index.js";
import { openTestLog, parse, readLines, tempEnv } from "../fixtures/audit-helpers.js";

function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A layer whose asynchronous write waits, then copies only part of what it was given, at that moment. */
function lateShortWrites(random: () => number): AuditFs {
  return {
    ...nodeAuditFs,
    writeSync: undefined, // batch mode takes the asynchronous path too
    async write(fd, buffer, offset, length) {
      await delay(Math.floor(random() * 3));
      const n = Math.max(1, Math.min(length, Math.floor(random() * length * 1.5)));
      const bytes = Buffer.from(buffer.subarray(offset, offset + n));
      return nodeAuditFs.write(fd, bytes, 0, bytes.length);
    },
  };
}

function textOf(random: () => number, label: string): string {
  const r = random();
  // Mostly small; some past 16,384 UTF-16 units (counted exactly); a few past the 1 MiB keep size.
  const size = r < 0.6 ? 10 : r < 0.9 ? 6_000 + Math.floor(random() * 14_000) : r < 0.985 ? 17_000 + Math.floor(random() * 30_000) : 400_000;
  const unit = random() < 0.5 ? "ü😀\ud800x" : "abc";
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size) + label;
}

for (const fsync of ["always", "batch"] as const) {
  for (const seed of [1, 2]) {
    void test(`fsync ${fsync}, seed ${seed}: entries sealed during late, short writes are written whole and in order`, async () => {
      const env = tempEnv();
      const random = prng(seed);
      try {
        const sink = await openTestLog(env, { fsync, rotate_bytes: 2_000_000, checkpoint_every: 37 }, { fs: lateShortWrites(random) });
        const expected: string[] = [];
        const pending: Array<Promise<unknown>> = [];
        for (let round = 0; round < 40; round++) {
          const count = 1 + Math.floor(random() * 20);
          for (let i = 0; i < count; i++) {
            const text = textOf(random, `#${round}.${i}`);
            expected.push(text);
            pending.push(sink.append({ event: "tool_call", tool: "t", requestId: round * 100 + i, arguments: { text } }));
          }
          await delay(Math.floor(random() * 4));
        }
        await Promise.all(pending);
        assert.equal(sink.status().unwrittenBytes, 0, "nothing stays held once every entry is written");
        await sink.close("done");

        const summary = await verifyAudit(env.logDir);
        assert.equal(summary.ok, true, JSON.stringify(summary.failure));
        const files = fs.readdirSync(env.logDir).filter((name) => name.endsWith(".log"));
        assert.ok(files.length >= 2, `the log rotated at least once: ${files.join(", ")}`);
        const entries = files.flatMap((name) => readLines(path.join(env.logDir, name)).map(parse)).sort((a, b) => a.seq - b.seq);
        const texts = entries.filter((entry) => entry.event === "tool_call").map((entry) => entry.arguments.text as string);
        assert.equal(texts.length, expected.length);
        texts.forEach((text, i) => assert.ok(text === expected[i], `entry ${i} holds what was appended`));
      } finally {
        env.cleanup();
      }
    });
  }
}
