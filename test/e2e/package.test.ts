/**
 * `npm pack` ships a CLI that works on its own: the packed files (with the
 * dependencies installed beside them) start, answer the handshake and find their
 * example policy.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers/project.js";
import { ServerProcess } from "../helpers/server-process.js";

test("the packed tarball holds a working CLI and its example policy", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msl-pack-"));
  try {
    const output = execFileSync("npm", ["pack", "--json", "--pack-destination", dir], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const [packed] = JSON.parse(output) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed!.files.map((file) => file.path).sort();
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { bin: Record<string, string> };
    assert.ok(files.includes(pkg.bin["mcp-secure-local"]!), `the bin ${pkg.bin["mcp-secure-local"]} is packed: ${files.join(", ")}`);
    assert.ok(files.includes("policy.yaml") && files.includes("package.json") && files.includes("README.md"));
    assert.ok(!files.some((file) => file.startsWith("src/") || file.startsWith("test/")), "no sources or tests in the package");

    execFileSync("tar", ["-xzf", join(dir, packed!.filename), "-C", dir]);
    const installed = join(dir, "package");
    symlinkSync(join(ROOT, "node_modules"), join(installed, "node_modules"));
    const entry = join(installed, pkg.bin["mcp-secure-local"]!);

    const version = execFileSync(process.execPath, [entry, "--version"], { encoding: "utf8", env: { PATH: process.env.PATH ?? "", HOME: dir } });
    assert.match(version, /^mcp-secure-local \d+\.\d+\.\d+/);
    const server = await ServerProcess.initialized({ entry });
    try {
      const call = await server.callTool("list_categories", {});
      assert.equal(call.result.isError, undefined);
    } finally {
      await server.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
