/**
 * The policy loader's YAML fast path against `yaml` itself: wherever the fast path answers,
 * its value is the one `yaml` gives with the loader's options, and `yaml` finds no error or
 * warning there. Everything else it must decline (undefined), so that `yaml` decides.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { parseSimpleYaml } from "../../src/security/policy/yaml-fast-path.js";
import { YAML_OPTIONS } from "../../src/security/policy/load.js";
import { ROOT } from "../helpers/project.js";
import { prng as random } from "../helpers/prng.js";

/** What `yaml` makes of the text, or undefined when it reports any error or warning. */
function reference(text: string): unknown {
  const doc = parseDocument(text, YAML_OPTIONS);
  if (doc.errors.length > 0 || doc.warnings.length > 0) return undefined;
  return doc.toJS({ maxAliasCount: 100 }) as unknown;
}

/** Fails when the fast path answers differently from `yaml`; returns whether it answered. */
function agrees(text: string): boolean {
  const fast = parseSimpleYaml(text);
  if (fast === undefined) return false;
  const expected = reference(text);
  assert.notEqual(expected, undefined, `the fast path accepted what yaml refuses:\n${text}`);
  assert.deepStrictEqual(fast, expected, `the fast path differs from yaml:\n${text}`);
  return true;
}

test("the shipped and benchmark policies take the fast path and read as yaml reads them", () => {
  for (const file of ["policy.yaml", "bench/policies/audit-off.yaml", "bench/policies/audit-batch.yaml", "bench/policies/audit-always.yaml"]) {
    assert.equal(agrees(readFileSync(join(ROOT, file), "utf8")), true, `${file} takes the fast path`);
  }
});

test("plain scalars resolve as the YAML 1.2 core schema resolves them", () => {
  const cases: Array<[string, unknown]> = [
    ["~", null], ["null", null], ["Null", null], ["NULL", null], ["nULL", "nULL"],
    ["true", true], ["True", true], ["TRUE", true], ["tRUE", "tRUE"], ["false", false], ["FALSE", false],
    ["yes", "yes"], ["no", "no"], ["on", "on"], ["off", "off"], ["y", "y"],
    ["12", 12], ["+12", 12], ["-12", -12], ["007", 7], ["0o17", 15], ["0x1F", 31], ["0X1F", "0X1F"], ["1_000", "1_000"],
    ["1.5", 1.5], ["-1.5", -1.5], ["1.", 1], [".5", 0.5], ["1e3", 1000], ["1.5E-2", 0.015], ["1.0", 1],
    ["10.0.0.0/8", "10.0.0.0/8"], ["2024-01-01", "2024-01-01"], ["1.2.3", "1.2.3"], ["-1a", "-1a"],
    ["http://localhost:8080/x", "http://localhost:8080/x"], ["a:b", "a:b"], ["a#b", "a#b"], ["a, b", "a, b"],
    ["${STATE_DIR}/audit.log", "${STATE_DIR}/audit.log"], ["~/projects", "~/projects"], ["it's", "it's"], ["say \"hi\"", 'say "hi"'],
  ];
  for (const [plain, value] of cases) {
    const text = `key: ${plain}\n`;
    assert.equal(agrees(text), true, `fast path for ${plain}`);
    assert.deepStrictEqual(parseSimpleYaml(text), { key: value }, plain);
  }
  // -0 keeps its sign, as parseInt gives it to yaml.
  assert.ok(Object.is(parseSimpleYaml("key: -0\n")?.key, -0));
});

test("what lies outside the subset is declined, never guessed", () => {
  const declined = [
    "", "# only a comment\n", "- a\n- b\n", "plain scalar\n", "---\nkey: 1\n", "key: 1\n...\n", "%YAML 1.2\n---\nkey: 1\n",
    "key: &a 1\nother: *a\n", "key: !!str 1\n", "key: |\n  text\n", "key: >\n  text\n", "key: {a: 1}\n", "key: {}\n",
    'key: "a\\nb"\n', "key: 'it''s'\n", "key: \"open\n", "key: [a,\n  b]\n", "key: [a, [b]]\n", "key: [a,]\n", "key: [a,,b]\n",
    "key:\n  - host: a\n      ports: [1]\n", "key:\n  -\n    - a\n", "key:\n  - \n", "key: .inf\n", "key: .nan\n", "key: -.inf\n",
    "key: a: b\n", "key: a:\n", "key:value\n", "key :x\n", "\"key\": 1\n", "1: a\n", "null: a\n", "true: a\n", "__proto__: a\n",
    "key: 1\nkey: 2\n", "key: a\n  continued\n", "key:\tx\n", "key: x\r\n", "\uFEFFkey: 1\n", "key: é\n", "key: -a\n", "key: - a\n",
    "key: ?x\n", "key: @x\n", "key: `x\n", "key: %x\n", "a:\n    b: 1\n  c: 2\n", "  a: 1\nb: 2\n",
    `${"k".repeat(1001)}: 1\n`,
  ];
  for (const text of declined) {
    assert.equal(parseSimpleYaml(text), undefined, `declined: ${JSON.stringify(text)}`);
  }
});

test("block structure: nesting, sequences at their key's indent, comments and blank lines", () => {
  const texts = [
    "a:\n  b:\n    c: 1\n  d: [x, \"y\", 'z', 3]\ne: []\nf: [ ]\n",
    "list:\n- a\n- b\nnext: 1\n",
    "list:\n  - a   # trailing\n  -   b\n\n  # a comment at any indent\n      # deeper comment\n  - \"c # not a comment\"\nn:\nm: ~\n",
    "  indented_root: 1\n  other: 2\n",
    "a: 1   \nb:    \n  c: 2\n",
    "section:\n  # only comments here\nother: 1\n",
    "endpoints:\n  - host: a\n    ports: [443]\n    description: \"x\"\n  -   host: b\n      ports: []\nnext:\n- k: 1\n  m:\n    n: 2\n- plain\n",
    "key: a]\nother: a{b}\nthird: ${HOME}/x\n",
  ];
  for (const text of texts) assert.equal(agrees(text), true, text);
  assert.deepStrictEqual(parseSimpleYaml(texts[1]!), { list: ["a", "b"], next: 1 });
  assert.deepStrictEqual(parseSimpleYaml(texts[5]!), { section: null, other: 1 });
});


const SCALARS = [
  "a", "word", "two words", "~", "null", "Null", "nUll", "true", "False", "yes", "12", "-3", "+4", "007", "0o17", "0o19", "0x1f", "0xG",
  "1.5", "1.", ".5", "1e3", "1E+3", "-0", ".inf", ".NaN", "1_0", "10.0.0.0/8", "::1/128", "fd00::/8", "2024-01-01", "a:b", "a: b", "a:",
  "a#b", "a #b", "#a", "a,b", "a]", "[a]", "[a, b]", "[]", "[ ]", "[a,]", "[\"a\", 'b', 3]", "[a, [b]]", "{a: 1}", "{}", "\"q\"", "'q'",
  "\"a # b\"", "'a: b'", "\"a\\\"b\"", "'it''s'", "\"\"", "''", "it's", "-a", "- a", "-1", "?a", "&a", "*a", "!a", "|", ">", "%a", "@a",
  "`a", "${HOME}/x", "**/*.pem", "~/x", "/abs/path", "http://x:80/y", "\"unterminated", "a\"b", "x  # c",
];
const KEYS = ["a", "b", "c", "key", "rate_limits", "bug.add", "x-y", "_u", "null", "True", "1", "\"q\"", "k k", "__proto__", "a"];
/** What policies are made of: half the documents use only these, so both sides of the fast path are exercised. */
const PLAIN_SCALARS = [
  "a", "two words", "~", "null", "true", "False", "12", "-3", "007", "0o17", "0x1f", "1.5", "1e3", "10.0.0.0/8", "2024-01-01",
  "a:b", "a#b", "a,b", "a]", "[a, b]", "[]", "[\"a\", 'b', 3]", "\"q\"", "'q'", "\"a # b\"", "\"\"", "it's", "-1", "${HOME}/x",
  "/abs/path", "http://x:80/y", "x  # c",
];
const PLAIN_KEYS = ["a", "b", "c", "key", "rate_limits", "bug.add", "x-y", "_u", "host", "ports"];

function generate(next: () => number): string {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!;
  const plain = next() < 0.5;
  const scalars = plain ? PLAIN_SCALARS : SCALARS;
  const keys = plain ? PLAIN_KEYS : KEYS;
  const step = pick([2, 2, 4, 3]);
  const lines: string[] = [];
  const comment = (indent: number): void => {
    const r = next();
    if (r < 0.08) lines.push("");
    else if (r < 0.14) lines.push(`${" ".repeat(Math.floor(next() * 6))}# note`);
    else if (r < 0.16) lines.push(" ".repeat(indent + 1));
  };
  const trailing = (): string => (next() < 0.15 ? "  # c" : next() < 0.1 ? "   " : "");
  const mapping = (indent: number, depth: number): void => {
    const count = 1 + Math.floor(next() * 4);
    for (let n = 0; n < count; n++) {
      comment(indent);
      const key = pick(keys);
      const pad = " ".repeat(indent);
      const r = next();
      if (depth < 3 && r < 0.25) {
        lines.push(`${pad}${key}:${trailing()}`);
        mapping(indent + step, depth + 1);
      } else if (r < 0.45) {
        lines.push(`${pad}${key}:${trailing()}`);
        const at = next() < 0.3 ? indent : indent + step;
        const items = Math.floor(next() * 4);
        for (let k = 0; k < items; k++) {
          comment(at);
          const dash = next() < 0.9 ? "- " : "-   ";
          if (next() < 0.25) {
            // A mapping in the entry: its keys at the column after the dash, or (rarely) elsewhere.
            lines.push(`${" ".repeat(at)}${dash}${pick(keys)}: ${pick(scalars)}${trailing()}`);
            const column = at + dash.length + (next() < 0.1 ? 1 : 0);
            if (next() < 0.6) lines.push(`${" ".repeat(column)}${pick(keys)}: ${pick(scalars)}${trailing()}`);
          } else {
            lines.push(`${" ".repeat(at)}${dash}${pick(scalars)}${trailing()}`);
          }
        }
      } else if (r < 0.5) {
        lines.push(`${pad}${key}:${trailing()}`);
      } else {
        lines.push(`${pad}${key}: ${pick(scalars)}${trailing()}`);
      }
    }
  };
  mapping(next() < 0.1 ? 2 : 0, 0);
  if (next() < 0.05) lines.push(pick(["---", "...", "- stray", "  stray: 1", "stray"]));
  return lines.join("\n") + (next() < 0.9 ? "\n" : "");
}

test("on generated documents the fast path agrees with yaml wherever it answers", () => {
  const next = random(0x5eed);
  let answered = 0;
  const total = 6000;
  for (let n = 0; n < total; n++) {
    const text = generate(next);
    try {
      if (agrees(text)) answered++;
    } catch (error) {
      throw new Error(`document ${n}:\n${text}\n${error instanceof Error ? error.message : String(error)}`);
    }
  }
  // The generator mixes in constructs outside the subset; the fast path must still take a fair share.
  assert.ok(answered > total * 0.25, `the fast path answered ${answered} of ${total}`);
  assert.ok(answered < total, "some generated documents fall outside the subset");
});
