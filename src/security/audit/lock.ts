/**
 * One writer per log. Two processes appending to one file would fork the chain, so the
 * writer holds `<log>.lock` (created exclusively, holding its pid). A lock whose process
 * is gone (a crash, SIGKILL) is taken over; a live one refuses the second writer.
 */
import { constants as C } from "node:fs";
import { AuditOpenError, describeFsError, errnoOf } from "./errors.js";
import { O_NOFOLLOW, type AuditFs } from "./fs-layer.js";
import { lockPath } from "./segments.js";

export interface AuditLock {
  readonly path: string;
  release(): Promise<void>;
}

/** True when a process with this pid exists (EPERM: it exists but is another user's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoOf(err) === "EPERM";
  }
}

export async function acquireLock(
  layer: AuditFs,
  logPath: string,
  isAlive: (pid: number) => boolean = processAlive,
): Promise<AuditLock> {
  const file = lockPath(logPath);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = await layer.open(file, C.O_WRONLY | C.O_CREAT | C.O_EXCL | O_NOFOLLOW, 0o600);
      try {
        const text = Buffer.from(`${process.pid}\n`);
        await layer.write(fd, text, 0, text.length);
      } finally {
        await layer.close(fd);
      }
      let released = false;
      return {
        path: file,
        async release() {
          if (released) return;
          released = true;
          await layer.unlink(file).catch(() => undefined);
        },
      };
    } catch (err) {
      if (errnoOf(err) !== "EEXIST") {
        throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit lock ${file} cannot be created: ${describeFsError(err)}`, { cause: err });
      }
    }
    const holder = await readPid(layer, file);
    if (holder === undefined) {
      // Either a writer that is just starting (it creates, then writes its pid) or debris: do not guess.
      throw new AuditOpenError(
        "AUDIT_LOCKED",
        `audit log ${logPath} is locked by ${file}, which holds no process id; if no server is running, delete that file`,
      );
    }
    if (holder === process.pid || isAlive(holder)) {
      throw new AuditOpenError(
        "AUDIT_LOCKED",
        `audit log ${logPath} is in use by process ${holder}${holder === process.pid ? " (this process)" : ""}; two servers cannot write one chain. ` +
          `Give this instance its own audit.log_file, or stop the other one (if no server is running, delete ${file}).`,
      );
    }
    // The holder is gone: the lock is stale.
    await layer.unlink(file).catch(() => undefined);
  }
  throw new AuditOpenError("AUDIT_LOCKED", `audit lock ${file} keeps reappearing; another process is starting on the same log`);
}

async function readPid(layer: AuditFs, file: string): Promise<number | undefined> {
  try {
    const text = (await layer.readFile(file)).toString("utf8").trim();
    const pid = Number(text);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
