import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import {
  checkpointMessage,
  checkpointProblem,
  loadSigner,
  pinnedKeyFromPem,
  publicKeyFromRaw,
  signerFromPrivateKey,
} from "../../src/security/audit/checkpoint.js";
import { AuditOpenError } from "../../src/security/audit/errors.js";
import { openTestLog, parse, readLines, tempEnv } from "../fixtures/audit-helpers.js";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const hasMkfifo = process.platform !== "win32";

/**
 * Settles with `promise`, or fails once `ms` pass. A read of a FIFO that hangs is then
 * released by opening its write end, so that a failing test does not hold the process open.
 */
async function settlesWithin<T>(promise: Promise<T>, fifo: string, ms = 3000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<"hung">((resolve) => (timer = setTimeout(resolve, ms, "hung")));
  const outcome = await Promise.race([promise.then((value) => ({ value }), (error: unknown) => ({ error })), hung]);
  clearTimeout(timer);
  if (outcome === "hung") {
    fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
    await promise.catch(() => undefined);
    assert.fail(`still waiting after ${ms} ms: the FIFO's open blocked`);
  }
  if ("error" in outcome) throw outcome.error;
  return outcome.value;
}

void test("the message signed names the format, the log, the seq and the head", () => {
  assert.equal(checkpointMessage("L", 12, "ab"), "mcp-secure-local audit checkpoint v1\nL\n12\nab");
});

void test("a checkpoint verifies with its own key and fails when any signed part changes", () => {
  const signer = signerFromPrivateKey(generateKeyPairSync("ed25519").privateKey);
  const cp = signer.checkpoint("log-1", 41, "c".repeat(64));
  assert.equal(cp.publicKey, signer.publicKey);
  assert.equal(cp.keyFingerprint, signer.fingerprint);
  assert.equal(Buffer.from(cp.publicKey, "base64").length, 32);
  assert.equal(checkpointProblem(cp), undefined);
  assert.equal(checkpointProblem(cp, Buffer.from(cp.publicKey, "base64")), undefined);
  assert.equal(checkpointProblem({ ...cp, seq: 42 })?.reason, "bad_signature");
  assert.equal(checkpointProblem({ ...cp, head: "d".repeat(64) })?.reason, "bad_signature");
  assert.equal(checkpointProblem({ ...cp, logId: "log-2" })?.reason, "bad_signature");
  assert.equal(checkpointProblem({ ...cp, signature: "AAAA" })?.reason, "bad_signature");
  assert.equal(checkpointProblem({ ...cp, publicKey: "short" })?.reason, "bad_checkpoint");
  assert.equal(checkpointProblem({ ...cp, keyFingerprint: "e".repeat(64) })?.reason, "bad_checkpoint");
  const other = signerFromPrivateKey(generateKeyPairSync("ed25519").privateKey);
  assert.equal(checkpointProblem(cp, Buffer.from(other.publicKey, "base64"))?.reason, "key_mismatch");
  assert.throws(() => publicKeyFromRaw("not base64 at all!"), TypeError);
});

void test("pinned keys come from PEM public or private keys, Ed25519 only", () => {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = pinnedKeyFromPem(publicKey.export({ type: "spki", format: "pem" }).toString());
  assert.deepEqual(raw, pinnedKeyFromPem(privateKey.export({ type: "pkcs8", format: "pem" }).toString()));
  assert.throws(() => pinnedKeyFromPem("junk"), TypeError);
  const rsa = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }).toString();
  assert.throws(() => pinnedKeyFromPem(rsa), /not Ed25519/);
  assert.throws(() => signerFromPrivateKey(createPublicKey(publicKey.export({ type: "spki", format: "pem" }))), TypeError);
});

void test("the default key is made once (dir 0700, file 0600) and reused", async () => {
  const env = tempEnv();
  try {
    const a = await loadSigner({ stateDir: env.stateDir });
    const file = path.join(env.stateDir, "keys", "audit-ed25519.pem");
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
    const b = await loadSigner({ stateDir: env.stateDir });
    assert.equal(a.fingerprint, b.fingerprint);
    // The log's checkpoints carry this key.
    const sink = await openTestLog(env);
    await sink.close();
    const last = parse(readLines(env.logFile).at(-1)!);
    assert.equal(last.checkpoint.keyFingerprint, a.fingerprint);
    assert.equal(sink.status().keyFingerprint, a.fingerprint);
  } finally {
    env.cleanup();
  }
});

void test("a key readable by others, not Ed25519, or a symlink at the default path is refused", async () => {
  const env = tempEnv();
  try {
    await loadSigner({ stateDir: env.stateDir });
    const file = path.join(env.stateDir, "keys", "audit-ed25519.pem");
    fs.chmodSync(file, 0o644);
    await assert.rejects(loadSigner({ stateDir: env.stateDir }), (err: unknown) => err instanceof AuditOpenError && err.code === "AUDIT_KEY_INVALID" && /chmod 600/.test(err.message));
    fs.chmodSync(file, 0o600);
    fs.writeFileSync(file, generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }));
    await assert.rejects(loadSigner({ stateDir: env.stateDir }), /not an Ed25519 private key/);
    fs.rmSync(file);
    const elsewhere = path.join(env.root, "real.pem");
    fs.writeFileSync(elsewhere, generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    fs.symlinkSync(elsewhere, file);
    await assert.rejects(loadSigner({ stateDir: env.stateDir }), /symbolic link/);
    fs.rmSync(file);
    fs.mkdirSync(file);
    await assert.rejects(loadSigner({ stateDir: env.stateDir }), AuditOpenError);
  } finally {
    env.cleanup();
  }
});

void test("audit.signing_key: used when present, and a missing one is an error (never silently replaced)", async () => {
  const env = tempEnv();
  try {
    fs.mkdirSync(env.stateDir, { recursive: true });
    const keyFile = path.join(env.root, "my-audit-key.pem");
    await assert.rejects(loadSigner({ stateDir: env.stateDir, keyPath: keyFile }), (err: unknown) => err instanceof AuditOpenError && /does not exist.*openssl genpkey/.test(err.message));
    assert.equal(fs.existsSync(keyFile), false);
    const { privateKey } = generateKeyPairSync("ed25519");
    fs.writeFileSync(keyFile, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    const signer = await loadSigner({ stateDir: env.stateDir, keyPath: keyFile });
    assert.equal(signer.fingerprint, signerFromPrivateKey(privateKey).fingerprint);
    const sink = await openTestLog(env, { signing_key: keyFile });
    assert.equal(sink.status().keyFingerprint, signer.fingerprint);
    await sink.close();
    assert.equal(fs.existsSync(path.join(env.stateDir, "keys", "audit-ed25519.pem")), false, "no default key is made");
  } finally {
    env.cleanup();
  }
});

void test(
  "a key directory that cannot be created is a clear error",
  { skip: isRoot ? "running as root, where a read-only directory does not stop writes" : false },
  async () => {
    const env = tempEnv();
    try {
      fs.mkdirSync(env.stateDir, { recursive: true, mode: 0o500 });
      await assert.rejects(loadSigner({ stateDir: env.stateDir }), /cannot be created: EACCES/);
    } finally {
      fs.chmodSync(env.stateDir, 0o700);
      env.cleanup();
    }
  },
);

void test("a state directory path that is a file makes key creation fail with a clear error", async () => {
  const env = tempEnv();
  try {
    fs.writeFileSync(env.stateDir, "a file");
    await assert.rejects(loadSigner({ stateDir: env.stateDir }), (err: unknown) => err instanceof AuditOpenError && /cannot be (created|read)/.test(err.message));
  } finally {
    env.cleanup();
  }
});

void test("a FIFO as the key (at the default path or the policy's) is refused at once, not waited on", { skip: hasMkfifo ? false : "no FIFOs here" }, async () => {
  const env = tempEnv();
  try {
    const file = path.join(env.stateDir, "keys", "audit-ed25519.pem");
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    execFileSync("mkfifo", ["-m", "600", file]);
    const isNotRegular = (err: unknown): boolean => err instanceof AuditOpenError && err.code === "AUDIT_KEY_INVALID" && /is not a regular file/.test(err.message);
    await assert.rejects(settlesWithin(loadSigner({ stateDir: env.stateDir }), file), isNotRegular);
    await assert.rejects(settlesWithin(loadSigner({ stateDir: env.stateDir, keyPath: file }), file), isNotRegular);
    // The server does not start on it either, and says why.
    await assert.rejects(settlesWithin(openTestLog(env), file), isNotRegular);
  } finally {
    env.cleanup();
  }
});

void test("the default key never exists without its content: a second start reading it mid-creation gets the whole key", async () => {
  const env = tempEnv();
  const realOpen = fs.promises.open;
  try {
    const keys = path.join(env.stateDir, "keys");
    let second: Promise<Awaited<ReturnType<typeof loadSigner>>> | undefined;
    // The first creating open in keys/ is held while a second start loads the key: the
    // moment a crash, or another server on the same state directory, would see the file.
    fs.promises.open = async (file: fs.PathLike, flags?: string | number, mode?: fs.Mode) => {
      const handle = await realOpen(file, flags, mode);
      if (second === undefined && typeof flags === "number" && (flags & fs.constants.O_CREAT) !== 0 && String(file).startsWith(keys)) {
        second = loadSigner({ stateDir: env.stateDir });
        await second.catch(() => undefined);
      }
      return handle;
    };
    const first = await loadSigner({ stateDir: env.stateDir });
    assert.ok(second !== undefined, "the second start ran while the key was being made");
    const other = await second;
    assert.equal(other.fingerprint, first.fingerprint, "both use the one key on disk");
    fs.promises.open = realOpen;
    const file = path.join(keys, "audit-ed25519.pem");
    assert.equal((await loadSigner({ stateDir: env.stateDir })).fingerprint, first.fingerprint);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(keys), ["audit-ed25519.pem"], "no temp file is left behind");
  } finally {
    fs.promises.open = realOpen;
    env.cleanup();
  }
});

void test("a temp copy of the default key left by a crash is removed once a minute old; a fresh one and other files stay", async () => {
  const env = tempEnv();
  try {
    await loadSigner({ stateDir: env.stateDir });
    const keys = path.join(env.stateDir, "keys");
    const old = path.join(keys, ".audit-ed25519.pem.new-4242-0123456789ab");
    const fresh = path.join(keys, ".audit-ed25519.pem.new-4243-0123456789ab");
    const other = path.join(keys, ".audit-ed25519.pem.new-notes");
    for (const file of [old, fresh, other]) fs.writeFileSync(file, "copy", { mode: 0o600 });
    const twoMinutesAgo = new Date(Date.now() - 120_000);
    fs.utimesSync(old, twoMinutesAgo, twoMinutesAgo);
    fs.utimesSync(other, twoMinutesAgo, twoMinutesAgo);
    await loadSigner({ stateDir: env.stateDir });
    assert.deepEqual(fs.readdirSync(keys).sort(), [".audit-ed25519.pem.new-4243-0123456789ab", ".audit-ed25519.pem.new-notes", "audit-ed25519.pem"]);
  } finally {
    env.cleanup();
  }
});
