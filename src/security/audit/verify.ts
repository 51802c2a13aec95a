/**
 * Offline verification of an audit log: every line's hash and exact form, every link
 * (within and across files, segments ordered by the first seq in their names), seq continuity from genesis, every
 * checkpoint's binding to its position and its signature (optionally against a pinned
 * key), a checkpoint wherever the interval its server recorded makes one due, nothing
 * between a server_stop and the next start but what the writer puts there, and an
 * optional expected head (to catch entries cut off the end).
 *
 * Tampering is reported in the summary (`failure`, the first broken entry); a path that
 * cannot be read or holds no audit log throws AuditReadError.
 */
import path from "node:path";
import { checkEntryLine, GENESIS_PREV, isHash, logIdOf, type AuditEntry, type CheckpointBody } from "./entry.js";
import { checkpointProblem, fingerprintOfRaw, pinnedKeyFromPem } from "./checkpoint.js";
import { AuditReadError, describeFsError, errnoOf } from "./errors.js";
import { forEachLine, MAX_LINE_BYTES } from "./file-scan.js";
import { findDirectoryLog, listDirectory, openForRead, probe, retryOnVanished } from "./log-files.js";
import { nodeAuditFs, type AuditFs } from "./fs-layer.js";
import { ANY_SEGMENT, segmentsOf } from "./segments.js";
import { RecentEntries, startSealProblem } from "./start-seal.js";

export type AuditFailureReason =
  | "unparseable"
  | "bad_entry"
  | "hash_mismatch"
  | "not_canonical"
  | "seq_gap"
  | "seq_order"
  | "broken_link"
  | "missing_start"
  | "log_id_mismatch"
  | "bad_checkpoint"
  | "bad_signature"
  | "key_mismatch"
  | "no_checkpoint"
  | "missing_checkpoint"
  | "after_stop"
  | "bad_start"
  | "torn_tail"
  | "truncated";

export interface AuditVerifyFailure {
  file: string;
  /** 1-based line in that file. */
  line: number;
  seq?: number;
  reason: AuditFailureReason;
  message: string;
}

export interface AuditFileSummary {
  path: string;
  firstSeq?: number;
  lastSeq?: number;
  entries: number;
}

export interface AuditRecoverySeen {
  seq: number;
  file: string;
  line: number;
  kind?: string;
  reason?: string;
  data?: Record<string, unknown>;
}

export interface AuditVerifySummary {
  ok: boolean;
  /** What was asked to be verified. */
  path: string;
  files: AuditFileSummary[];
  entries: number;
  firstSeq?: number;
  lastSeq?: number;
  firstTs?: string;
  lastTs?: string;
  /** Hash of the last entry checked. */
  head?: string;
  logId?: string;
  /** Fingerprint (SHA-256 of the raw public key) of the key that signed the last checkpoint. */
  keyFingerprint?: string;
  /** Every signing key seen, in order of first use. */
  keyFingerprints: string[];
  pinnedKeyFingerprint?: string;
  checkpoints: number;
  lastCheckpointSeq?: number;
  /** Entries after the last checkpoint: their integrity rests on the chain alone. */
  unsealedEntries: number;
  /**
   * The checkpoint interval the server that wrote the end of the log recorded in its
   * server_start (0: checkpoints only at rotation and shutdown). Absent when its server_start
   * does not record one (a log written before servers did) or was not seen.
   */
  checkpointEvery?: number;
  recoveries: AuditRecoverySeen[];
  warnings: string[];
  failure?: AuditVerifyFailure;
}

export interface AuditVerifyOptions {
  /** PEM of the public key (or private key) every checkpoint must be signed with. */
  pubkeyPem?: string;
  /** A head hash recorded earlier (e.g. printed at shutdown); its absence means entries were cut off. */
  expectHead?: string;
  fs?: AuditFs;
}

const MAX_WARNINGS = 20;
/**
 * How long a line cut at the end of the log is given to be completed before it is called
 * torn: a write of several pages (a batch of entries, a large one) shows to a reader a page
 * at a time, so verifying a running server's log could otherwise find it "tampered".
 */
const LIVE_END_WAIT_MS = 200;

export async function verifyAudit(pathOrDir: string, options: AuditVerifyOptions = {}): Promise<AuditVerifySummary> {
  const layer = options.fs ?? nodeAuditFs;
  let pinned: Buffer | undefined;
  if (options.pubkeyPem !== undefined) {
    try {
      pinned = pinnedKeyFromPem(options.pubkeyPem);
    } catch (err) {
      throw new AuditReadError(`the pinned key cannot be used: ${(err as Error).message}`);
    }
  }
  if (options.expectHead !== undefined && !isHash(options.expectHead)) {
    throw new AuditReadError("the expected head is not a SHA-256 hex hash (64 lowercase hex digits)");
  }
  const target = path.resolve(pathOrDir);
  const { files, requireStart, warnings, active } = await retryOnVanished(() => discover(layer, target));

  const summary: AuditVerifySummary = {
    ok: true,
    path: target,
    files: [],
    entries: 0,
    keyFingerprints: [],
    checkpoints: 0,
    unsealedEntries: 0,
    recoveries: [],
    warnings,
    ...(pinned === undefined ? {} : { pinnedKeyFingerprint: fingerprintOfRaw(pinned) }),
  };
  // Past the cap, warnings are counted rather than kept: a clock stepped back can warn at
  // every entry for a while, and must not hide a later one (a key change) without a trace.
  let kept = 0;
  let leftOut = 0;
  const warn = (text: string): void => {
    if (kept < MAX_WARNINGS) {
      summary.warnings.push(text);
      kept++;
    } else leftOut++;
  };
  const closeWarnings = (): void => {
    if (leftOut > 0) summary.warnings.push(`${leftOut} more warnings were left out (the first ${MAX_WARNINGS} are shown)`);
  };
  let prev: AuditEntry | undefined;
  // The key the running server announced in its server_start: every checkpoint it seals is
  // signed with it (the signer is loaded once per start), so a checkpoint signed with another
  // key before the next start was re-signed. Unknown before the first server_start seen.
  let sessionKey: { fingerprint: string; seq: number } | undefined;
  // A checkpoint signed by another key than the session's, judged by what follows it: a start
  // that must rotate before its first entry (a new day) seals the segment with its own key,
  // then writes its rotate entry and its recovery or server_start. Anything else re-signed it.
  // The seq of the last server_stop, until the next server_start. In between, the writer makes
  // only the stopping server's checkpoint and the next start's rotation, recovery and checkpoint
  // entries: any other entry was added while no server ran (and a next start would seal it).
  let stoppedAt: { seq: number; end: number } | undefined;
  // Once a start in the log is sealed (data.continues), every later one must be: see start-seal.ts.
  let sealedStarts = false;
  // The seq of a recovery entry, until the next server_start: only a starting server writes one,
  // before its server_start, and it ends the running server's checkpoint interval as a restart
  // does. In a log of sealed starts, an entry of a session there was appended without a start.
  let recoveringAt: number | undefined;
  const recent = new RecentEntries();
  let pendingKey: { file: string; line: number; seq: number; fingerprint: string; message: string; rotated: boolean } | undefined;
  // The checkpoint interval the running server recorded in its server_start, and how far it is
  // into it. Unknown (no check) before the first server_start seen, after a recovery entry (a
  // new start's, until its server_start) and for a server_start that records none.
  let interval: Interval | undefined;
  /** The last entry that is not a checkpoint (a stopping server seals its server_stop). */
  let lastEvent: AuditEntry | undefined;
  let lastTime = -Infinity;
  let expectFound = false;
  let lastFile = "";
  let lastLine = 0;

  /** The key a signature (a checkpoint, a start's seal) was made with: a change is said. */
  const noteKey = (fingerprint: string, seq: number): void => {
    if (summary.keyFingerprint !== undefined && fingerprint !== summary.keyFingerprint) {
      warn(`the signing key changes at seq ${seq} (from ${summary.keyFingerprint} to ${fingerprint}), at a restart`);
    }
    summary.keyFingerprint = fingerprint;
    if (!summary.keyFingerprints.includes(fingerprint)) summary.keyFingerprints.push(fingerprint);
  };
  const fail = (file: string, line: number, seq: number | undefined, reason: AuditFailureReason, message: string): false => {
    summary.ok = false;
    summary.failure = seq === undefined ? { file, line, reason, message } : { file, line, seq, reason, message };
    return false;
  };

  for (let index = 0; index < files.length; index++) {
    const file = files[index]!;
    let fd: number;
    try {
      fd = await openForRead(layer, file);
    } catch (err) {
      // Between the two steps of a rotation the active file is gone for a moment, and the
      // segment it became was not listed: those are checked, then the new active file.
      const added = file === active && errnoOf((err as Error).cause) === "ENOENT" ? await rotatedSince(layer, active, new Set(files)) : [];
      if (added.length === 0) throw err;
      files.splice(index, 0, ...added);
      index--;
      continue;
    }
    if (file === active) {
      // A running server may have rotated the active file since the directory was listed: the
      // file opened now then follows segments not listed, which would read as a gap. Listed
      // again after the open, they are checked first (the file opened is checked last, and
      // if it is itself one of them, renamed after the open, it is checked once).
      let added: string[];
      try {
        added = await rotatedSince(layer, active, new Set(files), fd);
      } catch (err) {
        await layer.close(fd).catch(() => undefined);
        throw err;
      }
      if (added.length > 0) {
        await layer.close(fd).catch(() => undefined);
        files.splice(index, 0, ...added);
        index--;
        continue;
      }
    }
    const fileSummary: AuditFileSummary = { path: file, entries: 0 };
    summary.files.push(fileSummary);
    try {
      // The last file may be the live log of a running server, ending mid-write for a moment:
      // its cut end is read again before it is called torn. Segments are never written again.
      const endWaitMs = file === files.at(-1) ? LIVE_END_WAIT_MS : 0;
      await forEachLine(layer, fd, ({ text, lineNo, complete, utf8, tooLong }) => {
        lastFile = file;
        lastLine = lineNo;
        if (tooLong === true) {
          return fail(
            file,
            lineNo,
            undefined,
            "unparseable",
            `the line is longer than ${MAX_LINE_BYTES} bytes (the longest string Node can make, so longer than any entry the writer makes): not an entry; reading stopped there`,
          );
        }
        if (!complete) {
          // Only the active file is recovered at a start; a segment was whole when rotated.
          const after =
            file === active
              ? "starting the server keeps such a line aside (or, for a whole entry that continues the chain, restores its line break) and records a recovery entry"
              : "this is a rotated segment, complete when it was rotated and never written again, so its end was cut or altered (a server will not continue the chain from it)";
          return fail(file, lineNo, undefined, "torn_tail", `the file ends with an incomplete line of ${Buffer.byteLength(text)} bytes (an interrupted write, or a cut); ${after}`);
        }
        const check = checkEntryLine(text);
        if (!utf8) {
          // The hash is over the decoded text, which cannot tell invalid bytes from a U+FFFD
          // the writer wrote: without this, FF in place of EF BF BD would verify.
          const seq = check.ok ? check.entry.seq : typeof check.parsed?.seq === "number" ? check.parsed.seq : undefined;
          return fail(file, lineNo, seq, "not_canonical", "the line is not valid UTF-8 (the writer writes only UTF-8): its bytes were altered");
        }
        if (!check.ok) {
          const seq = typeof check.parsed?.seq === "number" ? check.parsed.seq : undefined;
          return fail(file, lineNo, seq, check.problem, check.message);
        }
        const entry = check.entry;
        if (prev === undefined) {
          if (entry.seq !== 1 || entry.prev !== GENESIS_PREV) {
            if (requireStart) {
              return fail(
                file,
                lineNo,
                entry.seq,
                "missing_start",
                `the chain starts at seq ${entry.seq}, not at the first entry of the log (seq 1 with prev 0…0): earlier entries or files were removed`,
              );
            }
            warn(`verification starts at seq ${entry.seq}; the entries before it (in earlier files) were not checked`);
          }
        } else {
          const expected = prev.seq + 1;
          if (entry.seq > expected) {
            return fail(file, lineNo, entry.seq, "seq_gap", `seq jumps from ${prev.seq} to ${entry.seq}: ${entry.seq - expected} entries are missing (removed, or moved out of order)`);
          }
          if (entry.seq < expected) {
            return fail(file, lineNo, entry.seq, "seq_order", `seq ${entry.seq} follows seq ${prev.seq}: entries were reordered, duplicated or inserted`);
          }
          if (entry.prev !== prev.hash) {
            return fail(file, lineNo, entry.seq, "broken_link", `prev does not match the hash of seq ${prev.seq}: the entry before was changed or replaced`);
          }
        }
        const entryLogId = logIdOf(entry);
        if (entryLogId !== undefined) {
          if (summary.logId === undefined) summary.logId = entryLogId;
          else if (entryLogId !== summary.logId) {
            return fail(file, lineNo, entry.seq, "log_id_mismatch", `the entry belongs to log ${entryLogId}, not to log ${summary.logId}`);
          }
        }
        if (pendingKey !== undefined) {
          const announced = entry.event === "server_start" ? entry.data?.keyFingerprint : undefined;
          if (entry.event === "rotate" && !pendingKey.rotated) pendingKey.rotated = true;
          else if (entry.event === "recovery" || (entry.event === "server_start" && announced === pendingKey.fingerprint)) pendingKey = undefined;
          else return fail(pendingKey.file, pendingKey.line, pendingKey.seq, "key_mismatch", pendingKey.message);
        }
        if (stoppedAt !== undefined && !BETWEEN_STARTS.has(entry.event)) {
          return fail(
            file,
            lineNo,
            entry.seq,
            "after_stop",
            `seq ${entry.seq} (${entry.event}) follows the server_stop at seq ${stoppedAt.seq} before any server_start: a stopped server writes nothing ` +
              "after its server_stop but its checkpoint, and a starting server writes only recovery, rotate and checkpoint entries before its " +
              "server_start. The entry was added while no server ran (a later start's checkpoints then cover it, but not its origin)",
          );
        }
        if (sealedStarts && recoveringAt !== undefined && !BETWEEN_STARTS.has(entry.event)) {
          return fail(
            file,
            lineNo,
            entry.seq,
            "bad_start",
            `seq ${entry.seq} (${entry.event}) follows the recovery entry at seq ${recoveringAt} before any server_start: only a starting server ` +
              "writes recovery entries, and it writes only recovery, rotate and checkpoint entries before its server_start. The entries were " +
              "appended without a start, to end the running server's checkpoint interval",
          );
        }
        if (entry.event === "recovery") recoveringAt ??= entry.seq;
        else if (entry.event === "server_start") recoveringAt = undefined;
        if (entry.event === "server_start") {
          const problem = startSealProblem(entry, summary.logId, recent, summary.firstSeq ?? entry.seq, sealedStarts, pinned);
          if (problem !== undefined) return fail(file, lineNo, entry.seq, problem.reason, problem.message);
          const seal = entry.data?.continues as CheckpointBody | undefined;
          if (seal !== undefined) {
            sealedStarts = true;
            // A start's seal is a signature like a checkpoint's: a key that changes shows here first.
            noteKey(seal.keyFingerprint, entry.seq);
            // Its checkpoint aside, a stopped server leaves nothing for the next start to take up.
            if (stoppedAt !== undefined && seal.seq > stoppedAt.end) {
              warn(
                `${stoppedAt.end + 1 === seal.seq ? `seq ${seal.seq} was` : `seq ${stoppedAt.end + 1} to ${seal.seq} were`} written after the server_stop at seq ${stoppedAt.seq} and before the next start took up the chain: ` +
                  "recovery entries of a start that did not complete, or entries added while no server ran",
              );
            }
          }
        }
        if (entry.event === "server_stop") stoppedAt = { seq: entry.seq, end: entry.seq };
        else if (entry.event === "server_start") stoppedAt = undefined;
        // The stopping server's own checkpoints (one falling due with the server_stop, then the shutdown's), right after it.
        else if (entry.checkpoint !== undefined && stoppedAt !== undefined && prev?.seq === stoppedAt.end) stoppedAt.end = entry.seq;
        const missing = interval === undefined ? undefined : missingCheckpoint(interval, entry);
        if (missing !== undefined) return fail(file, lineNo, entry.seq, "missing_checkpoint", missing);
        if (entry.checkpoint !== undefined) {
          const cp = entry.checkpoint;
          if (cp.seq !== entry.seq - 1 || cp.head !== entry.prev) {
            return fail(file, lineNo, entry.seq, "bad_checkpoint", `the checkpoint names seq ${cp.seq} and a head that are not the entry just before it`);
          }
          const problem = checkpointProblem(cp, pinned);
          if (problem !== undefined) return fail(file, lineNo, entry.seq, problem.reason, problem.message);
          if (sessionKey !== undefined && cp.keyFingerprint !== sessionKey.fingerprint) {
            pendingKey = {
              file,
              line: lineNo,
              seq: entry.seq,
              fingerprint: cp.keyFingerprint,
              rotated: false,
              message:
                `the checkpoint is signed by key ${cp.keyFingerprint}, but the server writing this part of the log announced key ${sessionKey.fingerprint} ` +
                `at its start (seq ${sessionKey.seq}) and did not restart since (a server signs with one key; a restart that rotates first is followed ` +
                "by its rotate entry and its start announcing the new key): the checkpoint was re-signed",
            };
          }
          noteKey(cp.keyFingerprint, entry.seq);
          summary.checkpoints++;
          summary.lastCheckpointSeq = entry.seq;
          summary.unsealedEntries = 0;
        } else {
          summary.unsealedEntries++;
        }
        // A starting server writes its recovery entries (and may seal a checkpoint among them)
        // before its server_start: from the first of them on, the key is the new server's.
        if (entry.event === "recovery") sessionKey = undefined;
        if (entry.event === "server_start") {
          const announced = entry.data?.keyFingerprint;
          sessionKey = isHash(announced) ? { fingerprint: announced, seq: entry.seq } : undefined;
        }
        interval = nextInterval(interval, entry);
        if (entry.event === "recovery") {
          const kind = typeof entry.data?.kind === "string" ? entry.data.kind : undefined;
          summary.recoveries.push({
            seq: entry.seq,
            file,
            line: lineNo,
            ...(kind === undefined ? {} : { kind }),
            ...(entry.reason === undefined ? {} : { reason: entry.reason }),
            ...(entry.data === undefined ? {} : { data: entry.data }),
          });
        }
        const time = Date.parse(entry.ts);
        if (time < lastTime) warn(`time goes backwards at seq ${entry.seq} (${entry.ts}); a clock change?`);
        lastTime = Math.max(lastTime, time);
        if (entry.hash === options.expectHead) expectFound = true;
        if (entry.checkpoint === undefined) lastEvent = entry;
        summary.entries++;
        summary.firstSeq ??= entry.seq;
        summary.firstTs ??= entry.ts;
        summary.lastSeq = entry.seq;
        summary.lastTs = entry.ts;
        summary.head = entry.hash;
        fileSummary.firstSeq ??= entry.seq;
        fileSummary.lastSeq = entry.seq;
        fileSummary.entries++;
        recent.push({ seq: entry.seq, hash: entry.hash, event: entry.event });
        prev = entry;
        return true;
      }, { endWaitMs });
    } catch (err) {
      throw new AuditReadError(`${file} cannot be read: ${describeFsError(err)}`, { cause: err });
    } finally {
      await layer.close(fd).catch(() => undefined);
    }
    if (summary.failure !== undefined) {
      closeWarnings();
      return summary;
    }
  }

  if (pendingKey !== undefined) {
    fail(pendingKey.file, pendingKey.line, pendingKey.seq, "key_mismatch", pendingKey.message);
  } else if (pinned !== undefined && summary.checkpoints === 0) {
    fail(lastFile, lastLine, summary.lastSeq, "no_checkpoint", "a key is pinned but the log holds no signed checkpoint to check it against");
  } else if (options.expectHead !== undefined && !expectFound) {
    fail(
      lastFile,
      lastLine,
      summary.lastSeq,
      "truncated",
      `the expected head ${options.expectHead} is not in the log: entries were cut off its end (or it is another log)`,
    );
  }
  if (interval !== undefined) summary.checkpointEvery = interval.every;
  if (summary.ok && summary.unsealedEntries > 0 && summary.checkpoints > 0) {
    warn(`${summary.unsealedEntries} entries after the last checkpoint are not covered by a signature yet${unsealedNote(interval, summary.unsealedEntries)}`);
  }
  // A server that stops closes the log with server_stop (and its checkpoint). An end without
  // one is a running server, a crash, or a cut: entries cut off after a checkpoint leave a log
  // that verifies in every other way, so the end is said, not taken as the whole log.
  if (summary.ok && requireStart && lastEvent !== undefined && lastEvent.event !== "server_stop") {
    warn(
      `the log ends at seq ${lastEvent.seq} (${lastEvent.event}) without a server_stop: its server is running, or did not stop in order ` +
        "(a crash, a kill), or entries after it were removed; --expect-head with the head printed at shutdown tells which",
    );
  }
  closeWarnings();
  return summary;
}

/** What may come between a server_stop and the next server_start (the next start's server_start included). */
const BETWEEN_STARTS: ReadonlySet<string> = new Set(["checkpoint", "rotate", "recovery", "server_start"]);

/** Where the running server is in its checkpoint interval, as its entries so far show. */
interface Interval {
  /** `checkpointEvery` from its server_start. */
  every: number;
  /** The seq of its server_start. */
  startSeq: number;
  /** The seq of its last checkpoint, if it sealed one since its start. */
  checkpointSeq?: number;
  /** Entries it counts towards the next checkpoint: all but checkpoint and rotate, its server_start the first. */
  counted: number;
  /** Entries since its start (from its server_start on) or its last checkpoint, rotate entries too. */
  unsealed: number;
}

/**
 * The interval after `entry`. Pure. A recovery entry ends the running server's interval (a
 * new start, which may follow a crash: a server that did not stop seals no final checkpoint,
 * and its last entries need none); its server_start begins the next.
 */
function nextInterval(interval: Interval | undefined, entry: AuditEntry): Interval | undefined {
  if (entry.event === "server_start") {
    const every = entry.data?.checkpointEvery;
    // A value the writer cannot have written counts as none: a forger could leave it out as well.
    if (typeof every !== "number" || !Number.isSafeInteger(every) || every < 0) return undefined;
    return { every, startSeq: entry.seq, counted: 1, unsealed: 1 };
  }
  if (interval === undefined || entry.event === "recovery") return undefined;
  if (entry.checkpoint !== undefined) return { ...interval, checkpointSeq: entry.seq, counted: 0, unsealed: 0 };
  return { ...interval, counted: interval.counted + (entry.event === "rotate" ? 0 : 1), unsealed: interval.unsealed + 1 };
}

/**
 * Why `entry` cannot follow the running server's entries so far, if a checkpoint was due
 * before it. Pure. The writer seals each caller's entry and, in the same synchronous step,
 * the checkpoint its interval makes due (see ChainWriter.sealPrimary): no entry of the same
 * server can come between them, whatever is in flight, so the slack is none. A server may
 * stop (crash, failed write) right after the entry, before its checkpoint reaches the file:
 * then the next entry is a new start's (recovery or server_start), which is not checked.
 */
function missingCheckpoint(interval: Interval, entry: AuditEntry): string | undefined {
  if (interval.every === 0 || interval.counted < interval.every) return undefined;
  if (entry.checkpoint !== undefined || entry.event === "recovery" || entry.event === "server_start") return undefined;
  const since = interval.checkpointSeq === undefined ? `from its server_start (seq ${interval.startSeq}) on` : `after its checkpoint at seq ${interval.checkpointSeq}`;
  return (
    `seq ${entry.seq} (${entry.event}) follows ${interval.every} entries (rotate entries aside) without a checkpoint ${since}: ` +
    `that server recorded checkpoint_every ${interval.every} in its server_start and seals a checkpoint right after every ` +
    `${interval.every} entries, so one over seq ${entry.seq - 1} was due here, at seq ${entry.seq}. The entries since were ` +
    "rewritten and re-hashed by someone without the signing key (entries inserted, or a checkpoint removed)"
  );
}

/** What the warning about unsealed entries adds when the interval of the server that wrote them is known. Pure. */
function unsealedNote(interval: Interval | undefined, unsealed: number): string {
  if (interval === undefined) return "";
  const earlier =
    unsealed > interval.unsealed
      ? `; the ${unsealed - interval.unsealed} before them precede its server_start (the end of a server that did not stop in order, or this start's recovery entries)`
      : "";
  const mine = `${interval.unsealed === unsealed ? "all" : interval.unsealed} written by the server started at seq ${interval.startSeq}`;
  if (interval.every === 0) return `: ${mine}, which seals checkpoints only at rotation and shutdown (checkpoint_every 0)${earlier}`;
  return (
    `: ${mine}, within its interval (it seals a checkpoint after every ${interval.every} entries; ${interval.counted} counted so far, ` +
    `the next after ${interval.every - interval.counted} more)${earlier}`
  );
}

/**
 * Which files make up the log at `target`, in chain order: the rotated segments by the
 * first seq in their names (not by their content, which is what is being checked), then
 * the active file. A directory must hold one log; a name that is not used is reported.
 */
async function discover(layer: AuditFs, target: string): Promise<Chain> {
  const warnings: string[] = [];
  const list = (dir: string): Promise<string[]> => listDirectory(layer, dir);
  let st;
  try {
    st = await layer.stat(target);
  } catch (err) {
    // A named active file that is gone (removed, or a crash between the steps of a rotation)
    // still has its segments to check.
    if (errnoOf(err) === "ENOENT" && !ANY_SEGMENT.test(path.basename(target))) {
      const dir = path.dirname(target);
      const names = await list(dir).catch(() => []);
      if (segmentsOf(target, names).length > 0) return chainOf(layer, dir, path.basename(target), names, warnings);
    }
    throw new AuditReadError(`${target} cannot be read: ${describeFsError(err)}`, { cause: err });
  }
  const linked = st.isFile() && (await layer.lstat(target).catch(() => undefined))?.isSymbolicLink() === true;
  if (linked && !ANY_SEGMENT.test(path.basename(target))) {
    // The writer never follows a link to its log; a linked active file is judged with its chain.
    const dir = path.dirname(target);
    const names = await list(dir);
    if (segmentsOf(target, names).length > 0) return chainOf(layer, dir, path.basename(target), names, warnings);
    throw new AuditReadError(`${target} is a symbolic link; verify the file it points to`);
  }
  if (st.isFile()) {
    const base = path.basename(target);
    const info = await probe(layer, target);
    if (ANY_SEGMENT.test(base)) {
      // One segment alone: its chain starts before it and goes on after it.
      if (info.empty) throw new AuditReadError(`${target} is empty: not an audit log`);
      if (!info.looksLikeEntry) throw new AuditReadError(`${target} is not an audit log (no line of its start or its end is an audit entry)`);
      warnings.push(`only the segment ${base} was checked, not the files after it; verify the directory or the active file for the whole log`);
      return { files: [target], requireStart: false, warnings };
    }
    const dir = path.dirname(target);
    const names = await list(dir);
    if (!info.empty && !info.looksLikeEntry && segmentsOf(target, names).length === 0) {
      throw new AuditReadError(`${target} is not an audit log (no line of its start or its end is an audit entry)`);
    }
    return chainOf(layer, dir, base, names, warnings);
  }
  if (!st.isDirectory()) throw new AuditReadError(`${target} is neither a file nor a directory`);

  const found = await findDirectoryLog(layer, target);
  warnings.push(...found.warnings);
  return chainOf(layer, target, found.activeName, found.names, warnings);
}

/** The files of the log whose active file is `activeName` in `dir`: its segments, oldest first, then the active file. */
async function chainOf(
  layer: AuditFs,
  dir: string,
  activeName: string,
  names: readonly string[],
  warnings: string[],
): Promise<Chain> {
  const activePath = path.join(dir, activeName);
  const files = segmentsOf(activePath, names).map((segment) => path.join(dir, segment.name));
  const fst = names.includes(activeName) ? await layer.lstat(activePath).catch(() => undefined) : undefined;
  let activeProblem: string | undefined;
  if (fst === undefined) activeProblem = "is missing";
  else if (fst.isSymbolicLink()) activeProblem = "is a symbolic link (the server never makes one); not followed";
  else if (!fst.isFile()) activeProblem = "is not a regular file";
  else if ((await probe(layer, activePath)).empty) activeProblem = "is empty";
  else files.push(activePath);
  if (files.length === 0) throw new AuditReadError(`${activePath} ${activeProblem ?? "holds no entries"}: no audit log to verify`);
  if (activeProblem !== undefined) {
    // A crash between the steps of a rotation leaves this too; the next start records it
    // (an active_missing recovery). Either way, what was written after the last rotation
    // cannot be checked here: `--expect-head` tells whether anything was.
    warnings.push(
      `the active file ${activeName} ${activeProblem}: the chain ends with the last rotated segment, and entries written after it, if any, were not checked (use --expect-head to be sure)`,
    );
  }
  return { files, requireStart: true, warnings, ...(activeProblem === undefined ? { active: activePath } : {}) };
}

/** The files of a log in chain order, and how to read them. */
interface Chain {
  files: string[];
  /** Whether the chain must start at the log's first entry (not for one segment checked alone). */
  requireStart: boolean;
  warnings: string[];
  /** The active file, last in `files`, when it is there: a running server may rotate it while it is read. */
  active?: string;
}

/**
 * Segments rotated out of `active` since `known` was listed, oldest first, other than the
 * file open as `fd`, if any (the active file opened before a rotation that renamed it).
 */
async function rotatedSince(layer: AuditFs, active: string, known: ReadonlySet<string>, fd?: number): Promise<string[]> {
  const dir = path.dirname(active);
  const names = await listDirectory(layer, dir);
  const open = fd === undefined ? undefined : await layer.fstat(fd);
  const added: string[] = [];
  for (const segment of segmentsOf(active, names)) {
    const file = path.join(dir, segment.name);
    if (known.has(file)) continue;
    const st = await layer.stat(file).catch(() => undefined);
    if (st !== undefined && !(open !== undefined && st.dev === open.dev && st.ino === open.ino)) added.push(file);
  }
  return added;
}
