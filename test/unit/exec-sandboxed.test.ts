/**
 * `ctx.exec` under a real bubblewrap: what a program can no longer do. Skipped, with the probe's
 * reason, where bwrap cannot be used (macOS, not installed, user namespaces refused); CI installs it.
 */
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { compileCommandPolicy } from "../../src/security/command-guard.js";
import { createGuardedExec } from "../../src/security/capabilities/exec.js";
import { createExecSandbox, findBwrap, probeBwrapSync } from "../../src/security/capabilities/sandbox.js";
import { compilePathPolicy, type ProtectedPath } from "../../src/security/path-guard.js";
import { auditOwnFiles } from "../../src/security/audit/index.js";
import { DEFAULTS } from "../../src/security/policy/defaults.js";

const PATH = "/usr/local/bin:/usr/bin:/bin";
const AVAILABLE = probeBwrapSync(findBwrap(PATH.split(":")));
const SKIP = AVAILABLE.usable ? false : `bubblewrap cannot be used here: ${AVAILABLE.reason}`;

let root = "";
let state = "";
let ws = "";
let policyFile = "";

before(() => {
  // realpath: /tmp may itself be a link (macOS); bwrap is given real paths.
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "msl-sandbox-")));
  state = path.join(root, "state");
  ws = path.join(root, "ws");
  for (const dir of ["audit", "keys", "data", "exec-home"]) fs.mkdirSync(path.join(state, dir), { recursive: true });
  fs.writeFileSync(path.join(state, "audit", "audit.log"), "the audit log\n");
  fs.writeFileSync(path.join(state, "keys", "audit-ed25519.pem"), "-----BEGIN PRIVATE KEY-----\nsecret\n");
  fs.writeFileSync(path.join(state, "data", "bugtracker.db"), "database\n");
  policyFile = path.join(root, "policy.yaml");
  fs.writeFileSync(policyFile, "version: '1.0'\n");
  fs.mkdirSync(path.join(ws, ".git", "hooks"), { recursive: true });
  fs.mkdirSync(path.join(ws, "secrets"));
  fs.writeFileSync(path.join(ws, "secrets", "token"), "s3cret\n");
  fs.mkdirSync(path.join(root, "outside"));
  fs.mkdirSync(path.join(ws, ".config", "git"), { recursive: true });
  fs.writeFileSync(path.join(ws, ".config", "git", "config"), "[user]\n");
});

after(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

/** The server's own files, as the server lists them (`ownFiles` in server.ts). */
function ownFiles(): ProtectedPath[] {
  const what = "the server's state";
  return [
    ...["audit", "keys", "data", "exec-home", "policy.yaml"].map((name) => ({ file: path.join(state, name), what })),
    ...auditOwnFiles({ ...DEFAULTS.audit, log_file: path.join(state, "audit", "audit.log") }, state),
    { file: policyFile, what: "the policy file" },
  ];
}

/**
 * An exec guard whose sandbox makes /run and /var/tmp private but not /tmp (these tests keep their
 * files there, so that hiding them is what is tested), unless `privateDirs` says otherwise.
 */
function sandboxedExec(
  allowed: string[],
  options: {
    timeoutMs?: number;
    privateDirs?: string[];
    signal?: AbortSignal;
    userHome?: string;
    denied?: string[];
    /** Adds to the write-denied rules every test here uses. */
    writeDenied?: string[];
    limits?: { scanEntries?: number; narrowings?: number };
  } = {},
) {
  const paths = compilePathPolicy(
    {
      allowed_paths: allowed,
      denied_paths: ["**/secrets/**", "**/.ssh/**", "**/.env", "**/.git/config", ...(options.denied ?? [])],
      write_denied_paths: ["**/.git/**", "**/.config/git/**", "**/.config/Code/User/**", ...(options.writeDenied ?? [])],
      max_read_bytes: 1 << 20,
      max_write_bytes: 1 << 20,
    },
    { protectedPaths: ownFiles(), homeDir: root, baseDir: root },
  );
  const compiled = compileCommandPolicy({ blocked: [], timeout: 30, max_output_bytes: 100_000, sandbox: "required" }, { PATH });
  const home = path.join(state, "exec-home");
  const sandbox = createExecSandbox({
    mode: "required",
    searchPath: compiled.searchPath,
    paths,
    ownFiles: ownFiles(),
    homeDir: home,
    privateDirs: options.privateDirs ?? ["/run", "/var/tmp"],
    ...(options.userHome === undefined ? {} : { userHome: options.userHome }),
    ...(options.limits === undefined ? {} : { limits: options.limits }),
  });
  return createGuardedExec(compiled, { timeoutMs: options.timeoutMs ?? 20_000, maxOutputBytes: 100_000 }, {
    homeDir: home,
    sandbox,
    checkCwd: (cwd) => fs.promises.realpath(cwd),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
}

function skipUnlessUsable(t: TestContext): boolean {
  if (SKIP === false) return false;
  t.skip(SKIP);
  return true;
}

/** Processes (not zombies) whose command line holds `token`. */
function processesWith(token: string): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, "latin1").includes(token)) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** bwrap processes that are zombies (exited, never reaped). */
function bwrapZombies(): Set<number> {
  const found = new Set<number>();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "latin1");
      if (stat.includes("(bwrap)") && stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) found.add(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

async function eventually(check: () => boolean, ms = 5000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((resolve) => setTimeout(resolve, 50))) if (check()) return true;
  return check();
}

void describe("ctx.exec under bubblewrap", () => {
  void test("the audit log, its key, the policy and the databases cannot be read; HOME and the writable directory work", async (t) => {
    if (skipUnlessUsable(t)) return;
    const exec = sandboxedExec([`${ws}/**`]);
    for (const file of [path.join(state, "keys", "audit-ed25519.pem"), path.join(state, "audit", "audit.log"), policyFile, path.join(state, "data", "bugtracker.db")]) {
      const result = await exec("cat", [file]);
      assert.notEqual(result.exitCode, 0, `${file} was read: ${result.stdout}`);
      assert.equal(result.stdout, "");
    }
    const listed = await exec("ls", ["-A", path.join(state, "audit"), path.join(state, "keys")]);
    assert.doesNotMatch(listed.stdout, /audit\.log|pem/, "the directories show empty");
    assert.equal((await exec("cat", [path.join(ws, "secrets", "token")])).stdout, "", "a denied directory inside the writable one is hidden");
    const wrote = await exec("sh", ["-c", `echo made > "${ws}/made.txt" && echo home > "$HOME/note" && cat "$HOME/note" && pwd`]);
    assert.equal(wrote.exitCode, 0, wrote.stderr);
    assert.equal(wrote.stdout, `home\n${path.join(state, "exec-home")}\n`);
    assert.equal(fs.readFileSync(path.join(ws, "made.txt"), "utf8"), "made\n");
  });

  void test("the user's home stays readable but for what denied_paths refuses there (~/.ssh, ~/.env): a program cannot hand those to the model", async (t) => {
    if (skipUnlessUsable(t)) return;
    const userHome = path.join(root, "user-home");
    fs.mkdirSync(path.join(userHome, ".ssh"), { recursive: true });
    fs.writeFileSync(path.join(userHome, ".ssh", "id_ed25519"), "PRIVATE KEY\n");
    fs.writeFileSync(path.join(userHome, ".env"), "TOKEN=abc\n");
    fs.writeFileSync(path.join(userHome, "notes.txt"), "plain notes\n");
    const exec = sandboxedExec([`${ws}/**`], { userHome });
    for (const file of [path.join(userHome, ".ssh", "id_ed25519"), path.join(userHome, ".env")]) {
      const result = await exec("cat", [file]);
      assert.equal(result.stdout, "", `${file} was read`);
    }
    assert.equal((await exec("cat", [path.join(userHome, "notes.txt")])).stdout, "plain notes\n", "the rest of the host stays readable");
    const without = sandboxedExec([`${ws}/**`]);
    assert.equal((await without("cat", [path.join(userHome, ".env")])).stdout, "TOKEN=abc\n", "what the option adds");
  });

  void test("a deny rule written as an absolute path hides its place wherever it is, beyond the home's first level", async (t) => {
    if (skipUnlessUsable(t)) return;
    const userHome = path.join(root, "home-abs");
    const place = (...parts: string[]): string => path.join(userHome, ...parts);
    fs.mkdirSync(place("work", "client-x", "deep"), { recursive: true });
    fs.mkdirSync(place("notes"), { recursive: true });
    fs.mkdirSync(path.join(root, "etc-like", "app"), { recursive: true });
    fs.writeFileSync(place("work", "client-x", "deep", "contract.txt"), "terms\n");
    fs.writeFileSync(place("notes", "bank.secret"), "pin\n");
    fs.writeFileSync(place("notes", "todo.txt"), "todo\n");
    fs.writeFileSync(place("work", "other.txt"), "other\n");
    fs.writeFileSync(path.join(root, "etc-like", "app", "token"), "tok\n");
    const denied = [`${place("work", "client-x")}/**`, `${place("notes")}/*.secret`, path.join(root, "etc-like", "app", "token")];
    const exec = sandboxedExec([`${ws}/**`], { userHome, denied });
    for (const file of [place("work", "client-x", "deep", "contract.txt"), place("notes", "bank.secret"), path.join(root, "etc-like", "app", "token")]) {
      assert.equal((await exec("cat", [file])).stdout, "", `${file} was read`);
    }
    const rest = await exec("cat", [place("notes", "todo.txt"), place("work", "other.txt")]);
    assert.equal(rest.stdout, "todo\nother\n", "the rest stays readable");
    fs.rmSync(userHome, { recursive: true });
    fs.rmSync(path.join(root, "etc-like"), { recursive: true });
  });

  void test("a denied path that is a symbolic link hides what it leads to (a ~/.ssh linked to dotfiles, an .env linked elsewhere)", async (t) => {
    if (skipUnlessUsable(t)) return;
    const userHome = path.join(root, "home-links");
    fs.mkdirSync(path.join(userHome, "dotfiles", "ssh"), { recursive: true });
    fs.writeFileSync(path.join(userHome, "dotfiles", "ssh", "id_ed25519"), "PRIVATE KEY\n");
    fs.symlinkSync("dotfiles/ssh", path.join(userHome, ".ssh"));
    // A vault in the home: a link leading out of the home and the allowed directories is not followed
    // (a program could plant `x/.env -> /usr/lib` and stop every later call).
    const vault = path.join(userHome, "vault");
    fs.mkdirSync(vault, { recursive: true });
    fs.writeFileSync(path.join(vault, "app.env"), "DB_PASSWORD=linked\n");
    fs.mkdirSync(path.join(ws, "svc"), { recursive: true });
    fs.symlinkSync(path.join(vault, "app.env"), path.join(ws, "svc", ".env"));
    fs.writeFileSync(path.join(vault, "plain.txt"), "plain\n");
    fs.symlinkSync(path.join(vault, "plain.txt"), path.join(ws, "svc", "notes.txt"));
    try {
      const exec = sandboxedExec([`${ws}/**`], { userHome });
      for (const file of [path.join(userHome, ".ssh", "id_ed25519"), path.join(ws, "svc", ".env")]) {
        assert.equal((await exec("cat", [file])).stdout, "", `${file} was read through its link`);
      }
      assert.equal((await exec("cat", [path.join(ws, "svc", "notes.txt")])).stdout, "plain\n", "a link the policy does not deny is left alone");
    } finally {
      fs.rmSync(userHome, { recursive: true });
      fs.rmSync(path.join(ws, "svc"), { recursive: true });
    }
  });

  void test(
    "review finding: a denied link in the home leading out of it and the allowed directories (~/.ssh -> a key volume) still hides what it leads to",
    async (t) => {
      if (skipUnlessUsable(t)) return;
      // No program can plant a link in a home it may not write: the user made this one, and the guard refuses ~/.ssh/id_ed25519.
      const userHome = path.join(root, "home-keyvol");
      const volume = path.join(root, "keyvol");
      fs.mkdirSync(userHome, { recursive: true });
      fs.mkdirSync(path.join(volume, "ssh"), { recursive: true });
      fs.writeFileSync(path.join(volume, "ssh", "id_ed25519"), "PRIVATE KEY\n");
      fs.symlinkSync(path.join(volume, "ssh"), path.join(userHome, ".ssh"));
      try {
        const exec = sandboxedExec([`${ws}/**`], { userHome });
        const read = await exec("cat", [path.join(userHome, ".ssh", "id_ed25519")]);
        assert.equal(read.stdout, "", "the key was read through ~/.ssh");
      } finally {
        fs.rmSync(userHome, { recursive: true, force: true });
        fs.rmSync(volume, { recursive: true, force: true });
      }
    },
  );

  void test(
    "review finding: a nested checkout deep in a dot-directory (.venv/src/pkg/.git) does not make the dot-directory read-only",
    async (t) => {
      if (skipUnlessUsable(t)) return;
      // pip install -e git+...: the checkout lands in .venv/src/<name>, .git and all. A .git can be made anywhere in a
      // writable directory (packages/api/.git is not pinned either): the venv must stay writable.
      const venv = path.join(ws, ".venv");
      fs.mkdirSync(path.join(venv, "src", "pkg", ".git"), { recursive: true });
      fs.mkdirSync(path.join(venv, "lib"), { recursive: true });
      try {
        const exec = sandboxedExec([`${ws}/**`]);
        const wrote = await exec("sh", ["-c", 'echo x > "$1/lib/new.py" && mkdir "$1/bin" && echo ok', "sh", venv]);
        assert.equal(wrote.stdout, "ok\n", wrote.stderr);
        const hook = await exec("sh", ["-c", 'echo pwned > "$1/src/pkg/.git/HEAD"', "sh", venv]);
        assert.notEqual(hook.exitCode, 0, "the checkout's .git stays read-only");
      } finally {
        fs.rmSync(venv, { recursive: true, force: true });
      }
    },
  );

  void test("an entry tools may only read that spans the home (~/**/*.md) is looked at as the home is, not walked whole", async (t) => {
    if (skipUnlessUsable(t)) return;
    const userHome = path.join(root, "home-md");
    fs.mkdirSync(path.join(userHome, "notes", "deep"), { recursive: true });
    for (let i = 0; i < 60; i++) fs.writeFileSync(path.join(userHome, "notes", "deep", `n${i}.md`), "note\n");
    fs.writeFileSync(path.join(userHome, ".env"), "TOKEN=home\n");
    try {
      // A limit the home's whole tree passes and its first levels do not.
      const exec = sandboxedExec([`${ws}/**`, `${userHome}/**/*.md`], { userHome, limits: { scanEntries: 50 } });
      const read = await exec("sh", ["-c", 'cat "$1/notes/deep/n7.md"; cat "$1/.env"', "sh", userHome]);
      assert.equal(read.stdout, "note\n", read.stderr);
    } finally {
      fs.rmSync(userHome, { recursive: true, force: true });
    }
  });

  void test("writes outside the writable directories fail, and so do writes the guard refuses inside them", async (t) => {
    if (skipUnlessUsable(t)) return;
    const exec = sandboxedExec([`${ws}/**`]);
    for (const target of [path.join(root, "outside", "x"), path.join(ws, ".git", "hooks", "pre-commit"), path.join(state, "keys", "new"), "/etc/msl-sandbox-test"]) {
      const result = await exec("touch", [target]);
      assert.notEqual(result.exitCode, 0, `${target} was written`);
      assert.equal(fs.existsSync(target), false, target);
    }
  });

  void test("a write-denied entry in a dot-directory cannot be replaced by moving the dot-directory away", async (t) => {
    if (skipUnlessUsable(t)) return;
    const exec = sandboxedExec([`${ws}/**`]);
    const config = path.join(ws, ".config");
    const result = await exec("sh", ["-c", 'mv "$1" "$1.moved" && mkdir -p "$1/git" && echo "[core] hooksPath = /x" > "$1/git/config"; echo done', "sh", config]);
    assert.equal(result.stdout, "done\n", result.stderr);
    assert.equal(fs.existsSync(`${config}.moved`), false, "the dot-directory was moved away");
    assert.equal(fs.readFileSync(path.join(config, "git", "config"), "utf8"), "[user]\n");
  });

  void test(
    "review finding: a write-denied directory deeper in a dot-directory (.config/Code/User/) cannot be replaced by moving the directory between them away",
    async (t) => {
      if (skipUnlessUsable(t)) return;
      // A home the policy lets tools write, with no entry directly in .config that would pin it.
      const home = path.join(root, "home-code");
      const user = path.join(home, ".config", "Code", "User");
      fs.mkdirSync(user, { recursive: true });
      fs.writeFileSync(path.join(user, "settings.json"), "{}\n");
      try {
        const exec = sandboxedExec([`${home}/**`]);
        const direct = await exec("sh", ["-c", 'echo pwned > "$1"', "sh", path.join(user, "settings.json")]);
        assert.notEqual(direct.exitCode, 0, "read-only where it is");
        const code = path.join(home, ".config", "Code");
        const result = await exec("sh", ["-c", 'mv "$1" "$1.moved" && mkdir -p "$1/User" && echo pwned > "$1/User/settings.json"; echo done', "sh", code]);
        assert.equal(result.stdout, "done\n", result.stderr);
        assert.equal(fs.readFileSync(path.join(user, "settings.json"), "utf8"), "{}\n", "the editor's settings were replaced");
      } finally {
        fs.rmSync(home, { recursive: true, force: true });
      }
    },
  );

  void test("what the guard refuses is refused at every depth of an allowed directory, writable or not", async (t) => {
    if (skipUnlessUsable(t)) return;
    const api = path.join(ws, "packages", "api");
    fs.mkdirSync(path.join(api, ".git", "hooks"), { recursive: true });
    fs.writeFileSync(path.join(api, ".env"), "API_TOKEN=deep\n");
    fs.writeFileSync(path.join(api, ".git", "config"), "[remote]\n");
    fs.writeFileSync(path.join(ws, ".git", "config"), "[core]\n");
    fs.writeFileSync(path.join(api, "index.js"), "code\n");
    fs.mkdirSync(path.join(ws, ".config", "Code", "User"), { recursive: true });
    fs.writeFileSync(path.join(ws, ".config", "Code", "User", "settings.json"), "{}\n");
    const exec = sandboxedExec([`${ws}/**`], { denied: [path.join(ws, "app", "config", "keys.json")] });
    fs.mkdirSync(path.join(ws, "app", "config"), { recursive: true });
    fs.writeFileSync(path.join(ws, "app", "config", "keys.json"), "{\"k\":1}\n");
    for (const file of [path.join(api, ".env"), path.join(ws, "app", "config", "keys.json"), path.join(api, ".git", "config"), path.join(ws, ".git", "config")]) {
      const read = await exec("cat", [file]);
      assert.equal(read.stdout, "", `${file} was read`);
    }
    for (const target of [path.join(api, ".git", "hooks", "pre-commit"), path.join(ws, ".config", "Code", "User", "settings.json")]) {
      const wrote = await exec("sh", ["-c", 'echo pwned > "$1"', "sh", target]);
      assert.notEqual(wrote.exitCode, 0, `${target} was written`);
    }
    assert.equal(fs.readFileSync(path.join(ws, ".config", "Code", "User", "settings.json"), "utf8"), "{}\n");
    assert.equal(fs.existsSync(path.join(api, ".git", "hooks", "pre-commit")), false);
    // The rest of the project stays the program's: not pinned read-only for the entries deep inside it.
    const edited = await exec("sh", ["-c", 'echo more >> "$1/index.js" && mkdir "$1/lib" && cat "$1/index.js"', "sh", api]);
    assert.equal(edited.stdout, "code\nmore\n", edited.stderr);
    // Moved aside, a directory takes its entries' mounts along: the secret stays hidden under the new name.
    const moved = await exec("sh", ["-c", 'mv "$1/packages" "$1/moved" && cat "$1/moved/api/.env"; echo "[$?]"', "sh", ws]);
    assert.equal(moved.stdout, "[1]\n", moved.stderr);
    fs.renameSync(path.join(ws, "moved"), path.join(ws, "packages"));
    // An allowed directory tools may only read (an entry with a glob) is visible to programs, and walked the same.
    const data = path.join(root, "data");
    fs.mkdirSync(path.join(data, "2026", "q4", "secrets"), { recursive: true });
    fs.writeFileSync(path.join(data, "2026", "q4", "secrets", "bank.csv"), "iban\n");
    fs.writeFileSync(path.join(data, "2026", "q4", "report.csv"), "rows\n");
    const readOnly = sandboxedExec([`${ws}/**`, `${data}/**/*.csv`]);
    assert.equal((await readOnly("cat", [path.join(data, "2026", "q4", "secrets", "bank.csv")])).stdout, "");
    assert.equal((await readOnly("cat", [path.join(data, "2026", "q4", "report.csv")])).stdout, "rows\n");
    fs.rmSync(path.join(ws, "packages"), { recursive: true });
    fs.rmSync(path.join(ws, "app"), { recursive: true });
    fs.rmSync(path.join(ws, ".config", "Code"), { recursive: true });
  });

  void test("a deny rule whose group holds a slash still hides what its other branches name, at any depth", async (t) => {
    if (skipUnlessUsable(t)) return;
    const app = path.join(ws, "nested", "app");
    fs.mkdirSync(app, { recursive: true });
    fs.writeFileSync(path.join(app, ".netrc"), "machine example.com password hunter2\n");
    for (const rule of ["**/{.config/gh/hosts.yml,.netrc}", "**/@(.config/gh/hosts.yml|.netrc)"]) {
      const read = await sandboxedExec([`${ws}/**`], { denied: [rule] })("cat", [path.join(app, ".netrc")]);
      assert.equal(read.stdout, "", `${rule}: .netrc was read`);
    }
    fs.rmSync(path.join(ws, "nested"), { recursive: true });
  });

  void test("a directory the server cannot list is hidden whole: a program cannot restore its mode and read what the walk did not see", async (t) => {
    if (skipUnlessUsable(t)) return;
    if (process.getuid?.() === 0) {
      t.skip("run as root, the server lists every directory");
      return;
    }
    const api = path.join(ws, "locked", "api");
    fs.mkdirSync(api, { recursive: true });
    fs.writeFileSync(path.join(api, ".env"), "TOKEN=locked\n");
    const exec = sandboxedExec([`${ws}/**`]);
    // One call takes the directory's read permission away (search only), the next gives it back and reads.
    const first = await exec("chmod", ["100", api]);
    assert.equal(first.exitCode, 0, first.stderr);
    const second = await exec("sh", ["-c", 'cat "$1/.env"; chmod 700 "$1"; cat "$1/.env"', "sh", api]);
    assert.equal(second.stdout, "", "the denied file was read");
    fs.chmodSync(api, 0o700);
    fs.rmSync(path.join(ws, "locked"), { recursive: true });
  });

  void test("a directory whose name is not UTF-8 cannot be hidden or walked: the call is refused, not run unchecked", async (t) => {
    if (skipUnlessUsable(t)) return;
    const odd = path.join(ws, "odd");
    fs.mkdirSync(odd);
    const latin1 = Buffer.concat([Buffer.from(`${odd}/caf`), Buffer.from([0xe9])]);
    fs.mkdirSync(latin1);
    fs.writeFileSync(Buffer.concat([latin1, Buffer.from("/.env")]), "TOKEN=latin1\n");
    await assert.rejects(sandboxedExec([`${ws}/**`])("grep", ["-r", "TOKEN", odd]), (error: Error & { code?: string }) => {
      assert.equal(error.code, "COMMAND_SANDBOX_LAYOUT");
      assert.match(error.message, /odd holds a name that is not UTF-8.*rename it/);
      return true;
    });
    // A file so named that no rule refuses is no reason to refuse the call.
    fs.rmSync(latin1, { recursive: true });
    fs.writeFileSync(latin1, "plain\n");
    const listed = await sandboxedExec([`${ws}/**`])("ls", [odd]);
    assert.equal(listed.exitCode, 0, listed.stderr);
    fs.rmSync(odd, { recursive: true });
  });

  void test("a tree deeper than a path can name refuses the call: what lies below it cannot be checked, nor hidden", async (t) => {
    if (skipUnlessUsable(t)) return;
    const deep = path.join(ws, "deep");
    fs.mkdirSync(deep);
    const exec = sandboxedExec([`${ws}/**`]);
    // 18 levels of 250 bytes: past PATH_MAX (4096), where readdir and bwrap's mounts fail, but `cd -P` step by step goes.
    const name = "d".repeat(250);
    const made = await exec("sh", ["-c", `cd "$1" && for i in $(seq 18); do mkdir ${name} && cd -P ${name} || exit 1; done; echo TOKEN=deep > .env`, "sh", deep]);
    assert.equal(made.exitCode, 0, made.stderr);
    await assert.rejects(exec("sh", ["-c", `cd "$1" && for i in $(seq 18); do cd -P ${name}; done; cat .env`, "sh", deep]), (error: Error & { code?: string }) => {
      assert.equal(error.code, "COMMAND_SANDBOX_LAYOUT");
      assert.match(error.message, /cannot be checked for denied paths \(ENAMETOOLONG\)/);
      return true;
    });
    spawnSync("rm", ["-rf", deep]); // fs.rmSync cannot name the deepest entries either
    assert.equal(fs.existsSync(deep), false);
  });

  void test(
    "a program running meanwhile cannot make a call's walk miss a denied file by renaming the directory that holds it",
    { timeout: 60_000 },
    async (t) => {
      if (skipUnlessUsable(t)) return;
      const moving = path.join(ws, "moving");
      fs.mkdirSync(path.join(moving, "a0"), { recursive: true });
      fs.writeFileSync(path.join(moving, "a0", ".env"), "TOKEN=raced\n");
      const exec = sandboxedExec([`${ws}/**`]);
      const renamer = exec("sh", ["-c", 'i=0; end=$(($(date +%s)+4)); while [ $(date +%s) -lt $end ]; do mv "$1/a$i" "$1/a$((i+1))"; i=$((i+1)); done', "sh", moving]);
      let leaked = 0;
      for (let i = 0; i < 20; i++) {
        const read = await exec("sh", ["-c", 'cat "$1"/*/.env 2>/dev/null', "sh", moving]);
        if (read.stdout.includes("raced")) leaked++;
      }
      await renamer;
      const [last] = fs.readdirSync(moving);
      assert.equal(fs.readFileSync(path.join(moving, last!, ".env"), "utf8"), "TOKEN=raced\n", "the file was there all along");
      fs.rmSync(moving, { recursive: true });
      assert.equal(leaked, 0, `the denied file was read in ${leaked} of 20 calls`);
    },
  );

  void test(
    "a virtualenv stays writable (pip install) although its site-packages holds a .pth file write_denied_paths names",
    async (t) => {
      if (skipUnlessUsable(t)) return;
      const sitePackages = path.join(ws, ".venv", "lib", "python3.12", "site-packages");
      fs.mkdirSync(sitePackages, { recursive: true });
      fs.writeFileSync(path.join(sitePackages, "distutils-precedence.pth"), "import os\n");
      const exec = sandboxedExec([`${ws}/**`], { writeDenied: ["**/site-packages/*.pth"] });
      const direct = await exec("sh", ["-c", 'echo x >> "$1"', "sh", path.join(sitePackages, "distutils-precedence.pth")]);
      assert.notEqual(direct.exitCode, 0, "the .pth file itself stays read-only");
      const installed = await exec("mkdir", [path.join(sitePackages, "requests")]);
      fs.rmSync(path.join(ws, ".venv"), { recursive: true });
      assert.equal(installed.exitCode, 0, installed.stderr);
    },
  );

  void test("a tree too large to check, or too much to hide, refuses the call: the program does not run unchecked", async (t) => {
    if (skipUnlessUsable(t)) return;
    const big = path.join(root, "big");
    for (let i = 0; i < 30; i++) fs.mkdirSync(path.join(big, `d${i}`, "secrets"), { recursive: true });
    const marker = path.join(root, "ran-anyway");
    const script = ["-c", 'touch "$1"', "sh", marker];
    await assert.rejects(sandboxedExec([`${big}/**`], { limits: { scanEntries: 40 } })("sh", script), (error: Error & { code?: string }) => {
      assert.equal(error.code, "COMMAND_SANDBOX_LAYOUT");
      assert.match(error.message, /more than 40 entries .*allow narrower directories/);
      return true;
    });
    await assert.rejects(sandboxedExec([`${big}/**`], { limits: { narrowings: 20 } })("sh", script), (error: Error & { code?: string }) => {
      assert.equal(error.code, "COMMAND_SANDBOX_LAYOUT");
      assert.match(error.message, /3\d paths .* more than the 20/);
      return true;
    });
    assert.equal(fs.existsSync(marker), false, "the program ran");
    fs.writeFileSync(path.join(big, "d7", "secrets", "key"), "k\n");
    const fits = await sandboxedExec([`${big}/**`])("sh", ["-c", 'ls -A "$1/d7/secrets"; touch "$1/ran"', "sh", big]);
    assert.equal(fits.exitCode, 0, fits.stderr);
    assert.equal(fits.stdout, "", "the denied directories are hidden");
    assert.equal(fs.existsSync(path.join(big, "ran")), true, "within the limits the program runs");
    fs.rmSync(big, { recursive: true });
  });

  void test("a writable directory that holds the state directory: the state cannot be moved away, its files stay hidden", async (t) => {
    if (skipUnlessUsable(t)) return;
    const exec = sandboxedExec([`${root}/**`]);
    const moved = await exec("mv", [state, path.join(root, "moved-state")]);
    assert.notEqual(moved.exitCode, 0, "the state directory was renamed");
    assert.ok(fs.existsSync(path.join(state, "keys", "audit-ed25519.pem")));
    assert.equal((await exec("cat", [path.join(state, "keys", "audit-ed25519.pem")])).stdout, "");
    assert.notEqual((await exec("touch", [path.join(state, "audit", "audit-20990101T000000Z-000000000001.log")])).exitCode, 0, "no forged segment");
    assert.equal((await exec("touch", [path.join(root, "outside", "fine")])).exitCode, 0, "the rest of the writable directory is writable");
  });

  void test("/proc is read-only: the kernel's settings cannot be written, even by a server run as root", async (t) => {
    if (skipUnlessUsable(t)) return;
    // As root (uid 0 is the owner the kernel checks, capabilities or not) these were writable:
    // kernel.core_pattern names a program the kernel runs as root on the host. `test -w` only asks.
    const files = ["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sys/vm/swappiness"].filter((file) => fs.existsSync(file));
    const result = await sandboxedExec([`${ws}/**`])("sh", ["-c", 'for f in "$@"; do if [ -w "$f" ]; then echo "writable $f"; fi; done; echo checked', "sh", ...files]);
    assert.equal(result.stdout, "checked\n", result.stderr);
  });

  void test("no network: a connection to a port on this machine's loopback fails", async (t) => {
    if (skipUnlessUsable(t)) return;
    if (!fs.existsSync("/bin/bash") && !fs.existsSync("/usr/bin/bash")) return t.skip("bash (for /dev/tcp) is not installed");
    let accepted = 0;
    const server = net.createServer((socket) => {
      accepted += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const result = await sandboxedExec([`${ws}/**`])("bash", ["-c", `echo hi > /dev/tcp/127.0.0.1/${port} && echo connected`]);
      assert.notEqual(result.exitCode, 0);
      assert.doesNotMatch(result.stdout, /connected/);
      assert.equal(accepted, 0);
    } finally {
      server.close();
    }
  });

  void test("at the deadline everything dies, a setsid'd descendant included, and no zombie is left", { timeout: 60_000 }, async (t) => {
    if (skipUnlessUsable(t)) return;
    const token = `${Math.floor(Math.random() * 1e6) + 1000}.5`;
    const zombiesBefore = bwrapZombies();
    const started = Date.now();
    const result = await sandboxedExec([`${ws}/**`], { timeoutMs: 1500 })("sh", ["-c", `setsid sleep ${token} </dev/null >/dev/null 2>&1 & sleep ${token} & exec sleep ${token}`]);
    assert.equal(result.timedOut, true);
    assert.deepEqual([result.exitCode, result.signal], [null, "SIGKILL"]);
    assert.ok(Date.now() - started < 15_000);
    assert.ok(await eventually(() => processesWith(token).length === 0), `still running: ${processesWith(token).join(", ")}`);
    // Looked at soon: a PID 1 that reaps orphans at all may do so only now and then.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const left = [...bwrapZombies()].filter((pid) => !zombiesBefore.has(pid));
    assert.deepEqual(left, [], "bwrap's init was left a zombie, for a PID 1 to reap");
  });

  void test("a normal exit takes detached descendants down too", { timeout: 60_000 }, async (t) => {
    if (skipUnlessUsable(t)) return;
    const token = `${Math.floor(Math.random() * 1e6) + 1000}.25`;
    const result = await sandboxedExec([`${ws}/**`])("sh", ["-c", `setsid sleep ${token} </dev/null >/dev/null 2>&1 & echo done`]);
    assert.deepEqual([result.exitCode, result.timedOut, result.stdout], [0, false, "done\n"]);
    assert.ok(await eventually(() => processesWith(token).length === 0), `still running: ${processesWith(token).join(", ")}`);
  });

  void test("the call's signal kills the sandbox", { timeout: 60_000 }, async (t) => {
    if (skipUnlessUsable(t)) return;
    const token = `${Math.floor(Math.random() * 1e6) + 1000}.75`;
    const controller = new AbortController();
    const pending = sandboxedExec([`${ws}/**`], { signal: controller.signal })("sh", ["-c", `exec sleep ${token}`]);
    assert.ok(await eventually(() => processesWith(token).length > 0), "the program started");
    controller.abort();
    const result = await pending;
    assert.deepEqual([result.timedOut, result.signal], [true, "SIGKILL"]);
    assert.ok(await eventually(() => processesWith(token).length === 0));
  });

  void test("a private directory the policy lets tools write stays the host's, but its sockets cannot be reached", { timeout: 60_000 }, async (t) => {
    if (skipUnlessUsable(t)) return;
    // Stands in for /tmp with /tmp/** allowed: an X server's socket lives at /tmp/.X11-unix/X0.
    const shared = path.join(root, "shared-tmp");
    fs.mkdirSync(path.join(shared, ".X11-unix"), { recursive: true });
    fs.writeFileSync(path.join(shared, "notes.txt"), "shared\n");
    const socketPath = path.join(shared, ".X11-unix", "X0");
    let accepted = 0;
    const server = net.createServer((socket) => {
      accepted += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    try {
      const exec = sandboxedExec([`${shared}/**`], { privateDirs: ["/run", "/var/tmp", shared] });
      const client = `require("net").connect(process.argv[1]).on("connect", () => { console.log("connected"); process.exit(0); }).on("error", (e) => { console.log(e.code); process.exit(1); })`;
      const result = await exec(process.execPath, ["-e", client, socketPath]);
      assert.doesNotMatch(result.stdout, /connected/, result.stderr);
      assert.equal(accepted, 0);
      assert.equal((await exec("cat", [path.join(shared, "notes.txt")])).stdout, "shared\n", "the rest of it is the host's");
    } finally {
      server.close();
    }
  });

  void test(
    "review finding: a write-denied link a program plants does not show the next call what it leads to in a private directory (a socket there: ssh-agent, D-Bus, docker.sock)",
    { timeout: 60_000 },
    async (t) => {
      if (skipUnlessUsable(t)) return;
      // Stands in for /run/docker.sock or /tmp/ssh-XXXX/agent.N: a socket in a directory every sandbox makes private.
      const privateDir = path.join(root, "private-run");
      fs.mkdirSync(path.join(privateDir, "agent"), { recursive: true });
      const socketPath = path.join(privateDir, "agent", "agent.sock");
      let accepted = 0;
      const server = net.createServer((socket) => {
        accepted += 1;
        socket.destroy();
      });
      await new Promise<void>((resolve) => server.listen(socketPath, resolve));
      const planted = path.join(ws, "planted");
      try {
        const exec = sandboxedExec([`${ws}/**`], { privateDirs: ["/run", "/var/tmp", privateDir] });
        const client = `require("net").connect(process.argv[1]).on("connect", () => { console.log("connected"); process.exit(0); }).on("error", (e) => { console.log(e.code); process.exit(1); })`;
        assert.doesNotMatch((await exec(process.execPath, ["-e", client, socketPath])).stdout, /connected/, "private: not seen");
        // One call plants links whose names write_denied_paths refuses (**/.git/**), to the socket and to its directory.
        const plant = await exec("sh", ["-c", 'mkdir -p "$1/a" "$1/b" && ln -s "$2" "$1/a/.git" && ln -s "$3" "$1/b/.git" && echo planted', "sh", planted, socketPath, path.dirname(socketPath)]);
        assert.equal(plant.stdout, "planted\n", plant.stderr);
        // The next call's sandbox made what they lead to read-only, bound from the host into the private directory.
        const result = await exec(process.execPath, ["-e", client, socketPath]);
        assert.doesNotMatch(result.stdout, /connected/, `the host's socket was reached through a planted link: ${result.stdout}${result.stderr}`);
        assert.equal(accepted, 0);
      } finally {
        server.close();
        fs.rmSync(planted, { recursive: true, force: true });
        fs.rmSync(privateDir, { recursive: true, force: true });
      }
    },
  );

  void test(
    "review finding: a denied link a program plants, leading to what programs need (/usr/lib), does not stop every later call",
    async (t) => {
      if (skipUnlessUsable(t)) return;
      const planted = path.join(ws, "planted-lib");
      try {
        const exec = sandboxedExec([`${ws}/**`]);
        const plant = await exec("sh", ["-c", 'mkdir -p "$1/a" "$1/b" && ln -s /usr/lib "$1/.env" && ln -s "$2" "$1/a/.env" && ln -s "$3" "$1/b/.env" && echo planted', "sh", planted, ws, root]);
        assert.equal(plant.stdout, "planted\n", plant.stderr);
        const next = await exec("echo", ["still runs"]);
        assert.equal(next.stdout, "still runs\n", next.stderr);
      } finally {
        fs.rmSync(planted, { recursive: true, force: true });
      }
    },
  );

  void test("/tmp is private: the host's files there are not seen, and what the program writes there stays inside", async (t) => {
    if (skipUnlessUsable(t)) return;
    const marker = path.join(root, "host-marker");
    fs.writeFileSync(marker, "host\n");
    const exec = sandboxedExec([`${ws}/**`], { privateDirs: ["/tmp", "/run", "/var/tmp"] });
    const result = await exec("sh", ["-c", `cat "${marker}"; echo x > /tmp/msl-sandbox-private && echo wrote; ls -A /run | wc -l`]);
    assert.equal(result.stdout, "wrote\n0\n", result.stderr);
    assert.equal(fs.existsSync("/tmp/msl-sandbox-private"), false);
    // The writable directory is shown again inside the private /tmp.
    assert.equal((await exec("sh", ["-c", `echo in > "${ws}/in-private-tmp" && echo ok`])).stdout, "ok\n");
    assert.equal(fs.readFileSync(path.join(ws, "in-private-tmp"), "utf8"), "in\n");
  });
});
