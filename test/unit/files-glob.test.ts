/**
 * search_files' globs: the syntax, component-by-component matching as the walk goes down,
 * and bounded time on patterns that make a regex backtrack.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { compileGlob, expandBraces, GlobBudgetError, GlobError } from "../../src/plugins/builtin/files/glob.js";

/** Whether `path` (relative, `/`-separated) matches, stepping one component at a time as the walk does. */
function matches(pattern: string, path: string, max = 1_000_000): boolean {
  const glob = compileGlob(pattern, { steps: 0, max });
  let states = glob.start;
  for (const name of path.split("/")) states = glob.step(states, name);
  return glob.accepts(states);
}

void describe("globs", () => {
  test("* and ? stay within a name; ** crosses directories, none included", () => {
    assert.ok(matches("*.md", "a.md"));
    assert.ok(!matches("*.md", "notes/a.md"));
    assert.ok(matches("notes/*.md", "notes/a.md"));
    assert.ok(matches("**/*.md", "a.md"));
    assert.ok(matches("**/*.md", "x/y/z/a.md"));
    assert.ok(matches("x/**/a.md", "x/a.md"));
    assert.ok(matches("x/**/a.md", "x/1/2/a.md"));
    assert.ok(!matches("x/**/a.md", "y/1/a.md"));
    assert.ok(matches("**", "anything/at/all"));
    assert.ok(matches("a?c", "abc"));
    assert.ok(!matches("a?c", "ac"));
    assert.ok(matches("a?c", "a\u{1F600}c"), "? is one character, not one UTF-16 unit");
    assert.ok(matches("*", "a\nb"), "a name may hold a line break");
    assert.ok(!matches("*.MD", "a.md"), "case-sensitive");
  });

  test("classes, negation, ranges, escapes and braces", () => {
    assert.ok(matches("file[0-9].txt", "file7.txt"));
    assert.ok(!matches("file[0-9].txt", "filex.txt"));
    assert.ok(matches("file[!0-9].txt", "filex.txt"));
    assert.ok(matches("file[^0-9].txt", "filex.txt"));
    assert.ok(matches("[]]", "]"));
    assert.ok(matches("a\\*b", "a*b"));
    assert.ok(matches("a\\\\/b", "a\\/b"), "an escaped backslash, then a separator");
    assert.ok(!matches("a\\*b", "axb"));
    assert.ok(matches("*.{md,txt}", "a.txt"));
    assert.ok(matches("{notes,docs}/**/*.{md,txt}", "docs/x/a.md"));
    assert.ok(!matches("{notes,docs}/*.md", "src/a.md"));
    assert.ok(matches("{x}", "{x}"), "a brace without a comma is literal");
    assert.deepEqual(expandBraces("a{b,c{d,e}}f"), ["abf", "acdf", "acef"]);
  });

  test("mistakes are said: an unclosed class, a backwards range, a leading /, empty components, too many alternatives", () => {
    for (const [pattern, message] of [
      ["[abc", /never closed/],
      ["[z-a]", /runs backwards/],
      ["/etc/*", /leading \//],
      ["a//b", /empty component/],
      ["a/", /empty component/],
      ["../x", /not allowed/],
      ["x\\", /lone \\/],
      ["a\\/b", /a name cannot hold \//],
      ["{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}", /more than 64 alternatives/],
    ] as const) {
      assert.throws(() => compileGlob(pattern, { steps: 0, max: 1000 }), (error: unknown) => error instanceof GlobError && message.test(error.message), pattern);
    }
  });

  test("a pattern that makes a regex backtrack costs at most name x pattern steps here", () => {
    const budget = { steps: 0, max: 10_000_000 };
    const glob = compileGlob(`**/${"*?".repeat(100)}#`, budget);
    const name = "settings-page-reference-renderer-v2.tsx".repeat(6);
    let states = glob.start;
    for (const part of ["a", "b", "c", name]) states = glob.step(states, part);
    assert.equal(glob.accepts(states), false);
    assert.ok(budget.steps <= 4 * name.length * 202, `${budget.steps} steps`);
  });

  test("stacked ** are one state; every state and every class range is paid for from the budget", () => {
    const stacked = compileGlob(`${"**/".repeat(160)}x`, { steps: 0, max: 1_000_000 });
    assert.equal(stacked.start.size, 2, "one ** and what follows it");
    // Repeated alternatives are one: `{,}{,}{,}...` expands to 64 copies of the same pattern.
    assert.equal(compileGlob(`{,}{,}{,}{,}{,}{,}${"**/".repeat(160)}x`, { steps: 0, max: 1_000_000 }).start.size, 2);
    // Distinct alternatives: each live state is paid for at every step.
    const budget = { steps: 0, max: 100_000_000 };
    const wide = compileGlob(`**/{a,b}/{c,d}/{e,f}/{g,h}/{i,j}/{k,l}/${"**/a/".repeat(20)}x`, budget);
    let states = wide.start;
    for (let i = 0; i < 100; i++) states = wide.step(states, "a");
    assert.ok(budget.steps >= 100 * 64, `${budget.steps} steps for 100 names through 64 alternatives`);
    const classBudget = { steps: 0, max: 100_000 };
    const bigClass = compileGlob(`*[${"abcdefghij".repeat(47)}]*#`, classBudget);
    assert.throws(() => {
      for (let i = 0; i < 1000; i++) bigClass.step(bigClass.start, "z".repeat(255));
    }, GlobBudgetError);
  });

  test("live: a path no longer pattern can match is not worth descending into", () => {
    const glob = compileGlob("src/*", { steps: 0, max: 1000 });
    const src = glob.step(glob.start, "src");
    assert.equal(glob.live(src), true);
    const file = glob.step(src, "a.ts");
    assert.equal(glob.accepts(file), true);
    assert.equal(glob.live(file), false, "src/a.ts matched; nothing under it can");
    const any = compileGlob("**", { steps: 0, max: 1000 });
    assert.equal(any.live(any.step(any.start, "d")), true);
  });

  test("names compare in NFC; [:alpha:] is refused; an escaped range end is read", () => {
    assert.ok(matches("caf\u00e9.md", "cafe\u0301.md"), "a macOS (NFD) name matches a typed (NFC) pattern");
    assert.throws(() => compileGlob("[[:alpha:]]", { steps: 0, max: 10 }), /\[a-zA-Z\]/);
    assert.ok(matches("[a-\\z]", "m"));
  });

  test("the budget stops matching once spent", () => {
    const glob = compileGlob("*a*a*a*a*b", { steps: 0, max: 50 });
    assert.throws(() => glob.step(glob.start, "a".repeat(200)), GlobBudgetError);
  });

  test("the walk learns early that nothing below a directory can match", () => {
    const glob = compileGlob("notes/*.md", { steps: 0, max: 1000 });
    assert.equal(glob.step(glob.start, "src").size, 0);
    assert.ok(glob.step(glob.start, "notes").size > 0);
  });
});
