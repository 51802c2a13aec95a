import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs, { promises as fsp } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { CapabilityDeniedError, ToolError } from "../../src/plugins/contract.js";
import type { GuardedFs } from "../../src/plugins/contract.js";
import { createGuardedFs, openVerifiedForRead, openVerifiedForWrite, toFsError } from "../../src/security/capabilities/fs.js";
import { checkPath, compilePathPolicy, nodePathIo } from "../../src/security/path-guard.js";
import type { CompiledPathPolicy, PathAllowed, PathIo } from "../../src/security/path-guard.js";

const DENY = ["**/.ssh/**", "**/.env", "**/secrets/**", "**/*.pem"];
const LIMITS = { maxReadBytes: 64, maxWriteBytes: 128 };


/** The real file layer, with `after` run right after the guard's last look (lstat) at `target`: a race, on cue. */
function afterLookAt(target: string, after: () => void): PathIo {
  return {
    realpath: (p) => nodePathIo.realpath(p),
    lstat: async (p) => {
      try {
        return await nodePathIo.lstat(p);
      } finally {
        if (p === target) after();
      }
    },
  };
}

let tmp: string;
let root: string;
let outside: string;
let compiled: CompiledPathPolicy;
let gfs: GuardedFs;

before(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "msl-")));
  root = path.join(tmp, "root");
  outside = path.join(tmp, "outside");
  fs.mkdirSync(path.join(root, "sub"), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(root, "hello.txt"), "hello world");
  fs.writeFileSync(path.join(outside, "secret.txt"), "top secret");
  compiled = compilePathPolicy(
    { allowed_paths: [`${root}/**`], denied_paths: DENY, write_denied_paths: [], max_read_bytes: LIMITS.maxReadBytes, max_write_bytes: LIMITS.maxWriteBytes },
    { baseDir: root, homeDir: root },
  );
  gfs = createGuardedFs(compiled, LIMITS);
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function scratch(name: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir);
  return dir;
}

async function rejectsWith(promise: Promise<unknown>, kind: typeof CapabilityDeniedError | typeof ToolError, code: string): Promise<Error> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof kind, `expected ${kind.name} ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

const denied = (promise: Promise<unknown>, code: string) => rejectsWith(promise, CapabilityDeniedError, code);
const failed = (promise: Promise<unknown>, code: string) => rejectsWith(promise, ToolError, code);

async function allowed(p: string, access: "read" | "write"): Promise<PathAllowed> {
  const verdict = await checkPath(compiled, p, access);
  assert.ok(verdict.ok, verdict.ok ? "" : verdict.reason);
  return verdict;
}

void describe("createGuardedFs", () => {
  void it("refuses non-positive or non-integer limits", () => {
    assert.throws(() => createGuardedFs(compiled, { maxReadBytes: 0, maxWriteBytes: 1 }), RangeError);
    assert.throws(() => createGuardedFs(compiled, { maxReadBytes: 1, maxWriteBytes: 1.5 }), RangeError);
  });
});

void describe("reading", () => {
  void it("reads text and bytes with offset and length", async () => {
    assert.equal(await gfs.readText(`${root}/hello.txt`), "hello world");
    assert.equal(await gfs.readText("hello.txt", { offset: 6 }), "world");
    assert.deepEqual([...(await gfs.readBytes("~/hello.txt", { offset: 1, length: 3 }))], [...Buffer.from("ell")]);
    assert.equal((await gfs.readBytes("hello.txt", { offset: 100 })).byteLength, 0);
    assert.equal((await gfs.readBytes("hello.txt", { length: 0 })).byteLength, 0);
  });

  void it("read gives the bytes with the size and path of the file they came from", async () => {
    const dir = scratch("read-info");
    fs.writeFileSync(`${dir}/grows.log`, "0123456789");
    const { bytes, info } = await gfs.read(`${dir}/grows.log`, { offset: 2, length: 3 });
    assert.equal(Buffer.from(bytes).toString(), "234");
    assert.deepEqual([info.path, info.kind, info.size], [fs.realpathSync(`${dir}/grows.log`), "file", 10]);
    await denied(gfs.read(`${root}/../outside.txt`), "PATH_OUTSIDE_ROOTS");
  });

  void it("truncates to the read cap, and readText never splits a character at the cut", async () => {
    const dir = scratch("cap");
    fs.writeFileSync(`${dir}/big.bin`, Buffer.alloc(200, 7));
    const bytes = await gfs.readBytes(`${dir}/big.bin`, { length: 1000 });
    assert.equal(bytes.byteLength, LIMITS.maxReadBytes);
    // 63 ASCII bytes then a 2-byte character straddling the 64-byte cap.
    fs.writeFileSync(`${dir}/utf8.txt`, `${"a".repeat(63)}é${"b".repeat(10)}`);
    const text = await gfs.readText(`${dir}/utf8.txt`);
    assert.equal(text, "a".repeat(63));
    assert.equal(await gfs.readText(`${dir}/utf8.txt`, { offset: 63, length: 2 }), "é");
    // A cut made by `length` holds the partial character back too.
    assert.equal(await gfs.readText(`${dir}/utf8.txt`, { offset: 62, length: 2 }), "a");
    // At the end of the file an invalid sequence is shown, not dropped.
    fs.writeFileSync(`${dir}/broken.txt`, Buffer.from([0x61, 0xc3]));
    assert.equal(await gfs.readText(`${dir}/broken.txt`), "a\ufffd");
  });

  void it("refuses bad offsets and lengths", async () => {
    await failed(gfs.readBytes("hello.txt", { offset: -1 }), "FS_INVALID_ARGUMENT");
    await failed(gfs.readBytes("hello.txt", { length: 1.5 }), "FS_INVALID_ARGUMENT");
    await failed(gfs.readText("hello.txt", { offset: Number.NaN }), "FS_INVALID_ARGUMENT");
  });

  void it("reports a missing file as PATH_NOT_FOUND, and policy refusals as CapabilityDeniedError", async () => {
    const error = await failed(gfs.readText("missing.txt"), "PATH_NOT_FOUND");
    assert.match(error.message, /does not exist/);
    await denied(gfs.readText(`${outside}/secret.txt`), "PATH_OUTSIDE_ROOTS");
    await denied(gfs.readText("../outside/secret.txt"), "PATH_OUTSIDE_ROOTS");
    await denied(gfs.readText(`${root}/.ssh/id_rsa`), "PATH_DENIED");
    await denied(gfs.readText(`${root}/x\0y`), "PATH_INVALID");
  });

  void it("refuses directories, FIFOs, sockets and links to devices", async () => {
    const dir = scratch("special");
    await failed(gfs.readText(dir), "PATH_IS_DIRECTORY");
    execFileSync("mkfifo", [`${dir}/fifo`]);
    // With O_NONBLOCK the open returns at once: the test finishing is the proof it did not hang.
    const fifoError = await denied(gfs.readText(`${dir}/fifo`), "PATH_NOT_REGULAR_FILE");
    assert.match(fifoError.message, /FIFO/);
    await denied(gfs.writeFile(`${dir}/fifo`, "x"), "PATH_NOT_REGULAR_FILE");
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(`${dir}/sock`, resolve));
    try {
      await denied(gfs.readText(`${dir}/sock`), "PATH_NOT_REGULAR_FILE");
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    fs.symlinkSync("/dev/zero", `${dir}/zero`);
    await denied(gfs.readBytes(`${dir}/zero`), "PATH_OUTSIDE_ROOTS");
    await denied(gfs.readBytes("/dev/zero"), "PATH_OUTSIDE_ROOTS");
  });

  void it("refuses a device, FIFO or socket the check saw before opening it (opening one may act: a watchdog starts, a tape rewinds)", async () => {
    const dir = scratch("special-unopened");
    execFileSync("mkfifo", [`${dir}/fifo`]);
    fs.writeFileSync(`${dir}/plain.txt`, "x");
    const fifo = await allowed(`${dir}/fifo`, "read");
    assert.equal(fifo.special, true);
    assert.equal((await allowed(`${dir}/plain.txt`, "read")).special, undefined);
    assert.equal((await allowed(dir, "read")).special, undefined);
    assert.equal((await allowed(`${dir}/fifo`, "write")).special, true);
    // The refusal comes from the check's own look: given a verdict that says "special", even a
    // regular file is refused, so nothing was opened to find out.
    const plain = await allowed(`${dir}/plain.txt`, "read");
    await denied(openVerifiedForRead({ ...plain, special: true }, '"plain.txt"'), "PATH_NOT_REGULAR_FILE");
    const plainWrite = await allowed(`${dir}/plain.txt`, "write");
    await denied(openVerifiedForWrite({ ...plainWrite, special: true }, '"plain.txt"'), "PATH_NOT_REGULAR_FILE");
    assert.equal(fs.readFileSync(`${dir}/plain.txt`, "utf8"), "x");
  });

  void it("replaces an existing file's content all at once: a new inode renamed over it, its mode kept, no temporary left", async () => {
    const dir = scratch("atomic");
    // 0666: a umask of 022 would narrow a new file's mode, so only an explicit chmod keeps it.
    fs.writeFileSync(`${dir}/doc.txt`, "old content\n");
    fs.chmodSync(`${dir}/doc.txt`, 0o666);
    const before = fs.statSync(`${dir}/doc.txt`);
    // A reader holding the old file keeps reading the old content whole: nothing was truncated under it.
    const reader = fs.openSync(`${dir}/doc.txt`, "r");
    try {
      const info = await gfs.writeFile(`${dir}/doc.txt`, "new content, longer than before\n");
      const after = fs.statSync(`${dir}/doc.txt`);
      assert.notEqual(after.ino, before.ino, "a new file took the name");
      assert.equal(after.mode & 0o7777, 0o666, "the mode carried over");
      assert.deepEqual([after.uid, after.gid], [before.uid, before.gid], "the owner carried over");
      assert.equal(info.size, Buffer.byteLength("new content, longer than before\n"));
      assert.equal(fs.readFileSync(`${dir}/doc.txt`, "utf8"), "new content, longer than before\n");
      const buffer = Buffer.alloc(64);
      assert.equal(buffer.subarray(0, fs.readSync(reader, buffer, 0, 64, 0)).toString(), "old content\n");
    } finally {
      fs.closeSync(reader);
    }
    assert.deepEqual(fs.readdirSync(dir), ["doc.txt"], "no temporary file left");
    // Appending stays in place.
    const appendedIno = fs.statSync(`${dir}/doc.txt`).ino;
    await gfs.writeFile(`${dir}/doc.txt`, "more\n", { append: true });
    assert.equal(fs.statSync(`${dir}/doc.txt`).ino, appendedIno);
  });

  void it("a setuid or setgid file is written in place: a replacement never carries those bits with new content", async () => {
    const dir = scratch("atomic-setuid");
    fs.writeFileSync(`${dir}/tool`, "#!/bin/sh\n");
    fs.chmodSync(`${dir}/tool`, 0o4755);
    const ino = fs.statSync(`${dir}/tool`).ino;
    await gfs.writeFile(`${dir}/tool`, "#!/bin/sh\necho new\n");
    assert.equal(fs.statSync(`${dir}/tool`).ino, ino, "no new file was made");
    assert.equal(fs.readFileSync(`${dir}/tool`, "utf8"), "#!/bin/sh\necho new\n");
    assert.deepEqual(fs.readdirSync(dir), ["tool"]);
  });

  void it("a replacement whose rename fails leaves the old content whole and no temporary behind", async () => {
    const dir = scratch("atomic-fail");
    fs.writeFileSync(`${dir}/doc.txt`, "precious\n");
    const failing = (code: string) =>
      createGuardedFs(compiled, LIMITS, { rename: () => Promise.reject(Object.assign(new Error(`rename: ${code}`), { code })) });
    await failed(failing("EIO").writeFile(`${dir}/doc.txt`, "lost?"), "FS_IO_ERROR");
    assert.equal(fs.readFileSync(`${dir}/doc.txt`, "utf8"), "precious\n");
    assert.deepEqual(fs.readdirSync(dir), ["doc.txt"]);
  });

  void it("where a new file cannot take the name (a busy bind mount, a sticky directory), the file is written in place", async () => {
    const dir = scratch("atomic-fallback");
    fs.writeFileSync(`${dir}/doc.txt`, "old\n");
    const ino = fs.statSync(`${dir}/doc.txt`).ino;
    for (const code of ["EBUSY", "EPERM", "EXDEV"]) {
      const busy = createGuardedFs(compiled, LIMITS, { rename: () => Promise.reject(Object.assign(new Error(code), { code })) });
      await busy.writeFile(`${dir}/doc.txt`, `new ${code}\n`);
      assert.equal(fs.readFileSync(`${dir}/doc.txt`, "utf8"), `new ${code}\n`);
      assert.equal(fs.statSync(`${dir}/doc.txt`).ino, ino);
      assert.deepEqual(fs.readdirSync(dir), ["doc.txt"], "the temporary is gone");
    }
  });

  void it("in a directory this process cannot add files to, an existing writable file is written in place", { skip: process.getuid?.() === 0 ? "root may add files anywhere" : false }, async () => {
    const dir = scratch("atomic-readonly-dir");
    fs.writeFileSync(`${dir}/doc.txt`, "old\n");
    const ino = fs.statSync(`${dir}/doc.txt`).ino;
    fs.chmodSync(dir, 0o555);
    try {
      await gfs.writeFile(`${dir}/doc.txt`, "new\n");
      assert.equal(fs.readFileSync(`${dir}/doc.txt`, "utf8"), "new\n");
      assert.equal(fs.statSync(`${dir}/doc.txt`).ino, ino);
    } finally {
      fs.chmodSync(dir, 0o755);
    }
  });

  void it("refuses hard links, whether the other name is outside or inside", async () => {
    const dir = scratch("hardlinks");
    fs.linkSync(`${outside}/secret.txt`, `${dir}/alias.txt`);
    const error = await denied(gfs.readText(`${dir}/alias.txt`), "PATH_HARDLINKED");
    assert.doesNotMatch(error.message, /outside/);
    await denied(gfs.writeFile(`${dir}/alias.txt`, "overwrite"), "PATH_HARDLINKED");
    assert.equal(fs.readFileSync(`${outside}/secret.txt`, "utf8"), "top secret");
    fs.writeFileSync(`${dir}/one.txt`, "1");
    fs.linkSync(`${dir}/one.txt`, `${dir}/two.txt`);
    await denied(gfs.readBytes(`${dir}/one.txt`), "PATH_HARDLINKED");
    // Its size and times too: the other name may be a file the policy protects.
    await denied(gfs.stat(`${dir}/alias.txt`), "PATH_HARDLINKED");
    assert.equal((await gfs.stat(dir)).kind, "directory", "a directory's link count is its subdirectories, not aliases");
  });

  void it("refuses symlink escapes and follows links that stay inside", async () => {
    const dir = scratch("read-links");
    fs.symlinkSync(`${outside}/secret.txt`, `${dir}/out`);
    fs.symlinkSync(outside, `${dir}/outdir`);
    fs.symlinkSync(`${root}/hello.txt`, `${dir}/in`);
    await denied(gfs.readText(`${dir}/out`), "PATH_OUTSIDE_ROOTS");
    await denied(gfs.readText(`${dir}/outdir/secret.txt`), "PATH_OUTSIDE_ROOTS");
    await denied(gfs.list(`${dir}/outdir`), "PATH_OUTSIDE_ROOTS");
    assert.equal(await gfs.readText(`${dir}/in`), "hello world");
    fs.symlinkSync(`${dir}/loop2`, `${dir}/loop1`);
    fs.symlinkSync(`${dir}/loop1`, `${dir}/loop2`);
    await denied(gfs.readText(`${dir}/loop1`), "PATH_LOOP");
  });
});

void describe("stat and resolve", () => {
  void it("returns the real path and metadata", async () => {
    const info = await gfs.stat("hello.txt");
    assert.equal(info.path, `${root}/hello.txt`);
    assert.equal(info.kind, "file");
    assert.equal(info.size, 11);
    assert.equal(typeof info.mtimeMs, "number");
    assert.equal((await gfs.stat(`${root}/sub`)).kind, "directory");
    await failed(gfs.stat("nope"), "PATH_NOT_FOUND");
    assert.equal(await gfs.resolve("sub/../hello.txt", "read"), `${root}/hello.txt`);
    assert.equal(await gfs.resolve("brand-new.txt", "write"), `${root}/brand-new.txt`);
    await denied(gfs.resolve(`${outside}/secret.txt`, "read"), "PATH_OUTSIDE_ROOTS");
    await failed(gfs.resolve("hello.txt", "execute" as "read"), "FS_INVALID_ARGUMENT");
  });

  void it("reports a file deleted between the check and the stat as not found", async () => {
    const dir = scratch("stat-vanish");
    fs.writeFileSync(`${dir}/f.txt`, "x");
    const io = afterLookAt(`${dir}/f.txt`, () => fs.rmSync(`${dir}/f.txt`, { force: true }));
    await failed(createGuardedFs(compiled, LIMITS, { io }).stat(`${dir}/f.txt`), "PATH_NOT_FOUND");
  });

  void it("reports other kinds", async () => {
    const dir = scratch("stat-kinds");
    execFileSync("mkfifo", [`${dir}/fifo`]);
    assert.equal((await gfs.stat(`${dir}/fifo`)).kind, "other");
  });
});

void describe("listing", () => {
  void it("lists sorted entries with kinds and hides denied ones", async () => {
    const dir = scratch("listing");
    fs.writeFileSync(`${dir}/b.txt`, "b");
    fs.writeFileSync(`${dir}/a.txt`, "a");
    fs.mkdirSync(`${dir}/c`);
    fs.mkdirSync(`${dir}/.ssh`);
    fs.mkdirSync(`${dir}/Secrets`);
    fs.writeFileSync(`${dir}/.env`, "X=1");
    fs.writeFileSync(`${dir}/server.PEM`, "k");
    fs.symlinkSync(`${outside}/secret.txt`, `${dir}/link`);
    const expected = [
      { name: "a.txt", kind: "file" },
      { name: "b.txt", kind: "file" },
      { name: "c", kind: "directory" },
      { name: "link", kind: "symlink" },
    ];
    assert.deepEqual(await gfs.list(dir), expected);
    // Without /proc: list by path, then check the directory is still the one opened.
    assert.deepEqual(await createGuardedFs(compiled, LIMITS, { procFdDir: null }).list(dir), expected);
    assert.deepEqual(await createGuardedFs(compiled, LIMITS, { procFdDir: `${tmp}/no-proc` }).list(dir), expected);
  });

  void it("hides entries that a glob-restricted root does not allow", async () => {
    const dir = scratch("globbed");
    fs.writeFileSync(`${dir}/keep.md`, "k");
    fs.writeFileSync(`${dir}/skip.txt`, "s");
    const c = compilePathPolicy({ allowed_paths: [`${root}/globbed/*/**`, `${root}/globbed/*.md`], denied_paths: [], write_denied_paths: [], max_read_bytes: 1, max_write_bytes: 1 });
    fs.mkdirSync(`${dir}/sub`);
    assert.deepEqual(await createGuardedFs(c, LIMITS).list(`${dir}/sub`), []);
    await denied(createGuardedFs(c, LIMITS).list(dir), "PATH_OUTSIDE_ROOTS");
  });

  void it("lists a name that is not UTF-8 with U+FFFD, and opening that name says why it cannot be", async () => {
    const dir = scratch("latin1");
    try {
      fs.writeFileSync(Buffer.concat([Buffer.from(`${dir}/caf`), Buffer.from([0xe9]), Buffer.from(".txt")]), "x");
    } catch (error) {
      // A file system that keeps names in UTF-8 only (APFS, ZFS utf8only) has no such file to show.
      if ((error as NodeJS.ErrnoException).code === "EILSEQ") return;
      throw error;
    }
    assert.deepEqual(await gfs.list(dir), [{ name: "caf\ufffd.txt", kind: "file" }]);
    const error = await failed(gfs.readBytes(`${dir}/caf\ufffd.txt`), "PATH_NOT_FOUND");
    assert.match(error.message, /not UTF-8/);
    assert.doesNotMatch((await failed(gfs.readBytes(`${dir}/cafe.txt`), "PATH_NOT_FOUND")).message, /UTF-8/);
  });

  void it("refuses a directory whose entries would take more memory than one listing may hold, with or without /proc, leaking no descriptor", async () => {
    const dir = scratch("crowded");
    for (let i = 0; i < 6; i++) fs.writeFileSync(`${dir}/f${i}`, "");
    // Six two-character names fit in 600 estimated bytes (96 per entry and 2 per character); seven do not.
    const limited = { ...LIMITS, maxListBytes: 600 };
    assert.equal((await createGuardedFs(compiled, limited).list(dir)).length, 6);
    fs.writeFileSync(`${dir}/f6`, "");
    const descriptors = fs.readdirSync("/proc/self/fd").length;
    for (const procFdDir of [undefined, null]) {
      const error = await failed(createGuardedFs(compiled, limited, { procFdDir }).list(dir), "DIRECTORY_TOO_LARGE");
      assert.match(error.message, /too large to list: its first 6 entries/);
    }
    assert.equal(fs.readdirSync("/proc/self/fd").length, descriptors, "the directory is closed when the listing is refused");
    assert.equal((await gfs.list(dir)).length, 7, "the default bound is far above this");
    assert.throws(() => createGuardedFs(compiled, { ...LIMITS, maxListBytes: 0 }), RangeError);
    assert.equal((await createGuardedFs(compiled, { ...LIMITS, maxListBytes: undefined }).list(dir)).length, 7, "an unset bound is the default");
  });

  void it("stops reading a directory once the call's signal fires", async () => {
    const dir = scratch("stopped");
    for (let i = 0; i < 3; i++) fs.writeFileSync(`${dir}/f${i}`, "");
    const controller = new AbortController();
    controller.abort(new ToolError("the call was cancelled", "CANCELLED"));
    await failed(gfs.list(dir, { signal: controller.signal }), "CANCELLED");
    assert.equal((await gfs.list(dir, { signal: new AbortController().signal })).length, 3);
  });

  void it("refuses files, missing directories and denied directories", async () => {
    await failed(gfs.list("hello.txt"), "PATH_NOT_DIRECTORY");
    await failed(gfs.list("no-such-dir"), "PATH_NOT_FOUND");
    await denied(gfs.list(`${root}/secrets`), "PATH_DENIED");
  });
});

void describe("writing", () => {
  void it("creates files with mode 0600, replaces and appends", async () => {
    const dir = scratch("writes");
    const info = await gfs.writeFile(`${dir}/new.txt`, "first version");
    assert.equal(info.path, `${dir}/new.txt`);
    assert.equal(info.kind, "file");
    assert.equal(info.size, 13);
    assert.equal(fs.statSync(`${dir}/new.txt`).mode & 0o777, 0o600);
    await gfs.writeFile(`${dir}/new.txt`, "v2");
    assert.equal(fs.readFileSync(`${dir}/new.txt`, "utf8"), "v2");
    await gfs.writeFile(`${dir}/new.txt`, new Uint8Array([0x21]), { append: true });
    assert.equal(fs.readFileSync(`${dir}/new.txt`, "utf8"), "v2!");
    const appended = await gfs.writeFile(`${dir}/log.txt`, "line1\n", { append: true });
    assert.equal(appended.size, 6);
  });

  void it("refuses a path that ends with '/' (a directory's name) instead of writing a file without it", async () => {
    const dir = scratch("trailing");
    for (const target of [`${dir}/newname/`, `${dir}/newname/.`, `${dir}/newname//`]) {
      const error = await gfs.writeFile(target, "x").then(
        () => undefined,
        (e: unknown) => e as { code?: string; message?: string },
      );
      assert.equal(error?.code, "FS_INVALID_ARGUMENT", target);
      assert.match(error?.message ?? "", /names a directory/);
    }
    assert.equal(fs.existsSync(`${dir}/newname`), false, "no file made");
  });

  void it("honours exclusive", async () => {
    const dir = scratch("exclusive");
    await gfs.writeFile(`${dir}/once.txt`, "1", { exclusive: true });
    await failed(gfs.writeFile(`${dir}/once.txt`, "2", { exclusive: true }), "PATH_EXISTS");
    assert.equal(fs.readFileSync(`${dir}/once.txt`, "utf8"), "1");
  });

  void it("refuses writes over the cap, to directories, under missing parents, outside and to denied names", async () => {
    await denied(gfs.writeFile("big.txt", "x".repeat(LIMITS.maxWriteBytes + 1)), "FS_WRITE_TOO_LARGE");
    assert.equal(fs.existsSync(`${root}/big.txt`), false);
    await failed(gfs.writeFile("sub", "x"), "PATH_IS_DIRECTORY");
    await failed(gfs.writeFile("no/such/dir/x.txt", "x"), "PATH_NOT_FOUND");
    await denied(gfs.writeFile("../outside/new.txt", "x"), "PATH_OUTSIDE_ROOTS");
    await denied(gfs.writeFile(".env", "x"), "PATH_DENIED");
    await denied(gfs.writeFile("key.Pem", "x"), "PATH_DENIED");
    await failed(gfs.writeFile("x.txt", 42 as unknown as string), "FS_INVALID_ARGUMENT");
    assert.equal(fs.existsSync(`${outside}/new.txt`), false);
  });

  void it("a write that fails half way (a full disk) leaves no part of it: a new file is removed, an append cut back, a replaced file whole", async () => {
    const dir = scratch("write-fails");
    // The disk fills after the first few bytes: one short write, then ENOSPC.
    const full = createGuardedFs(compiled, LIMITS, {
      write: async (handle, bytes, offset, length, position) =>
        offset === 0 ? (await handle.write(bytes, 0, Math.min(4, length), position)).bytesWritten : Promise.reject(Object.assign(new Error("ENOSPC"), { code: "ENOSPC" })),
    });
    await failed(full.writeFile(`${dir}/new.txt`, "a new file's content", { exclusive: true }), "FS_NO_SPACE");
    await failed(full.writeFile(`${dir}/other.txt`, "another new file"), "FS_NO_SPACE");
    await failed(full.writeFile(`${dir}/appended.txt`, "appended to nothing", { append: true }), "FS_NO_SPACE");
    assert.deepEqual(fs.readdirSync(dir), [], "no partial new file left behind");
    fs.writeFileSync(`${dir}/log.txt`, "line 1\n");
    await failed(full.writeFile(`${dir}/log.txt`, "line 2, which does not fit\n", { append: true }), "FS_NO_SPACE");
    assert.equal(fs.readFileSync(`${dir}/log.txt`, "utf8"), "line 1\n", "the append was cut back");
    await failed(full.writeFile(`${dir}/log.txt`, "a replacement that does not fit\n"), "FS_NO_SPACE");
    assert.equal(fs.readFileSync(`${dir}/log.txt`, "utf8"), "line 1\n");
    assert.deepEqual(fs.readdirSync(dir), ["log.txt"]);
    // Bytes another writer appended meanwhile are not cut away: the file is left as it is.
    const racing = createGuardedFs(compiled, LIMITS, {
      write: async (handle, bytes, offset, length, position) => {
        if (offset === 0) return (await handle.write(bytes, 0, Math.min(4, length), position)).bytesWritten;
        fs.appendFileSync(`${dir}/log.txt`, "someone else\n");
        throw Object.assign(new Error("ENOSPC"), { code: "ENOSPC" });
      },
    });
    await failed(racing.writeFile(`${dir}/log.txt`, "line 2\n", { append: true }), "FS_NO_SPACE");
    assert.equal(fs.readFileSync(`${dir}/log.txt`, "utf8"), "line 1\nlinesomeone else\n");
  });

  void it("a name holding half a surrogate pair is refused before anything is made (the disk would get U+FFFD instead)", async () => {
    const dir = scratch("lone-surrogate");
    const error = await denied(gfs.writeFile(`${dir}/note\ud83d.txt`, "x", { exclusive: true }), "PATH_INVALID");
    assert.match(error.message, /half of a surrogate pair/);
    await denied(gfs.mkdir(`${dir}/d\udc00`), "PATH_INVALID");
    await denied(gfs.readText(`${dir}/\ud800`), "PATH_INVALID");
    assert.deepEqual(fs.readdirSync(dir), [], "no file named with U+FFFD was made");
    // A whole pair is a character like any other.
    await gfs.writeFile(`${dir}/note\ud83d\ude00.txt`, "x", { exclusive: true });
    assert.deepEqual(fs.readdirSync(dir), ["note\u{1f600}.txt"]);
  });

  void it("a rewrite in place that fails half way says the old content is gone, and how much of the new is there", async () => {
    const dir = scratch("in-place-fails");
    fs.writeFileSync(`${dir}/doc.txt`, "the only copy\n");
    // No /proc, so no replacement by rename (as where a directory refuses one), then a disk that fills.
    const full = createGuardedFs(compiled, LIMITS, {
      procFdDir: null,
      write: async (handle, bytes, offset, length, position) =>
        offset === 0 ? (await handle.write(bytes, 0, Math.min(4, length), position)).bytesWritten : Promise.reject(Object.assign(new Error("ENOSPC"), { code: "ENOSPC" })),
    });
    const error = await failed(full.writeFile(`${dir}/doc.txt`, "new content\n"), "FS_NO_SPACE");
    assert.equal(fs.readFileSync(`${dir}/doc.txt`, "utf8"), "new ");
    assert.match(error.message, /no space left.*old content is gone.*first 4 of 12 bytes/);
  });

  void it("never writes through a symlink, dangling or not", async () => {
    const dir = scratch("write-links");
    fs.symlinkSync(`${outside}/planted.txt`, `${dir}/dangling`);
    fs.symlinkSync(`${outside}/secret.txt`, `${dir}/existing`);
    fs.symlinkSync(`${root}/hello.txt`, `${dir}/inside`);
    fs.symlinkSync(outside, `${dir}/parent`);
    await denied(gfs.writeFile(`${dir}/dangling`, "pwned"), "PATH_SYMLINK");
    await denied(gfs.writeFile(`${dir}/existing`, "pwned"), "PATH_SYMLINK");
    await denied(gfs.writeFile(`${dir}/inside`, "pwned"), "PATH_SYMLINK");
    await denied(gfs.writeFile(`${dir}/parent/new.txt`, "pwned"), "PATH_OUTSIDE_ROOTS");
    assert.equal(fs.existsSync(`${outside}/planted.txt`), false);
    assert.equal(fs.existsSync(`${outside}/new.txt`), false);
    assert.equal(fs.readFileSync(`${outside}/secret.txt`, "utf8"), "top secret");
    assert.equal(fs.readFileSync(`${root}/hello.txt`, "utf8"), "hello world");
  });
});

void describe("mkdir", () => {
  void it("creates one level with mode 0700", async () => {
    const info = await gfs.mkdir("made");
    assert.equal(info.path, `${root}/made`);
    assert.equal(info.kind, "directory");
    assert.equal(fs.statSync(`${root}/made`).mode & 0o777, 0o700);
    await failed(gfs.mkdir("made"), "PATH_EXISTS");
    await failed(gfs.mkdir("deep/er/dir"), "PATH_NOT_FOUND");
    await denied(gfs.mkdir(".ssh"), "PATH_DENIED");
    await denied(gfs.mkdir("../outside/made"), "PATH_OUTSIDE_ROOTS");
    assert.equal(fs.existsSync(`${outside}/made`), false);
  });

  void it("reports a directory created by someone else between check and mkdir", async () => {
    // The check saw nothing there; someone creates it right after.
    const io = afterLookAt(`${root}/sub/raced`, () => fs.mkdirSync(`${root}/sub/raced`));
    await failed(createGuardedFs(compiled, LIMITS, { io }).mkdir("sub/raced"), "PATH_EXISTS");
  });
});

void describe("move", () => {
  void it("gives a file a new name, in the same or another directory, keeping its content and mode", async () => {
    const dir = scratch("move");
    fs.mkdirSync(`${dir}/into`);
    fs.writeFileSync(`${dir}/a.txt`, "alpha", { mode: 0o640 });
    const renamed = await gfs.move(`${dir}/a.txt`, `${dir}/b.txt`);
    assert.deepEqual([renamed.path, renamed.kind, renamed.size], [`${dir}/b.txt`, "file", 5]);
    const moved = await gfs.move(`${dir}/b.txt`, `${dir}/into/c.txt`);
    assert.equal(moved.path, `${dir}/into/c.txt`);
    assert.deepEqual(fs.readdirSync(dir).sort(), ["into"]);
    assert.equal(fs.readFileSync(`${dir}/into/c.txt`, "utf8"), "alpha");
    assert.equal(fs.statSync(`${dir}/into/c.txt`).mode & 0o777, 0o640);
  });

  void it("refuses a destination ending with '/' (a directory's name) instead of giving the file that name without it", async () => {
    const dir = scratch("move-trailing");
    fs.writeFileSync(`${dir}/a.txt`, "a");
    for (const target of [`${dir}/newname/`, `${dir}/newname/.`]) await failed(gfs.move(`${dir}/a.txt`, target), "FS_INVALID_ARGUMENT");
    assert.deepEqual(fs.readdirSync(dir), ["a.txt"], "nothing moved");
  });

  void it("never replaces a file, also one made after the check; refuses directories, links, missing names and denied places", async () => {
    const dir = scratch("move-refusals");
    fs.writeFileSync(`${dir}/a.txt`, "a");
    fs.writeFileSync(`${dir}/taken.txt`, "keep me");
    await failed(gfs.move(`${dir}/a.txt`, `${dir}/taken.txt`), "PATH_EXISTS");
    // Someone makes the destination between the check and the move: it is not replaced either.
    const io = afterLookAt(`${dir}/late.txt`, () => fs.writeFileSync(`${dir}/late.txt`, "theirs"));
    await failed(createGuardedFs(compiled, LIMITS, { io }).move(`${dir}/a.txt`, `${dir}/late.txt`), "PATH_EXISTS");
    assert.equal(fs.readFileSync(`${dir}/late.txt`, "utf8"), "theirs");
    assert.equal(fs.readFileSync(`${dir}/taken.txt`, "utf8"), "keep me");
    fs.mkdirSync(`${dir}/sub`);
    await failed(gfs.move(`${dir}/sub`, `${dir}/sub2`), "PATH_IS_DIRECTORY");
    await failed(gfs.move(`${dir}/none.txt`, `${dir}/x.txt`), "PATH_NOT_FOUND");
    await failed(gfs.move(`${dir}/a.txt`, `${dir}/no/such/x.txt`), "PATH_NOT_FOUND");
    await denied(gfs.move(`${dir}/a.txt`, `${dir}/.ssh/a.txt`), "PATH_DENIED");
    await denied(gfs.move(`${dir}/a.txt`, `${outside}/a.txt`), "PATH_OUTSIDE_ROOTS");
    fs.linkSync(`${dir}/taken.txt`, `${dir}/twin.txt`);
    await denied(gfs.move(`${dir}/twin.txt`, `${dir}/single.txt`), "PATH_HARDLINKED");
    fs.symlinkSync(`${dir}/a.txt`, `${dir}/link.txt`);
    const viaLink = gfs.move(`${dir}/link.txt`, `${dir}/moved.txt`).then(
      () => "moved",
      (error: { code?: string }) => error.code,
    );
    assert.notEqual(await viaLink, "moved", "a move through a symbolic link is refused as every write through one is");
    assert.deepEqual(fs.readdirSync(dir).sort(), ["a.txt", "late.txt", "link.txt", "sub", "taken.txt", "twin.txt"]);
  });

  void it("refuses executable and setuid files (they could stand in for a command at the new name) and a file moved onto itself", async () => {
    const dir = scratch("move-modes");
    fs.writeFileSync(`${dir}/tool.sh`, "#!/bin/sh\n", { mode: 0o755 });
    fs.writeFileSync(`${dir}/group.sh`, "#!/bin/sh\n", { mode: 0o610 });
    fs.writeFileSync(`${dir}/plain.txt`, "x", { mode: 0o600 });
    fs.chmodSync(`${dir}/plain.txt`, 0o4600);
    for (const name of ["tool.sh", "group.sh", "plain.txt"]) {
      const error = await denied(gfs.move(`${dir}/${name}`, `${dir}/moved-${name}`), "PATH_EXECUTABLE");
      assert.match(error.message, /without execute permission only/);
    }
    fs.chmodSync(`${dir}/plain.txt`, 0o600);
    assert.match((await failed(gfs.move(`${dir}/plain.txt`, `${dir}/./plain.txt`), "PATH_EXISTS")).message, /are the same file/);
    assert.deepEqual(fs.readdirSync(dir).sort(), ["group.sh", "plain.txt", "tool.sh"]);
  });

  void it("says what link(2)'s refusals mean, and undoes the new name when the source is saved over meanwhile", async () => {
    const dir = scratch("move-link");
    fs.writeFileSync(`${dir}/a.txt`, "old");
    const refusing = (code: string) => createGuardedFs(compiled, LIMITS, { link: () => Promise.reject(Object.assign(new Error(code), { code })) });
    assert.match((await failed(refusing("EPERM").move(`${dir}/a.txt`, `${dir}/b.txt`), "PATH_LINK_REFUSED")).message, /second name/);
    await failed(refusing("EXDEV").move(`${dir}/a.txt`, `${dir}/b.txt`), "PATH_CROSS_DEVICE");
    // An editor saves a.txt (write a new file, rename it over) just after the new name was made.
    const saving = createGuardedFs(compiled, LIMITS, {
      link: async (existing, newName) => {
        await fsp.link(existing, newName);
        fs.writeFileSync(`${dir}/.save`, "new");
        fs.renameSync(`${dir}/.save`, `${dir}/a.txt`);
      },
    });
    await denied(saving.move(`${dir}/a.txt`, `${dir}/b.txt`), "PATH_RACE");
    assert.deepEqual(fs.readdirSync(dir), ["a.txt"], "the new name is undone");
    assert.equal(fs.readFileSync(`${dir}/a.txt`, "utf8"), "new", "the saved content stays");
    // Another file swapped in at the source just before the link: it gets no name at the destination.
    const swapping = createGuardedFs(compiled, LIMITS, {
      link: async (existing, newName) => {
        fs.renameSync(`${dir}/a.txt`, `${dir}/aside.txt`);
        fs.writeFileSync(`${dir}/a.txt`, "someone else's");
        await fsp.link(existing, newName);
      },
    });
    await denied(swapping.move(`${dir}/a.txt`, `${dir}/b.txt`), "PATH_RACE");
    assert.deepEqual(fs.readdirSync(dir).sort(), ["a.txt", "aside.txt"]);
  });

  void it("a move whose call ends after the new name is made is undone, not completed after the response (CALL_ENDED)", async () => {
    const dir = scratch("move-ended");
    fs.writeFileSync(`${dir}/a.txt`, "data");
    const call = new AbortController();
    // The call times out while the new name is being made (say, the directory sync is slow).
    const ending = createGuardedFs(compiled, LIMITS, {
      link: async (existing, newName) => {
        await fsp.link(existing, newName);
        call.abort(new Error("timed out"));
      },
    });
    const ended = await denied(ending.move(`${dir}/a.txt`, `${dir}/b.txt`, { signal: call.signal }), "CALL_ENDED");
    assert.match(ended.message, /the move was stopped and undone; the file keeps its old name/);
    assert.deepEqual(fs.readdirSync(dir), ["a.txt"]);
    assert.equal(fs.statSync(`${dir}/a.txt`).nlink, 1);
    // Ended before anything was made: nothing is made.
    await denied(gfs.move(`${dir}/a.txt`, `${dir}/c.txt`, { signal: AbortSignal.abort() }), "CALL_ENDED");
    assert.deepEqual(fs.readdirSync(dir), ["a.txt"]);
  });

  void it("a move whose call ends while the old name is looked at last is undone too, not completed (CALL_ENDED)", async () => {
    const dir = scratch("move-ended-late");
    fs.writeFileSync(`${dir}/a.txt`, "data");
    const call = new AbortController();
    let linked = false;
    const ending = createGuardedFs(compiled, LIMITS, {
      link: async (existing, newName) => {
        await fsp.link(existing, newName);
        linked = true;
      },
    });
    // The call times out during the last look at the old name, after the directory sync.
    const lstat = fsp.lstat;
    fsp.lstat = (async (...args: Parameters<typeof lstat>) => {
      const stats = await lstat(...args);
      if (linked && String(args[0]).endsWith("a.txt")) call.abort(new Error("timed out"));
      return stats;
    }) as typeof lstat;
    try {
      await denied(ending.move(`${dir}/a.txt`, `${dir}/b.txt`, { signal: call.signal }), "CALL_ENDED");
    } finally {
      fsp.lstat = lstat;
    }
    assert.deepEqual(fs.readdirSync(dir), ["a.txt"]);
    assert.equal(fs.statSync(`${dir}/a.txt`).nlink, 1);
  });

  void it("when the old name cannot be removed, the new one is undone; when neither can, both names are said (PATH_MOVE_INCOMPLETE)", async () => {
    const dir = scratch("move-unlink");
    fs.writeFileSync(`${dir}/a.txt`, "data");
    const eacces = () => Promise.reject(Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" }));
    // The old name stays (say, the directory's permissions changed): the move is undone, one name left.
    const sourceStays = createGuardedFs(compiled, LIMITS, { unlink: (name) => (name.endsWith("a.txt") ? eacces() : fsp.unlink(name)) });
    const undone = await failed(sourceStays.move(`${dir}/a.txt`, `${dir}/b.txt`), "PATH_PERMISSION");
    assert.doesNotMatch(undone.message, /two names/);
    assert.deepEqual(fs.readdirSync(dir), ["a.txt"]);
    assert.equal(fs.statSync(`${dir}/a.txt`).nlink, 1);
    // Neither name can be removed: both stay, and the refusal names both for a person to fix.
    const neither = createGuardedFs(compiled, LIMITS, { unlink: eacces });
    const incomplete = await failed(neither.move(`${dir}/a.txt`, `${dir}/b.txt`), "PATH_MOVE_INCOMPLETE");
    assert.match(incomplete.message, /failed half way .*two names, .*a\.txt.* and .*b\.txt.*; remove one/);
    assert.deepEqual(fs.readdirSync(dir).sort(), ["a.txt", "b.txt"]);
    assert.equal(fs.statSync(`${dir}/a.txt`).ino, fs.statSync(`${dir}/b.txt`).ino);
    // Every tool refuses a file with two names, the move included, until one is removed.
    await denied(gfs.move(`${dir}/a.txt`, `${dir}/c.txt`), "PATH_HARDLINKED");
    fs.unlinkSync(`${dir}/b.txt`);
    await gfs.move(`${dir}/a.txt`, `${dir}/c.txt`);
    assert.deepEqual(fs.readdirSync(dir), ["c.txt"]);
  });

  void it("without /proc: a move is refused, a file's content is replaced in place, reads and new files work by path", async () => {
    const dir = scratch("no-proc");
    fs.writeFileSync(`${dir}/a.txt`, "old");
    const byPath = createGuardedFs(compiled, LIMITS, { procFdDir: null });
    assert.match((await failed(byPath.move(`${dir}/a.txt`, `${dir}/b.txt`), "FS_UNSUPPORTED")).message, /needs \/proc/);
    const inode = fs.statSync(`${dir}/a.txt`).ino;
    await byPath.writeFile(`${dir}/a.txt`, "new");
    assert.equal(fs.statSync(`${dir}/a.txt`).ino, inode, "written in place: no verified directory to rename in");
    assert.equal(Buffer.from(await byPath.readBytes(`${dir}/a.txt`)).toString(), "new");
    await byPath.writeFile(`${dir}/c.txt`, "made", { exclusive: true });
    await byPath.mkdir(`${dir}/sub`);
    assert.deepEqual(fs.readdirSync(dir).sort(), ["a.txt", "c.txt", "sub"]);
    // With /proc the same overwrite replaces the file (a new inode), as the atomic replace does.
    await gfs.writeFile(`${dir}/a.txt`, "newer");
    assert.notEqual(fs.statSync(`${dir}/a.txt`).ino, inode);
  });

  void it("refuses a file another user owns (it could make it executable at its new place)", async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip("only root can give a file to another user");
      return;
    }
    const dir = scratch("move-owner");
    fs.writeFileSync(`${dir}/theirs.txt`, "x", { mode: 0o666 });
    fs.chownSync(`${dir}/theirs.txt`, 1000, 1000);
    await denied(gfs.move(`${dir}/theirs.txt`, `${dir}/mine.txt`), "PATH_NOT_OWNED");
    assert.deepEqual(fs.readdirSync(dir), ["theirs.txt"]);
  });

  void it("a file swapped in at the source after the check is not moved", async () => {
    const dir = scratch("move-swap");
    fs.writeFileSync(`${dir}/a.txt`, "checked");
    // The checked file is kept (renamed aside), so the new one cannot reuse its inode number.
    const io = afterLookAt(`${dir}/a.txt`, () => {
      fs.renameSync(`${dir}/a.txt`, `${dir}/aside.txt`);
      fs.writeFileSync(`${dir}/a.txt`, "swapped in");
    });
    await denied(createGuardedFs(compiled, LIMITS, { io }).move(`${dir}/a.txt`, `${dir}/b.txt`), "PATH_RACE");
    assert.deepEqual(fs.readdirSync(dir).sort(), ["a.txt", "aside.txt"]);
  });

  void it("refuses to cross file systems, leaving the file where it was", async (t) => {
    const shm = fs.existsSync("/dev/shm") ? fs.realpathSync(fs.mkdtempSync("/dev/shm/msl-move-")) : undefined;
    if (shm === undefined || fs.statSync(shm).dev === fs.statSync(root).dev) {
      if (shm !== undefined) fs.rmSync(shm, { recursive: true });
      t.skip("no second file system here");
      return;
    }
    try {
      const both = compilePathPolicy({ allowed_paths: [`${root}/**`, `${shm}/**`], denied_paths: [], write_denied_paths: [], max_read_bytes: 64, max_write_bytes: 64 });
      const dir = scratch("move-device");
      fs.writeFileSync(`${dir}/a.txt`, "a");
      const error = await failed(createGuardedFs(both, LIMITS).move(`${dir}/a.txt`, `${shm}/a.txt`), "PATH_CROSS_DEVICE");
      assert.match(error.message, /different file systems/);
      assert.ok(fs.existsSync(`${dir}/a.txt`) && !fs.existsSync(`${shm}/a.txt`));
    } finally {
      fs.rmSync(shm, { recursive: true });
    }
  });
});

void describe("check-then-open races", () => {
  void it("a file swapped for a symlink after the check is refused (O_NOFOLLOW)", async () => {
    const dir = scratch("race-symlink");
    fs.writeFileSync(`${dir}/f.txt`, "inside");
    const verdict = await allowed(`${dir}/f.txt`, "read");
    fs.rmSync(`${dir}/f.txt`);
    fs.symlinkSync(`${outside}/secret.txt`, `${dir}/f.txt`);
    await denied(openVerifiedForRead(verdict, '"f.txt"'), "PATH_RACE");
    const writeVerdict = await allowed(`${dir}/g.txt`, "write");
    fs.symlinkSync(`${outside}/secret.txt`, `${dir}/g.txt`);
    await denied(openVerifiedForWrite(writeVerdict, '"g.txt"'), "PATH_RACE");
    assert.equal(fs.readFileSync(`${outside}/secret.txt`, "utf8"), "top secret");
    // A dangling link planted after the check: O_NOFOLLOW means nothing is created at its target.
    const danglingVerdict = await allowed(`${dir}/h.txt`, "write");
    fs.symlinkSync(`${outside}/planted-by-race.txt`, `${dir}/h.txt`);
    await denied(openVerifiedForWrite(danglingVerdict, '"h.txt"'), "PATH_RACE");
    assert.equal(fs.existsSync(`${outside}/planted-by-race.txt`), false);
  });

  void it("a file replaced by another file after the check is refused (inode differs)", async () => {
    const dir = scratch("race-replace");
    fs.writeFileSync(`${dir}/f.txt`, "original");
    const verdict = await allowed(`${dir}/f.txt`, "read");
    const writeVerdict = await allowed(`${dir}/f.txt`, "write");
    fs.writeFileSync(`${dir}/other.txt`, "replacement");
    fs.renameSync(`${dir}/other.txt`, `${dir}/f.txt`);
    await denied(openVerifiedForRead(verdict, '"f.txt"'), "PATH_RACE");
    await denied(openVerifiedForWrite(writeVerdict, '"f.txt"'), "PATH_RACE");
    assert.equal(fs.readFileSync(`${dir}/f.txt`, "utf8"), "replacement", "nothing was truncated");
  });

  void it("a parent directory swapped for a link to outside is refused for reads and writes", async () => {
    const dir = scratch("race-parent");
    fs.mkdirSync(`${dir}/p`);
    fs.writeFileSync(`${dir}/p/secret.txt`, "inside copy");
    const readVerdict = await allowed(`${dir}/p/secret.txt`, "read");
    const createVerdict = await allowed(`${dir}/p/created.txt`, "write");
    fs.renameSync(`${dir}/p`, `${dir}/p-old`);
    fs.symlinkSync(outside, `${dir}/p`);
    await denied(openVerifiedForRead(readVerdict, '"p/secret.txt"'), "PATH_RACE");
    await denied(openVerifiedForWrite(createVerdict, '"p/created.txt"'), "PATH_RACE");
    // Creating goes through a verified descriptor of the parent: nothing appears outside.
    assert.equal(fs.existsSync(`${outside}/created.txt`), false);
  });

  void it("mkdir under a parent swapped for a link to outside creates nothing outside", async () => {
    const dir = scratch("race-mkdir");
    fs.mkdirSync(`${dir}/p`);
    // The check sees the real directory; right after its last look, the parent becomes a link to outside.
    const io = afterLookAt(`${dir}/p/made-by-race`, () => {
      fs.renameSync(`${dir}/p`, `${dir}/p-old`);
      fs.symlinkSync(outside, `${dir}/p`);
    });
    await denied(createGuardedFs(compiled, LIMITS, { io }).mkdir(`${dir}/p/made-by-race`), "PATH_RACE");
    assert.equal(fs.existsSync(`${outside}/made-by-race`), false, "no directory appeared outside the root");
  });

  void it("a stale verdict for a file that was deleted reports not found", async () => {
    const dir = scratch("race-deleted");
    fs.writeFileSync(`${dir}/f.txt`, "x");
    const verdict = await allowed(`${dir}/f.txt`, "read");
    fs.rmSync(`${dir}/f.txt`);
    await failed(openVerifiedForRead(verdict, '"f.txt"'), "PATH_NOT_FOUND");
    const missing = await allowed(`${dir}/never.txt`, "read");
    await failed(openVerifiedForRead(missing, '"never.txt"'), "PATH_NOT_FOUND");
  });

  void it("identity mismatches are caught by every operation (stale identity injected)", async () => {
    const dir = scratch("race-identity");
    fs.mkdirSync(`${dir}/d`);
    fs.writeFileSync(`${dir}/f.txt`, "x");
    const skewed = (match: (p: string) => boolean): PathIo => ({
      realpath: (p) => nodePathIo.realpath(p),
      lstat: async (p) => {
        const st = await nodePathIo.lstat(p);
        if (!match(p)) return st;
        return { dev: st.dev, ino: st.ino + 1n, isSymbolicLink: () => st.isSymbolicLink(), isDirectory: () => st.isDirectory() };
      },
    });
    const onTarget = createGuardedFs(compiled, LIMITS, { io: skewed((p) => p === `${dir}/f.txt` || p === `${dir}/d`) });
    await denied(onTarget.readText(`${dir}/f.txt`), "PATH_RACE");
    await denied(onTarget.stat(`${dir}/f.txt`), "PATH_RACE");
    await denied(onTarget.writeFile(`${dir}/f.txt`, "y"), "PATH_RACE");
    await denied(onTarget.list(`${dir}/d`), "PATH_RACE");
    await denied(createGuardedFs(compiled, LIMITS, { io: skewed((p) => p === `${dir}/d`), procFdDir: null }).list(`${dir}/d`), "PATH_RACE");
    const onParent = createGuardedFs(compiled, LIMITS, { io: skewed((p) => p === `${dir}/d`) });
    await denied(onParent.writeFile(`${dir}/d/new.txt`, "y"), "PATH_RACE");
    await denied(onParent.mkdir(`${dir}/d/newdir`), "PATH_RACE");
    assert.equal(fs.readFileSync(`${dir}/f.txt`, "utf8"), "x");
  });
});

void describe("toFsError", () => {
  void it("maps OS errors to typed errors with actionable messages", () => {
    const cases: Array<[string, typeof ToolError | typeof CapabilityDeniedError, string]> = [
      ["ENOENT", ToolError, "PATH_NOT_FOUND"],
      ["EEXIST", ToolError, "PATH_EXISTS"],
      ["EISDIR", ToolError, "PATH_IS_DIRECTORY"],
      ["ENOTDIR", ToolError, "PATH_NOT_DIRECTORY"],
      ["EACCES", ToolError, "PATH_PERMISSION"],
      ["EPERM", ToolError, "PATH_PERMISSION"],
      ["ELOOP", CapabilityDeniedError, "PATH_RACE"],
      ["ENXIO", CapabilityDeniedError, "PATH_NOT_REGULAR_FILE"],
      ["ENODEV", CapabilityDeniedError, "PATH_NOT_REGULAR_FILE"],
      ["ENOSPC", ToolError, "FS_NO_SPACE"],
      ["EDQUOT", ToolError, "FS_NO_SPACE"],
      ["EROFS", ToolError, "FS_READ_ONLY"],
      ["EIO", ToolError, "FS_IO_ERROR"],
    ];
    for (const [errno, kind, code] of cases) {
      const mapped = toFsError(Object.assign(new Error("raw"), { code: errno }), '"x"');
      assert.ok(mapped instanceof kind, errno);
      assert.equal((mapped as { code: string }).code, code);
      assert.match(mapped.message, /"x"/);
    }
    // Said in words: "failed (EROFS)" left a model to guess, and to retry.
    assert.match(toFsError(Object.assign(new Error("raw"), { code: "EROFS" }), '"x"').message, /read-only file system.*cannot be changed/);
    assert.equal((toFsError("weird", '"x"') as ToolError).code, "FS_IO_ERROR");
    const typed = new ToolError("kept", "KEEP");
    assert.equal(toFsError(typed, '"x"'), typed);
  });
});

void describe("review finding: a parent swapped between the check's realpath and its lstat", () => {
  /** Path effects where realpath sees `dir/a` as it is and, before the lstat of `a/<name>`, `a` becomes a link to outside (and stays so). */
  const swappingParent = (dir: string, name: string): PathIo => {
    let swapped = false;
    return {
      realpath: (p) => nodePathIo.realpath(p),
      lstat: async (p) => {
        if (!swapped && p.endsWith(`/a/${name}`)) {
          swapped = true;
          fs.renameSync(`${dir}/a`, `${dir}/a-real`);
          fs.symlinkSync(outside, `${dir}/a`);
        }
        return nodePathIo.lstat(p);
      },
    };
  };

  void it("is refused on read (the descriptor's own path is checked), and nothing outside is read", async () => {
    const dir = scratch("race-mid-check");
    fs.mkdirSync(`${dir}/a`);
    fs.writeFileSync(`${dir}/a/notes.txt`, "harmless");
    fs.writeFileSync(`${outside}/notes.txt`, "OUTSIDE-SECRET");
    const io = swappingParent(dir, "notes.txt");
    const verdict = await checkPath(compiled, `${dir}/a/notes.txt`, "read", io);
    assert.equal(verdict.ok, true, "the check itself was fooled (that is the race)");
    if (!verdict.ok) return;
    await denied(openVerifiedForRead(verdict, '"a/notes.txt"'), "PATH_RACE");
  });

  void it("is refused on stat too: an outside file's size, times and mode are not told (file_info, listing sizes)", async () => {
    const dir = scratch("race-mid-stat");
    fs.mkdirSync(`${dir}/a`);
    fs.writeFileSync(`${dir}/a/info.txt`, "harmless");
    fs.writeFileSync(`${outside}/info.txt`, "x".repeat(31337), { mode: 0o644 });
    const io = swappingParent(dir, "info.txt");
    // The swap stays while stat looks: by path alone, it saw the outside file as the checked one.
    await denied(createGuardedFs(compiled, LIMITS, { io }).stat(`${dir}/a/info.txt`), "PATH_RACE");
    // Put back, the same file is told as it is.
    fs.rmSync(`${dir}/a`);
    fs.renameSync(`${dir}/a-real`, `${dir}/a`);
    const info = await gfs.stat(`${dir}/a/info.txt`);
    assert.deepEqual([info.kind, info.size], ["file", 8]);
    assert.equal((await gfs.stat(dir)).kind, "directory");
  });
});
