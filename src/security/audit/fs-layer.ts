/**
 * The file operations the audit log needs, behind one small interface so that tests
 * can inject real failures (ENOSPC from /dev/full, a write that starts failing) without
 * mocking Node itself. The default layer is a thin promise wrapper over `node:fs`.
 */
import fs from "node:fs";
import { makeDirectories } from "../../util/make-directories.js";
import { AuditOpenError, describeFsError, errnoOf } from "./errors.js";

export interface AuditStats {
  dev: number;
  ino: number;
  size: number;
  /** Names the file has; 0 once it was removed (or replaced by a rename over it). */
  nlink: number;
  mode: number;
  uid: number;
  /** Last modification, ms since the epoch: how old a lock file without a pid is. */
  mtimeMs: number;
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
}

export interface OpenedLogFile {
  fd: number;
  notes: string[];
  tighten?: () => Promise<string>;
}

export interface AuditFs {
  /**
   * Opens (creating with mode 0600) the log file for reading and appending. The default
   * refuses symlinks (O_NOFOLLOW), anything that is not a regular file, and files of
   * another owner. Returns notes worth a warning, and, for a file with a looser mode,
   * `tighten`, which makes it 0600 and says so: the caller runs it once the file is known
   * to be a log, since a file audit.log_file names by mistake is refused as it was found.
   */
  openLogFile(path: string): Promise<OpenedLogFile>;
  open(path: string, flags: number, mode?: number): Promise<number>;
  close(fd: number): Promise<void>;
  fstat(fd: number): Promise<AuditStats>;
  stat(path: string): Promise<AuditStats>;
  lstat(path: string): Promise<AuditStats>;
  read(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** Writes at the file's end (the fd is O_APPEND); may write fewer bytes than asked. */
  write(fd: number, buffer: Buffer, offset: number, length: number): Promise<number>;
  /**
   * The same write, done synchronously on the calling thread; throws on error. Batch mode
   * uses it so that an append costs a page-cache write rather than a thread-pool round
   * trip. Optional: a layer without it gets the asynchronous `write` (see `syncWriteOf`).
   */
  writeSync?(fd: number, buffer: Buffer, offset: number, length: number): number;
  fdatasync(fd: number): Promise<void>;
  fsync(fd: number): Promise<void>;
  ftruncate(fd: number, length: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /**
   * A second name for `existing`; EEXIST when `newPath` exists (even as a dangling symlink:
   * link(2) never follows it). The lock uses it to appear atomically with its content.
   */
  link(existing: string, newPath: string): Promise<void>;
  /** Sets a file's access and modification times (seconds since the epoch): the lock's lease is its mtime. */
  futimes(fd: number, time: number): Promise<void>;
  unlink(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  mkdir(path: string, mode: number): Promise<void>;
  readFile(path: string): Promise<Buffer>;
}

const C = fs.constants;
/** O_NOFOLLOW where the platform has it (it does on Linux and macOS). */
export const O_NOFOLLOW: number = C.O_NOFOLLOW ?? 0;

function cb<T>(run: (done: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    run((err, value) => (err ? reject(err) : resolve(value)));
  });
}

function cbVoid(run: (done: (err: NodeJS.ErrnoException | null) => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    run((err) => (err ? reject(err) : resolve()));
  });
}

export function currentUid(): number | undefined {
  return typeof process.getuid === "function" ? process.getuid() : undefined;
}

async function openLogFileChecked(path: string): Promise<OpenedLogFile> {
  let fd: number;
  try {
    fd = await cb<number>((done) => fs.open(path, C.O_RDWR | C.O_APPEND | C.O_CREAT | O_NOFOLLOW, 0o600, done));
  } catch (err) {
    if (errnoOf(err) === "ELOOP") {
      throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit log ${path} is a symbolic link; refusing to follow it (point audit.log_file at the real file)`);
    }
    throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit log ${path} cannot be opened: ${describeFsError(err)}`, { cause: err });
  }
  const notes: string[] = [];
  try {
    const st = await cb<fs.Stats>((done) => fs.fstat(fd, done));
    if (!st.isFile()) {
      throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit log ${path} is not a regular file; refusing to use it`);
    }
    const uid = currentUid();
    if (uid !== undefined && st.uid !== uid) {
      throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit log ${path} belongs to user ${st.uid}, not to this user (${uid}); refusing to use it`);
    }
    if ((st.mode & 0o077) !== 0) {
      const tighten = async (): Promise<string> => {
        try {
          await cbVoid((done) => fs.fchmod(fd, 0o600, done));
        } catch (err) {
          throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit log ${path} cannot be made private (mode 600): ${describeFsError(err)}`, { cause: err });
        }
        return `audit log ${path} had mode ${(st.mode & 0o777).toString(8)}; tightened to 600`;
      };
      return { fd, notes, tighten };
    }
  } catch (err) {
    fs.closeSync(fd);
    if (err instanceof AuditOpenError) throw err;
    throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit log ${path} cannot be checked: ${describeFsError(err)}`, { cause: err });
  }
  return { fd, notes };
}

export const nodeAuditFs: AuditFs = {
  openLogFile: openLogFileChecked,
  open: (path, flags, mode) => cb<number>((done) => fs.open(path, flags, mode ?? 0o600, done)),
  close: (fd) => cbVoid((done) => fs.close(fd, done)),
  fstat: (fd) => cb<fs.Stats>((done) => fs.fstat(fd, done)),
  stat: (path) => cb<fs.Stats>((done) => fs.stat(path, done)),
  lstat: (path) => cb<fs.Stats>((done) => fs.lstat(path, done)),
  read: (fd, buffer, offset, length, position) => cb<number>((done) => fs.read(fd, buffer, offset, length, position, done)),
  write: (fd, buffer, offset, length) => cb<number>((done) => fs.write(fd, buffer, offset, length, null, done)),
  writeSync: (fd, buffer, offset, length) => fs.writeSync(fd, buffer, offset, length, null),
  fdatasync: (fd) => cbVoid((done) => fs.fdatasync(fd, done)),
  fsync: (fd) => cbVoid((done) => fs.fsync(fd, done)),
  ftruncate: (fd, length) => cbVoid((done) => fs.ftruncate(fd, length, done)),
  rename: (from, to) => cbVoid((done) => fs.rename(from, to, done)),
  link: (existing, newPath) => cbVoid((done) => fs.link(existing, newPath, done)),
  futimes: (fd, time) => cbVoid((done) => fs.futimes(fd, time, time, done)),
  unlink: (path) => cbVoid((done) => fs.unlink(path, done)),
  readdir: (path) => cb<string[]>((done) => fs.readdir(path, done)),
  // Not fs.mkdir's recursive mode, which never returns for a directory under /proc.
  mkdir: (path, mode) => makeDirectories(path, mode),
  readFile: (path) => cb<Buffer>((done) => fs.readFile(path, done)),
};

/** Writes the whole buffer, looping over short writes; a zero-byte write is an error. */
export async function writeAll(layer: AuditFs, fd: number, buffer: Buffer): Promise<void> {
  let offset = 0;
  while (offset < buffer.length) {
    const n = await layer.write(fd, buffer, offset, buffer.length - offset);
    if (n <= 0) throw Object.assign(new Error("the write made no progress"), { code: "EIO" });
    offset += n;
  }
}

export type SyncWrite = (fd: number, buffer: Buffer, offset: number, length: number) => number;

/**
 * The layer's synchronous write, or undefined when the asynchronous `write` must be used.
 * A layer built by spreading `nodeAuditFs` and replacing `write` alone (to inject a
 * failure or redirect the bytes) would have that `write` bypassed by the inherited
 * default `writeSync`, so such a layer gets the asynchronous path.
 */
export function syncWriteOf(layer: AuditFs): SyncWrite | undefined {
  if (layer.writeSync === undefined) return undefined;
  if (layer.writeSync === nodeAuditFs.writeSync && layer.write !== nodeAuditFs.write) return undefined;
  return (fd, buffer, offset, length) => layer.writeSync!(fd, buffer, offset, length);
}

/** Synchronous `writeAll`: the whole buffer, looping over short writes; a zero-byte write is an error. */
export function writeAllSync(write: SyncWrite, fd: number, buffer: Buffer): void {
  let offset = 0;
  while (offset < buffer.length) {
    const n = write(fd, buffer, offset, buffer.length - offset);
    if (n <= 0) throw Object.assign(new Error("the write made no progress"), { code: "EIO" });
    offset += n;
  }
}

/** Makes a rename or a new file in `dir` durable. Filesystems that cannot fsync a directory are tolerated. */
export async function fsyncDirectory(layer: AuditFs, dir: string): Promise<void> {
  let fd: number;
  try {
    fd = await layer.open(dir, C.O_RDONLY);
  } catch (err) {
    if (errnoOf(err) === "EISDIR" || errnoOf(err) === "EACCES") return;
    throw err;
  }
  try {
    await layer.fsync(fd);
  } catch (err) {
    const code = errnoOf(err);
    if (code !== "EINVAL" && code !== "ENOTSUP" && code !== "EBADF") throw err;
  } finally {
    await layer.close(fd).catch(() => undefined);
  }
}
