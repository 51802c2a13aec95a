/**
 * Backpressure end to end, through the built server over real pipes:
 * - a client that stops reading stdout makes the server stop reading stdin (it does not keep
 *   serving into an unbounded buffer), and once the client reads again every request gets
 *   exactly one intact response;
 * - a client that floods requests which cannot finish yet (here: each waits for its audit
 *   entry's fsync) finds the server reading no further than its in-flight limit.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ServerProcess, type Message } from "../helpers/server-process.js";

const FAST = `version: "1.0"
tools:
  rate_limits:
    default: 1000000
audit:
  enabled: false
`;

const DURABLE = `version: "1.0"
tools:
  rate_limits:
    default: 1000000
audit:
  fsync: always
`;

async function settled(read: () => number, quietMs: number, maxMs: number): Promise<number> {
  let last = read();
  for (let waited = 0; waited < maxMs; waited += quietMs) {
    await new Promise((resolve) => setTimeout(resolve, quietMs));
    const now = read();
    if (now === last) return now;
    last = now;
  }
  return last;
}

/** Sends `total` search_tools calls whose answers list every tool with its schemas (a few KB each). */
function flood(server: ServerProcess, total: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < total; i++) {
    const id = server.newId();
    ids.push(id);
    server.send({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "search_tools", arguments: { query: "", detail_level: "full" } } });
  }
  return ids;
}

async function expectAllAnswered(server: ServerProcess, ids: number[]): Promise<void> {
  const responses = await Promise.all(ids.map((id) => server.waitFor((m) => m.id === id && !("method" in m), 60_000, `response ${id}`)));
  for (const response of responses) {
    const result = response.result as Message | undefined;
    assert.equal(result?.isError, undefined, JSON.stringify(response).slice(0, 300));
    assert.ok(Array.isArray((result?.structuredContent as Message | undefined)?.results));
  }
  const wanted = new Set(ids);
  assert.equal(server.messages.filter((m) => wanted.has(m.id as number)).length, ids.length, "exactly one response per request");
}

void test("a client that stops reading: the server stops reading too, then answers every request once, intact", async () => {
  const server = await ServerProcess.initialized({ policy: FAST });
  try {
    server.child.stdout.pause();
    const ids = flood(server, 3000); // ~450 KB of requests, a few MB of answers
    // The server's unread input backs up into this process's stdin buffer.
    const backlog = await settled(() => server.child.stdin.writableLength, 300, 5000);
    assert.ok(backlog > 100_000, `the server stopped reading while its output was not read (${backlog} bytes left unread)`);
    server.child.stdout.resume();
    await expectAllAnswered(server, ids);
    assert.equal(server.child.stdin.writableLength, 0);
  } finally {
    server.child.stdout.resume();
    const { code } = await server.close(10_000);
    assert.equal(code, 0);
  }
});

void test("requests that cannot finish yet are read no further than the in-flight limit", async () => {
  const server = await ServerProcess.initialized({ policy: DURABLE, args: ["--max-in-flight", "8"] });
  const log = join(server.stateDir, "audit", "audit.log");
  const started = () => readFileSync(log, "utf8").split("\n").filter((line) => line.includes('"event":"tool_call"')).length;
  try {
    server.child.stdout.pause(); // answers pile up, so calls stay in flight only as long as their fsync
    const ids = flood(server, 3000);
    const count = await settled(started, 300, 5000);
    assert.ok(count > 0);
    assert.ok(count < 1500, `the server stopped reading (it started ${count} of 3000 calls)`);
    server.child.stdout.resume();
    await expectAllAnswered(server, ids);
    assert.equal(started(), 3000);
  } finally {
    server.child.stdout.resume();
    const { code } = await server.close(10_000);
    assert.equal(code, 0);
  }
});
