/**
 * The audit log as the engine uses it: `openAuditLog` (recovery, then `server_start`),
 * `append` (resolves once the entry is durable per `audit.fsync`; the engine awaits it
 * before running a tool), `status`, and `close` (server_stop, final signed checkpoint).
 */
import { randomUUID } from "node:crypto";
import path from "node:path";
import { ulidFactory } from "../../util/ids.js";
import type { AuditFsync, AuditPolicy } from "../policy-types.js";
import type { Logger } from "../../util/logger.js";
import { belongsToKey, loadSigner, signingKeyPath } from "./checkpoint.js";
import { AUDIT_OUTCOMES, GENESIS_PREV, isSystemEvent, logIdOf, type AuditEntry } from "./entry.js";
import { AuditEntryError, AuditOpenError, AuditWriteError, describeFsError } from "./errors.js";
import { fsyncDirectory, nodeAuditFs, type AuditFs } from "./fs-layer.js";
import { acquireLock } from "./lock.js";
import {
  addKeptIn,
  completeTornEntry,
  findUnrecordedKeepers,
  inspectLogFile,
  keepersRecordedAtEnd,
  markKeepersRecorded,
  newestSegmentEnd,
  setTornTailAside,
  type TornRecovery,
} from "./recovery.js";
import { ChainWriter, type AuditReceipt, type AuditTimers, type ChainPosition, type EntryFields } from "./writer.js";
import { belongsToLog } from "./segments.js";

export { AuditEntryError, AuditOpenError, AuditReadError, AuditWriteError } from "./errors.js";
export type { AuditEntry, AuditOutcome, CheckpointBody } from "./entry.js";
export type { AuditReceipt, AuditTimers, ChainPosition } from "./writer.js";
export type { AuditFs } from "./fs-layer.js";
export { nodeAuditFs } from "./fs-layer.js";
export { verifyAudit, type AuditVerifyOptions, type AuditVerifySummary, type AuditVerifyFailure } from "./verify.js";

/**
 * What a caller records: an entry's fields without those the writer assigns, and without
 * `checkpoint` (the log's own). `event` is lowercase, digits and `_` (the log's own events
 * are reserved); `arguments` are already redacted by the caller and stored as given.
 */
export type AuditRecordInput = Omit<EntryFields, "checkpoint">;

export interface AuditStatus {
  enabled: boolean;
  /** False once a write failed: every later append rejects. */
  ok: boolean;
  state: "open" | "closing" | "closed" | "failed" | "disabled";
  error?: string;
  /** The last entry written to the file. */
  seq: number;
  head: string;
  /** Bytes of entries sealed but not yet written to the file (waiting for, or in, a write). */
  unwrittenBytes?: number;
  path: string;
  logId?: string;
  keyFingerprint?: string;
  fsync?: AuditFsync;
}

export interface AuditSink {
  /** Resolves when the entry is durable per the fsync mode; rejects with AuditWriteError (fail closed) or AuditEntryError. */
  append(entry: AuditRecordInput): Promise<AuditReceipt>;
  status(): AuditStatus;
  /** Writes server_stop and a signed checkpoint, syncs, closes; the head to print, or undefined if the log had failed. */
  close(reason?: string): Promise<ChainPosition | undefined>;
}

export interface OpenAuditOptions {
  policy: AuditPolicy;
  stateDir: string;
  serverVersion: string;
  policySha256: string;
  catalogSha256: string;
  logger: Logger;
  now?: () => Date;
  /** The file layer; tests inject failures through it. */
  fs?: AuditFs;
  /** The batch-mode sync timer; tests drive it by hand. */
  timers?: AuditTimers;
}

const EVENT_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/** Checks a caller's entry and keeps only the known fields. Pure. */
export function entryFieldsOf(input: AuditRecordInput): EntryFields {
  if (typeof input !== "object" || input === null) throw new AuditEntryError("an audit entry must be an object");
  const { event, tool, requestId, callId, outcome, reason, durationMs, data } = input;
  if (typeof event !== "string" || !EVENT_NAME.test(event)) {
    throw new AuditEntryError(`audit event ${JSON.stringify(event)} is not a lowercase name (letters, digits, _)`);
  }
  if (isSystemEvent(event)) throw new AuditEntryError(`audit event "${event}" is written by the log itself and cannot be appended`);
  if (tool !== undefined && typeof tool !== "string") throw new AuditEntryError("audit entry tool must be a string");
  if (requestId !== undefined && typeof requestId !== "string" && !(typeof requestId === "number" && Number.isFinite(requestId))) {
    throw new AuditEntryError("audit entry requestId must be a string or a finite number");
  }
  if (callId !== undefined && typeof callId !== "string") throw new AuditEntryError("audit entry callId must be a string");
  if (outcome !== undefined && !(AUDIT_OUTCOMES as readonly string[]).includes(outcome)) {
    throw new AuditEntryError(`audit entry outcome must be one of ${AUDIT_OUTCOMES.join(", ")}`);
  }
  if (reason !== undefined && typeof reason !== "string") throw new AuditEntryError("audit entry reason must be a string");
  if (durationMs !== undefined && (typeof durationMs !== "number" || !Number.isFinite(durationMs) || durationMs < 0)) {
    throw new AuditEntryError("audit entry durationMs must be a non-negative number");
  }
  if (data !== undefined && (typeof data !== "object" || data === null || Array.isArray(data))) {
    throw new AuditEntryError("audit entry data must be an object");
  }
  return { event, tool, requestId, callId, arguments: input.arguments, outcome, reason, durationMs, data };
}

/**
 * Opens (or creates) the log, recovers a torn tail, continues the chain and writes
 * `server_start`. Throws AuditOpenError when it cannot: the server must not start.
 * With `audit.enabled: false` it returns `nullAuditSink()` (and says so on stderr).
 */
export async function openAuditLog(opts: OpenAuditOptions): Promise<AuditSink> {
  const { policy } = opts;
  const logger = opts.logger.child("audit");
  if (!policy.enabled) {
    logger.warn("the audit log is disabled by the policy (audit.enabled: false); tool calls are not recorded");
    return nullAuditSink();
  }
  const layer = opts.fs ?? nodeAuditFs;
  const now = opts.now ?? (() => new Date());
  const logPath = path.resolve(opts.stateDir, policy.log_file);
  const dir = path.dirname(logPath);

  let madeDir = false;
  try {
    madeDir = !(await layer.stat(dir).then(
      () => true,
      () => false,
    ));
    await layer.mkdir(dir, 0o700);
    const st = await layer.stat(dir);
    if (!st.isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
    if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
      logger.warn("the audit directory is writable by other users, who could remove or replace the log", { dir });
    }
  } catch (err) {
    throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit directory ${dir} cannot be created: ${describeFsError(err)}`, { cause: err });
  }
  const signer = await loadSigner({ stateDir: opts.stateDir, keyPath: policy.signing_key });
  const lock = await acquireLock(layer, logPath);
  if (lock.tookOver !== undefined) logger.warn("took over a stale audit lock", { lock: lock.path, reason: lock.tookOver });
  let fd = -1;
  let writer: ChainWriter | undefined;
  let logId: string | undefined;
  try {
    let tighten: (() => Promise<string>) | undefined;
    try {
      const opened = await layer.openLogFile(logPath);
      fd = opened.fd;
      tighten = opened.tighten;
      for (const note of opened.notes) logger.warn(note);
    } catch (err) {
      if (err instanceof AuditOpenError) throw err;
      throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit log ${logPath} cannot be opened: ${describeFsError(err)}`, { cause: err });
    }
    const inspection = await inspectLogFile(layer, fd, logPath);
    // Only now: a file that is not a log (AUDIT_NOT_A_LOG above) keeps its mode, as all else of it.
    if (tighten !== undefined) logger.warn(await tighten());
    if (inspection.end === undefined && inspection.torn === undefined) {
      // An empty file was most likely made by this open (a new log, or an active file a crash
      // lost between rotation steps): an fdatasync of it does not make its name durable, so
      // the entries about to be synced could vanish with it in a power loss. The directory
      // (and its parent, when this start made the directory) is synced first, as rotation does.
      await fsyncDirectory(layer, dir);
      if (madeDir) await fsyncDirectory(layer, path.dirname(dir));
    }

    // Where the chain ends before this file's bytes after its last newline (if any).
    let position: ChainPosition;
    let continuedFrom: string | undefined;
    let file: { bytes: number; firstSeq?: number; firstTs?: string } = { bytes: 0 };
    let genesis = false;
    if (inspection.end !== undefined) {
      logId = logIdOf(inspection.end.first);
      position = { seq: inspection.end.last.seq, head: inspection.end.last.hash };
      file = { bytes: inspection.wholeBytes, firstSeq: inspection.end.first.seq, firstTs: inspection.end.first.ts };
      if (logId === undefined) throw new AuditOpenError("AUDIT_TAMPERED", `audit log ${logPath}: its first entry carries no log id`);
    } else {
      const segment = await newestSegmentEnd(layer, logPath);
      if (segment !== undefined) {
        logId = logIdOf(segment.first);
        if (logId === undefined) throw new AuditOpenError("AUDIT_TAMPERED", `audit segment ${segment.file}: its first entry carries no log id`);
        position = { seq: segment.last.seq, head: segment.last.hash };
        continuedFrom = path.basename(segment.file);
      } else {
        genesis = true;
        position = { seq: 0, head: GENESIS_PREV };
      }
    }

    // Keepers a start set aside and stopped before recording: recorded now, unless the log's
    // last entries already name one (that start stopped between its entry and the rename).
    const pendingKeepers = await findUnrecordedKeepers(layer, logPath);
    const recordedKeepers =
      pendingKeepers.length === 0 ? new Set<string>() : await keepersRecordedAtEnd(layer, fd, logPath, inspection.wholeBytes);
    let torn: TornRecovery | undefined;
    let restored: AuditEntry | undefined;
    if (inspection.torn !== undefined) {
      const entry = inspection.tornEntry;
      const entryLogId = entry === undefined ? undefined : logIdOf(entry);
      // A whole entry that lacks only its newline and continues the chain (and, opening a new
      // log, names it) keeps its place; anything else is a torn write, set aside.
      const continues =
        entry !== undefined &&
        entry.seq === position.seq + 1 &&
        entry.prev === position.head &&
        (genesis ? entryLogId !== undefined : entryLogId === undefined || entryLogId === logId);
      if (continues) {
        await completeTornEntry(layer, fd, logPath);
        restored = entry;
        if (genesis) logId = entryLogId;
        position = { seq: entry.seq, head: entry.hash };
        file = { bytes: inspection.wholeBytes + inspection.torn.length + 1, firstSeq: file.firstSeq ?? entry.seq, firstTs: file.firstTs ?? entry.ts };
        continuedFrom = undefined; // the active file holds the chain's end again
        logger.warn("audit log's last entry lacked its line break (a write cut just before it); the line was completed and the chain continues from it", {
          seq: entry.seq,
        });
      } else {
        torn = await setTornTailAside(layer, fd, logPath, { ...inspection, torn: inspection.torn }, now().toISOString());
        logger.warn("audit log had a torn last line; it was kept aside and the chain continues from the last whole entry", {
          bytes: torn.bytes,
          keptIn: torn.keptIn,
        });
      }
    }
    logId ??= randomUUID();
    // A restored last line is an entry too (one cut just before its newline).
    if (restored !== undefined) addKeptIn(recordedKeepers, restored);
    const isRecorded = (keeper: { keptIn: string }): boolean => recordedKeepers.has(path.basename(keeper.keptIn));

    const makeId = ulidFactory();
    // 0: checkpoints only at rotation and shutdown. server_start records it, so that `audit
    // verify` knows where this server's checkpoints are due (the policy allows 1 and more).
    const every = Math.floor(policy.checkpoint_every);
    const checkpointEvery = Number.isSafeInteger(every) && every > 0 ? every : 0;
    const startData = {
      logId,
      serverVersion: opts.serverVersion,
      policySha256: opts.policySha256,
      catalogSha256: opts.catalogSha256,
      keyFingerprint: signer.fingerprint,
      fsync: policy.fsync,
      checkpointEvery,
      pid: process.pid,
      ...(position.seq === 0 ? { genesis: true } : {}),
    };
    // Where this start took up the chain and what it records, signed: a forged or altered start cannot carry it (start-seal.ts).
    const tookUp = signer.startSeal(logId, position.seq, position.head, startData);
    writer = new ChainWriter({
      fs: layer,
      path: logPath,
      fd,
      logId,
      position,
      file,
      fsync: policy.fsync,
      fsyncIntervalMs: Math.max(0, policy.fsync_interval_ms),
      rotateBytes: Math.max(0, policy.rotate_bytes),
      rotateDaily: policy.rotate_daily,
      checkpointEvery,
      signer,
      now,
      newId: (time) => makeId(time),
      logger,
      ...(opts.timers === undefined ? {} : { timers: opts.timers }),
    });
    await writer.init();
    // Keepers: those already recorded get their final names before anything is written; then
    // each of the others gets its entry, made durable, and its final name before the next
    // entry, so a start that stops in between leaves that entry where the next start looks
    // (keepersRecordedAtEnd) and no keeper is recorded twice.
    await markKeepersRecorded(layer, logPath, pendingKeepers.filter(isRecorded).map((keeper) => keeper.keptIn));
    const keeperEntries: Array<{ fields: EntryFields; keptIn: string }> = [];
    if (torn !== undefined) {
      keeperEntries.push({
        fields: {
          event: "recovery",
          reason: "a torn last line (an interrupted write) was kept aside and the log truncated to its last whole entry",
          data: { logId, kind: "torn_tail", bytes: torn.bytes, sha256: torn.sha256, keptIn: path.basename(torn.keptIn), truncatedTo: torn.truncatedTo },
        },
        keptIn: torn.keptIn,
      });
    }
    for (const keeper of pendingKeepers.filter((pending) => !isRecorded(pending))) {
      keeperEntries.push({
        fields: {
          event: "recovery",
          reason: "torn bytes that an earlier start set aside, and stopped before recording, were found and are recorded now",
          data: { logId, kind: "torn_tail_unrecorded", bytes: keeper.bytes, sha256: keeper.sha256, keptIn: path.basename(keeper.keptIn) },
        },
        keptIn: keeper.keptIn,
      });
    }
    for (const { fields, keptIn } of keeperEntries) {
      await writer.append(fields);
      await writer.flush();
      await markKeepersRecorded(layer, logPath, [keptIn]);
    }
    const startup: Array<Promise<AuditReceipt>> = [];
    if (restored !== undefined) {
      startup.push(
        writer.append({
          event: "recovery",
          reason: "the last entry lacked its line break (an interrupted write); the line break was restored and the entry kept",
          data: { logId, kind: "newline_restored", seq: restored.seq },
        }),
      );
    }
    if (continuedFrom !== undefined) {
      startup.push(
        writer.append({
          event: "recovery",
          reason: "the active file was missing or empty; the chain continues from the newest rotated segment",
          data: { logId, kind: "active_missing", continuedFrom },
        }),
      );
    }
    startup.push(
      writer.append({
        event: "server_start",
        data: { ...startData, continues: tookUp },
      }),
    );
    await Promise.all(startup);
    await writer.flush();
  } catch (err) {
    if (writer !== undefined) await writer.abort();
    else if (fd >= 0) await layer.close(fd).catch(() => undefined);
    await lock.release();
    if (err instanceof AuditOpenError) throw err;
    if (err instanceof AuditWriteError) throw new AuditOpenError("AUDIT_OPEN_FAILED", err.message, { cause: err });
    throw new AuditOpenError("AUDIT_OPEN_FAILED", `audit log ${logPath} cannot be opened: ${describeFsError(err)}`, { cause: err });
  }

  const active = writer;
  const id: string = logId;
  return {
    append(entry) {
      let fields: EntryFields;
      try {
        fields = entryFieldsOf(entry);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new AuditEntryError(String(err)));
      }
      return active.append(fields);
    },
    status() {
      const s = active.status();
      return {
        enabled: true,
        ok: s.state !== "failed",
        state: s.state,
        ...(s.error === undefined ? {} : { error: s.error }),
        seq: s.seq,
        head: s.head,
        unwrittenBytes: s.unwrittenBytes,
        path: logPath,
        logId: id,
        keyFingerprint: signer.fingerprint,
        fsync: policy.fsync,
      };
    },
    async close(reason) {
      const head = await active.close(reason);
      await lock.release();
      return head;
    },
  };
}

/**
 * The log's files and its signing key, each as a directory and a test on names there, and
 * the key also by path (a key the policy names is read through its symbolic link, so where
 * the link leads is protected too): the shape of path-guard's protected paths, so no tool
 * reaches them through the file guard.
 */
export function auditOwnFiles(
  policy: AuditPolicy,
  stateDir: string,
): Array<{ dir: string; names: (name: string) => boolean; what: string } | { file: string; what: string }> {
  if (!policy.enabled) return [];
  const logPath = path.resolve(stateDir, policy.log_file);
  const keyFile = signingKeyPath(stateDir, policy.signing_key);
  return [
    { dir: path.dirname(logPath), names: (name) => belongsToLog(logPath, name), what: "the audit log" },
    { dir: path.dirname(keyFile), names: (name) => belongsToKey(keyFile, name), what: "the audit signing key" },
    { file: keyFile, what: "the audit signing key" },
  ];
}

/** The stderr line for the head returned by `close()`; `audit verify --expect-head` takes its hash. */
export function auditHeadLine(head: ChainPosition): string {
  return `audit head: seq=${head.seq} hash=${head.head}`;
}

/** The sink for `audit.enabled: false`: entries are checked, then dropped. */
export function nullAuditSink(): AuditSink {
  let closed = false;
  return {
    append(entry) {
      try {
        entryFieldsOf(entry);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new AuditEntryError(String(err)));
      }
      return Promise.resolve({ seq: 0, hash: "" });
    },
    status() {
      return { enabled: false, ok: true, state: closed ? "closed" : "disabled", seq: 0, head: "", path: "" };
    },
    close() {
      closed = true;
      return Promise.resolve(undefined);
    },
  };
}
