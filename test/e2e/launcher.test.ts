/**
 * The launcher (src/launcher.cts) runs the bundle with the code cache the build made, and
 * runs it without one when the cache is missing, from another build, or refused by V8.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, SERVER_ENTRY } from "../helpers/project.js";
import { ServerProcess } from "../helpers/server-process.js";

interface Launcher {
  bundlePaths(launcherFile: string): { bundle: string; cache: string };
  loadBundle(paths: { bundle: string; cache: string }): { cache: string; digest: Buffer };
}

const launcher = createRequire(import.meta.url)(SERVER_ENTRY) as Launcher;
const DIST = join(ROOT, "dist");

test("the shipped code cache belongs to the shipped bundle and this Node accepts it", () => {
  const paths = launcher.bundlePaths(SERVER_ENTRY);
  assert.equal(paths.bundle, join(DIST, "mcp-secure-local.bundle.cjs"));
  assert.equal(paths.cache, join(DIST, "mcp-secure-local.bundle.cache"));
  assert.equal(launcher.loadBundle(paths).cache, "accepted");
});

/** A copy of the installed layout (launcher, bundle, tool validators) with `cache` as its cache file. */
function installCopy(cache: Buffer | undefined): { dir: string; entry: string } {
  const dir = mkdtempSync(join(tmpdir(), "msl-launcher-"));
  mkdirSync(join(dir, "dist"));
  copyFileSync(join(ROOT, "package.json"), join(dir, "package.json"));
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  for (const file of ["mcp-secure-local.cjs", "mcp-secure-local.bundle.cjs", "tool-validators.generated.cjs"]) {
    copyFileSync(join(DIST, file), join(dir, "dist", file));
  }
  if (cache !== undefined) writeFileSync(join(dir, "dist", "mcp-secure-local.bundle.cache"), cache);
  return { dir, entry: join(dir, "dist", "mcp-secure-local.cjs") };
}

const shipped = readFileSync(join(DIST, "mcp-secure-local.bundle.cache"));
const staleCache = Buffer.from(shipped);
staleCache[0] = staleCache[0]! ^ 0xff; // the digest of another bundle
const refusedCache = Buffer.concat([shipped.subarray(0, 32), Buffer.alloc(4096, 0x5a)]); // right digest, not V8's data

for (const [name, cache, expected] of [
  ["no cache file", undefined, "missing"],
  ["a cache from another build", staleCache, "stale"],
  ["a cache V8 refuses", refusedCache, "rejected"],
] as const) {
  test(`with ${name} the bundle compiles as usual and the server serves`, async () => {
    const { dir, entry } = installCopy(cache);
    try {
      assert.equal(launcher.loadBundle(launcher.bundlePaths(entry)).cache, expected);
      const server = await ServerProcess.initialized({ entry });
      try {
        // A built-in tool call: its validator comes from the generated file beside the bundle.
        const call = await server.callTool("search_tools", { query: "bug" });
        assert.equal(call.result.isError, undefined, JSON.stringify(call.result));
      } finally {
        await server.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("dist/mcp-secure-local.mjs, the entry of earlier builds, still runs the CLI", () => {
  const output = execFileSync(process.execPath, [join(DIST, "mcp-secure-local.mjs"), "--version"], { encoding: "utf8" });
  assert.match(output, /^mcp-secure-local \d+\.\d+\.\d+/);
});

test("started through a symlink with --preserve-symlinks-main (npm's .bin), the launcher finds the bundle beside the real file", () => {
  const dir = mkdtempSync(join(tmpdir(), "msl-bin-"));
  try {
    const link = join(dir, "mcp-secure-local");
    symlinkSync(SERVER_ENTRY, link);
    const output = execFileSync(process.execPath, ["--preserve-symlinks-main", link, "--version"], { encoding: "utf8" });
    assert.match(output, /^mcp-secure-local \d+\.\d+\.\d+/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
