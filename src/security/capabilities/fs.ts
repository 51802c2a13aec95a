/**
 * The guarded filesystem capability (`ctx.fs`). Every call runs the path guard, then
 * operates on the checked real path only, and verifies after opening that the
 * descriptor is the file that was checked (same device and inode), which closes the
 * check-then-open race for existing files.
 *
 * Errors: a refusal by the policy (or a detected race, hard link, special file, size
 * cap) throws `CapabilityDeniedError`; an operating-system failure after the policy
 * allowed the path (not found, exists, is a directory, permission) throws `ToolError`
 * with a stable code and a message the model can act on. No raw stack leaves here.
 *
 * Node has no `openat`/`mkdirat`: new files and directories are created through the
 * `/proc/self/fd/N` link of a verified descriptor of their parent directory, which
 * works like them. Residual risk, stated plainly: where /proc is not available they
 * are created by path and verified after creation; if a parent directory is swapped
 * for a symlink in that instant, an empty file or directory may appear outside the
 * root (the swap is detected, nothing is written to it, and PATH_RACE is thrown).
 */
// fs.promises is loaded on first use (it costs a cold start ~1.4 ms otherwise).
import { constants as FS, promises as fsp, type BigIntStats, type Dir } from "node:fs";
import { randomBytes } from "node:crypto";
import { basename } from "node:path";
import type { FileHandle } from "node:fs/promises";
import { CapabilityDeniedError, ToolError } from "../../plugins/contract.js";
import type { DirEntry, FileInfo, FileKind, GuardedFs, ReadOptions, WriteOptions } from "../../plugins/contract.js";
import { allowedEntriesOf, checkPath, decideRealPath, nodePathIo, quote } from "../path-guard.js";
import type { CompiledPathPolicy, FileIdentity, PathAccess, PathAllowed, PathIo } from "../path-guard.js";

export interface FsLimits {
  /** Bytes returned by one read at most; longer reads are truncated to this. */
  maxReadBytes: number;
  /** Bytes accepted by one write at most; larger writes are refused. */
  maxWriteBytes: number;
  /**
   * Memory one listing may hold, estimated per entry from its name (default 64 MiB: ~600,000
   * names of 8 characters, ~110,000 of 250); a larger directory is refused instead of
   * growing the server's memory without bound.
   */
  maxListBytes?: number;
}

export const DEFAULT_MAX_LIST_BYTES = 64 * 1024 * 1024;
/** What one listed entry costs besides its name's characters (measured: ~73 bytes with an 8-character name). */
const LIST_ENTRY_BYTES = 96;

export interface GuardedFsOptions {
  /** Effects of the path check (default: node:fs/promises). */
  io?: PathIo;
  /**
   * Directory of the process's open descriptors (default `/proc/self/fd` on Linux, `null`
   * elsewhere): through it a descriptor's own path is checked, a directory is listed and a
   * name is made in a parent directory exactly as verified. `null` (or a directory that does
   * not work so) goes by path with the identity checks alone: listings re-check the
   * directory afterwards, replacing a file's content writes in place, and moves are refused.
   */
  procFdDir?: string | null;
  /** The rename that puts a replacement in place (default node:fs/promises); tests make it fail. */
  rename?: (from: string, to: string) => Promise<void>;
  /** The link(2) that gives a moved file its new name (default node:fs/promises); tests make it fail or race. */
  link?: (existing: string, newName: string) => Promise<void>;
  /** The unlink(2) that removes a moved file's old name, or undoes its new one (default node:fs/promises); tests make it fail. */
  unlink?: (name: string) => Promise<void>;
  /** One write(2) of a file's content, returning the bytes written (default FileHandle.write); tests make it fail half way. */
  write?: (handle: FileHandle, bytes: Uint8Array, offset: number, length: number, position: number | null) => Promise<number>;
}

const READ_FLAGS = FS.O_RDONLY | FS.O_NOFOLLOW | FS.O_NONBLOCK | FS.O_NOCTTY;
const DIR_FLAGS = FS.O_RDONLY | FS.O_NOFOLLOW | FS.O_NONBLOCK | FS.O_DIRECTORY;
// No O_TRUNC: truncating happens only after the descriptor is verified.
const WRITE_FLAGS = FS.O_WRONLY | FS.O_CREAT | FS.O_NOFOLLOW | FS.O_NONBLOCK | FS.O_NOCTTY;
const FILE_MODE = 0o600;
/** Where the kernel shows this process's open descriptors (Linux); elsewhere reading it fails and checks go by path. */
const PROC_FD = "/proc/self/fd";
const DIR_MODE = 0o700;

export function createGuardedFs(compiled: CompiledPathPolicy, limits: FsLimits, options: GuardedFsOptions = {}): GuardedFs {
  for (const [name, value] of Object.entries(limits)) {
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`filesystem limit ${name} must be a positive integer`);
  }
  const maxListBytes = limits.maxListBytes ?? DEFAULT_MAX_LIST_BYTES;
  const io = options.io ?? nodePathIo;
  const procFdDir = options.procFdDir === undefined ? (process.platform === "linux" ? PROC_FD : null) : options.procFdDir;
  const renameFile = options.rename ?? ((from: string, to: string) => fsp.rename(from, to));
  const linkFile = options.link ?? ((existing: string, newName: string) => fsp.link(existing, newName));
  const unlinkFile = options.unlink ?? ((name: string) => fsp.unlink(name));
  const writeChunk =
    options.write ??
    (async (handle: FileHandle, bytes: Uint8Array, offset: number, length: number, position: number | null) =>
      (await handle.write(bytes, offset, length, position)).bytesWritten);

  async function check(p: string, access: PathAccess): Promise<{ verdict: PathAllowed; shown: string }> {
    const verdict = await checkPath(compiled, p, access, io);
    if (!verdict.ok) throw new CapabilityDeniedError(verdict.code, verdict.reason);
    return { verdict, shown: quote(p) };
  }

  async function readChecked(p: string, options: ReadOptions): Promise<{ bytes: Uint8Array; truncated: boolean; info: FileInfo }> {
    const offset = options.offset ?? 0;
    const length = options.length ?? limits.maxReadBytes;
    if (!Number.isSafeInteger(offset) || offset < 0) throw invalidArgument("offset must be a non-negative integer");
    if (!Number.isSafeInteger(length) || length < 0) throw invalidArgument("length must be a non-negative integer");
    const { verdict, shown } = await check(p, "read");
    if (verdict.isDirectory) throw new ToolError(`path ${shown} is a directory; only files can be read`, "PATH_IS_DIRECTORY");
    const { handle, stat } = await openVerifiedForRead(verdict, shown, procFdDir);
    try {
      const available = Math.max(0, Number(stat.size) - offset);
      const want = Math.min(length, limits.maxReadBytes, available);
      const bytes = new Uint8Array(want);
      let filled = 0;
      while (filled < want) {
        const { bytesRead } = await handle.read(bytes, filled, want - filled, offset + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return { bytes: bytes.subarray(0, filled), truncated: filled < available, info: fileInfo(verdict.realPath, stat) };
    } catch (error) {
      throw toFsError(error, shown);
    } finally {
      await handle.close();
    }
  }

  return {
    limits: { maxReadBytes: limits.maxReadBytes, maxWriteBytes: limits.maxWriteBytes },
    allowedDirectories() {
      // A root whose real directory a deny rule or the server's own files cover (an allowed link
      // into ~/.ssh) is not shown: its real path is what the policy hides.
      const shown = compiled.roots.filter((root) => {
        const decision = decideRealPath(compiled, root.realRoot);
        return decision.ok || decision.code === "PATH_OUTSIDE_ROOTS";
      });
      return {
        directories: shown.map((root) => ({ path: root.realRoot, pattern: root.entry })),
        ...(compiled.baseDir === undefined ? {} : { base: compiled.baseDir }),
      };
    },
    async resolve(p, access) {
      if (access !== "read" && access !== "write") throw invalidArgument('access must be "read" or "write"');
      return (await check(p, access)).verdict.realPath;
    },

    async stat(p) {
      const { verdict, shown } = await check(p, "read");
      if (verdict.identity === undefined) throw notFound(shown, verdict.realPath);
      const stat = await statVerified(verdict.realPath, verdict.identity, shown, procFdDir);
      // A file's other name may be outside the root or denied: its size and times are refused as its content is.
      if (stat.isFile() && stat.nlink > 1n) {
        throw hardLinked(shown);
      }
      return fileInfo(verdict.realPath, stat);
    },

    async readBytes(p, options = {}) {
      return (await readChecked(p, options)).bytes;
    },

    async read(p, options = {}) {
      const { bytes, info } = await readChecked(p, options);
      return { bytes, info };
    },

    async readText(p, options = {}) {
      const { bytes, truncated } = await readChecked(p, options);
      // When the cap (or `length`) cut the file, hold back a trailing partial UTF-8 sequence
      // instead of turning it into U+FFFD; the caller continues from `offset + byteLength(text)`.
      return new TextDecoder("utf-8").decode(bytes, { stream: truncated });
    },

    async list(p, options = {}) {
      const { verdict, shown } = await check(p, "read");
      if (verdict.identity === undefined) throw notFound(shown, verdict.realPath);
      if (!verdict.isDirectory) throw new ToolError(`path ${shown} is not a directory`, "PATH_NOT_DIRECTORY");
      const allowed = allowedEntriesOf(compiled, verdict.realPath);
      const entries = await readDirectoryVerified(verdict, verdict.identity, shown, procFdDir, { maxBytes: maxListBytes, signal: options.signal });
      return entries.filter((entry) => allowed(entry.name)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    },

    async writeFile(p, data, options = {}) {
      refuseDirectoryName(p, "write a file to its path");
      const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
      if (!(bytes instanceof Uint8Array)) throw invalidArgument("data must be a string or a Uint8Array");
      if (bytes.byteLength > limits.maxWriteBytes) {
        throw new CapabilityDeniedError(
          "FS_WRITE_TOO_LARGE",
          `write of ${bytes.byteLength} bytes refused: the filesystem policy allows at most ${limits.maxWriteBytes} bytes per write`,
        );
      }
      const { verdict, shown } = await check(p, "write");
      if (options.append !== true && options.exclusive !== true && verdict.exists) {
        const replaced = await replaceAtomically(verdict, shown, bytes, renameFile, writeChunk, procFdDir, options.signal);
        if (replaced !== undefined) return replaced;
        // The directory does not let this process make a file in it: the file is written in place.
      }
      const handle = await openVerifiedForWrite(verdict, shown, options, procFdDir);
      let written = 0;
      let start: bigint | undefined;
      let truncated = false;
      try {
        // Where a failed append is cut back to (a new file is removed instead).
        if (options.append === true && verdict.exists) start = (await handle.stat({ bigint: true })).size;
        if (options.signal?.aborted === true) throw callEnded();
        if (options.append !== true) {
          await handle.truncate(0);
          truncated = verdict.exists;
        }
        while (written < bytes.byteLength) {
          const position = options.append === true ? null : written;
          written += await writeChunk(handle, bytes, written, bytes.byteLength - written, position);
        }
        return fileInfo(verdict.realPath, await handle.stat({ bigint: true }));
      } catch (error) {
        // A full disk half way through must not leave part of the content as if it were the file
        // (a retry would find it "already exists", or append it twice).
        await undoPartialWrite(handle, verdict, shown, procFdDir, start, written).catch(() => undefined);
        const failure = toFsError(error, shown);
        // Said, not left to be assumed: a rewrite in place has nothing of the old content to go back to.
        if (truncated && failure instanceof ToolError) {
          throw new ToolError(
            `${failure.message}; the old content is gone: the file was rewritten in place (a new file could not take its name there) ` +
              `and holds the first ${written} of ${bytes.byteLength} bytes of the new content`,
            failure.code,
          );
        }
        throw failure;
      } finally {
        await handle.close();
      }
    },

    async move(from, to, options = {}) {
      // A function, not a value read once: the call can end at any await below.
      const ended = (): boolean => options.signal?.aborted === true;
      refuseDirectoryName(to, "give the file's new path (into a directory: the directory, then the file name)");
      const source = await check(from, "write");
      const target = await check(to, "write");
      const identity = source.verdict.identity;
      if (identity === undefined) throw notFound(source.shown, source.verdict.realPath);
      if (source.verdict.isDirectory) throw new ToolError(`path ${source.shown} is a directory; only files can be moved`, "PATH_IS_DIRECTORY");
      if (source.verdict.realPath === target.verdict.realPath) throw new ToolError(`${source.shown} and ${target.shown} are the same file`, "PATH_EXISTS");
      if (target.verdict.exists && target.verdict.isDirectory) {
        // As `mv` would read it, a directory destination means "into it": said, not guessed (the name is the caller's to give).
        throw new ToolError(
          `path ${target.shown} is a directory; give the file's new path inside it (the directory followed by the file name)`,
          "PATH_IS_DIRECTORY",
        );
      }
      if (target.verdict.exists) throw new ToolError(`path ${target.shown} already exists; a move never replaces a file`, "PATH_EXISTS");
      const sourceParent = requireParent(source.verdict, source.shown);
      const targetParent = requireParent(target.verdict, target.shown);
      await inVerifiedParent(source.verdict.realPath, sourceParent, source.shown, procFdDir, async (sourceName, sourceDir, sourceThrough) => {
        // By path, a parent swapped for a link between the check and the link(2) would leave the
        // file's second name wherever that link led, beyond undoing: no move without /proc.
        if (!sourceThrough) throw noMoveHere(source.shown);
        // The name must still hold the file that was checked: a regular file with one link.
        const before = await fsp.lstat(sourceName, { bigint: true }).catch((error: unknown) => {
          throw toFsError(error, source.shown);
        });
        if (!sameIdentity(before, identity)) throw raced(source.shown);
        requireRegularSingleLink(before, source.shown);
        // A moved file keeps its mode: an executable one could stand in for a command at its new
        // name (a tool writes new files 0600, and never makes one executable).
        if ((before.mode & 0o7111n) !== 0n) {
          throw new CapabilityDeniedError("PATH_EXECUTABLE", `path ${source.shown} is executable (or setuid/setgid); move_file moves files without execute permission only`);
        }
        // A moved file keeps its owner too, who could make it executable (or rewrite it) at its new place.
        const uid = process.getuid?.();
        if (uid !== undefined && before.uid !== BigInt(uid)) {
          throw new CapabilityDeniedError("PATH_NOT_OWNED", `path ${source.shown} belongs to another user; move_file moves files of the server's own user only`);
        }
        await inVerifiedParent(target.verdict.realPath, targetParent, target.shown, procFdDir, async (targetName, targetDir, targetThrough) => {
          if (!targetThrough) throw noMoveHere(target.shown);
          if (ended()) throw callEnded("move");
          // A link, then an unlink: link fails on an existing name, so nothing made meanwhile is
          // replaced (rename would replace it), and the file always has a name.
          await linkFile(sourceName, targetName).catch(async (error: unknown) => {
            throw await linkRefusal(error, sourceName, source.shown, target.shown);
          });
          const identityOf = (name: string): Promise<BigIntStats | undefined> => fsp.lstat(name, { bigint: true }).catch(() => undefined);
          const ours = async (name: string): Promise<boolean> => {
            const now = await identityOf(name);
            return now !== undefined && sameIdentity(now, identity);
          };
          try {
            // A file swapped in at the source between the lstat and the link: the new name is its.
            if (!(await ours(targetName))) throw raced(source.shown);
            // The new name durable before the old one goes.
            await targetDir.sync().catch(() => undefined);
            // Checked last, right before the unlink: a program that saved the source meanwhile
            // (by rename) keeps its new content, and the move is undone.
            if (!(await ours(sourceName))) throw raced(source.shown);
            // A call that ended during the sync or that look (its response already says it failed)
            // is undone, not completed: nothing is awaited between this check and the unlink.
            if (ended()) throw callEnded("move");
            await unlinkFile(sourceName);
          } catch (error) {
            // Undone only where the new name is this file, or the file the source name now holds
            // (swapped in before the link): the content keeps its other name, and a file someone
            // else put at the new name meanwhile is left alone.
            const [atTarget, atSource] = await Promise.all([identityOf(targetName), identityOf(sourceName)]);
            if (atTarget !== undefined && (sameIdentity(atTarget, identity) || (atSource !== undefined && sameIdentity(atTarget, atSource)))) {
              const undone = await unlinkFile(targetName).then(
                () => true,
                () => false,
              );
              if (!undone) {
                // Both names stay, and every tool refuses a file with two names: say which, so a person can remove one.
                throw new ToolError(
                  `moving ${source.shown} failed half way (${toFsError(error, source.shown).message}) and the new name could not be removed: ` +
                    `the file now has two names, ${source.shown} and ${target.shown}; remove one`,
                  "PATH_MOVE_INCOMPLETE",
                );
              }
            }
            throw toFsError(error, source.shown);
          }
          await sourceDir.sync().catch(() => undefined);
        });
      });
      return fileInfo(target.verdict.realPath, await lstatOrThrow(target.verdict.realPath, target.shown));
    },

    async mkdir(p) {
      const { verdict, shown } = await check(p, "write");
      if (verdict.exists) throw new ToolError(`path ${shown} already exists`, "PATH_EXISTS");
      const parent = requireParent(verdict, shown);
      await inVerifiedParent(verdict.realPath, parent, shown, procFdDir, async (target) => {
        try {
          await fsp.mkdir(target, { mode: DIR_MODE });
        } catch (error) {
          throw toFsError(error, shown);
        }
      });
      const created = await lstatOrThrow(verdict.realPath, shown);
      if (!created.isDirectory() || !(await parentUnchanged(parent))) throw raced(shown);
      return fileInfo(verdict.realPath, created);
    },
  };
}

// ---------------------------------------------------------------------------
// Open-and-verify (exported so tests can drive them with a stale verdict)
// ---------------------------------------------------------------------------

/**
 * Opens a checked path for reading without following a final symlink and without
 * blocking on a FIFO, then requires a regular file with one link whose device and
 * inode equal the ones seen at check time. The caller closes the handle.
 */
export async function openVerifiedForRead(
  verdict: PathAllowed,
  shown: string,
  procFd: string | null = PROC_FD,
): Promise<{ handle: FileHandle; stat: BigIntStats }> {
  if (verdict.identity === undefined) throw notFound(shown, verdict.realPath);
  if (verdict.special === true) throw notRegular(shown);
  const handle = await openOrThrow(verdict.realPath, READ_FLAGS, shown);
  try {
    const stat = await handle.stat({ bigint: true });
    if (!sameIdentity(stat, verdict.identity)) throw raced(shown);
    await requireOpenedAt(handle, verdict.realPath, shown, procFd);
    requireRegularSingleLink(stat, shown);
    return { handle, stat };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * Linux's O_PATH (not in Node's fs.constants; the generic value, which every architecture Node
 * runs on uses): a descriptor that names a file without opening it, so nothing a device or
 * FIFO does on open happens, and whose own path /proc tells.
 */
const O_PATH = process.platform === "linux" ? 0o10000000 : undefined;

/**
 * The checked path's metadata, from a descriptor whose own path is checked (as reads are): by
 * path alone, a parent swapped for a link during the check and left so shows an outside file's
 * size, times and mode as the checked file's (its identity was taken through the same link).
 * Without O_PATH or /proc, by path with the identity check alone.
 */
async function statVerified(realPath: string, identity: FileIdentity, shown: string, procFd: string | null): Promise<BigIntStats> {
  if (O_PATH === undefined || procFd === null) {
    const stat = await lstatOrThrow(realPath, shown);
    if (!sameIdentity(stat, identity)) throw raced(shown);
    return stat;
  }
  const handle = await openOrThrow(realPath, O_PATH | FS.O_NOFOLLOW, shown);
  try {
    const stat = await handle.stat({ bigint: true });
    if (!sameIdentity(stat, identity)) throw raced(shown);
    await requireOpenedAt(handle, realPath, shown, procFd);
    return stat;
  } finally {
    await handle.close();
  }
}

/**
 * Opens (creating with mode 0600 when absent) a checked path for writing, never
 * following a final symlink and never truncating before the descriptor is verified:
 * an existing file must still be the one checked; a new file must sit in the same
 * parent directory that was checked.
 */
export async function openVerifiedForWrite(
  verdict: PathAllowed,
  shown: string,
  options: WriteOptions = {},
  procFd: string | null = PROC_FD,
): Promise<FileHandle> {
  if (verdict.isDirectory) throw new ToolError(`path ${shown} is a directory; give a file path`, "PATH_IS_DIRECTORY");
  if (verdict.special === true) throw notRegular(shown);
  if (verdict.exists && options.exclusive === true) {
    throw new ToolError(`path ${shown} already exists (exclusive write); choose another name or drop exclusive`, "PATH_EXISTS");
  }
  const parent = requireParent(verdict, shown);
  let flags = WRITE_FLAGS;
  if (options.exclusive === true) flags |= FS.O_EXCL;
  if (options.append === true) flags |= FS.O_APPEND;
  const handle = await openInVerifiedParent(verdict.realPath, parent, flags, shown, procFd);
  try {
    const stat = await handle.stat({ bigint: true });
    await requireOpenedAt(handle, verdict.realPath, shown, procFd);
    if (verdict.identity !== undefined) {
      if (!sameIdentity(stat, verdict.identity)) throw raced(shown);
    } else {
      // Created now (or by someone else since the check): it must be the entry at the
      // checked name, in the checked parent directory.
      const atName = await fsp.lstat(verdict.realPath, { bigint: true }).catch(() => undefined);
      if (atName === undefined || !sameIdentity(atName, stat) || !(await parentUnchanged(parent))) throw raced(shown);
    }
    requireRegularSingleLink(stat, shown);
    return handle;
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * Replaces an existing file's content all at once: the new content goes to a new file in the
 * same verified directory, synced, then renamed over the old one (and the directory synced), so
 * a write that fails half way (a full disk, a crash) leaves the old content whole instead of a
 * truncated file. The file to replace must still be the one checked (a regular file with one
 * link). Undefined, nothing left behind, where a new file could not stand in for the old one
 * exactly, so the caller writes in place as before:
 * - a setuid or setgid file (a replacement must never carry those bits with new content);
 * - a file another user owns, for a server that is not root (the owner would change);
 * - no /proc to reach the directory through its verified descriptor (the rename would go by path);
 * - a directory that refuses a new file or a rename (not writable, read-only, sticky, a file
 *   bind-mounted in place: EACCES, EPERM, EROFS, EBUSY, EXDEV), or a group the server cannot give.
 * The temporary file is made 0600 and given the old mode only after its owner: at no moment is
 * there a file with the new content that someone the old mode did not allow can use.
 * Not carried over: ACLs and extended attributes.
 */
async function replaceAtomically(
  verdict: PathAllowed,
  shown: string,
  bytes: Uint8Array,
  renameFile: (from: string, to: string) => Promise<void>,
  writeChunk: (handle: FileHandle, bytes: Uint8Array, offset: number, length: number, position: number | null) => Promise<number>,
  procFd: string | null,
  signal: AbortSignal | undefined,
): Promise<FileInfo | undefined> {
  const current = await openVerifiedForWrite(verdict, shown, {}, procFd);
  let old: BigIntStats;
  try {
    old = await current.stat({ bigint: true });
  } finally {
    await current.close();
  }
  const uid = process.getuid?.();
  if ((old.mode & 0o6000n) !== 0n || uid === undefined || (uid !== 0 && BigInt(uid) !== old.uid)) return undefined;
  const mode = Number(old.mode & 0o777n);
  const name = basename(verdict.realPath);
  return inVerifiedParent(verdict.realPath, requireParent(verdict, shown), shown, procFd, async (target, dir, throughDescriptor) => {
    if (!throughDescriptor) return undefined;
    const temp = `${target.slice(0, target.length - name.length)}.msl-write-${randomBytes(8).toString("hex")}.tmp`;
    let handle: FileHandle | undefined;
    try {
      handle = await fsp.open(temp, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL | FS.O_NOFOLLOW, FILE_MODE);
    } catch (error) {
      if (IN_PLACE_INSTEAD.has(errorCode(error))) return undefined;
      throw toFsError(error, shown);
    }
    let renamed = false;
    try {
      let written = 0;
      while (written < bytes.byteLength) written += await writeChunk(handle, bytes, written, bytes.byteLength - written, written);
      // Owner first, mode last: chown clears setuid bits, and 0600 until then keeps others out.
      await handle.chown(Number(old.uid), Number(old.gid));
      await handle.chmod(mode);
      await handle.sync();
      const info = fileInfo(verdict.realPath, await handle.stat({ bigint: true }));
      await handle.close();
      handle = undefined;
      // The last moment to stop: the rename is the one step that changes the file.
      if (signal?.aborted === true) throw callEnded();
      await renameFile(temp, target);
      renamed = true;
      // The new name is durable too, not only the new content.
      await dir.sync().catch(() => undefined);
      return info;
    } catch (error) {
      await handle?.close().catch(() => undefined);
      if (!renamed) await fsp.unlink(temp).catch(() => undefined);
      // The old file is untouched: where only the replacing failed, write in place.
      if (!renamed && IN_PLACE_INSTEAD.has(errorCode(error))) return undefined;
      throw toFsError(error, shown);
    }
  });
}

/**
 * After a write failed with `written` bytes of it done: a file this write made is removed, an
 * append is cut back to its `start`; each only where the file holds nothing but those bytes
 * beyond what was there (another writer's bytes are left as they are). An in-place replacement
 * (the fallback) has no old content left to restore.
 */
async function undoPartialWrite(handle: FileHandle, verdict: PathAllowed, shown: string, procFd: string | null, start: bigint | undefined, written: number): Promise<void> {
  const now = await handle.stat({ bigint: true });
  if (start !== undefined) {
    if (now.size === start + BigInt(written)) await handle.truncate(Number(start));
    return;
  }
  if (verdict.exists || now.size !== BigInt(written)) return;
  await inVerifiedParent(verdict.realPath, requireParent(verdict, shown), shown, procFd, async (target) => {
    // Only the name that still holds this file.
    const atName = await fsp.lstat(target, { bigint: true });
    if (sameIdentity(atName, now)) await fsp.unlink(target);
  });
}

/** Errors that say a new file cannot stand in for the old one here, while the old one may still be written. */
const IN_PLACE_INSTEAD: ReadonlySet<string> = new Set(["EACCES", "EPERM", "EROFS", "EBUSY", "EXDEV"]);

function noMoveHere(shown: string): ToolError {
  return new ToolError(`moving ${shown} needs /proc (to reach its directory through a verified descriptor), which this system does not offer`, "FS_UNSUPPORTED");
}

/** Why link(2) refused a move's new name, said for what it is. */
async function linkRefusal(error: unknown, sourceName: string, from: string, to: string): Promise<Error> {
  switch (errorCode(error)) {
    case "EXDEV":
      return new ToolError(`${from} and ${to} are on different file systems; a move cannot cross them (copy the file instead)`, "PATH_CROSS_DEVICE");
    case "EPERM":
    case "ENOTSUP":
    case "EOPNOTSUPP":
    case "EMLINK":
      return new ToolError(
        `the file system or the kernel refuses a second name for ${from} (a FAT or exFAT volume, fs.protected_hardlinks for a file of another user, ` +
          "or an immutable or append-only file), " +
          "and a move that never replaces a file needs one",
        "PATH_LINK_REFUSED",
      );
    case "ENOENT": {
      const sourceThere = await fsp.lstat(sourceName).then(() => true, () => false);
      return sourceThere ? new ToolError(`the directory of ${to} does not exist; create it first`, "PATH_NOT_FOUND") : notFound(from);
    }
    default:
      return toFsError(error, to);
  }
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? "";
}

async function readDirectoryVerified(
  verdict: PathAllowed,
  identity: FileIdentity,
  shown: string,
  procFdDir: string | null,
  bounds: ListBounds,
): Promise<DirEntry[]> {
  const handle = await openOrThrow(verdict.realPath, DIR_FLAGS, shown);
  try {
    const stat = await handle.stat({ bigint: true });
    if (!sameIdentity(stat, identity)) throw raced(shown);
    await requireOpenedAt(handle, verdict.realPath, shown, procFdDir);
    if (procFdDir !== null) {
      let opened: Dir | undefined;
      try {
        // Reading through the descriptor lists exactly the directory that was verified.
        opened = await fsp.opendir(`${procFdDir}/${handle.fd}`, { bufferSize: LIST_BATCH });
      } catch {
        // No usable /proc: fall through to the by-path listing with a second identity check.
      }
      if (opened !== undefined) return await readEntries(opened, bounds, shown);
    }
    const byPath = await fsp.opendir(verdict.realPath, { bufferSize: LIST_BATCH }).catch((error: unknown) => {
      throw toFsError(error, shown);
    });
    const entries = await readEntries(byPath, bounds, shown);
    const after = await lstatOrThrow(verdict.realPath, shown);
    if (!sameIdentity(after, identity)) throw raced(shown);
    return entries;
  } finally {
    await handle.close();
  }
}

const LIST_BATCH = 512;

interface ListBounds {
  /** The estimated memory the entries may take. */
  maxBytes: number;
  /** The call's end: a listing no one waits for stops reading. */
  signal: AbortSignal | undefined;
}

/** Reads a directory a batch at a time, refusing it once its entries would take more than the bound (never reading it whole first). */
async function readEntries(dir: Dir, bounds: ListBounds, shown: string): Promise<DirEntry[]> {
  const entries: DirEntry[] = [];
  let bytes = 0;
  try {
    for (let entry = await dir.read(); entry !== null; entry = await dir.read()) {
      bounds.signal?.throwIfAborted();
      bytes += LIST_ENTRY_BYTES + 2 * entry.name.length;
      if (bytes > bounds.maxBytes) {
        throw new ToolError(
          `directory ${shown} is too large to list: its first ${entries.length} entries already take about ${Math.round(bytes / 1048576)} MiB, ` +
            "more than one listing may hold (each listing reads and sorts it whole); use the names of the files you need",
          "DIRECTORY_TOO_LARGE",
        );
      }
      entries.push({ name: entry.name, kind: direntKind(entry) });
    }
    return entries;
  } catch (error) {
    throw error instanceof ToolError ? error : toFsError(error, shown);
  } finally {
    await dir.close().catch(() => undefined);
  }
}

function direntKind(entry: import("node:fs").Dirent): FileKind {
  if (entry.isFile()) return "file";
  if (entry.isDirectory()) return "directory";
  if (entry.isSymbolicLink()) return "symlink";
  return "other";
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/**
 * Where the kernel says an open descriptor is. Device and inode checks alone cannot see
 * a parent directory swapped for a symlink between the check's realpath and its lstat
 * (both then follow the swap and agree with the open); the descriptor's own path can.
 * Undefined where /proc is not available (the identity checks still apply).
 */
async function descriptorPath(handle: FileHandle, procFd: string | null): Promise<string | undefined> {
  if (procFd === null) return undefined;
  try {
    return await fsp.readlink(`${procFd}/${handle.fd}`);
  } catch {
    return undefined;
  }
}

async function requireOpenedAt(handle: FileHandle, expected: string, shown: string, procFd: string | null): Promise<void> {
  const actual = await descriptorPath(handle, procFd);
  if (actual !== undefined && actual !== expected) throw raced(shown);
}

/**
 * Opens `realPath` through a verified descriptor of its parent directory, so a file is
 * never created in a directory swapped in after the check.
 */
function openInVerifiedParent(
  realPath: string,
  parent: { path: string; identity: FileIdentity },
  flags: number,
  shown: string,
  procFd: string | null,
): Promise<FileHandle> {
  return inVerifiedParent(realPath, parent, shown, procFd, (target) => openOrThrow(target, flags, shown, FILE_MODE));
}

/**
 * Runs `operation` on the name of `realPath` inside its parent directory as verified now:
 * the directory is opened without following a final link, must be the one checked
 * (device, inode, and the descriptor's own path), and the name is given to `operation`
 * through the descriptor's /proc link (which works like openat/mkdirat). Without /proc,
 * `operation` gets `realPath` itself; the checks after it still apply.
 */
async function inVerifiedParent<T>(
  realPath: string,
  parent: { path: string; identity: FileIdentity },
  shown: string,
  procFd: string | null,
  operation: (target: string, dir: FileHandle, throughDescriptor: boolean) => Promise<T>,
): Promise<T> {
  const dir = await openOrThrow(parent.path, DIR_FLAGS, shown).catch((error: unknown) => {
    // The parent was a directory at check time; a symlink or a file there now is a swap.
    throw error instanceof ToolError && error.code === "PATH_NOT_DIRECTORY" ? raced(shown) : error;
  });
  try {
    const stat = await dir.stat({ bigint: true });
    if (!sameIdentity(stat, parent.identity)) throw raced(shown);
    const where = await descriptorPath(dir, procFd);
    if (where === undefined) return await operation(realPath, dir, false);
    if (where !== parent.path) throw raced(shown);
    return await operation(`${procFd}/${dir.fd}/${basename(realPath)}`, dir, true);
  } finally {
    await dir.close();
  }
}

function requireParent(verdict: PathAllowed, shown: string): { path: string; identity: FileIdentity } {
  if (verdict.parent === undefined) {
    throw new ToolError(`the parent directory of ${shown} does not exist; create that directory first`, "PATH_NOT_FOUND");
  }
  return verdict.parent;
}

async function parentUnchanged(parent: { path: string; identity: FileIdentity }): Promise<boolean> {
  const now = await fsp.lstat(parent.path, { bigint: true }).catch(() => undefined);
  return now !== undefined && now.isDirectory() && sameIdentity(now, parent.identity);
}

/** Another name for the same inode may sit outside the root or under a denied rule. */
function hardLinked(shown: string): CapabilityDeniedError {
  return new CapabilityDeniedError("PATH_HARDLINKED", `path ${shown} has more than one hard link and is refused by the filesystem policy`);
}

/** A device, FIFO or socket: refused before it is opened (opening one may do something by itself). */
function notRegular(shown: string): CapabilityDeniedError {
  return new CapabilityDeniedError("PATH_NOT_REGULAR_FILE", `path ${shown} is not a regular file (a FIFO, socket or device); only regular files can be read or written`);
}

function requireRegularSingleLink(stat: BigIntStats, shown: string): void {
  if (!stat.isFile()) {
    if (!stat.isDirectory()) throw notRegular(shown);
    throw new CapabilityDeniedError("PATH_NOT_REGULAR_FILE", `path ${shown} is a directory; only regular files can be read or written`);
  }
  // Another name for the same inode may sit outside the root or under a denied rule.
  if (stat.nlink > 1n) {
    throw hardLinked(shown);
  }
}

async function openOrThrow(realPath: string, flags: number, shown: string, mode?: number): Promise<FileHandle> {
  try {
    return await fsp.open(realPath, flags, mode);
  } catch (error) {
    throw toFsError(error, shown);
  }
}

async function lstatOrThrow(realPath: string, shown: string): Promise<BigIntStats> {
  try {
    return await fsp.lstat(realPath, { bigint: true });
  } catch (error) {
    throw toFsError(error, shown);
  }
}

function sameIdentity(stat: { dev: bigint; ino: bigint }, identity: FileIdentity): boolean {
  return stat.dev === identity.dev && stat.ino === identity.ino;
}

function fileInfo(realPath: string, stat: BigIntStats): FileInfo {
  return {
    path: realPath,
    kind: stat.isFile() ? "file" : stat.isDirectory() ? "directory" : stat.isSymbolicLink() ? "symlink" : "other",
    size: Number(stat.size),
    mtimeMs: Number(stat.mtimeMs),
    mode: Number(stat.mode & 0o7777n),
  };
}

function callEnded(what: "write" | "move" = "write"): CapabilityDeniedError {
  return new CapabilityDeniedError(
    "CALL_ENDED",
    what === "write"
      ? "the call has ended (cancelled, timed out or shut down): the write was stopped before it changed the file"
      : "the call has ended (cancelled, timed out or shut down): the move was stopped and undone; the file keeps its old name",
  );
}

function raced(shown: string): CapabilityDeniedError {
  return new CapabilityDeniedError("PATH_RACE", `path ${shown} changed between the policy check and opening it; try again`);
}

function notFound(shown: string, path = shown): ToolError {
  // A listing shows a name that is not UTF-8 with U+FFFD in place of its bytes, and no string
  // path can name that file again: say so rather than leave "does not exist" unexplained.
  const undecodable = path.includes("\ufffd")
    ? "; if a listing showed this name, \ufffd stands for bytes that are not UTF-8, and such a file cannot be opened through this server"
    : "";
  return new ToolError(`path ${shown} does not exist${undecodable}`, "PATH_NOT_FOUND");
}

/** `new/` names a directory: the path guard reads it as `new`, and a file of that name would be made. */
function refuseDirectoryName(p: unknown, instead: string): void {
  if (typeof p === "string" && /\/\.?$/.test(p)) {
    throw invalidArgument(`${JSON.stringify(p)} ends with "/", which names a directory; ${instead} without the trailing "/"`);
  }
}

function invalidArgument(message: string): ToolError {
  return new ToolError(message, "FS_INVALID_ARGUMENT");
}

/** Maps an OS error to a typed error; errors already typed pass through. */
export function toFsError(error: unknown, shown: string): Error {
  if (error instanceof CapabilityDeniedError || error instanceof ToolError) return error;
  const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : "UNKNOWN";
  switch (code) {
    case "ENOENT":
      return notFound(shown);
    case "EEXIST":
      return new ToolError(`path ${shown} already exists`, "PATH_EXISTS");
    case "EISDIR":
      return new ToolError(`path ${shown} is a directory; give a file path`, "PATH_IS_DIRECTORY");
    case "ENOTDIR":
      return new ToolError(`path ${shown} is not a directory (or uses a file as a directory)`, "PATH_NOT_DIRECTORY");
    case "EACCES":
    case "EPERM":
      return new ToolError(`path ${shown}: permission denied by the operating system`, "PATH_PERMISSION");
    case "ELOOP":
      // The checked real path had no link at its end; one there now was swapped in.
      return raced(shown);
    case "ENXIO":
    case "ENODEV":
      return new CapabilityDeniedError("PATH_NOT_REGULAR_FILE", `path ${shown} is not a regular file (a FIFO, socket or device)`);
    case "EROFS":
      return new ToolError(`path ${shown} is on a read-only file system and cannot be changed; write somewhere else (or remount it read-write)`, "FS_READ_ONLY");
    case "ENOSPC":
    case "EDQUOT":
      return new ToolError(`writing ${shown} failed: no space left (${code})`, "FS_NO_SPACE");
    default:
      return new ToolError(`filesystem operation on ${shown} failed (${code})`, "FS_IO_ERROR");
  }
}
