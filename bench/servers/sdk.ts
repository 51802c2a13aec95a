/**
 * The reference: the same `echo` tool on the official TypeScript SDK
 * (McpServer + StdioServerTransport, arguments validated by a zod schema),
 * configured as its documentation shows and otherwise left at its defaults.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const server = new McpServer({ name: "bench-sdk", version: "1.0.0" });

server.registerTool(
  "echo",
  { description: "Returns the text it was given.", inputSchema: { text: z.string() } },
  ({ text }) => ({ content: [{ type: "text", text }] }),
);

await server.connect(new StdioServerTransport());
