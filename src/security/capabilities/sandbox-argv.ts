/**
 * The bubblewrap command line for one `ctx.exec` call: a pure function from what the call may
 * see and touch (a `SandboxLayout`, gathered by `sandbox.ts` from the policy and the disk) to
 * bwrap's argv. No shell is involved: every path is one argv element, whatever it holds.
 *
 * The sandbox:
 * - every namespace bwrap supports (user, IPC, PID, network, UTS, cgroup): no network but a
 *   loopback of its own; a PID namespace whose end kills every process in it, setsid or not.
 *   The program is its PID 1 (`--as-pid-1`): bwrap's own init would be reaped by nobody, since
 *   the bwrap the server started exits as soon as that init reports the program's exit status,
 *   leaving it a zombie for the host's PID 1 (a container's PID 1 may never reap it). As PID 1
 *   the program is reaped by that bwrap, and the orphans it did not reap go with the namespace.
 *   `--die-with-parent` ties it to the bwrap the server started. `--new-session` keeps the
 *   program off the server's terminal (TIOCSTI); every capability is dropped; where bwrap
 *   supports it no user namespace can be made inside.
 * - the host read-only, a fresh /proc (the sandbox's processes only) that is read-only too, a minimal /dev, and empty
 *   private directories over /tmp, /var/tmp and /run: those hold other programs' sockets
 *   (ssh-agent, D-Bus, docker.sock), and a read-only mount does not stop `connect()` on a socket.
 * - the policy's writable directories read-write; inside them what must stay read-only
 *   (write_denied_paths) or hidden (denied_paths), and HOME.
 * - the server's own files hidden, last, so no mount above can uncover them: a directory under an
 *   empty read-only tmpfs, a file under /dev/null (which, mounted nodev, cannot even be opened).
 *
 * Mounts apply in order and a later one covers an earlier one, so the order is the design:
 * 1. the host, /proc, /dev;
 * 2. the directory mounts outside the private directories, parents before children (a
 *    deeper mount overrides a shallower one, read-write before read-only at the same path);
 * 3. the private directories: whatever 2 put there (a directory entry a program running in another
 *    call swapped for a symbolic link between the check and the mount, say) is covered again;
 * 4. the directory mounts inside the private directories (a writable directory under /tmp);
 * 5. the server's own files.
 *
 * A directory of the server's that lies inside a writable directory must not be renamed or
 * replaced from inside (a renamed state directory and a symbolic link in its place would make the
 * next call hide the wrong files): the child of the writable directory that leads to it is
 * mounted read-only ("anchors" below), which also makes it a mount point, which cannot be renamed.
 * So is a dot-directory holding a read-only or hidden entry ("pins"): renamed, it would take the
 * entry's mount along and leave its name free for a replacement.
 */
import * as path from "node:path";

/** `commands.sandbox`: `required` refuses to run unsandboxed, `auto` sandboxes when it can, `off` never. */
export type SandboxMode = "auto" | "required" | "off";

export const SANDBOX_MODES: readonly SandboxMode[] = ["auto", "required", "off"];

/** One path to hide: a directory is covered with an empty read-only tmpfs, anything else with /dev/null. */
export interface HiddenPath {
  readonly path: string;
  readonly kind: "directory" | "file";
}

/** What one call's program may see and touch. Every path absolute and real (no symbolic links). */
export interface SandboxLayout {
  /** Directories covered by an empty tmpfs (only those that exist as directories on the host). */
  readonly privateDirs: readonly string[];
  /** Whole directory trees the program may write: the policy's writable allowed directories. */
  readonly writable: readonly string[];
  /** Read-only: paths inside writable directories (write_denied_paths), allowed directories under a private one. */
  readonly readOnly: readonly string[];
  /** The directories among `readOnly` (a deep one pins its dot-directory: see pins). */
  readonly readOnlyDirs?: readonly string[];
  /** Hidden: what denied_paths refuses in the allowed directories (at any depth) and at the first levels of the user's home. */
  readonly concealed: readonly HiddenPath[];
  /** The server's own files (audit log, key, policy, state): hidden last. */
  readonly hidden: readonly HiddenPath[];
  /** Directories whose entries the server owns by name (the audit log's): never writable, never renamed. */
  readonly ownDirs: readonly string[];
  /** HOME (the state directory's exec-home/): writable. */
  readonly home: string;
  /** The working directory. */
  readonly cwd: string;
}

/** What bwrap on this machine supports (from its version). */
export interface BwrapFeatures {
  /** `--disable-userns` (bubblewrap 0.8.0 and later). */
  readonly disableUserns: boolean;
  /** `--argv0` (bubblewrap 0.9.0 and later). */
  readonly argv0: boolean;
}

export interface SandboxCommand {
  /** The real path of the program (the command guard's verdict). */
  readonly program: string;
  /** The name it was called by: multi-call programs act on it (with `features.argv0` only). */
  readonly argv0: string;
  readonly args: readonly string[];
}

/** A layout bwrap cannot be given safely; the call is refused, nothing runs. */
export class SandboxLayoutError extends Error {
  readonly code = "COMMAND_SANDBOX_LAYOUT";
  constructor(message: string) {
    super(message);
    this.name = "SandboxLayoutError";
  }
}

/** The namespace and process options, shared with the probe (which must test exactly these). */
export function isolationArgs(features: BwrapFeatures): string[] {
  return [
    "--unshare-all",
    ...(features.disableUserns ? ["--unshare-user", "--disable-userns"] : []),
    "--as-pid-1",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
  ];
}

type MountKind = "rw" | "ro" | "hide-dir" | "hide-file";
interface Mount {
  readonly path: string;
  readonly kind: MountKind;
}
/** At the same path, the later kind wins: read-only over read-write, hidden over both. */
const KIND_ORDER: Readonly<Record<MountKind, number>> = { rw: 0, ro: 1, "hide-dir": 2, "hide-file": 2 };

/**
 * The first mounts, shared with the probe: the host read-only, a fresh /proc, a minimal /dev.
 * The fresh /proc is made read-only as a whole: bwrap covers only /proc/sys's subdirectories it
 * finds writable, and the kernel answers "not writable" for /proc/sys itself whatever its files
 * say, so its files stay writable to a program whose user is root on the host (a server run as
 * root): kernel.core_pattern or kernel.modprobe name a program the kernel then runs as root outside
 * every namespace. Without capabilities the program cannot make it writable again.
 */
export function baseMountArgs(): string[] {
  return ["--ro-bind", "/", "/", "--proc", "/proc", "--remount-ro", "/proc", "--dev", "/dev"];
}

/** bwrap's argv (without bwrap itself) for running `command` under `layout`. Throws `SandboxLayoutError`. */
export function bwrapArgv(layout: SandboxLayout, command: SandboxCommand, features: BwrapFeatures): string[] {
  const home = checked(layout.home, "HOME");
  const cwd = checked(layout.cwd, "the working directory");
  const program = checked(command.program, "the program");
  if (command.argv0.includes("\0")) throw new SandboxLayoutError("the program name holds a NUL byte");
  for (const arg of command.args) {
    if (arg.includes("\0")) throw new SandboxLayoutError("an argument holds a NUL byte");
  }
  const writable = unique(layout.writable.map((p) => checked(p, "a writable directory")));
  // A private directory the policy lets tools write (`/tmp/**` allowed) stays the host's: a private copy would hide the allowed files.
  const privateDirs = unique(layout.privateDirs.map((p) => checked(p, "a private directory"))).filter((dir) => !writable.some((w) => contains(w, dir)));
  if (privateDirs.includes("/")) throw new SandboxLayoutError("the root directory cannot be made private");
  const hidden = layout.hidden.map((entry) => ({ path: checked(entry.path, "a hidden path"), kind: entry.kind }));
  const concealed = layout.concealed.map((entry) => ({ path: checked(entry.path, "a hidden path"), kind: entry.kind }));
  const ownDirs = layout.ownDirs.map((p) => checked(p, "a directory of the server's"));
  const readOnly = layout.readOnly.map((p) => checked(p, "a read-only path"));
  for (const entry of [...hidden, ...concealed]) {
    if (entry.path === "/") throw new SandboxLayoutError("the root directory cannot be hidden");
    // Covering these would break the call in a way that looks like the program's fault: refuse it plainly.
    for (const [p, what] of [[home, "HOME"], [cwd, "the working directory"], [program, "the program"]] as const) {
      // Not named: it may be one of the server's own files, whose place a model is not told.
      if (contains(entry.path, p)) throw new SandboxLayoutError(`${what} lies in a path the sandbox hides (the server's own files, or a denied path)`);
    }
  }

  const narrowing: Mount[] = [
    ...readOnly.map((p) => ({ path: p, kind: "ro" as const })),
    ...concealed.map((entry) => ({ path: entry.path, kind: entry.kind === "directory" ? ("hide-dir" as const) : ("hide-file" as const) })),
    ...anchors(writable, hidden, ownDirs).map((p) => ({ path: p, kind: "ro" as const })),
    ...pins(writable, [...readOnly, ...concealed.map((entry) => entry.path)], new Set(layout.readOnlyDirs ?? [])).map((p) => ({ path: p, kind: "ro" as const })),
  ];
  // A writable directory inside another one is writable through it already, unless a narrower mount lies on the
  // way. Bound again it would be a writable bind at a path a program running concurrently may have swapped for a
  // symbolic link (one that did not exist when its own call started, so is no mount point there), and bwrap follows
  // a link at a mount's destination: whatever the link names would be writable.
  const reachable = (w: string): boolean =>
    writable.some((outer) => outer !== w && contains(outer, w) && !narrowing.some((m) => m.path !== outer && contains(outer, m.path) && contains(m.path, w)));
  const mounts: Mount[] = [
    ...writable.filter((w) => !reachable(w)).map((p) => ({ path: p, kind: "rw" as const })),
    ...narrowing,
    // The program itself, wherever it lies (a private /tmp would hide it otherwise).
    { path: program, kind: "ro" },
    { path: home, kind: "rw" },
  ];
  const underPrivate = (p: string): boolean => privateDirs.some((dir) => contains(dir, p) && dir !== p);
  // Outside the private directories, a mount that only repeats what `--ro-bind / /` shows is left out.
  const outside = mounts.filter((m) => !underPrivate(m.path) && !(m.kind === "ro" && !writable.some((w) => contains(w, m.path))));
  const inside = mounts.filter((m) => underPrivate(m.path));
  if (underPrivate(cwd) && !inside.some((m) => (m.kind === "rw" || m.kind === "ro") && contains(m.path, cwd))) {
    throw new SandboxLayoutError(`the working directory ${cwd} lies in a private directory and is not an allowed directory`);
  }

  const argv: string[] = [...isolationArgs(features), ...baseMountArgs()];
  for (const m of ordered(outside)) argv.push(...mountArgs(m));
  for (const dir of privateDirs) argv.push("--tmpfs", dir);
  for (const m of ordered(inside)) argv.push(...mountArgs(m));
  // What lies in a private directory and was not shown again is invisible already.
  const exposed = (p: string): boolean => !underPrivate(p) || inside.some((m) => (m.kind === "rw" || m.kind === "ro") && contains(m.path, p));
  const hiddenDirs = hidden.filter((entry) => entry.kind === "directory").map((entry) => entry.path);
  for (const entry of ordered(hidden.map((e) => ({ path: e.path, kind: e.kind === "directory" ? ("hide-dir" as const) : ("hide-file" as const) })))) {
    // Inside a hidden directory there is nothing left to hide (and no mount point to hide it on).
    if (hiddenDirs.some((dir) => dir !== entry.path && contains(dir, entry.path))) continue;
    if (exposed(entry.path)) argv.push(...mountArgs(entry));
  }
  argv.push("--chdir", cwd);
  if (features.argv0) argv.push("--argv0", command.argv0);
  argv.push("--", program, ...command.args);
  return argv;
}

/**
 * For each writable directory holding something of the server's (deeper than itself): its child
 * on the way there, read-only. A directory of the server's that is itself writable is made read-only.
 * Hidden files and directories directly inside need none: they are mount points already.
 */
function anchors(writable: readonly string[], hidden: readonly HiddenPath[], ownDirs: readonly string[]): string[] {
  const found: string[] = [];
  for (const root of writable) {
    for (const own of [...hidden.map((entry) => entry.path), ...ownDirs]) {
      if (!contains(root, own)) continue;
      if (own === root) {
        if (ownDirs.includes(own)) found.push(own);
        continue;
      }
      const first = own.slice(root === "/" ? 1 : root.length + 1).split("/")[0]!;
      const anchor = root === "/" ? `/${first}` : `${root}/${first}`;
      if (anchor === own && !ownDirs.includes(own)) continue;
      found.push(anchor);
    }
  }
  return unique(found);
}

/**
 * For each read-only or hidden entry directly inside a dot-directory of a writable directory
 * (`.config/git`, `.local/bin`), and each read-only directory deeper in one (`.config/Code/User`):
 * that dot-directory, read-only. A mount point cannot be renamed, but a directory holding one can:
 * a `.config` (or `.config/Code`) moved aside and made again with a `.config/git/config` of the
 * program's own is a write where write_denied_paths refuses one. Read-only, not writable in place:
 * bwrap follows a symbolic link at a mount's destination, and one swapped in meanwhile (by a tool's
 * move_file, say) would make what it names writable. Other entries pin nothing: that would make a
 * whole project (`packages/` for `packages/api/.git/`) or virtualenv (`.venv/` for a file of its
 * `site-packages/*.pth`) read-only; moved aside, a directory keeps its entries' mounts, and only a
 * new entry can be made at the old name, as anywhere in a writable directory. The innermost
 * writable directory holding the entry counts (a nested one stays writable).
 */
function pins(writable: readonly string[], entries: readonly string[], directories: ReadonlySet<string>): string[] {
  const found: string[] = [];
  for (const entry of entries) {
    const roots = writable.filter((w) => w !== entry && contains(w, entry));
    if (roots.length === 0) continue;
    const root = roots.reduce((a, b) => (b.length > a.length ? b : a));
    const parts = entry.slice(root === "/" ? 1 : root.length + 1).split("/");
    const first = parts[0]!;
    if (first.startsWith(".") && (parts.length === 2 || (parts.length > 2 && directories.has(entry)))) found.push(root === "/" ? `/${first}` : `${root}/${first}`);
  }
  return unique(found);
}

function mountArgs(m: Mount): string[] {
  switch (m.kind) {
    case "rw":
      return ["--bind", m.path, m.path];
    case "ro":
      return ["--ro-bind", m.path, m.path];
    case "hide-dir":
      return ["--tmpfs", m.path, "--remount-ro", m.path];
    case "hide-file":
      return ["--ro-bind", "/dev/null", m.path];
  }
}

function checked(p: string, what: string): string {
  if (typeof p !== "string" || !path.posix.isAbsolute(p) || p.includes("\0")) {
    throw new SandboxLayoutError(`${what} must be an absolute path without NUL bytes, got ${JSON.stringify(p)}`);
  }
  const normalized = path.posix.normalize(p);
  return normalized.length > 1 ? normalized.replace(/\/+$/, "") : normalized;
}

/** Whole-component containment, the path itself included: `/data-evil` is not inside `/data`. */
function contains(root: string, candidate: string): boolean {
  if (root === "/" || candidate === root) return true;
  return candidate.startsWith(`${root}/`);
}

function unique(paths: readonly string[]): string[] {
  return [...new Set(paths)];
}

/** Parents before children; at the same path read-write, then read-only, then hidden; one mount per path and kind. */
function ordered(mounts: readonly Mount[]): Mount[] {
  const depth = (p: string): number => (p === "/" ? 0 : p.split("/").length);
  const seen = new Set<string>();
  return mounts
    .filter((m) => {
      const key = `${m.kind}\0${m.path}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .sort((a, b) => depth(a.path) - depth(b.path) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0) || KIND_ORDER[a.kind] - KIND_ORDER[b.kind]);
}
