/**
 * Signed checkpoints: the Ed25519 key that signs them (made on first use, 0600) and the
 * signature over (log id, seq, head hash). A checkpoint carries its public key, so a
 * log verifies without a pinned key; pinning a key (`--pubkey`) proves who signed.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from "node:crypto";
import { constants as C, promises as fs } from "node:fs";
import path from "node:path";
import { canonicalJson, sha256Hex } from "../../util/canonical-json.js";
import { makeDirectories } from "../../util/make-directories.js";
import { foldName } from "../../util/text.js";
import type { CheckpointBody } from "./entry.js";
import { AuditOpenError, describeFsError, errnoOf } from "./errors.js";
import { currentUid, fsyncDirectory, nodeAuditFs, O_NOFOLLOW } from "./fs-layer.js";

/** The exact text a checkpoint signature covers. */
export function checkpointMessage(logId: string, seq: number, head: string): string {
  return `mcp-secure-local audit checkpoint v1\n${logId}\n${seq}\n${head}`;
}

/**
 * The exact text a server_start's seal covers: where the start took up the chain and the
 * SHA-256 of what it records (startRecordDigest). Not a checkpoint's: a checkpoint signs the
 * same (log id, seq, head) as the next start would, so its body copied into a forged
 * server_start would pass for that start's seal.
 */
export function startSealMessage(logId: string, seq: number, head: string, recorded: string): string {
  return `mcp-secure-local audit start v1\n${logId}\n${seq}\n${head}\n${recorded}`;
}

/**
 * The SHA-256 of a server_start's data but its seal (`continues`): the seal covers it, so that
 * no one without the key can change what a start records, such as the checkpoint interval
 * `audit verify` holds its server to.
 */
export function startRecordDigest(data: Readonly<Record<string, unknown>>): string {
  const { continues: _seal, ...recorded } = data;
  return sha256Hex(canonicalJson(recorded));
}

export interface AuditSigner {
  /** Raw 32-byte public key, base64. */
  readonly publicKey: string;
  /** SHA-256 (hex) of the raw public key. */
  readonly fingerprint: string;
  /** The checkpoint for the entry at `seq` whose hash is `head`. */
  checkpoint(logId: string, seq: number, head: string): CheckpointBody;
  /** A server_start's seal: where it took up the chain (the entry at `seq`, whose hash is `head`) and what it records (`data`). */
  startSeal(logId: string, seq: number, head: string, data: Readonly<Record<string, unknown>>): CheckpointBody;
}

/** Raw public key bytes of an Ed25519 key (public or private). */
export function rawPublicKey(key: KeyObject): Buffer {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  if (pub.asymmetricKeyType !== "ed25519") throw new TypeError(`the key is ${pub.asymmetricKeyType ?? "unknown"}, not Ed25519`);
  const jwk = pub.export({ format: "jwk" });
  if (typeof jwk.x !== "string") throw new TypeError("the key has no public part");
  return Buffer.from(jwk.x, "base64url");
}

export function fingerprintOfRaw(raw: Uint8Array): string {
  return sha256Hex(raw);
}

export function publicKeyFromRaw(rawBase64: string): KeyObject {
  const raw = Buffer.from(rawBase64, "base64");
  if (raw.length !== 32 || raw.toString("base64") !== rawBase64) throw new TypeError("the public key is not 32 bytes of base64");
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
}

export function signerFromPrivateKey(privateKey: KeyObject): AuditSigner {
  if (privateKey.type !== "private" || privateKey.asymmetricKeyType !== "ed25519") {
    throw new TypeError("the signing key is not an Ed25519 private key");
  }
  const raw = rawPublicKey(privateKey);
  const publicKey = raw.toString("base64");
  const fingerprint = fingerprintOfRaw(raw);
  const body = (logId: string, seq: number, head: string, message: string): CheckpointBody => {
    const signature = sign(null, Buffer.from(message, "utf8"), privateKey).toString("base64");
    return { logId, seq, head, signature, publicKey, keyFingerprint: fingerprint };
  };
  return {
    publicKey,
    fingerprint,
    checkpoint: (logId, seq, head) => body(logId, seq, head, checkpointMessage(logId, seq, head)),
    startSeal: (logId, seq, head, data) => body(logId, seq, head, startSealMessage(logId, seq, head, startRecordDigest(data))),
  };
}

/** Why a checkpoint (or, given `message`, a start's seal) does not verify, or undefined when it does. Pure. */
export function checkpointProblem(
  cp: CheckpointBody,
  pinnedRaw?: Buffer,
  message: string = checkpointMessage(cp.logId, cp.seq, cp.head),
): { reason: "bad_checkpoint" | "key_mismatch" | "bad_signature"; message: string } | undefined {
  let key: KeyObject;
  try {
    key = publicKeyFromRaw(cp.publicKey);
  } catch (err) {
    return { reason: "bad_checkpoint", message: `the checkpoint's public key is unusable: ${(err as Error).message}` };
  }
  const raw = Buffer.from(cp.publicKey, "base64");
  if (fingerprintOfRaw(raw) !== cp.keyFingerprint) {
    return { reason: "bad_checkpoint", message: "the checkpoint's key fingerprint does not match its public key" };
  }
  if (pinnedRaw !== undefined && !raw.equals(pinnedRaw)) {
    return {
      reason: "key_mismatch",
      message: `the checkpoint is signed by key ${cp.keyFingerprint}, not by the pinned key ${fingerprintOfRaw(pinnedRaw)}`,
    };
  }
  const signature = Buffer.from(cp.signature, "base64");
  let valid = false;
  try {
    valid = verify(null, Buffer.from(message, "utf8"), key, signature);
  } catch {
    valid = false;
  }
  return valid ? undefined : { reason: "bad_signature", message: `the checkpoint signature does not verify with key ${cp.keyFingerprint}` };
}

/** The raw public key in a PEM file (a public key, or a private key whose public half is used). */
export function pinnedKeyFromPem(pem: string): Buffer {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new TypeError("the file does not hold a PEM public or private key");
  }
  return rawPublicKey(key);
}

export const DEFAULT_KEY_FILE = path.join("keys", "audit-ed25519.pem");

/** The signing key's path: the policy's (relative to the state directory) or the default one. */
export function signingKeyPath(stateDir: string, keyPath: string | undefined): string {
  return keyPath !== undefined && keyPath.length > 0 ? path.resolve(stateDir, keyPath) : path.join(stateDir, DEFAULT_KEY_FILE);
}

/**
 * Whether `name`, in the key's directory, is the key or a copy of it being made (createKeyFile's
 * temp file), whatever its letter case (a case-insensitive file system opens it so).
 */
export function belongsToKey(keyFile: string, name: string): boolean {
  const folded = foldName(name);
  const base = foldName(path.basename(keyFile));
  return folded === base || folded.startsWith(`.${base}.new-`);
}

/**
 * The signer for the log: the key at `keyPath` (the policy's `audit.signing_key`, which
 * must exist) or `<stateDir>/keys/audit-ed25519.pem` (made on first use, dir 0700, file 0600).
 * A key readable by others, owned by another user, or not Ed25519 is refused.
 */
export async function loadSigner(options: { stateDir: string; keyPath?: string }): Promise<AuditSigner> {
  const configured = options.keyPath !== undefined && options.keyPath.length > 0;
  const file = signingKeyPath(options.stateDir, options.keyPath);
  let pem: Buffer;
  try {
    pem = await readKeyFile(file, configured);
  } catch (err) {
    if (err instanceof AuditOpenError) throw err;
    if (errnoOf(err) === "ENOENT" && !configured) {
      pem = await createKeyFile(file);
    } else if (errnoOf(err) === "ENOENT") {
      throw new AuditOpenError(
        "AUDIT_KEY_INVALID",
        `audit signing key ${file} (audit.signing_key) does not exist; create one with \`openssl genpkey -algorithm ed25519 -out ${file}\` and chmod 600, or remove the setting to use a key made in the state directory`,
      );
    } else {
      throw new AuditOpenError("AUDIT_KEY_INVALID", `audit signing key ${file} cannot be read: ${describeFsError(err)}`, { cause: err });
    }
  }
  if (!configured) await sweepKeyDebris(file);
  try {
    return signerFromPrivateKey(createPrivateKey(pem));
  } catch (err) {
    throw new AuditOpenError("AUDIT_KEY_INVALID", `audit signing key ${file} is not an Ed25519 private key in PEM: ${(err as Error).message}`);
  }
}

/**
 * O_NONBLOCK: opening a FIFO for reading would wait for a writer that never comes, and the
 * server would hang at start instead of refusing the key; it is then refused as not a
 * regular file. (A regular file ignores the flag.)
 */
async function readKeyFile(file: string, followLinks: boolean): Promise<Buffer> {
  const handle = await fs.open(file, C.O_RDONLY | (C.O_NONBLOCK ?? 0) | (followLinks ? 0 : O_NOFOLLOW)).catch((err: unknown) => {
    if (errnoOf(err) === "ELOOP") throw new AuditOpenError("AUDIT_KEY_INVALID", `audit signing key ${file} is a symbolic link; refusing to follow it`);
    throw err;
  });
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new AuditOpenError("AUDIT_KEY_INVALID", `audit signing key ${file} is not a regular file`);
    const uid = currentUid();
    if (uid !== undefined && st.uid !== uid) {
      throw new AuditOpenError("AUDIT_KEY_INVALID", `audit signing key ${file} belongs to user ${st.uid}, not to this user (${uid})`);
    }
    if ((st.mode & 0o077) !== 0) {
      throw new AuditOpenError(
        "AUDIT_KEY_INVALID",
        `audit signing key ${file} is accessible to other users (mode ${(st.mode & 0o777).toString(8)}); run \`chmod 600 ${file}\``,
      );
    }
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** What link(2) says where the filesystem has no hard links (FAT, some network mounts). */
const NO_HARD_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"]);

/**
 * Makes the default key so that it never exists without its whole content: it is written to
 * a temp file beside it, synced, then linked into place. Created in place and then written,
 * a crash between the two (or another server starting on the same state directory, reading
 * it in between) found an empty key file, and every later start was refused. link() never
 * replaces a key made meanwhile: the loser reads the winner's key.
 */
async function createKeyFile(file: string): Promise<Buffer> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.new-${process.pid}-${randomBytes(6).toString("hex")}`);
  try {
    await makeDirectories(dir, 0o700);
    const { privateKey } = generateKeyPairSync("ed25519");
    const pem = Buffer.from(privateKey.export({ format: "pem", type: "pkcs8" }));
    await writeNewFile(temp, pem);
    try {
      await fs.link(temp, file);
    } catch (err) {
      const code = errnoOf(err);
      if (code === undefined || !NO_HARD_LINKS.has(code)) throw err;
      // No hard links here: create it in place (a crash in between can then leave it empty).
      await writeNewFile(file, pem);
    }
    await fsyncDirectory(nodeAuditFs, dir);
    return pem;
  } catch (err) {
    // Another process made it first: use theirs.
    if (errnoOf(err) === "EEXIST") return readKeyFile(file, false);
    throw new AuditOpenError("AUDIT_KEY_INVALID", `audit signing key ${file} cannot be created: ${describeFsError(err)}`, { cause: err });
  } finally {
    await fs.unlink(temp).catch(() => undefined);
  }
}

/** A temp copy younger than this may be another starter's key in the making. */
const KEY_DEBRIS_AGE_MS = 60_000;

/**
 * Removes the temp copies of the default key that a crash between createKeyFile's link and
 * unlink leaves behind: each is a copy of the private key, and nothing else would ever
 * remove it. Best effort: a copy that cannot be removed now is tried again at the next start.
 */
async function sweepKeyDebris(file: string): Promise<void> {
  const dir = path.dirname(file);
  const prefix = `.${path.basename(file)}.new-`;
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix) || !/^\d+-[0-9a-f]{12}$/.test(name.slice(prefix.length))) continue;
    const debris = path.join(dir, name);
    const st = await fs.lstat(debris).catch(() => undefined);
    if (st?.isFile() === true && Date.now() - st.mtimeMs > KEY_DEBRIS_AGE_MS) await fs.unlink(debris).catch(() => undefined);
  }
}

/** A new 0600 file (never an existing one, nor through a symlink) holding `bytes`, synced. */
async function writeNewFile(file: string, bytes: Buffer): Promise<void> {
  const handle = await fs.open(file, C.O_WRONLY | C.O_CREAT | C.O_EXCL | O_NOFOLLOW, 0o600);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
