import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bwrapArgv, SandboxLayoutError, type BwrapFeatures, type SandboxLayout } from "../../src/security/capabilities/sandbox-argv.js";

const FEATURES: BwrapFeatures = { disableUserns: true, argv0: false };

function layout(overrides: Partial<SandboxLayout> = {}): SandboxLayout {
  return {
    privateDirs: ["/tmp", "/run"],
    writable: ["/home/u/project"],
    readOnly: [],
    concealed: [],
    hidden: [],
    ownDirs: [],
    home: "/home/u/.local/state/msl/exec-home",
    cwd: "/home/u/.local/state/msl/exec-home",
    ...overrides,
  };
}

const COMMAND = { program: "/usr/bin/wc", argv0: "wc", args: ["-l"] };

/** The mount options as [option, path] pairs, in order (`--tmpfs X`, `--bind X X`, ...). */
function mounts(argv: readonly string[]): string[] {
  const found: string[] = [];
  const end = argv.indexOf("--");
  for (let i = 0; i < end; i++) {
    const option = argv[i]!;
    if (option === "--bind" || option === "--ro-bind") {
      found.push(`${option} ${argv[i + 1]}${argv[i + 1] === argv[i + 2] ? "" : ` -> ${argv[i + 2]}`}`);
      i += 2;
    } else if (option === "--tmpfs" || option === "--remount-ro" || option === "--proc" || option === "--dev") {
      found.push(`${option} ${argv[i + 1]}`);
      i += 1;
    } else if (option === "--chdir" || option === "--cap-drop" || option === "--argv0") {
      i += 1;
    }
  }
  return found;
}

function layoutError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof SandboxLayoutError, String(error));
    assert.equal(error.code, "COMMAND_SANDBOX_LAYOUT");
    assert.match(error.message, pattern);
    return true;
  });
}

void describe("bwrapArgv", () => {
  void test("isolates everything, then mounts the host read-only, private directories, writable ones, HOME; the program after --", () => {
    const argv = bwrapArgv(layout(), COMMAND, FEATURES);
    for (const option of ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session"]) assert.ok(argv.includes(option), option);
    assert.equal(argv[argv.indexOf("--cap-drop") + 1], "ALL");
    assert.ok(!argv.includes("--share-net"), "no network namespace is shared");
    assert.deepEqual(mounts(argv), [
      "--ro-bind /",
      "--proc /proc",
      "--remount-ro /proc",
      "--dev /dev",
      "--bind /home/u/project",
      "--bind /home/u/.local/state/msl/exec-home",
      "--tmpfs /tmp",
      "--tmpfs /run",
    ]);
    assert.deepEqual(argv.slice(argv.indexOf("--chdir"), argv.indexOf("--chdir") + 2), ["--chdir", "/home/u/.local/state/msl/exec-home"]);
    assert.deepEqual(argv.slice(argv.indexOf("--")), ["--", "/usr/bin/wc", "-l"]);
  });

  void test("arguments and paths are single argv elements whatever they hold; nothing after -- is read as an option", () => {
    const odd = "/srv/a dir\nwith 'quotes' $(id) --bind -x;rm";
    const args = ["--bind", "/", "/", "$(id)", "a\nb", "-", "--", ""];
    const argv = bwrapArgv(layout({ writable: ["/home/u/project", odd], cwd: odd }), { ...COMMAND, args }, FEATURES);
    assert.deepEqual(argv.slice(argv.indexOf("--") + 1), ["/usr/bin/wc", ...args]);
    const at = argv.indexOf(odd);
    assert.deepEqual(argv.slice(at - 1, at + 2), ["--bind", odd, odd]);
    assert.equal(argv[argv.indexOf("--chdir") + 1], odd);
  });

  void test("paths are normalized: trailing slashes and dot segments go", () => {
    const argv = bwrapArgv(layout({ writable: ["/home/u/project/./sub/../"] }), COMMAND, FEATURES);
    assert.ok(mounts(argv).includes("--bind /home/u/project"));
  });

  void test("the server's own files are hidden last: directories under a read-only tmpfs, files under /dev/null", () => {
    const argv = bwrapArgv(
      layout({
        hidden: [
          { path: "/home/u/.local/state/msl/keys", kind: "directory" },
          { path: "/home/u/.local/state/msl/keys/audit-ed25519.pem", kind: "file" }, // inside a hidden directory: nothing to add
          { path: "/home/u/policy.yaml", kind: "file" },
        ],
      }),
      COMMAND,
      FEATURES,
    );
    const list = mounts(argv);
    assert.deepEqual(list.slice(-3), [
      "--ro-bind /dev/null -> /home/u/policy.yaml",
      "--tmpfs /home/u/.local/state/msl/keys",
      "--remount-ro /home/u/.local/state/msl/keys",
    ]);
    assert.ok(!list.some((entry) => entry.includes("audit-ed25519.pem")));
  });

  void test("inside writable directories: write-denied entries read-only and denied ones hidden, after the writable bind", () => {
    const argv = bwrapArgv(
      layout({ readOnly: ["/home/u/project/.git"], concealed: [{ path: "/home/u/project/.env", kind: "file" }, { path: "/home/u/project/secrets", kind: "directory" }] }),
      COMMAND,
      FEATURES,
    );
    const list = mounts(argv);
    const bind = list.indexOf("--bind /home/u/project");
    assert.ok(bind >= 0);
    for (const entry of ["--ro-bind /home/u/project/.git", "--ro-bind /dev/null -> /home/u/project/.env", "--tmpfs /home/u/project/secrets"]) {
      assert.ok(list.indexOf(entry) > bind, `${entry} after the writable bind: ${list.join(" | ")}`);
    }
    // Read-only outside any writable directory repeats what --ro-bind / / shows: left out.
    assert.ok(!mounts(bwrapArgv(layout({ readOnly: ["/srv/data"] }), COMMAND, FEATURES)).some((entry) => entry.includes("/srv/data")));
  });

  void test("a writable directory inside another is not bound again (a writable bind follows a link swapped in at its path)", () => {
    const list = mounts(bwrapArgv(layout({ writable: ["/home/u/project", "/home/u/project/sub", "/home/u/project/sub/deeper"] }), COMMAND, FEATURES));
    assert.ok(list.includes("--bind /home/u/project"));
    assert.ok(!list.some((entry) => entry.startsWith("--bind /home/u/project/sub")), list.join(" | "));
    // Under a read-only entry it must be, and is, bound again.
    const narrowed = mounts(bwrapArgv(layout({ writable: ["/home/u/project", "/home/u/project/.git/x"], readOnly: ["/home/u/project/.git"] }), COMMAND, FEATURES));
    assert.ok(narrowed.indexOf("--ro-bind /home/u/project/.git") < narrowed.indexOf("--bind /home/u/project/.git/x"), narrowed.join(" | "));
  });

  void test("a dot-directory holding a read-only or hidden entry is read-only itself (a mount point: it cannot be renamed and made again)", () => {
    const list = mounts(
      bwrapArgv(
        layout({
          writable: ["/home/u", "/home/u/.config/app"],
          readOnly: ["/home/u/.config/git", "/home/u/.bashrc", "/home/u/.config/app/.git"],
          concealed: [{ path: "/home/u/.local/secrets", kind: "directory" }],
        }),
        COMMAND,
        FEATURES,
      ),
    );
    const at = (entry: string): number => {
      const index = list.indexOf(entry);
      assert.ok(index >= 0, `${entry} in ${list.join(" | ")}`);
      return index;
    };
    assert.ok(at("--bind /home/u") < at("--ro-bind /home/u/.config"));
    assert.ok(at("--ro-bind /home/u/.config") < at("--ro-bind /home/u/.config/git"));
    assert.ok(at("--ro-bind /home/u/.local") < at("--tmpfs /home/u/.local/secrets"));
    // A writable directory inside stays writable, and its own entries pin nothing above it.
    assert.ok(at("--ro-bind /home/u/.config") < at("--bind /home/u/.config/app"));
    assert.ok(at("--bind /home/u/.config/app") < at("--ro-bind /home/u/.config/app/.git"));
    assert.ok(!list.includes("--ro-bind /home/u/.config/app"), list.join(" | "));
    // An entry directly in the writable directory is a mount point already.
    assert.ok(!list.some((entry) => entry.startsWith("--ro-bind /home/u ") || entry === "--ro-bind /home/u"), list.join(" | "));
  });

  void test("an entry deep in an ordinary directory pins nothing: the project around it stays writable", () => {
    const list = mounts(
      bwrapArgv(
        layout({
          writable: ["/home/u/project"],
          readOnly: ["/home/u/project/packages/api/.git", "/home/u/project/.config/tool/x/settings.json"],
          concealed: [{ path: "/home/u/project/packages/api/.env", kind: "file" }],
        }),
        COMMAND,
        FEATURES,
      ),
    );
    assert.ok(list.includes("--ro-bind /home/u/project/packages/api/.git"), list.join(" | "));
    assert.ok(list.includes("--ro-bind /dev/null -> /home/u/project/packages/api/.env"), list.join(" | "));
    assert.ok(!list.some((entry) => /^--ro-bind \/home\/u\/project\/packages(\/api)?$/.test(entry)), list.join(" | "));
    assert.ok(!list.includes("--ro-bind /home/u/project/.config"), "nor a dot-directory for a file deeper than its own (a .venv would be read-only)");
    const deepDirectory = mounts(
      bwrapArgv(
        layout({ writable: ["/home/u"], readOnly: ["/home/u/.config/Code/User"], readOnlyDirs: ["/home/u/.config/Code/User"] }),
        COMMAND,
        FEATURES,
      ),
    );
    assert.ok(deepDirectory.includes("--ro-bind /home/u/.config"), `a read-only directory deep in one pins it (.config/Code cannot be moved aside): ${deepDirectory.join(" | ")}`);
  });

  void test("a writable directory that holds the server's files: the way there is read-only (and a mount point), writable places below it stay writable", () => {
    const argv = bwrapArgv(
      layout({
        writable: ["/home/u", "/home/u/.local/state/msl/workspace"],
        hidden: [{ path: "/home/u/.local/state/msl/audit", kind: "directory" }],
        ownDirs: ["/home/u/logs"],
        cwd: "/home/u/.local/state/msl/workspace",
      }),
      COMMAND,
      FEATURES,
    );
    const list = mounts(argv);
    const order = ["--bind /home/u", "--ro-bind /home/u/.local", "--ro-bind /home/u/logs", "--bind /home/u/.local/state/msl/exec-home", "--bind /home/u/.local/state/msl/workspace"];
    const positions = order.map((entry) => list.indexOf(entry));
    assert.ok(positions.every((position) => position >= 0), list.join(" | "));
    assert.deepEqual([...positions].sort((a, b) => a - b), positions, list.join(" | "));
    assert.equal(list.at(-1), "--remount-ro /home/u/.local/state/msl/audit");
    // A directory of the server's that is itself the writable one becomes read-only.
    const own = mounts(bwrapArgv(layout({ ownDirs: ["/home/u/project"] }), COMMAND, FEATURES));
    assert.ok(own.indexOf("--ro-bind /home/u/project") > own.indexOf("--bind /home/u/project"), own.join(" | "));
  });

  void test("under a private directory: mounts come after its tmpfs, and what stays invisible is not hidden again", () => {
    const argv = bwrapArgv(
      layout({
        writable: ["/tmp/t/work"],
        readOnly: ["/tmp/t/work/.git", "/tmp/t/docs"],
        hidden: [
          { path: "/tmp/t/work/policy.yaml", kind: "file" },
          { path: "/tmp/t/state/audit", kind: "directory" }, // under /tmp and not shown again: invisible already
        ],
        home: "/tmp/t/state/exec-home",
        cwd: "/tmp/t/docs",
      }),
      { ...COMMAND, program: "/tmp/t/bin/tool" },
      FEATURES,
    );
    const list = mounts(argv);
    const tmpfs = list.indexOf("--tmpfs /tmp");
    for (const entry of ["--bind /tmp/t/work", "--ro-bind /tmp/t/work/.git", "--ro-bind /tmp/t/docs", "--ro-bind /tmp/t/bin/tool", "--bind /tmp/t/state/exec-home"]) {
      assert.ok(list.indexOf(entry) > tmpfs, `${entry} after the private /tmp: ${list.join(" | ")}`);
    }
    assert.equal(list.at(-1), "--ro-bind /dev/null -> /tmp/t/work/policy.yaml");
    assert.ok(!list.some((entry) => entry.includes("/tmp/t/state/audit")));
  });

  void test("a private directory the policy lets tools write stays the host's", () => {
    const list = mounts(bwrapArgv(layout({ writable: ["/tmp"] }), COMMAND, FEATURES));
    assert.ok(list.includes("--bind /tmp") && !list.includes("--tmpfs /tmp"), list.join(" | "));
    assert.ok(list.includes("--tmpfs /run"));
  });

  void test("bwrap's version decides the optional options", () => {
    const old = bwrapArgv(layout(), COMMAND, { disableUserns: false, argv0: false });
    assert.ok(!old.includes("--disable-userns") && !old.includes("--unshare-user") && !old.includes("--argv0"));
    const recent = bwrapArgv(layout(), { ...COMMAND, argv0: "wc-alias" }, { disableUserns: true, argv0: true });
    assert.deepEqual(recent.slice(recent.indexOf("--argv0"), recent.indexOf("--argv0") + 2), ["--argv0", "wc-alias"]);
  });

  void test("layouts that cannot be given safely are refused", () => {
    layoutError(() => bwrapArgv(layout({ cwd: "relative/dir" }), COMMAND, FEATURES), /working directory must be an absolute path/);
    layoutError(() => bwrapArgv(layout({ writable: ["/a\0b"] }), COMMAND, FEATURES), /absolute path without NUL/);
    layoutError(() => bwrapArgv(layout(), { ...COMMAND, args: ["a\0b"] }, FEATURES), /NUL/);
    layoutError(() => bwrapArgv(layout({ hidden: [{ path: "/", kind: "directory" }] }), COMMAND, FEATURES), /root directory cannot be hidden/);
    layoutError(() => bwrapArgv(layout({ hidden: [{ path: "/home/u/.local/state", kind: "directory" }] }), COMMAND, FEATURES), /HOME lies in a path the sandbox hides/);
    layoutError(
      () => bwrapArgv(layout({ concealed: [{ path: "/home/u/project", kind: "directory" }], cwd: "/home/u/project/src" }), COMMAND, FEATURES),
      /working directory lies in a path the sandbox hides/,
    );
    layoutError(() => bwrapArgv(layout({ privateDirs: ["/"] , writable: [] }), COMMAND, FEATURES), /root directory cannot be made private/);
    layoutError(() => bwrapArgv(layout({ cwd: "/tmp/elsewhere" }), COMMAND, FEATURES), /working directory \/tmp\/elsewhere lies in a private directory/);
  });
});
