/** mkdir -p that always ends: the state directory, the audit log's and the key's folders. */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { makeDirectories, makeDirectoriesSync } from "../../src/util/make-directories.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "msl-mkdirs-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const errno = (code: string) => (error: unknown) => (error as NodeJS.ErrnoException).code === code;
const variants = [
  ["sync", (dir: string, mode: number) => Promise.resolve().then(() => makeDirectoriesSync(dir, mode))],
  ["async", makeDirectories],
] as const;

for (const [name, make] of variants) {
  void describe(`makeDirectories (${name})`, () => {
    void test("makes every missing folder with the mode; an existing folder, or a link to one, is fine", async () => {
      const deep = path.join(root, name, "a", "b", "c");
      await make(deep, 0o700);
      for (const dir of [path.join(root, name), path.join(root, name, "a"), deep]) {
        assert.ok(fs.statSync(dir).isDirectory(), dir);
        assert.equal(fs.statSync(dir).mode & 0o777, 0o700 & ~process.umask(), dir);
      }
      await make(deep, 0o700);
      fs.symlinkSync(deep, path.join(root, name, "link"));
      await make(path.join(root, name, "link"), 0o700);
      await make(path.join(root, name, "link", "d"), 0o700);
      assert.ok(fs.statSync(path.join(deep, "d")).isDirectory());
    });

    void test("a file in the way fails as mkdir -p does", async () => {
      const file = path.join(root, `${name}-file`);
      fs.writeFileSync(file, "");
      await assert.rejects(make(file, 0o700), errno("EEXIST"));
      await assert.rejects(make(path.join(file, "below"), 0o700), errno("ENOTDIR"));
    });

    // Node's own recursive mkdir goes back and forth between the folder (ENOENT) and its
    // parent (EEXIST) forever there: the start hung. The timeout makes that a failure.
    void test("under a link into /proc it fails at once instead of retrying forever", { timeout: 10_000 }, async () => {
      const link = path.join(root, `${name}-proc-link`);
      fs.symlinkSync("/proc/self", link);
      await assert.rejects(make(path.join(link, "state", "audit"), 0o700), errno("ENOENT"));
      await assert.rejects(make("/proc/self/fd/msl-state", 0o700), errno("ENOENT"));
    });
  });
}
