/**
 * Small helpers shared by the end-to-end tests, on top of `ServerProcess`: the test
 * server entry, "what did these lines produce" exchanges, exit deadlines, memory
 * readings and audit-log reading.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { resultText, type Message, type ServerProcess } from "./server-process.js";
import { ROOT } from "./project.js";

/** The test server (the real server plus the "testkit" plugin), as built into dist/. */
export const TEST_SERVER_ENTRY = join(ROOT, "dist", "test", "fixtures", "test-server.js");

export function tempDir(prefix = "msl-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

let sentinelCounter = 0;

/**
 * Runs `write` (which sends raw lines), then a `ping` sentinel, and returns every
 * message the server wrote after `write` began and before the sentinel's response.
 * The server handles lines in order and answers envelope errors, notifications and
 * pings synchronously, so what a line produced is exactly what lies before the
 * sentinel: "nothing" can be asserted without waiting for a time.
 */
export async function exchange(server: ServerProcess, write: () => void, timeoutMs = 10_000): Promise<Message[]> {
  const start = server.messages.length;
  write();
  const id = `sentinel-${++sentinelCounter}`;
  const pong = await server.request("ping", undefined, id, timeoutMs);
  const end = server.messages.indexOf(pong);
  return server.messages.slice(start, end);
}

/** Responses (results and errors) among `messages`, leaving out notifications. */
export function responses(messages: readonly Message[]): Message[] {
  return messages.filter((m) => !("method" in m));
}

/** The first message after index `from` that matches. */
export function waitForAfter(server: ServerProcess, from: number, match: (m: Message) => boolean, timeoutMs = 10_000, what = "message"): Promise<Message> {
  return server.waitFor((m) => server.messages.indexOf(m) >= from && match(m), timeoutMs, what);
}

/** Resolves with the exit, or rejects when the process is still running after `ms`. */
export async function exitWithin(server: ServerProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the server did not exit within ${ms} ms; stderr:\n${server.stderr.slice(-2000)}`)), ms);
  });
  try {
    return await Promise.race([server.exited, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** The resident set size of a process in bytes (Linux /proc), or undefined elsewhere. */
export function residentBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Every file under `dir`, recursively (empty when it does not exist). */
export function filesUnder(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const name of names) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) files.push(...filesUnder(full));
    else files.push(full);
  }
  return files;
}

/** The raw text of every file in the audit directory of a state dir. */
export function auditText(stateDir: string): string {
  return filesUnder(join(stateDir, "audit"))
    .map((file) => readFileSync(file, "utf8"))
    .join("\n");
}

/** The audit entries (JSON lines with an `event`) of a state dir, in file order. */
export function auditEntries(stateDir: string): Message[] {
  const entries: Message[] = [];
  for (const line of auditText(stateDir).split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const value = JSON.parse(line) as Message;
      if (typeof value.event === "string") entries.push(value);
    } catch {
      // not an entry line
    }
  }
  return entries;
}

/** Walks `tools/list` page by page; returns every page's tools. */
export async function listAllPages(server: ServerProcess, maxPages = 1000): Promise<Message[][]> {
  const pages: Message[][] = [];
  let cursor: string | undefined;
  do {
    const response = await server.request("tools/list", cursor === undefined ? {} : { cursor });
    if (!response.result) throw new Error(`tools/list failed: ${JSON.stringify(response)}`);
    pages.push(response.result.tools as Message[]);
    cursor = response.result.nextCursor as string | undefined;
  } while (cursor !== undefined && pages.length < maxPages);
  if (cursor !== undefined) throw new Error(`tools/list did not end within ${maxPages} pages`);
  return pages;
}

/** The `count` that the testkit's spy_count reports. */
export async function spyCount(server: ServerProcess): Promise<number> {
  const response = await server.callTool("spy_count", {});
  const count = response.result?.structuredContent?.count;
  if (typeof count !== "number") throw new Error(`spy_count failed: ${JSON.stringify(response)}`);
  return count;
}

/** A successful tool result: no error, structuredContent present, and its text copy equal to it. */
export function expectStructured(reply: Message): Message {
  assert.equal(reply.error, undefined, JSON.stringify(reply.error));
  assert.notEqual(reply.result?.isError, true, resultText(reply));
  const structured = reply.result.structuredContent as Message;
  assert.equal(typeof structured, "object", "structuredContent is present");
  assert.deepEqual(JSON.parse(resultText(reply)), structured, "the text copy matches structuredContent");
  return structured;
}

/** A successful read_file in text: structuredContent, and its first text block the file's text itself (not JSON). */
export function expectReadText(reply: Message): Message {
  assert.equal(reply.error, undefined, JSON.stringify(reply.error));
  assert.notEqual(reply.result?.isError, true, resultText(reply));
  const structured = reply.result.structuredContent as Message;
  assert.equal(structured.encoding, "utf8");
  const blocks = reply.result.content as Message[];
  assert.deepEqual(blocks[0], { type: "text", text: structured.content }, "the text block is the file's text as it is");
  const note = blocks[1]?.text as string | undefined;
  if (structured.next_offset !== undefined) assert.match(note ?? "", new RegExp(`read on with offset ${String(structured.next_offset)}\\]$`));
  else if (structured.offset === 0 && structured.size !== 0) assert.equal(blocks.length, 1, "a whole file needs no note");
  return structured;
}

/** A tool-level failure: an isError result (not a JSON-RPC error) without structuredContent, whose text matches every pattern. */
export function expectToolError(reply: Message, ...patterns: RegExp[]): string {
  assert.equal(reply.error, undefined, "a tool failure is a result, not a JSON-RPC error");
  assert.equal(reply.result?.isError, true, `expected isError, got ${JSON.stringify(reply.result)}`);
  assert.equal(reply.result.structuredContent, undefined, "no structuredContent on an error");
  const text = resultText(reply);
  for (const pattern of patterns) assert.match(text, pattern);
  return text;
}
