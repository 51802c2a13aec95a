/**
 * `mcp-secure-local audit verify` and `audit tail` as functions: argv in (after the
 * subcommand), text out through `io`, exit code back. The CLI entry owns the process.
 *
 * verify exit codes: 0 intact, 1 tampered (the first broken entry is named),
 * 2 unreadable, not an audit log, or a usage error.
 */
import { createPrivateKey, createPublicKey } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import fs from "node:fs/promises";
import { fingerprintOfRaw, rawPublicKey } from "./checkpoint.js";
import { AuditReadError, describeFsError, errnoOf } from "./errors.js";
import { LogFollower } from "./follow.js";
import { activeFileOf, formatTailLine, readAuditTail } from "./tail.js";
import { printable } from "../../util/text.js";
import { verifyAudit, type AuditVerifySummary } from "./verify.js";

export interface AuditCliIo {
  /** Receives complete text, trailing newline included. */
  out(text: string): void;
  err(text: string): void;
  /** The active log file of the effective policy, used when no FILE is given. */
  defaultLogPath: string;
  /** Ends `audit tail --follow` (the CLI fires it on SIGINT/SIGTERM or when stdout goes away). */
  signal?: AbortSignal;
  /** How often `--follow` looks at the file (default 250 ms; tests make it shorter). */
  followIntervalMs?: number;
}

export const VERIFY_USAGE =
  "usage: mcp-secure-local audit verify [FILE|DIR] [--pubkey FILE] [--expect-head HASH] [--json]\n" +
  "  Checks every hash, link, seq and checkpoint signature of the audit log (default: the policy's log and its rotated files),\n" +
  "  and that a checkpoint follows wherever the interval its server recorded makes one due.\n" +
  "  --pubkey FILE       require every checkpoint to be signed by this Ed25519 key (PEM)\n" +
  "  --expect-head HASH  require this head (printed at shutdown as `audit head: ...`) to be in the log\n" +
  "  --json              print the summary as JSON\n" +
  "  exit: 0 intact, 1 tampered, 2 unreadable or not an audit log\n";

export const TAIL_USAGE =
  "usage: mcp-secure-local audit tail [-n N] [-f] [FILE|DIR]\n" +
  "  Prints the last N entries (default 20) of the audit log (its active file, or a directory holding one log):\n" +
  "  time, seq, event, tool, outcome, duration, reason.\n" +
  "  When the active file holds fewer (as right after a rotation), the entries before come from its rotated files.\n" +
  "  -f, --follow  then prints entries as they are written, across rotations, until interrupted (Ctrl-C)\n";

export const PUBKEY_USAGE =
  "usage: mcp-secure-local audit pubkey [--policy FILE] [--state-dir DIR]\n" +
  "  Prints the public half of the audit signing key (the policy's audit.signing_key, or <state dir>/keys/audit-ed25519.pem)\n" +
  "  as PEM, to keep apart from this machine and give to `audit verify --pubkey`. Its fingerprint goes to stderr.\n";

interface ParsedArgs {
  positional: string[];
  options: Map<string, string | true>;
}

/** Splits argv into positionals and the given options; unknown options are an error. */
function parseArgs(argv: readonly string[], valued: readonly string[], flags: readonly string[]): ParsedArgs | string {
  const positional: string[] = [];
  const options = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    let name = eq >= 0 ? arg.slice(0, eq) : arg;
    let inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (/^-n\d+$/.test(arg)) {
      name = "-n";
      inline = arg.slice(2);
    }
    if (flags.includes(name)) {
      if (inline !== undefined) return `option ${name} takes no value`;
      options.set(name, true);
    } else if (valued.includes(name)) {
      const value = inline ?? argv[++i];
      if (value === undefined || value.length === 0) return `option ${name} needs a value`;
      options.set(name, value);
    } else {
      return `unknown option ${arg}`;
    }
  }
  return { positional, options };
}

export async function runAuditVerify(argv: string[], io: AuditCliIo): Promise<number> {
  const parsed = parseArgs(argv, ["--pubkey", "--expect-head"], ["--json", "--help", "-h"]);
  if (typeof parsed === "string" || parsed.positional.length > 1) {
    io.err(`audit verify: ${printable(typeof parsed === "string" ? parsed : "give at most one FILE or DIR")}\n${VERIFY_USAGE}`);
    return 2;
  }
  if (parsed.options.has("--help") || parsed.options.has("-h")) {
    io.out(VERIFY_USAGE);
    return 0;
  }
  const json = parsed.options.has("--json");
  const target = parsed.positional[0] ?? io.defaultLogPath;
  const fail = (message: string): number => {
    // The message names files, and a file's name may hold control characters (anyone who can
    // write in the log's directory chooses them): they must not reach the terminal as they are.
    io.err(`audit verify: ${printable(message)}\n`);
    if (json) io.out(`${JSON.stringify({ ok: false, path: target, error: message, code: "AUDIT_UNREADABLE" }, null, 2)}\n`);
    return 2;
  };
  let pubkeyPem: string | undefined;
  const pubkey = parsed.options.get("--pubkey");
  if (typeof pubkey === "string") {
    try {
      pubkeyPem = await readKeyFile(pubkey);
    } catch (err) {
      return fail(`the key file ${pubkey} cannot be read: ${describeFsError(err)}`);
    }
  }
  const expectHead = parsed.options.get("--expect-head");
  let summary: AuditVerifySummary;
  try {
    summary = await verifyAudit(target, {
      ...(pubkeyPem === undefined ? {} : { pubkeyPem }),
      ...(typeof expectHead === "string" ? { expectHead: expectHead.replace(/^hash=/, "").toLowerCase() } : {}),
    });
  } catch (err) {
    if (err instanceof AuditReadError) return fail(err.message);
    throw err;
  }
  io.out(json ? `${JSON.stringify(summary, null, 2)}\n` : formatSummary(summary));
  return summary.ok ? 0 : 1;
}

/** Where `audit pubkey` finds the key: the path the server signs with. */
export interface AuditPubkeyIo {
  out(text: string): void;
  err(text: string): void;
  keyFile: string;
}

/**
 * `audit pubkey`: the signing key's public half as PEM (what `--pubkey` pins), so a person
 * need not know openssl's spelling. Exit 0 printed, 2 no key (yet) or not an Ed25519 key.
 */
export async function runAuditPubkey(argv: string[], io: AuditPubkeyIo): Promise<number> {
  const parsed = parseArgs(argv, [], ["--help", "-h"]);
  if (typeof parsed === "string" || parsed.positional.length > 0) {
    io.err(`audit pubkey: ${printable(typeof parsed === "string" ? parsed : `unexpected argument ${parsed.positional[0] ?? ""}`)}\n${PUBKEY_USAGE}`);
    return 2;
  }
  if (parsed.options.has("--help") || parsed.options.has("-h")) {
    io.out(PUBKEY_USAGE);
    return 0;
  }
  let pem: string;
  try {
    pem = await readKeyFile(io.keyFile);
  } catch (err) {
    const why =
      errnoOf(err) === "ENOENT"
        ? "it does not exist yet (the server makes it when it first starts with this state directory; or pass the --policy and --state-dir the server runs with)"
        : `it cannot be read: ${describeFsError(err)}`;
    io.err(`audit pubkey: no signing key at ${printable(io.keyFile)}: ${why}\n`);
    return 2;
  }
  let publicPem: string;
  let fingerprint: string;
  try {
    const key = createPublicKey(createPrivateKey(pem));
    fingerprint = fingerprintOfRaw(rawPublicKey(key));
    publicPem = key.export({ type: "spki", format: "pem" }).toString();
  } catch (err) {
    io.err(`audit pubkey: ${printable(io.keyFile)} is not an Ed25519 private key in PEM: ${(err as Error).message}\n`);
    return 2;
  }
  io.out(publicPem);
  io.err(`fingerprint ${fingerprint} (of ${printable(io.keyFile)}); save the key above and pin it with: audit verify --pubkey FILE\n`);
  return 0;
}

/** A PEM key is under a kilobyte; a file much larger (or endless, as /dev/zero) is not one. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

/**
 * A key file's text (--pubkey's, or the signing key for `audit pubkey`). Opened without blocking (a FIFO would otherwise wait for a
 * writer for ever) and read only when it is a regular file of a key's size.
 */
async function readKeyFile(file: string): Promise<string> {
  const handle = await fs.open(file, fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0));
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new Error("it is not a regular file");
    if (st.size > MAX_KEY_FILE_BYTES) throw new Error(`it holds ${st.size} bytes, more than a PEM key (at most ${MAX_KEY_FILE_BYTES})`);
    // One byte more than allowed: a file that grew since the stat is caught too.
    const buffer = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    let got = 0;
    while (got < buffer.length) {
      const { bytesRead } = await handle.read(buffer, got, buffer.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got > MAX_KEY_FILE_BYTES) throw new Error(`it holds more than ${MAX_KEY_FILE_BYTES} bytes, more than a PEM key`);
    return buffer.toString("utf8", 0, got);
  } finally {
    await handle.close();
  }
}

/** The human-readable verify report. */
export function formatSummary(s: AuditVerifySummary): string {
  const lines: string[] = [];
  lines.push(`audit log: ${s.path}${s.files.length > 1 ? ` (${s.files.length} files)` : ""}`);
  if (s.files.length > 1) {
    for (const f of s.files) lines.push(`  ${f.path}  ${f.entries} entries${f.firstSeq === undefined ? "" : `, seq ${f.firstSeq}..${f.lastSeq}`}`);
  }
  lines.push(
    s.entries === 0
      ? "entries: 0"
      : `entries: ${s.entries} (seq ${s.firstSeq}..${s.lastSeq}), ${s.firstTs ?? "?"} .. ${s.lastTs ?? "?"}`,
  );
  if (s.head !== undefined) lines.push(`head: ${s.head} (seq ${s.lastSeq})`);
  if (s.logId !== undefined) lines.push(`log id: ${s.logId}`);
  if (s.pinnedKeyFingerprint !== undefined) lines.push(`signing key: ${s.pinnedKeyFingerprint} (pinned)`);
  else if (s.keyFingerprint !== undefined) lines.push(`signing key: ${s.keyFingerprint} (not pinned: pass --pubkey to check who signed; \`audit pubkey\` prints the key)`);
  if (s.keyFingerprints.length > 1) lines.push(`signing keys seen: ${s.keyFingerprints.join(", ")}`);
  lines.push(
    `checkpoints: ${s.checkpoints}${s.lastCheckpointSeq === undefined ? "" : `, the last at seq ${s.lastCheckpointSeq}`}` +
      (s.unsealedEntries > 0 ? `; ${s.unsealedEntries} entries after it are not signed yet` : ""),
  );
  if (s.checkpointEvery !== undefined) {
    const every = s.checkpointEvery === 0 ? "only at rotation and shutdown" : `after every ${s.checkpointEvery} entries, at rotation and at shutdown`;
    lines.push(`checkpoint interval: ${every} (as the last server_start records it; a checkpoint missing where due is tampering)`);
  }
  lines.push(`recoveries: ${s.recoveries.length}`);
  for (const r of s.recoveries) {
    const kept = typeof r.data?.keptIn === "string" ? `; kept in ${r.data.keptIn} (${String(r.data.bytes)} bytes)` : "";
    lines.push(`  seq ${r.seq} (${r.kind ?? "?"}): ${r.reason ?? ""}${kept}`);
  }
  for (const w of s.warnings) lines.push(`warning: ${w}`);
  if (s.failure === undefined) {
    lines.push("result: INTACT");
  } else {
    const f = s.failure;
    lines.push(`result: TAMPERED at ${f.file}:${f.line}${f.seq === undefined ? "" : ` (seq ${f.seq})`}: ${f.reason}: ${f.message}`);
  }
  return `${lines.map(printable).join("\n")}\n`;
}

export async function runAuditTail(argv: string[], io: AuditCliIo): Promise<number> {
  const parsed = parseArgs(argv, ["-n", "--lines"], ["--help", "-h", "--follow", "-f"]);
  if (typeof parsed === "string" || parsed.positional.length > 1) {
    io.err(`audit tail: ${printable(typeof parsed === "string" ? parsed : "give at most one FILE")}\n${TAIL_USAGE}`);
    return 2;
  }
  if (parsed.options.has("--help") || parsed.options.has("-h")) {
    io.out(TAIL_USAGE);
    return 0;
  }
  const raw = parsed.options.get("-n") ?? parsed.options.get("--lines") ?? "20";
  const count = typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(count) || count < 1 || count > 100_000) {
    io.err(`audit tail: -n takes a whole number from 1 to 100000\n${TAIL_USAGE}`);
    return 2;
  }
  const file = parsed.positional[0] ?? io.defaultLogPath;
  const follow = parsed.options.has("--follow") || parsed.options.has("-f");
  try {
    // Following starts before the tail is read, so no entry falls between the two; the
    // entries both see are shown once (the follower skips seqs the tail showed).
    const follower = follow ? await LogFollower.start(await activeFileOf(file)) : undefined;
    let tail;
    try {
      tail = await readAuditTail(file, count);
    } catch (err) {
      await follower?.close();
      throw err;
    }
    for (const warning of tail.warnings) io.err(`audit tail: ${printable(warning)}\n`);
    const text = tail.lines.map((line) => `${formatTailLine(line)}\n`).join("");
    if (text.length > 0) io.out(text);
    if (tail.tornBytes > 0) io.out(`(an incomplete last line of ${tail.tornBytes} bytes: an interrupted write)\n`);
    if (follower === undefined) {
      if (tail.lines.length === 0 && tail.tornBytes === 0) io.err(`audit tail: ${printable(file)} holds no entries\n`);
      return 0;
    }
    follower.shown(tail.lines);
    const options = { signal: io.signal ?? new AbortController().signal, ...(io.followIntervalMs === undefined ? {} : { intervalMs: io.followIntervalMs }) };
    await follower.run((event) => io.out(event.kind === "note" ? `(${printable(event.text)})\n` : `${formatTailLine(event.text)}\n`), options);
    return 0;
  } catch (err) {
    if (err instanceof AuditReadError) {
      // Names files, whose names may hold control characters: see verify.
      io.err(`audit tail: ${printable(err.message)}\n`);
      return 2;
    }
    throw err;
  }
}
