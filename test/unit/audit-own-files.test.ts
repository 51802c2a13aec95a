import { test } from "node:test";
import assert from "node:assert/strict";
import { auditOwnFiles } from "../../src/security/audit/index.js";
import type { AuditPolicy } from "../../src/security/policy-types.js";
import { DEFAULTS } from "../../src/security/policy/defaults.js";

const policy = (overrides: Partial<AuditPolicy>): AuditPolicy => ({ ...DEFAULTS.audit, log_file: "audit/audit.log", ...overrides });

type OwnFile = ReturnType<typeof auditOwnFiles>[number];

function byNames(entry: OwnFile | undefined): Extract<OwnFile, { dir: string }> {
  assert.ok(entry !== undefined && "dir" in entry, JSON.stringify(entry));
  return entry;
}

test("auditOwnFiles names the log's files (active, segments, torn keepers, lock and its temp files) and its key", () => {
  const [log, key] = auditOwnFiles(policy({ log_file: "/var/log/msl/calls.jsonl" }), "/state").slice(0, 2).map(byNames);
  assert.equal(log?.dir, "/var/log/msl");
  for (const name of [
    "calls.jsonl",
    "calls-20261205T120000Z-000000001234.jsonl",
    "calls.jsonl.torn-20261205T120000Z",
    "calls.jsonl.lock",
    "calls.jsonl.lock.stale-42-1a2b3c4d5e6f",
    ".calls.jsonl.lock.new-42-1a2b3c4d5e6f",
  ]) {
    assert.equal(log?.names(name), true, name);
  }
  for (const name of ["other.jsonl", "calls", "calls-notes.jsonl", "xcalls.jsonl"]) assert.equal(log?.names(name), false, name);
  // Whatever the letter case: a case-insensitive file system opens the log's files so.
  for (const name of ["CALLS.JSONL", "Calls-20261205t120000z-000000001234.JSONL", "calls.jsonl.LOCK", ".CALLS.jsonl.lock.new-42-1a2b3c4d5e6f"]) {
    assert.equal(log?.names(name), true, name);
  }
  assert.equal(key?.names("AUDIT-ED25519.PEM"), true);
  assert.equal(key?.names(".Audit-Ed25519.pem.NEW-42-00ff00ff00ff"), true);
  assert.equal(key?.dir, "/state/keys");
  assert.equal(key?.names("audit-ed25519.pem"), true);
  assert.equal(key?.names(".audit-ed25519.pem.new-42-00ff00ff00ff"), true);
  assert.equal(key?.names("other.pem"), false);
});

test("auditOwnFiles: a key the policy names, relative to the state directory, also by path (where its link leads); nothing when the log is off", () => {
  const [, key, keyFile] = auditOwnFiles(policy({ signing_key: "secrets/ed.pem" }), "/state");
  assert.equal(byNames(key).dir, "/state/secrets");
  assert.equal(byNames(key).names("ed.pem"), true);
  assert.deepEqual(keyFile, { file: "/state/secrets/ed.pem", what: "the audit signing key" });
  assert.deepEqual(auditOwnFiles(policy({ enabled: false }), "/state"), []);
});
