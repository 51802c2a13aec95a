import { test } from "node:test";
import assert from "node:assert/strict";
import { cutAt, truncate, wellFormed } from "../../src/util/text.js";
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
