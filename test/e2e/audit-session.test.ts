/**
 * The audit log as the real server writes it (issue 4's evidence): two sessions over
 * real pipes on one state directory, then the log is read entry by entry and checked
 * with the real `audit verify` and `audit tail` commands. Tampering is done on copies,
 * so every test sees the same untouched log.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ServerProcess, resultText, type Message } from "../helpers/server-process.js";
import { listAllPages, tempDir } from "../helpers/e2e.js";
import { canonicalJson, sha256Hex } from "../../src/util/canonical-json.js";
import { serializeEntry, type AuditEntryBody } from "../../src/security/audit/entry.js";
import { cli } from "../helpers/cli.js";


// A checkpoint every 4 entries, so that a short session holds several signed ones.
const POLICY = ['version: "1.0"', "filesystem:", "  allowed_paths:", '    - "${STATE_DIR}/workspace/**"', "audit:", "  checkpoint_every: 4", ""].join("\n");

const MARKER = "tamper-target-QX7";
const LARGE_DESCRIPTION = "ünï ✓ ".repeat(1500);
const HEAD_LINE = /audit head:? seq=(\d+) hash=([0-9a-f]{64})/;
const HEX64 = /^[0-9a-f]{64}$/;

interface SessionRecord {
  responses: Map<string, Message>;
  sent: Map<string, Message>;
  stderr: string;
  exit: { code: number | null; signal: NodeJS.Signals | null };
  /** The raw response line of the large call. */
  rawLarge?: string;
  /** Answers to tools/calls refused for their params. */
  malformed?: Message;
  nameless?: Message;
}

function parseLog(file: string): Message[] {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as Message);
}

function headOf(stderr: string): { seq: number; hash: string } {
  const match = HEAD_LINE.exec(stderr);
  assert.ok(match, `the server prints the audit head at shutdown; stderr:\n${stderr.slice(-1500)}`);
  return { seq: Number(match[1]), hash: match[2]! };
}

/**
 * A clean session ends with server_stop, then the closing checkpoint. (When server_stop
 * itself completes a `checkpoint_every` run, the periodic checkpoint comes first.)
 */
function assertEndsWithStop(session: readonly Message[]): void {
  const events = session.map((e) => e.event as string);
  assert.equal(events.at(-1), "checkpoint", `the session is sealed by a checkpoint: ${events.join(",")}`);
  const lastOther = events.findLastIndex((event) => event !== "checkpoint");
  assert.equal(events[lastOther], "server_stop", `server_stop is the last entry before the closing checkpoints: ${events.join(",")}`);
  assert.ok(events.length - lastOther <= 3, `at most two checkpoints follow server_stop: ${events.join(",")}`);
}

void describe("the audit log of real sessions", () => {
  let root = "";
  let home = "";
  let stateDir = "";
  let workspace = "";
  let logPath = "";
  let catalogFromList = "";
  let checkPolicySha = "";
  const s1: SessionRecord = { responses: new Map(), sent: new Map(), stderr: "", exit: { code: null, signal: null } };
  const s2: SessionRecord = { responses: new Map(), sent: new Map(), stderr: "", exit: { code: null, signal: null } };

  async function call(server: ServerProcess, record: SessionRecord, id: string, name: string, args: Message): Promise<Message> {
    const params = { name, arguments: args };
    record.sent.set(id, params);
    const response = await server.request("tools/call", params, id);
    record.responses.set(id, response);
    return response;
  }

  before(async () => {
    root = tempDir("msl-audit-e2e-");
    home = join(root, "home");
    stateDir = join(root, "state");
    workspace = join(stateDir, "workspace");
    logPath = join(stateDir, "audit", "audit.log");
    mkdirSync(home);
    mkdirSync(workspace, { recursive: true });

    // The policy's hash as check-policy reports it, for the same state directory.
    const policyFile = join(root, "policy.yaml");
    writeFileSync(policyFile, POLICY);
    const checked = await cli(["check-policy", policyFile, "--state-dir", stateDir], home);
    assert.equal(checked.code, 0, checked.stderr);
    checkPolicySha = /^# sha256: ([0-9a-f]{64})$/m.exec(checked.stdout)?.[1] ?? "";

    const first = await ServerProcess.initialized({ policy: POLICY, stateDir });
    try {
      catalogFromList = sha256Hex(canonicalJson((await listAllPages(first)).flat()));
      await call(first, s1, "s1-search", "search_tools", { query: "report a bug" });
      await call(first, s1, "s1-add", "add_bug", { title: "audit evidence", description: MARKER, project_path: workspace });
      // A result past 16 KiB: the response reuses the text its digest was taken over.
      await call(first, s1, "s1-large", "add_bug", { title: "large", description: LARGE_DESCRIPTION, project_path: workspace });
      s1.rawLarge = first.rawLines.find((line) => line.startsWith('{"jsonrpc":"2.0","id":"s1-large",'));
      await call(first, s1, "s1-invalid", "add_bug", { title: 42, project_path: workspace });
      await call(first, s1, "s1-categories", "list_categories", {});
    } finally {
      s1.exit = await first.close();
      s1.stderr = first.stderr;
    }

    const second = await ServerProcess.initialized({ policy: POLICY, stateDir });
    try {
      await call(second, s2, "s2-search", "search_tools", { query: "list bugs" });
      await call(second, s2, "s2-status", "security_status", {});
      // Refused before any stage (answered -32602, so not in s2's answered calls), recorded all the same.
      s2.malformed = await second.request("tools/call", { name: "add_bug", arguments: "not an object" }, "s2-malformed");
      s2.nameless = await second.request("tools/call", { arguments: {} }, "s2-nameless");
    } finally {
      s2.exit = await second.close();
      s2.stderr = second.stderr;
    }
  });

  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** Session 1's entries: everything before the second server_start. */
  function split(entries: Message[]): { first: Message[]; second: Message[] } {
    const starts = entries.flatMap((entry, index) => (entry.event === "server_start" ? [index] : []));
    assert.equal(starts.length, 2, `two sessions, two server_start entries: ${JSON.stringify(entries.map((e) => e.event))}`);
    return { first: entries.slice(0, starts[1]), second: entries.slice(starts[1]) };
  }

  void test("both sessions ended cleanly and answered as expected", () => {
    assert.deepEqual(s1.exit, { code: 0, signal: null });
    assert.deepEqual(s2.exit, { code: 0, signal: null });
    for (const id of ["s1-search", "s1-add", "s1-categories"]) {
      const response = s1.responses.get(id);
      assert.ok(response?.result, `${id} has a result: ${JSON.stringify(response)}`);
      assert.notEqual(response.result.isError, true, `${id}: ${resultText(response)}`);
    }
    const invalid = s1.responses.get("s1-invalid");
    assert.equal(invalid?.result?.isError, true, "schema-invalid arguments are refused");
  });

  void test("server_start records the server, the policy hash (as check-policy prints it) and the catalogue hash", () => {
    const { first } = split(parseLog(logPath));
    const start = first[0]!;
    assert.equal(start.event, "server_start");
    assert.equal(start.seq, 1);
    assert.equal(start.prev, "0".repeat(64), "the first entry starts the chain");
    assert.equal(start.data.genesis, true);
    assert.match(String(start.data.policySha256), HEX64);
    assert.equal(start.data.policySha256, checkPolicySha, "the recorded policy hash is the one check-policy prints");
    assert.match(String(start.data.catalogSha256), HEX64);
    assert.equal(start.data.catalogSha256, catalogFromList, "the recorded catalogue hash is that of the tools the client was shown");
    assert.match(String(start.data.keyFingerprint), HEX64);
    assert.equal(start.data.fsync, "always");
    assert.equal(start.data.checkpointEvery, 4, "the policy's checkpoint_every, so that verify knows where checkpoints are due");
  });

  void test("every answered call has a tool_call and a tool_result with the same callId, intent before outcome", () => {
    const { first } = split(parseLog(logPath));
    for (const id of ["s1-search", "s1-add", "s1-categories"]) {
      const calls = first.filter((e) => e.event === "tool_call" && e.requestId === id);
      const results = first.filter((e) => e.event === "tool_result" && e.requestId === id);
      assert.equal(calls.length, 1, `${id}: one tool_call`);
      assert.equal(results.length, 1, `${id}: one tool_result`);
      const [intent, outcome] = [calls[0]!, results[0]!];
      assert.equal(typeof intent.callId, "string");
      assert.equal(outcome.callId, intent.callId, `${id}: the pair shares its callId`);
      assert.ok(intent.seq < outcome.seq, `${id}: tool_call comes before tool_result`);
      assert.equal(intent.tool, s1.sent.get(id)!.name);
      assert.deepEqual(intent.arguments, s1.sent.get(id)!.arguments, `${id}: the arguments are recorded as sent`);
      assert.equal(outcome.outcome, "ok");
      assert.equal(typeof outcome.durationMs, "number");
      // The digest of the result proves what was sent back.
      assert.equal(outcome.data.resultSha256, sha256Hex(JSON.stringify(s1.responses.get(id)!.result)));
    }
    const callIds = first.filter((e) => e.event === "tool_call").map((e) => e.callId as string);
    assert.equal(new Set(callIds).size, callIds.length, "callIds are unique");
  });

  void test("a large result's digest is over the exact bytes of the response's result", () => {
    const { first } = split(parseLog(logPath));
    const line = s1.rawLarge;
    assert.ok(line !== undefined, "the large call's response line was seen");
    const prefix = '{"jsonrpc":"2.0","id":"s1-large","result":';
    assert.ok(line.startsWith(prefix) && line.endsWith("}"));
    const resultText = line.slice(prefix.length, -1);
    assert.ok(resultText.length >= 16 * 1024, `the result is large (${resultText.length} units)`);
    assert.notEqual((JSON.parse(resultText) as Message).isError, true, resultText.slice(0, 300));
    const outcome = first.find((e) => e.event === "tool_result" && e.requestId === "s1-large");
    assert.ok(outcome, "the large call has its tool_result");
    assert.equal(outcome.data.resultSha256, sha256Hex(resultText));
    assert.equal(outcome.data.resultBytes, Buffer.byteLength(resultText));
  });

  void test("a refused call is one denied entry with the reason, and nothing ran", () => {
    const { first } = split(parseLog(logPath));
    const about = first.filter((e) => e.requestId === "s1-invalid");
    assert.deepEqual(
      about.map((e) => e.event),
      ["denied"],
      "a refused call has no tool_call or tool_result",
    );
    const denied = about[0]!;
    assert.equal(denied.tool, "add_bug");
    assert.equal(denied.outcome, "denied");
    assert.match(String(denied.reason), /^validation: .*title/);
    assert.deepEqual(denied.arguments, { title: 42, project_path: workspace });
  });

  void test("a tools/call refused for its params is answered -32602 and still one denied entry", () => {
    const { second } = split(parseLog(logPath));
    assert.equal(s2.malformed?.error?.code, -32602);
    assert.equal(s2.nameless?.error?.code, -32602);
    const malformed = second.filter((e) => e.requestId === "s2-malformed");
    assert.deepEqual(malformed.map((e) => [e.event, e.tool, e.outcome]), [["denied", "add_bug", "denied"]]);
    assert.match(String(malformed[0]?.reason), /^params: "arguments" must be an object/);
    const nameless = second.filter((e) => e.requestId === "s2-nameless");
    assert.deepEqual(nameless.map((e) => [e.event, e.tool]), [["denied", undefined]]);
    assert.match(String(nameless[0]?.reason), /^params: tools\/call needs "name"/);
  });

  void test("checkpoints seal the chain during the session and after server_stop", () => {
    const { first } = split(parseLog(logPath));
    const checkpoints = first.filter((e) => e.event === "checkpoint");
    assert.ok(checkpoints.length >= 2, `checkpoint_every: 4 gives checkpoints during the session: ${JSON.stringify(first.map((e) => e.event))}`);
    for (const entry of checkpoints) {
      assert.equal(entry.checkpoint.seq, entry.seq - 1, "a checkpoint signs the entry just before it");
      assert.equal(entry.checkpoint.head, entry.prev);
      assert.equal(entry.checkpoint.logId, first[0]!.data.logId);
      assert.equal(typeof entry.checkpoint.signature, "string");
    }
    assertEndsWithStop(first);
    assert.match(String(first.findLast((e) => e.event === "server_stop")!.reason), /stdin closed/);
    // Every seq follows the one before and every prev names the hash before it.
    first.forEach((entry, index) => {
      assert.equal(entry.seq, index + 1);
      if (index > 0) assert.equal(entry.prev, first[index - 1]!.hash);
    });
  });

  void test("the head printed at shutdown is the last entry of that session", () => {
    const entries = parseLog(logPath);
    const { first } = split(entries);
    assert.deepEqual(headOf(s1.stderr), { seq: first.at(-1)!.seq as number, hash: first.at(-1)!.hash as string });
    assert.deepEqual(headOf(s2.stderr), { seq: entries.at(-1)!.seq as number, hash: entries.at(-1)!.hash as string });
  });

  void test("a restart continues the chain: the second server_start links to the first session's last entry", () => {
    const { first, second } = split(parseLog(logPath));
    const start = second[0]!;
    const last = first.at(-1)!;
    assert.equal(start.event, "server_start");
    assert.equal(start.prev, last.hash);
    assert.equal(start.seq, (last.seq as number) + 1);
    assert.equal(start.data.genesis, undefined, "not a new chain");
    assert.equal(start.data.logId, first[0]!.data.logId, "the same log");
    assert.equal(start.data.policySha256, first[0]!.data.policySha256, "the same policy");
    const result = second.find((e) => e.event === "tool_result" && e.requestId === "s2-search");
    assert.equal(result?.outcome, "ok");
    assertEndsWithStop(second);
  });

  void test("audit verify --state-dir: exit 0, the whole log (both sessions) is intact", async () => {
    const entries = parseLog(logPath);
    const checkpoints = entries.filter((e) => e.event === "checkpoint").length;
    const run = await cli(["audit", "verify", "--state-dir", stateDir], home);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, new RegExp(`^entries: ${entries.length} \\(seq 1\\.\\.${entries.length}\\)`, "m"));
    assert.match(run.stdout, new RegExp(`^checkpoints: ${checkpoints}, the last at seq ${entries.length}$`, "m"));
    assert.match(run.stdout, /^recoveries: 0$/m);
    assert.match(run.stdout, new RegExp(`^head: ${entries.at(-1)!.hash as string}`, "m"));
    assert.match(run.stdout, /^result: INTACT$/m);
  });

  void test("security_status reports the policy in force and the head as the call ran, which verify finds", async () => {
    const { second } = split(parseLog(logPath));
    const status = s2.responses.get("s2-status")?.result?.structuredContent as Message;
    const start = second.find((e) => e.event === "server_start")!;
    const intent = second.find((e) => e.event === "tool_call" && e.requestId === "s2-status")!;
    assert.equal(status.policy.sha256, start.data.policySha256);
    assert.equal(status.policy.builtIn, false);
    assert.deepEqual(
      [status.audit.enabled, status.audit.ok, status.audit.logId, status.audit.keyFingerprint, status.audit.fsync],
      [true, true, start.data.logId, start.data.keyFingerprint, start.data.fsync],
    );
    // The newest entry when the tool ran: its own intent, or a checkpoint sealed just after it.
    const outcome = second.find((e) => e.event === "tool_result" && e.requestId === "s2-status")!;
    const headEntry = second.find((e) => e.hash === status.audit.head);
    assert.equal(headEntry?.seq, status.audit.seq);
    assert.ok(status.audit.seq >= intent.seq && status.audit.seq < outcome.seq, `head at seq ${status.audit.seq}, call at ${intent.seq}..${outcome.seq}`);
    const run = await cli(["audit", "verify", "--state-dir", stateDir, "--expect-head", status.audit.head as string], home);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  });

  void test("audit verify FILE --json: the summary agrees with the log", async () => {
    const entries = parseLog(logPath);
    const run = await cli(["audit", "verify", logPath, "--json"], home);
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout) as Message;
    assert.equal(summary.ok, true);
    assert.equal(summary.entries, entries.length);
    assert.equal(summary.head, entries.at(-1)!.hash);
    assert.equal(summary.logId, entries[0]!.data.logId);
    assert.equal(summary.checkpoints, entries.filter((e) => e.event === "checkpoint").length);
    assert.equal(summary.unsealedEntries, 0, "a clean shutdown leaves nothing unsigned");
    assert.equal(summary.checkpointEvery, 4, "every checkpoint was where checkpoint_every put it");
  });

  void test("audit verify with the pinned key and the printed head: exit 0; another key: exit 1", async () => {
    const keyFile = join(stateDir, "keys", "audit-ed25519.pem");
    assert.ok(existsSync(keyFile), "the signing key was made on first use");
    const head = headOf(s2.stderr).hash;
    const pinned = await cli(["audit", "verify", "--state-dir", stateDir, "--pubkey", keyFile, "--expect-head", head], home);
    assert.equal(pinned.code, 0, `${pinned.stdout}\n${pinned.stderr}`);
    assert.match(pinned.stdout, /^signing key: [0-9a-f]{64} \(pinned\)$/m);
    // `audit pubkey` exports the public half: the same key pins the same log.
    const exported = await cli(["audit", "pubkey", "--state-dir", stateDir], home);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stdout, /^-----BEGIN PUBLIC KEY-----\n/);
    const publicFile = join(root, "audit.pub");
    writeFileSync(publicFile, exported.stdout);
    const byExport = await cli(["audit", "verify", "--state-dir", stateDir, "--pubkey", publicFile], home);
    assert.equal(byExport.code, 0, byExport.stdout);
    assert.equal(/^signing key: ([0-9a-f]{64}) \(pinned\)$/m.exec(byExport.stdout)?.[1], /^fingerprint ([0-9a-f]{64})/.exec(exported.stderr)?.[1]);

    const other = join(root, "other-key.pem");
    writeFileSync(other, generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }));
    const wrong = await cli(["audit", "verify", "--state-dir", stateDir, "--pubkey", other], home);
    assert.equal(wrong.code, 1, wrong.stdout);
    assert.match(wrong.stdout, /^result: TAMPERED at .*key_mismatch/m);
  });

  void test("audit tail -n 5 prints the last 5 entries, oldest first", async () => {
    const entries = parseLog(logPath);
    const run = await cli(["audit", "tail", "-n", "5", "--state-dir", stateDir], home);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, "");
    const lines = run.stdout.split("\n").filter((line) => line.length > 0);
    assert.equal(lines.length, 5, run.stdout);
    const seqs = lines.map((line) => Number(/#(\d+)/.exec(line)?.[1]));
    const last = entries.length;
    assert.deepEqual(seqs, [last - 4, last - 3, last - 2, last - 1, last]);
    lines.forEach((line, i) => assert.ok(line.includes(entries[last - 5 + i]!.event as string), `line ${i + 1} names its event: ${line}`));
  });

  void describe("tampering with a copy of the log", () => {
    let copies = "";
    let original: string[] = [];

    before(() => {
      copies = join(root, "copies");
      mkdirSync(copies);
      original = readFileSync(logPath, "utf8").split("\n").filter((line) => line.length > 0);
    });

    /** Writes `lines` as the audit.log of a fresh directory; returns the file. */
    function writeCopy(name: string, lines: readonly string[]): string {
      const dir = join(copies, name);
      mkdirSync(dir);
      const file = join(dir, "audit.log");
      writeFileSync(file, lines.map((line) => `${line}\n`).join(""));
      return file;
    }

    function markerIndex(): number {
      const index = original.findIndex((line) => line.includes(MARKER) && line.includes('"event":"tool_call"'));
      assert.ok(index > 0, "the add_bug call's entry holds the marker");
      return index;
    }

    void test("an unchanged copy verifies (the checks below fail because of the edit alone)", async () => {
      const file = writeCopy("unchanged", original);
      const run = await cli(["audit", "verify", file], home);
      assert.equal(run.code, 0, run.stdout);
    });

    void test("one character changed in an argument: exit 1, the entry is named", async () => {
      const index = markerIndex();
      const lines = [...original];
      lines[index] = lines[index]!.replace(MARKER, MARKER.replace("QX7", "QX8"));
      const file = writeCopy("edited", lines);
      const run = await cli(["audit", "verify", file], home);
      assert.equal(run.code, 1, run.stdout);
      const seq = (JSON.parse(original[index]!) as Message).seq as number;
      assert.match(run.stdout, new RegExp(`^result: TAMPERED at ${file}:${index + 1} \\(seq ${seq}\\): hash_mismatch`, "m"));
    });

    void test("an edited entry whose hash was recomputed breaks the next link: exit 1", async () => {
      const index = markerIndex();
      const edited = JSON.parse(original[index]!.replace(MARKER, "forged")) as Message;
      delete edited.hash;
      const lines = [...original];
      lines[index] = serializeEntry(edited as AuditEntryBody).line;
      const file = writeCopy("rehashed", lines);
      const run = await cli(["audit", "verify", file], home);
      assert.equal(run.code, 1, run.stdout);
      assert.match(run.stdout, new RegExp(`^result: TAMPERED at ${file}:${index + 2} \\(seq ${index + 2}\\): broken_link`, "m"));
    });

    void test("a deleted line: exit 1, the gap is named", async () => {
      const lines = original.filter((_, i) => i !== 2);
      const file = writeCopy("deleted", lines);
      const run = await cli(["audit", "verify", file], home);
      assert.equal(run.code, 1, run.stdout);
      assert.match(run.stdout, new RegExp(`^result: TAMPERED at ${file}:3 \\(seq 4\\): seq_gap: seq jumps from 2 to 4`, "m"));
    });

    void test("entries cut off the end are caught by --expect-head with the printed head", async () => {
      const file = writeCopy("truncated", original.slice(0, -2));
      const blind = await cli(["audit", "verify", file], home);
      assert.equal(blind.code, 0, "a clean cut at a line end is a shorter valid chain on its own");
      const run = await cli(["audit", "verify", file, "--expect-head", headOf(s2.stderr).hash], home);
      assert.equal(run.code, 1, run.stdout);
      assert.match(run.stdout, /^result: TAMPERED at .*truncated/m);
    });

    void test("a garbage file: exit 2 (not an audit log), also through --state-dir", async () => {
      const garbage = ["this is not an audit log", "\u0000\u0001 {not json"];
      const file = writeCopy("garbage", garbage);
      const run = await cli(["audit", "verify", file], home);
      assert.equal(run.code, 2, `${run.stdout}\n${run.stderr}`);
      assert.equal(run.stdout, "");
      assert.match(run.stderr, /not an audit log/);

      const fakeState = join(copies, "garbage-state");
      mkdirSync(join(fakeState, "audit"), { recursive: true });
      writeFileSync(join(fakeState, "audit", "audit.log"), garbage.join("\n"));
      const viaState = await cli(["audit", "verify", "--state-dir", fakeState], home);
      assert.equal(viaState.code, 2, `${viaState.stdout}\n${viaState.stderr}`);
      assert.match(viaState.stderr, /not an audit log/);
    });
  });
});
