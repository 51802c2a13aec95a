import { readFileSync } from "node:fs";

/** The package version, read once from the package.json next to the build (dist/src → ../../). */
export const VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "0.0.0";
  } catch {
    return "0.0.0";
  }
})();

export const SERVER_NAME = "mcp-secure-local";
