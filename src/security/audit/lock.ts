/**
 * One writer per log. Two processes appending to one file would fork the chain, so the
 * writer holds `<log>.lock`, which names it: its pid and, on Linux, its start time and the
 * boot id (process-identity.ts), so that a reused pid is not taken for the holder.
 *
 * Taking it: the content goes to a temp file, is fsynced, then link()ed to the lock path,
 * which fails with EEXIST while the lock is held. A lock therefore never exists without its
 * content, whatever crash or power loss comes. A stale lock (its process gone, its pid
 * reused, taken before the last reboot) is taken over without a race: it is renamed to a
 * unique name and removed only if the renamed file is still the one judged stale; else it
 * is put back (by link, which never replaces a newer lock) and the judging starts over.
 * A lock taken in another PID namespace or boot is judged by its lease instead (its
 * holder refreshes its mtime; see LEASE_MS), since its pid means nothing here.
 *
 * Two starters get exactly one winner. A third that links in the few syscalls between a
 * move aside and its putting back would hold the lock beside the displaced holder; only a
 * guard serialising takeovers would close that window.
 */
import { randomBytes } from "node:crypto";
import { constants as C } from "node:fs";
import path from "node:path";
import { AuditOpenError, describeFsError, errnoOf } from "./errors.js";
import { O_NOFOLLOW, writeAll, type AuditFs } from "./fs-layer.js";
import { nodeProcessHost, type ProcessHost, type ProcessIdentity } from "./process-identity.js";
import { lockPath } from "./segments.js";

export { processAlive } from "./process-identity.js";

export interface AuditLock {
  readonly path: string;
  /** Why a stale lock was removed to take this one, when one was (worth a warning). */
  readonly tookOver?: string;
  /** Removes the lock if it is still this one; a lock someone else put there is left alone. */
  release(): Promise<void>;
}

export interface LockHost extends ProcessHost {
  /** Milliseconds since the epoch: the age of a lock file that names no process. */
  now(): number;
}

export const nodeLockHost: LockHost = { ...nodeProcessHost, now: () => Date.now() };

/**
 * A lock file that names no process and is younger than this may be an older version's
 * writer between creating the file and writing its pid; an older one is a crash's debris.
 */
export const DEBRIS_AGE_MS = 5000;
/**
 * A lock taken in another PID namespace or boot (another container or host sharing the
 * directory, or this container before a restart) names a pid this process cannot judge.
 * Its holder keeps it fresh instead: it sets the lock's mtime every LEASE_REFRESH_MS, and
 * such a lock is stale once not refreshed for LEASE_MS.
 */
export const LEASE_MS = 30_000;
export const LEASE_REFRESH_MS = 10_000;

export interface LockTiming {
  leaseMs?: number;
  refreshMs?: number;
}

/**
 * A temp lock lives for the few syscalls of one acquire, and a lock moved aside for those of
 * one judging; either still there this long after its mtime was left by a crash (a lock moved
 * aside keeps its mtime, and a live one's lease keeps that recent).
 */
export const DEBRIS_SWEEP_AGE_MS = 60_000;

/** How often, and how far apart, release looks for a lock a starter may be putting back. */
const RELEASE_LOOKS = 5;
const RELEASE_LOOK_MS = 2;

/** Takeovers and contention before giving up; each lost race costs one. */
const ATTEMPTS = 5;
/** A lock holds a few short lines; anything longer is not one. */
const MAX_LOCK_BYTES = 1024;
const BOOT_ID = /^[0-9a-f-]{1,64}$/i;
/** What link(2) says where the filesystem has no hard links (FAT, some network mounts). */
const NO_HARD_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"]);

/** Lock paths this process holds: a second acquire of one is refused before touching the disk. */
const heldPaths = new Set<string>();
/**
 * Nonces of the locks this process holds or is placing. A lock naming this process is
 * held by it only if its nonce is here (whatever path it was reached by); else it is a
 * leftover of this pid (an earlier process, or this one's lost release) and stale.
 */
const ourNonces = new Set<string>();

export interface LockInfo extends ProcessIdentity {
  /** Random per acquisition: tells two locks of one process apart. */
  nonce?: string;
}

/** `pid`, then `key=value` lines; the bare pid first is what older versions wrote and read. */
export function formatLockText(id: ProcessIdentity, nonce: string): string {
  const lines = [String(id.pid)];
  if (id.startTime !== undefined) lines.push(`start=${id.startTime}`);
  if (id.bootId !== undefined) lines.push(`boot=${id.bootId}`);
  if (id.pidNs !== undefined) lines.push(`ns=${id.pidNs}`);
  lines.push(`nonce=${nonce}`);
  return `${lines.join("\n")}\n`;
}

/** The lock's holder, or undefined for an empty, cut short or garbled file. Unknown keys are a later version's and ignored. */
export function parseLockText(bytes: Buffer): LockInfo | undefined {
  if (bytes.length > MAX_LOCK_BYTES) return undefined;
  const text = bytes.toString("utf8");
  // Whole lines only: a pid cut short by a crash must not pass for another pid.
  if (!text.endsWith("\n")) return undefined;
  const [first, ...rest] = text.slice(0, -1).split("\n");
  if (first === undefined || !/^\d{1,10}$/.test(first)) return undefined;
  const pid = Number(first);
  if (pid < 1 || pid > 0x7fffffff) return undefined;
  const info: LockInfo = { pid };
  for (const line of rest) {
    const eq = line.indexOf("=");
    if (eq <= 0) return undefined;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === "start") {
      if (!/^\d{1,20}$/.test(value)) return undefined;
      info.startTime = value;
    } else if (key === "boot") {
      if (!BOOT_ID.test(value)) return undefined;
      info.bootId = value;
    } else if (key === "ns") {
      if (!/^\d{1,20}$/.test(value)) return undefined;
      info.pidNs = value;
    } else if (key === "nonce") {
      info.nonce = value;
    }
  }
  return info;
}

/** One lock file as read: which file (dev, ino) and what it held. */
interface LockSnapshot {
  dev: number;
  ino: number;
  mtimeMs: number;
  bytes: Buffer;
}

function sameFile(a: LockSnapshot, b: LockSnapshot): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.bytes.equals(b.bytes);
}

function randomTag(): string {
  return `${process.pid}-${randomBytes(6).toString("hex")}`;
}

function notRegular(file: string): AuditOpenError {
  return new AuditOpenError(
    "AUDIT_OPEN_FAILED",
    `audit lock ${file} is not a regular file (a symbolic link, directory or device); refusing to use it. Remove it if no server is running`,
  );
}

function inUse(logPath: string, file: string, holder: string): AuditOpenError {
  return new AuditOpenError(
    "AUDIT_LOCKED",
    `audit log ${logPath} is in use by ${holder}; two servers cannot write one chain. ` +
      `Give this instance its own audit.log_file, or stop the other one (if no server is running, delete ${file}).`,
  );
}

function cannotCreate(file: string, err: unknown): AuditOpenError {
  return new AuditOpenError("AUDIT_OPEN_FAILED", `audit lock ${file} cannot be created: ${describeFsError(err)}`, { cause: err });
}

export async function acquireLock(layer: AuditFs, logPath: string, host: LockHost = nodeLockHost, timing: LockTiming = {}): Promise<AuditLock> {
  const leaseMs = timing.leaseMs ?? LEASE_MS;
  const file = lockPath(logPath);
  const key = path.resolve(file);
  if (heldPaths.has(key)) throw inUse(logPath, file, "this process (it has this log open already)");
  const nonce = randomBytes(8).toString("hex");
  ourNonces.add(nonce); // before the lock can appear: a concurrent acquire in this process must see it as held
  let mine: OwnLock | undefined;
  try {
    const self = await host.self();
    mine = await writeTempLock(layer, file, formatLockText(self, nonce));
    let tookOver: string | undefined;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const placed = await place(layer, mine, file);
      if (placed !== undefined) {
        heldPaths.add(key);
        const forget = (): void => {
          heldPaths.delete(key);
          ourNonces.delete(nonce);
        };
        await sweepDebris(layer, file, host.now());
        const stopRefreshing = await keepFresh(layer, file, placed, timing.refreshMs ?? LEASE_REFRESH_MS);
        return heldLock(layer, file, placed, () => {
          stopRefreshing();
          forget();
        }, tookOver);
      }
      const found = await readLockFile(layer, file);
      if (found === "gone") continue; // released or taken over meanwhile
      const why = await staleness(found, self, host, logPath, file, leaseMs);
      if ((await moveAsideIf(layer, file, found)) === "removed") tookOver = why;
    }
    throw new AuditOpenError(
      "AUDIT_LOCKED",
      `audit lock ${file} kept changing while this process tried to take it: another process is starting on the same log. ` +
        "Try again, or give each instance its own audit.log_file",
    );
  } catch (err) {
    ourNonces.delete(nonce);
    throw err;
  } finally {
    if (mine !== undefined) await layer.unlink(mine.temp).catch(() => undefined);
  }
}

function heldLock(layer: AuditFs, file: string, placed: LockSnapshot, forget: () => void, tookOver: string | undefined): AuditLock {
  let released = false;
  return {
    path: file,
    ...(tookOver === undefined ? {} : { tookOver }),
    async release() {
      if (released) return;
      released = true;
      try {
        // "gone" may mean a starter has just moved this lock aside to judge it and is about to
        // put it back (a few syscalls): look again briefly, so that a clean stop leaves no lock.
        for (let look = 0; look < RELEASE_LOOKS; look++) {
          if ((await moveAsideIf(layer, file, placed)) !== "gone") break;
          await new Promise((resolve) => setTimeout(resolve, RELEASE_LOOK_MS));
        }
      } catch {
        // Best effort: a lock left behind is judged stale once this process is gone.
      } finally {
        forget();
      }
    },
  };
}

/**
 * Refreshes the held lock's mtime (its lease) until stopped, through a descriptor of the
 * lock's own file: a lock that was taken over meanwhile is another file, left untouched.
 */
async function keepFresh(layer: AuditFs, file: string, placed: LockSnapshot, refreshMs: number): Promise<() => void> {
  let fd: number;
  try {
    fd = await layer.open(file, C.O_RDONLY | O_NOFOLLOW | (C.O_NONBLOCK ?? 0));
    const st = await layer.fstat(fd);
    if (st.dev !== placed.dev || st.ino !== placed.ino) {
      await layer.close(fd).catch(() => undefined);
      return () => undefined;
    }
  } catch {
    return () => undefined; // the lease then ages: only a foreign starter would judge by it
  }
  const timer = setInterval(() => {
    layer.futimes(fd, Date.now() / 1000).catch(() => undefined);
  }, refreshMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    layer.close(fd).catch(() => undefined);
  };
}

/**
 * Removes what crashed acquires left next to the lock (temp locks, locks moved aside), once
 * old enough to be nobody's work in progress. Best effort: a file that cannot be removed
 * stays, and verify passes over it as a side file.
 */
async function sweepDebris(layer: AuditFs, file: string, now: number): Promise<void> {
  const dir = path.dirname(file);
  const base = path.basename(file);
  const names = await layer.readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const debris = (name.startsWith(`.${base}.new-`) || name.startsWith(`${base}.stale-`)) && DEBRIS_TAG.test(name);
    if (!debris) continue;
    const where = path.join(dir, name);
    const st = await layer.lstat(where).catch(() => undefined);
    if (st === undefined || !st.isFile() || !(now - st.mtimeMs > DEBRIS_SWEEP_AGE_MS)) continue;
    await layer.unlink(where).catch(() => undefined);
  }
}

/** The tag randomTag() puts at the end of a temp or moved-aside lock's name. */
const DEBRIS_TAG = /\.(?:new|stale)-\d+-[0-9a-f]{12}$/;

/** This acquire's lock while it is still a temp file next to the lock path. */
interface OwnLock {
  temp: string;
  snapshot: LockSnapshot;
}

/** The lock's content in a fresh temp file next to it (a dot name: a side file to verify), fsynced. */
async function writeTempLock(layer: AuditFs, file: string, text: string): Promise<OwnLock> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.new-${randomTag()}`);
  const bytes = Buffer.from(text);
  let fd: number;
  try {
    fd = await layer.open(temp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | O_NOFOLLOW, 0o600);
  } catch (err) {
    throw cannotCreate(file, err);
  }
  try {
    await writeAll(layer, fd, bytes);
    await layer.fsync(fd);
    const st = await layer.fstat(fd);
    return { temp, snapshot: { dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs, bytes } };
  } catch (err) {
    await layer.unlink(temp).catch(() => undefined);
    throw cannotCreate(file, err);
  } finally {
    await layer.close(fd).catch(() => undefined);
  }
}

/** Puts this acquire's lock at the lock path unless a lock is there: the lock placed, or undefined. */
async function place(layer: AuditFs, mine: OwnLock, file: string): Promise<LockSnapshot | undefined> {
  try {
    await layer.link(mine.temp, file);
    return mine.snapshot;
  } catch (err) {
    const code = errnoOf(err);
    if (code === "EEXIST") return undefined;
    if (code !== undefined && NO_HARD_LINKS.has(code)) return createInPlace(layer, mine.snapshot.bytes, file);
    throw cannotCreate(file, err);
  }
}

/**
 * Where the filesystem has no hard links: create the lock exclusively, then write it. A
 * crash between the two leaves an empty lock, taken over once DEBRIS_AGE_MS old.
 */
async function createInPlace(layer: AuditFs, bytes: Buffer, file: string): Promise<LockSnapshot | undefined> {
  let fd: number;
  try {
    fd = await layer.open(file, C.O_WRONLY | C.O_CREAT | C.O_EXCL | O_NOFOLLOW, 0o600);
  } catch (err) {
    if (errnoOf(err) === "EEXIST") return undefined;
    throw cannotCreate(file, err);
  }
  try {
    await writeAll(layer, fd, bytes);
    await layer.fsync(fd);
    const st = await layer.fstat(fd);
    return { dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs, bytes };
  } catch (err) {
    await layer.unlink(file).catch(() => undefined);
    throw cannotCreate(file, err);
  } finally {
    await layer.close(fd).catch(() => undefined);
  }
}

/** Reads a lock file without following a symlink (nor blocking on a FIFO); "gone" when there is none. */
async function readLockFile(layer: AuditFs, file: string): Promise<LockSnapshot | "gone"> {
  let fd: number;
  try {
    fd = await layer.open(file, C.O_RDONLY | O_NOFOLLOW | (C.O_NONBLOCK ?? 0));
  } catch (err) {
    const code = errnoOf(err);
    if (code === "ENOENT") return "gone";
    if (code === "ELOOP" || code === "EMLINK") throw notRegular(file);
    // Not guessed at: it may be the live lock of another user's server.
    throw new AuditOpenError(
      "AUDIT_LOCKED",
      `audit lock ${file} cannot be read: ${describeFsError(err)}; another user's server may hold it. If no server is running, delete it`,
      { cause: err },
    );
  }
  try {
    const st = await layer.fstat(fd);
    if (!st.isFile()) throw notRegular(file);
    const buffer = Buffer.alloc(MAX_LOCK_BYTES + 1);
    let n = 0;
    while (n < buffer.length) {
      const got = await layer.read(fd, buffer, n, buffer.length - n, n);
      if (got === 0) break;
      n += got;
    }
    return { dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs, bytes: buffer.subarray(0, n) };
  } catch (err) {
    if (err instanceof AuditOpenError) throw err;
    throw new AuditOpenError("AUDIT_LOCKED", `audit lock ${file} cannot be read: ${describeFsError(err)}. If no server is running, delete it`, {
      cause: err,
    });
  } finally {
    await layer.close(fd).catch(() => undefined);
  }
}

/** Why the lock found is stale; throws AUDIT_LOCKED when its holder may be alive. */
async function staleness(found: LockSnapshot, self: ProcessIdentity, host: LockHost, logPath: string, file: string, leaseMs: number): Promise<string> {
  const info = parseLockText(found.bytes);
  if (info === undefined) {
    const age = host.now() - found.mtimeMs;
    if (!(age >= DEBRIS_AGE_MS)) {
      throw new AuditOpenError(
        "AUDIT_LOCKED",
        `audit log ${logPath} is locked by ${file}, which holds no process id and is less than ${DEBRIS_AGE_MS / 1000} s old: ` +
          `a server may be starting. Try again in a few seconds; if no server is running, delete ${file}`,
      );
    }
    return `it held no process id and was ${Math.round(age / 1000)} s old (debris of a crash)`;
  }
  const { pid } = info;
  const otherBoot = info.bootId !== undefined && self.bootId !== undefined && info.bootId !== self.bootId;
  const otherNs = info.pidNs !== undefined && self.pidNs !== undefined && info.pidNs !== self.pidNs;
  if (otherBoot || otherNs) {
    // Its pid means nothing here: judge by the lease its holder keeps fresh.
    const where = otherBoot ? "another boot (another host, or before a reboot)" : "another PID namespace (another container, or before a restart)";
    const age = host.now() - found.mtimeMs;
    if (age > leaseMs) return `process ${pid} of ${where} took it and has not refreshed it for ${Math.round(age / 1000)} s`;
    throw inUse(
      logPath,
      file,
      `process ${pid} of ${where}, which refreshed the lock ${Math.max(0, Math.round(age / 1000))} s ago (a lock not refreshed for ${leaseMs / 1000} s is taken over)`,
    );
  }
  if (pid === self.pid) {
    if (info.nonce !== undefined && ourNonces.has(info.nonce)) throw inUse(logPath, file, "this process (it has this log open already)");
    return info.startTime !== undefined && self.startTime !== undefined && info.startTime !== self.startTime
      ? `an earlier process with this process's pid ${pid} took it`
      : `it names this process (${pid}), which does not hold it`;
  }
  if (!host.isAlive(pid)) return `process ${pid} is not running`;
  // Start times are compared only where this host reports its own (Linux): elsewhere pid-only.
  if (info.startTime !== undefined && self.startTime !== undefined) {
    const now = await host.statOf(pid);
    if (now === undefined) {
      if (!host.isAlive(pid)) return `process ${pid} is not running`;
    } else if (now.exited) {
      return `process ${pid} has exited`;
    } else if (now.startTime !== info.startTime) {
      return `pid ${pid} now belongs to another process`;
    }
  }
  throw inUse(logPath, file, `process ${pid}`);
}

/**
 * Renames the lock at `file` to a unique side name, then removes it if it is still the
 * file `judged` (same file, same bytes); else puts it back, never over a lock placed since.
 */
async function moveAsideIf(layer: AuditFs, file: string, judged: LockSnapshot): Promise<"removed" | "changed" | "gone"> {
  const aside = `${file}.stale-${randomTag()}`;
  try {
    await layer.rename(file, aside);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return "gone";
    throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit lock ${file} cannot be taken over: ${describeFsError(err)}`, { cause: err });
  }
  const moved = await readLockFile(layer, aside).catch(() => undefined);
  if (moved === "gone") return "gone";
  if (moved !== undefined && sameFile(moved, judged)) {
    await layer.unlink(aside).catch(() => undefined);
    return "removed";
  }
  await putBack(layer, aside, file);
  return "changed";
}

/**
 * Undoes a move aside. A lock placed at `file` in the meantime wins (link never replaces
 * it) and the moved one is dropped; without hard links only rename can put it back.
 */
async function putBack(layer: AuditFs, aside: string, file: string): Promise<void> {
  try {
    await layer.link(aside, file);
  } catch (err) {
    if (errnoOf(err) !== "EEXIST") {
      await layer.rename(aside, file).catch(() => undefined);
      return;
    }
  }
  await layer.unlink(aside).catch(() => undefined);
}
