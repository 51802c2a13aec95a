/**
 * Offline verification of an audit log: every line's hash and exact form, every link
 * (within and across files, ordered by first seq), seq continuity from genesis, every
 * checkpoint's binding to its position and its signature (optionally against a pinned
 * key), and an optional expected head (to catch entries cut off the end).
 *
 * Tampering is reported in the summary (`failure`, the first broken entry); a path that
 * cannot be read or holds no audit log throws AuditReadError.
 */
import { constants as C } from "node:fs";
import path from "node:path";
import { checkEntryLine, GENESIS_PREV, isHash, logIdOf, type AuditEntry } from "./entry.js";
import { checkpointProblem, fingerprintOfRaw, pinnedKeyFromPem } from "./checkpoint.js";
import { AuditReadError, describeFsError } from "./errors.js";
import { forEachLine, readFirstLine } from "./file-scan.js";
import { nodeAuditFs, O_NOFOLLOW, type AuditFs } from "./fs-layer.js";
import { ANY_SEGMENT, isSideFile, segmentsOf } from "./segments.js";

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

interface Candidate {
  path: string;
  firstSeq?: number;
  nameSeq?: number;
}

const MAX_WARNINGS = 20;

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
  const { files, requireStart, warnings } = await discover(layer, target);

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
  const warn = (text: string): void => {
    if (summary.warnings.length < MAX_WARNINGS) summary.warnings.push(text);
  };
  let prev: AuditEntry | undefined;
  let lastTime = -Infinity;
  let expectFound = false;
  let lastFile = "";
  let lastLine = 0;

  const fail = (file: string, line: number, seq: number | undefined, reason: AuditFailureReason, message: string): false => {
    summary.ok = false;
    summary.failure = seq === undefined ? { file, line, reason, message } : { file, line, seq, reason, message };
    return false;
  };

  for (const file of files) {
    const fileSummary: AuditFileSummary = { path: file, entries: 0 };
    summary.files.push(fileSummary);
    const fd = await openForRead(layer, file);
    try {
      await forEachLine(layer, fd, ({ text, lineNo, complete }) => {
        lastFile = file;
        lastLine = lineNo;
        if (!complete) {
          return fail(
            file,
            lineNo,
            undefined,
            "torn_tail",
            `the file ends with an incomplete line of ${Buffer.byteLength(text)} bytes (an interrupted write, or a cut); ` +
              "starting the server keeps such a line aside and records a recovery entry",
          );
        }
        const check = checkEntryLine(text);
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
        if (entry.checkpoint !== undefined) {
          const cp = entry.checkpoint;
          if (cp.seq !== entry.seq - 1 || cp.head !== entry.prev) {
            return fail(file, lineNo, entry.seq, "bad_checkpoint", `the checkpoint names seq ${cp.seq} and a head that are not the entry just before it`);
          }
          const problem = checkpointProblem(cp, pinned);
          if (problem !== undefined) return fail(file, lineNo, entry.seq, problem.reason, problem.message);
          summary.checkpoints++;
          summary.lastCheckpointSeq = entry.seq;
          summary.keyFingerprint = cp.keyFingerprint;
          if (!summary.keyFingerprints.includes(cp.keyFingerprint)) {
            if (summary.keyFingerprints.length > 0) warn(`the signing key changes at seq ${entry.seq} (to ${cp.keyFingerprint})`);
            summary.keyFingerprints.push(cp.keyFingerprint);
          }
          summary.unsealedEntries = 0;
        } else {
          summary.unsealedEntries++;
        }
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
        summary.entries++;
        summary.firstSeq ??= entry.seq;
        summary.firstTs ??= entry.ts;
        summary.lastSeq = entry.seq;
        summary.lastTs = entry.ts;
        summary.head = entry.hash;
        fileSummary.firstSeq ??= entry.seq;
        fileSummary.lastSeq = entry.seq;
        fileSummary.entries++;
        prev = entry;
        return true;
      });
    } catch (err) {
      throw new AuditReadError(`${file} cannot be read: ${describeFsError(err)}`, { cause: err });
    } finally {
      await layer.close(fd).catch(() => undefined);
    }
    if (summary.failure !== undefined) return summary;
  }

  if (pinned !== undefined && summary.checkpoints === 0) {
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
  if (summary.ok && summary.unsealedEntries > 0 && summary.checkpoints > 0) {
    warn(`${summary.unsealedEntries} entries after the last checkpoint are not covered by a signature yet`);
  }
  return summary;
}

async function openForRead(layer: AuditFs, file: string): Promise<number> {
  try {
    return await layer.open(file, C.O_RDONLY | O_NOFOLLOW);
  } catch (err) {
    throw new AuditReadError(`${file} cannot be read: ${describeFsError(err)}`, { cause: err });
  }
}

/** The first line of a file, parsed: its seq when it looks like an audit entry. */
async function probe(layer: AuditFs, file: string): Promise<{ empty: boolean; looksLikeEntry: boolean; firstSeq?: number }> {
  const fd = await openForRead(layer, file);
  try {
    const { size } = await layer.fstat(fd);
    if (size === 0) return { empty: true, looksLikeEntry: false };
    const line = await readFirstLine(layer, fd, size);
    let text = line;
    if (text === undefined) {
      // No newline at all: a lone torn line. Look at its start to decide whether it is ours.
      const head = Buffer.alloc(Math.min(size, 64));
      await layer.read(fd, head, 0, head.length, 0);
      return { empty: false, looksLikeEntry: head.toString("utf8").startsWith('{"') };
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      text = undefined;
    }
    if (text === undefined || typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return { empty: false, looksLikeEntry: false };
    const record = parsed as Record<string, unknown>;
    const looksLikeEntry = "v" in record && "hash" in record && "seq" in record;
    return typeof record.seq === "number" ? { empty: false, looksLikeEntry, firstSeq: record.seq } : { empty: false, looksLikeEntry };
  } catch (err) {
    if (err instanceof AuditReadError) throw err;
    throw new AuditReadError(`${file} cannot be read: ${describeFsError(err)}`, { cause: err });
  } finally {
    await layer.close(fd).catch(() => undefined);
  }
}

/** Which files make up the log at `target`, in chain order. */
async function discover(layer: AuditFs, target: string): Promise<{ files: string[]; requireStart: boolean; warnings: string[] }> {
  const warnings: string[] = [];
  let st;
  try {
    st = await layer.stat(target);
  } catch (err) {
    throw new AuditReadError(`${target} cannot be read: ${describeFsError(err)}`, { cause: err });
  }
  const candidates: Candidate[] = [];
  let requireStart = true;
  const list = async (dir: string): Promise<string[]> => {
    try {
      return (await layer.readdir(dir)).sort();
    } catch (err) {
      throw new AuditReadError(`${dir} cannot be listed: ${describeFsError(err)}`, { cause: err });
    }
  };
  const nameSeq = (name: string): number | undefined => {
    const match = /-(\d{12,})(\.[^.]+)?$/.exec(name);
    return match?.[1] === undefined ? undefined : Number(match[1]);
  };
  if (st.isDirectory()) {
    const names = await list(target);
    // An active file next to its segments is part of the chain whatever its first line looks like.
    const activeNames = new Set(names.filter((n) => ANY_SEGMENT.test(n)).map((n) => n.replace(/-\d{8}T\d{6}Z-\d{12,}(\.[^.]+)?$/, "$1")));
    for (const name of names) {
      if (isSideFile(name)) continue;
      const file = path.join(target, name);
      const fst = await layer.lstat(file).catch(() => undefined);
      if (fst === undefined || !fst.isFile()) continue;
      const isSegment = ANY_SEGMENT.test(name);
      if (!isSegment && !/\.(log|jsonl)$/.test(name)) continue;
      const info = await probe(layer, file);
      if (info.empty) {
        warnings.push(`${name} is empty; skipped`);
        continue;
      }
      if (!info.looksLikeEntry && !isSegment && !activeNames.has(name)) {
        warnings.push(`${name} is not an audit log; skipped`);
        continue;
      }
      const seqFromName = isSegment ? nameSeq(name) : undefined;
      candidates.push({ path: file, ...(info.firstSeq === undefined ? {} : { firstSeq: info.firstSeq }), ...(seqFromName === undefined ? {} : { nameSeq: seqFromName }) });
    }
    if (candidates.length === 0) throw new AuditReadError(`${target} holds no audit log`);
  } else if (st.isFile()) {
    const info = await probe(layer, target);
    const base = path.basename(target);
    const isSegment = ANY_SEGMENT.test(base);
    if (info.empty && isSegment) throw new AuditReadError(`${target} is empty: not an audit log`);
    if (!info.empty && !info.looksLikeEntry) throw new AuditReadError(`${target} is not an audit log (its first line is not an audit entry)`);
    if (isSegment) {
      requireStart = false;
    } else {
      const dir = path.dirname(target);
      for (const segment of segmentsOf(target, await list(dir))) {
        const file = path.join(dir, segment.name);
        const seg = await probe(layer, file);
        candidates.push({ path: file, nameSeq: segment.firstSeq, ...(seg.firstSeq === undefined ? {} : { firstSeq: seg.firstSeq }) });
      }
      if (info.empty && candidates.length === 0) throw new AuditReadError(`${target} is empty: not an audit log`);
      if (info.empty) warnings.push(`${base} is empty (just rotated?); its segments were checked`);
    }
    if (!info.empty) candidates.push({ path: target, ...(info.firstSeq === undefined ? {} : { firstSeq: info.firstSeq }) });
  } else {
    throw new AuditReadError(`${target} is neither a file nor a directory`);
  }
  const order = (c: Candidate): number => c.firstSeq ?? c.nameSeq ?? Number.POSITIVE_INFINITY;
  candidates.sort((a, b) => (order(a) === order(b) ? 0 : order(a) < order(b) ? -1 : 1));
  return { files: candidates.map((c) => c.path), requireStart, warnings };
}
