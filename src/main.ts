#!/usr/bin/env node
/**
 * The command-line entry. Its first act routes every `console.*` call to stderr, so
 * that nothing (ours or a dependency's) can write to stdout, which belongs to the
 * protocol. Only then are the other modules loaded.
 */
import { Console } from "node:console";

globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr });

const { runCli } = await import("./cli.js");
try {
  process.exit(await runCli(process.argv.slice(2), process.env));
} catch (error) {
  process.stderr.write(`mcp-secure-local: fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}
