/**
 * The deny scanner's shortcut (each rule's plain names, armed along a walk) against the path
 * guard's own judgement: over generated rules and trees, a walk that trusts the scanner hides
 * and protects exactly what `sandboxRuleFor` refuses.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { compilePathPolicy, sandboxRuleFor, type CompiledPathPolicy } from "../../src/security/path-guard.js";
import { DenyScanner, type ScanDir, type ScanVerdict } from "../../src/security/deny-scan.js";
import { DEFAULT_DENIED_PATHS, DEFAULT_WRITE_DENIED_PATHS } from "../../src/security/policy/defaults.js";
import { prng } from "../helpers/prng.js";

/** A policy of deny rules only; no path is looked up on disk (realpath returns it unchanged). */
function policyOf(denied: readonly string[], writeDenied: readonly string[]): CompiledPathPolicy {
  return compilePathPolicy(
    { allowed_paths: ["/r/**"], denied_paths: [...denied], write_denied_paths: [...writeDenied], max_read_bytes: 1, max_write_bytes: 1 },
    { realpathSync: (p) => p },
  );
}

function namesOf(rule: string): readonly string[] {
  return policyOf([rule], []).deny[0]!.names;
}

// Names that rules use, in other cases, and readings past ASCII that fold onto them.
const NAMES = [
  ".git", ".GIT", "config", "Config", "hooks", ".config", "Code", "code", "User", "secrets", "SECRETS", ".env", ".env.local", ".ssh",
  "id.pem", "ID.PEM", "site-packages", "x.pth", "a", "b", "c", "src", "ſecrets", ".ßh", ".ssh", "Straße", "strasse", "\u212Aey.pem", "caf\u00e9", "cafe\u0301",
  "Application Support", "Library", "x y", "a.b", "x", "y",
];
const SEGMENTS = [
  "**", "*", "*.pem", "*.PEM", "?it", ".git", "config", "secrets", "{a,b}", "[abc]", "[!a]", "a*", "@(a|b)", "+(c)", "!(x)", "x\\*y", "c",
  ".config", "Code", "User", "straße", "\u017Fecrets", ".env*", "Library", "Application Support", "src", "a.b",
  // Groups and alternations holding a slash.
  "{x/config/c,y}", "@(c|x/secrets/y)", "[a/hooks/b]", "x|secrets/c",
];

function generatedRule(random: () => number): string {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const parts: string[] = [];
  const length = 1 + Math.floor(random() * 4);
  for (let i = 0; i < length; i++) parts.push(pick(SEGMENTS));
  const body = parts.join("/");
  const shape = random();
  if (shape < 0.15) return `/r/${body}`;
  if (shape < 0.3) return `/r/**/${body}`;
  return random() < 0.5 ? `**/${body}` : body;
}

/** A path likely to meet `rule`: its plain segments (case changed at times), other names for the rest. */
function pathFor(rule: string, random: () => number): string[] {
  const pick = (): string => NAMES[Math.floor(random() * NAMES.length)]!;
  const parts: string[] = [];
  for (const segment of rule.replace(/^\//, "").split("/")) {
    if (segment === "**") for (let n = Math.floor(random() * 3); n > 0; n--) parts.push(pick());
    else if (/^[A-Za-z0-9._ -]+$/.test(segment)) parts.push(random() < 0.3 ? segment.toUpperCase() : segment);
    else if (segment === "*.pem" || segment === "*.PEM") parts.push(`k${Math.floor(random() * 9)}.pem`);
    else parts.push(random() < 0.5 ? pick() : "a");
  }
  if (parts[0] !== "r") parts.unshift("r");
  return parts;
}

/** Every path of a generated tree below `/r`, parents first. */
function generatedTree(random: () => number, root: string): string[][] {
  const paths: string[][] = [];
  const grow = (parent: string[], depth: number): void => {
    const children = 1 + Math.floor(random() * 4);
    for (let i = 0; i < children; i++) {
      const child = [...parent, NAMES[Math.floor(random() * NAMES.length)]!];
      paths.push(child);
      if (depth < 5 && random() < 0.6) grow(child, depth + 1);
    }
  };
  grow(root.split("/").filter((part) => part !== ""), 0);
  return paths;
}

/**
 * Walks `tree` as the sandbox does: what is denied is not gone into; below what is write-denied
 * only denied counts. Returns each reached entry's verdict from the scanner and from the guard.
 */
function walkBoth(compiled: CompiledPathPolicy, root: string, tree: string[][]): Array<{ path: string; scanner: ScanVerdict; guard: ScanVerdict }> {
  const scanner = new DenyScanner(compiled);
  const dirs = new Map<string, { dir: ScanDir; withWriteDeny: boolean }>([[root, { dir: scanner.root(root), withWriteDeny: true }]]);
  const seen: Array<{ path: string; scanner: ScanVerdict; guard: ScanVerdict }> = [];
  for (const parts of tree) {
    const full = `/${parts.join("/")}`;
    const parentPath = `/${parts.slice(0, -1).join("/")}`;
    const parent = dirs.get(parentPath);
    if (parent === undefined || dirs.has(full)) continue; // under a denied entry, or met twice
    const name = parts[parts.length - 1]!;
    const byScanner = scanner.judge(parent.dir, name, parent.withWriteDeny);
    const guardSays = sandboxRuleFor(compiled, full);
    const byGuard = guardSays === "write-denied" && !parent.withWriteDeny ? undefined : guardSays;
    seen.push({ path: full, scanner: byScanner, guard: byGuard });
    if (byGuard !== "denied") dirs.set(full, { dir: scanner.descend(parent.dir, name), withWriteDeny: parent.withWriteDeny && byGuard === undefined });
  }
  return seen;
}

void describe("deny rules' plain names", () => {
  void test("are the literal segments, in lower case; a segment a glob could read otherwise is left out", () => {
    assert.deepEqual(namesOf("**/.config/Git/**"), [".config", "git"]);
    assert.deepEqual(namesOf("**/*.pem"), []);
    assert.deepEqual(namesOf("secrets/**"), ["secrets"]);
    assert.deepEqual(namesOf("/home/u/Work/x.txt"), ["home", "u", "work", "x.txt"]);
    assert.deepEqual(namesOf("**/Library/Application Support/Claude/**"), ["library", "application support", "claude"]);
    for (const rule of ["**/{a,b}/c", "**/[ab]/c", "**/a\\*b/c", "**/x?/c", "**/ß/c", "**/./c", "**/{x/y,z}/c", "**/{x/y/w,z}/c"]) {
      assert.deepEqual(namesOf(rule), ["c"], rule);
    }
  });

  void test("a group, class or quoted string may hold a slash, and a | is an alternation anywhere: what they may skip is no name", () => {
    // Each rule matches the path beside it, which lacks the plain segment inside the group.
    const cases: Array<[string, string, readonly string[]]> = [
      ["**/{.config/gh/hosts.yml,.netrc}", "r/app/.netrc", []],
      ["**/@(.netrc|.config/gh/hosts.yml)", "r/app/.netrc", []],
      ["**/[a/hooks/b]", "r/app/k", []],
      ["**/(x|a/secrets/b)", "r/app/x", []],
      ['**/{x,"}"/secrets/q}', "r/app/x", []],
      ["**/x|y/secrets", "r/app/x", []],
      ["**/secrets/a|**/b", "r/b", []],
      ["/r/{,q/secrets/}c", "r/c", ["r"]],
      ["**/{a,b/secrets/c}/d", "r/a/d", ["d"]],
    ];
    for (const [rule, matched, names] of cases) {
      const compiled = policyOf([rule], []);
      assert.equal(compiled.deny[0]!.test(matched, undefined), true, `${rule} no longer matches ${matched}`);
      assert.deepEqual(compiled.deny[0]!.names, names, rule);
      const parts = matched.split("/");
      const tree = parts.slice(1).map((_, i) => parts.slice(0, i + 2));
      for (const seen of walkBoth(compiled, "/r", tree)) assert.equal(seen.scanner, seen.guard, `${rule}: ${seen.path}`);
    }
  });

  void test("an absolute rule through a symbolic link keeps only the names both spellings share", () => {
    const compiled = compilePathPolicy(
      { allowed_paths: ["/r/**"], denied_paths: ["/link/app/.env"], write_denied_paths: [], max_read_bytes: 1, max_write_bytes: 1 },
      { realpathSync: (p) => p.replace(/^\/link\/app(?=\/|$)/, "/real/place/app") },
    );
    assert.deepEqual(compiled.deny[0]!.names, ["app", ".env"]);
  });

  void test("every ASCII path a rule matches holds its names as components (5,000 generated rules, 4 paths each)", () => {
    const random = prng(7);
    let matched = 0;
    for (let i = 0; i < 5000; i++) {
      const rule = generatedRule(random);
      const deny = policyOf([rule], []).deny[0]!;
      if (deny.problem() !== undefined) continue;
      for (let n = 0; n < 4; n++) {
        const parts = pathFor(rule, random);
        const relative = parts.join("/");
        if (/[^\x20-\x7e]/.test(relative) || !deny.test(relative, undefined)) continue;
        matched++;
        const components = new Set(parts.map((part) => part.toLowerCase()));
        for (const name of deny.names) assert.ok(components.has(name), `${rule} matched /${relative} without its name ${name}`);
      }
    }
    assert.ok(matched > 1000, `only ${matched} matches: the generator no longer exercises the rules`);
  });
});

void describe("the deny scanner", () => {
  void test("judges each entry of a walk as the path guard does, with the default lists", () => {
    const compiled = policyOf(DEFAULT_DENIED_PATHS, DEFAULT_WRITE_DENIED_PATHS);
    const tree = [
      ["r", "ws", "packages"],
      ["r", "ws", "packages", "api"],
      ["r", "ws", "packages", "api", ".env"],
      ["r", "ws", "packages", "api", ".git"],
      ["r", "ws", "packages", "api", ".git", "config"],
      ["r", "ws", "packages", "api", ".git", "HEAD"],
      ["r", "ws", ".config"],
      ["r", "ws", ".config", "Code"],
      ["r", "ws", ".config", "Code", "User"],
      ["r", "ws", ".venv"],
      ["r", "ws", ".venv", "lib"],
      ["r", "ws", ".venv", "lib", "site-packages"],
      ["r", "ws", ".venv", "lib", "site-packages", "evil.pth"],
      ["r", "ws", ".venv", "lib", "site-packages", "module.py"],
      ["r", "ws", "certs"],
      ["r", "ws", "certs", "Server.PEM"],
      ["r", "ws", "ſecrets"],
    ];
    const verdicts = new Map(walkBoth(compiled, "/r/ws", tree).map((seen) => [seen.path, seen]));
    for (const seen of verdicts.values()) assert.equal(seen.scanner, seen.guard, seen.path);
    const expect = (p: string, verdict: ScanVerdict): void => assert.equal(verdicts.get(p)?.scanner, verdict, p);
    expect("/r/ws/packages/api/.env", "denied");
    expect("/r/ws/packages/api/.git", "write-denied");
    expect("/r/ws/packages/api/.git/config", "denied");
    expect("/r/ws/packages/api/.git/HEAD", undefined); // read-only with its directory already
    expect("/r/ws/.config/Code/User", "write-denied");
    expect("/r/ws/.venv/lib/site-packages/evil.pth", "write-denied");
    expect("/r/ws/.venv/lib/site-packages/module.py", undefined);
    expect("/r/ws/certs/Server.PEM", "denied");
    expect("/r/ws/ſecrets", "denied");
    expect("/r/ws/packages", undefined);
  });

  void test("below a directory past ASCII, tests each entry's own path in the readings the guard uses, which NFC decides", () => {
    // The Kelvin sign is K in NFC: "/r/s\u212A" is read as written only, "/r/s\u212A/café" in every reading, prefixes included.
    const cases: Array<[readonly string[], readonly string[], string]> = [
      [[], ["**/ſecrets"], "/r/\u212Aey.pem/secrets"],
      [["**/ſk"], [], "/r/s\u212A/café"],
      [["**/ſk/x"], [], "/r/café/s\u212A/x"],
      [["**/.ssh/**"], ["**/straße/*"], "/r/café/.ſſh/id"],
      [[], ["**/STRASSE/**"], "/r/café/straße/x/y"],
    ];
    for (const [denied, writeDenied, target] of cases) {
      const compiled = policyOf(denied, writeDenied);
      const parts = target.split("/").filter((part) => part !== "");
      const tree = parts.slice(1).map((_, i) => parts.slice(0, i + 2));
      const seen = walkBoth(compiled, "/r", tree);
      for (const entry of seen) assert.equal(entry.scanner, entry.guard, `${JSON.stringify([denied, writeDenied])}: ${entry.path}`);
    }
  });

  void test("agrees with the path guard on every entry of generated trees and rule sets (1,000 walks)", () => {
    const random = prng(2026);
    let compared = 0;
    let judged = 0;
    for (let walk = 0; walk < 1000; walk++) {
      const rules = Array.from({ length: 1 + Math.floor(random() * 6) }, () => generatedRule(random));
      const split = Math.floor(random() * (rules.length + 1));
      const compiled = policyOf(rules.slice(0, split), rules.slice(split));
      if ([...compiled.deny, ...compiled.writeDeny].some((rule) => rule.problem() !== undefined)) continue;
      const root = random() < 0.8 ? "/r" : "/r/caf\u00e9";
      if (sandboxRuleFor(compiled, root) !== undefined) continue;
      for (const seen of walkBoth(compiled, root, generatedTree(random, root))) {
        compared++;
        if (seen.guard !== undefined) judged++;
        assert.equal(seen.scanner, seen.guard, `rules ${JSON.stringify(rules)} (${split} denied), ${JSON.stringify(seen.path)}`);
      }
    }
    assert.ok(compared > 6000 && judged > 600, `${compared} entries, ${judged} refused: the generator no longer exercises the scanner`);
  });
});
