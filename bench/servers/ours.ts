/**
 * Our server, as the CLI runs it, with the benchmark's `echo` tool added as a
 * plugin through the ordinary contract. `BENCH_BYPASS_ENGINE=1` skips the security
 * engine, only so the benchmark can measure what the engine costs; nothing but
 * this benchmark entry point sets it.
 */
import "../../src/console-to-stderr.js";
import { ToolError, text, type Plugin } from "../../src/plugins/contract.js";
import { runStdioServer } from "../../src/server.js";

const echo: Plugin = {
  name: "bench",
  version: "1.0.0",
  description: "Benchmark tools.",
  tools: [
    {
      name: "echo",
      title: "Echo",
      description: "Returns the text it was given.",
      inputSchema: {
        type: "object",
        properties: { text: { type: "string" } },
        required: ["text"],
        additionalProperties: false,
      },
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    },
  ],
  execute(tool, args) {
    // With the engine bypassed nothing validated the arguments, so check the one we use.
    if (tool !== "echo" || typeof args.text !== "string") {
      return Promise.reject(new ToolError("echo takes {\"text\": string}.", "BAD_ARGUMENTS"));
    }
    return Promise.resolve(text(args.text));
  },
};

const unsafeBypassEngine = process.env.BENCH_BYPASS_ENGINE === "1";

// No top-level await: the bundle is CommonJS (see src/launcher.cts).
void runStdioServer({ argv: process.argv.slice(2), extraPlugins: [echo], unsafeBypassEngine }).then((code) => {
  process.exitCode = code;
});
