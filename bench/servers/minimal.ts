/**
 * The floor: the least a Node stdio MCP server can do for the benchmark's `echo`
 * tool. No validation, no policy, no audit: split lines, JSON.parse, answer
 * initialize / ping / tools/list / tools/call, one write per message. Whatever
 * it costs is what Node and the pipes cost; everything else is measured against it.
 */

const ECHO_TOOL = {
  name: "echo",
  description: "Returns the text it was given.",
  inputSchema: {
    type: "object",
    properties: { text: { type: "string" } },
    required: ["text"],
    additionalProperties: false,
  },
};

interface Message {
  id?: string | number | null;
  method?: string;
  params?: { protocolVersion?: string; name?: string; arguments?: { text?: string } };
}

function reply(message: object): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function handle(line: string): void {
  if (line.trim() === "") return;
  let message: Message;
  try {
    message = JSON.parse(line) as Message;
  } catch {
    reply({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "Parse error" } });
    return;
  }
  const id = message.id;
  if (id === undefined) return; // a notification
  switch (message.method ?? "") {
    case "initialize":
      reply({
        jsonrpc: "2.0",
        id,
        result: {
          protocolVersion: message.params?.protocolVersion ?? "2025-11-25",
          capabilities: { tools: {} },
          serverInfo: { name: "bench-minimal", version: "1.0.0" },
        },
      });
      return;
    case "ping":
      reply({ jsonrpc: "2.0", id, result: {} });
      return;
    case "tools/list":
      reply({ jsonrpc: "2.0", id, result: { tools: [ECHO_TOOL] } });
      return;
    case "tools/call":
      if (message.params?.name === "echo") {
        reply({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text: message.params.arguments?.text }] } });
        return;
      }
      reply({ jsonrpc: "2.0", id, error: { code: -32602, message: "Unknown tool" } });
      return;
    default:
      reply({ jsonrpc: "2.0", id, error: { code: -32601, message: "Method not found" } });
  }
}

// Keeps the unterminated tail as a list of chunks and joins it once per line,
// so a large message is not re-copied for every chunk that arrives.
let pending: Buffer[] = [];
process.stdin.on("data", (chunk: Buffer) => {
  let start = 0;
  let newline = chunk.indexOf(10);
  while (newline !== -1) {
    const piece = chunk.subarray(start, newline);
    const line = pending.length === 0 ? piece : Buffer.concat([...pending, piece]);
    pending = [];
    handle(line.toString("utf8"));
    start = newline + 1;
    newline = chunk.indexOf(10, start);
  }
  if (start < chunk.length) pending.push(chunk.subarray(start));
});
