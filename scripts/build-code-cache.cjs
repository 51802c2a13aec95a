#!/usr/bin/env node
/**
 * Makes the V8 code cache for a launcher's bundle (see src/launcher.cts). Runs in
 * `make build`, after the bundles: `node scripts/build-code-cache.cjs dist/mcp-secure-local.cjs`.
 *
 * A cache holds what was compiled when it was made, so it is made after a training run: the
 * bundle serves one session (the example policy.yaml, in a temporary state directory:
 * initialize, tools/list, end of input), and on exit its compiled code is written, behind the
 * SHA-256 of the bundle. A cache V8 refuses, or a failed run, fails the build: a slower start
 * should not pass unnoticed.
 */
"use strict";
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const ROOT = path.join(__dirname, "..");

/** The child: runs the bundle under the launcher and writes the cache when the server exits. */
function train(launcherFile) {
  const launcher = require(path.resolve(launcherFile));
  const paths = launcher.bundlePaths(path.resolve(launcherFile));
  const loaded = launcher.loadBundle(paths);
  process.on("exit", (code) => {
    if (code !== 0) return;
    fs.writeFileSync(paths.cache, Buffer.concat([loaded.digest, loaded.script.createCachedData()]));
  });
  loaded.run();
}

async function build(launcherFile) {
  const launcher = require(path.resolve(launcherFile));
  const paths = launcher.bundlePaths(path.resolve(launcherFile));
  fs.rmSync(paths.cache, { force: true });
  const state = fs.mkdtempSync(path.join(os.tmpdir(), "msl-code-cache-"));
  try {
    const child = spawn(process.execPath, [__filename, "--train", launcherFile, "--policy", path.join(ROOT, "policy.yaml"), "--state-dir", state], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { PATH: process.env.PATH ?? "", HOME: state },
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk) => (stderr += chunk));
    child.stdout.resume();
    const messages = [
      { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "build", version: "1" } } },
      { jsonrpc: "2.0", method: "notifications/initialized" },
      { jsonrpc: "2.0", id: 2, method: "tools/list" },
    ];
    child.stdin.end(messages.map((message) => JSON.stringify(message) + "\n").join(""));
    const code = await new Promise((resolve) => child.once("exit", resolve));
    if (code !== 0) throw new Error(`the training run exited with ${code}:\n${stderr}`);
    const check = launcher.loadBundle(paths).cache;
    if (check !== "accepted") throw new Error(`the code cache for ${paths.bundle} was not usable (${check})`);
  } finally {
    fs.rmSync(state, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--train") {
  // The server reads its own arguments from process.argv.slice(2).
  const launcherFile = process.argv[3];
  process.argv.splice(2, 2);
  train(launcherFile);
} else {
  build(process.argv[2]).catch((error) => {
    process.stderr.write(`build-code-cache: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
