import { test } from "node:test";
import assert from "node:assert/strict";
import { ToolAccessPolicyError, compileToolAccess, followedDenials, toolGlobProblem, unmatchedToolNames } from "../../src/security/policy/tool-access.js";

void test("no allow list means every tool", () => {
  const access = compileToolAccess({ deny: [] });
  assert.ok(access("add_bug"));
  assert.ok(access("web_search"));
  assert.ok(!access(""));
});

void test("an empty allow list means no tool", () => {
  const access = compileToolAccess({ allow: [], deny: [] });
  assert.ok(!access("add_bug"));
  assert.ok(!access("web_search"));
});

void test("allow entries are names or globs", () => {
  const access = compileToolAccess({ allow: ["web_search", "*_bug", "list_{bugs,categories}", "get_?ug"], deny: [] });
  assert.ok(access("web_search"));
  assert.ok(access("add_bug"));
  assert.ok(access("close_bug"));
  assert.ok(access("list_bugs"));
  assert.ok(access("list_categories"));
  assert.ok(access("get_bug"));
  assert.ok(!access("search_bugs_global"));
  assert.ok(!access("web_search2"));
  assert.ok(!access("Web_Search"), "allow is case-sensitive, like tool names");
});

void test("deny wins over allow, and matches regardless of case", () => {
  const access = compileToolAccess({ allow: ["*"], deny: ["search_*", "exec"] });
  assert.ok(access("add_bug"));
  assert.ok(!access("search_bugs_global"));
  assert.ok(!access("Search_Bugs_Global"));
  assert.ok(!access("exec"));
  assert.ok(!access("EXEC"));
  assert.ok(access("exec2"));
  const denyOnly = compileToolAccess({ deny: ["add_bug"] });
  assert.ok(!denyOnly("add_bug"));
  assert.ok(denyOnly("get_bug"));
});

void test("denying write_file denies edit_file and move_file too: a read-only policy gains no write tool when one is added", () => {
  for (const deny of [["write_file"], ["WRITE_FILE"], ["write_*"]]) {
    const access = compileToolAccess({ deny });
    assert.ok(!access("edit_file"), deny.join());
    assert.ok(!access("move_file"), deny.join());
    assert.ok(access("read_file"));
  }
  const editOnly = compileToolAccess({ deny: ["edit_file"] });
  assert.ok(!editOnly("edit_file"));
  assert.ok(editOnly("write_file"), "denying the newer tool leaves the older one");
  assert.ok(compileToolAccess({ deny: [] })("edit_file"));
  assert.ok(!compileToolAccess({ allow: ["write_file"], deny: [] })("edit_file"), "an allow list still names each tool");
  const named = compileToolAccess({ allow: ["read_file", "edit_file"], deny: ["write_file"] });
  assert.ok(named("edit_file"), "named in tools.allow: kept, to edit files but never make new ones");
  assert.ok(!named("move_file"));
  assert.ok(!compileToolAccess({ allow: ["*_file"], deny: ["write_file"] })("edit_file"), "a glob does not name it");
});

void test("tools denied only by following another are said, with how to keep them", () => {
  assert.deepEqual(followedDenials({ deny: ["write_file"] }), [
    "tools.deny matches write_file, so edit_file is denied too (it changes files as write_file does); name edit_file in tools.allow to keep it",
    "tools.deny matches write_file, so move_file is denied too (it changes files as write_file does); name move_file in tools.allow to keep it",
  ]);
  assert.deepEqual(followedDenials({ deny: ["write_file", "edit_file", "move_*"] }), [], "denied in their own right: nothing to say");
  assert.deepEqual(followedDenials({ allow: ["edit_file"], deny: ["write_file"] }), [], "edit_file is kept by name, move_file is not allowed anyway");
  assert.equal(followedDenials({ allow: ["*_file"], deny: ["write_file"] }).length, 2, "allowed by a glob, denied by following: said");
  assert.deepEqual(followedDenials({ deny: [] }), []);
});

void test("a leading ! is not negation (it would widen an allow list)", () => {
  const access = compileToolAccess({ allow: ["!add_bug"], deny: [] });
  assert.ok(!access("get_bug"));
  assert.ok(!access("add_bug"));
});

void test("names with dots and hyphens match literally", () => {
  const access = compileToolAccess({ allow: ["bug.add", "a-b"], deny: [] });
  assert.ok(access("bug.add"));
  assert.ok(access("a-b"));
  assert.ok(!access("bugxadd"));
});

void test("an entry that is not a valid glob stops the start instead of matching nothing", () => {
  // picomatch alone turns these into a regex that never matches: a deny entry that denies nothing.
  for (const deny of [["add_{bug"], ["get_bug", "[z-a]*"]]) {
    assert.throws(() => compileToolAccess({ deny }), (error: unknown) => {
      assert.ok(error instanceof ToolAccessPolicyError);
      assert.match(error.message, /^tools\.deny\[\d\] ".*" is not a valid glob/);
      return true;
    });
  }
  assert.throws(() => compileToolAccess({ allow: ["list_{bugs"], deny: [] }), /tools\.allow\[0\] "list_\{bugs" is not a valid glob/);
});

void test("every entry that is not a valid glob is named in one refusal, not only the first", () => {
  assert.throws(() => compileToolAccess({ allow: ["ok", "list_{bugs"], deny: ["[z-a]*", "get_bug", "add_{bug"] }), (error: unknown) => {
    assert.ok(error instanceof ToolAccessPolicyError);
    assert.deepEqual(
      error.message.split("\n").map((line) => /^tools\.\w+\[\d\]/.exec(line)?.[0]),
      ["tools.deny[0]", "tools.deny[2]", "tools.allow[1]"],
    );
    return true;
  });
  assert.match(toolGlobProblem("add_{bug", "deny") ?? "", /^is not a valid glob \(.*\); check its brackets and braces$/);
  assert.equal(toolGlobProblem("add_*", "allow"), undefined);
});

void test("policy entries that name no tool are said, once per setting: deny, allow, rate limits, timeouts", () => {
  const names = ["add_bug", "get_bug", "echo", "write_file"];
  const none = { deny: [], rate_limits: { default: 60 }, timeouts: {} };
  assert.deepEqual(unmatchedToolNames({ ...none, rate_limits: { default: 60, add_bug: 10, get_bug: 5 }, timeouts: { echo: 3 } }, names), []);
  assert.deepEqual(unmatchedToolNames({ ...none, rate_limits: { default: 60, add_bugs: 10, web_search: 20 }, timeouts: { ehco: 3 } }, names), [
    'tools.rate_limits names "add_bugs", "web_search", which match no tool of this server: those entries have no effect (a typo?)',
    'tools.timeouts names "ehco", which matches no tool of this server: that entry has no effect (a typo?)',
  ]);
  // A typo in deny leaves the tool callable: the most important of these to hear.
  assert.deepEqual(unmatchedToolNames({ ...none, deny: ["wirte_file", "*_bug", "WRITE_FILE", "wirte_file"] }, names), [
    'tools.deny names "wirte_file", which matches no tool of this server: it denies nothing (a typo?)',
  ]);
  // Globs count when they match some tool; deny matches regardless of case, allow does not.
  assert.deepEqual(unmatchedToolNames({ ...none, allow: ["read_fiel", "add_*", "Echo", "nothing_*"] }, names), [
    'tools.allow names "read_fiel", "Echo", "nothing_*", which match no tool of this server: they allow nothing (a typo?)',
  ]);
  // An allow list left out allows every tool and names none; an invalid glob is refused elsewhere, not said twice.
  assert.deepEqual(unmatchedToolNames({ ...none, deny: ["add_{bug"] }, names), []);
});
