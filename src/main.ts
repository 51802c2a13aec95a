/**
 * The command-line entry, bundled into `dist/mcp-secure-local.bundle.cjs` and run by the
 * launcher (src/launcher.cts). Its first import routes every `console.*` call to stderr.
 */
import "./console-to-stderr.js";
import { runCli } from "./cli.js";

runCli(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`mcp-secure-local: fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
