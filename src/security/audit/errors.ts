/**
 * Typed errors of the audit log. Each carries a stable `code`; the message names the
 * file and says what happened in words a person (or a model reading a status) can act on.
 */

export type AuditOpenErrorCode = "AUDIT_OPEN_FAILED" | "AUDIT_TAMPERED" | "AUDIT_NOT_A_LOG" | "AUDIT_LOCKED" | "AUDIT_KEY_INVALID";

/** The log cannot be opened; the server must refuse to start (fail closed). */
export class AuditOpenError extends Error {
  readonly code: AuditOpenErrorCode;
  constructor(code: AuditOpenErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AuditOpenError";
    this.code = code;
  }
}

export type AuditWriteErrorCode = "AUDIT_WRITE_FAILED" | "AUDIT_CLOSED";

/** An entry could not be made durable; the log is now failed and refuses every later entry. */
export class AuditWriteError extends Error {
  readonly code: AuditWriteErrorCode;
  constructor(message: string, code: AuditWriteErrorCode = "AUDIT_WRITE_FAILED", options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AuditWriteError";
    this.code = code;
  }
}

/** The caller passed an entry that cannot be recorded (a bug in the caller); the log stays healthy. */
export class AuditEntryError extends Error {
  readonly code = "AUDIT_ENTRY_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "AuditEntryError";
  }
}

/** A file given to verify or tail cannot be read, or is not an audit log at all. */
export class AuditReadError extends Error {
  readonly code = "AUDIT_UNREADABLE";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AuditReadError";
  }
}

const ERRNO_TEXT: Record<string, string> = {
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOENT: "no such file or directory",
  ENOTDIR: "a parent of the path is not a directory",
  EISDIR: "is a directory",
  EEXIST: "already exists",
  ELOOP: "is a symbolic link (refused)",
  EIO: "input/output error",
  EBADF: "the file is no longer open",
  EFBIG: "file too large",
  EMFILE: "too many open files",
  ENFILE: "too many open files in the system",
};

/** "ENOSPC (no space left on device)" for a Node system error; the message otherwise. */
export function describeFsError(err: unknown): string {
  if (typeof err === "object" && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string" && /^E[A-Z0-9]+$/.test(code)) {
      const text = ERRNO_TEXT[code];
      if (text !== undefined) return `${code} (${text})`;
      const message = (err as { message?: unknown }).message;
      return typeof message === "string" ? message : code;
    }
    const message = (err as { message?: unknown }).message;
    if (typeof message === "string") return message;
  }
  return String(err);
}

export function errnoOf(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}
