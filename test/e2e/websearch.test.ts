/**
 * web_search over real pipes, against a results page served on loopback (the server is
 * pointed at it with MCP_SECURE_LOCAL_WEB_SEARCH_URL): the request goes out only through the
 * egress guard, so the policy decides where it may go, and the audit log holds the call.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ServerProcess, type Message } from "../helpers/server-process.js";
import { auditEntries, expectStructured, expectToolError } from "../helpers/e2e.js";
import { ROOT } from "../helpers/project.js";

const LITE_PAGE = readFileSync(join(ROOT, "test", "fixtures", "websearch", "lite-results.html"), "utf8");

/** A policy that lets tools reach 127.0.0.1 and nothing else. */
const LOOPBACK_POLICY = ['version: "1.0"', "network:", '  allowed_ranges: ["127.0.0.1/32"]', ""].join("\n");

interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
}

void describe("web_search against a results page on loopback", () => {
  let page: Server;
  let base: string;
  const seen: Seen[] = [];

  before(async () => {
    page = createServer((request, response) => {
      seen.push({ url: request.url ?? "", headers: request.headers });
      const url = new URL(request.url ?? "/", "http://127.0.0.1");
      if (url.pathname === "/elsewhere/") {
        // A hop to an address the policy does not allow (127.0.0.2 is loopback too, outside 127.0.0.1/32).
        const { port } = page.address() as AddressInfo;
        response.writeHead(302, { location: `http://127.0.0.2:${port}/lite/?q=x` }).end();
        return;
      }
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(LITE_PAGE);
    });
    await new Promise<void>((resolve) => page.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise<void>((resolve) => page.close(() => resolve()));
  });

  void test("results come back structured, the page was asked with the query, and the audit log holds call and outcome", async () => {
    const server = await ServerProcess.initialized({ policy: LOOPBACK_POLICY, env: { MCP_SECURE_LOCAL_WEB_SEARCH_URL: `${base}/lite/` } });
    try {
      const listed = await server.request("tools/list");
      const tool = (listed.result.tools as Message[]).find((item) => item.name === "web_search");
      assert.deepEqual(Object.keys(tool?.inputSchema.properties ?? {}), ["query", "max_results"], "the seed's argument names");
      const before = seen.length;
      const found = expectStructured(await server.callTool("web_search", { query: "model context protocol", max_results: 2 }));
      assert.equal(found.query, "model context protocol");
      assert.equal(found.source, new URL(base).host);
      assert.deepEqual(
        (found.results as Message[]).map((hit) => hit.title),
        ["Specification \u2013 Model Context Protocol", "Model Context Protocol \u00b7 GitHub"],
      );
      assert.equal(seen.length, before + 1);
      const asked = seen[seen.length - 1]!;
      assert.equal(new URL(asked.url, base).searchParams.get("q"), "model context protocol");
      assert.match(String(asked.headers["user-agent"]), /^mcp-secure-local\/\S+ \(web_search\)$/);

      const entries = auditEntries(server.stateDir).filter((entry) => entry.tool === "web_search");
      assert.deepEqual(entries.map((entry) => [entry.event, entry.outcome]), [["tool_call", undefined], ["tool_result", "ok"]]);
      assert.deepEqual(entries[0]?.arguments, { query: "model context protocol", max_results: 2 });
      assert.deepEqual(server.problems, []);
    } finally {
      await server.close();
    }
  });

  void test("a redirect to an address the policy does not allow is refused, audited as denied, and never followed", async () => {
    const server = await ServerProcess.initialized({ policy: LOOPBACK_POLICY, env: { MCP_SECURE_LOCAL_WEB_SEARCH_URL: `${base}/elsewhere/` } });
    try {
      const before = seen.length;
      expectToolError(await server.callTool("web_search", { query: "x" }), /EGRESS_REDIRECT_DENIED/, /127\.0\.0\.2/);
      assert.equal(seen.length, before + 1, "only the first hop reached a server");
      const result = auditEntries(server.stateDir).find((entry) => entry.tool === "web_search" && entry.event === "tool_result");
      assert.equal(result?.outcome, "denied");
    } finally {
      await server.close();
    }
  });

  void test("under the built-in policy (no network) the tool is listed, and a call is refused before anything is sent", async () => {
    const server = await ServerProcess.initialized({ env: { MCP_SECURE_LOCAL_WEB_SEARCH_URL: `${base}/lite/` } });
    try {
      const before = seen.length;
      expectToolError(await server.callTool("web_search", { query: "private words" }), /EGRESS_DENIED/);
      assert.equal(seen.length, before, "no request left the server");
      // The seed's bounds, declared only there, enforced here: nothing sent either.
      expectToolError(await server.callTool("web_search", { query: "x", max_results: 21 }), /max_results/);
      assert.equal(seen.length, before);
    } finally {
      await server.close();
    }
  });

  void test("a search URL that is not http(s) is reported on stderr at start, and each call says what to fix", async () => {
    const server = await ServerProcess.initialized({ policy: LOOPBACK_POLICY, env: { MCP_SECURE_LOCAL_WEB_SEARCH_URL: "ftp://127.0.0.1/lite/" } });
    try {
      await server.waitForStderr(/MCP_SECURE_LOCAL_WEB_SEARCH_URL: ftp: is not https/, 5000);
      expectToolError(await server.callTool("web_search", { query: "x" }), /not configured correctly.*MCP_SECURE_LOCAL_WEB_SEARCH_URL/);
    } finally {
      await server.close();
    }
  });
});
