/**
 * Interoperability with the official TypeScript SDK client: it spawns the built CLI
 * over stdio, initializes, pages through tools/list one tool per page, calls the
 * discovery tools (the SDK validates their structuredContent against the listed
 * outputSchema), gets an isError result for invalid arguments, and closes stdin;
 * the server must then exit 0 on its own.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { SERVER_ENTRY } from "../helpers/project.js";
import { tempDir } from "../helpers/e2e.js";

/**
 * The SDK transport does not expose the child's exit code, so the server runs under
 * this tiny wrapper, which shares its stdio with the server and writes the server's
 * exit status to a file. If the server ignored EOF, the SDK would SIGTERM the wrapper
 * and no status would be written: the test fails either way.
 */
const EXIT_RECORDER = [
  'const { spawnSync } = require("node:child_process");',
  'const { writeFileSync } = require("node:fs");',
  "const [entry, statusFile, ...args] = process.argv.slice(1);",
  'const run = spawnSync(process.execPath, [entry, ...args], { stdio: "inherit" });',
  "writeFileSync(statusFile, JSON.stringify({ status: run.status, signal: run.signal }));",
  "process.exit(run.status ?? 1);",
].join("\n");

type Tool = { name: string; outputSchema?: Record<string, unknown> };

void test("the official SDK client pages, calls and closes against the built server", async () => {
  const stateDir = tempDir("msl-state-");
  const home = tempDir("msl-home-");
  const statusFile = join(home, "exit-status.json");
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: ["-e", EXIT_RECORDER, SERVER_ENTRY, statusFile, "--state-dir", stateDir, "--page-size", "1"],
    env: { HOME: home, PATH: process.env.PATH ?? "/usr/bin:/bin" },
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const client = new Client({ name: "msl-sdk-interop", version: "1.0.0" }, { capabilities: {} });
  const ajv = new Ajv2020({ strict: false, allErrors: true });

  try {
    await client.connect(transport);
    assert.equal(client.getServerVersion()?.name, "mcp-secure-local");
    assert.deepEqual(client.getServerCapabilities(), { tools: {}, logging: {} });
    assert.equal(typeof client.getInstructions(), "string");
    await client.ping();
    await client.setLoggingLevel("warning");

    // Page through the tools one at a time, remembering the cursor of each page.
    const tools: Tool[] = [];
    const cursorOf = new Map<string, string | undefined>();
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await client.listTools(cursor === undefined ? undefined : { cursor });
      pages += 1;
      assert.ok(page.tools.length <= 1, "--page-size 1");
      for (const tool of page.tools) {
        cursorOf.set(tool.name, cursor);
        tools.push(tool);
      }
      cursor = page.nextCursor;
    } while (cursor !== undefined && pages < 500);
    assert.equal(cursor, undefined, "the walk ends");
    const names = tools.map((tool) => tool.name);
    assert.equal(new Set(names).size, names.length, "every tool seen once");
    assert.equal(pages, names.length, "one tool per page");
    assert.ok(names.includes("search_tools") && names.includes("list_categories"));

    // SDK 1.x keeps the output schemas of the last listed page only; list the tool's
    // own page right before calling it so the SDK validates its structuredContent.
    const listPageOf = async (name: string) => {
      const at = cursorOf.get(name);
      const page = await client.listTools(at === undefined ? undefined : { cursor: at });
      assert.deepEqual(
        page.tools.map((tool) => tool.name),
        [name],
        "a cursor still leads to the same page",
      );
    };
    const checkStructured = (name: string, structured: unknown) => {
      const schema = tools.find((tool) => tool.name === name)?.outputSchema;
      assert.ok(schema, `${name} has an outputSchema`);
      const validate = ajv.compile(schema);
      assert.ok(validate(structured), `${name}: ${JSON.stringify(validate.errors)}`);
    };

    await listPageOf("search_tools");
    const search = await client.callTool({ name: "search_tools", arguments: { query: "categories" } });
    assert.notEqual(search.isError, true);
    checkStructured("search_tools", search.structuredContent);
    const results = (search.structuredContent as { results: Array<{ name: string }> }).results;
    assert.ok(results.some((result) => result.name === "list_categories"));

    // Invalid arguments: a tool-level error, which the SDK accepts without structuredContent.
    const invalid = await client.callTool({ name: "search_tools", arguments: { limit: "many" } });
    assert.equal(invalid.isError, true);
    assert.equal(invalid.structuredContent, undefined);
    const content = invalid.content as Array<{ type: string; text?: string }>;
    assert.match(content[0]?.text ?? "", /limit/);

    await listPageOf("list_categories");
    const categories = await client.callTool({ name: "list_categories", arguments: {} });
    assert.notEqual(categories.isError, true);
    checkStructured("list_categories", categories.structuredContent);
    const listed = (categories.structuredContent as { categories: Array<{ tools: string[] }> }).categories.flatMap((c) => c.tools);
    assert.deepEqual([...listed].sort(), [...names].sort());

    await client.close();
    assert.ok(existsSync(statusFile), `the server exited on stdin EOF; stderr:\n${stderr.slice(-2000)}`);
    assert.deepEqual(JSON.parse(readFileSync(statusFile, "utf8")), { status: 0, signal: null });
  } finally {
    await client.close().catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  }
});
