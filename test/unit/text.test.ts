import { test } from "node:test";
import assert from "node:assert/strict";
import { cutAt, foldName, printable, shellWords, truncate, wellFormed } from "../../src/util/text.js";
import { createLogHub, stderrSink } from "../../src/util/logger.js";
import { truncate as truncateMessage } from "../../src/protocol/jsonrpc.js";

const EMOJI = "😀"; // two UTF-16 units

test("cutAt keeps at most max units and never the first half of a surrogate pair", () => {
  assert.equal(cutAt("abcdef", 3), "abc");
  assert.equal(cutAt("abc", 3), "abc");
  assert.equal(cutAt(`ab${EMOJI}`, 3), "ab", "the pair would be split: it is left out whole");
  assert.equal(cutAt(`ab${EMOJI}`, 4), `ab${EMOJI}`);
  assert.equal(cutAt(`a${EMOJI}b`, 3), `a${EMOJI}`);
});

test("truncate adds its suffix only when it cut, and keeps pairs whole", () => {
  assert.equal(truncate("short", 10), "short");
  assert.equal(truncate("abcdef", 3), "abc…");
  assert.equal(truncate("abcdef", 3, "..."), "abc...");
  assert.equal(truncate(`${"a".repeat(99)}${EMOJI}`, 100), `${"a".repeat(99)}…`);
  assert.equal(truncateMessage(`${"a".repeat(8)}${EMOJI}x`, 10), `${"a".repeat(8)}…`, "the protocol's form counts its ellipsis in max");
});

test("wellFormed replaces unpaired surrogates and leaves pairs and other text alone", () => {
  assert.equal(wellFormed(`a${EMOJI}b`), `a${EMOJI}b`);
  assert.equal(wellFormed("a\ud83d"), "a\ufffd");
  assert.equal(wellFormed("\ude00b"), "\ufffdb");
  assert.equal(wellFormed("\ude00\ud83d"), "\ufffd\ufffd", "a low then a high surrogate are no pair");
  assert.equal(wellFormed(""), "");
});

void test("foldName: one spelling for the names a case-insensitive file system takes as one", () => {
  assert.equal(foldName("Audit.LOG"), "audit.log");
  assert.equal(foldName("poli\u0301tica"), foldName("POL\u00cdTICA"));
  assert.equal(foldName("stra\u00dfe"), foldName("STRASSE"));
  assert.equal(foldName("\u03c3\u03c3"), foldName("\u03c3\u03c2"));
  assert.notEqual(foldName("audit.log"), foldName("audit.1og"));
});

void test("printable: controls, DEL, C1 and line separators become visible escapes; other text stays", () => {
  assert.equal(printable("a\nb\r\u001b[31mc\u0000\u007f\u009b\u2028\u2029"), "a\\u000ab\\u000d\\u001b[31mc\\u0000\\u007f\\u009b\\u2028\\u2029");
  assert.equal(printable("héllo 👋 ok"), "héllo 👋 ok");
  // Bidi overrides would reorder what the operator reads.
  assert.equal(printable("a\u202eb\u2066c\u200f"), "a\\u202eb\\u2066c\\u200f");
});

void test("printable: a backslash is escaped too, so an escape reads one way only", () => {
  // Before, the literal text \x1b (or \u001b) in a name printed exactly as an escaped ESC byte did.
  assert.equal(printable("\\u001b"), "\\\\u001b");
  assert.equal(printable("\u001b"), "\\u001b");
  assert.notEqual(printable("\\u001b"), printable("\u001b"));
  assert.equal(printable("C:\\dir\\x1b.log"), "C:\\\\dir\\\\x1b.log");
  // Reading it back is unambiguous: every backslash of the output starts \\ or \uXXXX.
  for (const sample of ["\\", "\\\u001b", "a\\nb\nc", "\\\\u000a\n"]) {
    const shown = printable(sample);
    assert.match(shown, /^(?:[^\\]|\\\\|\\u[0-9a-f]{4})*$/, shown);
    const back = shown.replace(/\\(\\|u([0-9a-f]{4}))/g, (_, escaped: string, hex?: string) => (hex === undefined ? escaped : String.fromCharCode(Number.parseInt(hex, 16))));
    assert.equal(back, sample);
  }
});

void test("a stderr log record is one line whatever its text holds: no record can forge another", () => {
  const lines: string[] = [];
  const hub = createLogHub({ stderr: stderrSink((line) => lines.push(line)) });
  hub.logger("plugin").warn("looks fine\nmcp-secure-local[server] info: forged \u001b[2Jcleared", { note: "x\u009by\u2028z" });
  assert.equal(lines.length, 1);
  assert.equal((lines[0]!.match(/\n/g) ?? []).length, 1, "only the record's own line end");
  assert.ok(lines[0]!.endsWith("\n"));
  // eslint-disable-next-line no-control-regex -- the test is about control characters
  assert.doesNotMatch(lines[0]!, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/);
  assert.match(lines[0]!, /^mcp-secure-local\[plugin\] warning: looks fine\\u000amcp-secure-local\[server\] info: forged \\u001b\[2Jcleared \{"note":"x\\u009by\\u2028z"\}\n$/);
});

void test("a stderr log record escapes a message's backslashes, and leaves its JSON data the same JSON", () => {
  const lines: string[] = [];
  const hub = createLogHub({ stderr: stderrSink((line) => lines.push(line)) });
  const data = { path: "a\\u001b\u001b\n", note: "x\u009b\u2028" };
  hub.logger("server").warn("name \\x1b vs \u001b", data);
  assert.equal(lines.length, 1);
  const [message, json] = lines[0]!.trimEnd().split(/ (?=\{)/);
  assert.equal(message, "mcp-secure-local[server] warning: name \\\\x1b vs \\u001b");
  // JSON escapes its own backslashes: the data parses back to what was logged.
  assert.deepEqual(JSON.parse(json!), data);
  // eslint-disable-next-line no-control-regex -- the test is about control characters
  assert.doesNotMatch(json!, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
});

test("shellWords leaves plain words bare and single-quotes the rest so a shell reads them back as given", () => {
  assert.equal(shellWords(["mv", "/a/b.log", "/a/b.log.seed"]), "mv /a/b.log /a/b.log.seed");
  assert.equal(shellWords(["ls", "my dir", "it's", "*.log", ""]), `ls 'my dir' 'it'\\''s' '*.log' ''`);
});

void test("a record's detail (a stack trace) goes to stderr only, never to subscribers (the client)", () => {
  const lines: string[] = [];
  const hub = createLogHub({ stderr: stderrSink((line) => lines.push(line)) });
  const seen: unknown[] = [];
  hub.subscribe((record) => seen.push(record));
  hub.logger("server").error("internal error: TypeError: boom", undefined, "TypeError: boom\n    at f (/opt/msl/dist/x.cjs:1:2)");
  hub.logger("server").error("no detail", { a: 1 });
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /^mcp-secure-local\[server\] error: internal error: TypeError: boom TypeError: boom\\u000a {4}at f \(\/opt\/msl\/dist\/x\.cjs:1:2\)\n$/);
  assert.deepEqual(seen, [
    { level: "error", logger: "server", message: "internal error: TypeError: boom" },
    { level: "error", logger: "server", message: "no detail", data: { a: 1 } },
  ]);
});
