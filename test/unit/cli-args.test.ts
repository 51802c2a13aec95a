/** Command-line parsing: a pure function of argv and the environment. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseArgs, UsageError } from "../../src/cli-args.js";

const env = { HOME: "/home/tester" };
const usage = (pattern: RegExp) => (error: unknown) => error instanceof UsageError && pattern.test(error.message);

void describe("flag values", () => {
  void test("a path flag given with an empty value is a usage error, not the working directory", () => {
    for (const flag of ["--state-dir", "--policy"]) {
      assert.throws(() => parseArgs([`${flag}=`], env), usage(new RegExp(`^${flag} needs a value$`)), `${flag}=`);
      assert.throws(() => parseArgs([flag, ""], env), usage(new RegExp(`^${flag} needs a value$`)), `${flag} ""`);
      assert.throws(() => parseArgs(["check-policy", "p.yaml", `${flag}=`], env), usage(/needs a value/), `check-policy ${flag}=`);
    }
    assert.throws(() => parseArgs(["init", "--state-dir="], env), usage(/--state-dir needs a value/));
  });

  void test("values given inline or as the next argument mean the same", () => {
    const inline = parseArgs(["--state-dir=/tmp/s", "--policy=/tmp/p.yaml", "--page-size=7"], env);
    const separate = parseArgs(["--state-dir", "/tmp/s", "--policy", "/tmp/p.yaml", "--page-size", "7"], env);
    assert.deepEqual(inline, separate);
    assert.equal(inline.command === "serve" && inline.stateDir, "/tmp/s");
  });
});
