// Pure parts of the bug tracker: ids, cursors, FTS query building, update planning.
import { createHash } from "node:crypto";
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ToolError } from "../../src/plugins/contract.js";
import { CursorError, decodeCursor, encodeCursor } from "../../src/plugins/builtin/bugtracker/cursor.js";
import { SearchQueryError, buildFtsQuery } from "../../src/plugins/builtin/bugtracker/fts-query.js";
import { formatBugId, makeUlid, parseBugRef, projectIdFor } from "../../src/plugins/builtin/bugtracker/ids.js";
import {
  MULTILINE_NONBLANK_PATTERN,
  RECIPROCAL,
  RELATIONSHIPS,
  SINGLE_LINE_PATTERN,
  STATUSES,
  TRANSITIONS,
  VISIBLE_PATTERN,
  canTransition,
} from "../../src/plugins/builtin/bugtracker/model.js";
import { isEmptyPlan, planUpdate, type BugState } from "../../src/plugins/builtin/bugtracker/update-plan.js";

void describe("bug ids", () => {
  void it("formats and parses BUG-n in any case, with leading zeros", () => {
    assert.equal(formatBugId(12), "BUG-12");
    assert.deepEqual(parseBugRef("BUG-12"), { kind: "number", number: 12 });
    assert.deepEqual(parseBugRef("bug-12"), { kind: "number", number: 12 });
    assert.deepEqual(parseBugRef("Bug-012"), { kind: "number", number: 12 });
    assert.deepEqual(parseBugRef("  BUG-7 "), { kind: "number", number: 7 });
  });

  void it("parses a ULID in any case and normalizes it to upper case", () => {
    assert.deepEqual(parseBugRef("01arz3ndektsv4rrffq69g5fav"), { kind: "uid", uid: "01ARZ3NDEKTSV4RRFFQ69G5FAV" });
  });

  void it("refuses everything else", () => {
    for (const bad of ["", "BUG-", "BUG-0", "bug-xxxxxxxx", "BUG-1234567890", "12", "BUG 12", "01ARZ3NDEKTSV4RRFFQ69G5FA", "01ARZ3NDEKTSV4RRFFQ69G5FAVX", "01ARZ3NDEKTSV4RRFFQ69G5FAI", "81ARZ3NDEKTSV4RRFFQ69G5FAV"]) {
      assert.equal(parseBugRef(bad), undefined, bad);
    }
  });

  void it("encodes ULIDs: 10 time characters, then 80 random bits", () => {
    assert.equal(makeUlid(0, new Uint8Array(10)), "0".repeat(26));
    assert.equal(makeUlid(2 ** 48 - 1, new Uint8Array(10).fill(255)), "7ZZZZZZZZZ" + "Z".repeat(16));
    // 1 ms is the last time character; the first random bit is the top bit of the first byte.
    const first = new Uint8Array(10);
    first[0] = 0x80;
    assert.equal(makeUlid(1, first), "0000000001" + "G" + "0".repeat(15));
    assert.ok(makeUlid(1000, new Uint8Array(10)) < makeUlid(1001, new Uint8Array(10)), "later times sort later");
    assert.throws(() => makeUlid(-1, new Uint8Array(10)), RangeError);
    assert.throws(() => makeUlid(0, new Uint8Array(9)), RangeError);
    const id = makeUlid(Date.UTC(2025, 0, 1), new Uint8Array(10).fill(7));
    assert.deepEqual(parseBugRef(id), { kind: "uid", uid: id });
  });

  void it("keeps the seed's project id: basename and 8 hex of sha256(real path)", () => {
    const digest = createHash("sha256").update("/work/proj-alpha").digest("hex").slice(0, 8);
    assert.equal(projectIdFor("/work/proj-alpha"), `proj-alpha-${digest}`);
    assert.match(projectIdFor("/"), /^root-[0-9a-f]{8}$/);
  });
});

void describe("cursors", () => {
  const fp = JSON.stringify(["list", 1, "open"]);

  void it("round-trips the keys of each sort", () => {
    assert.deepEqual(decodeCursor(encodeCursor("created_desc", [42], fp), "created_desc", fp), [42]);
    assert.deepEqual(decodeCursor(encodeCursor("updated_desc", [1700000000000, 9], fp), "updated_desc", fp), [1700000000000, 9]);
    assert.deepEqual(decodeCursor(encodeCursor("relevance", [-1.2345678901234567, 9], fp), "relevance", fp), [-1.2345678901234567, 9]);
  });

  void it("refuses a cursor of another query, another sort, altered or malformed", () => {
    const cursor = encodeCursor("priority", [3, 10], fp);
    assert.throws(() => decodeCursor(cursor, "priority", JSON.stringify(["list", 2, "open"])), CursorError);
    assert.throws(() => decodeCursor(cursor, "created_desc", fp), CursorError);
    const [payload, check] = cursor.split(".");
    const forged = Buffer.from(JSON.stringify({ v: 1, s: "priority", k: [3, 99] })).toString("base64url");
    assert.throws(() => decodeCursor(`${forged}.${check}`, "priority", fp), CursorError);
    for (const bad of ["", ".", "garbage", `${payload}`, `${payload}.${check}.x`, `${payload}.AAAAAAAAAAAAAAAA`]) {
      assert.throws(() => decodeCursor(bad, "priority", fp), CursorError, bad);
    }
  });

  void it("refuses well-signed cursors whose keys are not of the right shape", () => {
    // Build payloads with a valid check value to reach the shape checks.
    const sign = (value: unknown) => {
      const payload = Buffer.from(JSON.stringify(value)).toString("base64url");
      const check = createHash("sha256").update(payload).update("\n").update(fp).digest("base64url").slice(0, 16);
      return `${payload}.${check}`;
    };
    assert.deepEqual(decodeCursor(sign({ v: 1, s: "created_asc", k: [5] }), "created_asc", fp), [5]);
    assert.throws(() => decodeCursor(sign({ v: 2, s: "created_asc", k: [5] }), "created_asc", fp), CursorError);
    assert.throws(() => decodeCursor(sign({ v: 1, s: "created_asc", k: [5.5] }), "created_asc", fp), CursorError);
    assert.throws(() => decodeCursor(sign({ v: 1, s: "created_asc", k: ["5"] }), "created_asc", fp), CursorError);
    assert.throws(() => decodeCursor(sign({ v: 1, s: "created_asc", k: [5, 6] }), "created_asc", fp), CursorError);
    assert.throws(() => decodeCursor(sign({ v: 1, s: "relevance", k: [-1.5, 6.5] }), "relevance", fp), CursorError);
    assert.throws(() => decodeCursor(sign([1]), "created_asc", fp), CursorError);
  });

  void it("will not encode keys that do not fit the sort", () => {
    assert.throws(() => encodeCursor("created_desc", [1, 2], fp), RangeError);
    assert.throws(() => encodeCursor("priority", [Number.NaN, 2], fp), RangeError);
  });
});

void describe("full-text query building", () => {
  void it("quotes every word and ANDs them", () => {
    assert.deepEqual(buildFtsQuery("login crash"), { expression: '"login" "crash"', terms: ["login", "crash"] });
  });

  void it("keeps FTS5 syntax out: operators, quotes, column filters and parentheses become plain strings", () => {
    const cases: Array<[string, string]> = [
      ['say "hello', '"say" """hello"'],
      ["a OR b", '"a" "OR" "b"'],
      ["NEAR(a b)", '"NEAR(a" "b)"'],
      ["-login", '"-login"'],
      ["title:secret", '"title:secret"'],
      ["^start", '"^start"'],
      ["a AND NOT b", '"a" "AND" "NOT" "b"'],
    ];
    for (const [input, expression] of cases) assert.equal(buildFtsQuery(input).expression, expression, input);
  });

  void it("turns a trailing * into a prefix search and drops words without letters or digits", () => {
    assert.equal(buildFtsQuery("crash*").expression, '"crash"*');
    assert.equal(buildFtsQuery("crash** * - \" ( )").expression, '"crash"*');
    assert.equal(buildFtsQuery("*crash").expression, '"*crash"');
  });

  void it("refuses an empty, overlong or too wordy query", () => {
    for (const bad of ["", "   ", '" * - ( )', "x".repeat(501), Array.from({ length: 33 }, (_, i) => `w${i}`).join(" ")]) {
      assert.throws(() => buildFtsQuery(bad), SearchQueryError);
    }
  });
});

void describe("status transitions and update plans", () => {
  const state = (overrides: Partial<BugState> = {}): BugState => ({
    label: "BUG-3",
    title: "Crash on sav",
    description: "",
    status: "open",
    priority: "medium",
    tags: ["auth", "ui"],
    related: new Map(),
    ...overrides,
  });

  void it("follows the transition table", () => {
    const expected: Record<string, string[]> = {
      open: ["in_progress", "resolved", "closed"],
      in_progress: ["open", "resolved", "closed"],
      resolved: ["closed", "open"],
      closed: ["open"],
    };
    for (const from of STATUSES) {
      assert.deepEqual([...TRANSITIONS[from]].sort(), [...(expected[from] ?? [])].sort(), from);
      for (const to of STATUSES) assert.equal(canTransition(from, to), expected[from]?.includes(to) ?? false, `${from}->${to}`);
    }
  });

  void it("refuses a move outside the table with the allowed moves in the message", () => {
    assert.throws(
      () => planUpdate(state({ status: "closed" }), { status: "in_progress" }),
      (error: unknown) =>
        error instanceof ToolError && error.code === "INVALID_TRANSITION" && /BUG-3 from closed to in_progress/.test(error.message) && /open/.test(error.message),
    );
    assert.throws(() => planUpdate(state({ status: "resolved" }), { status: "in_progress" }), ToolError);
  });

  void it("records only real changes", () => {
    assert.ok(isEmptyPlan(planUpdate(state(), { status: "open", priority: "medium", tags: ["auth", "ui"], related: [] })));
    const plan = planUpdate(state(), { status: "in_progress", priority: "medium", tags: ["auth", "p0"] });
    assert.deepEqual(plan.status, { from: "open", to: "in_progress" });
    assert.equal(plan.priority, undefined);
    assert.deepEqual(plan.tagsAdded, ["p0"]);
    assert.deepEqual(plan.tagsRemoved, ["ui"]);
  });

  void it("changes the title and description only when they differ", () => {
    assert.ok(isEmptyPlan(planUpdate(state(), { title: "Crash on sav", description: "" })));
    const plan = planUpdate(state(), { title: "Crash on save", description: "Steps:\n1. save" });
    assert.deepEqual(plan.title, { from: "Crash on sav", to: "Crash on save" });
    assert.deepEqual(plan.description, { from: "", to: "Steps:\n1. save" });
    assert.equal(isEmptyPlan(planUpdate(state(), { description: "x" })), false);
    assert.equal(planUpdate(state({ description: "x" }), { description: "" }).description?.to, "", "a description may be emptied");
  });

  void it("counts a note alone as a change", () => {
    const plan = planUpdate(state(), { note: "still investigating" });
    assert.equal(isEmptyPlan(plan), false);
    assert.equal(plan.note, "still investigating");
  });

  void it("diffs the related set: added, changed, removed", () => {
    const current = new Map([
      [10, "blocks" as const],
      [11, "related_to" as const],
    ]);
    const plan = planUpdate(state({ related: current }), {
      related: [
        { other: 11, relationship: "duplicate_of" },
        { other: 12, relationship: "blocked_by" },
      ],
    });
    assert.deepEqual(plan.related, [{ other: 10, from: "blocks" }, { other: 11, from: "related_to", to: "duplicate_of" }, { other: 12, to: "blocked_by" }]);
  });

  void it("pairs every relationship with its reciprocal, both ways", () => {
    for (const kind of RELATIONSHIPS) assert.equal(RECIPROCAL[RECIPROCAL[kind]], kind);
    assert.equal(RECIPROCAL.blocks, "blocked_by");
    assert.equal(RECIPROCAL.duplicate_of, "duplicated_by");
    assert.equal(RECIPROCAL.related_to, "related_to");
  });
});

void describe("text patterns", () => {
  const single = new RegExp(SINGLE_LINE_PATTERN, "u");
  const multi = new RegExp(MULTILINE_NONBLANK_PATTERN, "u");

  it("accept visible text, refuse blank text and unsafe characters", () => {
    for (const ok of ["a", " a ", "\u00e9t\u00e9", "x y"]) assert.ok(single.test(ok) && multi.test(ok), ok);
    for (const ok of ["line 1\nline 2", "\t\n x\r\n"]) assert.ok(multi.test(ok) && !single.test(ok), ok);
    for (const bad of ["", " ", "\n\t", "\u00a0", "a\u0000", "a\u202eb", "\u2066x", "x\u007f"]) assert.ok(!single.test(bad) && !multi.test(bad), JSON.stringify(bad));
  });

  it("count only what shows: a text of invisible characters alone is blank (the plugin's own check)", () => {
    const shows = new RegExp(VISIBLE_PATTERN, "u");
    const invisible = {
      "zero-width space": "\u200b",
      "zero-width non-joiner and joiner": "\u200c\u200d",
      "word joiner": "\u2060",
      "byte order mark": "\ufeff",
      "soft hyphen": "\u00ad",
      "combining marks alone": "\u0301\u0308\u20dd",
      "spaces of other kinds": "\u2003\u3000\u205f\u1680",
      "bidi marks": "\u200e\u200f\u061c",
      "variation selector": "\ufe0f",
      "tag characters": "\u{E0041}\u{E007F}",
      "Hangul filler": "\u3164",
      "blank braille cell": "\u2800",
      "a mix, with ordinary spaces": " \u200b\u00ad \u0301\ufeff ",
    };
    for (const [what, text] of Object.entries(invisible)) {
      assert.ok(!shows.test(text), what);
      assert.ok(!shows.test(`${text}\n\t${text}`), `${what}, on two lines`);
    }
    // One visible character is enough, however it is written.
    const visible = {
      "a letter with a combining accent": "e\u0301",
      "an emoji": "\u{1F41B}",
      "a flag": "\u{1F1EB}\u{1F1F7}",
      "a keycap": "1\ufe0f\u20e3",
      "a family joined by zero-width joiners": "\u{1F468}\u200d\u{1F469}",
      "Arabic after a right-to-left mark": "\u200f\u0645\u0631\u062d\u0628\u0627",
      "Devanagari": "\u0928\u092e\u0938\u094d\u0924\u0947",
      "a letter between zero-width spaces": "\u200bx\u200b",
      "a private-use character (an icon font's)": "\ue000",
    };
    for (const [what, text] of Object.entries(visible)) assert.ok(shows.test(text) && single.test(text) && multi.test(text), what);
  });

  // A schema pattern runs on every call's arguments before anything answers; the timeout fails
  // (rather than hangs) the suite if one turns super-linear again (it was quadratic: 0.4 s on 20,000).
  it("review finding: stay linear on long text that fails only at its end", { timeout: 60_000 }, () => {
    for (const filler of ["a", " ", "a ", "\n", "\u200b", "\u0301"]) {
      const text = filler.repeat(100_000);
      assert.equal(multi.test(`${text}\u0000`), false);
      assert.equal(single.test(`${text}\u0000`), false);
      // The patterns ask for something other than whitespace; what shows is the plugin's check.
      assert.equal(multi.test(text), filler.trim() !== "");
      assert.equal(new RegExp(VISIBLE_PATTERN, "u").test(text), filler.includes("a"));
    }
  });
});
