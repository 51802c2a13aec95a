/**
 * Names of the files around the active log: rotated segments (which sort by time and
 * first seq), torn-line keepers and the writer's lock. Pure string functions.
 *
 *   audit.log                                   the active file
 *   audit-20261122T031500Z-000000001234.log     a rotated segment (its first entry's time and seq)
 *   audit.log.torn-20261122T031500Z             bytes of a torn last line, kept aside
 *   audit.log.lock                              the pid (and identity) of the process writing the log
 *   audit.log.lock.stale-4242-1a2b3c4d5e6f      a stale lock moved aside while it is taken over
 *   .audit.log.lock.new-4242-1a2b3c4d5e6f       a lock being written, before it is linked in place
 *
 * The last two live for a few syscalls; a crash can leave them, and the next writer to take
 * the lock removes them once a minute old (lock.ts).
 */
import path from "node:path";
import { foldName } from "../../util/text.js";

/** 2026-11-22T03:15:00.123Z → 20261122T031500Z */
export function compactUtc(iso: string): string {
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

/** The UTC day (YYYY-MM-DD) of an ISO time. */
export function utcDay(iso: string): string {
  return iso.slice(0, 10);
}

function splitName(activePath: string): { dir: string; stem: string; ext: string } {
  const dir = path.dirname(activePath);
  const base = path.basename(activePath);
  const ext = path.extname(base);
  return { dir, stem: ext.length > 0 ? base.slice(0, -ext.length) : base, ext };
}

/** The path a segment gets when it is rotated out. */
export function segmentPath(activePath: string, firstTs: string, firstSeq: number): string {
  const { dir, stem, ext } = splitName(activePath);
  return path.join(dir, `${stem}-${compactUtc(firstTs)}-${String(firstSeq).padStart(12, "0")}${ext}`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Matches the segments of one active file; group 1 is the first seq. */
export function segmentPattern(activePath: string): RegExp {
  const { stem, ext } = splitName(activePath);
  return new RegExp(`^${escapeRegExp(stem)}-\\d{8}T\\d{6}Z-(\\d{12,})${escapeRegExp(ext)}$`);
}

/** Any segment name, whatever its active file is called. */
export const ANY_SEGMENT = /^.+-\d{8}T\d{6}Z-\d{12,}(\.[^.]+)?$/;

export function tornPath(activePath: string, ts: string, attempt: number): string {
  return `${activePath}.torn-${compactUtc(ts)}${attempt > 0 ? `-${attempt}` : ""}`;
}

/**
 * What a torn-line keeper is called until the `recovery` entry naming it is on disk: a start
 * that stops between setting the bytes aside and recording them leaves it so named, and the
 * next start records it (see openAuditLog).
 */
export const UNRECORDED_SUFFIX = ".unrecorded";

/** The active log's keepers still waiting for their `recovery` entry, as names in its directory. */
export function unrecordedKeepers(activePath: string, names: readonly string[]): string[] {
  const pattern = new RegExp(`^${escapeRegExp(path.basename(activePath))}\\.torn-\\d{8}T\\d{6}Z(-\\d+)?${escapeRegExp(UNRECORDED_SUFFIX)}$`);
  return names.filter((name) => pattern.test(name)).sort();
}

export function lockPath(activePath: string): string {
  return `${activePath}.lock`;
}

/**
 * Whether `name`, in the active log's directory, is one of that log's files: the active
 * file, its segments, torn-line keepers, its lock and the lock's temporary files. Letter
 * case and Unicode normalization are ignored: a case-insensitive file system opens them
 * under any spelling.
 */
export function belongsToLog(activePath: string, name: string): boolean {
  const folded = foldName(name);
  const base = foldName(path.basename(activePath));
  return (
    folded === base ||
    folded.startsWith(`${base}.`) ||
    folded.startsWith(`.${base}.`) ||
    new RegExp(segmentPattern(foldName(activePath)).source, "i").test(folded)
  );
}

/** Files next to the log that are not part of the chain (a crash can leave any of them behind). */
export function isSideFile(name: string): boolean {
  return name.startsWith(".") || name.endsWith(".lock") || /\.lock\.stale-\d+-[0-9a-f]+$/.test(name) || /\.torn-\d{8}T\d{6}Z(-\d+)?(\.unrecorded)?$/.test(name);
}

/** The segments of `activePath` among `names`, newest (highest first seq) last. */
export function segmentsOf(activePath: string, names: readonly string[]): Array<{ name: string; firstSeq: number }> {
  const pattern = segmentPattern(activePath);
  const found: Array<{ name: string; firstSeq: number }> = [];
  for (const name of names) {
    const match = pattern.exec(name);
    if (match?.[1] !== undefined) found.push({ name, firstSeq: Number(match[1]) });
  }
  return found.sort((a, b) => a.firstSeq - b.firstSeq);
}
