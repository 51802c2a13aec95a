import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { FilesystemPolicy } from "../../src/security/policy-types.js";
import { DEFAULT_WRITE_DENIED_PATHS } from "../../src/security/policy/defaults.js";
import {
  MAX_COMPONENT_BYTES,
  MAX_PATH_BYTES,
  PathPolicyError,
  checkPath,
  compilePathPolicy,
  decideRealPath,
  allowedEntriesOf,
  denyRuleProblems,
  allowedPathGlobProblem,
  denyRuleGlobProblem,
  isInside,
  nodePathIo,
  quote,
  sandboxRuleFor,
} from "../../src/security/path-guard.js";
import type { CompiledPathPolicy, PathIo, PathVerdict } from "../../src/security/path-guard.js";

const SEED_DENY = [
  "**/.ssh/**",
  "**/.aws/**",
  "**/.gnupg/**",
  "**/*.pem",
  "**/*.key",
  "**/.env",
  "**/.env.*",
  "**/secrets/**",
  "**/.git/config",
];

function policy(allowed: string[], denied: string[] = SEED_DENY, writeDenied: string[] = []): FilesystemPolicy {
  return { allowed_paths: allowed, denied_paths: denied, write_denied_paths: writeDenied, max_read_bytes: 1024, max_write_bytes: 1024 };
}

function assertRefused(verdict: PathVerdict, code: string): asserts verdict is Extract<PathVerdict, { ok: false }> {
  assert.equal(verdict.ok, false, `expected ${code}, got ${JSON.stringify(verdict, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))}`);
  assert.equal(verdict.code, code, verdict.reason);
}

function assertAllowed(verdict: PathVerdict, realPath: string): asserts verdict is Extract<PathVerdict, { ok: true }> {
  assert.equal(verdict.ok, true, verdict.ok ? "" : `${verdict.code}: ${verdict.reason}`);
  assert.equal(verdict.realPath, realPath);
}

// Layout (tmp is the real path of a fresh temp dir):
//   root/            allowed
//     a.txt  sub/b.txt  .git/HEAD  .git/config
//   root-evil/x.txt  outside/secret.txt  outside/dir/inner.txt
let tmp: string;
let root: string;
let outside: string;
let compiled: CompiledPathPolicy;

before(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "msl-")));
  root = path.join(tmp, "root");
  outside = path.join(tmp, "outside");
  fs.mkdirSync(path.join(root, "sub"), { recursive: true });
  fs.mkdirSync(path.join(root, ".git"));
  fs.writeFileSync(path.join(root, "a.txt"), "a");
  fs.writeFileSync(path.join(root, "sub", "b.txt"), "b");
  fs.writeFileSync(path.join(root, ".git", "HEAD"), "ref");
  fs.writeFileSync(path.join(root, ".git", "config"), "[core]");
  fs.mkdirSync(path.join(tmp, "root-evil"));
  fs.writeFileSync(path.join(tmp, "root-evil", "x.txt"), "evil");
  fs.mkdirSync(path.join(outside, "dir"), { recursive: true });
  fs.writeFileSync(path.join(outside, "secret.txt"), "secret");
  fs.writeFileSync(path.join(outside, "dir", "inner.txt"), "inner");
  compiled = compilePathPolicy(policy([`${root}/**`]), { baseDir: root, homeDir: root });
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A fresh scratch directory inside the allowed root for tests that plant links. */
function scratch(name: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir);
  return dir;
}

void describe("compilePathPolicy", () => {
  void it("resolves roots once and keeps the entry", () => {
    assert.equal(compiled.roots.length, 1);
    assert.equal(compiled.roots[0]?.realRoot, root);
    assert.equal(compiled.roots[0]?.entry, `${root}/**`);
    assert.deepEqual(compiled.warnings, []);
  });

  void it("refuses relative or negated allowed entries and negated or empty deny rules", () => {
    assert.throws(() => compilePathPolicy(policy(["projects/**"])), PathPolicyError);
    assert.throws(() => compilePathPolicy(policy([`!${root}/**`])), PathPolicyError);
    assert.throws(() => compilePathPolicy(policy([`${root}/**`], [`!**/.ssh`])), PathPolicyError);
    assert.throws(() => compilePathPolicy(policy([`${root}/**`], [""])), PathPolicyError);
    assert.throws(() => compilePathPolicy(policy([`${root}/a\0`])), /absolute path or glob/);
  });

  void it("reads `.` segments of a deny rule as nothing (./.env denied nothing before), and refuses `..` ones", () => {
    const c = compilePathPolicy(policy([`${root}/**`], ["./.env", "./secrets/**", `${root}/./keys/*.pem`, "notes/./private"]));
    for (const file of [".env", "app/.env", "secrets/a", "keys/k.pem", "x/notes/private"]) {
      assert.equal(sandboxRuleFor(c, path.join(root, file)), "denied", file);
    }
    assert.equal(sandboxRuleFor(c, path.join(root, "app/env")), undefined);
    for (const rule of ["../secrets/**", `${root}/a/../b`, "**/..", ".."]) {
      assert.throws(() => compilePathPolicy(policy([`${root}/**`], [rule])), /must not hold a "\.\." segment/, rule);
      assert.match(denyRuleGlobProblem(rule) ?? "", /must not hold a "\.\." segment/, rule);
    }
    assert.equal(denyRuleGlobProblem("./.env"), undefined);
    assert.equal(denyRuleGlobProblem("a..b/**"), undefined, "two dots inside a name are a name");
  });

  void it("review finding: reads empty segments of a deny rule as nothing too (**//.env and secrets//** denied nothing, .//.env only /.env), and refuses a rule that is only `.`", () => {
    const c = compilePathPolicy(policy([`${root}/**`], ["**//.env", "secrets//**", ".//id_rsa", `${root}//keys//*.pem`]));
    for (const file of [".env", "app/.env", "secrets/a", "x/secrets/b", "id_rsa", "home/.ssh/id_rsa", "keys/k.pem"]) {
      assert.equal(sandboxRuleFor(c, path.join(root, file)), "denied", file);
    }
    assert.equal(sandboxRuleFor(c, path.join(root, "app/env")), undefined);
    for (const rule of [".", "./", ".//", "./."]) {
      assert.throws(() => compilePathPolicy(policy([`${root}/**`], [rule])), /names no path/, rule);
      assert.match(denyRuleGlobProblem(rule) ?? "", /names no path/, rule);
    }
    assert.equal(denyRuleGlobProblem("//"), denyRuleGlobProblem("/"), "the root, however many slashes");
  });

  void it("refuses relative base and home directories", () => {
    assert.throws(() => compilePathPolicy(policy([]), { baseDir: "relative" }), /baseDir must be an absolute path/);
    assert.throws(() => compilePathPolicy(policy([]), { homeDir: "~" }), /homeDir must be an absolute path/);
  });

  void it("resolves a root that does not exist yet through its nearest existing parent", () => {
    const c = compilePathPolicy(policy([`${tmp}/not-yet/deeper/**`]));
    assert.equal(c.roots[0]?.realRoot, `${tmp}/not-yet/deeper`);
  });

  void it("drops (with a warning) a root that cannot be resolved, allowing nothing there", async () => {
    const c = compilePathPolicy(policy([`${tmp}/missing/../outside/**`]));
    assert.equal(c.roots.length, 0);
    assert.equal(c.warnings.length, 1);
    assert.match(c.warnings[0] ?? "", /was dropped/);
    assertRefused(await checkPath(c, `${outside}/secret.txt`, "read"), "PATH_OUTSIDE_ROOTS");
    const loop = path.join(tmp, "root-loop");
    fs.symlinkSync(loop, loop);
    const c2 = compilePathPolicy(policy([`${loop}/**`]));
    assert.equal(c2.roots.length, 0);
  });

  void it("accepts the filesystem root and plain directory entries", async () => {
    const everything = compilePathPolicy(policy(["/**"], []));
    assertAllowed(await checkPath(everything, "/", "read"), "/");
    assertAllowed(await checkPath(everything, `${root}/a.txt`, "read"), `${root}/a.txt`);
    assertAllowed(await checkPath(everything, "/no-such-top-level-dir-msl", "write"), "/no-such-top-level-dir-msl");
    const plain = compilePathPolicy(policy([`${root}/sub/`], []));
    assertAllowed(await checkPath(plain, `${root}/sub`, "read"), `${root}/sub`);
    assertRefused(await checkPath(plain, `${root}/a.txt`, "read"), "PATH_OUTSIDE_ROOTS");
  });

  void it("an empty allowlist allows nothing", async () => {
    const none = compilePathPolicy(policy([], []), { baseDir: root });
    const verdict = await checkPath(none, `${root}/a.txt`, "read");
    assertRefused(verdict, "PATH_OUTSIDE_ROOTS");
    assert.match(verdict.reason, /allows no directories/);
  });
});

void describe("input shape", () => {
  void it("refuses non-strings, empty strings and NUL bytes", async () => {
    for (const input of [42, null, undefined, ["a"], { path: "a" }, true]) {
      assertRefused(await checkPath(compiled, input, "read"), "PATH_INVALID");
    }
    assertRefused(await checkPath(compiled, "", "read"), "PATH_INVALID");
    const nul = await checkPath(compiled, `${root}/a.txt\0../../etc/passwd`, "read");
    assertRefused(nul, "PATH_INVALID");
    assert.match(nul.reason, /NUL byte/);
  });

  void it("refuses over-long paths and components, counting bytes not characters", async () => {
    assertRefused(await checkPath(compiled, `${root}/${"a/".repeat(MAX_PATH_BYTES / 2)}`, "read"), "PATH_INVALID");
    assertRefused(await checkPath(compiled, `${root}/${"a".repeat(MAX_COMPONENT_BYTES + 1)}`, "read"), "PATH_INVALID");
    // 128 two-byte characters: under 255 characters, over 255 bytes.
    assertRefused(await checkPath(compiled, `${root}/${"é".repeat(128)}`, "write"), "PATH_INVALID");
    // A relative input that only becomes too long once joined to the base directory.
    const nearLimit = "a/".repeat((MAX_PATH_BYTES - 2) / 2);
    assertRefused(await checkPath(compiled, nearLimit, "read"), "PATH_INVALID");
    assertAllowed(await checkPath(compiled, `${root}/${"a".repeat(MAX_COMPONENT_BYTES)}`, "write"), `${root}/${"a".repeat(MAX_COMPONENT_BYTES)}`);
  });

  void it("refuses file: URLs instead of decoding them", async () => {
    for (const input of [`file://${root}/a.txt`, `FILE:${root}/a.txt`, "file:///etc/passwd"]) {
      const verdict = await checkPath(compiled, input, "read");
      assertRefused(verdict, "PATH_INVALID");
      assert.match(verdict.reason, /plain filesystem path/);
    }
  });

  void it("treats percent-encoded forms as literal names that stay inside the root", async () => {
    assertAllowed(await checkPath(compiled, `${root}/%2e%2e/%2e%2e/outside/secret.txt`, "read"), `${root}/%2e%2e/%2e%2e/outside/secret.txt`);
    assertAllowed(await checkPath(compiled, "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "read"), `${root}/%2e%2e%2f%2e%2e%2fetc%2fpasswd`);
    assertAllowed(await checkPath(compiled, "%252e%252e/x", "write"), `${root}/%252e%252e/x`);
  });

  void it("treats full-width dots and slashes as ordinary characters", async () => {
    assertAllowed(await checkPath(compiled, `${root}/．．/．．/outside`, "read"), `${root}/．．/．．/outside`);
    assertAllowed(await checkPath(compiled, "．．／secret.txt", "write"), `${root}/．．／secret.txt`);
  });

  void it("quotes paths in messages, escaped and shortened", () => {
    assert.equal(quote('a"b\n'), '"a\\"b\\n"');
    assert.equal(quote("x".repeat(300)), JSON.stringify(`${"x".repeat(200)}…`));
  });
});

void describe("traversal with ..", () => {
  void it("refuses absolute, relative and mixed forms that leave the root", async () => {
    assertRefused(await checkPath(compiled, `${root}/../outside/secret.txt`, "read"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, `${root}/sub/../../outside/secret.txt`, "read"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, "../outside/secret.txt", "read"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, "sub/../../outside/secret.txt", "write"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, `${root}//./sub/.//../..//outside/`, "read"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, "../../../../../../../../etc/passwd", "read"), "PATH_OUTSIDE_ROOTS");
  });

  void it("allows .. that stays inside and reports the canonical path", async () => {
    assertAllowed(await checkPath(compiled, `${root}/sub/../a.txt`, "read"), `${root}/a.txt`);
    assertAllowed(await checkPath(compiled, "./sub/./b.txt", "read"), `${root}/sub/b.txt`);
    assertAllowed(await checkPath(compiled, `${root}/sub/`, "read"), `${root}/sub`);
  });

  void it("refuses .. after a directory that does not exist, and a write target ending in ..", async () => {
    assertRefused(await checkPath(compiled, `${root}/nope/../a.txt`, "read"), "PATH_INVALID");
    assertRefused(await checkPath(compiled, `${root}/nope/../new.txt`, "write"), "PATH_INVALID");
    assertRefused(await checkPath(compiled, `${root}/sub/..`, "write"), "PATH_INVALID");
  });
});

void describe("prefix confusion", () => {
  void it("does not treat /root-evil as inside /root", async () => {
    assertRefused(await checkPath(compiled, `${root}-evil/x.txt`, "read"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, `${root}-evil`, "read"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, `${root}.old/x`, "write"), "PATH_OUTSIDE_ROOTS");
  });

  void it("compares whole components", () => {
    assert.equal(isInside("/data", "/data"), true);
    assert.equal(isInside("/data", "/data/x"), true);
    assert.equal(isInside("/data", "/data-evil"), false);
    assert.equal(isInside("/data", "/dat"), false);
    assert.equal(isInside("/data/", "/data/x"), true);
    assert.equal(isInside("/", "/anything"), true);
  });
});

void describe("symbolic links", () => {
  let links: string;
  before(() => {
    links = scratch("links");
  });

  void it("refuses links to files and directories outside, absolute or relative", async () => {
    fs.symlinkSync(`${outside}/secret.txt`, `${links}/to-file`);
    fs.symlinkSync(outside, `${links}/to-dir`);
    fs.symlinkSync("../../outside/secret.txt", `${links}/relative`);
    assertRefused(await checkPath(compiled, `${links}/to-file`, "read"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, `${links}/to-dir/dir/inner.txt`, "read"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, `${links}/to-dir/new.txt`, "write"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, `${links}/to-dir/not/yet.txt`, "write"), "PATH_OUTSIDE_ROOTS");
    const verdict = await checkPath(compiled, `${links}/relative`, "read");
    assertRefused(verdict, "PATH_OUTSIDE_ROOTS");
    assert.match(verdict.reason, /through a symbolic link/);
    assert.doesNotMatch(verdict.reason, /outside\/secret/, "the link's target is not revealed");
  });

  void it("refuses chains that end outside and allows chains that end inside", async () => {
    fs.symlinkSync(`${outside}/secret.txt`, `${links}/chain3`);
    fs.symlinkSync(`${links}/chain3`, `${links}/chain2`);
    fs.symlinkSync("chain2", `${links}/chain1`);
    assertRefused(await checkPath(compiled, `${links}/chain1`, "read"), "PATH_OUTSIDE_ROOTS");
    fs.symlinkSync(`${root}/a.txt`, `${links}/ok2`);
    fs.symlinkSync("ok2", `${links}/ok1`);
    assertAllowed(await checkPath(compiled, `${links}/ok1`, "read"), `${root}/a.txt`);
  });

  void it("refuses loops cleanly", async () => {
    fs.symlinkSync(`${links}/loop-b`, `${links}/loop-a`);
    fs.symlinkSync(`${links}/loop-a`, `${links}/loop-b`);
    const verdict = await checkPath(compiled, `${links}/loop-a`, "read");
    assertRefused(verdict, "PATH_LOOP");
    assertRefused(await checkPath(compiled, `${links}/loop-a/x`, "write"), "PATH_LOOP");
  });

  void it("refuses a link that sits outside even when resolution fails there (no probing)", async () => {
    fs.symlinkSync(`${outside}/loop-y`, `${outside}/loop-x`);
    fs.symlinkSync(`${outside}/loop-x`, `${outside}/loop-y`);
    assertRefused(await checkPath(compiled, `${outside}/loop-x`, "read"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, `${outside}/secret.txt/x`, "read"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, `${root}/a.txt/x`, "read"), "PATH_NOT_DIRECTORY");
    assertRefused(await checkPath(compiled, `${root}/a.txt/x`, "write"), "PATH_NOT_DIRECTORY");
  });

  void it("refuses an escape through a symlinked parent of a file that does not exist yet", async () => {
    fs.symlinkSync(outside, `${links}/parent-out`);
    assertRefused(await checkPath(compiled, `${links}/parent-out/brand-new.txt`, "write"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, `${links}/parent-out/brand-new.txt`, "read"), "PATH_OUTSIDE_ROOTS");
  });

  void it("allows a symlinked parent that stays inside, reporting the real path", async () => {
    fs.symlinkSync(`${root}/sub`, `${links}/parent-in`);
    assertAllowed(await checkPath(compiled, `${links}/parent-in/new.txt`, "write"), `${root}/sub/new.txt`);
  });

  void it("refuses writes to a final symlink, dangling or not, and reads through dangling links", async () => {
    fs.symlinkSync(`${outside}/not-yet.txt`, `${links}/dangling-out`);
    fs.symlinkSync(`${root}/not-yet.txt`, `${links}/dangling-in`);
    fs.symlinkSync(`${root}/a.txt`, `${links}/to-inside`);
    fs.symlinkSync(`${root}/nowhere/dir`, `${links}/dangling-dir`);
    for (const name of ["dangling-out", "dangling-in", "to-inside"]) {
      const verdict = await checkPath(compiled, `${links}/${name}`, "write");
      assertRefused(verdict, "PATH_SYMLINK");
      assert.match(verdict.reason, /symbolic link/);
    }
    assertRefused(await checkPath(compiled, `${links}/dangling-in`, "read"), "PATH_DANGLING_SYMLINK");
    assertRefused(await checkPath(compiled, `${links}/dangling-dir/x.txt`, "write"), "PATH_DANGLING_SYMLINK");
    assertAllowed(await checkPath(compiled, `${links}/to-inside`, "read"), `${root}/a.txt`);
  });

  void it("judges deny rules on both the given and the real path", async () => {
    fs.mkdirSync(`${root}/secrets`);
    fs.writeFileSync(`${root}/secrets/token`, "t");
    fs.mkdirSync(`${root}/plain`);
    fs.symlinkSync(`${root}/secrets`, `${links}/innocent`);
    fs.symlinkSync(`${root}/plain`, `${links}/secrets`);
    assertRefused(await checkPath(compiled, `${links}/innocent/token`, "read"), "PATH_DENIED");
    assertRefused(await checkPath(compiled, `${links}/secrets/x`, "write"), "PATH_DENIED");
  });
});

void describe("deny rules", () => {
  void it("deny wins over allow and names the rule but nothing else", async () => {
    const verdict = await checkPath(compiled, `${root}/.ssh/id_rsa`, "read");
    assertRefused(verdict, "PATH_DENIED");
    assert.equal(verdict.reason, `path ${JSON.stringify(`${root}/.ssh/id_rsa`)} is denied by the filesystem policy (rule **/.ssh/**)`);
  });

  void it("matches case variants", async () => {
    for (const p of [".SSH/id", ".Ssh", ".ENV", ".Env.Local", "Secrets", "SECRETS/x", "cert.PEM", "deep/a/b/server.Key", ".GIT/CONFIG"]) {
      assertRefused(await checkPath(compiled, `${root}/${p}`, "write"), "PATH_DENIED");
    }
  });

  void it("review finding: matches the letters Unicode folds onto ASCII ones (long s, Kelvin sign), as a case-insensitive file system does", async () => {
    // A regex's own case-insensitivity left these apart; macOS and ext4 casefold open `.ſſh` as `.ssh`.
    for (const p of [".ſſh/id_rsa", ".\u017Fsh", "ſecrets/x", "server.\u212Aey"]) {
      assertRefused(await checkPath(compiled, `${root}/${p}`, "read"), "PATH_DENIED");
    }
    const kube = compilePathPolicy(policy([`${root}/**`], ["**/.kube/**", "**/Straße/**"]));
    for (const p of [".\u212Aube/config", "STRAßE/x", "straße/x"]) assertRefused(await checkPath(kube, `${root}/${p}`, "read"), "PATH_DENIED");
    assertAllowed(await checkPath(kube, `${root}/strase/x`, "read"), `${root}/strase/x`);
  });

  void it("review finding: matches names as a full-folding file system does (ext4 casefold: ß is ss, ﬁ is fi, ẞ too)", async () => {
    for (const p of [".ßh/id_rsa", ".\u1E9Eh/id_rsa", "SECRETS/x".replace("S", "\u017F"), ".git/conﬁg", "x/.ENV.ﬁle"]) {
      assertRefused(await checkPath(compiled, `${root}/${p}`, "read"), "PATH_DENIED");
    }
    // Every reading is tried for a path past ASCII: a rule Unicode mode refuses (an escaped "-"),
    // and a negated class (which Unicode mode would no longer let match `ſ`), still deny.
    const c = compilePathPolicy(policy([`${root}/**`], ["**/.ssh\\-backup/**", "**/*[^\\x00-\\x7f]*.key"]));
    for (const p of [".ſſh-backup/id_rsa", ".ssh-backup/id_rsa", "ſ.key", "é.key"]) assertRefused(await checkPath(c, `${root}/${p}`, "read"), "PATH_DENIED");
    assertAllowed(await checkPath(c, `${root}/plain.key`, "read"), `${root}/plain.key`);
    // Listings decide entries the same way.
    fs.mkdirSync(path.join(root, "fold-list"), { recursive: true });
    const allowed = allowedEntriesOf(compiled, path.join(root, "fold-list"));
    assert.deepEqual([".ßh", ".ſſh", ".ssh", "notes"].map(allowed), [false, false, false, true]);
  });

  void it("review finding: glob syntax keeps its meaning under Unicode matching (?, classes, ranges, escapes)", async () => {
    const rules = ["**/secret-?.txt", "**/[A-z]", "**/\\S*.key", "**/x\\-y", "**/[ßx]z"];
    const c = compilePathPolicy(policy([`${root}/**`], rules));
    assert.deepEqual(denyRuleProblems(c), [], "every rule compiles (x\\-y without Unicode mode, as before)");
    // `?` is one character, a whole astral one included; a range keeps its punctuation; \S stays "not a space".
    for (const p of ["secret-ß.txt", "secret-😀.txt", "_", "`", "a.key", "x-y", "ßz"]) assertRefused(await checkPath(c, `${root}/${p}`, "read"), "PATH_DENIED");
    for (const p of ["secret-ab.txt", " .key", "sz", "ssz"]) assertAllowed(await checkPath(c, `${root}/${p}`, "read"), `${root}/${p}`);
  });

  void it("denies the directory a /** rule names, and everything beneath anything it matches", async () => {
    assertRefused(await checkPath(compiled, `${root}/.ssh`, "read"), "PATH_DENIED");
    assertRefused(await checkPath(compiled, `${root}/secrets`, "read"), "PATH_DENIED");
    assertRefused(await checkPath(compiled, `${root}/x/.env/inner`, "read"), "PATH_DENIED");
    assertRefused(await checkPath(compiled, `${root}/.git/config`, "read"), "PATH_DENIED");
    assertAllowed(await checkPath(compiled, `${root}/.git/HEAD`, "read"), `${root}/.git/HEAD`);
    assertAllowed(await checkPath(compiled, `${root}/secretsauce.txt`, "write"), `${root}/secretsauce.txt`);
    assertAllowed(await checkPath(compiled, `${root}/environment.env`, "write"), `${root}/environment.env`);
  });

  void it("applies literal absolute rules", async () => {
    const c = compilePathPolicy(policy([`${root}/**`], [`${root}/sub/b.txt`]));
    assertRefused(await checkPath(c, `${root}/sub/b.txt`, "read"), "PATH_DENIED");
    assertRefused(await checkPath(c, `${root}/SUB/B.TXT`, "write"), "PATH_DENIED");
    assertAllowed(await checkPath(c, `${root}/sub`, "read"), `${root}/sub`);
  });

  void it("reads relative rules as matching anywhere", async () => {
    const c = compilePathPolicy(policy([`${root}/**`], ["*.key", "private/**"]));
    assertRefused(await checkPath(c, `${root}/a/b/c.KEY`, "read"), "PATH_DENIED");
    assertRefused(await checkPath(c, `${root}/private`, "read"), "PATH_DENIED");
    assertAllowed(await checkPath(c, `${root}/a.txt`, "read"), `${root}/a.txt`);
  });

  void it("catches an absolute rule through the real spelling of a symlinked directory", async () => {
    const alias = path.join(tmp, "alias-of-root");
    fs.symlinkSync(root, alias);
    const c = compilePathPolicy(policy([`${root}/**`], [`${alias}/sub/**`]));
    assertRefused(await checkPath(c, `${root}/sub/b.txt`, "read"), "PATH_DENIED");
    assertRefused(await checkPath(c, `${alias}/sub/b.txt`, "read"), "PATH_DENIED");
    assertAllowed(await checkPath(c, `${root}/a.txt`, "read"), `${root}/a.txt`);
  });

  void it("matches NFC and NFD spellings alike", async () => {
    const nfc = "caf\u00e9";
    const nfd = "cafe\u0301";
    const c = compilePathPolicy(policy([`${root}/**`], [`**/${nfc}/**`, `**/${nfd}-notes`]));
    assertRefused(await checkPath(c, `${root}/${nfd}/menu.txt`, "write"), "PATH_DENIED");
    assertRefused(await checkPath(c, `${root}/${nfc}/menu.txt`, "write"), "PATH_DENIED");
    assertRefused(await checkPath(c, `${root}/${nfc}-notes`, "write"), "PATH_DENIED");
    // Not denied: an NFD name inside the root is just a name.
    assertAllowed(await checkPath(compiled, `${root}/${nfd}.txt`, "write"), `${root}/${nfd}.txt`);
  });

  void it("still match when a component holds a line break (picomatch's ** is written with '.')", async () => {
    // Linux names may hold any byte but "/" and NUL: a line break before the denied part,
    // or at the start of a denied name, must not take a path out of a rule.
    const parent = path.join(root, "line\nbreak");
    fs.mkdirSync(path.join(parent, "secrets"), { recursive: true });
    fs.writeFileSync(path.join(parent, "secrets", "key.txt"), "do not read");
    assertRefused(await checkPath(compiled, path.join(parent, "secrets"), "read"), "PATH_DENIED");
    assertRefused(await checkPath(compiled, path.join(parent, "secrets", "key.txt"), "read"), "PATH_DENIED");
    for (const p of ["a\nb/.ssh/id_rsa", "a\rb/.env", "a\u2028b/.git/config", "a\u2029b/x/.aws/credentials", "\nid.pem", "d/\r.key"]) {
      assertRefused(await checkPath(compiled, `${root}/${p}`, "write"), "PATH_DENIED");
    }
    assert.equal(decideRealPath(compiled, path.join(parent, "secrets", "key.txt")).ok, false);
    assertAllowed(await checkPath(compiled, path.join(parent, "plain.txt"), "write"), path.join(parent, "plain.txt"));
  });

  void it("an allowed glob also matches names holding a line break", async () => {
    fs.mkdirSync(`${root}/lb/one\ntwo/public`, { recursive: true });
    const c = compilePathPolicy(policy([`${root}/lb/*/public/**`], []));
    assertAllowed(await checkPath(c, `${root}/lb/one\ntwo/public/x\ny.txt`, "write"), `${root}/lb/one\ntwo/public/x\ny.txt`);
  });

  void it("a rule that is not a valid glob refuses every path (it would otherwise deny nothing)", async () => {
    const c = compilePathPolicy(policy([`${root}/**`], ["**/{secrets,private", "**/*.pem"]));
    const verdict = await checkPath(c, `${root}/secrets/key.txt`, "read");
    assertRefused(verdict, "PATH_DENIED");
    assert.match(verdict.reason, /filesystem\.denied_paths entry "\*\*\/\{secrets,private" is not a valid glob .*refuses every path/);
    assertRefused(await checkPath(c, `${root}/a.txt`, "read"), "PATH_DENIED");
    assert.equal(decideRealPath(c, `${root}/a.txt`).ok, false);
    const everything = compilePathPolicy(policy(["/**"], ["/x/[z-a]"]));
    assertRefused(await checkPath(everything, "/", "read"), "PATH_DENIED");
    assert.deepEqual(denyRuleProblems(c).length, 1);
    assert.deepEqual(denyRuleProblems(compiled), []);
  });

  void it("an allowed entry that is not a valid glob is refused when the policy is compiled", () => {
    assert.throws(() => compilePathPolicy(policy([`${root}/g/[z-a]/**`], [])), (error: unknown) => {
      assert.ok(error instanceof PathPolicyError);
      assert.match(error.message, /filesystem\.allowed_paths entry .* is not a valid glob/);
      return true;
    });
  });

  void it("every allowed entry that is not a valid glob is named in one refusal, not only the first", () => {
    assert.throws(() => compilePathPolicy(policy([`${root}/g/[z-a]/**`, `${root}/**`, `${root}/h/{a,b`], [])), (error: unknown) => {
      assert.ok(error instanceof PathPolicyError);
      const lines = error.message.split("\n");
      assert.equal(lines.length, 2, error.message);
      assert.match(lines[0]!, /^filesystem\.allowed_paths entry ".*\/g\/\[z-a\]\/\*\*" is not a valid glob/);
      assert.match(lines[1]!, /^filesystem\.allowed_paths entry ".*\/h\/\{a,b" is not a valid glob/);
      return true;
    });
  });

  void it("checks one entry's glob as the compile does, without the disk", () => {
    assert.match(allowedPathGlobProblem("/nowhere/g/[z-a]/**") ?? "", /^is not a valid glob \(/);
    assert.equal(allowedPathGlobProblem("/nowhere/**"), undefined);
    assert.equal(allowedPathGlobProblem("/nowhere/*.txt"), undefined);
    assert.match(denyRuleGlobProblem("**/{secrets,private") ?? "", /^is not a valid glob \(/);
    assert.match(denyRuleGlobProblem("secrets/[z-a]") ?? "", /^is not a valid glob \(/);
    assert.equal(denyRuleGlobProblem("/x/**/.ssh/"), undefined);
    assert.equal(denyRuleGlobProblem("!**/x"), "must not be negated");
  });

  void it("exposes the pure decision for real paths", () => {
    assert.deepEqual(decideRealPath(compiled, `${root}/a.txt`), { ok: true });
    assert.deepEqual(decideRealPath(compiled, `${root}/.aws/credentials`), { ok: false, code: "PATH_DENIED", rule: "**/.aws/**" });
    assert.deepEqual(decideRealPath(compiled, `${outside}/x`), { ok: false, code: "PATH_OUTSIDE_ROOTS" });
  });
});

void describe("write-only deny rules (filesystem.write_denied_paths)", () => {
  const WRITE_DENY = ["**/.git/**", "**/.vscode/**", "**/.bashrc", "**/.claude/**"];

  void it("refuse writes and leave reads alone, naming the rule and why", async () => {
    const c = compilePathPolicy(policy([`${root}/**`], [], WRITE_DENY), { baseDir: root });
    assertAllowed(await checkPath(c, `${root}/.git/HEAD`, "read"), `${root}/.git/HEAD`);
    const hook = await checkPath(c, `${root}/.git/hooks/pre-commit`, "write");
    assertRefused(hook, "PATH_DENIED");
    assert.match(hook.reason, /may be read but not written \(filesystem\.write_denied_paths rule \*\*\/\.git\/\*\*\): .*git hooks/);
    for (const target of [`${root}/.git`, `${root}/.vscode/tasks.json`, `${root}/sub/.bashrc`, ".claude/settings.local.json", `${root}/.VSCode/Tasks.json`]) {
      assertRefused(await checkPath(c, target, "write"), "PATH_DENIED");
    }
    assertAllowed(await checkPath(c, `${root}/sub/new.txt`, "write"), `${root}/sub/new.txt`);
    assertAllowed(await checkPath(c, `${root}/.bashrc.md`, "write"), `${root}/.bashrc.md`);
  });

  void it("review finding: outside every allowed directory a write-denied name is refused as outside, not as 'may be read'", async () => {
    const c = compilePathPolicy(policy([`${root}/**`], [], WRITE_DENY), { baseDir: root });
    const elsewhere = path.join(outside, ".bashrc");
    const write = await checkPath(c, elsewhere, "write");
    assertRefused(write, "PATH_OUTSIDE_ROOTS");
    assert.doesNotMatch(write.reason, /may be read/);
    assertRefused(await checkPath(c, elsewhere, "read"), "PATH_OUTSIDE_ROOTS");
  });

  void it("are judged on the real path: a symlinked directory that leads into .git is caught", async () => {
    const dir = scratch("wd-link");
    fs.symlinkSync(path.join(root, ".git"), path.join(dir, "innocent"));
    const c = compilePathPolicy(policy([`${root}/**`], [], WRITE_DENY));
    assertRefused(await checkPath(c, `${dir}/innocent/hooks/post-checkout`, "write"), "PATH_DENIED");
    assertAllowed(await checkPath(c, `${dir}/innocent/HEAD`, "read"), `${root}/.git/HEAD`);
  });

  void it("the built-in list covers the start-up files and MCP client configurations a home directory holds", async () => {
    const c = compilePathPolicy(policy([`${root}/**`], [], [...DEFAULT_WRITE_DENIED_PATHS]), { baseDir: root });
    // .bash_aliases is sourced by Debian's and Ubuntu's stock .bashrc; ~/.claude.json lists Claude Code's MCP servers.
    for (const name of [".bashrc", ".bash_aliases", ".zlogout", ".mcp.json", ".claude.json", ".claude/settings.json", ".git/hooks/pre-push"]) {
      assertRefused(await checkPath(c, `${root}/${name}`, "write"), "PATH_DENIED");
    }
    assertAllowed(await checkPath(c, `${root}/claude.json`, "write"), `${root}/claude.json`);
    // Review finding: MCP client and agent configurations, editor and session start-up files, Python
    // .pth files and hook managers were writable under a policy allowing the whole home.
    for (const name of [
      ".config/Claude/claude_desktop_config.json",
      "Library/Application Support/Claude/claude_desktop_config.json",
      ".config/Code/User/mcp.json",
      ".config/Code/User/settings.json",
      ".codex/config.toml",
      ".gemini/settings.json",
      ".codeium/windsurf/mcp_config.json",
      ".config/zed/settings.json",
      ".vimrc",
      ".config/nvim/init.lua",
      ".tmux.conf",
      ".bashrc.d/evil.sh",
      ".xprofile",
      ".pam_environment",
      ".local/lib/python3.12/site-packages/evil.pth",
      "proj/.hg/hgrc",
      "proj/.pre-commit-config.yaml",
      "proj/lefthook.yml",
    ]) {
      assertRefused(await checkPath(c, `${root}/${name}`, "write"), "PATH_DENIED");
      assert.ok((await checkPath(c, `${root}/${name}`, "read")).ok, `${name} stays readable`);
    }
    for (const name of [".local/lib/python3.12/site-packages/module.py", ".config/Code/logs/x.log", "proj/hgrc"]) {
      assertAllowed(await checkPath(c, `${root}/${name}`, "write"), `${root}/${name}`);
    }
  });

  void it("a write rule that is not a valid glob refuses every write, and check-policy hears of it", async () => {
    const c = compilePathPolicy(policy([`${root}/**`], [], ["**/{hooks,tasks"]));
    const verdict = await checkPath(c, `${root}/a.txt`, "write");
    assertRefused(verdict, "PATH_DENIED");
    assert.match(verdict.reason, /filesystem\.write_denied_paths entry "\*\*\/\{hooks,tasks" is not a valid glob .*refuses every write/);
    assertAllowed(await checkPath(c, `${root}/a.txt`, "read"), `${root}/a.txt`);
    assert.equal(denyRuleProblems(c).length, 1);
    assert.throws(() => compilePathPolicy(policy([`${root}/**`], [], ["!**/.git/**"])), /filesystem\.write_denied_paths entry .* must not be negated/);
  });
});

void describe("allowed globs", () => {
  void it("an entry with glob characters beyond its prefix must match", async () => {
    fs.mkdirSync(`${root}/g/one/public`, { recursive: true });
    fs.mkdirSync(`${root}/g/one/private`, { recursive: true });
    const c = compilePathPolicy(policy([`${root}/g/*/public/**`, `${root}/docs/*.md`], []));
    assertAllowed(await checkPath(c, `${root}/g/one/public/x.txt`, "write"), `${root}/g/one/public/x.txt`);
    assertAllowed(await checkPath(c, `${root}/g/one/public`, "read"), `${root}/g/one/public`);
    assertRefused(await checkPath(c, `${root}/g/one/private/x.txt`, "write"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(c, `${root}/g`, "read"), "PATH_OUTSIDE_ROOTS");
    assertAllowed(await checkPath(c, `${root}/docs/readme.md`, "write"), `${root}/docs/readme.md`);
    assertRefused(await checkPath(c, `${root}/docs/readme.txt`, "write"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(c, `${root}/docs/a/readme.md`, "write"), "PATH_OUTSIDE_ROOTS");
  });

  void it("an allowed root that is itself a symlink is resolved once and still works", async () => {
    const linkRoot = path.join(tmp, "link-root");
    fs.symlinkSync(root, linkRoot);
    const c = compilePathPolicy(policy([`${linkRoot}/**`]));
    assert.equal(c.roots[0]?.realRoot, root);
    assertAllowed(await checkPath(c, `${linkRoot}/a.txt`, "read"), `${root}/a.txt`);
    assertAllowed(await checkPath(c, `${root}/a.txt`, "read"), `${root}/a.txt`);
    assertAllowed(await checkPath(c, `${linkRoot}/new.txt`, "write"), `${root}/new.txt`);
    assertRefused(await checkPath(c, `${linkRoot}/../outside/secret.txt`, "read"), "PATH_OUTSIDE_ROOTS");
  });

  void it("a root that does not exist yet accepts paths beneath it", async () => {
    const c = compilePathPolicy(policy([`${tmp}/later/**`]));
    const verdict = await checkPath(c, `${tmp}/later/x.txt`, "write");
    assertAllowed(verdict, `${tmp}/later/x.txt`);
    assert.equal(verdict.exists, false);
    assert.equal(verdict.parent, undefined);
  });
});

void describe("home and relative forms", () => {
  void it("expands ~ and ~/x to the configured home only", async () => {
    assertAllowed(await checkPath(compiled, "~", "read"), root);
    assertAllowed(await checkPath(compiled, "~/a.txt", "read"), `${root}/a.txt`);
    assertRefused(await checkPath(compiled, "~/.ssh/id_rsa", "read"), "PATH_DENIED");
    const noHome = compilePathPolicy(policy([`${root}/**`]), { baseDir: root });
    assertRefused(await checkPath(noHome, "~/a.txt", "read"), "PATH_INVALID");
    const outsideHome = compilePathPolicy(policy([`${root}/**`]), { homeDir: outside });
    assertRefused(await checkPath(outsideHome, "~/secret.txt", "read"), "PATH_OUTSIDE_ROOTS");
  });

  void it("refuses ~user forms", async () => {
    const verdict = await checkPath(compiled, "~root/.bashrc", "read");
    assertRefused(verdict, "PATH_INVALID");
    assert.match(verdict.reason, /~user/);
  });

  void it("keeps $HOME and ${HOME} literal", async () => {
    assertAllowed(await checkPath(compiled, "$HOME/.bashrc", "write"), `${root}/$HOME/.bashrc`);
    assertAllowed(await checkPath(compiled, "${HOME}/x", "write"), `${root}/\${HOME}/x`);
    assertAllowed(await checkPath(compiled, `${root}/$HOME`, "read"), `${root}/$HOME`);
  });

  void it("resolves relative paths against the base directory, never the process cwd", async () => {
    assertAllowed(await checkPath(compiled, "a.txt", "read"), `${root}/a.txt`);
    assertAllowed(await checkPath(compiled, "sub/b.txt", "read"), `${root}/sub/b.txt`);
    const noBase = compilePathPolicy(policy([`${root}/**`]));
    const verdict = await checkPath(noBase, "a.txt", "read");
    assertRefused(verdict, "PATH_INVALID");
    assert.match(verdict.reason, /relative/);
    const outsideBase = compilePathPolicy(policy([`${root}/**`]), { baseDir: outside });
    assertRefused(await checkPath(outsideBase, "secret.txt", "read"), "PATH_OUTSIDE_ROOTS");
  });
});

void describe("special places", () => {
  void it("refuses /proc paths, even ones that lead back into the root", async () => {
    const verdict = await checkPath(compiled, `/proc/self/root${root}/a.txt`, "read");
    assertRefused(verdict, "PATH_OUTSIDE_ROOTS");
    assert.match(verdict.reason, /\/proc/);
    assertRefused(await checkPath(compiled, "/proc/self/fd/0", "read"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, "/proc/self/environ", "read"), "PATH_OUTSIDE_ROOTS");
  });

  void it("judges a link into /proc by where it really leads", async () => {
    const dir = scratch("proc-links");
    fs.symlinkSync("/proc/self/root/etc/passwd", `${dir}/passwd`);
    fs.symlinkSync(`/proc/self/root${root}/a.txt`, `${dir}/same-file`);
    assertRefused(await checkPath(compiled, `${dir}/passwd`, "read"), "PATH_OUTSIDE_ROOTS");
    // The real path is the file inside the root; callers open that, never the /proc spelling.
    assertAllowed(await checkPath(compiled, `${dir}/same-file`, "read"), `${root}/a.txt`);
    // Even when every directory is allowed, a link whose real path is under /proc is refused.
    fs.symlinkSync("/proc/self/environ", `${dir}/environ`);
    const everything = compilePathPolicy(policy(["/**"], []));
    assertRefused(await checkPath(everything, `${dir}/environ`, "read"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(everything, "/proc/self/environ", "read"), "PATH_OUTSIDE_ROOTS");
  });

  void it("refuses device files outside and links to them", async () => {
    const dir = scratch("dev-links");
    fs.symlinkSync("/dev/zero", `${dir}/zero`);
    assertRefused(await checkPath(compiled, "/dev/zero", "read"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, "/dev/null", "write"), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, `${dir}/zero`, "read"), "PATH_OUTSIDE_ROOTS");
  });
});

void describe("verdict contents", () => {
  void it("carries identity for existing paths and the parent for writes", async () => {
    const read = await checkPath(compiled, `${root}/a.txt`, "read");
    assertAllowed(read, `${root}/a.txt`);
    const st = fs.statSync(`${root}/a.txt`, { bigint: true });
    assert.deepEqual(read.identity, { dev: st.dev, ino: st.ino });
    assert.equal(read.exists, true);
    assert.equal(read.isDirectory, false);
    assert.equal(read.parent, undefined);

    const write = await checkPath(compiled, `${root}/sub/new.txt`, "write");
    assertAllowed(write, `${root}/sub/new.txt`);
    assert.equal(write.exists, false);
    const parent = fs.statSync(`${root}/sub`, { bigint: true });
    assert.deepEqual(write.parent, { path: `${root}/sub`, identity: { dev: parent.dev, ino: parent.ino } });

    const dir = await checkPath(compiled, `${root}/sub`, "write");
    assertAllowed(dir, `${root}/sub`);
    assert.equal(dir.isDirectory, true);

    const missingParent = await checkPath(compiled, `${root}/nope/deeper/new.txt`, "write");
    assertAllowed(missingParent, `${root}/nope/deeper/new.txt`);
    assert.equal(missingParent.parent, undefined);
  });
});

void describe("resolution failures through injected io", () => {
  function failing(stage: "realpath" | "lstat", code: string, when: (p: string) => boolean = () => true): PathIo {
    const error = Object.assign(new Error(code), { code });
    return {
      realpath: (p) => (stage === "realpath" && when(p) ? Promise.reject(error) : nodePathIo.realpath(p)),
      lstat: (p) => (stage === "lstat" && when(p) ? Promise.reject(error) : nodePathIo.lstat(p)),
    };
  }

  void it("maps permission and unknown errors inside the root, and says outside for outside paths", async () => {
    assertRefused(await checkPath(compiled, `${root}/a.txt`, "read", failing("realpath", "EACCES")), "PATH_PERMISSION");
    assertRefused(await checkPath(compiled, `${root}/a.txt`, "read", failing("realpath", "EPERM")), "PATH_PERMISSION");
    assertRefused(await checkPath(compiled, `${root}/a.txt`, "read", failing("realpath", "EIO")), "PATH_UNRESOLVABLE");
    assertRefused(await checkPath(compiled, `${root}/a.txt`, "read", failing("realpath", "ENAMETOOLONG")), "PATH_INVALID");
    assertRefused(await checkPath(compiled, `${root}/a.txt`, "read", { ...nodePathIo, realpath: () => Promise.reject(new Error("odd")) }), "PATH_UNRESOLVABLE");
    assertRefused(await checkPath(compiled, `${outside}/secret.txt`, "read", failing("realpath", "EACCES")), "PATH_OUTSIDE_ROOTS");
    assertRefused(await checkPath(compiled, `${root}/a.txt`, "read", failing("lstat", "EACCES")), "PATH_PERMISSION");
    assertRefused(await checkPath(compiled, `${root}/new.txt`, "read", failing("lstat", "EIO")), "PATH_UNRESOLVABLE");
    assertRefused(await checkPath(compiled, `${root}/a.txt`, "write", failing("lstat", "EACCES", (p) => p.endsWith("a.txt"))), "PATH_PERMISSION");
  });

  void it("reports a path that changes between realpath and lstat as a race", async () => {
    const vanished = failing("lstat", "ENOENT", (p) => p.endsWith("a.txt"));
    assertRefused(await checkPath(compiled, `${root}/a.txt`, "read", vanished), "PATH_RACE");
    const becameLink: PathIo = {
      realpath: (p) => nodePathIo.realpath(p),
      lstat: async (p) => {
        const st = await nodePathIo.lstat(p);
        return p.endsWith("a.txt") ? { dev: st.dev, ino: st.ino, isSymbolicLink: () => true, isDirectory: () => false } : st;
      },
    };
    const verdict = await checkPath(compiled, `${root}/a.txt`, "read", becameLink);
    assertRefused(verdict, "PATH_RACE");
    assert.match(verdict.reason, /changed while/);
  });
});

void describe("allowedEntriesOf (a listing's filter)", () => {
  void it("decides every entry of an allowed directory as decideRealPath does", () => {
    const state = path.join(root, "state");
    const policies = [
      compiled,
      compilePathPolicy(policy([`${root}/**`], [...SEED_DENY, `${root}/sub/b*`, "**/caf\u00e9/**"])),
      compilePathPolicy(policy([`${root}/*.md`, `${root}/sub/**`, `${root}/notes/**/*.txt`], SEED_DENY)),
      compilePathPolicy(policy(["/**"], ["/etc/**"]), {
        protectedPaths: [
          { dir: state, names: (name) => name === "audit", what: "the server's state" },
          { dir: root, names: (name) => name === "policy.yaml", what: "the policy file" },
        ],
      }),
    ];
    fs.mkdirSync(path.join(root, "cafe\u0301"), { recursive: true });
    fs.mkdirSync(path.join(root, "notes", "old.txt"), { recursive: true });
    policies.push(
      compilePathPolicy(policy([`${root}/**`], ["**/caf\u00e9/x", "**/caf\u00e9/secrets"])),
      compilePathPolicy(policy([`${root}/notes/**/*.txt`, `${root}/notes/**/*.md`], [])),
    );
    const names = ["etc", "x", "a.md", "a.txt", "b.txt", "b", ".ssh", ".env", ".env.local", "id.pem", "x.key", "secrets", "config", "policy.yaml",
      "POLICY.yaml", "audit", "state", "cafe\u0301", "caf\u00e9", "notes", "deep", "sub"];
    const dirs = [
      "/",
      "/etc",
      tmp,
      root,
      path.join(root, "sub"),
      path.join(root, ".git"),
      path.join(root, "notes"),
      path.join(root, "notes", "x"),
      path.join(root, "notes", "old.txt"),
      path.join(root, "cafe\u0301"),
      state,
    ];
    let compared = 0;
    let refused = 0;
    for (const c of policies) {
      for (const dir of dirs) {
        const allowedHere = allowedEntriesOf(c, dir);
        if (!decideRealPath(c, dir).ok) {
          // Entries of a directory that is not allowed are all refused, whatever a rule says of their own path.
          assert.ok(names.every((name) => !allowedHere(name)), dir);
          continue;
        }
        for (const name of names) {
          const child = dir === "/" ? `/${name}` : `${dir}/${name}`;
          const expected = decideRealPath(c, child).ok;
          assert.equal(allowedHere(name), expected, `${child}`);
          compared++;
          if (!expected) refused++;
        }
      }
    }
    assert.ok(compared > 100 && refused > 20 && refused < compared - 20, `both answers were compared (${compared} entries, ${refused} refused)`);
  });
});

void describe("the server's own files (protectedPaths)", () => {
  // root/state/{audit,keys,workspace}, root/logs/audit.log (+ segment, lock), root/policy.yaml
  let own: CompiledPathPolicy;
  let state: string;
  before(() => {
    state = path.join(root, "state");
    for (const dir of ["audit", "keys", "workspace"]) fs.mkdirSync(path.join(state, dir), { recursive: true });
    fs.writeFileSync(path.join(state, "audit", "audit.log"), "{}\n");
    fs.writeFileSync(path.join(state, "keys", "k.pem"), "key");
    fs.writeFileSync(path.join(state, "workspace", "notes.txt"), "n");
    fs.mkdirSync(path.join(root, "logs"));
    for (const name of ["audit.log", "audit-20261205T120000Z-000000000042.log", "audit.log.lock", "other.log"]) {
      fs.writeFileSync(path.join(root, "logs", name), "x");
    }
    fs.writeFileSync(path.join(root, "policy.yaml"), "version: 1");
    own = compilePathPolicy(policy([`${root}/**`]), {
      baseDir: root,
      protectedPaths: [
        { dir: state, names: (name) => name === "audit" || name === "keys", what: "the server's state" },
        { dir: path.join(root, "logs"), names: (name) => name.startsWith("audit"), what: "the audit log" },
        { dir: root, names: (name) => name === "policy.yaml", what: "the policy file this server runs on" },
      ],
    });
  });

  void it("refuses reads and writes of them and of everything under them, naming what they are", async () => {
    for (const access of ["read", "write"] as const) {
      for (const [p, what] of [
        [path.join(state, "audit", "audit.log"), /the server's state/],
        [path.join(state, "keys"), /the server's state/],
        [path.join(state, "keys", "new.pem"), /the server's state/],
        [path.join(root, "logs", "audit-20261205T120000Z-000000000042.log"), /the audit log/],
        [path.join(root, "logs", "audit.log.lock"), /the audit log/],
        [path.join(root, "policy.yaml"), /the policy file/],
      ] as const) {
        const verdict = await checkPath(own, p, access);
        assertRefused(verdict, "PATH_DENIED");
        assert.match(verdict.reason, what);
        assert.match(verdict.reason, /whatever filesystem\.allowed_paths allows/);
      }
    }
  });

  void it("catches them through .., a relative path and a symbolic link", async () => {
    assertRefused(await checkPath(own, `${state}/workspace/../audit/audit.log`, "write"), "PATH_DENIED");
    assertRefused(await checkPath(own, "state/keys/k.pem", "read"), "PATH_DENIED");
    const links = scratch("own-links");
    fs.symlinkSync(path.join(state, "keys"), path.join(links, "k"));
    fs.symlinkSync(path.join(root, "policy.yaml"), path.join(links, "p.yaml"));
    assertRefused(await checkPath(own, path.join(links, "k", "k.pem"), "read"), "PATH_DENIED");
    assertRefused(await checkPath(own, path.join(links, "p.yaml"), "read"), "PATH_DENIED");
  });

  void it("leaves their neighbours alone, and hides them from listings", async () => {
    assertAllowed(await checkPath(own, path.join(state, "workspace", "notes.txt"), "write"), path.join(state, "workspace", "notes.txt"));
    assertAllowed(await checkPath(own, state, "read"), state);
    assertAllowed(await checkPath(own, path.join(root, "logs", "other.log"), "read"), path.join(root, "logs", "other.log"));
    assertAllowed(await checkPath(own, path.join(root, "a.txt"), "read"), path.join(root, "a.txt"));
    assert.deepEqual(decideRealPath(own, path.join(state, "audit")), { ok: false, code: "PATH_PROTECTED", what: "the server's state" });
    assert.deepEqual(decideRealPath(own, path.join(state, "workspace")), { ok: true });
  });

  void it("matches them whatever their letter case or Unicode normalization (a case-insensitive file system opens them so)", async () => {
    for (const [p, access] of [
      [path.join(state, "AUDIT", "audit.log"), "read"],
      [path.join(state, "Keys", "k.pem"), "read"],
      [path.join(state, "keys", "NEW.pem"), "write"],
      [path.join(root, "POLICY.YAML"), "write"],
      [path.join(root, "Policy.yaml"), "read"],
      [path.join(root, "logs", "AUDIT.LOG.LOCK"), "write"],
      [path.join(root, "LOGS", "audit.log"), "read"],
    ] as const) {
      const verdict = await checkPath(own, p, access);
      assertRefused(verdict, "PATH_DENIED");
      assert.match(verdict.reason, /whatever filesystem\.allowed_paths allows/, `${access} ${p}`);
    }
    const accented = compilePathPolicy(policy([`${root}/**`]), { protectedPaths: [{ file: path.join(root, "pol\u00edtica.yaml"), what: "the policy file" }] });
    assertRefused(await checkPath(accented, path.join(root, "poli\u0301tica.yaml"), "write"), "PATH_DENIED");
    assertRefused(await checkPath(accented, path.join(root, "POL\u00cdTICA.YAML"), "write"), "PATH_DENIED");
    assertAllowed(await checkPath(accented, path.join(root, "politica.yaml"), "write"), path.join(root, "politica.yaml"));
  });

  void it("protects a file given by path also where its link led at the start (a policy file linked from a dotfiles folder)", async () => {
    // root/linked/{policy.yaml -> ../dotfiles/policy.yaml, data -> ../elsewhere-data}, exec-home made later
    const linked = scratch("linked");
    const dotfiles = scratch("dotfiles");
    const elsewhere = scratch("elsewhere-data");
    fs.writeFileSync(path.join(dotfiles, "policy.yaml"), "version: 1");
    fs.writeFileSync(path.join(dotfiles, "notes.md"), "n");
    fs.writeFileSync(path.join(elsewhere, "bugtracker.db"), "db");
    fs.symlinkSync(path.join(dotfiles, "policy.yaml"), path.join(linked, "policy.yaml"));
    fs.symlinkSync(elsewhere, path.join(linked, "data"));
    const guard = compilePathPolicy(policy([`${root}/**`]), {
      protectedPaths: [
        { file: path.join(linked, "policy.yaml"), what: "the policy file this server runs on" },
        { file: path.join(linked, "data"), what: "the server's state" },
        { file: path.join(linked, "exec-home"), what: "the server's state" },
      ],
    });
    for (const access of ["read", "write"] as const) {
      for (const [p, what] of [
        [path.join(linked, "policy.yaml"), /the policy file/],
        [path.join(dotfiles, "policy.yaml"), /the policy file/],
        [path.join(linked, "data", "bugtracker.db"), /the server's state/],
        [path.join(elsewhere, "bugtracker.db"), /the server's state/],
        [path.join(linked, "exec-home", ".gitconfig"), /the server's state/],
      ] as const) {
        const verdict = await checkPath(guard, p, access);
        assertRefused(verdict, "PATH_DENIED");
        assert.match(verdict.reason, what, `${access} ${p}`);
      }
    }
    assertAllowed(await checkPath(guard, path.join(dotfiles, "notes.md"), "write"), path.join(dotfiles, "notes.md"));
    assert.deepEqual(decideRealPath(guard, elsewhere), { ok: false, code: "PATH_PROTECTED", what: "the server's state" });
  });

  void it("outside every allowed root, refuses them as outside, without saying what they are (no probing for the server's files)", async () => {
    const workspaceOnly = compilePathPolicy(policy([`${state}/workspace/**`], []), {
      protectedPaths: [
        { dir: state, names: (name) => name === "audit" || name === "keys", what: "the server's state" },
        { file: path.join(root, "policy.yaml"), what: "the policy file this server runs on" },
      ],
    });
    for (const p of [path.join(state, "keys", "k.pem"), path.join(root, "policy.yaml"), path.join(root.toUpperCase(), "POLICY.YAML")]) {
      const verdict = await checkPath(workspaceOnly, p, "read");
      assertRefused(verdict, "PATH_OUTSIDE_ROOTS");
      assert.doesNotMatch(verdict.reason, /policy file|server's state/);
    }
    // Through a link from inside a root, it is named (the policy would otherwise let it through).
    fs.symlinkSync(path.join(state, "keys"), path.join(state, "workspace", "keys-link"));
    const linked = await checkPath(workspaceOnly, path.join(state, "workspace", "keys-link", "k.pem"), "read");
    assertRefused(linked, "PATH_DENIED");
    assert.match(linked.reason, /the server's state/);
  });

  void it("refuses a protected directory that is not absolute", () => {
    assert.throws(() => compilePathPolicy(policy([]), { protectedPaths: [{ dir: "state", names: () => true, what: "x" }] }), /must be an absolute path/);
    assert.throws(() => compilePathPolicy(policy([]), { protectedPaths: [{ file: "policy.yaml", what: "x" }] }), /must be an absolute path/);
    assert.throws(() => compilePathPolicy(policy([]), { protectedPaths: [{ file: "/", what: "x" }] }), /not "\/"/);
  });
});
