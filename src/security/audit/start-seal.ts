/**
 * A server_start's seal: the starting server signs, with the key it announces, where it took
 * up the chain (`data.continues`: the seq and hash of the last whole entry it found; seq 0 and
 * the genesis hash on a new log) and what it records (its data but the seal): a checkpoint's
 * body, signed over a text of its own (startSealMessage), so that no checkpoint can be copied
 * in as a seal and no start's data changed under one. Without the key no
 * one can write a server_start that verifies, so a forged tail cannot pass for a later
 * server's session (a forged restart began a new checkpoint count), and nothing can be slipped
 * in between the point a start signed and its server_start: only its own recovery, rotate and
 * checkpoint entries come there. Pure; `audit verify` calls it for every server_start.
 */
import { checkpointProblem, startRecordDigest, startSealMessage } from "./checkpoint.js";
import { checkpointShapeProblem, GENESIS_PREV, type AuditEntry, type CheckpointBody } from "./entry.js";

/** What a starting server writes between the point it signs and its server_start. */
const START_OWN_EVENTS: ReadonlySet<string> = new Set(["recovery", "rotate", "checkpoint"]);

export interface RecentEntry {
  seq: number;
  hash: string;
  event: string;
}

/** The last entries verified, for a start to be placed among (a start writes a handful of its own). */
export class RecentEntries {
  private items: RecentEntry[] = [];

  constructor(private readonly keep = 1024) {}

  push(entry: RecentEntry): void {
    this.items.push(entry);
    // Trimmed in halves, not one by one: a shift per entry would move the whole array each time.
    if (this.items.length >= this.keep * 2) this.items = this.items.slice(-this.keep);
  }

  /** The entry at `seq` and those after it, or undefined when `seq` is no longer (or never was) kept. */
  from(seq: number): RecentEntry[] | undefined {
    const first = this.items[0];
    if (first === undefined || seq < first.seq) return undefined;
    const index = seq - first.seq;
    return this.items[index]?.seq === seq ? this.items.slice(index) : undefined;
  }
}

export interface StartSealProblem {
  reason: "bad_start" | "key_mismatch" | "bad_signature";
  message: string;
}

/**
 * Why a server_start's seal does not hold, or undefined. `required`: an earlier start in the log
 * carried one (every server since signs its start). `firstSeq`: the first seq verified (a
 * directory verified from a later segment cannot place a start that took up the chain before it).
 */
export function startSealProblem(
  start: AuditEntry,
  logId: string | undefined,
  recent: RecentEntries,
  firstSeq: number,
  required: boolean,
  pinned?: Buffer,
): StartSealProblem | undefined {
  const value = start.data?.continues;
  if (value === undefined) {
    if (!required) return undefined;
    return {
      reason: "bad_start",
      message:
        "this server_start carries no signed seal of where it took up the chain, though an earlier start in the log did (every server since " +
        "signs its start): it was written without the key, a forged restart",
    };
  }
  const shape = checkpointShapeProblem(value);
  if (shape !== undefined) return { reason: "bad_start", message: `the server_start's seal (data.continues) is malformed: ${shape.replace(/^checkpoint/, "continues")}` };
  const seal = value as CheckpointBody;
  if (logId !== undefined && seal.logId !== logId) return { reason: "bad_start", message: `the server_start is sealed for log ${seal.logId}, not for this log (${logId})` };
  if (seal.keyFingerprint !== start.data?.keyFingerprint) {
    return { reason: "bad_start", message: `the server_start is sealed with key ${seal.keyFingerprint} but announces key ${String(start.data?.keyFingerprint)}` };
  }
  const signature = checkpointProblem(seal, pinned, startSealMessage(seal.logId, seal.seq, seal.head, startRecordDigest(start.data ?? {})));
  if (signature !== undefined) {
    return { reason: signature.reason === "bad_checkpoint" ? "bad_start" : signature.reason, message: `the server_start's seal: ${sealWording(signature.message)}` };
  }
  if (seal.seq >= start.seq) return { reason: "bad_start", message: `the server_start's seal names seq ${seal.seq}, which is not before it` };
  if (seal.seq === 0 && seal.head !== GENESIS_PREV) return { reason: "bad_start", message: "the server_start's seal names seq 0 with a head other than the genesis" };
  const tooFar = (): StartSealProblem => ({
    reason: "bad_start",
    message: `the server_start's seal names seq ${seal.seq}, too far before it: a start writes only a few entries of its own before its server_start`,
  });
  // Where it took up the chain: at an entry verified here, or before the first one verified
  // (the genesis, or a segment verified alone). Then what is verified of the stretch up to
  // the start must be its own entries all the same: a copied seal placed further on is not.
  let after: RecentEntry[];
  if (seal.seq >= firstSeq) {
    const kept = recent.from(seal.seq);
    if (kept === undefined) return tooFar();
    if (kept[0]!.hash !== seal.head) {
      return {
        reason: "bad_start",
        message: `the entry at seq ${seal.seq} is not the one the starting server found there and signed (its hash differs): the entries before the start were rewritten`,
      };
    }
    after = kept.slice(1);
  } else {
    const kept = start.seq === firstSeq ? [] : recent.from(firstSeq);
    if (kept === undefined) return tooFar();
    after = kept;
  }
  const inserted = after.find((entry) => !START_OWN_EVENTS.has(entry.event));
  if (inserted !== undefined) {
    return {
      reason: "bad_start",
      message:
        `seq ${inserted.seq} (${inserted.event}) lies between the end of the chain the server at seq ${start.seq} found and signed (seq ${seal.seq}) and its server_start, ` +
        "where a starting server writes only recovery, rotate and checkpoint entries: it was inserted",
    };
  }
  return undefined;
}

/** A checkpoint's problem, said of a seal: "the checkpoint's public key" becomes "its public key". */
function sealWording(message: string): string {
  return message.replace(/^the checkpoint's /, "its ").replace(/^the checkpoint signature /, "its signature ").replace(/^the checkpoint /, "it ");
}
