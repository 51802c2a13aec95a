/**
 * Redaction of secrets before anything reaches a log or an audit entry.
 *
 * Two nets: by key name (the whole value under `password`, `apiKey`, `Set-Cookie`, ...)
 * and by value pattern inside any string (PEM private keys, `Bearer` tokens, JWTs,
 * well-known token formats, `password=...`). Key names are split into words, so
 * `author`, `oauth_provider` or `max_tokens` stay readable while `auth_token` does not.
 * Flags are named like keys: in an array, the item after a sensitive flag (`--password`,
 * `--api-key`) is its value, and is replaced whole while the flag stays.
 * The input is never mutated; a new value is returned with the number of redactions.
 */

export const REDACTED = "[REDACTED]";
/** Replaces containers nested deeper than the depth cap. */
export const TRUNCATED = "[TRUNCATED]";
/** Replaces an object or array met a second time (a cycle or a shared reference). */
export const CIRCULAR = "[CIRCULAR]";
/** Replaces values JSON cannot hold (functions, symbols). */
export const UNSERIALIZABLE = "[UNSERIALIZABLE]";
export const NON_FINITE = "[NON-FINITE]";

export const DEFAULT_REDACTION_DEPTH = 64;

export interface Redaction<T> {
  value: T;
  redactions: number;
}

export interface RedactOptions {
  /** Containers nested deeper than this become "[TRUNCATED]" (default 64; the root is depth 1). */
  maxDepth?: number;
}

// ---------------------------------------------------------------------------
// Key names
// ---------------------------------------------------------------------------

/** Words that make a key sensitive wherever they appear in it. */
const SENSITIVE_WORDS = new Set([
  "password",
  "passwords",
  "passwd",
  "passphrase",
  "secret",
  "secrets",
  "token",
  "pass",
  "pwd",
  "auth",
  "authorization",
  "cookie",
  "cookies",
  "credential",
  "credentials",
  "creds",
  "bearer",
  "session",
  "sessionid",
  "jwt",
  // Compounds written as one word.
  "apikey",
  "apikeys",
  "accesskey",
  "privatekey",
  "secretkey",
  "clientsecret",
  "authtoken",
]);

/** One-word compounds such as `dbpassword` or `githubtoken` end with one of these. */
const SENSITIVE_SUFFIXES = ["password", "passwd", "secret", "token", "apikey", "accesskey", "privatekey", "credentials"];

/** `key` is sensitive only after one of these words (`api_key`, `privateKey`; not `cache_key`). */
const KEY_QUALIFIERS = new Set(["api", "access", "private", "secret", "signing", "encryption", "master", "ssh", "client", "session", "license"]);

/** A key whose last word is one of these describes a secret without holding it (`token_count`, `auth_method`). */
const NEUTRAL_LAST_WORDS = new Set([
  "count",
  "counts",
  "type",
  "types",
  "kind",
  "limit",
  "limits",
  "length",
  "len",
  "size",
  "max",
  "min",
  "usage",
  "used",
  "budget",
  "ttl",
  "expiry",
  "expires",
  "expiration",
  "method",
  "methods",
  "scheme",
  "mode",
  "enabled",
  "required",
  "provider",
  "url",
  "uri",
  "endpoint",
  "name",
]);

const KEY_CACHE_LIMIT = 4096;
const KEY_CACHE_MAX_KEY_LENGTH = 64;
const keyCache = new Map<string, boolean>();

/** Splits `X-Api-Key`, `apiKey`, `APIKey`, `api_key`, `api.key` into lower-case words. */
export function keyWords(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((word) => word.length > 0);
}

/** Whether the value under this key name is a secret. */
export function isSensitiveKey(key: string): boolean {
  const cached = keyCache.get(key);
  if (cached !== undefined) return cached;
  const result = classifyKey(key);
  // Bounded: hostile key names cannot grow the cache without limit.
  if (key.length <= KEY_CACHE_MAX_KEY_LENGTH && keyCache.size < KEY_CACHE_LIMIT) keyCache.set(key, result);
  return result;
}

function classifyKey(key: string): boolean {
  const words = keyWords(key);
  // A list of tokens; but `input_tokens`, `max_tokens` count them and stay readable.
  if (words.length === 1 && words[0] === "tokens") return true;
  const last = words[words.length - 1];
  if (last === undefined) return false;
  const sensitiveLast = isSensitiveWord(last) || (isKeyWord(last) && KEY_QUALIFIERS.has(words[words.length - 2] ?? ""));
  if (!sensitiveLast && NEUTRAL_LAST_WORDS.has(last)) return false;
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (isSensitiveWord(word)) return true;
    if (isKeyWord(word) && i > 0 && KEY_QUALIFIERS.has(words[i - 1]!)) return true;
  }
  return false;
}

function isSensitiveWord(word: string): boolean {
  return SENSITIVE_WORDS.has(word) || SENSITIVE_SUFFIXES.some((suffix) => word.length > suffix.length && word.endsWith(suffix));
}

function isKeyWord(word: string): boolean {
  return word === "key" || word === "keys";
}

// ---------------------------------------------------------------------------
// Command-line flags
// ---------------------------------------------------------------------------

/** A flag alone in its item: one or two dashes and a name of two or more characters, no `=` (`--password=x` is a value pattern's). */
const FLAG = /^--?([A-Za-z][A-Za-z0-9_.-]+)$/;

/**
 * A long option in the place of a flag's value (`--password --host db`: the value was optional):
 * lower-case words joined by dashes, as options are spelled and random tokens almost never are.
 */
const LONG_OPTION = /^--[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?:=|$)/;

/**
 * Whether this argument is a flag whose value, the next argument, is a secret: `--password`,
 * `--db-password`, `--api-key`, `-pass`, judged by their name's words as key names are. A
 * one-letter flag never is: `-p` is a password to mysql but a port to ssh and `--parents` to
 * mkdir. `--no-password` says there is none, and takes no value.
 */
export function isSensitiveFlag(arg: string): boolean {
  const name = FLAG.exec(arg)?.[1];
  return name !== undefined && isSensitiveKey(name) && keyWords(name)[0] !== "no";
}

/**
 * Whether `items[index]` is the value of a sensitive flag just before it (`["--password", "hunter2"]`,
 * index 1). A flag in the value's place is not one, nor null or a boolean (they hold no secret).
 */
export function isFlagValueAt(items: readonly unknown[], index: number): boolean {
  const flag = items[index - 1];
  if (index < 1 || index >= items.length || typeof flag !== "string" || !isSensitiveFlag(flag)) return false;
  const item = items[index];
  if (typeof item === "string") return !LONG_OPTION.test(item) && !isSensitiveFlag(item);
  return item !== null && item !== undefined && typeof item !== "boolean";
}

// ---------------------------------------------------------------------------
// Value patterns
// ---------------------------------------------------------------------------

interface ValueRule {
  /** Global regex; group 1 is kept before the secret, group 2 is the secret, group 3 is kept after it. */
  pattern: RegExp;
  /** Optional extra test on the secret (group 2) for patterns that would catch ordinary words. */
  accept?: (secret: string) => boolean;
}

const SECRET_WORDS =
  "password|passwd|passphrase|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|secret[_-]?key|client[_-]?secret|session(?:[_-]?id)?|credentials?|cookie|auth";

/**
 * A name that says a secret follows: up to three words before the secret word, which may
 * also end a one-word compound (`PGPASSWORD`, `githubtoken`, `MYSQL_PWD`).
 */
const SECRET_NAME = `(?<![A-Za-z0-9])(?:[A-Za-z0-9]+[_.-]){0,3}[A-Za-z0-9]*(?:${SECRET_WORDS})`;

const VALUE_RULES: readonly ValueRule[] = [
  // PEM private key blocks (an unterminated one is redacted to the end of the text).
  {
    pattern: /(-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)([\s\S]*?)(-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|$)/g,
  },
  // `Authorization: Basic ...`, `authorization=...`: the credential after the scheme. No two runs
  // of blanks may meet with only optional parts between them: on a line of blanks that ends in no
  // credential, every split between them is tried (three adjacent runs took 12 s on 2,000 blanks).
  { pattern: /(\bauthorization["']?[ \t]*[:=][ \t]*(?:["'][ \t]*)?(?:(?:basic|bearer|token|digest)[ \t]+)?)([^\s"',;]+)()/gi },
  // `Bearer <token>`: a long one always; a short one must hold a digit or punctuation, so "Bearer tokens" stays.
  {
    pattern: /(\bbearer[ \t]+)([A-Za-z0-9._~+/-]*[A-Za-z0-9_~+/-]=*)()/gi,
    accept: (secret) => secret.length >= 16 || (secret.length >= 6 && /[^A-Za-z]/.test(secret)),
  },
  // `Basic <base64 user:password>` wherever it appears (a header pair, a dump), not only after "Authorization".
  {
    pattern: /(\bbasic[ \t]+)([A-Za-z0-9+/]{8,}={0,2})()(?![A-Za-z0-9+/=])/gi,
    accept: (secret) => /[0-9+/=]/.test(secret),
  },
  // JSON Web Tokens: header and payload are base64url JSON objects ("eyJ"). The whole run of
  // token characters around an "eyJ" is looked at once, and redacted whole when a token is in it
  // (also one glued to other text, `id-eyJ…`): a regex started at every "eyJ" rescanned the rest
  // of a run like "eyJ-eyJ-…" from each (quadratic: 160,000 characters took 11 s).
  { pattern: /()((?<![A-Za-z0-9_.-])[A-Za-z0-9_.-]*eyJ[A-Za-z0-9_.-]*)()/g, accept: holdsJwt },
  // Tokens with a well-known prefix (GitHub, Slack, GitLab, npm, OpenAI/Anthropic, Stripe, Google): the prefix stays.
  { pattern: /\b(gh[pousr]_|github_pat_|xox[abposr]-|glpat-|npm_|sk-(?:proj-|ant-)?|[sr]k_live_|AIza)([A-Za-z0-9_-]{16,})()/g },
  // AWS access key ids.
  { pattern: /\b(AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)([A-Z0-9]{16})()\b/g },
  // Passwords in URLs: scheme://user:password@host, also with no user (`redis://:password@host`) and
  // with an unescaped "@" in the user or the password: as URL parsers do, the userinfo ends at the
  // last "@" of the authority (no other "@" follows before the path). The lookahead stops at
  // the first "@" it meets: written with a run that may cross "@"s, it would rescan up to 256
  // characters for every "@" the password group backtracks over (a line of "@"s after
  // `a://:` cost ~35x the other rules together).
  { pattern: /(\b[A-Za-z][A-Za-z0-9+.-]{0,20}:\/\/[^\s:/?#]{0,256}:)([^\s/?#]{1,256})(@)(?![^\s/?#@]{0,256}@)/g },
  // `password="two words"`, `"api_key": "a\"b"`: a quoted value is the secret up to its closing quote.
  { pattern: new RegExp(`(${SECRET_NAME}["']?[ \\t]*[:=][ \\t]*")((?:[^"\\\\\\n]|\\\\.){1,256})(")`, "gi") },
  { pattern: new RegExp(`(${SECRET_NAME}["']?[ \\t]*[:=][ \\t]*')((?:[^'\\\\\\n]|\\\\.){1,256})(')`, "gi") },
  // `password=...`, `api_key: ...`, `PGPASSWORD=...` in query strings, configs, command lines and dumps.
  // A scheme (`--auth=Basic dXNl…`, `X-Auth-Token: Bearer abc`) stays, as after "Authorization": the
  // credential after it is the secret, and the rules above pass over one without a digit or short.
  { pattern: new RegExp(`(${SECRET_NAME}["']?[ \\t]*[:=][ \\t]*["']?(?:(?:basic|bearer|token|digest)[ \\t]+)?)([^\\s"'&;,<>]+)()`, "gi") },
];

/**
 * Whether a run of base64url characters and dots holds a JSON Web Token: a segment ending in
 * "eyJ" and 4 more characters (the header), the next segment "eyJ" and 4 more (the payload), and
 * a dot after it (the signature may be empty). One pass over the segments.
 */
function holdsJwt(run: string): boolean {
  const segments = run.split(".");
  for (let i = 0; i + 2 < segments.length; i++) {
    const header = segments[i]!;
    const at = header.indexOf("eyJ");
    if (at >= 0 && header.length - at >= 7 && segments[i + 1]!.startsWith("eyJ") && segments[i + 1]!.length >= 7) return true;
  }
  return false;
}

/** A cheap first look: strings without any of these cannot match a rule. */
const MAYBE_SECRET = new RegExp(
  `-----BEGIN|bearer|basic|eyJ|gh[pousr]_|github_pat_|xox[abposr]-|glpat-|npm_|sk-|[sr]k_live_|AIza|AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|://|${SECRET_WORDS}`,
  "i",
);

/** Redacts secret-looking parts of one string. */
export function redactString(text: string): Redaction<string> {
  if (!MAYBE_SECRET.test(text)) return { value: text, redactions: 0 };
  let count = 0;
  let value = text;
  for (const rule of VALUE_RULES) {
    rule.pattern.lastIndex = 0;
    value = value.replace(rule.pattern, (match: string, before: string, secret: string, after: string) => {
      // Already redacted (by an earlier rule or an earlier pass), or an ordinary word.
      if (secret.length === 0 || secret.includes(REDACTED) || (rule.accept !== undefined && !rule.accept(secret))) return match;
      count++;
      return `${before}${REDACTED}${after}`;
    });
  }
  return { value, redactions: count };
}

/**
 * Property names whose scan found nothing: objects of one shape bring the same names on
 * every call, and a name holding a secret word (`session_token`) runs every value rule.
 * Only clean names are kept, so the cache never holds a secret; bounded like keyCache.
 */
const cleanKeys = new Set<string>();

function redactKey(key: string): Redaction<string> {
  if (cleanKeys.has(key)) return { value: key, redactions: 0 };
  const scanned = redactString(key);
  if (scanned.redactions === 0 && key.length <= KEY_CACHE_MAX_KEY_LENGTH && cleanKeys.size < KEY_CACHE_LIMIT) cleanKeys.add(key);
  return scanned;
}

// ---------------------------------------------------------------------------
// Whole values
// ---------------------------------------------------------------------------

type Container = Record<string, unknown> | unknown[];

interface Frame {
  source: Container;
  target: Container;
  depth: number;
}

/**
 * Returns a redacted copy of `value` (iteratively: deep values cannot overflow the
 * stack). A sensitive key's value is replaced whole, unless it is null or a boolean,
 * which hold no secret; every string, keys included, is scanned for secret patterns.
 */
export function redact<T extends string | number | boolean | null>(value: T, options?: RedactOptions): Redaction<T | string>;
export function redact(value: unknown, options?: RedactOptions): Redaction<unknown>;
export function redact(value: unknown, options: RedactOptions = {}): Redaction<unknown> {
  const maxDepth = options.maxDepth ?? DEFAULT_REDACTION_DEPTH;
  let count = 0;
  const seen = new Set<object>();
  const stack: Frame[] = [];

  const leaf = (item: unknown): unknown => {
    switch (typeof item) {
      case "string": {
        const result = redactString(item);
        count += result.redactions;
        return result.value;
      }
      case "bigint":
        return item.toString();
      case "function":
      case "symbol":
        return UNSERIALIZABLE;
      case "number":
        // JSON cannot hold Infinity/NaN (1e999 parses to Infinity): keep the entry recordable.
        if (Number.isFinite(item)) return item;
        count += 1;
        return NON_FINITE;
      case "boolean":
      case "undefined":
      case "object":
        return item;
    }
  };

  const visit = (item: unknown, depth: number): unknown => {
    if (item === null || typeof item !== "object") return leaf(item);
    if (depth > maxDepth) return TRUNCATED;
    if (seen.has(item)) return CIRCULAR;
    seen.add(item);
    const target: Container = Array.isArray(item) ? [] : {};
    stack.push({ source: item as Container, target, depth });
    return target;
  };

  const root = visit(value, 1);
  while (stack.length > 0) {
    const { source, target, depth } = stack.pop()!;
    if (Array.isArray(source)) {
      const out = target as unknown[];
      // A header pair `["Authorization", "Basic …"]` (or a name with several values): the name says what the values are.
      // A first item with a leading dash is a command line's flag, not a name: its value alone is the secret (below).
      const first = source[0];
      if (source.length >= 2 && typeof first === "string" && !first.startsWith("-") && isSensitiveKey(first) && source.slice(1).every((value) => typeof value === "string")) {
        count++;
        out.push(leaf(first), ...source.slice(1).map(() => REDACTED));
        continue;
      }
      for (let i = 0; i < source.length; i++) {
        out.push(visit(source[i], depth + 1));
        // An argument vector `["-u", "root", "--password", "hunter2"]`: the flag stays, so the
        // record shows what was passed; its value is replaced whole, as a sensitive key's is.
        if (isFlagValueAt(source, i + 1)) {
          count++;
          out.push(REDACTED);
          i++;
        }
      }
      continue;
    }
    const out = target as Record<string, unknown>;
    // `{ name: "Authorization", value: "…" }` (HAR files, header lists; `Name`/`Value` in .NET
    // and AWS shapes): the value under a sensitive name.
    const named = source.name ?? source.key ?? source.header ?? source.Name ?? source.Key ?? source.Header;
    const sensitiveValue = typeof named === "string" && isSensitiveKey(named);
    for (const key of Object.keys(source)) {
      const item = source[key];
      let result: unknown;
      if (item !== null && item !== undefined && typeof item !== "boolean" && (isSensitiveKey(key) || (sensitiveValue && (key === "value" || key === "Value")))) {
        count++;
        result = REDACTED;
      } else {
        result = visit(item, depth + 1);
      }
      // A key is a string like any other: a token used as a map key, or a header line sent as
      // a property name, is redacted too (numbered if two keys then read the same). A redacted
      // name never takes the name of another key of the source, whichever comes first: the
      // other key's value would overwrite it, or be overwritten, and the record would lose
      // one of the values the tool was given. One key out for each key in, in the same order:
      // the audit digest (audit-digest.ts) pairs them by place.
      const scanned = redactKey(key);
      let name = key;
      if (scanned.redactions > 0) {
        count += scanned.redactions;
        name = scanned.value;
        for (let n = 2; Object.hasOwn(out, name) || Object.hasOwn(source, name); n++) name = `${scanned.value} (${n})`;
      }
      // `__proto__` from JSON.parse is an own key: copy it as data, never as a prototype.
      if (name === "__proto__") Object.defineProperty(out, name, { value: result, enumerable: true, writable: true, configurable: true });
      else out[name] = result;
    }
  }
  return { value: root, redactions: count };
}
