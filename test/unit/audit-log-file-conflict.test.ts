/** audit.log_file naming the signing key or the policy file is said as such, however it is spelled. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditLogFileConflict } from "../../src/security/audit/log-file-conflict.js";

test("the key or the policy file, by the same spelling, a symbolic link or a hard link; another file is no conflict", () => {
  const dir = mkdtempSync(join(tmpdir(), "msl-conflict-"));
  try {
    const key = join(dir, "keys", "audit-ed25519.pem");
    const policy = join(dir, "policy.yaml");
    writeFileSync(policy, 'version: "1.0"\n');
    assert.match(auditLogFileConflict(key, key, policy) ?? "", /is the audit signing key .*: name another file/, "not made yet: the same spelling");
    assert.match(auditLogFileConflict(join(dir, "keys", "..", "keys", "audit-ed25519.pem"), key, policy) ?? "", /signing key/);
    symlinkSync(policy, join(dir, "log-link"));
    assert.match(auditLogFileConflict(join(dir, "log-link"), key, policy) ?? "", /is the policy file this server runs on/);
    linkSync(policy, join(dir, "hard"));
    assert.match(auditLogFileConflict(join(dir, "hard"), key, policy) ?? "", /policy file/);
    assert.equal(auditLogFileConflict(join(dir, "audit", "audit.log"), key, policy), undefined);
    assert.equal(auditLogFileConflict(policy, key, undefined), undefined, "the built-in policy has no file");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a key not made yet is found through a linked state directory spelled both ways", () => {
  const dir = mkdtempSync(join(tmpdir(), "msl-conflict-"));
  try {
    const real = join(dir, "real-state");
    mkdirSync(real);
    symlinkSync(real, join(dir, "state-link"));
    const key = join(real, "keys", "audit-ed25519.pem");
    // Neither the key nor its keys/ directory exists yet (a first start).
    assert.match(auditLogFileConflict(join(dir, "state-link", "keys", "audit-ed25519.pem"), key, undefined) ?? "", /is the audit signing key/);
    assert.match(auditLogFileConflict(key, join(dir, "state-link", "keys", "audit-ed25519.pem"), undefined) ?? "", /is the audit signing key/);
    assert.equal(auditLogFileConflict(join(dir, "state-link", "audit", "audit.log"), key, undefined), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
