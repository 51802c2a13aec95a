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
