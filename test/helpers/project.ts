import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The project root: the nearest folder above this file with a package.json (works from test/ and dist/test/). */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("package.json not found above the test helpers");
    dir = parent;
  }
  return dir;
}

export const ROOT = projectRoot();
/** The built CLI the end-to-end tests spawn: the launcher that ships (`bin` in package.json). */
export const SERVER_ENTRY = join(ROOT, "dist", "mcp-secure-local.cjs");
export const SPEC_SCHEMA = process.env.MCP_SPEC_SCHEMA ?? join(ROOT, "..", "shared", "mcp-spec", "2025-11-25", "schema.json");
