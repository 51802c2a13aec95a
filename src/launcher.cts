#!/usr/bin/env node
/**
 * The installed command (`dist/mcp-secure-local.cjs`; the benchmark's server has a copy).
 * It runs the bundle beside it, `<name>.bundle.cjs`, with the V8 code cache that the build
 * made for it, `<name>.bundle.cache`, so that a start deserialises compiled code instead of
 * parsing and compiling the whole bundle: most of what a cold start costs over bare Node.
 *
 * The cache is trusted as the code beside it is (same directory, written only by the build,
 * never at run time). It starts with the SHA-256 of the bundle it was made from, so a cache
 * left over from another build is not used; V8 itself refuses one from another Node version
 * or other V8 flags. Without a usable cache the bundle compiles as any module would.
 */
import { createHash } from "node:crypto";
import { readFileSync, realpathSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { Script } from "node:vm";

/** Bytes of the bundle digest at the start of a cache file. */
const DIGEST_BYTES = 32;

export interface BundlePaths {
  bundle: string;
  cache: string;
}

/** `dir/name.cjs` runs `dir/name.bundle.cjs` with `dir/name.bundle.cache`. */
export function bundlePaths(launcherFile: string): BundlePaths {
  const base = join(dirname(launcherFile), basename(launcherFile, ".cjs"));
  return { bundle: `${base}.bundle.cjs`, cache: `${base}.bundle.cache` };
}

export interface LoadedBundle {
  /** The compiled bundle; the build calls `createCachedData()` on it after a training run. */
  script: Script;
  /** "accepted", or why the cache was not used. */
  cache: "accepted" | "missing" | "stale" | "rejected";
  /** SHA-256 of the bundle's source, as a cache file must begin with it. */
  digest: Buffer;
  /** Runs the bundle as the main module would run. */
  run(): void;
}

export function loadBundle(paths: BundlePaths): LoadedBundle {
  const source = readFileSync(paths.bundle);
  const digest = createHash("sha256").update(source).digest();
  let cachedData: Buffer | undefined;
  let cache: LoadedBundle["cache"] = "missing";
  try {
    const file = readFileSync(paths.cache);
    if (file.length > DIGEST_BYTES && digest.equals(file.subarray(0, DIGEST_BYTES))) cachedData = file.subarray(DIGEST_BYTES);
    else cache = "stale";
  } catch {
    cache = "missing";
  }
  // The wrapper is the one Node's CommonJS loader uses; the cache is made for exactly this text.
  const wrapped = `(function (exports, require, module, __filename, __dirname) { ${source.toString("utf8")}\n});`;
  const script = new Script(wrapped, { filename: paths.bundle, cachedData });
  if (cachedData !== undefined) cache = script.cachedDataRejected === true ? "rejected" : "accepted";
  return {
    script,
    cache,
    digest,
    run() {
      const main = script.runInThisContext() as (...args: unknown[]) => void;
      const module = { exports: {}, filename: paths.bundle, id: paths.bundle };
      main.call(module.exports, module.exports, createRequire(paths.bundle), module, paths.bundle, dirname(paths.bundle));
    },
  };
}

/** Runs the bundle that belongs to this launcher. */
export function main(): void {
  // The bundle sits beside the real file: started through a symlink (npm's .bin) with
  // --preserve-symlinks-main, __filename is the link.
  loadBundle(bundlePaths(realpathSync(__filename))).run();
}

if (require.main === module) main();
