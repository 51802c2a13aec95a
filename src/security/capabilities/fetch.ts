/**
 * `ctx.fetch`: HTTP(S) egress that enforces the network policy on the address it
 * actually connects to.
 *
 * Each connection is made here, not by an Agent: the name is resolved once, every
 * returned address is checked, the socket is opened to a checked IP (so the check and
 * the use are the same resolution, which defeats DNS rebinding), and the socket's
 * `remoteAddress` is checked again before a single byte (HTTP or TLS ClientHello) is
 * written. Redirects are followed by hand and each hop starts over from the URL check.
 */
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import * as tls from "node:tls";
import { promises as dns } from "node:dns";
import type { Duplex } from "node:stream";
import { CapabilityDeniedError, ToolError, type FetchRequest, type FetchResponse, type GuardedFetch } from "../../plugins/contract.js";
import { checkAddress, checkUrl, normalizeAddress, type CompiledNetworkPolicy, type EgressTarget } from "../egress-guard.js";
import { ATTEMPT_DELAY_MS, connectFirst, interleaveFamilies, type Connected } from "./happy-eyeballs.js";
import { asError } from "../../util/call-abort.js";
import { limitLookups } from "./lookup-limit.js";

export interface LookupAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to every address it has (as `dns.lookup` with `all: true`); `signal`: the caller stops waiting. */
export type Lookup = (hostname: string, signal?: AbortSignal) => Promise<readonly LookupAddress[]>;

export interface FetchLimits {
  /** Response body bytes at most; a request may ask for less, never more. */
  maxResponseBytes: number;
  /** Whole-exchange time limit (all hops); a request may ask for less, never more. */
  timeoutMs: number;
}

export interface GuardedFetchOptions {
  /** The resolver; defaults to the system's (`dns.lookup`, all addresses). Tests inject one. */
  lookup?: Lookup;
  /** The call's signal (cancellation, deadline, shutdown): aborts every request made through this fetch. */
  signal?: AbortSignal;
  /** Default for `FetchRequest.maxRedirects` (5). */
  maxRedirects?: number;
  /** Extra trusted CA certificates (PEM), e.g. a private PKI or a test server. Added to, not replacing, the defaults. */
  ca?: string | readonly string[];
  /** How long an address may go without connecting before the next one is tried too (default 250 ms; see happy-eyeballs.ts). */
  attemptDelayMs?: number;
}

/** A request may also carry its own signal, combined with the capability's. */
export interface GuardedFetchRequest extends FetchRequest {
  signal?: AbortSignal;
}

const DEFAULT_MAX_REDIRECTS = 5;
/** Ceiling for a request's own `maxRedirects`. */
const MAX_REDIRECTS_CEILING = 20;
const METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]);
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
/** Headers the guard owns: framing, connection management, the target and the encoding. */
const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  "host",
  "connection",
  "content-length",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "keep-alive",
  "expect",
  "accept-encoding",
  "proxy-connection",
]);
/** The only headers kept when a redirect leaves the origin: credentials come in too many names to list. */
const CROSS_ORIGIN_SAFE_HEADERS: ReadonlySet<string> = new Set(["accept", "accept-language", "user-agent", "content-type", "cache-control"]);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The system's resolver, never on more than MAX_LOOKUPS_IN_FLIGHT of the thread pool's threads (see lookup-limit.ts). */
const systemLookup: Lookup = limitLookups(async (hostname) => {
  const found = await dns.lookup(hostname, { all: true, verbatim: true });
  return found.map((entry): LookupAddress => ({ address: entry.address, family: entry.family === 6 ? 6 : 4 }));
});

interface Exchange {
  status: number;
  headers: Record<string, string>;
  location?: string;
  body: Uint8Array;
}

/** Builds `ctx.fetch` for one call (or one server, when no `signal` is given). */
export function createGuardedFetch(
  compiled: CompiledNetworkPolicy,
  limits: FetchLimits,
  options: GuardedFetchOptions = {},
): (url: string, request?: GuardedFetchRequest) => Promise<FetchResponse> {
  const lookup = options.lookup ?? systemLookup;
  const ca = options.ca === undefined ? undefined : [...tls.rootCertificates, ...(typeof options.ca === "string" ? [options.ca] : options.ca)];
  const defaultRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  const attemptDelayMs = options.attemptDelayMs ?? ATTEMPT_DELAY_MS;

  const guardedFetch = async (url: string, request: GuardedFetchRequest = {}): Promise<FetchResponse> => {
    const method = request.method ?? "GET";
    if (!METHODS.has(method)) throw badRequest(`method "${String(method)}" is not supported; use one of ${[...METHODS].join(", ")}`);
    const headers = checkHeaders(request.headers ?? {});
    const body = request.body === undefined ? undefined : toBytes(request.body);
    if (body !== undefined && (method === "GET" || method === "HEAD")) throw badRequest(`a ${method} request cannot carry a body`);
    const maxBytes = capped(request.maxBytes, limits.maxResponseBytes, "maxBytes");
    const timeoutMs = capped(request.timeoutMs, limits.timeoutMs, "timeoutMs");
    // The default is what a request gets when it does not say; it may ask for more, up to the ceiling.
    const maxRedirects = request.maxRedirects === undefined ? Math.min(defaultRedirects, MAX_REDIRECTS_CEILING) : capped(request.maxRedirects, MAX_REDIRECTS_CEILING, "maxRedirects", true);

    const abort = new AbortController();
    // A failure, not a refusal: the other side did not answer in time (the limit is the policy's or the caller's).
    const timer = setTimeout(
      () => abort.abort(failure("EGRESS_TIMEOUT", `request to ${describe(url)} took longer than ${timeoutMs} ms and was stopped; the server may be slow or unreachable: try again later`)),
      timeoutMs,
    );
    const callerAbort = (): void => abort.abort(deniedError("EGRESS_ABORTED", "request aborted: the call was cancelled or reached its deadline"));
    const callerSignals = [options.signal, request.signal].filter((signal): signal is AbortSignal => signal !== undefined);
    for (const signal of callerSignals) {
      if (signal.aborted) callerAbort();
      else signal.addEventListener("abort", callerAbort, { once: true });
    }
    try {
      let current = url;
      let hopMethod: string = method;
      let hopBody = body;
      let hopHeaders = headers;
      for (let hop = 0; ; hop++) {
        throwIfAborted(abort.signal);
        const verdict = checkUrl(compiled, current);
        if (!verdict.ok) {
          if (hop === 0) throw deniedError(verdict.code, verdict.reason);
          throw deniedError("EGRESS_REDIRECT_DENIED", `redirect to ${describe(current)} refused: ${verdict.reason}`);
        }
        const target = verdict.target;
        const result = await exchange(target, hopMethod, hopHeaders, hopBody, maxBytes, abort.signal, hop > 0);
        if (!REDIRECT_STATUSES.has(result.status) || result.location === undefined) {
          return response(result, target.url.href);
        }
        if (hop >= maxRedirects) {
          throw deniedError("EGRESS_TOO_MANY_REDIRECTS", `more than ${maxRedirects} redirects (last to ${describe(result.location, target.url)}); ${maxRedirects < MAX_REDIRECTS_CEILING ? `raise maxRedirects (at most ${MAX_REDIRECTS_CEILING}) or ` : ""}fetch the final URL directly`);
        }
        let next: URL;
        try {
          next = new URL(result.location, target.url);
        } catch {
          throw deniedError("EGRESS_REDIRECT_DENIED", `redirect from ${describe(target.url.href)} refused: its Location is not a valid URL`);
        }
        if (target.protocol === "https:" && next.protocol === "http:") {
          throw deniedError("EGRESS_REDIRECT_DENIED", `redirect from ${describe(target.url.href)} to ${describe(next.href)} refused: it downgrades https to http`);
        }
        // 303 always, and 301/302 after a POST, continue as GET without a body (what browsers do).
        if (result.status === 303 || ((result.status === 301 || result.status === 302) && hopMethod === "POST")) {
          if (hopMethod !== "HEAD") hopMethod = "GET";
          hopBody = undefined;
        }
        if (next.origin !== target.url.origin) {
          // Another origin gets neither a body nor any header it was not meant to see (API keys come in many names).
          if (hopBody !== undefined) {
            throw deniedError(
              "EGRESS_REDIRECT_DENIED",
              `redirect from ${describe(target.url.href)} to ${describe(next.href)} refused: it would resend the request body to another origin`,
            );
          }
          hopHeaders = safeCrossOriginHeaders(hopHeaders);
        }
        current = next.href;
      }
    } catch (error) {
      // Whichever way the exchange ended, an abort says why better than the socket error it caused.
      if (abort.signal.aborted && (abort.signal.reason instanceof CapabilityDeniedError || abort.signal.reason instanceof ToolError)) throw abort.signal.reason;
      throw error;
    } finally {
      clearTimeout(timer);
      for (const signal of callerSignals) signal.removeEventListener("abort", callerAbort);
    }
  };

  /** One HTTP exchange over a connection this module opened and checked. */
  function exchange(
    target: EgressTarget,
    method: string,
    headers: Record<string, string>,
    body: Uint8Array | undefined,
    maxBytes: number,
    signal: AbortSignal,
    redirected: boolean,
  ): Promise<Exchange> {
    return new Promise<Exchange>((resolve, reject) => {
      let settled = false;
      const finish = (error: unknown, value?: Exchange): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        request.destroy();
        if (value !== undefined) resolve(value);
        else reject(asError(error));
      };
      const onAbort = (): void => finish(signal.reason);

      const requestHeaders: Record<string, string> = { ...headers, host: target.url.host, "accept-encoding": "identity" };
      if (body !== undefined) requestHeaders["content-length"] = String(body.byteLength);
      const requestOptions: http.RequestOptions = {
        method,
        path: `${target.url.pathname}${target.url.search}`,
        headers: requestHeaders,
        setHost: false,
        hostname: target.host,
        port: target.port,
        createConnection: (_options, done) => {
          connect(target, signal, redirected).then(
            (socket) => done(null, socket),
            (error: unknown) => done(asError(error), undefined as unknown as Duplex),
          );
          return undefined;
        },
      };
      const request = target.protocol === "https:" ? https.request(requestOptions) : http.request(requestOptions);
      request.on("error", (error) => finish(exchangeFailure(target, error)));
      // A 101 answers a request that never asked to switch protocols (Upgrade is a reserved
      // header); Node hands such a reply to "upgrade" listeners only, and without one the call
      // would sit until its deadline.
      request.on("upgrade", (incoming: http.IncomingMessage, socket: Duplex) => {
        socket.destroy();
        finish(
          failure(
            "EGRESS_FAILED",
            `${describe(target.url.href)} answered ${incoming.statusCode ?? 101} Switching Protocols to a plain HTTP request; ` +
              "only ordinary HTTP exchanges are supported",
          ),
        );
      });
      request.on("response", (incoming) => {
        const status = incoming.statusCode ?? 0;
        const responseHeaders = flattenHeaders(incoming.headers);
        const location = responseHeaders["location"];
        if (REDIRECT_STATUSES.has(status) && location !== undefined) {
          finish(undefined, { status, headers: responseHeaders, location, body: new Uint8Array(0) });
          return;
        }
        const declared = Number(responseHeaders["content-length"]);
        if (method !== "HEAD" && Number.isFinite(declared) && declared > maxBytes) {
          finish(tooLarge(target, maxBytes, `it declares ${declared} bytes`));
          return;
        }
        const chunks: Buffer[] = [];
        let total = 0;
        incoming.on("data", (chunk: Buffer) => {
          total += chunk.byteLength;
          if (total > maxBytes) {
            finish(tooLarge(target, maxBytes, "the body kept coming"));
            return;
          }
          chunks.push(chunk);
        });
        incoming.on("end", () => {
          finish(undefined, { status, headers: responseHeaders, body: new Uint8Array(Buffer.concat(chunks, total)) });
        });
        incoming.on("aborted", () => finish(failure("EGRESS_FAILED", `the connection to ${describe(target.url.href)} closed before the response was complete`)));
        incoming.on("error", (error) => finish(exchangeFailure(target, error)));
      });
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener("abort", onAbort, { once: true });
      request.end(body === undefined ? undefined : Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    });
  }

  /** Resolves (or takes the literal), checks every address, connects to a checked one and checks the peer. */
  async function connect(target: EgressTarget, signal: AbortSignal, redirected: boolean): Promise<Duplex> {
    const refuse = (reason: string): CapabilityDeniedError =>
      deniedError(redirected ? "EGRESS_REDIRECT_DENIED" : "EGRESS_DENIED", redirected ? `after a redirect to ${describe(target.url.href)}: ${reason}` : reason);

    let addresses: string[];
    if (target.ip !== undefined) {
      addresses = [target.ip];
    } else {
      let found: readonly LookupAddress[];
      try {
        found = await lookup(target.host, signal);
      } catch (error) {
        throwIfAborted(signal); // the call ended while it waited: not a DNS failure
        throw failure("EGRESS_DNS_FAILED", `could not resolve ${target.host}: ${errorCode(error)}`);
      }
      throwIfAborted(signal);
      if (found.length === 0) throw failure("EGRESS_DNS_FAILED", `could not resolve ${target.host}: no addresses`);
      addresses = [];
      // Every address must pass, not just the one we would pick: a mixed answer is refused whole.
      for (const entry of found) {
        const verdict = checkAddress(compiled, entry.address, target.port, target.host);
        if (!verdict.ok) throw refuse(verdict.reason);
        const normalized = normalizeAddress(entry.address)?.address;
        if (normalized !== undefined && !addresses.includes(normalized)) addresses.push(normalized);
      }
    }
    for (const address of addresses) {
      const verdict = checkAddress(compiled, address, target.port, target.host);
      if (!verdict.ok) throw refuse(verdict.reason);
    }

    let connected: Connected<net.Socket>;
    try {
      connected = await connectFirst(interleaveFamilies(addresses), (address, attempt) => openSocket(address, target.port, attempt), signal, attemptDelayMs);
    } catch (error) {
      if (signal.aborted) throw error;
      throw failure("EGRESS_CONNECT_FAILED", `could not connect to ${describe(target.url.href)}: ${errorCode(error)}`);
    }
    const { socket, address } = connected;
    // Backstop: the peer we are actually connected to, before anything is sent.
    const peer = normalizeAddress(socket.remoteAddress ?? "")?.address;
    const verdict = peer === undefined ? undefined : checkAddress(compiled, peer, target.port, target.host);
    if (peer !== address || verdict === undefined || !verdict.ok) {
      socket.destroy();
      throw refuse(verdict !== undefined && !verdict.ok ? verdict.reason : `connected peer ${String(socket.remoteAddress)} is not the checked address ${address}`);
    }
    if (target.protocol === "http:") return socket;
    return startTls(socket, target, signal);
  }

  function startTls(socket: net.Socket, target: EgressTarget, signal: AbortSignal): Promise<Duplex> {
    return new Promise<Duplex>((resolve, reject) => {
      const secure = tls.connect({
        socket,
        host: target.host,
        servername: target.ip === undefined ? target.host : undefined,
        ALPNProtocols: ["http/1.1"],
        ...(ca === undefined ? {} : { ca }),
      });
      const cleanup = (): void => {
        signal.removeEventListener("abort", onAbort);
        secure.removeListener("secureConnect", onSecure);
        secure.removeListener("error", onError);
      };
      const onSecure = (): void => {
        cleanup();
        resolve(secure);
      };
      const onError = (error: Error): void => {
        cleanup();
        secure.destroy();
        reject(failure("EGRESS_TLS_FAILED", `TLS with ${target.host} failed: ${errorCode(error)}`));
      };
      const onAbort = (): void => {
        cleanup();
        secure.destroy();
        reject(asError(signal.reason));
      };
      secure.once("secureConnect", onSecure);
      secure.once("error", onError);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  return guardedFetch satisfies GuardedFetch;
}

function openSocket(address: string, port: number, signal: AbortSignal): Promise<net.Socket> {
  return new Promise<net.Socket>((resolve, reject) => {
    // An IP host skips lookup entirely, so nothing can re-resolve behind our back.
    const socket = net.connect({ host: address, port, noDelay: true });
    const cleanup = (): void => {
      signal.removeEventListener("abort", onAbort);
      socket.removeListener("connect", onConnect);
      socket.removeListener("error", onError);
    };
    const onConnect = (): void => {
      cleanup();
      resolve(socket);
    };
    const onError = (error: Error): void => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onAbort = (): void => {
      cleanup();
      socket.destroy();
      reject(asError(signal.reason));
    };
    socket.once("connect", onConnect);
    socket.once("error", onError);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function response(result: Exchange, url: string): FetchResponse {
  const body = result.body;
  return {
    status: result.status,
    url,
    headers: result.headers,
    body,
    text: () => new TextDecoder("utf-8").decode(body),
  };
}

function checkHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name)) throw badRequest(`header name "${name.slice(0, 60)}" is not valid`);
    const lower = name.toLowerCase();
    if (RESERVED_HEADERS.has(lower)) throw badRequest(`header "${lower}" is set by the fetch guard and may not be supplied`);
    // What Node's HTTP client would throw on (a TypeError, reported as a crash of the tool):
    // control characters other than tab, and anything above U+00FF (header bytes are Latin-1).
    if (typeof value !== "string" || /[^\t\x20-\x7e\x80-\xff]/.test(value)) {
      throw badRequest(
        `header "${lower}" has a value that is not a single-line string of Latin-1 text (no line breaks or control characters, nothing above U+00FF); percent-encode or base64 other text`,
      );
    }
    out[lower] = value;
  }
  return out;
}

/**
 * What the server or the connection did wrong (a reset, a response that is not HTTP, headers over
 * Node's limit) is a network failure the model can read, like a refused connection: not a crash of
 * the tool. Refusals and failures this module raised itself pass through unchanged.
 */
function exchangeFailure(target: EgressTarget, error: unknown): Error {
  if (error instanceof CapabilityDeniedError || error instanceof ToolError) return error;
  return failure("EGRESS_FAILED", `the exchange with ${describe(target.url.href)} failed: ${errorCode(error)}`);
}

function safeCrossOriginHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => CROSS_ORIGIN_SAFE_HEADERS.has(name)));
}

function flattenHeaders(headers: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

function toBytes(body: string | Uint8Array): Uint8Array {
  if (typeof body === "string") return new TextEncoder().encode(body);
  if (body instanceof Uint8Array) return body;
  throw badRequest("body must be a string or a Uint8Array");
}

/** A request's own limit, never above the policy's. */
function capped(requested: number | undefined, ceiling: number, name: string, allowZero = false): number {
  if (requested === undefined) return ceiling;
  if (typeof requested !== "number" || !Number.isInteger(requested) || requested < (allowZero ? 0 : 1)) {
    throw badRequest(`${name} must be a ${allowZero ? "non-negative" : "positive"} integer`);
  }
  return Math.min(requested, ceiling);
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw asError(signal.reason);
}

function tooLarge(target: EgressTarget, maxBytes: number, why: string): CapabilityDeniedError {
  return deniedError("EGRESS_TOO_LARGE", `response from ${describe(target.url.href)} is larger than the limit of ${maxBytes} bytes (${why}): network.max_response_bytes, or the tool's own smaller limit`);
}

function deniedError(code: string, message: string): CapabilityDeniedError {
  return new CapabilityDeniedError(code, message);
}

function badRequest(message: string): CapabilityDeniedError {
  return new CapabilityDeniedError("EGRESS_BAD_REQUEST", message);
}

/** Not a policy refusal: the network failed. The model sees the message and may retry. */
function failure(code: string, message: string): ToolError {
  return new ToolError(message, code);
}

function errorCode(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === undefined ? error.message : `${code} (${error.message})`;
  }
  return String(error);
}

/** A URL for messages: no query string (it may hold secrets), and bounded. A relative one (a Location) is read against `base`. */
function describe(url: string, base?: URL): string {
  try {
    const parsed = new URL(url, base);
    const text = `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
    return text.length > 200 ? `${text.slice(0, 200)}…` : text;
  } catch {
    const bare = url.replace(/[?#][\s\S]*$/, "");
    return bare.length > 60 ? `${bare.slice(0, 60)}…` : bare;
  }
}
