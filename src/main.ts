#!/usr/bin/env node
/**
 * The command-line entry. Its first import routes every `console.*` call to stderr;
 * the serving path is imported statically so that a start loads one file (the bundle's
 * entry), and what only other commands or later calls need stays in lazy chunks.
 */
import "./console-to-stderr.js";
import { runCli } from "./cli.js";

try {
  process.exit(await runCli(process.argv.slice(2), process.env));
} catch (error) {
  process.stderr.write(`mcp-secure-local: fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}
