import { describe, it, test } from "node:test";
import assert from "node:assert/strict";
import {
  CIRCULAR,
  isSensitiveFlag,
  isSensitiveKey,
  keyWords,
  redact,
  redactString,
  REDACTED,
  TRUNCATED,
  UNSERIALIZABLE,
} from "../../src/security/redaction.js";

void describe("key names", () => {
  void it("splits keys into words across separators and camelCase", () => {
    assert.deepEqual(keyWords("X-Api-Key"), ["x", "api", "key"]);
    assert.deepEqual(keyWords("APIKey"), ["api", "key"]);
    assert.deepEqual(keyWords("clientSecret"), ["client", "secret"]);
    assert.deepEqual(keyWords("aws.access_key-id"), ["aws", "access", "key", "id"]);
    assert.deepEqual(keyWords("__"), []);
  });

  void it("catches secret keys in their usual spellings", () => {
    const sensitive = [
      "password", "Password", "PASSWORD", "user_password", "dbPassword", "dbpassword", "passwd", "passphrase",
      "secret", "client_secret", "clientSecret", "clientsecret", "token", "access_token", "accessToken", "refresh-token",
      "authToken", "auth_token", "authtoken", "api_key", "apikey", "api-key", "apiKey", "APIKey", "X-API-Key",
      "access_key", "aws_access_key_id", "AWS_SECRET_ACCESS_KEY", "authorization", "Authorization",
      "Proxy-Authorization", "cookie", "Set-Cookie", "session", "sessionId", "session_id", "private_key",
      "privateKey", "privatekey", "credential", "credentials", "bearer", "auth", "githubToken", "signing_key",
      "password_hash", "jwt", "ssh_keys",
    ];
    for (const key of sensitive) assert.equal(isSensitiveKey(key), true, key);
  });

  void it("leaves harmless keys that merely look alike", () => {
    const harmless = [
      "author", "authority", "authors", "oauth", "oauth_provider", "tokens_used", "max_tokens", "maxTokens",
      "input_tokens", "token_count", "token_type", "tokenizer", "key", "cache_key", "keys", "primary_key",
      "secretary", "title", "description", "path", "auth_method", "api_key_name", "session_count", "", "_",
      "token_limit", "password_required",
    ];
    for (const key of harmless) assert.equal(isSensitiveKey(key), false, key);
  });

  void it("gives the same answer for long keys that are not cached", () => {
    const long = `${"x".repeat(100)}_password`;
    assert.equal(isSensitiveKey(long), true);
    assert.equal(isSensitiveKey(long), true);
    assert.equal(isSensitiveKey(`${"x".repeat(100)}_title`), false);
  });

  void it("stays correct when the cache is full", () => {
    for (let i = 0; i < 5000; i++) isSensitiveKey(`field_${i}`);
    assert.equal(isSensitiveKey("late_password"), true);
    assert.equal(isSensitiveKey("late_title"), false);
  });
});

void describe("string patterns", () => {
  const cases: [string, string][] = [
    ["Authorization: Bearer abc.def-123", "Authorization: Bearer [REDACTED]"],
    ["Bearer sk-live", "Bearer [REDACTED]"],
    ["curl -H 'Authorization: Basic dXNlcjpwYXNz' x", "curl -H 'Authorization: Basic [REDACTED]' x"],
    ["authorization=abcdef", "authorization=[REDACTED]"],
    ["https://a.b/?access_token=abc123&x=1", "https://a.b/?access_token=[REDACTED]&x=1"],
    ["password=hunter2", "password=[REDACTED]"],
    ["DB_PASSWORD=s3cret", "DB_PASSWORD=[REDACTED]"],
    ["MY_APP_SECRET_KEY=abc", "MY_APP_SECRET_KEY=[REDACTED]"],
    ['{"password":"hunter2"}', '{"password":"[REDACTED]"}'],
    ["api_key: abc123", "api_key: [REDACTED]"],
    ["Set-Cookie: sid=abc; Path=/", "Set-Cookie: [REDACTED]; Path=/"],
    ["postgres://user:pa55@db:5432/x", "postgres://user:[REDACTED]@db:5432/x"],
    ["jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_123 end", "jwt [REDACTED] end"],
    // Glued to other text, and with an empty signature; not a token: one segment, or a short one.
    ["id-eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig end", "[REDACTED] end"],
    ["x_eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0. end", "[REDACTED] end"],
    [`ghp_${"A".repeat(36)}`, "ghp_[REDACTED]"],
    [`github_pat_${"a1".repeat(20)}`, "github_pat_[REDACTED]"],
    ["AKIAIOSFODNN7EXAMPLE", "AKIA[REDACTED]"],
    ["key ASIAIOSFODNN7EXAMPLE.", "key ASIA[REDACTED]."],
    ["xoxb-1234567890-abcdefghij", "xoxb-[REDACTED]"],
    ["sk-proj-abcdefghijklmnopqrstuv", "sk-proj-[REDACTED]"],
    [`glpat-${"x".repeat(20)}`, "glpat-[REDACTED]"],
    [
      "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\nafter",
      "before\n-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----\nafter",
    ],
    ["-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn", "-----BEGIN OPENSSH PRIVATE KEY-----[REDACTED]"],
    ["-----BEGIN PGP PRIVATE KEY BLOCK-----\nx\n-----END PGP PRIVATE KEY BLOCK-----", "-----BEGIN PGP PRIVATE KEY BLOCK-----[REDACTED]-----END PGP PRIVATE KEY BLOCK-----"],
  ];

  void it("replaces only the secret part", () => {
    for (const [input, expected] of cases) {
      const result = redactString(input);
      assert.equal(result.value, expected, input);
      assert.equal(result.redactions, 1, input);
    }
  });

  void it("leaves ordinary text alone", () => {
    const plain = [
      "bearer tokens are nice",
      "Bearer authentication.",
      "max_tokens=100",
      "token_count: 5",
      "author: John",
      "a public certificate: -----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
      "https://example.com/path?q=1",
      "risk-assessment-framework-version-2",
      // Not a token: one segment alone, or segments too short.
      "see eyJhbGciOiJIUzI1NiJ9 alone and eyJ.eyJ.x, file.eyJson.txt",
      "-----BEGIN PRIVATE KEY-----",
      "",
    ];
    for (const input of plain) assert.deepEqual(redactString(input), { value: input, redactions: 0 }, input);
  });

  void it("a URL password ends at the last '@' within 256 characters of it, not at a later one", () => {
    // The rule looks at most 256 characters past an "@" for another one: these pin where that reach ends.
    const host = (n: number) => "h".repeat(n);
    assert.equal(redactString(`a://u:p@${host(256)}@x`).redactions, 0, "another '@' within reach: p is not the password");
    assert.equal(redactString(`a://u:p@${host(257)}@x`).value, `a://u:[REDACTED]@${host(257)}@x`);
    assert.equal(redactString(`a://u:p@q@${host(20)}/x@y`).value, `a://u:[REDACTED]@${host(20)}/x@y`, "a '@' past the path is not the authority's");
  });

  void it("counts every redaction and never redacts twice", () => {
    const text = "password=a token=b ghp_" + "x".repeat(36);
    const once = redactString(text);
    assert.equal(once.redactions, 3);
    assert.equal(once.value, "password=[REDACTED] token=[REDACTED] ghp_[REDACTED]");
    assert.deepEqual(redactString(once.value), { value: once.value, redactions: 0 });
    // A value caught by a specific rule is not counted again by the generic one.
    assert.deepEqual(redactString(`token=ghp_${"x".repeat(36)}`), { value: "token=ghp_[REDACTED]", redactions: 1 });
  });

  void it("review finding: URL passwords without a user or with an '@', quoted values, one-word compound names", () => {
    const cases: Array<[string, string]> = [
      ["redis://:supersecret@localhost:6379/0", "redis://:[REDACTED]@localhost:6379/0"],
      ["postgres://app:p@ss@w0rd@db:5432/app", "postgres://app:[REDACTED]@db:5432/app"],
      ["https://me@example.com:pw1@host/x", "https://me@example.com:[REDACTED]@host/x"],
      ['password="correct horse battery"', 'password="[REDACTED]"'],
      ['{"client_secret": "a\\"b c"}', '{"client_secret": "[REDACTED]"}'],
      ["token: 'two words'", "token: '[REDACTED]'"],
      ["PGPASSWORD=hunter2x psql -h db", "PGPASSWORD=[REDACTED] psql -h db"],
      ["githubtoken=abc123", "githubtoken=[REDACTED]"],
    ];
    for (const [input, expected] of cases) assert.equal(redactString(input).value, expected, input);
    const plain = [
      "http://example.com:8080/a@b",
      "https://user@host:8080/",
      "mail me@x.com:5",
      "passwordless=true",
      "bypass=1",
      "the author=bob",
      "oauth_provider=github",
    ];
    for (const input of plain) assert.deepEqual(redactString(input), { value: input, redactions: 0 }, input);
  });

  void it("after a secret name, a scheme stays and the credential after it is redacted (it was kept when the Basic or Bearer rule passed it over)", () => {
    const cases: Array<[string, string]> = [
      ["--auth=Basic dXNlcjpwYXNz", "--auth=Basic [REDACTED]"],
      ["X-Auth-Token: Bearer abcdef", "X-Auth-Token: Bearer [REDACTED]"],
      ["api_key=token abc123", "api_key=token [REDACTED]"],
      // Caught by the Bearer rule: not counted again.
      [`token: Bearer ${"a".repeat(26)}`, "token: Bearer [REDACTED]"],
      // A scheme's word alone is the value.
      ["password=basic", "password=[REDACTED]"],
      ["password=basically", "password=[REDACTED]"],
    ];
    for (const [input, expected] of cases) assert.deepEqual(redactString(input), { value: expected, redactions: 1 }, input);
  });

  void it("handles large strings in reasonable work (no catastrophic backtracking)", () => {
    // Inputs shaped to hurt backtracking regexes; they must simply complete.
    const inputs = [
      "a_".repeat(50_000),
      "-----BEGIN ".repeat(10_000),
      "Bearer " + "a".repeat(100_000),
      "x".repeat(200_000) + "password",
      ("a://:" + "@".repeat(300)).repeat(1000),
      ("x://" + ":@".repeat(200)).repeat(1000),
      "\u0090".repeat(10_000),
    ];
    for (const input of inputs) assert.equal(typeof redactString(input).value, "string");
  });
});

void describe("whole values", () => {
  void it("redacts by key in nested objects and arrays, and by pattern in any string", () => {
    const input = {
      headers: [{ Authorization: "Bearer sk-live" }, { Accept: "*/*" }],
      query: "GET /?token=abc",
      nested: { deep: { api_key: { a: 1 } } },
      title: "bug",
      n: 5,
    };
    const result = redact(input);
    assert.deepEqual(result.value, {
      headers: [{ Authorization: REDACTED }, { Accept: "*/*" }],
      query: "GET /?token=[REDACTED]",
      nested: { deep: { api_key: REDACTED } },
      title: "bug",
      n: 5,
    });
    assert.equal(result.redactions, 3);
  });

  void it("keeps null and booleans under sensitive keys (they hold no secret) and redacts other types", () => {
    const result = redact({ password: null, secret: false, token: true, api_key: 12345, cookie: ["a"], auth: undefined });
    assert.deepEqual(result.value, { password: null, secret: false, token: true, api_key: REDACTED, cookie: REDACTED, auth: undefined });
    assert.equal(result.redactions, 2);
  });

  void it("never mutates the input", () => {
    const input = { password: "p", list: [{ token: "t" }], text: "password=x" };
    const copy = structuredClone(input);
    const result = redact(input);
    assert.deepEqual(input, copy);
    assert.notEqual(result.value, input);
  });

  void it("handles primitives and non-JSON values", () => {
    assert.deepEqual(redact("password=x"), { value: "password=[REDACTED]", redactions: 1 });
    assert.deepEqual(redact(42), { value: 42, redactions: 0 });
    assert.deepEqual(redact(null), { value: null, redactions: 0 });
    assert.deepEqual(redact(undefined), { value: undefined, redactions: 0 });
    assert.deepEqual(redact({ big: 10n, fn: () => 1, sym: Symbol("s") }).value, { big: "10", fn: UNSERIALIZABLE, sym: UNSERIALIZABLE });
  });

  void it("caps depth iteratively: deep values neither throw nor overflow the stack", () => {
    let deep: unknown = "leaf";
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const result = redact(deep, { maxDepth: 3 });
    assert.deepEqual(result.value, [[[TRUNCATED]]]);
    const full = redact(deep, { maxDepth: 200_000 });
    let node = full.value;
    let depth = 0;
    while (Array.isArray(node)) {
      node = node[0];
      depth++;
    }
    assert.equal(depth, 100_000);
    assert.equal(node, "leaf");
    assert.equal(redact({ a: 1 }, { maxDepth: 0 }).value, TRUNCATED);
    assert.deepEqual(redact({ a: { b: { c: 1 } } }).value, { a: { b: { c: 1 } } });
  });

  void it("replaces cycles instead of looping", () => {
    const cyclic: Record<string, unknown> = { name: "x" };
    cyclic.self = cyclic;
    cyclic.list = [cyclic];
    assert.deepEqual(redact(cyclic).value, { name: "x", self: CIRCULAR, list: [CIRCULAR] });
  });

  void it("redacts secrets found in keys, numbering keys that then read the same", () => {
    const a = `ghp_${"a".repeat(36)}`;
    const b = `ghp_${"b".repeat(36)}`;
    const result = redact({ [a]: 1, [b]: { "password=hunter22": "note", plain: 2 }, title: "ok" });
    assert.deepEqual(result.value, { "ghp_[REDACTED]": 1, "ghp_[REDACTED] (2)": { "password=[REDACTED]": REDACTED, plain: 2 }, title: "ok" });
    assert.equal(result.redactions, 4);
    // Again, with every name now seen once (clean names are remembered, secret ones never): the same answer.
    assert.deepEqual(redact({ [a]: 1, [b]: { "password=hunter22": "note", plain: 2 }, title: "ok" }), result);
  });

  void it("a redacted key never takes the name of another key, whichever comes first", () => {
    const token = `ghp_${"c".repeat(36)}`;
    // A plain key that reads like the redacted one, after it or before it: both values are kept.
    for (const input of [
      { [token]: "what the tool got", "ghp_[REDACTED]": "decoy" },
      { "ghp_[REDACTED]": "decoy", [token]: "what the tool got" },
      { [token]: "what the tool got", "ghp_[REDACTED]": "decoy", "ghp_[REDACTED] (2)": "decoy 2" },
    ]) {
      const result = redact(input).value as Record<string, unknown>;
      assert.equal(Object.keys(result).length, Object.keys(input).length, JSON.stringify(result));
      assert.deepEqual(Object.values(result).sort(), Object.values(input).sort(), JSON.stringify(result));
      assert.equal(result["ghp_[REDACTED]"], "decoy");
      assert.ok(!JSON.stringify(result).includes(token));
    }
  });

  void it("copies a __proto__ key as data, never as a prototype", () => {
    const parsed = JSON.parse('{"__proto__": {"polluted": 1, "password": "p"}, "constructor": {"prototype": "x"}}') as unknown;
    const result = redact(parsed);
    const value = result.value as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(value), Object.prototype);
    assert.ok(Object.hasOwn(value, "__proto__"));
    assert.deepEqual(Object.getOwnPropertyDescriptor(value, "__proto__")?.value, { polluted: 1, password: REDACTED });
    assert.equal((value as { polluted?: unknown }).polluted, undefined);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(JSON.stringify(value), '{"__proto__":{"polluted":1,"password":"[REDACTED]"},"constructor":{"prototype":"x"}}');
    assert.equal(result.redactions, 1);
  });
});

test("review findings: pass/pwd/tokens keys, Basic credentials anywhere, long letter-only bearer tokens", () => {
  const { value } = redact({ db_pass: "p1", MYSQL_PWD: "p2", tokens: ["t1", "t2"], pass_count: 3 });
  assert.deepEqual(value, { db_pass: "[REDACTED]", MYSQL_PWD: "[REDACTED]", tokens: "[REDACTED]", pass_count: 3 });
  assert.doesNotMatch(redactString('["Authorization", "Basic dXNlcjpwYXNzd29yZA=="]').value, /dXNlcjpwYXNzd29yZA/);
  assert.doesNotMatch(redactString("Bearer abcdefghijklmnopqrstuvwxyzABCDEF").value, /abcdefghijklmnop/);
  assert.equal(redactString("basic functionality works").value, "basic functionality works");
  assert.equal(redactString("Bearer tokens are short-lived").value, "Bearer tokens are short-lived");
});

test("review finding: header pairs and name/value objects are redacted by their name", () => {
  const { value } = redact({
    headers: [["Authorization", "Basic dXNlcjpwYXNzd29yZA"], ["Accept", "text/html"]],
    har: [{ name: "Cookie", value: "sid=abc" }, { name: "Accept", value: "*/*" }],
  });
  assert.deepEqual(value, {
    headers: [["Authorization", "[REDACTED]"], ["Accept", "text/html"]],
    har: [{ name: "Cookie", value: "[REDACTED]" }, { name: "Accept", value: "*/*" }],
  });
  // Red-team findings: a name with several values, and the capitalised Name/Value shape.
  const more = redact({ headers: [["password", "x", "y"], ["Accept", "a", "b"]], tags: [{ Name: "api_key", Value: "k-123" }, { Name: "env", Value: "prod" }] });
  assert.deepEqual(more.value, {
    headers: [["password", "[REDACTED]", "[REDACTED]"], ["Accept", "a", "b"]],
    tags: [{ Name: "api_key", Value: "[REDACTED]" }, { Name: "env", Value: "prod" }],
  });
});

void describe("command-line flags", () => {
  void it("a flag is sensitive by its name's words, as a key is; a one-letter flag never is", () => {
    const sensitive = [
      "--password", "--db-password", "--client-secret", "--access-token", "--api-key", "--apiKey", "--auth", "--token",
      "--DB_PASSWORD", "-password", "-pass", "--ssh-key", "--cookie", "--password-file",
    ];
    for (const flag of sensitive) assert.equal(isSensitiveFlag(flag), true, flag);
    const harmless = [
      // -p is a password to mysql, a port to ssh, --parents to mkdir: ambiguous, so left readable.
      "-p", "-P", "-u", "--port", "--author", "--max-tokens", "--token-count", "--auth-type", "--key", "--passwordless",
      // Says there is no password; not alone in its item; not a flag at all.
      "--no-password", "--password=hunter2", "--password ", "password", "---password", "--", "-", "",
    ];
    for (const flag of harmless) assert.equal(isSensitiveFlag(flag), false, flag);
  });

  void it("redacts the item after a sensitive flag, keeping the flag and every other argument", () => {
    const input = { command: "mysql", args: ["-u", "root", "--password", "hunter2", "-h", "db"] };
    const copy = structuredClone(input);
    const result = redact(input);
    assert.deepEqual(result, { value: { command: "mysql", args: ["-u", "root", "--password", REDACTED, "-h", "db"] }, redactions: 1 });
    assert.deepEqual(input, copy, "the input is not mutated");
    const cases: Array<[unknown[], unknown[], number]> = [
      [["--api-key", "xyz", "--auth", "Basic abc", "--db-password", "p"], ["--api-key", REDACTED, "--auth", REDACTED, "--db-password", REDACTED], 3],
      [["push", "--token", `ghp_${"t".repeat(36)}`], ["push", "--token", REDACTED], 1],
      // A first item with a dash is a flag, not a header name: what follows its value stays readable.
      [["--password", "hunter2", "--host", "db"], ["--password", REDACTED, "--host", "db"], 1],
      [["--password=hunter2", "--host", "db"], ["--password=[REDACTED]", "--host", "db"], 1],
      // Ambiguous, so not redacted (documented): -p may be a port.
      [["-p", "secret", "-p", "2222"], ["-p", "secret", "-p", "2222"], 0],
      // The flag last: nothing to redact.
      [["-h", "db", "--password"], ["-h", "db", "--password"], 0],
      // A long option in the value's place: the value was optional (`mysql --password` prompts).
      [["--password", "--host", "db"], ["--password", "--host", "db"], 0],
      [["--password", "--ssl-mode=required", "db"], ["--password", "--ssl-mode=required", "db"], 0],
      // A sensitive flag in the value's place is a flag, whose own value is redacted.
      [["--password", "--token", "t"], ["--password", "--token", REDACTED], 1],
      // Anything else with a dash may be the secret (a password may start with one).
      [["--password", "-h", "db"], ["--password", REDACTED, "db"], 1],
      [["--password", "-Xy9_k"], ["--password", REDACTED], 1],
      [["--no-password", "db"], ["--no-password", "db"], 0],
      // Values that are not strings, as under a sensitive key: null and booleans hold no secret.
      [["--token", 12345, "--token", null, "--token", true], ["--token", REDACTED, "--token", null, "--token", true], 1],
      [["--token", { a: "x" }, "--token", ["y"]], ["--token", REDACTED, "--token", REDACTED], 2],
      [[1, "--token"], [1, "--token"], 0],
      // Nested arrays and objects each read their own items.
      [[["-v", "--password", "x"], { args: ["--api-key", "k"] }, "y"], [["-v", "--password", REDACTED], { args: ["--api-key", REDACTED] }, "y"], 2],
      // Only the next item, never across arrays.
      [[["-v", "--password"], "x"], [["-v", "--password"], "x"], 0],
    ];
    for (const [args, expected, redactions] of cases) assert.deepEqual(redact(args), { value: expected, redactions }, JSON.stringify(args));
  });

  void it("the value is replaced whole, not visited, so the depth cap neither hides nor reveals it", () => {
    assert.deepEqual(redact(["--token", ["x"]], { maxDepth: 1 }).value, ["--token", REDACTED]);
    assert.deepEqual(redact(["-v", ["--token", "x"]], { maxDepth: 1 }).value, ["-v", TRUNCATED]);
    assert.deepEqual(redact({ a: { b: ["-v", "--token", "x"] } }, { maxDepth: 3 }).value, { a: { b: ["-v", "--token", REDACTED] } });
  });
});

// Redaction runs on every argument of every call, refused ones included, before anything else
// can answer: a pattern that backtracks without bound on some text freezes the whole server.
// Each input is a rule's trigger followed by a long run of one character, with and without an
// ending that completes a match. Linear rules take milliseconds for all of them; the timeout
// is there to fail (not hang) the suite if a rule turns super-linear again.
test("review finding: no rule backtracks without bound (a trigger word, then 20,000 of one character; a trigger repeated)", { timeout: 60_000 }, () => {
  const triggers = [
    "Authorization:", "authorization=\"", "Authorization: Basic", "Bearer", "bearer ", "basic ", "eyJ", "eyJabcd.eyJ", "ghp_", "AKIA",
    "a://", "a://:", "x://u:", "password=", "password=\"", "api_key: '", "PGPASSWORD", "-----BEGIN PRIVATE KEY-----", "a_b_c_", "session",
    "token: Basic", "auth=bearer ",
  ];
  const fillers = [" ", "\t", "a", ".", "=", "@", ":", "\"", "'", "_", "a_", "\\\"", "A1", "-", "/"];
  for (const trigger of triggers) {
    for (const filler of fillers) {
      for (const end of ["", "!", " x"]) {
        const text = trigger + filler.repeat(Math.ceil(20_000 / filler.length)) + end;
        const { value } = redactString(text);
        assert.ok(value.length > 0);
      }
    }
    // The trigger itself, over and over, joined by a separator: a rule that may start at every
    // repeat must not rescan the rest of the text from each ("eyJ-" repeated was quadratic, 11 s
    // on 160,000 characters). 400,000 characters: milliseconds when linear, minutes when not.
    for (const separator of ["-", "_", ".", " ", "a"]) {
      assert.ok(redactString(`${trigger}${separator}`.repeat(Math.ceil(400_000 / (trigger.length + separator.length)))).value.length > 0);
    }
  }
});
