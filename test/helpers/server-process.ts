/**
 * Spawns the built server over real pipes and speaks JSON-RPC to it. Every line the
 * server writes to stdout is parsed and validated against the MCP schema; problems
 * are collected and `close()` fails the test if there were any.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assertServerMessage } from "./mcp-schema.js";
import { SERVER_ENTRY } from "./project.js";

export type Message = Record<string, any>;

export interface StartOptions {
  /** Policy YAML text; written to a temp file and passed with --policy. */
  policy?: string;
  args?: string[];
  env?: Record<string, string | undefined>;
  /** Use this state dir instead of a fresh temp one (it is then not removed). */
  stateDir?: string;
  /** Run another entry script instead of the CLI (e.g. a test server with extra plugins). */
  entry?: string;
  /** The server's working directory (default: the test's). */
  cwd?: string;
}

export class ServerProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly messages: Message[] = [];
  readonly problems: string[] = [];
  readonly rawLines: string[] = [];
  stderr = "";
  readonly stateDir: string;
  readonly home: string;
  private readonly ownsStateDir: boolean;
  private readonly methods = new Map<unknown, string>();
  private readonly waiters: Array<{ match: (m: Message) => boolean; resolve: (m: Message) => void }> = [];
  private buffer = "";
  private nextId = 1;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(options: StartOptions) {
    this.home = mkdtempSync(join(tmpdir(), "msl-home-"));
    this.ownsStateDir = options.stateDir === undefined;
    this.stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), "msl-state-"));
    const args = ["--state-dir", this.stateDir, ...(options.args ?? [])];
    if (options.policy !== undefined) {
      const file = join(this.home, "policy.yaml");
      writeFileSync(file, options.policy);
      args.push("--policy", file);
    }
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: this.home };
    // Under c8 the server's coverage counts too.
    if (process.env.NODE_V8_COVERAGE) env.NODE_V8_COVERAGE = process.env.NODE_V8_COVERAGE;
    for (const [key, value] of Object.entries(options.env ?? {})) if (value !== undefined) env[key] = value;
    this.child = spawn(process.execPath, [options.entry ?? SERVER_ENTRY, ...args], { env, stdio: ["pipe", "pipe", "pipe"], cwd: options.cwd });
    this.child.stdout.setEncoding("utf8");
    this.child.stdout.on("data", (chunk: string) => this.onStdout(chunk));
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (chunk: string) => (this.stderr += chunk));
    this.child.stdin.on("error", () => undefined); // the server may exit first
    this.exited = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve({ code, signal })));
  }

  static start(options: StartOptions = {}): ServerProcess {
    return new ServerProcess(options);
  }

  /** Starts the server and completes the initialize handshake. */
  static async initialized(options: StartOptions = {}, protocolVersion = "2025-11-25"): Promise<ServerProcess> {
    const server = ServerProcess.start(options);
    const response = await server.request("initialize", {
      protocolVersion,
      capabilities: {},
      clientInfo: { name: "msl-test", version: "1.0.0" },
    });
    if (!response.result) throw new Error(`initialize failed: ${JSON.stringify(response)}\n${server.stderr}`);
    server.notify("notifications/initialized");
    return server;
  }

  /**
   * A JSON array on stdout is a batch response: the 2025-11-25 schema has none, so it is
   * right only in a session that negotiated 2025-03-26 (its JSONRPCBatchResponse), and
   * then each element must be a response of that session.
   */
  private checkBatchResponse(batch: unknown[]): void {
    const initialize = this.messages.find((m) => !Array.isArray(m) && this.methods.get(m.id) === "initialize" && m.result !== undefined);
    const version = initialize?.result?.protocolVersion;
    if (version !== "2025-03-26") throw new Error(`a batch response in a session of protocol version ${String(version)}, which has no batches`);
    if (batch.length === 0) throw new Error("an empty batch response (JSON-RPC sends nothing instead)");
    for (const element of batch) {
      assertServerMessage(element, (id) => this.methods.get(id));
      if ("method" in (element as Message)) throw new Error("a notification inside a batch response");
    }
  }

  private onStdout(chunk: string): void {
    // Only the new chunk is searched: a line of megabytes comes in many chunks.
    let start = 0;
    let newline: number;
    while ((newline = chunk.indexOf("\n", start)) !== -1) {
      const line = this.buffer + chunk.slice(start, newline);
      this.buffer = "";
      start = newline + 1;
      this.rawLines.push(line);
      let message: Message;
      try {
        message = JSON.parse(line) as Message;
      } catch {
        this.problems.push(`stdout line is not JSON: ${line.slice(0, 200)}`);
        continue;
      }
      try {
        if (Array.isArray(message)) this.checkBatchResponse(message);
        else assertServerMessage(message, (id) => this.methods.get(id));
      } catch (error) {
        this.problems.push((error as Error).message);
      }
      this.messages.push(message);
      for (let i = 0; i < this.waiters.length; i++) {
        const waiter = this.waiters[i]!;
        if (waiter.match(message)) {
          this.waiters.splice(i, 1);
          waiter.resolve(message);
          break;
        }
      }
    }
    this.buffer += chunk.slice(start);
  }

  /** Writes one raw line (a newline is added). */
  writeLine(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  send(message: Message): void {
    if (message.id !== undefined && typeof message.method === "string") this.methods.set(message.id, message.method);
    this.writeLine(JSON.stringify(message));
  }

  /** Sends messages as one JSON-RPC batch (a JSON array on one line). */
  sendBatch(messages: Message[]): void {
    for (const message of messages) {
      if (message.id !== undefined && typeof message.method === "string") this.methods.set(message.id, message.method);
    }
    this.writeLine(JSON.stringify(messages));
  }

  newId(): number {
    return this.nextId++;
  }

  /** Sends a request and resolves with its response. */
  request(method: string, params?: Message, id: string | number = this.newId(), timeoutMs = 10_000): Promise<Message> {
    const response = this.waitFor((m) => m.id === id && !("method" in m), timeoutMs, `response to ${method} #${String(id)}`);
    const message: Message = { jsonrpc: "2.0", id, method };
    if (params !== undefined) message.params = params;
    this.send(message);
    return response;
  }

  notify(method: string, params?: Message): void {
    const message: Message = { jsonrpc: "2.0", method };
    if (params !== undefined) message.params = params;
    this.send(message);
  }

  callTool(name: string, args?: Message, extra: Message = {}): Promise<Message> {
    const params: Message = { name, ...extra };
    if (args !== undefined) params.arguments = args;
    return this.request("tools/call", params);
  }

  /** Resolves with the first message (already received or future) that matches. */
  waitFor(match: (m: Message) => boolean, timeoutMs = 10_000, what = "message"): Promise<Message> {
    const seen = this.messages.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = this.waiters.indexOf(waiter);
        if (index !== -1) this.waiters.splice(index, 1);
        reject(new Error(`timed out waiting for ${what}; stderr:\n${this.stderr.slice(-2000)}`));
      }, timeoutMs);
      const waiter = {
        match,
        resolve: (m: Message) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Resolves once what the server wrote to stderr matches `pattern`. */
  waitForStderr(pattern: RegExp, timeoutMs = 10_000): Promise<void> {
    if (pattern.test(this.stderr)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      // Registered after the listener that collects stderr, so it sees each chunk appended.
      const check = (): void => {
        if (!pattern.test(this.stderr)) return;
        stop();
        resolve();
      };
      const timer = setTimeout(() => {
        stop();
        reject(new Error(`timed out waiting for stderr to match ${String(pattern)}; stderr:\n${this.stderr.slice(-2000)}`));
      }, timeoutMs);
      const stop = (): void => {
        clearTimeout(timer);
        this.child.stderr.off("data", check);
      };
      this.child.stderr.on("data", check);
    });
  }

  /** Waits a little and returns what arrived in that time (to show that nothing was sent). */
  async quietFor(ms: number): Promise<Message[]> {
    const before = this.messages.length;
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.messages.slice(before);
  }

  /** Closes stdin, waits for the exit, checks every stdout line, and removes temp dirs. */
  async close(timeoutMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.stdin.end();
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      this.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          this.child.kill("SIGKILL");
          reject(new Error(`server did not exit within ${timeoutMs} ms; stderr:\n${this.stderr.slice(-2000)}`));
        }, timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    this.cleanup();
    if (this.problems.length > 0) throw new Error(`the server wrote invalid messages:\n${this.problems.join("\n")}`);
    return result;
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    this.child.kill(signal);
  }

  cleanup(): void {
    rmSync(this.home, { recursive: true, force: true });
    if (this.ownsStateDir) rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/** The text of the first text block of a tools/call result. */
export function resultText(response: Message): string {
  const block = (response.result?.content as Message[] | undefined)?.find((item) => item.type === "text");
  return (block?.text as string | undefined) ?? "";
}
