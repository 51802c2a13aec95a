import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { CapabilityDeniedError, ToolError } from "../../src/plugins/contract.js";
import { compileNetworkPolicy, type CompiledNetworkPolicy } from "../../src/security/egress-guard.js";
import { createGuardedFetch, type GuardedFetchOptions, type Lookup, type LookupAddress } from "../../src/security/capabilities/fetch.js";
import type { NetworkPolicy } from "../../src/security/policy-types.js";

interface TestServer {
  port: number;
  /** Requests seen, in order. */
  requests: http.IncomingMessage[];
  /** TCP connections accepted: 0 proves nothing reached the server. */
  connections: number;
  close(): Promise<void>;
}

type Handler = (request: http.IncomingMessage, response: http.ServerResponse, body: string) => void;

const servers: TestServer[] = [];

async function startServer(handler: Handler, tlsOptions?: { key: string; cert: string }): Promise<TestServer> {
  const requests: http.IncomingMessage[] = [];
  const listener = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    requests.push(request);
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => handler(request, response, Buffer.concat(chunks).toString("utf8")));
  };
  const server = tlsOptions === undefined ? http.createServer(listener) : https.createServer(tlsOptions, listener);
  const state: TestServer = {
    port: 0,
    requests,
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on("connection", () => {
    state.connections++;
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.port = (server.address() as AddressInfo).port;
  servers.push(state);
  return state;
}

function policy(overrides: Partial<NetworkPolicy>): CompiledNetworkPolicy {
  return compileNetworkPolicy({
    allowed_ranges: [],
    allowed_endpoints: [],
    blocked_ports: [],
    allow_dns: false,
    dns_allowlist: [],
    max_response_bytes: 1_000_000,
    timeout: 10,
    ...overrides,
  });
}

/** A resolver from a fixed table; counts calls per name. */
function staticLookup(table: Record<string, string[]>): Lookup & { calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const lookup = (hostname: string): Promise<LookupAddress[]> => {
    calls.set(hostname, (calls.get(hostname) ?? 0) + 1);
    const addresses = table[hostname];
    if (addresses === undefined) return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" }));
    return Promise.resolve(addresses.map((address): LookupAddress => ({ address, family: address.includes(":") ? 6 : 4 })));
  };
  return Object.assign(lookup, { calls });
}

const LIMITS = { maxResponseBytes: 64 * 1024, timeoutMs: 5000 };

function fetcher(compiled: CompiledNetworkPolicy, options: GuardedFetchOptions = {}, limits = LIMITS) {
  return createGuardedFetch(compiled, limits, options);
}

async function refused(promise: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof CapabilityDeniedError, `expected CapabilityDeniedError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    return true;
  });
}

const hello: Handler = (request, response, body) => {
  response.setHeader("content-type", "text/plain");
  response.setHeader("x-seen-host", request.headers.host ?? "");
  response.setHeader("x-seen-encoding", request.headers["accept-encoding"] ?? "");
  response.end(`hello ${request.method} ${request.url}${body === "" ? "" : ` ${body}`}`);
};

after(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

void describe("allowed fetches", () => {
  void test("a name allowed by dns_allowlist and resolving into allowed_ranges works end to end", async () => {
    const server = await startServer(hello);
    const lookup = staticLookup({ "localhost-test.example": ["127.0.0.1"] });
    const compiled = policy({ allowed_ranges: ["127.0.0.1/32"], allow_dns: true, dns_allowlist: ["localhost-test.example"] });
    const fetch = fetcher(compiled, { lookup });
    const response = await fetch(`http://localhost-test.example:${server.port}/path?q=1`);
    assert.equal(response.status, 200);
    assert.equal(response.text(), "hello GET /path?q=1");
    assert.equal(response.url, `http://localhost-test.example:${server.port}/path?q=1`);
    assert.equal(response.headers["content-type"], "text/plain");
    assert.equal(response.headers["x-seen-host"], `localhost-test.example:${server.port}`);
    assert.equal(response.headers["x-seen-encoding"], "identity", "no compressed bodies, so no decompression bombs");
    assert.ok(response.body instanceof Uint8Array);
    assert.equal(lookup.calls.get("localhost-test.example"), 1);

    const posted = await fetch(`http://localhost-test.example:${server.port}/submit`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Custom": "yes", "X-Latin": "caf\u00e9\tau lait" },
      body: '{"a":1}',
    });
    assert.equal(posted.text(), 'hello POST /submit {"a":1}');
    const last = server.requests.at(-1)!;
    assert.equal(last.headers["x-custom"], "yes");
    assert.equal(last.headers["x-latin"], "caf\u00e9\tau lait", "tab and Latin-1 text are valid header values");
    assert.equal(last.headers["content-length"], "7");
  });

  void test("an endpoint naming 127.0.0.1 with one port allows that port only", async () => {
    const allowed = await startServer(hello);
    const other = await startServer(hello);
    const compiled = policy({ allowed_endpoints: [{ host: "127.0.0.1", ports: [allowed.port] }] });
    const fetch = fetcher(compiled);
    assert.equal((await fetch(`http://127.0.0.1:${allowed.port}/`)).text(), "hello GET /");
    await refused(fetch(`http://127.0.0.1:${other.port}/`), "EGRESS_DENIED", new RegExp(`127\\.0\\.0\\.1:${other.port} refused: loopback address`));
    assert.equal(other.connections, 0, "the refused port was never connected to");
  });

  void test("HEAD returns headers and no body", async () => {
    const server = await startServer((_request, response) => {
      response.setHeader("content-length", "999999999");
      response.end();
    });
    const fetch = fetcher(policy({ allowed_ranges: ["127.0.0.1/32"] }));
    const response = await fetch(`http://127.0.0.1:${server.port}/`, { method: "HEAD" });
    assert.equal(response.status, 200);
    assert.equal(response.body.byteLength, 0);
  });
});

void describe("refusals before any connection", () => {
  void test("a blocked host is refused with the address and the policy key", async () => {
    const fetch = fetcher(policy({ allowed_ranges: ["127.0.0.1/32"] }));
    await refused(fetch("http://10.0.0.5/"), "EGRESS_DENIED", /connection to 10\.0\.0\.5:80 refused: private address/);
    await refused(fetch("http://93.184.216.34/"), "EGRESS_DENIED", /connection to 93\.184\.216\.34:80 refused: address not in network\.allowed_ranges/);
    await refused(fetch("http://169.254.169.254/latest/meta-data/"), "EGRESS_DENIED", /cloud metadata/);
    await refused(fetch("https://example.com/"), "EGRESS_DENIED", /host example\.com refused: DNS resolution is disabled/);
    await refused(fetch("file:///etc/passwd"), "EGRESS_DENIED", /scheme "file" refused/);
    await refused(fetch("http://a:b@127.0.0.1/"), "EGRESS_DENIED", /credentials/);
    await refused(fetch("http://127.0.0.1:99999/"), "EGRESS_INVALID_URL", /not a valid absolute URL/);
  });

  void test("a blocked port is refused even inside an allowed range", async () => {
    const server = await startServer(hello);
    const fetch = fetcher(policy({ allowed_ranges: ["127.0.0.1/32"], blocked_ports: [server.port] }));
    await refused(fetch(`http://127.0.0.1:${server.port}/`), "EGRESS_DENIED", new RegExp(`port ${server.port} is in network\\.blocked_ports`));
    assert.equal(server.connections, 0);
  });

  void test("IP-literal encodings of loopback are refused when loopback is not allowed", async () => {
    const server = await startServer(hello);
    const fetch = fetcher(policy({ allowed_ranges: ["0.0.0.0/0", "::/0"] }));
    for (const host of ["2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "0177.0.0.1", "127.1"]) {
      await refused(fetch(`http://${host}:${server.port}/`), "EGRESS_DENIED", new RegExp(`127\\.0\\.0\\.1:${server.port} refused: loopback address`));
    }
    assert.equal(server.connections, 0);
  });

  void test("a name that resolves to a blocked address is refused and never connected to", async () => {
    const server = await startServer(hello);
    const lookup = staticLookup({ "evil.example": ["127.0.0.1"], "meta.example": ["169.254.169.254"] });
    const compiled = policy({
      allowed_ranges: ["0.0.0.0/0"],
      allow_dns: true,
      dns_allowlist: ["evil.example", "meta.example"],
      allowed_endpoints: [{ host: "evil.example", ports: [server.port] }],
    });
    const fetch = fetcher(compiled, { lookup });
    await refused(
      fetch(`http://evil.example:${server.port}/`),
      "EGRESS_DENIED",
      new RegExp(`connection to 127\\.0\\.0\\.1:${server.port} \\(resolved from evil\\.example\\) refused: loopback address`),
    );
    await refused(fetch("http://meta.example/"), "EGRESS_DENIED", /169\.254\.169\.254:80 \(resolved from meta\.example\) refused/);
    assert.equal(server.connections, 0);
  });

  void test("a resolution with one bad address among good ones is refused whole", async () => {
    const server = await startServer(hello);
    const lookup = staticLookup({ "mixed.example": ["127.0.0.1", "169.254.169.254"], "mixed6.example": ["::1", "127.0.0.1"] });
    const compiled = policy({ allowed_ranges: ["127.0.0.1/32"], allow_dns: true, dns_allowlist: ["mixed.example", "mixed6.example"] });
    const fetch = fetcher(compiled, { lookup });
    await refused(fetch(`http://mixed.example:${server.port}/`), "EGRESS_DENIED", /169\.254\.169\.254.*resolved from mixed\.example/);
    await refused(fetch(`http://mixed6.example:${server.port}/`), "EGRESS_DENIED", /\[::1\]:\d+ \(resolved from mixed6\.example\)/);
    assert.equal(server.connections, 0, "not even the good address is used");
  });

  void test("request validation: reserved headers, methods, bodies and limits", async () => {
    const fetch = fetcher(policy({ allowed_ranges: ["127.0.0.1/32"] }));
    await refused(fetch("http://127.0.0.1/", { headers: { Host: "internal.example" } }), "EGRESS_BAD_REQUEST", /"host" is set by the fetch guard/);
    await refused(fetch("http://127.0.0.1/", { headers: { "Accept-Encoding": "gzip" } }), "EGRESS_BAD_REQUEST", /accept-encoding/);
    await refused(fetch("http://127.0.0.1/", { headers: { "x-a": "1\r\nx-b: 2" } }), "EGRESS_BAD_REQUEST", /single-line/);
    // Characters Node's client would throw a TypeError for are refused here, with a reason.
    for (const value of ["a\u0001b", "a\u007fb", "caf\u00e9 \u20ac", "\u{1f600}"]) {
      await refused(fetch("http://127.0.0.1/", { headers: { "x-a": value } }), "EGRESS_BAD_REQUEST", /header "x-a" has a value that is not a single-line string of Latin-1 text/);
    }
    await refused(fetch("http://127.0.0.1/", { headers: { "bad name": "1" } }), "EGRESS_BAD_REQUEST", /not valid/);
    await refused(fetch("http://127.0.0.1/", { method: "TRACE" as "GET" }), "EGRESS_BAD_REQUEST", /method "TRACE"/);
    await refused(fetch("http://127.0.0.1/", { body: "x" }), "EGRESS_BAD_REQUEST", /GET request cannot carry a body/);
    await refused(fetch("http://127.0.0.1/", { maxBytes: -1 }), "EGRESS_BAD_REQUEST", /maxBytes/);
  });
});

void describe("redirects", () => {
  void test("a redirect to a blocked address is refused and the target never contacted", async () => {
    const target = await startServer(hello);
    const lookup = staticLookup({ "rebound.example": ["169.254.169.254"] });
    const source = await startServer((request, response) => {
      const to: Record<string, string> = {
        "/to-port": `http://127.0.0.1:${target.port}/secret`,
        "/to-metadata": "http://169.254.169.254/latest/meta-data/",
        "/to-name": "http://rebound.example/",
        "/to-file": "file:///etc/passwd",
      };
      response.writeHead(302, { location: to[request.url ?? ""] ?? "/" });
      response.end();
    });
    const compiled = policy({
      allowed_endpoints: [{ host: "127.0.0.1", ports: [source.port] }],
      allow_dns: true,
      dns_allowlist: ["rebound.example"],
    });
    const fetch = fetcher(compiled, { lookup });
    const base = `http://127.0.0.1:${source.port}`;
    await refused(fetch(`${base}/to-port`), "EGRESS_REDIRECT_DENIED", new RegExp(`redirect to http://127\\.0\\.0\\.1:${target.port}/secret refused: .*loopback`));
    await refused(fetch(`${base}/to-metadata`), "EGRESS_REDIRECT_DENIED", /redirect to http:\/\/169\.254\.169\.254\/latest\/meta-data\/ refused/);
    await refused(fetch(`${base}/to-name`), "EGRESS_REDIRECT_DENIED", /after a redirect to http:\/\/rebound\.example\/: .*169\.254\.169\.254/);
    await refused(fetch(`${base}/to-file`), "EGRESS_REDIRECT_DENIED", /scheme "file" refused/);
    assert.equal(target.connections, 0);
  });

  void test("allowed redirects are followed, each hop re-resolved, credentials kept only on the same origin", async () => {
    const other = await startServer((request, response) => {
      response.end(`other saw authorization=${request.headers.authorization ?? "none"}`);
    });
    const lookup = staticLookup({ "a.example": ["127.0.0.1"], "b.example": ["127.0.0.1"] });
    const source = await startServer((request, response) => {
      if (request.url === "/start") response.writeHead(301, { location: "/same" }).end();
      else if (request.url === "/same") response.writeHead(307, { location: `http://b.example:${other.port}/final` }).end();
      else if (request.url === "/post") response.writeHead(303, { location: "/landing" }).end();
      else response.end(`${request.method} ${request.url} authorization=${request.headers.authorization ?? "none"}`);
    });
    const compiled = policy({ allowed_ranges: ["127.0.0.1/32"], allow_dns: true, dns_allowlist: ["a.example", "b.example"] });
    const fetch = fetcher(compiled, { lookup });
    const response = await fetch(`http://a.example:${source.port}/start`, { headers: { Authorization: "Bearer secret" } });
    assert.equal(response.text(), "other saw authorization=none");
    assert.equal(response.url, `http://b.example:${other.port}/final`);
    assert.equal(source.requests[1]?.headers.authorization, "Bearer secret", "same-origin hop keeps it");
    assert.equal(lookup.calls.get("a.example"), 2, "every hop resolves and checks again");
    assert.equal(lookup.calls.get("b.example"), 1);

    const afterPost = await fetch(`http://a.example:${source.port}/post`, { method: "POST", body: "data" });
    assert.equal(afterPost.text(), "GET /landing authorization=none", "303 continues as GET without the body");
  });

  void test("redirect loops stop at maxRedirects", async () => {
    const server = await startServer((_request, response) => response.writeHead(302, { location: "/again" }).end());
    const fetch = fetcher(policy({ allowed_ranges: ["127.0.0.1/32"] }));
    await refused(fetch(`http://127.0.0.1:${server.port}/`), "EGRESS_TOO_MANY_REDIRECTS", /more than 5 redirects/);
    assert.equal(server.requests.length, 6);
    await refused(fetch(`http://127.0.0.1:${server.port}/`, { maxRedirects: 0 }), "EGRESS_TOO_MANY_REDIRECTS", /more than 0 redirects/);
  });

  void test("a message about a redirect names its target without the query string, a relative Location too", async () => {
    const server = await startServer((_request, response) => response.writeHead(302, { location: "/again?code=s3cret-token" }).end());
    const fetch = fetcher(policy({ allowed_ranges: ["127.0.0.1/32"] }));
    await assert.rejects(fetch(`http://127.0.0.1:${server.port}/?q=1`, { maxRedirects: 1 }), (error: unknown) => {
      assert.ok(error instanceof CapabilityDeniedError);
      assert.equal(error.code, "EGRESS_TOO_MANY_REDIRECTS");
      assert.match(error.message, new RegExp(`\\(last to http://127\\.0\\.0\\.1:${server.port}/again\\)`));
      assert.doesNotMatch(error.message, /s3cret/);
      return true;
    });
    // Nor does the refusal of a URL that cannot be parsed.
    await refused(fetch("http://127.0.0.1:99999/x?key=s3cret#frag"), "EGRESS_INVALID_URL", /^"http:\/\/127\.0\.0\.1:99999\/x" is not a valid absolute URL/);
  });

  void test("a request may raise maxRedirects above the default, as the error advises, up to the ceiling of 20", async () => {
    const server = await startServer((request, response) => {
      const step = Number(request.url?.slice(1));
      if (step < 8) response.writeHead(302, { location: `/${step + 1}` }).end();
      else response.end("arrived");
    });
    const fetch = fetcher(policy({ allowed_ranges: ["127.0.0.1/32"] }));
    await refused(fetch(`http://127.0.0.1:${server.port}/0`), "EGRESS_TOO_MANY_REDIRECTS", /more than 5 redirects .*raise maxRedirects \(at most 20\)/);
    const response = await fetch(`http://127.0.0.1:${server.port}/0`, { maxRedirects: 8 });
    assert.equal(response.text(), "arrived");
    assert.equal(response.url, `http://127.0.0.1:${server.port}/8`);
    await refused(fetch(`http://127.0.0.1:${server.port}/0`, { maxRedirects: 7 }), "EGRESS_TOO_MANY_REDIRECTS", /more than 7 redirects/);
    const loop = await startServer((_request, response) => response.writeHead(302, { location: "/again" }).end());
    await refused(fetch(`http://127.0.0.1:${loop.port}/`, { maxRedirects: 1000 }), "EGRESS_TOO_MANY_REDIRECTS", /more than 20 redirects .*; fetch the final URL directly/);
    assert.equal(loop.requests.length, 21);
  });
});

void describe("DNS rebinding", () => {
  void test("each connection uses the addresses it checked: a name that rebinds is caught on the next connection", async () => {
    const server = await startServer(hello);
    let call = 0;
    const answers = [["127.0.0.1"], ["169.254.169.254"]];
    const lookup: Lookup = () => {
      const addresses = answers[Math.min(call++, answers.length - 1)]!;
      return Promise.resolve(addresses.map((address) => ({ address, family: 4 as const })));
    };
    const compiled = policy({ allowed_ranges: ["127.0.0.1/32"], allow_dns: true, dns_allowlist: ["rebind.example"] });
    const fetch = fetcher(compiled, { lookup });
    assert.equal((await fetch(`http://rebind.example:${server.port}/`)).status, 200);
    await refused(fetch(`http://rebind.example:${server.port}/`), "EGRESS_DENIED", /169\.254\.169\.254.*resolved from rebind\.example/);
    assert.equal(call, 2, "one resolution per connection: the one that is checked is the one that is used");
    assert.equal(server.connections, 1);
  });
});

void describe("limits", () => {
  void test("a response over the byte cap is refused (declared or streamed)", async () => {
    const big = "x".repeat(10_000);
    const server = await startServer((request, response) => {
      if (request.url === "/declared") {
        response.setHeader("content-length", String(big.length));
        response.end(big);
      } else if (request.url === "/chunked") {
        response.write(big.slice(0, 5000));
        response.end(big.slice(5000));
      } else {
        response.end("x".repeat(1000));
      }
    });
    const compiled = policy({ allowed_ranges: ["127.0.0.1/32"] });
    const fetch = fetcher(compiled, {}, { maxResponseBytes: 1000, timeoutMs: 5000 });
    await refused(fetch(`http://127.0.0.1:${server.port}/declared`), "EGRESS_TOO_LARGE", /larger than the limit of 1000 bytes \(it declares 10000 bytes\)/);
    await refused(fetch(`http://127.0.0.1:${server.port}/chunked`), "EGRESS_TOO_LARGE", /larger than the limit of 1000 bytes/);
    assert.equal((await fetch(`http://127.0.0.1:${server.port}/exact`)).body.byteLength, 1000, "exactly the cap is fine");
    await refused(fetch(`http://127.0.0.1:${server.port}/exact`, { maxBytes: 999 }), "EGRESS_TOO_LARGE", /limit of 999 bytes/);
    const capped = await fetch(`http://127.0.0.1:${server.port}/exact`, { maxBytes: 5000 });
    assert.equal(capped.body.byteLength, 1000, "a request cannot raise the policy's cap, but may stay under it");
  });

  void test("a slow server hits the timeout (no response, and a stalled body)", async () => {
    const server = await startServer((request, response) => {
      if (request.url === "/stall-body") response.write("partial");
      // Otherwise: never answer.
    });
    const compiled = policy({ allowed_ranges: ["127.0.0.1/32"] });
    const fetch = fetcher(compiled, {}, { maxResponseBytes: 1000, timeoutMs: 30_000 });
    // A failure of the exchange (ToolError), not a refusal of the policy: the model is told to try later.
    const timedOut = (promise: Promise<unknown>) =>
      assert.rejects(promise, (error: unknown) => error instanceof ToolError && error.code === "EGRESS_TIMEOUT" && /took longer than 200 ms .*try again later/.test(error.message));
    await timedOut(fetch(`http://127.0.0.1:${server.port}/silent`, { timeoutMs: 200 }));
    const short = fetcher(compiled, {}, { maxResponseBytes: 1000, timeoutMs: 200 });
    await timedOut(short(`http://127.0.0.1:${server.port}/stall-body`, { timeoutMs: 60_000 }));
  });

  void test("the call's signal aborts a request in flight, and a pre-aborted signal sends nothing", async () => {
    const server = await startServer(() => undefined);
    const compiled = policy({ allowed_ranges: ["127.0.0.1/32"] });
    const controller = new AbortController();
    const fetch = fetcher(compiled, { signal: controller.signal });
    const pending = fetch(`http://127.0.0.1:${server.port}/`);
    while (server.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    controller.abort();
    await refused(pending, "EGRESS_ABORTED", /cancelled/);

    const before = server.connections;
    await refused(fetch(`http://127.0.0.1:${server.port}/`), "EGRESS_ABORTED", /cancelled/);
    const perRequest = new AbortController();
    perRequest.abort();
    await refused(fetcher(compiled)(`http://127.0.0.1:${server.port}/`, { signal: perRequest.signal }), "EGRESS_ABORTED", /cancelled/);
    assert.equal(server.connections, before);
  });
});

void describe("a lookup that hangs", () => {
  void test("the call's end stops the wait for a name (said as cancelled, not as a DNS failure), and the resolver is handed the signal", async () => {
    const given: Array<AbortSignal | undefined> = [];
    const hanging: Lookup = (_host, signal) => {
      given.push(signal);
      return new Promise(() => undefined); // an unreachable name server
    };
    const compiled = policy({ allowed_ranges: ["127.0.0.1/32"], allow_dns: true, dns_allowlist: ["slow.example"] });
    const controller = new AbortController();
    const pending = fetcher(compiled, { lookup: hanging, signal: controller.signal })("http://slow.example/");
    while (given.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.ok(given[0] instanceof AbortSignal, "the resolver can stop waiting too");
    controller.abort();
    await refused(pending, "EGRESS_ABORTED", /cancelled/);
  });
});

void describe("network failures", () => {
  void test("DNS and connection failures are tool errors the model can read", async () => {
    const closed = await startServer(hello);
    const port = closed.port;
    await closed.close();
    const compiled = policy({ allowed_ranges: ["127.0.0.1/32"], allow_dns: true, dns_allowlist: ["missing.example"] });
    const fetch = fetcher(compiled, { lookup: staticLookup({}) });
    await assert.rejects(fetch("http://missing.example/"), (error: unknown) => {
      assert.ok(error instanceof ToolError);
      assert.equal(error.code, "EGRESS_DNS_FAILED");
      assert.match(error.message, /could not resolve missing\.example: ENOTFOUND/);
      return true;
    });
    await assert.rejects(fetch(`http://127.0.0.1:${port}/`), (error: unknown) => {
      assert.ok(error instanceof ToolError);
      assert.equal(error.code, "EGRESS_CONNECT_FAILED");
      assert.match(error.message, /ECONNREFUSED/);
      return true;
    });
  });

  void test("a server that hangs up, answers with something that is not HTTP or with oversized headers is a tool error, not a crash", async () => {
    const replies: Record<string, (socket: net.Socket) => void> = {
      hangup: (socket) => socket.destroy(),
      garbage: (socket) => socket.end("SSH-2.0-OpenSSH_9.6\r\n\r\n"),
      "huge-header": (socket) => socket.end(`HTTP/1.1 200 OK\r\nx-big: ${"a".repeat(64 * 1024)}\r\n\r\n`),
    };
    const compiled = policy({ allowed_ranges: ["127.0.0.1/32"] });
    const fetch = fetcher(compiled);
    for (const [name, reply] of Object.entries(replies)) {
      const server = net.createServer((socket) => {
        socket.on("error", () => undefined); // the client resets what it gave up on
        socket.once("data", () => reply(socket));
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const { port } = server.address() as AddressInfo;
      try {
        await assert.rejects(fetch(`http://127.0.0.1:${port}/x?token=secret`), (error: unknown) => {
          assert.ok(error instanceof ToolError, `${name}: expected a ToolError, got ${String(error)}`);
          assert.equal(error.code, "EGRESS_FAILED", name);
          assert.match(error.message, new RegExp(`^the exchange with http://127\\.0\\.0\\.1:${port}/x failed: [A-Z_]+ \\(`), name);
          assert.doesNotMatch(error.message, /secret/, "no query string in the message");
          return true;
        });
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    }
  });
});

void test("a server that switches protocols (101) to a plain request is a tool error at once, not a wait for the deadline", async () => {
  const server = net.createServer((socket) => {
    socket.on("error", () => undefined);
    // Keeps the connection open after the 101, as a WebSocket server would.
    socket.once("data", () => socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const fetch = fetcher(policy({ allowed_ranges: ["127.0.0.1/32"] }), {}, { ...LIMITS, timeoutMs: 20_000 });
    await assert.rejects(fetch(`http://127.0.0.1:${port}/ws`), (error: unknown) => {
      assert.ok(error instanceof ToolError, `expected a ToolError, got ${String(error)}`);
      assert.equal(error.code, "EGRESS_FAILED", "not EGRESS_TIMEOUT: the reply is refused when it comes");
      assert.match(error.message, /answered 101 Switching Protocols/);
      return true;
    });
  } finally {
    server.close();
  }
});

void describe("https", () => {
  let dir = "";
  let tlsFiles: { key: string; cert: string } | undefined;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "msl-"));
    try {
      execFileSync(
        "openssl",
        [
          "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
          "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem"),
          "-subj", "/CN=tls-test.example", "-addext", "subjectAltName=DNS:tls-test.example",
        ],
        { stdio: "ignore" },
      );
      tlsFiles = { key: fs.readFileSync(path.join(dir, "key.pem"), "utf8"), cert: fs.readFileSync(path.join(dir, "cert.pem"), "utf8") };
    } catch {
      tlsFiles = undefined;
    }
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  void test("TLS is verified against the URL's name while connecting to the checked address", async (t) => {
    if (tlsFiles === undefined) {
      t.skip("openssl is not available to make a test certificate");
      return;
    }
    const server = await startServer(hello, tlsFiles);
    const lookup = staticLookup({ "tls-test.example": ["127.0.0.1"], "wrong-name.example": ["127.0.0.1"] });
    const compiled = policy({ allowed_ranges: ["127.0.0.1/32"], allow_dns: true, dns_allowlist: ["tls-test.example", "wrong-name.example"] });
    const trusted = fetcher(compiled, { lookup, ca: tlsFiles.cert });
    const response = await trusted(`https://tls-test.example:${server.port}/secure`);
    assert.equal(response.text(), "hello GET /secure");

    await assert.rejects(trusted(`https://wrong-name.example:${server.port}/`), (error: unknown) => {
      assert.ok(error instanceof ToolError);
      assert.equal(error.code, "EGRESS_TLS_FAILED");
      assert.match(error.message, /ERR_TLS_CERT_ALTNAME_INVALID/);
      return true;
    });
    const untrusted = fetcher(compiled, { lookup });
    await assert.rejects(untrusted(`https://tls-test.example:${server.port}/`), (error: unknown) => error instanceof ToolError && error.code === "EGRESS_TLS_FAILED");
  });

  void test("a redirect from https to http is refused", async (t) => {
    if (tlsFiles === undefined) {
      t.skip("openssl is not available to make a test certificate");
      return;
    }
    const plain = await startServer(hello);
    const server = await startServer((_request, response) => response.writeHead(302, { location: `http://tls-test.example:${plain.port}/` }).end(), tlsFiles);
    const lookup = staticLookup({ "tls-test.example": ["127.0.0.1"] });
    const compiled = policy({ allowed_ranges: ["127.0.0.1/32"], allow_dns: true, dns_allowlist: ["tls-test.example"] });
    await refused(fetcher(compiled, { lookup, ca: tlsFiles.cert })(`https://tls-test.example:${server.port}/`), "EGRESS_REDIRECT_DENIED", /downgrades https to http/);
    assert.equal(plain.connections, 0);
  });
});
