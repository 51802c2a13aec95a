#!/usr/bin/env node
/**
 * `dist/mcp-secure-local.mjs`: the entry earlier builds shipped, kept so that client
 * configurations that name it go on working. It runs the CommonJS launcher beside it.
 */
import { createRequire } from "node:module";

const launcher = createRequire(import.meta.url)("./mcp-secure-local.cjs") as { main(): void };
launcher.main();
